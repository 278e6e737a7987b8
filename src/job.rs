//! Jobs that measure and then report, above both [`crate::bench`] (which measures) and
//! [`crate::report`] (which draws): a sweep followed by its report, and the default job that
//! `cargo run --release` runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bench::sweep::{bundles_in, sweep, Existing, SweepError, SweepEval, SweepOptions};
use crate::eval::job::{AttackKind, CliChoices, EvalOptions};
use crate::eval::ring_choice::RingCost;
use crate::protocol::prepro::Backend;
use crate::report::{write_report, ReportError, ReportOptions, ReportSummary};
use crate::results::RunResult;

/// What a sweep and its report produced.
#[derive(Debug)]
pub struct SweepReport {
    /// Every run.
    pub results: Vec<RunResult>,
    /// The report written.
    pub report: ReportSummary,
    /// Wall-clock seconds of the sweep's runs.
    pub seconds: f64,
    /// The evaluations written (`--data`), and their wall-clock seconds.
    pub evaluations: Vec<PathBuf>,
    /// Wall-clock seconds of the evaluations.
    pub eval_seconds: f64,
}

/// Errors of a job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The sweep failed.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A model's accuracy evaluation failed.
    #[error("evaluating {model}: {source}")]
    Eval {
        /// The bundle.
        model: String,
        /// Why.
        #[source]
        source: crate::eval::job::JobError,
    },
    /// An evaluation could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Run the sweep `opts`, then write its report (CSV, plots, cost model, report.md) into the
/// sweep's output directory.
pub fn sweep_and_report(opts: &SweepOptions) -> Result<SweepReport, JobError> {
    let outcome = sweep(opts)?;
    let t0 = Instant::now();
    let evaluations = match &opts.eval {
        Some(ev) => evaluate_models(opts, ev)?,
        None => Vec::new(),
    };
    let eval_seconds = t0.elapsed().as_secs_f64();
    // With --append the report covers the earlier runs too (the outcome lists this sweep's).
    let all: Vec<RunResult> = outcome
        .earlier
        .iter()
        .chain(&outcome.results)
        .cloned()
        .collect();
    let report = write_report(&all, &opts.out, &ReportOptions::default())?;
    Ok(SweepReport {
        results: outcome.results,
        report,
        seconds: outcome.seconds,
        evaluations,
        eval_seconds,
    })
}

/// The evaluation options of one model: CA and AdvA (and NPA when it is measured on as many
/// images) at the sweep's ring and the extra rings, or NPA alone at the sweep's ring.
fn eval_options(
    model: &Path,
    ring: crate::ring::Ring,
    ev: &SweepEval,
    npa_only: bool,
) -> Result<EvalOptions, crate::eval::job::JobError> {
    let split = ev.npa_limit.is_some() && ev.npa_limit != ev.limit && ev.corrupt != "none";
    let (corrupt, attack, limit) = match (split, npa_only) {
        (true, true) => (ev.corrupt.clone(), AttackKind::None, ev.npa_limit),
        (true, false) => ("none".to_string(), ev.attack, ev.limit),
        (false, _) => (ev.corrupt.clone(), ev.attack, ev.limit),
    };
    let mut opts = EvalOptions::from_cli(CliChoices {
        model: model.to_path_buf(),
        data: ev.data.clone(),
        corrupted: None,
        corrupt,
        severities: ev.severities.clone(),
        attack,
        eps: ev.eps,
        step: ev.step,
        steps: ev.steps,
        random_start: true,
        ell: vec![ring.ell],
        frac: vec![ring.frac],
        limit,
        batch: 100,
        seed: ev.seed,
        secure: 0,
        shard: None,
    })?;
    if !npa_only {
        // The sweep's ring first (the report's accuracies), then every extra (ℓ, f) pair.
        let ells = if ev.ells.is_empty() {
            vec![ring.ell]
        } else {
            ev.ells.clone()
        };
        let fracs = if ev.fracs.is_empty() {
            vec![ring.frac]
        } else {
            ev.fracs.clone()
        };
        for &ell in &ells {
            for &frac in &fracs {
                if let Ok(r) = crate::ring::Ring::new(ell, frac) {
                    if !opts.rings.contains(&r) {
                        opts.rings.push(r);
                    }
                }
            }
        }
    }
    Ok(opts)
}

/// `sweep --data`: evaluate every model of the sweep (those of `ev.dataset` when given) with
/// `pibench eval`'s library, writing `eval/<model>.json` (and `eval/<model>-npa.json` when NPA is
/// measured on fewer images) into the sweep's output directory.
pub fn evaluate_models(opts: &SweepOptions, ev: &SweepEval) -> Result<Vec<PathBuf>, JobError> {
    let dir = opts.out.join("eval");
    let io = |path: &Path, source: std::io::Error| JobError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let split = ev.npa_limit.is_some() && ev.npa_limit != ev.limit && ev.corrupt != "none";
    let mut written = Vec::new();
    let mut models = opts.models.clone();
    models.dedup();
    for model in &models {
        let fail = |source| JobError::Eval {
            model: model.display().to_string(),
            source,
        };
        if let Some(want) = &ev.dataset {
            let card = crate::model::Bundle::open(model)
                .map_err(|e| {
                    fail(crate::eval::job::JobError::Model {
                        path: model.clone(),
                        source: Box::new(e),
                    })
                })?
                .card()
                .clone();
            if &card.dataset != want {
                continue;
            }
        }
        let stem = model
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        let passes: &[(bool, &str)] = if split {
            &[(false, ""), (true, "-npa")]
        } else {
            &[(false, "")]
        };
        for &(npa_only, suffix) in passes {
            let eo = eval_options(model, opts.ring, ev, npa_only).map_err(fail)?;
            let what = format!("eval {stem}{suffix}");
            let report = if opts.progress {
                let bar = crate::eval::job::Bar::new(&what);
                let r = crate::eval::job::evaluate(&eo, &bar);
                bar.0.finish_and_clear();
                r
            } else {
                crate::eval::job::evaluate(&eo, &crate::eval::job::Silent)
            }
            .map_err(fail)?;
            let path = dir.join(format!("{stem}{suffix}.json"));
            let json = serde_json::to_string_pretty(&report).map_err(|e| io(&path, e.into()))?;
            std::fs::write(&path, json).map_err(|e| io(&path, e))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// How the default job is run: what its runs record as their command.
pub const DEFAULT_JOB: &str = "cargo run --release";

/// The sweeps of the default job, in order: every bundled model with the dealer backend (online
/// costs and the ReLUs' offline costs) into `reports/`, then the RLNet bundles once more with
/// real two-party linear preprocessing (homomorphic encryption) for the full offline cost, into
/// `reports/he/` (the CIFAR-10 ones; see the filter below), and the trained digits-32
/// bundles' accuracy ([`default_eval`]).
pub fn default_sweeps() -> Vec<SweepOptions> {
    let models: Vec<PathBuf> = bundles_in(&crate::model::bundled::models_dir())
        .into_iter()
        .map(from_working_dir)
        .collect();
    let mut dealer = SweepOptions::new(models.clone(), "reports");
    // The default job regenerates reports/: it replaces the previous one.
    dealer.existing = Existing::Force;
    dealer.job = Some(DEFAULT_JOB.into());
    dealer.eval = Some(default_eval());
    // The CIFAR-10 RLNet bundles: the digits models' linear layers are a 64th of ResNet18's
    // work and their `he` cost says nothing new, while the ten-minute budget of the default
    // job goes to their accuracy instead (`pibench sweep models/digits-*rlnet* --offline he`
    // measures it).
    let rlnet: Vec<PathBuf> = models
        .into_iter()
        .filter(|m| {
            let name = m.to_string_lossy();
            name.contains("rlnet") && !name.contains("digits")
        })
        .collect();
    let mut he = SweepOptions::new(rlnet, "reports/he");
    he.backend = Backend::He;
    // Three repeats and a warm-up: HE time varies by ±10 % run to run on two shared cores, and
    // the cost model's held-out check needs medians, not single runs.
    he.inputs = 1;
    he.repeats = 3;
    he.emulate = vec![];
    he.existing = Existing::Force;
    he.job = Some(DEFAULT_JOB.into());
    vec![dealer, he]
}

/// The accuracy part of the default job: the trained digits-32 bundles on the first
/// [`DEFAULT_EVAL_IMAGES`] images of their committed test split for CA and PGD-7 AdvA, and NPA
/// from all 15 generated corruptions at severities 1–5 on the first [`DEFAULT_NPA_IMAGES`]
/// images (75 corrupted images each), so that the whole job stays within ten minutes on this
/// shared 2-core machine.
pub fn default_eval() -> SweepEval {
    let mut ev = SweepEval::new(from_working_dir(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits32/test_batch.bin"),
    ));
    ev.dataset = Some("digits-32".into());
    ev.limit = Some(DEFAULT_EVAL_IMAGES);
    ev.npa_limit = Some(DEFAULT_NPA_IMAGES);
    ev
}

/// `path` relative to the working directory when it lies below it (the repository, where
/// `cargo run` runs): the default job's bundles and test file are then named `models/…` in the
/// runs, evaluations and report it writes, not by this machine's absolute path.
fn from_working_dir(path: PathBuf) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|here| path.strip_prefix(here).ok().map(Path::to_path_buf))
        .unwrap_or(path)
}

/// Test images (of 500) the default job evaluates for CA and AdvA.
pub const DEFAULT_EVAL_IMAGES: usize = 300;

/// Test images whose corruptions the default job evaluates for NPA.
pub const DEFAULT_NPA_IMAGES: usize = 20;

/// ReLUs run to measure a ring's bytes per ReLU (the bytes are the same for every ReLU; the
/// base OTs of the setup are left out, as they are paid once per session).
const RING_COST_RELUS: usize = 256;

/// The price of one garbled ReLU at `ring` with the recommended garbling scheme and OT,
/// measured by running `RING_COST_RELUS` of the protocol's ReLU steps between two threads.
pub fn ring_cost(ring: crate::ring::Ring) -> Result<RingCost, crate::bench::run::BenchError> {
    let r = crate::bench::relu::relu_bench(
        RING_COST_RELUS,
        ring,
        crate::protocol::GcOptions::RECOMMENDED,
        std::time::Duration::from_secs(60),
    )?;
    Ok(RingCost {
        ell: ring.ell,
        frac: ring.frac,
        and_gates: r.and_gates_per_relu as u64,
        offline_bytes_c2s: r.offline_bytes_per_relu_client_to_server,
        offline_bytes_s2c: r.offline_bytes_per_relu_server_to_client,
        online_bytes_c2s: r.online_bytes_per_relu_client_to_server,
        online_bytes_s2c: r.online_bytes_per_relu_server_to_client,
    })
}

/// Judge the rings of an evaluation and recommend one (`report.ring_choice`), each ring priced
/// by [`ring_cost`].
pub fn attach_ring_choice(
    report: &mut crate::eval::job::EvalReport,
    tolerance: f64,
) -> Result<(), crate::bench::run::BenchError> {
    crate::eval::ring_choice::attach(report, tolerance, ring_cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_job_sweeps_every_bundle_then_the_rlnet_ones_with_he() {
        let [dealer, he] = <[SweepOptions; 2]>::try_from(default_sweeps()).unwrap();
        assert_eq!(dealer.backend, Backend::Dealer);
        assert_eq!(dealer.out, PathBuf::from("reports"));
        assert!(dealer.models.len() >= he.models.len() && !he.models.is_empty());
        assert_eq!(he.backend, Backend::He);
        assert_eq!(he.out, PathBuf::from("reports/he"));
        assert!(he.models.iter().all(|m| {
            let name = m.to_string_lossy();
            name.contains("rlnet") && !name.contains("digits")
        }));
        assert_eq!((he.inputs, he.repeats), (1, 3));
        assert!(he.emulate.is_empty());
        // Accuracy is measured once, in the dealer sweep, on the trained digits models.
        let ev = dealer
            .eval
            .clone()
            .expect("the default job evaluates accuracy");
        assert!(ev.data.exists(), "{}", ev.data.display());
        // Run from the repository (as tests are), the files are named relative to it, and so
        // are they in the reports.
        for p in dealer.models.iter().chain(&he.models).chain([&ev.data]) {
            assert!(p.is_relative() && p.exists(), "{}", p.display());
        }
        assert_eq!(ev.dataset.as_deref(), Some("digits-32"));
        assert!(he.eval.is_none());
        // What the runs record: the job, and each sweep's own options in full.
        let he_command = he.command_line();
        assert!(
            he_command
                .starts_with("cargo run --release   # this sweep alone: pibench sweep models/"),
            "{he_command}"
        );
        for f in [
            "--out reports/he --force",
            "--inputs 1",
            "--repeats 3",
            "--emulate none",
            "--offline he",
        ] {
            assert!(he_command.contains(f), "{f} missing: {he_command}");
        }
        let dealer_command = dealer.command_line();
        assert!(
            dealer_command.contains("--eval-limit 300 --npa-limit 20"),
            "{dealer_command}"
        );
        assert!(!dealer_command.contains("--offline"), "{dealer_command}");
    }

    #[test]
    fn npa_on_fewer_images_is_a_second_evaluation_at_the_sweeps_ring() {
        let mut ev = SweepEval::new("data/digits32/test_batch.bin");
        ev.npa_limit = Some(10);
        ev.ells = vec![64, 40];
        ev.fracs = vec![12, 10];
        let ring = crate::ring::Ring::default();
        let m = Path::new("m.safetensors");
        let main = eval_options(m, ring, &ev, false).unwrap();
        assert_eq!(main.corrupted, crate::eval::job::CorruptedSource::None);
        assert_eq!(main.attack.kind, AttackKind::Pgd);
        assert_eq!(main.limit, None);
        assert_eq!(main.rings[0], ring);
        assert_eq!(main.rings.len(), 4);
        let npa = eval_options(m, ring, &ev, true).unwrap();
        assert_eq!(npa.corrupted, crate::eval::job::CorruptedSource::Generated);
        assert_eq!(npa.attack.kind, AttackKind::None);
        assert_eq!((npa.limit, npa.rings.clone()), (Some(10), vec![ring]));
        assert_eq!(npa.severities, vec![1, 2, 3, 4, 5]);
        // The same number of images: one evaluation does everything.
        ev.npa_limit = None;
        let one = eval_options(m, ring, &ev, false).unwrap();
        assert_eq!(one.corrupted, crate::eval::job::CorruptedSource::Generated);
        assert_eq!(one.attack.kind, AttackKind::Pgd);
        let flags = ev.flags().join(" ");
        assert!(
            flags.contains("--data data/digits32/test_batch.bin"),
            "{flags}"
        );
        assert!(
            flags.contains("--eval-ell 64,40 --eval-frac 12,10"),
            "{flags}"
        );
    }

    #[test]
    fn measured_bytes_are_the_protocols() {
        let c = ring_cost(crate::ring::Ring::new(40, 10).unwrap()).unwrap();
        let gates = crate::gc::relu_select_circuit(40, 10).unwrap().and_count() as u64;
        assert_eq!(c.and_gates, gates);
        // Online: one label per bit of the server's share, the masked share back.
        assert_eq!(c.online_bytes_s2c, 40.0 * 16.0);
        assert_eq!(c.online_bytes_c2s, 5.0);
        let d = ring_cost(crate::ring::Ring::default()).unwrap();
        assert!(c.offline_bytes() < d.offline_bytes());
    }
}
