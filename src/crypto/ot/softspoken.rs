//! Semi-honest SoftSpoken OT extension (Roy, CRYPTO 2022, ePrint 2022/192) in the correlated
//! mode that hands out free-XOR labels under the garbler's global Δ: the same outputs as
//! [`iknp`](super::iknp) for `128/k − 1` bits per random-choice OT instead of 128.
//!
//! # Protocol
//!
//! Δ's 128 bits are cut into `B = 128/k` chunks `Δ_i` of `k` bits.
//!
//! Setup, once: for each chunk `i` the COT receiver grows a GGM tree of depth `k` from a random
//! root and, for each level, offers the XOR of all left and of all right nodes of that level in
//! one base OT; the COT sender (the garbler) chooses the side *off* the path to the leaf `Δ_i`
//! and so learns every leaf except leaf `Δ_i` (a `(2^k − 1)`-out-of-`2^k` OT). That is `B · k =
//! 128` base OTs, exactly as many as IKNP's, with the same roles. Each leaf seed keys an
//! AES-CTR [`Prg`].
//!
//! Extension of `n` OTs (in chunks of [`CHUNK_OTS`], padded to a multiple of 128): every leaf
//! `x` of chunk `i` expands to an `n`-bit string `r_{i,x}`. The receiver computes
//! `u_i = ⊕_x r_{i,x}` and the `k` columns `v_{i,b} = ⊕_{x : x_b = 1} r_{i,x}`; the sender, who
//! lacks only `r_{i,Δ_i}`, computes `w_{i,b} = ⊕_{x : (x ⊕ Δ_i)_b = 1} r_{i,x} = v_{i,b} ⊕
//! Δ_{i,b} · u_i` (the missing leaf has coefficient 0). The receiver sends `u_0 ⊕ u_i` for
//! `i ≥ 1` (the only message: `(B − 1) · n` bits) and the sender adds `Δ_{i,b} · (u_0 ⊕ u_i)`,
//! so that every one of the 128 columns satisfies `q^p = t^p ⊕ Δ_p · u_0`. Transposing gives
//! `q_j = t_j ⊕ u_{0,j} · Δ` per OT: the sender's zero-label `q_j`, the receiver's label `t_j`
//! of its *random* choice bit `u_{0,j}`. Where the caller wants chosen bits (a
//! [`ChoicePattern`]), the receiver also sends `d_j = u_{0,j} ⊕ b_j`, one bit each, and the
//! sender shifts its zero-label to `q_j ⊕ d_j · Δ`.
//!
//! # Security (semi-honest)
//!
//! The receiver's view is its own seeds: independent of Δ. The sender's view is the base-OT
//! outputs (every leaf but `Δ_i`, pseudorandom given the GGM PRG) and the corrections `u_0 ⊕ u_i`
//! and `d_j`, each masked by the expansion of a leaf it does not hold (`r_{0,Δ_0}` or
//! `r_{i,Δ_i}`). As for IKNP's correlated mode, the labels are only ever hashed by the
//! garbling scheme's tweakable circular correlation-robust hash.
//!
//! The sender's work does not branch on Δ: the punctured leaf is expanded from a throwaway seed
//! and every leaf's contribution is masked by the bits of `x ⊕ Δ_i`.
//!
//! # Streams
//!
//! As for IKNP, every call continues the leaves' streams, so one setup serves any number of
//! calls; after an error drop both ends.

use core::fmt;

use rand_core::{CryptoRng, RngCore};

use super::iknp::{
    debug_party, mask, padded, recv_count, send_chunked, send_count, transpose_into,
    CHUNK_COL_BLOCKS, CHUNK_OTS,
};
use super::{
    apply_choice_corrections, base, blocks_as_bytes, blocks_as_bytes_mut, choice_corrections,
    ChoiceBits, ChoicePattern, OtError,
};
use crate::crypto::block::{blocks_as_words, blocks_as_words_mut, xor_in_place};
use crate::crypto::{Block, Prg, FIXED_KEY_AES};
use crate::net::Channel;

/// The smallest and largest supported `k` (bits of Δ per small-field VOLE). `k` must divide 128.
pub const K_RANGE: core::ops::RangeInclusive<usize> = 1..=8;

/// Checks `k`: in [`K_RANGE`] and a divisor of 128.
fn check_k(k: usize) -> Result<usize, OtError> {
    if K_RANGE.contains(&k) && 128 % k == 0 {
        Ok(128 / k)
    } else {
        Err(OtError::Parameter(format!(
            "SoftSpoken needs k in 1..=8 dividing 128, got {k}"
        )))
    }
}

/// The GGM children of node `s` at depth `level − 1` of chunk `i`'s tree: the tweakable hash
/// under two tweaks unique to (chunk, level, side), with bit 126 set so they meet neither the
/// garbling tweaks nor the chosen-message OT tweaks.
#[inline]
fn children(s: Block, i: usize, level: usize) -> (Block, Block) {
    let t = (1u128 << 126) | ((i as u128) << 16) | ((level as u128) << 1);
    let aes = &*FIXED_KEY_AES;
    (aes.tccr(Block(t), s), aes.tccr(Block(t | 1), s))
}

/// The full tree of the COT receiver: its `2^k` leaves and, per level, the XOR of the left and
/// of the right nodes.
fn ggm_tree(root: Block, i: usize, k: usize) -> (Vec<Block>, Vec<(Block, Block)>) {
    let mut nodes = vec![root];
    let mut sums = Vec::with_capacity(k);
    for level in 1..=k {
        let mut next = Vec::with_capacity(2 * nodes.len());
        let (mut l_sum, mut r_sum) = (Block::ZERO, Block::ZERO);
        for &y in &nodes {
            let (l, r) = children(y, i, level);
            next.push(l);
            next.push(r);
            l_sum ^= l;
            r_sum ^= r;
        }
        sums.push((l_sum, r_sum));
        nodes = next;
    }
    (nodes, sums)
}

/// The COT sender's leaves of chunk `i`, all but leaf `alpha` (left zero), from the level sums
/// it chose: `got[level − 1]` is the sum of the side off the path to `alpha`. No branch on
/// `alpha`: nodes are selected with masks.
fn ggm_punctured(alpha: usize, i: usize, k: usize, got: &[Block]) -> Vec<Block> {
    let mut nodes = vec![Block::ZERO];
    for level in 1..=k {
        let a = (alpha >> (k - level)) & 1;
        let p = alpha >> (k - level + 1);
        let mut next = vec![Block::ZERO; 2 * nodes.len()];
        let mut sibling = got[level - 1];
        for (y, &node) in nodes.iter().enumerate() {
            let known = Block(!mask(y == p));
            let (l, r) = children(node, i, level);
            let (l, r) = (l & known, r & known);
            next[2 * y] = l;
            next[2 * y + 1] = r;
            // The sibling is the level sum minus every known node on its side.
            sibling ^= Block(l.0 ^ ((l.0 ^ r.0) & mask(a == 0)));
        }
        // next[2p + (1 − a)] = sibling; next[2p + a] stays zero.
        for (y, n) in next.iter_mut().enumerate() {
            *n ^= sibling & Block(mask(y == 2 * p + (1 - a)));
        }
        nodes = next;
    }
    nodes
}

/// Blocks of each leaf stream expanded at a time by [`expand_fold`]: a piece of all `2^k`
/// leaves stays within 16 KiB (L1) for `k ≤ 6`, and the AES pipeline gets at least 16 blocks.
fn piece_blocks(k: usize) -> usize {
    (1024 >> k).max(16)
}

/// `dst = a ⊕ b` block by block, in one pass (on words, which the compiler vectorises).
#[inline]
fn xor_into(dst: &mut [Block], a: &[Block], b: &[Block]) {
    let (a, b) = (blocks_as_words(a), blocks_as_words(b));
    for ((d, x), y) in blocks_as_words_mut(dst).iter_mut().zip(a).zip(b) {
        *d = x ^ y;
    }
}

/// Expands the `2^k` leaf streams `prgs` of one chunk of Δ by `u.len()` blocks each (`r_x`)
/// and folds them into `u = ⊕_x r_x` and the `k` columns `v[b·w..(b+1)·w] = ⊕_{x : x_b = 1}
/// r_x` (`w = u.len()`): the computation both parties share, on public indices only.
///
/// Where the VAES kernel applies (`k` = 2 or 4, the default) the leaves' blocks never reach
/// memory: [`Prg::fold_streams`] sums them in registers. Elsewhere this works piece by piece
/// ([`piece_blocks`]) so the leaves' pieces stay in cache, and folds
/// them as a binary tree: at level `b` the partial sums are over the leaves with equal bits
/// above `b`, `v_b` is the XOR of the odd ones and neighbours merge. That is `2^k` piece XORs in
/// all instead of `k · 2^(k−1)` for one pass per column and leaf.
fn expand_fold(
    prgs: &mut [Prg],
    k: usize,
    scratch: &mut [Block],
    u: &mut [Block],
    v: &mut [Block],
) {
    if Prg::fold_streams(prgs, u, v) {
        return;
    }
    let (leaves, w) = (1usize << k, u.len());
    let p = scratch.len() / leaves;
    debug_assert!(prgs.len() == leaves && v.len() == k * w && p > 0);
    let mut start = 0;
    while start < w {
        let len = p.min(w - start);
        for (x, prg) in prgs.iter_mut().enumerate() {
            prg.fill_blocks(&mut scratch[x * p..x * p + len]);
        }
        let mut n = leaves;
        for b in 0..k {
            let col = &mut v[b * w + start..b * w + start + len];
            // Entry 0 merges in place; every other entry e takes 2e and 2e + 1, both above it.
            col.copy_from_slice(&scratch[p..p + len]);
            let (lo, hi) = scratch.split_at_mut(p);
            xor_in_place(&mut lo[..len], &hi[..len]);
            for e in 1..n / 2 {
                let (lo, hi) = scratch.split_at_mut(2 * e * p);
                let (even, odd) = (&hi[..len], &hi[p..p + len]);
                xor_in_place(col, odd);
                xor_into(&mut lo[e * p..e * p + len], even, odd);
            }
            n /= 2;
        }
        u[start..start + len].copy_from_slice(&scratch[..len]);
        start += len;
    }
}

/// The SoftSpoken COT sender: the garbler, holding Δ.
pub struct SoftSpokenSender {
    k: usize,
    delta: Block,
    /// Leaf streams, `2^k` per chunk of Δ; the punctured leaf's stream is a throwaway.
    prgs: Vec<Prg>,
    count: u64,
    cols: Vec<Block>,
    /// One column: the XOR of all leaves, plus the correction.
    u: Vec<Block>,
    /// A piece of every leaf of one chunk of Δ ([`expand_fold`]).
    leaves: Vec<Block>,
    corr: Vec<Block>,
    tail: Vec<Block>,
}

impl Drop for SoftSpokenSender {
    // Its copy of Δ is the garbling offset, and its work buffers (columns, leaves, corrections,
    // tail) hold values derived from it; the PRGs wipe their own keys. The helper senders of
    // `ahead` are dropped after every deferred request, so this runs often.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.delta.0);
        for buf in [
            &mut self.cols,
            &mut self.u,
            &mut self.leaves,
            &mut self.corr,
            &mut self.tail,
        ] {
            crate::crypto::block::wipe(buf);
        }
    }
}

impl Drop for SoftSpokenReceiver {
    // Its work buffers hold values derived from its choice bits and its outputs.
    fn drop(&mut self) {
        for buf in [
            &mut self.cols,
            &mut self.leaves,
            &mut self.u0,
            &mut self.corr,
            &mut self.tail,
        ] {
            crate::crypto::block::wipe(buf);
        }
    }
}

/// The SoftSpoken COT receiver: the evaluator, who obtains the labels of its choice bits.
pub struct SoftSpokenReceiver {
    k: usize,
    prgs: Vec<Prg>,
    count: u64,
    cols: Vec<Block>,
    /// A piece of every leaf of one chunk of Δ ([`expand_fold`]).
    leaves: Vec<Block>,
    u0: Vec<Block>,
    corr: Vec<Block>,
    tail: Vec<Block>,
}

impl fmt::Debug for SoftSpokenSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_party(f, "SoftSpokenSender", Some(self.k), self.count)
    }
}

impl fmt::Debug for SoftSpokenReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_party(f, "SoftSpokenReceiver", Some(self.k), self.count)
    }
}

/// Scratch buffers of one chunk for `b = 128 / k` chunks of Δ: the columns, one column, the
/// corrections and the leaf pieces.
fn buffers(k: usize) -> (Vec<Block>, Vec<Block>, Vec<Block>, Vec<Block>) {
    let b = 128 / k;
    (
        vec![Block::ZERO; 128 * CHUNK_COL_BLOCKS],
        vec![Block::ZERO; CHUNK_COL_BLOCKS],
        vec![Block::ZERO; (b - 1) * CHUNK_COL_BLOCKS],
        vec![Block::ZERO; piece_blocks(k) << k],
    )
}

impl SoftSpokenSender {
    /// Runs the base OTs as their receiver (choices off the paths to Δ's chunks). `delta` must
    /// have its lsb set; it is the global offset of every label handed out.
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        k: usize,
        delta: Block,
        rng: &mut R,
    ) -> Result<Self, OtError> {
        let b = check_k(k)?;
        if !delta.lsb() {
            return Err(OtError::InvalidDelta);
        }
        let chunk = |i: usize| ((delta.0 >> (i * k)) as usize) & ((1 << k) - 1);
        let choices: Vec<bool> = (0..b)
            .flat_map(|i| (1..=k).map(move |level| (chunk(i) >> (k - level)) & 1 == 0))
            .collect();
        let got = base::receive(ch, &choices, rng)?;
        let mut prgs = Vec::with_capacity(b << k);
        for i in 0..b {
            let alpha = chunk(i);
            let leaves = ggm_punctured(alpha, i, k, &got[i * k..(i + 1) * k]);
            let spare = Block::random(rng);
            for (x, &leaf) in leaves.iter().enumerate() {
                let is_alpha = mask(x == alpha);
                prgs.push(Prg::from_seed(Block(
                    (leaf.0 & !is_alpha) ^ (spare.0 & is_alpha),
                )));
            }
        }
        let (cols, u, corr, leaves) = buffers(k);
        Ok(SoftSpokenSender {
            k,
            delta,
            prgs,
            count: 0,
            cols,
            u,
            leaves,
            corr,
            tail: Vec::new(),
        })
    }

    /// The global offset.
    pub fn delta(&self) -> Block {
        self.delta
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
        send_chunked(ch, "SoftSpoken OT", out, |ch, j0, chunk| {
            self.send_chunk(ch, pattern, j0, chunk)
        })?;
        self.count += out.len() as u64;
        Ok(())
    }

    fn send_chunk<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        j0: usize,
        out: &mut [Block],
    ) -> Result<(), OtError> {
        let b = 128 / self.k;
        let (_, w) = padded(out.len());
        let mut corr = std::mem::take(&mut self.corr);
        let received = ch.recv(blocks_as_bytes_mut(&mut corr[..(b - 1) * w]));
        let mut d = vec![0u8; pattern.count_in(j0, out.len()).div_ceil(8)];
        let received = received.and_then(|()| {
            if d.is_empty() {
                Ok(())
            } else {
                ch.recv(&mut d)
            }
        });
        if received.is_ok() {
            self.expand_chunk(&corr[..(b - 1) * w], &d, pattern, j0, out);
        }
        self.corr = corr;
        received?;
        Ok(())
    }

    /// The sender's computation for one chunk of OTs `j0..j0 + out.len()` once the receiver's
    /// column corrections `corr` (`(B − 1)` padded columns) and choice corrections `d` of the
    /// chunk are in: expands the leaves, corrects and transposes into `out`.
    fn expand_chunk(
        &mut self,
        corr: &[Block],
        d: &[u8],
        pattern: ChoicePattern,
        j0: usize,
        out: &mut [Block],
    ) {
        let (k, b) = (self.k, 128 / self.k);
        let (m, w) = padded(out.len());
        debug_assert_eq!(corr.len(), (b - 1) * w);
        let cols = &mut self.cols[..128 * w];
        let u = &mut self.u[..w];
        for i in 0..b {
            let v = &mut cols[i * k * w..(i + 1) * k * w];
            // v_b = ⊕_{x_b = 1} r_x and u = ⊕_x r_x over every leaf, the punctured one's
            // stream included; w_b = ⊕_{(x ⊕ Δ_i)_b = 1} r_x = v_b ⊕ Δ_{i,b} · u, in which the
            // punctured leaf x = Δ_i has coefficient 0 either way. Adding the received
            // correction, the column is v_b ⊕ Δ_{i,b} · (u ⊕ (u_0 ⊕ u_i)).
            expand_fold(
                &mut self.prgs[i << k..(i + 1) << k],
                k,
                &mut self.leaves,
                u,
                v,
            );
            if i > 0 {
                xor_in_place(u, &corr[(i - 1) * w..i * w]);
            }
            for (bb, col) in v.chunks_exact_mut(w).enumerate() {
                let md = mask((self.delta.0 >> (i * k + bb)) & 1 == 1) as u64;
                for (q, t) in blocks_as_words_mut(col).iter_mut().zip(blocks_as_words(u)) {
                    *q ^= t & md;
                }
            }
        }
        transpose_into(blocks_as_bytes(cols), m, out, &mut self.tail);
        if !d.is_empty() {
            apply_choice_corrections(pattern, j0, d, 0, self.delta, out);
        }
    }

    /// A sender whose leaf streams are [`Prg::ahead`] of these by the blocks that `ots` OTs
    /// (whole chunks) draw, with buffers of its own: for the second half of a request
    /// ([`halves`]).
    fn ahead(&self, ots: usize) -> SoftSpokenSender {
        let blocks = (ots / 128) as u128;
        let (cols, u, corr, leaves) = buffers(self.k);
        SoftSpokenSender {
            k: self.k,
            delta: self.delta,
            prgs: self.prgs.iter().map(|p| p.ahead(blocks)).collect(),
            count: self.count,
            cols,
            u,
            leaves,
            corr,
            tail: Vec::new(),
        }
    }

    /// Makes `helper`, a sender returned by [`SoftSpokenSender::ahead`] on this one's streams
    /// (its streams swapped with this one's since, as [`DeferredSend::fill`] does), what
    /// `self.ahead(ots)` would return, keeping its buffers and keys: one request after another
    /// without allocating, copying 512 keys, and wiping the buffers again.
    fn reseat_ahead(&self, helper: &mut SoftSpokenSender, ots: usize) {
        let blocks = (ots / 128) as u128;
        for (h, p) in helper.prgs.iter_mut().zip(&self.prgs) {
            h.reseat(p, blocks);
        }
        helper.count = self.count;
    }

    /// The outputs of consecutive chunks into `out` (chunk by chunk from its start), the first
    /// at OT `start.0` with its corrections at `corr[start.1..]` and `d[start.2..]`.
    fn expand_range(
        &mut self,
        pattern: ChoicePattern,
        start: (usize, usize, usize),
        corr: &[Block],
        d: &[u8],
        out: &mut [Block],
    ) {
        let b = 128 / self.k;
        let (mut j0, mut corr_at, mut d_at) = start;
        for part in out.chunks_mut(CHUNK_OTS) {
            let len = part.len();
            let cl = (b - 1) * padded(len).1;
            let dl = pattern.count_in(j0, len).div_ceil(8);
            self.expand_chunk(
                &corr[corr_at..corr_at + cl],
                &d[d_at..d_at + dl],
                pattern,
                j0,
                part,
            );
            (j0, corr_at, d_at) = (j0 + len, corr_at + cl, d_at + dl);
        }
    }

    /// [`SoftSpokenSender::send`] in two steps, for a caller that consumes the outputs a piece
    /// at a time: this reads the receiver's whole message for `n` OTs now (the same bytes as
    /// `send`, so the receiver can tell no difference and is never kept waiting), and the
    /// returned [`DeferredSend`] computes the zero-labels in order as they are asked for. It
    /// holds the message, `(128/k − 1)` bits per OT plus the choice corrections, instead of the
    /// 128 bits of every output: for the 12.8 M OTs of 100,000 ReLUs 50 MB instead of 205 MB.
    /// The sender is borrowed until the call's outputs are all handed out.
    pub fn send_deferred<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        n: usize,
    ) -> Result<DeferredSend<'_>, OtError> {
        let b = 128 / self.k;
        let chunk = |c: usize| (c * CHUNK_OTS, CHUNK_OTS.min(n - c * CHUNK_OTS));
        let chunks = n.div_ceil(CHUNK_OTS);
        let (mut corr_len, mut d_len) = (0, 0);
        for c in 0..chunks {
            let (j0, len) = chunk(c);
            corr_len += (b - 1) * padded(len).1;
            d_len += pattern.count_in(j0, len).div_ceil(8);
        }
        // Zeroed by the allocator: no sweep before the pages are populated below.
        let mut corr = crate::crypto::block::zeroed_blocks(corr_len);
        let mut d = vec![0u8; d_len];
        if n > 0 {
            recv_count(ch, "SoftSpoken OT", n)?;
            crate::crypto::buffer::prefault(&mut corr);
            let (mut at, mut d_at) = (0, 0);
            for c in 0..chunks {
                let (j0, len) = chunk(c);
                let cl = (b - 1) * padded(len).1;
                ch.recv(blocks_as_bytes_mut(&mut corr[at..at + cl]))?;
                let dl = pattern.count_in(j0, len).div_ceil(8);
                if dl > 0 {
                    ch.recv(&mut d[d_at..d_at + dl])?;
                }
                (at, d_at) = (at + cl, d_at + dl);
            }
        }
        self.count += n as u64;
        Ok(DeferredSend {
            sender: self,
            pattern,
            n,
            expanded: 0,
            handed: 0,
            corr,
            corr_at: 0,
            d,
            d_at: 0,
            spill: Vec::new(),
            spill_at: 0,
            helper: None,
        })
    }
}

/// The outputs of one SoftSpoken call whose message is already received
/// ([`SoftSpokenSender::send_deferred`]), handed out in order by [`DeferredSend::fill`]: the
/// zero-labels `send` would have written, computed one chunk of [`CHUNK_OTS`] at a time.
pub struct DeferredSend<'s> {
    sender: &'s mut SoftSpokenSender,
    pattern: ChoicePattern,
    /// OTs of the call.
    n: usize,
    /// OTs computed so far (whole chunks).
    expanded: usize,
    /// OTs handed out so far.
    handed: usize,
    /// Every chunk's column corrections, in order; the next chunk's start at `corr_at`.
    corr: Vec<Block>,
    corr_at: usize,
    /// Every chunk's choice corrections, in order; the next chunk's start at `d_at`.
    d: Vec<u8>,
    d_at: usize,
    /// A chunk computed beyond what the last fill asked for; its unread part starts at
    /// `spill_at`.
    spill: Vec<Block>,
    spill_at: usize,
    /// The sender of the second half of each request ([`halves`]), kept from one request to
    /// the next.
    helper: Option<Box<SoftSpokenSender>>,
}

impl Drop for DeferredSend<'_> {
    // The spill holds zero-labels: with the receiver's labels they would give Δ.
    fn drop(&mut self) {
        for b in &mut self.spill {
            zeroize::Zeroize::zeroize(&mut b.0);
        }
    }
}

impl fmt::Debug for DeferredSend<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredSend")
            .field("ots", &self.n)
            .field("handed", &self.handed)
            .finish_non_exhaustive()
    }
}

impl DeferredSend<'_> {
    /// OTs of the call not handed out yet.
    pub fn remaining(&self) -> usize {
        self.n - self.handed
    }

    /// Writes the call's next `out.len()` zero-labels (OTs `handed..handed + out.len()`) to
    /// `out`: exactly what [`SoftSpokenSender::send`] would have written there. Asking for more
    /// than [`DeferredSend::remaining`] is an error and hands out nothing.
    pub fn fill(&mut self, out: &mut [Block]) -> Result<(), OtError> {
        if out.len() > self.remaining() {
            return Err(OtError::LengthMismatch {
                choices: self.remaining(),
                outputs: out.len(),
            });
        }
        let b = 128 / self.sender.k;
        let from_spill = (self.spill.len() - self.spill_at).min(out.len());
        out[..from_spill].copy_from_slice(&self.spill[self.spill_at..self.spill_at + from_spill]);
        self.spill_at += from_spill;
        let mut o = from_spill;
        // The whole chunks the request covers, in two halves at the same time ([`halves`]).
        let left = self.n - self.expanded;
        let fit = if out.len() - o >= left {
            left
        } else {
            (out.len() - o) / CHUNK_OTS * CHUNK_OTS
        };
        let split = halves(fit);
        if split > 0 {
            let (pattern, n) = (self.pattern, self.n);
            // Where each half starts and the request ends: (OT, column corrections, choice
            // corrections).
            let mut at = (self.expanded, self.corr_at, self.d_at);
            let mut second = at;
            while at.0 < self.expanded + fit {
                if at.0 == self.expanded + split {
                    second = at;
                }
                let len = CHUNK_OTS.min(n - at.0);
                let cl = (b - 1) * padded(len).1;
                let dl = pattern.count_in(at.0, len).div_ceil(8);
                at = (at.0 + len, at.1 + cl, at.2 + dl);
            }
            let first = (self.expanded, self.corr_at, self.d_at);
            let sender = &mut *self.sender;
            let helper = match &mut self.helper {
                Some(h) => {
                    sender.reseat_ahead(h, split);
                    h
                }
                None => self.helper.insert(Box::new(sender.ahead(split))),
            };
            let (corr, d) = (&self.corr[..], &self.d[..]);
            let (out_a, out_b) = out[o..o + fit].split_at_mut(split);
            rayon::join(
                || sender.expand_range(pattern, first, corr, d, out_a),
                || helper.expand_range(pattern, second, corr, d, out_b),
            );
            // The second half's streams went furthest: they continue.
            std::mem::swap(&mut sender.prgs, &mut helper.prgs);
            (self.expanded, self.corr_at, self.d_at) = at;
            o += fit;
        }
        while o < out.len() {
            let (j0, len) = (self.expanded, CHUNK_OTS.min(self.n - self.expanded));
            let cl = (b - 1) * padded(len).1;
            let dl = self.pattern.count_in(j0, len).div_ceil(8);
            let corr = &self.corr[self.corr_at..self.corr_at + cl];
            let d = &self.d[self.d_at..self.d_at + dl];
            let want = out.len() - o;
            if want >= len {
                self.sender
                    .expand_chunk(corr, d, self.pattern, j0, &mut out[o..o + len]);
                o += len;
            } else {
                self.spill.resize(len, Block::ZERO);
                self.sender
                    .expand_chunk(corr, d, self.pattern, j0, &mut self.spill);
                out[o..].copy_from_slice(&self.spill[..want]);
                self.spill_at = want;
                o += want;
            }
            (self.expanded, self.corr_at, self.d_at) =
                (j0 + len, self.corr_at + cl, self.d_at + dl);
        }
        self.handed += out.len();
        Ok(())
    }
}

impl SoftSpokenReceiver {
    /// Runs the base OTs as their sender, offering each GGM tree's level sums.
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        k: usize,
        rng: &mut R,
    ) -> Result<Self, OtError> {
        let b = check_k(k)?;
        let mut pairs = Vec::with_capacity(128);
        let mut prgs = Vec::with_capacity(b << k);
        for i in 0..b {
            let (leaves, sums) = ggm_tree(Block::random(rng), i, k);
            pairs.extend(sums);
            prgs.extend(leaves.into_iter().map(Prg::from_seed));
        }
        base::send(ch, &pairs, rng)?;
        let (cols, u0, corr, leaves) = buffers(k);
        Ok(SoftSpokenReceiver {
            k,
            prgs,
            count: 0,
            cols,
            leaves,
            u0,
            corr,
            tail: Vec::new(),
        })
    }

    /// Runs `choices.len()` correlated OTs: `out[j]` becomes the sender's `q_j ⊕ b_j·Δ`. Where
    /// `pattern` marks OT `j` as chosen, `b_j = choices[j]` as given; elsewhere `choices[j]` is
    /// overwritten with the random bit the OT delivered. `out` must be as long as `choices`.
    /// (For few OTs, such as base OTs; large calls pass their bits packed to
    /// [`SoftSpokenReceiver::receive_packed`].)
    pub fn receive<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        choices: &mut [bool],
        out: &mut [Block],
    ) -> Result<(), OtError> {
        let mut bits = ChoiceBits::from_bools(choices);
        self.receive_packed(ch, pattern, &mut bits, out)?;
        for (j, c) in choices.iter_mut().enumerate() {
            *c = bits.get(j);
        }
        Ok(())
    }

    /// [`SoftSpokenReceiver::receive`] with the choice bits packed.
    pub fn receive_packed<C: Channel + ?Sized>(
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
        send_count(ch, n)?;
        let split = halves(n);
        let (out_a, out_b) = out.split_at_mut(split);
        // `split` is a whole number of chunks, so a multiple of 64.
        let (choices_a, choices_b) = choices.words_mut().split_at_mut(split / 64);
        if split == 0 {
            let mut send = |bytes: &[u8]| ch.send(bytes).map_err(OtError::from);
            self.receive_range(pattern, 0, choices_b, out_b, &mut send)?;
        } else {
            // The second half on its own receiver, its streams as far ahead as the first half
            // draws; its message waits in memory until the first half's is sent.
            let mut second = self.ahead(split);
            // Sized once: grown by doubling it would be copied and faulted in several times.
            let parts = 128 / self.k;
            let later_len: usize = (split..n)
                .step_by(CHUNK_OTS)
                .map(|j| {
                    let len = CHUNK_OTS.min(n - j);
                    16 * (parts - 1) * padded(len).1 + pattern.count_in(j, len).div_ceil(8)
                })
                .sum();
            let mut later = Vec::with_capacity(later_len);
            // Megabytes written once, from one thread: fault them in at once.
            crate::crypto::buffer::prefault(later.spare_capacity_mut());
            let (a, b) = rayon::join(
                || {
                    let mut send = |bytes: &[u8]| ch.send(bytes).map_err(OtError::from);
                    self.receive_range(pattern, 0, choices_a, out_a, &mut send)
                },
                || {
                    let mut keep = |bytes: &[u8]| {
                        later.extend_from_slice(bytes);
                        Ok(())
                    };
                    second.receive_range(pattern, split, choices_b, out_b, &mut keep)
                },
            );
            a?;
            b?;
            debug_assert_eq!(later.len(), later_len);
            ch.send(&later)?;
            // The second half's streams went furthest: they continue.
            std::mem::swap(&mut self.prgs, &mut second.prgs);
        }
        ch.flush()?;
        self.count += n as u64;
        Ok(())
    }

    /// A receiver whose leaf streams are [`Prg::ahead`] of these by the blocks that the call's
    /// first `ots` OTs (whole chunks) draw, with buffers of its own: for the second half of a
    /// call ([`halves`]).
    fn ahead(&self, ots: usize) -> SoftSpokenReceiver {
        let blocks = (ots / 128) as u128;
        let (cols, u0, corr, leaves) = buffers(self.k);
        SoftSpokenReceiver {
            k: self.k,
            prgs: self.prgs.iter().map(|p| p.ahead(blocks)).collect(),
            count: self.count,
            cols,
            leaves,
            u0,
            corr,
            tail: Vec::new(),
        }
    }

    /// Runs OTs `j0..j0 + out.len()` of a call (`j0` a multiple of [`CHUNK_OTS`]) chunk by
    /// chunk, handing each chunk's message to `send` in order; `choices` holds their bits,
    /// packed.
    fn receive_range(
        &mut self,
        pattern: ChoicePattern,
        j0: usize,
        choices: &mut [u64],
        out: &mut [Block],
        send: &mut dyn FnMut(&[u8]) -> Result<(), OtError>,
    ) -> Result<(), OtError> {
        for (c, part) in out.chunks_mut(CHUNK_OTS).enumerate() {
            // Outputs may be fresh memory (a site's labels: hundreds of MB): fault in a
            // chunk's pages at once rather than one by one as the transpose first writes them.
            crate::crypto::buffer::prefault(part);
            let at = c * CHUNK_OTS;
            let bs = &mut choices[at / 64..(at + part.len()).div_ceil(64)];
            self.receive_chunk(pattern, j0 + at, bs, part, send)?;
        }
        Ok(())
    }

    fn receive_chunk(
        &mut self,
        pattern: ChoicePattern,
        j0: usize,
        choices: &mut [u64],
        out: &mut [Block],
        send: &mut dyn FnMut(&[u8]) -> Result<(), OtError>,
    ) -> Result<(), OtError> {
        let (k, b) = (self.k, 128 / self.k);
        let (m, w) = padded(out.len());
        let cols = &mut self.cols[..128 * w];
        let corr = &mut self.corr[..(b - 1) * w];
        for i in 0..b {
            let u = if i == 0 {
                &mut self.u0[..w]
            } else {
                &mut corr[(i - 1) * w..i * w]
            };
            let v = &mut cols[i * k * w..(i + 1) * k * w];
            expand_fold(
                &mut self.prgs[i << k..(i + 1) << k],
                k,
                &mut self.leaves,
                u,
                v,
            );
        }
        let u0 = &self.u0[..w];
        for ci in corr.chunks_exact_mut(w) {
            xor_in_place(ci, u0);
        }
        send(blocks_as_bytes(corr))?;
        // The random choices are the bits of u₀; chosen ones are corrected, one bit each.
        let d = choice_corrections(pattern, j0, out.len(), blocks_as_words(u0), choices);
        if !d.is_empty() {
            send(&d)?;
        }
        transpose_into(blocks_as_bytes(cols), m, out, &mut self.tail);
        Ok(())
    }
}

/// Where a call of `n` OTs is cut in two halves computed at the same time (by both parties:
/// the receiver's whole call, the sender's deferred outputs a request at a time), in OTs: a
/// whole number of chunks, about half of them, the call's last (possibly partial) chunk in the
/// second half; 0 (no split) below [`PAR_MIN_CHUNKS`] chunks, where a second thread does not pay.
fn halves(n: usize) -> usize {
    let chunks = n.div_ceil(CHUNK_OTS);
    if chunks < PAR_MIN_CHUNKS {
        0
    } else {
        chunks / 2 * CHUNK_OTS
    }
}

/// Chunks of OTs below which a call (or a deferred request) runs on one thread.
const PAR_MIN_CHUNKS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ot::iknp::CHUNK_OTS;
    use crate::crypto::ot::test_support::{
        call_bytes, check_call, mismatched_counts_are_errors, ones, random_bits, run_call,
        setup_pair,
    };
    use crate::crypto::ot::{OtKind, OtReceiver};
    use crate::net::{mem_pair, MemChannel, Metered};
    use std::time::Duration;

    /// Both parties of SoftSpoken with parameter `k`, set up over memory.
    fn pair(
        k: u8,
    ) -> (
        crate::crypto::ot::test_support::Sender<MemChannel>,
        OtReceiver,
        MemChannel,
    ) {
        let (a, b) = mem_pair(Duration::from_secs(30));
        setup_pair(OtKind::SoftSpoken(k), a, b)
    }

    #[test]
    fn punctured_tree_has_every_leaf_but_one() {
        let mut rng = Prg::from_seed(Block(5));
        for k in [1usize, 2, 4, 8] {
            for alpha in [0usize, 1, (1 << k) - 1, (1 << k) / 3] {
                let (leaves, sums) = ggm_tree(Block::random(&mut rng), 3, k);
                let got: Vec<Block> = (1..=k)
                    .map(|level| {
                        let a = (alpha >> (k - level)) & 1;
                        if a == 0 {
                            sums[level - 1].1
                        } else {
                            sums[level - 1].0
                        }
                    })
                    .collect();
                let p = ggm_punctured(alpha, 3, k, &got);
                for x in 0..1 << k {
                    if x == alpha {
                        assert_eq!(p[x], Block::ZERO);
                    } else {
                        assert_eq!(p[x], leaves[x], "k {k} alpha {alpha} leaf {x}");
                    }
                }
            }
        }
    }

    /// The tree fold equals the definition: one pass per leaf and column, over widths that
    /// are below, equal to and not a multiple of a piece.
    #[test]
    fn expand_fold_is_the_sum_over_leaves_with_each_bit_set() {
        for k in [1usize, 2, 4, 8] {
            let p = piece_blocks(k);
            for w in [1usize, p, 2 * p + 3] {
                let seeds: Vec<Block> = (0..1u128 << k).map(|x| Block(x * 77 + 5)).collect();
                let mut prgs: Vec<Prg> = seeds.iter().map(|&s| Prg::from_seed(s)).collect();
                let mut scratch = vec![Block::ZERO; p << k];
                let (mut u, mut v) = (vec![Block::ONES; w], vec![Block::ONES; k * w]);
                expand_fold(&mut prgs, k, &mut scratch, &mut u, &mut v);
                let (mut u2, mut v2) = (vec![Block::ZERO; w], vec![Block::ZERO; k * w]);
                for (x, &s) in seeds.iter().enumerate() {
                    let mut r = vec![Block::ZERO; w];
                    Prg::from_seed(s).fill_blocks(&mut r);
                    xor_in_place(&mut u2, &r);
                    for b in (0..k).filter(|b| (x >> b) & 1 == 1) {
                        xor_in_place(&mut v2[b * w..(b + 1) * w], &r);
                    }
                }
                assert_eq!((u, v), (u2, v2), "k {k} w {w}");
                // The streams moved on by exactly w blocks.
                let mut next = Prg::from_seed(seeds[0]);
                next.fill_blocks(&mut vec![Block::ZERO; w]);
                assert_eq!(prgs[0].next_block(), next.next_block());
            }
        }
    }

    #[test]
    fn correlation_and_choices_for_every_k_and_pattern() {
        let mut rng = Prg::from_entropy();
        for k in [1u8, 2, 4, 8] {
            let (mut sender, mut r, mut chr) = pair(k);
            let d = sender.2;
            for (n, pattern) in [
                (1usize, ChoicePattern::ALL_RANDOM),
                (1000, ChoicePattern::ALL_CHOSEN),
                (
                    CHUNK_OTS + 333,
                    ChoicePattern {
                        period: 128,
                        chosen: 64,
                    },
                ),
                (
                    2 * CHUNK_OTS,
                    ChoicePattern {
                        period: 10,
                        chosen: 3,
                    },
                ),
            ] {
                let call;
                (sender, call) =
                    run_call(sender, &mut r, &mut chr, pattern, random_bits(n, &mut rng));
                let random = check_call(&call, d, pattern, &format!("k {k} n {n}"));
                if random.len() > 500 {
                    let ones = ones(&random);
                    assert!(ones > random.len() / 3 && ones < 2 * random.len() / 3);
                }
            }
        }
    }

    /// Deferred outputs, handed out in pieces that cut across chunks, are the ones `send`
    /// would give: the correlation holds, and a plain call afterwards continues the streams.
    #[test]
    fn deferred_outputs_in_pieces_keep_the_correlation() {
        let mut rng = Prg::from_entropy();
        let pattern = ChoicePattern {
            period: 128,
            chosen: 64,
        };
        for k in [4u8, 8] {
            let ((mut s, mut chs, d), mut r, mut chr) = pair(k);
            // Calls of at least `PAR_MIN_CHUNKS` chunks and requests covering as many run in
            // two halves at once (the first call's last two requests, the second of them on the
            // first's helper moved ahead); the calls after them continue the streams.
            let sizes = [
                17 * CHUNK_OTS + 333,
                0,
                1000,
                2 * CHUNK_OTS + 333,
                5 * CHUNK_OTS,
            ];
            let h = std::thread::spawn(move || {
                let mut outs = Vec::new();
                for (call, &n) in sizes.iter().enumerate() {
                    let mut q = vec![Block::ZERO; n];
                    if call == 2 {
                        s.send(&mut chs, pattern, &mut q).unwrap();
                    } else {
                        let mut deferred = s.send_deferred(&mut chs, pattern, n).unwrap();
                        let mut at = 0;
                        let pieces = [
                            1,
                            5000,
                            CHUNK_OTS + 7,
                            4 * CHUNK_OTS + 5,
                            6 * CHUNK_OTS,
                            usize::MAX,
                        ];
                        for piece in pieces {
                            let m = piece.min(deferred.remaining());
                            let mut msg = Vec::new();
                            deferred.fill(&mut q[at..at + m], &mut msg).unwrap();
                            // SoftSpoken has nothing more to send.
                            assert!(msg.is_empty());
                            at += m;
                        }
                        assert_eq!((at, deferred.remaining()), (n, 0));
                        assert!(matches!(
                            deferred.fill(&mut [Block::ZERO], &mut Vec::new()),
                            Err(OtError::LengthMismatch { .. })
                        ));
                    }
                    outs.push(q);
                }
                outs
            });
            let mut got = Vec::new();
            for &n in &sizes {
                let want: Vec<bool> = (0..n).map(|_| rng.next_u32() & 1 == 1).collect();
                let mut choices = ChoiceBits::from_bools(&want);
                let mut tl = vec![Block::ZERO; n];
                r.receive(&mut chr, pattern, &mut choices, &mut tl).unwrap();
                got.push((choices.to_bools(), tl));
            }
            let outs = h.join().unwrap();
            for ((choices, tl), q) in got.iter().zip(&outs) {
                for j in 0..q.len() {
                    assert_eq!(tl[j], q[j] ^ d.select(choices[j]), "k {k} OT {j}");
                }
            }
        }
    }

    #[test]
    fn bytes_per_ot_are_128_over_k_minus_one_plus_chosen_bits() {
        let (a, b) = mem_pair(Duration::from_secs(30));
        let (sender, r, chr) = setup_pair(OtKind::SoftSpoken(4), Metered::new(a), Metered::new(b));
        let n = 128 * 1000;
        let pattern = ChoicePattern {
            period: 128,
            chosen: 64,
        };
        let (recv, sent) = call_bytes(sender, r, chr, pattern, n);
        // 31 columns of n bits, n/2 chosen bits, the 8-byte count; nothing back.
        assert_eq!(recv, (31 * n / 8 + n / 16 + 8) as u64);
        assert_eq!(sent, 0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (mut a, _b) = mem_pair(Duration::from_millis(100));
        let mut rng = Prg::from_entropy();
        assert!(matches!(
            SoftSpokenSender::setup(&mut a, 4, Block(2), &mut rng),
            Err(OtError::InvalidDelta)
        ));
        for k in [0usize, 3, 9] {
            assert!(matches!(
                SoftSpokenReceiver::setup(&mut a, k, &mut rng),
                Err(OtError::Parameter(_))
            ));
        }
        let (sender, mut r, mut chr) = pair(2);
        mismatched_counts_are_errors(sender, &mut r, &mut chr);
        let OtReceiver::SoftSpoken(r) = r else {
            unreachable!("a SoftSpoken pair")
        };
        assert_eq!(
            format!("{r:?}"),
            "SoftSpokenReceiver { k: 2, ots_run: 3, .. }"
        );
    }
}
