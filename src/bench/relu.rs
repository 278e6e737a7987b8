//! `pibench relu-bench`: the complete life of N garbled ReLUs between two parties over loopback
//! TCP — base OT, OT extension, garbling, transfer, evaluation, decoding — and what each costs.
//! This is what a user runs to price a ReLU alone.

use std::time::{Duration, Instant};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::crypto::ot::{OtKind, OtReceiver, OtSender};
use crate::crypto::prg::Prg;
use crate::crypto::Block;
use crate::gc::{relu_plain, Delta, Scheme};
use crate::net::{Channel, Metered, Phase};
use crate::protocol::engine::{server_online_site, ReluEngine};
use crate::protocol::{GcOptions, ProtocolError};
use crate::ring::Ring;

use super::run::BenchError;

/// The measured cost of N ReLUs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReluBenchResult {
    /// ReLUs.
    pub relus: usize,
    /// ℓ and f.
    pub ring: Ring,
    /// AND gates per ReLU.
    pub and_gates_per_relu: usize,
    /// The garbling scheme (results from before the choice existed: half gates).
    #[serde(default)]
    pub garbling: Scheme,
    /// The correlated-OT extension (results from before the choice existed: IKNP).
    #[serde(default)]
    pub ot: OtKind,
    /// Garbled-table bytes per ReLU.
    #[serde(default)]
    pub table_bytes_per_relu: u64,
    /// Bytes the client stores per ReLU between the phases: tables and its `2ℓ` input labels.
    #[serde(default)]
    pub client_storage_bytes_per_relu: u64,
    /// Microseconds per ReLU, offline + online (setup amortized in).
    pub us_per_relu: f64,
    /// Microseconds per ReLU of the offline phase (OT extension, garbling, table transfer).
    pub us_per_relu_offline: f64,
    /// Microseconds per ReLU of the online phase (labels, evaluation, decoding).
    pub us_per_relu_online: f64,
    /// Seconds of setup (128 base OTs), once per session.
    pub setup_seconds: f64,
    /// Bytes of setup in both directions.
    pub setup_bytes: u64,
    /// Offline bytes per ReLU, both directions, with the setup's base OTs amortized in.
    pub offline_bytes_per_relu: f64,
    /// Offline bytes per ReLU, client to server (the OT extension matrix).
    pub offline_bytes_per_relu_client_to_server: f64,
    /// Offline bytes per ReLU, server to client (garbled tables).
    pub offline_bytes_per_relu_server_to_client: f64,
    /// Online bytes per ReLU, both directions.
    pub online_bytes_per_relu: f64,
    /// Online bytes per ReLU, client to server (output colour bits).
    pub online_bytes_per_relu_client_to_server: f64,
    /// Online bytes per ReLU, server to client (the server's input labels).
    pub online_bytes_per_relu_server_to_client: f64,
    /// Rayon threads.
    pub threads: usize,
    /// Every decoded output equals the plain ReLU of the shares.
    pub correct: bool,
}

struct Timed {
    setup: f64,
    offline: f64,
    online: f64,
}

fn server<C: Channel>(
    ch: &mut Metered<C>,
    n: usize,
    ring: Ring,
    gc: GcOptions,
) -> Result<(Timed, Vec<u64>, Vec<u64>), ProtocolError> {
    let mut rng = Prg::from_entropy();
    let ell = ring.ell as usize;
    let t = Instant::now();
    ch.set_scope(Phase::Setup, Some("base-ot"));
    let delta = Delta::random(&mut rng);
    let mut cot = OtSender::setup(ch, gc.ot, delta.block(), &mut rng)?;
    ch.flush()?;
    let setup = t.elapsed().as_secs_f64();

    let t = Instant::now();
    ch.set_scope(Phase::Offline, Some("relu"));
    let engine = ReluEngine::new(ring, ring.frac, gc.garbling)?;
    let (control_seed, label_seed) = (Block::random(&mut rng), Block::random(&mut rng));
    let decode = engine.server_offline(ch, &mut cot, &delta, control_seed, label_seed, n, 0)?;
    ch.flush()?;
    let mut ready = [0u8; 1];
    ch.recv(&mut ready)?;
    let offline = t.elapsed().as_secs_f64();

    // The server's shares: uniformly random ring elements.
    let a: Vec<u64> = (0..n).map(|_| ring.reduce(rng.next_u64())).collect();
    let t = Instant::now();
    ch.set_scope(Phase::Online, Some("relu"));
    let z = server_online_site(ch, ell, &a, label_seed, &delta, &decode)?;
    let online = t.elapsed().as_secs_f64();
    Ok((
        Timed {
            setup,
            offline,
            online,
        },
        a,
        z,
    ))
}

fn client<C: Channel>(
    ch: &mut Metered<C>,
    n: usize,
    ring: Ring,
    gc: GcOptions,
) -> Result<(Vec<u64>, Vec<u64>), ProtocolError> {
    let mut rng = Prg::from_entropy();
    ch.set_scope(Phase::Setup, Some("base-ot"));
    let mut cot = OtReceiver::setup(ch, gc.ot, &mut rng)?;
    ch.flush()?;

    ch.set_scope(Phase::Offline, Some("relu"));
    let engine = ReluEngine::new(ring, ring.frac, gc.garbling)?;
    let c: Vec<u64> = (0..n).map(|_| ring.reduce(rng.next_u64())).collect();
    let site = engine.client_offline(ch, &mut cot, &c)?;
    ch.send(&[1])?;
    ch.flush()?;

    ch.set_scope(Phase::Online, Some("relu"));
    engine.client_online_site(ch, n, &site.labels, &site.tables, 0)?;
    Ok((c, site.masks))
}

/// Run N ReLUs between two threads over loopback TCP with the garbling scheme and OT of `gc`,
/// and measure everything.
pub fn relu_bench(
    n: usize,
    ring: Ring,
    gc: GcOptions,
    timeout: Duration,
) -> Result<ReluBenchResult, BenchError> {
    if n == 0 {
        return Err(BenchError::Input {
            path: "--relus".into(),
            reason: "need at least one ReLU".into(),
        });
    }
    let listener = crate::net::tcp::Listener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let accept = std::thread::spawn(move || listener.accept(timeout, timeout));
    let c = crate::net::tcp::connect(addr, timeout)?;
    let s = accept
        .join()
        .map_err(|_| BenchError::Panic("accept".into()))??;
    let (mut s, mut c) = (Metered::new(s), Metered::new(c));
    let hs = std::thread::spawn(move || server(&mut s, n, ring, gc).map(|r| (r, s.stats())));
    let hc = std::thread::spawn(move || client(&mut c, n, ring, gc));
    let rs = hs.join().map_err(|_| BenchError::Panic("server".into()))?;
    let rc = hc.join().map_err(|_| BenchError::Panic("client".into()))?;
    let ((timed, a, z), stats) = rs.map_err(BenchError::Server)?;
    let (cs, rs_) = rc.map_err(BenchError::Client)?;
    let correct = (0..n)
        .all(|j| z[j] == relu_plain(a[j], cs[j], rs_[j], ring.ell as usize, ring.frac as usize));
    let nf = n as f64;
    let setup_bytes = stats.setup.total.bytes_total();
    let off = stats.offline.total;
    let on = stats.online.total;
    let engine = ReluEngine::new(ring, ring.frac, gc.garbling).map_err(BenchError::Server)?;
    let table_bytes = engine.table_bytes() as u64;
    Ok(ReluBenchResult {
        relus: n,
        ring,
        and_gates_per_relu: engine.and_gates(),
        garbling: gc.garbling,
        ot: gc.ot,
        table_bytes_per_relu: table_bytes,
        client_storage_bytes_per_relu: table_bytes + 16 * 2 * ring.ell as u64,
        us_per_relu: (timed.setup + timed.offline + timed.online) * 1e6 / nf,
        us_per_relu_offline: timed.offline * 1e6 / nf,
        us_per_relu_online: timed.online * 1e6 / nf,
        setup_seconds: timed.setup,
        setup_bytes,
        offline_bytes_per_relu: (setup_bytes + off.bytes_total()) as f64 / nf,
        offline_bytes_per_relu_client_to_server: off.bytes_received as f64 / nf,
        offline_bytes_per_relu_server_to_client: off.bytes_sent as f64 / nf,
        online_bytes_per_relu: on.bytes_total() as f64 / nf,
        online_bytes_per_relu_client_to_server: on.bytes_received as f64 / nf,
        online_bytes_per_relu_server_to_client: on.bytes_sent as f64 / nf,
        threads: rayon::current_num_threads(),
        correct,
    })
}
