//! The sparse VOLE of silent OT: [`TREES`] GGM trees, each a punctured PRF, give the garbler a
//! pseudorandom vector `v` and the evaluator `w = v ⊕ e·Δ` for a regular noise vector `e` (one
//! 1 per tree, at the evaluator's secret puncture point).
//!
//! # Protocol (semi-honest; Boyle et al., CCS 2019; Yang et al., CCS 2020)
//!
//! For each tree of depth `d` the garbler expands a fresh random root into `2^d` leaves with the
//! length-doubling PRG `G(s) = (π₀(s) ⊕ s, π₁(s) ⊕ s)` (fixed-key AES under two public keys, the
//! Davies–Meyer construction emp-ot's Ferret uses) and, for each level `l`, forms `L_l` and `R_l`,
//! the XORs of all left and of all right children of that level. One 1-out-of-2 OT per level
//! hands the evaluator the side *off* its path: the `d` OTs of a tree come from correlated OT
//! (SoftSpoken with random choice bits `c_l`; the garbler holds `q`, the evaluator
//! `q ⊕ c_l·Δ`), turned into chosen-message OT by the tweakable circular correlation-robust hash
//! `H` (GKWY20): the garbler sends `L_l ⊕ H(τ, q)` and `R_l ⊕ H(τ, q ⊕ Δ)` with a tweak `τ` unique
//! over the life of the setup, and the evaluator opens the `c_l` side. Its path bit at level `l`
//! is therefore `1 − c_l`: the puncture point `α` is the complement of its random choice bits,
//! uniform and known only to it. From the level sums it rebuilds every node off the path
//! (each level: expand the known nodes, then the sibling of the path node is the received
//! sum minus the known nodes on its side).
//!
//! Finally the garbler sends `Δ ⊕ ⊕_x v_x` per tree, from which the evaluator gets
//! `w_α = v_α ⊕ Δ`. The vector `v` of the correlation is the leaves with their least
//! significant bit cleared, so that after the linear code the garbler's outputs have lsb 0 and
//! the evaluator reads its random choice bit as the lsb of its output (Δ has lsb 1). The
//! evaluator clears its leaves' lsb; the garbler leaves its own as they are and clears its
//! outputs' instead: the code acts on each bit position of the blocks separately, so clearing
//! the lsb before or after it gives the same outputs, and the cleared leaves' XOR that it sends
//! is that of its last level's two sums, lsb cleared (no pass over the leaves). The evaluator
//! learns nothing new by the lsb: with any correlated OT it learns the colour bit of its own
//! input wires, which is `lsb(q) ⊕ b`.
//!
//! Bytes per tree: the `d` base OTs (SoftSpoken's `128/k − 1` bits each) and `2d + 1` blocks.
//!
//! # Side channels
//!
//! The garbler's work does not depend on the evaluator's secret at all. The evaluator's work
//! has no branch on `α`, but it reads and writes the nodes at `α`'s path by index, so its
//! memory access pattern (cache timing, observable only by a co-resident process) depends on
//! `α`; nothing it sends does.

use std::sync::LazyLock;

use super::super::iknp::{mask, OT_TWEAK_BIT};
use super::super::OtError;
#[cfg(target_arch = "x86_64")]
use crate::crypto::vaes::RoundKeys;
use crate::crypto::{Block, BlockChannel, FixedKeyAes, Prg, FIXED_KEY_AES};
use crate::net::Channel;

/// Trees per chunk: the weight `t` of the regular noise.
pub const TREES: usize = 128;

/// Set, with [`OT_TWEAK_BIT`], in the tweaks of the level-sum OTs: the chosen-message tweaks of
/// IKNP have bits 64..127 clear and the garbling tweaks bit 127 clear, so none meets another
/// under the same Δ.
const LEVEL_TWEAK_BIT: u128 = 1 << 126;

/// The two public AES keys of the GGM PRG: π under the fixed key of 0 and of 1.
static GGM_AES: LazyLock<[FixedKeyAes; 2]> = LazyLock::new(|| {
    [
        FixedKeyAes::new(FIXED_KEY_AES.encrypt(Block(0))),
        FixedKeyAes::new(FIXED_KEY_AES.encrypt(Block(1))),
    ]
});

/// The GGM PRG's keys for the VAES path, where the CPU has it.
#[cfg(target_arch = "x86_64")]
static GGM_VAES: LazyLock<Option<[RoundKeys; 2]>> = LazyLock::new(|| {
    Some([
        RoundKeys::for_key(FIXED_KEY_AES.encrypt(Block(0)))?,
        RoundKeys::for_key(FIXED_KEY_AES.encrypt(Block(1)))?,
    ])
});

/// Parents expanded per AES batch.
const LEVEL_BATCH: usize = 64;

/// Parents per pass of [`expand_level_vaes`]: four registers of four blocks under each key,
/// eight AES streams in flight.
#[cfg(target_arch = "x86_64")]
const VAES_PARENTS: usize = 16;

/// Expands the `parents` nodes at the front of `buf` into their children in place (node `i`'s
/// at `2i` and `2i + 1`) and returns the XORs of the left and of the right children.
fn expand_level(buf: &mut [Block], parents: usize) -> (Block, Block) {
    #[cfg(target_arch = "x86_64")]
    if let Some(keys) = &*GGM_VAES {
        // SAFETY: the keys exist only if the CPU has the features the function enables.
        return unsafe { expand_level_vaes(keys, buf, parents) };
    }
    expand_level_portable(buf, parents)
}

/// [`expand_level`] on VAES, four blocks per instruction, from the top down as the portable
/// path; the fewer than [`VAES_PARENTS`] parents left over (all of a tree's top four levels)
/// run one register at a time, the last under a load and store mask. Nodes pass only through
/// registers (no stack copies to wipe).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,vaes")]
fn expand_level_vaes(keys: &[RoundKeys; 2], buf: &mut [Block], parents: usize) -> (Block, Block) {
    use core::arch::x86_64::*;
    assert!(buf.len() >= 2 * parents);
    let rk: [[__m512i; 11]; 2] =
        core::array::from_fn(|k| core::array::from_fn(|i| _mm512_broadcast_i32x4(keys[k].0[i])));
    // Children of lanes 0, 1 and of lanes 2, 3 as (left, right) pairs: 64-bit indices into
    // (left ‖ right).
    let first = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    let second = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    let (mut sl, mut sr) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    let mut end = parents;
    let base = buf.as_mut_ptr();
    while end >= VAES_PARENTS {
        let start = end - VAES_PARENTS;
        // SAFETY: parents `start..end` lie in `buf` (end ≤ parents ≤ buf.len() / 2); all are
        // loaded before any child is stored, and the children `2·start..2·end` overwrite no
        // parent below `start`. Loads and stores are unaligned.
        unsafe {
            let p: [__m512i; 4] =
                core::array::from_fn(|j| _mm512_loadu_si512(base.add(start + 4 * j).cast()));
            let mut l = p;
            let mut r = p;
            for j in 0..4 {
                l[j] = _mm512_xor_si512(l[j], rk[0][0]);
                r[j] = _mm512_xor_si512(r[j], rk[1][0]);
            }
            for (k0, k1) in rk[0][1..10].iter().zip(&rk[1][1..10]) {
                for j in 0..4 {
                    l[j] = _mm512_aesenc_epi128(l[j], *k0);
                    r[j] = _mm512_aesenc_epi128(r[j], *k1);
                }
            }
            for j in 0..4 {
                let lc = _mm512_xor_si512(_mm512_aesenclast_epi128(l[j], rk[0][10]), p[j]);
                let rc = _mm512_xor_si512(_mm512_aesenclast_epi128(r[j], rk[1][10]), p[j]);
                sl = _mm512_xor_si512(sl, lc);
                sr = _mm512_xor_si512(sr, rc);
                let out = base.add(2 * (start + 4 * j));
                _mm512_storeu_si512(out.cast(), _mm512_permutex2var_epi64(lc, first, rc));
                _mm512_storeu_si512(out.add(4).cast(), _mm512_permutex2var_epi64(lc, second, rc));
            }
        }
        end = start;
    }
    while end > 0 {
        let start = end.saturating_sub(4);
        // Two mask bits (64-bit elements) per block.
        let lanes = |blocks: usize| ((1u16 << (2 * blocks)) - 1) as __mmask8;
        let (parents, children) = (lanes(end - start), 2 * (end - start));
        // SAFETY: the masks select parents `start..end` and children `2·start..2·end`, inside
        // `buf` (end ≤ parents ≤ buf.len() / 2); masked-off lanes are neither read nor
        // written. As above, the parents are loaded before their children are stored and no
        // child lands below `start`.
        unsafe {
            let p = _mm512_maskz_loadu_epi64(parents, base.add(start).cast());
            let mut l = _mm512_xor_si512(p, rk[0][0]);
            let mut r = _mm512_xor_si512(p, rk[1][0]);
            for (k0, k1) in rk[0][1..10].iter().zip(&rk[1][1..10]) {
                l = _mm512_aesenc_epi128(l, *k0);
                r = _mm512_aesenc_epi128(r, *k1);
            }
            let lc = _mm512_xor_si512(_mm512_aesenclast_epi128(l, rk[0][10]), p);
            let rc = _mm512_xor_si512(_mm512_aesenclast_epi128(r, rk[1][10]), p);
            // The empty lanes hold AES of zero: kept out of the sums.
            sl = _mm512_mask_xor_epi64(sl, parents, sl, lc);
            sr = _mm512_mask_xor_epi64(sr, parents, sr, rc);
            let out = base.add(2 * start);
            let low = children.min(4);
            _mm512_mask_storeu_epi64(
                out.cast(),
                lanes(low),
                _mm512_permutex2var_epi64(lc, first, rc),
            );
            if children > 4 {
                _mm512_mask_storeu_epi64(
                    out.add(4).cast(),
                    lanes(children - 4),
                    _mm512_permutex2var_epi64(lc, second, rc),
                );
            }
        }
        end = start;
    }
    let fold = |v: __m512i| {
        let mut lanes = [Block::ZERO; 4];
        // SAFETY: four blocks are 64 writable bytes; the store is unaligned.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), v) };
        let x = lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
        wipe(&mut lanes);
        x
    };
    (fold(sl), fold(sr))
}

/// [`expand_level`] through the `aes` crate.
fn expand_level_portable(buf: &mut [Block], parents: usize) -> (Block, Block) {
    let [k0, k1] = &*GGM_AES;
    let (mut p, mut l, mut r) = (
        [Block::ZERO; LEVEL_BATCH],
        [Block::ZERO; LEVEL_BATCH],
        [Block::ZERO; LEVEL_BATCH],
    );
    let mut sums = (Block::ZERO, Block::ZERO);
    // From the top down, so that no parent is overwritten before it is expanded.
    let mut end = parents;
    while end > 0 {
        let start = end.saturating_sub(LEVEL_BATCH);
        let b = end - start;
        p[..b].copy_from_slice(&buf[start..end]);
        l[..b].copy_from_slice(&p[..b]);
        r[..b].copy_from_slice(&p[..b]);
        k0.encrypt_blocks(&mut l[..b]);
        k1.encrypt_blocks(&mut r[..b]);
        for (k, children) in buf[2 * start..2 * end].chunks_exact_mut(2).enumerate() {
            let (lc, rc) = (l[k] ^ p[k], r[k] ^ p[k]);
            children[0] = lc;
            children[1] = rc;
            sums.0 ^= lc;
            sums.1 ^= rc;
        }
        end = start;
    }
    for x in p.iter_mut().chain(&mut l).chain(&mut r) {
        zeroize::Zeroize::zeroize(&mut x.0);
    }
    sums
}

/// The garbler's full tree: `leaves` (`2^depth`) from `root`, and per level the XOR of the left
/// and of the right children.
pub(crate) fn expand_tree(root: Block, leaves: &mut [Block], sums: &mut [(Block, Block)]) {
    leaves[0] = root;
    for (level, s) in sums.iter_mut().enumerate() {
        *s = expand_level(leaves, 1 << level);
    }
}

/// The evaluator's tree: every leaf but `alpha` (left zero) from `off[l]`, the sum of the side
/// off the path to `alpha` at each level.
pub(crate) fn expand_punctured(alpha: usize, off: &[Block], leaves: &mut [Block]) {
    let depth = off.len();
    leaves[0] = Block::ZERO;
    for (level, &k) in off.iter().enumerate() {
        // The path node of the level above is zero: its children are garbage, taken out below.
        let (x0, x1) = expand_level(leaves, 1 << level);
        let shift = depth - 1 - level;
        let a = (alpha >> shift) & 1;
        let p = alpha >> (shift + 1);
        let sibling = 2 * p + (1 - a);
        let side = Block(x0.0 ^ ((x0.0 ^ x1.0) & mask(a == 0)));
        // Every node of the level is touched, under masks: the positions on the path are the
        // client's secret noise position, and indexing by them would show in the cache.
        let fix = k ^ side;
        for (i, node) in leaves[..2 << level].iter_mut().enumerate() {
            let on_path = mask(i == 2 * p + a);
            node.0 = (node.0 ^ (fix.0 & mask(i == sibling))) & !on_path;
        }
    }
}

/// The tweak of level-sum OT number `j` of the setup.
#[inline]
fn tweak(j: u64) -> Block {
    Block(OT_TWEAK_BIT | LEVEL_TWEAK_BIT | j as u128)
}

/// Blocks of the garbler's message for `depth`-deep trees.
fn message_blocks(depth: usize) -> usize {
    TREES * (2 * depth + 1)
}

pub(crate) use crate::crypto::block::wipe;

/// The garbler's side of one sparse VOLE: fills `v` (`TREES · 2^depth` blocks, the leaves) and
/// lets the evaluator obtain `v₀ ⊕ e·Δ`, where `v₀` is `v` with every lsb cleared (which the
/// caller does, before or after the linear code: see the module doc). `q` holds the zero-labels of the chunk's
/// `TREES · depth` base COTs (random choices; wiped here), `first_tweak` numbers the setup's
/// level-sum OTs run before this call (both parties count them). Sends one message and no
/// more: nothing here waits for the evaluator.
pub(crate) fn vole_send<C: Channel + ?Sized>(
    ch: &mut C,
    q: &mut [Block],
    delta: Block,
    depth: usize,
    first_tweak: u64,
    rng: &mut Prg,
    v: &mut [Block],
) -> Result<(), OtError> {
    debug_assert_eq!(q.len(), TREES * depth);
    debug_assert_eq!(v.len(), TREES << depth);
    let mut msg = vec![Block::ZERO; message_blocks(depth)];
    let mut sums = vec![(Block::ZERO, Block::ZERO); depth];
    let (mut tweaks, mut xs, mut scratch) = (
        vec![Block::ZERO; 2 * depth],
        vec![Block::ZERO; 2 * depth],
        vec![Block::ZERO; 2 * depth],
    );
    for (t, (leaves, out)) in v
        .chunks_exact_mut(1 << depth)
        .zip(msg.chunks_exact_mut(2 * depth + 1))
        .enumerate()
    {
        let mut root = Block::random(rng);
        expand_tree(root, leaves, &mut sums);
        zeroize::Zeroize::zeroize(&mut root.0);
        // The leaves' XOR is the last level's left sum plus its right sum.
        let (sl, sr) = sums[depth - 1];
        let total = delta ^ Block((sl.0 ^ sr.0) & !1);
        for l in 0..depth {
            let j = t * depth + l;
            tweaks[2 * l] = tweak(first_tweak + j as u64);
            tweaks[2 * l + 1] = tweaks[2 * l];
            xs[2 * l] = q[j];
            xs[2 * l + 1] = q[j] ^ delta;
        }
        FIXED_KEY_AES.tccr_batch(&tweaks, &mut xs, &mut scratch);
        for (l, (sl, sr)) in sums.iter().enumerate() {
            out[2 * l] = xs[2 * l] ^ *sl;
            out[2 * l + 1] = xs[2 * l + 1] ^ *sr;
        }
        out[2 * depth] = total;
    }
    for (a, b) in sums.iter_mut() {
        zeroize::Zeroize::zeroize(&mut a.0);
        zeroize::Zeroize::zeroize(&mut b.0);
    }
    wipe(q);
    wipe(&mut xs);
    wipe(&mut scratch);
    ch.send_blocks(&msg)?;
    ch.flush()?;
    Ok(())
}

/// The evaluator's side of [`vole_send`]: fills `w` (`TREES · 2^depth` blocks) with
/// `v ⊕ e·Δ`, where `e` has one 1 per tree of `2^depth` leaves. `c` and `r` are the choice bits
/// and labels of the chunk's base COTs (`r` is wiped here, `c` by the caller).
pub(crate) fn vole_receive<C: Channel + ?Sized>(
    ch: &mut C,
    c: &[bool],
    r: &mut [Block],
    depth: usize,
    first_tweak: u64,
    w: &mut [Block],
) -> Result<(), OtError> {
    let m = TREES * depth;
    debug_assert_eq!((c.len(), r.len()), (m, m));
    debug_assert_eq!(w.len(), TREES << depth);
    let mut msg = vec![Block::ZERO; message_blocks(depth)];
    ch.recv_blocks(&mut msg)?;
    let tweaks: Vec<Block> = (0..m).map(|j| tweak(first_tweak + j as u64)).collect();
    let mut scratch = vec![Block::ZERO; m];
    FIXED_KEY_AES.tccr_batch(&tweaks, r, &mut scratch);
    let mut off = vec![Block::ZERO; depth];
    for (t, (leaves, got)) in w
        .chunks_exact_mut(1 << depth)
        .zip(msg.chunks_exact(2 * depth + 1))
        .enumerate()
    {
        let mut alpha = 0usize;
        for (l, o) in off.iter_mut().enumerate() {
            let j = t * depth + l;
            alpha = (alpha << 1) | usize::from(!c[j]);
            let (m0, m1) = (got[2 * l], got[2 * l + 1]);
            *o = Block(m0.0 ^ ((m0.0 ^ m1.0) & mask(c[j]))) ^ r[j];
        }
        expand_punctured(alpha, &off, leaves);
        let mut total = got[2 * depth];
        for leaf in leaves.iter_mut() {
            leaf.0 &= !1;
            total ^= *leaf;
        }
        // The punctured leaf takes the total, under masks over every leaf (as above).
        for (i, leaf) in leaves.iter_mut().enumerate() {
            leaf.0 ^= (leaf.0 ^ total.0) & mask(i == alpha);
        }
        zeroize::Zeroize::zeroize(&mut alpha);
    }
    wipe(&mut off);
    wipe(r);
    wipe(&mut scratch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ot::{ChoicePattern, SoftSpokenReceiver, SoftSpokenSender};
    use crate::net::mem_pair;
    use std::time::Duration;

    /// The VAES level expansion equals the portable one (children and level sums), for every
    /// count of parents left over after the full passes, and nothing past the children is
    /// written.
    #[test]
    fn vaes_and_portable_levels_agree() {
        let mut rng = Prg::from_seed(Block(4));
        for parents in (1usize..=40).chain([64, 100, 1 << 10]) {
            let mut a = vec![Block::ONES; 2 * parents + 3];
            rng.fill_blocks(&mut a[..parents]);
            let mut b = a.clone();
            let sa = expand_level(&mut a, parents);
            let sb = expand_level_portable(&mut b, parents);
            assert_eq!((sa, &a), (sb, &b), "{parents} parents");
            assert!(a[2 * parents..].iter().all(|&x| x == Block::ONES));
        }
    }

    /// The evaluator's leaves equal the garbler's everywhere but at the puncture point, for
    /// every depth and puncture points at both ends and inside.
    #[test]
    fn punctured_tree_has_every_leaf_but_one() {
        let mut rng = Prg::from_seed(Block(9));
        for depth in [1usize, 2, 5, 10] {
            let size = 1 << depth;
            for alpha in [0, 1, size - 1, size / 3, size / 2] {
                let mut full = vec![Block::ZERO; size];
                let mut sums = vec![(Block::ZERO, Block::ZERO); depth];
                expand_tree(Block::random(&mut rng), &mut full, &mut sums);
                // Every level sum is the XOR of that level's left (right) nodes: at the last
                // level, the even (odd) leaves.
                let even = full.iter().step_by(2).fold(Block::ZERO, |a, b| a ^ *b);
                assert_eq!(sums[depth - 1].0, even);
                let off: Vec<Block> = (0..depth)
                    .map(|l| {
                        let a = (alpha >> (depth - 1 - l)) & 1;
                        if a == 0 {
                            sums[l].1
                        } else {
                            sums[l].0
                        }
                    })
                    .collect();
                let mut part = vec![Block::ONES; size];
                expand_punctured(alpha, &off, &mut part);
                for x in 0..size {
                    if x == alpha {
                        assert_eq!(part[x], Block::ZERO);
                    } else {
                        assert_eq!(part[x], full[x], "depth {depth} alpha {alpha} leaf {x}");
                    }
                }
            }
        }
    }

    /// w = v₀ ⊕ e·Δ with exactly one noise position per tree, for `v₀` the garbler's leaves
    /// with their lsb cleared; the evaluator's leaves come with their lsb cleared but at the
    /// noise.
    #[test]
    fn sparse_vole_correlation() {
        let depth = 6;
        let size = TREES << depth;
        let (mut a, mut b) = mem_pair(Duration::from_secs(30));
        let m = TREES * depth;
        // Both chunks' base COTs in one call, then the two messages back to back: the
        // evaluator sends nothing between them.
        let t = std::thread::spawn(move || {
            let mut rng = Prg::from_entropy();
            let delta = Block::random(&mut rng).with_lsb(true);
            let mut base = SoftSpokenSender::setup(&mut a, 8, delta, &mut rng).unwrap();
            let mut q = vec![Block::ZERO; 2 * m];
            base.send(&mut a, ChoicePattern::ALL_RANDOM, &mut q)
                .unwrap();
            let (q1, q2) = q.split_at_mut(m);
            let mut v = vec![Block::ZERO; size];
            vole_send(&mut a, q1, delta, depth, 0, &mut rng, &mut v).unwrap();
            // The second chunk continues the tweaks.
            let mut v2 = vec![Block::ZERO; size];
            vole_send(&mut a, q2, delta, depth, m as u64, &mut rng, &mut v2).unwrap();
            (delta, v, v2)
        });
        let mut base = SoftSpokenReceiver::setup(&mut b, 8, &mut Prg::from_entropy()).unwrap();
        let mut c = vec![false; 2 * m];
        let mut r = vec![Block::ZERO; 2 * m];
        base.receive(&mut b, ChoicePattern::ALL_RANDOM, &mut c, &mut r)
            .unwrap();
        let mut w = vec![Block::ZERO; size];
        vole_receive(&mut b, &c[..m], &mut r[..m], depth, 0, &mut w).unwrap();
        let mut w2 = vec![Block::ZERO; size];
        vole_receive(&mut b, &c[m..], &mut r[m..], depth, m as u64, &mut w2).unwrap();
        let (delta, v, v2) = t.join().unwrap();
        let mut punctures = Vec::new();
        for (v, w) in [(&v, &w), (&v2, &w2)] {
            let v0: Vec<Block> = v.iter().map(|l| l.with_lsb(false)).collect();
            for (tree, (vt, wt)) in v0.chunks(1 << depth).zip(w.chunks(1 << depth)).enumerate() {
                let noisy: Vec<usize> = (0..1 << depth).filter(|&x| vt[x] != wt[x]).collect();
                assert_eq!(noisy.len(), 1, "tree {tree}");
                let x = noisy[0];
                assert_eq!(wt[x], vt[x] ^ delta);
                assert!(wt.iter().enumerate().all(|(y, l)| l.lsb() == (y == x)));
                punctures.push(x);
            }
        }
        // The puncture points are the evaluator's random bits: 256 draws from 64 values.
        punctures.sort_unstable();
        punctures.dedup();
        assert!(punctures.len() > 48, "{}", punctures.len());
    }
}
