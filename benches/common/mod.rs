//! What the whole-network benches share: the reduced-width (base width 16) RLNet ResNet18 they
//! run with both parties in this process over memory, and the time of a part of repeated runs.

use std::time::Duration;

use pibench::bench::run::{load_input, run_network, InputSpec, RunOptions, Transport};
use pibench::model::arch::{ArchSpec, Dataset, Layout};
use pibench::model::{generate, Allocation, BnPath, Bundle, GenSpec, Network};
use pibench::results::RunResult;

/// The RLNet ResNet18 of base width 16 on CIFAR-10 with the ReLU allocation `alloc`.
pub fn resnet18_w16(alloc: &str) -> Network {
    let arch = ArchSpec {
        layout: Layout::RlnetDualBn,
        dataset: Dataset::Cifar10,
        width: 16,
    };
    let spec = GenSpec::new(arch, alloc.parse::<Allocation>().expect("allocation"), 7);
    let bytes = generate(&spec)
        .expect("generate")
        .to_bytes()
        .expect("serialize");
    Bundle::from_vec(bytes)
        .expect("bundle")
        .network(BnPath::Clean)
        .expect("network")
}

/// Both parties in this process over memory, no link estimates.
pub fn in_memory() -> RunOptions {
    let mut opts = RunOptions::new("bench:resnet18-w16");
    opts.transport = Transport::Memory;
    opts.links = vec![];
    opts
}

/// The sum over `iters` correct runs of `net` on a seeded random input of the `seconds` each
/// reports (a part of the run, for `iter_custom`).
pub fn time_runs(
    net: &Network,
    opts: &RunOptions,
    iters: u64,
    seconds: impl Fn(&RunResult) -> f64,
) -> Duration {
    let input = load_input(&InputSpec::Random { seed: 0 }, net).expect("input");
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let r = run_network(net, &input, opts).expect("run");
        assert!(r.correct);
        total += Duration::from_secs_f64(seconds(&r));
    }
    total
}
