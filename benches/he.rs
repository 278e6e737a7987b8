//! The `he` linear preprocessing: all linear layers of a reduced-width (base width 16) RLNet
//! ResNet18, both parties in this process over memory; the time is the linear layers' offline
//! seconds of a full run (the garbled ReLUs of the same run are not counted).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pibench::bench::run::{load_input, run_network, InputSpec, RunOptions, Transport};
use pibench::model::arch::{ArchSpec, Dataset, Layout};
use pibench::model::{generate, Allocation, BnPath, Bundle, GenSpec};
use pibench::protocol::prepro::Backend;

fn bench_he(c: &mut Criterion) {
    let arch = ArchSpec {
        layout: Layout::RlnetDualBn,
        dataset: Dataset::Cifar10,
        width: 16,
    };
    let spec = GenSpec::new(
        arch,
        "uniform:0.01".parse::<Allocation>().expect("allocation"),
        7,
    );
    let bytes = generate(&spec)
        .expect("generate")
        .to_bytes()
        .expect("serialize");
    let net = Bundle::from_vec(bytes)
        .expect("bundle")
        .network(BnPath::Clean)
        .expect("network");
    let input = load_input(&InputSpec::Random { seed: 0 }, &net).expect("input");
    let mut opts = RunOptions::new("bench:resnet18-w16");
    opts.transport = Transport::Memory;
    opts.links = vec![];
    opts.backend = Backend::He;
    let mut group = c.benchmark_group("he_linear_preprocessing");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(net.macs()));
    group.bench_function("resnet18_w16_all_linear_layers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let r = run_network(&net, &input, &opts).expect("run");
                assert!(r.correct);
                let secs: f64 = r
                    .layers
                    .iter()
                    .filter(|l| matches!(l.kind.as_str(), "conv2d" | "linear" | "batchnorm"))
                    .map(|l| l.offline.seconds)
                    .sum();
                total += Duration::from_secs_f64(secs);
            }
            total
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_he
}
criterion_main!(benches);
