//! AES-128 on VAES (x86-64 with AVX-512): the expanded round keys every VAES kernel starts from
//! (the garbling kernels of `gc::kernel::vaes` under the fixed key) and counter mode for the
//! [`Prg`](super::Prg), four blocks per instruction instead of the `aes` crate's one.
//!
//! Used only when the CPU reports AES, VAES, AVX-512F and AVX-512VL at run time
//! ([`RoundKeys::detect`], [`RoundKeys::for_key`]); elsewhere the `aes` crate runs.

use core::arch::x86_64::*;

use super::Block;

/// Expanded AES-128 round keys. Holding one proves the CPU has the features the VAES kernels
/// need: it is only made by [`RoundKeys::detect`] and [`RoundKeys::for_key`].
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
}
