//! Throughput of the batched evaluator (`eval::pi`) in the Fixed and the Pi arithmetic on a
//! bundled ResNet18, in images per second.
//!
//! ```text
//! cargo bench --bench eval_pi [-- MODEL [BATCH [BATCHES]]]
//! ```
//!
//! Defaults: `models/resnet18-c10-rlnet-82k.safetensors`, batches of 100 images, 2 batches per
//! arithmetic after one warm-up batch. Inputs are seeded random images (the speed does not
//! depend on the pixels). Set `EVAL_PI_RING=1` to time the u64 ring kernel instead of the f64
//! GEMM, and `EVAL_PI_ONLY=fixed|pi` to time one arithmetic.

use std::sync::Arc;
use std::time::Instant;

use pibench::bench::run::{load_input, InputSpec};
use pibench::eval::pi::{Arithmetic, BatchEvaluator, LinearPath};
use pibench::model::{BnPath, Bundle};
use pibench::plain::FixedNetwork;
use pibench::ring::Ring;

/// CPU seconds (user + system) this process has used: on a shared machine the wall clock
/// measures the neighbours too, the CPU time only this process.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    // `cargo bench` passes `--bench`; positional arguments follow it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let model = args.first().cloned().unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/resnet18-c10-rlnet-82k.safetensors"
        )
        .into()
    });
    let batch: usize = args.get(1).map_or(100, |s| s.parse().expect("BATCH"));
    let batches: usize = args.get(2).map_or(2, |s| s.parse().expect("BATCHES"));
    let net = Bundle::open(&model)
        .and_then(|b| b.network(BnPath::Clean))
        .unwrap_or_else(|e| panic!("{model}: {e}"));
    let fixed = Arc::new(FixedNetwork::lower(&net, Ring::default()).expect("lower"));
    let path = if std::env::var("EVAL_PI_RING").is_ok_and(|v| v == "1") {
        LinearPath::Ring
    } else {
        LinearPath::Auto
    };
    let ev = BatchEvaluator::new(fixed).with_linear_path(path);
    let inputs: Vec<f32> = (0..batch as u64)
        .flat_map(|i| load_input(&InputSpec::Random { seed: i }, &net).expect("input"))
        .collect();
    let only = std::env::var("EVAL_PI_ONLY").unwrap_or_default();
    println!(
        "{model}: batch {batch}, {batches} timed batches, {} rayon threads, linear path {path:?}",
        rayon::current_num_threads()
    );
    for (name, arithmetic) in [
        ("fixed", Arithmetic::Fixed),
        ("pi", Arithmetic::Pi { seed: 1 }),
    ] {
        if !only.is_empty() && only != name {
            continue;
        }
        ev.evaluate(&inputs, 0, arithmetic).expect("warm-up");
        let t = Instant::now();
        let cpu = cpu_seconds();
        let mut wrapped = 0;
        for b in 0..batches {
            let out = ev
                .evaluate(&inputs, (b * batch) as u64, arithmetic)
                .expect("evaluate");
            wrapped += out.iter().filter(|o| o.wrapped > 0).count();
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        let images = (batch * batches) as f64;
        let threads = rayon::current_num_threads() as f64;
        println!(
            "{name:>6}: {images} images in {secs:.2} s wall = {:.1} images/s; {:.1} CPU-ms per image \
             (= {:.1} images/s on {threads} idle cores at this CPU cost); wrapped images: {wrapped}",
            images / secs,
            1e3 * cpu / images,
            images * threads / cpu
        );
    }
}
