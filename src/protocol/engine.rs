//! The ReLU sites' cryptography as the protocol uses it: correlated OT for the client's input
//! labels and batched garbling (half gates or three-halves), chunked so memory stays bounded.
//!
//! Wire order of one ReLU instance (see `gc::relu`): garbler input `a` (ℓ bits, the server's
//! share); evaluator inputs `c` (ℓ bits, the client's share) then `r` (ℓ bits, the client's
//! fresh mask); output `relu(trunc(a + c)) − r` (ℓ bits). The ℓ output bits of one instance are
//! carried as one `u64` word (bit i = output wire i), so decoding is one XOR per instance.

use crate::crypto::block::{blocks_as_bytes_mut, blocks_as_words};
use crate::crypto::buffer::BlockBuf;
use crate::crypto::ot::{ChoicePattern, OtReceiver, OtSender};
use crate::crypto::prg::Prg;
use crate::crypto::Block;
use crate::gc::threehalves::instance_words;
use crate::gc::{
    relu_circuit, Circuit, Delta, Evaluator, Garbler, GcError, Scheme, ThEvaluator, ThGarbler,
};
use crate::net::Channel;
use crate::ring::Ring;

use super::ProtocolError;

/// Instances garbled, sent and evaluated together.
pub const CHUNK: usize = 4096;

/// Engine errors: channel failures stay channel failures, everything else is our bug.
fn gc_err(e: GcError) -> ProtocolError {
    match e {
        GcError::Net(n) => ProtocolError::Net(n),
        other => ProtocolError::Internal(other.to_string()),
    }
}

/// The ReLU circuit of one ring under one garbling scheme, shared by garbler and evaluator.
///
/// Garbled tables are kept in block buffers whatever the scheme: half-gates tables are
/// `2 · and_count` blocks per ReLU, three-halves tables
/// [`instance_words`]`(and_count)` words per ReLU viewed through the buffer's words (the last
/// block of a buffer may carry 8 bytes of padding, never sent nor counted).
pub struct ReluEngine {
    circuit: Circuit,
    /// ℓ.
    pub ell: usize,
    /// Truncation bits inside the circuit.
    pub trunc: usize,
    /// The garbling scheme.
    pub scheme: Scheme,
}

impl ReluEngine {
    /// The engine for ReLUs on `ring` truncating by `trunc` bits, garbled with `scheme`.
    pub fn new(ring: Ring, trunc: u32, scheme: Scheme) -> Result<Self, ProtocolError> {
        let circuit = relu_circuit(ring.ell as usize, trunc as usize)
            .map_err(|e| ProtocolError::Internal(e.to_string()))?;
        Ok(ReluEngine {
            circuit,
            ell: ring.ell as usize,
            trunc: trunc as usize,
            scheme,
        })
    }

    /// AND gates per ReLU.
    pub fn and_gates(&self) -> usize {
        self.circuit.and_count()
    }

    /// Garbled-table bytes per ReLU.
    pub fn table_bytes(&self) -> usize {
        self.scheme.table_bytes(&self.circuit, 1) as usize
    }

    /// Table elements per ReLU: blocks for half gates, words for three-halves.
    fn table_units(&self) -> usize {
        match self.scheme {
            Scheme::HalfGates => 2 * self.circuit.and_count(),
            Scheme::ThreeHalves => instance_words(self.circuit.and_count()),
        }
    }

    /// A buffer for the tables of `n` ReLUs.
    pub fn table_buffer(&self, n: usize) -> BlockBuf {
        BlockBuf::with_len((n * self.table_bytes()).div_ceil(16))
    }

    /// Garble `n` instances and stream their tables to `ch` in chunks of [`CHUNK`], sending one
    /// chunk while the next is garbled; writes one decoding word per instance. `gb_zero` is
    /// `n·ℓ` server zero-labels, `ev_zero` `n·2ℓ` client zero-labels from correlated OT;
    /// `control_seed` keys the three-halves garbler's control randomness (secret, one per Δ;
    /// unused by half gates).
    #[allow(clippy::too_many_arguments)]
    pub fn garble_stream<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        delta: &Delta,
        control_seed: Block,
        gb_zero: &[Block],
        ev_zero: &[Block],
        instance_base: u64,
        decode: &mut [u64],
    ) -> Result<(), ProtocolError> {
        let n = decode.len();
        let mut lsb = vec![false; n * self.ell];
        match self.scheme {
            Scheme::HalfGates => Garbler::new(&self.circuit, delta).garble_stream(
                ch,
                gb_zero,
                ev_zero,
                instance_base,
                &mut lsb,
                CHUNK,
            ),
            Scheme::ThreeHalves => ThGarbler::new(&self.circuit, delta, control_seed)
                .garble_stream(ch, gb_zero, ev_zero, instance_base, &mut lsb, CHUNK),
        }
        .map_err(gc_err)?;
        pack_words(&lsb, self.ell, decode);
        Ok(())
    }

    /// Receive the tables of `n` ReLUs (chunk by chunk) into a fresh buffer: the client's
    /// offline step.
    pub fn recv_tables<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        n: usize,
    ) -> Result<BlockBuf, ProtocolError> {
        let mut tables = self.table_buffer(n);
        let bytes = n * self.table_bytes();
        for chunk in
            blocks_as_bytes_mut(&mut tables)[..bytes].chunks_mut(CHUNK * self.table_bytes())
        {
            ch.recv(chunk)?;
        }
        Ok(tables)
    }

    /// Evaluate instances `first..first + m` of stored `tables` (as filled by
    /// [`ReluEngine::recv_tables`]) from the server's labels `gb` (`m·ℓ`) and the client's `ev`
    /// (`m·2ℓ`); writes one word of output colour bits per instance.
    pub fn evaluate(
        &self,
        gb: &[Block],
        ev: &[Block],
        tables: &[Block],
        first: usize,
        instance_base: u64,
        words: &mut [u64],
    ) -> Result<(), ProtocolError> {
        let m = words.len();
        let mut lsb = vec![false; m * self.ell];
        let u = self.table_units();
        match self.scheme {
            Scheme::HalfGates => Evaluator::new(&self.circuit).eval_batch_par(
                gb,
                ev,
                &tables[first * u..(first + m) * u],
                instance_base,
                &mut lsb,
            ),
            Scheme::ThreeHalves => ThEvaluator::new(&self.circuit).eval_batch_par(
                gb,
                ev,
                &blocks_as_words(tables)[first * u..(first + m) * u],
                instance_base,
                &mut lsb,
            ),
        }
        .map_err(gc_err)?;
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

/// What the client keeps from one site's offline phase.
pub struct ClientSiteOffline {
    /// Its fresh output masks `r`, one per kept element: the random choice bits of its OTs.
    pub masks: Vec<u64>,
    /// Its input labels, `2ℓ` per kept element (share bits, then mask bits).
    pub labels: BlockBuf,
    /// The garbled tables (see [`ReluEngine::recv_tables`]).
    pub tables: BlockBuf,
}

impl ReluEngine {
    /// Which of the client's `2ℓ` input wires per ReLU take chosen OT bits: its share's `ℓ`
    /// (then come the mask's `ℓ`, whose bits the OT picks at random).
    pub fn choice_pattern(&self) -> ChoicePattern {
        ChoicePattern {
            period: 2 * self.ell,
            chosen: self.ell,
        }
    }

    /// Offline, server side of one site of `n` kept ReLUs: the client's input labels by
    /// correlated OT (its share bits chosen, its mask bits random), then the tables garbled and
    /// streamed, the server's own zero-labels drawn from `label_seed` (regenerated online).
    /// Returns one decoding word per ReLU.
    #[allow(clippy::too_many_arguments)]
    pub fn server_offline<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        ot: &mut OtSender,
        delta: &Delta,
        control_seed: Block,
        label_seed: Block,
        n: usize,
        instance_base: u64,
    ) -> Result<Vec<u64>, ProtocolError> {
        let mut decode = vec![0u64; n];
        if n == 0 {
            return Ok(decode);
        }
        let ell = self.ell;
        // The client's input labels: zero-labels here, K ⊕ bΔ at the client.
        let mut ev_zero = BlockBuf::with_len(n * 2 * ell);
        ot.send(ch, self.choice_pattern(), &mut ev_zero)?;
        let mut gb_zero = BlockBuf::with_len(n * ell);
        Prg::from_seed(label_seed).fill_blocks(&mut gb_zero);
        self.garble_stream(
            ch,
            delta,
            control_seed,
            &gb_zero,
            &ev_zero,
            instance_base,
            &mut decode,
        )?;
        Ok(decode)
    }

    /// Offline, client side of one site: its input labels by correlated OT for its kept shares
    /// `c` (chosen bits) and fresh masks (random bits, returned), then the stored tables.
    pub fn client_offline<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        ot: &mut OtReceiver,
        c: &[u64],
    ) -> Result<ClientSiteOffline, ProtocolError> {
        let (n, ell) = (c.len(), self.ell);
        let mut labels = BlockBuf::with_len(n * 2 * ell);
        let mut masks = vec![0u64; n];
        if n > 0 {
            let mut choices = vec![false; n * 2 * ell];
            for (ch_i, &ci) in choices.chunks_exact_mut(2 * ell).zip(c) {
                for (b, x) in ch_i[..ell].iter_mut().enumerate() {
                    *x = (ci >> b) & 1 == 1;
                }
            }
            ot.receive(ch, self.choice_pattern(), &mut choices, &mut labels)?;
            for (m, ch_i) in masks.iter_mut().zip(choices.chunks_exact(2 * ell)) {
                *m = ch_i[ell..]
                    .iter()
                    .enumerate()
                    .fold(0u64, |w, (b, &x)| w | (u64::from(x) << b));
            }
        }
        let tables = self.recv_tables(ch, n)?;
        Ok(ClientSiteOffline {
            masks,
            labels,
            tables,
        })
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
        let mut words = vec![0u64; n];
        let mut gb = vec![Block::ZERO; CHUNK * ell];
        for (c, w) in words.chunks_mut(CHUNK).enumerate() {
            let m = w.len();
            let first = c * CHUNK;
            crate::net::ChannelExt::recv_blocks(ch, &mut gb[..m * ell])?;
            self.evaluate(
                &gb[..m * ell],
                &labels[first * 2 * ell..(first + m) * 2 * ell],
                tables,
                first,
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
