//! What the command-line tests share: the fixtures, the card of a small in-test bundle, the
//! built binary, and a `serve` process on a free loopback port.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A committed fixture bundle.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"))
}

/// The fixture bundles every secure and simulated test runs: RLNet (dual BN), SNL and all-ReLU
/// ResNet18s and two WideResNets.
pub const FIXTURES: [&str; 5] = [
    "rlnet-resnet18-w8-c10",
    "snl-resnet18-w8-c10",
    "plain-resnet18-w8-c10",
    "rlnet-wrn16-2-b4-c10",
    "snl-wrn16-2-b4-c10",
];

/// A CIFAR-10 binary test file `dir/test_batch.bin` of `n` images with labels `i mod 10` and
/// reproducible pseudo-random pixels (xorshift64: tests of exactness, not of accuracy).
pub fn cifar_test_file(dir: &Path, n: usize) -> PathBuf {
    let mut bytes = Vec::with_capacity(n * 3073);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for i in 0..n {
        bytes.push((i % 10) as u8);
        for _ in 0..3072 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            bytes.push((s >> 56) as u8);
        }
    }
    let path = dir.join("test_batch.bin");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The card of a small network built in a test: input [2, 2, 2], 3 classes.
pub fn small_card(architecture: &str, method: &str) -> pibench::model::ModelCard {
    pibench::model::ModelCard {
        architecture: architecture.into(),
        dataset: "test".into(),
        input_shape: vec![2, 2, 2],
        classes: 3,
        method: method.into(),
        ..Default::default()
    }
}

/// The built `pibench` binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pibench"))
}

/// `pibench serve MODEL` on a free loopback port with a 60 s time-out and the `dealer` backend,
/// plus `extra` flags; returns the process and its address.
pub fn spawn_serve(model: &Path, extra: &[&str]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = bin()
        .args(["serve", model.to_str().unwrap(), "--listen", &addr])
        .args(["--timeout", "60", "--offline", "dealer"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, addr)
}
