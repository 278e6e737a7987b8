//! The ReLU sites' cryptography as the protocol uses it: correlated OT for the client's input
//! labels and batched half-gates garbling, chunked so memory stays bounded.
//!
//! Wire order of one ReLU instance (see `gc::relu`): garbler input `a` (ℓ bits, the server's
//! share); evaluator inputs `c` (ℓ bits, the client's share) then `r` (ℓ bits, the client's
//! fresh mask); output `relu(trunc(a + c)) − r` (ℓ bits). The ℓ output bits of one instance are
//! carried as one `u64` word (bit i = output wire i), so decoding is one XOR per instance.

use crate::crypto::Block;
use crate::gc::{relu_circuit, Circuit, Delta, Evaluator, Garbler};
use crate::net::Channel;
use crate::ring::Ring;

use super::ProtocolError;

/// Instances garbled, sent and evaluated together.
pub const CHUNK: usize = 4096;

/// The ReLU circuit of one ring, shared by garbler and evaluator.
pub struct ReluEngine {
    circuit: Circuit,
    /// ℓ.
    pub ell: usize,
    /// Truncation bits inside the circuit.
    pub trunc: usize,
}

impl ReluEngine {
    /// The engine for ReLUs on `ring` truncating by `trunc` bits.
    pub fn new(ring: Ring, trunc: u32) -> Result<Self, ProtocolError> {
        let circuit = relu_circuit(ring.ell as usize, trunc as usize)
            .map_err(|e| ProtocolError::Internal(e.to_string()))?;
        Ok(ReluEngine {
            circuit,
            ell: ring.ell as usize,
            trunc: trunc as usize,
        })
    }

    /// AND gates per ReLU.
    pub fn and_gates(&self) -> usize {
        self.circuit.and_count()
    }

    /// Garbled-table blocks per ReLU.
    pub fn table_blocks(&self) -> usize {
        2 * self.circuit.and_count()
    }

    /// Garble `n` instances: `gb_zero` is `n·ℓ` server zero-labels, `ev_zero` `n·2ℓ` client
    /// zero-labels from correlated OT; writes `tables` (`n · table_blocks`) and one decoding word
    /// per instance.
    pub fn garble(
        &self,
        delta: &Delta,
        gb_zero: &[Block],
        ev_zero: &[Block],
        instance_base: u64,
        tables: &mut [Block],
        decode: &mut [u64],
    ) -> Result<(), ProtocolError> {
        let n = decode.len();
        let mut lsb = vec![false; n * self.ell];
        Garbler::new(&self.circuit, delta)
            .garble_batch_par(gb_zero, ev_zero, instance_base, tables, &mut lsb)
            .map_err(|e| ProtocolError::Internal(e.to_string()))?;
        pack_words(&lsb, self.ell, decode);
        Ok(())
    }

    /// Garble `n` instances and stream their tables to `ch` in chunks of [`CHUNK`], sending one
    /// chunk while the next is garbled; writes one decoding word per instance.
    pub fn garble_stream<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        delta: &Delta,
        gb_zero: &[Block],
        ev_zero: &[Block],
        instance_base: u64,
        decode: &mut [u64],
    ) -> Result<(), ProtocolError> {
        let n = decode.len();
        let mut lsb = vec![false; n * self.ell];
        Garbler::new(&self.circuit, delta)
            .garble_stream(ch, gb_zero, ev_zero, instance_base, &mut lsb, CHUNK)
            .map_err(|e| match e {
                crate::gc::GcError::Net(n) => ProtocolError::Net(n),
                other => ProtocolError::Internal(other.to_string()),
            })?;
        pack_words(&lsb, self.ell, decode);
        Ok(())
    }

    /// Evaluate `n` instances from the server's labels `gb` (`n·ℓ`), the client's `ev`
    /// (`n·2ℓ`) and the tables; writes one word of output colour bits per instance.
    pub fn evaluate(
        &self,
        gb: &[Block],
        ev: &[Block],
        tables: &[Block],
        instance_base: u64,
        words: &mut [u64],
    ) -> Result<(), ProtocolError> {
        let n = words.len();
        let mut lsb = vec![false; n * self.ell];
        Evaluator::new(&self.circuit)
            .eval_batch_par(gb, ev, tables, instance_base, &mut lsb)
            .map_err(|e| ProtocolError::Internal(e.to_string()))?;
        pack_words(&lsb, self.ell, words);
        Ok(())
    }
}

fn pack_words(bits: &[bool], ell: usize, words: &mut [u64]) {
    for (w, chunk) in words.iter_mut().zip(bits.chunks(ell)) {
        *w = chunk
            .iter()
            .enumerate()
            .fold(0u64, |acc, (i, &b)| acc | ((b as u64) << i));
    }
}

/// The server's labels for its share values: `zero ⊕ bit·Δ`, without branching on the bit.
pub fn encode_server_labels(
    values: &[u64],
    ell: usize,
    zero: &[Block],
    delta: &Delta,
    out: &mut [Block],
) {
    let d = delta.block();
    for (i, &v) in values.iter().enumerate() {
        for b in 0..ell {
            let k = i * ell + b;
            out[k] = zero[k] ^ d.select((v >> b) & 1 == 1);
        }
    }
}

/// The client's OT choice bits for instances with shares `c` and masks `r`.
pub fn client_choices(c: &[u64], r: &[u64], ell: usize, out: &mut Vec<bool>) {
    out.clear();
    for (&ci, &ri) in c.iter().zip(r) {
        out.extend((0..ell).map(|b| (ci >> b) & 1 == 1));
        out.extend((0..ell).map(|b| (ri >> b) & 1 == 1));
    }
}

/// Online, server side of one site: send the labels of its share values `values` (one per
/// kept element, in order) from the zero-labels regenerated from `label_seed`, then receive the
/// client's output colour words and decode them with `decode`. Returns `relu(y) − r` per kept
/// element.
pub fn server_online_site<C: Channel + ?Sized>(
    ch: &mut C,
    ell: usize,
    values: &[u64],
    label_seed: Block,
    delta: &Delta,
    decode: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let mut prg = crate::crypto::prg::Prg::from_seed(label_seed);
    let mut zero = vec![Block::ZERO; CHUNK * ell];
    let mut labels = vec![Block::ZERO; CHUNK * ell];
    for chunk in values.chunks(CHUNK) {
        let m = chunk.len();
        prg.fill_blocks(&mut zero[..m * ell]);
        encode_server_labels(chunk, ell, &zero[..m * ell], delta, &mut labels[..m * ell]);
        crate::net::ChannelExt::send_blocks(ch, &labels[..m * ell])?;
    }
    ch.flush()?;
    let bytes_per = ell.div_ceil(8);
    let mut buf = vec![0u8; values.len() * bytes_per];
    ch.recv(&mut buf)?;
    let mask = if ell == 64 {
        u64::MAX
    } else {
        (1u64 << ell) - 1
    };
    Ok(buf
        .chunks_exact(bytes_per)
        .zip(decode)
        .map(|(b, d)| {
            let mut w = [0u8; 8];
            w[..bytes_per].copy_from_slice(b);
            (u64::from_le_bytes(w) ^ d) & mask
        })
        .collect())
}

impl ReluEngine {
    /// Online, client side of one site of `n` kept elements: receive the server's labels chunk
    /// by chunk, evaluate each chunk from the stored `labels` and `tables`, and return the
    /// output colour words (ℓ bits per element, packed to ⌈ℓ/8⌉ bytes).
    pub fn client_online_site<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        n: usize,
        labels: &[Block],
        tables: &[Block],
        instance_base: u64,
    ) -> Result<(), ProtocolError> {
        let ell = self.ell;
        let tb = self.table_blocks();
        let mut words = vec![0u64; n];
        let mut gb = vec![Block::ZERO; CHUNK * ell];
        for (c, w) in words.chunks_mut(CHUNK).enumerate() {
            let m = w.len();
            let first = c * CHUNK;
            crate::net::ChannelExt::recv_blocks(ch, &mut gb[..m * ell])?;
            self.evaluate(
                &gb[..m * ell],
                &labels[first * 2 * ell..(first + m) * 2 * ell],
                &tables[first * tb..(first + m) * tb],
                instance_base + first as u64,
                w,
            )?;
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
