//! The model card: what a bundle says about where it came from.

use serde::{Deserialize, Serialize};

/// The model card stored in a bundle (`pibench.card`, see docs/FORMAT.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelCard {
    /// A short name for tables and plots.
    #[serde(default)]
    pub name: Option<String>,
    /// Architecture, e.g. `resnet18`, `wrn-22-8`.
    pub architecture: String,
    /// Dataset, e.g. `cifar10`, `cifar100`, `tiny-imagenet`.
    pub dataset: String,
    /// Input `[C, H, W]`.
    pub input_shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// Linearization method: `rlnet`, `senet`, `snl`, `dense`, ...
    pub method: String,
    /// Checkpoint layout, e.g. `rlnet-dual-bn`, `rlnet-single-bn`, `snl`, `torchvision`.
    #[serde(default)]
    pub layout: Option<String>,
    /// ReLUs kept by the masks.
    #[serde(default)]
    pub budget: Option<u64>,
    /// ReLU elements over all sites.
    #[serde(default)]
    pub total_relus: Option<u64>,
    /// Accuracies the checkpoint carried (percent).
    #[serde(default)]
    pub accuracy: Option<Accuracy>,
    /// Where the weights came from.
    #[serde(default)]
    pub source: Option<String>,
    /// True when the weights are not trained.
    #[serde(default)]
    pub synthetic: bool,
    /// The named mask allocation (for generated bundles).
    #[serde(default)]
    pub allocation: Option<String>,
    /// Free text.
    #[serde(default)]
    pub notes: Option<String>,
}

/// Accuracies reported by training, in percent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Accuracy {
    /// Clean accuracy (CA).
    #[serde(default)]
    pub clean: Option<f64>,
    /// Natural-perturbation accuracy (NPA, e.g. CIFAR-10-C).
    #[serde(default)]
    pub npa: Option<f64>,
    /// Adversarial accuracy (AdvA).
    #[serde(default)]
    pub adv: Option<f64>,
    /// The attack behind `adv`.
    #[serde(default)]
    pub attack: Option<String>,
}
