//! PyTorch parity of the batched evaluator: logits, cross-entropy losses and input gradients
//! (of the summed cross-entropy and of an arbitrary upstream logit gradient) equal PyTorch's on
//! the committed gradient fixtures (`tests/fixtures/grad/`, from `tools/make_grad_fixture.py`),
//! on every batch-norm path, with batch norm folded and unfolded, through the CIFAR-10 input
//! normalization.
//!
//! PyTorch computed in float64. The f64 evaluator must match everything to 1e-6 relative (the
//! references are stored as f32): same semantics. The f32 evaluator must match logits and losses
//! to 1e-4, and its gradients must equal, to 1e-4, the f64 backward pass replaying the f32 pass's
//! ReLU and max-pool decisions: f32 rounding can put a pre-activation within an ulp of zero on
//! the other side of a ReLU's kink, which changes the gradient of that element's path (PyTorch in
//! f32 has the same effect); so the f32 gradient is only required within 1e-2 of PyTorch's, and
//! the test prints how close it is (about 5e-7 without such a flip). Relative errors are
//! `‖got − want‖ / ‖want‖`, and each element within ten times that against the largest.

use std::path::{Path, PathBuf};

use pibench::eval::{cross_entropy, FloatNet, Preprocess, Real, Tape};
use pibench::model::{BnPath, Bundle};
use pibench::plain::forward_f32;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grad");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/grad exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".grad.safetensors"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 2,
        "expected the committed gradient fixtures, found {v:?}"
    );
    v
}

fn f32s(st: &safetensors::SafeTensors, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn labels(st: &safetensors::SafeTensors) -> Vec<usize> {
    let t = st.tensor("labels").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::I64);
    t.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize)
        .collect()
}

/// `(‖got − want‖ / ‖want‖, max|got − want| / max|want|)`.
fn errors(got: &[f64], want: &[f32]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let norm = want.iter().map(|&w| (w as f64).powi(2)).sum::<f64>().sqrt();
    let diff = got
        .iter()
        .zip(want)
        .map(|(g, &w)| (g - w as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let max = want.iter().fold(0f64, |m, &w| m.max((w as f64).abs()));
    let elem = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (g, &w)| m.max((g - w as f64).abs()));
    (diff / norm, elem / max)
}

fn check(what: &str, got: &[f64], want: &[f32], tol: f64) -> f64 {
    let (norm, elem) = errors(got, want);
    assert!(
        norm <= tol && elem <= 10.0 * tol,
        "{what}: relative error {norm:.2e} (norm), {elem:.2e} (largest element)"
    );
    norm
}

/// Runs the evaluator in `T` and checks logits, losses and both gradients against the fixture
/// to `tol`; returns the gradients (cross-entropy, upstream) and the tapes they came from.
fn compare<T: Real>(
    what: &str,
    f: &FloatNet<'_, T>,
    io: &safetensors::SafeTensors,
    path: BnPath,
    tol: Option<f64>,
) -> [(Vec<f64>, Tape); 2] {
    let pixels: Vec<T> = f32s(io, "pixels").into_iter().map(T::from_f32).collect();
    let labels = labels(io);
    let upstream: Vec<T> = f32s(io, &format!("upstream_{path}"))
        .into_iter()
        .map(T::from_f32)
        .collect();
    let lg = f.loss_grad(&pixels, &labels).unwrap();
    let want_logits = f32s(io, &format!("logits_{path}"));
    check(
        &format!("{what} logits"),
        &wide(&lg.logits),
        &want_logits,
        tol.unwrap_or(1e-4),
    );
    let want_loss = f32s(io, &format!("loss_{path}"));
    check(
        &format!("{what} loss"),
        &lg.loss,
        &want_loss,
        tol.unwrap_or(1e-4),
    );
    let (_, tape_ce) = f.forward_taped(&pixels).unwrap();
    let (_, tape_up) = f.forward_taped(&pixels).unwrap();
    let (_, tape) = f.forward_taped(&pixels).unwrap();
    let up = wide(&f.backward(tape, &upstream).unwrap());
    let ce = wide(&lg.grad);
    if let Some(tol) = tol {
        let want = f32s(io, &format!("grad_ce_{path}"));
        check(&format!("{what} cross-entropy gradient"), &ce, &want, tol);
        let want = f32s(io, &format!("grad_upstream_{path}"));
        check(&format!("{what} upstream gradient"), &up, &want, tol);
    }
    [(ce, tape_ce), (up, tape_up)]
}

fn wide<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

#[test]
fn input_gradients_match_pytorch() {
    let (mut worst, mut checked, mut kinks) = (0f64, 0, 0);
    for file in fixtures() {
        let bytes = std::fs::read(&file).unwrap();
        let io = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().expect("metadata");
        let model = file
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join(&meta["model"]);
        let bundle = Bundle::open(&model).unwrap();
        let paths: Vec<String> = serde_json::from_str(&meta["bn_paths"]).unwrap();
        assert_eq!(paths.len(), if bundle.has_dual_bn() { 2 } else { 1 });
        let pre = Preprocess::normalize(f32s(&io, "mean"), f32s(&io, "std"));
        for path in paths {
            let path: BnPath = path.parse().unwrap();
            for folded in [true, false] {
                let net = if folded {
                    bundle.network(path).unwrap()
                } else {
                    bundle.network_unfolded(path).unwrap()
                };
                let what = format!(
                    "{} {path} {}",
                    file.file_name().unwrap().to_string_lossy(),
                    if folded { "folded" } else { "unfolded" }
                );
                let f32net = FloatNet::<f32>::new(&net, pre.clone()).unwrap();
                let f64net = FloatNet::<f64>::new(&net, pre.clone()).unwrap();
                compare(&what, &f64net, &io, path, Some(1e-6));
                let grads = compare(&what, &f32net, &io, path, None);
                // Replaying the f32 pass's ReLU and max-pool decisions in f64 must give the f32
                // gradient: any remaining difference to PyTorch is a decision at a kink.
                let px: Vec<f64> = f32s(&io, "pixels").into_iter().map(f64::from).collect();
                let logits = f64net.logits(&px).unwrap();
                let ce = cross_entropy(&logits, f64net.classes(), &labels(&io))
                    .unwrap()
                    .1;
                let up: Vec<f64> = f32s(&io, &format!("upstream_{path}"))
                    .into_iter()
                    .map(f64::from)
                    .collect();
                for ((g32, tape32), (kind, upstream)) in
                    grads.into_iter().zip([("ce", ce), ("upstream", up)])
                {
                    let replay = f64net.backward(tape32, &upstream).unwrap();
                    let replay32: Vec<f32> = replay.iter().map(|&v| v as f32).collect();
                    check(
                        &format!("{what} f32 {kind} gradient vs f64 on the f32 tape"),
                        &g32,
                        &replay32,
                        1e-4,
                    );
                    let want = f32s(&io, &format!("grad_{kind}_{path}"));
                    let (norm, _) = errors(&g32, &want);
                    println!("{what} f32 {kind} gradient vs PyTorch: {norm:.2e}");
                    if norm > 1e-4 {
                        kinks += 1;
                    }
                    assert!(
                        norm <= 1e-2,
                        "{what}: f32 {kind} gradient off by {norm:.2e}"
                    );
                    worst = worst.max(norm);
                    checked += 1;
                }

                // The batch gives each image what the one-image reference gives it.
                let f = FloatNet::<f32>::new(&net, pre.clone()).unwrap();
                let pixels = f32s(&io, "pixels");
                let logits = f.logits(&pixels).unwrap();
                let per = f.image_len();
                for (n, row) in logits.chunks(f.classes()).enumerate() {
                    let x = pre
                        .apply(&pixels[n * per..(n + 1) * per], net.input_shape)
                        .unwrap();
                    let want = forward_f32(&net, &x).unwrap();
                    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let err = row
                        .iter()
                        .zip(&want)
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
                        / scale;
                    assert!(err <= 1e-5, "{what} image {n}: {err:e} against plain");
                }
            }
        }
    }
    println!(
        "f32 gradients against PyTorch (float64): largest relative error {worst:.2e}; \
         {kinks} of {checked} above 1e-4 because rounding moved a ReLU decision"
    );
}
