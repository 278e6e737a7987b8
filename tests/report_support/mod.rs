//! Synthetic but plausible `RunResult`s for the report tests: ResNet18-shaped layer lists, costs
//! from known linear formulas (so a fit can be checked against them), deterministic "noise".
#![allow(dead_code)]

use pibench::model::{Accuracy, ModelCard};
use pibench::protocol::prepro::Backend;
use pibench::results::{
    LayerCost, LinkEstimate, LocalTruncation, Machine, ModelInfo, PhaseCost, RunResult,
};
use pibench::ring::Ring;

/// The true cost formulas behind the synthetic runs.
#[derive(Clone, Copy, Debug)]
pub struct Truth {
    pub off_fixed: f64,
    pub off_per_relu: f64,
    pub on_fixed: f64,
    pub on_per_relu: f64,
    pub on_per_mac: f64,
    pub off_c2s_fixed: f64,
    pub off_c2s_per_relu: f64,
    pub off_s2c_fixed: f64,
    pub off_s2c_per_relu: f64,
    pub on_c2s_fixed: f64,
    pub on_c2s_per_relu: f64,
    pub on_s2c_fixed: f64,
    pub on_s2c_per_relu: f64,
    pub off_rounds_fixed: f64,
    pub off_rounds_per_site: f64,
    pub on_rounds_fixed: f64,
    pub on_rounds_per_site: f64,
}

pub const TRUTH: Truth = Truth {
    off_fixed: 0.15,
    off_per_relu: 9.0e-6,
    on_fixed: 0.40,
    on_per_relu: 2.5e-6,
    on_per_mac: 0.0,
    off_c2s_fixed: 40_000.0,
    off_c2s_per_relu: 1_040.0,
    off_s2c_fixed: 250_000.0,
    off_s2c_per_relu: 4_100.0,
    on_c2s_fixed: 24_576.0,
    on_c2s_per_relu: 16.0,
    on_s2c_fixed: 80.0,
    on_s2c_per_relu: 1_024.0,
    off_rounds_fixed: 4.0,
    off_rounds_per_site: 2.0,
    on_rounds_fixed: 2.0,
    on_rounds_per_site: 2.0,
};

/// One synthetic model.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub method: String,
    pub dataset: String,
    pub budget: u64,
    pub macs: u64,
    pub bn_path: String,
    pub accuracy: Option<Accuracy>,
}

pub fn spec(name: &str, method: &str, budget: u64) -> Spec {
    Spec {
        name: name.into(),
        method: method.into(),
        dataset: "cifar100".into(),
        budget,
        macs: 555_000_000,
        bn_path: "clean".into(),
        accuracy: None,
    }
}

/// The 17 ResNet18 ReLU sites (RLNet layout) and their sizes.
const SITES: [(&str, u64); 17] = [
    ("relu", 65_536),
    ("layer1.0.relu1", 65_536),
    ("layer1.0.relu2", 65_536),
    ("layer1.1.relu1", 65_536),
    ("layer1.1.relu2", 65_536),
    ("layer2.0.relu1", 32_768),
    ("layer2.0.relu2", 32_768),
    ("layer2.1.relu1", 32_768),
    ("layer2.1.relu2", 32_768),
    ("layer3.0.relu1", 16_384),
    ("layer3.0.relu2", 16_384),
    ("layer3.1.relu1", 16_384),
    ("layer3.1.relu2", 16_384),
    ("layer4.0.relu1", 8_192),
    ("layer4.0.relu2", 8_192),
    ("layer4.1.relu1", 8_192),
    ("layer4.1.relu2", 8_192),
];

/// RLNet's ResNet18_c100_relu50k keep fractions (REFERENCES.md), scaled to any budget.
const FRACTIONS: [f64; 17] = [
    0.02, 0.025, 0.03, 0.025, 0.025, 0.05, 0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 0.25, 0.5, 0.6, 0.6,
    0.6,
];

fn phase(seconds: f64, c2s: f64, s2c: f64, rounds: f64) -> PhaseCost {
    PhaseCost {
        seconds,
        seconds_server: seconds,
        seconds_client: seconds * 0.98,
        bytes_client_to_server: c2s.round() as u64,
        bytes_server_to_client: s2c.round() as u64,
        rounds: rounds.round() as u64,
    }
}

/// Per-site kept ReLUs summing exactly to `budget`.
fn kept_per_site(budget: u64) -> Vec<u64> {
    let raw: Vec<f64> = SITES
        .iter()
        .zip(FRACTIONS)
        .map(|((_, n), f)| *n as f64 * f)
        .collect();
    let sum: f64 = raw.iter().sum();
    let mut kept: Vec<u64> = SITES
        .iter()
        .zip(&raw)
        .map(|((_, n), r)| ((r / sum * budget as f64).floor() as u64).min(*n))
        .collect();
    let mut rest = budget.saturating_sub(kept.iter().sum());
    for (k, (_, n)) in kept.iter_mut().zip(SITES) {
        let add = rest.min(n - *k);
        *k += add;
        rest -= add;
    }
    kept
}

/// A run of `s` whose totals follow `t` exactly, times a deterministic factor `1 + noise·u`
/// with `u ∈ [-1, 1]` derived from `rep`.
pub fn run(s: &Spec, t: &Truth, rep: u32, noise: f64) -> RunResult {
    let kept = kept_per_site(s.budget);
    let sites = kept.iter().filter(|&&k| k > 0).count() as f64;
    let b = s.budget as f64;
    let u = ((rep as f64 * 0.618_034 + b * 1e-6).fract() * 2.0) - 1.0;
    let jitter = 1.0 + noise * u;
    let offline = phase(
        (t.off_fixed + t.off_per_relu * b) * jitter,
        t.off_c2s_fixed + t.off_c2s_per_relu * b,
        t.off_s2c_fixed + t.off_s2c_per_relu * b,
        t.off_rounds_fixed + t.off_rounds_per_site * sites,
    );
    let online = phase(
        (t.on_fixed + t.on_per_relu * b + t.on_per_mac * s.macs as f64) * jitter,
        t.on_c2s_fixed + t.on_c2s_per_relu * b,
        t.on_s2c_fixed + t.on_s2c_per_relu * b,
        t.on_rounds_fixed + t.on_rounds_per_site * sites,
    );

    // Per-layer costs: each site's ReLU share of the ReLU cost, the linear cost spread over
    // the convolutions by their MACs.
    let mut layers = vec![LayerCost {
        name: "input".into(),
        kind: "input".into(),
        elements: 3 * 32 * 32,
        online: phase(0.002, 24_576.0, 0.0, 1.0),
        ..LayerCost::default()
    }];
    let conv_macs = s.macs / 17;
    for (i, ((site, n), k)) in SITES.iter().zip(&kept).enumerate() {
        let conv = site.replace("relu", "conv");
        let conv = if i == 0 { "conv1".to_string() } else { conv };
        layers.push(LayerCost {
            name: conv,
            kind: "conv2d".into(),
            elements: *n,
            macs: conv_macs,
            offline: phase(0.0, 0.0, 0.0, 0.0),
            online: phase(t.on_fixed * 0.9 / 17.0 * jitter, 0.0, 0.0, 0.0),
            ..LayerCost::default()
        });
        let share = *k as f64;
        layers.push(LayerCost {
            name: site.to_string(),
            kind: "relu".into(),
            elements: *n,
            relus_kept: *k,
            offline: phase(
                t.off_per_relu * share * jitter,
                t.off_c2s_per_relu * share,
                t.off_s2c_per_relu * share,
                2.0,
            ),
            online: phase(
                t.on_per_relu * share * jitter,
                t.on_c2s_per_relu * share,
                t.on_s2c_per_relu * share,
                2.0,
            ),
            ..LayerCost::default()
        });
    }
    layers.push(LayerCost {
        name: "fc".into(),
        kind: "linear".into(),
        elements: 100,
        macs: 51_200,
        online: phase(0.001, 0.0, 0.0, 0.0),
        ..LayerCost::default()
    });
    layers.push(LayerCost {
        name: "output".into(),
        kind: "output".into(),
        elements: 100,
        online: phase(0.001, 0.0, 800.0, 1.0),
        ..LayerCost::default()
    });

    let est = |name: &str, up: f64, down: f64, rtt: f64, p: &PhaseCost| {
        let _ = name;
        p.seconds
            + p.bytes_client_to_server as f64 * 8.0 / up
            + p.bytes_server_to_client as f64 * 8.0 / down
            + p.rounds as f64 * rtt / 2.0
    };
    let mut links = Vec::new();
    for (name, up, down, rtt) in [
        ("lan", 3e9, 3e9, 0.3e-3),
        ("wan", 400e6, 400e6, 40e-3),
        ("mobile", 865e6, 135e6, 0.0),
    ] {
        links.push(LinkEstimate {
            link: pibench::net::link::Link::parse(name).unwrap(),
            offline_seconds: est(name, up, down, rtt, &offline),
            online_seconds: est(name, up, down, rtt, &online),
            emulated: false,
        });
    }
    if rep == 0 {
        // An emulated WAN run that is a little slower than the model predicts.
        let wan = links[1].clone();
        links.push(LinkEstimate {
            emulated: true,
            offline_seconds: wan.offline_seconds * 1.04,
            online_seconds: wan.online_seconds * 1.03,
            ..wan
        });
    }

    RunResult {
        pibench_version: "0.1.0".into(),
        model: ModelInfo {
            path: format!("models/{}.safetensors", s.name),
            card: ModelCard {
                name: Some(s.name.clone()),
                architecture: "resnet18".into(),
                dataset: s.dataset.clone(),
                input_shape: vec![3, 32, 32],
                classes: 100,
                method: s.method.clone(),
                budget: Some(s.budget),
                total_relus: Some(557_056),
                accuracy: s.accuracy.clone(),
                synthetic: true,
                ..ModelCard::default()
            },
            bn_path: s.bn_path.clone(),
            fingerprint: format!("{:016x}", s.budget),
            total_relus: 557_056,
            budget: s.budget,
            macs: s.macs,
        },
        ring: Ring::new(64, 12).expect("valid ring"),
        backend: Backend::Dealer,
        gc: pibench::protocol::GcOptions::default(),
        threads: 2,
        transport: "memory".into(),
        machine: Machine {
            cpu: "Test CPU @ 2.0GHz".into(),
            cores: 2,
            os: "linux".into(),
            aes_ni: true,
        },
        setup: phase(0.05, 4_096.0, 4_096.0, 3.0),
        offline,
        online,
        layers,
        client_storage_bytes: (t.off_s2c_per_relu * b) as u64,
        server_storage_bytes: (64.0 * b) as u64,
        peak_rss_bytes: 200_000_000 + (5_000.0 * b) as u64,
        and_gates_per_relu: 127,
        correct: true,
        exact: rep.is_multiple_of(2),
        max_logit_diff_vs_oracle: if rep.is_multiple_of(2) {
            0.0
        } else {
            1.0 / 4096.0
        },
        max_logit_diff_fixed_vs_f32: 0.002,
        predicted_class: 3,
        f32_class: 3,
        oracle_checked: true,
        logits: vec![0.0; 100],
        local_truncation: LocalTruncation {
            count: 557_056 - s.budget,
            max_value_bits: 20,
            failure_probability_per_element: 2f64.powi(20 + 1 - 64),
            failure_probability: (557_056 - s.budget) as f64 * 2f64.powi(20 + 1 - 64),
        },
        links,
        he: None,
        sweep: None,
    }
}

/// A realistic sweep: RLNet at five budgets, SeNet at three of them, accuracies on the cards,
/// `reps` repeats each.
pub fn sweep_runs(reps: u32, noise: f64) -> Vec<RunResult> {
    let acc = |ca: f64, adv: Option<f64>| {
        Some(Accuracy {
            clean: Some(ca),
            npa: adv.map(|a| a + 20.0),
            adv,
            attack: adv.map(|_| "PGD-20, eps 8/255".into()),
        })
    };
    let mut specs = vec![
        Spec {
            accuracy: acc(62.1, Some(21.4)),
            ..spec("rlnet-r18-c100-25k", "rlnet", 25_000)
        },
        Spec {
            accuracy: acc(66.9, Some(23.9)),
            ..spec("rlnet-r18-c100-50k", "rlnet", 50_000)
        },
        Spec {
            accuracy: acc(70.2, Some(25.0)),
            ..spec("rlnet-r18-c100-100k", "rlnet", 100_000)
        },
        Spec {
            accuracy: acc(71.4, Some(25.6)),
            ..spec("rlnet-r18-c100-120k", "rlnet", 120_000)
        },
        Spec {
            accuracy: acc(72.9, Some(26.2)),
            ..spec("rlnet-r18-c100-150k", "rlnet", 150_000)
        },
        Spec {
            accuracy: acc(65.7, None),
            ..spec("senet-r18-c100-50k", "senet", 50_000)
        },
        Spec {
            accuracy: acc(69.4, None),
            ..spec("senet-r18-c100-100k", "senet", 100_000)
        },
        Spec {
            accuracy: acc(71.9, None),
            ..spec("senet-r18-c100-150k", "senet", 150_000)
        },
    ];
    // The adversarial BN path of one RLNet model, as a separate model in the sweep.
    specs.push(Spec {
        bn_path: "adv".into(),
        ..specs[1].clone()
    });
    specs
        .iter()
        .flat_map(|s| (0..reps).map(move |r| run(s, &TRUTH, r, noise)))
        .collect()
}
