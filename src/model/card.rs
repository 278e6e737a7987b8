//! The model card: what a bundle says about where it came from, and what input the network
//! expects ([`Preprocessing`]).

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
    /// The input the network expects; absent in bundles written before it existed, which are
    /// taken as `[0, 1]` pixels without normalisation (see [`ModelCard::preprocessing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Preprocessing>,
}

impl ModelCard {
    /// The preprocessing the network expects: the card's, or `[0, 1]` pixels without
    /// normalisation for a card that predates the record.
    pub fn preprocessing(&self) -> Preprocessing {
        self.preprocessing.clone().unwrap_or_default()
    }

    /// The warning an evaluator gives when the card has no preprocessing record, naming what is
    /// assumed; `None` when the card has one.
    pub fn missing_preprocessing_warning(&self) -> Option<String> {
        if self.preprocessing.is_some() {
            return None;
        }
        Some(format!(
            "model card{} has no `preprocessing` record (a bundle from before it existed): \
             assuming inputs x/255 in [0, 1] without mean/std normalisation; re-export with \
             tools/export_checkpoint.py --normalize to record what the network was trained on",
            self.name
                .as_deref()
                .map(|n| format!(" of `{n}`"))
                .unwrap_or_default()
        ))
    }
}

/// How pixels reach the network: `x/255` to `[0, 1]`, then per channel `(x − mean) / std` when
/// `mean`/`std` are given. Stored in the card as
/// `{"scale": "unit", "mean": [..], "std": [..], "name": "cifar10"}` (docs/FORMAT.md).
///
/// Datasets ([`crate::data`]) yield `[0, 1]` images and attacks work in that pixel space
/// (ε = 8/255 is a pixel budget); [`Preprocessing::apply`] then maps a batch to the network's
/// input. The map is affine per channel, `y = a·x + b` with `a = 1/std`, `b = −mean/std`
/// ([`Preprocessing::affine`]), so an input gradient with respect to `x` is the network's
/// gradient with respect to `y` times `a` ([`Preprocessing::backward`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Preprocessing {
    /// How stored pixels are scaled before normalisation.
    #[serde(default)]
    pub scale: PixelScale,
    /// Per-channel mean subtracted after scaling; absent (or null) for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviation divided by; present exactly when `mean` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
    /// The preset the values came from (`cifar10`, `cifar100`, `tiny-imagenet`, `none`), for
    /// reports; informative only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The pixel scaling before normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PixelScale {
    /// 8-bit pixels divided by 255 into `[0, 1]` (torchvision's `ToTensor`).
    #[default]
    Unit,
}

/// A preprocessing record or request that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input preprocessing: {0}")]
pub struct PreprocessingError(pub String);

/// Named presets: what the training code of each dataset feeds its models (docs/EXPORT.md).
const PRESETS: [(&str, [f32; 3], [f32; 3]); 4] = [
    // RLNet (dataset/cifar10.py, helper/attack.py) and SNL (datasets.py)
    (
        "cifar10",
        [0.4914, 0.4822, 0.4465],
        [0.2023, 0.1994, 0.2010],
    ),
    // RLNet (dataset/cifar100.py, helper/attack.py) and SNL (datasets.py)
    (
        "cifar100",
        [0.5071, 0.4867, 0.4408],
        [0.2675, 0.2565, 0.2761],
    ),
    // SNL (datasets.py _TINY_MEAN/_TINY_STD); RLNet feeds Tiny-ImageNet unnormalised (`none`)
    (
        "tiny-imagenet",
        [0.480, 0.448, 0.398],
        [0.277, 0.269, 0.282],
    ),
    // torchvision's ImageNet statistics
    ("imagenet", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
];

impl Preprocessing {
    /// `[0, 1]` pixels, no normalisation.
    pub fn unit() -> Preprocessing {
        Preprocessing {
            name: Some("none".into()),
            ..Preprocessing::default()
        }
    }

    /// Per-channel normalisation after `x/255`.
    pub fn normalized(mean: Vec<f32>, std: Vec<f32>) -> Preprocessing {
        Preprocessing {
            scale: PixelScale::Unit,
            mean: Some(mean),
            std: Some(std),
            name: None,
        }
    }

    /// `none`, a preset name (`cifar10`, `cifar100`, `tiny-imagenet`: SNL's values, `imagenet`) or
    /// `R,G,B/R,G,B` (mean/std), as the exporter's `--normalize` takes.
    pub fn parse(spec: &str) -> Result<Preprocessing, PreprocessingError> {
        let spec = spec.trim();
        if spec == "none" {
            return Ok(Preprocessing::unit());
        }
        if let Some((name, mean, std)) = PRESETS.iter().find(|(n, _, _)| *n == spec) {
            return Ok(Preprocessing {
                name: Some((*name).into()),
                ..Preprocessing::normalized(mean.to_vec(), std.to_vec())
            });
        }
        let (m, s) = spec.split_once('/').ok_or_else(|| {
            PreprocessingError(format!(
                "`{spec}` is neither none, a preset ({}) nor MEAN/STD like 0.5,0.5,0.5/0.25,0.25,0.25",
                PRESETS.map(|p| p.0).join(", ")
            ))
        })?;
        let list = |t: &str| -> Result<Vec<f32>, PreprocessingError> {
            t.split(',')
                .map(|v| {
                    v.trim().parse::<f32>().map_err(|_| {
                        PreprocessingError(format!("`{v}` in `{spec}` is not a number"))
                    })
                })
                .collect()
        };
        let p = Preprocessing::normalized(list(m)?, list(s)?);
        let channels = p.mean.as_ref().map_or(0, Vec::len);
        p.validate(channels)?;
        Ok(p)
    }

    /// Checks the record for a network with `channels` input channels: `mean` and `std` both
    /// present or both absent, one finite value per channel, `std > 0`.
    pub fn validate(&self, channels: usize) -> Result<(), PreprocessingError> {
        match (&self.mean, &self.std) {
            (None, None) => Ok(()),
            (Some(_), None) | (None, Some(_)) => Err(PreprocessingError(
                "`mean` and `std` must be given together".into(),
            )),
            (Some(m), Some(s)) => {
                if m.len() != channels || s.len() != channels {
                    return Err(PreprocessingError(format!(
                        "{} mean and {} std values for {channels} input channels",
                        m.len(),
                        s.len()
                    )));
                }
                if m.iter().any(|v| !v.is_finite()) {
                    return Err(PreprocessingError(format!("mean {m:?} is not finite")));
                }
                if s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(PreprocessingError(format!(
                        "std {s:?} must be finite and positive"
                    )));
                }
                Ok(())
            }
        }
    }

    /// Per channel `(a, b)` with network input `y = a·x + b` for `x` in `[0, 1]`.
    pub fn affine(&self, channels: usize) -> Vec<(f32, f32)> {
        match (&self.mean, &self.std) {
            (Some(m), Some(s)) => m.iter().zip(s).map(|(&m, &s)| (1.0 / s, -m / s)).collect(),
            _ => vec![(1.0, 0.0); channels],
        }
    }

    /// Whether the map is the identity on `[0, 1]` images.
    pub fn is_identity(&self) -> bool {
        self.mean.is_none() && self.std.is_none()
    }

    /// Maps a batch of `[0, 1]` images (NCHW, each `channels × plane`) to the network's input,
    /// in place: `y = (x − mean) / std` per channel.
    pub fn apply(
        &self,
        batch: &mut [f32],
        channels: usize,
        plane: usize,
    ) -> Result<(), PreprocessingError> {
        // (x − mean) / std exactly as torchvision's Normalize computes it, not x·a + b.
        let (m, s) = (self.mean.clone(), self.std.clone());
        self.per_channel(batch, channels, plane, |c, v| {
            if let (Some(m), Some(s)) = (&m, &s) {
                *v = (*v - m[c]) / s[c];
            }
        })
    }

    /// Maps a gradient with respect to the network's input back to the `[0, 1]` pixels, in
    /// place: `∂L/∂x = ∂L/∂y / std` per channel.
    pub fn backward(
        &self,
        grad: &mut [f32],
        channels: usize,
        plane: usize,
    ) -> Result<(), PreprocessingError> {
        let s = self.std.clone();
        self.per_channel(grad, channels, plane, |c, v| {
            if let Some(s) = &s {
                *v /= s[c];
            }
        })
    }

    fn per_channel(
        &self,
        batch: &mut [f32],
        channels: usize,
        plane: usize,
        f: impl Fn(usize, &mut f32),
    ) -> Result<(), PreprocessingError> {
        self.validate(channels)?;
        let image = channels * plane;
        if image == 0 || !batch.len().is_multiple_of(image) {
            return Err(PreprocessingError(format!(
                "a batch of {} values is not whole images of {channels}×{plane}",
                batch.len()
            )));
        }
        if self.is_identity() {
            return Ok(());
        }
        for img in batch.chunks_exact_mut(image) {
            for (c, ch) in img.chunks_exact_mut(plane).enumerate() {
                ch.iter_mut().for_each(|v| f(c, v));
            }
        }
        Ok(())
    }

    /// A short label: the preset name, or `MEAN/STD`.
    pub fn label(&self) -> String {
        match (&self.name, &self.mean, &self.std) {
            (Some(n), _, _) => n.clone(),
            (None, Some(m), Some(s)) => {
                let j = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
                format!("{}/{}", j(m), j(s))
            }
            _ => "none".into(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_explicit_values_parse() {
        let c10 = Preprocessing::parse("cifar10").unwrap();
        assert_eq!(c10.mean.as_deref(), Some(&[0.4914f32, 0.4822, 0.4465][..]));
        assert_eq!(c10.std.as_deref(), Some(&[0.2023f32, 0.1994, 0.2010][..]));
        assert_eq!(c10.label(), "cifar10");
        assert!(Preprocessing::parse("none").unwrap().is_identity());
        let p = Preprocessing::parse("0.5,0.5,0.5/0.25, 0.5,1").unwrap();
        assert_eq!(p.std, Some(vec![0.25, 0.5, 1.0]));
        assert_eq!(p.label(), "0.5,0.5,0.5/0.25,0.5,1");
        for bad in [
            "cifar",
            "0.5,0.5/0.1,0.1,0.1",
            "a,b,c/1,1,1",
            "0,0,0/1,0,1",
            "0,0,0/1,-1,1",
        ] {
            assert!(Preprocessing::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn apply_is_torchvision_normalize_and_backward_its_jacobian() {
        let p = Preprocessing::parse("0.5,0.25/0.5,2").unwrap();
        // Two images of 2 channels × 2 pixels.
        let x = [0.0f32, 1.0, 0.25, 0.75, 0.5, 0.5, 1.0, 0.0];
        let mut y = x;
        p.apply(&mut y, 2, 2).unwrap();
        assert_eq!(y, [-1.0, 1.0, 0.0, 0.25, 0.0, 0.0, 0.375, -0.125]);
        // y = a·x + b per channel, with a and b from affine().
        let ab = p.affine(2);
        for (i, (&xi, &yi)) in x.iter().zip(&y).enumerate() {
            let (a, b) = ab[(i / 2) % 2];
            assert!((a * xi + b - yi).abs() < 1e-6);
        }
        let mut g = [1.0f32; 8];
        p.backward(&mut g, 2, 2).unwrap();
        assert_eq!(g, [2.0, 2.0, 0.5, 0.5, 2.0, 2.0, 0.5, 0.5]);
        assert!(p.apply(&mut [0.0; 6], 2, 2).is_err());
        assert!(p.apply(&mut [0.0; 12], 3, 2).is_err());
        let mut same = x;
        Preprocessing::unit().apply(&mut same, 2, 2).unwrap();
        assert_eq!(same, x);
    }

    #[test]
    fn card_json_round_trips_and_old_cards_default_to_unit() {
        let old = r#"{"architecture":"resnet18","dataset":"cifar10","input_shape":[3,32,32],"classes":10,"method":"rlnet"}"#;
        let card: ModelCard = serde_json::from_str(old).unwrap();
        assert!(card.preprocessing.is_none());
        assert!(card.preprocessing().is_identity());
        assert!(card.missing_preprocessing_warning().is_some());
        // An old card serialises as before (no `preprocessing` key).
        assert!(!serde_json::to_string(&card)
            .unwrap()
            .contains("preprocessing"));
        let new = r#"{"architecture":"resnet18","dataset":"cifar10","input_shape":[3,32,32],"classes":10,"method":"rlnet",
            "preprocessing":{"scale":"unit","mean":[0.4914,0.4822,0.4465],"std":[0.2023,0.1994,0.201],"name":"cifar10"}}"#;
        let card: ModelCard = serde_json::from_str(new).unwrap();
        assert_eq!(
            card.preprocessing(),
            Preprocessing::parse("cifar10").unwrap()
        );
        assert!(card.missing_preprocessing_warning().is_none());
        let back: ModelCard = serde_json::from_str(&serde_json::to_string(&card).unwrap()).unwrap();
        assert_eq!(back, card);
        let unknown = new.replace("\"unit\"", "\"percent\"");
        assert!(serde_json::from_str::<ModelCard>(&unknown).is_err());
    }
}
