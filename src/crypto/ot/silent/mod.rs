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
//! large enough for what remains (at most [`MAX_DEPTH`]: `2^16` OTs, 2 MiB of leaves per
//! party), and keeps what the call does not take for the next call. The largest chunk is the
//! one whose leaves fit the L2 cache (2 MiB per core on the machines measured): the code's
//! expander reads its parity half at random, which at `2^18` OTs per chunk cost three times
//! as much per OT, missing the cache on most reads. Smaller chunks cost bytes, as each carries
//! its trees' level sums and base OTs: 5.9 bits per OT at `2^16` against 1.7 at `2^18`
//! ([`chunk_bytes`]), 47 B instead of 14 B per ReLU's 64 OTs. When fewer than
//! [`SILENT_MIN_OTS`] remain, it runs SoftSpoken (k = [`FALLBACK_K`]) for them instead: a
//! chunk's fixed cost (`TREES · (2d + 1)` blocks and an extra round trip) only pays at large
//! counts. Both parties decide the same way from the count and what is ready.
//!
//! # Rounds
//!
//! A chunk's only message from the evaluator is the SoftSpoken extension of its base OTs, which
//! depends on nothing the garbler sends. [`SilentReceiver::reserve`] (with
//! [`SilentSender::reserve`] at the same point) therefore runs the base OTs of every chunk a
//! known number of OTs will need in one flight, before the first of them; the chunks themselves
//! are generated later, when calls need them, and each costs the garbler one message and the
//! evaluator none. Each call's count travels with its choice corrections, after its OTs (before
//! them in a deferred call, below). A session that reserves its whole count up front so runs
//! its correlated OTs in one round trip plus the one flight per call of corrections, whatever
//! the number of chunks; without a reservation every chunk costs a round trip.
//!
//! Chosen choice bits are derandomized exactly as for SoftSpoken
//! (`choice_corrections`): one bit each, after the random OTs.
//!
//! # Deferred calls: corrections first
//!
//! The evaluator's random choice bits `x = H·e` depend only on its puncture points, which its
//! base OTs' random choices fix at the reservation, and on the public code: it can work them
//! out before any chunk exists (`noise_choice_bits`, all of a call's chunks of one depth at
//! once, bit-sliced). A *deferred* call ([`SilentReceiver::receive_deferred`],
//! [`SilentSender::send_deferred`]) uses this to turn the order around: the evaluator sends the
//! count and the corrections first; the garbler then generates each chunk only when its OTs
//! are asked for ([`SilentDeferredSend::fill`]) and hands its message to the caller, which
//! sends it ahead of whatever it garbled with those OTs; the evaluator reads the message there
//! ([`SilentDeferredReceive::read_messages`]) and expands its labels when it likes
//! ([`SilentDeferredReceive::fill_read`]). The garbler never holds a call's outputs, garbling
//! starts without waiting for the evaluator's OTs, the two parties' OT work overlaps the
//! transfer of the tables, and a call takes one flight fewer. The bytes are the same.
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
use self::pprf::{message_blocks, vole_message, vole_receive, vole_receive_message, wipe, TREES};
use super::iknp::{debug_party, recv_count, send_count};
use super::{
    apply_choice_corrections, choice_corrections, ChoiceBits, ChoicePattern, OtError,
    SoftSpokenReceiver, SoftSpokenSender,
};
use crate::crypto::block::SecretBlocks;
use crate::crypto::{Block, BlockChannel, Prg};
use crate::net::Channel;

/// The SoftSpoken parameter of the base OTs and of the small-count fallback. k = 4 rather than
/// 8: its PRG work per OT is an eighth (⌈128/k⌉·2^k/128 blocks: 4 against 32), which took
/// ~0.1 s of CPU per 100k ReLUs off the base OTs of the trees, for 16 more bits per base OT
/// (5 B per ReLU; session 8, `relu-bench --relus 100000`: 9.5–9.9 against 9.8–11.7 µs).
pub const FALLBACK_K: usize = 4;
/// The smallest tree depth: chunks of `64 · 2^9 = 32,768` OTs.
pub const MIN_DEPTH: usize = 9;
/// The largest tree depth: chunks of `2^16` OTs, whose leaves fit the L2 cache (see the
/// module doc).
pub const MAX_DEPTH: usize = 10;
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

/// The depths of the chunks that cover `need` OTs beyond those already ready or planned: chunks
/// as large as [`depth_for`] picks while at least [`SILENT_MIN_OTS`] are missing (a smaller
/// tail is left to SoftSpoken at the call that meets it).
pub fn plan(mut need: usize) -> Vec<usize> {
    let mut depths = Vec::new();
    while need >= SILENT_MIN_OTS {
        let d = depth_for(need);
        depths.push(d);
        need = need.saturating_sub(chunk_ots(d));
    }
    depths
}

/// The protocol name in count errors.
const NAME: &str = "silent OT";

/// Chunks planned by a reservation, whose base COTs already ran: their depths in order, and
/// (per party) the base COTs' outputs in the same order from `pos` on.
#[derive(Default)]
struct Planned {
    depths: std::collections::VecDeque<usize>,
    pos: usize,
}

impl Planned {
    /// OTs the planned chunks will deliver.
    fn ots(&self) -> usize {
        self.depths.iter().map(|&d| chunk_ots(d)).sum()
    }

    /// How many of a deferred call's `n` OTs come from the SoftSpoken tail when `ready` are
    /// ready: those that neither they nor the plan cover (both parties compute it alike, after
    /// the call's reservation, so it is below [`SILENT_MIN_OTS`]).
    fn tail_len(&self, ready: usize, n: usize) -> usize {
        n.saturating_sub(ready + self.ots())
    }

    /// The planned chunks in order, as [`Planned::next`] will hand them out, without taking
    /// them.
    fn iter(&self) -> impl Iterator<Item = (usize, core::ops::Range<usize>)> + '_ {
        self.depths.iter().scan(self.pos, |pos, &d| {
            let r = *pos..*pos + TREES * d;
            *pos = r.end;
            Some((d, r))
        })
    }

    /// The chunks a reservation of `n` OTs adds when `ready` are generated and not handed out
    /// (the same answer on both sides, which is what keeps their base COTs in step): their
    /// depths and how many base COTs they take; `None` when nothing is missing.
    fn extension(&self, ready: usize, n: usize) -> Option<(Vec<usize>, usize)> {
        let depths = plan(n.saturating_sub(ready + self.ots()));
        let m = depths.iter().map(|&d| TREES * d).sum();
        (!depths.is_empty()).then_some((depths, m))
    }

    /// Appends a reservation's chunks, whose base COTs now start at index 0 (the kept ones of
    /// earlier reservations moved to the front).
    fn extend(&mut self, depths: Vec<usize>) {
        self.pos = 0;
        self.depths.extend(depths);
    }

    /// The next chunk's depth and the range of its base COTs.
    fn next(&mut self) -> Option<(usize, core::ops::Range<usize>)> {
        let d = self.depths.pop_front()?;
        let r = self.pos..self.pos + TREES * d;
        self.pos = r.end;
        Some((d, r))
    }
}

/// Generated OTs of the current chunk, the first `pos` of them handed out.
struct Ready {
    /// `TREES · 2^d` blocks; the chunk's OTs are the first half after compression.
    buf: Vec<Block>,
    pos: usize,
    end: usize,
    /// Whether the OTs' lsb is cleared as they are handed out: the sender's, whose leaves keep
    /// theirs ([`vole_message`]).
    clear_lsb: bool,
}

impl Ready {
    fn new(clear_lsb: bool) -> Self {
        Ready {
            buf: Vec::new(),
            pos: 0,
            end: 0,
            clear_lsb,
        }
    }

    /// OTs generated and not handed out yet.
    fn left(&self) -> usize {
        self.end - self.pos
    }

    /// Hands out up to `out.len()` ready OTs into the front of `out`; returns how many.
    fn take(&mut self, out: &mut [Block]) -> usize {
        let k = (self.end - self.pos).min(out.len());
        let ready = &self.buf[self.pos..self.pos + k];
        if self.clear_lsb {
            for (o, r) in out.iter_mut().zip(ready) {
                *o = Block(r.0 & !1);
            }
        } else {
            out[..k].copy_from_slice(ready);
        }
        self.pos += k;
        k
    }

    /// The buffer for a chunk of `depth`, marked empty until [`Ready::fill`].
    fn prepare(&mut self, depth: usize) -> &mut [Block] {
        if TREES << depth > self.buf.capacity() {
            // A deeper chunk than before: the old buffer may still hold OTs not handed out.
            let mut old = std::mem::replace(
                &mut self.buf,
                crate::crypto::block::zeroed_blocks(TREES << depth),
            );
            wipe(&mut old);
        }
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

/// Faults in the pages of the part of `out` that `ready`'s next [`Ready::take`] fills, in one
/// system call ([`prefault`](crate::crypto::buffer::prefault)): a call's outputs are fresh
/// memory (a site's labels: hundreds of MB) that would otherwise fault page by page as the
/// copy first writes them.
fn prefault_ready(ready: &Ready, out: &mut [Block]) {
    let k = ready.left().min(out.len());
    crate::crypto::buffer::prefault(&mut out[..k]);
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
    planned: Planned,
    /// The planned chunks' base zero-labels.
    planned_q: Vec<Block>,
    /// Level-sum OTs run so far: the next tweak.
    tweaks: u64,
    count: u64,
    chunks: u64,
}

impl Drop for SilentSender {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.delta.0);
        wipe(&mut self.planned_q);
    }
}

/// The silent-OT receiver: the evaluator.
pub struct SilentReceiver {
    base: SoftSpokenReceiver,
    ready: Ready,
    planned: Planned,
    /// The planned chunks' base choice bits and labels.
    planned_c: Vec<bool>,
    planned_r: Vec<Block>,
    /// The random choice bits of one call.
    random: ChoiceBits,
    tweaks: u64,
    count: u64,
    chunks: u64,
}

impl Drop for SilentReceiver {
    fn drop(&mut self) {
        // `random` wipes itself.
        for b in &mut self.planned_c {
            zeroize::Zeroize::zeroize(b);
        }
        wipe(&mut self.planned_r);
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
            ready: Ready::new(true),
            planned: Planned::default(),
            planned_q: Vec::new(),
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

    /// Makes sure that the next `n` OTs are ready or planned (up to a tail below
    /// [`SILENT_MIN_OTS`]): plans the chunks that cover the rest ([`plan`]) and runs all their
    /// base OTs now, in one flight from the receiver, which calls
    /// [`SilentReceiver::reserve`] with the same `n` at the same point.
    pub fn reserve<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<(), OtError> {
        let Some((depths, m)) = self.planned.extension(self.ready.left(), n) else {
            return Ok(());
        };
        let pos = self.planned.pos;
        let mut q = vec![Block::ZERO; self.planned_q.len() - pos + m];
        q[..self.planned_q.len() - pos].copy_from_slice(&self.planned_q[pos..]);
        let fresh = self.planned_q.len() - pos;
        self.base
            .send(ch, ChoicePattern::ALL_RANDOM, &mut q[fresh..])?;
        wipe(&mut self.planned_q);
        self.planned_q = q;
        self.planned.extend(depths);
        Ok(())
    }

    /// Generates the next chunk: a planned one, or one for `need` OTs with its own base OTs.
    fn chunk<C: Channel + ?Sized>(&mut self, ch: &mut C, need: usize) -> Result<(), OtError> {
        // The chunk's own base OTs, if it needs them (wiped however this ends).
        let mut own = SecretBlocks::default();
        let planned = self.planned.next();
        let depth = match &planned {
            Some((d, _)) => *d,
            None => {
                let d = depth_for(need);
                own = SecretBlocks::zeros(TREES * d);
                self.base.send(ch, ChoicePattern::ALL_RANDOM, &mut own)?;
                d
            }
        };
        let mut msg = Vec::new();
        self.generate(depth, planned.map(|(_, r)| r), &mut own, &mut msg);
        ch.send_blocks(&msg)?;
        ch.flush()?;
        Ok(())
    }

    /// Generates a chunk of `depth` from the planned base OTs in `planned` (or from `own`),
    /// appending its message to `msg`.
    fn generate(
        &mut self,
        depth: usize,
        planned: Option<core::ops::Range<usize>>,
        own: &mut [Block],
        msg: &mut Vec<Block>,
    ) {
        let q = match planned {
            Some(r) => &mut self.planned_q[r],
            None => own,
        };
        let v = self.ready.prepare(depth);
        vole_message(q, self.delta, depth, self.tweaks, &mut self.rng, v, msg);
        if self.planned.depths.is_empty() {
            self.planned_q = Vec::new();
            self.planned.pos = 0;
        }
        self.ready.fill(depth);
        self.tweaks += (TREES * depth) as u64;
        self.chunks += 1;
    }

    /// The deferred form of [`SilentSender::send`] for `n` OTs, the counterpart of
    /// [`SilentReceiver::receive_deferred`]: reserves them ([`SilentSender::reserve`]), runs
    /// the SoftSpoken tail (if any) and reads the receiver's count and choice corrections now;
    /// the chunks are generated later, as [`SilentDeferredSend::fill`] hands the OTs out, and
    /// their messages go with what the caller sends then. The receiver knows its random choice
    /// bits before any chunk exists (see `noise_choice_bits`), so the corrections come
    /// first and no output is ever held for them: a garbler garbles each piece of OTs while it
    /// is in cache, and a call's chunks cost no flight of their own.
    pub fn send_deferred<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        n: usize,
    ) -> Result<SilentDeferredSend<'_>, OtError> {
        self.reserve(ch, n)?;
        let mut tail = SecretBlocks::zeros(self.planned.tail_len(self.ready.left(), n));
        if !tail.is_empty() {
            self.base.send(ch, ChoicePattern::ALL_RANDOM, &mut tail)?;
        }
        let d = self.recv_corrections(ch, pattern, n)?;
        Ok(SilentDeferredSend {
            sender: self,
            call: DeferredCall::new(n, tail),
            pattern,
            d,
        })
    }

    /// Reads a call's count and its choice corrections; counts its OTs.
    fn recv_corrections<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        n: usize,
    ) -> Result<Vec<u8>, OtError> {
        recv_count(ch, NAME, n)?;
        let mut d = vec![0u8; pattern.count_in(0, n).div_ceil(8)];
        if !d.is_empty() {
            ch.recv(&mut d)?;
        }
        self.count += n as u64;
        Ok(d)
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
        let d = self.send_uncorrected(ch, pattern, out)?;
        if !d.is_empty() {
            apply_choice_corrections(pattern, 0, &d, 0, self.delta, out);
        }
        Ok(())
    }

    /// The OTs of [`SilentSender::send`] before the choice corrections, which are returned.
    fn send_uncorrected<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        out: &mut [Block],
    ) -> Result<Vec<u8>, OtError> {
        let n = out.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut filled = 0;
        while filled < n {
            prefault_ready(&self.ready, &mut out[filled..]);
            filled += self.ready.take(&mut out[filled..]);
            let need = n - filled;
            if need == 0 {
                break;
            }
            if need < SILENT_MIN_OTS && self.planned.depths.is_empty() {
                self.base
                    .send(ch, ChoicePattern::ALL_RANDOM, &mut out[filled..])?;
                break;
            }
            self.chunk(ch, need)?;
        }
        // The count comes with the corrections, after the OTs: the chunks' messages need no
        // word from the receiver.
        self.recv_corrections(ch, pattern, n)
    }
}

/// Where a deferred call stands, the same on both sides: its OTs come from chunks (what was
/// ready, then planned chunks in order) up to `n − tail.len()`, then from the SoftSpoken tail
/// computed when the call started.
struct DeferredCall {
    /// OTs of the call.
    n: usize,
    /// OTs handed out so far.
    handed: usize,
    /// The tail's labels (zero-labels at the sender), wiped when the call ends.
    tail: SecretBlocks,
}

impl DeferredCall {
    fn new(n: usize, tail: SecretBlocks) -> Self {
        DeferredCall { n, handed: 0, tail }
    }

    /// OTs not handed out yet.
    fn remaining(&self) -> usize {
        self.n - self.handed
    }

    /// OTs of the call that come from chunks.
    fn ots_from_chunks(&self) -> usize {
        self.n - self.tail.len()
    }

    /// How many of the next `len` OTs come from chunks (the rest from the tail); an error if
    /// the call has fewer than `len` left.
    fn split(&self, len: usize) -> Result<usize, OtError> {
        if len > self.remaining() {
            return Err(OtError::LengthMismatch {
                choices: self.remaining(),
                outputs: len,
            });
        }
        Ok(self.ots_from_chunks().saturating_sub(self.handed).min(len))
    }

    /// Copies the tail's part of a piece (`out[k..]`, after the `k` OTs from chunks) and moves
    /// past the whole piece.
    fn finish(&mut self, out: &mut [Block], k: usize) {
        let t0 = (self.handed + k).saturating_sub(self.ots_from_chunks());
        let rest = out.len() - k;
        out[k..].copy_from_slice(&self.tail[t0..t0 + rest]);
        self.handed += out.len();
    }
}

/// A deferred call of the silent-OT sender ([`SilentSender::send_deferred`]): hands out its
/// zero-labels in order, a piece at a time, generating chunks as they are needed.
pub struct SilentDeferredSend<'s> {
    sender: &'s mut SilentSender,
    call: DeferredCall,
    /// The call's choice pattern and the receiver's corrections, applied piece by piece.
    pattern: ChoicePattern,
    d: Vec<u8>,
}

impl SilentDeferredSend<'_> {
    /// OTs not handed out yet.
    pub fn remaining(&self) -> usize {
        self.call.remaining()
    }

    /// Fills `out` with the call's next `out.len()` zero-labels, corrections applied. The
    /// messages of the chunks this generates are appended to `msg`: the caller sends them
    /// before anything the receiver reads after its
    /// [`SilentDeferredReceive::read_messages`] for the same OTs.
    pub fn fill(&mut self, out: &mut [Block], msg: &mut Vec<Block>) -> Result<(), OtError> {
        let k = self.call.split(out.len())?;
        let j0 = self.call.handed;
        let s = &mut *self.sender;
        // The corrections of OTs `j0 + a..j0 + b`, applied while they are in cache.
        let (pattern, d, delta) = (self.pattern, &self.d, s.delta);
        let correct = |out: &mut [Block], a: usize| {
            let at = pattern.count_in(0, j0 + a);
            apply_choice_corrections(pattern, j0 + a, d, at, delta, out);
        };
        let mut filled = 0;
        while filled < k {
            if s.ready.left() == 0 {
                let Some((depth, r)) = s.planned.next() else {
                    return Err(OtError::Internal(
                        "a deferred call ran out of reserved chunks".into(),
                    ));
                };
                s.generate(depth, Some(r), &mut [], msg);
            }
            let got = s.ready.take(&mut out[filled..k]);
            correct(&mut out[filled..filled + got], filled);
            filled += got;
        }
        self.call.finish(out, k);
        correct(&mut out[k..], k);
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
            ready: Ready::new(false),
            planned: Planned::default(),
            planned_c: Vec::new(),
            planned_r: Vec::new(),
            random: ChoiceBits::new(),
            tweaks: 0,
            count: 0,
            chunks: 0,
        })
    }

    /// Chunks generated so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// The receiver's side of [`SilentSender::reserve`]: sends the base OTs of the chunks that
    /// cover the next `n` OTs.
    pub fn reserve<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<(), OtError> {
        let Some((depths, m)) = self.planned.extension(self.ready.left(), n) else {
            return Ok(());
        };
        let (pos, kept) = (self.planned.pos, self.planned_r.len() - self.planned.pos);
        let mut c = vec![false; kept + m];
        let mut r = vec![Block::ZERO; kept + m];
        c[..kept].copy_from_slice(&self.planned_c[pos..]);
        r[..kept].copy_from_slice(&self.planned_r[pos..]);
        let sent = self
            .base
            .receive(
                ch,
                ChoicePattern::ALL_RANDOM,
                &mut c[kept..],
                &mut r[kept..],
            )
            .and_then(|()| Ok(ch.flush()?));
        if let Err(e) = sent {
            // The copies hold the planned chunks' secret choices and keys.
            wipe_base(&mut c, &mut r);
            return Err(e);
        }
        self.wipe_planned();
        (self.planned_c, self.planned_r) = (c, r);
        self.planned.extend(depths);
        Ok(())
    }

    fn wipe_planned(&mut self) {
        wipe_base(&mut self.planned_c, &mut self.planned_r);
    }

    /// Generates the next chunk: a planned one, or one for `need` OTs with its own base OTs.
    fn chunk<C: Channel + ?Sized>(&mut self, ch: &mut C, need: usize) -> Result<(), OtError> {
        let (mut own_c, mut own_r): (Vec<bool>, Vec<Block>) = (Vec::new(), Vec::new());
        let done = self.chunk_with(ch, need, &mut own_c, &mut own_r);
        // The chunk's own base OTs, on success or not (the tree wipes its keys only on success).
        wipe_base(&mut own_c, &mut own_r);
        done
    }

    /// [`SilentReceiver::chunk`], its own base OTs (if it needs them) drawn into `own_c` and
    /// `own_r`.
    fn chunk_with<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        need: usize,
        own_c: &mut Vec<bool>,
        own_r: &mut Vec<Block>,
    ) -> Result<(), OtError> {
        let (depth, c, r) = match self.planned.next() {
            Some((d, range)) => (
                d,
                &self.planned_c[range.clone()],
                &mut self.planned_r[range],
            ),
            None => {
                let d = depth_for(need);
                own_c.resize(TREES * d, false);
                own_r.resize(TREES * d, Block::ZERO);
                self.base
                    .receive(ch, ChoicePattern::ALL_RANDOM, own_c, own_r)?;
                (d, &own_c[..], &mut own_r[..])
            }
        };
        let w = self.ready.prepare(depth);
        vole_receive(ch, c, r, depth, self.tweaks, w)?;
        self.finish_chunk(depth);
        Ok(())
    }

    /// Generates the next planned chunk from its message, already read.
    fn planned_chunk(&mut self, msg: &[Block]) -> Result<(), OtError> {
        let Some((depth, range)) = self.planned.next() else {
            return Err(OtError::Internal("a chunk message beyond the plan".into()));
        };
        let w = self.ready.prepare(depth);
        let (c, r) = (&self.planned_c[range.clone()], &mut self.planned_r[range]);
        vole_receive_message(msg, c, r, depth, self.tweaks, w);
        self.finish_chunk(depth);
        Ok(())
    }

    /// Compresses a chunk whose sparse VOLE is in `ready`; forgets the plan once it is used up.
    fn finish_chunk(&mut self, depth: usize) {
        if self.planned.depths.is_empty() {
            self.wipe_planned();
            (self.planned_c, self.planned_r) = (Vec::new(), Vec::new());
            self.planned.pos = 0;
        }
        self.ready.fill(depth);
        self.tweaks += (TREES * depth) as u64;
        self.chunks += 1;
    }

    /// Runs `choices.len()` correlated OTs: `out[j]` becomes the sender's `q_j ⊕ b_j·Δ`. Where
    /// `pattern` marks OT `j` as chosen, `b_j` is choice bit `j` as given; elsewhere choice bit
    /// `j` is overwritten with the random bit the OT delivered. `out` must be as long as
    /// `choices`.
    pub fn receive<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        choices: &mut ChoiceBits,
        out: &mut [Block],
    ) -> Result<(), OtError> {
        let n = choices.len();
        if !super::receive_has_work(n, out.len())? {
            return Ok(());
        }
        self.random.clear();
        self.random.resize(n);
        let mut filled = 0;
        while filled < n {
            prefault_ready(&self.ready, &mut out[filled..]);
            let k = self.ready.take(&mut out[filled..]);
            // The random bits are the labels' colours, gathered while the chunk is in cache.
            for (i, part) in out[filled..filled + k].chunks(64).enumerate() {
                self.random
                    .set_word_at(filled + 64 * i, part.len(), colour_word(part));
            }
            filled += k;
            let need = n - filled;
            if need == 0 {
                break;
            }
            if need < SILENT_MIN_OTS && self.planned.depths.is_empty() {
                let mut tail = ChoiceBits::zeros(need);
                self.base.receive_packed(
                    ch,
                    ChoicePattern::ALL_RANDOM,
                    &mut tail,
                    &mut out[filled..],
                )?;
                self.random.copy_from(filled, &tail, 0, need);
                break;
            }
            self.chunk(ch, need)?;
        }
        self.send_corrections(ch, pattern, choices)
    }

    /// The deferred form of [`SilentReceiver::receive`], the counterpart of
    /// [`SilentSender::send_deferred`]: reserves the call's `choices.len()` OTs, runs the
    /// SoftSpoken tail (if any), works out every random choice bit of the call before any of
    /// its chunks exists (`noise_choice_bits`), and sends the count and choice corrections
    /// now. As for `receive`, the random positions of `choices` are overwritten with the bits
    /// the OTs deliver. The labels follow through [`SilentDeferredReceive::fill`], which reads
    /// each chunk's message when it needs it.
    pub fn receive_deferred<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        choices: &mut ChoiceBits,
    ) -> Result<SilentDeferredReceive<'_>, OtError> {
        let n = choices.len();
        self.reserve(ch, n)?;
        let tail_len = self.planned.tail_len(self.ready.left(), n);
        let from_chunks = n - tail_len;
        self.random.clear();
        self.random.resize(n);
        // What is ready: its colours.
        let from_ready = self.ready.left().min(n);
        let ready = &self.ready.buf[self.ready.pos..self.ready.pos + from_ready];
        for (i, part) in ready.chunks(64).enumerate() {
            self.random
                .set_word_at(64 * i, part.len(), colour_word(part));
        }
        // The planned chunks the call reaches, in batches of one depth.
        {
            let mut at = from_ready;
            let mut batch: Vec<(core::ops::Range<usize>, usize, usize)> = Vec::new();
            let mut chunks = self.planned.iter().peekable();
            while at < from_chunks {
                let Some((depth, range)) = chunks.next() else {
                    return Err(OtError::Internal(
                        "a deferred call is not covered by its reservation".into(),
                    ));
                };
                let take = chunk_ots(depth).min(from_chunks - at);
                batch.push((range, at, take));
                at += take;
                let last = at == from_chunks || chunks.peek().map(|c| c.0) != Some(depth);
                if last || batch.len() == NOISE_BATCH {
                    let cs: Vec<&[bool]> = batch
                        .iter()
                        .map(|(r, ..)| &self.planned_c[r.clone()])
                        .collect();
                    let bits = noise_choice_bits(depth, &cs);
                    for ((_, at, take), x) in batch.drain(..).zip(&bits) {
                        self.random.copy_from(at, x, 0, take);
                    }
                }
            }
        }
        let mut tail = SecretBlocks::zeros(tail_len);
        if tail_len > 0 {
            let mut bits = ChoiceBits::zeros(tail_len);
            self.base
                .receive_packed(ch, ChoicePattern::ALL_RANDOM, &mut bits, &mut tail)?;
            self.random.copy_from(from_chunks, &bits, 0, tail_len);
        }
        self.send_corrections(ch, pattern, choices)?;
        Ok(SilentDeferredReceive {
            receiver: self,
            call: DeferredCall::new(n, tail),
            covered: from_ready,
            stash: Default::default(),
        })
    }

    /// Sends a call's count and the corrections of its chosen bits (the random ones, in
    /// `self.random`, overwrite `choices`' random positions); counts its OTs.
    fn send_corrections<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        choices: &mut ChoiceBits,
    ) -> Result<(), OtError> {
        let n = choices.len();
        send_count(ch, n)?;
        let d = choice_corrections(pattern, 0, n, self.random.words(), choices.words_mut());
        if !d.is_empty() {
            ch.send(&d)?;
        }
        ch.flush()?;
        self.count += n as u64;
        Ok(())
    }
}

/// A deferred call of the silent-OT receiver ([`SilentReceiver::receive_deferred`]): hands out
/// its labels in order, a piece at a time, reading each chunk's message when it needs it.
pub struct SilentDeferredReceive<'r> {
    receiver: &'r mut SilentReceiver,
    call: DeferredCall,
    /// OTs of the call, from its start, that what was ready and the chunk messages read so
    /// far cover.
    covered: usize,
    /// Chunk messages read and not used yet, in order: those of the planned chunks at the
    /// front of the plan.
    stash: std::collections::VecDeque<Vec<Block>>,
}

impl SilentDeferredReceive<'_> {
    /// OTs not handed out yet.
    pub fn remaining(&self) -> usize {
        self.call.remaining()
    }

    /// Whether every OT was handed out and every message read was used: what a caller checks
    /// at the end of a call, to catch two parties that split it differently.
    pub fn is_done(&self) -> bool {
        self.call.remaining() == 0 && self.stash.is_empty()
    }

    /// Fills `out` with the call's next `out.len()` labels, reading from `ch` the message of
    /// every chunk this needs (what the sender's [`SilentDeferredSend::fill`] of the same OTs
    /// appended): [`SilentDeferredReceive::read_messages`], then
    /// [`SilentDeferredReceive::fill_read`].
    pub fn fill<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        out: &mut [Block],
    ) -> Result<(), OtError> {
        self.read_messages(ch, self.call.handed + out.len())?;
        self.fill_read(out)
    }

    /// Reads from `ch` the messages of the chunks that the call's first `upto` OTs need and
    /// that were not read yet, and keeps them for [`SilentDeferredReceive::fill_read`]: so
    /// that a caller can read what comes after them on the channel (the tables garbled with
    /// those OTs) before it spends the time to expand them.
    pub fn read_messages<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        upto: usize,
    ) -> Result<(), OtError> {
        let upto = upto.min(self.call.ots_from_chunks());
        while self.covered < upto {
            // The stashed messages belong to the plan's first chunks, which leave the plan
            // only as their message leaves the stash: the next one is the chunk after them.
            let planned = &self.receiver.planned.depths;
            let Some(&depth) = planned.get(self.stash.len()) else {
                return Err(OtError::Internal(
                    "a deferred call ran out of reserved chunks".into(),
                ));
            };
            let mut msg = vec![Block::ZERO; message_blocks(depth)];
            ch.recv_blocks(&mut msg)?;
            self.stash.push_back(msg);
            self.covered += chunk_ots(depth);
        }
        Ok(())
    }

    /// Fills `out` with the call's next `out.len()` labels from the chunk messages already
    /// read ([`SilentDeferredReceive::read_messages`]); an error if they do not reach.
    pub fn fill_read(&mut self, out: &mut [Block]) -> Result<(), OtError> {
        let k = self.call.split(out.len())?;
        let r = &mut *self.receiver;
        let mut filled = 0;
        while filled < k {
            if r.ready.left() == 0 {
                let Some(msg) = self.stash.pop_front() else {
                    return Err(OtError::Internal(
                        "labels asked for before their chunk's message was read".into(),
                    ));
                };
                r.planned_chunk(&msg)?;
            }
            prefault_ready(&r.ready, &mut out[filled..k]);
            filled += r.ready.take(&mut out[filled..k]);
        }
        self.call.finish(out, k);
        Ok(())
    }
}

/// Chunks whose choice bits [`noise_choice_bits`] works out in one run: one per bit lane of a
/// block (fewer in tests, so that they cross batches at small sizes).
const NOISE_BATCH: usize = if cfg!(test) { 3 } else { 128 };

/// The colours (lsb) of up to 64 labels, as a word.
fn colour_word(labels: &[Block]) -> u64 {
    labels
        .iter()
        .enumerate()
        .fold(0u64, |w, (b, o)| w | ((o.0 as u64 & 1) << b))
}

/// The random choice bits `x = H·e` of up to 128 chunks of `depth`-deep trees, from their base
/// OTs' choice bits alone (`cs[j]`, `TREES · depth` bits: tree `t`'s puncture point has path
/// bits `!cs[j][t·depth + l]`, most significant first, as [`vole_receive`] reads them), so
/// before any tree message. Chunk `j`'s noise `e` is bit lane `j` of one vector of blocks,
/// built tree by tree like a GGM tree whose nodes are lane masks, each split by its level's
/// path bits (no branch and no memory index depends on a puncture point); one run of the code
/// compresses every lane at once, and a transpose reads the lanes out. Returns per chunk its
/// [`chunk_ots`]`(depth)` bits.
fn noise_choice_bits(depth: usize, cs: &[&[bool]]) -> Vec<ChoiceBits> {
    let k = cs.len();
    assert!(k <= 128, "{k} chunks in one batch");
    let n = chunk_ots(depth);
    let leaves = 1usize << depth;
    let mut e = crate::crypto::block::zeroed_blocks(TREES << depth);
    let lanes = if k == 128 {
        u128::MAX
    } else {
        (1u128 << k) - 1
    };
    for (t, tree) in e.chunks_exact_mut(leaves).enumerate() {
        tree[0] = Block(lanes);
        for l in 0..depth {
            let mut path = 0u128;
            for (j, c) in cs.iter().enumerate() {
                path |= u128::from(!c[t * depth + l]) << j;
            }
            for i in (0..1usize << l).rev() {
                let node = tree[i].0;
                tree[2 * i + 1] = Block(node & path);
                tree[2 * i] = Block(node & !path);
            }
            zeroize::Zeroize::zeroize(&mut path);
        }
    }
    ExConvCode::new(n).compress(&mut e);
    let mut out: Vec<ChoiceBits> = (0..k).map(|_| ChoiceBits::zeros(n)).collect();
    let mut rows = [Block::ZERO; 128];
    for (g, group) in e[..n].chunks_exact(128).enumerate() {
        // Row `j` of the transpose: lane `j` of the group's 128 positions.
        super::transpose::transpose_128xn(
            crate::crypto::block::blocks_as_bytes(group),
            128,
            &mut rows,
        );
        for (x, row) in out.iter_mut().zip(&rows) {
            x.set_word_at(128 * g, 64, row.0 as u64);
            x.set_word_at(128 * g + 64, 64, (row.0 >> 64) as u64);
        }
    }
    wipe(&mut rows);
    wipe(&mut e);
    out
}

/// Wipes base OTs held by the receiver: their random choice bits (the trees' puncture points)
/// and keys.
fn wipe_base(c: &mut [bool], r: &mut [Block]) {
    for b in c.iter_mut() {
        zeroize::Zeroize::zeroize(b);
    }
    wipe(r);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ot::test_support::{
        call_bytes, check_balanced_call, mismatched_counts_are_errors, random_bits, run_call,
        run_deferred_call, setup_pair, Sender,
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
        assert_eq!(depth_for(chunk_ots(MIN_DEPTH)), MIN_DEPTH);
        assert_eq!(depth_for(chunk_ots(MIN_DEPTH) + 1), MIN_DEPTH + 1);
        assert_eq!(depth_for(chunk_ots(MAX_DEPTH) + 1), MAX_DEPTH);
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
            // Two chunks and a SoftSpoken tail, chosen bits throughout.
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
            check_balanced_call(&call, d, pattern, &format!("n {n}"));
        }
        let (s_chunks, r_chunks) = chunks(&sender.0, &r);
        assert_eq!(s_chunks, r_chunks);
        // 2^16 for the first call, two more for the third; the last runs SoftSpoken.
        assert_eq!(s_chunks, 3);
    }

    /// Deferred calls (corrections first, chunks generated as the outputs are taken) give
    /// the same correlation and honour the chosen bits, with every chunk message where the
    /// receiver looks for it: from what an earlier call left ready, into a SoftSpoken tail
    /// with no chunk between, as a tail alone, across chunks of two depths, across batches of
    /// chunks whose choice bits are worked out together ([`NOISE_BATCH`] is 3 in tests), and
    /// ending on a chunk's end; plain calls between them take what they left ready. Pieces
    /// end mid-chunk, on chunk ends, inside what was ready and inside the tail.
    #[test]
    fn deferred_calls_across_ready_chunks_batches_and_tail() {
        let (mut sender, mut r, mut chr) = pair();
        let d = sender.2;
        let mut rng = Prg::from_entropy();
        let half = ChoicePattern {
            period: 128,
            chosen: 64,
        };
        let tenth = ChoicePattern {
            period: 10,
            chosen: 3,
        };
        let left = (1 << 16) - 40_000;
        // (n, pattern, deferred)
        let calls = [
            // A plain call leaves 25,536 of a chunk ready.
            (40_000usize, ChoicePattern::ALL_RANDOM, false),
            // Those and a tail of 10,000, no chunk.
            (left + 10_000, half, true),
            // A tail alone.
            (5, ChoicePattern::ALL_CHOSEN, true),
            // A chunk of each depth (2^16 then 2^15), nothing left over.
            ((1 << 16) + (1 << 15), half, true),
            // Seven chunks of 2^16, three batches; 20,000 of the last are left ready.
            (7 * (1 << 16) - 20_000, tenth, true),
            // A plain call takes those, then a chunk of its own, and leaves 25,536.
            (20_000 + 40_000, half, false),
            // Those and one chunk, ending on its end.
            (left + (1 << 16), tenth, true),
        ];
        for (n, pattern, deferred) in calls {
            let want = random_bits(n, &mut rng);
            let call;
            (sender, call) = if deferred {
                let pieces = [1000, 7, 24_529, 33_333, 100_000, 64];
                run_deferred_call(sender, &mut r, &mut chr, pattern, want, &pieces)
            } else {
                run_call(sender, &mut r, &mut chr, pattern, want)
            };
            check_balanced_call(&call, d, pattern, &format!("n {n}"));
        }
        let (s_chunks, r_chunks) = chunks(&sender.0, &r);
        assert_eq!(s_chunks, r_chunks);
        assert_eq!(s_chunks, 1 + 2 + 7 + 1 + 1);
    }

    /// A deferred call moves the bytes of a plain one in one flight fewer, however many chunks
    /// it spans: its receiver's corrections go out before the chunks' messages come in.
    #[test]
    fn a_deferred_call_costs_the_bytes_of_a_plain_one_in_two_flights() {
        let pattern = ChoicePattern {
            period: 128,
            chosen: 64,
        };
        let n = 3 * chunk_ots(MAX_DEPTH) + 1000;
        let mut got = Vec::new();
        for deferred in [false, true] {
            let (a, b) = mem_pair(Duration::from_secs(60));
            let (mut sender, mut r, mut chr) =
                setup_pair(OtKind::Silent, Metered::new(a), Metered::new(b));
            // Both reserved alike (a plain call without a reservation runs each chunk's base
            // OTs on their own, with a count each).
            r.reserve(&mut chr, n).unwrap();
            sender.0.reserve(&mut sender.1, n).unwrap();
            let (s0, r0) = (sender.1.stats().total, chr.stats().total);
            let want = vec![false; n];
            let (sender, _) = if deferred {
                run_deferred_call(sender, &mut r, &mut chr, pattern, want, &[n])
            } else {
                run_call(sender, &mut r, &mut chr, pattern, want)
            };
            let s1 = sender.1.stats().total.minus(&s0);
            let r1 = chr.stats().total.minus(&r0);
            got.push((s1.bytes_sent, s1.bytes_received, r1.rounds));
        }
        // The deferred run's sender also sent its one marker block.
        assert_eq!(got[1].0 - 16, got[0].0);
        assert_eq!(got[1].1, got[0].1);
        // After the reservation's flight out, a plain call takes the messages in and sends the
        // corrections out: two more flights; a deferred call sends its corrections with the
        // reservation's flight and takes the messages in: one.
        assert_eq!((got[0].2, got[1].2), (2, 1), "{got:?}");
    }

    /// A deferred call whose two sides disagree on the count fails on both sides: the sender
    /// names both counts, and the receiver, left waiting for chunk messages that never come,
    /// gets a channel error rather than a hang or a panic.
    #[test]
    fn a_deferred_count_mismatch_is_an_error_on_both_sides() {
        let ((mut s, mut chs, _), mut r, mut chr) = pair();
        let h = std::thread::spawn(move || {
            let got = s
                .send_deferred(&mut chs, ChoicePattern::ALL_RANDOM, 40_000)
                .err();
            drop(chs);
            got
        });
        let mut bits = ChoiceBits::zeros(40_001);
        let mut call = r
            .receive_deferred(&mut chr, ChoicePattern::ALL_RANDOM, &mut bits)
            .unwrap();
        let mut z = vec![Block::ZERO; 40_001];
        assert!(matches!(call.fill(&mut chr, &mut z), Err(OtError::Net(_))));
        assert!(matches!(
            h.join().unwrap(),
            Some(OtError::CountMismatch {
                ours: 40_000,
                theirs: 40_001,
                ..
            })
        ));
    }

    /// The choice bits worked out from the puncture points alone are the noise `e` compressed
    /// by the code, chunk by chunk, in every one of a full batch's 128 lanes: checked against
    /// setting each tree's one bit directly.
    #[test]
    fn noise_choice_bits_match_the_code_on_the_noise() {
        let mut rng = Prg::from_entropy();
        let depth = MIN_DEPTH;
        let cs: Vec<Vec<bool>> = (0..128)
            .map(|_| random_bits(TREES * depth, &mut rng))
            .collect();
        let refs: Vec<&[bool]> = cs.iter().map(Vec::as_slice).collect();
        let got = noise_choice_bits(depth, &refs);
        let n = chunk_ots(depth);
        for (c, x) in cs.iter().zip(&got) {
            let mut e = vec![Block::ZERO; 2 * n];
            for t in 0..TREES {
                let alpha = (0..depth).fold(0, |a, l| (a << 1) | usize::from(!c[t * depth + l]));
                e[(t << depth) + alpha] = Block(1);
            }
            ExConvCode::new(n).compress(&mut e);
            assert_eq!(x.len(), n);
            for (i, b) in e[..n].iter().enumerate() {
                assert_eq!(x.get(i), b.0 & 1 == 1, "bit {i}");
            }
        }
    }

    /// A reservation runs every planned chunk's base OTs in one flight: afterwards the
    /// receiver only receives tree messages and sends each call's count and corrections, so
    /// its flights do not grow with the number of chunks; the correlation holds throughout.
    #[test]
    fn reserved_chunks_cost_no_round_trip_each() {
        let (a, b) = mem_pair(Duration::from_secs(60));
        let (mut a, mut b) = (Metered::new(a), Metered::new(b));
        let calls = [75_000usize, 75_000, 13_840];
        let total: usize = calls.iter().sum();
        // Two of the largest chunks and one of half their size.
        assert_eq!(plan(total), vec![MAX_DEPTH, MAX_DEPTH, MAX_DEPTH - 1]);
        let pattern = ChoicePattern {
            period: 128,
            chosen: 64,
        };
        let t = std::thread::spawn(move || {
            let mut rng = Prg::from_entropy();
            let d = Block::random(&mut rng).with_lsb(true);
            let mut s = SilentSender::setup(&mut a, d, &mut rng).unwrap();
            s.reserve(&mut a, total).unwrap();
            let ys: Vec<Vec<Block>> = calls
                .iter()
                .map(|&n| {
                    // Reserving what is already planned changes nothing.
                    s.reserve(&mut a, n).unwrap();
                    let mut y = vec![Block::ZERO; n];
                    s.send(&mut a, pattern, &mut y).unwrap();
                    y
                })
                .collect();
            (d, ys, s.chunks())
        });
        let mut r = SilentReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
        r.reserve(&mut b, total).unwrap();
        let before = b.stats().total;
        let mut got = Vec::new();
        for &n in &calls {
            r.reserve(&mut b, n).unwrap();
            let want: Vec<bool> = (0..n).map(|j| j % 5 == 0).collect();
            let mut c = ChoiceBits::from_bools(&want);
            let mut z = vec![Block::ZERO; n];
            r.receive(&mut b, pattern, &mut c, &mut z).unwrap();
            got.push((c.to_bools(), z));
        }
        let used = b.stats().total.minus(&before);
        let (d, ys, chunks) = t.join().unwrap();
        assert_eq!((chunks, r.chunks()), (3, 3));
        for ((c, z), y) in got.iter().zip(&ys) {
            for j in 0..y.len() {
                assert_eq!(z[j], y[j] ^ d.select(c[j]), "OT {j}");
                if pattern.is_chosen(j) {
                    assert_eq!(c[j], j % 5 == 0);
                }
            }
        }
        // After the base OTs: the first call's two tree messages in, its corrections out; the
        // second's message in, its corrections and the third call's (no chunk) out.
        assert_eq!(used.rounds, 4);
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
        // Counts of the call and of the base OTs; SoftSpoken k = 4's 31 bits per random OT
        // (padded to 128); the corrections.
        assert_eq!(FALLBACK_K, 4);
        assert_eq!(recv, (8 + 8 + 31 * base.div_ceil(128) * 16 + n / 16) as u64);
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
