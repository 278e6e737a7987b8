//! What the command-line tests share: the fixtures, the built binary, and a `serve` process on
//! a free loopback port.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A committed fixture bundle.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"))
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
