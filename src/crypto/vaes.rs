//! AES-128 on VAES (x86-64 with AVX-512): the expanded round keys every VAES kernel starts from
//! (the garbling kernels of `gc::kernel::vaes` under the fixed key), counter mode for the
//! [`Prg`](super::Prg), and the batched fixed-key passes of
//! [`FixedKeyAes`](super::FixedKeyAes), four blocks per instruction instead of the `aes`
//! crate's one.
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
}
