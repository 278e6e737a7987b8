//! One ReLU site, each party's offline and online step: correlated OT for the client's input
//! labels (IKNP or SoftSpoken, [`OtSender`]/[`OtReceiver`]) and batched garbling (half gates or
//! three-halves, [`Scheme`]), streamed in chunks so memory stays bounded. The network protocol
//! ([`super::server`], [`super::client`]) and `pibench relu-bench` both run exactly these steps,
//! whatever the scheme and the OT: the two differ only inside [`ReluEngine`]'s garble, receive
//! and evaluate calls and inside the OT objects.
//!
//! Wire order of one ReLU instance (see `gc::relu`): garbler input `a` (ℓ bits, the server's
//! share); evaluator input `c` (ℓ bits, the client's share); outputs the low `ℓ − f − 1` bits
//! of `trunc(a + c)` and the selector `¬sign` ([`relu_select_circuit`]). The server turns them
//! into additive shares of `v = relu(trunc(a + c))`, the selector times the bits, with two
//! short ciphertexts per bit and one for the selector ([`ArithOutputs`]), each chunk's sent
//! right after its tables: online the client evaluates, derives its share `u` of `v`, and returns
//! `u − r` (⌈ℓ/8⌉ bytes), `r` being its fresh mask drawn offline from its rng (one `u64` per
//! kept element); the server's new share is what it received plus its own share `w`, so the
//! pair (server, client) shares `v` as (`v − r`, `r`), and the client knows its part offline.
//! Against a circuit that selects and subtracts `r` itself
//! ([`relu_circuit`](crate::gc::relu_circuit)), that saves `(ℓ − f − 1) + (ℓ − 1)` AND gates
//! and the mask's ℓ OTs for `2·Σ_o (ℓ − o) + ℓ` bits of ciphertexts.

use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;

use super::ProtocolError;
use crate::crypto::block::{blocks_as_words, blocks_as_words_mut, zeroed_blocks};
use crate::crypto::buffer::{prefault, BlockBuf};
use crate::crypto::ot::{ChoiceBits, ChoicePattern, OtReceiver, OtSender};
use crate::crypto::prg::Prg;
use crate::crypto::{Block, BlockChannel};
use crate::gc::arith::ArithOutputs;
use crate::gc::batch::{recv_chunks, DEFAULT_STREAM_CHUNK as CHUNK};
use crate::gc::halfgates::encode_words;
use crate::gc::relu::relu_value_bits;
use crate::gc::threehalves::instance_words;
use crate::gc::{
    relu_select_circuit, Circuit, Delta, Evaluator, EvaluatorLabels, Garbler, GarblerLabels,
    GcError, Scheme, ThEvaluator, ThGarbler,
};
use crate::net::Channel;
use crate::ring::Ring;
use core::ops::Range;

/// Instances per slice of a chunk of tables the client receives: at ℓ = 64, the 65,536 OTs of
/// one silent-OT chunk and about 2.2 MB of three-halves tables, so that expanding one chunk's
/// labels between two slices never leaves more unread on the socket than its buffers hold.
const SLICE: usize = 512;

/// Instances the client evaluates per task online, both their gates and their output
/// ciphertexts: the piece's output labels (52 blocks per instance at ℓ = 64, 106 KB) are still
/// in the core's cache when they become shares. Evaluating a whole chunk first and then
/// deriving its shares sent 1.7 MB of labels through memory and back, in two parallel regions
/// instead of one: the online phase of `relu-bench --relus 100000` took 5–11 % longer (three
/// sets of ten alternated runs; this way was faster in 24 of 30).
const EVAL_PIECE: usize = 128;

/// The ReLU circuit of one ring and truncation under one garbling scheme, shared by garbler and
/// evaluator.
///
/// Garbled tables are kept in block buffers whatever the scheme: half-gates tables are
/// `2 · and_count` blocks per ReLU, three-halves tables [`instance_words`]`(and_count)` words
/// per ReLU seen through the buffer's words (the last block of a buffer may carry 8 bytes of
/// padding, never sent nor counted).
pub struct ReluEngine {
    circuit: Circuit,
    arith: ArithOutputs,
    ring: Ring,
    scheme: Scheme,
}

impl ReluEngine {
    /// The engine for ReLUs on `ring` truncating by `trunc` bits, garbled with `scheme`.
    pub fn new(ring: Ring, trunc: u32, scheme: Scheme) -> Result<Self, ProtocolError> {
        let (ell, trunc) = (ring.ell as usize, trunc as usize);
        let circuit = relu_select_circuit(ell, trunc)?;
        let arith = ArithOutputs::new(ell, relu_value_bits(ell, trunc))?;
        Ok(ReluEngine {
            circuit,
            arith,
            ring,
            scheme,
        })
    }

    /// The garbling scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// ℓ: the bits of one share, and the labels per share.
    pub fn ell(&self) -> usize {
        self.ring.ell as usize
    }

    /// AND gates per ReLU.
    pub fn and_gates(&self) -> usize {
        self.circuit.and_count()
    }

    /// Garbled-table bytes per ReLU (on the wire and in the client's storage).
    pub fn table_bytes(&self) -> usize {
        self.scheme.table_bytes(&self.circuit, 1) as usize
    }

    /// Bytes of the output ciphertexts per ReLU ([`ArithOutputs::instance_bytes`]), sent after
    /// their chunk's tables and stored with them.
    pub fn output_bytes(&self) -> usize {
        self.arith.instance_bytes()
    }

    /// The client's input wires per ReLU, each a correlated OT: its share's ℓ bits.
    pub fn client_wires(&self) -> usize {
        self.circuit.evaluator_inputs()
    }

    /// Bytes the client stores per ReLU between the phases: tables, output ciphertexts, its
    /// input labels and its mask.
    pub fn client_storage_bytes(&self) -> usize {
        self.table_bytes() + self.output_bytes() + 16 * self.client_wires() + 8
    }

    /// Table elements per ReLU: blocks for half gates, words for three-halves.
    fn table_units(&self) -> usize {
        match self.scheme {
            Scheme::HalfGates => 2 * self.circuit.and_count(),
            Scheme::ThreeHalves => instance_words(self.circuit.and_count()),
        }
    }

    /// Garbles `n = shares.len()` instances numbered from `instance_base`, the server's
    /// zero-labels drawn from `gb_labels` and the client's from `ev` chunk by chunk, and
    /// streams them to `ch` in chunks, one chunk while the next is garbled: each chunk's
    /// tables, then its output ciphertexts. As each chunk is garbled its output zero-labels
    /// become those ciphertexts and the server's shares `shares` ([`ArithOutputs::garble`]),
    /// so only the shares are kept. `control_seed` keys the three-halves control randomness
    /// (secret, fresh; unused by half gates).
    #[allow(clippy::too_many_arguments)]
    fn garble_stream<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        delta: &Delta,
        control_seed: Block,
        gb_labels: &mut Prg,
        ev: EvaluatorLabels<'_>,
        instance_base: u64,
        shares: &mut [u64],
    ) -> Result<(), ProtocolError> {
        let (c, base, n) = (&self.circuit, instance_base, shares.len());
        let (no, nb) = (self.arith.wires(), self.output_bytes());
        let drawn = GarblerLabels::Drawn(gb_labels);
        let outputs = |i0: usize, zero: &[Block], cts: &mut [u8]| {
            let m = zero.len() / no;
            self.arith
                .garble(delta, base + i0 as u64, zero, cts, &mut shares[i0..i0 + m])
        };
        match self.scheme {
            Scheme::HalfGates => Garbler::new(c, delta)
                .garble_stream_with(ch, drawn, ev, base, n, CHUNK, nb, outputs)?,
            Scheme::ThreeHalves => ThGarbler::new(c, delta, control_seed)
                .garble_stream_with(ch, drawn, ev, base, n, CHUNK, nb, outputs)?,
        };
        Ok(())
    }

    /// Receives the tables and output ciphertexts of `n` ReLUs into fresh buffers, in the
    /// chunks [`ReluEngine::garble_stream`] sends, each chunk's tables in slices of [`SLICE`]
    /// instances, calling `before(ch, end, slice)` before the tables of the instances in
    /// `slice`, where `end` is the end of their chunk: what the garbler sent ahead of a
    /// chunk's tables is read there, and work on the chunk can be spread over its slices.
    fn recv_offline<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        n: usize,
        mut before: impl FnMut(&mut C, usize, Range<usize>) -> Result<(), ProtocolError>,
    ) -> Result<(BlockBuf, Vec<u8>), ProtocolError> {
        fn chunks<C: Channel + ?Sized, T>(
            ch: &mut C,
            tables: &mut [T],
            u: usize,
            cts: &mut [u8],
            nb: usize,
            before: &mut impl FnMut(&mut C, usize, Range<usize>) -> Result<(), ProtocolError>,
            mut recv: impl FnMut(&mut C, &mut [T]) -> Result<u64, GcError>,
        ) -> Result<(), ProtocolError> {
            let chunk_cts = cts.chunks_mut(CHUNK * nb);
            for (i, (chunk, cts)) in tables.chunks_mut(CHUNK * u).zip(chunk_cts).enumerate() {
                let end = i * CHUNK + chunk.len() / u;
                for (k, slice) in chunk.chunks_mut(SLICE * u).enumerate() {
                    let i0 = i * CHUNK + k * SLICE;
                    before(ch, end, i0..i0 + slice.len() / u)?;
                    prefault(slice);
                    recv(ch, slice)?;
                }
                prefault(cts);
                ch.recv(cts)?;
            }
            Ok(())
        }
        let (u, nb) = (self.table_units(), self.output_bytes());
        let mut cts = vec![0u8; n * nb];
        let tables = match self.scheme {
            Scheme::HalfGates => {
                let mut tables = BlockBuf::with_len(n * u);
                let evaluator = Evaluator::new(&self.circuit);
                chunks(ch, &mut tables, u, &mut cts, nb, &mut before, |ch, t| {
                    evaluator.recv_tables(ch, t)
                })?;
                tables
            }
            Scheme::ThreeHalves => {
                let mut tables = BlockBuf::with_len((n * u).div_ceil(2));
                let evaluator = ThEvaluator::new(&self.circuit);
                let words = &mut blocks_as_words_mut(&mut tables)[..n * u];
                chunks(ch, words, u, &mut cts, nb, &mut before, |ch, t| {
                    evaluator.recv_tables(ch, t)
                })?;
                tables
            }
        };
        Ok((tables, cts))
    }

    /// Evaluates instances `first..first + m` (`m = out.len() / wires`) of the stored
    /// `tables` on the server's labels `gb` and the client's `ev`, writing the output labels,
    /// on the calling thread.
    fn evaluate(
        &self,
        gb: &[Block],
        ev: &[Block],
        tables: &[Block],
        first: usize,
        instance: u64,
        out: &mut [Block],
    ) -> Result<(), GcError> {
        let (u, m) = (self.table_units(), out.len() / self.arith.wires());
        match self.scheme {
            Scheme::HalfGates => Evaluator::new(&self.circuit).eval_batch(
                gb,
                ev,
                &tables[first * u..(first + m) * u],
                instance,
                out,
            )?,
            Scheme::ThreeHalves => ThEvaluator::new(&self.circuit).eval_batch(
                gb,
                ev,
                &blocks_as_words(tables)[first * u..(first + m) * u],
                instance,
                out,
            )?,
        };
        Ok(())
    }
}

/// What the server keeps of one site between the offline and the online phase.
pub struct ServerSite {
    /// Seed of the server's input zero-labels, regenerated online instead of stored.
    label_seed: Block,
    /// Per instance, the server's share `w` of the ReLU's value ([`ArithOutputs::garble`]).
    shares: Vec<u64>,
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
    /// here, `K ⊕ bΔ` at the client), garble the instances (numbered from `instance_base`) and
    /// stream their tables and output ciphertexts to the client, one chunk while the next is
    /// garbled.
    #[allow(clippy::too_many_arguments)]
    pub fn offline<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        engine: &ReluEngine,
        n: usize,
        instance_base: u64,
        cot: &mut OtSender,
        delta: &Delta,
        rng: &mut R,
    ) -> Result<Self, ProtocolError> {
        let (wires, pattern) = (engine.client_wires(), ChoicePattern::ALL_CHOSEN);
        // SoftSpoken's and silent OT's outputs are computed chunk by chunk as they are
        // garbled, from the receiver's message held until then (SoftSpoken: a quarter of
        // their size; silent OT: its choice corrections, the chunks' messages going out with
        // the tables); IKNP hands them all out at once.
        let defer = n > 0 && cot.defers();
        let mut ev_zero = BlockBuf::with_len(if defer { 0 } else { n * wires });
        let mut deferred = None;
        if defer {
            deferred = Some(cot.send_deferred(ch, pattern, n * wires)?);
        } else if n > 0 {
            cot.send(ch, pattern, &mut ev_zero)?;
        }
        let label_seed = Block::random(rng);
        let mut shares = vec![0u64; n];
        if n > 0 {
            // The server's zero-labels, drawn as each chunk is garbled (as online, from the seed).
            let mut gb_labels = Prg::from_seed(label_seed);
            let mut control_seed = Block::random(rng);
            let mut expand = deferred.as_mut().map(|d| {
                move |out: &mut [Block], msg: &mut Vec<Block>| {
                    d.fill(out, msg)
                        .map_err(|e| GcError::Params(format!("the OT outputs to garble: {e}")))
                }
            });
            let ev = match expand.as_mut() {
                Some(f) => EvaluatorLabels::Expanded(f),
                None => EvaluatorLabels::Held(&ev_zero),
            };
            let garbled = engine.garble_stream(
                ch,
                delta,
                control_seed,
                &mut gb_labels,
                ev,
                instance_base,
                &mut shares,
            );
            zeroize::Zeroize::zeroize(&mut control_seed.0);
            garbled?;
            if deferred.as_ref().is_some_and(|d| d.remaining() != 0) {
                return Err(ProtocolError::Internal(
                    "the site was garbled before its OTs ran out".into(),
                ));
            }
        }
        ch.flush()?;
        Ok(ServerSite {
            label_seed,
            shares,
            ring: engine.ring,
        })
    }

    /// Instances of the site.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether the site has no instance.
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// Bytes stored between the phases.
    pub fn storage_bytes(&self) -> u64 {
        (self.shares.len() * 8 + 16) as u64
    }

    /// Online: send the labels of the server's share `values` (one per instance, in order),
    /// receive the client's masked shares and add its own. Returns `relu(y) − r` per instance,
    /// `r` being the client's mask.
    pub fn online<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        delta: &Delta,
        values: &[u64],
    ) -> Result<Vec<u64>, ProtocolError> {
        if values.len() != self.shares.len() {
            return Err(ProtocolError::Internal(format!(
                "{} share values for a site of {} ReLUs",
                values.len(),
                self.shares.len()
            )));
        }
        let ell = self.ring.ell as usize;
        let mut prg = Prg::from_seed(self.label_seed);
        let mut zero = zeroed_blocks(CHUNK * ell);
        let mut labels = zeroed_blocks(CHUNK * ell);
        let mut send = || -> Result<(), ProtocolError> {
            for chunk in values.chunks(CHUNK) {
                let m = chunk.len() * ell;
                prg.fill_blocks(&mut zero[..m]);
                encode_words(&zero[..m], chunk, ell, delta, &mut labels[..m])?;
                ch.send_blocks(&labels[..m])?;
            }
            Ok(())
        };
        let sent = send();
        // Zero-labels: with the client's labels they would give Δ.
        crate::crypto::block::wipe(&mut zero);
        sent?;
        ch.flush()?;
        let bytes_per = ell.div_ceil(8);
        let mut buf = vec![0u8; values.len() * bytes_per];
        ch.recv(&mut buf)?;
        Ok(buf
            .chunks_exact(bytes_per)
            .zip(&self.shares)
            .map(|(b, w)| {
                let mut d = [0u8; 8];
                d[..bytes_per].copy_from_slice(b);
                self.ring.reduce(u64::from_le_bytes(d).wrapping_add(*w))
            })
            .collect())
    }
}

/// What the client stores of one site between the offline and the online phase.
pub struct ClientSite {
    /// Garbled tables of the instances, in order (see [`ReluEngine`] for the layout).
    tables: BlockBuf,
    /// Bytes of garbled tables (the buffer may end in padding).
    table_bytes: usize,
    /// The output ciphertexts of the instances, in order.
    cts: Vec<u8>,
    /// The client's input labels (ℓ per instance).
    labels: BlockBuf,
    /// The client's mask per instance: its share of the ReLU's value after the site.
    masks: Vec<u64>,
    /// The first instance's number.
    instance_base: u64,
}

impl ClientSite {
    /// Offline: obtain by correlated OT the labels of the client's share `c[j]` of each
    /// instance, then receive and store the garbled tables and the output ciphertexts, and
    /// draw the output masks ([`ClientSite::masks`]) from `rng`, one `u64` per instance.
    /// `choices` is scratch space, reused across sites (and wiped as it is).
    #[allow(clippy::too_many_arguments)]
    pub fn offline<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        engine: &ReluEngine,
        c: &[u64],
        instance_base: u64,
        cot: &mut OtReceiver,
        rng: &mut R,
        choices: &mut ChoiceBits,
    ) -> Result<Self, ProtocolError> {
        let (ell, n, w) = (engine.ell(), c.len(), engine.client_wires());
        let masks: Vec<u64> = (0..n).map(|_| engine.ring.reduce(rng.next_u64())).collect();
        let mut labels = BlockBuf::with_len(n * w);
        let mut received = None;
        if n > 0 {
            let pattern = ChoicePattern::ALL_CHOSEN;
            cot.reserve(ch, labels.len())?;
            choices.clear();
            choices.reserve(w * n);
            for &ci in c {
                choices.push_word(ci, ell);
            }
            if cot.defers() {
                // Silent OT: the choice bits are settled now. The messages of a chunk of
                // tables' OTs come just before it; they are read first, and the labels are
                // expanded slice by slice as the tables are read, so the garbler's stream never
                // waits long for the client to drain it.
                let mut call = cot.receive_deferred(ch, pattern, choices)?;
                received = Some(engine.recv_offline(ch, n, |ch, end, slice| {
                    call.read_messages(ch, end * w)?;
                    Ok(call.fill_read(&mut labels[slice.start * w..slice.end * w])?)
                })?);
                if !call.is_done() {
                    return Err(ProtocolError::Internal(
                        "the tables ended before the site's OTs".into(),
                    ));
                }
            } else {
                cot.receive(ch, pattern, choices, &mut labels)?;
            }
        }
        let (tables, cts) = match received {
            Some(r) => r,
            None => engine.recv_offline(ch, n, |_, _, _| Ok(()))?,
        };
        Ok(ClientSite {
            tables,
            table_bytes: n * engine.table_bytes(),
            cts,
            labels,
            masks,
            instance_base,
        })
    }

    /// The output masks `r[j]`: the client's shares of the instances' values after the site
    /// (the server's are `relu(y) − r`).
    pub fn masks(&self) -> &[u64] {
        &self.masks
    }

    /// Instances of the site.
    pub fn len(&self) -> usize {
        self.masks.len()
    }

    /// Whether the site has no instance.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// Bytes stored between the phases.
    pub fn storage_bytes(&self) -> u64 {
        (self.table_bytes + self.cts.len() + self.labels.len() * 16 + self.masks.len() * 8) as u64
    }

    /// Online: receive the server's labels chunk by chunk, evaluate each chunk from the stored
    /// labels and tables while a helper thread receives the next, derive the client's share of
    /// each value from the output ciphertexts, and send back each share minus the mask
    /// (⌈ℓ/8⌉ bytes each).
    pub fn online<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        engine: &ReluEngine,
    ) -> Result<(), ProtocolError> {
        let (ell, n, w) = (engine.ell(), self.len(), engine.client_wires());
        let (no, nb) = (engine.arith.wires(), engine.output_bytes());
        let bytes_per = ell.div_ceil(8);
        let mut buf = vec![0u8; n * bytes_per];
        let mut u = vec![0u64; CHUNK];
        recv_chunks(ch, n, 16 * ell, CHUNK, |first, m, gb| {
            u[..m]
                .par_chunks_mut(EVAL_PIECE)
                .enumerate()
                .try_for_each_init(
                    || zeroed_blocks(EVAL_PIECE * no),
                    |out, (k, u)| {
                        let (f, p) = (first + k * EVAL_PIECE, u.len());
                        let gb = &gb[(f - first) * ell..(f - first + p) * ell];
                        let instance = self.instance_base + f as u64;
                        let out = &mut out[..p * no];
                        let ev = &self.labels[f * w..(f + p) * w];
                        engine.evaluate(gb, ev, &self.tables, f, instance, out)?;
                        let cts = &self.cts[f * nb..(f + p) * nb];
                        engine.arith.eval(instance, out, cts, u)
                    },
                )?;
            let sent = buf[first * bytes_per..(first + m) * bytes_per].chunks_exact_mut(bytes_per);
            for ((b, &u), &r) in sent.zip(&u[..m]).zip(&self.masks[first..first + m]) {
                let d = engine.ring.reduce(u.wrapping_sub(r));
                b.copy_from_slice(&d.to_le_bytes()[..bytes_per]);
            }
            Ok(())
        })?;
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
            shares: vec![7, 8],
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
