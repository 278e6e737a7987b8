//! Whole-network benches: a reduced-width (base width 16) RLNet ResNet18 on CIFAR at several ReLU
//! budgets, offline and online measured separately, both parties in this process over memory.
//! A regression in any layer's protocol shows up here.

mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn bench_network(c: &mut Criterion) {
    let opts = common::in_memory();
    let mut group = c.benchmark_group("resnet18_w16");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for alloc in ["uniform:0.05", "ResNet18_C10_relu82k", "all"] {
        let net = common::resnet18_w16(alloc);
        let kept = net.kept_relus() as u64;
        group.throughput(Throughput::Elements(kept));
        for phase in ["offline", "online"] {
            group.bench_function(
                BenchmarkId::new(phase, format!("{alloc} ({kept} ReLUs)")),
                |b| {
                    b.iter_custom(|iters| {
                        common::time_runs(&net, &opts, iters, |r| {
                            if phase == "offline" {
                                r.setup.seconds + r.offline.seconds
                            } else {
                                r.online.seconds
                            }
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_network
}
criterion_main!(benches);
