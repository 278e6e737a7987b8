//! The `pibench eval` job: a model and a test set in, the three accuracies (clean, corrupted,
//! adversarial) under the three arithmetics (f32, fixed point, PI) out, as counts that shards
//! merge exactly ([`super::results`]).
//!
//! Per batch of the shard's test images: the f32 classes ([`super::float`]), then for every ring
//! the fixed-point and the PI classes ([`super::pi`]). Corrupted images (CIFAR-C files or
//! generated corruptions) and adversarial images (crafted on the f32 network) go through the
//! same three. Dual-BN models use `BN_c` for clean and corrupted images and `BN_a` for the
//! attack and the adversarial images, as RLNet measures them. Every random draw (PGD's start,
//! generated corruptions, the PI shares) is seeded by the run seed and the image's index in the
//! test set, so any sharding or batching gives the same counts.

pub mod ring_choice;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::attack::{Attack, Pgd};
use super::float::FloatNet;
use super::pi::{Arithmetic, BatchEvaluator, ImageOutcome};
use super::results::{Counts, PiEffects, Tallies, Tally, TripleJson};
use crate::data::{self, Batch, CifarC, CorruptionSuite, DataOptions, Generated};
use crate::model::card::{ModelCard, Preprocessing};
use crate::model::{BnPath, Bundle, Network};
use crate::plain::f32::argmax;
use crate::plain::FixedNetwork;
use crate::ring::Ring;

/// The format tag of the JSON this module writes.
pub const SCHEMA: &str = "pibench-eval/1";

/// Errors of an evaluation job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The model bundle could not be loaded.
    #[error("model {path}: {source}")]
    Model {
        /// The bundle.
        path: PathBuf,
        /// Why.
        source: Box<crate::model::ModelError>,
    },
    /// The network cannot be lowered to the ring.
    #[error("model {path} at ℓ = {ell}, f = {frac}: {source}")]
    Lower {
        /// The bundle.
        path: PathBuf,
        /// Ring width.
        ell: u32,
        /// Fractional bits.
        frac: u32,
        /// Why.
        source: crate::plain::PlainError,
    },
    /// A data set could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The f32 evaluation or the attack failed.
    #[error(transparent)]
    Float(#[from] super::EvalError),
    /// The fixed-point or PI evaluation failed.
    #[error(transparent)]
    Pi(#[from] super::pi::PiError),
    /// The options do not make sense together.
    #[error("{0}")]
    Options(String),
    /// Shards that cannot be merged.
    #[error("cannot merge {path}: {reason}")]
    Merge {
        /// The offending shard.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or parsing a result file.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Which attack crafts the adversarial images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttackKind {
    /// L∞ projected gradient descent.
    Pgd,
    /// The fast gradient sign method.
    Fgsm,
    /// No adversarial evaluation.
    None,
}

impl AttackKind {
    /// Every attack.
    pub const ALL: [AttackKind; 3] = [AttackKind::Pgd, AttackKind::Fgsm, AttackKind::None];

    /// Its name on the command line (`--attack`).
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::Pgd => "pgd",
            AttackKind::Fgsm => "fgsm",
            AttackKind::None => "none",
        }
    }
}

impl std::fmt::Display for AttackKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AttackKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttackKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown attack `{s}` (expected pgd, fgsm or none)"))
    }
}

/// The attack as recorded in results.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackSpec {
    /// Which attack.
    pub kind: AttackKind,
    /// L∞ radius in \[0,1\] pixels.
    pub eps: f32,
    /// PGD step size.
    pub step: f32,
    /// PGD steps.
    pub steps: usize,
    /// PGD's random start.
    pub random_start: bool,
}

impl AttackSpec {
    fn attack(&self, seed: u64) -> Attack {
        match self.kind {
            AttackKind::None => Attack::None,
            AttackKind::Fgsm => Attack::Fgsm { eps: self.eps },
            AttackKind::Pgd => Attack::Pgd(Pgd {
                eps: self.eps,
                step: self.step,
                steps: self.steps,
                random_start: self.random_start,
                seed,
            }),
        }
    }
}

/// Where corrupted images come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptedSource {
    /// No NPA.
    None,
    /// A CIFAR-10-C / CIFAR-100-C directory.
    Files(PathBuf),
    /// Corruptions pibench generates from the test set.
    Generated,
}

/// One shard of an evaluation: `index` of `count`, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 1-based shard number.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("shard `{s}` is not K/N with 1 ≤ K ≤ N");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The images `[lo, hi)` of `total` this shard evaluates: contiguous blocks, as even as
    /// integer division allows.
    pub fn range(&self, total: usize) -> (usize, usize) {
        let lo = (self.index - 1) * total / self.count;
        let hi = self.index * total / self.count;
        (lo, hi)
    }
}

/// Everything an evaluation is asked to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// The model bundle.
    pub model: PathBuf,
    /// The test set (any layout [`crate::data::open`] reads).
    pub data: PathBuf,
    /// Where corrupted images come from.
    pub corrupted: CorruptedSource,
    /// Which corruptions (names); empty for every one the source has.
    pub corruptions: Vec<String>,
    /// Severities evaluated (RLNet averages over 1–5).
    pub severities: Vec<u8>,
    /// The attack.
    pub attack: AttackSpec,
    /// The rings evaluated; the first is the one reported at the top level.
    pub rings: Vec<Ring>,
    /// Keep the first N test images.
    pub limit: Option<usize>,
    /// Images per batch.
    pub batch: usize,
    /// Run seed of every random draw.
    pub seed: u64,
    /// Only this shard of the test images.
    pub shard: Option<Shard>,
    /// Also run this many images through the real two-party protocol.
    pub secure: usize,
}

/// A number or a fraction `a/b` (for ε = 8/255).
pub fn parse_fraction(s: &str) -> Result<f32, String> {
    let bad = || format!("`{s}` is not a number or a fraction like 8/255");
    let v = match s.split_once('/') {
        Some((a, b)) => {
            let a: f64 = a.trim().parse().map_err(|_| bad())?;
            let b: f64 = b.trim().parse().map_err(|_| bad())?;
            a / b
        }
        None => s.trim().parse().map_err(|_| bad())?,
    };
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Ok(v as f32)
}

/// The command line's choices, before they are checked and combined into [`EvalOptions`].
#[derive(Clone, Debug)]
pub struct CliChoices {
    /// The model bundle.
    pub model: PathBuf,
    /// The test set.
    pub data: PathBuf,
    /// A CIFAR-C directory.
    pub corrupted: Option<PathBuf>,
    /// `all`, `none` or a comma list of corruption names.
    pub corrupt: String,
    /// Severities.
    pub severities: Vec<u8>,
    /// The attack.
    pub attack: AttackKind,
    /// ε.
    pub eps: f32,
    /// PGD step.
    pub step: f32,
    /// PGD steps.
    pub steps: usize,
    /// PGD random start.
    pub random_start: bool,
    /// ℓ values.
    pub ell: Vec<u32>,
    /// f values.
    pub frac: Vec<u32>,
    /// `--limit`.
    pub limit: Option<usize>,
    /// Images per batch.
    pub batch: usize,
    /// Run seed.
    pub seed: u64,
    /// Images through the real protocol.
    pub secure: usize,
    /// The shard.
    pub shard: Option<Shard>,
}

impl EvalOptions {
    /// Check the command line's choices and combine them: every valid (ℓ, f) pair of the lists
    /// in order, the corruption source and list.
    pub fn from_cli(c: CliChoices) -> Result<EvalOptions, JobError> {
        let mut rings = Vec::new();
        let mut refused = Vec::new();
        for &ell in &c.ell {
            for &frac in &c.frac {
                match Ring::new(ell, frac) {
                    Ok(r) => rings.push(r),
                    Err(e) => refused.push(e.to_string()),
                }
            }
        }
        if rings.is_empty() {
            return Err(JobError::Options(format!(
                "no valid ring among --ell {:?} × --frac {:?}: {}",
                c.ell,
                c.frac,
                refused.join("; ")
            )));
        }
        if let Some(s) = c.severities.iter().find(|s| !(1..=5).contains(*s)) {
            return Err(JobError::Options(format!(
                "severity {s}: severities are 1 to 5"
            )));
        }
        let list = c.corrupt.trim();
        let (corrupted, corruptions) = match (c.corrupted, list) {
            (_, "none") => (CorruptedSource::None, Vec::new()),
            (Some(dir), "all") => (CorruptedSource::Files(dir), Vec::new()),
            (None, "all") => (CorruptedSource::Generated, Vec::new()),
            (dir, names) => {
                let names: Vec<String> = names
                    .split(',')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect();
                if dir.is_none() {
                    for n in &names {
                        crate::data::Corruption::from_name(n)?;
                    }
                }
                (
                    dir.map_or(CorruptedSource::Generated, CorruptedSource::Files),
                    names,
                )
            }
        };
        Ok(EvalOptions {
            model: c.model,
            data: c.data,
            corrupted,
            corruptions,
            severities: c.severities,
            attack: AttackSpec {
                kind: c.attack,
                eps: c.eps,
                step: c.step,
                steps: c.steps,
                random_start: c.random_start,
            },
            rings,
            limit: c.limit,
            batch: c.batch,
            seed: c.seed,
            shard: c.shard,
            secure: c.secure,
        })
    }
}

/// The real protocol on some images, against the PI simulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureCheck {
    /// Images run through the protocol.
    pub images: u64,
    /// Of those, the protocol's class equals the PI simulation's.
    pub agree_pi: u64,
    /// Of those, the protocol's class equals the fixed-point oracle's.
    pub agree_fixed: u64,
}

/// The counts of one ring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingCounts {
    /// The ring.
    pub ring: Ring,
    /// Its counts (the f32 tallies are the same in every ring).
    pub counts: Counts,
}

/// A ring's accuracies and the garbled ReLU's price at that ring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingSummary {
    /// ℓ.
    pub ell: u32,
    /// f.
    pub frac: u32,
    /// AND gates of one garbled ReLU at this ring (truncation by f).
    pub and_gates_per_relu: usize,
    /// Clean accuracy.
    pub clean: TripleJson,
    /// NPA, when corrupted images were evaluated.
    pub npa: Option<NpaJson>,
    /// Adversarial accuracy, when attacked.
    pub adversarial: Option<TripleJson>,
    /// Images whose PI class equals their f32 class, percent.
    pub agreement_f32_pi: f64,
    /// Images with a wrapped local truncation.
    pub wrapped: u64,
    /// How PI departed from the oracle.
    pub pi_effects: PiEffects,
}

/// NPA (mean over corruptions of the mean over severities) with its per-corruption detail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NpaJson {
    /// NPA per arithmetic; `accuracy` is RLNet's mean of means, `ci95`, `n` and `correct` those
    /// of every corrupted image pooled.
    #[serde(flatten)]
    pub mean: TripleJson,
    /// Corruption → severity → accuracies.
    pub per_corruption:
        std::collections::BTreeMap<String, std::collections::BTreeMap<u8, TripleJson>>,
}

/// What `pibench eval` writes: the options, where things came from, the counts (which merge)
/// and the figures derived from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// [`SCHEMA`].
    pub schema: String,
    /// What was asked.
    pub options: EvalOptions,
    /// The model's card.
    pub card: ModelCard,
    /// Whether the model has dual batch norm (then `BN_a` serves the adversarial images).
    pub dual_bn: bool,
    /// The BN path of clean and corrupted images.
    pub bn_clean: BnPath,
    /// The BN path of the attack and the adversarial images.
    pub bn_adversarial: BnPath,
    /// The input preprocessing applied to \[0,1\] pixels.
    pub preprocessing: Preprocessing,
    /// The test set as read.
    pub data: String,
    /// Test images after `--limit`.
    pub test_images: usize,
    /// The images evaluated `[lo, hi)`.
    pub range: [usize; 2],
    /// The corrupted set, when any.
    pub corrupted: Option<String>,
    /// The first ring.
    pub ring: Ring,
    /// Clean accuracy at the first ring.
    pub clean: TripleJson,
    /// NPA at the first ring.
    pub npa: Option<NpaJson>,
    /// Adversarial accuracy at the first ring.
    pub adversarial: Option<TripleJson>,
    /// PI against f32 at the first ring, percent of images with the same class.
    pub agreement_f32_pi: f64,
    /// Images with a wrapped (catastrophic) local truncation at the first ring.
    pub wrapped: u64,
    /// Every ring evaluated.
    pub rings: Vec<RingSummary>,
    /// The real protocol on the first `--secure` images.
    pub secure: Option<SecureCheck>,
    /// The raw counts per ring, from which everything above is derived (what merging sums).
    pub counts: Vec<RingCounts>,
    /// Run circumstances (not merged, not compared).
    pub timing: Timing,
    /// The cheapest ring that keeps accuracy ([`ring_choice`]), when judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_choice: Option<ring_choice::RingChoice>,
}

/// How long the job took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Wall time.
    pub wall_seconds: f64,
    /// Images classified (clean, corrupted and adversarial) per second of wall time.
    pub images_per_s: f64,
    /// Rayon threads.
    pub threads: usize,
}

/// Ticks as work is done (the command line draws a progress bar from it).
pub trait Progress {
    /// The total number of image evaluations, once known.
    fn total(&self, images: u64);
    /// `images` more were evaluated.
    fn advance(&self, images: u64);
}

/// No progress display.
pub struct Silent;

impl Progress for Silent {
    fn total(&self, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// A progress bar on standard error.
pub struct Bar(pub indicatif::ProgressBar);

impl Bar {
    /// A bar for `what`, hidden when standard error is not a terminal.
    pub fn new(what: &str) -> Bar {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} images, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        Bar(bar)
    }
}

impl Progress for Bar {
    fn total(&self, images: u64) {
        self.0.set_length(images);
    }
    fn advance(&self, images: u64) {
        self.0.inc(images);
    }
}

/// The per-category seed salts: clean, adversarial, then one per (corruption, severity).
fn salt(seed: u64, category: u64) -> u64 {
    seed ^ category.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The arg-max class of each row of `[N, classes]` logits (the first on ties).
fn argmax_rows(logits: &[f32], classes: usize) -> Vec<u32> {
    logits
        .chunks(classes.max(1))
        .map(|row| argmax(row) as u32)
        .collect()
}

/// One BN path's evaluators.
struct PathNets<'a> {
    float: FloatNet<'a, f32>,
    rings: Vec<BatchEvaluator>,
}

impl<'a> PathNets<'a> {
    fn new(
        net: &'a Network,
        pre: &Preprocessing,
        rings: &[Ring],
        path: &Path,
    ) -> Result<Self, JobError> {
        let float = FloatNet::new(net, pre.clone())?;
        let rings = rings
            .iter()
            .map(|&ring| {
                FixedNetwork::lower(net, ring)
                    .map(|f| BatchEvaluator::new(Arc::new(f)))
                    .map_err(|source| JobError::Lower {
                        path: path.to_path_buf(),
                        ell: ring.ell,
                        frac: ring.frac,
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(PathNets { float, rings })
    }

    /// Classify a batch of \[0,1\] pixels under every arithmetic and count it into `pick(counts)`.
    fn judge(
        &self,
        pixels: &[f32],
        labels: &[u32],
        first: u64,
        seed: u64,
        counts: &mut [RingCounts],
        pick: &dyn Fn(&mut Counts) -> &mut Tallies,
    ) -> Result<(), JobError> {
        let f32_classes = argmax_rows(&self.float.logits(pixels)?, self.float.classes());
        let input = self.float.network_input(pixels)?;
        for (eval, rc) in self.rings.iter().zip(counts.iter_mut()) {
            let fixed = eval.evaluate(&input, first, Arithmetic::Fixed)?;
            let pi = eval.evaluate(&input, first, Arithmetic::Pi { seed })?;
            count(rc, pick, labels, &f32_classes, &fixed, &pi);
        }
        Ok(())
    }
}

fn count(
    rc: &mut RingCounts,
    pick: &dyn Fn(&mut Counts) -> &mut Tallies,
    labels: &[u32],
    f32c: &[u32],
    fixed: &[ImageOutcome],
    pi: &[ImageOutcome],
) {
    for i in 0..labels.len() {
        let (fx, p) = (fixed[i].class as u32, pi[i].class as u32);
        pick(&mut rc.counts).add(labels[i], f32c[i], fx, p);
        let e = &mut rc.counts.pi;
        e.images += 1;
        e.agree_f32_pi += u64::from(f32c[i] == p);
        e.agree_fixed_pi += u64::from(fx == p);
        let wrapped = pi[i].wrapped > 0;
        e.wrapped += u64::from(wrapped);
        e.wrapped_changed_class += u64::from(wrapped && fx != p);
        e.ulp_deviations += pi[i].ulp_deviations;
    }
}

/// Run an evaluation.
pub fn evaluate(opts: &EvalOptions, progress: &dyn Progress) -> Result<EvalReport, JobError> {
    let t0 = Instant::now();
    if opts.rings.is_empty() {
        return Err(JobError::Options("no ring to evaluate".into()));
    }
    if opts.batch == 0 {
        return Err(JobError::Options("--batch must be at least 1".into()));
    }
    let bundle = Bundle::open(&opts.model).map_err(|source| JobError::Model {
        path: opts.model.clone(),
        source: Box::new(source),
    })?;
    let load = |p: BnPath| {
        bundle.network(p).map_err(|source| JobError::Model {
            path: opts.model.clone(),
            source: Box::new(source),
        })
    };
    let dual_bn = bundle.has_dual_bn();
    let clean_net = load(BnPath::Clean)?;
    let adv_net = if dual_bn {
        Some(load(BnPath::Adv)?)
    } else {
        None
    };
    let card = clean_net.card.clone();
    let preprocessing = card.preprocessing();
    let clean = PathNets::new(&clean_net, &preprocessing, &opts.rings, &opts.model)?;
    let adv = match &adv_net {
        Some(n) => Some(PathNets::new(n, &preprocessing, &opts.rings, &opts.model)?),
        None => None,
    };
    let adv_ref = adv.as_ref().unwrap_or(&clean);

    let data_opts = DataOptions {
        limit: opts.limit,
        classes: Some(card.classes),
        ..DataOptions::default()
    };
    let test = data::open(&opts.data, &data_opts)?;
    let total = test.len();
    let (lo, hi) = opts.shard.map_or((0, total), |s| s.range(total));
    let suite: Option<Box<dyn CorruptionSuite + '_>> = match &opts.corrupted {
        CorruptedSource::None => None,
        CorruptedSource::Files(dir) => Some(Box::new(CifarC::open(dir, &data_opts)?)),
        CorruptedSource::Generated => Some(Box::new(Generated::new(test.as_ref(), opts.seed))),
    };
    let corruptions: Vec<String> = match &suite {
        None => Vec::new(),
        Some(s) if opts.corruptions.is_empty() => s.corruptions(),
        Some(s) => {
            let have = s.corruptions();
            for c in &opts.corruptions {
                if !have.contains(c) {
                    return Err(JobError::Options(format!(
                        "corruption `{c}` is not in {} (it has: {})",
                        s.describe(),
                        have.join(", ")
                    )));
                }
            }
            opts.corruptions.clone()
        }
    };
    let attacked = opts.attack.kind != AttackKind::None;
    let images = (hi - lo) as u64;
    let per_clean = 1 + u64::from(attacked) + (corruptions.len() * opts.severities.len()) as u64;
    progress.total(images * per_clean);

    let mut counts: Vec<RingCounts> = opts
        .rings
        .iter()
        .map(|&ring| RingCounts {
            ring,
            counts: Counts::default(),
        })
        .collect();
    let attack = opts.attack.attack(salt(opts.seed, 1));
    for batch in test.batches_in(lo..hi, opts.batch) {
        let batch: Batch = batch?;
        let first = batch.start as u64;
        clean.judge(
            &batch.images,
            &batch.labels,
            first,
            salt(opts.seed, 0),
            &mut counts,
            &|c| &mut c.clean,
        )?;
        progress.advance(batch.len() as u64);
        if attacked {
            let labels: Vec<usize> = batch.labels.iter().map(|&l| l as usize).collect();
            let x = attack.perturb(&adv_ref.float, &batch.images, &labels, first)?;
            adv_ref.judge(
                &x,
                &batch.labels,
                first,
                salt(opts.seed, 2),
                &mut counts,
                &|c| &mut c.adversarial,
            )?;
            progress.advance(batch.len() as u64);
        }
    }
    if let Some(suite) = &suite {
        for (ci, name) in corruptions.iter().enumerate() {
            for &sev in &opts.severities {
                let set = suite.set(name, sev)?;
                if set.len() != total {
                    return Err(JobError::Options(format!(
                        "{} has {} images but the test set has {total}",
                        set.describe(),
                        set.len()
                    )));
                }
                let category = 3 + (ci as u64) * 8 + u64::from(sev);
                for batch in set.batches_in(lo..hi, opts.batch) {
                    let batch = batch?;
                    let name = name.clone();
                    clean.judge(
                        &batch.images,
                        &batch.labels,
                        batch.start as u64,
                        salt(opts.seed, category),
                        &mut counts,
                        &move |c| {
                            c.corrupted
                                .entry(name.clone())
                                .or_default()
                                .entry(sev)
                                .or_default()
                        },
                    )?;
                    progress.advance(batch.len() as u64);
                }
            }
        }
    }
    let secure = if opts.secure > 0 {
        let k = opts.secure.min(hi - lo);
        let batch = test.read(lo, k)?;
        let eval = &clean.rings[0];
        let input = clean.float.network_input(&batch.images)?;
        let sim_pi = eval.evaluate(
            &input,
            lo as u64,
            Arithmetic::Pi {
                seed: salt(opts.seed, 0),
            },
        )?;
        let sim_fixed = eval.evaluate(&input, lo as u64, Arithmetic::Fixed)?;
        let real = super::secure::secure_batch(eval.network(), &input, lo as u64, None)?;
        let mut check = SecureCheck::default();
        for i in 0..k {
            check.images += 1;
            check.agree_pi += u64::from(real[i].class == sim_pi[i].class);
            check.agree_fixed += u64::from(real[i].class == sim_fixed[i].class);
        }
        Some(check)
    } else {
        None
    };
    let mut report = EvalReport {
        schema: SCHEMA.into(),
        options: opts.clone(),
        card,
        dual_bn,
        bn_clean: BnPath::Clean,
        bn_adversarial: if dual_bn { BnPath::Adv } else { BnPath::Clean },
        preprocessing,
        data: test.describe(),
        test_images: total,
        range: [lo, hi],
        corrupted: suite.as_ref().map(|s| s.describe()),
        ring: opts.rings[0],
        clean: Tallies::default().into(),
        npa: None,
        adversarial: None,
        agreement_f32_pi: 0.0,
        wrapped: 0,
        rings: Vec::new(),
        secure,
        counts,
        timing: Timing::default(),
        ring_choice: None,
    };
    report.derive();
    let wall = t0.elapsed().as_secs_f64();
    report.timing = Timing {
        wall_seconds: wall,
        images_per_s: (images * per_clean) as f64 / wall.max(1e-9),
        threads: rayon::current_num_threads(),
    };
    Ok(report)
}

impl EvalReport {
    /// Recompute every derived figure from the counts.
    pub fn derive(&mut self) {
        self.rings = self
            .counts
            .iter()
            .map(|rc| summarize(rc, self.options.attack.kind != AttackKind::None))
            .collect();
        if let Some(first) = self.rings.first() {
            self.ring = self.counts[0].ring;
            self.clean = first.clean;
            self.npa = first.npa.clone();
            self.adversarial = first.adversarial;
            self.agreement_f32_pi = first.agreement_f32_pi;
            self.wrapped = first.wrapped;
        }
    }

    /// Read a report from JSON.
    pub fn read(path: &Path) -> Result<EvalReport, JobError> {
        let io = |reason: String| JobError::Io {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| io(e.to_string()))?;
        let r: EvalReport = serde_json::from_str(&text).map_err(|e| io(e.to_string()))?;
        if r.schema != SCHEMA {
            return Err(io(format!("schema `{}`, expected `{SCHEMA}`", r.schema)));
        }
        Ok(r)
    }

    /// Merge shards into the report one unsharded run would have written. The shards must come
    /// from the same model, data and options and cover the test images exactly once.
    pub fn merge(mut shards: Vec<(PathBuf, EvalReport)>) -> Result<EvalReport, JobError> {
        if shards.is_empty() {
            return Err(JobError::Options("no shard to merge".into()));
        }
        shards.sort_by_key(|(_, r)| r.range[0]);
        let (first_path, first) = &shards[0];
        let mut same = first.options.clone();
        same.shard = None;
        let mut merged = first.clone();
        let mut next = 0usize;
        let mut wall = 0.0;
        for (path, r) in &shards {
            let bad = |reason: String| JobError::Merge {
                path: path.clone(),
                reason,
            };
            let mut o = r.options.clone();
            o.shard = None;
            if o != same || r.card != first.card || r.test_images != first.test_images {
                return Err(bad(format!(
                    "its model, data or options differ from {}",
                    first_path.display()
                )));
            }
            if r.range[0] != next {
                return Err(bad(format!(
                    "it starts at image {} but the shards before end at {next} (a gap or an overlap)",
                    r.range[0]
                )));
            }
            next = r.range[1];
            wall += r.timing.wall_seconds;
            if !std::ptr::eq(r, first) {
                for (m, c) in merged.counts.iter_mut().zip(&r.counts) {
                    m.counts.merge(&c.counts);
                }
                merged.secure = match (merged.secure, r.secure) {
                    (Some(a), Some(b)) => Some(SecureCheck {
                        images: a.images + b.images,
                        agree_pi: a.agree_pi + b.agree_pi,
                        agree_fixed: a.agree_fixed + b.agree_fixed,
                    }),
                    (a, b) => a.or(b),
                };
            }
        }
        if next != first.test_images {
            return Err(JobError::Merge {
                path: shards.last().map(|s| s.0.clone()).unwrap_or_default(),
                reason: format!(
                    "the shards end at image {next} of {}: some are missing",
                    first.test_images
                ),
            });
        }
        merged.options.shard = None;
        merged.range = [0, first.test_images];
        merged.derive();
        merged.timing = Timing {
            wall_seconds: wall,
            images_per_s: 0.0,
            threads: 0,
        };
        Ok(merged)
    }
}

impl EvalReport {
    /// The human-readable summary `pibench eval` prints.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let card = &self.card;
        let _ = writeln!(
            out,
            "{} ({}, {}, {} budget {}), {} images [{}, {}) of {}",
            card.name.as_deref().unwrap_or("model"),
            card.method,
            card.dataset,
            card.architecture,
            card.budget.map_or("all".into(), |b| b.to_string()),
            self.range[1] - self.range[0],
            self.range[0],
            self.range[1],
            self.data
        );
        let _ = writeln!(
            out,
            "BN path: {} for clean and corrupted, {} for adversarial; preprocessing: {}",
            self.bn_clean,
            self.bn_adversarial,
            self.preprocessing
                .name
                .as_deref()
                .unwrap_or(if self.preprocessing.mean.is_some() {
                    "mean/std"
                } else {
                    "none"
                })
        );
        let a = &self.options.attack;
        for rs in &self.rings {
            let _ = writeln!(
                out,
                "\nring ℓ = {}, f = {} ({} AND gates per garbled ReLU)",
                rs.ell, rs.frac, rs.and_gates_per_relu
            );
            let _ = writeln!(
                out,
                "  {:<28} {:>22} {:>22} {:>22}",
                "accuracy % [95% CI]", "f32", "fixed point", "PI"
            );
            let cell = |j: &super::results::AccuracyJson| {
                format!("{:6.2} [{:5.1},{:5.1}]", j.accuracy, j.ci95[0], j.ci95[1])
            };
            let row = |out: &mut String, name: String, t: &TripleJson| {
                let _ = writeln!(
                    out,
                    "  {:<28} {:>22} {:>22} {:>22}",
                    name,
                    cell(&t.f32),
                    cell(&t.fixed),
                    cell(&t.pi)
                );
            };
            row(
                &mut out,
                format!("clean (n = {})", rs.clean.f32.n),
                &rs.clean,
            );
            if let Some(npa) = &rs.npa {
                row(
                    &mut out,
                    format!("NPA ({} corruptions)", npa.per_corruption.len()),
                    &npa.mean,
                );
            }
            if let Some(adv) = &rs.adversarial {
                let name = match a.kind {
                    AttackKind::Pgd => {
                        format!("PGD-{} ε={:.4} (n = {})", a.steps, a.eps, adv.f32.n)
                    }
                    _ => format!("FGSM ε={:.4} (n = {})", a.eps, adv.f32.n),
                };
                row(&mut out, name, adv);
            }
            let e = &rs.pi_effects;
            let _ = writeln!(
                out,
                "  PI vs f32: same class on {:.2} % of {} images; PI vs fixed: {} of {} agree; \
                 wrapped (catastrophic) outputs: {} ({} changed the class); ±1-ulp local truncations: {}",
                rs.agreement_f32_pi,
                e.images,
                e.agree_fixed_pi,
                e.images,
                e.wrapped,
                e.wrapped_changed_class,
                e.ulp_deviations
            );
        }
        if let Some(s) = &self.secure {
            let _ = writeln!(
                out,
                "\nreal two-party protocol on {} images: class equals the PI simulation's on {}, the oracle's on {}",
                s.images, s.agree_pi, s.agree_fixed
            );
        }
        if let Some(c) = &self.ring_choice {
            out.push_str(&c.table());
        }
        out
    }
}

fn summarize(rc: &RingCounts, attacked: bool) -> RingSummary {
    let c = &rc.counts;
    let npa = if c.corrupted.is_empty() {
        None
    } else {
        let pooled = c.corrupted_pooled();
        let mean = |a: super::results::Arith, t: Tally| {
            let mut j: super::results::AccuracyJson = t.into();
            j.accuracy = c.npa(a).unwrap_or(0.0);
            j
        };
        use super::results::Arith;
        Some(NpaJson {
            mean: TripleJson {
                f32: mean(Arith::F32, pooled.f32),
                fixed: mean(Arith::Fixed, pooled.fixed),
                pi: mean(Arith::Pi, pooled.pi),
            },
            per_corruption: c
                .corrupted
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter().map(|(&s, t)| (s, (*t).into())).collect(),
                    )
                })
                .collect(),
        })
    };
    RingSummary {
        ell: rc.ring.ell,
        frac: rc.ring.frac,
        and_gates_per_relu: crate::gc::relu_select_circuit(
            rc.ring.ell as usize,
            rc.ring.frac as usize,
        )
        .map_or(0, |c| c.and_count()),
        clean: c.clean.into(),
        npa,
        adversarial: attacked.then(|| c.adversarial.into()),
        agreement_f32_pi: Tally {
            n: c.pi.images,
            correct: c.pi.agree_f32_pi,
        }
        .percent(),
        wrapped: c.pi.wrapped,
        pi_effects: c.pi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_set_once() {
        for total in [0usize, 1, 7, 10, 10_000] {
            for count in 1..=7 {
                let mut next = 0;
                for index in 1..=count {
                    let (lo, hi) = Shard { index, count }.range(total);
                    assert_eq!(lo, next);
                    next = hi;
                }
                assert_eq!(next, total);
            }
        }
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert!("2".parse::<Shard>().is_err());
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
    }
}
