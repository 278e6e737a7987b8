//! Architecture builders: the raw graphs of ResNet18 in the checkpoint layouts pibench imports
//! (RLNet's `CustomResNet18` with dual or single batch norm, and SNL's CIFAR ResNet18), for
//! CIFAR and Tiny-ImageNet, at full or reduced width. `gen` fills them with synthetic weights;
//! the Python exporter writes graphs of the same shape from real checkpoints.
//!
//! The layouts differ in what they compute, not just in names:
//! - RLNet (`models/customresnet.py`): stem conv3×3+BN then a ReLU site; each BasicBlock is
//!   conv-bn-relu-conv-bn, and **adds a skip connection only when it has a projection shortcut**
//!   (`conv_sc`+`bn_sc`, the first block of stages 2–4); blocks without one add nothing. Then a
//!   ReLU site. 17 sites; 557,056 ReLUs on 32×32.
//! - SNL (`archs_unstructured/cifar_resnet.py`, `resnet18_in`): stem conv3×3+BN with **no**
//!   ReLU; each block is conv-bn-alpha1-conv-bn, plus the shortcut (identity, or
//!   `shortcut.0` conv1×1 + `shortcut.1` BN when the shape changes), then alpha2. 16 sites;
//!   491,520 ReLUs on 32×32.

use std::fmt;
use std::str::FromStr;

use super::card::ModelCard;
use super::error::ModelError;
use super::raw::{
    Kernel, RawAdd, RawAvgPool, RawBatchNorm, RawBnParams, RawConv2d, RawDualBatchNorm, RawFlatten,
    RawGraph, RawInput, RawLinear, RawOp, RawRelu,
};

/// The checkpoint layout a graph reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// RLNet `CustomResNet18` with `DualBN2d` (`BN_c` / `BN_a`).
    RlnetDualBn,
    /// RLNet `CustomResNet18` with plain batch norm (the SeNet-style pipeline).
    RlnetSingleBn,
    /// SNL's CIFAR ResNet18 (torchvision-style identity skips, no stem ReLU).
    Snl,
}

impl Layout {
    /// The name stored in the card's `layout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::RlnetDualBn => "rlnet-dual-bn",
            Layout::RlnetSingleBn => "rlnet-single-bn",
            Layout::Snl => "snl",
        }
    }

    /// The method a bundle of this layout is labelled with by default.
    pub fn default_method(self) -> &'static str {
        match self {
            Layout::RlnetDualBn => "rlnet",
            Layout::RlnetSingleBn => "senet",
            Layout::Snl => "snl",
        }
    }

    /// Whether batch norms are dual.
    pub fn dual_bn(self) -> bool {
        self == Layout::RlnetDualBn
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layout {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rlnet-dual-bn" | "rlnet" => Ok(Layout::RlnetDualBn),
            "rlnet-single-bn" | "senet" => Ok(Layout::RlnetSingleBn),
            "snl" | "torchvision" => Ok(Layout::Snl),
            other => Err(ModelError::Gen {
                reason: format!(
                    "unknown layout `{other}` (expected rlnet-dual-bn, rlnet-single-bn or snl)"
                ),
            }),
        }
    }
}

/// The dataset fixes the input size and the number of classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// 32×32, 10 classes.
    Cifar10,
    /// 32×32, 100 classes.
    Cifar100,
    /// 64×64, 200 classes.
    TinyImageNet,
}

impl Dataset {
    /// The name stored in the card.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "cifar10",
            Dataset::Cifar100 => "cifar100",
            Dataset::TinyImageNet => "tiny-imagenet",
        }
    }

    /// The short tag used in bundle names (`c10`, `c100`, `tin`).
    pub fn short(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "c10",
            Dataset::Cifar100 => "c100",
            Dataset::TinyImageNet => "tin",
        }
    }

    /// Input side length.
    pub fn side(self) -> usize {
        match self {
            Dataset::Cifar10 | Dataset::Cifar100 => 32,
            Dataset::TinyImageNet => 64,
        }
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            Dataset::Cifar10 => 10,
            Dataset::Cifar100 => 100,
            Dataset::TinyImageNet => 200,
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dataset {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cifar10" | "c10" | "cifar-10" => Ok(Dataset::Cifar10),
            "cifar100" | "c100" | "cifar-100" => Ok(Dataset::Cifar100),
            "tiny-imagenet" | "tiny_imagenet" | "tinyimagenet" | "tin" => Ok(Dataset::TinyImageNet),
            other => Err(ModelError::Gen {
                reason: format!(
                    "unknown dataset `{other}` (expected cifar10, cifar100 or tiny-imagenet)"
                ),
            }),
        }
    }
}

/// Which ResNet18 to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArchSpec {
    /// Checkpoint layout.
    pub layout: Layout,
    /// Dataset (input size, classes).
    pub dataset: Dataset,
    /// Base width: 64 for the real network; smaller (e.g. 16) for tests and benches.
    pub width: usize,
}

impl ArchSpec {
    /// The full-width ResNet18 of this layout and dataset.
    pub fn resnet18(layout: Layout, dataset: Dataset) -> ArchSpec {
        ArchSpec {
            layout,
            dataset,
            width: 64,
        }
    }
}

/// One batch norm of the built graph and the tensors it names (one set, or clean then adv).
#[derive(Clone, Debug, PartialEq)]
pub struct BnSpec {
    /// The batch-norm op's name.
    pub op: String,
    /// Channels.
    pub channels: usize,
    /// Parameter tensor names: `[single]` or `[clean, adv]`.
    pub paths: Vec<RawBnParams>,
}

/// One ReLU site of the built graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteSpec {
    /// The relu op's name.
    pub op: String,
    /// The mask tensor name the op refers to (`mask.<site>`).
    pub mask: String,
    /// Activation `[C, H, W]`.
    pub shape: [usize; 3],
}

impl SiteSpec {
    /// Elements of the activation.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A built architecture: the graph (every relu naming its mask), its batch norms and sites, and
/// a card prefilled with architecture, dataset, shape, classes and layout.
#[derive(Clone, Debug)]
pub struct Arch {
    /// What was built.
    pub spec: ArchSpec,
    /// The graph.
    pub graph: RawGraph,
    /// Batch norms in graph order.
    pub bns: Vec<BnSpec>,
    /// ReLU sites in graph order.
    pub sites: Vec<SiteSpec>,
    /// The card's architecture fields (method left to the caller).
    pub card: ModelCard,
}

/// Accumulates ops while tracking the current value and its shape.
struct GraphBuilder {
    layout: Layout,
    ops: Vec<RawOp>,
    bns: Vec<BnSpec>,
    sites: Vec<SiteSpec>,
}

impl GraphBuilder {
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        input: &str,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> String {
        self.ops.push(RawOp::Conv2d(RawConv2d {
            name: name.to_string(),
            input: input.to_string(),
            weight: format!("{name}.weight"),
            bias: None,
            stride,
            padding,
            out_channels: Some(out_channels),
            kernel: Some(Kernel::Square(kernel)),
        }));
        name.to_string()
    }

    fn bn(&mut self, name: &str, input: &str, channels: usize) -> String {
        let params = |prefix: String| RawBnParams {
            weight: format!("{prefix}.weight"),
            bias: format!("{prefix}.bias"),
            running_mean: format!("{prefix}.running_mean"),
            running_var: format!("{prefix}.running_var"),
        };
        if self.layout.dual_bn() {
            let (clean, adv) = (
                params(format!("{name}.BN_c")),
                params(format!("{name}.BN_a")),
            );
            self.ops.push(RawOp::DualBatchNorm(RawDualBatchNorm {
                name: name.to_string(),
                input: input.to_string(),
                eps: 1e-5,
                clean: clean.clone(),
                adv: adv.clone(),
            }));
            self.bns.push(BnSpec {
                op: name.to_string(),
                channels,
                paths: vec![clean, adv],
            });
        } else {
            let p = params(name.to_string());
            self.ops.push(RawOp::BatchNorm(RawBatchNorm {
                name: name.to_string(),
                input: input.to_string(),
                params: p.clone(),
                eps: 1e-5,
            }));
            self.bns.push(BnSpec {
                op: name.to_string(),
                channels,
                paths: vec![p],
            });
        }
        name.to_string()
    }

    fn relu(&mut self, name: &str, input: &str, shape: [usize; 3]) -> String {
        let mask = format!("mask.{}", self.sites.len());
        self.ops.push(RawOp::Relu(RawRelu {
            name: name.to_string(),
            input: input.to_string(),
            mask: Some(mask.clone()),
        }));
        self.sites.push(SiteSpec {
            op: name.to_string(),
            mask,
            shape,
        });
        name.to_string()
    }

    fn add(&mut self, name: &str, a: &str, b: &str) -> String {
        self.ops.push(RawOp::Add(RawAdd {
            name: name.to_string(),
            inputs: vec![a.to_string(), b.to_string()],
        }));
        name.to_string()
    }
}

/// Builds ResNet18 (BasicBlocks `[2, 2, 2, 2]`, widths `w, 2w, 4w, 8w`, 3×3 stride-1 stem, global
/// average pool, linear) in the requested layout.
pub fn resnet18(spec: &ArchSpec) -> Result<Arch, ModelError> {
    if spec.width == 0 || spec.width > 1024 {
        return Err(ModelError::Gen {
            reason: format!("width {} is outside 1..=1024", spec.width),
        });
    }
    let side = spec.dataset.side();
    let classes = spec.dataset.classes();
    let w = spec.width;
    let mut g = GraphBuilder {
        layout: spec.layout,
        ops: Vec::new(),
        bns: Vec::new(),
        sites: Vec::new(),
    };
    let rlnet = spec.layout != Layout::Snl;

    let mut x = g.conv("conv1", "input", w, 3, 1, 1);
    x = g.bn("bn1", &x, w);
    if rlnet {
        x = g.relu("relu", &x, [w, side, side]);
    }
    let (mut in_c, mut hw) = (w, side);
    for stage in 0..4 {
        let planes = w << stage;
        for block in 0..2 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let p = format!("layer{}.{block}", stage + 1);
            let out_hw = hw / stride;
            let shape = [planes, out_hw, out_hw];
            let projection = stride != 1 || in_c != planes;
            let block_in = x.clone();
            let mut y = g.conv(&format!("{p}.conv1"), &block_in, planes, 3, stride, 1);
            y = g.bn(&format!("{p}.bn1"), &y, planes);
            let act1 = if rlnet { "relu1" } else { "alpha1" };
            y = g.relu(&format!("{p}.{act1}"), &y, shape);
            y = g.conv(&format!("{p}.conv2"), &y, planes, 3, 1, 1);
            y = g.bn(&format!("{p}.bn2"), &y, planes);
            if rlnet {
                if projection {
                    let sc = g.conv(&format!("{p}.conv_sc"), &block_in, planes, 1, stride, 0);
                    let sc = g.bn(&format!("{p}.bn_sc"), &sc, planes);
                    y = g.add(&format!("{p}.add"), &y, &sc);
                }
                x = g.relu(&format!("{p}.relu2"), &y, shape);
            } else {
                let sc = if projection {
                    let sc = g.conv(&format!("{p}.shortcut.0"), &block_in, planes, 1, stride, 0);
                    g.bn(&format!("{p}.shortcut.1"), &sc, planes)
                } else {
                    block_in
                };
                y = g.add(&format!("{p}.add"), &y, &sc);
                x = g.relu(&format!("{p}.alpha2"), &y, shape);
            }
            in_c = planes;
            hw = out_hw;
        }
    }
    g.ops.push(RawOp::AvgPool(RawAvgPool {
        name: "avgpool".into(),
        input: x,
        global: true,
        kernel: None,
        stride: None,
    }));
    g.ops.push(RawOp::Flatten(RawFlatten {
        name: "flatten".into(),
        input: "avgpool".into(),
    }));
    g.ops.push(RawOp::Linear(RawLinear {
        name: "linear".into(),
        input: "flatten".into(),
        weight: "linear.weight".into(),
        bias: Some("linear.bias".into()),
        out_features: Some(classes),
    }));
    let graph = RawGraph {
        input: RawInput {
            name: "input".into(),
            shape: vec![3, side, side],
        },
        output: Some("linear".into()),
        ops: g.ops,
    };
    let card = ModelCard {
        architecture: "resnet18".into(),
        dataset: spec.dataset.as_str().into(),
        input_shape: vec![3, side, side],
        classes,
        layout: Some(spec.layout.as_str().into()),
        ..ModelCard::default()
    };
    Ok(Arch {
        spec: *spec,
        graph,
        bns: g.bns,
        sites: g.sites,
        card,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relus(a: &Arch) -> usize {
        a.sites.iter().map(SiteSpec::elements).sum()
    }

    #[test]
    fn site_counts_match_the_papers() {
        let rl = resnet18(&ArchSpec::resnet18(Layout::RlnetDualBn, Dataset::Cifar10)).unwrap();
        assert_eq!(rl.sites.len(), 17);
        assert_eq!(relus(&rl), 557_056);
        let snl = resnet18(&ArchSpec::resnet18(Layout::Snl, Dataset::Cifar100)).unwrap();
        assert_eq!(snl.sites.len(), 16);
        assert_eq!(relus(&snl), 491_520);
        let tin = resnet18(&ArchSpec::resnet18(
            Layout::RlnetSingleBn,
            Dataset::TinyImageNet,
        ))
        .unwrap();
        assert_eq!(relus(&tin), 4 * 557_056);
        assert_eq!(tin.card.classes, 200);
    }

    #[test]
    fn rlnet_adds_skips_only_with_projection_and_snl_always() {
        let count_adds = |a: &Arch| {
            a.graph
                .ops
                .iter()
                .filter(|o| matches!(o, RawOp::Add(_)))
                .count()
        };
        let rl = resnet18(&ArchSpec::resnet18(Layout::RlnetSingleBn, Dataset::Cifar10)).unwrap();
        assert_eq!(count_adds(&rl), 3);
        assert!(rl.graph.ops.iter().any(|o| o.name() == "layer2.0.conv_sc"));
        assert!(!rl.graph.ops.iter().any(|o| o.name() == "layer1.0.conv_sc"));
        let snl = resnet18(&ArchSpec::resnet18(Layout::Snl, Dataset::Cifar10)).unwrap();
        assert_eq!(count_adds(&snl), 8);
        assert!(snl
            .graph
            .ops
            .iter()
            .any(|o| o.name() == "layer3.0.shortcut.0"));
    }

    #[test]
    fn dual_bn_names_follow_rlnet_checkpoints() {
        let rl = resnet18(&ArchSpec::resnet18(Layout::RlnetDualBn, Dataset::Cifar10)).unwrap();
        let bn = rl.bns.iter().find(|b| b.op == "layer2.0.bn1").unwrap();
        assert_eq!(bn.paths[0].running_mean, "layer2.0.bn1.BN_c.running_mean");
        assert_eq!(bn.paths[1].weight, "layer2.0.bn1.BN_a.weight");
        assert_eq!(bn.channels, 128);
    }
}
