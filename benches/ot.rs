//! Criterion benches of the OT stack: the PRG, the 128 × n transpose, 128 base OTs, IKNP
//! correlated / chosen-message OT extension with both parties in two threads over `mem_pair`,
//! and silent OT (its linear code alone, and both parties over `mem_pair`).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pibench::crypto::ot::silent::chunk_ots;
use pibench::crypto::ot::silent::code::ExConvCode;
use pibench::crypto::ot::transpose::{transpose_128xn, transpose_portable};
use pibench::crypto::ot::{
    base, ChoiceBits, ChoicePattern, CotReceiver, CotSender, SilentReceiver, SilentSender,
    SoftSpokenReceiver, SoftSpokenSender,
};
use pibench::crypto::{Block, Prg};
use pibench::net::{mem_pair, Channel, MemChannel, NetError};
use rand_core::RngCore;

const TIMEOUT: Duration = Duration::from_secs(60);

fn bench_prg(c: &mut Criterion) {
    let mut g = c.benchmark_group("prg");
    g.measurement_time(Duration::from_secs(3));
    let n = 1 << 14;
    let mut prg = Prg::from_entropy();
    let mut buf = vec![Block::ZERO; n];
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("fill_blocks/2^14", |b| b.iter(|| prg.fill_blocks(&mut buf)));
    g.finish();
}

fn bench_transpose(c: &mut Criterion) {
    let mut g = c.benchmark_group("transpose");
    g.measurement_time(Duration::from_secs(3));
    if std::env::var("OT_BENCH_SMALL").is_ok() {
        let n = 1 << 10;
        let mut input = vec![0u8; 16 * n];
        Prg::from_entropy().fill_bytes(&mut input);
        let mut out = vec![Block::ZERO; n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("fast", "128x2^10"), |b| {
            b.iter(|| transpose_128xn(&input, n, &mut out))
        });
    }
    let n = 1 << 14;
    let mut input = vec![0u8; 16 * n];
    Prg::from_entropy().fill_bytes(&mut input);
    let mut out = vec![Block::ZERO; n];
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("fast", "128x2^14"), |b| {
        b.iter(|| transpose_128xn(&input, n, &mut out))
    });
    g.bench_function(BenchmarkId::new("portable", "128x2^14"), |b| {
        b.iter(|| transpose_portable(&input, n, &mut out))
    });
    g.finish();
}

fn bench_base_ot(c: &mut Criterion) {
    let mut g = c.benchmark_group("base_ot");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.throughput(Throughput::Elements(128));
    let mut rng = Prg::from_entropy();
    let msgs: Vec<(Block, Block)> = (0..128)
        .map(|_| (Block::random(&mut rng), Block::random(&mut rng)))
        .collect();
    let choices: Vec<bool> = (0..128).map(|_| rng.next_u32() & 1 == 1).collect();
    g.bench_function("chou_orlandi/128", |b| {
        b.iter(|| {
            let (mut a, mut r) = mem_pair(TIMEOUT);
            let m = msgs.clone();
            let t =
                thread::spawn(move || base::send(&mut a, &m, &mut Prg::from_entropy()).unwrap());
            let got = base::receive(&mut r, &choices, &mut Prg::from_entropy()).unwrap();
            t.join().unwrap();
            got
        })
    });
    g.finish();
}

/// A set-up COT sender living in its own thread: each request runs one `send` (or
/// `send_chosen`) of the requested size and reports back.
struct SenderThread {
    go: mpsc::Sender<(usize, bool)>,
    done: mpsc::Receiver<()>,
}

fn spawn_pair() -> (SenderThread, CotReceiver, MemChannel) {
    let (mut a, mut b) = mem_pair(TIMEOUT);
    let (go, go_rx) = mpsc::channel::<(usize, bool)>();
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let mut rng = Prg::from_entropy();
        let delta = Block::random(&mut rng).with_lsb(true);
        let mut s = CotSender::setup(&mut a, delta, &mut rng).unwrap();
        let mut out = Vec::new();
        let mut msgs = Vec::new();
        while let Ok((n, chosen)) = go_rx.recv() {
            if chosen {
                msgs.resize(n, (Block::ZERO, Block::ONES));
                s.send_chosen(&mut a, &msgs).unwrap();
            } else {
                out.resize(n, Block::ZERO);
                s.send(&mut a, &mut out).unwrap();
            }
            done_tx.send(()).unwrap();
        }
    });
    let r = CotReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
    (SenderThread { go, done }, r, b)
}

fn bench_extension(c: &mut Criterion) {
    let mut g = c.benchmark_group("iknp");
    g.measurement_time(Duration::from_secs(3)).sample_size(10);
    let (sender, mut r, mut ch) = spawn_pair();
    let mut rng = Prg::from_entropy();
    for (name, n, chosen) in [("cot", 1usize << 20, false), ("chosen", 1 << 18, true)] {
        let choices: Vec<bool> = (0..n).map(|_| rng.next_u32() & 1 == 1).collect();
        let mut out = vec![Block::ZERO; n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(
            BenchmarkId::new(name, format!("2^{}", n.trailing_zeros())),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        sender.go.send((n, chosen)).unwrap();
                        if chosen {
                            out = r.receive_chosen(&mut ch, &choices).unwrap();
                        } else {
                            r.receive(&mut ch, &choices, &mut out).unwrap();
                        }
                        sender.done.recv().unwrap();
                    }
                    start.elapsed()
                })
            },
        );
    }
    g.finish();
}

/// A channel to oneself: bytes sent are queued and received back, so both parties can run one
/// after the other on one thread (the receiver's whole message first, then the sender).
#[derive(Default)]
struct Loopback {
    buf: Vec<u8>,
    pos: usize,
}

impl Channel for Loopback {
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
    fn recv(&mut self, out: &mut [u8]) -> Result<(), NetError> {
        let end = self.pos + out.len();
        if end > self.buf.len() {
            return Err(NetError::Disconnected {
                context: "loopback".into(),
            });
        }
        out.copy_from_slice(&self.buf[self.pos..end]);
        self.pos = end;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), NetError> {
        Ok(())
    }
}

/// Both parties of the correlated OT extension on one thread: the CPU cost of an OT, summed
/// over the two parties, on one core (the target is ≥ 30 M/s).
fn bench_extension_one_core(c: &mut Criterion) {
    let mut g = c.benchmark_group("iknp_one_core");
    g.measurement_time(Duration::from_secs(3)).sample_size(10);
    // Setup needs the two parties concurrently; run it over mem_pair, then switch channels.
    let (mut a, mut b) = mem_pair(TIMEOUT);
    let t = thread::spawn(move || {
        let mut rng = Prg::from_entropy();
        CotSender::setup(&mut a, Block::random(&mut rng).with_lsb(true), &mut rng).unwrap()
    });
    let mut r = CotReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
    let mut s = t.join().unwrap();
    let mut ch = Loopback::default();
    let n = 1 << 18;
    let mut rng = Prg::from_entropy();
    let choices: Vec<bool> = (0..n).map(|_| rng.next_u32() & 1 == 1).collect();
    let mut t_out = vec![Block::ZERO; n];
    let mut q_out = vec![Block::ZERO; n];
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("cot_both_parties/2^18", |bch| {
        bch.iter(|| {
            r.receive(&mut ch, &choices, &mut t_out).unwrap();
            s.send(&mut ch, &mut q_out).unwrap();
        })
    });
    g.bench_function("cot_receiver_only/2^18", |bch| {
        bch.iter(|| {
            r.receive(&mut ch, &choices, &mut t_out).unwrap();
            ch.buf.clear();
            ch.pos = 0;
        })
    });
    g.finish();
}

/// Both parties of SoftSpoken (k = 2, 4, 8) on one thread, the receiver's message first: the CPU
/// cost of a correlated OT summed over the two parties. Three chunks of OTs, below the count at
/// which either party splits a call over two threads.
fn bench_softspoken_one_core(c: &mut Criterion) {
    let mut g = c.benchmark_group("softspoken_one_core");
    g.measurement_time(Duration::from_secs(3)).sample_size(10);
    let n = 3 * pibench::crypto::ot::iknp::CHUNK_OTS;
    for k in [2usize, 4, 8] {
        let (mut a, mut b) = mem_pair(TIMEOUT);
        let t = thread::spawn(move || {
            let mut rng = Prg::from_entropy();
            let delta = Block::random(&mut rng).with_lsb(true);
            SoftSpokenSender::setup(&mut a, k, delta, &mut rng).unwrap()
        });
        let mut r = SoftSpokenReceiver::setup(&mut b, k, &mut Prg::from_entropy()).unwrap();
        let mut s = t.join().unwrap();
        let mut ch = Loopback::default();
        let mut choices = ChoiceBits::zeros(n);
        let mut t_out = vec![Block::ZERO; n];
        let mut q_out = vec![Block::ZERO; n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(
            BenchmarkId::new("cot_both_parties", format!("k{k}")),
            |bch| {
                bch.iter(|| {
                    r.receive_packed(&mut ch, ChoicePattern::ALL_RANDOM, &mut choices, &mut t_out)
                        .unwrap();
                    s.send(&mut ch, ChoicePattern::ALL_RANDOM, &mut q_out)
                        .unwrap();
                })
            },
        );
    }
    g.finish();
}

/// Silent OT's per-chunk compute: the expand-convolute code on one chunk (what each party runs
/// per chunk besides its trees), and both parties of a reserved session of `2^20` random OTs
/// in two threads over `mem_pair` (OTs per second of wall time, the two parties concurrently).
fn bench_silent(c: &mut Criterion) {
    let mut g = c.benchmark_group("silent");
    g.measurement_time(Duration::from_secs(3)).sample_size(10);
    for depth in [10usize, 12] {
        let n = chunk_ots(depth);
        let code = ExConvCode::new(n);
        let mut v = vec![Block::ZERO; 2 * n];
        Prg::from_entropy().fill_blocks(&mut v);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(
            BenchmarkId::new("code", format!("2^{}", n.trailing_zeros())),
            |b| b.iter(|| code.compress(&mut v)),
        );
    }
    let n = 1usize << 20;
    let (mut a, mut b) = mem_pair(TIMEOUT);
    let (go, go_rx) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let mut rng = Prg::from_entropy();
        let delta = Block::random(&mut rng).with_lsb(true);
        let mut s = SilentSender::setup(&mut a, delta, &mut rng).unwrap();
        let mut out = vec![Block::ZERO; n];
        while go_rx.recv().is_ok() {
            s.reserve(&mut a, n).unwrap();
            s.send(&mut a, ChoicePattern::ALL_RANDOM, &mut out).unwrap();
            done_tx.send(()).unwrap();
        }
    });
    let mut r = SilentReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
    let mut choices = ChoiceBits::zeros(n);
    let mut out = vec![Block::ZERO; n];
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("pair/2^20", |bch| {
        bch.iter(|| {
            go.send(()).unwrap();
            r.reserve(&mut b, n).unwrap();
            r.receive(&mut b, ChoicePattern::ALL_RANDOM, &mut choices, &mut out)
                .unwrap();
            done.recv().unwrap();
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // Plots off: the plotting backend needs system fonts this machine does not have.
    config = Criterion::default().without_plots();
    targets = bench_prg, bench_transpose, bench_base_ot, bench_extension_one_core, bench_extension,
        bench_softspoken_one_core, bench_silent
}
criterion_main!(benches);
