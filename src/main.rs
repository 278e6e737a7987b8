//! The `pibench` command line: parses arguments and calls the library. No logic lives here.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use pibench::bench::relu::relu_bench;
use pibench::bench::run::{run_local, InputSpec, RunOptions, Transport};
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
    #[arg(long, default_value_t = 64)]
    ell: u32,
    /// Fractional bits f of the fixed-point encoding.
    #[arg(long, default_value_t = 12)]
    frac: u32,
}

/// The cryptography of the ReLU sites (both parties must use the same).
#[derive(clap::Args, Clone)]
struct GcArgs {
    /// Garbling scheme: half-gates or three-halves.
    #[arg(long, default_value_t = GcOptions::RECOMMENDED.garbling)]
    garbling: Scheme,
    /// Correlated OT for the client's input labels: iknp, softspoken (k = 4) or softspoken-kK
    /// (K in 1, 2, 4, 8).
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

    /// Print the run's table, write its JSON if asked, and fail when it is not correct.
    fn finish(&self, result: &pibench::bench::result::RunResult) -> Result<()> {
        println!("{}", pibench::bench::table::run_table(result));
        if let Some(path) = &self.json {
            std::fs::write(path, serde_json::to_string_pretty(result)?)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("result written to {}", path.display());
        }
        if !result.correct {
            anyhow::bail!("secure logits differ from the fixed-point oracle");
        }
        Ok(())
    }
}

impl RingArgs {
    fn ring(&self) -> Result<Ring> {
        Ok(Ring::new(self.ell, self.frac)?)
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
        /// Receive time-out in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[command(flatten)]
        ring: RingArgs,
        #[command(flatten)]
        gc: GcArgs,
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
        /// Receive time-out in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[command(flatten)]
        ring: RingArgs,
        #[command(flatten)]
        gc: GcArgs,
    },
    /// The client's side of `run` as its own process: connect to `pibench serve`. The client
    /// loads the same bundle for the public architecture and masks (and, being a benchmark,
    /// to check the result against the plain oracle).
    Client {
        /// Server address.
        #[arg(long, default_value = "127.0.0.1:7000")]
        connect: String,
        /// Linear preprocessing backend (the server must use the same). With `dealer` the
        /// server's process plays the dealer and sees this client's input.
        #[arg(long = "offline", default_value = "he")]
        backend: Backend,
        /// The model bundle (the same file the server serves).
        #[arg(long)]
        model: PathBuf,
        /// Batch-norm path of dual-BN models (must match the server's).
        #[arg(long, default_value = "clean")]
        bn: BnPath,
        #[command(flatten)]
        measure: MeasureArgs,
        /// Receive time-out in seconds.
        #[arg(long, default_value_t = 120)]
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
        #[arg(long, default_value_t = 2)]
        inputs: usize,
        /// Repeats per input.
        #[arg(long, default_value_t = 2)]
        repeats: usize,
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
        #[arg(long = "offline", default_value = "dealer")]
        backend: Backend,
        /// Largest budget an emulated run is made for.
        #[arg(long, default_value_t = 60_000)]
        emulate_max_budget: u64,
        #[command(flatten)]
        ring: RingArgs,
        /// Garbling schemes to compare (comma-separated): half-gates, three-halves.
        #[arg(long, value_delimiter = ',', default_values_t = [GcOptions::RECOMMENDED.garbling])]
        garbling: Vec<Scheme>,
        /// OT extensions to compare (comma-separated): iknp, softspoken, softspoken-kK.
        #[arg(long, value_delimiter = ',', default_values_t = [GcOptions::RECOMMENDED.ot])]
        ot: Vec<OtKind>,
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
        #[arg(long, default_value_t = 5)]
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
    /// Price N garbled ReLUs alone: base OT, OT extension, garbling, transfer, evaluation and
    /// decoding between two parties over loopback TCP.
    ReluBench {
        /// Number of ReLUs.
        #[arg(long, default_value_t = 100_000)]
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

fn run_sweep(opts: &pibench::bench::sweep::SweepOptions) -> Result<()> {
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
    let outcome = pibench::bench::sweep::sweep(opts)?;
    if let Some(cm) = &outcome.report.cost_model {
        println!("{cm}");
    }
    for note in &outcome.report.notes {
        println!("note: {note}");
    }
    println!(
        "{} runs, all correct, in {:.1} s. Report: {}",
        outcome.results.len(),
        outcome.seconds,
        outcome.report.report_md.display()
    );
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            // The default job: every bundled model with the dealer backend (online costs and the
            // ReLUs' offline costs), then the RLNet bundles once more with real two-party linear
            // preprocessing (homomorphic encryption) for the full offline cost.
            let models = pibench::bench::sweep::bundles_in(&pibench::model::bundled::models_dir());
            let opts = pibench::bench::sweep::SweepOptions::new(models.clone(), "reports");
            run_sweep(&opts)?;
            let rlnet: Vec<PathBuf> = models
                .into_iter()
                .filter(|m| m.to_string_lossy().contains("rlnet"))
                .collect();
            let mut he = pibench::bench::sweep::SweepOptions::new(rlnet, "reports/he");
            he.backend = Backend::He;
            // Three repeats and a warm-up: HE time varies by ±10 % run to run on two shared
            // cores, and the cost model's held-out check needs medians, not single runs.
            he.inputs = 1;
            he.repeats = 3;
            he.emulate = vec![];
            run_sweep(&he)?;
        }
        Some(Command::Sweep {
            models,
            out,
            inputs,
            repeats,
            both_bn,
            links: l,
            emulate,
            backend,
            emulate_max_budget,
            ring,
            garbling,
            ot,
        }) => {
            let models = if models.is_empty() {
                pibench::bench::sweep::bundles_in(&pibench::model::bundled::models_dir())
            } else {
                models
            };
            let mut opts = pibench::bench::sweep::SweepOptions::new(models, out);
            opts.inputs = inputs;
            opts.repeats = repeats;
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
            run_sweep(&opts)?;
        }
        Some(Command::Report { dir }) => {
            let sweep = pibench::report::sweep::Sweep::load_dir(&dir.join("runs"))?;
            let opts = pibench::report::ReportOptions {
                reproduce_command:
                    "cargo run --release   # or: pibench sweep models/*.safetensors --out reports/"
                        .into(),
                ..Default::default()
            };
            let summary = pibench::report::write_report(&sweep.runs, &dir, &opts)?;
            println!(
                "report redrawn from {} runs: {}",
                sweep.runs.len(),
                summary.report_md.display()
            );
        }
        Some(Command::Predict {
            model,
            link,
            costmodel,
        }) => {
            use pibench::report::costmodel::{CostModel, LinkParams, Workload};
            let cm = CostModel::load(&costmodel).with_context(|| {
                format!(
                    "loading {} (run `pibench sweep` first)",
                    costmodel.display()
                )
            })?;
            let net = pibench::model::Bundle::open(&model)?.network(BnPath::Clean)?;
            let p = cm.predict(&Workload::of_network(&net), &LinkParams::parse(&link)?);
            println!("{} on {link}: {p}", model.display());
        }
        Some(Command::Run {
            model,
            bn,
            backend,
            measure,
            memory,
            emulate,
            timeout,
            ring,
            gc,
        }) => {
            let opts = RunOptions {
                model,
                bn,
                ring: ring.ring()?,
                backend,
                gc: gc.options(),
                input: measure.input(),
                transport: match (emulate, memory) {
                    (Some(link), _) => Transport::Emulated(
                        Link::parse(&link).with_context(|| format!("--emulate {link}"))?,
                    ),
                    (None, true) => Transport::Memory,
                    (None, false) => Transport::TcpLoopback,
                },
                links: links(&measure.links)?,
                timeout: Duration::from_secs(timeout),
                progress: true,
            };
            measure.finish(&run_local(&opts)?)?;
        }
        Some(Command::Serve {
            model,
            listen,
            backend,
            bn,
            timeout,
            ring,
            gc,
        }) => {
            let mut opts = RunOptions::new(model);
            opts.gc = gc.options();
            opts.bn = bn;
            opts.backend = backend;
            opts.ring = ring.ring()?;
            opts.timeout = Duration::from_secs(timeout);
            opts.progress = true;
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
                model,
                bn,
                ring: ring.ring()?,
                backend,
                gc: gc.options(),
                input: measure.input(),
                transport: Transport::TcpLoopback,
                links: links(&measure.links)?,
                timeout: Duration::from_secs(timeout),
                progress: true,
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
                println!("{}", serde_json::to_string_pretty(&inspection)?);
            } else {
                println!("{inspection}");
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
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!(
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
                );
            }
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
            println!(
                "wrote {} ({} of {} ReLUs kept, {} sites)",
                out.display(),
                net.kept_relus(),
                net.total_relus(),
                net.sites().len()
            );
        }
        Some(Command::ReluBench {
            relus,
            json,
            ring,
            gc,
        }) => {
            let r = relu_bench(relus, ring.ring()?, gc.options(), Duration::from_secs(120))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{}", pibench::bench::table::relu_table(&r));
            }
            if !r.correct {
                anyhow::bail!("a decoded ReLU output was wrong");
            }
        }
    }
    Ok(())
}
