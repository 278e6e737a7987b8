//! One measured private inference: load, lower, run both parties (in one process over loopback
//! TCP or memory, or as two processes), check against the oracle, and assemble a [`RunResult`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};

use crate::model::{bundle::Bundle, BnPath, Network, StepGraph};
use crate::net::link::Link;
use crate::net::{Channel, Metered, Phase};
use crate::plain::{self, FixedNetwork, FixedOutput, StepKind};
use crate::protocol::prepro::Backend;
use crate::protocol::session::{
    client_session, recv_report, send_report, server_session, PartyReport, READY_SCOPE,
};
use crate::protocol::{self, GcOptions, Halves, Observer, ProtocolError};
use crate::results::*;
use crate::ring::Ring;

/// Errors of a measured run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The model could not be loaded.
    #[error("loading {path}: {source}")]
    Model {
        /// Bundle path.
        path: String,
        /// Why.
        #[source]
        source: Box<crate::model::ModelError>,
    },
    /// Plain inference or lowering failed.
    #[error(transparent)]
    Plain(#[from] plain::PlainError),
    /// The server failed.
    #[error("server: {0}")]
    Server(ProtocolError),
    /// The client failed.
    #[error("client: {0}")]
    Client(ProtocolError),
    /// The channel could not be set up.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// The input file is unusable.
    #[error("input {path}: {reason}")]
    Input {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
    /// A party thread panicked (a bug).
    #[error("a party thread panicked: {0}")]
    Panic(String),
    /// A request that cannot fit in this machine's memory, refused before allocating.
    #[error(
        "{what} needs about {needed_gb:.1} GB of memory, more than this machine has available \
         ({available_gb:.1} GB); ask for less"
    )]
    TooLarge {
        /// What was asked for (e.g. `--relus 1000000000000`).
        what: String,
        /// Estimated bytes needed, in GB.
        needed_gb: f64,
        /// Bytes available, in GB.
        available_gb: f64,
    },
    /// A public (weight-free) bundle where the weights are needed.
    #[error(
        "{path} is a public bundle (graph, shapes, masks and card, no weights): only `client` \
         accepts it; serve or run the full bundle"
    )]
    PublicBundle {
        /// The bundle.
        path: String,
    },
}

/// Where the client's image comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSpec {
    /// A seeded random image, roughly normalized like CIFAR (N(0,1) clipped to ±2.5).
    Random {
        /// Seed.
        seed: u64,
    },
    /// A file: `.json` (a flat array of numbers) or `.safetensors` (tensor `input`, or the first
    /// image of `inputs` `[N, C, H, W]`).
    File(PathBuf),
}

/// How the two parties are connected in a one-process run.
#[derive(Clone, Debug, PartialEq)]
pub enum Transport {
    /// A TCP connection over 127.0.0.1.
    TcpLoopback,
    /// In-memory queues.
    Memory,
    /// In-memory queues throttled to a link's bandwidth and delayed by its one-way latency, so
    /// the link model can be checked against a real run.
    Emulated(Link),
}

/// Everything that defines one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The bundle.
    pub model: PathBuf,
    /// Batch-norm path for dual-BN bundles.
    pub bn: BnPath,
    /// ℓ and f.
    pub ring: Ring,
    /// Linear preprocessing backend.
    pub backend: Backend,
    /// Garbling scheme and OT of the ReLU sites.
    pub gc: GcOptions,
    /// The input.
    pub input: InputSpec,
    /// Transport.
    pub transport: Transport,
    /// Links to estimate costs for.
    pub links: Vec<Link>,
    /// Receive time-out.
    pub timeout: Duration,
    /// Show progress bars.
    pub progress: bool,
    /// The statistical target of the `he` server's noise flooding.
    pub flood: crate::protocol::he::FloodTarget,
    /// `serve` only: hand the client this party's per-step timings at the end (a benchmark
    /// option; by default the server shares nothing beyond the protocol).
    pub send_timings: bool,
}

impl RunOptions {
    /// Defaults for `model`: clean path, ℓ = 64, f = 12, dealer, random input seed 0, loopback
    /// TCP, the three link presets, 60 s time-out, no progress bars.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        RunOptions {
            model: model.into(),
            bn: BnPath::Clean,
            ring: Ring::default(),
            backend: Backend::Dealer,
            gc: GcOptions::RECOMMENDED,
            input: InputSpec::Random { seed: 0 },
            transport: Transport::TcpLoopback,
            links: Link::presets(),
            timeout: Duration::from_secs(60),
            progress: false,
            flood: Default::default(),
            send_timings: false,
        }
    }
}

/// Load a bundle and build its network for `bn`. A public bundle is refused: its placeholder
/// weights would give meaningless results.
pub fn load_network(path: &Path, bn: BnPath) -> Result<Network, BenchError> {
    match load_client_network(path, bn)? {
        (_, true) => Err(BenchError::PublicBundle {
            path: path.display().to_string(),
        }),
        (net, false) => Ok(net),
    }
}

/// Load a full or a public bundle (what a client needs: architecture, shapes and masks) and
/// build its network for `bn`; the flag says whether it was public (weights are placeholders).
pub fn load_client_network(path: &Path, bn: BnPath) -> Result<(Network, bool), BenchError> {
    let err = |source: crate::model::ModelError| BenchError::Model {
        path: path.display().to_string(),
        source: Box::new(source),
    };
    let bundle = Bundle::open(path).map_err(err)?;
    Ok((bundle.network(bn).map_err(err)?, bundle.is_public()))
}

/// Read or draw the client's input for `net`.
pub fn load_input(spec: &InputSpec, net: &Network) -> Result<Vec<f32>, BenchError> {
    let n = net.input_shape.elements();
    match spec {
        InputSpec::Random { seed } => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(*seed);
            Ok((0..n)
                .map(|_| {
                    let (u1, u2): (f64, f64) = (rng.gen::<f64>().max(1e-12), rng.gen());
                    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()).clamp(-2.5, 2.5)
                        as f32
                })
                .collect())
        }
        InputSpec::File(path) => {
            let bad = |reason: String| BenchError::Input {
                path: path.display().to_string(),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let values: Vec<f32> = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("not a JSON array of numbers: {e}")))?
            } else {
                let st = safetensors::SafeTensors::deserialize(&bytes)
                    .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
                let (name, t) = match st.tensor("input") {
                    Ok(t) => ("input", t),
                    Err(_) => (
                        "inputs",
                        st.tensor("inputs")
                            .map_err(|_| bad("no tensor `input` or `inputs`".into()))?,
                    ),
                };
                if t.dtype() != safetensors::Dtype::F32 {
                    return Err(bad(format!(
                        "tensor has dtype {:?}, expected F32",
                        t.dtype()
                    )));
                }
                check_input_shape(name, t.shape(), &net.input_shape.dims()).map_err(bad)?;
                t.data()
                    .chunks_exact(4)
                    .take(n)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            };
            if values.len() != n {
                return Err(bad(format!(
                    "{} values, the model expects {n} ({:?})",
                    values.len(),
                    net.input_shape.dims()
                )));
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(bad("contains NaN or infinity".into()));
            }
            Ok(values)
        }
    }
}

/// The shapes an input tensor may have: `input` is one image `[C, H, W]` (or `[1, C, H, W]`, or
/// flat), `inputs` a batch `[N, C, H, W]` whose first image is used.
fn check_input_shape(name: &str, shape: &[usize], want: &[usize]) -> Result<(), String> {
    let n: usize = want.iter().product();
    let ok = match (name, shape) {
        ("input", s) if s == want || s == [n] => true,
        ("input", [1, rest @ ..]) => rest == want,
        ("inputs", [b, rest @ ..]) => *b >= 1 && rest == want,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let expected = if name == "input" {
            format!("{want:?}, [1, ..{want:?}] or [{n}]")
        } else {
            format!("[N, ..{want:?}] with N ≥ 1")
        };
        Err(format!(
            "tensor `{name}` has shape {shape:?}, the model expects {expected}"
        ))
    }
}

/// A party's progress bar: one tick per step.
impl Observer for ProgressBar {
    fn step_done(&self, phase: Phase, name: &str) {
        self.inc(1);
        self.set_message(format!("{phase} {name}"));
    }

    fn finished(&self) {
        self.finish_with_message("done");
    }
}

fn bar(mp: &MultiProgress, len: usize, label: &str, show: bool) -> Option<Arc<dyn Observer>> {
    if !show {
        return None;
    }
    let pb = mp.add(ProgressBar::new(len as u64));
    pb.set_style(
        ProgressStyle::with_template("{prefix:>16} [{bar:32}] {pos}/{len} layers {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    Some(Arc::new(pb))
}

fn join<T>(h: std::thread::JoinHandle<T>) -> Result<T, BenchError> {
    h.join().map_err(|e| {
        BenchError::Panic(
            e.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
        )
    })
}

/// Both parties in this process: the complete measured run.
pub fn run_local(opts: &RunOptions) -> Result<RunResult, BenchError> {
    let net = load_network(&opts.model, opts.bn)?;
    let input = load_input(&opts.input, &net)?;
    run_network(&net, &input, opts)
}

/// Both parties in this process on an already loaded network (`opts.model` is only recorded).
pub fn run_network(
    net: &Network,
    input: &[f32],
    opts: &RunOptions,
) -> Result<RunResult, BenchError> {
    let fixed = Arc::new(FixedNetwork::lower(net, opts.ring)?);
    let oracle = fixed.forward(input)?;
    let f32_logits = plain::forward_f32(net, input)?;
    let halves = opts
        .backend
        .halves(&fixed, opts.flood)
        .map_err(BenchError::Server)?;
    let mp = MultiProgress::new();
    let steps = fixed.steps.len();
    let pb_s = bar(&mp, steps * 2, "server", opts.progress);
    let pb_c = bar(&mp, steps * 2, "client", opts.progress);
    // The server's end first. Boxed: one code path for every transport; the dynamic call per
    // send or receive is noise next to the chunk it moves.
    type End = Box<dyn Channel>;
    let (server_end, client_end, transport): (End, End, &str) = match &opts.transport {
        Transport::Memory => {
            let (a, b) = crate::net::mem_pair(opts.timeout);
            (Box::new(a), Box::new(b), "memory")
        }
        Transport::TcpLoopback => {
            let listener = crate::net::tcp::Listener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let timeout = opts.timeout;
            let accept =
                super::spawn_named("pibench-accept", move || listener.accept(timeout, timeout));
            let c = crate::net::tcp::connect(addr, timeout)?;
            let s = join(accept)??;
            (Box::new(s), Box::new(c), "tcp-loopback")
        }
        Transport::Emulated(link) => {
            let (c, s) = crate::net::emulate::emulated_pair(link, opts.timeout);
            (Box::new(s), Box::new(c), "emulated")
        }
    };
    let ((server_rep,), (client_rep, logits)) = run_pair(
        Metered::new(server_end),
        Metered::new(client_end),
        &fixed,
        halves,
        opts.gc,
        input,
        pb_s,
        pb_c,
    )?;
    Ok(assemble(
        opts,
        net,
        &fixed,
        Some((&oracle, &f32_logits)),
        server_rep,
        client_rep,
        logits,
        transport,
    ))
}

#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn run_pair<C: Channel + 'static>(
    mut s: Metered<C>,
    mut c: Metered<C>,
    fixed: &Arc<FixedNetwork>,
    halves: Halves,
    gc: GcOptions,
    input: &[f32],
    pb_s: Option<Arc<dyn Observer>>,
    pb_c: Option<Arc<dyn Observer>>,
) -> Result<((PartyReport,), (PartyReport, Vec<f64>)), BenchError> {
    let (fs, fc) = (fixed.clone(), fixed.clone());
    let (mut ds, mut dc) = halves;
    let input = input.to_vec();
    let hs = super::spawn_named("pibench-server", move || {
        server_session(&mut s, &fs, ds.as_mut(), gc, pb_s)
    });
    let hc = super::spawn_named("pibench-client", move || {
        client_session(&mut c, &fc, dc.as_mut(), gc, &input, pb_c)
    });
    let rs = join(hs)?;
    let rc = join(hc)?;
    // Report the root cause: when one side fails the other usually sees a disconnect.
    match (rs, rc) {
        (Ok(s), Ok(c)) => Ok(((s,), c)),
        (Err(e), Ok(_)) => Err(BenchError::Server(e)),
        (Ok(_), Err(e)) => Err(BenchError::Client(e)),
        (Err(es), Err(ec)) => {
            let echo = |e: &ProtocolError| e.is_disconnect() || e.is_peer_silence();
            if es.is_disconnect() || (echo(&es) && !echo(&ec)) {
                Err(BenchError::Client(ec))
            } else {
                Err(BenchError::Server(es))
            }
        }
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

fn phase_cost(
    server: &PartyReport,
    client: &PartyReport,
    phase: Phase,
    layer: Option<&str>,
) -> PhaseCost {
    let counters = match layer {
        None => Some(server.stats.phase(phase).total),
        Some(l) => server.stats.layer(phase, l).copied(),
    }
    .unwrap_or_default();
    let secs = |r: &PartyReport| match layer {
        None => match phase {
            Phase::Setup => r.setup_secs,
            Phase::Offline => r.offline_secs,
            Phase::Online => r.online_secs,
        },
        Some(l) => r
            .timings
            .steps
            .iter()
            .filter(|t| t.phase == phase && t.name == l)
            .fold(0.0, |acc, t| acc + t.seconds),
    };
    let (ss, cs) = (secs(server), secs(client));
    PhaseCost {
        seconds: ss.max(cs),
        seconds_server: ss,
        seconds_client: cs,
        bytes_client_to_server: counters.bytes_received,
        bytes_server_to_client: counters.bytes_sent,
        rounds: counters.rounds,
    }
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    opts: &RunOptions,
    net: &Network,
    fixed: &FixedNetwork,
    check: Option<(&FixedOutput, &[f32])>,
    server: PartyReport,
    client: PartyReport,
    logits: Vec<f64>,
    transport: &str,
) -> RunResult {
    let mut layers = Vec::new();
    let mut push = |name: &str, kind: &str, elements: u64, relus_kept: u64, macs: u64| {
        layers.push(LayerCost {
            name: name.into(),
            kind: kind.into(),
            elements,
            relus_kept,
            macs,
            offline: phase_cost(&server, &client, Phase::Offline, Some(name)),
            online: phase_cost(&server, &client, Phase::Online, Some(name)),
        })
    };
    push("input", "input", fixed.input_shape.elements() as u64, 0, 0);
    for step in &fixed.steps {
        let elements = step.out_shape.elements() as u64;
        let (kept, macs) = match &step.kind {
            StepKind::Relu { keep: None, .. } => (elements, 0),
            StepKind::Relu { keep: Some(k), .. } => (k.iter().filter(|&&b| b).count() as u64, 0),
            StepKind::Linear(l) => (0, l.macs(step.out_shape.elements())),
            _ => (0, 0),
        };
        push(&step.name, step.kind_name(), elements, kept, macs);
    }
    push(READY_SCOPE, "sync", 0, 0, 0);
    let out_elements = fixed.shape_of(fixed.output).elements() as u64;
    push("output", "output", out_elements, 0, 0);
    let setup = phase_cost(&server, &client, Phase::Setup, None);
    let offline = phase_cost(&server, &client, Phase::Offline, None);
    let online = phase_cost(&server, &client, Phase::Online, None);

    // Without weights (a client holding only the public bundle) there is no oracle to check
    // against: every oracle figure stays empty and the result says it was not checked.
    let no_oracle = FixedOutput {
        raw: vec![],
        logits: vec![],
        max_local_trunc_bits: 0,
        local_truncations: 0,
    };
    let (oracle, f32_logits) = check.unwrap_or((&no_oracle, &[]));
    let max_diff = logits
        .iter()
        .zip(&oracle.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let exact = check.is_some() && logits == oracle.logits;
    let argmax = |v: &[f64]| {
        v.iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &x)| {
                if x > bv {
                    (i, x)
                } else {
                    (bi, bv)
                }
            })
            .0
    };
    let predicted = argmax(&logits);
    let oracle_class = argmax(&oracle.logits);
    let scale = oracle.logits.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let correct = check.is_some() && predicted == oracle_class && max_diff <= 0.01 * scale;
    let fixed_err = oracle
        .logits
        .iter()
        .zip(f32_logits)
        .map(|(a, &b)| (a - b as f64).abs())
        .fold(0.0, f64::max);
    let per_elem = if oracle.local_truncations > 0 {
        opts.ring
            .local_trunc_failure_probability(oracle.max_local_trunc_bits)
    } else {
        0.0
    };
    let budget = fixed.kept_relus() as u64;
    let and_gates = if budget > 0 {
        crate::protocol::site::ReluEngine::new(opts.ring, opts.ring.frac, opts.gc.garbling)
            .map(|e| e.and_gates() as u64)
            .unwrap_or(0)
    } else {
        0
    };
    // Through an emulated link the measured time already contains that link's transfers, so
    // adding another link's model on top would count the network twice.
    let modelled: &[Link] = if matches!(opts.transport, Transport::Emulated(_)) {
        &[]
    } else {
        &opts.links
    };
    let mut links: Vec<LinkEstimate> = modelled
        .iter()
        .map(|l| LinkEstimate {
            link: l.clone(),
            offline_seconds: l.estimate(
                setup.seconds + offline.seconds,
                setup.bytes_client_to_server + offline.bytes_client_to_server,
                setup.bytes_server_to_client + offline.bytes_server_to_client,
                setup.rounds + offline.rounds,
            ),
            online_seconds: l.estimate(
                online.seconds,
                online.bytes_client_to_server,
                online.bytes_server_to_client,
                online.rounds,
            ),
            emulated: false,
        })
        .collect();
    if let Transport::Emulated(link) = &opts.transport {
        links.push(LinkEstimate {
            link: link.clone(),
            offline_seconds: setup.seconds + offline.seconds,
            online_seconds: online.seconds,
            emulated: true,
        });
    }
    let he = (opts.backend == crate::protocol::prepro::Backend::He)
        .then(|| crate::protocol::he::baseline::simd_baseline(fixed).ok())
        .flatten()
        .map(|b| {
            let keys = phase_cost(
                &server,
                &client,
                Phase::Setup,
                Some(crate::protocol::he::KEY_SCOPE),
            );
            let mut t = HeTraffic {
                key_bytes: keys.bytes_client_to_server + keys.bytes_server_to_client,
                simd_bytes_as_sent: b.bytes_as_sent,
                simd_bytes_compressed: b.bytes_compressed,
                simd_crt_primes: b.crt_primes,
                ..HeTraffic::default()
            };
            for l in layers.iter().filter(|l| l.macs > 0 && l.relus_kept == 0) {
                t.seconds += l.offline.seconds;
                t.bytes_client_to_server += l.offline.bytes_client_to_server;
                t.bytes_server_to_client += l.offline.bytes_server_to_client;
            }
            t
        });
    RunResult {
        pibench_version: env!("CARGO_PKG_VERSION").into(),
        model: ModelInfo {
            path: opts.model.display().to_string(),
            card: net.card.clone(),
            bn_path: opts.bn.to_string(),
            fingerprint: protocol::fingerprint(fixed, opts.backend, opts.gc).to_hex(),
            total_relus: net.total_relus() as u64,
            budget,
            macs: net.macs(),
        },
        ring: opts.ring,
        backend: opts.backend,
        gc: opts.gc,
        threads: rayon::current_num_threads(),
        transport: transport.into(),
        machine: Machine::this(),
        setup,
        offline,
        online,
        layers,
        client_storage_bytes: client.storage_bytes,
        server_storage_bytes: server.storage_bytes,
        peak_rss_bytes: peak_rss_bytes(),
        and_gates_per_relu: and_gates,
        correct,
        exact,
        max_logit_diff_vs_oracle: max_diff,
        max_logit_diff_fixed_vs_f32: fixed_err,
        predicted_class: predicted,
        f32_class: if check.is_some() {
            plain::f32::argmax(f32_logits)
        } else {
            predicted
        },
        oracle_checked: check.is_some(),
        logits,
        local_truncation: LocalTruncation {
            count: oracle.local_truncations,
            max_value_bits: oracle.max_local_trunc_bits,
            failure_probability_per_element: per_elem,
            failure_probability: (per_elem * oracle.local_truncations as f64).min(1.0),
        },
        links,
        he,
        sweep: None,
    }
}

/// `pibench serve`: load the model, accept one client on `listen`, run the server's side, and
/// hand the client this party's measurements at the end so it can write the complete result.
pub fn serve(opts: &RunOptions, listen: &str) -> Result<PartyReport, BenchError> {
    let net = load_network(&opts.model, opts.bn)?;
    let fixed = Arc::new(FixedNetwork::lower(&net, opts.ring)?);
    let listener = crate::net::tcp::Listener::bind(listen)?;
    eprintln!(
        "pibench serve: {} listening on {}",
        opts.model.display(),
        listener.local_addr()?
    );
    // The backend first: a model the `he` parameters cannot carry is refused before any
    // client connects.
    let mut pre = opts
        .backend
        .server_half(&fixed, opts.flood)
        .map_err(BenchError::Server)?;
    let stream = listener.accept(Duration::from_secs(3600), opts.timeout)?;
    // Further clients are told at once that this server is busy, not left to time out.
    let _busy = listener.turn_away();
    let mut ch = Metered::new(stream);
    let mp = MultiProgress::new();
    let pb = bar(&mp, fixed.steps.len() * 2, "server", opts.progress);
    let report =
        server_session(&mut ch, &fixed, pre.as_mut(), opts.gc, pb).map_err(BenchError::Server)?;
    send_report(&mut ch, opts.send_timings.then_some(&report)).map_err(BenchError::Server)?;
    Ok(report)
}

/// `pibench client`: connect to a server, run the client's side on `input`, collect the
/// server's measurements if it shares them and assemble the complete result. With the full
/// bundle the result is checked against the oracle; with a public bundle (no weights) it cannot
/// be and says so.
pub fn client(opts: &RunOptions, connect: &str) -> Result<RunResult, BenchError> {
    let (net, public) = load_client_network(&opts.model, opts.bn)?;
    let input = load_input(&opts.input, &net)?;
    let fixed = Arc::new(FixedNetwork::lower(&net, opts.ring)?);
    // Refuses an input the ring cannot represent before anything is sent.
    fixed.encode_input(&input)?;
    let check = if public {
        None
    } else {
        Some((fixed.forward(&input)?, plain::forward_f32(&net, &input)?))
    };
    let stream = crate::net::tcp::connect(connect, opts.timeout)?;
    let mut ch = Metered::new(stream);
    let mut pre = opts
        .backend
        .client_half(&fixed)
        .map_err(BenchError::Client)?;
    let mp = MultiProgress::new();
    let pb = bar(&mp, fixed.steps.len() * 2, "client", opts.progress);
    let (client_rep, logits) = client_session(&mut ch, &fixed, pre.as_mut(), opts.gc, &input, pb)
        .map_err(BenchError::Client)?;
    // A server that keeps its timings to itself: its traffic is ours seen from the other end,
    // its seconds unknown (zero).
    let server_rep = recv_report(&mut ch)
        .map_err(BenchError::Client)?
        .unwrap_or_else(|| PartyReport {
            stats: ch.stats().as_seen_by_peer(),
            ..PartyReport::default()
        });
    Ok(assemble(
        opts,
        &net,
        &fixed,
        check.as_ref().map(|(o, f)| (o, f.as_slice())),
        server_rep,
        client_rep,
        logits,
        "tcp",
    ))
}
