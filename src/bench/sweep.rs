//! `pibench sweep`: many models, several inputs each, repeats, optional emulated links; every
//! run's JSON, then the report (CSV, plots, cost model, report.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::result::RunResult;
use super::run::{
    load_input, load_network, run_network, BenchError, InputSpec, RunOptions, Transport,
};
use crate::model::BnPath;
use crate::net::link::Link;
use crate::report::{write_report, ReportOptions, ReportSummary};
use crate::ring::Ring;

/// What a sweep runs.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// Bundles.
    pub models: Vec<PathBuf>,
    /// Output directory (run JSONs go to `runs/` inside it).
    pub out: PathBuf,
    /// Inputs per model (seeded random images, seeds 0, 1, ...).
    pub inputs: usize,
    /// Repeats per input.
    pub repeats: usize,
    /// Batch-norm paths to run on dual-BN bundles (single-BN bundles run `clean` only).
    pub bn_paths: Vec<BnPath>,
    /// ℓ and f.
    pub ring: Ring,
    /// Linear preprocessing backend.
    pub backend: crate::protocol::prepro::Backend,
    /// Garbling scheme and OT combinations to run every model with (compared in the report).
    pub gc: Vec<crate::protocol::GcOptions>,
    /// Links to estimate.
    pub links: Vec<Link>,
    /// Links to also run through an emulated (throttled) channel, on models whose budget is at
    /// most `emulate_max_budget` (emulating a slow link on a large budget takes minutes).
    pub emulate: Vec<Link>,
    /// See `emulate`.
    pub emulate_max_budget: u64,
    /// Receive time-out.
    pub timeout: Duration,
    /// Show progress.
    pub progress: bool,
    /// Run the largest bundle once, untimed, before measuring.
    pub warmup: bool,
}

impl SweepOptions {
    /// The default job: `models`, 2 inputs, 2 repeats, clean path, ℓ = 64, f = 12, the link
    /// presets, LAN emulated on budgets up to 60k.
    pub fn new(models: Vec<PathBuf>, out: impl Into<PathBuf>) -> Self {
        SweepOptions {
            models,
            out: out.into(),
            inputs: 2,
            repeats: 2,
            bn_paths: vec![BnPath::Clean],
            ring: Ring::default(),
            backend: crate::protocol::prepro::Backend::Dealer,
            gc: vec![crate::protocol::GcOptions::RECOMMENDED],
            links: Link::presets(),
            emulate: vec![Link::lan()],
            emulate_max_budget: 60_000,
            timeout: Duration::from_secs(300),
            progress: true,
            warmup: true,
        }
    }
}

/// What a sweep produced.
#[derive(Debug)]
pub struct SweepOutcome {
    /// Every run.
    pub results: Vec<RunResult>,
    /// The report written.
    pub report: ReportSummary,
    /// Wall-clock seconds of the whole sweep.
    pub seconds: f64,
}

/// Errors of a sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A run failed.
    #[error("{model}: {source}")]
    Run {
        /// The bundle.
        model: String,
        /// Why.
        #[source]
        source: BenchError,
    },
    /// A run was not correct: secure logits differ from the oracle.
    #[error("{model}: secure inference differs from the fixed-point oracle (max logit difference {diff:e}); see {json}")]
    Incorrect {
        /// The bundle.
        model: String,
        /// The difference.
        diff: f64,
        /// The run's JSON.
        json: String,
    },
    /// Writing results failed.
    #[error("writing {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// Nothing to sweep.
    #[error("no models given (and none found in {0})")]
    NoModels(String),
}

/// The bundles in a directory, sorted.
pub fn bundles_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// One run's JSON at `path`.
fn write_run(path: &Path, r: &RunResult) -> Result<(), SweepError> {
    let io = |source: std::io::Error| SweepError::Io {
        path: path.display().to_string(),
        source,
    };
    let json = serde_json::to_string_pretty(r).map_err(|e| io(e.into()))?;
    std::fs::write(path, json).map_err(io)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}

/// Run the sweep and write the report.
pub fn sweep(opts: &SweepOptions) -> Result<SweepOutcome, SweepError> {
    if opts.models.is_empty() {
        return Err(SweepError::NoModels(opts.out.display().to_string()));
    }
    let t0 = Instant::now();
    let runs_dir = opts.out.join("runs");
    std::fs::create_dir_all(&runs_dir).map_err(|e| SweepError::Io {
        path: runs_dir.display().to_string(),
        source: e,
    })?;
    // Plan first, so the progress bar knows the total.
    let mut plan = Vec::new();
    // Models innermost: every model sees the same drift of the machine (frequency, neighbours)
    // over the sweep, so comparisons between models stay fair.
    let mut configs = Vec::new();
    for model in &opts.models {
        let dual = crate::model::Bundle::open(model)
            .map_err(|e| SweepError::Run {
                model: model.display().to_string(),
                source: BenchError::Model {
                    path: model.display().to_string(),
                    source: Box::new(e),
                },
            })?
            .has_dual_bn();
        for &bn in &opts.bn_paths {
            if bn == BnPath::Adv && !dual {
                continue;
            }
            for &gc in &opts.gc {
                configs.push((model.clone(), bn, gc));
            }
        }
    }
    for input in 0..opts.inputs {
        for rep in 0..opts.repeats {
            for (model, bn, gc) in &configs {
                plan.push((model.clone(), *bn, *gc, input as u64, rep, None));
            }
        }
    }
    for link in &opts.emulate {
        for (model, bn, gc) in &configs {
            plan.push((model.clone(), *bn, *gc, 0, 0, Some(link.clone())));
        }
    }
    let pb = if opts.progress {
        let pb = ProgressBar::new(plan.len() as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "sweep [{elapsed_precise}] [{bar:40}] {pos}/{len} runs, eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Some(pb)
    } else {
        None
    };
    // One untimed run of the largest bundle first: the measured runs then see a warm process
    // (pooled buffers, faulted pages), as a client and server that serve many inferences do.
    // Its result is kept as runs/warmup-*.json but left out of the statistics.
    if opts.warmup {
        if let Some(pb) = &pb {
            pb.set_message("warm-up run");
        }
        let biggest = opts
            .models
            .iter()
            .filter_map(|m| {
                crate::model::Bundle::open(m)
                    .ok()
                    .map(|b| (m, b.card().budget.unwrap_or(0)))
            })
            .max_by_key(|(_, b)| *b)
            .map(|(m, _)| m.clone());
        if let Some(model) = biggest {
            let run_err = |source| SweepError::Run {
                model: model.display().to_string(),
                source,
            };
            let net = load_network(&model, BnPath::Clean).map_err(run_err)?;
            let mut ro = RunOptions::new(&model);
            ro.ring = opts.ring;
            ro.backend = opts.backend;
            ro.gc = opts.gc.first().copied().unwrap_or(ro.gc);
            ro.links = opts.links.clone();
            ro.timeout = opts.timeout;
            let x = load_input(&ro.input, &net).map_err(run_err)?;
            let r = run_network(&net, &x, &ro).map_err(run_err)?;
            write_run(&opts.out.join(format!("warmup-{}.json", stem(&model))), &r)?;
        }
    }
    let mut results = Vec::new();
    let mut loaded: std::collections::HashMap<(PathBuf, BnPath), crate::model::Network> =
        std::collections::HashMap::new();
    // Several garbling/OT combinations: each run's file names its combination.
    let gc_tag = |gc: crate::protocol::GcOptions| {
        if opts.gc.len() > 1 {
            format!("-{}-{}", gc.garbling, gc.ot)
        } else {
            String::new()
        }
    };
    for (model, bn, gc, input, rep, emulate) in plan {
        if let Some(pb) = &pb {
            pb.set_message(format!(
                "{} {bn}{}",
                stem(&model),
                emulate
                    .as_ref()
                    .map_or(String::new(), |l| format!(" emulated {}", l.name))
            ));
        }
        let run_err = |source| SweepError::Run {
            model: model.display().to_string(),
            source,
        };
        let key = (model.clone(), bn);
        if !loaded.contains_key(&key) {
            let net = load_network(&model, bn).map_err(run_err)?;
            loaded.insert(key.clone(), net);
        }
        let net = &loaded[&key];
        if let Some(link) = &emulate {
            if net.kept_relus() as u64 > opts.emulate_max_budget {
                if let Some(pb) = &pb {
                    pb.inc(1);
                }
                continue;
            }
            let _ = link;
        }
        let mut ro = RunOptions::new(&model);
        ro.bn = bn;
        ro.ring = opts.ring;
        ro.backend = opts.backend;
        ro.gc = gc;
        ro.input = InputSpec::Random { seed: input };
        ro.links = opts.links.clone();
        ro.timeout = opts.timeout;
        if let Some(link) = &emulate {
            ro.transport = Transport::Emulated(link.clone());
        }
        let x = load_input(&ro.input, net).map_err(run_err)?;
        let r = run_network(net, &x, &ro).map_err(run_err)?;
        let name = match &emulate {
            None => format!(
                "{}-{bn}{}-input{input}-rep{rep}.json",
                stem(&model),
                gc_tag(gc)
            ),
            Some(l) => format!(
                "{}-{bn}{}-input{input}-emulated-{}.json",
                stem(&model),
                gc_tag(gc),
                l.name.replace([',', '/'], "_")
            ),
        };
        let path = runs_dir.join(name);
        write_run(&path, &r)?;
        if !r.correct {
            return Err(SweepError::Incorrect {
                model: model.display().to_string(),
                diff: r.max_logit_diff_vs_oracle,
                json: path.display().to_string(),
            });
        }
        results.push(r);
        if let Some(pb) = &pb {
            pb.inc(1);
        }
    }
    if let Some(pb) = &pb {
        pb.finish_with_message("done");
    }
    let seconds = t0.elapsed().as_secs_f64();
    let ro = ReportOptions {
        reproduce_command: format!(
            "cargo run --release   # or: pibench sweep {} --out {}",
            opts.models
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            opts.out.display()
        ),
        ..ReportOptions::default()
    };
    let report = write_report(&results, &opts.out, &ro)?;
    Ok(SweepOutcome {
        results,
        report,
        seconds,
    })
}
