//! AES-128 on VAES (x86-64 with AVX-512): the expanded round keys every VAES kernel starts from
//! (the garbling kernels of `gc::kernel::vaes` under the fixed key), counter mode for the
//! [`Prg`](super::Prg), and the batched fixed-key passes of
//! [`FixedKeyAes`](super::FixedKeyAes), four blocks per instruction instead of the `aes`
//! crate's one.
//!
//! Used only when the CPU reports AES, VAES, AVX-512F and AVX-512VL at run time
//! (`RoundKeys::detect`, `RoundKeys::for_key`); elsewhere the `aes` crate runs.

use core::arch::x86_64::*;

use super::Block;

/// Expanded AES-128 round keys. Holding one proves the CPU has the features the VAES kernels
/// need: it is only made by `RoundKeys::detect` and `RoundKeys::for_key`.
#[derive(Clone, Copy)]
pub struct RoundKeys(pub(crate) [__m128i; 11]);

impl core::fmt::Debug for RoundKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RoundKeys(..)")
    }
}

/// Whether this CPU has what the VAES kernels use.
fn has_vaes() -> bool {
    is_x86_feature_detected!("aes")
        && is_x86_feature_detected!("vaes")
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
}

impl RoundKeys {
    /// The round keys of the fixed key, if this CPU has AES, VAES, AVX-512F and AVX-512VL.
    pub(crate) fn detect() -> Option<Self> {
        Self::for_key(Block::from_bytes(super::aes::FIXED_KEY))
    }

    /// The round keys of `key`, if this CPU has AES, VAES, AVX-512F and AVX-512VL.
    pub(crate) fn for_key(key: Block) -> Option<Self> {
        // SAFETY: the features `expand` needs were just detected.
        has_vaes().then(|| unsafe { expand(key.to_bytes()) })
    }

    /// `out[i] = AES(counter + i)` (the counter as a little-endian block, wrapping at 2^128):
    /// the [`Prg`](super::Prg) stream from counter `counter` on.
    pub(crate) fn ctr(&self, counter: u128, out: &mut [Block]) {
        // Lanes add 64-bit counters: split where the low word would carry into the high one.
        let lo_left = (u64::MAX - counter as u64) as u128 + 1;
        if (out.len() as u128) > lo_left {
            let (a, b) = out.split_at_mut(lo_left as usize);
            self.ctr(counter, a);
            self.ctr(counter.wrapping_add(lo_left), b);
            return;
        }
        // SAFETY: holding round keys proves the CPU has every feature `ctr512` enables.
        unsafe { ctr512(self, counter, out) }
    }

    /// Overwrites the round keys with zeros, in a way the compiler keeps (for keys that are
    /// secret, before they are freed).
    pub(crate) fn wipe(&mut self) {
        for k in self.0.iter_mut() {
            // SAFETY: `k` is a valid, aligned, writable `__m128i`; the volatile write keeps the
            // compiler from dropping a store to memory about to be freed.
            unsafe { core::ptr::write_volatile(k, _mm_setzero_si128()) };
        }
    }

    /// `xs[k] ← AES(xs[k])` for every k.
    pub(crate) fn encrypt_blocks(&self, xs: &mut [Block]) {
        // SAFETY: holding round keys proves the CPU has every feature `map512` enables.
        unsafe { map512(self, xs, None) }
    }

    /// `xs[k] ← AES(AES(xs[k]) ⊕ tweaks[k]) ⊕ AES(xs[k])` for every k: the tweakable hash
    /// [`FixedKeyAes::tccr`](super::FixedKeyAes::tccr) in one pass, its middle value kept in
    /// registers. Panics unless the lengths agree (a programming error).
    pub(crate) fn tccr_blocks(&self, tweaks: &[Block], xs: &mut [Block]) {
        assert_eq!(tweaks.len(), xs.len(), "one tweak per block");
        // SAFETY: as above; the lengths agree.
        unsafe { map512(self, xs, Some(tweaks)) }
    }
}

/// Loads blocks `4i..` of `src` (at most four, the rest of the register zero).
#[target_feature(enable = "avx512f")]
#[inline]
fn load4(src: &[Block]) -> __m512i {
    let n = src.len().min(4);
    let mask: __mmask8 = ((1u16 << (2 * n)) - 1) as u8;
    // SAFETY: the mask selects the first 16·n bytes, which `src` holds; the load is unaligned
    // and masked-off lanes are not read.
    unsafe { _mm512_maskz_loadu_epi64(mask, src.as_ptr().cast()) }
}

/// Stores the first `dst.len()` (at most four) blocks of `v` to `dst`.
#[target_feature(enable = "avx512f")]
#[inline]
fn store4(dst: &mut [Block], v: __m512i) {
    let n = dst.len().min(4);
    let mask: __mmask8 = ((1u16 << (2 * n)) - 1) as u8;
    // SAFETY: the mask selects the first 16·n bytes, which `dst` holds; the store is unaligned
    // and masked-off lanes are not touched.
    unsafe { _mm512_mask_storeu_epi64(dst.as_mut_ptr().cast(), mask, v) }
}

/// [`RoundKeys::encrypt_blocks`] (`tweaks` `None`) or [`RoundKeys::tccr_blocks`] (`Some`, as
/// long as `xs`), [`CTR_LANES`] registers per pass.
#[target_feature(enable = "avx512f,vaes")]
fn map512(keys: &RoundKeys, xs: &mut [Block], tweaks: Option<&[Block]>) {
    let rk: [__m512i; 11] = core::array::from_fn(|i| _mm512_broadcast_i32x4(keys.0[i]));
    #[target_feature(enable = "avx512f,vaes")]
    #[inline]
    fn pass<const N: usize>(rk: &[__m512i; 11], xs: &mut [Block], tweaks: Option<&[Block]>) {
        let mut s: [__m512i; N] = core::array::from_fn(|i| load4(xs.get(4 * i..).unwrap_or(&[])));
        aes512(rk, &mut s);
        if let Some(t) = tweaks {
            let mut u: [__m512i; N] = core::array::from_fn(|i| {
                _mm512_xor_si512(s[i], load4(t.get(4 * i..).unwrap_or(&[])))
            });
            aes512(rk, &mut u);
            for (v, u) in s.iter_mut().zip(u) {
                *v = _mm512_xor_si512(*v, u);
            }
        }
        for (i, v) in s.into_iter().enumerate() {
            if let Some(dst) = xs.get_mut(4 * i..) {
                store4(dst, v);
            }
        }
    }
    let step = 4 * CTR_LANES;
    let mut at = 0;
    while at + step <= xs.len() {
        pass::<CTR_LANES>(
            &rk,
            &mut xs[at..at + step],
            tweaks.map(|t| &t[at..at + step]),
        );
        at += step;
    }
    while at < xs.len() {
        let end = (at + 4).min(xs.len());
        pass::<1>(&rk, &mut xs[at..end], tweaks.map(|t| &t[at..end]));
        at = end;
    }
}

/// The sums SoftSpoken's small-field VOLE takes of `2^k` counter-mode streams, `k` ∈ {2, 4}:
/// for `j < u.len() = w`, `u[j] = ⊕_x AES_x(counter + j)` and `v[b·w + j] = ⊕_{x : x_b = 1}
/// AES_x(counter + j)`, `keys[x]` keying stream `x`. Each register holds one block position of
/// four streams (a key per 128-bit lane), so the sums are taken in registers and only the
/// `k + 1` results reach memory, instead of every stream's blocks being written and folded in
/// passes over memory. `None`, touching nothing, where this kernel does not apply (another
/// `k`, or the counter's low word carrying within the call).
pub(crate) fn ctr_fold(
    keys: &[&RoundKeys],
    counter: u128,
    u: &mut [Block],
    v: &mut [Block],
) -> Option<()> {
    let w = u.len();
    let k = keys.len().trailing_zeros() as usize;
    if !matches!(keys.len(), 4 | 16) || v.len() != k * w {
        return None;
    }
    // Lanes add 64-bit counters; positions past `w` in the last register are computed too.
    (counter as u64).checked_add(w.next_multiple_of(4) as u64)?;
    // SAFETY: holding round keys proves the CPU has every feature the kernel enables; the
    // lengths were checked above.
    unsafe {
        if k == 2 {
            let mut lk = [lane_keys(keys)];
            ctr_fold512::<1>(&lk, counter, u, v);
            wipe_lane_keys(&mut lk);
        } else {
            let mut lk: [[__m512i; 11]; 4] = core::array::from_fn(|g| lane_keys(&keys[4 * g..]));
            ctr_fold512::<4>(&lk, counter, u, v);
            wipe_lane_keys(&mut lk);
        }
    }
    Some(())
}

/// The round keys of `keys[0..4]`, key `l` in lane `l` of each round's register.
#[target_feature(enable = "avx512f")]
fn lane_keys(keys: &[&RoundKeys]) -> [__m512i; 11] {
    core::array::from_fn(|r| {
        let lo = _mm256_set_m128i(keys[1].0[r], keys[0].0[r]);
        let hi = _mm256_set_m128i(keys[3].0[r], keys[2].0[r]);
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    })
}

/// Overwrites lane keys with zeros in a way the compiler keeps: they are the streams' secret
/// keys.
fn wipe_lane_keys<const G: usize>(lk: &mut [[__m512i; 11]; G]) {
    for k in lk.iter_mut().flatten() {
        // SAFETY: `k` is a valid, aligned, writable register-sized value on our stack.
        unsafe { core::ptr::write_volatile(k, core::mem::zeroed()) };
    }
}

/// The 4 × 4 transpose of 128-bit lanes: lane `i` of register `l` of the result is lane `l` of
/// register `i` of `a` (for SoftSpoken's fold here, and for loading labels into the garbling
/// engine's lanes in `gc::kernel`).
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn transpose_lanes(a: [__m512i; 4]) -> [__m512i; 4] {
    // [a0₀, a0₁, a1₀, a1₁], [a0₂, a0₃, a1₂, a1₃] and the same of a2, a3; then pair them up.
    let lo = [
        _mm512_shuffle_i64x2::<0x44>(a[0], a[1]),
        _mm512_shuffle_i64x2::<0xEE>(a[0], a[1]),
    ];
    let hi = [
        _mm512_shuffle_i64x2::<0x44>(a[2], a[3]),
        _mm512_shuffle_i64x2::<0xEE>(a[2], a[3]),
    ];
    [
        _mm512_shuffle_i64x2::<0x88>(lo[0], hi[0]),
        _mm512_shuffle_i64x2::<0xDD>(lo[0], hi[0]),
        _mm512_shuffle_i64x2::<0x88>(lo[1], hi[1]),
        _mm512_shuffle_i64x2::<0xDD>(lo[1], hi[1]),
    ]
}

/// `[Σ_l a_l, Σ_l b_l, Σ_l c_l, Σ_l d_l]`: the XOR of the four lanes of each of four registers,
/// as the four lanes of one.
#[target_feature(enable = "avx512f")]
#[inline]
fn lane_sums(a: [__m512i; 4]) -> __m512i {
    let t = transpose_lanes(a);
    _mm512_ternarylogic_epi64::<0x96>(t[0], t[1], _mm512_xor_si512(t[2], t[3]))
}

/// [`ctr_fold`] for `4·G` streams (`G` ∈ {1, 4}), four block positions per step: register
/// `z[g][p]` holds position `j + p` of streams `4g..4g + 4`, so stream `x` sits in group `x >>
/// 2`, lane `x & 3`.
#[target_feature(enable = "avx512f,vaes")]
fn ctr_fold512<const G: usize>(
    lk: &[[__m512i; 11]; G],
    counter: u128,
    u: &mut [Block],
    v: &mut [Block],
) {
    let w = u.len();
    let (lo, hi) = (counter as u64 as i64, (counter >> 64) as i64);
    let one = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    let mut ctr = _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
    let mut j = 0;
    while j < w {
        let mut z = [[_mm512_setzero_si512(); 4]; G];
        for p in 0..4 {
            for (zg, kg) in z.iter_mut().zip(lk) {
                zg[p] = _mm512_xor_si512(ctr, kg[0]);
            }
            ctr = _mm512_add_epi64(ctr, one);
        }
        for r in 1..10 {
            for (zg, kg) in z.iter_mut().zip(lk) {
                for zp in zg.iter_mut() {
                    *zp = _mm512_aesenc_epi128(*zp, kg[r]);
                }
            }
        }
        for (zg, kg) in z.iter_mut().zip(lk) {
            for zp in zg.iter_mut() {
                *zp = _mm512_aesenclast_epi128(*zp, kg[10]);
            }
        }
        // Per position: s over all groups (lane l: the streams with low bits l); for k = 4
        // also the groups with bit 0 (streams with bit 2) and bit 1 (bit 3) of the group set.
        let s: [__m512i; 4] = core::array::from_fn(|p| {
            let mut acc = z[0][p];
            for zg in &z[1..] {
                acc = _mm512_xor_si512(acc, zg[p]);
            }
            acc
        });
        // t[l] holds lane l of positions 0..4.
        let t = transpose_lanes(s);
        let t13 = _mm512_xor_si512(t[1], t[3]);
        let uu = _mm512_xor_si512(_mm512_xor_si512(t[0], t[2]), t13);
        let v0 = t13;
        let v1 = _mm512_xor_si512(t[2], t[3]);
        let end = (j + 4).min(w);
        store4(&mut u[j..end], uu);
        store4(&mut v[j..end], v0);
        store4(&mut v[w + j..w + end], v1);
        if G == 4 {
            let g13: [__m512i; 4] = core::array::from_fn(|p| _mm512_xor_si512(z[1][p], z[3][p]));
            let g23: [__m512i; 4] = core::array::from_fn(|p| _mm512_xor_si512(z[2][p], z[3][p]));
            let (v2, v3) = (lane_sums(g13), lane_sums(g23));
            store4(&mut v[2 * w + j..2 * w + end], v2);
            store4(&mut v[3 * w + j..3 * w + end], v3);
        }
        j += 4;
    }
}

/// AES-128 key expansion (FIPS-197 §5.2) with AESKEYGENASSIST.
#[target_feature(enable = "aes,sse2")]
unsafe fn expand(key: [u8; 16]) -> RoundKeys {
    let mut rk = [_mm_setzero_si128(); 11];
    // SAFETY: `key` is 16 readable bytes; the load is unaligned.
    rk[0] = unsafe { _mm_loadu_si128(key.as_ptr().cast()) };
    macro_rules! round {
        ($i:literal, $rcon:literal) => {{
            let mut k = rk[$i - 1];
            let t = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            rk[$i] = _mm_xor_si128(k, t);
        }};
    }
    round!(1, 0x01);
    round!(2, 0x02);
    round!(3, 0x04);
    round!(4, 0x08);
    round!(5, 0x10);
    round!(6, 0x20);
    round!(7, 0x40);
    round!(8, 0x80);
    round!(9, 0x1b);
    round!(10, 0x36);
    RoundKeys(rk)
}

/// Registers in flight per pass of [`ctr512`] (four blocks each): enough to cover the latency
/// of the AES units.
const CTR_LANES: usize = 8;

/// AES on `N` 512-bit registers of counters.
#[target_feature(enable = "avx512f,vaes")]
#[inline]
fn aes512<const N: usize>(rk: &[__m512i; 11], s: &mut [__m512i; N]) {
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

/// [`RoundKeys::ctr`] when the low 64 bits of the counter do not carry within `out`.
#[target_feature(enable = "avx512f,vaes")]
fn ctr512(keys: &RoundKeys, counter: u128, out: &mut [Block]) {
    let rk: [__m512i; 11] = core::array::from_fn(|i| _mm512_broadcast_i32x4(keys.0[i]));
    let (lo, hi) = (counter as u64, (counter >> 64) as i64);
    let at = |i: u64| lo.wrapping_add(i) as i64;
    // Lane j holds counter + j: [lo + j, hi] as 64-bit elements, low first.
    let mut ctr = _mm512_set_epi64(hi, at(3), hi, at(2), hi, at(1), hi, at(0));
    let four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    let mut full = out.chunks_exact_mut(4 * CTR_LANES);
    for chunk in &mut full {
        let mut s = [ctr; CTR_LANES];
        for v in s.iter_mut().skip(1) {
            ctr = _mm512_add_epi64(ctr, four);
            *v = ctr;
        }
        ctr = _mm512_add_epi64(ctr, four);
        aes512(&rk, &mut s);
        for (dst, v) in chunk.chunks_exact_mut(4).zip(s) {
            // SAFETY: four `Block`s are 64 writable bytes; the store is unaligned.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), v) };
        }
    }
    for dst in full.into_remainder().chunks_mut(4) {
        let mut s = [ctr];
        ctr = _mm512_add_epi64(ctr, four);
        aes512(&rk, &mut s);
        // Two 64-bit elements per block written.
        let mask: __mmask8 = ((1u16 << (2 * dst.len())) - 1) as u8;
        // SAFETY: the mask selects the first 16·len bytes, which `dst` holds; the store is
        // unaligned and masked-off lanes are not touched.
        unsafe { _mm512_mask_storeu_epi64(dst.as_mut_ptr().cast(), mask, s[0]) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::FixedKeyAes;

    #[test]
    fn counter_mode_equals_aes_of_each_counter() {
        let key = Block(0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100);
        let Some(keys) = RoundKeys::for_key(key) else {
            return; // No VAES: the `aes` crate path runs, tested with the PRG.
        };
        let aes = FixedKeyAes::new(key);
        // Lengths around the pass width, and counters whose low word carries inside the call.
        for (start, n) in [
            (0u128, 1usize),
            (5, 31),
            (7, 32),
            (9, 77),
            (u64::MAX as u128 - 2, 9),
            (u128::MAX - 1, 5),
        ] {
            let mut out = vec![Block::ONES; n + 1];
            keys.ctr(start, &mut out[..n]);
            for (i, b) in out[..n].iter().enumerate() {
                assert_eq!(
                    *b,
                    aes.encrypt(Block(start.wrapping_add(i as u128))),
                    "{start} {i}"
                );
            }
            assert_eq!(out[n], Block::ONES, "nothing written past the slice");
        }
    }

    #[test]
    fn batched_passes_equal_aes_block_by_block() {
        let key = Block(0x1f1e_1d1c_1b1a_1918_1716_1514_1312_1110);
        let Some(keys) = RoundKeys::for_key(key) else {
            return; // No VAES: the `aes` crate path runs.
        };
        let aes = FixedKeyAes::new(key);
        for n in [0usize, 1, 3, 4, 5, 31, 32, 33, 70] {
            let xs: Vec<Block> = (0..n as u128).map(|i| Block(i * 0x9e37_79b9 + 7)).collect();
            let tw: Vec<Block> = (0..n as u128).map(|i| Block(i << 64 | 3)).collect();
            let mut out = xs.clone();
            out.push(Block::ONES);
            keys.encrypt_blocks(&mut out[..n]);
            let mut hashed = xs.clone();
            hashed.push(Block::ONES);
            keys.tccr_blocks(&tw, &mut hashed[..n]);
            for i in 0..n {
                let y = aes.encrypt(xs[i]);
                assert_eq!(out[i], y, "{n} {i}");
                assert_eq!(hashed[i], y ^ aes.encrypt(y ^ tw[i]), "{n} {i}");
            }
            assert_eq!(
                (out[n], hashed[n]),
                (Block::ONES, Block::ONES),
                "nothing written past"
            );
        }
    }

    #[test]
    fn folded_streams_equal_the_sums_of_each_stream() {
        for leaves in [4usize, 16] {
            let k = leaves.trailing_zeros() as usize;
            let Some(keys) = (0..leaves)
                .map(|x| RoundKeys::for_key(Block(0x5a5a_0000 ^ (x as u128 * 0x1234_5678_9abc))))
                .collect::<Option<Vec<_>>>()
            else {
                return; // No VAES: the portable fold runs, tested with SoftSpoken.
            };
            let refs: Vec<&RoundKeys> = keys.iter().collect();
            // Widths around the four positions per step; a counter whose high word is set.
            for (counter, w) in [(0u128, 1usize), (3, 4), (1 << 70 | 9, 7), (100, 128)] {
                let streams: Vec<Vec<Block>> = keys
                    .iter()
                    .map(|kx| {
                        let mut r = vec![Block::ZERO; w];
                        kx.ctr(counter, &mut r);
                        r
                    })
                    .collect();
                let mut u = vec![Block::ONES; w + 1];
                let mut v = vec![Block::ONES; k * w + 1];
                ctr_fold(&refs, counter, &mut u[..w], &mut v[..k * w]).unwrap();
                for j in 0..w {
                    let all = streams.iter().fold(Block::ZERO, |a, r| a ^ r[j]);
                    assert_eq!(u[j], all, "k {k} w {w} j {j}");
                    for b in 0..k {
                        let want = (0..leaves)
                            .filter(|x| (x >> b) & 1 == 1)
                            .fold(Block::ZERO, |a, x| a ^ streams[x][j]);
                        assert_eq!(v[b * w + j], want, "k {k} w {w} j {j} b {b}");
                    }
                }
                assert_eq!((u[w], v[k * w]), (Block::ONES, Block::ONES), "nothing past");
            }
            // Other stream counts, and a counter about to carry into the high word: not taken.
            assert!(
                ctr_fold(&refs[..2], 0, &mut [Block::ZERO; 4], &mut [Block::ZERO; 4]).is_none()
            );
            let (mut u, mut v) = (vec![Block::ZERO; 8], vec![Block::ZERO; 8 * k]);
            assert!(ctr_fold(&refs, u64::MAX as u128 - 3, &mut u, &mut v).is_none());
        }
    }
}
