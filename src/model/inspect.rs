//! Inspection (the logic of `pibench inspect`): what a bundle computes and what it will cost in
//! ReLUs and MACs, as a serializable record and a human table.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::bundle::Bundle;
use super::card::ModelCard;
use super::error::ModelError;
use super::graph::{BnPath, Network, Op, SiteInfo, ValueId};

/// One layer of the loaded network (batch norm already folded where it could be).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpInfo {
    /// Layer name.
    pub name: String,
    /// Op kind as the format spells it (`batchnorm` for an unfolded one).
    pub kind: String,
    /// Names of the values it reads (`input` for the image).
    pub inputs: Vec<String>,
    /// Output shape.
    pub output_shape: Vec<usize>,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Extra facts: channels, kernel, stride, padding; kept/total for a ReLU site.
    pub detail: String,
}

/// Everything `pibench inspect` reports about a network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// The model card.
    pub card: ModelCard,
    /// The batch-norm path the numbers were taken on.
    pub bn_path: BnPath,
    /// Whether the bundle has dual batch norm.
    pub dual_bn: bool,
    /// Input `[C, H, W]`.
    pub input_shape: Vec<usize>,
    /// Every layer in forward order.
    pub ops: Vec<OpInfo>,
    /// Every ReLU site.
    pub sites: Vec<SiteInfo>,
    /// ReLU elements over all sites.
    pub total_relus: usize,
    /// ReLUs kept by the masks (the budget).
    pub kept_relus: usize,
    /// Multiply-accumulates per inference.
    pub macs_total: u64,
}

impl Inspection {
    /// Inspects a bundle (on the clean batch-norm path; shapes, sites and MACs do not depend on
    /// the path).
    pub fn of_bundle(bundle: &Bundle) -> Result<Inspection, ModelError> {
        Ok(Inspection::of(&bundle.network(BnPath::Clean)?))
    }

    /// Inspects a loaded network.
    pub fn of(net: &Network) -> Inspection {
        let value_name = |v: ValueId| match v {
            ValueId::Input => "input".to_string(),
            ValueId::Layer(i) => net.layers[i].name.clone(),
        };
        let ops = net
            .layers
            .iter()
            .map(|l| {
                let detail = match &l.op {
                    Op::Conv2d(c) => format!(
                        "{}→{} k{}x{} s{} p{}",
                        c.in_channels, c.out_channels, c.kernel.0, c.kernel.1, c.stride, c.padding
                    ),
                    Op::Linear(li) => format!("{}→{}", li.in_features, li.out_features),
                    Op::Relu { site, mask } => {
                        let n = l.out_shape.elements();
                        let kept = mask.as_ref().map_or(n, |m| m.kept());
                        format!("site {site}: {kept}/{n} kept")
                    }
                    Op::AvgPool { kernel, stride } => format!("k{kernel} s{stride}"),
                    Op::MaxPool {
                        kernel,
                        stride,
                        padding,
                    } => format!("k{kernel} s{stride} p{padding}"),
                    Op::ChannelAffine(_) => "not folded".into(),
                    Op::Add | Op::Flatten => String::new(),
                };
                OpInfo {
                    name: l.name.clone(),
                    kind: l.op.kind().to_string(),
                    inputs: l.inputs.iter().map(|&v| value_name(v)).collect(),
                    output_shape: l.out_shape.dims(),
                    macs: l.macs(),
                    detail,
                }
            })
            .collect();
        let sites = net.sites();
        Inspection {
            card: net.card.clone(),
            bn_path: net.bn_path,
            dual_bn: net.dual_bn,
            input_shape: net.input_shape.dims(),
            ops,
            total_relus: sites.iter().map(|s| s.elements).sum(),
            kept_relus: sites.iter().map(|s| s.kept).sum(),
            sites,
            macs_total: net.macs(),
        }
    }
}

fn dims(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join("×")
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.card;
        writeln!(
            f,
            "{}  ({} on {}, input {}, {} classes)",
            c.name.as_deref().unwrap_or("(unnamed model)"),
            c.architecture,
            c.dataset,
            dims(&self.input_shape),
            c.classes
        )?;
        writeln!(
            f,
            "method {}  layout {}  batch norm {}{}",
            c.method,
            c.layout.as_deref().unwrap_or("-"),
            if self.dual_bn {
                "dual, path "
            } else {
                "single"
            },
            if self.dual_bn {
                self.bn_path.to_string()
            } else {
                String::new()
            }
        )?;
        if c.synthetic {
            writeln!(
                f,
                "SYNTHETIC weights (allocation {})",
                c.allocation.as_deref().unwrap_or("-")
            )?;
        }
        if let Some(a) = &c.accuracy {
            let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}%"));
            writeln!(
                f,
                "accuracy: clean {}  npa {}  adv {}{}",
                pct(a.clean),
                pct(a.npa),
                pct(a.adv),
                a.attack
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            )?;
        }
        writeln!(f)?;
        let nw = self
            .ops
            .iter()
            .map(|o| o.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let iw = self
            .ops
            .iter()
            .map(|o| o.inputs.join(", ").len())
            .max()
            .unwrap_or(6)
            .max(6);
        writeln!(
            f,
            "{:<nw$}  {:<9}  {:<iw$}  {:>13}  {:>13}  detail",
            "op", "kind", "inputs", "output", "MACs"
        )?;
        for o in &self.ops {
            let line = format!(
                "{:<nw$}  {:<9}  {:<iw$}  {:>13}  {:>13}  {}",
                o.name,
                o.kind,
                o.inputs.join(", "),
                dims(&o.output_shape),
                o.macs,
                o.detail
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        writeln!(f)?;
        let sw = self
            .sites
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            "{:>4}  {:<sw$}  {:>11}  {:>9}  {:>9}  {:>7}",
            "site", "name", "shape", "elements", "kept", "kept %"
        )?;
        for s in &self.sites {
            let pct = if s.elements == 0 {
                0.0
            } else {
                100.0 * s.kept as f64 / s.elements as f64
            };
            writeln!(
                f,
                "{:>4}  {:<sw$}  {:>11}  {:>9}  {:>9}  {:>6.2}%",
                s.site,
                s.name,
                dims(&s.shape),
                s.elements,
                s.kept,
                pct
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{} sites, {} ReLUs, {} kept ({:.2}%), {} MACs",
            self.sites.len(),
            self.total_relus,
            self.kept_relus,
            if self.total_relus == 0 {
                0.0
            } else {
                100.0 * self.kept_relus as f64 / self.total_relus as f64
            },
            self.macs_total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::{ArchSpec, Dataset, Layout};
    use crate::model::gen::{generate, Allocation, GenSpec};

    fn all_relu(layout: Layout) -> Inspection {
        let mut spec = GenSpec::new(
            ArchSpec::resnet18(layout, Dataset::Cifar10),
            Allocation::All,
            1,
        );
        spec.calibration_images = 1;
        let bytes = generate(&spec).unwrap().to_bytes().unwrap();
        Inspection::of_bundle(&Bundle::from_vec(bytes).unwrap()).unwrap()
    }

    #[test]
    fn rlnet_resnet18_has_17_sites_and_557056_relus() {
        let i = all_relu(Layout::RlnetDualBn);
        assert_eq!(i.sites.len(), 17);
        assert_eq!(i.total_relus, 557_056);
        assert_eq!(i.kept_relus, 557_056);
        assert!(i.dual_bn);
        // Every batch norm folds: no affine layers remain.
        assert!(i.ops.iter().all(|o| o.kind != "batchnorm"));
        // conv MACs of ResNet18 on CIFAR (0.56 G) plus the 512×10 classifier.
        assert_eq!(i.macs_total, 555_422_720);
        let text = i.to_string();
        assert!(text.contains("17 sites, 557056 ReLUs"), "{text}");
        let json = serde_json::to_string(&i).unwrap();
        let back: Inspection = serde_json::from_str(&json).unwrap();
        assert_eq!(back, i);
    }

    #[test]
    fn snl_resnet18_has_16_sites_and_491520_relus() {
        let i = all_relu(Layout::Snl);
        assert_eq!(i.sites.len(), 16);
        assert_eq!(i.total_relus, 491_520);
        assert!(!i.dual_bn);
        assert!(i.to_string().contains("16 sites, 491520 ReLUs"));
    }
}
