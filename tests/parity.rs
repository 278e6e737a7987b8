//! PyTorch parity: plain f32 inference equals PyTorch's logits on every committed fixture and
//! every batch-norm path (1e-4 relative), and fixed point agrees with f32 on the class.
//!
//! The class check uses f = 16 fractional bits: the fixtures are narrow random networks whose
//! top logits can lie within 0.05 of each other, closer than f = 12 resolves. The largest logit
//! error at both f = 12 (the default) and f = 16 is printed.

use std::path::{Path, PathBuf};

use pibench::model::{BnPath, Bundle};
use pibench::plain::{f32::argmax, forward_f32, FixedNetwork};
use pibench::ring::Ring;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures exists")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.to_string_lossy().ends_with(".safetensors")
                && !p.to_string_lossy().ends_with(".io.safetensors")
        })
        .collect();
    v.sort();
    assert!(v.len() >= 3, "expected the committed fixtures, found {v:?}");
    v
}

fn tensor(st: &safetensors::SafeTensors, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let t = st.tensor(name).ok()?;
    let data = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((t.shape().to_vec(), data))
}

#[test]
fn f32_matches_pytorch_and_fixed_point_matches_f32() {
    let mut worst_fixed = 0.0f64;
    let mut worst_fixed12 = 0.0f64;
    for bundle_path in fixtures() {
        let io_path = PathBuf::from(
            bundle_path
                .to_string_lossy()
                .replace(".safetensors", ".io.safetensors"),
        );
        let io_bytes = std::fs::read(&io_path).unwrap();
        let io = safetensors::SafeTensors::deserialize(&io_bytes).unwrap();
        let (ishape, inputs) = tensor(&io, "inputs").unwrap();
        let per = ishape[1..].iter().product::<usize>();
        let bundle = Bundle::open(&bundle_path).unwrap();
        let mut paths_checked = 0;
        for (path, key) in [(BnPath::Clean, "logits_clean"), (BnPath::Adv, "logits_adv")] {
            let Some((lshape, logits)) = tensor(&io, key) else {
                continue;
            };
            paths_checked += 1;
            let net = bundle.network(path).unwrap();
            let fixed = FixedNetwork::lower(&net, Ring::new(64, 16).unwrap()).unwrap();
            let fixed12 = FixedNetwork::lower(&net, Ring::new(64, 12).unwrap()).unwrap();
            let classes = lshape[1];
            for n in 0..ishape[0] {
                let x = &inputs[n * per..(n + 1) * per];
                let want = &logits[n * classes..(n + 1) * classes];
                let got = forward_f32(&net, x).unwrap();
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
                let err = got
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max)
                    / scale;
                assert!(
                    err <= 1e-4,
                    "{} {path} input {n}: relative error {err:e}",
                    bundle_path.display()
                );
                let fx = fixed.forward(x).unwrap();
                let fixed_err = fx
                    .logits
                    .iter()
                    .zip(&got)
                    .map(|(a, &b)| (a - b as f64).abs())
                    .fold(0f64, f64::max);
                worst_fixed = worst_fixed.max(fixed_err);
                let fx12 = fixed12.forward(x).unwrap();
                let err12 = fx12
                    .logits
                    .iter()
                    .zip(&got)
                    .map(|(a, &b)| (a - b as f64).abs())
                    .fold(0f64, f64::max);
                worst_fixed12 = worst_fixed12.max(err12);
                let fx_class = fx
                    .logits
                    .iter()
                    .enumerate()
                    .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                    .0;
                assert_eq!(
                    fx_class,
                    argmax(&got),
                    "{} {path} input {n}: fixed point changes the class",
                    bundle_path.display()
                );
            }
        }
        assert!(
            paths_checked >= 1,
            "{}: no logits in the io file",
            io_path.display()
        );
        if bundle.has_dual_bn() {
            assert_eq!(
                paths_checked,
                2,
                "{}: dual-BN fixture must carry both paths",
                io_path.display()
            );
        }
    }
    println!("largest fixed-point logit error over all fixtures: ℓ=64 f=12: {worst_fixed12:.3e}; ℓ=64 f=16: {worst_fixed:.3e}");
}
