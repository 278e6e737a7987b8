//! The AVX-512 VNNI backend: `vpdpwssd` does 16 lanes × 2 products of `i16` per instruction
//! into `i32` accumulators. An `MR × NR` = 8 × 48 tile lives in 24 of the 32 vector registers;
//! each step over a K-pair loads three `B` vectors and broadcasts eight `A` pairs.

use std::arch::x86_64::*;

use super::{Microkernel, MR, NR};

/// The microkernel, if this CPU has AVX-512F, AVX-512BW and AVX-512 VNNI.
pub(super) fn detect() -> Option<Microkernel> {
    (is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni"))
    .then_some(kernel as Microkernel)
}

/// `c += a · b` over `kc` pairs of K (see [`super::Microkernel`]). Reachable only through
/// [`detect`], which checked the CPU features.
fn kernel(kc: usize, a: &[u32], b: &[u32], c: &mut [i64; MR * NR]) {
    assert!(
        a.len() >= kc * MR && b.len() >= kc * NR,
        "microkernel operands"
    );
    // SAFETY: `detect` hands this function out only after checking that the CPU supports
    // every feature `tile` enables; the assertion above keeps every load in bounds.
    unsafe { tile(kc, a, b, c) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn tile(kc: usize, a: &[u32], b: &[u32], c: &mut [i64; MR * NR]) {
    let mut acc = [[_mm512_setzero_si512(); 3]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(kc) {
        // SAFETY: `bp` holds NR = 48 `u32`, three unaligned 64-byte loads.
        let bv = unsafe {
            [
                _mm512_loadu_si512(bp.as_ptr().cast()),
                _mm512_loadu_si512(bp.as_ptr().add(16).cast()),
                _mm512_loadu_si512(bp.as_ptr().add(32).cast()),
            ]
        };
        for (row, &av) in acc.iter_mut().zip(ap) {
            let av = _mm512_set1_epi32(av as i32);
            for (x, &bv) in row.iter_mut().zip(&bv) {
                *x = _mm512_dpwssd_epi32(*x, bv, av);
            }
        }
    }
    // Fold the i32 chunk sums into the i64 tile.
    for (row, out) in acc.iter().zip(c.chunks_exact_mut(NR)) {
        for (v, out) in row.iter().zip(out.chunks_exact_mut(16)) {
            let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(*v));
            let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(*v));
            // SAFETY: `out` holds 16 `i64`: two unaligned 64-byte loads and stores.
            unsafe {
                let p = out.as_mut_ptr();
                let lo = _mm512_add_epi64(_mm512_loadu_si512(p.cast()), lo);
                let hi = _mm512_add_epi64(_mm512_loadu_si512(p.add(8).cast()), hi);
                _mm512_storeu_si512(p.cast(), lo);
                _mm512_storeu_si512(p.add(8).cast(), hi);
            }
        }
    }
}
