//! The models shipped in `models/`: their list, how each is generated, and where they live.
//! Regenerate them with `cargo test --release --lib model::bundled -- --ignored regenerate`.

use std::path::{Path, PathBuf};

use super::arch::{ArchSpec, Dataset, Layout};
use super::error::ModelError;
use super::gen::{generate, Allocation, GenSpec};

/// The seed every bundled model is generated from.
pub const BUNDLED_SEED: u64 = 20_240_208;

/// One bundled model.
#[derive(Clone, Debug, PartialEq)]
pub struct BundledModel {
    /// File name inside `models/`, also the card's name plus `.safetensors`.
    pub file: &'static str,
    /// Checkpoint layout.
    pub layout: Layout,
    /// Mask allocation.
    pub allocation: &'static str,
}

impl BundledModel {
    /// The generation spec of this model.
    pub fn spec(&self) -> Result<GenSpec, ModelError> {
        let mut spec = GenSpec::new(
            ArchSpec::resnet18(self.layout, Dataset::Cifar10),
            self.allocation.parse::<Allocation>()?,
            BUNDLED_SEED,
        );
        spec.name = Some(self.file.trim_end_matches(".safetensors").to_string());
        Ok(spec)
    }

    /// The path of this model in the repository's `models/`.
    pub fn path(&self) -> PathBuf {
        models_dir().join(self.file)
    }
}

/// ResNet18 on CIFAR-10 in RLNet's dual-BN layout and in the single-BN (SeNet) layout, at the
/// 50k (RLNet's CIFAR-100 list), 82k and 150k (the CIFAR-10 lists) budgets and all-ReLU.
pub const BUNDLED: [BundledModel; 8] = [
    BundledModel {
        file: "resnet18-c10-rlnet-50k.safetensors",
        layout: Layout::RlnetDualBn,
        allocation: "ResNet18_c100_relu50k",
    },
    BundledModel {
        file: "resnet18-c10-rlnet-82k.safetensors",
        layout: Layout::RlnetDualBn,
        allocation: "ResNet18_C10_relu82k",
    },
    BundledModel {
        file: "resnet18-c10-rlnet-150k.safetensors",
        layout: Layout::RlnetDualBn,
        allocation: "ResNet18_C10_relu150k",
    },
    BundledModel {
        file: "resnet18-c10-rlnet-all.safetensors",
        layout: Layout::RlnetDualBn,
        allocation: "all",
    },
    BundledModel {
        file: "resnet18-c10-senet-50k.safetensors",
        layout: Layout::RlnetSingleBn,
        allocation: "ResNet18_c100_relu50k",
    },
    BundledModel {
        file: "resnet18-c10-senet-82k.safetensors",
        layout: Layout::RlnetSingleBn,
        allocation: "ResNet18_C10_relu82k",
    },
    BundledModel {
        file: "resnet18-c10-senet-150k.safetensors",
        layout: Layout::RlnetSingleBn,
        allocation: "ResNet18_C10_relu150k",
    },
    BundledModel {
        file: "resnet18-c10-senet-all.safetensors",
        layout: Layout::RlnetSingleBn,
        allocation: "all",
    },
];

/// The repository's `models/` directory.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Generates every bundled model into `dir`, returning the paths written.
pub fn generate_all(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    BUNDLED
        .iter()
        .map(|m| {
            let path = dir.join(m.file);
            generate(&m.spec()?)?.write(&path)?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bundle::Bundle;
    use crate::model::gen::named_allocation;
    use crate::model::graph::BnPath;

    /// Rewrites `models/`. Ignored: run it on purpose after changing generation.
    #[test]
    #[ignore]
    fn regenerate() {
        let paths = generate_all(&models_dir()).unwrap();
        assert_eq!(paths.len(), BUNDLED.len());
    }

    #[test]
    fn bundled_models_load_with_the_counts_their_lists_say() {
        let mut total_bytes = 0;
        for m in &BUNDLED {
            let bundle = Bundle::open(m.path()).unwrap();
            total_bytes += std::fs::metadata(m.path()).unwrap().len();
            let card = bundle.card();
            assert_eq!(
                card.name.as_deref(),
                Some(m.file.trim_end_matches(".safetensors"))
            );
            assert!(card.synthetic);
            assert_eq!(bundle.has_dual_bn(), m.layout == Layout::RlnetDualBn);
            for path in [BnPath::Clean, BnPath::Adv] {
                if path == BnPath::Adv && !bundle.has_dual_bn() {
                    continue;
                }
                let net = bundle.network(path).unwrap();
                let sites = net.sites();
                assert_eq!(sites.len(), 17);
                assert_eq!(net.total_relus(), 557_056);
                let expect: Vec<usize> = match named_allocation(m.allocation) {
                    Some(f) => f
                        .iter()
                        .zip(&sites)
                        .map(|(f, s)| (f * s.elements as f64).round() as usize)
                        .collect(),
                    None => sites.iter().map(|s| s.elements).collect(),
                };
                let kept: Vec<usize> = sites.iter().map(|s| s.kept).collect();
                assert_eq!(kept, expect, "{}", m.file);
            }
        }
        assert!(total_bytes < 20 << 20, "models/ holds {total_bytes} bytes");
    }

    #[test]
    fn bundled_budgets() {
        // round(fraction × elements) summed over the 17 sites of full-width ResNet18 on CIFAR.
        for (file, budget) in [
            ("resnet18-c10-rlnet-50k.safetensors", 49_968),
            ("resnet18-c10-senet-82k.safetensors", 82_657),
            ("resnet18-c10-rlnet-150k.safetensors", 148_897),
            ("resnet18-c10-senet-all.safetensors", 557_056),
        ] {
            let card = Bundle::open(models_dir().join(file))
                .unwrap()
                .card()
                .clone();
            assert_eq!(card.budget, Some(budget), "{file}");
        }
    }

    #[test]
    fn committed_models_match_their_generator() {
        // One model regenerated in memory must carry the same tensors as the committed file.
        let m = &BUNDLED[1];
        let committed = Bundle::open(m.path()).unwrap();
        let fresh =
            Bundle::from_vec(generate(&m.spec().unwrap()).unwrap().to_bytes().unwrap()).unwrap();
        assert_eq!(committed.tensor_names(), fresh.tensor_names());
        for name in committed.tensor_names() {
            assert_eq!(
                committed.tensor_bytes(name),
                fresh.tensor_bytes(name),
                "{name}"
            );
        }
        assert_eq!(committed.card(), fresh.card());
        assert_eq!(committed.graph(), fresh.graph());
    }
}
