//! Batched floating-point inference and input gradients over a [`Network`].
//!
//! A batch is `N` images in NCHW order, flat. The forward pass runs every op once for the whole
//! batch: convolutions as one GEMM per chunk of images ([`kernels::conv2d_batch`]), linear
//! layers image by image, elementwise ops in place and in parallel over images. A value is
//! dropped after its last reader (`model::walk`'s [`last_uses`]), and an elementwise op
//! overwrites its input when nothing reads it later, so the batch's memory is a few activations,
//! not the whole network.
//!
//! Every image's result is the same whatever batch it is in, bit for bit: each op is per image
//! or sums in an order that does not depend on the batch (see `linear_rows`), so sharded and
//! batched evaluations, PGD included, count the same images as one image at a time.
//!
//! The backward pass gives `∂(Σ_n g_n · logits_n)/∂pixels` for any upstream gradient `g` on the
//! logits, in particular the cross-entropy gradient ([`FloatNet::loss_grad`]). It needs no
//! activation: convolutions and linear layers only their weights, so the forward pass records on
//! a [`Tape`] only which elements a ReLU passes gradient through and where each max-pool window
//! took its maximum.
//!
//! Both passes compute in any [`Real`] (`f32` as PyTorch does; `f64` for the finite-difference
//! tests) and agree per image with [`crate::plain::forward_f32`], the one-image reference.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::{Add, Div, Mul, Sub};

use rayon::prelude::*;

use super::EvalError;
use crate::model::card::MapValue;
use crate::model::walk::{last_uses, slot, StepRef};
use crate::model::{Network, Op, Preprocessing, PreprocessingError, Shape};
use crate::plain::conv_geometry;
use crate::ring::kernels::{self, ConvGeometry, Elem};

/// A floating-point element the evaluator computes in: `f32` or `f64`.
pub trait Real:
    Elem
    + MapValue
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
{
    /// 0.
    const ZERO: Self;
    /// −∞ (what max pooling's padding holds).
    const NEG_INFINITY: Self;
    /// Conversion from `f32` (exact for both types).
    fn from_f32(v: f32) -> Self;
    /// Conversion from `f64` (rounded to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Conversion to `f64` (exact).
    fn to_f64(self) -> f64;
    /// `max(self, 0)` as `f32::max` computes it.
    fn relu(self) -> Self;
    /// Network weights (stored as `f32`) in this type: borrowed for `f32`, converted for `f64`.
    fn cast(v: &[f32]) -> Cow<'_, [Self]>;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn relu(self) -> Self {
        self.max(0.0)
    }
    fn cast(v: &[f32]) -> Cow<'_, [Self]> {
        Cow::Borrowed(v)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn relu(self) -> Self {
        self.max(0.0)
    }
    fn cast(v: &[f32]) -> Cow<'_, [Self]> {
        Cow::Owned(v.iter().map(|&x| x as f64).collect())
    }
}

/// Channels and elements per channel of an input of this shape (a flat input is one channel),
/// as [`Preprocessing`] maps it.
fn layout(shape: Shape) -> (usize, usize) {
    match shape {
        Shape::Chw(c, h, w) => (c, h * w),
        Shape::Flat(n) => (1, n),
    }
}

fn preprocess_error(e: PreprocessingError) -> EvalError {
    EvalError::Preprocess { reason: e.0 }
}

/// One op with its geometry resolved and checked, so the passes never index out of bounds.
#[derive(Clone, Debug)]
enum Step {
    Conv(ConvGeometry, Transposed),
    Linear {
        in_features: usize,
        out_features: usize,
    },
    Affine {
        channels: usize,
        plane: usize,
    },
    Relu,
    Add,
    AvgPool(Pool),
    MaxPool(Pool),
    Flatten,
}

/// How the backward pass of a convolution runs. A stride-1 convolution with a square kernel
/// and padding `p ≤ k − 1` has as input gradient the convolution of the output gradient with the
/// kernel flipped in space and transposed in channels, padding `k − 1 − p`: the same GEMM shape
/// as the forward pass (long inner dimension `O·k²`), gathering im2col columns instead of
/// scattering `col2im` ones, which is about twice as fast as the generic adjoint. Other
/// convolutions use [`kernels::conv2d_backward_input_batch`].
#[derive(Clone, Debug)]
enum Transposed {
    /// The generic adjoint.
    Adjoint,
    /// The flipped-kernel convolution: its geometry, and its weights once a backward pass
    /// needed them.
    Flipped(ConvGeometry, std::sync::OnceLock<Vec<f32>>),
}

impl Transposed {
    fn plan(g: &ConvGeometry) -> Transposed {
        if g.stride == 1 && g.kh == g.kw && g.padding < g.kh {
            let back = ConvGeometry {
                in_channels: g.out_channels,
                in_h: g.out_h(),
                in_w: g.out_w(),
                out_channels: g.in_channels,
                kh: g.kh,
                kw: g.kw,
                stride: 1,
                padding: g.kh - 1 - g.padding,
            };
            Transposed::Flipped(back, std::sync::OnceLock::new())
        } else {
            Transposed::Adjoint
        }
    }
}

/// `W'[c, o, i, j] = W[o, c, kh − 1 − i, kw − 1 − j]` for `W [O, C, kh, kw]`.
fn flip_kernel(w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (o_n, c_n, kh, kw) = (g.out_channels, g.in_channels, g.kh, g.kw);
    let mut out = vec![0f32; w.len()];
    for o in 0..o_n {
        for c in 0..c_n {
            for i in 0..kh {
                for j in 0..kw {
                    out[((c * o_n + o) * kh + i) * kw + j] =
                        w[((o * c_n + c) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                }
            }
        }
    }
    out
}

/// A pooling window over `planes` planes of `h × w` per image.
#[derive(Clone, Copy, Debug)]
struct Pool {
    planes: usize,
    h: usize,
    w: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    oh: usize,
    ow: usize,
}

impl Pool {
    /// The input positions of output `(oy, ox)`'s window inside the plane, in scan order
    /// (padding skipped).
    #[inline]
    fn window(&self, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
        let (y0, x0) = (
            (oy * self.stride) as isize - self.padding as isize,
            (ox * self.stride) as isize - self.padding as isize,
        );
        (0..self.kernel).flat_map(move |ky| {
            (0..self.kernel).filter_map(move |kx| {
                let (iy, ix) = (y0 + ky as isize, x0 + kx as isize);
                (iy >= 0 && ix >= 0 && (iy as usize) < self.h && (ix as usize) < self.w)
                    .then(|| iy as usize * self.w + ix as usize)
            })
        })
    }
}

/// A planned layer: its step, the value slots it reads (0 is the input, `i + 1` layer `i`) and
/// elements per image in and out.
#[derive(Clone, Debug)]
struct Planned {
    step: Step,
    inputs: Vec<usize>,
    in_len: usize,
    out_len: usize,
}

/// What the backward pass needs from one layer's forward pass.
#[derive(Clone, Debug, Default)]
enum Saved {
    #[default]
    Nothing,
    /// Per element: does gradient flow through this ReLU site (kept and positive, or linearized)?
    Pass(Vec<bool>),
    /// Per pooled output: the input index (within its plane) that held the maximum.
    Argmax(Vec<u32>),
}

/// What a forward pass recorded for the backward pass of the same batch: ReLU pass flags and
/// max-pool positions only (a bit more than one byte per ReLU element).
#[derive(Debug)]
pub struct Tape {
    images: usize,
    saved: Vec<Saved>,
}

impl Tape {
    /// Images in the batch this tape was recorded on.
    pub fn images(&self) -> usize {
        self.images
    }
}

/// The logits, per-image cross-entropy losses and input gradient of one batch.
#[derive(Clone, Debug)]
pub struct LossGrad<T> {
    /// `[N, classes]`.
    pub logits: Vec<T>,
    /// Cross-entropy of each image's logits against its label.
    pub loss: Vec<f64>,
    /// `∂(Σ_n loss_n)/∂pixels`, `[N, C, H, W]`: the loss is summed over the batch, so each
    /// image's gradient is its own loss's gradient, whatever the batch.
    pub grad: Vec<T>,
}

/// A network ready for batched evaluation in `T` (`f32` unless said otherwise), with its input
/// preprocessing.
#[derive(Clone, Debug)]
pub struct FloatNet<'a, T: Real = f32> {
    net: &'a Network,
    pre: Preprocessing,
    plan: Vec<Planned>,
    /// Per value slot ([`slot`]), its last reader ([`last_uses`]).
    last_use: Vec<Option<StepRef>>,
    output: usize,
    in_len: usize,
    classes: usize,
    _t: PhantomData<T>,
}

impl<'a, T: Real> FloatNet<'a, T> {
    /// Plans `net` for batched evaluation behind `pre`, checking every layer's geometry.
    pub fn new(net: &'a Network, pre: Preprocessing) -> Result<Self, EvalError> {
        pre.validate(layout(net.input_shape).0)
            .map_err(preprocess_error)?;
        let mut plan = Vec::with_capacity(net.layers.len());
        for (i, layer) in net.layers.iter().enumerate() {
            let bad = |reason: String| EvalError::Malformed {
                index: i,
                layer: layer.name.clone(),
                kind: layer.op.kind(),
                reason,
            };
            let arity = if matches!(layer.op, Op::Add) { 2 } else { 1 };
            if layer.inputs.len() != arity {
                return Err(bad(format!(
                    "reads {} values, expected {arity}",
                    layer.inputs.len()
                )));
            }
            let mut inputs = Vec::with_capacity(arity);
            for &v in &layer.inputs {
                let s = slot(v);
                if s > i {
                    return Err(bad(format!("reads {v:?}, which is not computed before it")));
                }
                inputs.push(s);
            }
            let in_shape = net.shape_of(layer.inputs[0]);
            let (in_len, out_len) = (in_shape.elements(), layer.out_shape.elements());
            let chw = || match in_shape {
                Shape::Chw(c, h, w) => Ok((c, h, w)),
                Shape::Flat(_) => Err(bad("needs a [C, H, W] input, got a flat one".into())),
            };
            let same_len = || {
                (in_len == out_len)
                    .then_some(())
                    .ok_or_else(|| bad(format!("input has {in_len} elements, output {out_len}")))
            };
            let step = match &layer.op {
                Op::Conv2d(c) => {
                    let (ci, h, w) = chw()?;
                    let g = conv_geometry(c, (ci, h, w));
                    if c.in_channels != ci
                        || g.kh == 0
                        || g.kw == 0
                        || g.stride == 0
                        || h + 2 * g.padding < g.kh
                        || w + 2 * g.padding < g.kw
                    {
                        return Err(bad(format!("kernel {:?} stride {} padding {} does not fit a {ci}-channel {h}×{w} input declared as {} channels", c.kernel, c.stride, c.padding, c.in_channels)));
                    }
                    if c.weight.len() != g.out_channels * g.patch_len()
                        || c.bias.len() != g.out_channels
                    {
                        return Err(bad("weight or bias size differs from the geometry".into()));
                    }
                    if layer.out_shape != Shape::Chw(g.out_channels, g.out_h(), g.out_w()) {
                        return Err(bad(format!(
                            "declared output {:?}, the convolution gives [{}, {}, {}]",
                            layer.out_shape,
                            g.out_channels,
                            g.out_h(),
                            g.out_w()
                        )));
                    }
                    Step::Conv(g, Transposed::plan(&g))
                }
                Op::Linear(l) => {
                    if l.in_features != in_len
                        || l.out_features != out_len
                        || l.weight.len() != l.in_features * l.out_features
                        || l.bias.len() != l.out_features
                    {
                        return Err(bad(format!("{} → {} with {in_len} inputs and {out_len} outputs, or weight/bias sizes that differ", l.in_features, l.out_features)));
                    }
                    Step::Linear {
                        in_features: l.in_features,
                        out_features: l.out_features,
                    }
                }
                Op::ChannelAffine(a) => {
                    let (c, h, w) = chw()?;
                    same_len()?;
                    if a.scale.len() != c || a.shift.len() != c {
                        return Err(bad(format!(
                            "parameters for {} channels, input has {c}",
                            a.scale.len()
                        )));
                    }
                    Step::Affine {
                        channels: c,
                        plane: h * w,
                    }
                }
                Op::Relu { mask, .. } => {
                    same_len()?;
                    if let Some(m) = mask {
                        if m.keep.len() != in_len {
                            return Err(bad(format!(
                                "mask has {} elements, the activation {in_len}",
                                m.keep.len()
                            )));
                        }
                    }
                    Step::Relu
                }
                Op::Add => {
                    let other = net.shape_of(layer.inputs[1]).elements();
                    same_len()?;
                    if other != in_len {
                        return Err(bad(format!("adds {in_len} to {other} elements")));
                    }
                    Step::Add
                }
                Op::AvgPool { kernel, stride } | Op::MaxPool { kernel, stride, .. } => {
                    let padding = match layer.op {
                        Op::MaxPool { padding, .. } => padding,
                        _ => 0,
                    };
                    let (c, h, w) = chw()?;
                    if *kernel == 0
                        || *stride == 0
                        || h + 2 * padding < *kernel
                        || w + 2 * padding < *kernel
                        || 2 * padding > *kernel
                    {
                        return Err(bad(format!("kernel {kernel} stride {stride} padding {padding} does not fit {h}×{w}")));
                    }
                    let pool = Pool {
                        planes: c,
                        h,
                        w,
                        kernel: *kernel,
                        stride: *stride,
                        padding,
                        oh: (h + 2 * padding - kernel) / stride + 1,
                        ow: (w + 2 * padding - kernel) / stride + 1,
                    };
                    if layer.out_shape != Shape::Chw(c, pool.oh, pool.ow) {
                        return Err(bad(format!(
                            "declared output {:?}, pooling gives [{c}, {}, {}]",
                            layer.out_shape, pool.oh, pool.ow
                        )));
                    }
                    if matches!(layer.op, Op::MaxPool { .. }) {
                        Step::MaxPool(pool)
                    } else {
                        Step::AvgPool(pool)
                    }
                }
                Op::Flatten => {
                    same_len()?;
                    Step::Flatten
                }
            };
            plan.push(Planned {
                step,
                inputs,
                in_len,
                out_len,
            });
        }
        let output = slot(net.output);
        if output > net.layers.len() {
            return Err(EvalError::Malformed {
                index: net.layers.len(),
                layer: "output".into(),
                kind: "output",
                reason: format!("the output {:?} is not a value of the network", net.output),
            });
        }
        Ok(FloatNet {
            net,
            pre,
            plan,
            last_use: last_uses(net),
            output,
            in_len: net.input_shape.elements(),
            classes: net.shape_of(net.output).elements(),
            _t: PhantomData,
        })
    }

    /// The network.
    pub fn network(&self) -> &'a Network {
        self.net
    }

    /// The input preprocessing.
    pub fn preprocess(&self) -> &Preprocessing {
        &self.pre
    }

    /// The network input of a batch of \[0,1\] `pixels`: the preprocessing applied to a copy.
    pub fn network_input(&self, pixels: &[T]) -> Result<Vec<T>, EvalError> {
        let (channels, plane) = layout(self.net.input_shape);
        let mut x = pixels.to_vec();
        self.pre
            .apply(&mut x, channels, plane)
            .map_err(preprocess_error)?;
        Ok(x)
    }

    /// Values per image (`C · H · W`).
    pub fn image_len(&self) -> usize {
        self.in_len
    }

    /// Logits per image.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Images in a pixel buffer of `len` values.
    pub fn images(&self, len: usize) -> Result<usize, EvalError> {
        if len == 0 || self.in_len == 0 || !len.is_multiple_of(self.in_len) {
            return Err(EvalError::InputSize {
                got: len,
                per_image: self.in_len,
                shape: self.net.input_shape.dims(),
            });
        }
        Ok(len / self.in_len)
    }

    /// The logits `[N, classes]` of a batch of `N` images of \[0,1\] pixels (before
    /// preprocessing), `[N, C, H, W]` flat.
    pub fn logits(&self, pixels: &[T]) -> Result<Vec<T>, EvalError> {
        self.run(pixels, None)
    }

    /// The logits, and the tape [`FloatNet::backward`] needs.
    pub fn forward_taped(&self, pixels: &[T]) -> Result<(Vec<T>, Tape), EvalError> {
        let mut saved = vec![Saved::Nothing; self.plan.len()];
        let logits = self.run(pixels, Some(&mut saved))?;
        let images = logits.len() / self.classes.max(1);
        Ok((logits, Tape { images, saved }))
    }

    /// The logits, per-image cross-entropy losses against `labels` (one per image) and the
    /// gradient of their sum with respect to the pixels.
    pub fn loss_grad(&self, pixels: &[T], labels: &[usize]) -> Result<LossGrad<T>, EvalError> {
        let images = self.images(pixels.len())?;
        check_labels(labels, images, self.classes)?;
        let (logits, tape) = self.forward_taped(pixels)?;
        let (loss, grad_logits) = cross_entropy(&logits, self.classes, labels)?;
        let grad = self.backward(tape, &grad_logits)?;
        Ok(LossGrad { logits, loss, grad })
    }

    /// One forward pass; records on `tape` when given.
    fn run(&self, pixels: &[T], mut tape: Option<&mut [Saved]>) -> Result<Vec<T>, EvalError> {
        let images = self.images(pixels.len())?;
        let mut vals: Vec<Option<Vec<T>>> = vec![None; self.plan.len() + 1];
        vals[0] = Some(self.network_input(pixels)?);
        for (i, (p, layer)) in self.plan.iter().zip(&self.net.layers).enumerate() {
            let out = match (&p.step, &layer.op) {
                (Step::Conv(g, _), Op::Conv2d(c)) => kernels::conv2d_batch(
                    self.value(&vals, p.inputs[0]),
                    images,
                    &T::cast(&c.weight),
                    Some(&T::cast(&c.bias)),
                    g,
                ),
                (
                    Step::Linear {
                        in_features,
                        out_features,
                    },
                    Op::Linear(l),
                ) => linear_rows(
                    self.value(&vals, p.inputs[0]),
                    &T::cast(&l.weight),
                    &T::cast(&l.bias),
                    *in_features,
                    *out_features,
                ),
                (Step::Affine { channels, plane }, Op::ChannelAffine(a)) => {
                    let mut x = self.take(&mut vals, p.inputs[0], i);
                    let (scale, shift) = (T::cast(&a.scale), T::cast(&a.shift));
                    x.par_chunks_mut(*plane).enumerate().for_each(|(k, pl)| {
                        let (s, b) = (scale[k % channels], shift[k % channels]);
                        pl.iter_mut().for_each(|v| *v = *v * s + b);
                    });
                    x
                }
                (Step::Relu, Op::Relu { mask, .. }) => {
                    let mut x = self.take(&mut vals, p.inputs[0], i);
                    let keep = mask.as_ref().map(|m| &m.keep[..]);
                    match tape.as_deref_mut() {
                        None => relu_forward(&mut x, p.in_len, keep),
                        Some(t) => t[i] = Saved::Pass(relu_forward_taped(&mut x, p.in_len, keep)),
                    }
                    x
                }
                (Step::Add, Op::Add) => self.add(&mut vals, p, i),
                (Step::AvgPool(pool), Op::AvgPool { .. }) => {
                    avg_pool(self.value(&vals, p.inputs[0]), images, pool)
                }
                (Step::MaxPool(pool), Op::MaxPool { .. }) => {
                    let (out, arg) = max_pool(self.value(&vals, p.inputs[0]), images, pool);
                    if let Some(t) = tape.as_deref_mut() {
                        t[i] = Saved::Argmax(arg);
                    }
                    out
                }
                (Step::Flatten, Op::Flatten) => self.take(&mut vals, p.inputs[0], i),
                _ => unreachable!("the plan is built from these layers"),
            };
            debug_assert_eq!(out.len(), images * p.out_len);
            for &s in &p.inputs {
                if self.last_use[s] == Some(StepRef::Step(i)) {
                    vals[s] = None;
                }
            }
            if self.last_use[i + 1].is_some() {
                vals[i + 1] = Some(out);
            }
        }
        Ok(vals[self.output].take().expect("the output is kept"))
    }

    fn value<'v>(&self, vals: &'v [Option<Vec<T>>], s: usize) -> &'v [T] {
        vals[s]
            .as_deref()
            .expect("a value is kept until its last reader")
    }

    /// Slot `s` for layer `i` to overwrite: moved out when `i` is its only remaining reader,
    /// copied otherwise.
    fn take(&self, vals: &mut [Option<Vec<T>>], s: usize, i: usize) -> Vec<T> {
        let readers = self.plan[i].inputs.iter().filter(|&&x| x == s).count();
        if self.last_use[s] == Some(StepRef::Step(i)) && readers == 1 {
            vals[s]
                .take()
                .expect("a value is kept until its last reader")
        } else {
            self.value(vals, s).to_vec()
        }
    }

    /// `a + b`, written into whichever operand is free.
    fn add(&self, vals: &mut [Option<Vec<T>>], p: &Planned, i: usize) -> Vec<T> {
        let (a, b) = (p.inputs[0], p.inputs[1]);
        let (mut acc, other) = if a == b {
            (self.take(vals, a, i), a)
        } else if self.last_use[b] == Some(StepRef::Step(i))
            && self.last_use[a] != Some(StepRef::Step(i))
        {
            // IEEE addition commutes exactly, so b + a is a + b.
            (self.take(vals, b, i), a)
        } else {
            (self.take(vals, a, i), b)
        };
        let y = self.value(vals, other);
        acc.par_chunks_mut(p.in_len)
            .zip(y.par_chunks(p.in_len))
            .for_each(|(x, y)| x.iter_mut().zip(y).for_each(|(x, &y)| *x = *x + y));
        acc
    }

    /// The gradient with respect to the pixels of `Σ_n grad_logits_n · logits_n`, for the batch
    /// `tape` was recorded on.
    pub fn backward(&self, tape: Tape, grad_logits: &[T]) -> Result<Vec<T>, EvalError> {
        let images = tape.images;
        if tape.saved.len() != self.plan.len() {
            return Err(EvalError::Tape {
                reason: format!(
                    "{} layers recorded, the network has {}",
                    tape.saved.len(),
                    self.plan.len()
                ),
            });
        }
        if grad_logits.len() != images * self.classes {
            return Err(EvalError::BatchSize {
                what: "logit gradient",
                got: grad_logits.len(),
                images,
                expected: images * self.classes,
            });
        }
        let mut saved = tape.saved;
        let mut grads: Vec<Option<Vec<T>>> = vec![None; self.plan.len() + 1];
        grads[self.output] = Some(grad_logits.to_vec());
        for (i, (p, layer)) in self.plan.iter().zip(&self.net.layers).enumerate().rev() {
            let Some(mut gy) = grads[i + 1].take() else {
                continue; // the logits do not depend on this value
            };
            let a = p.inputs[0];
            let tape_error = |what: &str| EvalError::Tape {
                reason: format!("layer {i} `{}` has no {what}", layer.name),
            };
            match (&p.step, &layer.op) {
                (Step::Conv(g, back), Op::Conv2d(c)) => {
                    let gx = match back {
                        Transposed::Flipped(bg, w) => {
                            let w = w.get_or_init(|| flip_kernel(&c.weight, g));
                            kernels::conv2d_batch(&gy, images, &T::cast(w), None, bg)
                        }
                        Transposed::Adjoint => kernels::conv2d_backward_input_batch(
                            &gy,
                            images,
                            &T::cast(&c.weight),
                            g,
                        ),
                    };
                    accumulate(&mut grads[a], gx);
                }
                (
                    Step::Linear {
                        in_features,
                        out_features,
                    },
                    Op::Linear(l),
                ) => {
                    let gx =
                        linear_rows_backward(&gy, &T::cast(&l.weight), *in_features, *out_features);
                    accumulate(&mut grads[a], gx);
                }
                (Step::Affine { channels, plane }, Op::ChannelAffine(af)) => {
                    let scale = T::cast(&af.scale);
                    gy.par_chunks_mut(*plane).enumerate().for_each(|(k, pl)| {
                        let s = scale[k % channels];
                        pl.iter_mut().for_each(|v| *v = *v * s);
                    });
                    accumulate(&mut grads[a], gy);
                }
                (Step::Relu, Op::Relu { .. }) => {
                    let Saved::Pass(pass) = std::mem::take(&mut saved[i]) else {
                        return Err(tape_error("ReLU record"));
                    };
                    if pass.len() != gy.len() {
                        return Err(tape_error("ReLU record of this batch's size"));
                    }
                    gy.par_chunks_mut(p.in_len)
                        .zip(pass.par_chunks(p.in_len))
                        .for_each(|(g, pass)| {
                            g.iter_mut().zip(pass).for_each(|(g, &on)| {
                                if !on {
                                    *g = T::ZERO;
                                }
                            })
                        });
                    accumulate(&mut grads[a], gy);
                }
                (Step::Add, Op::Add) => {
                    accumulate(&mut grads[a], gy.clone());
                    accumulate(&mut grads[p.inputs[1]], gy);
                }
                (Step::AvgPool(pool), Op::AvgPool { .. }) => {
                    accumulate(&mut grads[a], avg_pool_backward(&gy, images, pool));
                }
                (Step::MaxPool(pool), Op::MaxPool { .. }) => {
                    let Saved::Argmax(arg) = std::mem::take(&mut saved[i]) else {
                        return Err(tape_error("max-pool record"));
                    };
                    if arg.len() != gy.len() {
                        return Err(tape_error("max-pool record of this batch's size"));
                    }
                    accumulate(&mut grads[a], max_pool_backward(&gy, &arg, images, pool));
                }
                (Step::Flatten, Op::Flatten) => accumulate(&mut grads[a], gy),
                _ => unreachable!("the plan is built from these layers"),
            }
        }
        let mut g = grads[0]
            .take()
            .unwrap_or_else(|| vec![T::ZERO; images * self.in_len]);
        let (channels, plane) = layout(self.net.input_shape);
        self.pre
            .backward(&mut g, channels, plane)
            .map_err(preprocess_error)?;
        Ok(g)
    }
}

/// Lanes of the dot products of [`linear_rows`]: independent partial sums the compiler can keep
/// in one vector register, combined in a fixed order.
const LANES: usize = 8;

/// A linear layer `x Wᵀ + b` of a batch (`W [out, in]`), image by image with every dot product
/// summed in one fixed order, so that an image's logits do not depend on the batch it is in.
/// (The `gemm` crate picks its kernel, and with it the order of the sums, from the matrix
/// shape — a matrix–vector kernel for a single image — while convolutions keep one order for
/// any batch: their inner dimension is blocked by its own size alone. A classifier layer is a
/// tiny part of the work.)
fn linear_rows<T: Real>(x: &[T], w: &[T], bias: &[T], in_f: usize, out_f: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len() / in_f.max(1) * out_f];
    out.par_chunks_mut(out_f.max(1))
        .zip(x.par_chunks(in_f.max(1)))
        .for_each(|(y, x)| {
            for ((y, row), &b) in y.iter_mut().zip(w.chunks(in_f.max(1))).zip(bias) {
                *y = dot(x, row) + b;
            }
        });
    out
}

/// `Σ_i a_i b_i` in a fixed order: [`LANES`] strided partial sums, then their sum in lane order.
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (a, b) in ca.zip(cb).chain(std::iter::once((ra, rb))) {
        for ((s, &a), &b) in acc.iter_mut().zip(a).zip(b) {
            *s = *s + a * b;
        }
    }
    acc.iter().fold(T::ZERO, |s, &v| s + v)
}

/// The input gradient of [`linear_rows`], `gy W`, image by image in a fixed order.
fn linear_rows_backward<T: Real>(gy: &[T], w: &[T], in_f: usize, out_f: usize) -> Vec<T> {
    let mut gx = vec![T::ZERO; gy.len() / out_f.max(1) * in_f];
    gx.par_chunks_mut(in_f.max(1))
        .zip(gy.par_chunks(out_f.max(1)))
        .for_each(|(gx, gy)| {
            for (&g, row) in gy.iter().zip(w.chunks(in_f.max(1))) {
                gx.iter_mut().zip(row).for_each(|(x, &v)| *x = *x + g * v);
            }
        });
    gx
}

/// `slot += g` (or `slot = g` when empty).
fn accumulate<T: Real>(slot: &mut Option<Vec<T>>, g: Vec<T>) {
    match slot {
        None => *slot = Some(g),
        Some(acc) => acc
            .par_iter_mut()
            .zip(g.par_iter())
            .for_each(|(a, &b)| *a = *a + b),
    }
}

/// ReLU in place on the kept elements (`keep` per element of one image, or all), in parallel
/// over the images of a batch (`per` elements each).
fn relu_forward<T: Real>(x: &mut [T], per: usize, keep: Option<&[bool]>) {
    match keep {
        None => x.par_chunks_mut(per).for_each(|c| {
            c.iter_mut().for_each(|v| *v = v.relu());
        }),
        Some(keep) => x.par_chunks_mut(per).for_each(|c| {
            c.iter_mut().zip(keep).for_each(|(v, &k)| {
                if k {
                    *v = v.relu();
                }
            })
        }),
    }
}

/// [`relu_forward`], returning per element whether gradient passes: a kept ReLU passes it
/// where its input is positive (PyTorch's convention at 0), a linearized element always.
fn relu_forward_taped<T: Real>(x: &mut [T], per: usize, keep: Option<&[bool]>) -> Vec<bool> {
    let mut pass = vec![true; x.len()];
    x.par_chunks_mut(per)
        .zip(pass.par_chunks_mut(per))
        .for_each(|(c, pc)| {
            for (j, (v, on)) in c.iter_mut().zip(pc.iter_mut()).enumerate() {
                if keep.is_none_or(|k| k[j]) {
                    *on = *v > T::ZERO;
                    *v = v.relu();
                }
            }
        });
    pass
}

/// Average pooling of a batch (`sum_pool` per image, then the division).
fn avg_pool<T: Real>(x: &[T], images: usize, p: &Pool) -> Vec<T> {
    let (per_in, per_out) = (p.planes * p.h * p.w, p.planes * p.oh * p.ow);
    let inv = T::from_f64(1.0 / (p.kernel * p.kernel) as f64);
    let mut out = vec![T::ZERO; images * per_out];
    out.par_chunks_mut(per_out)
        .zip(x.par_chunks(per_in))
        .for_each(|(o, xi)| {
            let s = kernels::sum_pool(xi, p.planes, p.h, p.w, p.kernel, p.stride);
            o.iter_mut().zip(s).for_each(|(o, s)| *o = s * inv);
        });
    out
}

fn avg_pool_backward<T: Real>(gy: &[T], images: usize, p: &Pool) -> Vec<T> {
    let inv = T::from_f64(1.0 / (p.kernel * p.kernel) as f64);
    let (plane_in, plane_out) = (p.h * p.w, p.oh * p.ow);
    let mut gx = vec![T::ZERO; images * p.planes * plane_in];
    gx.par_chunks_mut(plane_in)
        .zip(gy.par_chunks(plane_out))
        .for_each(|(gx, gy)| {
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let g = gy[oy * p.ow + ox] * inv;
                    for at in p.window(oy, ox) {
                        gx[at] = gx[at] + g;
                    }
                }
            }
        });
    gx
}

/// Max pooling of a batch, with the position of each maximum (the first in scan order on ties,
/// as PyTorch picks it; padding is never chosen).
fn max_pool<T: Real>(x: &[T], images: usize, p: &Pool) -> (Vec<T>, Vec<u32>) {
    let (plane_in, plane_out) = (p.h * p.w, p.oh * p.ow);
    let mut out = vec![T::ZERO; images * p.planes * plane_out];
    let mut arg = vec![u32::MAX; out.len()];
    out.par_chunks_mut(plane_out)
        .zip(arg.par_chunks_mut(plane_out))
        .zip(x.par_chunks(plane_in))
        .for_each(|((o, a), x)| {
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let mut best = (T::NEG_INFINITY, u32::MAX);
                    for at in p.window(oy, ox) {
                        if x[at] > best.0 || best.1 == u32::MAX {
                            best = (x[at], at as u32);
                        }
                    }
                    o[oy * p.ow + ox] = best.0;
                    a[oy * p.ow + ox] = best.1;
                }
            }
        });
    (out, arg)
}

fn max_pool_backward<T: Real>(gy: &[T], arg: &[u32], images: usize, p: &Pool) -> Vec<T> {
    let (plane_in, plane_out) = (p.h * p.w, p.oh * p.ow);
    let mut gx = vec![T::ZERO; images * p.planes * plane_in];
    gx.par_chunks_mut(plane_in)
        .zip(gy.par_chunks(plane_out).zip(arg.par_chunks(plane_out)))
        .for_each(|(gx, (gy, arg))| {
            for (&g, &at) in gy.iter().zip(arg) {
                if let Some(v) = gx.get_mut(at as usize) {
                    *v = *v + g;
                }
            }
        });
    gx
}

pub(crate) fn check_labels(
    labels: &[usize],
    images: usize,
    classes: usize,
) -> Result<(), EvalError> {
    if labels.len() != images {
        return Err(EvalError::BatchSize {
            what: "labels",
            got: labels.len(),
            images,
            expected: images,
        });
    }
    if let Some((image, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        return Err(EvalError::Label {
            image,
            label,
            classes,
        });
    }
    Ok(())
}

/// Cross-entropy of each row of `logits` (`[N, classes]`) against its label, computed in `f64`
/// with the log-sum-exp shift, and its gradient `softmax − onehot` per row (the gradient of the
/// losses' sum).
pub fn cross_entropy<T: Real>(
    logits: &[T],
    classes: usize,
    labels: &[usize],
) -> Result<(Vec<f64>, Vec<T>), EvalError> {
    let images = labels.len();
    if classes == 0 || logits.len() != images * classes {
        return Err(EvalError::BatchSize {
            what: "logits",
            got: logits.len(),
            images,
            expected: images * classes,
        });
    }
    check_labels(labels, images, classes)?;
    let mut loss = Vec::with_capacity(images);
    let mut grad = vec![T::ZERO; logits.len()];
    for ((row, g), &y) in logits
        .chunks(classes)
        .zip(grad.chunks_mut(classes))
        .zip(labels)
    {
        let z: Vec<f64> = row.iter().map(|v| v.to_f64()).collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
        loss.push(sum.ln() + max - z[y]);
        for (k, (g, v)) in g.iter_mut().zip(&z).enumerate() {
            let p = (v - max).exp() / sum;
            *g = T::from_f64(if k == y { p - 1.0 } else { p });
        }
    }
    Ok((loss, grad))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{ChannelAffine, Conv2d, Layer, Linear, Mask, ModelCard, ValueId};
    use crate::plain::forward_f32;
    use crate::plain::toy::{toy_network, ToyMasks};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Builds a network layer by layer, tracking shapes.
    struct Net {
        rng: ChaCha8Rng,
        layers: Vec<Layer>,
        sites: usize,
    }

    impl Net {
        fn shape(&self, v: ValueId) -> Shape {
            match v {
                ValueId::Input => Shape::Chw(2, 9, 9),
                ValueId::Layer(i) => self.layers[i].out_shape,
            }
        }
        fn push(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, out: Shape) -> ValueId {
            self.layers.push(Layer {
                name: name.into(),
                op,
                inputs,
                out_shape: out,
            });
            ValueId::Layer(self.layers.len() - 1)
        }
        fn uniform(&mut self, n: usize, scale: f32) -> Vec<f32> {
            (0..n)
                .map(|_| (self.rng.gen::<f32>() * 2.0 - 1.0) * scale)
                .collect()
        }
        fn conv(&mut self, x: ValueId, out: usize, k: usize, stride: usize, pad: usize) -> ValueId {
            let Shape::Chw(c, h, w) = self.shape(x) else {
                panic!()
            };
            let weight = self.uniform(out * c * k * k, (3.0 / (c * k * k) as f32).sqrt());
            let bias = self.uniform(out, 0.1);
            let oh = (h + 2 * pad - k) / stride + 1;
            let ow = (w + 2 * pad - k) / stride + 1;
            let op = Op::Conv2d(Conv2d {
                out_channels: out,
                in_channels: c,
                kernel: (k, k),
                stride,
                padding: pad,
                weight,
                bias,
            });
            self.push("conv", op, vec![x], Shape::Chw(out, oh, ow))
        }
        fn relu(&mut self, x: ValueId, masked: bool) -> ValueId {
            let s = self.shape(x);
            let mask = masked.then(|| Mask {
                keep: (0..s.elements()).map(|_| self.rng.gen_bool(0.5)).collect(),
            });
            let site = self.sites;
            self.sites += 1;
            self.push("relu", Op::Relu { site, mask }, vec![x], s)
        }
        fn pool(
            &mut self,
            x: ValueId,
            max: bool,
            kernel: usize,
            stride: usize,
            padding: usize,
        ) -> ValueId {
            let Shape::Chw(c, h, w) = self.shape(x) else {
                panic!()
            };
            let out = Shape::Chw(
                c,
                (h + 2 * padding - kernel) / stride + 1,
                (w + 2 * padding - kernel) / stride + 1,
            );
            let op = if max {
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                }
            } else {
                Op::AvgPool { kernel, stride }
            };
            self.push("pool", op, vec![x], out)
        }
        fn linear(&mut self, x: ValueId, out: usize) -> ValueId {
            let n = self.shape(x).elements();
            let weight = self.uniform(out * n, (3.0 / n as f32).sqrt());
            let bias = self.uniform(out, 0.1);
            let op = Op::Linear(Linear {
                out_features: out,
                in_features: n,
                weight,
                bias,
            });
            self.push("fc", op, vec![x], Shape::Flat(out))
        }
    }

    /// A small network using every op: conv (3×3 padded and unpadded, strided 3×3, pointwise,
    /// and a strided 1×1 shortcut from the input),
    /// channel affine, masked and unmasked ReLU (also on a flat value), max pooling with and
    /// without padding, overlapping average pooling, adds (including `x + x` and a value read
    /// by two layers), flatten and two linear layers; input `[2, 9, 9]`, 5 classes.
    pub(crate) fn every_op_network(seed: u64) -> Network {
        let mut n = Net {
            rng: ChaCha8Rng::seed_from_u64(seed),
            layers: Vec::new(),
            sites: 0,
        };
        let c0 = n.conv(ValueId::Input, 4, 3, 1, 1); // [4,9,9]
        let scale = n.uniform(4, 1.0).iter().map(|v| 1.0 + 0.5 * v).collect();
        let shift = n.uniform(4, 0.3);
        let bn = n.push(
            "bn",
            Op::ChannelAffine(ChannelAffine { scale, shift }),
            vec![c0],
            Shape::Chw(4, 9, 9),
        );
        let r0 = n.relu(bn, true);
        let m0 = n.pool(r0, true, 3, 2, 1); // [4,5,5]
        let c1 = n.conv(m0, 4, 3, 1, 1);
        let r1 = n.relu(c1, false);
        let pw = n.conv(r1, 4, 1, 1, 0); // pointwise
        let a0 = n.push("add", Op::Add, vec![pw, m0], Shape::Chw(4, 5, 5)); // m0 read twice
        let sc = n.conv(ValueId::Input, 4, 1, 2, 0); // [4,5,5] from the input
        let a1 = n.push("add_sc", Op::Add, vec![a0, sc], Shape::Chw(4, 5, 5));
        let a2 = n.push("double", Op::Add, vec![a1, a1], Shape::Chw(4, 5, 5));
        let p0 = n.pool(a2, false, 2, 1, 0); // [4,4,4]
        let c2 = n.conv(p0, 5, 3, 1, 0); // unpadded: [5,2,2]
        let r2 = n.relu(c2, true);
        let m1 = n.pool(r2, true, 2, 2, 0); // [5,1,1]
        let c3 = n.conv(m1, 4, 3, 2, 1); // strided 3×3: [4,1,1]
        let f = n.push("flat", Op::Flatten, vec![c3], Shape::Flat(4));
        let l0 = n.linear(f, 6);
        let r3 = n.relu(l0, true);
        let out = n.linear(r3, 5);
        Network {
            card: ModelCard {
                architecture: "every-op".into(),
                input_shape: vec![2, 9, 9],
                classes: 5,
                ..Default::default()
            },
            bn_path: Default::default(),
            dual_bn: false,
            input_shape: Shape::Chw(2, 9, 9),
            layers: n.layers,
            output: out,
        }
    }

    fn pixels(seed: u64, n: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.gen::<f32>()).collect()
    }

    fn rel_err(got: &[f32], want: &[f32]) -> f32 {
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        got.iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
            / scale
    }

    #[test]
    fn batch_forward_equals_the_plain_reference_per_image() {
        let pre = Preprocessing::normalized(vec![0.4, 0.6], vec![0.25, 0.5]);
        let mut nets = vec![every_op_network(1), every_op_network(2)];
        for masks in [ToyMasks::All, ToyMasks::None, ToyMasks::Random] {
            nets.push(toy_network(3, masks));
        }
        for net in &nets {
            let pre = if net.input_shape == Shape::Chw(2, 9, 9) {
                pre.clone()
            } else {
                Preprocessing::normalized(vec![0.5, 0.4, 0.3], vec![0.2, 0.3, 0.4])
            };
            let fnet = FloatNet::<f32>::new(net, pre.clone()).unwrap();
            let per = fnet.image_len();
            for images in [1, 3, 7] {
                let x = pixels(images as u64, images * per);
                let got = fnet.logits(&x).unwrap();
                let (taped, tape) = fnet.forward_taped(&x).unwrap();
                assert_eq!(got, taped, "taping changes nothing");
                assert_eq!(tape.images(), images);
                for n in 0..images {
                    let img = fnet.network_input(&x[n * per..(n + 1) * per]).unwrap();
                    let want = forward_f32(net, &img).unwrap();
                    let row = &got[n * fnet.classes()..(n + 1) * fnet.classes()];
                    let err = rel_err(row, &want);
                    assert!(
                        err <= 1e-5,
                        "{} image {n}/{images}: {err:e}",
                        net.card.architecture
                    );
                }
            }
        }
    }

    /// Loss of `Σ_n v_n · logits_n` or of the cross-entropy, in f64.
    fn objective(net: &FloatNet<f64>, x: &[f64], labels: &[usize], v: Option<&[f64]>) -> f64 {
        let logits = net.logits(x).unwrap();
        match v {
            Some(v) => logits.iter().zip(v).map(|(a, b)| a * b).sum(),
            None => cross_entropy(&logits, net.classes(), labels)
                .unwrap()
                .0
                .iter()
                .sum(),
        }
    }

    /// Central differences in f64 along random directions and single coordinates against the
    /// backward pass, for the cross-entropy and for an arbitrary upstream gradient.
    #[test]
    fn gradient_matches_finite_differences_for_every_op() {
        let pre = Preprocessing::normalized(vec![0.4, 0.6], vec![0.25, 0.5]);
        let mut nets = vec![every_op_network(11), every_op_network(12)];
        for masks in [ToyMasks::All, ToyMasks::Random] {
            nets.push(toy_network(5, masks));
        }
        let h = 1e-6;
        for net in &nets {
            let pre = if net.input_shape == Shape::Chw(2, 9, 9) {
                pre.clone()
            } else {
                Preprocessing::unit()
            };
            let fnet = FloatNet::<f64>::new(net, pre).unwrap();
            let (per, classes, images) = (fnet.image_len(), fnet.classes(), 3);
            let x: Vec<f64> = pixels(7, images * per).iter().map(|&v| v as f64).collect();
            let labels: Vec<usize> = (0..images).map(|n| (n * 2 + 1) % classes).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(99);
            let upstream: Vec<f64> = (0..images * classes)
                .map(|_| rng.gen::<f64>() - 0.5)
                .collect();
            for v in [None, Some(&upstream[..])] {
                let grad = match v {
                    None => fnet.loss_grad(&x, &labels).unwrap().grad,
                    Some(v) => {
                        let (_, tape) = fnet.forward_taped(&x).unwrap();
                        fnet.backward(tape, v).unwrap()
                    }
                };
                let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
                assert!(norm > 1e-3, "a gradient worth testing");
                // Directions: random ±1 vectors and a few coordinates of the largest entries.
                let mut dirs: Vec<Vec<f64>> = (0..4)
                    .map(|_| {
                        (0..x.len())
                            .map(|_| if rng.gen() { 1.0 } else { -1.0 })
                            .collect()
                    })
                    .collect();
                for k in [0, 17, x.len() / 2, x.len() - 1] {
                    let mut d = vec![0.0; x.len()];
                    d[k] = 1.0;
                    dirs.push(d);
                }
                for d in &dirs {
                    let plus: Vec<f64> = x.iter().zip(d).map(|(a, b)| a + h * b).collect();
                    let minus: Vec<f64> = x.iter().zip(d).map(|(a, b)| a - h * b).collect();
                    let fd = (objective(&fnet, &plus, &labels, v)
                        - objective(&fnet, &minus, &labels, v))
                        / (2.0 * h);
                    let an: f64 = grad.iter().zip(d).map(|(g, d)| g * d).sum();
                    assert!(
                        (fd - an).abs() <= 1e-6 * norm * (x.len() as f64).sqrt() + 1e-7,
                        "{}: finite difference {fd} vs backward {an}",
                        net.card.architecture
                    );
                }
            }
        }
    }

    #[test]
    fn an_images_result_does_not_depend_on_its_batch() {
        // Bit for bit: logits, losses and input gradients of each image alone equal its row in
        // batches of 4 and 9 (the linear layer would take the gemm crate's matrix-vector kernel
        // for one image, and round differently, if it went through the GEMM).
        let net = toy_network(5, ToyMasks::Random);
        let pre = Preprocessing::normalized(vec![0.5, 0.4, 0.3], vec![0.2, 0.3, 0.4]);
        let f = FloatNet::<f32>::new(&net, pre).unwrap();
        let per = f.image_len();
        let x = pixels(11, 9 * per);
        let labels: Vec<usize> = (0..9).map(|n| n % f.classes()).collect();
        let all = f.loss_grad(&x, &labels).unwrap();
        let four = f.loss_grad(&x[..4 * per], &labels[..4]).unwrap();
        let c = f.classes();
        for n in 0..9 {
            let one = f
                .loss_grad(&x[n * per..(n + 1) * per], &labels[n..n + 1])
                .unwrap();
            assert_eq!(
                one.logits,
                all.logits[n * c..(n + 1) * c],
                "logits of image {n}"
            );
            assert_eq!(one.loss[0], all.loss[n], "loss of image {n}");
            assert_eq!(
                one.grad,
                all.grad[n * per..(n + 1) * per],
                "gradient of image {n}"
            );
            if n < 4 {
                assert_eq!(one.grad, four.grad[n * per..(n + 1) * per]);
            }
        }
    }

    #[test]
    fn f32_gradient_tracks_f64() {
        let net = every_op_network(21);
        let pre = Preprocessing::normalized(vec![0.4, 0.6], vec![0.25, 0.5]);
        let f = FloatNet::<f32>::new(&net, pre.clone()).unwrap();
        let d = FloatNet::<f64>::new(&net, pre).unwrap();
        let x = pixels(3, 5 * f.image_len());
        let labels = [0, 1, 2, 3, 4];
        let g32 = f.loss_grad(&x, &labels).unwrap().grad;
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let g64: Vec<f32> = d
            .loss_grad(&x64, &labels)
            .unwrap()
            .grad
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert!(rel_err(&g32, &g64) < 1e-4, "{}", rel_err(&g32, &g64));
    }

    #[test]
    fn cross_entropy_is_log_softmax() {
        let (loss, grad) = cross_entropy(&[1.0f64, 2.0, 3.0, 0.0, 0.0, 0.0], 3, &[2, 0]).unwrap();
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!((loss[0] - (lse - 3.0)).abs() < 1e-12);
        assert!((loss[1] - 3f64.ln()).abs() < 1e-12);
        assert!((grad[2] - (3f64.exp() / lse.exp() - 1.0)).abs() < 1e-12);
        assert!((grad[3] - (1.0 / 3.0 - 1.0)).abs() < 1e-12);
        // Each row's gradient sums to zero.
        assert!(grad[..3].iter().sum::<f64>().abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let net = every_op_network(1);
        let f = FloatNet::<f32>::new(&net, Preprocessing::unit()).unwrap();
        let per = f.image_len();
        assert!(matches!(
            f.logits(&[0.0; 5]),
            Err(EvalError::InputSize { .. })
        ));
        assert!(matches!(f.logits(&[]), Err(EvalError::InputSize { .. })));
        let x = vec![0.5; 2 * per];
        assert!(matches!(
            f.loss_grad(&x, &[0]),
            Err(EvalError::BatchSize { .. })
        ));
        let err = f.loss_grad(&x, &[0, 5]).unwrap_err().to_string();
        assert!(err.contains("label 5 of image 1"), "{err}");
        let (_, tape) = f.forward_taped(&x).unwrap();
        assert!(matches!(
            f.backward(tape, &[0.0; 5]),
            Err(EvalError::BatchSize { .. })
        ));
        let err = FloatNet::<f32>::new(&net, Preprocessing::normalized(vec![0.5; 3], vec![1.0; 3]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("3 mean") && err.contains("2 input channels"),
            "{err}"
        );
        let err = FloatNet::<f32>::new(
            &net,
            Preprocessing::normalized(vec![0.5; 2], vec![1.0, 0.0]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("positive"), "{err}");
        let mut broken = net.clone();
        broken.layers[1].out_shape = Shape::Chw(4, 8, 9);
        let err = FloatNet::<f32>::new(&broken, Preprocessing::unit())
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer 1 `bn`"), "{err}");
        let mut broken = net.clone();
        broken.layers[0].inputs = vec![ValueId::Layer(3)];
        let err = FloatNet::<f32>::new(&broken, Preprocessing::unit())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not computed before"), "{err}");
    }

    #[test]
    fn max_pool_picks_the_first_maximum_and_never_padding() {
        let p = Pool {
            planes: 1,
            h: 2,
            w: 2,
            kernel: 2,
            stride: 1,
            padding: 1,
            oh: 3,
            ow: 3,
        };
        let x = [-3.0f32, -1.0, -1.0, -2.0];
        let (out, arg) = max_pool(&x, 1, &p);
        assert_eq!(
            out,
            vec![-3.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -2.0]
        );
        assert_eq!(arg, vec![0, 1, 1, 2, 1, 1, 2, 2, 3]);
        let g = max_pool_backward(&[1.0f32; 9], &arg, 1, &p);
        assert_eq!(g, vec![1.0, 4.0, 3.0, 1.0]);
    }
}
