//! Coefficient packing of a linear step (Cheetah-style): where each input element, weight and
//! output lands in the polynomials, computed identically by both parties from public geometry.
//!
//! Every linear step is viewed as a convolution `[C, H, W] → [M, H', W']` with a `kh × kw`
//! kernel, stride and padding (fc: 1×1 on a 1×1 image; channel scale: a diagonal 1×1). The
//! padded input is cut into row tiles of `rows = th + kh − 1` padded rows, each channel's tile a
//! block of `P = rows · Wp` coefficients. An input polynomial holds `cb` channels (block `i` at
//! `i·P`); a weight polynomial holds, for `mb` output channels, the reversed kernels: entry
//! `(o, c, di, dj)` at `o·cb·P + (cb−1−c)·P + (kh−1−di)·Wp + (kw−1−dj)`. With `mb·cb·P ≤ N` the
//! product's coefficient `o·cb·P + O + y·Wp + x`, `O = (cb−1)·P + (kh−1)·Wp + kw−1`, is exactly
//! the stride-1 output `(o, y, x)` of the tile: every other pair of terms, including the
//! negacyclic wrap-around, lands elsewhere (docs/HE.md has the argument).

use super::HeError;
use crate::plain::{LinearKind, LinearStep};
use crate::rlwe::N;

/// What moving one ciphertext costs on the wire, which the packing minimizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WireCost {
    /// Bytes of one uploaded input ciphertext (seed and compressed `b`).
    pub upload_ct: f64,
    /// Bytes of one modulus-switched reply coefficient.
    pub reply_coef: f64,
}

impl WireCost {
    /// The costs of the context's parameters.
    pub fn of(ctx: &crate::rlwe::Context) -> Self {
        WireCost {
            upload_ct: 32.0 + (N * ctx.upload_bytes) as f64,
            reply_coef: ctx.reply_bits.div_ceil(8) as f64,
        }
    }
}

/// Bytes of traffic one polynomial product is worth (about 30 µs of server time at 1 Gbit/s),
/// so that equal-traffic packings prefer fewer products.
const PRODUCT_COST: f64 = 4096.0;

/// The packing of one linear step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    c: usize,
    m: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    wp: usize,
    out_h: usize,
    out_w: usize,
    /// Stride-1 output rows of the padded input.
    hout1: usize,
    /// Stride-1 output rows per tile.
    th: usize,
    /// Padded rows per tile.
    rows: usize,
    /// Coefficients per channel tile.
    plane: usize,
    /// Channels per input polynomial.
    cb: usize,
    /// Output channels per weight polynomial.
    mb: usize,
    diag: bool,
    /// The weights' own kernel, `(kh_w, kw_w)`, centered at offset `koff` inside the packing
    /// kernel `kh × kw` (smaller only when the step reuses another step's input packing).
    kw_kernel: (usize, usize),
    koff: usize,
}

impl Plan {
    /// The packing of linear step `step` of kind `kind` on an input of `in_len` elements, with
    /// the channel split that moves the fewest bytes under `wire`.
    pub fn new(
        step: usize,
        kind: &LinearKind,
        in_len: usize,
        wire: &WireCost,
    ) -> Result<Plan, HeError> {
        let bad = |why: String| HeError::Geometry { step, why };
        let (c, h, w, m, kh, kw, stride, pad, diag) = match kind {
            LinearKind::Conv(g) => (
                g.in_channels,
                g.in_h,
                g.in_w,
                g.out_channels,
                g.kh,
                g.kw,
                g.stride,
                g.padding,
                false,
            ),
            LinearKind::Fc { out_features } => (in_len, 1, 1, *out_features, 1, 1, 1, 0, false),
            LinearKind::ChannelScale { channels, plane } => {
                (*channels, 1, *plane, *channels, 1, 1, 1, 0, true)
            }
        };
        if c == 0 || m == 0 || h == 0 || w == 0 || kh == 0 || kw == 0 || stride == 0 {
            return Err(bad("empty geometry".into()));
        }
        if c * h * w != in_len {
            return Err(bad(format!(
                "input of {in_len} elements, geometry needs {}",
                c * h * w
            )));
        }
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        if hp < kh || wp < kw {
            return Err(bad("kernel larger than the padded input".into()));
        }
        if kh * wp > N {
            return Err(bad(format!(
                "a {kh}-row strip of the padded input ({wp} wide) exceeds N = {N}"
            )));
        }
        let hout1 = hp - kh + 1;
        let th = hout1.min(N / wp - kh + 1);
        let rows = th + kh - 1;
        let plane = rows * wp;
        let k = N / plane;
        let tiles = hout1.div_ceil(th);
        let (out_h, out_w) = ((hp - kh) / stride + 1, (wp - kw) / stride + 1);
        // Pick the channel split minimizing bytes moved: uploads, plus per reply the whole
        // `c1` and the valid coefficients of `c0`, plus a charge per polynomial product.
        let mut best = (f64::INFINITY, 1, 1);
        for cb in 1..=c.min(k) {
            for mb in 1..=m.min(k / cb) {
                let (ci, mi) = (c.div_ceil(cb) as f64, m.div_ceil(mb) as f64);
                let valid = (mb * out_h * out_w) as f64 / tiles as f64;
                let reply = (N as f64 + valid) * wire.reply_coef;
                let cost =
                    tiles as f64 * (ci * wire.upload_ct + mi * reply + ci * mi * PRODUCT_COST);
                if cost < best.0 {
                    best = (cost, cb, mb);
                }
            }
        }
        Ok(Plan {
            c,
            m,
            h,
            w,
            kh,
            kw,
            stride,
            pad,
            wp,
            out_h,
            out_w,
            hout1,
            th,
            rows,
            plane,
            cb: best.1,
            mb: best.2,
            diag,
            kw_kernel: (kh, kw),
            koff: 0,
        })
    }

    /// The packing of conv step `step` on the input ciphertexts already made for `base` (an
    /// earlier step on the same input), or `None` when they cannot serve: same input geometry,
    /// and a square kernel `k ≤ base.kh` whose padding makes it the centre of base's kernel,
    /// `base.pad − pad = (base.kh − k)/2` (a 1×1 shortcut beside a 3×3 conv with padding 1).
    /// The step is then computed as base's kernel size with zero weights around its own.
    pub fn on_input_of(kind: &LinearKind, base: &Plan, wire: &WireCost) -> Option<Plan> {
        let LinearKind::Conv(g) = kind else {
            return None;
        };
        let fits = !base.diag
            && base.kw_kernel == (base.kh, base.kw)
            && base.kh == base.kw
            && g.kh == g.kw
            && (g.in_channels, g.in_h, g.in_w) == (base.c, base.h, base.w)
            && g.kh <= base.kh
            && (base.kh - g.kh).is_multiple_of(2)
            && g.stride > 0
            && g.out_channels > 0
            && base.pad.checked_sub(g.padding) == Some((base.kh - g.kh) / 2);
        if !fits {
            return None;
        }
        let hp = base.h + 2 * base.pad;
        let (out_h, out_w) = (
            (hp - base.kh) / g.stride + 1,
            (base.wp - base.kw) / g.stride + 1,
        );
        debug_assert_eq!((out_h, out_w), (g.out_h(), g.out_w()));
        let (m, k, tiles) = (g.out_channels, N / base.plane, base.tiles());
        // The input split is fixed (base's); pick the output split for bytes.
        let mut best = (f64::INFINITY, 1);
        for mb in 1..=m.min(k / base.cb) {
            let mi = m.div_ceil(mb) as f64;
            let valid = (mb * out_h * out_w) as f64 / tiles as f64;
            let cost = tiles as f64
                * (mi * (N as f64 + valid) * wire.reply_coef
                    + base.c_blocks() as f64 * mi * PRODUCT_COST);
            if cost < best.0 {
                best = (cost, mb);
            }
        }
        Some(Plan {
            m,
            stride: g.stride,
            out_h,
            out_w,
            mb: best.1,
            kw_kernel: (g.kh, g.kw),
            koff: (base.kh - g.kh) / 2,
            ..base.clone()
        })
    }

    /// Row tiles.
    pub fn tiles(&self) -> usize {
        self.hout1.div_ceil(self.th)
    }
    /// Input-channel blocks.
    pub fn c_blocks(&self) -> usize {
        self.c.div_ceil(self.cb)
    }
    /// Output-channel blocks.
    pub fn m_blocks(&self) -> usize {
        self.m.div_ceil(self.mb)
    }
    /// Input ciphertexts (tile-major).
    pub fn input_cts(&self) -> usize {
        self.tiles() * self.c_blocks()
    }
    /// Output ciphertexts (tile-major).
    pub fn output_cts(&self) -> usize {
        self.tiles() * self.m_blocks()
    }
    /// Index of the input ciphertext of `tile` and channel block `cb`.
    pub fn input_index(&self, tile: usize, cb: usize) -> usize {
        tile * self.c_blocks() + cb
    }
    /// Output elements.
    pub fn out_len(&self) -> usize {
        self.m * self.out_h * self.out_w
    }
    /// The largest L1 norm, over output channels, of one channel's weights: it bounds the
    /// integer message `Σ w·m` at an output coefficient, hence the `(q mod t)·k` rounding term.
    pub fn max_output_l1(&self, weights: &[i64]) -> f64 {
        self.channel_l1(weights).into_iter().fold(0.0, f64::max)
    }

    /// The largest L1 norm, over output-channel blocks, of the block's weights (all `mb`
    /// channels): every coefficient of a weight polynomial meets some input coefficient's noise
    /// at every output position, padding and unused positions included, so this — not one
    /// channel's norm — bounds how the inputs' noise grows at an output coefficient.
    pub fn max_block_l1(&self, weights: &[i64]) -> f64 {
        self.channel_l1(weights)
            .chunks(self.mb)
            .map(|b| b.iter().sum::<f64>())
            .fold(0.0, f64::max)
    }

    fn channel_l1(&self, weights: &[i64]) -> Vec<f64> {
        let per = (weights.len() / self.m.max(1)).max(1);
        weights
            .chunks(per)
            .map(|w| w.iter().map(|&v| v.unsigned_abs() as f64).sum::<f64>())
            .collect()
    }

    /// Elements of the step's input.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// The plaintext polynomials of the client's share, in input-ciphertext order.
    pub fn pack_input(&self, x: &[u64]) -> Vec<Vec<u64>> {
        let mut out = Vec::with_capacity(self.input_cts());
        for tile in 0..self.tiles() {
            let y0 = tile * self.th;
            for cbk in 0..self.c_blocks() {
                let mut poly = vec![0u64; N];
                for cl in 0..self.cb {
                    let c = cbk * self.cb + cl;
                    if c >= self.c {
                        break;
                    }
                    for r in 0..self.rows {
                        let Some(hh) = (y0 + r).checked_sub(self.pad).filter(|&v| v < self.h)
                        else {
                            continue;
                        };
                        for ww in 0..self.w {
                            poly[cl * self.plane + r * self.wp + ww + self.pad] =
                                x[(c * self.h + hh) * self.w + ww];
                        }
                    }
                }
                out.push(poly);
            }
        }
        out
    }

    /// The centered weights `[M][C][kh][kw]` (a channel scale expanded to its diagonal).
    pub fn centered_weights(&self, lin: &LinearStep, ell: u32) -> Vec<i64> {
        let center = |v: u64| -> i64 {
            if ell == 64 {
                v as i64
            } else if v >= 1u64 << (ell - 1) {
                v as i64 - (1i64 << (ell - 1)) * 2
            } else {
                v as i64
            }
        };
        if self.diag {
            let mut out = vec![0i64; self.c * self.m];
            for (c, &v) in lin.weight.iter().enumerate().take(self.c) {
                out[c * self.c + c] = center(v);
            }
            out
        } else {
            lin.weight.iter().map(|&v| center(v)).collect()
        }
    }

    /// The weight polynomial of output block `mbk` and input block `cbk` (signed
    /// coefficients), or `None` when the block is zero by the step's public structure (the
    /// off-diagonal blocks of a channel scale). A block whose weights merely happen to be zero
    /// is still returned, so the server's work does not depend on the weights' values.
    pub fn weight_poly(&self, weights: &[i64], mbk: usize, cbk: usize) -> Option<Vec<i64>> {
        let (o0, c0) = (mbk * self.mb, cbk * self.cb);
        if self.diag && (o0 + self.mb <= c0 || c0 + self.cb <= o0) {
            return None;
        }
        let mut poly = vec![0i64; N];
        let (kh_w, kw_w) = self.kw_kernel;
        let ksz = kh_w * kw_w;
        for ol in 0..self.mb {
            let o = o0 + ol;
            if o >= self.m {
                break;
            }
            for cl in 0..self.cb {
                let c = c0 + cl;
                if c >= self.c {
                    break;
                }
                let base = ol * self.cb * self.plane + (self.cb - 1 - cl) * self.plane;
                for di in 0..kh_w {
                    for dj in 0..kw_w {
                        let (pi, pj) = (di + self.koff, dj + self.koff);
                        poly[base + (self.kh - 1 - pi) * self.wp + (self.kw - 1 - pj)] =
                            weights[(o * self.c + c) * ksz + di * kw_w + dj];
                    }
                }
            }
        }
        Some(poly)
    }

    /// For output ciphertext `k` (tile-major), the `(coefficient, output index)` pairs it holds.
    pub fn outputs(&self, k: usize) -> Vec<(usize, usize)> {
        let (tile, mbk) = (k / self.m_blocks(), k % self.m_blocks());
        let y0 = tile * self.th;
        let base = (self.cb - 1) * self.plane + (self.kh - 1) * self.wp + (self.kw - 1);
        let mut out = Vec::new();
        for ol in 0..self.mb {
            let o = mbk * self.mb + ol;
            if o >= self.m {
                break;
            }
            for yy in 0..self.th {
                let y = y0 + yy;
                if y >= self.hout1
                    || !y.is_multiple_of(self.stride)
                    || y / self.stride >= self.out_h
                {
                    continue;
                }
                for ox in 0..self.out_w {
                    let x = ox * self.stride;
                    let coef = ol * self.cb * self.plane + base + yy * self.wp + x;
                    out.push((coef, (o * self.out_h + y / self.stride) * self.out_w + ox));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::kernels::ConvGeometry;

    const TEST_WIRE: WireCost = WireCost {
        upload_ct: 155_680.0,
        reply_coef: 10.0,
    };

    /// Negacyclic product over the integers, for checking the packing in the clear.
    fn negacyclic(a: &[i128], b: &[i64]) -> Vec<i128> {
        let mut out = vec![0i128; N];
        for (j, &bj) in b.iter().enumerate() {
            if bj == 0 {
                continue;
            }
            for (i, &ai) in a.iter().enumerate() {
                if ai == 0 {
                    continue;
                }
                let k = i + j;
                if k < N {
                    out[k] += ai * bj as i128;
                } else {
                    out[k - N] -= ai * bj as i128;
                }
            }
        }
        out
    }

    fn check(kind: LinearKind, in_len: usize, wlen: usize) {
        let plan = Plan::new(0, &kind, in_len, &TEST_WIRE).unwrap();
        check_plan(&plan, kind, in_len, wlen);
    }

    fn check_plan(plan: &Plan, kind: LinearKind, in_len: usize, wlen: usize) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let x: Vec<u64> = (0..in_len).map(|_| rng.gen_range(0..1000)).collect();
        let weight: Vec<u64> = (0..wlen).map(|_| rng.gen_range(0..50)).collect();
        let lin = LinearStep {
            kind,
            weight,
            bias: vec![],
            input_trunc: 0,
        };
        let ring = crate::ring::Ring::new(64, 12).unwrap();
        let want = lin.apply(&ring, &x);
        let ws = plan.centered_weights(&lin, 64);
        let polys = plan.pack_input(&x);
        let mut got = vec![u64::MAX; plan.out_len()];
        for k in 0..plan.output_cts() {
            let (tile, mbk) = (k / plan.m_blocks(), k % plan.m_blocks());
            let mut acc = vec![0i128; N];
            for cbk in 0..plan.c_blocks() {
                if let Some(w) = plan.weight_poly(&ws, mbk, cbk) {
                    let a: Vec<i128> = polys[plan.input_index(tile, cbk)]
                        .iter()
                        .map(|&v| v as i128)
                        .collect();
                    for (s, v) in acc.iter_mut().zip(negacyclic(&a, &w)) {
                        *s += v;
                    }
                }
            }
            for (coef, idx) in plan.outputs(k) {
                got[idx] = acc[coef] as u64;
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn packing_computes_convolutions() {
        for (c, h, m, k, s, p) in [(3, 8, 5, 3, 1, 1), (4, 9, 6, 3, 2, 1), (5, 6, 3, 1, 2, 0)] {
            let g = ConvGeometry {
                in_channels: c,
                in_h: h,
                in_w: h,
                out_channels: m,
                kh: k,
                kw: k,
                stride: s,
                padding: p,
            };
            check(LinearKind::Conv(g), c * h * h, m * c * k * k);
        }
    }

    #[test]
    fn a_shortcut_reuses_the_input_packing_of_its_sibling_conv() {
        let conv = |k: usize, stride: usize, padding: usize, out: usize| ConvGeometry {
            in_channels: 5,
            in_h: 10,
            in_w: 10,
            out_channels: out,
            kh: k,
            kw: k,
            stride,
            padding,
        };
        let base = Plan::new(0, &LinearKind::Conv(conv(3, 2, 1, 4)), 500, &TEST_WIRE).unwrap();
        let sc = LinearKind::Conv(conv(1, 2, 0, 6));
        let plan = Plan::on_input_of(&sc, &base, &TEST_WIRE).expect("compatible");
        assert_eq!(plan.pack_input(&[1; 500]), base.pack_input(&[1; 500]));
        check_plan(&plan, sc, 500, 6 * 5);
        // Same geometry at stride 1 and a 3×3 on a 3×3 share too; mismatched padding does not.
        assert!(
            Plan::on_input_of(&LinearKind::Conv(conv(3, 1, 1, 2)), &base, &TEST_WIRE).is_some()
        );
        assert!(
            Plan::on_input_of(&LinearKind::Conv(conv(1, 1, 1, 2)), &base, &TEST_WIRE).is_none()
        );
        let fc = LinearKind::Fc { out_features: 3 };
        assert!(Plan::on_input_of(&fc, &base, &TEST_WIRE).is_none());
    }

    #[test]
    fn a_shortcut_reuses_a_multi_tile_packing() {
        // 3 × 100 × 90: a 92-wide padded row gives several row tiles.
        let conv = |k: usize, padding: usize, out: usize| ConvGeometry {
            in_channels: 3,
            in_h: 100,
            in_w: 90,
            out_channels: out,
            kh: k,
            kw: k,
            stride: 2,
            padding,
        };
        let n = 3 * 100 * 90;
        let base = Plan::new(0, &LinearKind::Conv(conv(3, 1, 2)), n, &TEST_WIRE).unwrap();
        assert!(base.tiles() > 1);
        let sc = LinearKind::Conv(conv(1, 0, 4));
        let plan = Plan::on_input_of(&sc, &base, &TEST_WIRE).expect("compatible");
        check_plan(&plan, sc, n, 4 * 3);
    }

    #[test]
    fn the_noise_factor_counts_every_channel_of_a_weight_block() {
        let g = ConvGeometry {
            in_channels: 16,
            in_h: 4,
            in_w: 4,
            out_channels: 32,
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
        };
        let plan = Plan::new(0, &LinearKind::Conv(g), 16 * 16, &TEST_WIRE).unwrap();
        assert!(plan.mb > 1, "the test needs several channels per block");
        let ones = vec![1i64; 32 * 16 * 9];
        assert_eq!(plan.max_output_l1(&ones), (16 * 9) as f64);
        assert_eq!(plan.max_block_l1(&ones), (plan.mb * 16 * 9) as f64);
    }

    #[test]
    fn packing_tiles_tall_images() {
        // 2 × 120 × 100 forces several row tiles (a 100-wide row, N = 8192).
        let g = ConvGeometry {
            in_channels: 2,
            in_h: 120,
            in_w: 100,
            out_channels: 2,
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
        };
        let plan = Plan::new(0, &LinearKind::Conv(g), 2 * 120 * 100, &TEST_WIRE).unwrap();
        assert!(plan.tiles() > 1);
        check(LinearKind::Conv(g), 2 * 120 * 100, 2 * 2 * 9);
    }

    #[test]
    fn packing_computes_fc_and_scale() {
        check(LinearKind::Fc { out_features: 7 }, 40, 280);
        check(
            LinearKind::ChannelScale {
                channels: 3,
                plane: 10,
            },
            30,
            3,
        );
    }

    #[test]
    fn skipped_blocks_depend_on_structure_not_on_weight_values() {
        // All-zero conv weights: every block is still computed (no timing signal).
        let g = ConvGeometry {
            in_channels: 8,
            in_h: 8,
            in_w: 8,
            out_channels: 8,
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
        };
        let plan = Plan::new(0, &LinearKind::Conv(g), 8 * 64, &TEST_WIRE).unwrap();
        let zeros = vec![0i64; 8 * 8 * 9];
        for mbk in 0..plan.m_blocks() {
            for cbk in 0..plan.c_blocks() {
                assert!(plan.weight_poly(&zeros, mbk, cbk).is_some());
            }
        }
        // A channel scale skips exactly the off-diagonal blocks, whatever the weights.
        let kind = LinearKind::ChannelScale {
            channels: 600,
            plane: 16,
        };
        let plan = Plan::new(0, &kind, 600 * 16, &TEST_WIRE).unwrap();
        assert!(plan.c_blocks() > 1, "the test needs several blocks");
        let ones = vec![1i64; 600 * 600];
        let mut computed = 0;
        for mbk in 0..plan.m_blocks() {
            for cbk in 0..plan.c_blocks() {
                let w = plan.weight_poly(&ones, mbk, cbk);
                let overlaps = (mbk * plan.mb..(mbk + 1) * plan.mb)
                    .any(|o| (cbk * plan.cb..(cbk + 1) * plan.cb).contains(&o));
                assert_eq!(w.is_some(), overlaps);
                computed += w.is_some() as usize;
            }
        }
        assert!(computed < plan.m_blocks() * plan.c_blocks());
    }

    #[test]
    fn impossible_geometry_is_refused() {
        let g = ConvGeometry {
            in_channels: 1,
            in_h: 4,
            in_w: 9000,
            out_channels: 1,
            kh: 1,
            kw: 1,
            stride: 1,
            padding: 0,
        };
        assert!(Plan::new(0, &LinearKind::Conv(g), 36000, &TEST_WIRE).is_err());
        assert!(Plan::new(0, &LinearKind::Fc { out_features: 2 }, 0, &TEST_WIRE).is_err());
    }
}
