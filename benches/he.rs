//! The `he` linear preprocessing: all linear layers of a reduced-width (base width 16) RLNet
//! ResNet18, both parties in this process over memory; the time is the linear layers' offline
//! seconds of a full run (the garbled ReLUs of the same run are not counted).

mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pibench::protocol::prepro::Backend;

fn bench_he(c: &mut Criterion) {
    let net = common::resnet18_w16("uniform:0.01");
    let mut opts = common::in_memory();
    opts.backend = Backend::He;
    let mut group = c.benchmark_group("he_linear_preprocessing");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(net.macs()));
    group.bench_function("resnet18_w16_all_linear_layers", |b| {
        b.iter_custom(|iters| {
            common::time_runs(&net, &opts, iters, |r| {
                r.layers
                    .iter()
                    .filter(|l| matches!(l.kind.as_str(), "conv2d" | "linear" | "batchnorm"))
                    .map(|l| l.offline.seconds)
                    .sum()
            })
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
