//! The 15 CIFAR-10-C corruptions of Hendrycks & Dietterich (ICLR 2019), generated here, seeded
//! and deterministic, at severities 1–5 with the per-severity parameters of the reference
//! script (`ImageNet-C/create_c/make_cifar_c.py` of hendrycks/robustness).
//!
//! [`apply`] corrupts one u8 HWC image in place. Its randomness comes from one ChaCha8 stream
//! per image, [`image_rng`]`(seed, corruption, severity, index)`, so an image's corruption does
//! not depend on which other images are processed with it (shards merge exactly) and the same
//! seed gives the same bytes on every machine. Results are `uint8(clip(…) · 255)`, truncated as
//! the reference's `np.uint8` does.
//!
//! How closely each follows the reference is tabled in docs/DATA.md ("Generated corruptions");
//! [`Corruption::is_faithful`] says it in code. The random draws can never match NumPy's
//! stream, so "faithful" means the same algorithm, parameters and distributions, and the same
//! output for the same draws up to floating-point rounding.
//!
//! Images with one channel are corrupted as grey RGB (replicated) and channel 0 is kept.

mod ops;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

use super::{DataError, ImageShape};
use ops::{Border, Planes};

/// One of the 15 corruptions of CIFAR-10-C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Corruption {
    /// Additive Gaussian noise.
    GaussianNoise,
    /// Poisson (shot) noise.
    ShotNoise,
    /// Salt-and-pepper noise.
    ImpulseNoise,
    /// Disk-kernel blur.
    DefocusBlur,
    /// Blur, local pixel shuffling, blur.
    GlassBlur,
    /// Directional blur.
    MotionBlur,
    /// Mean of zoomed copies.
    ZoomBlur,
    /// Snow flakes.
    Snow,
    /// Frost on a window.
    Frost,
    /// Fractal fog.
    Fog,
    /// Brighter in HSV.
    Brightness,
    /// Lower contrast.
    Contrast,
    /// Elastic deformation.
    ElasticTransform,
    /// Down- and up-sampling.
    Pixelate,
    /// JPEG artefacts.
    JpegCompression,
}

/// Severities, 1 (mildest) to 5.
pub const SEVERITIES: std::ops::RangeInclusive<u8> = 1..=5;

impl Corruption {
    /// The 15, in the order of the reference script and of RLNet's NPA.
    pub const ALL: [Corruption; 15] = [
        Corruption::GaussianNoise,
        Corruption::ShotNoise,
        Corruption::ImpulseNoise,
        Corruption::DefocusBlur,
        Corruption::GlassBlur,
        Corruption::MotionBlur,
        Corruption::ZoomBlur,
        Corruption::Snow,
        Corruption::Frost,
        Corruption::Fog,
        Corruption::Brightness,
        Corruption::Contrast,
        Corruption::ElasticTransform,
        Corruption::Pixelate,
        Corruption::JpegCompression,
    ];

    /// The name of its CIFAR-C file (without `.npy`), e.g. `gaussian_noise`.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "gaussian_noise",
            Corruption::ShotNoise => "shot_noise",
            Corruption::ImpulseNoise => "impulse_noise",
            Corruption::DefocusBlur => "defocus_blur",
            Corruption::GlassBlur => "glass_blur",
            Corruption::MotionBlur => "motion_blur",
            Corruption::ZoomBlur => "zoom_blur",
            Corruption::Snow => "snow",
            Corruption::Frost => "frost",
            Corruption::Fog => "fog",
            Corruption::Brightness => "brightness",
            Corruption::Contrast => "contrast",
            Corruption::ElasticTransform => "elastic_transform",
            Corruption::Pixelate => "pixelate",
            Corruption::JpegCompression => "jpeg_compression",
        }
    }

    /// The corruption of a name (as [`Corruption::name`]).
    pub fn from_name(name: &str) -> Result<Corruption, DataError> {
        Corruption::ALL
            .into_iter()
            .find(|c| c.name() == name.trim())
            .ok_or_else(|| {
                DataError::Corruption(format!(
                    "unknown corruption `{name}` (known: {})",
                    Corruption::ALL.map(Corruption::name).join(", ")
                ))
            })
    }

    /// A comma-separated list of names, or `all`.
    pub fn parse_list(list: &str) -> Result<Vec<Corruption>, DataError> {
        if list.trim() == "all" {
            return Ok(Corruption::ALL.to_vec());
        }
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Corruption::from_name)
            .collect()
    }

    /// Whether pibench's version follows the reference faithfully (see the module table).
    pub fn is_faithful(self) -> bool {
        !matches!(
            self,
            Corruption::MotionBlur
                | Corruption::Snow
                | Corruption::Frost
                | Corruption::ElasticTransform
                | Corruption::JpegCompression
        )
    }
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The random stream of image `index` under `seed`: `model::synth::tensor_rng(seed,
/// "<corruption>/<severity>/<index>")`, i.e. ChaCha8 seeded with `seed ⊕ fnv1a64(that name)`.
pub fn image_rng(seed: u64, corruption: Corruption, severity: u8, index: u64) -> ChaCha8Rng {
    crate::model::synth::tensor_rng(seed, &format!("{}/{severity}/{index}", corruption.name()))
}

/// Corrupts one u8 HWC image of `shape` in place with the stream [`image_rng`] gives image
/// `index` under `seed`.
pub fn apply(
    corruption: Corruption,
    severity: u8,
    pixels: &mut [u8],
    shape: ImageShape,
    seed: u64,
    index: u64,
) -> Result<(), DataError> {
    let mut rng = image_rng(seed, corruption, severity, index);
    apply_with(corruption, severity, pixels, shape, &mut rng)
}

/// As [`apply`], drawing from a given generator.
pub fn apply_with(
    corruption: Corruption,
    severity: u8,
    pixels: &mut [u8],
    shape: ImageShape,
    rng: &mut impl Rng,
) -> Result<(), DataError> {
    if !SEVERITIES.contains(&severity) {
        return Err(DataError::Corruption(format!(
            "severity {severity} of `{corruption}`: severities are 1 to 5"
        )));
    }
    if pixels.len() != shape.len() || shape.is_empty() {
        return Err(DataError::Corruption(format!(
            "`{corruption}`: {} pixel bytes for a {shape} image",
            pixels.len()
        )));
    }
    if shape.channels != 1 && shape.channels != 3 {
        return Err(DataError::Corruption(format!(
            "`{corruption}` needs RGB or grey images, not {} channels",
            shape.channels
        )));
    }
    let (h, w) = (shape.height, shape.width);
    let rgb: Vec<u8> = if shape.channels == 3 {
        pixels.to_vec()
    } else {
        pixels.iter().flat_map(|&v| [v, v, v]).collect()
    };
    let s = usize::from(severity - 1);
    let out = match corruption {
        Corruption::Pixelate => pixelate(&rgb, h, w, s),
        Corruption::JpegCompression => jpeg(&rgb, h, w, s)?,
        _ => {
            let x = to_unit(&rgb, h, w);
            let y = match corruption {
                Corruption::GaussianNoise => gaussian_noise(x, s, rng),
                Corruption::ShotNoise => shot_noise(x, s, rng),
                Corruption::ImpulseNoise => impulse_noise(x, s, rng),
                Corruption::DefocusBlur => defocus_blur(&x, s),
                Corruption::GlassBlur => glass_blur(&x, s, rng),
                Corruption::MotionBlur => motion(&rgb, h, w, s, rng),
                Corruption::ZoomBlur => zoom_blur(&x, s),
                Corruption::Snow => snow(&x, s, rng),
                Corruption::Frost => frost(&rgb, h, w, s, rng),
                Corruption::Fog => fog(x, s, rng),
                Corruption::Brightness => brightness(x, s),
                Corruption::Contrast => contrast(x, s),
                Corruption::ElasticTransform => elastic(&x, s, rng),
                Corruption::Pixelate | Corruption::JpegCompression => unreachable!(),
            };
            // `np.uint8` of values in [0, 255] truncates.
            y.data.iter().map(|&v| v.clamp(0.0, 255.0) as u8).collect()
        }
    };
    if shape.channels == 3 {
        pixels.copy_from_slice(&out);
    } else {
        for (p, px) in pixels.iter_mut().zip(out.chunks_exact(3)) {
            *p = px[0];
        }
    }
    Ok(())
}

/// `x / 255` as an RGB [`Planes`].
fn to_unit(rgb: &[u8], h: usize, w: usize) -> Planes {
    Planes {
        h,
        w,
        c: 3,
        data: rgb.iter().map(|&v| f64::from(v) / 255.0).collect(),
    }
}

/// `clip(x, 0, 1) · 255`.
fn to_255(mut x: Planes) -> Planes {
    x.data
        .iter_mut()
        .for_each(|v| *v = v.clamp(0.0, 1.0) * 255.0);
    x
}

/// `clip(x, 0, 1) · 255` in float32, for the corruptions the reference computes in float32
/// (the product's rounding decides the truncated byte).
fn to_255_f32(mut x: Planes) -> Planes {
    x.data
        .iter_mut()
        .for_each(|v| *v = f64::from((*v as f32).clamp(0.0, 1.0) * 255.0));
    x
}

fn gaussian_noise(mut x: Planes, s: usize, rng: &mut impl Rng) -> Planes {
    let c = [0.04, 0.06, 0.08, 0.09, 0.10][s];
    let normal = Normal::new(0.0, c).expect("positive scale");
    x.data.iter_mut().for_each(|v| *v += normal.sample(rng));
    to_255(x)
}

fn shot_noise(mut x: Planes, s: usize, rng: &mut impl Rng) -> Planes {
    let c = [500.0, 250.0, 100.0, 75.0, 50.0][s];
    x.data.iter_mut().for_each(|v| {
        let lambda = *v * c;
        // Poisson(0) is 0; rand_distr refuses λ = 0.
        let k = if lambda > 0.0 {
            Poisson::new(lambda).expect("positive rate").sample(rng)
        } else {
            0.0
        };
        *v = k / c;
    });
    to_255(x)
}

fn impulse_noise(mut x: Planes, s: usize, rng: &mut impl Rng) -> Planes {
    let amount = [0.01, 0.02, 0.03, 0.05, 0.07][s];
    x.data.iter_mut().for_each(|v| {
        let flipped = rng.gen::<f64>() <= amount;
        let salted = rng.gen::<f64>() <= 0.5;
        if flipped {
            *v = if salted { 1.0 } else { 0.0 };
        }
    });
    to_255(x)
}

/// The reference's `disk(radius, alias_blur)`: a 17×17 aliased disk (radius ≤ 8), normalised,
/// then OpenCV `GaussianBlur` with a 3×3 kernel of σ `alias_blur` (reflect-101 border).
fn disk(radius: f64, alias_blur: f64) -> (Vec<f64>, usize) {
    let (l, ksize) = if radius <= 8.0 {
        (8isize, 3usize)
    } else {
        (radius as isize, 5usize)
    };
    let side = (2 * l + 1) as usize;
    let mut d: Vec<f64> = Vec::with_capacity(side * side);
    for y in -l..=l {
        for x in -l..=l {
            d.push(if ((x * x + y * y) as f64) <= radius * radius {
                1.0
            } else {
                0.0
            });
        }
    }
    let sum: f64 = d.iter().sum();
    d.iter_mut().for_each(|v| *v /= sum);
    // OpenCV's getGaussianKernel(ksize, σ): exp(−(i − (k−1)/2)² / 2σ²), normalised.
    let half = (ksize / 2) as isize;
    let mut g: Vec<f64> = (-half..=half)
        .map(|i| (-((i * i) as f64) / (2.0 * alias_blur * alias_blur)).exp())
        .collect();
    let gs: f64 = g.iter().sum();
    g.iter_mut().for_each(|v| *v /= gs);
    let plane = Planes {
        h: side,
        w: side,
        c: 1,
        data: d,
    };
    let rows = ops::correlate1d(&plane, &g, 0, Border::Reflect101);
    (
        ops::correlate1d(&rows, &g, 1, Border::Reflect101).data,
        side,
    )
}

fn defocus_blur(x: &Planes, s: usize) -> Planes {
    let (radius, alias) = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)][s];
    let (kernel, side) = disk(radius, alias);
    to_255(ops::filter2d(x, &kernel, side))
}

fn glass_blur(x: &Planes, s: usize, rng: &mut impl Rng) -> Planes {
    let (sigma, delta, iterations) = [
        (0.05, 1usize, 1usize),
        (0.25, 1, 1),
        (0.4, 1, 1),
        (0.25, 1, 2),
        (0.4, 1, 2),
    ][s];
    let blurred = ops::gaussian_filter(x, sigma, Border::Nearest, 4.0);
    // np.uint8(… · 255): truncation, then the pixel swaps on whole pixels.
    let mut u = Planes {
        data: blurred
            .data
            .iter()
            .map(|&v| (v * 255.0).clamp(0.0, 255.0).trunc())
            .collect(),
        ..blurred
    };
    let d = delta as isize;
    for _ in 0..iterations {
        for hh in ((d + 1)..=(x.h as isize - d)).rev() {
            for ww in ((d + 1)..=(x.w as isize - d)).rev() {
                let dx = rng.gen_range(-d..d);
                let dy = rng.gen_range(-d..d);
                let (h2, w2) = (hh + dy, ww + dx);
                for k in 0..u.c {
                    let a = u.at(hh as usize, ww as usize, k);
                    let b = u.at(h2 as usize, w2 as usize, k);
                    *u.at_mut(hh as usize, ww as usize, k) = b;
                    *u.at_mut(h2 as usize, w2 as usize, k) = a;
                }
            }
        }
    }
    u.data.iter_mut().for_each(|v| *v /= 255.0);
    to_255(ops::gaussian_filter(&u, sigma, Border::Nearest, 4.0))
}

/// `uniform(lo, hi)` as NumPy defines it: `lo + (hi − lo)·u`, `u ∈ [0, 1)`.
fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.gen::<f64>()
}

fn motion(rgb: &[u8], h: usize, w: usize, s: usize, rng: &mut impl Rng) -> Planes {
    let (radius, sigma) = [(6.0, 1.0), (6.0, 1.5), (6.0, 2.0), (8.0, 2.0), (9.0, 2.5)][s];
    let angle = uniform(rng, -45.0, 45.0);
    let img = Planes {
        h,
        w,
        c: 3,
        data: rgb.iter().map(|&v| f64::from(v)).collect(),
    };
    ops::motion_blur(&img, radius, sigma, angle)
}

/// NumPy's `arange(1, end, 0.01)`: `1 + i·δ` with `δ = (1 + 0.01) − 1`, and the counts NumPy
/// computes, `ceil((end − 1)/0.01)` in floating point.
fn zoom_factors(s: usize) -> Vec<f64> {
    let count = [7, 12, 16, 21, 26][s];
    let delta = (1.0f64 + 0.01) - 1.0;
    (0..count).map(|i| 1.0 + f64::from(i) * delta).collect()
}

fn zoom_blur(x: &Planes, s: usize) -> Planes {
    // The reference works in float32.
    let x32 = Planes {
        data: x.data.iter().map(|&v| f64::from(v as f32)).collect(),
        ..x.clone()
    };
    let factors = zoom_factors(s);
    let mut out = Planes::zeros(x.h, x.w, x.c);
    for &z in &factors {
        let zoomed = ops::clipped_zoom(&x32, z);
        for (o, v) in out.data.iter_mut().zip(&zoomed.data) {
            *o = f64::from((*o as f32) + (*v as f32));
        }
    }
    let n = (factors.len() + 1) as f32;
    let data = x32
        .data
        .iter()
        .zip(&out.data)
        .map(|(&a, &b)| f64::from((a as f32 + b as f32) / n))
        .collect();
    to_255_f32(Planes { data, ..x32 })
}

/// OpenCV's `COLOR_RGB2GRAY` weights.
fn grey(r: f64, g: f64, b: f64) -> f64 {
    0.299 * r + 0.587 * g + 0.114 * b
}

fn snow(x: &Planes, s: usize, rng: &mut impl Rng) -> Planes {
    let (loc, scale, zoom, threshold, radius, sigma, mix) = [
        (0.1, 0.2, 1.0, 0.6, 8.0, 3.0, 0.95),
        (0.1, 0.2, 1.0, 0.5, 10.0, 4.0, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10.0, 4.0, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12.0, 6.0, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14.0, 12.0, 0.8),
    ][s];
    let normal = Normal::new(loc, scale).expect("positive scale");
    let mut layer = Planes::zeros(x.h, x.w, 1);
    layer.data.iter_mut().for_each(|v| *v = normal.sample(rng));
    let mut layer = ops::clipped_zoom(&layer, zoom);
    // Below the threshold: no snow; then to an 8-bit grey image (truncated) for the blur.
    layer.data.iter_mut().for_each(|v| {
        let kept = if *v < threshold { 0.0 } else { *v };
        *v = (kept.clamp(0.0, 1.0) * 255.0).trunc();
    });
    let angle = uniform(rng, -135.0, -45.0);
    let flakes = ops::motion_blur(&layer, radius, sigma, angle);
    let (h, w) = (x.h, x.w);
    let mut out = Planes::zeros(h, w, 3);
    for y in 0..h {
        for xx in 0..w {
            let px: Vec<f32> = (0..3).map(|k| x.at(y, xx, k) as f32).collect();
            let g = grey(f64::from(px[0]), f64::from(px[1]), f64::from(px[2])) as f32;
            let lifted = g * 1.5 + 0.5;
            // The flakes are float64 (`imdecode(…) / 255.`), the image float32.
            let flake = flakes.at(y, xx, 0) / 255.0 + flakes.at(h - 1 - y, w - 1 - xx, 0) / 255.0;
            for (k, &p) in px.iter().enumerate() {
                let v = mix as f32 * p + (1.0 - mix as f32) * p.max(lifted);
                *out.at_mut(y, xx, k) = f64::from(v) + flake;
            }
        }
    }
    to_255(out)
}

/// A synthetic frost texture of `h × w` RGB in 0..255, standing in for the reference's crops of
/// frost photographs (which we do not ship): a diamond-square base (as fog's, rougher) for
/// patchy ice and 6–14 random straight needles with short side branches for crystals, as a
/// brightness factor around 1 on a colour drawn between the photographs' two looks. Colour and
/// contrast are calibrated to the photographs' statistics (mean RGB from (78, 149, 166), the
/// blue-green `frost1.png`, to (201, 205, 215), the white `frost2/3.png`; pixel s.d. 15–27), but
/// the structure only resembles frost: this is the one corruption we cannot match without them.
pub(crate) fn frost_texture(h: usize, w: usize, rng: &mut impl Rng) -> Planes {
    let side = h.max(w).next_power_of_two().max(2);
    let base = ops::plasma_fractal(side, 2.0, |lo, hi| uniform(rng, lo, hi));
    let mut ice = vec![0.0f64; h * w];
    for y in 0..h {
        for x in 0..w {
            ice[y * w + x] = 0.9 + 0.3 * (base[y * side + x] - 0.5);
        }
    }
    let needles = rng.gen_range(6..=14);
    let diag = ((h * h + w * w) as f64).sqrt();
    for _ in 0..needles {
        let (y0, x0) = (uniform(rng, 0.0, h as f64), uniform(rng, 0.0, w as f64));
        let theta = uniform(rng, 0.0, std::f64::consts::PI);
        let len = uniform(rng, 0.2, 0.6) * diag;
        let bright = uniform(rng, 0.1, 0.25);
        draw_needle(&mut ice, h, w, (y0, x0), theta, len, bright);
        for _ in 0..rng.gen_range(2..=5) {
            let t = uniform(rng, -0.5, 0.5) * len;
            let (by, bx) = (y0 + t * theta.sin(), x0 + t * theta.cos());
            let turn = if rng.gen::<bool>() { 1.0 } else { -1.0 } * std::f64::consts::FRAC_PI_3;
            draw_needle(
                &mut ice,
                h,
                w,
                (by, bx),
                theta + turn,
                len * 0.25,
                bright * 0.7,
            );
        }
    }
    let t = rng.gen::<f64>();
    let colour: Vec<f64> = [(78.0, 201.0), (149.0, 205.0), (166.0, 215.0)]
        .iter()
        .map(|(blue_green, white)| blue_green + t * (white - blue_green))
        .collect();
    let mut out = Planes::zeros(h, w, 3);
    for (px, &v) in out.data.chunks_exact_mut(3).zip(&ice) {
        for (o, &c) in px.iter_mut().zip(&colour) {
            *o = (v * c).round().clamp(0.0, 255.0);
        }
    }
    out
}

/// Adds a line of brightness `b` through `centre` at angle `theta`, `len` long, with a
/// one-pixel linear fall-off.
fn draw_needle(
    ice: &mut [f64],
    h: usize,
    w: usize,
    centre: (f64, f64),
    theta: f64,
    len: f64,
    b: f64,
) {
    let (s, c) = theta.sin_cos();
    for y in 0..h {
        for x in 0..w {
            let (dy, dx) = (y as f64 - centre.0, x as f64 - centre.1);
            let along = dx * c + dy * s;
            let across = (-dx * s + dy * c).abs();
            if along.abs() <= len / 2.0 && across < 1.0 {
                ice[y * w + x] += b * (1.0 - across);
            }
        }
    }
}

fn frost(rgb: &[u8], h: usize, w: usize, s: usize, rng: &mut impl Rng) -> Planes {
    let (a, b) = [
        (1.0, 0.2),
        (1.0, 0.3),
        (0.9, 0.4),
        (0.85, 0.4),
        (0.75, 0.45),
    ][s];
    let texture = frost_texture(h, w, rng);
    let data = rgb
        .iter()
        .zip(&texture.data)
        .map(|(&x, &f)| (a * f64::from(x) + b * f).clamp(0.0, 255.0))
        .collect();
    Planes { h, w, c: 3, data }
}

fn fog(mut x: Planes, s: usize, rng: &mut impl Rng) -> Planes {
    let (c, decay) = [(0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)][s];
    let max = x.data.iter().copied().fold(0.0, f64::max);
    let side = x.h.max(x.w).next_power_of_two().max(2);
    let plasma = ops::plasma_fractal(side, decay, |lo, hi| uniform(rng, lo, hi));
    for y in 0..x.h {
        for xx in 0..x.w {
            for k in 0..3 {
                *x.at_mut(y, xx, k) += c * plasma[y * side + xx];
            }
        }
    }
    x.data.iter_mut().for_each(|v| *v = *v * max / (max + c));
    to_255(x)
}

fn brightness(mut x: Planes, s: usize) -> Planes {
    let c = [0.05, 0.1, 0.15, 0.2, 0.3][s];
    for px in x.data.chunks_exact_mut(3) {
        let [h, sat, v] = ops::rgb2hsv([px[0], px[1], px[2]]);
        let rgb = ops::hsv2rgb([h, sat, (v + c).clamp(0.0, 1.0)]);
        px.copy_from_slice(&rgb);
    }
    to_255(x)
}

fn contrast(mut x: Planes, s: usize) -> Planes {
    let c = [0.75, 0.5, 0.4, 0.3, 0.15][s];
    let n = (x.h * x.w) as f64;
    let means: Vec<f64> = (0..3)
        .map(|k| x.data.iter().skip(k).step_by(3).sum::<f64>() / n)
        .collect();
    for px in x.data.chunks_exact_mut(3) {
        for k in 0..3 {
            px[k] = (px[k] - means[k]) * c + means[k];
        }
    }
    to_255(x)
}

fn elastic(x: &Planes, s: usize, rng: &mut impl Rng) -> Planes {
    let side = x.h.min(x.w) as f64; // IMSIZE = 32 in the reference
    let (alpha, sigma, affine) = [
        (0.0, 0.0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ][s];
    let (alpha, sigma, affine) = (side * alpha, side * sigma, side * affine);
    // float32 throughout, as the reference.
    let img = Planes {
        data: x.data.iter().map(|&v| f64::from(v as f32)).collect(),
        ..x.clone()
    };
    let (cx, cy) = ((x.w / 2) as f64, (x.h / 2) as f64);
    let sq = (x.h.min(x.w) / 3) as f64;
    let pts1 = [[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]];
    let mut pts2 = pts1;
    for p in pts2.iter_mut() {
        for v in p.iter_mut() {
            *v = f64::from((*v + uniform(rng, -affine, affine)) as f32);
        }
    }
    let warped = match ops::inverse_affine(pts1, pts2) {
        Some(inv) => ops::warp_affine(&img, inv),
        None => img,
    };
    let mut field = || {
        let mut f = Planes::zeros(x.h, x.w, 1);
        f.data.iter_mut().for_each(|v| *v = uniform(rng, -1.0, 1.0));
        let mut f = ops::gaussian_filter(&f, sigma, Border::Reflect, 3.0);
        f.data
            .iter_mut()
            .for_each(|v| *v = f64::from((*v * alpha) as f32));
        f
    };
    let dx = field();
    let dy = field();
    let mut out = Planes::zeros(x.h, x.w, 3);
    for y in 0..x.h {
        for xx in 0..x.w {
            let sy = y as f64 + dy.at(y, xx, 0);
            let sx = xx as f64 + dx.at(y, xx, 0);
            for k in 0..3 {
                *out.at_mut(y, xx, k) = ops::bilinear(&warped, sy, sx, k, Border::Reflect);
            }
        }
    }
    to_255_f32(out)
}

fn pixelate(rgb: &[u8], h: usize, w: usize, s: usize) -> Vec<u8> {
    let c = [0.95, 0.9, 0.85, 0.75, 0.65][s];
    let (sh, sw) = (((h as f64) * c) as usize, ((w as f64) * c) as usize);
    let (sh, sw) = (sh.max(1), sw.max(1));
    let small = ops::resize_box(rgb, h, w, 3, sh, sw);
    ops::resize_box(&small, sh, sw, 3, h, w)
}

fn jpeg(rgb: &[u8], h: usize, w: usize, s: usize) -> Result<Vec<u8>, DataError> {
    let quality = [80u8, 65, 58, 50, 40][s];
    let mut buf = Vec::new();
    let fail = |e: image::ImageError| DataError::Corruption(format!("jpeg_compression: {e}"));
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .encode(rgb, w as u32, h as u32, image::ColorType::Rgb8)
        .map_err(fail)?;
    let decoded = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
        .map_err(fail)?
        .to_rgb8();
    Ok(decoded.into_raw())
}

#[cfg(test)]
mod tests;
