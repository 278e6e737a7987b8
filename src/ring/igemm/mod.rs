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
//! `vnni` (AVX-512F/BW/VNNI, the only place with `unsafe`) and `portable` (plain `i64`
//! arithmetic, anywhere). Both compute the same microkernel on the same packed layouts, so the
//! packing and blocking are tested on every machine.
//!
//! Layouts: K is taken in pairs (the two 16-bit halves of a 32-bit lane). `A` is packed once as
//! `[M/MR][K/2][MR]` pairs; `B` is [`PairRows`], `[K/2][ld]` pairs, which the im2col pass
//! ([`im2col_pairs`]) writes directly, so `B` needs no packing pass: the microkernel reads it
//! in place, with a row stride `ld` chosen so that consecutive rows fall in different L1 sets.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::kernels::{im2col_row, ConvGeometry};

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

/// `c[MR × NR] += a · b` over `kc` pairs of K, where each `u32` holds two `i16` (low half: even
/// k): `a` is `kc` groups of `MR` row pairs, `b` holds `kc` rows of `NR` column pairs, `ldb`
/// apart (`b.len() ≥ (kc − 1)·ldb + NR`). The caller guarantees every chunk sum fits `i32`.
type Microkernel = fn(kc: usize, a: &[u32], b: &[u32], ldb: usize, c: &mut [i64; MR * NR]);

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

/// A `K × n` matrix of `i16` as [`matmul`] reads it: row `p` holds rows `2p` (low halves) and
/// `2p + 1` (high halves, zero past K) as `u32` pairs; rows are `ld` apart, 64-byte aligned,
/// with `ld/16` odd so that the rows a microkernel walks fall in different L1 sets, and at
/// least `NR` more pairs follow the last row, so a panel may overhang `n`. A buffer kept for
/// reuse: its contents beyond the `n` columns are stale but initialized.
#[derive(Clone, Debug, Default)]
pub struct PairRows {
    data: Vec<u32>,
    start: usize,
    pairs: usize,
    n: usize,
    ld: usize,
}

impl PairRows {
    /// Shape the buffer for a `k × n` matrix (contents unspecified until written).
    fn reset(&mut self, k: usize, n: usize) {
        let pairs = k.div_ceil(2);
        let mut ld = n.div_ceil(16) * 16;
        if (ld / 16).is_multiple_of(2) {
            ld += 16;
        }
        let need = pairs * ld + NR + 16;
        if self.data.len() < need {
            self.data.resize(need, 0);
        }
        // `align_offset` may decline (it never does for `u32` on real targets): then unaligned.
        let start = self.data.as_ptr().align_offset(64);
        self.start = if start < 16 { start } else { 0 };
        (self.pairs, self.n, self.ld) = (pairs, n, ld);
    }

    /// The pair rows' first `n` columns, in parallel.
    fn rows_mut(&mut self) -> impl IndexedParallelIterator<Item = &mut [u32]> {
        let (pairs, n, ld) = (self.pairs, self.n, self.ld);
        self.data[self.start..self.start + pairs * ld]
            .par_chunks_mut(ld.max(1))
            .map(move |r| &mut r[..n])
    }

    /// The row-major `k × n` matrix `b`.
    pub fn from_rows(b: &[i16], k: usize, n: usize) -> Self {
        assert_eq!(b.len(), k * n, "pair rows size");
        let mut out = PairRows::default();
        out.reset(k, n);
        out.rows_mut().enumerate().for_each(|(p, dst)| {
            let lo = &b[2 * p * n..][..n];
            if 2 * p + 1 < k {
                let hi = &b[(2 * p + 1) * n..][..n];
                for ((d, &l), &h) in dst.iter_mut().zip(lo).zip(hi) {
                    *d = pair(l, h);
                }
            } else {
                for (d, &l) in dst.iter_mut().zip(lo) {
                    *d = pair(l, 0);
                }
            }
        });
        out
    }

    /// Rows of the matrix (K) rounded up to pairs.
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// Columns (n).
    pub fn cols(&self) -> usize {
        self.n
    }
}

/// The patch matrix of `images` images `[N, C, H, W]` (as [`super::kernels::im2col_batch`]
/// lays it out), each value converted by `to`, written as [`PairRows`] into `out`: one pass,
/// two patch rows at a time through an L1-sized scratch.
pub fn im2col_pairs<S: Copy + Send + Sync>(
    input: &[S],
    images: usize,
    g: &ConvGeometry,
    to: impl Fn(S) -> i16 + Sync + Copy,
    out: &mut PairRows,
) {
    let k = g.patch_len();
    let n = images * g.out_h() * g.out_w();
    out.reset(k, n);
    out.rows_mut().enumerate().for_each_init(
        || (vec![0i16; n], vec![0i16; n]),
        |(lo, hi), (p, dst)| {
            let convert = to;
            im2col_row(input, images, g, 2 * p, lo, 0, convert);
            if 2 * p + 1 < k {
                im2col_row(input, images, g, 2 * p + 1, hi, 0, convert);
            } else {
                hi.fill(0);
            }
            for ((d, &l), &h) in dst.iter_mut().zip(lo.iter()).zip(hi.iter()) {
                *d = pair(l, h);
            }
        },
    );
}

/// `c = a · b`: `b` a `K × n` matrix of `i16` whose entries are at most the magnitude `chunk`
/// was made for, `c` row-major `M × n`, overwritten with the exact products. In parallel over
/// column panels.
pub fn matmul(a: &PackedI16, chunk: Chunk, b: &PairRows, c: &mut [i64]) {
    let (m, n) = (a.rows, b.n);
    let pairs = a.cols.div_ceil(2);
    assert_eq!(b.pairs, pairs, "igemm inner dimensions differ");
    assert_eq!(c.len(), m * n, "igemm C size");
    if m == 0 || n == 0 {
        return;
    }
    let kernel = microkernel();
    let blocks = m.div_ceil(MR);
    let panels = n.div_ceil(NR);
    // A few tasks per thread, each a whole number of panels, for balance.
    let tasks = (4 * rayon::current_num_threads()).clamp(1, panels);
    let per_task = panels.div_ceil(tasks) * NR;
    // Split every row of `c` at the task boundaries: task t owns columns
    // `t·per_task .. (t+1)·per_task` of every row (safe disjoint borrows).
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
    let bd = &b.data[b.start..];
    owned.into_par_iter().enumerate().for_each(|(t, mut rows)| {
        let mut tile = vec![[0i64; MR * NR]; blocks];
        let j_end = ((t + 1) * per_task).min(n);
        let mut j0 = t * per_task;
        while j0 < j_end {
            let width = NR.min(j_end - j0);
            tile.iter_mut().for_each(|c| c.fill(0));
            let mut p0 = 0;
            while p0 < pairs {
                let len = kc.min(pairs - p0);
                let bp = &bd[p0 * b.ld + j0..];
                for (blk, c) in tile.iter_mut().enumerate() {
                    let ap = &a.data[(blk * pairs + p0) * MR..(blk * pairs + p0 + len) * MR];
                    kernel(len, ap, bp, b.ld, c);
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
        let rows = PairRows::from_rows(&b, k, n);
        matmul(&packed, chunk, &rows, &mut got);
        prop_assert_eq!(&got, &want, "{}", backend());
        // The portable backend directly, on the same packed data.
        let mut tile = [0i64; MR * NR];
        let pairs = k.div_ceil(2);
        let width = NR.min(n);
        let bd = &rows.data[rows.start..];
        portable::kernel(pairs, &packed.data[..pairs * MR], bd, rows.ld, &mut tile);
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn im2col_pairs_match_the_patch_matrix(
            images in 1usize..4, cin in 1usize..4, h in 3usize..9, w in 3usize..9,
            k in prop::sample::select(vec![1usize, 2, 3]), stride in 1usize..3, pad in 0usize..2,
            seed in any::<u64>(),
        ) {
            let g = ConvGeometry { in_channels: cin, in_h: h, in_w: w, out_channels: 1, kh: k, kw: k, stride, padding: pad };
            let mut next = xorshift(seed);
            // Two's complement in u64, as the ring holds signed values.
            let x: Vec<u64> = (0..images * cin * h * w).map(|_| draw(&mut next, 32767) as u64).collect();
            let col = crate::ring::kernels::im2col_batch(&x, images, &g);
            let col16: Vec<i16> = col.iter().map(|&v| v as i16).collect();
            let n = images * g.out_h() * g.out_w();
            let want = PairRows::from_rows(&col16, g.patch_len(), n);
            let mut got = PairRows::default();
            im2col_pairs(&x, images, &g, |v| v as i16, &mut got);
            prop_assert_eq!((got.pairs, got.n, got.ld), (want.pairs, want.n, want.ld));
            for p in 0..got.pairs {
                let row = |r: &PairRows| r.data[r.start + p * r.ld..][..n].to_vec();
                prop_assert_eq!(row(&got), row(&want));
            }
        }
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
