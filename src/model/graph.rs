//! The loaded network: ops in forward order with public shapes and masks and private weights,
//! batch norm already folded for the chosen path.

use serde::{Deserialize, Serialize};

use super::card::ModelCard;

/// The shape of one activation (no batch dimension).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// A feature map `[C, H, W]`.
    Chw(usize, usize, usize),
    /// A flat vector `[N]`.
    Flat(usize),
}

impl Shape {
    /// Number of elements.
    pub fn elements(&self) -> usize {
        match *self {
            Shape::Chw(c, h, w) => c * h * w,
            Shape::Flat(n) => n,
        }
    }

    /// The dimensions as a list, `[C, H, W]` or `[N]`.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Chw(c, h, w) => vec![c, h, w],
            Shape::Flat(n) => vec![n],
        }
    }
}

/// Which value an op reads: the network input or the output of an earlier layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValueId {
    /// The image.
    Input,
    /// The output of `layers[i]`.
    Layer(usize),
}

/// A 2-D convolution (batch norm folded in when it followed).
#[derive(Clone)]
pub struct Conv2d {
    /// Output channels.
    pub out_channels: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding on all four sides.
    pub padding: usize,
    /// Weights `[O, I, kh, kw]`, row-major.
    pub weight: Vec<f32>,
    /// Bias `[O]` (zeros when the bundle had none and no batch norm was folded).
    pub bias: Vec<f32>,
}

/// A fully connected layer `y = W x + b`.
#[derive(Clone)]
pub struct Linear {
    /// Output size.
    pub out_features: usize,
    /// Input size.
    pub in_features: usize,
    /// Weights `[O, I]`, row-major.
    pub weight: Vec<f32>,
    /// Bias `[O]`.
    pub bias: Vec<f32>,
}

/// A batch norm that could not be folded: `y[c] = scale[c] · x[c] + shift[c]`.
#[derive(Clone)]
pub struct ChannelAffine {
    /// Per-channel multiplier γ/σ.
    pub scale: Vec<f32>,
    /// Per-channel offset β − μ·γ/σ.
    pub shift: Vec<f32>,
}

// The weights are the server's secret: `Debug` shows shapes only.
impl std::fmt::Debug for Conv2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conv2d")
            .field("out_channels", &self.out_channels)
            .field("in_channels", &self.in_channels)
            .field("kernel", &self.kernel)
            .field("stride", &self.stride)
            .field("padding", &self.padding)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linear")
            .field("out_features", &self.out_features)
            .field("in_features", &self.in_features)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ChannelAffine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelAffine")
            .field("channels", &self.scale.len())
            .finish_non_exhaustive()
    }
}

/// The per-element ReLU mask of one site: `true` keeps the ReLU, `false` makes it the identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    /// One flag per element of the site's activation, row-major `[C, H, W]`.
    pub keep: Vec<bool>,
}

impl Mask {
    /// Number of kept ReLUs.
    pub fn kept(&self) -> usize {
        self.keep.iter().filter(|&&k| k).count()
    }
}

/// One operation of the network.
#[derive(Clone, Debug)]
pub enum Op {
    /// Convolution.
    Conv2d(Conv2d),
    /// Per-channel affine map (an unfolded batch norm).
    ChannelAffine(ChannelAffine),
    /// Fully connected layer.
    Linear(Linear),
    /// A ReLU site: `site` is its index in forward order; `mask` is `None` for all-ReLU.
    Relu {
        /// The site number, 0-based, in graph order.
        site: usize,
        /// The mask, or `None` when every element keeps its ReLU.
        mask: Option<Mask>,
    },
    /// Element-wise sum of the op's two inputs.
    Add,
    /// Average pooling with a square window and no padding.
    AvgPool {
        /// Window size.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Max pooling with a square window.
    MaxPool {
        /// Window size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding (never chosen as the maximum).
        padding: usize,
    },
    /// `[C,H,W]` to `[C·H·W]`.
    Flatten,
}

impl Op {
    /// The op's kind as the bundle format spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "conv2d",
            Op::ChannelAffine(_) => "batchnorm",
            Op::Linear(_) => "linear",
            Op::Relu { .. } => "relu",
            Op::Add => "add",
            Op::AvgPool { .. } => "avgpool",
            Op::MaxPool { .. } => "maxpool",
            Op::Flatten => "flatten",
        }
    }
}

/// One layer: an op, the values it reads and the shape it produces.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The op's name in the bundle (for a folded conv+bn, the conv's name).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// The values it reads: one, or two for `Add`.
    pub inputs: Vec<ValueId>,
    /// The shape of its output.
    pub out_shape: Shape,
}

impl Layer {
    /// Multiply-accumulates of this layer for one image (zero for non-linear and local ops).
    pub fn macs(&self) -> u64 {
        match &self.op {
            Op::Conv2d(c) => {
                (self.out_shape.elements() * c.in_channels * c.kernel.0 * c.kernel.1) as u64
            }
            Op::Linear(l) => (l.out_features * l.in_features) as u64,
            Op::ChannelAffine(_) => self.out_shape.elements() as u64,
            _ => 0,
        }
    }
}

/// Which batch-norm path of a dual-BN (RLNet) model is used. A public choice, made at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BnPath {
    /// `BN_c`, trained on clean inputs (λ = 0).
    #[default]
    Clean,
    /// `BN_a`, trained on adversarial inputs (λ = 1).
    Adv,
}

impl std::fmt::Display for BnPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BnPath::Clean => "clean",
            BnPath::Adv => "adv",
        })
    }
}

impl std::str::FromStr for BnPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "clean" => Ok(BnPath::Clean),
            "adv" => Ok(BnPath::Adv),
            other => Err(format!(
                "unknown batch-norm path `{other}` (expected `clean` or `adv`)"
            )),
        }
    }
}

/// A loaded network, ready for plain or secure inference.
#[derive(Clone, Debug)]
pub struct Network {
    /// The model card from the bundle.
    pub card: ModelCard,
    /// The batch-norm path this network was loaded with.
    pub bn_path: BnPath,
    /// Whether the bundle had dual batch norm (so `bn_path` mattered).
    pub dual_bn: bool,
    /// The input shape `[C, H, W]`.
    pub input_shape: Shape,
    /// Layers in forward order; each reads the input or earlier layers.
    pub layers: Vec<Layer>,
    /// The value holding the logits.
    pub output: ValueId,
}

/// A program of steps in forward order; step `i` computes `ValueId::Layer(i)` from the input or
/// earlier steps' outputs.
pub trait StepGraph {
    /// The shape of the input.
    fn input_shape(&self) -> Shape;
    /// Number of steps.
    fn step_count(&self) -> usize;
    /// The values step `step` reads, in operand order.
    fn step_inputs(&self, step: usize) -> &[ValueId];
    /// The shape of step `step`'s output.
    fn step_shape(&self, step: usize) -> Shape;
    /// The value holding the program's output.
    fn output(&self) -> ValueId;

    /// The shape of a value.
    fn shape_of(&self, v: ValueId) -> Shape {
        match v {
            ValueId::Input => self.input_shape(),
            ValueId::Layer(i) => self.step_shape(i),
        }
    }
}

impl StepGraph for Network {
    fn input_shape(&self) -> Shape {
        self.input_shape
    }
    fn step_count(&self) -> usize {
        self.layers.len()
    }
    fn step_inputs(&self, step: usize) -> &[ValueId] {
        &self.layers[step].inputs
    }
    fn step_shape(&self, step: usize) -> Shape {
        self.layers[step].out_shape
    }
    fn output(&self) -> ValueId {
        self.output
    }
}

/// One ReLU site as reported by `inspect` and the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    /// Site number.
    pub site: usize,
    /// Layer name of the ReLU op.
    pub name: String,
    /// Activation shape.
    pub shape: Vec<usize>,
    /// Elements of the activation (ReLUs if all kept).
    pub elements: usize,
    /// ReLUs kept by the mask.
    pub kept: usize,
}

impl Network {
    /// The shape of a value ([`StepGraph::shape_of`], here without importing the trait).
    pub fn shape_of(&self, v: ValueId) -> Shape {
        StepGraph::shape_of(self, v)
    }

    /// Every ReLU site in forward order.
    pub fn sites(&self) -> Vec<SiteInfo> {
        self.layers
            .iter()
            .filter_map(|l| match &l.op {
                Op::Relu { site, mask } => {
                    let elements = l.out_shape.elements();
                    Some(SiteInfo {
                        site: *site,
                        name: l.name.clone(),
                        shape: l.out_shape.dims(),
                        elements,
                        kept: mask.as_ref().map_or(elements, Mask::kept),
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Total ReLU elements over all sites (the all-ReLU count).
    pub fn total_relus(&self) -> usize {
        self.sites().iter().map(|s| s.elements).sum()
    }

    /// ReLUs kept by the masks: the budget.
    pub fn kept_relus(&self) -> usize {
        self.sites().iter().map(|s| s.kept).sum()
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(Layer::macs).sum()
    }
}
