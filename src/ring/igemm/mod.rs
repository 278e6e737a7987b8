//! Exact integer matrix products on 16-bit operands: `C = A · B` with `A` (the weights, packed
//! once per layer) and `B` (an im2col patch matrix) of signed 16-bit integers and `C` the exact
//! products as `i64`.
//!
//! The batched PI evaluator computes every linear layer exactly on the ring. Its operands are
//! small fixed-point integers (activations around 2^15, folded weights around 2^12), so they fit
//! `i16`, where one AVX-512 VNNI instruction (`vpdpwssd`) does 32 multiply-accumulates: four times
//! the f64 FMA the evaluator used before. Products accumulate in `i32` lanes over K-chunks short
//! enough that no chunk sum can leave `i32` ([`PackedI16::chunk_for`] derives the chunk length from
//! the weights' L1 norms per chunk and the largest operand of `B`), and the chunk sums are added in
//! `i64`: the result is the exact integer product, bit for bit what the f64 or u64 path gives.
//! (Intermediate `i32` wrap-around inside a chunk is harmless: wrapping addition is exact mod
//! 2^32, and the chunk's true sum lies in `i32`.)
//!
//! Backends follow one leaf module per CPU feature set, picked once at run time:
//! [`vnni`] (AVX-512F/BW/VNNI, the only place with `unsafe`) and [`portable`] (plain `i64`
//! arithmetic, anywhere). Both compute the same microkernel on the same packed layouts, so the
//! packing and blocking are tested on every machine.
//!
//! Layouts: K is taken in pairs (the two 16-bit halves of a 32-bit lane). `A` is packed as
//! `[M/MR][K/2][MR]` pairs, `B` per task as panels `[K/2][NR]` of pairs, both zero-padded.

use std::sync::OnceLock;

use rayon::prelude::*;

mod portable;
#[cfg(target_arch = "x86_64")]
mod vnni;

/// Rows of `A` per microkernel tile (broadcast operand).
pub const MR: usize = 8;
/// Columns of `B` per microkernel tile: three vectors of 16 `i32` lanes.
pub const NR: usize = 48;
/// The largest magnitude an operand may have: ±(2^15 − 1), so that even one pair of products
/// (≤ 2 · (2^15 − 1)^2) lies in `i32`.
pub const I16_MAX_ABS: u64 = i16::MAX as u64;
/// Longest K-chunk, in pairs, the kernel accumulates in `i32` (a `B` sub-panel of
/// `KC_MAX · NR` pairs, 24 KiB, stays in L1).
const KC_MAX: usize = 128;

/// `c[MR × NR] += a[kc × MR]ᵀ-pairs · b[kc × NR]-pairs` over `kc` pairs of K, where each `u32`
/// holds two `i16` (low half: even k). The caller guarantees every chunk sum fits `i32`.
type Microkernel = fn(kc: usize, a: &[u32], b: &[u32], c: &mut [i64; MR * NR]);

/// The microkernel of the best backend this CPU supports (detected once).
fn microkernel() -> Microkernel {
    static PICK: OnceLock<Microkernel> = OnceLock::new();
    *PICK.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = vnni::detect() {
            return k;
        }
        portable::kernel
    })
}

/// The name of the backend in use (for reports).
pub fn backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if vnni::detect().is_some() {
        return "avx512-vnni";
    }
    "portable"
}

/// Two `i16` as one `u32` lane: `lo` in the low half.
#[inline(always)]
fn pair(lo: i16, hi: i16) -> u32 {
    u32::from(lo as u16) | (u32::from(hi as u16) << 16)
}

/// A K-chunk length (in pairs) proven safe for one product: no `i32` chunk sum can overflow.
/// Only [`PackedI16::chunk_for`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk(usize);

/// An `M × K` matrix of `i16` (the weights of a layer), packed for the microkernel, with the
/// bounds that decide how long a K-chunk may be.
#[derive(Clone, Debug)]
pub struct PackedI16 {
    rows: usize,
    cols: usize,
    /// `[M/MR][K/2][MR]` pairs.
    data: Vec<u32>,
    /// For chunk lengths `1, 2, 4, … KC_MAX` pairs: the largest L1 norm of a row of `A` over an
    /// aligned chunk of that many pairs.
    chunk_l1: Vec<(usize, u64)>,
}

impl PackedI16 {
    /// Pack the row-major `rows × cols` matrix `a` of signed integers, or `None` when an entry
    /// lies outside ±[`I16_MAX_ABS`] (then the caller uses a wider product).
    pub fn new(a: &[i64], rows: usize, cols: usize) -> Option<Self> {
        assert_eq!(a.len(), rows * cols, "packed matrix size");
        if a.iter().any(|v| v.unsigned_abs() > I16_MAX_ABS) {
            return None;
        }
        let pairs = cols.div_ceil(2);
        let at = |r: usize, k: usize| -> i16 {
            if r < rows && k < cols {
                a[r * cols + k] as i16
            } else {
                0
            }
        };
        let blocks = rows.div_ceil(MR);
        let mut data = Vec::with_capacity(blocks * pairs * MR);
        for b in 0..blocks {
            for p in 0..pairs {
                for r in b * MR..(b + 1) * MR {
                    data.push(pair(at(r, 2 * p), at(r, 2 * p + 1)));
                }
            }
        }
        let mut chunk_l1 = Vec::new();
        let mut kc = 1;
        while kc <= KC_MAX {
            let worst = a
                .chunks(cols.max(1))
                .flat_map(|row| {
                    row.chunks(2 * kc)
                        .map(|c| c.iter().map(|v| v.unsigned_abs()).sum::<u64>())
                })
                .max()
                .unwrap_or(0);
            chunk_l1.push((kc, worst));
            kc *= 2;
        }
        Some(PackedI16 {
            rows,
            cols,
            data,
            chunk_l1,
        })
    }

    /// Rows (M).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (K).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The longest K-chunk for a `B` whose entries are all at most `max_abs` in magnitude, or
    /// `None` when `B` does not fit `i16` or no chunk is provably free of `i32` overflow.
    pub fn chunk_for(&self, max_abs: u64) -> Option<Chunk> {
        if max_abs > I16_MAX_ABS {
            return None;
        }
        self.chunk_l1
            .iter()
            .rev()
            .find(|&&(_, l1)| u128::from(l1) * u128::from(max_abs) <= i32::MAX as u128)
            .map(|&(kc, _)| Chunk(kc))
    }
}

/// `c = a · b`: `b` row-major `K × n` of `i16` whose entries are at most the magnitude `chunk`
/// was made for, `c` row-major `M × n`, overwritten with the exact products. In parallel over
/// column panels; each task packs its own panels of `b`.
pub fn matmul(a: &PackedI16, chunk: Chunk, b: &[i16], n: usize, c: &mut [i64]) {
    let (m, k) = (a.rows, a.cols);
    assert_eq!(b.len(), k * n, "igemm B size");
    assert_eq!(c.len(), m * n, "igemm C size");
    if m == 0 || n == 0 {
        return;
    }
    let kernel = microkernel();
    let pairs = k.div_ceil(2);
    let blocks = m.div_ceil(MR);
    let panels = n.div_ceil(NR);
    // A few tasks per thread, each a whole number of panels, for balance.
    let tasks = (4 * rayon::current_num_threads()).clamp(1, panels);
    let per_task = panels.div_ceil(tasks) * NR;
    // Split every row of `c` at the task boundaries: task t owns columns
    // `t·per_task .. (t+1)·per_task` of every row (safe disjoint borrows, no pointer arithmetic).
    let tasks = n.div_ceil(per_task);
    let mut owned: Vec<Vec<&mut [i64]>> = (0..tasks).map(|_| Vec::with_capacity(m)).collect();
    for row in c.chunks_mut(n) {
        let mut rest = row;
        for t in owned.iter_mut() {
            let (head, tail) = rest.split_at_mut(per_task.min(rest.len()));
            t.push(head);
            rest = tail;
        }
    }
    let kc = chunk.0.min(KC_MAX);
    owned.into_par_iter().enumerate().for_each(|(t, mut rows)| {
        let mut panel = vec![0u32; pairs * NR];
        let mut tile = vec![[0i64; MR * NR]; blocks];
        let j_end = ((t + 1) * per_task).min(n);
        let mut j0 = t * per_task;
        while j0 < j_end {
            let width = NR.min(j_end - j0);
            pack_panel(b, k, n, j0, width, &mut panel);
            tile.iter_mut().for_each(|c| c.fill(0));
            let mut p0 = 0;
            while p0 < pairs {
                let len = kc.min(pairs - p0);
                let bp = &panel[p0 * NR..(p0 + len) * NR];
                for (blk, c) in tile.iter_mut().enumerate() {
                    let ap = &a.data[(blk * pairs + p0) * MR..(blk * pairs + p0 + len) * MR];
                    kernel(len, ap, bp, c);
                }
                p0 += len;
            }
            let off = j0 - t * per_task;
            for (r, row) in rows.iter_mut().enumerate() {
                let src = &tile[r / MR][(r % MR) * NR..][..width];
                row[off..off + width].copy_from_slice(src);
            }
            j0 += width;
        }
    });
}

/// Columns `j0 .. j0 + width` of the row-major `k × n` matrix `b` as a `[K/2][NR]` panel of
/// pairs, zero-padded.
fn pack_panel(b: &[i16], k: usize, n: usize, j0: usize, width: usize, panel: &mut [u32]) {
    for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
        let lo = &b[2 * p * n + j0..][..width];
        let dst_w = &mut dst[..width];
        if 2 * p + 1 < k {
            let hi = &b[(2 * p + 1) * n + j0..][..width];
            for ((d, &l), &h) in dst_w.iter_mut().zip(lo).zip(hi) {
                *d = pair(l, h);
            }
        } else {
            for (d, &l) in dst_w.iter_mut().zip(lo) {
                *d = pair(l, 0);
            }
        }
        dst[width..].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(a: &[i64], b: &[i16], m: usize, k: usize, n: usize) -> Vec<i64> {
        let mut c = vec![0i64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|t| a[i * k + t] * i64::from(b[t * n + j])).sum();
            }
        }
        c
    }

    /// A small deterministic generator for test data.
    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// Entries in ±`bound`, with extremes over-represented.
    fn draw(next: &mut impl FnMut() -> u64, bound: i64) -> i64 {
        match next() % 8 {
            0 => bound,
            1 => -bound,
            _ => (next() % (2 * bound as u64 + 1)) as i64 - bound,
        }
    }

    /// Both backends against the naive product, where the chunk bound admits the operands.
    fn check(
        m: usize,
        k: usize,
        n: usize,
        wmax: i64,
        xmax: i64,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let mut next = xorshift(seed);
        let a: Vec<i64> = (0..m * k).map(|_| draw(&mut next, wmax)).collect();
        let b: Vec<i16> = (0..k * n).map(|_| draw(&mut next, xmax) as i16).collect();
        let packed = PackedI16::new(&a, m, k).expect("fits i16");
        let max = b.iter().map(|v| v.unsigned_abs() as u64).max().unwrap_or(0);
        let Some(chunk) = packed.chunk_for(max) else {
            // Only when even one pair could overflow i32 — impossible within ±(2^15 − 1).
            return Err(TestCaseError::fail("no chunk for i16 operands"));
        };
        let want = naive(&a, &b, m, k, n);
        let mut got = vec![7i64; m * n];
        matmul(&packed, chunk, &b, n, &mut got);
        prop_assert_eq!(&got, &want, "{}", backend());
        // The portable backend directly, on the same packed data.
        let mut tile = [0i64; MR * NR];
        let pairs = k.div_ceil(2);
        let mut panel = vec![0u32; pairs * NR];
        let width = NR.min(n);
        pack_panel(&b, k, n, 0, width, &mut panel);
        portable::kernel(pairs, &packed.data[..pairs * MR], &panel, &mut tile);
        for r in 0..MR.min(m) {
            prop_assert_eq!(&tile[r * NR..r * NR + width], &want[r * n..r * n + width]);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matches_naive_small_values(m in 1usize..20, k in 1usize..70, n in 1usize..130, seed in any::<u64>()) {
            check(m, k, n, 2000, 20000, seed)?;
        }

        #[test]
        fn matches_naive_extreme_values(m in 1usize..12, k in 1usize..300, n in 1usize..100, seed in any::<u64>()) {
            // Full-range operands: chunks shrink to a pair or two, sums reach far beyond i32.
            check(m, k, n, I16_MAX_ABS as i64, I16_MAX_ABS as i64, seed)?;
        }
    }

    #[test]
    fn long_k_with_many_chunks() {
        // K beyond KC_MAX pairs and beyond 2^31 / (max|a|·max|b|): i64 folding must be exact.
        check(9, 2 * KC_MAX * 3 + 5, 97, 3000, 30000, 5).unwrap();
    }

    #[test]
    fn out_of_range_operands_are_refused() {
        assert!(PackedI16::new(&[0, 32768], 1, 2).is_none());
        assert!(PackedI16::new(&[-32768, 0], 1, 2).is_none());
        let p = PackedI16::new(&[32767, -32767, 32767, -32767, 1, 1, 1, 1], 1, 8).unwrap();
        assert!(p.chunk_for(32768).is_none());
        // One pair of extremes: 2 · (2^15 − 1)^2 < 2^31; two pairs may overflow. At half the
        // magnitude two pairs fit, four (L1 norm 131072) do not.
        assert_eq!(p.chunk_for(32767), Some(Chunk(1)));
        assert_eq!(p.chunk_for(16384), Some(Chunk(2)));
        assert_eq!(
            PackedI16::new(&[1, 1], 1, 2).unwrap().chunk_for(0),
            Some(Chunk(KC_MAX))
        );
    }
}
