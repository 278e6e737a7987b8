//! The `he` preprocessing backend end to end: a committed fixture through `run_network` with
//! `Backend::He` gives the oracle's logits.

use std::path::Path;
use std::time::Duration;

use pibench::bench::run::{load_input, run_network, InputSpec, RunOptions};
use pibench::model::{BnPath, Bundle};
use pibench::protocol::prepro::Backend;

#[test]
fn he_backend_matches_the_oracle_on_a_fixture() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rlnet-wrn16-2-b4-c10.safetensors");
    let net = Bundle::open(&path).unwrap().network(BnPath::Clean).unwrap();
    let mut o = RunOptions::new(&path);
    o.timeout = Duration::from_secs(120);
    o.links = vec![];
    o.backend = Backend::He;
    let input = load_input(&InputSpec::Random { seed: 3 }, &net).unwrap();
    let r = run_network(&net, &input, &o).unwrap();
    assert!(r.correct, "he backend result differs from the oracle");
    // The preprocessing now talks: the offline phase carries the ciphertexts.
    assert!(r.offline.bytes_client_to_server > 0);
}

#[test]
fn he_is_a_known_backend() {
    assert_eq!("he".parse::<Backend>(), Ok(Backend::He));
    assert!("ckks".parse::<Backend>().is_err());
}

/// Every committed fixture, every BN path: the `he` backend gives the oracle's logits, and where
/// no element is truncated locally (all ReLUs kept on the ResNets) bit for bit — the same result
/// the `dealer` backend gives, since both deliver exactly `M·c − s`.
#[test]
fn he_backend_on_every_fixture_and_bn_path() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "rlnet-resnet18-w8-c10",
        "snl-resnet18-w8-c10",
        "plain-resnet18-w8-c10",
        "rlnet-wrn16-2-b4-c10",
        "snl-wrn16-2-b4-c10",
    ] {
        let path = dir.join(format!("{name}.safetensors"));
        let bundle = Bundle::open(&path).unwrap();
        let paths: &[BnPath] = if bundle.has_dual_bn() {
            &[BnPath::Clean, BnPath::Adv]
        } else {
            &[BnPath::Clean]
        };
        for &bn in paths {
            let mut net = bundle.network(bn).unwrap();
            if name == "plain-resnet18-w8-c10" {
                for l in &mut net.layers {
                    if let pibench::model::Op::Relu { mask, .. } = &mut l.op {
                        *mask = None;
                    }
                }
            }
            let mut o = RunOptions::new(&path);
            o.timeout = Duration::from_secs(120);
            o.links = vec![];
            o.bn = bn;
            o.backend = Backend::He;
            o.transport = pibench::bench::run::Transport::Memory;
            let input = load_input(&InputSpec::Random { seed: 5 }, &net).unwrap();
            let he = run_network(&net, &input, &o).unwrap();
            assert!(
                he.correct,
                "{name} {bn}: he differs from the oracle by {}",
                he.max_logit_diff_vs_oracle
            );
            if he.local_truncation.count == 0 {
                assert!(he.exact, "{name} {bn}: not bit-exact");
                o.backend = Backend::Dealer;
                let dealer = run_network(&net, &input, &o).unwrap();
                assert_eq!(
                    he.logits, dealer.logits,
                    "{name} {bn}: he and dealer differ"
                );
            }
        }
    }
}

/// The bundled ResNet18: the `he` backend's measured linear-layer traffic is below what
/// Delphi-style SIMD packing would send for the same network (the traffic target), and
/// the reported totals are the linear layers' own bytes.
#[test]
fn he_traffic_on_resnet18_is_below_delphi_style_packing() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/resnet18-c10-rlnet-50k.safetensors");
    let net = Bundle::open(&path).unwrap().network(BnPath::Clean).unwrap();
    let mut o = RunOptions::new(&path);
    o.timeout = Duration::from_secs(300);
    o.links = vec![];
    o.backend = Backend::He;
    o.transport = pibench::bench::run::Transport::Memory;
    let input = load_input(&InputSpec::Random { seed: 9 }, &net).unwrap();
    let r = run_network(&net, &input, &o).unwrap();
    assert!(r.correct);
    let he = r.he.expect("he runs report their linear traffic");
    let linear: u64 = r
        .layers
        .iter()
        .filter(|l| l.kind == "conv2d" || l.kind == "linear")
        .map(|l| l.offline.bytes_client_to_server + l.offline.bytes_server_to_client)
        .sum();
    assert_eq!(he.bytes(), linear + he.key_bytes);
    // The public key: a 32-byte seed and one compressed polynomial, metered as setup.
    let ctx = pibench::rlwe::Context::new(64);
    assert_eq!(he.key_bytes, 32 + 8192 * ctx.upload_bytes as u64);
    assert_eq!(
        he.simd_crt_primes, 3,
        "Z_2^64 shares need three ≤60-bit primes"
    );
    assert!(
        he.bytes() < he.simd_bytes_as_sent,
        "{} bytes against {} for SIMD packing",
        he.bytes(),
        he.simd_bytes_as_sent
    );
    // A dealer run reports no HE traffic.
    o.backend = Backend::Dealer;
    assert!(run_network(&net, &input, &o).unwrap().he.is_none());
}
