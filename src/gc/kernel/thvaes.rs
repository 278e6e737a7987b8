//! The fused x86-64 AND-gate kernels of the three-halves scheme
//! ([`threehalves`](crate::gc::threehalves)): the hash inputs, tweaks and hashes of a whole
//! group stay in 512-bit registers (four lanes, i.e. instances, per register), and the per-lane
//! arithmetic of [`garble_gate`](crate::gc::threehalves) / `eval_gate` runs on all of them at
//! once, with each lane's colour and random bits turned into AVX-512 mask registers instead of
//! branches or scalar bit matrices.
//!
//! The scheme's formulas are rewritten for this (the derivation is in the comments of
//! [`Garble::quad`] and [`Eval::quad`]): the matrix products `R · (A_L, A_R, B_L, B_R)` become
//! masked XORs of the two fixed products `P = S₁ · (a, b)` and `Q = S₂ · (a, b)` and of constants
//! derived from Δ; the evaluator's control bits go through one GF(2) affine transform
//! (`vgf2p8affineqb`) whose matrix the lane's colours pick. The garbler packs each lane's
//! control bits into a 64-bit accumulator and writes whole words; the evaluator keeps a
//! two-word window of each lane's control string. Both produce exactly the tables of the
//! reference (tested here and in [`thbatch`](crate::gc::thbatch) against the portable route).
//! Every choice that depends on a secret (colours, random bits, control bits) is a mask or a
//! masked instruction; branches and memory indices depend only on the gate index and the
//! group's length.
//!
//! Used only when the CPU has what [`RoundKeys`] proves (AES, VAES, AVX-512F/VL) and also
//! AVX-512BW and GFNI ([`supported`]); elsewhere the batched engine hashes through the other
//! routes of [`thbatch`](crate::gc::thbatch).

use core::arch::x86_64::*;

use super::{eval_gates, garble_gates, prefetch_lanes, EvalAnd, GarbleAnd, Lanes, AHEAD, GROUP};
use crate::crypto::vaes::RoundKeys;
use crate::crypto::Block;
use crate::gc::circuit::Circuit;
use crate::gc::threehalves::{and_tweaks, instance_words, rand_blocks, CONTROL_BITS};

/// 512-bit registers per wire of a group, four lanes each.
const QUADS: usize = GROUP / 4;

/// `vpternlogq` immediates, each written as its function applied to the operands' canonical
/// truth-table bytes `A = 0xF0`, `B = 0xCC`, `C = 0xAA`.
const XOR3: i32 = 0xF0 ^ 0xCC ^ 0xAA;
/// `C ? B : A`, bit by bit.
const SEL: i32 = (0xAA & 0xCC) | (!0xAA & 0xF0);
/// `A ^ (B & C)`.
const XOR_AND: i32 = 0xF0 ^ (0xCC & 0xAA);
/// `(A & B) ^ C`.
const AND_XOR: i32 = (0xF0 & 0xCC) ^ 0xAA;

/// `vpshufd` patterns on each 128-bit lane: low word in both halves, high word in both, swap.
const LO2: _MM_PERM_ENUM = 0x44;
/// See [`LO2`].
const HI2: _MM_PERM_ENUM = 0xEE;
/// See [`LO2`].
const SWAP: _MM_PERM_ENUM = 0x4E;

/// Whether the CPU has the features these kernels need beyond those a [`RoundKeys`] proves.
pub(crate) fn supported() -> bool {
    is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("gfni")
}

/// Every 128-bit lane holds `(lo, hi)`.
#[target_feature(enable = "avx512f")]
#[inline]
fn splat2(lo: u64, hi: u64) -> __m512i {
    let (l, h) = (lo as i64, hi as i64);
    _mm512_set_epi64(h, l, h, l, h, l, h, l)
}

/// Every 64-bit element holds `v`.
#[target_feature(enable = "avx512f")]
#[inline]
fn splat(v: u64) -> __m512i {
    _mm512_set1_epi64(v as i64)
}

/// A shift count for `vpsllq` / `vpsrlq` (counts of 64 and more give zero).
#[target_feature(enable = "sse2")]
#[inline]
fn count(n: usize) -> __m128i {
    _mm_cvtsi64_si128(n as i64)
}

/// Lanes `4q..4q + 4` of a wire.
#[target_feature(enable = "avx512f")]
#[inline]
fn load(w: &Lanes, q: usize) -> __m512i {
    let words = &w.0[8 * q..8 * q + 8];
    // SAFETY: eight `u64`s are 64 readable bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
}

/// Sets lanes `4q..4q + 4` of a wire.
#[target_feature(enable = "avx512f")]
#[inline]
fn store(w: &mut Lanes, q: usize, v: __m512i) {
    let words = &mut w.0[8 * q..8 * q + 8];
    // SAFETY: as for `load`, writable.
    unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), v) }
}

/// π on 512-bit registers (four blocks each) whose inputs already hold the XOR with round key 0
/// (the kernels fold it into their inputs and tweaks, saving an instruction per block). A macro
/// so that it is always inlined, letting the out-of-order core overlap one register group's AES
/// rounds with the previous group's arithmetic (a called function would be a barrier).
macro_rules! aes {
    ($rk:expr, $s:expr) => {{
        let (rk, s) = ($rk, $s);
        for key in &rk[1..10] {
            for v in s.iter_mut() {
                *v = _mm512_aesenc_epi128(*v, *key);
            }
        }
        for v in s.iter_mut() {
            *v = _mm512_aesenclast_epi128(*v, rk[10]);
        }
    }};
}

/// `x[m] ← π(π(x[m]) ⊕ t[m]) ⊕ π(x[m])`:
/// [`FixedKeyAes::tccr`](crate::crypto::aes::FixedKeyAes::tccr) on four blocks per register,
/// called with `x[m] ⊕ k₀` and `t[m] ⊕ k₀` for round key `k₀` (see [`aes!`]).
macro_rules! tccr {
    ($rk:expr, $x:expr, $t:expr) => {{
        let (rk, x, t) = ($rk, $x, $t);
        aes!(rk, &mut *x);
        let mut y = *x;
        for m in 0..y.len() {
            y[m] = _mm512_xor_si512(y[m], t[m]);
        }
        aes!(rk, &mut y);
        for m in 0..y.len() {
            x[m] = _mm512_xor_si512(x[m], y[m]);
        }
    }};
}

/// The round keys in every 128-bit lane.
#[target_feature(enable = "avx512f")]
#[inline]
fn broadcast_keys(keys: &RoundKeys) -> [__m512i; 11] {
    let mut rk = [_mm512_setzero_si512(); 11];
    for (r, k) in rk.iter_mut().zip(&keys.0) {
        *r = _mm512_broadcast_i32x4(*k);
    }
    rk
}

/// The instance part of a group's tweaks: lane `j` holds `and_tweaks(first + j, 0)[0] ⊕
/// and_tweaks(0, 0)[0]`, so that gate `k`'s tweak `t_s` is this XORed with `and_tweaks(0, k)[s]`
/// ([`gate_tweaks`]; [`and_tweaks`] is linear in that way, checked by a test).
#[target_feature(enable = "avx512f")]
#[inline]
fn instance_tweaks(first: u64) -> [__m512i; QUADS] {
    let mut out = [_mm512_setzero_si512(); QUADS];
    for (q, v) in out.iter_mut().enumerate() {
        let t: [u128; 4] = core::array::from_fn(|l| {
            and_tweaks(first.wrapping_add((4 * q + l) as u64), 0)[0].0 ^ and_tweaks(0, 0)[0].0
        });
        let w = |l: usize, hi: bool| (t[l] >> (64 * hi as u32)) as u64 as i64;
        *v = _mm512_set_epi64(
            w(3, true),
            w(3, false),
            w(2, true),
            w(2, false),
            w(1, true),
            w(1, false),
            w(0, true),
            w(0, false),
        );
    }
    out
}

/// The gate part `and_tweaks(0, k)` of gate `k`'s three tweaks in every lane, XORed with round
/// key 0 (`rk0`, see [`aes!`]).
#[target_feature(enable = "avx512f")]
#[inline]
fn gate_tweaks(k: usize, rk0: __m512i) -> [__m512i; 3] {
    let t = and_tweaks(0, k);
    let mut out = [_mm512_setzero_si512(); 3];
    for (o, t) in out.iter_mut().zip(t) {
        *o = _mm512_xor_si512(splat2(t.0 as u64, (t.0 >> 64) as u64), rk0);
    }
    out
}

/// The garbler's state for one group.
struct Garble<'r> {
    /// Round keys of the fixed key, broadcast.
    rk: [__m512i; 11],
    /// Δ, `(Δ_R, Δ_L)`, and their XOR, in every lane.
    d: __m512i,
    dsw: __m512i,
    d_dsw: __m512i,
    /// `S₁ · (Δ, Δ) = (Δ_R, Δ_L ⊕ Δ_R)` and `S₂ · (Δ, Δ) = (Δ_L ⊕ Δ_R, Δ_L)`.
    pd: __m512i,
    qd: __m512i,
    inst: [__m512i; QUADS],
    ands: usize,
    /// Control randomness, `rand_blocks(ands)` blocks per lane, lane-major.
    rand: &'r [Block],
    /// Each lane's current 64 bits of control randomness in both halves of the lane (the bits
    /// of gates `32i..32i + 32`).
    rq: Lanes,
    /// Each lane's control bits not yet written, in the high half of the lane.
    acc: Lanes,
}

impl<'r> Garble<'r> {
    #[target_feature(enable = "avx512f")]
    fn new(keys: &RoundKeys, delta: Block, first: u64, ands: usize, rand: &'r [Block]) -> Self {
        assert!(
            rand.len() >= GROUP * rand_blocks(ands),
            "control randomness"
        );
        let (dl, dr) = (delta.0 as u64, (delta.0 >> 64) as u64);
        Garble {
            rk: broadcast_keys(keys),
            d: splat2(dl, dr),
            dsw: splat2(dr, dl),
            d_dsw: splat(dl ^ dr),
            pd: splat2(dr, dl ^ dr),
            qd: splat2(dl ^ dr, dl),
            inst: instance_tweaks(first),
            ands,
            rand,
            rq: Lanes::ZERO,
            acc: Lanes::ZERO,
        }
    }

    /// Loads word `i` of every lane's control randomness into [`Garble::rq`].
    fn load_rand(&mut self, i: usize) {
        let rb = rand_blocks(self.ands);
        for j in 0..GROUP {
            let w = (self.rand[j * rb + i / 2].0 >> (64 * (i % 2))) as u64;
            self.rq.0[2 * j] = w;
            self.rq.0[2 * j + 1] = w;
        }
    }

    /// Garbles AND gate `k` for lanes `0..g` on wires `[a, b, out]` (`out` may be `a` or `b`:
    /// a register's inputs are read before its output is written).
    #[target_feature(enable = "aes,avx2,avx512f,avx512vl,avx512bw,vaes,gfni")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        [a, b, o]: [usize; 3],
        k: usize,
        g: usize,
        tables: &mut [u64],
        stride: usize,
    ) {
        if k.is_multiple_of(32) {
            self.load_rand(k / 32);
        }
        let tw = gate_tweaks(k, self.rk[0]);
        let rshift = count(2 * k % 64);
        let p = CONTROL_BITS * k;
        let ctl = Ctl {
            base: 3 * self.ands,
            word: p / 64,
            up: count(p % 64),
            down: count(64 - p % 64),
            spill: p % 64 + CONTROL_BITS >= 64,
            last: k + 1 == self.ands && !(p + CONTROL_BITS).is_multiple_of(64),
        };
        // One register (four lanes) at a time: the out-of-order core overlaps its AES with
        // the previous register's arithmetic, lanes being independent.
        for q in 0..g.div_ceil(4) {
            let (a0, b0) = (load(&labels[a], q), load(&labels[b], q));
            // The six hash inputs and three tweaks, each XORed with round key 0.
            let ak = _mm512_xor_si512(a0, self.rk[0]);
            let bk = _mm512_xor_si512(b0, self.rk[0]);
            let xk = _mm512_xor_si512(ak, b0);
            let mut x = [
                ak,
                _mm512_xor_si512(ak, self.d),
                bk,
                _mm512_xor_si512(bk, self.d),
                xk,
                _mm512_xor_si512(xk, self.d),
            ];
            let t0 = _mm512_xor_si512(self.inst[q], tw[0]);
            let t1 = _mm512_xor_si512(self.inst[q], tw[1]);
            let t2 = _mm512_xor_si512(self.inst[q], tw[2]);
            tccr!(&self.rk, &mut x, &[t0, t0, t1, t1, t2, t2]);
            let rv = _mm512_srl_epi64(load(&self.rq, q), rshift);
            let (cz, g01, g2, z) = self.quad([a0, b0], &x, rv);
            store(&mut labels[o], q, cz);
            store_material(tables, stride, k, q, g, g01, g2);
            let acc = self.ctl(tables, stride, &ctl, q, g, z);
            store(&mut self.acc, q, acc);
        }
    }

    /// One register's worth of [`garble_gate`](crate::gc::threehalves): from the zero-labels
    /// `[A⁰, B⁰]`, the six hashes of [`garble_inputs`](crate::gc::threehalves) and the random
    /// bits (`r₁`, `r₂` in bits 0, 1 of both words), returns the output zero-labels, `(G₀, G₁)`,
    /// `G₂` (low words) and the control bits (bits 0..5 of the high words).
    #[target_feature(enable = "avx512f,avx512vl,avx512bw")]
    #[inline]
    fn quad(
        &self,
        [a0, b0]: [__m512i; 2],
        h: &[__m512i; 6],
        rv: __m512i,
    ) -> (__m512i, __m512i, __m512i, __m512i) {
        let (one, d) = (splat(1), self.d);
        // Colours p_a, p_b of the zero-labels and the random bits, as lane masks.
        let kpa = _mm512_test_epi64_mask(_mm512_shuffle_epi32::<LO2>(a0), one);
        let kpb = _mm512_test_epi64_mask(_mm512_shuffle_epi32::<LO2>(b0), one);
        let kr1 = _mm512_test_epi64_mask(rv, one);
        let kr2 = _mm512_test_epi64_mask(rv, splat(2));
        let (kx, t00) = (kpa ^ kpb, kpa & kpb);
        // Colour-0 labels a, b and P = S₁·(a, b) = (a_L⊕a_R⊕b_L, a_L⊕b_R),
        // Q = S₂·(a, b) = (a_L⊕b_R, a_R⊕b_L⊕b_R).
        let ca = _mm512_mask_xor_epi64(a0, kpa, a0, d);
        let cb = _mm512_mask_xor_epi64(b0, kpb, b0, d);
        let p = _mm512_ternarylogic_epi64::<XOR3>(
            _mm512_shuffle_epi32::<LO2>(ca),
            cb,
            _mm512_bsrli_epi128::<8>(ca),
        );
        let q = _mm512_ternarylogic_epi64::<XOR3>(
            ca,
            _mm512_shuffle_epi32::<HI2>(cb),
            _mm512_bslli_epi128::<8>(cb),
        );
        // Hashes of the colour-0 labels; V₀..V₄ carry every hash term of C, G and z.
        let ha0 = _mm512_mask_blend_epi64(kpa, h[0], h[1]);
        let hb0 = _mm512_mask_blend_epi64(kpb, h[2], h[3]);
        let hx0 = _mm512_mask_blend_epi64(kx, h[4], h[5]);
        let v0 = _mm512_xor_si512(ha0, hx0);
        let v1 = _mm512_xor_si512(hb0, hx0);
        let v2 = _mm512_xor_si512(h[0], h[1]);
        let v3 = _mm512_xor_si512(h[2], h[3]);
        let v4 = _mm512_xor_si512(h[4], h[5]);
        // C = (h(A₀)⊕h(X₀), h(B₀)⊕h(X₀)) ⊕ R₀₀·x₀₀ ⊕ [p_a p_b]·Δ, with
        // R₀₀·x₀₀ = (b_L, a_R) ⊕ r₁·P ⊕ r₂·Q.
        let mut m = _mm512_mask_blend_epi64(0xAA, cb, ca);
        m = _mm512_mask_xor_epi64(m, kr1, m, p);
        m = _mm512_mask_xor_epi64(m, kr2, m, q);
        let c = _mm512_xor_si512(_mm512_unpacklo_epi64(v0, v1), m);
        let c = _mm512_mask_xor_epi64(c, t00, c, d);
        // (G₀, G₁) = (h₀⊕h₁, h₂⊕h₃) ⊕ R₀₀·x₀₀ ⊕ R₁₁·x₁₁ ⊕ [p_a = p_b]·Δ, which expands to
        // swap(A⁰⊕B⁰) ⊕ p_a·P ⊕ p_b·Q ⊕ (p_a⊕r₁)·S₁(Δ,Δ) ⊕ (p_b⊕r₂)·S₂(Δ,Δ) ⊕ (p_a⊕p_b)·(Δ⊕swap Δ)
        // (the constant terms cancel: S₁(Δ,Δ) ⊕ S₂(Δ,Δ) = Δ).
        let x0 = _mm512_xor_si512(a0, b0);
        let mut g01 = _mm512_xor_si512(
            _mm512_unpacklo_epi64(v2, v3),
            _mm512_shuffle_epi32::<SWAP>(x0),
        );
        g01 = _mm512_mask_xor_epi64(g01, kpa, g01, p);
        g01 = _mm512_mask_xor_epi64(g01, kpb, g01, q);
        g01 = _mm512_mask_xor_epi64(g01, kpa ^ kr1, g01, self.pd);
        g01 = _mm512_mask_xor_epi64(g01, kpb ^ kr2, g01, self.qd);
        g01 = _mm512_mask_xor_epi64(g01, kx, g01, self.d_dsw);
        // G₂ = h₄⊕h₅ ⊕ (R₀₀·x₀₀ ⊕ R₀₁·x₀₁)_L ⊕ p_a·Δ_L
        //    = (h₄⊕h₅ ⊕ Q ⊕ Δ ⊕ swap Δ ⊕ (p_a⊕p_b)·P ⊕ p_a·Q ⊕ (p_b⊕r₁)·Δ ⊕ (p_a⊕r₂)·swap Δ)_L.
        let mut g2 = _mm512_ternarylogic_epi64::<XOR3>(v4, q, self.d_dsw);
        g2 = _mm512_mask_xor_epi64(g2, kx, g2, p);
        g2 = _mm512_mask_xor_epi64(g2, kpa, g2, q);
        g2 = _mm512_mask_xor_epi64(g2, kpb ^ kr1, g2, d);
        g2 = _mm512_mask_xor_epi64(g2, kpa ^ kr2, g2, self.dsw);
        // z_m = bit 64 of V_m ⊕ (r₁, r₂, ¬p_a, ¬p_b, p_a⊕p_b)_m, gathered into bits 0..5 of
        // the high words.
        let mut z = v4;
        for v in [v3, v2, v1, v0] {
            z = _mm512_ternarylogic_epi64::<SEL>(_mm512_add_epi64(z, z), v, one);
        }
        z = _mm512_ternarylogic_epi64::<XOR_AND>(z, rv, splat(3));
        z = _mm512_ternarylogic_epi64::<AND_XOR>(z, splat(31), splat(0b01100));
        z = _mm512_mask_xor_epi64(z, kpa, z, splat(0b10100));
        z = _mm512_mask_xor_epi64(z, kpb, z, splat(0b11000));
        (c, g01, g2, z)
    }

    /// Appends one register's control bits `z` (high words) to the lanes' accumulators and
    /// writes the words this gate completes (see [`Ctl`]); returns the new accumulator.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn ctl(
        &self,
        tables: &mut [u64],
        stride: usize,
        ctl: &Ctl,
        q: usize,
        g: usize,
        z: __m512i,
    ) -> __m512i {
        let full = _mm512_or_si512(load(&self.acc, q), _mm512_sll_epi64(z, ctl.up));
        let acc = if ctl.spill {
            store_words(tables, stride, ctl.base + ctl.word, q, g, full);
            _mm512_srl_epi64(z, ctl.down)
        } else {
            full
        };
        if ctl.last {
            let w = ctl.word + ctl.spill as usize;
            store_words(tables, stride, ctl.base + w, q, g, acc);
        }
        acc
    }
}

/// Where gate `k`'s control bits go: bit `p = 5k` of each lane's control string, which starts
/// at table word `base`; `up`, `down` shift them into word `p / 64` and the next one.
struct Ctl {
    base: usize,
    word: usize,
    up: __m128i,
    down: __m128i,
    /// Word `word` is complete after this gate.
    spill: bool,
    /// This is the last gate and leaves a partial word.
    last: bool,
}

/// Writes the high word of each of lanes `4q..4q + 4` below `g` to `tables[j·stride + word]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn store_words(tables: &mut [u64], stride: usize, word: usize, q: usize, g: usize, v: __m512i) {
    let mut w = Lanes::ZERO;
    store(&mut w, 0, v);
    for l in 0..4 {
        let j = 4 * q + l;
        if j < g {
            tables[j * stride + word] = w.0[2 * l + 1];
        }
    }
}

/// Writes `(G₀, G₁)` and `G₂` (low words of `g2`) of lanes `4q..4q + 4` below `g` to words
/// `3k..3k + 3` of each lane's table.
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn store_material(
    tables: &mut [u64],
    stride: usize,
    k: usize,
    q: usize,
    g: usize,
    g01: __m512i,
    g2: __m512i,
) {
    // Lanes 0, 1 then 2, 3 as [G₀, G₁, G₂, ·] in each 256-bit half.
    let lo = _mm512_permutex2var_epi64(g01, _mm512_set_epi64(0, 10, 3, 2, 0, 8, 1, 0), g2);
    let hi = _mm512_permutex2var_epi64(g01, _mm512_set_epi64(0, 14, 7, 6, 0, 12, 5, 4), g2);
    let ys = [
        _mm512_castsi512_si256(lo),
        _mm512_extracti64x4_epi64::<1>(lo),
        _mm512_castsi512_si256(hi),
        _mm512_extracti64x4_epi64::<1>(hi),
    ];
    for (l, y) in ys.into_iter().enumerate() {
        let j = 4 * q + l;
        if j < g {
            let s = &mut tables[j * stride + 3 * k..j * stride + 3 * k + 3];
            // SAFETY: `s` is three writable words; the mask writes exactly those three.
            unsafe { _mm256_mask_storeu_epi64(s.as_mut_ptr().cast(), 0b111, y) };
        }
    }
}

/// Reads `(G₀, G₁)` and `G₂` (in both words) of lanes `4q..4q + 4` below `g` from words
/// `3k..3k + 3` of each lane's table; lanes from `g` on read as zero.
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn load_material(tables: &[u64], stride: usize, k: usize, q: usize, g: usize) -> [__m512i; 2] {
    let mut ys = [_mm256_setzero_si256(); 4];
    for (l, y) in ys.iter_mut().enumerate() {
        let j = 4 * q + l;
        if j < g {
            let s = &tables[j * stride + 3 * k..j * stride + 3 * k + 3];
            // SAFETY: `s` is three readable words; the mask reads exactly those three.
            *y = unsafe { _mm256_maskz_loadu_epi64(0b111, s.as_ptr().cast()) };
        }
    }
    let lo = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(ys[0]), ys[1]);
    let hi = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(ys[2]), ys[3]);
    [
        _mm512_permutex2var_epi64(lo, _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0), hi),
        _mm512_permutex2var_epi64(lo, _mm512_set_epi64(14, 14, 10, 10, 6, 6, 2, 2), hi),
    ]
}

/// The GF(2) matrices of the evaluator's control bits (one row per byte, row `7 − i` giving
/// output bit `i` of `vgf2p8affineqb`): output bit 0 is `c₁ ⊕ h'` = `z₀ ⊕ i·z₂ ⊕ (i⊕j)·z₄`,
/// bit 1 is `z₁ ⊕ j·z₃ ⊕ (i⊕j)·z₄`, for input byte `z₀..z₄`. The matrix is `BASE`, plus `MI`
/// if `i`, plus `MJ` if `j`.
const C_BASE: u64 = (0x01 << 56) | (0x02 << 48);
/// See [`C_BASE`].
const C_I: u64 = (0x14 << 56) | (0x10 << 48);
/// See [`C_BASE`].
const C_J: u64 = (0x10 << 56) | (0x18 << 48);

/// The evaluator's state for one group.
struct Eval {
    rk: [__m512i; 11],
    inst: [__m512i; QUADS],
    ands: usize,
    /// Each lane's control words `w + 1` (low half, zero past the end) and `w` (high half),
    /// where `w` holds the current gate's first control bit.
    ct: Lanes,
}

impl Eval {
    #[target_feature(enable = "avx512f")]
    fn new(keys: &RoundKeys, first: u64, ands: usize) -> Self {
        Eval {
            rk: broadcast_keys(keys),
            inst: instance_tweaks(first),
            ands,
            ct: Lanes::ZERO,
        }
    }

    /// Loads control words `w` and `w + 1` of lanes `0..g` into [`Eval::ct`].
    fn load_ctl(&mut self, tables: &[u64], stride: usize, g: usize, w: usize) {
        let (base, words) = (3 * self.ands, instance_words(self.ands) - 3 * self.ands);
        for j in 0..g {
            let c = &tables[j * stride + base..j * stride + base + words];
            self.ct.0[2 * j] = c.get(w + 1).copied().unwrap_or(0);
            self.ct.0[2 * j + 1] = c[w];
        }
    }

    /// Evaluates AND gate `k` for lanes `0..g` on wires `[a, b, out]`.
    #[target_feature(enable = "aes,avx2,avx512f,avx512vl,avx512bw,vaes,gfni")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        wires: [usize; 3],
        k: usize,
        g: usize,
        tables: &[u64],
        stride: usize,
    ) {
        let p = CONTROL_BITS * k;
        if p % 64 < CONTROL_BITS {
            self.load_ctl(tables, stride, g, p / 64);
        }
        let sh = [count(p % 64), count(64 - p % 64)];
        let tw = gate_tweaks(k, self.rk[0]);
        let [a, b, o] = wires;
        if k + AHEAD < self.ands {
            prefetch_lanes(tables, stride, g, 3 * (k + AHEAD));
        }
        // One register at a time, as for the garbler.
        for q in 0..g.div_ceil(4) {
            let (la, lb) = (load(&labels[a], q), load(&labels[b], q));
            let ak = _mm512_xor_si512(la, self.rk[0]);
            let mut x = [
                ak,
                _mm512_xor_si512(lb, self.rk[0]),
                _mm512_xor_si512(ak, lb),
            ];
            let t = [
                _mm512_xor_si512(self.inst[q], tw[0]),
                _mm512_xor_si512(self.inst[q], tw[1]),
                _mm512_xor_si512(self.inst[q], tw[2]),
            ];
            tccr!(&self.rk, &mut x, &t);
            let gm = load_material(tables, stride, k, q, g);
            let out = self.quad([la, lb], &x, gm, load(&self.ct, q), sh);
            store(&mut labels[o], q, out);
        }
    }

    /// One register's worth of [`eval_gate`](crate::gc::threehalves): from the labels
    /// `[A, B]`, the hashes `[H(A, t₀), H(B, t₁), H(A⊕B, t₂)]`, the material `[(G₀, G₁), G₂]`
    /// and the control window, returns the output labels.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,gfni")]
    #[inline]
    fn quad(
        &self,
        [la, lb]: [__m512i; 2],
        h: &[__m512i; 3],
        [g01, g2]: [__m512i; 2],
        ct: __m512i,
        [up, down]: [__m128i; 2],
    ) -> __m512i {
        let one = splat(1);
        // Colours i, j as lane masks, and (i, j) word by word.
        let sa = _mm512_shuffle_epi32::<LO2>(la);
        let ki = _mm512_test_epi64_mask(sa, one);
        let kj = _mm512_test_epi64_mask(_mm512_shuffle_epi32::<LO2>(lb), one);
        let ij = _mm512_unpacklo_epi64(la, lb);
        let kij = _mm512_test_epi64_mask(ij, one);
        let kijn = _mm512_testn_epi64_mask(ij, one);
        let p = _mm512_ternarylogic_epi64::<XOR3>(sa, lb, _mm512_bsrli_epi128::<8>(la));
        let q = _mm512_ternarylogic_epi64::<XOR3>(
            la,
            _mm512_shuffle_epi32::<HI2>(lb),
            _mm512_bslli_epi128::<8>(lb),
        );
        let hh0 = _mm512_xor_si512(h[0], h[2]);
        let hh1 = _mm512_xor_si512(h[1], h[2]);
        // (h(A)⊕h(X), h(B)⊕h(X)) ⊕ (i·G₀, j·G₁) ⊕ (i⊕j)·G₂ ⊕ (¬i·B_L, ¬j·A_R) ⊕ c₁·P ⊕ c₂·Q.
        let mut out = _mm512_unpacklo_epi64(hh0, hh1);
        out = _mm512_mask_xor_epi64(out, kij, out, g01);
        out = _mm512_mask_xor_epi64(out, ki ^ kj, out, g2);
        out = _mm512_mask_xor_epi64(out, kijn, out, _mm512_mask_blend_epi64(0xAA, lb, la));
        // The gate's control bits z₀..z₄ in bits 0..5 of the high words (higher bits are the
        // next gates'), then (c₁, c₂) through the colour-picked matrix, plus the hash bits.
        let z = _mm512_or_si512(
            _mm512_srl_epi64(ct, up),
            _mm512_sll_epi64(_mm512_bslli_epi128::<8>(ct), down),
        );
        let base = splat(C_BASE);
        let mut mat = _mm512_mask_xor_epi64(base, ki, base, splat(C_I));
        mat = _mm512_mask_xor_epi64(mat, kj, mat, splat(C_J));
        let cz = _mm512_gf2p8affine_epi64_epi8::<0>(z, mat);
        let hb = _mm512_ternarylogic_epi64::<SEL>(hh0, _mm512_add_epi64(hh1, hh1), splat(2));
        let cv = _mm512_shuffle_epi32::<HI2>(_mm512_xor_si512(cz, hb));
        let kc1 = _mm512_test_epi64_mask(cv, one);
        let kc2 = _mm512_test_epi64_mask(cv, splat(2));
        out = _mm512_mask_xor_epi64(out, kc1, out, p);
        _mm512_mask_xor_epi64(out, kc2, out, q)
    }
}

/// The garbler's [`GarbleAnd`] over [`Garble`].
struct FusedGarble<'r>(Garble<'r>);

impl GarbleAnd<u64> for FusedGarble<'_> {
    #[inline(always)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        wires: [usize; 3],
        k: usize,
        g: usize,
        tables: &mut [u64],
        stride: usize,
    ) {
        // SAFETY: a `Garble` is only built inside `garble_gates_fused`, which runs only after
        // `RoundKeys::detect` and `supported` confirmed the CPU features.
        #[allow(unused_unsafe)]
        unsafe {
            self.0.and(labels, wires, k, g, tables, stride)
        }
    }
}

/// The evaluator's [`EvalAnd`] over [`Eval`].
struct FusedEval(Eval);

impl EvalAnd<u64> for FusedEval {
    #[inline(always)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        wires: [usize; 3],
        k: usize,
        g: usize,
        tables: &[u64],
        stride: usize,
    ) {
        // SAFETY: as for `FusedGarble`.
        #[allow(unused_unsafe)]
        unsafe {
            self.0.and(labels, wires, k, g, tables, stride)
        }
    }
}

/// Garbles one group of `g ≤ GROUP` instances (first instance `first`) whose input
/// zero-labels are loaded in `labels`: lane `j`'s table (`instance_words` words, the control
/// words zeroed or not) goes to `tables[j·instance_words..]`, its control randomness is
/// `rand[j·rand_blocks..]`. Callers must hold the proof of [`RoundKeys`] and have checked
/// [`supported`].
#[target_feature(enable = "aes,avx2,avx512f,avx512vl,avx512bw,vaes,gfni")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn garble_gates_fused(
    c: &Circuit,
    keys: &RoundKeys,
    d: Block,
    labels: &mut [Lanes],
    g: usize,
    first: u64,
    rand: &[Block],
    tables: &mut [u64],
) {
    let ands = c.and_count();
    let mut kern = FusedGarble(Garble::new(keys, d, first, ands, rand));
    garble_gates(c, d, labels, g, tables, instance_words(ands), &mut kern)
}

/// Evaluates one group of `g ≤ GROUP` instances whose input labels are loaded in `labels`;
/// mirrors [`garble_gates_fused`].
#[target_feature(enable = "aes,avx2,avx512f,avx512vl,avx512bw,vaes,gfni")]
pub(crate) fn eval_gates_fused(
    c: &Circuit,
    keys: &RoundKeys,
    labels: &mut [Lanes],
    g: usize,
    first: u64,
    tables: &[u64],
) {
    let ands = c.and_count();
    let mut kern = FusedEval(Eval::new(keys, first, ands));
    eval_gates(c, labels, g, tables, instance_words(ands), &mut kern)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::FIXED_KEY_AES;
    use crate::gc::threehalves::{eval_gate, garble_gate, garble_inputs, get_control, rand_bits};

    /// The kernels' tweak arithmetic: gate `k`'s tweaks are instance part XOR gate part.
    #[test]
    fn tweaks_split_into_instance_and_gate_parts() {
        for inst in [0u64, 1, 77, (1 << 62) + 5] {
            for k in [0usize, 1, 31, 176, 1 << 40] {
                let i0 = and_tweaks(inst, 0)[0].0 ^ and_tweaks(0, 0)[0].0;
                let g = and_tweaks(0, k);
                for (s, t) in and_tweaks(inst, k).iter().enumerate() {
                    assert_eq!(t.0, i0 ^ g[s].0, "instance {inst} gate {k} tweak {s}");
                }
            }
        }
    }

    /// One wide AND gate (garbled, then evaluated on random inputs) against `garble_gate` and
    /// `eval_gate` lane by lane, for every group length and control-bit position: the gate
    /// index runs through every offset of its five bits in a word, including the gates whose
    /// bits straddle two words and the last gate.
    #[test]
    fn one_gate_equals_the_per_lane_scheme() {
        let Some(keys) = RoundKeys::detect() else {
            return; // No VAES: the portable routes run there.
        };
        if !supported() {
            return;
        }
        let aes = &*FIXED_KEY_AES;
        let mut prg = crate::crypto::Prg::from_seed(Block(99));
        let delta = Block(prg.next_block().0 | 1);
        // Gate counts whose last gate's control bits end inside a word, at its end or across
        // two words, and instance numbers that wrap across a group's lanes.
        let cases = [
            (70, u64::MAX >> 2),
            (1, 0),
            (12, 5),
            (13, 1 << 40),
            (64, u64::MAX >> 2),
            (65, 3),
            (128, 9),
            (129, u64::MAX - 3),
        ];
        for (ands, first) in cases {
            let (w, rb) = (instance_words(ands), rand_blocks(ands));
            let mut rand = vec![Block::ZERO; GROUP * rb];
            prg.fill_blocks(&mut rand);
            for g in [1, 3, 4, 7, 8, 9, 15, 16] {
                let mut tables = vec![0u64; g * w];
                let mut want = vec![0u64; g * w];
                // SAFETY: `detect` returned keys and `supported` holds.
                let mut gk = unsafe { Garble::new(&keys, delta, first, ands, &rand) };
                for k in 0..ands {
                    let mut labels = [Lanes::ZERO; 3];
                    for l in labels.iter_mut().take(2) {
                        for j in 0..GROUP {
                            l.set_lane(j, prg.next_block());
                        }
                    }
                    let (x, y) = (labels[0], labels[1]);
                    // SAFETY: as above.
                    unsafe { gk.and(&mut labels, [0, 1, 2], k, g, &mut tables, w) };
                    for j in 0..g {
                        let t = and_tweaks(first.wrapping_add(j as u64), k);
                        let xs = garble_inputs(x.lane(j), y.lane(j), delta);
                        let h: [Block; 6] = core::array::from_fn(|m| aes.tccr(t[m / 2], xs[m]));
                        let r = rand_bits(&rand[j * rb..(j + 1) * rb], k);
                        let (c, gm, z) = garble_gate(x.lane(j), y.lane(j), delta, &h, r);
                        assert_eq!(labels[2].lane(j), c, "ands {ands} g {g} gate {k} lane {j}");
                        want[j * w + 3 * k..j * w + 3 * k + 3].copy_from_slice(&gm);
                        crate::gc::threehalves::put_control(&mut want[j * w + 3 * ands..], k, z);
                    }
                }
                assert_eq!(tables, want, "ands {ands} g {g}: tables");
                // The evaluator on these tables (control bits complete) and fresh random labels.
                // SAFETY: as above.
                let mut ek = unsafe { Eval::new(&keys, first, ands) };
                for k in 0..ands {
                    let mut labels = [Lanes::ZERO; 3];
                    for l in labels.iter_mut().take(2) {
                        for j in 0..GROUP {
                            l.set_lane(j, prg.next_block());
                        }
                    }
                    let (x, y) = (labels[0], labels[1]);
                    // SAFETY: as above.
                    unsafe { ek.and(&mut labels, [0, 1, 2], k, g, &tables, w) };
                    for j in 0..g {
                        let (a, b) = (x.lane(j), y.lane(j));
                        let t = and_tweaks(first.wrapping_add(j as u64), k);
                        let h = [aes.tccr(t[0], a), aes.tccr(t[1], b), aes.tccr(t[2], a ^ b)];
                        let inst = &tables[j * w..(j + 1) * w];
                        let gm = [inst[3 * k], inst[3 * k + 1], inst[3 * k + 2]];
                        let z = get_control(&inst[3 * ands..], k);
                        assert_eq!(
                            labels[2].lane(j),
                            eval_gate(a, b, &h, &gm, z),
                            "ands {ands} g {g} k {k} j {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn ternary_immediates() {
        let (a, b, c) = (0b1111_0000u8, 0b1100_1100u8, 0b1010_1010u8);
        assert_eq!(XOR3 as u8, a ^ b ^ c);
        assert_eq!(SEL as u8, (c & b) | (!c & a));
        assert_eq!(XOR_AND as u8, a ^ (b & c));
        assert_eq!(AND_XOR as u8, (a & b) ^ c);
    }
}
