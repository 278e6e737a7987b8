//! The 128 × n bit-matrix transpose of OT extension: 128 PRG-expanded columns (one per base
//! OT, each n bits) become n rows of 128 bits, one [`Block`] per extended OT.
//!
//! Layout. The input is 128 rows of `n / 8` bytes, row-major; bit `j` of row `i` is bit `j % 8`
//! of byte `i * n / 8 + j / 8`, which is also bit `j % 128` of block `j / 128` when a row is held
//! as little-endian blocks. Output row `j` is the block whose bit `i` (bit `i % 8` of byte
//! `i / 8`) is bit `j` of input row `i`.
//!
//! Three implementations compute the same function: [`transpose_naive`] (bit by bit, the
//! reference), a portable one on 8 × 8 bit tiles held in `u64`s, and on x86-64 an SSE2 one that
//! gathers a byte from each of 16 rows and peels off their bits with `_mm_movemask_epi8` (the
//! technique of emp-tool's `sse_trans`). [`transpose_128xn`] picks the fastest available.

use crate::crypto::Block;

/// Checks the shape contract shared by every implementation.
fn check_shape(input: &[u8], n: usize, out: &[Block]) {
    assert!(n % 8 == 0, "transpose: n = {n} is not a multiple of 8");
    assert_eq!(
        input.len(),
        16 * n,
        "transpose: input must hold 128 rows of n/8 bytes"
    );
    assert_eq!(out.len(), n, "transpose: output must hold n rows");
}

/// Transpose the 128 × `n` bit matrix `input` into `out` (see the module documentation for the
/// layout), with the fastest implementation this machine has.
///
/// # Panics
/// If `n` is not a multiple of 8, `input.len() != 16 * n` or `out.len() != n`: a caller bug,
/// never a consequence of data from the peer.
#[inline]
pub fn transpose_128xn(input: &[u8], n: usize, out: &mut [Block]) {
    #[cfg(target_arch = "x86_64")]
    {
        transpose_sse2(input, n, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        transpose_portable(input, n, out)
    }
}

/// The reference transpose, one bit at a time. Same contract as [`transpose_128xn`].
pub fn transpose_naive(input: &[u8], n: usize, out: &mut [Block]) {
    check_shape(input, n, out);
    let row_bytes = n / 8;
    for (j, o) in out.iter_mut().enumerate() {
        let mut v = 0u128;
        for i in 0..128 {
            let bit = (input[i * row_bytes + j / 8] >> (j % 8)) & 1;
            v |= (bit as u128) << i;
        }
        *o = Block(v);
    }
}

/// Transpose an 8 × 8 bit matrix held as a `u64` whose bit `8r + c` is entry (r, c).
#[inline(always)]
fn transpose8x8(mut x: u64) -> u64 {
    // Three rounds of swapping off-diagonal sub-blocks of size 1, 2 and 4 (Hacker's Delight
    // §7-3): each round exchanges bit pairs at distance 7, 14 and 28 through a masked XOR.
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^= t ^ (t << 28);
    x
}

/// The portable transpose on 8 × 8 tiles. Same contract as [`transpose_128xn`].
pub fn transpose_portable(input: &[u8], n: usize, out: &mut [Block]) {
    check_shape(input, n, out);
    let row_bytes = n / 8;
    for (c, rows) in out.chunks_exact_mut(8).enumerate() {
        // Output rows 8c..8c+8 come from byte column c of all 128 input rows.
        let mut acc = [0u128; 8];
        for g in 0..16 {
            let mut tile = 0u64;
            for k in 0..8 {
                tile |= (input[(8 * g + k) * row_bytes + c] as u64) << (8 * k);
            }
            // Byte k of the transposed tile holds bit k of the 8 gathered bytes.
            let t = transpose8x8(tile);
            for (b, a) in acc.iter_mut().enumerate() {
                *a |= ((t >> (8 * b)) as u8 as u128) << (8 * g);
            }
        }
        for (o, a) in rows.iter_mut().zip(acc) {
            *o = Block(a);
        }
    }
}

/// The SSE2 transpose (always available on x86-64). Same contract as [`transpose_128xn`].
#[cfg(target_arch = "x86_64")]
pub fn transpose_sse2(input: &[u8], n: usize, out: &mut [Block]) {
    check_shape(input, n, out);
    // SAFETY: SSE2 is part of the x86-64 baseline, so the target feature is always present.
    unsafe { transpose_sse2_kernel(input, n / 8, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn transpose_sse2_kernel(input: &[u8], row_bytes: usize, out: &mut [Block]) {
    use core::arch::x86_64::{_mm_movemask_epi8, _mm_set_epi64x, _mm_slli_epi64};

    for (c, rows) in out.chunks_exact_mut(8).enumerate() {
        let mut acc = [0u128; 8];
        for g in 0..8 {
            // Byte c of input rows 16g..16g+16: lane k's top bit is bit 7 of row 16g+k.
            let mut lanes = [0u8; 16];
            for (k, l) in lanes.iter_mut().enumerate() {
                *l = input[(16 * g + k) * row_bytes + c];
            }
            let x = u128::from_le_bytes(lanes);
            let mut v = _mm_set_epi64x((x >> 64) as i64, x as i64);
            for b in (0..8).rev() {
                // The 16 top bits are bit b of the 16 rows: output row 8c+b, bits 16g..16g+16.
                acc[b] |= (_mm_movemask_epi8(v) as u16 as u128) << (16 * g);
                // Shifting 64-bit lanes moves each byte's bit b-1 to its top; bits carried into
                // the next byte land at its bottom and are never read.
                v = _mm_slli_epi64::<1>(v);
            }
        }
        for (o, a) in rows.iter_mut().zip(acc) {
            *o = Block(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn random_matrix(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..16 * n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    /// The naive transpose against the definition, entry by entry, on a matrix with one bit set
    /// per row at a distinct position, so any misplaced bit is caught.
    #[test]
    fn naive_matches_definition() {
        let n = 256;
        let mut input = vec![0u8; 16 * n];
        for i in 0..128 {
            let j = (i * 37 + 5) % n;
            input[i * n / 8 + j / 8] |= 1 << (j % 8);
        }
        let mut out = vec![Block::ZERO; n];
        transpose_naive(&input, n, &mut out);
        for (j, row) in out.iter().enumerate() {
            for i in 0..128 {
                let expect = (i * 37 + 5) % n == j;
                assert_eq!((row.0 >> i) & 1 == 1, expect, "entry ({i},{j})");
            }
        }
    }

    #[test]
    fn transpose8x8_is_an_involution_and_moves_entries() {
        let x = 0x8040_2010_0804_0201u64; // identity: fixed
        assert_eq!(transpose8x8(x), x);
        // Entry (0, 7) (bit 7) goes to (7, 0) (bit 56).
        assert_eq!(transpose8x8(1 << 7), 1 << 56);
        let y = 0x0123_4567_89ab_cdefu64;
        assert_eq!(transpose8x8(transpose8x8(y)), y);
    }

    proptest! {
        #[test]
        fn fast_transposes_match_naive(seed in any::<u64>(), n8 in 1usize..70) {
            let n = 8 * n8;
            let input = random_matrix(n, seed);
            let mut expect = vec![Block::ZERO; n];
            transpose_naive(&input, n, &mut expect);
            let mut got = vec![Block::ZERO; n];
            transpose_portable(&input, n, &mut got);
            prop_assert_eq!(&got, &expect);
            #[cfg(target_arch = "x86_64")]
            {
                let mut got = vec![Block::ZERO; n];
                transpose_sse2(&input, n, &mut got);
                prop_assert_eq!(&got, &expect);
            }
            let mut got = vec![Block::ZERO; n];
            transpose_128xn(&input, n, &mut got);
            prop_assert_eq!(&got, &expect);
        }
    }
}
