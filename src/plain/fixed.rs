//! Fixed-point inference on the ring Z_2^ℓ, with exactly the steps and truncation points of the
//! secure protocol: this is the oracle every secure run is checked against.
//!
//! Lowering a [`Network`] gives a [`FixedNetwork`]: weights encoded with f fractional bits,
//! activations with f, products with 2f. Where a value of scale 2f meets a ReLU site, kept
//! elements are truncated exactly inside the garbled circuit and linearized elements are
//! truncated locally by each party (SecureML); the oracle computes both as exact floor division,
//! so secure results equal it except for the documented ±1 ulp of local truncation. Average
//! pooling is a local sum whose 1/k² is folded into the following linear layer's weights.

use rayon::prelude::*;

use super::PlainError;
use crate::model::walk::walk;
use crate::model::{Network, Op, Shape, StepGraph, ValueId};
use crate::ring::kernels::{self, ConvGeometry};
use crate::ring::Ring;

/// The kind of a linear step.
#[derive(Clone, Debug)]
pub enum LinearKind {
    /// A convolution.
    Conv(ConvGeometry),
    /// A fully connected layer.
    Fc {
        /// Output size.
        out_features: usize,
    },
    /// A per-channel multiplier on `[C, H, W]` (an unfolded batch norm).
    ChannelScale {
        /// Channels.
        channels: usize,
        /// Elements per channel.
        plane: usize,
    },
}

/// A linear layer on the ring: `y = M x + b`, M private to the server (`Debug` omits it).
#[derive(Clone)]
pub struct LinearStep {
    /// What M is.
    pub kind: LinearKind,
    /// M's entries encoded with f fractional bits (already divided by any pending pooling).
    pub weight: Vec<u64>,
    /// The bias per output channel/feature, encoded at the output scale.
    pub bias: Vec<u64>,
    /// Bits the input is locally truncated by before M is applied (to bring it to scale f).
    pub input_trunc: u32,
}

impl std::fmt::Debug for LinearStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinearStep")
            .field("kind", &self.kind)
            .field("input_trunc", &self.input_trunc)
            .finish_non_exhaustive()
    }
}

impl LinearStep {
    /// `M x` without the bias, reduced mod 2^ℓ: the server applies it to its share and the
    /// preprocessing to the client's.
    pub fn apply(&self, ring: &Ring, x: &[u64]) -> Vec<u64> {
        let mut y = match &self.kind {
            LinearKind::Conv(g) => kernels::conv2d(x, &self.weight, None, g),
            LinearKind::Fc { out_features } => {
                kernels::linear(x, &self.weight, None, *out_features)
            }
            LinearKind::ChannelScale { plane, .. } => x
                .iter()
                .enumerate()
                .map(|(i, &v)| v.wrapping_mul(self.weight[i / plane]))
                .collect(),
        };
        y.par_iter_mut().for_each(|v| *v = ring.reduce(*v));
        y
    }

    /// Add the bias (per output channel) in place.
    pub fn add_bias(&self, ring: &Ring, y: &mut [u64]) {
        let per = y.len() / self.bias.len().max(1);
        y.par_chunks_mut(per.max(1))
            .zip(&self.bias)
            .for_each(|(row, &b)| row.iter_mut().for_each(|v| *v = ring.add(*v, b)));
    }

    /// Multiply-accumulates of `M x`.
    pub fn macs(&self, out_elements: usize) -> u64 {
        match &self.kind {
            LinearKind::Conv(g) => (out_elements * g.patch_len()) as u64,
            LinearKind::Fc { .. } => self.weight.len() as u64,
            LinearKind::ChannelScale { .. } => out_elements as u64,
        }
    }
}

/// What a step computes.
#[derive(Clone, Debug)]
pub enum StepKind {
    /// A linear layer (needs preprocessing).
    Linear(LinearStep),
    /// A ReLU site: kept elements by garbled circuit (with exact truncation by `trunc`), the
    /// others pass with local truncation by `trunc`.
    Relu {
        /// Site number.
        site: usize,
        /// Per-element keep flags; `None` keeps all.
        keep: Option<Vec<bool>>,
        /// Bits truncated (input scale − f).
        trunc: u32,
    },
    /// `a · 2^shift_a + b · 2^shift_b` (aligning scales).
    Add {
        /// Left shift of the first operand.
        shift_a: u32,
        /// Left shift of the second operand.
        shift_b: u32,
    },
    /// Window sums (the 1/k² of the average is folded into the next linear step).
    SumPool {
        /// Input `[C, H, W]`.
        in_shape: (usize, usize, usize),
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Reshape to flat; no data moves.
    Flatten,
}

/// One step of the fixed-point program, one per layer of the [`Network`].
#[derive(Clone, Debug)]
pub struct Step {
    /// The layer's name.
    pub name: String,
    /// Values read (same numbering as the network's layers).
    pub inputs: Vec<ValueId>,
    /// What it computes.
    pub kind: StepKind,
    /// Fractional bits of the output value.
    pub out_scale: u32,
    /// The output shape.
    pub out_shape: Shape,
}

impl Step {
    /// The step's kind as a short name for tables.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            StepKind::Linear(l) => match l.kind {
                LinearKind::Conv(_) => "conv2d",
                LinearKind::Fc { .. } => "linear",
                LinearKind::ChannelScale { .. } => "batchnorm",
            },
            StepKind::Relu { .. } => "relu",
            StepKind::Add { .. } => "add",
            StepKind::SumPool { .. } => "avgpool",
            StepKind::Flatten => "flatten",
        }
    }
}

/// A local step (add, sum pool, flatten): the same map on the oracle's values and on each
/// party's shares, since it is linear and needs no weights. `ins` are the step's operands.
/// `None` for steps that are not local (and for an add without its second operand).
pub fn apply_local<X: AsRef<[u64]>>(ring: &Ring, kind: &StepKind, ins: &[X]) -> Option<Vec<u64>> {
    let x = ins.first()?.as_ref();
    match kind {
        StepKind::Add { shift_a, shift_b } => Some(
            x.iter()
                .zip(ins.get(1)?.as_ref())
                .map(|(&a, &b)| ring.add(ring.shl(a, *shift_a), ring.shl(b, *shift_b)))
                .collect(),
        ),
        StepKind::SumPool {
            in_shape: (c, h, w),
            kernel,
            stride,
        } => {
            let mut out = kernels::sum_pool(x, *c, *h, *w, *kernel, *stride);
            out.iter_mut().for_each(|v| *v = ring.reduce(*v));
            Some(out)
        }
        StepKind::Flatten => Some(x.to_vec()),
        StepKind::Linear(_) | StepKind::Relu { .. } => None,
    }
}

/// Whose value a truncation applies to: the oracle's exact value (floor division) or one
/// party's additive share (SecureML local truncation, within one ulp of the oracle's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// The plain value: exact floor division.
    Oracle,
    /// The server's share.
    Server,
    /// The client's share.
    Client,
}

impl Share {
    /// Truncate every element of `x` by `bits` as this holder does (a copy when `bits` is 0).
    pub fn trunc_all(self, ring: &Ring, x: &[u64], bits: u32) -> Vec<u64> {
        if bits == 0 {
            return x.to_vec();
        }
        let f = |v: u64| match self {
            Share::Oracle => ring.trunc(v, bits),
            Share::Server => ring.trunc_share_server(v, bits),
            Share::Client => ring.trunc_share_client(v, bits),
        };
        x.iter().map(|&v| f(v)).collect()
    }
}

/// `values · factor` encoded with `scale` fractional bits, refusing a value the ring cannot
/// represent (its encoding would saturate and the oracle would silently compute another
/// network).
fn encode_parameters(
    ring: &Ring,
    layer: &crate::model::Layer,
    what: &'static str,
    values: &[f32],
    factor: f32,
    scale: u32,
) -> Result<Vec<u64>, PlainError> {
    let limit = ring.encodable_limit(scale);
    values
        .iter()
        .enumerate()
        .map(|(index, &v)| {
            let v = f64::from(v * factor);
            if v.abs() < limit {
                Ok(ring.encode(v, scale))
            } else {
                Err(PlainError::ParameterRange {
                    layer: layer.name.clone(),
                    detail: format!(
                        "{} {what} {index} = {v:e} (the range at ℓ = {} with {scale} fractional \
                         bits is ±{limit})",
                        layer.op.kind(),
                        ring.ell
                    ),
                })
            }
        })
        .collect()
}

/// A network lowered to the ring.
#[derive(Clone, Debug)]
pub struct FixedNetwork {
    /// ℓ and f.
    pub ring: Ring,
    /// Input shape.
    pub input_shape: Shape,
    /// Steps in forward order, step i computing value `ValueId::Layer(i)`.
    pub steps: Vec<Step>,
    /// The logits' value.
    pub output: ValueId,
    /// Fractional bits of the logits.
    pub output_scale: u32,
    /// The batch-norm path the weights were taken from (public: both parties must agree on it).
    pub bn_path: crate::model::BnPath,
}

/// The result of a fixed-point inference.
#[derive(Clone, Debug)]
pub struct FixedOutput {
    /// Logits as ring elements.
    pub raw: Vec<u64>,
    /// Logits decoded to reals.
    pub logits: Vec<f64>,
    /// The largest bit length of a value locally truncated (for the failure probability), or
    /// 0 if none was.
    pub max_local_trunc_bits: u32,
    /// Elements locally truncated.
    pub local_truncations: u64,
}

impl StepGraph for FixedNetwork {
    fn input_shape(&self) -> Shape {
        self.input_shape
    }
    fn step_count(&self) -> usize {
        self.steps.len()
    }
    fn step_inputs(&self, step: usize) -> &[ValueId] {
        &self.steps[step].inputs
    }
    fn step_shape(&self, step: usize) -> Shape {
        self.steps[step].out_shape
    }
    fn output(&self) -> ValueId {
        self.output
    }
}

impl FixedNetwork {
    /// Lower `net` to the ring `ring`. Fails with a clear error on ops the protocol cannot run
    /// (max pooling) and on average pooling not followed by a linear layer.
    pub fn lower(net: &Network, ring: Ring) -> Result<Self, PlainError> {
        let f = ring.frac;
        // Per value: scale (fractional bits) and pending pooling divisor.
        let mut scale: Vec<u32> = Vec::with_capacity(net.layers.len());
        let mut divisor: Vec<usize> = Vec::with_capacity(net.layers.len());
        let get = |v: ValueId, table: &Vec<u32>, input: u32| match v {
            ValueId::Input => input,
            ValueId::Layer(i) => table[i],
        };
        let get_div = |v: ValueId, table: &Vec<usize>| match v {
            ValueId::Input => 1,
            ValueId::Layer(i) => table[i],
        };
        let mut steps = Vec::with_capacity(net.layers.len());
        for layer in &net.layers {
            let x = layer.inputs[0];
            let s_in = get(x, &scale, f);
            let d_in = get_div(x, &divisor);
            let unsupported = |reason: &str| PlainError::Unsupported {
                layer: layer.name.clone(),
                kind: layer.op.kind(),
                reason: reason.into(),
            };
            let in_shape = net.shape_of(x);
            // Weights at f fractional bits (divided by any pending pooling), biases at 2f.
            let enc = |what: &'static str, values: &[f32], factor: f32, s: u32| {
                encode_parameters(&ring, layer, what, values, factor, s)
            };
            let (kind, out_scale, out_div) = match &layer.op {
                Op::Conv2d(c) => {
                    let Shape::Chw(ci, h, w) = in_shape else { return Err(unsupported("conv2d on a flat value")) };
                    let g = super::conv_geometry(c, (ci, h, w));
                    let inv = 1.0 / d_in as f32;
                    let step = LinearStep {
                        kind: LinearKind::Conv(g),
                        weight: enc("weight", &c.weight, inv, f)?,
                        bias: enc("bias", &c.bias, 1.0, 2 * f)?,
                        input_trunc: s_in.saturating_sub(f),
                    };
                    (StepKind::Linear(step), 2 * f, 1)
                }
                Op::Linear(l) => {
                    let inv = 1.0 / d_in as f32;
                    let step = LinearStep {
                        kind: LinearKind::Fc { out_features: l.out_features },
                        weight: enc("weight", &l.weight, inv, f)?,
                        bias: enc("bias", &l.bias, 1.0, 2 * f)?,
                        input_trunc: s_in.saturating_sub(f),
                    };
                    (StepKind::Linear(step), 2 * f, 1)
                }
                Op::ChannelAffine(a) => {
                    let Shape::Chw(c, h, w) = in_shape else { return Err(unsupported("batchnorm on a flat value")) };
                    let inv = 1.0 / d_in as f32;
                    let step = LinearStep {
                        kind: LinearKind::ChannelScale { channels: c, plane: h * w },
                        weight: enc("weight", &a.scale, inv, f)?,
                        bias: enc("bias", &a.shift, 1.0, 2 * f)?,
                        input_trunc: s_in.saturating_sub(f),
                    };
                    (StepKind::Linear(step), 2 * f, 1)
                }
                Op::Relu { site, mask } => {
                    if d_in != 1 {
                        return Err(unsupported("reads an average pool directly; a linear layer must follow the pool"));
                    }
                    let keep = mask.as_ref().map(|m| m.keep.clone());
                    (StepKind::Relu { site: *site, keep, trunc: s_in.saturating_sub(f) }, s_in.min(f), 1)
                }
                Op::Add => {
                    let y = layer.inputs[1];
                    let s_b = get(y, &scale, f);
                    if d_in != 1 || get_div(y, &divisor) != 1 {
                        return Err(unsupported("adds an average-pooled value"));
                    }
                    let s = s_in.max(s_b);
                    (StepKind::Add { shift_a: s - s_in, shift_b: s - s_b }, s, 1)
                }
                Op::AvgPool { kernel, stride } => {
                    let Shape::Chw(c, h, w) = in_shape else { return Err(unsupported("avgpool on a flat value")) };
                    (
                        StepKind::SumPool { in_shape: (c, h, w), kernel: *kernel, stride: *stride },
                        s_in,
                        d_in * kernel * kernel,
                    )
                }
                Op::MaxPool { .. } => {
                    return Err(unsupported(
                        "max pooling has no secure implementation in pibench yet; linearized networks for PI use average pooling",
                    ))
                }
                Op::Flatten => (StepKind::Flatten, s_in, d_in),
            };
            scale.push(out_scale);
            divisor.push(out_div);
            steps.push(Step {
                name: layer.name.clone(),
                inputs: layer.inputs.clone(),
                kind,
                out_scale,
                out_shape: layer.out_shape,
            });
        }
        let output_scale = get(net.output, &scale, f);
        if get_div(net.output, &divisor) != 1 {
            return Err(PlainError::Unsupported {
                layer: "output".into(),
                kind: "avgpool",
                reason: "the logits are an average pool; a linear layer must follow it".into(),
            });
        }
        Ok(FixedNetwork {
            ring,
            input_shape: net.input_shape,
            steps,
            output: net.output,
            output_scale,
            bn_path: net.bn_path,
        })
    }

    /// Encode an f32 input at scale f.
    pub fn encode_input(&self, input: &[f32]) -> Result<Vec<u64>, PlainError> {
        let expected = self.input_shape.elements();
        if input.len() != expected {
            return Err(PlainError::InputSize {
                got: input.len(),
                expected,
                shape: self.input_shape.dims(),
            });
        }
        let (ring, f) = (self.ring, self.ring.frac);
        let limit = ring.encodable_limit(f);
        let outside = |v: f32| {
            let a = f64::from(v).abs();
            a.is_nan() || a >= limit
        };
        if let Some(index) = input.iter().position(|&v| outside(v)) {
            return Err(PlainError::InputRange {
                index,
                value: f64::from(input[index]),
                limit,
                ell: ring.ell,
                frac: f,
            });
        }
        Ok(input.iter().map(|&v| ring.encode(v as f64, f)).collect())
    }

    /// Run the fixed-point oracle on one input.
    pub fn forward(&self, input: &[f32]) -> Result<FixedOutput, PlainError> {
        let ring = self.ring;
        let x0 = self.encode_input(input)?;
        let mut max_bits = 0u32;
        let mut local = 0u64;
        let bits = |v: u64| 64 - ring.to_signed(v).unsigned_abs().leading_zeros();
        let raw = walk(self, x0, |i, ins| -> Result<Vec<u64>, PlainError> {
            let step = &self.steps[i];
            let x = ins[0];
            Ok(match &step.kind {
                StepKind::Linear(l) => {
                    if l.input_trunc > 0 {
                        local += x.len() as u64;
                        max_bits = max_bits.max(x.iter().map(|&v| bits(v)).max().unwrap_or(0));
                    }
                    let xin = Share::Oracle.trunc_all(&ring, x, l.input_trunc);
                    let mut y = l.apply(&ring, &xin);
                    l.add_bias(&ring, &mut y);
                    y
                }
                StepKind::Relu { keep, trunc, .. } => {
                    let relu = |v: u64| {
                        let t = ring.trunc(v, *trunc);
                        if ring.to_signed(t) < 0 {
                            0
                        } else {
                            t
                        }
                    };
                    match keep {
                        None => x.iter().map(|&v| relu(v)).collect(),
                        Some(k) => x
                            .iter()
                            .zip(k)
                            .map(|(&v, &kept)| {
                                if kept {
                                    relu(v)
                                } else {
                                    if *trunc > 0 {
                                        local += 1;
                                        max_bits = max_bits.max(bits(v));
                                    }
                                    ring.trunc(v, *trunc)
                                }
                            })
                            .collect(),
                    }
                }
                kind => self.local_step(i, kind, ins)?,
            })
        })?;
        let logits = raw
            .iter()
            .map(|&v| ring.decode(v, self.output_scale))
            .collect();
        Ok(FixedOutput {
            raw,
            logits,
            max_local_trunc_bits: max_bits,
            local_truncations: local,
        })
    }

    /// Local step `i` (add, sum pool, flatten) on its operands `ins`: the oracle's values or
    /// either party's shares alike.
    pub fn local_step<X: AsRef<[u64]>>(
        &self,
        i: usize,
        kind: &StepKind,
        ins: &[X],
    ) -> Result<Vec<u64>, PlainError> {
        apply_local(&self.ring, kind, ins).ok_or_else(|| PlainError::Malformed {
            layer: self
                .steps
                .get(i)
                .map_or_else(String::new, |s| s.name.clone()),
            reason: "not a local step, or an add without two operands".into(),
        })
    }

    /// Kept ReLUs over all sites.
    pub fn kept_relus(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match &s.kind {
                StepKind::Relu { keep: None, .. } => s.out_shape.elements(),
                StepKind::Relu { keep: Some(k), .. } => k.iter().filter(|&&b| b).count(),
                _ => 0,
            })
            .sum()
    }
}
