//! `pibench sweep`: many models, several inputs each, repeats, optional emulated links; every
//! run's JSON. The report drawn from them is [`crate::job`]'s step.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::run::{
    load_input, load_network, run_network, BenchError, InputSpec, RunOptions, Transport,
};
use crate::model::BnPath;
use crate::net::link::Link;
use crate::report::text::shell_quote;
use crate::results::{RunResult, SweepPlace};
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
    /// What to do when `out` already holds files.
    pub existing: Existing,
    /// Also measure the models' accuracy (`sweep --data`): the evaluations are written to
    /// `eval/` beside `runs/` and the report shows accuracy beside latency.
    pub eval: Option<SweepEval>,
    /// The job that runs this sweep among others (`cargo run --release`, the default job), named
    /// before the sweep's own command line in what every run records
    /// ([`SweepOptions::command_line`]).
    pub job: Option<String>,
}

/// The accuracy evaluation of a sweep's models (`pibench eval` for each, see
/// [`crate::job::evaluate_models`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepEval {
    /// The test set.
    pub data: PathBuf,
    /// Only models whose card names this dataset (e.g. `digits-32`); `None`: every model.
    pub dataset: Option<String>,
    /// Test images for CA and AdvA (`None`: all).
    pub limit: Option<usize>,
    /// Test images whose corruptions give NPA (`None`: as `limit`); corrupting every image at
    /// every severity multiplies the work by 15 × 5, so a sweep usually takes fewer.
    pub npa_limit: Option<usize>,
    /// Corruptions: `all`, `none` or a comma list (generated from the test set).
    pub corrupt: String,
    /// Severities of the corruptions.
    pub severities: Vec<u8>,
    /// The attack for AdvA.
    pub attack: crate::eval::job::AttackKind,
    /// PGD steps.
    pub steps: usize,
    /// L∞ radius.
    pub eps: f32,
    /// PGD step size.
    pub step: f32,
    /// Ring widths evaluated (every pair with `fracs`; the sweep's ring is always among them).
    pub ells: Vec<u32>,
    /// Fractional bits evaluated.
    pub fracs: Vec<u32>,
    /// Seed of every random draw.
    pub seed: u64,
}

impl SweepEval {
    /// RLNet's evaluation on `data`: every image, all 15 generated corruptions at severities
    /// 1–5, PGD-7 at ε = 8/255 with step 2/255, at the sweep's ring.
    pub fn new(data: impl Into<PathBuf>) -> SweepEval {
        SweepEval {
            data: data.into(),
            dataset: None,
            limit: None,
            npa_limit: None,
            corrupt: "all".into(),
            severities: vec![1, 2, 3, 4, 5],
            attack: crate::eval::job::AttackKind::Pgd,
            steps: 7,
            eps: 8.0 / 255.0,
            step: 2.0 / 255.0,
            ells: vec![],
            fracs: vec![],
            seed: 0,
        }
    }

    /// The `sweep` flags that give this evaluation (the `--data` flag and the options it
    /// implies, each given explicitly).
    pub fn flags(&self) -> Vec<String> {
        let mut f = vec!["--data".to_string(), self.data.display().to_string()];
        let mut flag = |name: &str, value: String| f.extend([format!("--{name}"), value]);
        if let Some(d) = &self.dataset {
            flag("eval-dataset", d.clone());
        }
        if let Some(n) = self.limit {
            flag("eval-limit", n.to_string());
        }
        if let Some(n) = self.npa_limit {
            flag("npa-limit", n.to_string());
        }
        let list = |v: &[u32]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        flag("corrupt", self.corrupt.clone());
        let sev: Vec<u32> = self.severities.iter().map(|&s| u32::from(s)).collect();
        flag("severities", list(&sev));
        flag("attack", self.attack.to_string());
        flag("attack-steps", self.steps.to_string());
        // Rust prints the shortest decimal that reads back as the same f32.
        flag("eps", self.eps.to_string());
        if !self.ells.is_empty() {
            flag("eval-ell", list(&self.ells));
        }
        if !self.fracs.is_empty() {
            flag("eval-frac", list(&self.fracs));
        }
        f
    }
}

/// What a sweep does with an output directory that already holds files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// Refuse: the report and same-named run files would be overwritten while older runs stay
    /// behind and mix into the next `pibench report`.
    #[default]
    Refuse,
    /// Start afresh: delete the previous sweep's run files (`runs/*.json`, `eval/*.json`,
    /// `warmup-*.json`) and report files (the figures and tables a report writes, by their names:
    /// [`crate::report::clear_report_files`]).
    Force,
    /// Add to the runs already there (same ring and backend required) under fresh file names,
    /// and draw the report from all of them.
    Append,
}

impl SweepOptions {
    /// Inputs per model unless told otherwise (`sweep --inputs`).
    pub const DEFAULT_INPUTS: usize = 2;
    /// Repeats per input unless told otherwise (`sweep --repeats`).
    pub const DEFAULT_REPEATS: usize = 2;
    /// The largest budget an emulated run is made for unless told otherwise
    /// (`sweep --emulate-max-budget`).
    pub const DEFAULT_EMULATE_MAX_BUDGET: u64 = 60_000;
    /// The linear preprocessing unless told otherwise (`sweep --offline`).
    pub const DEFAULT_BACKEND: crate::protocol::prepro::Backend =
        crate::protocol::prepro::Backend::Dealer;

    /// The `pibench sweep` defaults (the clap attributes in `main.rs` take theirs from the
    /// constants above and [`Ring::default`], so a recorded [`SweepOptions::command_line`] that
    /// leaves a default out reruns with it): `models`, 2 inputs, 2 repeats, clean path,
    /// ℓ = 64, f = 12, the link presets, LAN emulated on budgets up to 60k.
    pub fn new(models: Vec<PathBuf>, out: impl Into<PathBuf>) -> Self {
        SweepOptions {
            models,
            out: out.into(),
            inputs: Self::DEFAULT_INPUTS,
            repeats: Self::DEFAULT_REPEATS,
            bn_paths: vec![BnPath::Clean],
            ring: Ring::default(),
            backend: Self::DEFAULT_BACKEND,
            gc: vec![crate::protocol::GcOptions::RECOMMENDED],
            links: Link::presets(),
            emulate: vec![Link::lan()],
            emulate_max_budget: Self::DEFAULT_EMULATE_MAX_BUDGET,
            timeout: Duration::from_secs(300),
            progress: true,
            warmup: true,
            existing: Existing::Refuse,
            eval: None,
            job: None,
        }
    }

    /// The `pibench sweep` command line of these options: the models, `--out` and every option
    /// that differs from the command's defaults (which are [`SweepOptions::new`]'s), quoted for
    /// a POSIX shell.
    pub fn command_line(&self) -> String {
        let default = SweepOptions::new(vec![], "");
        let mut args: Vec<String> = vec!["pibench".into(), "sweep".into()];
        args.extend(self.models.iter().map(|m| m.display().to_string()));
        args.extend(["--out".into(), self.out.display().to_string()]);
        let mut flag = |name: &str, value: String| {
            args.push(format!("--{name}"));
            if !value.is_empty() {
                args.push(value);
            }
        };
        match self.existing {
            Existing::Refuse => {}
            Existing::Force => flag("force", String::new()),
            Existing::Append => flag("append", String::new()),
        }
        if self.inputs != default.inputs {
            flag("inputs", self.inputs.to_string());
        }
        if self.repeats != default.repeats {
            flag("repeats", self.repeats.to_string());
        }
        if self.bn_paths.contains(&BnPath::Adv) {
            flag("both-bn", String::new());
        }
        if self.links != default.links {
            for l in &self.links {
                flag("link", l.name.clone());
            }
        }
        if self.emulate.is_empty() {
            flag("emulate", "none".into());
        } else if self.emulate != default.emulate {
            for l in &self.emulate {
                flag("emulate", l.name.clone());
            }
        }
        if self.backend != default.backend {
            flag("offline", self.backend.to_string());
        }
        if self.emulate_max_budget != default.emulate_max_budget {
            flag("emulate-max-budget", self.emulate_max_budget.to_string());
        }
        if self.ring != default.ring {
            flag("ell", self.ring.ell.to_string());
            flag("frac", self.ring.frac.to_string());
        }
        if self.gc != default.gc {
            // The sweep runs every scheme with every OT: the flags list each once.
            let mut schemes: Vec<String> = Vec::new();
            let mut ots: Vec<String> = Vec::new();
            for gc in &self.gc {
                for (list, v) in [
                    (&mut schemes, gc.garbling.to_string()),
                    (&mut ots, gc.ot.to_string()),
                ] {
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
            }
            flag("garbling", schemes.join(","));
            flag("ot", ots.join(","));
        }
        if let Some(ev) = &self.eval {
            args.extend(ev.flags());
        }
        let job = self
            .job
            .as_ref()
            .map(|j| format!("{j}   # this sweep alone: "));
        job.unwrap_or_default()
            + &args
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
    }
}

/// What a sweep measured.
#[derive(Debug)]
pub struct SweepOutcome {
    /// Every run of this sweep.
    pub results: Vec<RunResult>,
    /// With `--append`, the runs the output directory already held (empty otherwise).
    pub earlier: Vec<RunResult>,
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
    /// `--append`: the runs already in the output directory could not be read.
    #[error("--append: reading the earlier runs: {0}")]
    Earlier(#[source] crate::report::ReportError),
    /// `--force`: the previous report's files could not be removed.
    #[error("--force: removing the previous report: {0}")]
    Clear(#[source] crate::report::ReportError),
    /// Nothing to sweep.
    #[error("no models given (and none found in {0})")]
    NoModels(String),
    /// The output directory holds files and neither `--force` nor `--append` was given.
    #[error(
        "{dir} is not empty: a sweep would overwrite its report and run files while older runs \
         stay behind; pass --force to start afresh (deletes its runs/*.json, eval/*.json, warmup-*.json and report files) \
         or --append to add to its runs"
    )]
    OutputExists {
        /// The directory.
        dir: String,
    },
    /// `--append` to runs of another ring or backend: one report would mix incomparable runs.
    #[error("--append: {file} was run with {theirs}, this sweep runs {ours}; append only to a sweep with the same ring and backend")]
    AppendMismatch {
        /// The existing run file.
        file: String,
        /// Its settings.
        theirs: String,
        /// This sweep's settings.
        ours: String,
    },
    /// More runs than can be counted.
    #[error(
        "{inputs} inputs × {repeats} repeats × {models} configurations overflow the run count"
    )]
    TooManyRuns {
        /// `--inputs`.
        inputs: usize,
        /// `--repeats`.
        repeats: usize,
        /// Model and batch-norm configurations.
        models: usize,
    },
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

/// The settings that make two runs comparable in one report.
fn settings(ring: Ring, backend: crate::protocol::prepro::Backend) -> String {
    format!("ℓ = {}, f = {}, backend {backend}", ring.ell, ring.frac)
}

/// Applies `opts.existing` to the output directory; returns the runs already there to keep
/// (for `--append`).
fn prepare_output(opts: &SweepOptions, runs_dir: &Path) -> Result<Vec<RunResult>, SweepError> {
    let io = |path: &Path, source: std::io::Error| SweepError::Io {
        path: path.display().to_string(),
        source,
    };
    let entries = |dir: &Path| -> Result<Vec<PathBuf>, SweepError> {
        match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .map(|e| e.map(|e| e.path()).map_err(|e| io(dir, e)))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(io(dir, e)),
        }
    };
    let is_json = |p: &Path| p.extension().is_some_and(|e| e == "json");
    let existing = entries(&opts.out)?;
    if existing.is_empty() {
        return Ok(vec![]);
    }
    match opts.existing {
        Existing::Refuse => Err(SweepError::OutputExists {
            dir: opts.out.display().to_string(),
        }),
        Existing::Force => {
            let warmups = existing.into_iter().filter(|p| {
                is_json(p)
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("warmup-"))
            });
            // Evaluations of an earlier sweep's models would join this sweep's report.
            let evals = entries(&opts.out.join("eval"))?;
            for p in entries(runs_dir)?
                .into_iter()
                .chain(evals)
                .filter(|p| is_json(p))
                .chain(warmups)
            {
                std::fs::remove_file(&p).map_err(|e| io(&p, e))?;
            }
            // A chart the new report no longer draws would stay beside it, looking current.
            crate::report::clear_report_files(&opts.out).map_err(SweepError::Clear)?;
            Ok(vec![])
        }
        Existing::Append => {
            let old = match crate::report::sweep::Sweep::load_dir(runs_dir) {
                Ok(sw) => sw.runs,
                Err(crate::report::ReportError::NoResultsIn(_)) => vec![],
                Err(crate::report::ReportError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    vec![]
                }
                Err(e) => return Err(SweepError::Earlier(e)),
            };
            let ours = settings(opts.ring, opts.backend);
            if let Some(r) = old.iter().find(|r| settings(r.ring, r.backend) != ours) {
                return Err(SweepError::AppendMismatch {
                    file: format!("a run of {} in {}", r.model.path, runs_dir.display()),
                    theirs: settings(r.ring, r.backend),
                    ours,
                });
            }
            Ok(old)
        }
    }
}

/// `dir/name`, or `dir/stem-aK.json` with the smallest K ≥ 2 that names no file yet: an appended
/// run never replaces an earlier one.
fn fresh_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let stem = name.strip_suffix(".json").unwrap_or(name);
    (2u64..)
        .map(|k| dir.join(format!("{stem}-a{k}.json")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Run the sweep: every run's JSON in `runs/` under the output directory. With `--append` the
/// outcome also carries the runs already there, so that the report covers them too.
pub fn sweep(opts: &SweepOptions) -> Result<SweepOutcome, SweepError> {
    if opts.models.is_empty() {
        return Err(SweepError::NoModels(opts.out.display().to_string()));
    }
    let t0 = Instant::now();
    let runs_dir = opts.out.join("runs");
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
    // The plan is walked lazily, never materialized: `--inputs` can be as large as the user's
    // patience without an allocation to match; only the count is computed up front.
    let too_many = || SweepError::TooManyRuns {
        inputs: opts.inputs,
        repeats: opts.repeats,
        models: configs.len(),
    };
    let total = opts
        .inputs
        .checked_mul(opts.repeats)
        .and_then(|n| n.checked_mul(configs.len()))
        .and_then(|n| n.checked_add(opts.emulate.len() * configs.len()))
        .ok_or_else(too_many)?;
    // Only a sweep that can start touches the output directory.
    let earlier = prepare_output(opts, &runs_dir)?;
    std::fs::create_dir_all(&runs_dir).map_err(|e| SweepError::Io {
        path: runs_dir.display().to_string(),
        source: e,
    })?;
    let configs = &configs;
    let measured = (0..opts.inputs).flat_map(|input| {
        (0..opts.repeats).flat_map(move |rep| {
            configs
                .iter()
                .map(move |(model, bn, gc)| (model.clone(), *bn, *gc, input as u64, rep, None))
        })
    });
    let emulated = opts.emulate.iter().flat_map(|link| {
        configs
            .iter()
            .map(move |(model, bn, gc)| (model.clone(), *bn, *gc, 0, 0, Some(link.clone())))
    });
    let plan = measured.chain(emulated);
    let pb = if opts.progress {
        let pb = ProgressBar::new(total as u64);
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
            write_run(
                &fresh_path(&opts.out, &format!("warmup-{}.json", stem(&model))),
                &r,
            )?;
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
    // Every run records the command, so that a report redrawn from the run files names it,
    // and which sweep into the directory this is, so that it orders appended runs after the
    // earlier ones (runs from before places were recorded count as the first sweep's).
    let command = opts.command_line();
    let appended = earlier
        .iter()
        .map(|r| r.sweep.as_ref().map_or(0, |p| p.appended) + 1)
        .max()
        .unwrap_or(0);
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
        let mut r = run_network(net, &x, &ro).map_err(run_err)?;
        r.sweep = Some(SweepPlace {
            input,
            repeat: rep as u64,
            appended,
            command: command.clone(),
        });
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
        let path = fresh_path(&runs_dir, &name);
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
    Ok(SweepOutcome {
        results,
        earlier,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::GcOptions;

    #[test]
    fn the_command_line_names_what_differs_from_the_defaults_quoted_for_a_shell() {
        let mut o = SweepOptions::new(vec!["models/a b.safetensors".into()], "out");
        assert_eq!(
            o.command_line(),
            "pibench sweep 'models/a b.safetensors' --out out"
        );
        o.existing = Existing::Append;
        o.bn_paths = vec![BnPath::Clean, BnPath::Adv];
        o.ring = Ring::new(40, 10).unwrap();
        o.emulate = vec![Link::parse("10mbit,40ms").unwrap()];
        o.gc = ["half-gates", "three-halves"]
            .iter()
            .flat_map(|g| {
                ["iknp", "silent"].iter().map(move |ot| GcOptions {
                    garbling: g.parse().unwrap(),
                    ot: ot.parse().unwrap(),
                })
            })
            .collect();
        o.job = Some("make it's".into());
        assert_eq!(
            o.command_line(),
            "make it's   # this sweep alone: pibench sweep 'models/a b.safetensors' --out out \
             --append --both-bn --emulate 10mbit,40ms --ell 40 --frac 10 \
             --garbling half-gates,three-halves --ot iknp,silent"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
