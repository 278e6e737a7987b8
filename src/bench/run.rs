//! One measured private inference: load, lower, run both parties (in one process over loopback
//! TCP or memory, or as two processes), check against the oracle, and assemble a [`RunResult`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};

use super::result::*;
use crate::model::{bundle::Bundle, BnPath, Network};
use crate::net::link::Link;
use crate::net::{handshake, Channel, ChannelStats, Metered, Phase, Role};
use crate::plain::{self, FixedNetwork, FixedOutput, StepKind};
use crate::protocol::prepro::{Backend, ClientPreprocessing, Dealer, ServerPreprocessing};
use crate::protocol::{
    self, client, server, GcOptions, PartyTimings, ProtocolError, PROTOCOL_VERSION,
};
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
        }
    }
}

/// Load a bundle and build its network for `bn`.
pub fn load_network(path: &Path, bn: BnPath) -> Result<Network, BenchError> {
    let err = |source: crate::model::ModelError| BenchError::Model {
        path: path.display().to_string(),
        source: Box::new(source),
    };
    Bundle::open(path).map_err(err)?.network(bn).map_err(err)
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
                let t = st
                    .tensor("input")
                    .or_else(|_| st.tensor("inputs"))
                    .map_err(|_| bad("no tensor `input` or `inputs`".into()))?;
                if t.dtype() != safetensors::Dtype::F32 {
                    return Err(bad(format!(
                        "tensor has dtype {:?}, expected F32",
                        t.dtype()
                    )));
                }
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

/// What one party reports back from its thread or process.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PartyReport {
    /// Per step timings.
    pub timings: PartyTimings,
    /// Channel statistics at this party.
    pub stats: ChannelStats,
    /// Seconds of setup, offline, online (this party's wall clock).
    pub setup_secs: f64,
    /// Offline seconds.
    pub offline_secs: f64,
    /// Online seconds.
    pub online_secs: f64,
    /// Bytes stored between the phases.
    pub storage_bytes: u64,
}

fn bar(mp: &MultiProgress, len: usize, label: &str, show: bool) -> Option<ProgressBar> {
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
    Some(pb)
}

/// The server's whole session over `ch`.
pub fn server_session<C: Channel>(
    ch: &mut Metered<C>,
    net: &FixedNetwork,
    pre: &mut dyn ServerPreprocessing,
    gc: GcOptions,
    progress: Option<ProgressBar>,
) -> Result<PartyReport, ProtocolError> {
    let mut rng = crate::crypto::prg::Prg::from_entropy();
    let fp = protocol::fingerprint(net, pre.backend(), gc);
    let t0 = Instant::now();
    handshake(ch, Role::Server, PROTOCOL_VERSION, &fp)?;
    let (mut cot, delta) = server::setup(ch, gc.ot, &mut rng)?;
    let setup_secs = t0.elapsed().as_secs_f64();
    let mut timings = PartyTimings {
        progress: progress.clone(),
        ..Default::default()
    };
    let t1 = Instant::now();
    let state = server::offline(
        ch,
        net,
        pre,
        &mut cot,
        delta,
        gc.garbling,
        &mut rng,
        &mut timings,
    )?;
    // The client says when it has stored everything; online starts after that.
    ch.set_scope(Phase::Offline, Some("ready"));
    let mut ready = [0u8; 1];
    ch.recv(&mut ready)?;
    let offline_secs = t1.elapsed().as_secs_f64();
    let storage_bytes = state.storage_bytes();
    let t2 = Instant::now();
    server::online(ch, net, state, &mut timings)?;
    let online_secs = t2.elapsed().as_secs_f64();
    if let Some(pb) = progress {
        pb.finish_with_message("done");
    }
    Ok(PartyReport {
        timings,
        stats: ch.stats(),
        setup_secs,
        offline_secs,
        online_secs,
        storage_bytes,
    })
}

/// The client's whole session over `ch`; returns its report and the logits.
pub fn client_session<C: Channel>(
    ch: &mut Metered<C>,
    net: &FixedNetwork,
    pre: &mut dyn ClientPreprocessing,
    gc: GcOptions,
    input: &[f32],
    progress: Option<ProgressBar>,
) -> Result<(PartyReport, Vec<f64>), ProtocolError> {
    let mut rng = crate::crypto::prg::Prg::from_entropy();
    let fp = protocol::fingerprint(net, pre.backend(), gc);
    let t0 = Instant::now();
    handshake(ch, Role::Client, PROTOCOL_VERSION, &fp)?;
    let mut cot = client::setup(ch, gc.ot, &mut rng)?;
    let setup_secs = t0.elapsed().as_secs_f64();
    let mut timings = PartyTimings {
        progress: progress.clone(),
        ..Default::default()
    };
    let t1 = Instant::now();
    let state = client::offline(ch, net, pre, &mut cot, gc.garbling, &mut rng, &mut timings)?;
    ch.set_scope(Phase::Offline, Some("ready"));
    ch.send(&[1])?;
    ch.flush()?;
    let offline_secs = t1.elapsed().as_secs_f64();
    let storage_bytes = state.storage_bytes();
    let t2 = Instant::now();
    let logits = client::online(ch, net, state, input, &mut timings)?;
    let online_secs = t2.elapsed().as_secs_f64();
    if let Some(pb) = progress {
        pb.finish_with_message("done");
    }
    Ok((
        PartyReport {
            timings,
            stats: ch.stats(),
            setup_secs,
            offline_secs,
            online_secs,
            storage_bytes,
        },
        logits,
    ))
}

/// The server's and the client's preprocessing backends of one in-process run.
type Backends = (Box<dyn ServerPreprocessing>, Box<dyn ClientPreprocessing>);

/// Both halves of `backend` for one inference on `fixed` (fresh keys for `he`).
fn backends(backend: Backend, fixed: &Arc<FixedNetwork>) -> Result<Backends, BenchError> {
    Ok(match backend {
        Backend::Dealer => {
            let d = Dealer::new(fixed.clone());
            (Box::new(d.clone()), Box::new(d))
        }
        Backend::He => {
            let he = |e: crate::protocol::he::HeError| BenchError::Server(e.into());
            (
                Box::new(crate::protocol::he::HeServer::new(fixed.clone()).map_err(he)?),
                Box::new(crate::protocol::he::HeClient::new(fixed.clone()).map_err(he)?),
            )
        }
    })
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
    let dealer = backends(opts.backend, &fixed)?;
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
            let accept = std::thread::spawn(move || listener.accept(timeout, timeout));
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
        dealer,
        opts.gc,
        input,
        pb_s,
        pb_c,
    )?;
    Ok(assemble(
        opts,
        net,
        &fixed,
        &oracle,
        &f32_logits,
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
    backends: Backends,
    gc: GcOptions,
    input: &[f32],
    pb_s: Option<ProgressBar>,
    pb_c: Option<ProgressBar>,
) -> Result<((PartyReport,), (PartyReport, Vec<f64>)), BenchError> {
    let (fs, fc) = (fixed.clone(), fixed.clone());
    let (mut ds, mut dc) = backends;
    let input = input.to_vec();
    let hs = std::thread::spawn(move || server_session(&mut s, &fs, ds.as_mut(), gc, pb_s));
    let hc = std::thread::spawn(move || client_session(&mut c, &fc, dc.as_mut(), gc, &input, pb_c));
    let rs = join(hs)?;
    let rc = join(hc)?;
    // Report the root cause: when one side fails the other usually sees a disconnect.
    match (rs, rc) {
        (Ok(s), Ok(c)) => Ok(((s,), c)),
        (Err(e), Ok(_)) => Err(BenchError::Server(e)),
        (Ok(_), Err(e)) => Err(BenchError::Client(e)),
        (Err(es), Err(ec)) => {
            if matches!(
                es,
                ProtocolError::Net(crate::net::NetError::Disconnected { .. })
            ) {
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
    oracle: &FixedOutput,
    f32_logits: &[f32],
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
    push("ready", "sync", 0, 0, 0);
    let out_elements = match fixed.output {
        crate::model::ValueId::Input => fixed.input_shape.elements(),
        crate::model::ValueId::Layer(i) => fixed.steps[i].out_shape.elements(),
    } as u64;
    push("output", "output", out_elements, 0, 0);
    let setup = phase_cost(&server, &client, Phase::Setup, None);
    let offline = phase_cost(&server, &client, Phase::Offline, None);
    let online = phase_cost(&server, &client, Phase::Online, None);

    let max_diff = logits
        .iter()
        .zip(&oracle.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let exact = logits == oracle.logits;
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
    let correct = predicted == oracle_class && max_diff <= 0.01 * scale;
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
        crate::protocol::engine::ReluEngine::new(opts.ring, opts.ring.frac, opts.gc.garbling)
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
            link: l.name.clone(),
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
            link: link.name.clone(),
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
        f32_class: plain::f32::argmax(f32_logits),
        logits,
        local_truncation: LocalTruncation {
            count: oracle.local_truncations,
            max_value_bits: oracle.max_local_trunc_bits,
            failure_probability_per_element: per_elem,
            failure_probability: (per_elem * oracle.local_truncations as f64).min(1.0),
        },
        links,
        he,
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
    let mut pre: Box<dyn ServerPreprocessing> = match opts.backend {
        Backend::Dealer => Box::new(crate::protocol::prepro::RemoteDealerServer(Dealer::new(
            fixed.clone(),
        ))),
        Backend::He => Box::new(
            crate::protocol::he::HeServer::new(fixed.clone())
                .map_err(|e| BenchError::Server(e.into()))?,
        ),
    };
    let stream = listener.accept(Duration::from_secs(3600), opts.timeout)?;
    let mut ch = Metered::new(stream);
    let mp = MultiProgress::new();
    let pb = bar(&mp, fixed.steps.len() * 2, "server", opts.progress);
    let report =
        server_session(&mut ch, &fixed, pre.as_mut(), opts.gc, pb).map_err(BenchError::Server)?;
    send_report(&mut ch, &report).map_err(BenchError::Server)?;
    Ok(report)
}

/// `pibench client`: connect to a server, run the client's side on `input`, collect the
/// server's measurements and assemble the complete result (checked against the oracle, which
/// this benchmark client can compute because it loads the same bundle).
pub fn client(opts: &RunOptions, connect: &str) -> Result<RunResult, BenchError> {
    let net = load_network(&opts.model, opts.bn)?;
    let input = load_input(&opts.input, &net)?;
    let fixed = Arc::new(FixedNetwork::lower(&net, opts.ring)?);
    let oracle = fixed.forward(&input)?;
    let f32_logits = plain::forward_f32(&net, &input)?;
    let stream = crate::net::tcp::connect(connect, opts.timeout)?;
    let mut ch = Metered::new(stream);
    let mut pre: Box<dyn ClientPreprocessing> = match opts.backend {
        Backend::Dealer => Box::new(crate::protocol::prepro::RemoteDealerClient),
        Backend::He => Box::new(
            crate::protocol::he::HeClient::new(fixed.clone())
                .map_err(|e| BenchError::Client(e.into()))?,
        ),
    };
    let mp = MultiProgress::new();
    let pb = bar(&mp, fixed.steps.len() * 2, "client", opts.progress);
    let (client_rep, logits) = client_session(&mut ch, &fixed, pre.as_mut(), opts.gc, &input, pb)
        .map_err(BenchError::Client)?;
    let server_rep = recv_report(&mut ch).map_err(BenchError::Client)?;
    Ok(assemble(
        opts,
        &net,
        &fixed,
        &oracle,
        &f32_logits,
        server_rep,
        client_rep,
        logits,
        "tcp",
    ))
}

fn send_report<C: Channel>(ch: &mut C, report: &PartyReport) -> Result<(), ProtocolError> {
    let json = serde_json::to_vec(report).map_err(|e| ProtocolError::Internal(e.to_string()))?;
    ch.set_scope(Phase::Online, Some("report"));
    crate::net::ChannelExt::send_u64(ch, json.len() as u64)?;
    ch.send(&json)?;
    ch.flush()?;
    Ok(())
}

fn recv_report<C: Channel>(ch: &mut C) -> Result<PartyReport, ProtocolError> {
    ch.set_scope(Phase::Online, Some("report"));
    let n = crate::net::ChannelExt::recv_u64(ch)? as usize;
    if n > 64 << 20 {
        return Err(ProtocolError::Internal(format!(
            "server report of {n} bytes"
        )));
    }
    let mut buf = vec![0u8; n];
    ch.recv(&mut buf)?;
    serde_json::from_slice(&buf).map_err(|e| ProtocolError::Internal(format!("server report: {e}")))
}
