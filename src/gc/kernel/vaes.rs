//! The x86-64 AND-gate kernels: the fixed-key AES of
//! [`FIXED_KEY_AES`](crate::crypto::FIXED_KEY_AES) computed with VAES on 512-bit registers,
//! fused with the half-gates arithmetic, so that a group's hash inputs, tweaks and
//! hash outputs never leave registers.
//!
//! Both work on quads: one wire's labels in four consecutive instances of a group, the memory
//! image of four lanes of [`Lanes`] and one 512-bit register. The garbler hashes the quads
//! `A⁰`, `A⁰⊕Δ`, `B⁰`, `B⁰⊕Δ` of two quads at a time (eight registers, 32 hashes), the
//! evaluator `A` and `B` of all four quads of a group at once (eight registers), with the
//! tweaks in registers of the same shape; eight registers in flight per AES round hide the
//! latency of the AES unit. Combining hash outputs, colour bits (mask registers) and Δ into
//! tables and output labels is then vertical, four instances per instruction, and only the
//! table stores and loads (one `[T_G, T_E]` pair per instance, `stride` apart) shuffle.
//!
//! The result is bit-for-bit the hash of
//! [`FixedKeyAes::tccr`](crate::crypto::aes::FixedKeyAes::tccr) (checked by the tests here and
//! by the engine's tests against the portable kernel).
//!
//! Used only when the CPU reports AES, VAES, AVX-512F and AVX-512VL at run time
//! ([`RoundKeys::detect`]); otherwise the portable kernel runs.

use core::arch::x86_64::*;

use super::{eval_gates, garble_gates, EvalAnd, GarbleAnd, Lanes, GROUP};
use crate::crypto::Block;
use crate::gc::circuit::Circuit;

/// 512-bit registers hashed together per AES pass.
const LANES: usize = 8;

pub(crate) use crate::crypto::vaes::RoundKeys;

#[inline(always)]
fn load(b: &Block) -> __m128i {
    // SAFETY: `Block` is 16 bytes (`repr(transparent)` over `u128`); the load is unaligned and
    // needs only SSE2, which every x86-64 CPU has.
    unsafe { _mm_loadu_si128((b as *const Block).cast()) }
}

/// Two consecutive blocks (a `[T_G, T_E]` pair) as one 256-bit value, `pair[0]` low.
#[target_feature(enable = "avx")]
#[inline]
fn load_pair(pair: &[Block]) -> __m256i {
    assert_eq!(pair.len(), 2);
    // SAFETY: two `Block`s are 32 readable bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(pair.as_ptr().cast()) }
}

/// Stores a 256-bit value into two consecutive blocks, the low half first.
#[target_feature(enable = "avx")]
#[inline]
fn store_pair(pair: &mut [Block], v: __m256i) {
    assert_eq!(pair.len(), 2);
    // SAFETY: two `Block`s are 32 writable bytes; the store is unaligned.
    unsafe { _mm256_storeu_si256(pair.as_mut_ptr().cast(), v) }
}

/// π on `LANES` 512-bit registers (four blocks each).
#[target_feature(enable = "avx512f,vaes")]
#[inline]
fn aes512(rk: &[__m512i; 11], s: &mut [__m512i; LANES]) {
    for v in s.iter_mut() {
        *v = _mm512_xor_si512(*v, rk[0]);
    }
    for key in &rk[1..10] {
        for v in s.iter_mut() {
            *v = _mm512_aesenc_epi128(*v, *key);
        }
    }
    for v in s.iter_mut() {
        *v = _mm512_aesenclast_epi128(*v, rk[10]);
    }
}

/// Quads of lanes in a group: a quad is four instances' labels of one wire, one 512-bit register
/// (the memory image of four consecutive lanes of [`Lanes`]).
const QUADS: usize = GROUP / 4;

/// Quad `q` of a wire's group of labels: lanes `4q..4q + 4`.
#[target_feature(enable = "avx512f")]
#[inline]
fn load_quad(w: &Lanes, q: usize) -> __m512i {
    let words = &w.0[8 * q..8 * q + 8];
    // SAFETY: eight `u64`s are 64 readable bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
}

/// Sets quad `q` of a wire's group of labels.
#[target_feature(enable = "avx512f")]
#[inline]
fn store_quad(w: &mut Lanes, q: usize, v: __m512i) {
    let words = &mut w.0[8 * q..8 * q + 8];
    // SAFETY: as for `load_quad`, writable.
    unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), v) }
}

/// The colour (lsb) of each of the four labels in `v`, as an 8-bit mask over its 64-bit elements
/// (both elements of a label set or clear together): a mask register, not a branch.
#[target_feature(enable = "avx512f")]
#[inline]
fn colour_mask512(v: __m512i) -> __mmask8 {
    let lo_one = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    let k = _mm512_test_epi64_mask(v, lo_one);
    k | (k << 1)
}

/// Each lane's instance number in the high half of its tweak, per quad: `[0, i, 0, i', …]` as
/// 64-bit elements, low first, for the lanes `4q..4q + 4` of a group whose lane 0 is `first`.
#[target_feature(enable = "avx512f")]
#[inline]
fn instance_quads(first: u64) -> [__m512i; QUADS] {
    core::array::from_fn(|q| {
        let i = |l: usize| first.wrapping_add((4 * q + l) as u64) as i64;
        _mm512_set_epi64(i(3), 0, i(2), 0, i(1), 0, i(0), 0)
    })
}

/// The tweaks `[t₀, t₁]` of AND gate `k` for a quad whose instance part is `inst`: gate index
/// `2k` (and `2k + 1`) in the low half of every block.
#[target_feature(enable = "avx512f")]
#[inline]
fn gate_tweaks(inst: __m512i, k: usize) -> (__m512i, __m512i) {
    let k0 = _mm512_maskz_set1_epi64(0x55, (2 * k) as i64);
    let k1 = _mm512_maskz_set1_epi64(0x55, (2 * k + 1) as i64);
    (_mm512_or_si512(inst, k0), _mm512_or_si512(inst, k1))
}

/// The garbler's per-group state: broadcast round keys, Δ in every lane, and each quad's
/// instance part of the tweaks.
pub(crate) struct GarbleKernel {
    rk: [__m512i; 11],
    d4: __m512i,
    inst: [__m512i; QUADS],
}

impl GarbleKernel {
    /// The state for a group whose lane 0 is instance `first`.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new(keys: &RoundKeys, delta: Block, first: u64) -> Self {
        GarbleKernel {
            rk: core::array::from_fn(|i| _mm512_broadcast_i32x4(keys.0[i])),
            d4: _mm512_broadcast_i32x4(load(&delta)),
            inst: instance_quads(first),
        }
    }

    /// Garbles AND gate `k` for lanes `0..g` on wires `[a, b, out]` of `labels` (`out` may be
    /// `a` or `b`: each quad's inputs are read before its output is written); writes
    /// `[T_G, T_E]` of lane `j` to `tables[j·stride + 2k ..]`.
    ///
    /// Two quads (eight instances, 32 hashes) per AES pass: registers hold `[A⁰, A⁰⊕Δ, B⁰,
    /// B⁰⊕Δ]` of a quad each, so combining the hashes into tables and output labels is
    /// vertical, lane by lane in place, with no shuffle until the tables are stored.
    #[target_feature(enable = "avx512f,avx512vl,vaes")]
    #[inline]
    pub(crate) fn and(
        &self,
        labels: &mut [Lanes],
        [a, b, o]: [usize; 3],
        k: usize,
        g: usize,
        tables: &mut [Block],
        stride: usize,
    ) {
        // [tg_j, te_j] pairs of lanes 0, 1 and 2, 3 of a quad.
        let pair_lo = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
        let pair_hi = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
        for q0 in (0..QUADS).step_by(2) {
            if 4 * q0 >= g {
                break;
            }
            let mut ab = [_mm512_setzero_si512(); 4];
            let mut s = [_mm512_setzero_si512(); LANES];
            let mut tw = [_mm512_setzero_si512(); LANES];
            for h in 0..2 {
                let q = q0 + h;
                let (x, y) = (load_quad(&labels[a], q), load_quad(&labels[b], q));
                let (t0, t1) = gate_tweaks(self.inst[q], k);
                ab[2 * h] = x;
                ab[2 * h + 1] = y;
                s[4 * h] = x;
                s[4 * h + 1] = _mm512_xor_si512(x, self.d4);
                s[4 * h + 2] = y;
                s[4 * h + 3] = _mm512_xor_si512(y, self.d4);
                tw[4 * h] = t0;
                tw[4 * h + 1] = t0;
                tw[4 * h + 2] = t1;
                tw[4 * h + 3] = t1;
            }
            aes512(&self.rk, &mut s);
            let mut s2 = s;
            for l in 0..LANES {
                s2[l] = _mm512_xor_si512(s2[l], tw[l]);
            }
            aes512(&self.rk, &mut s2);
            for h in 0..2 {
                let q = q0 + h;
                let (x, y) = (ab[2 * h], ab[2 * h + 1]);
                let ha0 = _mm512_xor_si512(s[4 * h], s2[4 * h]);
                let ha1 = _mm512_xor_si512(s[4 * h + 1], s2[4 * h + 1]);
                let hb0 = _mm512_xor_si512(s[4 * h + 2], s2[4 * h + 2]);
                let hb1 = _mm512_xor_si512(s[4 * h + 3], s2[4 * h + 3]);
                let (ma, mb) = (colour_mask512(x), colour_mask512(y));
                let ha = _mm512_xor_si512(ha0, ha1);
                let hb = _mm512_xor_si512(hb0, hb1);
                // T_G = H(A⁰) ⊕ H(A¹) ⊕ colour(B)·Δ, T_E = H(B⁰) ⊕ H(B¹) ⊕ A⁰.
                let tg = _mm512_mask_xor_epi64(ha, mb, ha, self.d4);
                let te = _mm512_xor_si512(hb, x);
                // W = H(A⁰) ⊕ colour(A)·T_G ⊕ H(B⁰) ⊕ colour(B)·(H(B⁰) ⊕ H(B¹)).
                let wg = _mm512_mask_xor_epi64(ha0, ma, ha0, tg);
                let we = _mm512_mask_xor_epi64(hb0, mb, hb0, hb);
                store_quad(&mut labels[o], q, _mm512_xor_si512(wg, we));
                let lo = _mm512_permutex2var_epi64(tg, pair_lo, te);
                let hi = _mm512_permutex2var_epi64(tg, pair_hi, te);
                let pairs = [
                    _mm512_castsi512_si256(lo),
                    _mm512_extracti64x4_epi64::<1>(lo),
                    _mm512_castsi512_si256(hi),
                    _mm512_extracti64x4_epi64::<1>(hi),
                ];
                for (l, p) in pairs.into_iter().enumerate() {
                    let j = 4 * q + l;
                    if j < g {
                        let base = j * stride + 2 * k;
                        store_pair(&mut tables[base..base + 2], p);
                    }
                }
            }
        }
    }
}

/// The evaluator's per-group state: broadcast round keys and each quad's instance part of the
/// tweaks.
pub(crate) struct EvalKernel {
    rk: [__m512i; 11],
    inst: [__m512i; QUADS],
}

impl EvalKernel {
    /// The state for a group whose lane 0 is instance `first`.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new(keys: &RoundKeys, first: u64) -> Self {
        EvalKernel {
            rk: core::array::from_fn(|i| _mm512_broadcast_i32x4(keys.0[i])),
            inst: instance_quads(first),
        }
    }

    /// Evaluates AND gate `k` for lanes `0..g` on wires `[a, b, out]` of `labels`, the tables
    /// of lane `j` at `tables[j·stride + 2k ..]`.
    ///
    /// The whole group's 32 hashes in one AES pass over eight registers `[A, B]` of the four
    /// quads; the tables are gathered into `T_G` and `T_E` registers per quad and applied
    /// under the colour masks.
    #[target_feature(enable = "avx512f,avx512vl,vaes")]
    #[inline]
    pub(crate) fn and(
        &self,
        labels: &mut [Lanes],
        [a, b, o]: [usize; 3],
        k: usize,
        g: usize,
        tables: &[Block],
        stride: usize,
    ) {
        let gather_g = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0);
        let gather_e = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
        let mut s = [_mm512_setzero_si512(); LANES];
        let mut tw = [_mm512_setzero_si512(); LANES];
        for q in 0..QUADS {
            let (t0, t1) = gate_tweaks(self.inst[q], k);
            s[2 * q] = load_quad(&labels[a], q);
            s[2 * q + 1] = load_quad(&labels[b], q);
            tw[2 * q] = t0;
            tw[2 * q + 1] = t1;
        }
        let ab = s;
        aes512(&self.rk, &mut s);
        let mut s2 = s;
        for l in 0..LANES {
            s2[l] = _mm512_xor_si512(s2[l], tw[l]);
        }
        aes512(&self.rk, &mut s2);
        for q in 0..QUADS {
            if 4 * q >= g {
                break;
            }
            let (x, y) = (ab[2 * q], ab[2 * q + 1]);
            let ha = _mm512_xor_si512(s[2 * q], s2[2 * q]);
            let hb = _mm512_xor_si512(s[2 * q + 1], s2[2 * q + 1]);
            // [T_G, T_E] of the quad's lanes; lanes past g have no tables and read as zero.
            let pair = |l: usize| {
                let j = 4 * q + l;
                if j < g {
                    let base = j * stride + 2 * k;
                    load_pair(&tables[base..base + 2])
                } else {
                    _mm256_setzero_si256()
                }
            };
            let p01 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(pair(0)), pair(1));
            let p23 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(pair(2)), pair(3));
            let tg = _mm512_permutex2var_epi64(p01, gather_g, p23);
            let te = _mm512_permutex2var_epi64(p01, gather_e, p23);
            // W = H(A) ⊕ colour(A)·T_G ⊕ H(B) ⊕ colour(B)·(T_E ⊕ A).
            let (ma, mb) = (colour_mask512(x), colour_mask512(y));
            let w = _mm512_xor_si512(ha, hb);
            let w = _mm512_mask_xor_epi64(w, ma, w, tg);
            let w = _mm512_mask_xor_epi64(w, mb, w, _mm512_xor_si512(te, x));
            store_quad(&mut labels[o], q, w);
        }
    }
}

struct VaesGarble(GarbleKernel);

impl GarbleAnd<Block> for VaesGarble {
    #[inline(always)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        wires: [usize; 3],
        k: usize,
        g: usize,
        tables: &mut [Block],
        stride: usize,
    ) {
        // SAFETY: a `GarbleKernel` is only built inside `garble_gates_vaes`, which runs only
        // after `RoundKeys::detect` confirmed the CPU features.
        #[allow(unused_unsafe)]
        unsafe {
            self.0.and(labels, wires, k, g, tables, stride)
        }
    }
}

struct VaesEval(EvalKernel);

impl EvalAnd<Block> for VaesEval {
    #[inline(always)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        wires: [usize; 3],
        k: usize,
        g: usize,
        tables: &[Block],
        stride: usize,
    ) {
        // SAFETY: as for `VaesGarble`.
        #[allow(unused_unsafe)]
        unsafe {
            self.0.and(labels, wires, k, g, tables, stride)
        }
    }
}

/// [`garble_gates`] compiled with the VAES kernel's features, so the whole gate loop (XOR gates
/// included) uses wide registers.
#[target_feature(enable = "aes,avx2,avx512f,avx512vl,vaes")]
pub(crate) fn garble_gates_vaes(
    c: &Circuit,
    keys: &RoundKeys,
    d: Block,
    labels: &mut [Lanes],
    g: usize,
    first: u64,
    tables: &mut [Block],
) {
    let mut kern = VaesGarble(GarbleKernel::new(keys, d, first));
    garble_gates(c, d, labels, g, tables, 2 * c.and_count(), &mut kern)
}

/// [`eval_gates`] compiled with the VAES kernel's features.
#[target_feature(enable = "aes,avx2,avx512f,avx512vl,vaes")]
pub(crate) fn eval_gates_vaes(
    c: &Circuit,
    keys: &RoundKeys,
    labels: &mut [Lanes],
    g: usize,
    first: u64,
    tables: &[Block],
) {
    let mut kern = VaesEval(EvalKernel::new(keys, first));
    eval_gates(c, labels, g, tables, 2 * c.and_count(), &mut kern)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::FIXED_KEY_AES;
    use crate::gc::halfgates::and_tweaks;

    #[test]
    fn vaes_hash_equals_fixed_key_tccr() {
        let Some(keys) = RoundKeys::detect() else {
            return; // Nothing to compare on a CPU without VAES: the portable kernel runs there.
        };
        let aes = &*FIXED_KEY_AES;
        let mut x = Lanes([0; 2 * GROUP]);
        let mut y = Lanes([0; 2 * GROUP]);
        for j in 0..GROUP {
            x.set_lane(
                j,
                Block((j as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
            );
            y.set_lane(
                j,
                Block((j as u128 + 7).wrapping_mul(0xd1b5_4a32_d192_ed03_8cb9_2ba7_2f3d_8dd7)),
            );
        }
        let stride = 10;
        let (first, k, g) = (u64::MAX - 3, 4, 13);
        let mut tables = vec![Block::ZERO; GROUP * stride];
        let mut labels = [x, y, Lanes([0; 2 * GROUP])];
        // SAFETY: `detect` returned keys, so the CPU has every feature these kernels enable.
        unsafe { EvalKernel::new(&keys, first).and(&mut labels, [0, 1, 2], k, g, &tables, stride) };
        let out = labels[2];
        for j in 0..g {
            // With all-zero tables the output is H(A, t₀) ⊕ H(B, t₁) ⊕ lsb(B)·A.
            let (a, b) = (x.lane(j), y.lane(j));
            let (t0, t1) = and_tweaks(first.wrapping_add(j as u64), k);
            let want = aes.tccr(t0, a) ^ aes.tccr(t1, b) ^ a.select(b.lsb());
            assert_eq!(out.lane(j), want, "lane {j}");
        }
        let d = Block(0x1234_5678_9abc_def0_0fed_cba9_8765_4321);
        // SAFETY: as above.
        unsafe {
            GarbleKernel::new(&keys, d, first).and(
                &mut labels,
                [0, 1, 2],
                k,
                g,
                &mut tables,
                stride,
            )
        };
        for j in 0..g {
            let (a, b) = (x.lane(j), y.lane(j));
            let (t0, t1) = and_tweaks(first.wrapping_add(j as u64), k);
            let tg = aes.tccr(t0, a) ^ aes.tccr(t0, a ^ d) ^ d.select(b.lsb());
            let te = aes.tccr(t1, b) ^ aes.tccr(t1, b ^ d) ^ a;
            assert_eq!(
                (tables[j * stride + 2 * k], tables[j * stride + 2 * k + 1]),
                (tg, te),
                "lane {j}"
            );
        }
        assert_eq!(
            tables[g * stride + 2 * k],
            Block::ZERO,
            "lanes past g are not written"
        );
    }
}
