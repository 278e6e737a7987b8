//! The portable backend: the microkernel in plain `i64` arithmetic, exact on any CPU (and the
//! reference the vector backend is tested against).

use super::{MR, NR};

/// `c += a · b` over `kc` pairs of K (see [`super::Microkernel`]).
pub(super) fn kernel(kc: usize, a: &[u32], b: &[u32], ldb: usize, c: &mut [i64; MR * NR]) {
    let halves = |v: u32| {
        (
            i64::from(v as u16 as i16),
            i64::from((v >> 16) as u16 as i16),
        )
    };
    for (p, ap) in a[..kc * MR].chunks_exact(MR).enumerate() {
        let bp = &b[p * ldb..][..NR];
        for (&av, row) in ap.iter().zip(c.chunks_exact_mut(NR)) {
            let (a0, a1) = halves(av);
            for (&bv, out) in bp.iter().zip(row) {
                let (b0, b1) = halves(bv);
                *out += a0 * b0 + a1 * b1;
            }
        }
    }
}
