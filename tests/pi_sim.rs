//! The batched evaluator against its references: the Fixed arithmetic against the fixed-point
//! oracle bit for bit, and the Pi arithmetic against real two-party runs with the same masks bit
//! for bit (raw ring logits), on the committed fixtures (RLNet dual BN on both paths, SNL, WRN)
//! and a bundled ResNet18; plus the invariances evaluation relies on (batching and sharding,
//! the f64 and ring kernels).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pibench::eval::pi::{Arithmetic, BatchEvaluator, LinearPath};
use pibench::eval::secure::secure_batch;
use pibench::model::{BnPath, Bundle, Mask, Network, Op};
use pibench::plain::FixedNetwork;
use pibench::ring::Ring;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"))
}

/// The fixture's four PyTorch inputs, `[4, 3, 32, 32]`.
fn fixture_inputs(name: &str) -> Vec<f32> {
    let io = std::fs::read(fixture(name).with_extension("io.safetensors")).unwrap();
    let io = safetensors::SafeTensors::deserialize(&io).unwrap();
    io.tensor("inputs")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn lower(net: &Network, ring: Ring) -> Arc<FixedNetwork> {
    Arc::new(FixedNetwork::lower(net, ring).unwrap())
}

/// Every ReLU linearized: the most local truncations, so the most ±1 and wrap events.
fn all_linearized(mut net: Network) -> Network {
    for layer in &mut net.layers {
        if let Op::Relu { mask, .. } = &mut layer.op {
            *mask = Some(Mask {
                keep: vec![false; layer.out_shape.elements()],
            });
        }
    }
    net
}

fn paths(name: &str) -> Vec<BnPath> {
    if Bundle::open(fixture(name)).unwrap().has_dual_bn() {
        vec![BnPath::Clean, BnPath::Adv]
    } else {
        vec![BnPath::Clean]
    }
}

const FIXTURES: [&str; 5] = [
    "rlnet-resnet18-w8-c10",
    "snl-resnet18-w8-c10",
    "plain-resnet18-w8-c10",
    "rlnet-wrn16-2-b4-c10",
    "snl-wrn16-2-b4-c10",
];

#[test]
fn fixed_arithmetic_is_the_oracle_bit_for_bit() {
    for name in FIXTURES {
        for bn in paths(name) {
            let net = Bundle::open(fixture(name)).unwrap().network(bn).unwrap();
            for ring in [Ring::default(), Ring::new(32, 8).unwrap()] {
                let fixed = lower(&net, ring);
                let inputs = fixture_inputs(name);
                let per = fixed.input_shape.elements();
                let got = BatchEvaluator::new(fixed.clone())
                    .evaluate(&inputs, 0, Arithmetic::Fixed)
                    .unwrap();
                assert_eq!(got.len(), inputs.len() / per);
                for (img, out) in got.iter().enumerate() {
                    let want = fixed.forward(&inputs[img * per..(img + 1) * per]).unwrap();
                    assert_eq!(out.raw, want.raw, "{name} {bn} ℓ={} image {img}", ring.ell);
                    assert_eq!(out.logits(&ring, fixed.output_scale), want.logits);
                    assert_eq!((out.ulp_deviations, out.wrapped), (0, 0));
                }
            }
        }
    }
}

/// Run `images` fixture inputs through the protocol seeded by `run_seed` and through the
/// replaying simulation; the raw logits must be equal. Returns the simulation's (±1, wrapped)
/// totals.
fn protocol_equals_replay(
    label: &str,
    fixed: &Arc<FixedNetwork>,
    inputs: &[f32],
    run_seed: u64,
) -> (u64, u64) {
    let first = 1000;
    let secure = secure_batch(fixed, inputs, first, Some(run_seed))
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let sim = BatchEvaluator::new(fixed.clone())
        .replay(inputs, first, run_seed)
        .unwrap();
    assert_eq!(secure.len(), sim.len());
    let mut totals = (0, 0);
    for (img, (s, p)) in secure.iter().zip(&sim).enumerate() {
        let raw = s
            .raw
            .as_ref()
            .unwrap_or_else(|| panic!("{label} image {img}: a logit beyond 2^53"));
        assert_eq!(raw, &p.raw, "{label} image {img}: protocol ≠ simulation");
        assert_eq!(s.class, p.class, "{label} image {img}");
        totals.0 += p.ulp_deviations;
        totals.1 += p.wrapped;
    }
    totals
}

#[test]
fn pi_simulation_equals_the_protocol_bit_for_bit() {
    for (name, bn, seed) in [
        ("rlnet-resnet18-w8-c10", BnPath::Clean, 1),
        ("rlnet-resnet18-w8-c10", BnPath::Adv, 2),
        ("snl-resnet18-w8-c10", BnPath::Clean, 3),
        ("rlnet-wrn16-2-b4-c10", BnPath::Clean, 4),
    ] {
        let net = Bundle::open(fixture(name)).unwrap().network(bn).unwrap();
        let fixed = lower(&net, Ring::default());
        let inputs = fixture_inputs(name);
        let per = fixed.input_shape.elements();
        let (ulp, wrapped) =
            protocol_equals_replay(&format!("{name} {bn}"), &fixed, &inputs[..2 * per], seed);
        // The masks keep some ReLUs and linearize others: local truncation happened, and off by
        // one somewhere (so the comparison covers it).
        assert!(ulp > 0, "{name} {bn}: no ±1 event to compare");
        assert_eq!(wrapped, 0, "{name} {bn}: a wrap at ℓ = 64");
    }
}

#[test]
fn pi_simulation_equals_the_protocol_with_wraps_in_a_small_ring() {
    // ℓ = 32 with every ReLU linearized: local truncations wrap, and the simulation still
    // equals the protocol, garbage and all.
    let name = "snl-wrn16-2-b4-c10";
    let net = all_linearized(
        Bundle::open(fixture(name))
            .unwrap()
            .network(BnPath::Clean)
            .unwrap(),
    );
    let fixed = lower(&net, Ring::new(32, 8).unwrap());
    let inputs = fixture_inputs(name);
    let (ulp, wrapped) = protocol_equals_replay(name, &fixed, &inputs, 5);
    assert!(ulp > 0 && wrapped > 0, "ulp {ulp}, wrapped {wrapped}");
}

#[test]
fn pi_simulation_equals_the_protocol_on_a_bundled_resnet18() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/resnet18-c10-rlnet-82k.safetensors");
    let net = Bundle::open(&path).unwrap().network(BnPath::Clean).unwrap();
    let fixed = lower(&net, Ring::default());
    let inputs = fixture_inputs("rlnet-resnet18-w8-c10");
    let per = fixed.input_shape.elements();
    let (ulp, _) = protocol_equals_replay("resnet18-c10-rlnet-82k", &fixed, &inputs[..per], 6);
    assert!(ulp > 0);
}

#[test]
fn pi_results_do_not_depend_on_batching_or_the_linear_kernel() {
    let name = "rlnet-resnet18-w8-c10";
    let net = Bundle::open(fixture(name))
        .unwrap()
        .network(BnPath::Clean)
        .unwrap();
    for ring in [Ring::default(), Ring::new(32, 8).unwrap()] {
        let fixed = lower(&net, ring);
        let inputs = fixture_inputs(name);
        let per = fixed.input_shape.elements();
        let pi = Arithmetic::Pi { seed: 77 };
        let ev = BatchEvaluator::new(fixed.clone());
        let whole = ev.evaluate(&inputs, 40, pi).unwrap();
        // One image at a time, each with its global index: the same outcomes.
        for (img, want) in whole.iter().enumerate() {
            let one = ev
                .evaluate(&inputs[img * per..(img + 1) * per], 40 + img as u64, pi)
                .unwrap();
            assert_eq!(&one[0], want, "ℓ={} image {img}", ring.ell);
        }
        // Shards [0, 1) and [1, 4).
        let mut shards = ev.evaluate(&inputs[..per], 40, pi).unwrap();
        shards.extend(ev.evaluate(&inputs[per..], 41, pi).unwrap());
        assert_eq!(shards, whole);
        // The u64 ring kernel gives the same ring values as the f64 GEMM.
        let ring_only = BatchEvaluator::new(fixed.clone()).with_linear_path(LinearPath::Ring);
        assert_eq!(ring_only.evaluate(&inputs, 40, pi).unwrap(), whole);
        assert_eq!(
            ring_only.evaluate(&inputs, 0, Arithmetic::Fixed).unwrap(),
            ev.evaluate(&inputs, 0, Arithmetic::Fixed).unwrap()
        );
        // Another seed moves the shares (and, here, at least one ±1 count).
        let other = ev
            .evaluate(&inputs, 40, Arithmetic::Pi { seed: 78 })
            .unwrap();
        let devs = |v: &[pibench::eval::pi::ImageOutcome]| {
            v.iter().map(|o| o.ulp_deviations).collect::<Vec<_>>()
        };
        assert_ne!(devs(&other), devs(&whole));
    }
}
