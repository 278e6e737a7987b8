//! Criterion benches of the garbling engine: AND gates garbled and evaluated per second on one
//! core, and 64-bit ReLUs (f = 12) garbled and evaluated per second, single-threaded and with
//! rayon. Throughputs are in elements (AND gates or ReLUs) per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pibench::crypto::Block;
use pibench::gc::batch::table_blocks;
use pibench::gc::{relu_circuit, Delta, Evaluator, Garbler};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use std::time::Duration;

/// ReLUs per measured batch: large enough to amortise setup, small enough to stay in L2/L3.
const N: usize = 1024;

fn bench_gc(c: &mut Criterion) {
    let circ = relu_circuit(64, 12).expect("valid parameters");
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let delta = Delta::random(&mut rng);
    let gz: Vec<Block> = (0..N * circ.garbler_inputs())
        .map(|_| Block::random(&mut rng))
        .collect();
    let ez: Vec<Block> = (0..N * circ.evaluator_inputs())
        .map(|_| Block::random(&mut rng))
        .collect();
    let no = circ.outputs().len();
    let g = Garbler::new(&circ, &delta);
    let e = Evaluator::new(&circ);
    let mut tables = vec![Block::ZERO; table_blocks(&circ, N)];
    let mut lsb = vec![false; N * no];
    g.garble_batch(&gz, &ez, 0, &mut tables, &mut lsb)
        .expect("shapes match");
    // Evaluating on the zero-labels is as costly as on any labels.
    let mut out = vec![false; N * no];

    let mut group = c.benchmark_group("gc_and_gates_one_core");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements((N * circ.and_count()) as u64));
    group.bench_function("garble", |b| {
        b.iter(|| {
            g.garble_batch(&gz, &ez, 0, &mut tables, &mut lsb)
                .expect("shapes match")
        })
    });
    group.bench_function("evaluate", |b| {
        b.iter(|| {
            e.eval_batch(&gz, &ez, &tables, 0, &mut out)
                .expect("shapes match")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("gc_relu64_f12");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("garble_1thread", |b| {
        b.iter(|| {
            g.garble_batch(&gz, &ez, 0, &mut tables, &mut lsb)
                .expect("shapes match")
        })
    });
    group.bench_function("garble_rayon", |b| {
        b.iter(|| {
            g.garble_batch_par(&gz, &ez, 0, &mut tables, &mut lsb)
                .expect("shapes match")
        })
    });
    group.bench_function("evaluate_1thread", |b| {
        b.iter(|| {
            e.eval_batch(&gz, &ez, &tables, 0, &mut out)
                .expect("shapes match")
        })
    });
    group.bench_function("evaluate_rayon", |b| {
        b.iter(|| {
            e.eval_batch_par(&gz, &ez, &tables, 0, &mut out)
                .expect("shapes match")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: they need system fonts the benchmark machines may not have.
    config = Criterion::default().without_plots();
    targets = bench_gc
}
criterion_main!(benches);
