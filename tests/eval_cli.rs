//! `pibench eval` and `eval-merge` as a user runs them: shards merge into exactly the numbers of
//! one unsharded run, a gap between shards is refused, and the JSON carries every field the
//! results schema promises.

use std::path::{Path, PathBuf};
use std::process::Command;

const MODEL: &str = "tests/fixtures/rlnet-resnet18-w8-c10.safetensors";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A CIFAR-10 binary test file of `n` seeded random images.
fn cifar_file(dir: &Path, n: usize) -> PathBuf {
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

fn pibench(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pibench"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("running pibench");
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn shards_merge_exactly_and_gaps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path(), 5);
    let data = data.to_str().unwrap();
    let common = [
        MODEL,
        "--data",
        data,
        "--corrupt",
        "gaussian_noise,pixelate",
        "--severities",
        "1,5",
        "--steps",
        "2",
        "--ell",
        "64,37",
        "--batch",
        "2",
    ];
    let run = |extra: &[&str], out: &Path| {
        let mut args: Vec<&str> = vec!["eval"];
        args.extend_from_slice(&common);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--json", out.to_str().unwrap()]);
        let o = pibench(&args);
        assert!(
            o.status.success(),
            "eval {extra:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let whole = dir.path().join("whole.json");
    run(&[], &whole);
    let mut shards = Vec::new();
    for k in 1..=3 {
        let p = dir.path().join(format!("shard-{k}.json"));
        run(&["--shard", &format!("{k}/3")], &p);
        shards.push(p);
    }
    let merged = dir.path().join("merged.json");
    let mut args = vec!["eval-merge"];
    let names: Vec<&str> = shards.iter().map(|p| p.to_str().unwrap()).collect();
    args.extend_from_slice(&names);
    args.extend_from_slice(&["--json", merged.to_str().unwrap()]);
    let o = pibench(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let (w, m) = (json(&whole), json(&merged));
    for key in [
        "counts",
        "clean",
        "npa",
        "adversarial",
        "rings",
        "wrapped",
        "range",
    ] {
        assert_eq!(
            w[key], m[key],
            "merged `{key}` differs from the unsharded run"
        );
    }
    // The schema: three arithmetics with accuracy, ci95 and n in each accuracy.
    for part in ["clean", "npa", "adversarial"] {
        for arith in ["f32", "fixed", "pi"] {
            let a = &w[part][arith];
            assert!(a["accuracy"].is_number(), "{part}.{arith}.accuracy");
            assert_eq!(a["ci95"].as_array().map(Vec::len), Some(2));
            assert!(a["n"].as_u64().unwrap() > 0, "{part}.{arith}.n");
        }
    }
    assert_eq!(w["clean"]["f32"]["n"], 5);
    // Two corruptions × two severities × five images.
    assert_eq!(w["npa"]["f32"]["n"], 20);
    assert!(w["npa"]["per_corruption"]["pixelate"]["5"]["pi"]["accuracy"].is_number());
    assert_eq!(w["rings"].as_array().map(Vec::len), Some(2));

    // A missing middle shard is a gap, not a smaller data set.
    let o = pibench(&["eval-merge", names[0], names[2]]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("gap"), "{err}");
}

#[test]
fn bad_options_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path(), 2);
    let data = data.to_str().unwrap();
    for (args, want) in [
        (vec!["--shard", "4/3"], "not K/N"),
        (vec!["--corrupt", "sunburn"], "sunburn"),
        (vec!["--ell", "16", "--frac", "12"], "no valid ring"),
        (vec!["--eps", "eight"], "fraction"),
        (vec!["--severities", "6"], "severit"),
    ] {
        let mut all = vec!["eval", MODEL, "--data", data];
        all.extend_from_slice(&args);
        let o = pibench(&all);
        assert!(!o.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
