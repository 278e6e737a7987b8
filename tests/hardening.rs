//! A careless user: bad flags, inputs and bundles, closed pipes, slow links, full directories.
//! Each gets a clear error naming the problem (or a normal end), never a panic, an abort, a
//! hang or lost results. The command line is exercised through the built binary.

mod cli_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pibench::bench::run::{load_input, run_network, BenchError, InputSpec, RunOptions, Transport};
use pibench::model::{BnPath, Bundle, BundleWriter, ModelError};
use pibench::plain::{FixedNetwork, PlainError};
use pibench::ring::Ring;

use cli_support::{bin, fixture, small_card, spawn_serve};

const SMALL: &str = "snl-resnet18-w8-c10";

fn small_net() -> pibench::model::Network {
    Bundle::open(fixture(SMALL))
        .unwrap()
        .network(BnPath::Clean)
        .unwrap()
}

/// Runs the binary to completion, killing it (and failing) if it is still running after
/// `limit`: these commands must end by themselves, by success or by a clear error.
fn run_until(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("`pibench` still running after {limit:?}: it hung instead of failing");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A failing run: non-zero exit, no panic, and the error on stderr.
fn fails_with(out: &Output, needles: &[&str]) -> String {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    err
}

#[test]
fn timeout_zero_or_beyond_a_year_is_refused_at_parse_time() {
    let model = fixture(SMALL);
    for (value, needle) in [
        ("0", "at least 1 second"),
        ("9223372036854775808", "at most"),
        ("18446744073709551615", "at most"),
    ] {
        for cmd in ["run", "serve"] {
            let mut c = bin();
            c.args([cmd, model.to_str().unwrap(), "--timeout", value]);
            fails_with(
                &run_until(c, Duration::from_secs(60)),
                &["--timeout", needle],
            );
        }
        let mut c = bin();
        c.args([
            "client",
            "--model",
            model.to_str().unwrap(),
            "--timeout",
            value,
        ]);
        fails_with(
            &run_until(c, Duration::from_secs(60)),
            &["--timeout", needle],
        );
    }
    for flag in ["--inputs", "--repeats"] {
        let mut c = bin();
        c.args(["sweep", model.to_str().unwrap(), flag, "0"]);
        fails_with(&run_until(c, Duration::from_secs(60)), &[flag]);
    }
    let mut c = bin();
    c.args(["run", model.to_str().unwrap(), "--he-queries", "0"]);
    fails_with(&run_until(c, Duration::from_secs(60)), &["--he-queries"]);
}

#[test]
fn a_closed_stdout_ends_normally_and_the_json_is_written_first() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let mut child = bin()
        .args([
            "run",
            fixture(SMALL).to_str().unwrap(),
            "--memory",
            "--json",
        ])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before anything is printed, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    let r: pibench::results::RunResult =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(r.correct);
}

#[test]
fn an_emulated_link_slower_than_the_time_out_ends_in_a_time_out_naming_it() {
    // At 1 kbit/s the base OTs alone take a minute; a 10 s RTT delays every message 5 s: both
    // must end at the time-out with the link named, not run on or blame a disconnect.
    for (link, timeout) in [("1kbit,0ms", "3"), ("1gbit,10s", "2")] {
        let mut c = bin();
        c.args(["run", fixture(SMALL).to_str().unwrap()]).args([
            "--emulate",
            link,
            "--timeout",
            timeout,
        ]);
        let err = fails_with(
            &run_until(c, Duration::from_secs(120)),
            &["time-out", "emulated link", link, "longer --timeout"],
        );
        assert!(!err.contains("disconnected"), "{err}");
    }
}

#[test]
fn counts_beyond_memory_are_refused_and_sweeps_stream() {
    let mut c = bin();
    c.args(["relu-bench", "--relus", "1000000000000"]);
    fails_with(
        &run_until(c, Duration::from_secs(60)),
        &["--relus 1000000000000", "memory"],
    );

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("sweep");
    let model = fixture(SMALL);
    let mut c = bin();
    c.args(["sweep", model.to_str().unwrap(), "--out"])
        .arg(&out_dir)
        .args(["--inputs", "1000000000000", "--repeats", "1000000000000"]);
    fails_with(&run_until(c, Duration::from_secs(60)), &["overflow"]);
    assert!(
        !out_dir.exists(),
        "a sweep that cannot start leaves no directory behind"
    );

    // 10^12 inputs: the sweep starts measuring (its first run appears) instead of aborting on
    // a plan it cannot allocate; it is stopped here.
    let mut child = bin()
        .args(["sweep", model.to_str().unwrap(), "--out"])
        .arg(&out_dir)
        .args(["--inputs", "1000000000000", "--emulate", "none"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let runs = out_dir.join("runs");
    let t = Instant::now();
    let mut started = false;
    while t.elapsed() < Duration::from_secs(120) {
        if let Some(status) = child.try_wait().unwrap() {
            let err = text(&child.wait_with_output().unwrap().stderr);
            panic!("the sweep ended ({status}) instead of streaming: {err}");
        }
        if std::fs::read_dir(&runs).is_ok_and(|mut d| d.next().is_some()) {
            started = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "no run was written");
}

/// `sweep` of the small fixture into `out`: one input, one repeat, no emulation.
fn small_sweep(out: &Path, extra: &[&str]) -> Output {
    let mut c = bin();
    c.args(["sweep", fixture(SMALL).to_str().unwrap(), "--out"])
        .arg(out)
        .args(["--inputs", "1", "--repeats", "1", "--emulate", "none"])
        .args(extra);
    run_until(c, Duration::from_secs(300))
}

fn run_files(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn sweep_refuses_a_non_empty_directory_unless_forced_or_appending() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    fails_with(
        &small_sweep(&out, &[]),
        &["not empty", "--force", "--append"],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );

    let fresh = dir.path().join("fresh");
    let first = small_sweep(&fresh, &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(run_files(&fresh).len(), 1);
    fails_with(&small_sweep(&fresh, &[]), &["not empty"]);

    // --append keeps the earlier run, names the new one afresh, reports both.
    let appended = small_sweep(&fresh, &["--append"]);
    assert!(appended.status.success(), "{}", text(&appended.stderr));
    let files = run_files(&fresh);
    assert_eq!(files.len(), 2, "{files:?}");
    let csv = std::fs::read_to_string(fresh.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2, "{csv}");
    // Its report names both sweeps, in the order they ran, and a redraw is the same report
    // (the appended run's file sorts before the earlier one's).
    let md = std::fs::read_to_string(fresh.join("report.md")).unwrap();
    let commands: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("pibench sweep "))
        .collect();
    assert_eq!(commands.len(), 2, "{md}");
    assert!(!commands[0].contains("--append"), "{md}");
    assert_eq!(
        commands[1].replacen(" --append", "", 1),
        commands[0],
        "{md}"
    );
    let redraw = bin()
        .args(["report", fresh.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(redraw.status.success(), "{}", text(&redraw.stderr));
    assert_eq!(
        std::fs::read_to_string(fresh.join("results.csv")).unwrap(),
        csv
    );
    // Appending runs of another ring would mix incomparable runs in one report.
    fails_with(
        &small_sweep(&fresh, &["--append", "--ell", "60"]),
        &["--append", "ℓ = 60"],
    );
    assert_eq!(run_files(&fresh).len(), 2);

    // --force starts afresh: only the new run remains, and no chart the new report does not
    // draw (a single model has no method comparison and no accuracies); the user's files stay.
    let stale = ["methods_at_equal_budget.svg", "accuracy_vs_online_wan.png"];
    for name in stale.iter().chain(&["mine.svg"]) {
        std::fs::write(fresh.join(name), "old").unwrap();
    }
    let forced = small_sweep(&fresh, &["--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_eq!(run_files(&fresh).len(), 1);
    for name in stale {
        assert!(!fresh.join(name).exists(), "stale {name} stays");
    }
    assert_eq!(
        std::fs::read_to_string(fresh.join("mine.svg")).unwrap(),
        "old"
    );
    assert!(fresh.join("latency_vs_budget.svg").exists());
    let csv = std::fs::read_to_string(fresh.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 1, "{csv}");
}

#[test]
fn a_safetensors_input_of_the_wrong_shape_is_refused() {
    let net = small_net();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, tensor: &str, shape: &[usize]| {
        let n: usize = shape.iter().product();
        let data: Vec<u8> = (0..n)
            .flat_map(|i| (i as f32 * 1e-3).to_le_bytes())
            .collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &data)
                .unwrap();
        let path = dir.path().join(name);
        safetensors::serialize_to_file([(tensor, view)], &None, &path).unwrap();
        InputSpec::File(path)
    };
    // More values than the model takes (the first 3072 used to be taken silently).
    let e = load_input(&write("long.safetensors", "input", &[3, 32, 33]), &net).unwrap_err();
    assert!(matches!(e, BenchError::Input { .. }), "{e}");
    assert!(e.to_string().contains("[3, 32, 33]"), "{e}");
    // The right number of values in the wrong shape.
    let e = load_input(&write("t.safetensors", "input", &[32, 32, 3]), &net).unwrap_err();
    assert!(e.to_string().contains("shape"), "{e}");
    // A batch whose images are not the model's.
    let e = load_input(&write("b.safetensors", "inputs", &[2, 3, 16, 16]), &net).unwrap_err();
    assert!(e.to_string().contains("inputs"), "{e}");
    // The accepted forms.
    for (name, tensor, shape) in [
        ("a.safetensors", "input", vec![3, 32, 32]),
        ("c.safetensors", "input", vec![1, 3, 32, 32]),
        ("d.safetensors", "input", vec![3072]),
        ("e.safetensors", "inputs", vec![4, 3, 32, 32]),
    ] {
        let x = load_input(&write(name, tensor, &shape), &net).unwrap();
        assert_eq!(x.len(), 3072);
    }
}

#[test]
fn inputs_outside_the_fixed_point_range_are_refused_before_the_protocol() {
    let net = small_net();
    let mut x = vec![0.5f32; 3072];
    x[17] = 1e30;
    let mut o = RunOptions::new(fixture(SMALL));
    o.transport = Transport::Memory;
    o.links = vec![];
    let e = run_network(&net, &x, &o).unwrap_err();
    assert!(
        matches!(
            e,
            BenchError::Plain(PlainError::InputRange { index: 17, .. })
        ),
        "{e}"
    );
    let msg = e.to_string();
    // ℓ = 64, f = 12: |x| < 2^51.
    assert!(
        msg.contains("element 17") && msg.contains("2251799813685248"),
        "{msg}"
    );
    // A narrower ring has a narrower range.
    x[17] = 2e5;
    o.ring = Ring::new(24, 6).unwrap();
    let e = run_network(&net, &x, &o).unwrap_err();
    assert!(e.to_string().contains("131072"), "{e}");
}

/// conv (one 1×1 filter per channel) → batch norm `bn` → ReLU → flatten → linear, on [2, 2, 2].
fn tiny_bn(gamma: f32, var: f32, conv_weight: f32) -> BundleWriter {
    let graph = serde_json::json!({
        "input": {"name": "input", "shape": [2, 2, 2]},
        "ops": [
            {"op": "conv2d", "name": "conv", "input": "input", "weight": "conv.weight"},
            {"op": "batchnorm", "name": "bn", "input": "conv", "weight": "bn.weight",
             "bias": "bn.bias", "running_mean": "bn.mean", "running_var": "bn.var"},
            {"op": "relu", "name": "relu", "input": "bn"},
            {"op": "flatten", "name": "flat", "input": "relu"},
            {"op": "linear", "name": "fc", "input": "flat", "weight": "fc.weight"}
        ]
    });
    let card = small_card("tiny", "plain");
    let mut w = BundleWriter::new(serde_json::from_value(graph).unwrap(), card);
    w.f32("conv.weight", &[2, 2, 1, 1], &[conv_weight, 0.5, -0.5, 1.0]);
    w.f32("bn.weight", &[2], &[gamma, 1.0]);
    w.f32("bn.bias", &[2], &[0.0, 0.1]);
    w.f32("bn.mean", &[2], &[0.0, 0.0]);
    w.f32("bn.var", &[2], &[var, 1.0]);
    w.f32("fc.weight", &[3, 8], &[0.25; 24]);
    w
}

#[test]
fn batch_norm_that_overflows_or_weights_beyond_the_ring_are_refused_naming_the_op() {
    // Finite as stored, infinite once folded: γ / sqrt(var + eps) ≈ 3e38 / 3e-3.
    let w = tiny_bn(3e38, 0.0, 1.0);
    let b = Bundle::from_bytes(&w.to_bytes().unwrap()).unwrap();
    let e = b.network(BnPath::Clean).unwrap_err();
    assert!(matches!(e, ModelError::NonFiniteParameter { .. }), "{e}");
    assert!(e.to_string().contains("op `conv`"), "{e}");
    // Unfolded, the per-channel scale itself overflows.
    let e = b.network_unfolded(BnPath::Clean).unwrap_err();
    assert!(e.to_string().contains("op `bn`"), "{e}");

    // Near f32::MAX but finite: loads, and lowering to the ring refuses it, naming the layer.
    let w = tiny_bn(1.0, 1.0, 3e38);
    let net = Bundle::from_bytes(&w.to_bytes().unwrap())
        .unwrap()
        .network(BnPath::Clean)
        .unwrap();
    let e = FixedNetwork::lower(&net, Ring::default()).unwrap_err();
    assert!(matches!(e, PlainError::ParameterRange { .. }), "{e}");
    assert!(e.to_string().contains("layer `conv`"), "{e}");

    // `plain` no longer claims a 0.0 logit error for such a bundle: it refuses it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    w.write(&path).unwrap();
    let mut c = bin();
    c.arg("plain").arg(&path);
    fails_with(
        &run_until(c, Duration::from_secs(60)),
        &["layer `conv`", "fixed-point range"],
    );
}

#[test]
fn the_adv_path_of_a_single_bn_model_is_refused() {
    let b = Bundle::open(fixture(SMALL)).unwrap();
    assert!(!b.has_dual_bn());
    let e = b.network(BnPath::Adv).unwrap_err();
    assert!(matches!(e, ModelError::NoSuchBnPath { .. }), "{e}");
    let mut c = bin();
    c.args(["inspect", fixture(SMALL).to_str().unwrap(), "--bn", "adv"]);
    fails_with(
        &run_until(c, Duration::from_secs(60)),
        &["--bn adv", "dual-BN"],
    );
    // A dual-BN model has both.
    let dual = Bundle::open(fixture("rlnet-resnet18-w8-c10")).unwrap();
    assert!(dual.network(BnPath::Adv).is_ok());
}

#[test]
fn a_coarse_ring_prints_a_fixed_point_warning() {
    let mut c = bin();
    c.args(["run", fixture(SMALL).to_str().unwrap(), "--memory"])
        .args(["--ell", "20", "--frac", "4", "--link", "lan"]);
    let out = run_until(c, Duration::from_secs(120));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("warning: the fixed-point logits"),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    // The default ring gives no such warning on the same model.
    let mut c = bin();
    c.args([
        "run",
        fixture(SMALL).to_str().unwrap(),
        "--memory",
        "--link",
        "lan",
    ]);
    let out = run_until(c, Duration::from_secs(120));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("warning:"),
        "{}",
        text(&out.stdout)
    );
}

/// Serves `model` with `serve_args` to one `client` with `client_args`; returns the client's
/// output and its JSON result (if it wrote one).
fn serve_and_client(
    model: &Path,
    serve_args: &[&str],
    client_model: &Path,
    client_args: &[&str],
) -> (Output, Option<pibench::results::RunResult>) {
    let (mut server, addr) = spawn_serve(model, serve_args);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("client.json");
    let mut c = bin();
    c.args([
        "client",
        "--connect",
        &addr,
        "--model",
        client_model.to_str().unwrap(),
    ])
    .args(["--offline", "dealer", "--timeout", "60", "--json"])
    .arg(&json)
    .args(client_args);
    let out = run_until(c, Duration::from_secs(180));
    let _ = server.kill();
    let _ = server.wait();
    let r = std::fs::read(&json)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    (out, r)
}

#[test]
fn serve_shares_its_timings_only_when_asked() {
    let model = fixture(SMALL);
    let (out, r) = serve_and_client(&model, &[], &model, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = r.unwrap();
    assert!(r.correct);
    // Nothing from the server beyond the protocol: no seconds of its own...
    assert_eq!(r.offline.seconds_server, 0.0);
    assert!(r.layers.iter().all(|l| l.offline.seconds_server == 0.0));
    // ... yet the traffic is complete, seen from this end.
    assert!(r.offline.bytes_server_to_client > 0 && r.online.bytes_client_to_server > 0);
    assert!(text(&out.stdout).contains("did not share its timings"));

    let (out, r) = serve_and_client(&model, &["--send-timings"], &model, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(r.unwrap().offline.seconds_server > 0.0);
}

#[test]
fn a_client_runs_from_the_public_bundle() {
    let model = fixture(SMALL);
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public.safetensors");
    let mut c = bin();
    c.args(["public", model.to_str().unwrap(), "-o"])
        .arg(&public);
    let out = run_until(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // No weight of the full bundle is in it.
    let full = Bundle::open(&model).unwrap();
    let p = Bundle::open(&public).unwrap();
    assert!(p.is_public());
    for name in full.tensor_names() {
        if name.contains("mask") {
            continue;
        }
        assert!(
            p.tensor_bytes(name) != full.tensor_bytes(name),
            "tensor {name} was copied"
        );
    }
    assert!(
        std::fs::metadata(&public).unwrap().len() < std::fs::metadata(&model).unwrap().len() / 4
    );

    let (out, r) = serve_and_client(&model, &[], &public, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = r.unwrap();
    assert!(!r.oracle_checked && !r.correct);
    assert_eq!(r.logits.len(), 10);
    assert!(text(&out.stdout).contains("not checked against the oracle"));
    // Against the same server and input, the full bundle's client gets the same class.
    let (_, full_r) = serve_and_client(&model, &[], &model, &[]);
    assert_eq!(full_r.unwrap().predicted_class, r.predicted_class);

    // Everything that computes with the weights refuses it.
    for cmd in ["run", "plain", "serve"] {
        let mut c = bin();
        c.args([cmd, public.to_str().unwrap()]);
        fails_with(&run_until(c, Duration::from_secs(60)), &["public bundle"]);
    }
}

#[test]
fn readme_states_the_security_bounds_exactly() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    // The flooding bound is per inference, with its parameter; never "per coefficient".
    assert!(
        !readme.contains("per coefficient"),
        "README still says per coefficient"
    );
    assert!(readme.contains("2^−40 per inference"));
    assert!(readme.contains("--he-queries"));
    // Local truncation is stated as leakage, and the printed probability as after the fact.
    assert!(readme.contains("leak"));
    assert!(readme.contains("after-the-fact"));
    // The HE parameters' security figure and its source.
    assert!(readme.contains("218") && readme.contains("homomorphicencryption.org"));
}
