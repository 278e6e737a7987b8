//! One ReLU site, each party's offline and online step: correlated OT for the client's input
//! labels and batched half-gates garbling, streamed in chunks so memory stays bounded. The
//! network protocol ([`super::server`], [`super::client`]) and `pibench relu-bench` both run
//! exactly these steps.
//!
//! Wire order of one ReLU instance (see `gc::relu`): garbler input `a` (ℓ bits, the server's
//! share); evaluator inputs `c` (ℓ bits, the client's share) then `r` (ℓ bits, the client's
//! fresh output mask); output `relu(trunc(a + c)) − r` (ℓ bits). The ℓ output bits of one
//! instance are carried as one `u64` word (bit i = output wire i), so decoding is one XOR per
//! instance, and travel back as ⌈ℓ/8⌉ bytes.

use rand_core::{CryptoRng, RngCore};

use super::ProtocolError;
use crate::crypto::buffer::BlockBuf;
use crate::crypto::ot::{CotReceiver, CotSender};
use crate::crypto::prg::Prg;
use crate::crypto::{Block, BlockChannel};
use crate::gc::batch::{table_blocks, DEFAULT_STREAM_CHUNK as CHUNK};
use crate::gc::circuit::bits_to_words;
use crate::gc::halfgates::encode_words;
use crate::gc::{relu_circuit, Circuit, Delta, Evaluator, Garbler};
use crate::net::Channel;
use crate::ring::Ring;

/// The ReLU circuit of one ring and truncation, shared by garbler and evaluator.
pub struct ReluEngine {
    circuit: Circuit,
    ring: Ring,
}

impl ReluEngine {
    /// The engine for ReLUs on `ring` truncating by `trunc` bits.
    pub fn new(ring: Ring, trunc: u32) -> Result<Self, ProtocolError> {
        let circuit = relu_circuit(ring.ell as usize, trunc as usize)?;
        Ok(ReluEngine { circuit, ring })
    }

    /// ℓ: the bits of one share, and the labels per share.
    pub fn ell(&self) -> usize {
        self.ring.ell as usize
    }

    /// AND gates per ReLU.
    pub fn and_gates(&self) -> usize {
        self.circuit.and_count()
    }

    /// Garbled-table blocks per ReLU.
    pub fn table_blocks(&self) -> usize {
        table_blocks(&self.circuit, 1)
    }
}

/// What the server keeps of one site between the offline and the online phase.
pub struct ServerSite {
    /// Seed of the server's input zero-labels, regenerated online instead of stored.
    label_seed: Block,
    /// Per instance, the colour bits of the output zero-labels.
    decode: Vec<u64>,
    /// The ring of the shares.
    ring: Ring,
}

impl Drop for ServerSite {
    // The seed regenerates every zero-label of the server's inputs at this site.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.label_seed.0);
    }
}

impl ServerSite {
    /// Offline: send the client's input labels of `n` instances by correlated OT (zero-labels
    /// here, `K ⊕ bΔ` at the client), then garble the instances (numbered from
    /// `instance_base`) and stream their tables to the client, one chunk while the next is
    /// garbled.
    #[allow(clippy::too_many_arguments)]
    pub fn offline<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        engine: &ReluEngine,
        n: usize,
        instance_base: u64,
        cot: &mut CotSender,
        delta: &Delta,
        rng: &mut R,
    ) -> Result<Self, ProtocolError> {
        let ell = engine.ell();
        let mut ev_zero = BlockBuf::with_len(n * 2 * ell);
        if n > 0 {
            cot.send(ch, &mut ev_zero)?;
        }
        let label_seed = Block::random(rng);
        let mut decode = Vec::new();
        if n > 0 {
            let mut gb_zero = BlockBuf::with_len(n * ell);
            Prg::from_seed(label_seed).fill_blocks(&mut gb_zero);
            let mut lsb = vec![false; n * ell];
            Garbler::new(&engine.circuit, delta).garble_stream(
                ch,
                &gb_zero,
                &ev_zero,
                instance_base,
                &mut lsb,
                CHUNK,
            )?;
            decode = bits_to_words(&lsb, ell)?;
        }
        ch.flush()?;
        Ok(ServerSite {
            label_seed,
            decode,
            ring: engine.ring,
        })
    }

    /// Instances of the site.
    pub fn len(&self) -> usize {
        self.decode.len()
    }

    /// Whether the site has no instance.
    pub fn is_empty(&self) -> bool {
        self.decode.is_empty()
    }

    /// Bytes stored between the phases.
    pub fn storage_bytes(&self) -> u64 {
        (self.decode.len() * 8 + 16) as u64
    }

    /// Online: send the labels of the server's share `values` (one per instance, in order),
    /// receive the client's output colour words and decode them. Returns `relu(y) − r` per
    /// instance.
    pub fn online<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        delta: &Delta,
        values: &[u64],
    ) -> Result<Vec<u64>, ProtocolError> {
        if values.len() != self.decode.len() {
            return Err(ProtocolError::Internal(format!(
                "{} share values for a site of {} ReLUs",
                values.len(),
                self.decode.len()
            )));
        }
        let ell = self.ring.ell as usize;
        let mut prg = Prg::from_seed(self.label_seed);
        let mut zero = vec![Block::ZERO; CHUNK * ell];
        let mut labels = vec![Block::ZERO; CHUNK * ell];
        for chunk in values.chunks(CHUNK) {
            let m = chunk.len() * ell;
            prg.fill_blocks(&mut zero[..m]);
            encode_words(&zero[..m], chunk, ell, delta, &mut labels[..m])?;
            ch.send_blocks(&labels[..m])?;
        }
        ch.flush()?;
        let bytes_per = ell.div_ceil(8);
        let mut buf = vec![0u8; values.len() * bytes_per];
        ch.recv(&mut buf)?;
        let mask = self.ring.mask();
        Ok(buf
            .chunks_exact(bytes_per)
            .zip(&self.decode)
            .map(|(b, d)| {
                let mut w = [0u8; 8];
                w[..bytes_per].copy_from_slice(b);
                (u64::from_le_bytes(w) ^ d) & mask
            })
            .collect())
    }
}

/// What the client stores of one site between the offline and the online phase.
pub struct ClientSite {
    /// Garbled tables of the instances, in order.
    tables: BlockBuf,
    /// The client's input labels (`2ℓ` per instance).
    labels: BlockBuf,
    /// The first instance's number.
    instance_base: u64,
    /// Instances.
    n: usize,
}

impl ClientSite {
    /// Offline: obtain by correlated OT the labels of the client's inputs to each instance (its
    /// share `c[j]` and its fresh output mask `relu_out_mask[j]`), then receive and store the
    /// garbled tables. `choices` is scratch space, reused across sites.
    pub fn offline<C: Channel + ?Sized>(
        ch: &mut C,
        engine: &ReluEngine,
        c: &[u64],
        relu_out_mask: &[u64],
        instance_base: u64,
        cot: &mut CotReceiver,
        choices: &mut Vec<bool>,
    ) -> Result<Self, ProtocolError> {
        let (ell, n) = (engine.ell(), c.len());
        if relu_out_mask.len() != n {
            return Err(ProtocolError::Internal(format!(
                "{} output masks for a site of {n} ReLUs",
                relu_out_mask.len()
            )));
        }
        let mut labels = BlockBuf::with_len(n * 2 * ell);
        if n > 0 {
            choices.clear();
            for (&ci, &ri) in c.iter().zip(relu_out_mask) {
                choices.extend((0..ell).map(|b| (ci >> b) & 1 == 1));
                choices.extend((0..ell).map(|b| (ri >> b) & 1 == 1));
            }
            cot.receive(ch, choices, &mut labels)?;
        }
        let tb = engine.table_blocks();
        let mut tables = BlockBuf::with_len(n * tb);
        let evaluator = Evaluator::new(&engine.circuit);
        for chunk in tables.chunks_mut(CHUNK * tb) {
            evaluator.recv_tables(ch, chunk)?;
        }
        Ok(ClientSite {
            tables,
            labels,
            instance_base,
            n,
        })
    }

    /// Instances of the site.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the site has no instance.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Bytes stored between the phases.
    pub fn storage_bytes(&self) -> u64 {
        ((self.tables.len() + self.labels.len()) * 16) as u64
    }

    /// Online: receive the server's labels chunk by chunk, evaluate each chunk from the stored
    /// labels and tables, and send back the output colour words (⌈ℓ/8⌉ bytes each).
    pub fn online<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        engine: &ReluEngine,
    ) -> Result<(), ProtocolError> {
        let (ell, tb, n) = (engine.ell(), engine.table_blocks(), self.n);
        let evaluator = Evaluator::new(&engine.circuit);
        let mut words = Vec::with_capacity(n);
        let mut gb = vec![Block::ZERO; CHUNK * ell];
        let mut lsb = vec![false; CHUNK * ell];
        for first in (0..n).step_by(CHUNK) {
            let m = CHUNK.min(n - first);
            ch.recv_blocks(&mut gb[..m * ell])?;
            evaluator.eval_batch_par(
                &gb[..m * ell],
                &self.labels[first * 2 * ell..(first + m) * 2 * ell],
                &self.tables[first * tb..(first + m) * tb],
                self.instance_base + first as u64,
                &mut lsb[..m * ell],
            )?;
            words.extend(bits_to_words(&lsb[..m * ell], ell)?);
        }
        let bytes_per = ell.div_ceil(8);
        let buf: Vec<u8> = words
            .iter()
            .flat_map(|w| w.to_le_bytes().into_iter().take(bytes_per))
            .collect();
        ch.send(&buf)?;
        ch.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod drop_tests {
    use super::*;

    #[test]
    fn a_sites_label_seed_is_wiped_when_dropped() {
        let site = ServerSite {
            label_seed: Block::random(&mut rand_core::OsRng),
            decode: vec![7, 8],
            ring: Ring::default(),
        };
        assert_ne!(site.label_seed, Block::ZERO);
        let mut site = std::mem::ManuallyDrop::new(site);
        // SAFETY: dropped once; afterwards only the inline seed (a u128, any bit pattern valid)
        // is read, never the vector whose memory the drop freed.
        unsafe { std::mem::ManuallyDrop::drop(&mut site) };
        assert_eq!(site.label_seed, Block::ZERO);
    }
}
