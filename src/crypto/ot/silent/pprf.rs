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
//! sum minus the known nodes on its side). It expands a zero in place of each unknown path
//! node and applies each level's correction (sibling fixed, path node zeroed) as the next
//! level's expansion loads the nodes, so its tree costs what the garbler's does plus one pass
//! over the leaves, which fixes the last level and clears the lsb.
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
//! does not depend on its puncture point `α` either, in time or in memory access: no branch
//! and no memory index is derived from `α` or its path bits. The corrections at `α`'s path
//! are applied by comparing every node's index with the secret positions, under AVX-512
//! compare masks or scalar all-ones/all-zero masks (`mask`), in the passes that touch every
//! node of every level anyway; the values selected by a path bit (a level sum, the zero
//! seed's children) are picked the same way (what the compiler emits for these masks is not
//! checked by a tool). Nothing it sends depends on `α`.

use std::sync::LazyLock;

use super::super::iknp::{mask, OT_TWEAK_BIT};

/// [`mask`] of a bit derived from the puncture point, hidden from the optimizer: where such a
/// mask picks between two values that sit in memory, LLVM turned the masked select into a
/// select of their addresses and one load (a load whose cache line can depend on the bit; seen
/// in the compiled `punctured_tree` by the session-8 review). Best effort, as
/// `core::hint::black_box` is; the per-node masks of the portable loops compile to `cmov` on
/// values and are left alone for speed.
#[inline(always)]
fn opaque_mask(bit: bool) -> u128 {
    core::hint::black_box(mask(bit))
}
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

/// The GGM PRG's children of the zero seed, `(π₀(0), π₁(0))`: the evaluator expands a zero in
/// place of each node on its path, and the leaf at its puncture point comes out as one of these.
static ZERO_CHILDREN: LazyLock<[Block; 2]> = LazyLock::new(|| {
    [
        GGM_AES[0].encrypt(Block::ZERO),
        GGM_AES[1].encrypt(Block::ZERO),
    ]
});

/// Which implementation runs the level expansions and the evaluator's last pass: chosen once per
/// process ([`Route::detect`]); the tests run both.
#[derive(Clone, Copy)]
enum Route {
    /// The `aes` crate and scalar code.
    Portable,
    /// VAES and AVX-512 under the GGM keys.
    #[cfg(target_arch = "x86_64")]
    Vaes(&'static [RoundKeys; 2]),
}

impl Route {
    /// VAES where the CPU has it.
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = &*GGM_VAES {
            return Route::Vaes(keys);
        }
        Route::Portable
    }
}

/// The evaluator's correction of one level's nodes, applied as the next level expands them:
/// the node at `sibling` (off the path) takes `fix` XORed in, which turns it from what the
/// expansion gave into the received sum of its side minus the other nodes there, and the node at
/// `path` (the path to the puncture point, unknown) becomes zero. Both positions are secret: the
/// kernels compare every node's index with them under masks and index memory by neither.
#[derive(Clone, Copy)]
struct Fixup {
    sibling: usize,
    path: usize,
    fix: Block,
}

impl Fixup {
    /// No correction (the garbler's levels, the evaluator's root level): no index matches.
    const NONE: Fixup = Fixup {
        sibling: usize::MAX,
        path: usize::MAX,
        fix: Block::ZERO,
    };

    /// Whether this is [`Fixup::NONE`].
    #[cfg(target_arch = "x86_64")]
    fn is_none(&self) -> bool {
        self.sibling == usize::MAX
    }

    /// The correction of the evaluator's nodes at depth `level + 1` (the children of level
    /// `level`'s parents) for the puncture point `alpha` of a `depth`-deep tree: `off` is the
    /// received sum of the side off the path, `(x0, x1)` the sums of the left and right children
    /// the expansion gave. Also returns the path bit at that depth.
    fn at(
        alpha: usize,
        depth: usize,
        level: usize,
        off: Block,
        sums: (Block, Block),
    ) -> (Self, usize) {
        let shift = depth - 1 - level;
        let a = (alpha >> shift) & 1;
        let path = alpha >> shift;
        // The sibling lies on side 1 − a: its expanded sum holds the expanded sibling.
        let (x0, x1) = sums;
        let side = Block(x0.0 ^ ((x0.0 ^ x1.0) & opaque_mask(a == 0)));
        let fixup = Fixup {
            sibling: path ^ 1,
            path,
            fix: off ^ side,
        };
        (fixup, a)
    }
}

/// Parents expanded per AES batch.
const LEVEL_BATCH: usize = 64;

/// Parents per pass of [`expand_level_vaes`]: four registers of four blocks under each key,
/// eight AES streams in flight.
#[cfg(target_arch = "x86_64")]
const VAES_PARENTS: usize = 16;

/// Expands the `parents` nodes at the front of `buf`, corrected by `fixup`, into their children
/// in place (node `i`'s at `2i` and `2i + 1`) and returns the XORs of the left and of the right
/// children.
fn expand_level(route: Route, buf: &mut [Block], parents: usize, fixup: Fixup) -> (Block, Block) {
    match route {
        // Whether there is a correction is public (the garbler never has one, the evaluator
        // always but at the root): without one the kernel goes without the masks.
        // SAFETY: the keys exist only if the CPU has the features the function enables.
        #[cfg(target_arch = "x86_64")]
        Route::Vaes(keys) if fixup.is_none() => unsafe {
            expand_level_vaes::<false>(keys, buf, parents, fixup)
        },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Route::Vaes(keys) => unsafe { expand_level_vaes::<true>(keys, buf, parents, fixup) },
        Route::Portable => expand_level_portable(buf, parents, fixup),
    }
}

/// The 64-bit lanes of four consecutive blocks from block index `start`, each lane holding the
/// index of its block: what [`Fixup`]'s masks compare with.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn lane_indices(start: usize) -> core::arch::x86_64::__m512i {
    use core::arch::x86_64::*;
    _mm512_add_epi64(
        _mm512_set1_epi64(start as i64),
        _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0),
    )
}

/// [`Fixup`] as registers: the sibling's and the path's index in every lane, and the fix.
#[cfg(target_arch = "x86_64")]
struct FixupRegs {
    sibling: core::arch::x86_64::__m512i,
    path: core::arch::x86_64::__m512i,
    fix: core::arch::x86_64::__m512i,
}

#[cfg(target_arch = "x86_64")]
impl FixupRegs {
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn new(f: Fixup) -> Self {
        use core::arch::x86_64::*;
        let fix = f.fix.0;
        FixupRegs {
            // usize::MAX (no node) wraps to −1, which no index reaches.
            sibling: _mm512_set1_epi64(f.sibling as i64),
            path: _mm512_set1_epi64(f.path as i64),
            fix: _mm512_set_epi64(
                (fix >> 64) as i64,
                fix as i64,
                (fix >> 64) as i64,
                fix as i64,
                (fix >> 64) as i64,
                fix as i64,
                (fix >> 64) as i64,
                fix as i64,
            ),
        }
    }

    /// The four blocks `x` from block index `start` on, corrected: the fix XORed into the
    /// sibling's lanes, the path's lanes zeroed (compare masks, no branch); `x` itself unless
    /// `FIX`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn apply<const FIX: bool>(
        &self,
        x: core::arch::x86_64::__m512i,
        start: usize,
    ) -> core::arch::x86_64::__m512i {
        use core::arch::x86_64::*;
        if !FIX {
            return x;
        }
        let idx = lane_indices(start);
        let x = _mm512_mask_xor_epi64(x, _mm512_cmpeq_epi64_mask(idx, self.sibling), x, self.fix);
        _mm512_maskz_mov_epi64(_mm512_cmpneq_epi64_mask(idx, self.path), x)
    }
}

/// [`expand_level`] on VAES, four blocks per instruction, from the top down as the portable
/// path; the fewer than [`VAES_PARENTS`] parents left over (all of a tree's top four levels)
/// run one register at a time, the last under a load and store mask. Nodes pass only through
/// registers; the level's [`Fixup`] (a secret correction and positions) is a by-value argument,
/// so a copy of it may stay on the stack until overwritten.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,vaes")]
fn expand_level_vaes<const FIX: bool>(
    keys: &[RoundKeys; 2],
    buf: &mut [Block],
    parents: usize,
    fixup: Fixup,
) -> (Block, Block) {
    use core::arch::x86_64::*;
    assert!(buf.len() >= 2 * parents);
    let rk: [[__m512i; 11]; 2] =
        core::array::from_fn(|k| core::array::from_fn(|i| _mm512_broadcast_i32x4(keys[k].0[i])));
    let fixup = FixupRegs::new(fixup);
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
            let p: [__m512i; VAES_PARENTS / 4] = core::array::from_fn(|j| {
                let at = start + 4 * j;
                fixup.apply::<FIX>(_mm512_loadu_si512(base.add(at).cast()), at)
            });
            let mut l = p;
            let mut r = p;
            for j in 0..VAES_PARENTS / 4 {
                l[j] = _mm512_xor_si512(l[j], rk[0][0]);
                r[j] = _mm512_xor_si512(r[j], rk[1][0]);
            }
            for (k0, k1) in rk[0][1..10].iter().zip(&rk[1][1..10]) {
                for j in 0..VAES_PARENTS / 4 {
                    l[j] = _mm512_aesenc_epi128(l[j], *k0);
                    r[j] = _mm512_aesenc_epi128(r[j], *k1);
                }
            }
            for j in 0..VAES_PARENTS / 4 {
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
            let p = fixup.apply::<FIX>(
                _mm512_maskz_loadu_epi64(parents, base.add(start).cast()),
                start,
            );
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
    (fold_lanes(sl), fold_lanes(sr))
}

/// The XOR of a register's four blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fold_lanes(v: core::arch::x86_64::__m512i) -> Block {
    let mut lanes = [Block::ZERO; 4];
    // SAFETY: four blocks are 64 writable bytes; the store is unaligned.
    unsafe { core::arch::x86_64::_mm512_storeu_si512(lanes.as_mut_ptr().cast(), v) };
    let x = lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
    wipe(&mut lanes);
    x
}

/// [`expand_level`] through the `aes` crate.
fn expand_level_portable(buf: &mut [Block], parents: usize, fixup: Fixup) -> (Block, Block) {
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
        for (i, (x, y)) in (start..).zip(p[..b].iter_mut().zip(&buf[start..end])) {
            let sibling = fixup.fix.0 & mask(i == fixup.sibling);
            x.0 = (y.0 ^ sibling) & !mask(i == fixup.path);
        }
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

/// The evaluator's last pass over its leaves: every leaf ANDed with `keep` but the two children
/// of last-level parent `at` (the puncture point and its sibling), which become `pair`; under
/// compare masks over every leaf, as the level expansions.
fn finish_leaves(route: Route, leaves: &mut [Block], at: usize, pair: [Block; 2], keep: u128) {
    match route {
        // SAFETY: the keys exist only if the CPU has the features the function enables.
        #[cfg(target_arch = "x86_64")]
        Route::Vaes(_) => unsafe { finish_leaves_avx512(leaves, at, pair, keep) },
        Route::Portable => {
            for (q, two) in leaves.chunks_exact_mut(2).enumerate() {
                let m = mask(q == at);
                for (leaf, new) in two.iter_mut().zip(pair) {
                    let x = leaf.0 & keep;
                    leaf.0 = x ^ ((x ^ new.0) & m);
                }
            }
        }
    }
}

/// [`finish_leaves`] on AVX-512, four leaves (two pairs) per register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn finish_leaves_avx512(leaves: &mut [Block], at: usize, pair: [Block; 2], keep: u128) {
    use core::arch::x86_64::*;
    let halves = |x: u128| (x as i64, (x >> 64) as i64);
    let (k0, k1) = halves(keep);
    let keep = _mm512_set_epi64(k1, k0, k1, k0, k1, k0, k1, k0);
    let ((l0, l1), (r0, r1)) = (halves(pair[0].0), halves(pair[1].0));
    let pair = _mm512_set_epi64(r1, r0, l1, l0, r1, r0, l1, l0);
    let at = _mm512_set1_epi64(at as i64);
    // The pair index of every 64-bit lane, for leaves 4m.. of register m: 2m, 2m + 1.
    let mut idx = _mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0);
    let two = _mm512_set1_epi64(2);
    let base = leaves.as_mut_ptr();
    let full = leaves.len() / 4;
    for m in 0..full {
        // SAFETY: leaves `4m..4m + 4` lie in `leaves` (m < len / 4). Unaligned load and store.
        unsafe {
            let p = base.add(4 * m).cast();
            let x = _mm512_and_si512(_mm512_loadu_si512(p), keep);
            let x = _mm512_mask_mov_epi64(x, _mm512_cmpeq_epi64_mask(idx, at), pair);
            _mm512_storeu_si512(p, x);
        }
        idx = _mm512_add_epi64(idx, two);
    }
    let rest = leaves.len() - 4 * full;
    if rest > 0 {
        let lanes = ((1u16 << (2 * rest)) - 1) as __mmask8;
        // SAFETY: the mask selects the leaves from `4·full` to the end, inside `leaves`;
        // masked-off lanes are neither read nor written. Unaligned load and store.
        unsafe {
            let p = base.add(4 * full).cast();
            let x = _mm512_and_si512(_mm512_maskz_loadu_epi64(lanes, p), keep);
            let x = _mm512_mask_mov_epi64(x, _mm512_cmpeq_epi64_mask(idx, at), pair);
            _mm512_mask_storeu_epi64(p, lanes, x);
        }
    }
}

/// The garbler's full tree: `leaves` (`2^depth`) from `root`, and per level the XOR of the left
/// and of the right children.
pub(crate) fn expand_tree(root: Block, leaves: &mut [Block], sums: &mut [(Block, Block)]) {
    expand_tree_on(Route::detect(), root, leaves, sums);
}

/// [`expand_tree`] on `route`.
fn expand_tree_on(route: Route, root: Block, leaves: &mut [Block], sums: &mut [(Block, Block)]) {
    leaves[0] = root;
    for (level, s) in sums.iter_mut().enumerate() {
        *s = expand_level(route, leaves, 1 << level, Fixup::NONE);
    }
}

/// The evaluator's tree: every leaf but `alpha` (left zero) from `off[l]`, the sum of the side
/// off the path to `alpha` at each level.
#[cfg(test)]
pub(crate) fn expand_punctured(alpha: usize, off: &[Block], leaves: &mut [Block]) {
    punctured_tree(Route::detect(), alpha, off, leaves, !0, |_| Block::ZERO);
}

/// The evaluator's tree on `route`: every leaf but `alpha` from `off[l]`, the sum of the side
/// off the path to `alpha` at each level, ANDed with `keep`; the leaf at `alpha` is
/// `punctured(x)` for `x` the XOR of all the others. Trees are at least one level deep.
///
/// Each level's correction ([`Fixup`]) is applied as the next level reads its nodes, the last
/// one in a pass over the leaves: no node is touched more than the garbler's tree touches it,
/// plus that one pass.
fn punctured_tree(
    route: Route,
    alpha: usize,
    off: &[Block],
    leaves: &mut [Block],
    keep: u128,
    punctured: impl FnOnce(Block) -> Block,
) {
    let depth = off.len();
    assert!(depth >= 1, "a punctured tree of depth 0");
    debug_assert_eq!(leaves.len(), 1 << depth);
    // The root is unknown: expanded as zero, as every path node after it.
    leaves[0] = Block::ZERO;
    let mut fixup = Fixup::NONE;
    let (mut sums, mut a) = ((Block::ZERO, Block::ZERO), 0);
    for (level, &k) in off.iter().enumerate() {
        sums = expand_level(route, leaves, 1 << level, fixup);
        (fixup, a) = Fixup::at(alpha, depth, level, k, sums);
    }
    // The XOR of every correct leaf but the punctured one: the expanded sum of its side less
    // its expanded (zero-seeded) value, plus the received sum of the other side.
    let z = *ZERO_CHILDREN;
    let (x0, x1) = sums;
    let m = opaque_mask(a == 1);
    let own = x0.0 ^ ((x0.0 ^ x1.0) & m);
    let garbage = z[0].0 ^ ((z[0].0 ^ z[1].0) & m);
    let value = punctured(Block((own ^ garbage ^ off[depth - 1].0) & keep)).0;
    // The sibling was expanded from the zero seed too: its correct value is known here.
    let sibling = ((z[0].0 ^ z[1].0 ^ garbage) ^ fixup.fix.0) & keep;
    let mut pair = [
        Block(value ^ ((value ^ sibling) & m)),
        Block(sibling ^ ((sibling ^ value) & m)),
    ];
    finish_leaves(route, leaves, fixup.path >> 1, pair, keep);
    wipe(&mut pair);
    zeroize::Zeroize::zeroize(&mut sums.0 .0);
    zeroize::Zeroize::zeroize(&mut sums.1 .0);
    zeroize::Zeroize::zeroize(&mut a);
    zeroize::Zeroize::zeroize(&mut fixup.sibling);
    zeroize::Zeroize::zeroize(&mut fixup.path);
    zeroize::Zeroize::zeroize(&mut fixup.fix.0);
}

/// The tweak of level-sum OT number `j` of the setup.
#[inline]
fn tweak(j: u64) -> Block {
    Block(OT_TWEAK_BIT | LEVEL_TWEAK_BIT | j as u128)
}

/// Blocks of the garbler's message for `depth`-deep trees.
pub(crate) fn message_blocks(depth: usize) -> usize {
    TREES * (2 * depth + 1)
}

pub(crate) use crate::crypto::block::wipe;

/// The garbler's side of one sparse VOLE, its one message appended to `msg` for the caller to
/// send (in order with its own messages: silent OT's deferred calls send it ahead of the tables
/// garbled with the chunk's OTs): fills `v` (`TREES · 2^depth` blocks, the leaves) and lets the
/// evaluator obtain `v₀ ⊕ e·Δ`, where `v₀` is `v` with every lsb cleared (which the caller
/// does, before or after the linear code: see the module doc). `q` holds the zero-labels of
/// the chunk's `TREES · depth` base COTs (random choices; wiped here), `first_tweak` numbers
/// the setup's level-sum OTs run before this call (both parties count them).
pub(crate) fn vole_message(
    q: &mut [Block],
    delta: Block,
    depth: usize,
    first_tweak: u64,
    rng: &mut Prg,
    v: &mut [Block],
    msg: &mut Vec<Block>,
) {
    debug_assert_eq!(q.len(), TREES * depth);
    debug_assert_eq!(v.len(), TREES << depth);
    let start = msg.len();
    msg.resize(start + message_blocks(depth), Block::ZERO);
    let msg = &mut msg[start..];
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
}

/// The evaluator's side of [`vole_message`]: fills `w` (`TREES · 2^depth` blocks) with
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
    let mut msg = vec![Block::ZERO; message_blocks(depth)];
    ch.recv_blocks(&mut msg)?;
    vole_receive_message(&msg, c, r, depth, first_tweak, w);
    Ok(())
}

/// [`vole_receive`] on the garbler's message `msg` ([`message_blocks`]`(depth)` blocks),
/// already read.
pub(crate) fn vole_receive_message(
    msg: &[Block],
    c: &[bool],
    r: &mut [Block],
    depth: usize,
    first_tweak: u64,
    w: &mut [Block],
) {
    let m = TREES * depth;
    debug_assert_eq!((c.len(), r.len()), (m, m));
    debug_assert_eq!(w.len(), TREES << depth);
    debug_assert_eq!(msg.len(), message_blocks(depth));
    let tweaks: Vec<Block> = (0..m).map(|j| tweak(first_tweak + j as u64)).collect();
    let mut scratch = vec![Block::ZERO; m];
    FIXED_KEY_AES.tccr_batch(&tweaks, r, &mut scratch);
    let mut off = vec![Block::ZERO; depth];
    let route = Route::detect();
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
            *o = Block(m0.0 ^ ((m0.0 ^ m1.0) & opaque_mask(c[j]))) ^ r[j];
        }
        // The punctured leaf takes the received total less all the others, lsb cleared.
        let total = got[2 * depth];
        punctured_tree(route, alpha, &off, leaves, !1, |others| total ^ others);
        zeroize::Zeroize::zeroize(&mut alpha);
    }
    wipe(&mut off);
    wipe(r);
    wipe(&mut scratch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ot::{ChoicePattern, SoftSpokenReceiver, SoftSpokenSender};
    use crate::net::mem_pair;
    use std::time::Duration;

    /// Both routes where this CPU has VAES, else the portable one alone.
    fn routes() -> Vec<Route> {
        let mut routes = vec![Route::Portable];
        if !matches!(Route::detect(), Route::Portable) {
            routes.push(Route::detect());
        }
        routes
    }

    /// The GGM PRG by its definition, one block at a time: `G(s) = (π₀(s) ⊕ s, π₁(s) ⊕ s)`.
    fn prg(s: Block) -> [Block; 2] {
        [GGM_AES[0].encrypt(s) ^ s, GGM_AES[1].encrypt(s) ^ s]
    }

    /// Every level's nodes of the tree from `root`, by the definition.
    fn naive_levels(root: Block, depth: usize) -> Vec<Vec<Block>> {
        let mut levels = vec![vec![root]];
        for _ in 0..depth {
            let next = levels
                .last()
                .unwrap()
                .iter()
                .flat_map(|&s| prg(s))
                .collect();
            levels.push(next);
        }
        levels
    }

    /// Each route's level expansion equals the definition applied to the corrected parents
    /// (children and level sums), for every count of parents left over after the full VAES
    /// passes, with no correction and with the sibling and path anywhere (even, odd, first,
    /// last, in the same register or not); nothing past the children is written.
    #[test]
    fn level_expansion_matches_definition_on_both_routes() {
        let mut rng = Prg::from_seed(Block(4));
        for parents in (1usize..=40).chain([64, 100, 1 << 10]) {
            let mut fixups = vec![Fixup::NONE];
            for (sibling, path) in [(0, 1), (1, 0), (parents - 1, parents - 2), (parents / 2, 3)] {
                if sibling < parents && path < parents {
                    let fix = Block::random(&mut rng);
                    fixups.push(Fixup { sibling, path, fix });
                }
            }
            for fixup in fixups {
                let mut input = vec![Block::ONES; 2 * parents + 3];
                rng.fill_blocks(&mut input[..parents]);
                let mut want = input.clone();
                let mut sums = (Block::ZERO, Block::ZERO);
                for i in 0..parents {
                    let mut p = input[i];
                    if i == fixup.sibling {
                        p ^= fixup.fix;
                    }
                    if i == fixup.path {
                        p = Block::ZERO;
                    }
                    let [l, r] = prg(p);
                    (want[2 * i], want[2 * i + 1]) = (l, r);
                    sums = (sums.0 ^ l, sums.1 ^ r);
                }
                for route in routes() {
                    let mut got = input.clone();
                    let s = expand_level(route, &mut got, parents, fixup);
                    assert_eq!((s, &got), (sums, &want), "{parents} parents");
                }
            }
        }
    }

    /// For every puncture point of small trees, on each route: the evaluator's leaves are the
    /// garbler's (by the definition) but at the puncture point, which is zero, or, as
    /// `vole_receive` asks, every leaf's lsb cleared and the punctured one the received total
    /// less the others.
    #[test]
    fn punctured_tree_matches_definition_for_every_alpha() {
        let mut rng = Prg::from_seed(Block(11));
        for depth in 1usize..=7 {
            for alpha in 0..1 << depth {
                let levels = naive_levels(Block::random(&mut rng), depth);
                let off: Vec<Block> = (0..depth)
                    .map(|l| {
                        let a = (alpha >> (depth - 1 - l)) & 1;
                        let side = levels[l + 1].iter().skip(1 - a).step_by(2);
                        side.fold(Block::ZERO, |x, y| x ^ *y)
                    })
                    .collect();
                let leaves = &levels[depth];
                let total = Block::random(&mut rng);
                let mut want_vole: Vec<Block> = leaves.iter().map(|l| l.with_lsb(false)).collect();
                want_vole[alpha] = Block::ZERO;
                want_vole[alpha] = want_vole.iter().fold(total, |x, y| x ^ *y);
                for route in routes() {
                    let mut got = vec![Block::ONES; 1 << depth];
                    punctured_tree(route, alpha, &off, &mut got, !0, |_| Block::ZERO);
                    for x in 0..1 << depth {
                        let want = if x == alpha { Block::ZERO } else { leaves[x] };
                        assert_eq!(got[x], want, "depth {depth} alpha {alpha} leaf {x}");
                    }
                    punctured_tree(route, alpha, &off, &mut got, !1, |others| total ^ others);
                    assert_eq!(got, want_vole, "depth {depth} alpha {alpha}");
                }
            }
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
            let mut msg = Vec::new();
            vole_message(q1, delta, depth, 0, &mut rng, &mut v, &mut msg);
            // The second chunk continues the tweaks.
            let mut v2 = vec![Block::ZERO; size];
            vole_message(q2, delta, depth, m as u64, &mut rng, &mut v2, &mut msg);
            a.send_blocks(&msg).unwrap();
            a.flush().unwrap();
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
