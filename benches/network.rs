//! Whole-network benches: a reduced-width (base width 16) RLNet ResNet18 on CIFAR at several ReLU
//! budgets, offline and online measured separately, both parties in this process over memory.
//! A regression in any layer's protocol shows up here.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pibench::bench::run::{load_input, run_network, InputSpec, RunOptions, Transport};
use pibench::model::arch::{ArchSpec, Dataset, Layout};
use pibench::model::{generate, Allocation, BnPath, Bundle, GenSpec, Network};

fn network(alloc: &str) -> Network {
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

fn bench_network(c: &mut Criterion) {
    let mut opts = RunOptions::new("bench:resnet18-w16");
    opts.transport = Transport::Memory;
    opts.links = vec![];
    let mut group = c.benchmark_group("resnet18_w16");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for alloc in ["uniform:0.05", "ResNet18_C10_relu82k", "all"] {
        let net = network(alloc);
        let input = load_input(&InputSpec::Random { seed: 0 }, &net).expect("input");
        let kept = net.kept_relus() as u64;
        group.throughput(Throughput::Elements(kept));
        for phase in ["offline", "online"] {
            group.bench_function(
                BenchmarkId::new(phase, format!("{alloc} ({kept} ReLUs)")),
                |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let r = run_network(&net, &input, &opts).expect("run");
                            assert!(r.correct);
                            let secs = if phase == "offline" {
                                r.setup.seconds + r.offline.seconds
                            } else {
                                r.online.seconds
                            };
                            total += Duration::from_secs_f64(secs);
                        }
                        total
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
