//! The x86-64 AND-gate kernels: the fixed-key AES of
//! [`FIXED_KEY_AES`](crate::crypto::FIXED_KEY_AES) computed with VAES on 256- and 512-bit
//! registers, fused with the half-gates arithmetic, so that a group's hash inputs, tweaks and
//! hash outputs never leave registers.
//!
//! The garbler puts one instance's four hash inputs `[A⁰, A⁰⊕Δ, B⁰, B⁰⊕Δ]` in one 512-bit
//! register and their tweaks `[t₀, t₀, t₁, t₁]` in another; the evaluator puts `[A, B]` and
//! `[t₀, t₁]` in 256-bit registers. Eight instances are in flight per AES round, enough to hide
//! the latency of the AES units. The result is bit-for-bit the hash of
//! [`FixedKeyAes::tccr`](crate::crypto::aes::FixedKeyAes::tccr) (checked by the tests here and
//! by the engine's tests against the portable kernel).
//!
//! Used only when the CPU reports AES, VAES, AVX-512F and AVX-512VL at run time
//! ([`RoundKeys::detect`]); otherwise the portable kernel runs.

use core::arch::x86_64::*;

use super::{eval_gates, garble_gates, EvalAnd, GarbleAnd, Lanes, GROUP};
use crate::crypto::Block;
use crate::gc::circuit::Circuit;

/// Instances hashed together per AES pass.
const LANES: usize = 8;

pub(crate) use crate::crypto::vaes::RoundKeys;

#[inline(always)]
fn load(b: &Block) -> __m128i {
    // SAFETY: `Block` is 16 bytes (`repr(transparent)` over `u128`); the load is unaligned and
    // needs only SSE2, which every x86-64 CPU has.
    unsafe { _mm_loadu_si128((b as *const Block).cast()) }
}

/// Lane `j` of a wire's group of labels.
#[inline(always)]
fn load_lane(w: &Lanes, j: usize) -> __m128i {
    let words = &w.0[2 * j..2 * j + 2];
    // SAFETY: two `u64`s are 16 readable bytes; the load is unaligned, SSE2 is baseline.
    unsafe { _mm_loadu_si128(words.as_ptr().cast()) }
}

/// Sets lane `j` of a wire's group of labels.
#[inline(always)]
fn store_lane(w: &mut Lanes, j: usize, v: __m128i) {
    let words = &mut w.0[2 * j..2 * j + 2];
    // SAFETY: as for `load_lane`, writable.
    unsafe { _mm_storeu_si128(words.as_mut_ptr().cast(), v) }
}

/// All ones if the lsb (colour) of `v` is 1, all zeros otherwise: a mask, not a branch.
/// `one` is `[1, 1]` as 64-bit elements.
#[target_feature(enable = "sse2")]
#[inline]
fn colour_mask(v: __m128i, one: __m128i) -> __m128i {
    let lo = _mm_shuffle_epi32::<0x44>(v);
    _mm_sub_epi64(_mm_setzero_si128(), _mm_and_si128(lo, one))
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

/// π on `LANES` 256-bit registers (two blocks each).
#[target_feature(enable = "avx2,vaes")]
#[inline]
fn aes256(rk: &[__m256i; 11], s: &mut [__m256i; LANES]) {
    for v in s.iter_mut() {
        *v = _mm256_xor_si256(*v, rk[0]);
    }
    for key in &rk[1..10] {
        for v in s.iter_mut() {
            *v = _mm256_aesenc_epi128(*v, *key);
        }
    }
    for v in s.iter_mut() {
        *v = _mm256_aesenclast_epi128(*v, rk[10]);
    }
}

/// The round keys broadcast to 512-bit registers, for [`Keys512::tccr_batch`].
pub(crate) struct Keys512([__m512i; 11]);

impl Keys512 {
    /// Broadcast `keys`.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new(keys: &RoundKeys) -> Self {
        Keys512(core::array::from_fn(|i| _mm512_broadcast_i32x4(keys.0[i])))
    }

    /// `xs[m] ← tccr(tweaks[m], xs[m])` for every `m`: the hash of
    /// [`FixedKeyAes::tccr_batch`](crate::crypto::aes::FixedKeyAes::tccr_batch), 32 blocks per
    /// pass in eight 512-bit registers. Panics if the lengths differ (a caller bug).
    #[target_feature(enable = "avx512f,vaes")]
    #[inline]
    pub(crate) fn tccr_batch(&self, tweaks: &[Block], xs: &mut [Block]) {
        const PASS: usize = 4 * LANES;
        assert_eq!(tweaks.len(), xs.len());
        for (xc, tc) in xs.chunks_mut(PASS).zip(tweaks.chunks(PASS)) {
            let mut x = [Block::ZERO; PASS];
            let mut t = [Block::ZERO; PASS];
            x[..xc.len()].copy_from_slice(xc);
            t[..tc.len()].copy_from_slice(tc);
            // SAFETY: `x` and `t` hold 32 blocks = eight 64-byte registers; loads are unaligned.
            let mut s: [__m512i; LANES] =
                core::array::from_fn(|r| unsafe { _mm512_loadu_si512(x[4 * r..].as_ptr().cast()) });
            aes512(&self.0, &mut s);
            let mut s2 = s;
            for (r, v) in s2.iter_mut().enumerate() {
                // SAFETY: as above.
                let tw = unsafe { _mm512_loadu_si512(t[4 * r..].as_ptr().cast()) };
                *v = _mm512_xor_si512(*v, tw);
            }
            aes512(&self.0, &mut s2);
            for (r, (a, b)) in s.iter().zip(&s2).enumerate() {
                // SAFETY: as above, writable.
                unsafe {
                    _mm512_storeu_si512(x[4 * r..].as_mut_ptr().cast(), _mm512_xor_si512(*a, *b))
                };
            }
            xc.copy_from_slice(&x[..xc.len()]);
        }
    }
}

/// The garbler's per-group state: broadcast round keys, `[0, Δ, 0, Δ]`, and each lane's
/// instance part of the tweaks.
pub(crate) struct GarbleKernel {
    rk: [__m512i; 11],
    dd: __m512i,
    d: __m128i,
    inst: [__m512i; GROUP],
}

impl GarbleKernel {
    /// The state for a group whose lane 0 is instance `first`.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new(keys: &RoundKeys, delta: Block, first: u64) -> Self {
        let d = load(&delta);
        let z = _mm_setzero_si128();
        let dd = _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_set_m128i(d, z)),
            _mm256_set_m128i(d, z),
        );
        GarbleKernel {
            rk: core::array::from_fn(|i| _mm512_broadcast_i32x4(keys.0[i])),
            dd,
            d,
            inst: core::array::from_fn(|j| {
                // 64-bit elements, low first: tweaks [t₀, t₀, t₁, t₁] without the gate index.
                let i = first.wrapping_add(j as u64) as i64;
                _mm512_set_epi64(i, 1, i, 1, i, 0, i, 0)
            }),
        }
    }

    /// Garbles AND gate `k` for lanes `0..g` on wires `[a, b, out]` of `labels` (`out` may be
    /// `a` or `b`: inputs are read before the output is written); writes `[T_G, T_E]` of lane
    /// `j` to `tables[j·stride + 2k ..]`.
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
        let kv = _mm512_maskz_set1_epi64(0x55, (2 * k) as i64);
        let one = _mm_set_epi64x(1, 1);
        for j0 in (0..g).step_by(LANES) {
            let mut a0 = [_mm_setzero_si128(); LANES];
            let mut b0 = [_mm_setzero_si128(); LANES];
            let mut s = [_mm512_setzero_si512(); LANES];
            let mut tw = [_mm512_setzero_si512(); LANES];
            for l in 0..LANES {
                let j = (j0 + l) % GROUP;
                a0[l] = load_lane(&labels[a], j);
                b0[l] = load_lane(&labels[b], j);
                let aa = _mm256_broadcastsi128_si256(a0[l]);
                let bb = _mm256_broadcastsi128_si256(b0[l]);
                let ab = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(aa), bb);
                s[l] = _mm512_xor_si512(ab, self.dd);
                tw[l] = _mm512_or_si512(self.inst[j], kv);
            }
            aes512(&self.rk, &mut s);
            let mut s2 = s;
            for l in 0..LANES {
                s2[l] = _mm512_xor_si512(s2[l], tw[l]);
            }
            aes512(&self.rk, &mut s2);
            let out = &mut labels[o];
            for l in 0..LANES.min(g - j0) {
                let j = j0 + l;
                let h = _mm512_xor_si512(s[l], s2[l]);
                let ha0 = _mm512_castsi512_si128(h);
                let ha1 = _mm512_extracti32x4_epi32::<1>(h);
                let hb0 = _mm512_extracti32x4_epi32::<2>(h);
                let hb1 = _mm512_extracti32x4_epi32::<3>(h);
                let (ma, mb) = (colour_mask(a0[l], one), colour_mask(b0[l], one));
                let hb = _mm_xor_si128(hb0, hb1);
                let tg = _mm_xor_si128(_mm_xor_si128(ha0, ha1), _mm_and_si128(self.d, mb));
                let te = _mm_xor_si128(hb, a0[l]);
                let wg = _mm_xor_si128(ha0, _mm_and_si128(tg, ma));
                let we = _mm_xor_si128(hb0, _mm_and_si128(hb, mb));
                let base = j * stride + 2 * k;
                store_pair(&mut tables[base..base + 2], _mm256_set_m128i(te, tg));
                store_lane(out, j, _mm_xor_si128(wg, we));
            }
        }
    }
}

/// The evaluator's per-group state: broadcast round keys and each lane's instance part of the
/// tweaks.
pub(crate) struct EvalKernel {
    rk: [__m256i; 11],
    inst: [__m256i; GROUP],
}

impl EvalKernel {
    /// The state for a group whose lane 0 is instance `first`.
    #[target_feature(enable = "avx2")]
    pub(crate) fn new(keys: &RoundKeys, first: u64) -> Self {
        EvalKernel {
            rk: core::array::from_fn(|i| _mm256_broadcastsi128_si256(keys.0[i])),
            inst: core::array::from_fn(|j| {
                let i = first.wrapping_add(j as u64) as i64;
                _mm256_set_epi64x(i, 1, i, 0)
            }),
        }
    }

    /// Evaluates AND gate `k` for lanes `0..g` on wires `[a, b, out]` of `labels`, the tables
    /// of lane `j` at `tables[j·stride + 2k ..]`.
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
        let kv = _mm256_set_epi64x(0, (2 * k) as i64, 0, (2 * k) as i64);
        let one = _mm256_set1_epi64x(1);
        for j0 in (0..g).step_by(LANES) {
            let mut ab = [_mm256_setzero_si256(); LANES];
            let mut s = [_mm256_setzero_si256(); LANES];
            let mut tw = [_mm256_setzero_si256(); LANES];
            for l in 0..LANES {
                let j = (j0 + l) % GROUP;
                ab[l] = _mm256_set_m128i(load_lane(&labels[b], j), load_lane(&labels[a], j));
                s[l] = ab[l];
                tw[l] = _mm256_or_si256(self.inst[j], kv);
            }
            aes256(&self.rk, &mut s);
            let mut s2 = s;
            for l in 0..LANES {
                s2[l] = _mm256_xor_si256(s2[l], tw[l]);
            }
            aes256(&self.rk, &mut s2);
            let out = &mut labels[o];
            for l in 0..LANES.min(g - j0) {
                let j = j0 + l;
                // [H(A), H(B)] ⊕ ([T_G, T_E ⊕ A] ∧ [colour(A), colour(B)]) = [W_G, W_E].
                let h = _mm256_xor_si256(s[l], s2[l]);
                let base = j * stride + 2 * k;
                let t = load_pair(&tables[base..base + 2]);
                let zero_a = _mm256_permute2x128_si256::<0x08>(ab[l], ab[l]);
                let m = _mm256_sub_epi64(
                    _mm256_setzero_si256(),
                    _mm256_and_si256(_mm256_shuffle_epi32::<0x44>(ab[l]), one),
                );
                let w = _mm256_xor_si256(h, _mm256_and_si256(_mm256_xor_si256(t, zero_a), m));
                let lo = _mm256_castsi256_si128(w);
                let hi = _mm256_extracti128_si256::<1>(w);
                store_lane(out, j, _mm_xor_si128(lo, hi));
            }
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
    fn batched_vaes_tccr_equals_fixed_key_tccr() {
        let Some(keys) = RoundKeys::detect() else {
            return; // No VAES: nothing to compare.
        };
        let aes = &*FIXED_KEY_AES;
        for n in [1usize, 31, 32, 33, 96] {
            let xs: Vec<Block> = (0..n as u128)
                .map(|i| Block((i + 3).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
                .collect();
            let tw: Vec<Block> = (0..n as u128).map(|i| Block(i << 64 | 7)).collect();
            let mut got = xs.clone();
            // SAFETY: `detect` returned keys, so the CPU has the features.
            unsafe { Keys512::new(&keys).tccr_batch(&tw, &mut got) };
            for i in 0..n {
                assert_eq!(got[i], aes.tccr(tw[i], xs[i]), "block {i} of {n}");
            }
        }
    }

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
