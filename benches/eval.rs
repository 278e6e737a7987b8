//! Throughput of the batched evaluator on one bundle, in images per second: the f32 forward
//! pass (clean BN path) and PGD (adversarial BN path where the model has one), at a given batch
//! size. `benches/eval_vs_pytorch.py` runs it beside PyTorch on the same network and prints the
//! ratios; alone:
//!
//! ```text
//! cargo bench --bench eval -- [--model PATH] [--batch 100] [--forward-batches 3] [--pgd-batches 1] [--steps 7] [--json]
//! cargo bench --bench eval -- --export OUT.safetensors --export-only   # the network for PyTorch
//! ```
//!
//! `--export` writes the bundle with every synthetic weight materialized (so a reader without
//! pibench's generator, like the PyTorch script, sees the same network) and
//! `OUT.check.safetensors` with a few [0,1] images and pibench's f32 logits of them on each BN
//! path, to show both sides evaluate the same function.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use pibench::eval::{pgd, EvalError, FloatNet, Pgd, Preprocess};
use pibench::model::raw::RawOp;
use pibench::model::{BnPath, Bundle, BundleWriter, Network, Op};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

#[derive(Parser)]
struct Args {
    /// The bundle.
    #[arg(long, default_value = "models/resnet18-c10-rlnet-82k.safetensors")]
    model: PathBuf,
    /// Images per batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Timed forward batches.
    #[arg(long, default_value_t = 3)]
    forward_batches: usize,
    /// Timed PGD batches (0 skips PGD).
    #[arg(long, default_value_t = 1)]
    pgd_batches: usize,
    /// PGD steps.
    #[arg(long, default_value_t = 7)]
    steps: usize,
    /// Print one JSON line with the results.
    #[arg(long)]
    json: bool,
    /// Write the materialized bundle and its check file here.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Stop after `--export`.
    #[arg(long)]
    export_only: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One timed measurement.
struct Measured {
    name: &'static str,
    images: usize,
    /// Wall-clock seconds.
    seconds: f64,
    /// CPU seconds of the process (all threads): on a loaded machine, the work done.
    cpu_seconds: f64,
}

/// CPU seconds this process has used so far (user + system, all threads).
fn cpu_seconds() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given.
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Runs `f`, timing it in wall-clock and CPU seconds.
fn timed(
    name: &'static str,
    images: usize,
    f: impl FnOnce() -> Result<(), EvalError>,
) -> Result<Measured> {
    let (start, cpu) = (Instant::now(), cpu_seconds());
    f()?;
    Ok(Measured {
        name,
        images,
        seconds: start.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds() - cpu,
    })
}

fn batch(images: usize, per: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..images * per).map(|_| rng.gen::<f32>()).collect()
}

fn paths(bundle: &Bundle) -> Vec<BnPath> {
    if bundle.has_dual_bn() {
        vec![BnPath::Clean, BnPath::Adv]
    } else {
        vec![BnPath::Clean]
    }
}

/// The bundle with every weight it leaves synthetic stored, and the check file.
fn export(bundle: &Bundle, out: &Path) -> Result<()> {
    let mut w = BundleWriter::new(bundle.graph().clone(), bundle.card().clone());
    for name in bundle.tensor_names() {
        let meta = bundle.tensor_meta(name).context("tensor directory")?;
        let bytes = bundle.tensor_bytes(name).context("tensor bytes")?;
        w.raw(name, meta.dtype, &meta.shape, bytes.to_vec());
    }
    // Unfolded, the network's conv and linear layers carry exactly the (materialized) weights
    // the graph names, under the graph's op names.
    let net = bundle.network_unfolded(BnPath::Clean)?;
    let stored = |t: &str| bundle.tensor_meta(t).is_some();
    for op in &bundle.graph().ops {
        let layer = net.layers.iter().find(|l| l.name == op.name());
        match (op, layer.map(|l| &l.op)) {
            (RawOp::Conv2d(raw), Some(Op::Conv2d(c))) => {
                let shape = [c.out_channels, c.in_channels, c.kernel.0, c.kernel.1];
                if !stored(&raw.weight) {
                    w.f32(&raw.weight, &shape, &c.weight);
                }
                if let Some(b) = raw.bias.as_deref().filter(|b| !stored(b)) {
                    w.f32(b, &[c.out_channels], &c.bias);
                }
            }
            (RawOp::Linear(raw), Some(Op::Linear(l))) => {
                if !stored(&raw.weight) {
                    w.f32(&raw.weight, &[l.out_features, l.in_features], &l.weight);
                }
                if let Some(b) = raw.bias.as_deref().filter(|b| !stored(b)) {
                    w.f32(b, &[l.out_features], &l.bias);
                }
            }
            _ => {}
        }
    }
    w.write(out)?;

    let per = net.input_shape.elements();
    let pixels = batch(4, per, 99);
    let mut check = vec![("pixels".to_string(), vec![4, per], pixels.clone())];
    for path in paths(bundle) {
        let net = bundle.network(path)?;
        let f = FloatNet::<f32>::new(&net, Preprocess::identity())?;
        let logits = f.logits(&pixels)?;
        check.push((format!("logits_{path}"), vec![4, f.classes()], logits));
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = check
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| Ok((n.as_str(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let check_path = out.with_extension("check.safetensors");
    safetensors::serialize_to_file(views, &None, &check_path)?;
    eprintln!("wrote {} and {}", out.display(), check_path.display());
    Ok(())
}

fn time_forward(net: &Network, args: &Args) -> Result<Measured> {
    let f = FloatNet::<f32>::new(net, Preprocess::identity())?;
    let x = batch(args.batch, f.image_len(), 1);
    f.logits(&x)?; // warm-up: page faults, the gemm crate's first packing
    timed("f32_forward", args.batch * args.forward_batches, || {
        (0..args.forward_batches)
            .try_for_each(|_| f.logits(&x).map(|l| drop(std::hint::black_box(l))))
    })
}

fn time_pgd(net: &Network, args: &Args) -> Result<Measured> {
    let f = FloatNet::<f32>::new(net, Preprocess::identity())?;
    let x = batch(args.batch, f.image_len(), 2);
    let labels: Vec<usize> = (0..args.batch).map(|n| n % f.classes()).collect();
    f.loss_grad(&x, &labels)?; // warm-up
    let cfg = Pgd {
        steps: args.steps,
        ..Pgd::default()
    };
    timed("pgd", args.batch * args.pgd_batches, || {
        (0..args.pgd_batches).try_for_each(|b| {
            pgd(&f, &x, &labels, (b * args.batch) as u64, &cfg)
                .map(|a| drop(std::hint::black_box(a)))
        })
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bundle = Bundle::open(&args.model)?;
    if let Some(out) = &args.export {
        export(&bundle, out)?;
        if args.export_only {
            return Ok(());
        }
    }
    let clean = bundle.network(BnPath::Clean)?;
    let adv = if bundle.has_dual_bn() {
        bundle.network(BnPath::Adv)?
    } else {
        clean.clone()
    };
    let mut results = vec![time_forward(&clean, &args)?];
    if args.pgd_batches > 0 {
        results.push(time_pgd(&adv, &args)?);
    }
    // Hook: the PI-exact evaluation (src/eval/pi.rs) adds its measurement here as
    // `pi_exact`; eval_vs_pytorch.py compares it with PyTorch's f32 forward.

    let threads = rayon::current_num_threads();
    for m in &results {
        println!(
            "{:12} {:5} images in {:7.3} s ({:7.3} CPU s): {:8.2} images/s (batch {}, {} threads{})",
            m.name,
            m.images,
            m.seconds,
            m.cpu_seconds,
            m.images as f64 / m.seconds,
            args.batch,
            threads,
            if m.name == "pgd" {
                format!(", {} steps", args.steps)
            } else {
                String::new()
            }
        );
    }
    if args.json {
        let json = serde_json::json!({
            "bench": "eval",
            "model": args.model,
            "batch": args.batch,
            "steps": args.steps,
            "threads": threads,
            "results": results.iter().map(|m| serde_json::json!({
                "name": m.name,
                "images": m.images,
                "seconds": m.seconds,
                "cpu_seconds": m.cpu_seconds,
                "images_per_s": m.images as f64 / m.seconds,
            })).collect::<Vec<_>>(),
        });
        println!("{json}");
    }
    Ok(())
}
