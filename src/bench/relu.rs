//! `pibench relu-bench`: the complete life of N garbled ReLUs between two parties over loopback
//! TCP — base OT, OT extension, garbling, transfer, evaluation, decoding — and what each costs.
//! This is what a user runs to price a ReLU alone: one ReLU site of the protocol
//! ([`crate::protocol::site`]), measured.

use std::time::{Duration, Instant};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::crypto::ot::{ChoiceBits, OtKind};
use crate::crypto::prg::Prg;
use crate::gc::{relu_plain, Scheme};
use crate::net::{Channel, Metered, Phase};
use crate::protocol::site::{ClientSite, ReluEngine, ServerSite};
use crate::protocol::{self, session, GcOptions, ProtocolError};
use crate::ring::Ring;

use super::run::BenchError;
use super::usage::{ProcessUsage, Snapshot};

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
    /// Offline bytes per ReLU, server to client (garbled tables and output ciphertexts).
    pub offline_bytes_per_relu_server_to_client: f64,
    /// Online bytes per ReLU, both directions.
    pub online_bytes_per_relu: f64,
    /// Online bytes per ReLU, client to server (the client's masked share).
    pub online_bytes_per_relu_client_to_server: f64,
    /// Online bytes per ReLU, server to client (the server's input labels).
    pub online_bytes_per_relu_server_to_client: f64,
    /// Rayon threads.
    pub threads: usize,
    /// Every decoded output equals the plain ReLU of the shares.
    pub correct: bool,
    /// What the process (both parties) used from the connection to the end of the online
    /// phase, setup included; absent where it cannot be measured and in results from before
    /// it was recorded.
    #[serde(default)]
    pub process: Option<ProcessUsage>,
    /// The same over the offline phase alone.
    #[serde(default)]
    pub process_offline: Option<ProcessUsage>,
    /// The same over the online phase alone.
    #[serde(default)]
    pub process_online: Option<ProcessUsage>,
    /// The machine's transparent-huge-page policy during the run
    /// ([`huge_page_policy`](super::usage::huge_page_policy)): first touch of the memory a run
    /// holds is ~23 % of its CPU on the development VM, and its cost depends on the folio size.
    #[serde(default)]
    pub machine_huge_pages: Option<String>,
}

struct Timed {
    setup: f64,
    offline: f64,
    online: f64,
    /// What the process (both parties) used during each phase, the server's clock giving the
    /// bounds: the phases end together for both parties (the client's ready signal, its
    /// shares).
    offline_usage: Option<ProcessUsage>,
    online_usage: Option<ProcessUsage>,
}

fn server<C: Channel>(
    ch: &mut Metered<C>,
    n: usize,
    ring: Ring,
    gc: GcOptions,
) -> Result<(Timed, Vec<u64>, Vec<u64>), ProtocolError> {
    let mut rng = Prg::from_entropy();
    let t = Instant::now();
    let (mut cot, delta) = protocol::server::setup(ch, gc.ot, &mut rng)?;
    let setup = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let s0 = Snapshot::now();
    ch.set_scope(Phase::Offline, Some("relu"));
    let engine = ReluEngine::new(ring, ring.frac, gc.garbling)?;
    let site = ServerSite::offline(ch, &engine, n, 0, &mut cot, &delta, &mut rng)?;
    session::await_ready(ch)?;
    let offline = t.elapsed().as_secs_f64();
    let s1 = Snapshot::now();

    // The server's shares: uniformly random ring elements.
    let a: Vec<u64> = (0..n).map(|_| ring.reduce(rng.next_u64())).collect();
    let t = Instant::now();
    ch.set_scope(Phase::Online, Some("relu"));
    let z = site.online(ch, &delta, &a)?;
    let online = t.elapsed().as_secs_f64();
    let s2 = Snapshot::now();
    let usage =
        |a: Option<Snapshot>, b: Option<Snapshot>, wall| a.zip(b).map(|(a, b)| a.until(&b, wall));
    Ok((
        Timed {
            setup,
            offline,
            online,
            offline_usage: usage(s0, s1, offline),
            online_usage: usage(s1, s2, online),
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
    let mut cot = protocol::client::setup(ch, gc.ot, &mut rng)?;

    ch.set_scope(Phase::Offline, Some("relu"));
    let engine = ReluEngine::new(ring, ring.frac, gc.garbling)?;
    let c: Vec<u64> = (0..n).map(|_| ring.reduce(rng.next_u64())).collect();
    let site = ClientSite::offline(
        ch,
        &engine,
        &c,
        0,
        &mut cot,
        &mut rng,
        &mut ChoiceBits::new(),
    )?;
    session::signal_ready(ch)?;

    ch.set_scope(Phase::Online, Some("relu"));
    site.online(ch, &engine)?;
    Ok((c, site.masks().to_vec()))
}

/// Bytes both parties of [`relu_bench`] hold at their peak for `n` ReLUs of `ell` bits with
/// `table_bytes` bytes of garbled tables and `output_bytes` of output ciphertexts each: the
/// client's input labels (ℓ blocks), tables, ciphertexts and packed choice bits (ℓ bits); the
/// server's OT zero-labels (ℓ: held whole with IKNP, a chunk at a time with SoftSpoken and
/// silent OT, so a bound), the choice corrections (at most ℓ bits), its own zero-labels (ℓ)
/// and its output zero-labels (at most ℓ; both a chunk at a time, so bounds too); the shares
/// and masks. The server keeps no ciphertexts: each chunk's go out with its tables.
/// Computed in u128: a huge `n` cannot overflow it.
pub fn relu_bench_bytes(n: usize, ell: usize, table_bytes: usize, output_bytes: usize) -> u128 {
    let per = ell * 16 * 4 + table_bytes + output_bytes + 2 * ell.div_ceil(8) + 6 * 8;
    n as u128 * per as u128
}

/// Memory the kernel says is available to new allocations (Linux `MemAvailable`), if known.
pub fn available_memory_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
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
    // Both parties live in this process and hold every ReLU's labels and tables at once:
    // refuse what cannot fit before allocating (an allocation failure aborts the process).
    let engine = ReluEngine::new(ring, ring.frac, gc.garbling).map_err(BenchError::Server)?;
    let table_bytes = engine.table_bytes();
    let needed = relu_bench_bytes(n, ring.ell as usize, table_bytes, engine.output_bytes());
    if let Some(available) = available_memory_bytes() {
        if needed > u128::from(available) {
            return Err(BenchError::TooLarge {
                what: format!("--relus {n}"),
                needed_gb: needed as f64 / 1e9,
                available_gb: available as f64 / 1e9,
            });
        }
    }
    let listener = crate::net::tcp::Listener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let accept = super::spawn_named("pibench-accept", move || listener.accept(timeout, timeout));
    let c = crate::net::tcp::connect(addr, timeout)?;
    let s = accept
        .join()
        .map_err(|_| BenchError::Panic("accept".into()))??;
    let (mut s, mut c) = (Metered::new(s), Metered::new(c));
    let (before, t) = (Snapshot::now(), Instant::now());
    let hs = super::spawn_named("pibench-server", move || {
        server(&mut s, n, ring, gc).map(|r| (r, s.stats()))
    });
    let hc = super::spawn_named("pibench-client", move || client(&mut c, n, ring, gc));
    let rs = hs.join().map_err(|_| BenchError::Panic("server".into()))?;
    let rc = hc.join().map_err(|_| BenchError::Panic("client".into()))?;
    let wall = t.elapsed().as_secs_f64();
    let process = before.zip(Snapshot::now()).map(|(a, b)| a.until(&b, wall));
    let ((timed, a, z), stats) = rs.map_err(BenchError::Server)?;
    let (cs, rs_) = rc.map_err(BenchError::Client)?;
    let correct = (0..n)
        .all(|j| z[j] == relu_plain(a[j], cs[j], rs_[j], ring.ell as usize, ring.frac as usize));
    let nf = n as f64;
    let setup_bytes = stats.setup.total.bytes_total();
    let off = stats.offline.total;
    let on = stats.online.total;
    Ok(ReluBenchResult {
        relus: n,
        ring,
        and_gates_per_relu: engine.and_gates(),
        garbling: gc.garbling,
        ot: gc.ot,
        table_bytes_per_relu: table_bytes as u64,
        client_storage_bytes_per_relu: engine.client_storage_bytes() as u64,
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
        process,
        process_offline: timed.offline_usage,
        process_online: timed.online_usage,
        machine_huge_pages: super::usage::huge_page_policy(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ot::silent::{chunk_bytes, depth_for};
    use crate::gc::arith::ArithOutputs;

    #[test]
    fn a_few_relus_decode_correctly_and_cost_what_the_protocol_says() {
        let half_gates = GcOptions::default();
        for ring in [Ring::default(), Ring::new(41, 12).unwrap()] {
            let n = 1000;
            let r = relu_bench(n, ring, half_gates, Duration::from_secs(30)).unwrap();
            assert!(r.correct, "{ring:?}");
            // The process's usage covers the run (some CPU, a wall time at least the online
            // phase's) and each phase.
            assert!(
                r.process.is_some() || !cfg!(unix),
                "getrusage exists on every unix"
            );
            assert_eq!(r.process_offline.is_some(), r.process.is_some());
            assert_eq!(r.process_online.is_some(), r.process.is_some());
            if let Some(p) = r.process {
                assert!(p.cpu_seconds() > 0.0 && p.wall_seconds > 0.0, "{p:?}");
                assert!(
                    p.wall_seconds >= r.us_per_relu_online * n as f64 * 1e-6,
                    "{p:?}"
                );
                assert!(p.peak_rss_bytes > 0, "{p:?}");
            }
            let ell = ring.ell as f64;
            // Online: ℓ labels to the client, ⌈ℓ/8⌉ bytes of masked share back, per ReLU.
            assert_eq!(r.online_bytes_per_relu_server_to_client, ell * 16.0);
            assert_eq!(
                r.online_bytes_per_relu_client_to_server,
                f64::from(ring.ell.div_ceil(8))
            );
            // Offline, server to client: the garbled tables (two blocks per AND gate), then two
            // ciphertexts of ℓ − o bits per bit o of the value and one of ℓ for the selector.
            let bits = crate::gc::relu::relu_value_bits(ring.ell as usize, ring.frac as usize);
            let outputs = ArithOutputs::new(ring.ell as usize, bits);
            assert_eq!(
                r.offline_bytes_per_relu_server_to_client,
                (r.and_gates_per_relu * 32 + outputs.unwrap().instance_bytes()) as f64
            );
        }
        assert!(relu_bench(0, Ring::default(), half_gates, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn every_scheme_and_ot_decodes_correctly_with_its_exact_bytes() {
        let ring = Ring::default();
        // 38,400 OTs: enough for silent OT to run a chunk (below 2^15 it runs SoftSpoken).
        let n = 600;
        for garbling in Scheme::ALL {
            for ot in OtKind::COMMON {
                let gc = GcOptions { garbling, ot };
                let r = relu_bench(n, ring, gc, Duration::from_secs(30)).unwrap();
                assert!(r.correct, "{gc}");
                assert_eq!((r.garbling, r.ot), (garbling, ot));
                // Online is the same whatever the scheme: 64 labels, 8 bytes of share back.
                assert_eq!(r.online_bytes_per_relu, 64.0 * 16.0 + 8.0, "{gc}");
                // Tables: 32 B per AND for half gates, 3 words per AND plus 5 control bits
                // (rounded up to words) for three-halves.
                let tables = match garbling {
                    Scheme::HalfGates => 32 * r.and_gates_per_relu,
                    Scheme::ThreeHalves => {
                        8 * (3 * r.and_gates_per_relu + (5 * r.and_gates_per_relu).div_ceil(64))
                    }
                };
                assert_eq!(r.table_bytes_per_relu, tables as u64, "{gc}");
                // Silent OT: the 38,400 OTs take one chunk, whose tree messages travel with the
                // tables; the client sends the chunk's base OTs, the call's count, one bit per
                // share bit and the one-byte ready signal. The output ciphertexts follow the
                // tables: two of 64 − o bits per value bit o < 51 and 64 bits for the selector,
                // 506 bytes.
                let (up, down) = match ot {
                    OtKind::Silent => chunk_bytes(depth_for(64 * n)),
                    _ => (0, 0),
                };
                assert_eq!(
                    r.offline_bytes_per_relu_server_to_client,
                    ((tables + 506) * n + down as usize) as f64 / n as f64,
                    "{gc}"
                );
                if ot == OtKind::Silent {
                    assert_eq!(
                        r.offline_bytes_per_relu_client_to_server,
                        (8 * n + 8 + up as usize + 1) as f64 / n as f64,
                        "{gc}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_count_beyond_memory_is_refused_before_allocating() {
        let ring = Ring::default();
        let e = relu_bench(
            1_000_000_000_000,
            ring,
            GcOptions::default(),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(e, BenchError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("--relus 1000000000000"), "{e}");
        // About 7 KB per ReLU at ℓ = 64 with half gates: the figure the message is built from.
        let per = relu_bench_bytes(1, 64, 126 * 16, 506);
        assert!((6_500..8_000).contains(&per), "{per}");
        assert!(relu_bench_bytes(usize::MAX, 64, 126 * 16, 506) > u128::from(u64::MAX));
    }
}
