//! One ReLU site, each party's offline and online step: correlated OT for the client's input
//! labels (IKNP or SoftSpoken, [`OtSender`]/[`OtReceiver`]) and batched garbling (half gates or
//! three-halves, [`Scheme`]), streamed in chunks so memory stays bounded. The network protocol
//! ([`super::server`], [`super::client`]) and `pibench relu-bench` both run exactly these steps,
//! whatever the scheme and the OT: the two differ only inside [`ReluEngine`]'s garble, receive
//! and evaluate calls and inside the OT objects.
//!
//! Wire order of one ReLU instance (see `gc::relu`): garbler input `a` (ℓ bits, the server's
//! share); evaluator inputs `c` (ℓ bits, the client's share) then `r` (ℓ bits, the client's
//! fresh output mask); output `relu(trunc(a + c)) − r` (ℓ bits). The ℓ output bits of one
//! instance are carried as one `u64` word (bit i = output wire i), so decoding is one XOR per
//! instance, and travel back as ⌈ℓ/8⌉ bytes.
//!
//! The client's output mask needs no chosen bits: where the OT makes random choices cheaper
//! (SoftSpoken: one bit per OT less), its `ℓ` mask wires take the OT's random choice bits and
//! the mask is whatever they are; with IKNP, where they cost the same, the mask is drawn from
//! the client's offline rng (one `u64` per kept element, as a seeded replay expects).

use rand_core::{CryptoRng, RngCore};

use super::ProtocolError;
use crate::crypto::block::{blocks_as_words, blocks_as_words_mut, zeroed_blocks};
use crate::crypto::buffer::{prefault, BlockBuf};
use crate::crypto::ot::{ChoiceBits, ChoicePattern, OtReceiver, OtSender};
use crate::crypto::prg::Prg;
use crate::crypto::{Block, BlockChannel};
use crate::gc::batch::{recv_chunks, DEFAULT_STREAM_CHUNK as CHUNK};
use crate::gc::circuit::bits_to_words;
use crate::gc::halfgates::encode_words;
use crate::gc::threehalves::instance_words;
use crate::gc::{
    relu_circuit, Circuit, Delta, Evaluator, EvaluatorLabels, Garbler, GarblerLabels, GcError,
    Scheme, ThEvaluator, ThGarbler,
};
use crate::net::Channel;
use crate::ring::Ring;
use core::ops::Range;

/// Instances per slice of a chunk of tables the client receives: at ℓ = 64, the 65,536 OTs of
/// one silent-OT chunk and about 2.2 MB of three-halves tables, so that expanding one chunk's
/// labels between two slices never leaves more unread on the socket than its buffers hold.
const SLICE: usize = 512;

/// The ReLU circuit of one ring and truncation under one garbling scheme, shared by garbler and
/// evaluator.
///
/// Garbled tables are kept in block buffers whatever the scheme: half-gates tables are
/// `2 · and_count` blocks per ReLU, three-halves tables [`instance_words`]`(and_count)` words
/// per ReLU seen through the buffer's words (the last block of a buffer may carry 8 bytes of
/// padding, never sent nor counted).
pub struct ReluEngine {
    circuit: Circuit,
    ring: Ring,
    scheme: Scheme,
}

impl ReluEngine {
    /// The engine for ReLUs on `ring` truncating by `trunc` bits, garbled with `scheme`.
    pub fn new(ring: Ring, trunc: u32, scheme: Scheme) -> Result<Self, ProtocolError> {
        let circuit = relu_circuit(ring.ell as usize, trunc as usize)?;
        Ok(ReluEngine {
            circuit,
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

    /// Table elements per ReLU: blocks for half gates, words for three-halves.
    fn table_units(&self) -> usize {
        match self.scheme {
            Scheme::HalfGates => 2 * self.circuit.and_count(),
            Scheme::ThreeHalves => instance_words(self.circuit.and_count()),
        }
    }

    /// Which of the client's `2ℓ` input wires per ReLU take chosen OT bits when random ones are
    /// cheaper: its share's `ℓ` (then come the mask's `ℓ`, whose bits the OT picks at random).
    pub fn choice_pattern(&self) -> ChoicePattern {
        ChoicePattern {
            period: 2 * self.ell(),
            chosen: self.ell(),
        }
    }

    /// Garbles `n = lsb.len() / ℓ` instances numbered from `instance_base`, the server's
    /// zero-labels drawn from `gb_labels` and the client's from `ev` chunk by chunk, and
    /// streams their tables to `ch` in chunks, one chunk while the next is garbled;
    /// `control_seed` keys the three-halves control randomness (secret, fresh; unused by half
    /// gates).
    #[allow(clippy::too_many_arguments)]
    fn garble_stream<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        delta: &Delta,
        control_seed: Block,
        gb_labels: &mut Prg,
        ev: EvaluatorLabels<'_>,
        instance_base: u64,
        lsb: &mut [bool],
    ) -> Result<(), ProtocolError> {
        let (c, base) = (&self.circuit, instance_base);
        let drawn = GarblerLabels::Drawn(gb_labels);
        match self.scheme {
            Scheme::HalfGates => {
                Garbler::new(c, delta).garble_stream(ch, drawn, ev, base, lsb, CHUNK)?
            }
            Scheme::ThreeHalves => ThGarbler::new(c, delta, control_seed)
                .garble_stream(ch, drawn, ev, base, lsb, CHUNK)?,
        };
        Ok(())
    }

    /// Receives the tables of `n` ReLUs into a fresh buffer, in the chunks
    /// [`ReluEngine::garble_stream`] sends and each in slices of [`SLICE`] instances, calling
    /// `before(ch, end, slice)` before the tables of the instances in `slice`, where `end` is
    /// the end of their chunk: what the garbler sent ahead of a chunk's tables is read there,
    /// and work on the chunk can be spread over its slices.
    fn recv_tables<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        n: usize,
        mut before: impl FnMut(&mut C, usize, Range<usize>) -> Result<(), ProtocolError>,
    ) -> Result<BlockBuf, ProtocolError> {
        fn slices<C: Channel + ?Sized, T>(
            ch: &mut C,
            tables: &mut [T],
            u: usize,
            before: &mut impl FnMut(&mut C, usize, Range<usize>) -> Result<(), ProtocolError>,
            mut recv: impl FnMut(&mut C, &mut [T]) -> Result<u64, GcError>,
        ) -> Result<(), ProtocolError> {
            for (i, chunk) in tables.chunks_mut(CHUNK * u).enumerate() {
                let end = i * CHUNK + chunk.len() / u;
                for (k, slice) in chunk.chunks_mut(SLICE * u).enumerate() {
                    let i0 = i * CHUNK + k * SLICE;
                    before(ch, end, i0..i0 + slice.len() / u)?;
                    prefault(slice);
                    recv(ch, slice)?;
                }
            }
            Ok(())
        }
        let u = self.table_units();
        match self.scheme {
            Scheme::HalfGates => {
                let mut tables = BlockBuf::with_len(n * u);
                let evaluator = Evaluator::new(&self.circuit);
                slices(ch, &mut tables, u, &mut before, |ch, t| {
                    evaluator.recv_tables(ch, t)
                })?;
                Ok(tables)
            }
            Scheme::ThreeHalves => {
                let mut tables = BlockBuf::with_len((n * u).div_ceil(2));
                let evaluator = ThEvaluator::new(&self.circuit);
                let words = &mut blocks_as_words_mut(&mut tables)[..n * u];
                slices(ch, words, u, &mut before, |ch, t| {
                    evaluator.recv_tables(ch, t)
                })?;
                Ok(tables)
            }
        }
    }

    /// Evaluates instances `first..first + m` (`m = lsb.len() / ℓ`) of the stored `tables` on
    /// the server's labels `gb` and the client's `ev`.
    fn evaluate(
        &self,
        gb: &[Block],
        ev: &[Block],
        tables: &[Block],
        first: usize,
        instance: u64,
        lsb: &mut [bool],
    ) -> Result<(), GcError> {
        let (u, m) = (self.table_units(), lsb.len() / self.ell());
        match self.scheme {
            Scheme::HalfGates => Evaluator::new(&self.circuit).eval_batch_par(
                gb,
                ev,
                &tables[first * u..(first + m) * u],
                instance,
                lsb,
            )?,
            Scheme::ThreeHalves => ThEvaluator::new(&self.circuit).eval_batch_par(
                gb,
                ev,
                &blocks_as_words(tables)[first * u..(first + m) * u],
                instance,
                lsb,
            )?,
        };
        Ok(())
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
    /// here, `K ⊕ bΔ` at the client; its mask bits random where [`OtSender::random_is_cheaper`]),
    /// then garble the instances (numbered from `instance_base`) and stream their tables to the
    /// client, one chunk while the next is garbled.
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
        let ell = engine.ell();
        let pattern = if cot.random_is_cheaper() {
            engine.choice_pattern()
        } else {
            ChoicePattern::ALL_CHOSEN
        };
        // SoftSpoken's and silent OT's outputs are computed chunk by chunk as they are
        // garbled, from the receiver's message held until then (SoftSpoken: a quarter of
        // their size; silent OT: its choice corrections, the chunks' messages going out with
        // the tables); IKNP hands them all out at once.
        let defer = n > 0 && cot.defers();
        let mut ev_zero = BlockBuf::with_len(if defer { 0 } else { n * 2 * ell });
        let mut deferred = None;
        if defer {
            deferred = Some(cot.send_deferred(ch, pattern, n * 2 * ell)?);
        } else if n > 0 {
            cot.send(ch, pattern, &mut ev_zero)?;
        }
        let label_seed = Block::random(rng);
        let mut decode = Vec::new();
        if n > 0 {
            // The server's zero-labels, drawn as each chunk is garbled (as online, from the seed).
            let mut gb_labels = Prg::from_seed(label_seed);
            let mut lsb = vec![false; n * ell];
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
                &mut lsb,
            );
            zeroize::Zeroize::zeroize(&mut control_seed.0);
            garbled?;
            if deferred.as_ref().is_some_and(|d| d.remaining() != 0) {
                return Err(ProtocolError::Internal(
                    "the site was garbled before its OTs ran out".into(),
                ));
            }
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
        let mut zero = zeroed_blocks(CHUNK * ell);
        let mut labels = zeroed_blocks(CHUNK * ell);
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
    /// Garbled tables of the instances, in order (see [`ReluEngine`] for the layout).
    tables: BlockBuf,
    /// Bytes of garbled tables (the buffer may end in padding).
    table_bytes: usize,
    /// The client's input labels (`2ℓ` per instance).
    labels: BlockBuf,
    /// The first instance's number.
    instance_base: u64,
    /// Instances.
    n: usize,
}

impl ClientSite {
    /// Offline: obtain by correlated OT the labels of the client's inputs to each instance (its
    /// share `c[j]` and a fresh output mask), then receive and store the garbled tables.
    /// Returns the site and the output masks `relu_out_mask[j]` (ℓ bits each): the OT's random
    /// choice bits where [`OtReceiver::random_is_cheaper`], else drawn from `rng`, one `u64`
    /// per instance. `choices` is scratch space, reused across sites (and wiped as it is).
    #[allow(clippy::too_many_arguments)]
    pub fn offline<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        engine: &ReluEngine,
        c: &[u64],
        instance_base: u64,
        cot: &mut OtReceiver,
        rng: &mut R,
        choices: &mut ChoiceBits,
    ) -> Result<(Self, Vec<u64>), ProtocolError> {
        let (ell, n) = (engine.ell(), c.len());
        let random = cot.random_is_cheaper();
        let mut relu_out_mask: Vec<u64> = if random {
            vec![0; n]
        } else {
            (0..n).map(|_| engine.ring.reduce(rng.next_u64())).collect()
        };
        let mut labels = BlockBuf::with_len(n * 2 * ell);
        let mut tables = None;
        if n > 0 {
            let pattern = if random {
                engine.choice_pattern()
            } else {
                ChoicePattern::ALL_CHOSEN
            };
            cot.reserve(ch, labels.len())?;
            // Packed, the bits of instance j are its share then its mask, ℓ bits each: at
            // ℓ = 64 the words themselves.
            choices.clear();
            choices.reserve(2 * ell * n);
            for (&ci, &ri) in c.iter().zip(&relu_out_mask) {
                choices.push_word(ci, ell);
                choices.push_word(ri, ell);
            }
            if cot.defers() {
                // Silent OT: the choice bits are settled now. The messages of a chunk of
                // tables' OTs come just before it; they are read first, and the labels are
                // expanded slice by slice as the tables are read, so the garbler's stream never
                // waits long for the client to drain it.
                let mut call = cot.receive_deferred(ch, pattern, choices)?;
                let w = 2 * ell;
                tables = Some(engine.recv_tables(ch, n, |ch, end, slice| {
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
            if random {
                for (j, r) in relu_out_mask.iter_mut().enumerate() {
                    *r = choices.word_at(2 * ell * j + ell, ell);
                }
            }
        }
        let tables = match tables {
            Some(t) => t,
            None => engine.recv_tables(ch, n, |_, _, _| Ok(()))?,
        };
        let site = ClientSite {
            tables,
            table_bytes: n * engine.table_bytes(),
            labels,
            instance_base,
            n,
        };
        Ok((site, relu_out_mask))
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
        (self.table_bytes + self.labels.len() * 16) as u64
    }

    /// Online: receive the server's labels chunk by chunk, evaluate each chunk from the stored
    /// labels and tables while a helper thread receives the next, and send back the output
    /// colour words (⌈ℓ/8⌉ bytes each).
    pub fn online<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        engine: &ReluEngine,
    ) -> Result<(), ProtocolError> {
        let (ell, n) = (engine.ell(), self.n);
        let mut words = Vec::with_capacity(n);
        let mut lsb = vec![false; CHUNK * ell];
        recv_chunks(ch, n, 16 * ell, CHUNK, |first, m, gb| {
            engine.evaluate(
                gb,
                &self.labels[first * 2 * ell..(first + m) * 2 * ell],
                &self.tables,
                first,
                self.instance_base + first as u64,
                &mut lsb[..m * ell],
            )?;
            words.extend(bits_to_words(&lsb[..m * ell], ell)?);
            Ok(())
        })?;
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
