//! Dense kernels shared by the plain f32 reference, the ring and the batched evaluator: matrix
//! product, convolution by im2col over a batch of images, its adjoint, matrix-vector product,
//! pooling.
//!
//! One generic code path serves `f32`, `f64` and `u64` (wrapping, i.e. exact arithmetic mod 2^64,
//! which the caller reduces mod 2^ℓ). Only the matrix product differs per element type: `f32` and
//! `f64` call the `gemm` crate (packed, vectorised, multi-threaded), `u64` our own tiled loop
//! (no well-kept crate multiplies in Z_2^64). The fast kernels are checked against the naive
//! loops in the tests.

use rayon::prelude::*;

/// A matrix operand given by a slice and its row and column strides (in elements), so that a
/// transpose is a view, not a copy.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    /// The elements.
    pub data: &'a [T],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns.
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose (a view).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn is_row_major(&self) -> bool {
        (self.col_stride == 1 || self.cols <= 1) && (self.row_stride == self.cols || self.rows <= 1)
    }

    /// Panics unless every addressed element lies inside `data` (a caller bug, never input).
    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }

    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> T
    where
        T: Copy,
    {
        self.data[r * self.row_stride + c * self.col_stride]
    }
}

/// An element the kernels can multiply and accumulate.
pub trait Elem: Copy + Default + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// `acc + a · b` (wrapping for integers).
    fn mul_add(acc: Self, a: Self, b: Self) -> Self;
    /// `a + b` (wrapping for integers).
    fn plus(a: Self, b: Self) -> Self;

    /// `c = a · b`, or `c += a · b` when `accumulate`; `c` is row-major `a.rows × b.cols`.
    /// The default is our own tiled product (row-major operands) or plain loops.
    fn matmul(a: MatRef<'_, Self>, b: MatRef<'_, Self>, c: &mut [Self], accumulate: bool) {
        matmul_portable(a, b, c, accumulate)
    }
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

/// The float elements: plain arithmetic, products through the `gemm` crate.
macro_rules! float_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            #[inline(always)]
            fn mul_add(acc: Self, a: Self, b: Self) -> Self {
                acc + a * b
            }
            #[inline(always)]
            fn plus(a: Self, b: Self) -> Self {
                a + b
            }
            fn matmul(a: MatRef<'_, Self>, b: MatRef<'_, Self>, c: &mut [Self], accumulate: bool) {
                matmul_gemm(a, b, c, accumulate, 1.0, 0.0)
            }
        }
    )*};
}
float_elem!(f32, f64);

/// Below this many multiply-accumulates a product runs on one thread.
const PARALLEL_MACS: usize = 1 << 18;

/// The `gemm` crate's product for floating-point elements.
fn matmul_gemm<T: Elem>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    accumulate: bool,
    one: T,
    zero: T,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matmul inner dimensions differ");
    assert_eq!(c.len(), m * n, "matmul output size");
    a.check();
    b.check();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.iter_mut().for_each(|v| *v = zero);
        }
        return;
    }
    let parallelism = if m * n * k >= PARALLEL_MACS {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `check` proved every element the strides address lies inside `a.data` and
    // `b.data`; `c` is a distinct, exclusively borrowed row-major m×n buffer.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            one,
            one,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Our own product: the tiled kernel for row-major operands, plain loops otherwise.
fn matmul_portable<T: Elem>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matmul inner dimensions differ");
    assert_eq!(c.len(), m * n, "matmul output size");
    a.check();
    b.check();
    if !accumulate && a.is_row_major() && b.is_row_major() {
        gemm(&a.data[..m * k], &b.data[..k * n], c, m, k, n);
        return;
    }
    c.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
        for (j, out) in row.iter_mut().enumerate() {
            let dot = (0..k).fold(T::default(), |acc, t| {
                T::mul_add(acc, a.at(i, t), b.at(t, j))
            });
            *out = if accumulate { T::plus(*out, dot) } else { dot };
        }
    });
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

/// Lay out the patches of `images` images `[N, C, H, W]` as the columns of a
/// `[C·kh·kw, N·H'·W']` matrix: column `n·H'·W' + p` is image n's patch at output position p,
/// row `(c·kh + i)·kw + j` matches the weight layout `[O, C, kh, kw]`.
pub fn im2col_batch<T: Elem>(input: &[T], images: usize, g: &ConvGeometry) -> Vec<T> {
    let mut col = Vec::new();
    im2col_batch_map(input, images, g, |v| v, &mut col);
    col
}

/// [`im2col_batch`] into `col` (its old contents dropped, its capacity reused), converting every
/// element with `to` on the way: the batched evaluator reads ring elements and multiplies their
/// signed f64 images, and one pass over the (9× larger) patch matrix is cheaper than a
/// conversion pass over the input followed by a copy. Padding is `T::default()`, so `to` must map
/// the zero of `S` to it. `to` is `Copy` so that each task holds its own copy.
pub fn im2col_batch_map<S: Copy + Send + Sync, T: Copy + Default + Send + Sync>(
    input: &[S],
    images: usize,
    g: &ConvGeometry,
    to: impl Fn(S) -> T + Sync + Copy,
    col: &mut Vec<T>,
) {
    let per_out = g.out_h() * g.out_w();
    let per_in = g.in_channels * g.in_h * g.in_w;
    assert_eq!(input.len(), images * per_in, "im2col input size");
    let len = g.patch_len() * images * per_out;
    col.clear();
    if per_out == 0 || len == 0 {
        col.resize(len, T::default());
        return;
    }
    col.reserve(len);
    // Every element is written below (padding as zero), so the scratch, tens of megabytes for a
    // batch, is not zeroed first.
    let zero = std::mem::MaybeUninit::new(T::default());
    col.spare_capacity_mut()[..len]
        .par_chunks_mut(images * per_out)
        .enumerate()
        .for_each(|(row, dst)| {
            // A local copy of the conversion: what it captures (a ring's width) then lives in
            // registers instead of being reloaded after every store, which blocks vectorization.
            let convert = to;
            im2col_row(input, images, g, row, dst, zero, |v| {
                std::mem::MaybeUninit::new(convert(v))
            });
        });
    // SAFETY: `im2col_row` wrote all `len` elements (each row chunk covers `images` planes of
    // `oh` rows of `ow` columns, each column written once, as zero or as an input value).
    unsafe { col.set_len(len) };
}

/// Row `row` of the patch matrix of `images` images (see [`im2col_batch`]) into `dst`
/// (`images · H'·W'` elements): input values converted by `put`, padding as `zero`.
pub fn im2col_row<S: Copy, D: Copy>(
    input: &[S],
    images: usize,
    g: &ConvGeometry,
    row: usize,
    dst: &mut [D],
    zero: D,
    put: impl Fn(S) -> D,
) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let per_out = oh * ow;
    let plane_len = g.in_h * g.in_w;
    let per_in = g.in_channels * plane_len;
    assert!(
        input.len() == images * per_in && dst.len() == images * per_out && row < g.patch_len(),
        "im2col row size"
    );
    if per_out == 0 {
        return;
    }
    let c = row / (g.kh * g.kw);
    let ki = (row / g.kw) % g.kh;
    let kj = row % g.kw;
    // Output columns whose input column `ox·stride + kj − padding` lies inside the
    // plane: `lo..hi`; the others read padding.
    let lo = g.padding.saturating_sub(kj).div_ceil(g.stride).min(ow);
    let hi = if g.in_w + g.padding > kj {
        ((g.in_w + g.padding - kj - 1) / g.stride + 1).clamp(lo, ow)
    } else {
        lo
    };
    for (n, dst) in dst.chunks_mut(per_out).enumerate() {
        let plane = &input[n * per_in + c * plane_len..n * per_in + (c + 1) * plane_len];
        for (oy, out) in dst.chunks_mut(ow).enumerate() {
            let iy = (oy * g.stride + ki) as isize - g.padding as isize;
            if iy < 0 || iy >= g.in_h as isize {
                out.fill(zero);
                continue;
            }
            let src = &plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
            out[..lo].fill(zero);
            out[hi..].fill(zero);
            let first = lo * g.stride + kj - g.padding;
            // Plain loops rather than a copy: rows are short (4 to 32 elements in a
            // CIFAR ResNet), where a call to memcpy costs more than the copy, and the
            // unit-stride loop vectorizes with the conversion.
            let out = &mut out[lo..hi];
            if g.stride == 1 {
                let len = out.len();
                for (d, &v) in out.iter_mut().zip(&src[first..first + len]) {
                    *d = put(v);
                }
            } else {
                for (d, &v) in out.iter_mut().zip(src[first..].iter().step_by(g.stride)) {
                    *d = put(v);
                }
            }
        }
    }
}

/// The adjoint of [`im2col_batch`]: every column entry is added back to the input element it was
/// read from, giving `[N, C, H, W]` (padding positions are dropped).
pub fn col2im_batch<T: Elem>(col: &[T], images: usize, g: &ConvGeometry) -> Vec<T> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let per_out = oh * ow;
    let plane_len = g.in_h * g.in_w;
    let per_in = g.in_channels * plane_len;
    assert_eq!(col.len(), g.patch_len() * images * per_out, "col2im size");
    let mut out = vec![T::default(); images * per_in];
    let taps = g.kh * g.kw;
    // One task per (image, channel) plane: the taps of one channel only ever write its plane.
    out.par_chunks_mut(plane_len.max(1))
        .enumerate()
        .for_each(|(nc, plane)| {
            let (n, c) = (nc / g.in_channels, nc % g.in_channels);
            for tap in 0..taps {
                let (ki, kj) = (tap / g.kw, tap % g.kw);
                let row = c * taps + tap;
                let src = &col[row * images * per_out + n * per_out..][..per_out];
                for oy in 0..oh {
                    let iy = (oy * g.stride + ki) as isize - g.padding as isize;
                    if iy < 0 || iy >= g.in_h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
                    for ox in 0..ow {
                        let ix = (ox * g.stride + kj) as isize - g.padding as isize;
                        if ix >= 0 && (ix as usize) < g.in_w {
                            dst[ix as usize] = T::plus(dst[ix as usize], src[oy * ow + ox]);
                        }
                    }
                }
            }
        });
    out
}

/// Elements of im2col scratch a convolution holds at once: a large batch runs in chunks of
/// images, so memory stays bounded whatever the batch.
const COL_BUDGET: usize = 1 << 22;

/// Images per chunk for geometry `g`.
fn images_per_chunk(g: &ConvGeometry, images: usize) -> usize {
    let per_image = (g.patch_len() * g.out_h() * g.out_w()).max(1);
    (COL_BUDGET / per_image).clamp(1, images.max(1))
}

/// 2-D convolution of a batch: `input [N, C, H, W]`, `weight [O, C, kh, kw]`, `bias [O]`
/// (optional), returning `[N, O, H', W']`. One matrix product per chunk of images
/// ([`conv2d_batch_chunks`]).
pub fn conv2d_batch<T: Elem>(
    input: &[T],
    images: usize,
    weight: &[T],
    bias: Option<&[T]>,
    g: &ConvGeometry,
) -> Vec<T> {
    let per_in = g.in_channels * g.in_h * g.in_w;
    assert_eq!(input.len(), images * per_in, "conv2d input size");
    let per_out = g.out_h() * g.out_w();
    let o = g.out_channels;
    let mut out = vec![T::default(); images * o * per_out];
    let pointwise = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.padding == 0;
    if images == 1 {
        // One image: `[O, P]` is already its output layout. Pointwise, its input is already
        // the patch matrix.
        assert_eq!(weight.len(), o * g.patch_len(), "conv2d weight size");
        let w = MatRef::row_major(weight, o, g.patch_len());
        if pointwise {
            T::matmul(
                w,
                MatRef::row_major(input, g.in_channels, per_out),
                &mut out,
                false,
            );
        } else {
            let col = im2col_batch(input, 1, g);
            T::matmul(
                w,
                MatRef::row_major(&col, g.patch_len(), per_out),
                &mut out,
                false,
            );
        }
    } else {
        conv2d_batch_chunks(
            input,
            images,
            weight,
            g,
            |v| v,
            |start, nb, y| {
                // [O, nb·P] to [N, O, P].
                out[start * o * per_out..(start + nb) * o * per_out]
                    .par_chunks_mut(o * per_out)
                    .enumerate()
                    .for_each(|(n, img)| {
                        for (ch, row) in img.chunks_mut(per_out).enumerate() {
                            row.copy_from_slice(&y[(ch * nb + n) * per_out..][..per_out]);
                        }
                    });
            },
        );
    }
    if let Some(bias) = bias {
        add_channel_bias(&mut out, bias, per_out);
    }
    out
}

/// The products of a batch's convolution (`input [N, C, H, W]` converted elementwise by `to`,
/// `weight [O, C, kh, kw]`, no bias), chunk by chunk so that memory stays bounded whatever the
/// batch: for each chunk of `nb` images from image `start`, `sink(start, nb, y)` receives
/// `y = W · im2col`, `[O, nb·H'·W']` (channel-major: row `o`, column `n·H'·W' + p`). Callers
/// that post-process the products (the batched evaluator converts them to the ring and adds
/// the bias) do it in the same pass that lays them out per image.
pub fn conv2d_batch_chunks<S: Copy + Send + Sync, T: Elem>(
    input: &[S],
    images: usize,
    weight: &[T],
    g: &ConvGeometry,
    to: impl Fn(S) -> T + Sync + Copy,
    sink: impl FnMut(usize, usize, &[T]),
) {
    assert_eq!(
        weight.len(),
        g.out_channels * g.patch_len(),
        "conv2d weight size"
    );
    let w = MatRef::row_major(weight, g.out_channels, g.patch_len());
    // Scratch reused by every chunk.
    let mut col = Vec::new();
    conv2d_batch_chunks_with(
        input,
        images,
        g,
        |x, nb, y| {
            im2col_batch_map(x, nb, g, to, &mut col);
            let cols = col.len() / g.patch_len().max(1);
            T::matmul(w, MatRef::row_major(&col, g.patch_len(), cols), y, false);
        },
        sink,
    );
}

/// [`conv2d_batch_chunks`] with the product given: `product(x, nb, y)` must overwrite `y`
/// (`[O, nb·H'·W']`, row-major) with the convolution's products for the chunk `x` of `nb`
/// images. The batched evaluator lays out 16-bit patches and multiplies them by packed weights
/// into exact `i64` products ([`super::igemm`]) this way.
pub fn conv2d_batch_chunks_with<S: Copy + Send + Sync, Y: Copy + Default>(
    input: &[S],
    images: usize,
    g: &ConvGeometry,
    mut product: impl FnMut(&[S], usize, &mut [Y]),
    mut sink: impl FnMut(usize, usize, &[Y]),
) {
    let per_in = g.in_channels * g.in_h * g.in_w;
    assert_eq!(input.len(), images * per_in, "conv2d input size");
    let per_out = g.out_h() * g.out_w();
    let o = g.out_channels;
    let chunk = images_per_chunk(g, images);
    // The products' buffer is reused by every chunk and overwritten, so it needs no zeroing
    // beyond its first allocation.
    let mut y = vec![Y::default(); o * chunk * per_out];
    let mut start = 0;
    while start < images {
        let nb = chunk.min(images - start);
        let x = &input[start * per_in..(start + nb) * per_in];
        let y = &mut y[..o * nb * per_out];
        product(x, nb, y);
        sink(start, nb, y);
        start += nb;
    }
}

/// The gradient of [`conv2d_batch`] with respect to its input: `grad_out [N, O, H', W']` to
/// `[N, C, H, W]` (the transposed convolution `im2colᵀ · Wᵀ`).
pub fn conv2d_backward_input_batch<T: Elem>(
    grad_out: &[T],
    images: usize,
    weight: &[T],
    g: &ConvGeometry,
) -> Vec<T> {
    let per_out = g.out_h() * g.out_w();
    let o = g.out_channels;
    let per_in = g.in_channels * g.in_h * g.in_w;
    assert_eq!(grad_out.len(), images * o * per_out, "conv2d gradient size");
    assert_eq!(weight.len(), o * g.patch_len(), "conv2d weight size");
    let wt = MatRef::row_major(weight, o, g.patch_len()).t();
    let mut out = vec![T::default(); images * per_in];
    let chunk = images_per_chunk(g, images);
    let mut start = 0;
    while start < images {
        let nb = chunk.min(images - start);
        let gy = &grad_out[start * o * per_out..(start + nb) * o * per_out];
        // [N, O, P] to [O, N·P].
        let gathered: Vec<T>;
        let gy = if nb == 1 {
            gy
        } else {
            let mut t = vec![T::default(); o * nb * per_out];
            t.par_chunks_mut(nb * per_out)
                .enumerate()
                .for_each(|(ch, row)| {
                    for (n, dst) in row.chunks_mut(per_out).enumerate() {
                        dst.copy_from_slice(&gy[(n * o + ch) * per_out..][..per_out]);
                    }
                });
            gathered = t;
            &gathered
        };
        let mut gcol = vec![T::default(); g.patch_len() * nb * per_out];
        T::matmul(wt, MatRef::row_major(gy, o, nb * per_out), &mut gcol, false);
        let gx = col2im_batch(&gcol, nb, g);
        out[start * per_in..(start + nb) * per_in].copy_from_slice(&gx);
        start += nb;
    }
    out
}

/// 2-D convolution of one image (`[C,H,W]` to `[O,H',W']`): [`conv2d_batch`] of one.
pub fn conv2d<T: Elem>(input: &[T], weight: &[T], bias: Option<&[T]>, g: &ConvGeometry) -> Vec<T> {
    conv2d_batch(input, 1, weight, bias, g)
}

/// Add `bias[c]` to every element of channel `c` of `[N, C, P]` data.
fn add_channel_bias<T: Elem>(out: &mut [T], bias: &[T], plane: usize) {
    let channels = bias.len();
    out.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(i, row)| {
            let b = bias[i % channels];
            row.iter_mut().for_each(|x| *x = T::plus(*x, b));
        });
}

/// `x Wᵀ + b` for a batch `x [N, I]` and `W [O, I]`, returning `[N, O]`.
pub fn linear_batch<T: Elem>(
    x: &[T],
    images: usize,
    weight: &[T],
    bias: Option<&[T]>,
    out_features: usize,
) -> Vec<T> {
    assert!(
        images > 0 && x.len().is_multiple_of(images),
        "linear input size"
    );
    let in_features = x.len() / images;
    assert_eq!(
        weight.len(),
        out_features * in_features,
        "linear weight size"
    );
    // (W Xᵀ)ᵀ: W stays row-major, so our own tiled kernel serves the ring as well.
    let mut t = vec![T::default(); out_features * images];
    T::matmul(
        MatRef::row_major(weight, out_features, in_features),
        MatRef::row_major(x, images, in_features).t(),
        &mut t,
        false,
    );
    let mut out = vec![T::default(); images * out_features];
    for (n, row) in out.chunks_mut(out_features.max(1)).enumerate() {
        for (o, v) in row.iter_mut().enumerate() {
            *v = t[o * images + n];
        }
    }
    if let Some(bias) = bias {
        add_channel_bias(&mut out, bias, 1);
    }
    out
}

/// `W x + b` for one vector `x` and `W [O, I]`: [`linear_batch`] of one.
pub fn linear<T: Elem>(x: &[T], weight: &[T], bias: Option<&[T]>, out_features: usize) -> Vec<T> {
    linear_batch(x, 1, weight, bias, out_features)
}

/// Sum (not average) over `kernel × kernel` windows with `stride`, no padding: `[C,H,W]` to
/// `[C,H',W']`. The division of an average pool is folded elsewhere. A batch `[N, C, H, W]` is
/// pooled as `N·C` channels.
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

    /// Convolution geometries with square kernels of a side from `ks`, input sizes from `hw`
    /// (height and width drawn apart), and channels, stride and padding from their ranges.
    fn conv_geometry(
        cin: std::ops::Range<usize>,
        cout: std::ops::Range<usize>,
        hw: std::ops::Range<usize>,
        ks: Vec<usize>,
        stride: std::ops::Range<usize>,
        pad: std::ops::Range<usize>,
    ) -> impl Strategy<Value = ConvGeometry> {
        (
            cin,
            cout,
            hw.clone(),
            hw,
            prop::sample::select(ks),
            stride,
            pad,
        )
            .prop_map(|(cin, cout, h, w, k, stride, pad)| ConvGeometry {
                in_channels: cin,
                in_h: h,
                in_w: w,
                out_channels: cout,
                kh: k,
                kw: k,
                stride,
                padding: pad,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn conv_matches_naive(
            g in conv_geometry(1..5, 1..7, 3..12, vec![1, 2, 3], 1..4, 0..3),
            seed in any::<u64>(),
        ) {
            let ConvGeometry { in_channels: cin, in_h: h, in_w: w, out_channels: cout, kh: k, .. } = g;
            let mut next = lcg(seed);
            let input: Vec<u64> = (0..cin * h * w).map(|_| next()).collect();
            let weight: Vec<u64> = (0..cout * cin * k * k).map(|_| next()).collect();
            prop_assert_eq!(conv2d(&input, &weight, None, &g), naive_conv(&input, &weight, &g));
        }

        #[test]
        fn gemm_matches_naive(m in 1usize..9, k in 1usize..9, n in 1usize..150, seed in any::<u64>()) {
            let mut next = lcg(seed);
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

    /// A small deterministic generator for test data.
    fn lcg(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(30))]
        #[test]
        fn conv_batch_matches_per_image(
            images in 1usize..6,
            g in conv_geometry(1..4, 1..5, 3..9, vec![1, 3], 1..3, 0..2),
            seed in any::<u64>(),
        ) {
            let ConvGeometry { in_channels: cin, in_h: h, in_w: w, out_channels: cout, kh: k, .. } = g;
            let mut next = lcg(seed);
            let input: Vec<u64> = (0..images * cin * h * w).map(|_| next()).collect();
            let weight: Vec<u64> = (0..cout * cin * k * k).map(|_| next()).collect();
            let bias: Vec<u64> = (0..cout).map(|_| next()).collect();
            let batch = conv2d_batch(&input, images, &weight, Some(&bias), &g);
            let per_in = cin * h * w;
            let per_out = cout * g.out_h() * g.out_w();
            for n in 0..images {
                let mut want = naive_conv(&input[n * per_in..(n + 1) * per_in], &weight, &g);
                for (i, v) in want.iter_mut().enumerate() {
                    *v = v.wrapping_add(bias[i / (g.out_h() * g.out_w())]);
                }
                prop_assert_eq!(&batch[n * per_out..(n + 1) * per_out], &want[..]);
            }
            // Floating point through the gemm crate: small integers are exact in f64.
            let to_f = |v: &u64| (*v % 17) as f64 - 8.0;
            let xf: Vec<f64> = input.iter().map(to_f).collect();
            let wf: Vec<f64> = weight.iter().map(to_f).collect();
            let xi: Vec<u64> = xf.iter().map(|&v| v as i64 as u64).collect();
            let wi: Vec<u64> = wf.iter().map(|&v| v as i64 as u64).collect();
            let yf = conv2d_batch(&xf, images, &wf, None, &g);
            let yi = conv2d_batch(&xi, images, &wi, None, &g);
            for (a, b) in yf.iter().zip(&yi) {
                prop_assert_eq!(*a as i64, *b as i64);
            }
        }

        #[test]
        fn conv_backward_is_the_adjoint(
            images in 1usize..4,
            g in conv_geometry(1..4, 1..4, 3..8, vec![1, 3], 1..3, 0..2),
            seed in any::<u64>(),
        ) {
            // <conv(x), y> = <x, conv_backward(y)>, exactly in integers.
            let ConvGeometry { in_channels: cin, in_h: h, in_w: w, out_channels: cout, kh: k, .. } = g;
            let mut next = lcg(seed);
            let small = |v: u64| ((v % 9) as i64 - 4) as f64;
            let x: Vec<f64> = (0..images * cin * h * w).map(|_| small(next())).collect();
            let wt: Vec<f64> = (0..cout * cin * k * k).map(|_| small(next())).collect();
            let y: Vec<f64> = (0..images * cout * g.out_h() * g.out_w()).map(|_| small(next())).collect();
            let cx = conv2d_batch(&x, images, &wt, None, &g);
            let by = conv2d_backward_input_batch(&y, images, &wt, &g);
            let lhs: f64 = cx.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&by).map(|(a, b)| a * b).sum();
            prop_assert_eq!(lhs, rhs);
        }

        #[test]
        fn matmul_views_match_naive(m in 1usize..20, k in 1usize..20, n in 1usize..20, ta: bool, tb: bool, acc: bool, seed in any::<u64>()) {
            let mut next = lcg(seed);
            let a: Vec<f64> = (0..m * k).map(|_| (next() % 7) as f64).collect();
            let b: Vec<f64> = (0..k * n).map(|_| (next() % 7) as f64).collect();
            let av = if ta { MatRef::row_major(&a, k, m).t() } else { MatRef::row_major(&a, m, k) };
            let bv = if tb { MatRef::row_major(&b, n, k).t() } else { MatRef::row_major(&b, k, n) };
            let au: Vec<u64> = a.iter().map(|&v| v as u64).collect();
            let bu: Vec<u64> = b.iter().map(|&v| v as u64).collect();
            let auv = MatRef { data: &au[..], rows: av.rows, cols: av.cols, row_stride: av.row_stride, col_stride: av.col_stride };
            let buv = MatRef { data: &bu[..], rows: bv.rows, cols: bv.cols, row_stride: bv.row_stride, col_stride: bv.col_stride };
            let init: Vec<f64> = (0..m * n).map(|i| i as f64).collect();
            let mut cf = init.clone();
            let mut cu: Vec<u64> = init.iter().map(|&v| v as u64).collect();
            f64::matmul(av, bv, &mut cf, acc);
            u64::matmul(auv, buv, &mut cu, acc);
            for i in 0..m { for j in 0..n {
                let dot: f64 = (0..k).map(|t| av.at(i, t) * bv.at(t, j)).sum();
                let want = if acc { init[i * n + j] + dot } else { dot };
                prop_assert_eq!(cf[i * n + j], want);
                prop_assert_eq!(cu[i * n + j], want as u64);
            }}
        }
    }

    #[test]
    fn linear_batch_matches_rows() {
        let x = [1u64, 2, 3, 4, 5, 6];
        let w = [1u64, 0, 0, 0, 1, 1];
        assert_eq!(
            linear_batch(&x, 2, &w, Some(&[10, 20]), 2),
            vec![11, 25, 14, 31]
        );
        let xf = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let wf = [1.0f32, 0.0, 0.0, 0.0, 1.0, 1.0];
        assert_eq!(
            linear_batch(&xf, 2, &wf, Some(&[10.0, 20.0]), 2),
            vec![11.0, 25.0, 14.0, 31.0]
        );
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
