//! Secure inference against the plain fixed-point oracle: every committed fixture, both BN paths,
//! masks as trained, all-ones and all-zeros; in memory and over TCP; a server that dies; a
//! mismatched model; two processes.

mod cli_support;
use cli_support::{fixture, FIXTURES};
use std::path::Path;
use std::time::{Duration, Instant};

use pibench::bench::run::{load_input, run_network, InputSpec, RunOptions, Transport};
use pibench::crypto::ot::OtKind;
use pibench::gc::Scheme;
use pibench::model::{BnPath, Bundle, Mask, Network, Op};
use pibench::protocol::GcOptions;
use pibench::ring::Ring;

#[derive(Clone, Copy, Debug)]
enum Masks {
    Bundled,
    AllOnes,
    AllZeros,
}

fn with_masks(mut net: Network, masks: Masks) -> Network {
    for layer in &mut net.layers {
        if let Op::Relu { mask, .. } = &mut layer.op {
            match masks {
                Masks::Bundled => {}
                Masks::AllOnes => *mask = None,
                Masks::AllZeros => {
                    *mask = Some(Mask {
                        keep: vec![false; layer.out_shape.elements()],
                    })
                }
            }
        }
    }
    net
}

fn opts(model: &Path, transport: Transport) -> RunOptions {
    let mut o = RunOptions::new(model);
    o.transport = transport;
    o.timeout = Duration::from_secs(30);
    o.links = vec![];
    o
}

fn check(name: &str, bn: BnPath, masks: Masks, transport: Transport, ring: Ring, seed: u64) {
    let path = fixture(name);
    let net = with_masks(Bundle::open(&path).unwrap().network(bn).unwrap(), masks);
    let input = load_input(&InputSpec::Random { seed }, &net).unwrap();
    let mut o = opts(&path, transport);
    o.bn = bn;
    o.ring = ring;
    let r = run_network(&net, &input, &o).unwrap_or_else(|e| panic!("{name} {bn} {masks:?}: {e}"));
    assert!(
        r.correct,
        "{name} {bn} {masks:?}: secure differs from the oracle by {}",
        r.max_logit_diff_vs_oracle
    );
    if r.local_truncation.count == 0 {
        // Without local truncation the protocol is exact: bit-for-bit the oracle.
        assert!(
            r.exact,
            "{name} {bn} {masks:?}: not bit-exact without local truncation"
        );
    }
    let kept: u64 = r.layers.iter().map(|l| l.relus_kept).sum();
    assert_eq!(kept, r.model.budget);
    // Every kept ReLU moves exactly ℓ labels online and ℓ bits back; linearized ones nothing.
    let ell = ring.ell as u64;
    for l in r.layers.iter().filter(|l| l.kind == "relu") {
        assert_eq!(
            l.online.bytes_server_to_client,
            l.relus_kept * ell * 16,
            "{name} {}",
            l.name
        );
        assert_eq!(
            l.online.bytes_client_to_server,
            l.relus_kept * ell.div_ceil(8),
            "{name} {}",
            l.name
        );
    }
    if matches!(masks, Masks::AllZeros) {
        assert_eq!(r.model.budget, 0);
        assert_eq!(
            r.offline.bytes_server_to_client, 0,
            "{name}: no kept ReLU, no garbled tables"
        );
    }
}

#[test]
fn every_fixture_both_paths_all_mask_kinds_in_memory() {
    for name in FIXTURES {
        let dual = Bundle::open(fixture(name)).unwrap().has_dual_bn();
        let paths: &[BnPath] = if dual {
            &[BnPath::Clean, BnPath::Adv]
        } else {
            &[BnPath::Clean]
        };
        for &bn in paths {
            for masks in [Masks::Bundled, Masks::AllOnes, Masks::AllZeros] {
                check(name, bn, masks, Transport::Memory, Ring::default(), 1);
            }
        }
    }
}

#[test]
fn over_tcp_loopback_and_other_rings() {
    check(
        "rlnet-resnet18-w8-c10",
        BnPath::Adv,
        Masks::Bundled,
        Transport::TcpLoopback,
        Ring::default(),
        2,
    );
    check(
        "snl-resnet18-w8-c10",
        BnPath::Clean,
        Masks::Bundled,
        Transport::TcpLoopback,
        Ring::new(48, 12).unwrap(),
        3,
    );
    check(
        "plain-resnet18-w8-c10",
        BnPath::Clean,
        Masks::AllOnes,
        Transport::Memory,
        Ring::new(64, 16).unwrap(),
        4,
    );
}

/// Every garbling scheme with every OT extension, over TCP: correct, and each ReLU site moves
/// exactly its tables one way and its OT extension the other.
#[test]
fn every_garbling_scheme_and_ot_over_tcp() {
    let name = "rlnet-resnet18-w8-c10";
    let path = fixture(name);
    let net = Bundle::open(&path).unwrap().network(BnPath::Clean).unwrap();
    let input = load_input(&InputSpec::Random { seed: 5 }, &net).unwrap();
    for garbling in Scheme::ALL {
        for ot in OtKind::COMMON {
            let mut o = opts(&path, Transport::TcpLoopback);
            o.gc = GcOptions { garbling, ot };
            let r = run_network(&net, &input, &o).unwrap();
            assert!(r.correct, "{garbling} {ot}");
            assert_eq!(r.gc, o.gc);
            // Per kept ReLU: the select circuit's 63 AND gates (the adder), then two output
            // ciphertexts of 64 − o bits per value bit o < 51 and one of 64 bits for the
            // selector (506 bytes).
            let table = match garbling {
                Scheme::HalfGates => 63 * 32,
                Scheme::ThreeHalves => 8 * (3 * 63 + (5 * 63usize).div_ceil(64) as u64),
            } + 506;
            // Per kept ReLU: 64 OTs, the client's 64 share bits chosen. IKNP and SoftSpoken
            // extend whole blocks of 128 OTs (a column per 128 at IKNP, 128/k − 1 at
            // SoftSpoken) and then send one correction bit per chosen OT.
            let ot_bytes = |kept: u64| match ot {
                OtKind::Iknp => (64 * kept).div_ceil(128) * 128 * 16,
                OtKind::SoftSpoken(k) => {
                    (64 * kept).div_ceil(128) * 16 * (128 / k as u64 - 1) + 8 * kept
                }
                // What a site costs depends on the OTs left ready by earlier sites: checked
                // below, and exactly in the silent module's tests.
                OtKind::Silent => 0,
            };
            for l in r
                .layers
                .iter()
                .filter(|l| l.kind == "relu" && l.relus_kept > 0)
            {
                if ot == OtKind::Silent {
                    // Tables plus whole tree messages (TREES · (2d + 1) blocks per chunk) one
                    // way; the count, a correction bit per share bit, and SoftSpoken's base or
                    // fallback OTs the other.
                    let trees = l.offline.bytes_server_to_client - l.relus_kept * table;
                    assert_eq!(trees % (128 * 16), 0, "{garbling} {ot} {}", l.name);
                    assert!(
                        l.offline.bytes_client_to_server >= l.relus_kept * 8 + 8,
                        "{garbling} {ot} {}",
                        l.name
                    );
                    continue;
                }
                assert_eq!(
                    l.offline.bytes_server_to_client,
                    l.relus_kept * table,
                    "{garbling} {ot} {}",
                    l.name
                );
                // Plus the 8-byte count of the OT call.
                assert_eq!(
                    l.offline.bytes_client_to_server,
                    ot_bytes(l.relus_kept) + 8,
                    "{garbling} {ot} {}",
                    l.name
                );
            }
        }
    }
}

/// A client and a server that disagree on the garbling scheme refuse each other at the
/// handshake, before any cryptography, naming the flag.
#[test]
fn mismatched_garbling_is_refused() {
    let path = fixture("rlnet-resnet18-w8-c10");
    let net = Bundle::open(&path).unwrap().network(BnPath::Clean).unwrap();
    let f =
        std::sync::Arc::new(pibench::plain::FixedNetwork::lower(&net, Ring::default()).unwrap());
    let (s, c) = pibench::net::mem_pair(Duration::from_secs(10));
    let (mut s, mut c) = (pibench::net::Metered::new(s), pibench::net::Metered::new(c));
    let f2 = f.clone();
    let hs = std::thread::spawn(move || {
        let mut d = pibench::protocol::prepro::Dealer::new(f2.clone());
        let gc = GcOptions {
            garbling: Scheme::HalfGates,
            ot: OtKind::Iknp,
        };
        pibench::protocol::session::server_session(&mut s, &f2, &mut d, gc, None).map(|_| ())
    });
    let mut d = pibench::protocol::prepro::Dealer::new(f.clone());
    let gc = GcOptions {
        garbling: Scheme::ThreeHalves,
        ot: OtKind::Iknp,
    };
    let rc = pibench::protocol::session::client_session(&mut c, &f, &mut d, gc, &[0.1; 3072], None);
    assert!(rc.unwrap_err().to_string().contains("--garbling"));
    assert!(hs
        .join()
        .unwrap()
        .unwrap_err()
        .to_string()
        .contains("--garbling"));
}

#[test]
fn the_fixture_inputs_give_the_f32_class() {
    // On PyTorch's own inputs (decisive margins) the secure class is the f32 class.
    let name = "rlnet-resnet18-w8-c10";
    let path = fixture(name);
    let net = Bundle::open(&path).unwrap().network(BnPath::Clean).unwrap();
    let io = std::fs::read(path.with_extension("io.safetensors")).unwrap();
    let io = safetensors::SafeTensors::deserialize(&io).unwrap();
    let t = io.tensor("inputs").unwrap();
    let x: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .take(3 * 32 * 32)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut o = opts(&path, Transport::Memory);
    o.ring = Ring::new(64, 16).unwrap();
    let r = run_network(&net, &x, &o).unwrap();
    assert!(r.correct);
    assert_eq!(r.predicted_class, r.f32_class);
}

#[test]
fn mismatched_models_are_refused_by_both_sides() {
    let a = Bundle::open(fixture("rlnet-resnet18-w8-c10"))
        .unwrap()
        .network(BnPath::Clean)
        .unwrap();
    let b = Bundle::open(fixture("snl-resnet18-w8-c10"))
        .unwrap()
        .network(BnPath::Clean)
        .unwrap();
    let fa = std::sync::Arc::new(pibench::plain::FixedNetwork::lower(&a, Ring::default()).unwrap());
    let fb = std::sync::Arc::new(pibench::plain::FixedNetwork::lower(&b, Ring::default()).unwrap());
    let (s, c) = pibench::net::mem_pair(Duration::from_secs(10));
    let (mut s, mut c) = (pibench::net::Metered::new(s), pibench::net::Metered::new(c));
    let fa2 = fa.clone();
    let hs = std::thread::spawn(move || {
        let mut d = pibench::protocol::prepro::Dealer::new(fa2.clone());
        pibench::protocol::session::server_session(
            &mut s,
            &fa2,
            &mut d,
            GcOptions::RECOMMENDED,
            None,
        )
        .map(|_| ())
    });
    let input = vec![0.1f32; 3 * 32 * 32];
    let mut d = pibench::protocol::prepro::Dealer::new(fb.clone());
    let rc = pibench::protocol::session::client_session(
        &mut c,
        &fb,
        &mut d,
        GcOptions::RECOMMENDED,
        &input,
        None,
    )
    .map(|_| ());
    let rs = hs.join().unwrap();
    for (side, r) in [
        ("server", rs.unwrap_err().to_string()),
        ("client", rc.unwrap_err().to_string()),
    ] {
        assert!(r.contains("fingerprint"), "{side}: {r}");
    }
}

#[test]
fn a_server_that_dies_mid_run_makes_the_client_fail_cleanly() {
    // The "server" completes the handshake and base OTs like a real one, sends a little of the
    // first site's tables and is killed (its socket closes).
    let path = fixture("rlnet-resnet18-w8-c10");
    let net = Bundle::open(&path).unwrap().network(BnPath::Clean).unwrap();
    let fixed =
        std::sync::Arc::new(pibench::plain::FixedNetwork::lower(&net, Ring::default()).unwrap());
    let listener = pibench::net::tcp::Listener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let f2 = fixed.clone();
    let server = std::thread::spawn(move || {
        use pibench::net::Channel;
        let ch = listener
            .accept(Duration::from_secs(10), Duration::from_secs(10))
            .unwrap();
        let mut ch = pibench::net::Metered::new(ch);
        let fp = pibench::protocol::fingerprint(
            &f2,
            pibench::protocol::prepro::Backend::Dealer,
            GcOptions::RECOMMENDED,
        );
        let params = pibench::protocol::public_params(
            &f2,
            pibench::protocol::prepro::Backend::Dealer,
            GcOptions::RECOMMENDED,
        );
        pibench::net::handshake_with(
            &mut ch,
            pibench::net::Role::Server,
            pibench::protocol::PROTOCOL_VERSION,
            &params,
            &fp,
        )
        .unwrap();
        let mut rng = pibench::crypto::prg::Prg::from_entropy();
        let _ =
            pibench::protocol::server::setup(&mut ch, GcOptions::RECOMMENDED.ot, &mut rng).unwrap();
        ch.send(&[0u8; 1000]).unwrap();
        ch.flush().unwrap();
        // Killed: the connection drops here.
    });
    let timeout = Duration::from_secs(5);
    let ch = pibench::net::tcp::connect(addr, timeout).unwrap();
    let mut ch = pibench::net::Metered::new(ch);
    let mut d = pibench::protocol::prepro::Dealer::new(fixed.clone());
    let t = Instant::now();
    let err = pibench::protocol::session::client_session(
        &mut ch,
        &fixed,
        &mut d,
        GcOptions::RECOMMENDED,
        &[0.0; 3072],
        None,
    )
    .unwrap_err()
    .to_string();
    server.join().unwrap();
    assert!(
        t.elapsed() < timeout + Duration::from_secs(5),
        "the client hung for {:?}",
        t.elapsed()
    );
    assert!(
        err.contains("offline"),
        "the error should name the phase: {err}"
    );
    assert!(
        err.contains("disconnected") || err.contains("stalled") || err.contains("no progress"),
        "{err}"
    );
}

#[test]
fn two_processes_over_loopback() {
    let bin = env!("CARGO_BIN_EXE_pibench");
    let model = fixture("snl-resnet18-w8-c10");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let addr = format!("127.0.0.1:{port}");
    let mut server = std::process::Command::new(bin)
        .args([
            "serve",
            model.to_str().unwrap(),
            "--listen",
            &addr,
            "--timeout",
            "30",
            // The benchmark option that hands the client the server's timings.
            "--send-timings",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("client.json");
    let out = std::process::Command::new(bin)
        .args([
            "client",
            "--connect",
            &addr,
            "--model",
            model.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--timeout",
            "30",
        ])
        .output()
        .unwrap();
    let status = server.wait().unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status.success());
    let r: pibench::results::RunResult =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(r.correct);
    assert_eq!(r.transport, "tcp");
    assert!(r.online.bytes_server_to_client > 0 && r.offline.bytes_server_to_client > 0);
    // Both parties' timings made it into the result.
    assert!(r.offline.seconds_server > 0.0 && r.offline.seconds_client > 0.0);
}
