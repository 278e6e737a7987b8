//! The `pibench` command line: parses arguments and calls the library. No logic lives here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use pibench::bench::relu::relu_bench;
use pibench::bench::run::{run_local, InputSpec, RunOptions, Transport};
use pibench::bench::sweep::SweepOptions;
use pibench::crypto::ot::OtKind;
use pibench::gc::Scheme;
use pibench::model::BnPath;
use pibench::net::link::Link;
use pibench::protocol::prepro::Backend;
use pibench::protocol::GcOptions;
use pibench::ring::Ring;

/// Measure what cryptographic private inference really costs for ReLU-linearized networks.
#[derive(Parser)]
#[command(name = "pibench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Clone)]
struct RingArgs {
    /// Ring bit width ℓ (shares live in Z_2^ℓ).
    #[arg(long, default_value_t = Ring::DEFAULT_ELL)]
    ell: u32,
    /// Fractional bits f of the fixed-point encoding.
    #[arg(long, default_value_t = Ring::DEFAULT_FRAC)]
    frac: u32,
}

/// The cryptography of the ReLU sites (both parties must use the same).
#[derive(clap::Args, Clone)]
struct GcArgs {
    /// Garbling scheme: half-gates or three-halves.
    #[arg(long, default_value_t = GcOptions::RECOMMENDED.garbling)]
    garbling: Scheme,
    /// Correlated OT for the client's input labels: iknp, softspoken (k = 4), softspoken-kK
    /// (K in 1, 2, 4, 8) or silent.
    #[arg(long, default_value_t = GcOptions::RECOMMENDED.ot)]
    ot: OtKind,
}

impl GcArgs {
    fn options(&self) -> GcOptions {
        GcOptions {
            garbling: self.garbling,
            ot: self.ot,
        }
    }
}

/// The corruptions (NPA) and the attack (AdvA) an accuracy evaluation measures: the options
/// `eval` and `sweep --data` share.
#[derive(clap::Args, Clone)]
struct ThreatArgs {
    /// Corruptions for NPA: `all`, `none` or a comma list (generated unless `eval --corrupted`).
    #[arg(long, default_value = "all")]
    corrupt: String,
    /// Corruption severities (RLNet's NPA averages 1 to 5).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    severities: Vec<u8>,
    /// The attack for AdvA: pgd, fgsm or none.
    #[arg(long, default_value = "pgd")]
    attack: pibench::eval::job::AttackKind,
}

/// What `eval` evaluates and how: the command line's form of
/// [`CliChoices`](pibench::eval::job::CliChoices).
#[derive(clap::Args)]
struct EvalArgs {
    /// The model bundle.
    model: PathBuf,
    /// The test set: CIFAR-10/100 binary or Python, Tiny-ImageNet val/, images+labels .npy
    /// or safetensors.
    #[arg(long)]
    data: PathBuf,
    /// A CIFAR-10-C / CIFAR-100-C directory for NPA (else corruptions are generated).
    #[arg(long)]
    corrupted: Option<PathBuf>,
    #[command(flatten)]
    threats: ThreatArgs,
    /// L∞ radius in [0,1] pixels (a number or a fraction like 8/255).
    #[arg(long, default_value = "8/255", value_parser = pibench::eval::job::parse_fraction)]
    eps: f32,
    /// PGD step size.
    #[arg(long, default_value = "2/255", value_parser = pibench::eval::job::parse_fraction)]
    step: f32,
    /// PGD steps (RLNet's validation uses 7, its paper's tables 20).
    #[arg(long, default_value_t = 7)]
    steps: usize,
    /// Start PGD at the image instead of a random point of the ε-ball.
    #[arg(long)]
    no_random_start: bool,
    /// Ring widths ℓ to evaluate (a list sweeps every (ℓ, f) pair).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    ell: Vec<u32>,
    /// Fractional bits f (a list sweeps every (ℓ, f) pair).
    #[arg(long, value_delimiter = ',', default_value = "12")]
    frac: Vec<u32>,
    /// Keep the first N test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Seed of every random draw (PGD start, generated corruptions, PI shares).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also run the first K images through the real two-party protocol.
    #[arg(long, default_value_t = 0)]
    secure: usize,
    /// Evaluate shard K of N (contiguous blocks of the test images); merge with eval-merge.
    #[arg(long)]
    shard: Option<pibench::eval::job::Shard>,
}

impl EvalArgs {
    fn choices(self) -> pibench::eval::job::CliChoices {
        pibench::eval::job::CliChoices {
            model: self.model,
            data: self.data,
            corrupted: self.corrupted,
            corrupt: self.threats.corrupt,
            severities: self.threats.severities,
            attack: self.threats.attack,
            eps: self.eps,
            step: self.step,
            steps: self.steps,
            random_start: !self.no_random_start,
            ell: self.ell,
            frac: self.frac,
            limit: self.limit,
            batch: self.batch,
            seed: self.seed,
            secure: self.secure,
            shard: self.shard,
        }
    }
}

/// The options `run`, `serve` and `client` share, with a progress bar.
fn party_options(
    model: PathBuf,
    bn: BnPath,
    backend: Backend,
    ring: &RingArgs,
    gc: &GcArgs,
    timeout: u64,
) -> Result<RunOptions> {
    Ok(RunOptions {
        bn,
        ring: ring.ring()?,
        backend,
        gc: gc.options(),
        timeout: Duration::from_secs(timeout),
        progress: true,
        ..RunOptions::new(model)
    })
}

/// The input of a measured inference and where its result goes (`run` and `client`).
#[derive(clap::Args, Clone)]
struct MeasureArgs {
    /// Input image: .json array or .safetensors (`input`/`inputs`); default a seeded random image.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Seed of the random input when no --input is given.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Links to estimate costs for (lan, wan, mobile or BW,RTT like 1gbit,10ms); repeatable.
    #[arg(long = "link")]
    links: Vec<String>,
}

impl MeasureArgs {
    fn input(&self) -> InputSpec {
        self.input
            .clone()
            .map_or(InputSpec::Random { seed: self.seed }, InputSpec::File)
    }

    /// Write the run's JSON if asked (first: nothing is lost if stdout is gone), print its table,
    /// and fail when it is not correct.
    fn finish(&self, result: &pibench::results::RunResult) -> Result<()> {
        if let Some(path) = &self.json {
            std::fs::write(path, serde_json::to_string_pretty(result)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        out(pibench::bench::table::run_table(result))?;
        if let Some(path) = &self.json {
            out(format!("result written to {}", path.display()))?;
        }
        if result.oracle_checked && !result.correct {
            anyhow::bail!("secure logits differ from the fixed-point oracle");
        }
        Ok(())
    }
}

/// Stdout was closed by the reader (`pibench ... | head`): a normal end, not an error.
#[derive(Debug, thiserror::Error)]
#[error("stdout closed")]
struct StdoutClosed;

/// Print one line of results; a closed pipe becomes [`StdoutClosed`] instead of a panic.
fn out(text: impl std::fmt::Display) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        r => Ok(r?),
    }
}

/// A receive time-out in whole seconds: at least 1 (0 would mean "fail at once"), at most
/// [`pibench::net::MAX_TIMEOUT_SECS`].
fn timeout_secs(s: &str) -> Result<u64, String> {
    let max = pibench::net::MAX_TIMEOUT_SECS;
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1 second".into()),
        Ok(v) if v > max => Err(format!("must be at most {max} seconds (one year)")),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("not a whole number of seconds: {e}")),
    }
}

/// A count that must be positive (`--inputs`, `--repeats`, `--relus`).
fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("not a positive whole number: {e}")),
    }
}

impl RingArgs {
    fn ring(&self) -> Result<Ring> {
        Ok(Ring::new(self.ell, self.frac)?)
    }
}

/// `sweep --data`: the accuracy evaluation of the sweep's models.
#[derive(clap::Args, Clone)]
struct SweepEvalArgs {
    /// Also evaluate every model's accuracy on this test set (CA, NPA from generated
    /// corruptions, AdvA; f32 and PI): OUT/eval/*.json, shown beside latency in the report.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Only evaluate models whose card names this dataset (e.g. digits-32).
    #[arg(long, requires = "data")]
    eval_dataset: Option<String>,
    /// Test images for CA and AdvA (default: all).
    #[arg(long, requires = "data")]
    eval_limit: Option<usize>,
    /// Test images whose corruptions give NPA (default: as --eval-limit).
    #[arg(long, requires = "data")]
    npa_limit: Option<usize>,
    #[command(flatten)]
    threats: ThreatArgs,
    /// PGD steps.
    #[arg(long, default_value_t = 7)]
    attack_steps: usize,
    /// L∞ radius of the attack (a number or a fraction like 8/255).
    #[arg(long, default_value = "8/255", value_parser = pibench::eval::job::parse_fraction)]
    eps: f32,
    /// Also evaluate CA and AdvA at these ring widths (every pair with --eval-frac).
    #[arg(long, value_delimiter = ',')]
    eval_ell: Vec<u32>,
    /// Fractional bits of the extra rings.
    #[arg(long, value_delimiter = ',')]
    eval_frac: Vec<u32>,
}

impl SweepEvalArgs {
    fn options(&self) -> Option<pibench::bench::sweep::SweepEval> {
        let data = self.data.clone()?;
        let mut ev = pibench::bench::sweep::SweepEval::new(data);
        ev.dataset = self.eval_dataset.clone();
        ev.limit = self.eval_limit;
        ev.npa_limit = self.npa_limit;
        ev.corrupt = self.threats.corrupt.clone();
        ev.severities = self.threats.severities.clone();
        ev.attack = self.threats.attack;
        ev.steps = self.attack_steps;
        ev.eps = self.eps;
        ev.step = ev.step.min(self.eps);
        ev.ells = self.eval_ell.clone();
        ev.fracs = self.eval_frac.clone();
        Some(ev)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a full two-party private inference of MODEL (both parties in this process) and
    /// measure it per layer and phase.
    Run {
        /// The model bundle (.safetensors).
        model: PathBuf,
        /// Batch-norm path of dual-BN (RLNet) models: clean or adv.
        #[arg(long, default_value = "clean")]
        bn: BnPath,
        /// Linear preprocessing backend.
        #[arg(long = "offline", default_value = "dealer")]
        backend: Backend,
        #[command(flatten)]
        measure: MeasureArgs,
        /// Connect the parties through memory instead of loopback TCP.
        #[arg(long)]
        memory: bool,
        /// Run through an emulated link instead (bandwidth and delay enforced in the channel):
        /// lan, wan, mobile or BW,RTT.
        #[arg(long)]
        emulate: Option<String>,
        /// Receive time-out in seconds (1 to one year).
        #[arg(long, default_value_t = 120, value_parser = timeout_secs)]
        timeout: u64,
        /// With `--offline he`: how many inferences the noise flooding must cover together
        /// (the per-inference target is 40 + ⌈log2 N⌉ bits of statistical security).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        he_queries: u64,
        #[command(flatten)]
        ring: RingArgs,
        #[command(flatten)]
        gc: GcArgs,
        /// At a ring other than ℓ = 64, f = 12: the cost model (fitted at ℓ = 64 by the default
        /// job) whose per-ReLU and total bytes the run is compared with.
        #[arg(long, default_value = "reports/costmodel.json")]
        costmodel: PathBuf,
    },
    /// Serve MODEL to one client: the server's side of `run` as its own process.
    Serve {
        /// The model bundle.
        model: PathBuf,
        /// Address to listen on, e.g. 127.0.0.1:7000.
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: String,
        /// Linear preprocessing backend (the client must use the same). `dealer` here means the
        /// server's process plays the dealer and sees the client's masks, hence its input.
        #[arg(long = "offline", default_value = "he")]
        backend: Backend,
        /// Batch-norm path of dual-BN models.
        #[arg(long, default_value = "clean")]
        bn: BnPath,
        /// Receive time-out in seconds (1 to one year).
        #[arg(long, default_value_t = 120, value_parser = timeout_secs)]
        timeout: u64,
        /// With `--offline he`: how many inferences the noise flooding must cover together
        /// (the per-inference target is 40 + ⌈log2 N⌉ bits of statistical security).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        he_queries: u64,
        /// Benchmark option: send the client this server's per-step timings at the end (by
        /// default the server shares nothing beyond the protocol's messages).
        #[arg(long)]
        send_timings: bool,
        #[command(flatten)]
        ring: RingArgs,
        #[command(flatten)]
        gc: GcArgs,
    },
    /// The client's side of `run` as its own process: connect to `pibench serve`. The client
    /// needs the public architecture and masks: the public bundle (`pibench public`) is
    /// enough; with the full bundle it also checks the result against the plain oracle.
    Client {
        /// Server address.
        #[arg(long, default_value = "127.0.0.1:7000")]
        connect: String,
        /// Linear preprocessing backend (the server must use the same). With `dealer` the
        /// server's process plays the dealer and sees this client's input.
        #[arg(long = "offline", default_value = "he")]
        backend: Backend,
        /// The model bundle: the public bundle of the server's model, or the full bundle.
        #[arg(long)]
        model: PathBuf,
        /// Batch-norm path of dual-BN models (must match the server's).
        #[arg(long, default_value = "clean")]
        bn: BnPath,
        #[command(flatten)]
        measure: MeasureArgs,
        /// Receive time-out in seconds (1 to one year).
        #[arg(long, default_value_t = 120, value_parser = timeout_secs)]
        timeout: u64,
        #[command(flatten)]
        ring: RingArgs,
        #[command(flatten)]
        gc: GcArgs,
    },
    /// Show a bundle: its card, every op, every ReLU site with its shape and kept ReLUs, the
    /// budget, and MACs per layer.
    Inspect {
        /// The model bundle.
        model: PathBuf,
        /// Batch-norm path of dual-BN models.
        #[arg(long, default_value = "clean")]
        bn: BnPath,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Run many models (several inputs, repeats, optional emulated links) and write every run's
    /// JSON, results.csv, the plots, the cost model and report.md.
    Sweep {
        /// Model bundles; default: every bundle in models/.
        models: Vec<PathBuf>,
        /// Output directory.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Inputs per model (seeded random images).
        #[arg(long, default_value_t = SweepOptions::DEFAULT_INPUTS, value_parser = positive)]
        inputs: usize,
        /// Repeats per input.
        #[arg(long, default_value_t = SweepOptions::DEFAULT_REPEATS, value_parser = positive)]
        repeats: usize,
        /// When OUT already holds files: delete its earlier run files and the report files
        /// pibench wrote there (other files stay), and start afresh.
        #[arg(long, conflicts_with = "append")]
        force: bool,
        /// When OUT already holds files: add to its runs (same ring and backend) and draw the
        /// report from all of them.
        #[arg(long)]
        append: bool,
        /// Also run the adversarial batch-norm path of dual-BN models.
        #[arg(long)]
        both_bn: bool,
        /// Links to estimate (default lan, wan, mobile); repeatable.
        #[arg(long = "link")]
        links: Vec<String>,
        /// Links to also run through a throttled channel (default lan); repeatable; `none` for none.
        #[arg(long = "emulate")]
        emulate: Vec<String>,
        /// Linear preprocessing backend.
        #[arg(long = "offline", default_value_t = SweepOptions::DEFAULT_BACKEND)]
        backend: Backend,
        /// Largest budget an emulated run is made for.
        #[arg(long, default_value_t = SweepOptions::DEFAULT_EMULATE_MAX_BUDGET)]
        emulate_max_budget: u64,
        #[command(flatten)]
        ring: RingArgs,
        /// Garbling schemes to compare (comma-separated): half-gates, three-halves.
        #[arg(long, value_delimiter = ',', default_values_t = [GcOptions::RECOMMENDED.garbling])]
        garbling: Vec<Scheme>,
        /// OT extensions to compare (comma-separated): iknp, softspoken, softspoken-kK, silent.
        #[arg(long, value_delimiter = ',', default_values_t = [GcOptions::RECOMMENDED.ot])]
        ot: Vec<OtKind>,
        #[command(flatten)]
        eval: SweepEvalArgs,
    },
    /// Redraw a report (CSV, plots, cost model, report.md) from the run JSONs a sweep wrote.
    Report {
        /// The sweep's output directory (its runs are read from DIR/runs).
        #[arg(default_value = "reports")]
        dir: PathBuf,
    },
    /// Estimate a bundle's cost on a link without running it, from a sweep's fitted cost model.
    Predict {
        /// The model bundle.
        model: PathBuf,
        /// Link: lan, wan, mobile or BW,RTT (e.g. 1gbit,10ms).
        #[arg(long, default_value = "lan")]
        link: String,
        /// The cost model a sweep wrote.
        #[arg(long, default_value = "reports/costmodel.json")]
        costmodel: PathBuf,
    },
    /// Time the plain reference inferences (f32 and fixed point) of MODEL and report the
    /// fixed-point logit error.
    Plain {
        /// The model bundle.
        model: PathBuf,
        /// Batch-norm path of dual-BN models.
        #[arg(long, default_value = "clean")]
        bn: BnPath,
        /// Seeded random inputs to run.
        #[arg(long, default_value_t = 5, value_parser = positive)]
        inputs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ring: RingArgs,
    },
    /// Write an architecture-true synthetic bundle: seeded weights, calibrated batch norms, and
    /// masks allocated per site.
    Gen {
        /// Layout: rlnet-dual-bn, rlnet-single-bn or snl.
        #[arg(long, default_value = "rlnet-dual-bn")]
        layout: String,
        /// Dataset: cifar10, cifar100 or tiny-imagenet.
        #[arg(long, default_value = "cifar10")]
        dataset: String,
        /// Base width (64 for ResNet18; smaller for quick tests).
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// Allocation: all, uniform:<f>, one of RLNet's lists (e.g. ResNet18_C10_relu82k),
        /// fractions:<f,..> or counts:<k,..>.
        #[arg(long, default_value = "all")]
        alloc: String,
        /// Seed of weights, masks and batch-norm parameters.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Method label for the card (default from the layout: rlnet, senet, snl).
        #[arg(long)]
        method: Option<String>,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Accuracy under private inference: clean (CA), corrupted (NPA) and adversarial (AdvA), each
    /// in f32, the fixed-point oracle and the exact PI arithmetic.
    Eval {
        #[command(flatten)]
        args: EvalArgs,
        /// The ring recommendation: percentage points PI may lose against f32 on each set.
        #[arg(long, default_value_t = pibench::eval::ring_choice::DEFAULT_TOLERANCE)]
        tolerance: f64,
        /// Write the result as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Merge the JSON results of `eval --shard K/N` runs into the result of one unsharded run.
    EvalMerge {
        /// The shards' JSON files.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// The ring recommendation: percentage points PI may lose against f32 on each set.
        #[arg(long, default_value_t = pibench::eval::ring_choice::DEFAULT_TOLERANCE)]
        tolerance: f64,
        /// Write the merged result as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Write the public bundle of MODEL: graph, shapes, masks and card, without the weights;
    /// what a `client` needs.
    Public {
        /// The full model bundle.
        model: PathBuf,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Price N garbled ReLUs alone: base OT, OT extension, garbling, transfer, evaluation and
    /// decoding between two parties over loopback TCP.
    ReluBench {
        /// Number of ReLUs (refused when both parties' buffers cannot fit in memory).
        #[arg(long, default_value_t = 100_000, value_parser = positive)]
        relus: usize,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ring: RingArgs,
        #[command(flatten)]
        gc: GcArgs,
    },
}

fn run_sweep(opts: &SweepOptions) -> Result<()> {
    eprintln!(
        "pibench: sweeping {} models ({} inputs × {} repeats each, links {}) into {}",
        opts.models.len(),
        opts.inputs,
        opts.repeats,
        opts.links
            .iter()
            .map(|l| l.name.clone())
            .collect::<Vec<_>>()
            .join(", "),
        opts.out.display()
    );
    let outcome = pibench::job::sweep_and_report(opts)?;
    if let Some(cm) = &outcome.report.cost_model {
        out(cm)?;
    }
    for note in &outcome.report.notes {
        out(format!("note: {note}"))?;
    }
    if !outcome.evaluations.is_empty() {
        out(format!(
            "{} accuracy evaluations in {:.1} s ({})",
            outcome.evaluations.len(),
            outcome.eval_seconds,
            opts.out.join("eval").display()
        ))?;
    }
    out(format!(
        "{} runs, all correct, in {:.1} s. Report: {}",
        outcome.results.len(),
        outcome.seconds,
        outcome.report.report_md.display()
    ))
}

fn flood(queries: u64) -> pibench::protocol::he::FloodTarget {
    pibench::protocol::he::FloodTarget {
        queries,
        ..Default::default()
    }
}

/// Write an eval result's JSON (first, so nothing is lost), then print its table.
fn write_eval(
    report: &pibench::eval::job::EvalReport,
    json: Option<&std::path::Path>,
) -> Result<()> {
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    out(report.table().trim_end())?;
    if let Some(path) = json {
        out(format!("result written to {}", path.display()))?;
    }
    Ok(())
}

fn links(specs: &[String]) -> Result<Vec<Link>> {
    if specs.is_empty() {
        return Ok(Link::presets());
    }
    specs
        .iter()
        .map(|s| Link::parse(s).with_context(|| format!("--link {s}")))
        .collect()
}

fn main() -> ExitCode {
    pibench::bench::name_pool_threads();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output has gone (`| head`): everything asked for was written
        // before the table, so this is a normal end.
        Err(e) if e.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => {
            // The default job (`pibench::job::default_sweeps`).
            for opts in pibench::job::default_sweeps() {
                run_sweep(&opts)?;
            }
        }
        Some(Command::Sweep {
            models,
            out,
            inputs,
            repeats,
            force,
            append,
            both_bn,
            links: l,
            emulate,
            backend,
            emulate_max_budget,
            ring,
            garbling,
            ot,
            eval,
        }) => {
            let models = if models.is_empty() {
                pibench::bench::sweep::bundles_in(&pibench::model::bundled::models_dir())
            } else {
                models
            };
            let mut opts = SweepOptions::new(models, out);
            opts.inputs = inputs;
            opts.repeats = repeats;
            opts.existing = match (force, append) {
                (true, _) => pibench::bench::sweep::Existing::Force,
                (_, true) => pibench::bench::sweep::Existing::Append,
                _ => pibench::bench::sweep::Existing::Refuse,
            };
            if both_bn {
                opts.bn_paths = vec![BnPath::Clean, BnPath::Adv];
            }
            opts.links = links(&l)?;
            if !emulate.is_empty() {
                opts.emulate = if emulate.iter().any(|e| e == "none") {
                    vec![]
                } else {
                    links(&emulate)?
                };
            }
            opts.emulate_max_budget = emulate_max_budget;
            opts.backend = backend;
            opts.ring = ring.ring()?;
            opts.gc = garbling
                .iter()
                .flat_map(|&g| ot.iter().map(move |&o| GcOptions { garbling: g, ot: o }))
                .collect();
            opts.eval = eval.options();
            run_sweep(&opts)?;
        }
        Some(Command::Report { dir }) => {
            let sweep = pibench::report::sweep::Sweep::load_dir(&dir.join("runs"))?;
            // The runs record their order and command: the redraw is the report the sweep wrote.
            let opts = pibench::report::ReportOptions::default();
            let summary = pibench::report::write_report(&sweep.runs, &dir, &opts)?;
            out(format!(
                "report redrawn from {} runs: {}",
                sweep.runs.len(),
                summary.report_md.display()
            ))?;
        }
        Some(Command::Predict {
            model,
            link,
            costmodel,
        }) => {
            use pibench::report::costmodel::{CostModel, Workload};
            let cm = CostModel::load(&costmodel).with_context(|| {
                format!(
                    "loading {} (run `pibench sweep` first)",
                    costmodel.display()
                )
            })?;
            let net = pibench::model::Bundle::open(&model)?.network(BnPath::Clean)?;
            let p = cm.predict(&Workload::of_network(&net), &Link::parse(&link)?);
            out(format!("{} on {link}: {p}", model.display()))?;
        }
        Some(Command::Run {
            model,
            bn,
            backend,
            measure,
            memory,
            emulate,
            timeout,
            he_queries,
            ring,
            gc,
            costmodel,
        }) => {
            let opts = RunOptions {
                input: measure.input(),
                transport: match (emulate, memory) {
                    (Some(link), _) => Transport::Emulated(
                        Link::parse(&link).with_context(|| format!("--emulate {link}"))?,
                    ),
                    (None, true) => Transport::Memory,
                    (None, false) => Transport::TcpLoopback,
                },
                links: links(&measure.links)?,
                flood: flood(he_queries),
                ..party_options(model, bn, backend, &ring, &gc, timeout)?
            };
            let result = run_local(&opts)?;
            measure.finish(&result)?;
            if let Some(note) = pibench::report::saving::saving_note(&result, &costmodel) {
                out(note)?;
            }
        }
        Some(Command::Serve {
            model,
            listen,
            backend,
            bn,
            timeout,
            he_queries,
            send_timings,
            ring,
            gc,
        }) => {
            let opts = RunOptions {
                flood: flood(he_queries),
                send_timings,
                ..party_options(model, bn, backend, &ring, &gc, timeout)?
            };
            if backend == Backend::Dealer {
                eprintln!("warning: --offline dealer: this server process plays the trusted dealer and sees the client's masks, hence its input; use --offline he for a private run");
            }
            pibench::bench::run::serve(&opts, &listen)?;
            eprintln!("pibench serve: session finished");
        }
        Some(Command::Client {
            connect,
            backend,
            model,
            bn,
            measure,
            timeout,
            ring,
            gc,
        }) => {
            let opts = RunOptions {
                input: measure.input(),
                transport: Transport::TcpLoopback,
                links: links(&measure.links)?,
                ..party_options(model, bn, backend, &ring, &gc, timeout)?
            };
            if opts.backend == Backend::Dealer {
                eprintln!("warning: --offline dealer: the server's process plays the trusted dealer and sees this client's masks, hence its input");
            }
            measure.finish(&pibench::bench::run::client(&opts, &connect)?)?;
        }
        Some(Command::Inspect { model, bn, json }) => {
            let bundle = pibench::model::Bundle::open(&model)
                .with_context(|| format!("loading {}", model.display()))?;
            let net = bundle
                .network(bn)
                .with_context(|| format!("building {}", model.display()))?;
            let inspection = pibench::model::Inspection::of(&net);
            if json {
                out(serde_json::to_string_pretty(&inspection)?)?;
            } else {
                out(inspection)?;
            }
        }
        Some(Command::Plain {
            model,
            bn,
            inputs,
            json,
            ring,
        }) => {
            let t = pibench::bench::plaintime::plain_timing(&model, bn, ring.ring()?, inputs)?;
            if json {
                out(serde_json::to_string_pretty(&t)?)?;
            } else {
                out(format!(
                    "{}: {:.0} M MACs; f32 {:.1} ms, fixed point (ℓ={}, f={}) {:.1} ms per inference (median of {}); max |fixed − f32| logit error {:.3e}; same class on {}/{} inputs",
                    t.model,
                    t.macs as f64 / 1e6,
                    t.f32_seconds * 1e3,
                    t.ring.ell,
                    t.ring.frac,
                    t.fixed_seconds * 1e3,
                    t.inputs,
                    t.max_logit_error,
                    t.same_class,
                    t.inputs
                ))?;
            }
        }
        Some(Command::Eval {
            args,
            tolerance,
            json,
        }) => {
            let opts = pibench::eval::job::EvalOptions::from_cli(args.choices())?;
            let bar = pibench::eval::job::Bar::new("eval");
            let mut report = pibench::eval::job::evaluate(&opts, &bar)?;
            bar.0.finish_and_clear();
            pibench::job::attach_ring_choice(&mut report, tolerance)?;
            write_eval(&report, json.as_deref())?;
        }
        Some(Command::EvalMerge {
            shards,
            tolerance,
            json,
        }) => {
            let read = shards
                .iter()
                .map(|p| Ok((p.clone(), pibench::eval::job::EvalReport::read(p)?)))
                .collect::<Result<Vec<_>>>()?;
            let mut report = pibench::eval::job::EvalReport::merge(read)?;
            pibench::job::attach_ring_choice(&mut report, tolerance)?;
            write_eval(&report, json.as_deref())?;
        }
        Some(Command::Gen {
            layout,
            dataset,
            width,
            alloc,
            seed,
            method,
            out,
        }) => {
            use pibench::model::arch::ArchSpec;
            let arch = ArchSpec {
                layout: layout
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--layout: {e}"))?,
                dataset: dataset
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--dataset: {e}"))?,
                width,
            };
            let allocation = alloc.parse().map_err(|e| anyhow::anyhow!("--alloc: {e}"))?;
            let mut spec = pibench::model::GenSpec::new(arch, allocation, seed);
            spec.method = method;
            pibench::model::generate(&spec)?.write(&out)?;
            let net = pibench::model::Bundle::open(&out)?.network(BnPath::Clean)?;
            self::out(format!(
                "wrote {} ({} of {} ReLUs kept, {} sites)",
                out.display(),
                net.kept_relus(),
                net.total_relus(),
                net.sites().len()
            ))?;
        }
        Some(Command::Public { model, out }) => {
            let bundle = pibench::model::Bundle::open(&model)
                .with_context(|| format!("loading {}", model.display()))?;
            pibench::model::public_bundle(&bundle)?
                .write(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            self::out(format!(
                "wrote {}: the public bundle of {} (graph, shapes, masks, card; no weights)",
                out.display(),
                model.display()
            ))?;
        }
        Some(Command::ReluBench {
            relus,
            json,
            ring,
            gc,
        }) => {
            let r = relu_bench(relus, ring.ring()?, gc.options(), Duration::from_secs(120))?;
            if json {
                out(serde_json::to_string_pretty(&r)?)?;
            } else {
                out(pibench::bench::table::relu_table(&r))?;
            }
            if !r.correct {
                anyhow::bail!("a decoded ReLU output was wrong");
            }
        }
    }
    Ok(())
}
