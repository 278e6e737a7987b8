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
//! technique of emp-tool's `sse_trans`), plus AVX2 and AVX-512BW variants doing 32 and 64 rows
//! per mask.
//! On CPUs with GFNI and AVX-512 VBMI a fourth variant transposes each 8 × 8 bit square with
//! one affine instruction instead of eight mask extractions ([`transpose_gfni`]).
//! [`transpose_128xn`] picks the fastest the CPU has, detected at run time.

use crate::crypto::Block;

/// Checks the shape contract shared by every implementation.
fn check_shape(input: &[u8], n: usize, out: &[Block]) {
    assert!(
        n.is_multiple_of(8),
        "transpose: n = {n} is not a multiple of 8"
    );
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
        if has_gfni() {
            transpose_gfni(input, n, out)
        } else if std::arch::is_x86_feature_detected!("avx512bw") {
            transpose_avx512(input, n, out)
        } else if std::arch::is_x86_feature_detected!("avx2") {
            transpose_avx2(input, n, out)
        } else {
            transpose_sse2(input, n, out)
        }
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
    // Copy 8 bytes of every row into a local tile first: the rows are a power of two apart and
    // gathering from all 128 directly would thrash a few cache sets (see the SSE2 kernel).
    let mut tile = [0u64; 128];
    for t0 in (0..row_bytes).step_by(8) {
        let tw = 8.min(row_bytes - t0);
        for (i, t) in tile.iter_mut().enumerate() {
            let mut bytes = [0u8; 8];
            bytes[..tw].copy_from_slice(&input[i * row_bytes + t0..][..tw]);
            *t = u64::from_le_bytes(bytes);
        }
        for c in 0..tw {
            // Output rows 8(t0+c)..+8 come from byte c of the tile's 128 rows.
            let mut acc = [0u128; 8];
            for g in 0..16 {
                let mut sq = 0u64;
                for k in 0..8 {
                    sq |= ((tile[8 * g + k] >> (8 * c)) & 0xff) << (8 * k);
                }
                // Byte b of the transposed square holds bit b of the 8 gathered bytes.
                let t = transpose8x8(sq);
                for (b, a) in acc.iter_mut().enumerate() {
                    *a |= ((t >> (8 * b)) as u8 as u128) << (8 * g);
                }
            }
            for (o, a) in out[8 * (t0 + c)..][..8].iter_mut().zip(acc) {
                *o = Block(a);
            }
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

/// Bytes per input row in one tile: a tile is 128 rows × 16 bytes, a 128 × 128 bit block.
const TILE_BYTES: usize = 16;

/// Copy bytes `t0..t0 + tw` (`tw` ≤ [`TILE_BYTES`]) of the 128 input rows into `tile`, whose
/// slots are `W` bytes: `W / 16` lanes of 16 bytes, slot `16·(i / 16L) + i % 16` holding row `i`
/// in lane `(i / 16) % L` (L = `W / 16`), so that one load of a slot feeds L groups of 16 rows
/// (L = 1, 2, 4 for SSE2, AVX2, AVX-512BW). With `tw` < 16 the rest of each lane keeps stale
/// bytes, which the kernels never read.
///
/// The input rows are `row_bytes` apart, a power of two in OT extension: gathering from all 128
/// of them inside a kernel would hit a handful of cache sets and thrash; the kernels transpose
/// the tile from L1 instead.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fill_tile<const W: usize>(
    tile: &mut [[u8; W]],
    input: &[u8],
    row_bytes: usize,
    t0: usize,
    tw: usize,
) {
    let lanes = W / TILE_BYTES;
    for i in 0..128 {
        let slot = &mut tile[16 * (i / (16 * lanes)) + i % 16][TILE_BYTES * ((i / 16) % lanes)..]
            [..TILE_BYTES];
        let row = &input[i * row_bytes + t0..];
        if tw == TILE_BYTES {
            // A fixed-length copy compiles to one 16-byte load and store.
            let src: &[u8; TILE_BYTES] = row[..TILE_BYTES].try_into().expect("16 bytes");
            slot.copy_from_slice(src);
        } else {
            slot[..tw].copy_from_slice(&row[..tw]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn transpose_sse2_kernel(input: &[u8], row_bytes: usize, out: &mut [Block]) {
    use core::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_movemask_epi8, _mm_slli_epi64, _mm_unpackhi_epi8,
        _mm_unpacklo_epi8,
    };

    // Output rows as eight u16 lanes each: lane g of row j holds bit j of input rows 16g..16g+16.
    // SAFETY: a `Block` is 16 bytes with alignment ≥ 2 and every bit pattern is valid for both
    // types; the view covers exactly `out` and `out` is not used while it lives.
    let out16: &mut [u16] =
        unsafe { core::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u16>(), 8 * out.len()) };

    // One 128 × 16-byte tile at a time, copied to a contiguous buffer first ([`fill_tile`]).
    let mut tile = [[0u8; TILE_BYTES]; 128];
    for t0 in (0..row_bytes).step_by(TILE_BYTES) {
        let tw = TILE_BYTES.min(row_bytes - t0);
        fill_tile(&mut tile, input, row_bytes, t0, tw);
        for g in 0..8 {
            // 16 rows × 16 bytes → 16 vectors, vector c holding byte c of the 16 rows. Each
            // pass interleaves vector i with vector i+8, which rotates the 8-bit (row, column)
            // index of every byte left by one; four passes swap row and column.
            // SAFETY: each row of `tile` is 16 readable bytes; unaligned loads are allowed.
            let mut v: [__m128i; 16] = core::array::from_fn(|k| unsafe {
                _mm_loadu_si128(tile[16 * g + k].as_ptr().cast())
            });
            for _ in 0..4 {
                let w = v;
                for i in 0..8 {
                    v[2 * i] = _mm_unpacklo_epi8(w[i], w[i + 8]);
                    v[2 * i + 1] = _mm_unpackhi_epi8(w[i], w[i + 8]);
                }
            }
            for (c, vc) in v.iter_mut().enumerate().take(tw) {
                let base = 8 * (t0 + c);
                for b in (0..8).rev() {
                    // The 16 top bits are bit b of the 16 rows: output row 8(t0+c)+b, lane g.
                    out16[8 * (base + b) + g] = _mm_movemask_epi8(*vc) as u16;
                    // Shifting 64-bit lanes moves each byte's next bit to its top; bits
                    // carried into the neighbouring byte land at its bottom and are never read.
                    *vc = _mm_slli_epi64::<1>(*vc);
                }
            }
        }
    }
}

/// The AVX2 transpose: as the SSE2 one, with two 16-row groups side by side in the two
/// 128-bit lanes of each vector, so one `_mm256_movemask_epi8` yields 32 bits. Same contract as
/// [`transpose_128xn`].
///
/// # Panics
/// Also if the CPU lacks AVX2 (check with `is_x86_feature_detected!("avx2")`).
#[cfg(target_arch = "x86_64")]
pub fn transpose_avx2(input: &[u8], n: usize, out: &mut [Block]) {
    check_shape(input, n, out);
    assert!(
        std::arch::is_x86_feature_detected!("avx2"),
        "transpose_avx2: the CPU lacks AVX2"
    );
    // SAFETY: AVX2 is present, checked just above.
    unsafe { transpose_avx2_kernel(input, n / 8, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transpose_avx2_kernel(input: &[u8], row_bytes: usize, out: &mut [Block]) {
    use core::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_slli_epi64, _mm256_unpackhi_epi8,
        _mm256_unpacklo_epi8,
    };

    // Output rows as four u32 lanes: lane h of row j holds bit j of input rows 32h..32h+32.
    // SAFETY: a `Block` is 16 bytes with alignment ≥ 4 and every bit pattern is valid for both
    // types; the view covers exactly `out` and `out` is not used while it lives.
    let out32: &mut [u32] =
        unsafe { core::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u32>(), 4 * out.len()) };

    // The tile, laid out so that slot 16h+k holds row 32h+k in its low 16 bytes and row
    // 32h+16+k in its high 16 bytes: one 256-bit load then feeds both lanes.
    let mut tile = [[0u8; 2 * TILE_BYTES]; 64];
    for t0 in (0..row_bytes).step_by(TILE_BYTES) {
        let tw = TILE_BYTES.min(row_bytes - t0);
        fill_tile(&mut tile, input, row_bytes, t0, tw);
        for h in 0..4 {
            // SAFETY: each slot is 32 readable bytes; unaligned loads are allowed.
            let mut v: [__m256i; 16] = core::array::from_fn(|k| unsafe {
                _mm256_loadu_si256(tile[16 * h + k].as_ptr().cast())
            });
            // The 16 × 16 byte transpose of the SSE2 kernel, in both lanes at once.
            for _ in 0..4 {
                let w = v;
                for i in 0..8 {
                    v[2 * i] = _mm256_unpacklo_epi8(w[i], w[i + 8]);
                    v[2 * i + 1] = _mm256_unpackhi_epi8(w[i], w[i + 8]);
                }
            }
            for (c, vc) in v.iter_mut().enumerate().take(tw) {
                let base = 8 * (t0 + c);
                for b in (0..8).rev() {
                    out32[4 * (base + b) + h] = _mm256_movemask_epi8(*vc) as u32;
                    *vc = _mm256_slli_epi64::<1>(*vc);
                }
            }
        }
    }
}

/// The AVX-512BW transpose: four 16-row groups in the four 128-bit lanes, 64 bits per mask.
/// Same contract as [`transpose_128xn`].
///
/// # Panics
/// Also if the CPU lacks AVX-512BW (check with `is_x86_feature_detected!("avx512bw")`).
#[cfg(target_arch = "x86_64")]
pub fn transpose_avx512(input: &[u8], n: usize, out: &mut [Block]) {
    check_shape(input, n, out);
    assert!(
        std::arch::is_x86_feature_detected!("avx512bw"),
        "transpose_avx512: the CPU lacks AVX-512BW"
    );
    // SAFETY: AVX-512BW (which implies AVX-512F) is present, checked just above.
    unsafe { transpose_avx512_kernel(input, n / 8, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn transpose_avx512_kernel(input: &[u8], row_bytes: usize, out: &mut [Block]) {
    use core::arch::x86_64::{
        __m512i, _mm512_loadu_si512, _mm512_movepi8_mask, _mm512_slli_epi64, _mm512_unpackhi_epi8,
        _mm512_unpacklo_epi8,
    };

    // Output rows as two u64 lanes: lane h of row j holds bit j of input rows 64h..64h+64.
    // SAFETY: a `Block` is 16 bytes with alignment ≥ 8 and every bit pattern is valid for both
    // types; the view covers exactly `out` and `out` is not used while it lives.
    let out64: &mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u64>(), 2 * out.len()) };

    // Slot 16h+k holds rows 64h+k, 64h+16+k, 64h+32+k, 64h+48+k in its four 16-byte lanes.
    let mut tile = [[0u8; 4 * TILE_BYTES]; 32];
    for t0 in (0..row_bytes).step_by(TILE_BYTES) {
        let tw = TILE_BYTES.min(row_bytes - t0);
        fill_tile(&mut tile, input, row_bytes, t0, tw);
        for h in 0..2 {
            // SAFETY: each slot is 64 readable bytes; unaligned loads are allowed.
            let mut v: [__m512i; 16] = core::array::from_fn(|k| unsafe {
                _mm512_loadu_si512(tile[16 * h + k].as_ptr().cast())
            });
            for _ in 0..4 {
                let w = v;
                for i in 0..8 {
                    v[2 * i] = _mm512_unpacklo_epi8(w[i], w[i + 8]);
                    v[2 * i + 1] = _mm512_unpackhi_epi8(w[i], w[i + 8]);
                }
            }
            for (c, vc) in v.iter_mut().enumerate().take(tw) {
                let base = 8 * (t0 + c);
                for b in (0..8).rev() {
                    out64[2 * (base + b) + h] = _mm512_movepi8_mask(*vc);
                    *vc = _mm512_slli_epi64::<1>(*vc);
                }
            }
        }
    }
}

/// Whether the CPU has what [`transpose_gfni`] needs: AVX-512 (F, BW, VBMI) and GFNI.
#[cfg(target_arch = "x86_64")]
pub fn has_gfni() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vbmi")
        && std::arch::is_x86_feature_detected!("gfni")
}

/// The GFNI transpose: the AVX-512BW kernel's byte transpose, then each 8 × 8 bit square
/// transposed by one `GF2P8AFFINEQB` lane (against the identity's columns) instead of eight
/// mask extractions, and the squares put in place with two byte permutes per eight output
/// rows. Same contract as [`transpose_128xn`].
///
/// # Panics
/// Also if the CPU lacks a feature [`has_gfni`] checks.
#[cfg(target_arch = "x86_64")]
pub fn transpose_gfni(input: &[u8], n: usize, out: &mut [Block]) {
    check_shape(input, n, out);
    assert!(
        has_gfni(),
        "transpose_gfni: the CPU lacks AVX-512 VBMI or GFNI"
    );
    // SAFETY: the features are present, checked just above; the range is every byte of a row.
    unsafe { transpose_gfni_kernel(input, n / 8, 0..n / 8, out) }
}

/// Transposes the bytes `bytes` of every one of the 128 rows (`row_bytes` each) of `input`:
/// output rows `8·bytes.start..8·bytes.end`, written to `out` from its start.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
fn transpose_gfni_kernel(
    input: &[u8],
    row_bytes: usize,
    bytes: core::ops::Range<usize>,
    out: &mut [Block],
) {
    use core::arch::x86_64::{__m512i, _mm512_loadu_si512, _mm512_set1_epi64};
    assert_eq!(
        out.len(),
        8 * bytes.len(),
        "transpose: output rows of the range"
    );

    // Byte i of every square is the unit vector e_i: the affine map then returns, in byte i,
    // bit i of each of the square's eight bytes, bit j from byte 7 − j.
    let unit = _mm512_set1_epi64(0x8040_2010_0804_0201u64 as i64);
    // Output rows 8c + 4s .. 8c + 4s + 4 from the transposed squares of the tile's two halves
    // (`a`: input rows 0..64, `b`: 64..128): byte 16i' + G of the result is byte i = 4s + i' of
    // the square of rows 8G..8G + 8, which sits in qword (G mod 8) ⊕ 1 of `a` (G < 8) or `b`.
    let place: [__m512i; 2] = core::array::from_fn(|s| {
        let idx: [u8; 64] = core::array::from_fn(|p| {
            let (i, g) = (4 * s + p / 16, p % 16);
            (if g < 8 { 0 } else { 64 } + 8 * ((g % 8) ^ 1) + i) as u8
        });
        // SAFETY: 64 readable bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
    });
    // A cache line of every row at a time, copied to `lines` first: the rows are a power of two
    // apart and share a few cache sets, so reading them a tile (16 bytes) at a time would fetch
    // each line four times. Spans follow the rows' cache lines when the rows share alignment.
    let line_skew = |t: usize| {
        if row_bytes.is_multiple_of(LINE) {
            (input.as_ptr() as usize + t) % LINE
        } else {
            0
        }
    };
    let mut lines = [[0u8; LINE]; 128];
    // Slot 16h+k holds rows 64h+k, 64h+16+k, 64h+32+k, 64h+48+k in its four 16-byte lanes.
    let mut tile = [[0u8; 4 * TILE_BYTES]; 32];
    let mut t = bytes.start;
    while t < bytes.end {
        let span = (LINE - line_skew(t)).min(bytes.end - t);
        for (i, line) in lines.iter_mut().enumerate() {
            let row = &input[i * row_bytes + t..];
            if span == LINE {
                // A fixed-length copy compiles to one 64-byte load and store.
                let src: &[u8; LINE] = row[..LINE].try_into().expect("a line");
                line.copy_from_slice(src);
            } else {
                line[..span].copy_from_slice(&row[..span]);
            }
        }
        for s0 in (0..span).step_by(TILE_BYTES) {
            let (t0, tw) = (t + s0, TILE_BYTES.min(span - s0));
            fill_tile(&mut tile, lines.as_flattened(), LINE, s0, tw);
            gfni_tile(&tile, tw, unit, &place, &mut out[8 * (t0 - bytes.start)..]);
        }
        t += span;
    }
}

/// Bytes of a cache line.
#[cfg(target_arch = "x86_64")]
const LINE: usize = 64;

/// The GFNI kernel's work on one filled tile of `tw` bytes per row: output rows `0..8·tw` of
/// `out`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
#[inline]
fn gfni_tile(
    tile: &[[u8; 4 * TILE_BYTES]; 32],
    tw: usize,
    unit: core::arch::x86_64::__m512i,
    place: &[core::arch::x86_64::__m512i; 2],
    out: &mut [Block],
) {
    use core::arch::x86_64::{
        __m512i, _mm512_gf2p8affine_epi64_epi8, _mm512_loadu_si512, _mm512_permutex2var_epi8,
        _mm512_storeu_si512, _mm512_unpackhi_epi8, _mm512_unpacklo_epi8,
    };
    let mut halves = [[unit; 16]; 2];
    for (h, half) in halves.iter_mut().enumerate() {
        // Rows loaded in reverse (vector k from row 15 − k of each 16) so that after the byte
        // transpose each qword holds a square's bytes from its last row down, the order in
        // which the affine map numbers bits: qword 0 of lane L is the square of rows
        // 16L + 8..16L + 16, qword 1 that of rows 16L..16L + 8.
        // SAFETY: each slot is 64 readable bytes; unaligned loads are allowed.
        let mut v: [__m512i; 16] = core::array::from_fn(|k| unsafe {
            _mm512_loadu_si512(tile[16 * h + 15 - k].as_ptr().cast())
        });
        for _ in 0..4 {
            let w = v;
            for i in 0..8 {
                v[2 * i] = _mm512_unpacklo_epi8(w[i], w[i + 8]);
                v[2 * i + 1] = _mm512_unpackhi_epi8(w[i], w[i + 8]);
            }
        }
        // Vector c: the squares of byte c of every row; transposed, byte i of a square holds
        // bit i of byte c of its eight rows, the rows in bit order.
        for (dst, vc) in half.iter_mut().zip(v) {
            *dst = _mm512_gf2p8affine_epi64_epi8::<0>(unit, vc);
        }
    }
    for c in 0..tw {
        for (s, idx) in place.iter().enumerate() {
            let rows = _mm512_permutex2var_epi8(halves[0][c], *idx, halves[1][c]);
            let dst = &mut out[8 * c + 4 * s..8 * c + 4 * s + 4];
            // SAFETY: four `Block`s are 64 writable bytes; the store is unaligned.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), rows) };
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
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut got = vec![Block::ZERO; n];
                    transpose_avx2(&input, n, &mut got);
                    prop_assert_eq!(&got, &expect);
                }
                if std::arch::is_x86_feature_detected!("avx512bw") {
                    let mut got = vec![Block::ZERO; n];
                    transpose_avx512(&input, n, &mut got);
                    prop_assert_eq!(&got, &expect);
                }
                if has_gfni() {
                    let mut got = vec![Block::ZERO; n];
                    transpose_gfni(&input, n, &mut got);
                    prop_assert_eq!(&got, &expect);
                }
            }
            let mut got = vec![Block::ZERO; n];
            transpose_128xn(&input, n, &mut got);
            prop_assert_eq!(&got, &expect);
        }
    }

    /// The GFNI kernel copies a cache line of every row at a time, following the rows' line
    /// boundaries: wide matrices at every alignment of the input must still transpose exactly.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn gfni_transpose_of_wide_matrices_at_any_alignment() {
        if !has_gfni() {
            return;
        }
        for (n, skew) in [
            (4096usize, 0usize),
            (4096, 16),
            (4096, 48),
            (8 * 200, 32),
            (1 << 14, 16),
        ] {
            let matrix = random_matrix(n, (n + skew) as u64);
            let mut backing = vec![0u8; 16 * n + 128];
            let at = (64 - backing.as_ptr() as usize % 64) % 64 + skew;
            backing[at..at + 16 * n].copy_from_slice(&matrix);
            let input = &backing[at..at + 16 * n];
            let mut expect = vec![Block::ZERO; n];
            transpose_naive(input, n, &mut expect);
            let mut got = vec![Block::ZERO; n];
            transpose_gfni(input, n, &mut got);
            assert_eq!(got, expect, "n = {n}, skew {skew}");
        }
    }
}
