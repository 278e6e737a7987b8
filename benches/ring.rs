//! The server's online linear work: ring (u64) and f32 convolutions of ResNet18's layer shapes.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pibench::ring::kernels::{conv2d, conv2d_batch, ConvGeometry};
use std::time::Duration;

fn shapes() -> Vec<(&'static str, ConvGeometry)> {
    let g = |c: usize, hw: usize, o: usize, stride: usize| ConvGeometry {
        in_channels: c,
        in_h: hw,
        in_w: hw,
        out_channels: o,
        kh: 3,
        kw: 3,
        stride,
        padding: 1,
    };
    vec![
        ("layer1 64x32x32", g(64, 32, 64, 1)),
        ("layer2 128x16x16", g(128, 16, 128, 1)),
        ("layer4 512x4x4", g(512, 4, 512, 1)),
    ]
}

fn bench_conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3x3");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    for (name, g) in shapes() {
        let macs = (g.out_channels * g.out_h() * g.out_w() * g.patch_len()) as u64;
        group.throughput(Throughput::Elements(macs));
        let x: Vec<u64> = (0..g.in_channels * g.in_h * g.in_w)
            .map(|i| (i as u64).wrapping_mul(0x9e37_79b9))
            .collect();
        let w: Vec<u64> = (0..g.out_channels * g.patch_len())
            .map(|i| (i as u64).wrapping_mul(0x85eb_ca6b))
            .collect();
        group.bench_with_input(BenchmarkId::new("u64 ring", name), &g, |b, g| {
            b.iter(|| conv2d(&x, &w, None, g))
        });
        let xf: Vec<f32> = x.iter().map(|&v| (v % 1000) as f32 / 1000.0).collect();
        let wf: Vec<f32> = w.iter().map(|&v| (v % 1000) as f32 / 1000.0).collect();
        group.bench_with_input(BenchmarkId::new("f32", name), &g, |b, g| {
            b.iter(|| conv2d(&xf, &wf, None, g))
        });
    }
    group.finish();
}

/// The evaluator's batched convolutions (32 images per call): f32 for plain inference and
/// attacks, f64 for the exact ring simulation.
fn bench_conv_batch(c: &mut Criterion) {
    const IMAGES: usize = 32;
    let mut group = c.benchmark_group("conv3x3 batch32");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    for (name, g) in shapes() {
        let macs = (IMAGES * g.out_channels * g.out_h() * g.out_w() * g.patch_len()) as u64;
        group.throughput(Throughput::Elements(macs));
        let x: Vec<f64> = (0..IMAGES * g.in_channels * g.in_h * g.in_w)
            .map(|i| (i % 1000) as f64 / 1000.0)
            .collect();
        let w: Vec<f64> = (0..g.out_channels * g.patch_len())
            .map(|i| (i % 997) as f64 / 1000.0)
            .collect();
        group.bench_with_input(BenchmarkId::new("f64", name), &g, |b, g| {
            b.iter(|| conv2d_batch(&x, IMAGES, &w, None, g))
        });
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        group.bench_with_input(BenchmarkId::new("f32", name), &g, |b, g| {
            b.iter(|| conv2d_batch(&xf, IMAGES, &wf, None, g))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_conv, bench_conv_batch
}
criterion_main!(benches);
