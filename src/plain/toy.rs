//! A small residual network built in code, for unit tests of the plain and secure inference that
//! must not depend on bundle files.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{Conv2d, Layer, Linear, Mask, ModelCard, Network, Op, Shape, ValueId};

/// How the toy network's ReLU sites are masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToyMasks {
    /// Every element keeps its ReLU.
    All,
    /// Every element is linearized.
    None,
    /// Each element kept with probability 1/2.
    Random,
}

#[allow(clippy::too_many_arguments)]
fn conv(
    rng: &mut ChaCha8Rng,
    name: &str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    input: ValueId,
    h: usize,
) -> Layer {
    let fan_in = (cin * k * k) as f32;
    let std = (2.0 / fan_in).sqrt();
    let weight = (0..cout * cin * k * k)
        .map(|_| (rng.gen::<f32>() * 2.0 - 1.0) * std * 1.7)
        .collect();
    let bias = (0..cout).map(|_| rng.gen::<f32>() * 0.2 - 0.1).collect();
    let pad = k / 2;
    let oh = (h + 2 * pad - k) / stride + 1;
    Layer {
        name: name.into(),
        op: Op::Conv2d(Conv2d {
            out_channels: cout,
            in_channels: cin,
            kernel: (k, k),
            stride,
            padding: pad,
            weight,
            bias,
        }),
        inputs: vec![input],
        out_shape: Shape::Chw(cout, oh, oh),
    }
}

/// ReLU site `site` on the output of layer `input`, of shape `(c, h, w)`.
fn relu(
    rng: &mut ChaCha8Rng,
    name: &str,
    site: usize,
    input: usize,
    (c, h, w): (usize, usize, usize),
    masks: ToyMasks,
) -> Layer {
    let shape = Shape::Chw(c, h, w);
    let mask = match masks {
        ToyMasks::All => None,
        ToyMasks::None => Some(Mask {
            keep: vec![false; shape.elements()],
        }),
        ToyMasks::Random => Some(Mask {
            keep: (0..shape.elements()).map(|_| rng.gen_bool(0.5)).collect(),
        }),
    };
    Layer {
        name: name.into(),
        op: Op::Relu { site, mask },
        inputs: vec![ValueId::Layer(input)],
        out_shape: shape,
    }
}

/// A 3×8×8-input network: conv-relu, a residual block with a projection shortcut, average pool,
/// linear to 5 classes; 3 ReLU sites.
#[allow(clippy::vec_init_then_push)]
pub fn toy_network(seed: u64, masks: ToyMasks) -> Network {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let mut layers = Vec::new();
    layers.push(conv(&mut rng, "conv0", 3, 4, 3, 1, ValueId::Input, 8)); // 0
    layers.push(relu(&mut rng, "relu0", 0, 0, (4, 8, 8), masks)); // 1
    layers.push(conv(&mut rng, "conv1", 4, 6, 3, 2, ValueId::Layer(1), 8)); // 2: 6x4x4
    layers.push(relu(&mut rng, "relu1", 1, 2, (6, 4, 4), masks)); // 3
    layers.push(conv(&mut rng, "conv2", 6, 6, 3, 1, ValueId::Layer(3), 4)); // 4
    layers.push(conv(&mut rng, "conv_sc", 4, 6, 1, 2, ValueId::Layer(1), 8)); // 5
    layers.push(Layer {
        name: "add".into(),
        op: Op::Add,
        inputs: vec![ValueId::Layer(4), ValueId::Layer(5)],
        out_shape: Shape::Chw(6, 4, 4),
    }); // 6
    layers.push(relu(&mut rng, "relu2", 2, 6, (6, 4, 4), masks)); // 7
    layers.push(Layer {
        name: "pool".into(),
        op: Op::AvgPool {
            kernel: 4,
            stride: 4,
        },
        inputs: vec![ValueId::Layer(7)],
        out_shape: Shape::Chw(6, 1, 1),
    }); // 8
    layers.push(Layer {
        name: "flat".into(),
        op: Op::Flatten,
        inputs: vec![ValueId::Layer(8)],
        out_shape: Shape::Flat(6),
    }); // 9
    let weight = (0..5 * 6).map(|_| rng.gen::<f32>() - 0.5).collect();
    let bias = (0..5).map(|_| rng.gen::<f32>() * 0.1).collect();
    layers.push(Layer {
        name: "fc".into(),
        op: Op::Linear(Linear {
            out_features: 5,
            in_features: 6,
            weight,
            bias,
        }),
        inputs: vec![ValueId::Layer(9)],
        out_shape: Shape::Flat(5),
    }); // 10
    Network {
        card: ModelCard {
            name: Some("toy".into()),
            architecture: "toy-resnet".into(),
            dataset: "random".into(),
            input_shape: vec![3, 8, 8],
            classes: 5,
            method: "toy".into(),
            synthetic: true,
            ..Default::default()
        },
        bn_path: Default::default(),
        dual_bn: false,
        input_shape: Shape::Chw(3, 8, 8),
        layers,
        output: ValueId::Layer(10),
    }
}

/// A random input for the toy network.
pub fn toy_input(seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    (0..3 * 8 * 8)
        .map(|_| rng.gen::<f32>() * 2.0 - 1.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::{forward_f32, FixedNetwork};
    use crate::ring::Ring;

    #[test]
    fn fixed_point_tracks_f32_on_the_toy_network() {
        for masks in [ToyMasks::All, ToyMasks::None, ToyMasks::Random] {
            for seed in 0..5 {
                let net = toy_network(seed, masks);
                let x = toy_input(seed);
                let want = forward_f32(&net, &x).unwrap();
                let fixed = FixedNetwork::lower(&net, Ring::new(64, 16).unwrap()).unwrap();
                let got = fixed.forward(&x).unwrap();
                for (g, w) in got.logits.iter().zip(&want) {
                    assert!(
                        (g - *w as f64).abs() < 1e-2,
                        "{masks:?} seed {seed}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn maxpool_is_refused_by_lowering() {
        let mut net = toy_network(1, ToyMasks::All);
        net.layers[8].op = Op::MaxPool {
            kernel: 4,
            stride: 4,
            padding: 0,
        };
        let err = FixedNetwork::lower(&net, Ring::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool") && err.contains("max pooling"), "{err}");
    }
}
