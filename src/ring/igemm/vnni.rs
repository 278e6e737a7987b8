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
fn kernel(kc: usize, a: &[u32], b: &[u32], ldb: usize, c: &mut [i64; MR * NR]) {
    if kc == 0 {
        return;
    }
    assert!(
        a.len() >= kc * MR && b.len() >= (kc - 1) * ldb + NR,
        "microkernel operands"
    );
    // SAFETY: `detect` hands this function out only after checking that the CPU supports
    // every feature `tile` enables; the assertion above is `tile`'s bound on `a` and `b`.
    unsafe { tile(kc, a, b, ldb, c) }
}

/// The kernel proper. Safety: the CPU has the enabled features, `a` holds at least `kc · MR`
/// and `b` at least `(kc − 1)·ldb + NR` elements.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile(kc: usize, a: &[u32], b: &[u32], ldb: usize, c: &mut [i64; MR * NR]) {
    let mut acc = [[_mm512_setzero_si512(); 3]; MR];
    for (p, ap) in a.chunks_exact(MR).take(kc).enumerate() {
        // SAFETY: row p < kc of `b` starts at p·ldb and holds NR = 48 `u32` inside `b` (the
        // caller's bound): three unaligned 64-byte loads. Raw offsets rather than a
        // bounds-checked slice per row keep the loop tight.
        let bv = unsafe {
            let bp = b.as_ptr().add(p * ldb);
            [
                _mm512_loadu_si512(bp.cast()),
                _mm512_loadu_si512(bp.add(16).cast()),
                _mm512_loadu_si512(bp.add(32).cast()),
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
