//! Semi-honest silent OT (Boyle, Couteau, Gilboa, Ishai, Kohl, Rindal, Scholl, CCS 2019) with
//! regular noise and an expand-convolute code (Raghuraman–Rindal–Tanguy, CRYPTO 2023): correlated
//! OTs with random choice bits under the garbler's Δ for a fraction of a bit each, plus one bit
//! per OT whose choice the receiver picks.
//!
//! # Protocol
//!
//! Per *chunk* of `n = 64 · 2^d` OTs:
//! 1. a sparse VOLE ([`pprf`]): [`TREES`] GGM trees of `2^d` leaves give the garbler `v` and the
//!    evaluator `w = v ⊕ e·Δ`, `e` of length `N = 2n` with one 1 per tree; its `TREES · d` base
//!    OTs come from the SoftSpoken extension of the same setup;
//! 2. the LPN compression ([`code`]): the garbler's outputs are `y = H·v`, the evaluator's
//!    `z = H·w = y ⊕ (H·e)·Δ`, and its random choice bits are `x = H·e`, read off as `lsb(z)`.
//!
//! Dual LPN with regular noise says `x` is pseudorandom given `H`. The noise weight follows
//! libOTe's rule for regular noise, `t = −κ / log₂(1 − 2δ)` for the code's (pseudo) minimum
//! distance ratio `δ`: with RRT23's and libOTe's estimate δ = 0.25 for the expand-convolute
//! code of rate 1/2, κ = 128 gives t = 128 (libOTe's `ExConv7x24`, CryProt's default). The
//! same t also puts plain information-set decoding (Prange) at about `(N/n)^t = 2^128`
//! guesses. Chunks are at least [`MIN_DEPTH`] deep (noise blocks of 512, `N` ≥ 65,536).
//!
//! A call for `m` OTs hands out ready OTs first; when they run out it generates a chunk just
//! large enough for what remains (at most [`MAX_DEPTH`]: `2^20` OTs, 32 MiB of leaves per
//! party), and keeps what the call does not take for the next call. When fewer than
//! [`SILENT_MIN_OTS`] remain, it runs SoftSpoken (k = [`FALLBACK_K`]) for them instead: a
//! chunk's fixed cost (`TREES · (2d + 1)` blocks and an extra round trip) only pays at large
//! counts. Both parties decide the same way from the count and what is ready.
//!
//! Chosen choice bits are derandomized exactly as for SoftSpoken
//! ([`choice_corrections`](super::choice_corrections)): one bit each, after the random OTs.
//!
//! # Security
//!
//! Semi-honest. The garbler's view is SoftSpoken's plus nothing (it only receives the choice
//! corrections, masked by pseudorandom bits); the evaluator's view is the level sums off its
//! paths (pseudorandom given the punctured PRF) and `Δ ⊕ ⊕ v` per tree (masked by the leaf it
//! lacks). As for IKNP's and SoftSpoken's correlated mode, the labels are only ever fed to the
//! garbling scheme's tweakable circular correlation-robust hash. Δ, the leaves and the ready
//! OTs are wiped when the parties are dropped; after an error drop both ends.

pub mod code;
pub mod pprf;

use core::fmt;

use rand_core::{CryptoRng, RngCore};

use self::code::ExConvCode;
use self::pprf::{vole_receive, vole_send, wipe, TREES};
use super::iknp::{debug_party, recv_count, send_count};
use super::{
    apply_choice_corrections, choice_corrections, ChoicePattern, OtError, SoftSpokenReceiver,
    SoftSpokenSender,
};
use crate::crypto::{Block, Prg};
use crate::net::Channel;

/// The SoftSpoken parameter of the base OTs and of the small-count fallback.
pub const FALLBACK_K: usize = 8;
/// The smallest tree depth: chunks of `64 · 2^9 = 32,768` OTs.
pub const MIN_DEPTH: usize = 9;
/// The largest tree depth: chunks of `2^18` OTs.
pub const MAX_DEPTH: usize = 12;
/// Fewer OTs than this still missing in a call are run with SoftSpoken (see the module doc and
/// the README for the measurement behind it).
pub const SILENT_MIN_OTS: usize = 1 << 15;

/// OTs of a chunk of `depth`-deep trees.
pub const fn chunk_ots(depth: usize) -> usize {
    (TREES << depth) / 2
}

/// Bytes one chunk of `depth`-deep trees moves: `(receiver → sender, sender → receiver)`. The
/// receiver sends the [`FALLBACK_K`] SoftSpoken extension of the `TREES · depth` base OTs with
/// random choices (its 8-byte count, `128/k − 1` columns of the call padded to 128 OTs); the
/// sender sends two blocks per base OT and one per tree.
pub const fn chunk_bytes(depth: usize) -> (u64, u64) {
    let base = TREES * depth;
    let columns = 128 / FALLBACK_K - 1;
    (
        (8 + columns * base.div_ceil(128) * 16) as u64,
        (TREES * (2 * depth + 1) * 16) as u64,
    )
}

/// The depth of the chunk generated when `need` OTs are missing and no ready OT is left
/// (`need` at least [`SILENT_MIN_OTS`]).
pub fn depth_for(need: usize) -> usize {
    (MIN_DEPTH..=MAX_DEPTH)
        .find(|&d| chunk_ots(d) >= need)
        .unwrap_or(MAX_DEPTH)
}

/// The protocol name in count errors.
const NAME: &str = "silent OT";

/// Generated OTs of the current chunk, the first `pos` of them handed out.
struct Ready {
    /// `TREES · 2^d` blocks; the chunk's OTs are the first half after compression.
    buf: Vec<Block>,
    pos: usize,
    end: usize,
}

impl Ready {
    fn new() -> Self {
        Ready {
            buf: Vec::new(),
            pos: 0,
            end: 0,
        }
    }

    /// Hands out up to `out.len()` ready OTs into the front of `out`; returns how many.
    fn take(&mut self, out: &mut [Block]) -> usize {
        let k = (self.end - self.pos).min(out.len());
        out[..k].copy_from_slice(&self.buf[self.pos..self.pos + k]);
        self.pos += k;
        k
    }

    /// The buffer for a chunk of `depth`, marked empty until [`Ready::fill`].
    fn prepare(&mut self, depth: usize) -> &mut [Block] {
        self.buf.resize(TREES << depth, Block::ZERO);
        self.pos = 0;
        self.end = 0;
        &mut self.buf[..TREES << depth]
    }

    /// Compresses the chunk's sparse VOLE into its OTs.
    fn fill(&mut self, depth: usize) {
        let n = chunk_ots(depth);
        ExConvCode::new(n).compress(&mut self.buf[..2 * n]);
        self.end = n;
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        wipe(&mut self.buf);
    }
}

/// The silent-OT sender: the garbler, holding Δ.
pub struct SilentSender {
    base: SoftSpokenSender,
    delta: Block,
    rng: Prg,
    ready: Ready,
    /// Level-sum OTs run so far: the next tweak.
    tweaks: u64,
    count: u64,
    chunks: u64,
}

impl Drop for SilentSender {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.delta.0);
    }
}

/// The silent-OT receiver: the evaluator.
pub struct SilentReceiver {
    base: SoftSpokenReceiver,
    ready: Ready,
    /// The random choice bits of one call.
    random: Vec<bool>,
    tweaks: u64,
    count: u64,
    chunks: u64,
}

impl Drop for SilentReceiver {
    fn drop(&mut self) {
        for b in self.random.iter_mut() {
            zeroize::Zeroize::zeroize(b);
        }
    }
}

impl fmt::Debug for SilentSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_party(f, "SilentSender", None, self.count)
    }
}

impl fmt::Debug for SilentReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_party(f, "SilentReceiver", None, self.count)
    }
}

impl SilentSender {
    /// Runs the SoftSpoken setup (128 base OTs) for the global offset `delta` (lsb 1).
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        delta: Block,
        rng: &mut R,
    ) -> Result<Self, OtError> {
        let base = SoftSpokenSender::setup(ch, FALLBACK_K, delta, rng)?;
        Ok(SilentSender {
            base,
            delta,
            rng: Prg::from_seed(Block::random(rng)),
            ready: Ready::new(),
            tweaks: 0,
            count: 0,
            chunks: 0,
        })
    }

    /// The global offset.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// Chunks generated so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Runs `out.len()` correlated OTs: `out[j]` becomes the zero-label `q_j`; the receiver
    /// gets `q_j ⊕ b_j·Δ` for its choice `b_j` (chosen where `pattern` says so, random
    /// elsewhere).
    pub fn send<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        out: &mut [Block],
    ) -> Result<(), OtError> {
        let n = out.len();
        if n == 0 {
            return Ok(());
        }
        recv_count(ch, NAME, n)?;
        let mut filled = 0;
        while filled < n {
            filled += self.ready.take(&mut out[filled..]);
            let need = n - filled;
            if need == 0 {
                break;
            }
            if need < SILENT_MIN_OTS {
                self.base
                    .send(ch, ChoicePattern::ALL_RANDOM, &mut out[filled..])?;
                break;
            }
            let depth = depth_for(need);
            let v = self.ready.prepare(depth);
            vole_send(
                ch,
                &mut self.base,
                self.delta,
                depth,
                self.tweaks,
                &mut self.rng,
                v,
            )?;
            self.ready.fill(depth);
            self.tweaks += (TREES * depth) as u64;
            self.chunks += 1;
        }
        let chosen = pattern.count_in(0, n);
        if chosen > 0 {
            let mut d = vec![0u8; chosen.div_ceil(8)];
            ch.recv(&mut d)?;
            apply_choice_corrections(pattern, 0, &d, self.delta, out);
        }
        self.count += n as u64;
        Ok(())
    }
}

impl SilentReceiver {
    /// Runs the SoftSpoken setup as its receiver.
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        rng: &mut R,
    ) -> Result<Self, OtError> {
        Ok(SilentReceiver {
            base: SoftSpokenReceiver::setup(ch, FALLBACK_K, rng)?,
            ready: Ready::new(),
            random: Vec::new(),
            tweaks: 0,
            count: 0,
            chunks: 0,
        })
    }

    /// Chunks generated so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Runs `choices.len()` correlated OTs: `out[j]` becomes the sender's `q_j ⊕ b_j·Δ`. Where
    /// `pattern` marks OT `j` as chosen, `b_j = choices[j]` as given; elsewhere `choices[j]` is
    /// overwritten with the random bit the OT delivered. `out` must be as long as `choices`.
    pub fn receive<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        choices: &mut [bool],
        out: &mut [Block],
    ) -> Result<(), OtError> {
        let n = choices.len();
        if out.len() != n {
            return Err(OtError::LengthMismatch {
                choices: n,
                outputs: out.len(),
            });
        }
        if n == 0 {
            return Ok(());
        }
        send_count(ch, n)?;
        self.random.clear();
        self.random.resize(n, false);
        let mut filled = 0;
        while filled < n {
            let k = self.ready.take(&mut out[filled..]);
            for (r, o) in self.random[filled..filled + k]
                .iter_mut()
                .zip(&out[filled..])
            {
                *r = o.lsb();
            }
            filled += k;
            let need = n - filled;
            if need == 0 {
                break;
            }
            if need < SILENT_MIN_OTS {
                self.base.receive(
                    ch,
                    ChoicePattern::ALL_RANDOM,
                    &mut self.random[filled..],
                    &mut out[filled..],
                )?;
                break;
            }
            let depth = depth_for(need);
            let w = self.ready.prepare(depth);
            vole_receive(ch, &mut self.base, depth, self.tweaks, w)?;
            self.ready.fill(depth);
            self.tweaks += (TREES * depth) as u64;
            self.chunks += 1;
        }
        let random = &self.random;
        let d = choice_corrections(pattern, 0, |j| random[j], choices);
        if !d.is_empty() {
            ch.send(&d)?;
        }
        ch.flush()?;
        self.count += n as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ot::test_support::{
        call_bytes, check_call, mismatched_counts_are_errors, ones, random_bits, run_call,
        setup_pair, Sender,
    };
    use crate::crypto::ot::{OtKind, OtReceiver, OtSender};
    use crate::net::{mem_pair, MemChannel, Metered};
    use std::time::Duration;

    /// Both parties of silent OT, set up over memory.
    fn pair() -> (Sender<MemChannel>, OtReceiver, MemChannel) {
        let (a, b) = mem_pair(Duration::from_secs(60));
        setup_pair(OtKind::Silent, a, b)
    }

    /// The chunks the two parties have generated.
    fn chunks(s: &OtSender, r: &OtReceiver) -> (u64, u64) {
        match (s, r) {
            (OtSender::Silent(s), OtReceiver::Silent(r)) => (s.chunks(), r.chunks()),
            _ => unreachable!("a silent pair"),
        }
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_ots(MIN_DEPTH), 1 << 15);
        assert_eq!(chunk_ots(MAX_DEPTH), 1 << (MAX_DEPTH + 6));
        assert_eq!(depth_for(1), MIN_DEPTH);
        assert_eq!(depth_for(chunk_ots(11)), 11);
        assert_eq!(depth_for(chunk_ots(11) + 1), 12);
        assert_eq!(depth_for(usize::MAX), MAX_DEPTH);
    }

    /// z = y ⊕ x·Δ for every output, over calls that take from a chunk, span chunks, fall back
    /// to SoftSpoken and mix chosen and random choices; the random bits are balanced.
    #[test]
    fn correlation_and_choices_across_chunks_and_fallback() {
        let (mut sender, mut r, mut chr) = pair();
        let d = sender.2;
        let mut rng = Prg::from_entropy();
        let calls = [
            // A fresh chunk of 2^16, partly used.
            (40_000usize, ChoicePattern::ALL_RANDOM),
            // The rest of it, then a SoftSpoken tail.
            (
                25_536 + 1000,
                ChoicePattern {
                    period: 128,
                    chosen: 64,
                },
            ),
            // Several chunks, chosen bits throughout.
            (
                chunk_ots(MAX_DEPTH) + 70_000,
                ChoicePattern {
                    period: 10,
                    chosen: 3,
                },
            ),
            (5, ChoicePattern::ALL_CHOSEN),
        ];
        for (n, pattern) in calls {
            let call;
            (sender, call) = run_call(sender, &mut r, &mut chr, pattern, random_bits(n, &mut rng));
            let random = check_call(&call, d, pattern, &format!("n {n}"));
            let (ones, random) = (ones(&random), random.len());
            if random > 1000 {
                assert!(
                    (random * 45 / 100..random * 55 / 100).contains(&ones),
                    "n {n}: {ones} of {random}"
                );
            }
        }
        let (s_chunks, r_chunks) = chunks(&sender.0, &r);
        assert_eq!(s_chunks, r_chunks);
        // 2^16 for the first call; the largest and 2^17 for the third; the last takes ready
        // OTs.
        assert_eq!(s_chunks, 3);
    }

    /// Two sessions draw different random choice bits and outputs (fresh randomness).
    #[test]
    fn fresh_sessions_differ() {
        let mut runs = Vec::new();
        for _ in 0..2 {
            let (sender, mut r, mut chr) = pair();
            let want = vec![false; SILENT_MIN_OTS];
            let ((s, ..), call) =
                run_call(sender, &mut r, &mut chr, ChoicePattern::ALL_RANDOM, want);
            assert_eq!(chunks(&s, &r).1, 1);
            runs.push((call.choices, call.y));
        }
        assert_ne!(runs[0].0, runs[1].0);
        assert_ne!(runs[0].1, runs[1].1);
    }

    /// What a chunk costs on the wire: the count, the base OTs, `TREES · (2d + 1)` blocks, and
    /// one bit per chosen OT.
    #[test]
    fn bytes_of_a_chunk() {
        let (a, b) = mem_pair(Duration::from_secs(60));
        let (sender, r, chr) = setup_pair(OtKind::Silent, Metered::new(a), Metered::new(b));
        let n = chunk_ots(MIN_DEPTH);
        let pattern = ChoicePattern {
            period: 128,
            chosen: 64,
        };
        let (recv, sent) = call_bytes(sender, r, chr, pattern, n);
        let base = TREES * MIN_DEPTH;
        // Counts of the call and of the base OTs; SoftSpoken's 15 bits per random OT (padded
        // to 128); the corrections.
        assert_eq!(recv, (8 + 8 + 15 * base.div_ceil(128) * 16 + n / 16) as u64);
        assert_eq!(sent, (TREES * (2 * MIN_DEPTH + 1) * 16) as u64);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (sender, mut r, mut chr) = pair();
        mismatched_counts_are_errors(sender, &mut r, &mut chr);
        let OtReceiver::Silent(r) = r else {
            unreachable!("a silent pair")
        };
        assert_eq!(format!("{r:?}"), "SilentReceiver { ots_run: 3, .. }");
        let (mut a, _b) = mem_pair(Duration::from_millis(100));
        assert!(matches!(
            SilentSender::setup(&mut a, Block(2), &mut Prg::from_entropy()),
            Err(OtError::InvalidDelta)
        ));
    }
}
