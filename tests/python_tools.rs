//! The Python tools' own tests, run by `cargo test --release` so that CI runs them:
//! `tools/test_export.py` (the checkpoint exporter), `tools/rlnet/test_rlnet.py` (the RLNet /
//! SeNet training pipeline, whose end-to-end test loads the bundles it exports with this crate's
//! `pibench` binary, passed as `PIBENCH_BIN`), `tools/test_relu_rounds.py` (the alternated
//! `relu-bench` comparison, which runs that binary too) and `tools/test_sched_timeline.py` (the
//! scheduler-trace reader, which reads a result of that binary).
//!
//! They need Python 3 with the packages of `tools/requirements.txt` (`.ci/run` installs them).
//! When Python or a package is missing these tests fail with the exact pip command to run; they
//! never skip. `PIBENCH_PYTHON` names another interpreter than `python3`.

use std::path::Path;
use std::process::Command;

const REQUIREMENTS: &str = "tools/requirements.txt";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> String {
    std::env::var("PIBENCH_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn tail(text: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Fails with the install command unless the interpreter imports every required package.
fn require_packages() {
    let py = python();
    let probe = Command::new(&py)
        .args(["-c", "import torch, numpy, sklearn, safetensors"])
        .current_dir(root())
        .output();
    let install = format!("{py} -m pip install -r {REQUIREMENTS}");
    match probe {
        Err(e) => panic!(
            "cannot run `{py}` ({e}): the Python tool tests need Python 3 and then:\n    {install}"
        ),
        Ok(o) if !o.status.success() => panic!(
            "the Python tool tests need packages that `{py}` cannot import:\n{}\ninstall them with:\n    {install}",
            tail(&o.stderr, 3)
        ),
        Ok(_) => {}
    }
}

fn run_python_tests(script: &str) {
    require_packages();
    let out = Command::new(python())
        .arg(script)
        .current_dir(root())
        .env("PIBENCH_BIN", env!("CARGO_BIN_EXE_pibench"))
        .output()
        .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}\n{}",
        out.status,
        tail(&out.stdout, 40),
        tail(&out.stderr, 40)
    );
}

#[test]
fn exporter_python_tests_pass() {
    run_python_tests("tools/test_export.py");
}

#[test]
fn rlnet_pipeline_python_tests_pass() {
    run_python_tests("tools/rlnet/test_rlnet.py");
}

#[test]
fn relu_rounds_python_tests_pass() {
    run_python_tests("tools/test_relu_rounds.py");
}

#[test]
fn sched_timeline_python_tests_pass() {
    run_python_tests("tools/test_sched_timeline.py");
}
