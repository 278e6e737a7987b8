//! Criterion benches of the garbling engine: AND gates garbled and evaluated per second on one
//! core, 64-bit ReLUs (f = 12) garbled and evaluated per second, single-threaded and with
//! rayon, and the protocol ReLU's arithmetic outputs (ℓ = 64, 51 bits: ciphertexts made and
//! opened) per second. Throughputs are in elements (AND gates, ReLUs or instances) per second.
//!
//! Every single-threaded bench runs twice: under wall-clock time (criterion's default) and, on
//! Linux, under the calling thread's CPU time (`*_cpu` groups). The machine is shared, and when
//! other processes compete for the cores the wall-clock figures measure the competition; the CPU
//! figures measure the engine.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use pibench::crypto::Block;
use pibench::gc::arith::ArithOutputs;
use pibench::gc::batch::table_blocks;
use pibench::gc::thbatch::{table_words, ThEvaluator, ThGarbler};
use pibench::gc::{relu_circuit, Circuit, Delta, Evaluator, Garbler};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::time::Duration;

/// ReLUs per measured batch: large enough to amortise setup, small enough to stay in L2/L3.
const N: usize = 1024;

/// Inputs and outputs of one batch of ReLUs.
struct Fixture {
    circ: Circuit,
    delta: Delta,
    gz: Vec<Block>,
    ez: Vec<Block>,
    tables: Vec<Block>,
    lsb: Vec<bool>,
    out: Vec<bool>,
}

fn fixture() -> Fixture {
    let circ = relu_circuit(64, 12).expect("valid parameters");
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let delta = Delta::random(&mut rng);
    let gz = (0..N * circ.garbler_inputs())
        .map(|_| Block::random(&mut rng))
        .collect();
    let ez = (0..N * circ.evaluator_inputs())
        .map(|_| Block::random(&mut rng))
        .collect();
    let tables = vec![Block::ZERO; table_blocks(&circ, N)];
    let no = circ.outputs().len();
    let mut f = Fixture {
        circ,
        delta,
        gz,
        ez,
        tables,
        lsb: vec![false; N * no],
        out: vec![false; N * no],
    };
    let g = Garbler::new(&f.circ, &f.delta);
    g.garble_batch(&f.gz, &f.ez, 0, &mut f.tables, &mut f.lsb)
        .expect("shapes match");
    f
}

/// AND gates per second (one core), then ReLUs per second (one core and rayon).
fn run<M: Measurement>(c: &mut Criterion<M>, suffix: &str, with_rayon: bool) {
    let mut f = fixture();
    let g = Garbler::new(&f.circ, &f.delta);
    let e = Evaluator::new(&f.circ);
    let short = |grp: &mut BenchmarkGroup<M>| {
        grp.measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
    };

    let mut grp = c.benchmark_group(format!("gc_and_gates_one_core{suffix}"));
    short(&mut grp);
    grp.throughput(Throughput::Elements((N * f.circ.and_count()) as u64));
    grp.bench_function(format!("garble_{}", g.kernel()), |b| {
        b.iter(|| {
            g.garble_batch(&f.gz, &f.ez, 0, &mut f.tables, &mut f.lsb)
                .expect("shapes match")
        })
    });
    // Evaluating on the zero-labels costs exactly what evaluating on any labels costs.
    grp.bench_function(format!("evaluate_{}", e.kernel()), |b| {
        b.iter(|| {
            e.eval_batch(&f.gz, &f.ez, &f.tables, 0, &mut f.out)
                .expect("shapes match")
        })
    });
    if !with_rayon {
        // The portable kernel, for comparison (what runs on CPUs without VAES).
        let (gp, ep) = (
            Garbler::new(&f.circ, &f.delta).portable(),
            Evaluator::new(&f.circ).portable(),
        );
        grp.bench_function("garble_portable", |b| {
            b.iter(|| {
                gp.garble_batch(&f.gz, &f.ez, 0, &mut f.tables, &mut f.lsb)
                    .expect("shapes match")
            })
        });
        grp.bench_function("evaluate_portable", |b| {
            b.iter(|| {
                ep.eval_batch(&f.gz, &f.ez, &f.tables, 0, &mut f.out)
                    .expect("shapes match")
            })
        });
    }
    grp.finish();

    // Three-halves garbling (issue 14) on the same ReLUs: AND gates per second, one core.
    let mut grp = c.benchmark_group(format!("gc_three_halves_and_gates_one_core{suffix}"));
    short(&mut grp);
    grp.throughput(Throughput::Elements((N * f.circ.and_count()) as u64));
    let mut th_tables = vec![0u64; table_words(&f.circ, N)];
    let th_ways = [
        (
            ThGarbler::new(&f.circ, &f.delta, Block(5)),
            ThEvaluator::new(&f.circ),
        ),
        (
            ThGarbler::new(&f.circ, &f.delta, Block(5)).portable(),
            ThEvaluator::new(&f.circ).portable(),
        ),
    ];
    for (tg, te) in th_ways.iter().take(if with_rayon { 1 } else { 2 }) {
        grp.bench_function(format!("garble_{}", tg.kernel()), |b| {
            b.iter(|| {
                tg.garble_batch(&f.gz, &f.ez, 0, &mut th_tables, &mut f.lsb)
                    .expect("shapes match")
            })
        });
        grp.bench_function(format!("evaluate_{}", te.kernel()), |b| {
            b.iter(|| {
                te.eval_batch(&f.gz, &f.ez, &th_tables, 0, &mut f.out)
                    .expect("shapes match")
            })
        });
    }
    grp.finish();

    let mut grp = c.benchmark_group(format!("gc_relu64_f12{suffix}"));
    short(&mut grp);
    grp.throughput(Throughput::Elements(N as u64));
    grp.bench_function("garble_1thread", |b| {
        b.iter(|| {
            g.garble_batch(&f.gz, &f.ez, 0, &mut f.tables, &mut f.lsb)
                .expect("shapes match")
        })
    });
    grp.bench_function("evaluate_1thread", |b| {
        b.iter(|| {
            e.eval_batch(&f.gz, &f.ez, &f.tables, 0, &mut f.out)
                .expect("shapes match")
        })
    });
    if with_rayon {
        grp.bench_function("garble_rayon", |b| {
            b.iter(|| {
                g.garble_batch_par(&f.gz, &f.ez, 0, &mut f.tables, &mut f.lsb)
                    .expect("shapes match")
            })
        });
        grp.bench_function("evaluate_rayon", |b| {
            b.iter(|| {
                e.eval_batch_par(&f.gz, &f.ez, &f.tables, 0, &mut f.out)
                    .expect("shapes match")
            })
        });
    }
    grp.finish();
}

/// The arithmetic output conversion of the protocol's ReLU (ℓ = 64, 51 output bits) for
/// [`N`] instances; rayon runs it, so under wall-clock time only (`RAYON_NUM_THREADS=1` for one
/// core).
fn arith(c: &mut Criterion) {
    let shape = ArithOutputs::new(64, 51).expect("valid shape");
    let mut rng = ChaCha12Rng::seed_from_u64(2);
    let delta = Delta::random(&mut rng);
    let zero: Vec<Block> = (0..N * shape.wires())
        .map(|_| Block::random(&mut rng))
        .collect();
    let labels: Vec<Block> = zero
        .iter()
        .map(|&z| if rng.gen() { z ^ delta.block() } else { z })
        .collect();
    let mut cts = vec![0u8; N * shape.instance_bytes()];
    let mut shares = vec![0u64; N];
    let mut grp = c.benchmark_group("gc_arith_outputs_64_51");
    grp.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(N as u64));
    grp.bench_function("garble", |b| {
        b.iter(|| {
            shape
                .garble(&delta, 0, &zero, &mut cts, &mut shares)
                .expect("shapes match")
        })
    });
    grp.bench_function("evaluate", |b| {
        b.iter(|| {
            shape
                .eval(0, &labels, &cts, &mut shares)
                .expect("shapes match")
        })
    });
    grp.finish();
}

fn bench_wall(c: &mut Criterion) {
    run(c, "", true);
    arith(c);
}

/// CPU time of the calling thread, from `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`.
#[cfg(target_os = "linux")]
struct ThreadCpuTime;

#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec (two 64-bit fields on 64-bit Linux) and the
    // clock id is a Linux constant; the call only writes `ts`.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(target_os = "linux")]
static WALL: WallTime = WallTime;

#[cfg(target_os = "linux")]
impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = Duration;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns() - start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

#[cfg(target_os = "linux")]
fn bench_cpu(c: &mut Criterion<ThreadCpuTime>) {
    // Rayon work runs on other threads, which this clock does not see: single-threaded only.
    run(c, "_cpu", false);
}

criterion_group! {
    name = wall;
    // No plots: they need system fonts the benchmark machines may not have.
    config = Criterion::default().without_plots();
    targets = bench_wall
}

#[cfg(target_os = "linux")]
criterion_group! {
    name = cpu;
    config = Criterion::default().without_plots().with_measurement(ThreadCpuTime);
    targets = bench_cpu
}

#[cfg(target_os = "linux")]
criterion_main!(wall, cpu);
#[cfg(not(target_os = "linux"))]
criterion_main!(wall);
