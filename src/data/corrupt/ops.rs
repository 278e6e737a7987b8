//! The image operations the reference corruptions are built from, each following the library
//! the reference script calls (SciPy, OpenCV, Pillow, ImageMagick, scikit-image), written for
//! HWC `f64` planes. Only what the corruptions need: no general imaging library.

/// An HWC image of `f64` (values in whatever scale the caller uses).
#[derive(Clone, Debug, PartialEq)]
pub struct Planes {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// `h·w·c` values, HWC.
    pub data: Vec<f64>,
}

impl Planes {
    /// A zero image.
    pub fn zeros(h: usize, w: usize, c: usize) -> Planes {
        Planes {
            h,
            w,
            c,
            data: vec![0.0; h * w * c],
        }
    }

    /// Value at row `y`, column `x`, channel `k`.
    #[inline]
    pub fn at(&self, y: usize, x: usize, k: usize) -> f64 {
        self.data[(y * self.w + x) * self.c + k]
    }

    /// Mutable value at row `y`, column `x`, channel `k`.
    #[inline]
    pub fn at_mut(&mut self, y: usize, x: usize, k: usize) -> &mut f64 {
        &mut self.data[(y * self.w + x) * self.c + k]
    }
}

/// How a filter reads outside the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Border {
    /// Repeat the edge pixel (SciPy `nearest`, ImageMagick's default virtual pixels).
    Nearest,
    /// Half-sample symmetric, `d c b a | a b c d` (SciPy `reflect`).
    Reflect,
    /// Whole-sample symmetric, `d c b | a b c d` (OpenCV `BORDER_REFLECT_101`, SciPy `mirror`).
    Reflect101,
}

impl Border {
    /// The in-range index read for index `i` of a line of `n`.
    pub fn index(self, i: isize, n: usize) -> usize {
        let n = n as isize;
        if (0..n).contains(&i) {
            return i as usize;
        }
        match self {
            Border::Nearest => i.clamp(0, n - 1) as usize,
            Border::Reflect => {
                let period = 2 * n;
                let m = i.rem_euclid(period);
                (if m >= n { period - 1 - m } else { m }) as usize
            }
            Border::Reflect101 => {
                if n == 1 {
                    return 0;
                }
                let period = 2 * (n - 1);
                let m = i.rem_euclid(period);
                (if m >= n { period - m } else { m }) as usize
            }
        }
    }
}

/// SciPy's Gaussian kernel (`gaussian_filter1d`): radius `int(truncate·σ + 0.5)`, weights
/// `exp(−x²/2σ²)` normalised to sum 1.
pub fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let radius = (truncate * sigma + 0.5) as isize;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Correlates every channel with a 1-D kernel along rows (`axis = 0`) or columns (`axis = 1`).
pub fn correlate1d(img: &Planes, kernel: &[f64], axis: usize, border: Border) -> Planes {
    let r = (kernel.len() / 2) as isize;
    let mut out = Planes::zeros(img.h, img.w, img.c);
    for y in 0..img.h {
        for x in 0..img.w {
            for k in 0..img.c {
                let mut s = 0.0;
                for (t, &wt) in kernel.iter().enumerate() {
                    let d = t as isize - r;
                    let v = if axis == 0 {
                        img.at(border.index(y as isize + d, img.h), x, k)
                    } else {
                        img.at(y, border.index(x as isize + d, img.w), k)
                    };
                    s += wt * v;
                }
                *out.at_mut(y, x, k) = s;
            }
        }
    }
    out
}

/// SciPy `gaussian_filter` over the two spatial axes of every channel (what scikit-image's
/// `gaussian(…, multichannel=True)` calls): an identity for σ ≈ 0, as SciPy skips such axes.
pub fn gaussian_filter(img: &Planes, sigma: f64, border: Border, truncate: f64) -> Planes {
    if sigma <= 1e-15 {
        return img.clone();
    }
    let k = gaussian_kernel(sigma, truncate);
    let rows = correlate1d(img, &k, 0, border);
    correlate1d(&rows, &k, 1, border)
}

/// OpenCV `filter2D` (correlation, anchor at the centre) of every channel with a square kernel
/// of odd side, `BORDER_REFLECT_101`.
pub fn filter2d(img: &Planes, kernel: &[f64], side: usize) -> Planes {
    let r = (side / 2) as isize;
    let mut out = Planes::zeros(img.h, img.w, img.c);
    for y in 0..img.h {
        for x in 0..img.w {
            for k in 0..img.c {
                let mut s = 0.0;
                for ky in 0..side {
                    for kx in 0..side {
                        let wt = kernel[ky * side + kx];
                        if wt == 0.0 {
                            continue;
                        }
                        let yy = Border::Reflect101.index(y as isize + ky as isize - r, img.h);
                        let xx = Border::Reflect101.index(x as isize + kx as isize - r, img.w);
                        s += wt * img.at(yy, xx, k);
                    }
                }
                *out.at_mut(y, x, k) = s;
            }
        }
    }
    out
}

/// Linear interpolation of `line` (length `n`) at coordinate `c` with `border` outside.
fn lerp_at(get: impl Fn(usize) -> f64, c: f64, n: usize, border: Border) -> f64 {
    let i0 = c.floor();
    let t = c - i0;
    let i0 = i0 as isize;
    let a = get(border.index(i0, n));
    if t == 0.0 {
        return a;
    }
    a * (1.0 - t) + get(border.index(i0 + 1, n)) * t
}

/// Bilinear sample of channel `k` at (row `y`, column `x`), `border` outside.
pub fn bilinear(img: &Planes, y: f64, x: f64, k: usize, border: Border) -> f64 {
    let y0 = y.floor();
    let ty = y - y0;
    let y0 = y0 as isize;
    let row = |yy: usize| lerp_at(|xx| img.at(yy, xx, k), x, img.w, border);
    let a = row(border.index(y0, img.h));
    if ty == 0.0 {
        return a;
    }
    a * (1.0 - ty) + row(border.index(y0 + 1, img.h)) * ty
}

/// SciPy `ndimage.zoom(…, order=1)` of the two spatial axes (channels untouched): output side
/// `round(n·z)` (Python's round, ties to even) and output index `o` read at input coordinate
/// `o·(n − 1)/(m − 1)` (SciPy's default `grid_mode=False`).
pub fn zoom_linear(img: &Planes, zy: f64, zx: f64) -> Planes {
    let oh = ((img.h as f64) * zy).round_ties_even().max(1.0) as usize;
    let ow = ((img.w as f64) * zx).round_ties_even().max(1.0) as usize;
    let step = |n: usize, m: usize| {
        if m > 1 {
            (n as f64 - 1.0) / (m as f64 - 1.0)
        } else {
            0.0
        }
    };
    let (sy, sx) = (step(img.h, oh), step(img.w, ow));
    let mut out = Planes::zeros(oh, ow, img.c);
    for y in 0..oh {
        // Rounding may put the last coordinate an ulp past the edge: clamp it back.
        let cy = (y as f64 * sy).min((img.h - 1) as f64);
        for x in 0..ow {
            let cx = (x as f64 * sx).min((img.w - 1) as f64);
            for k in 0..img.c {
                *out.at_mut(y, x, k) = bilinear(img, cy, cx, k, Border::Nearest);
            }
        }
    }
    out
}

/// The reference's `clipped_zoom`: zoom the central `ceil(n/z)` crop by `z` and cut the central
/// `h × w` (per axis, which is the reference's square computation for square images).
pub fn clipped_zoom(img: &Planes, z: f64) -> Planes {
    let ch = (img.h as f64 / z).ceil() as usize;
    let cw = (img.w as f64 / z).ceil() as usize;
    let (top, left) = ((img.h - ch) / 2, (img.w - cw) / 2);
    let mut crop = Planes::zeros(ch, cw, img.c);
    for y in 0..ch {
        for x in 0..cw {
            for k in 0..img.c {
                *crop.at_mut(y, x, k) = img.at(top + y, left + x, k);
            }
        }
    }
    let zoomed = zoom_linear(&crop, z, z);
    let (ty, tx) = (
        zoomed.h.saturating_sub(img.h) / 2,
        zoomed.w.saturating_sub(img.w) / 2,
    );
    let mut out = Planes::zeros(img.h, img.w, img.c);
    for y in 0..img.h.min(zoomed.h) {
        for x in 0..img.w.min(zoomed.w) {
            for k in 0..img.c {
                *out.at_mut(y, x, k) = zoomed.at(ty + y, tx + x, k);
            }
        }
    }
    out
}

/// ImageMagick's `MotionBlurImage(radius, sigma, angle)` on 0..255 values: a one-sided
/// Gaussian of `2·ceil(radius) + 1` taps (`exp(−i²/2σ²)`, normalised) along the direction
/// `angle` (degrees), tap `i` at offset `(ceil(i·cos θ − ½), ceil(i·sin θ − ½))`, edge pixels
/// repeated outside; the result rounded to 8 bits.
pub fn motion_blur(img: &Planes, radius: f64, sigma: f64, angle: f64) -> Planes {
    let width = (2.0 * radius.ceil() + 1.0) as usize;
    let mut kernel: Vec<f64> = (0..width)
        .map(|i| {
            (-((i * i) as f64) / (2.0 * sigma * sigma)).exp()
                / ((2.0 * std::f64::consts::PI).sqrt() * sigma)
        })
        .collect();
    let norm: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= norm);
    let theta = std::f64::consts::PI * angle / 180.0;
    let (px, py) = (width as f64 * theta.sin(), width as f64 * theta.cos());
    let hyp = px.hypot(py);
    let offsets: Vec<(isize, isize)> = (0..width)
        .map(|i| {
            let i = i as f64;
            (
                (i * py / hyp - 0.5).ceil() as isize,
                (i * px / hyp - 0.5).ceil() as isize,
            )
        })
        .collect();
    let mut out = Planes::zeros(img.h, img.w, img.c);
    for y in 0..img.h {
        for x in 0..img.w {
            for k in 0..img.c {
                let mut s = 0.0;
                for (&wt, &(ox, oy)) in kernel.iter().zip(&offsets) {
                    let xx = Border::Nearest.index(x as isize + ox, img.w);
                    let yy = Border::Nearest.index(y as isize + oy, img.h);
                    s += wt * img.at(yy, xx, k);
                }
                *out.at_mut(y, x, k) = s.round().clamp(0.0, 255.0);
            }
        }
    }
    out
}

/// Pillow's `resize(…, Image.BOX)` of an 8-bit HWC image: per axis, output pixel `i` averages
/// the input pixels whose centres fall in `((i + ½)·s − s/2, (i + ½)·s + s/2]` (`s` the scale,
/// at least 1 wide), with 22-bit fixed-point weights; horizontal pass first, then vertical,
/// each rounded to 8 bits, as Pillow's `ImagingResample` does.
pub fn resize_box(pixels: &[u8], h: usize, w: usize, c: usize, oh: usize, ow: usize) -> Vec<u8> {
    let mut tmp = vec![0u8; h * ow * c];
    if ow == w {
        tmp.copy_from_slice(pixels);
    } else {
        let (bounds, kk, ksize) = box_coeffs(w, ow);
        for y in 0..h {
            for xx in 0..ow {
                let (xmin, xmax) = bounds[xx];
                for k in 0..c {
                    let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                    for x in 0..xmax {
                        ss += i64::from(pixels[(y * w + xmin + x) * c + k])
                            * i64::from(kk[xx * ksize + x]);
                    }
                    tmp[(y * ow + xx) * c + k] = (ss >> PRECISION_BITS).clamp(0, 255) as u8;
                }
            }
        }
    }
    if oh == h {
        return tmp;
    }
    let (bounds, kk, ksize) = box_coeffs(h, oh);
    let mut out = vec![0u8; oh * ow * c];
    for yy in 0..oh {
        let (ymin, ymax) = bounds[yy];
        for x in 0..ow {
            for k in 0..c {
                let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                for y in 0..ymax {
                    ss += i64::from(tmp[((ymin + y) * ow + x) * c + k])
                        * i64::from(kk[yy * ksize + y]);
                }
                out[(yy * ow + x) * c + k] = (ss >> PRECISION_BITS).clamp(0, 255) as u8;
            }
        }
    }
    out
}

/// Fixed-point precision of Pillow's 8-bit resampling coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `precompute_coeffs` for the box filter (support ½), then its 8-bit normalisation:
/// per output pixel `(first input, count)`, and the fixed-point weights, `ksize` per pixel.
fn box_coeffs(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 0.5 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as isize).max(0) as usize;
        let xmax = ((center + support + 0.5) as isize).min(in_size as isize) as usize - xmin;
        let w: Vec<f64> = (0..xmax)
            .map(|x| {
                let t = (x as f64 + xmin as f64 - center + 0.5) * ss;
                if t > -0.5 && t <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let ww: f64 = w.iter().sum();
        for (x, v) in w.into_iter().enumerate() {
            let v = if ww != 0.0 { v / ww } else { v };
            kk[xx * ksize + x] = (0.5 + v * f64::from(1u32 << PRECISION_BITS)) as i32;
        }
        bounds.push((xmin, xmax));
    }
    (bounds, kk, ksize)
}

/// scikit-image's `rgb2hsv` of one pixel (`[0, 1]` RGB): `(h, s, v)`.
pub fn rgb2hsv(rgb: [f64; 3]) -> [f64; 3] {
    let v = rgb[0].max(rgb[1]).max(rgb[2]);
    let delta = v - rgb[0].min(rgb[1]).min(rgb[2]);
    let s = if delta == 0.0 { 0.0 } else { delta / v };
    if delta == 0.0 {
        return [0.0, s, v];
    }
    // scikit-image assigns red, then green, then blue: the last channel equal to the max wins.
    let mut h = 0.0;
    if rgb[0] == v {
        h = (rgb[1] - rgb[2]) / delta;
    }
    if rgb[1] == v {
        h = 2.0 + (rgb[2] - rgb[0]) / delta;
    }
    if rgb[2] == v {
        h = 4.0 + (rgb[0] - rgb[1]) / delta;
    }
    [(h / 6.0).rem_euclid(1.0), s, v]
}

/// scikit-image's `hsv2rgb` of one pixel.
pub fn hsv2rgb(hsv: [f64; 3]) -> [f64; 3] {
    let [h, s, v] = hsv;
    let hi = (h * 6.0).floor();
    let f = h * 6.0 - hi;
    let p = v * (1.0 - s);
    let q = v * (1.0 - f * s);
    let t = v * (1.0 - (1.0 - f) * s);
    match (hi as i64).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// The reference's `plasma_fractal`: a diamond-square height map of side `mapsize` (a power of
/// two), normalised to `[0, 1]`; `uniform(lo, hi)` draws in NumPy's C order of each step.
pub fn plasma_fractal(
    mapsize: usize,
    wibbledecay: f64,
    mut uniform: impl FnMut(f64, f64) -> f64,
) -> Vec<f64> {
    let m = mapsize;
    let mut map = vec![0.0f64; m * m];
    let mut step = m;
    let mut wibble = 100.0f64;
    while step >= 2 {
        let half = step / 2;
        let k = m / step;
        // Squares: the centre of each cell is the mean of its 4 corners (wrapping) + noise.
        let corner = |map: &Vec<f64>, i: usize, j: usize| map[(i % k) * step * m + (j % k) * step];
        let mut centres = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                let acc = corner(&map, i, j)
                    + corner(&map, i + 1, j)
                    + corner(&map, i, j + 1)
                    + corner(&map, i + 1, j + 1);
                centres[i * k + j] = acc;
            }
        }
        for (idx, acc) in centres.into_iter().enumerate() {
            let (i, j) = (idx / k, idx % k);
            map[(i * step + half) * m + j * step + half] =
                acc / 4.0 + wibble * uniform(-wibble, wibble);
        }
        // Diamonds: edge midpoints from the two neighbouring centres and two corners.
        let dr = |map: &Vec<f64>, i: usize, j: usize| {
            map[((i % k) * step + half) * m + (j % k) * step + half]
        };
        let ul = |map: &Vec<f64>, i: usize, j: usize| map[(i % k) * step * m + (j % k) * step];
        let mut top = vec![0.0; k * k];
        let mut left = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                // maparray[0::step, half::step]: dr[i,j] + dr[i−1,j] + ul[i,j] + ul[i,j+1]
                top[i * k + j] =
                    dr(&map, i, j) + dr(&map, i + k - 1, j) + ul(&map, i, j) + ul(&map, i, j + 1);
                // maparray[half::step, 0::step]: dr[i,j] + dr[i,j−1] + ul[i,j] + ul[i+1,j]
                left[i * k + j] =
                    dr(&map, i, j) + dr(&map, i, j + k - 1) + ul(&map, i, j) + ul(&map, i + 1, j);
            }
        }
        for (idx, acc) in top.into_iter().enumerate() {
            let (i, j) = (idx / k, idx % k);
            map[i * step * m + j * step + half] = acc / 4.0 + wibble * uniform(-wibble, wibble);
        }
        for (idx, acc) in left.into_iter().enumerate() {
            let (i, j) = (idx / k, idx % k);
            map[(i * step + half) * m + j * step] = acc / 4.0 + wibble * uniform(-wibble, wibble);
        }
        step /= 2;
        wibble /= wibbledecay;
    }
    let lo = map.iter().copied().fold(f64::INFINITY, f64::min);
    map.iter_mut().for_each(|v| *v -= lo);
    let hi = map.iter().copied().fold(0.0, f64::max);
    if hi > 0.0 {
        map.iter_mut().for_each(|v| *v /= hi);
    }
    map
}

/// OpenCV `getAffineTransform` (the 2×3 map taking `src[i]` to `dst[i]`), inverted, so that
/// `warp_affine` can read the source for each destination pixel.
pub fn inverse_affine(src: [[f64; 2]; 3], dst: [[f64; 2]; 3]) -> Option<[[f64; 3]; 2]> {
    // Solve dst = M·[src;1] per output coordinate by Cramer's rule, then invert M.
    let det = |a: [[f64; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let a = [
        [src[0][0], src[0][1], 1.0],
        [src[1][0], src[1][1], 1.0],
        [src[2][0], src[2][1], 1.0],
    ];
    let d = det(a);
    if d.abs() < 1e-12 {
        return None;
    }
    let mut m = [[0.0; 3]; 2];
    for (row, out) in m.iter_mut().enumerate() {
        for col in 0..3 {
            let mut b = a;
            for r in 0..3 {
                b[r][col] = dst[r][row];
            }
            out[col] = det(b) / d;
        }
    }
    // Invert [[a b c],[d e f],[0 0 1]].
    let (a_, b_, c_, d_, e_, f_) = (m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2]);
    let dd = a_ * e_ - b_ * d_;
    if dd.abs() < 1e-12 {
        return None;
    }
    Some([
        [e_ / dd, -b_ / dd, (b_ * f_ - c_ * e_) / dd],
        [-d_ / dd, a_ / dd, (c_ * d_ - a_ * f_) / dd],
    ])
}

/// OpenCV `warpAffine` with bilinear interpolation and `BORDER_REFLECT_101`, given the inverse
/// map (destination → source). OpenCV quantises source coordinates to 1/32 pixel; this does not.
pub fn warp_affine(img: &Planes, inv: [[f64; 3]; 2]) -> Planes {
    let mut out = Planes::zeros(img.h, img.w, img.c);
    for y in 0..img.h {
        for x in 0..img.w {
            let (xf, yf) = (x as f64, y as f64);
            let sx = inv[0][0] * xf + inv[0][1] * yf + inv[0][2];
            let sy = inv[1][0] * xf + inv[1][1] * yf + inv[1][2];
            for k in 0..img.c {
                *out.at_mut(y, x, k) = bilinear(img, sy, sx, k, Border::Reflect101);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_match_scipy_and_opencv_conventions() {
        // n = 4: reflect  … 1 0 | 0 1 2 3 | 3 2 …; reflect101 … 2 1 | 0 1 2 3 | 2 1 …
        let refl: Vec<usize> = (-2..6).map(|i| Border::Reflect.index(i, 4)).collect();
        assert_eq!(refl, [1, 0, 0, 1, 2, 3, 3, 2]);
        let r101: Vec<usize> = (-2..6).map(|i| Border::Reflect101.index(i, 4)).collect();
        assert_eq!(r101, [2, 1, 0, 1, 2, 3, 2, 1]);
        let near: Vec<usize> = (-2..6).map(|i| Border::Nearest.index(i, 4)).collect();
        assert_eq!(near, [0, 0, 0, 1, 2, 3, 3, 3]);
    }

    #[test]
    fn gaussian_kernel_is_scipys() {
        // σ = 1, truncate 4: radius 4, symmetric, sums to 1, centre exp(0)/Σ.
        let k = gaussian_kernel(1.0, 4.0);
        assert_eq!(k.len(), 9);
        let total: f64 = (-4..=4).map(|x: i32| (-0.5 * f64::from(x * x)).exp()).sum();
        assert!((k[4] - 1.0 / total).abs() < 1e-15);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // σ = 0.05: radius int(0.7) = 0, the identity.
        assert_eq!(gaussian_kernel(0.05, 4.0), vec![1.0]);
    }

    #[test]
    fn zoom_keeps_corners_and_rounds_half_to_even() {
        let mut img = Planes::zeros(2, 2, 1);
        img.data = vec![0.0, 1.0, 2.0, 3.0];
        // 2·1.25 = 2.5 rounds to 2 (ties to even): the identity.
        assert_eq!(zoom_linear(&img, 1.25, 1.25).data, img.data);
        let z = zoom_linear(&img, 1.5, 1.5); // 3×3, centre is the mean
        assert_eq!((z.h, z.w), (3, 3));
        assert_eq!(z.at(0, 0, 0), 0.0);
        assert_eq!(z.at(2, 2, 0), 3.0);
        assert!((z.at(1, 1, 0) - 1.5).abs() < 1e-12);
    }

    #[test]
    fn box_resize_averages_whole_blocks() {
        // 4 → 2 halves average pairs (rounded), and back 2 → 4 repeats.
        let px = [0u8, 10, 20, 31];
        let down = resize_box(&px, 1, 4, 1, 1, 2);
        assert_eq!(down, [5, 26]); // 5, 25.5 → 26 (Pillow rounds half up)
        let up = resize_box(&down, 1, 2, 1, 1, 4);
        assert_eq!(up, [5, 5, 26, 26]);
    }

    #[test]
    fn hsv_round_trip() {
        for rgb in [
            [0.2, 0.4, 0.6],
            [1.0, 0.0, 0.0],
            [0.3, 0.3, 0.3],
            [0.0, 0.0, 0.0],
        ] {
            let back = hsv2rgb(rgb2hsv(rgb));
            for c in 0..3 {
                assert!((back[c] - rgb[c]).abs() < 1e-12, "{rgb:?} → {back:?}");
            }
        }
    }

    #[test]
    fn affine_inverse_maps_destination_points_back() {
        let src = [[26.0, 26.0], [26.0, 6.0], [6.0, 6.0]];
        let dst = [[27.0, 25.5], [25.0, 7.0], [6.5, 5.0]];
        let inv = inverse_affine(src, dst).unwrap();
        for (s, d) in src.iter().zip(&dst) {
            let x = inv[0][0] * d[0] + inv[0][1] * d[1] + inv[0][2];
            let y = inv[1][0] * d[0] + inv[1][1] * d[1] + inv[1][2];
            assert!((x - s[0]).abs() < 1e-9 && (y - s[1]).abs() < 1e-9);
        }
    }

    #[test]
    fn motion_blur_of_a_flat_image_is_flat() {
        let mut img = Planes::zeros(8, 8, 1);
        img.data.iter_mut().for_each(|v| *v = 100.0);
        let out = motion_blur(&img, 6.0, 2.0, 30.0);
        assert!(out.data.iter().all(|&v| v == 100.0));
    }

    #[test]
    fn plasma_is_normalised() {
        let mut state = 1u64;
        let map = plasma_fractal(32, 3.0, |lo, hi| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((state >> 11) as f64 / (1u64 << 53) as f64)
        });
        assert_eq!(map.len(), 32 * 32);
        let lo = map.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = map.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((lo, hi), (0.0, 1.0));
    }
}
