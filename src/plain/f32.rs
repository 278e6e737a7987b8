//! Plain f32 inference, the reference PyTorch's logits are checked against.

use super::PlainError;
use crate::model::walk::{walk, walk_with, ValueStore};
use crate::model::{Network, Op, Shape};
use crate::ring::kernels;

/// Every value of the network for one input: index 0 is the input, index i + 1 the output of
/// layer i.
pub fn forward_f32_values(net: &Network, input: &[f32]) -> Result<Vec<Vec<f32>>, PlainError> {
    check_input(net, input)?;
    let store = walk_with(
        net,
        ValueStore::keeping_all(net, input.to_vec()),
        |i, ins| layer(net, i, ins),
    )?;
    Ok(store
        .into_values()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// The logits of one input.
pub fn forward_f32(net: &Network, input: &[f32]) -> Result<Vec<f32>, PlainError> {
    check_input(net, input)?;
    walk(net, input.to_vec(), |i, ins| layer(net, i, ins))
}

fn check_input(net: &Network, input: &[f32]) -> Result<(), PlainError> {
    let expected = net.input_shape.elements();
    if input.len() != expected {
        return Err(PlainError::InputSize {
            got: input.len(),
            expected,
            shape: net.input_shape.dims(),
        });
    }
    Ok(())
}

/// Layer `i` of `net` on its input values.
fn layer(net: &Network, i: usize, ins: &[&Vec<f32>]) -> Result<Vec<f32>, PlainError> {
    let layer = &net.layers[i];
    let x = ins[0];
    let in_shape = net.shape_of(layer.inputs[0]);
    let malformed = |reason: &str| PlainError::Malformed {
        layer: layer.name.clone(),
        reason: reason.into(),
    };
    let out = match &layer.op {
        Op::Conv2d(c) => {
            let Shape::Chw(ci, h, w) = in_shape else {
                return Err(malformed("conv2d on a flat value"));
            };
            let g = super::conv_geometry(c, (ci, h, w));
            kernels::conv2d(x, &c.weight, Some(&c.bias), &g)
        }
        Op::Linear(l) => kernels::linear(x, &l.weight, Some(&l.bias), l.out_features),
        Op::ChannelAffine(a) => {
            let Shape::Chw(c, h, w) = in_shape else {
                return Err(malformed("batchnorm on a flat value"));
            };
            let plane = h * w;
            (0..c * plane)
                .map(|i| x[i] * a.scale[i / plane] + a.shift[i / plane])
                .collect()
        }
        Op::Relu { mask, .. } => match mask {
            None => x.iter().map(|&v| v.max(0.0)).collect(),
            Some(m) => x
                .iter()
                .zip(&m.keep)
                .map(|(&v, &k)| if k { v.max(0.0) } else { v })
                .collect(),
        },
        Op::Add => {
            let y = ins
                .get(1)
                .ok_or_else(|| malformed("add with one operand"))?;
            x.iter().zip(y.iter()).map(|(a, b)| a + b).collect()
        }
        Op::AvgPool { kernel, stride } => {
            let Shape::Chw(c, h, w) = in_shape else {
                return Err(malformed("avgpool on a flat value"));
            };
            let inv = 1.0 / (kernel * kernel) as f32;
            kernels::sum_pool(x, c, h, w, *kernel, *stride)
                .into_iter()
                .map(|v| v * inv)
                .collect()
        }
        Op::MaxPool {
            kernel,
            stride,
            padding,
        } => {
            let Shape::Chw(c, h, w) = in_shape else {
                return Err(malformed("maxpool on a flat value"));
            };
            max_pool(x, c, h, w, *kernel, *stride, *padding)
        }
        Op::Flatten => x.to_vec(),
    };
    if out.len() != layer.out_shape.elements() {
        return Err(malformed("output size differs from the declared shape"));
    }
    Ok(out)
}

fn max_pool(x: &[f32], c: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> Vec<f32> {
    let oh = (h + 2 * p - k) / s + 1;
    let ow = (w + 2 * p - k) / s + 1;
    let mut out = vec![f32::NEG_INFINITY; c * oh * ow];
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..k {
                    for kx in 0..k {
                        let iy = (oy * s + ky) as isize - p as isize;
                        let ix = (ox * s + kx) as isize - p as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            m = m.max(x[ch * h * w + iy as usize * w + ix as usize]);
                        }
                    }
                }
                out[(ch * oh + oy) * ow + ox] = m;
            }
        }
    }
    out
}

/// The index of the largest logit (the predicted class).
pub fn argmax(logits: &[f32]) -> usize {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}
