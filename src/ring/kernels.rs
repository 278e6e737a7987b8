//! Dense kernels shared by the plain f32 reference and the ring: matrix product, convolution by
//! im2col, matrix-vector product, pooling.
//!
//! One generic code path serves `f32` and `u64` (wrapping, i.e. exact arithmetic mod 2^64, which
//! the caller reduces mod 2^ℓ). The fast kernel is checked against the naive loops in the tests.

use rayon::prelude::*;

/// An element the kernels can multiply and accumulate.
pub trait Elem: Copy + Default + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// `acc + a · b` (wrapping for integers).
    fn mul_add(acc: Self, a: Self, b: Self) -> Self;
    /// `a + b` (wrapping for integers).
    fn plus(a: Self, b: Self) -> Self;
}

impl Elem for u64 {
    #[inline(always)]
    fn mul_add(acc: Self, a: Self, b: Self) -> Self {
        acc.wrapping_add(a.wrapping_mul(b))
    }
    #[inline(always)]
    fn plus(a: Self, b: Self) -> Self {
        a.wrapping_add(b)
    }
}

impl Elem for f32 {
    #[inline(always)]
    fn mul_add(acc: Self, a: Self, b: Self) -> Self {
        acc + a * b
    }
    #[inline(always)]
    fn plus(a: Self, b: Self) -> Self {
        a + b
    }
}

/// The geometry of a 2-D convolution on one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
}

impl ConvGeometry {
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.padding - self.kh) / self.stride + 1
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.padding - self.kw) / self.stride + 1
    }
    /// Rows of the im2col matrix: `C · kh · kw`.
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kh * self.kw
    }
}

/// Width of the column tile kept in registers/L1 by [`gemm`].
const TILE_N: usize = 64;
/// Output rows computed together, so each loaded column tile feeds several rows.
const TILE_M: usize = 4;

/// `out[M×N] = a[M×K] · b[K×N]`, all row-major, in parallel over tiles.
pub fn gemm<T: Elem>(a: &[T], b: &[T], out: &mut [T], m: usize, k: usize, n: usize) {
    assert!(
        a.len() == m * k && b.len() == k * n && out.len() == m * n,
        "gemm shape mismatch"
    );
    if m == 0 || n == 0 {
        return;
    }
    out.par_chunks_mut(TILE_M * n)
        .enumerate()
        .for_each(|(rb, out_rows)| {
            let row0 = rb * TILE_M;
            let rows = out_rows.len() / n;
            let mut j0 = 0;
            while j0 < n {
                let width = TILE_N.min(n - j0);
                let mut acc = [[T::default(); TILE_N]; TILE_M];
                for kk in 0..k {
                    let bt = &b[kk * n + j0..kk * n + j0 + width];
                    for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                        let w = a[(row0 + r) * k + kk];
                        for (x, &y) in acc_r[..width].iter_mut().zip(bt) {
                            *x = T::mul_add(*x, w, y);
                        }
                    }
                }
                for (r, acc_r) in acc.iter().enumerate().take(rows) {
                    out_rows[r * n + j0..r * n + j0 + width].copy_from_slice(&acc_r[..width]);
                }
                j0 += width;
            }
        });
}

/// Lay out the patches of `input` (`[C, H, W]`) as the columns of a `[C·kh·kw, H'·W']` matrix.
pub fn im2col<T: Elem>(input: &[T], g: &ConvGeometry) -> Vec<T> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let n = oh * ow;
    let mut col = vec![T::default(); g.patch_len() * n];
    col.par_chunks_mut(n).enumerate().for_each(|(row, dst)| {
        let c = row / (g.kh * g.kw);
        let ki = (row / g.kw) % g.kh;
        let kj = row % g.kw;
        let plane = &input[c * g.in_h * g.in_w..(c + 1) * g.in_h * g.in_w];
        for oy in 0..oh {
            let iy = (oy * g.stride + ki) as isize - g.padding as isize;
            let dst_row = &mut dst[oy * ow..(oy + 1) * ow];
            if iy < 0 || iy >= g.in_h as isize {
                continue; // zero padding: already zero
            }
            let src = &plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
            for (ox, d) in dst_row.iter_mut().enumerate() {
                let ix = (ox * g.stride + kj) as isize - g.padding as isize;
                if ix >= 0 && (ix as usize) < g.in_w {
                    *d = src[ix as usize];
                }
            }
        }
    });
    col
}

/// 2-D convolution of one image: `input [C,H,W]`, `weight [O,C,kh,kw]`, `bias [O]` (optional),
/// returning `[O, H', W']`.
pub fn conv2d<T: Elem>(input: &[T], weight: &[T], bias: Option<&[T]>, g: &ConvGeometry) -> Vec<T> {
    assert_eq!(
        input.len(),
        g.in_channels * g.in_h * g.in_w,
        "conv2d input size"
    );
    assert_eq!(
        weight.len(),
        g.out_channels * g.patch_len(),
        "conv2d weight size"
    );
    let n = g.out_h() * g.out_w();
    let mut out = vec![T::default(); g.out_channels * n];
    if g.kh == 1 && g.kw == 1 && g.stride == 1 && g.padding == 0 {
        gemm(weight, input, &mut out, g.out_channels, g.in_channels, n);
    } else {
        let col = im2col(input, g);
        gemm(weight, &col, &mut out, g.out_channels, g.patch_len(), n);
    }
    if let Some(bias) = bias {
        out.par_chunks_mut(n)
            .zip(bias)
            .for_each(|(row, &b)| row.iter_mut().for_each(|x| *x = T::plus(*x, b)));
    }
    out
}

/// `W x + b` for `W [O, I]`.
pub fn linear<T: Elem>(x: &[T], weight: &[T], bias: Option<&[T]>, out_features: usize) -> Vec<T> {
    let in_features = x.len();
    assert_eq!(
        weight.len(),
        out_features * in_features,
        "linear weight size"
    );
    (0..out_features)
        .into_par_iter()
        .map(|o| {
            let row = &weight[o * in_features..(o + 1) * in_features];
            let dot = row
                .iter()
                .zip(x)
                .fold(T::default(), |acc, (&w, &v)| T::mul_add(acc, w, v));
            match bias {
                Some(b) => T::plus(dot, b[o]),
                None => dot,
            }
        })
        .collect()
}

/// Sum (not average) over `kernel × kernel` windows with `stride`, no padding: `[C,H,W]` to
/// `[C,H',W']`. The division of an average pool is folded elsewhere.
pub fn sum_pool<T: Elem>(
    input: &[T],
    c: usize,
    h: usize,
    w: usize,
    kernel: usize,
    stride: usize,
) -> Vec<T> {
    let oh = (h - kernel) / stride + 1;
    let ow = (w - kernel) / stride + 1;
    let mut out = vec![T::default(); c * oh * ow];
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = T::default();
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        acc = T::plus(
                            acc,
                            input[ch * h * w + (oy * stride + ky) * w + ox * stride + kx],
                        );
                    }
                }
                out[ch * oh * ow + oy * ow + ox] = acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_conv(input: &[u64], weight: &[u64], g: &ConvGeometry) -> Vec<u64> {
        let (oh, ow) = (g.out_h(), g.out_w());
        let mut out = vec![0u64; g.out_channels * oh * ow];
        for o in 0..g.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0u64;
                    for c in 0..g.in_channels {
                        for ki in 0..g.kh {
                            for kj in 0..g.kw {
                                let iy = (oy * g.stride + ki) as isize - g.padding as isize;
                                let ix = (ox * g.stride + kj) as isize - g.padding as isize;
                                if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < g.in_h
                                    && (ix as usize) < g.in_w
                                {
                                    let x = input
                                        [c * g.in_h * g.in_w + iy as usize * g.in_w + ix as usize];
                                    let w =
                                        weight[((o * g.in_channels + c) * g.kh + ki) * g.kw + kj];
                                    acc = acc.wrapping_add(x.wrapping_mul(w));
                                }
                            }
                        }
                    }
                    out[(o * oh + oy) * ow + ox] = acc;
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn conv_matches_naive(
            cin in 1usize..5, cout in 1usize..7, h in 3usize..12, w in 3usize..12,
            k in prop::sample::select(vec![1usize, 3]), stride in 1usize..3, pad in 0usize..2,
            seed in any::<u64>(),
        ) {
            let g = ConvGeometry { in_channels: cin, in_h: h, in_w: w, out_channels: cout, kh: k, kw: k, stride, padding: pad };
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let input: Vec<u64> = (0..cin * h * w).map(|_| next()).collect();
            let weight: Vec<u64> = (0..cout * cin * k * k).map(|_| next()).collect();
            prop_assert_eq!(conv2d(&input, &weight, None, &g), naive_conv(&input, &weight, &g));
        }

        #[test]
        fn gemm_matches_naive(m in 1usize..9, k in 1usize..9, n in 1usize..150, seed in any::<u64>()) {
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let a: Vec<u64> = (0..m * k).map(|_| next()).collect();
            let b: Vec<u64> = (0..k * n).map(|_| next()).collect();
            let mut out = vec![0u64; m * n];
            gemm(&a, &b, &mut out, m, k, n);
            for i in 0..m { for j in 0..n {
                let want = (0..k).fold(0u64, |acc, t| acc.wrapping_add(a[i * k + t].wrapping_mul(b[t * n + j])));
                prop_assert_eq!(out[i * n + j], want);
            }}
        }
    }

    #[test]
    fn linear_and_pool() {
        let x = [1u64, 2, 3];
        let w = [1u64, 0, 0, 0, 1, 1];
        assert_eq!(linear(&x, &w, Some(&[10, 20]), 2), vec![11, 25]);
        let img: Vec<u64> = (0..16).collect();
        assert_eq!(
            sum_pool(&img, 1, 4, 4, 2, 2),
            vec![1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15]
        );
    }
}
