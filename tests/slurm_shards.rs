//! Sharded evaluation through a real Slurm job array (DESIGN.md "Beyond one machine"): the
//! launcher `tools/slurm/pibench-eval-array.sh` runs `pibench eval --shard K/3` as three array
//! tasks on a one-node cluster (`tools/slurm/local-cluster.sh`), then `pibench eval-merge` in a
//! job that depends on them; the merged JSON must carry exactly the numbers of one unsharded
//! `pibench eval` run.
//!
//! Needs Slurm and MUNGE (`apt-get install slurm-wlm munge`; `.ci/run` installs them) and root,
//! as the local cluster runs its daemons as root. Without them the test fails, saying so: it is
//! never skipped.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The model evaluated: small (ResNet18 at width 8, RLNet dual BN with ReLU masks), so both the
/// unsharded run and the three shards take seconds; a CIFAR-10 input like the bundled models.
const MODEL: &str = "tests/fixtures/rlnet-resnet18-w8-c10.safetensors";
/// Shards, and test-set images: 7 does not divide by 3, so the shards are uneven
/// (`[0,2)`, `[2,4)`, `[4,7)`), as they are for most N.
const SHARDS: usize = 3;
const IMAGES: usize = 7;
/// Generated test set written when the committed digits set is absent (more than `IMAGES`, so
/// `--limit` matters).
const GENERATED_IMAGES: usize = 16;
/// Longest wait for the cluster to run everything (the work itself takes seconds).
const DEADLINE: Duration = Duration::from_secs(900);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo().join("tools/slurm").join(name)
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The local cluster, started for this test and stopped again when the test ends (only if it was
/// not already running: a cluster someone started by hand is left as it was).
struct LocalCluster {
    conf: PathBuf,
    started_here: bool,
}

impl LocalCluster {
    fn start() -> LocalCluster {
        let cluster = |arg: &str| {
            Command::new(script("local-cluster.sh"))
                .arg(arg)
                .output()
                .unwrap_or_else(|e| panic!("cannot run tools/slurm/local-cluster.sh {arg}: {e}"))
        };
        let running = cluster("status").status.success();
        if !running {
            let out = cluster("start");
            match out.status.code() {
                Some(0) => {}
                Some(2) => panic!(
                    "Slurm is not installed, and this test needs it (it is not skipped).\n\
                     Install it with: apt-get update && apt-get install -y slurm-wlm munge\n\
                     (.ci/run does this).\n{}",
                    show(&out)
                ),
                _ => panic!(
                    "the local Slurm cluster did not start (it runs its daemons as root; \
                     logs in its state directory, see tools/slurm/local-cluster.sh):\n{}",
                    show(&out)
                ),
            }
        }
        let env = cluster("env");
        let conf = String::from_utf8_lossy(&env.stdout)
            .trim()
            .strip_prefix("export SLURM_CONF=")
            .unwrap_or_else(|| panic!("unexpected `local-cluster.sh env` output:\n{}", show(&env)))
            .to_string();
        LocalCluster {
            conf: PathBuf::from(conf),
            started_here: !running,
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.started_here {
            let _ = Command::new(script("local-cluster.sh"))
                .arg("stop")
                .output();
        }
    }
}

/// The test set: the committed digits set if present, else a CIFAR-10 binary file written here
/// (pseudo-random pixels: the merge must be exact whatever the accuracy).
fn test_set(tmp: &Path) -> PathBuf {
    let digits = repo().join("tests/fixtures/data/digits32");
    if digits.is_dir() {
        return digits;
    }
    let dir = tmp.join("cifar-10-batches-bin");
    fs::create_dir_all(&dir).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut bytes = Vec::with_capacity(GENERATED_IMAGES * 3073);
    for i in 0..GENERATED_IMAGES {
        bytes.push((i % 10) as u8);
        for _ in 0..3072 {
            // xorshift64: reproducible bytes without a seeded RNG dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push((state >> 56) as u8);
        }
    }
    fs::write(dir.join("test_batch.bin"), bytes).unwrap();
    dir
}

/// The `pibench eval` flags shared by the unsharded run and every shard.
fn eval_flags(data: &Path) -> Vec<String> {
    vec![
        repo().join(MODEL).display().to_string(),
        "--data".into(),
        data.display().to_string(),
        "--limit".into(),
        IMAGES.to_string(),
        // PGD's adversarial images come from batched f32 GEMMs whose summation order depends on
        // the batch's composition: counts merge bit for bit when every run batches alike.
        "--batch".into(),
        "1".into(),
    ]
}

/// Every leaf of a JSON document by its path (`a.b[2].c`).
fn leaves(v: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                leaves(x, format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, format!("{path}[{i}]"), out);
            }
        }
        _ => {
            out.insert(path, v.clone());
        }
    }
}

/// Leaves that differ between two runs of the same evaluation: how long it took and on what
/// (a key with one of these words, `_`-separated: `seconds`, `wall_s`, `threads`...).
fn circumstantial(path: &str) -> bool {
    const WORDS: [&str; 14] = [
        "s",
        "ms",
        "seconds",
        "secs",
        "elapsed",
        "wall",
        "time",
        "timestamp",
        "started",
        "finished",
        "date",
        "threads",
        "cores",
        "host",
    ];
    let key = path.rsplit('.').next().unwrap_or(path);
    let key = key.split('[').next().unwrap_or(key).to_ascii_lowercase();
    key.split('_').any(|w| WORDS.contains(&w))
}

#[test]
fn slurm_array_shards_merge_to_the_unsharded_result() {
    let cluster = LocalCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = test_set(tmp.path());
    let pibench = env!("CARGO_BIN_EXE_pibench");
    let flags = eval_flags(&data);

    let unsharded = tmp.path().join("unsharded.json");
    let out = Command::new(pibench)
        .arg("eval")
        .args(&flags)
        .arg("--json")
        .arg(&unsharded)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unsharded pibench eval failed:\n{}",
        show(&out)
    );

    let out_dir = tmp.path().join("slurm");
    let mut launcher = Command::new(script("pibench-eval-array.sh"))
        .env("SLURM_CONF", &cluster.conf)
        .args(["--shards", &SHARDS.to_string(), "--out"])
        .arg(&out_dir)
        .args(["--pibench", pibench, "--wait", "--poll", "0.5", "--"])
        .args(&flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while launcher.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = launcher.kill();
            let queue = Command::new("squeue")
                .env("SLURM_CONF", &cluster.conf)
                .output();
            panic!(
                "the Slurm jobs did not finish within {DEADLINE:?}; queue:\n{}",
                queue.map(|q| show(&q)).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = launcher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Slurm launcher failed:\n{}",
        show(&out)
    );

    let read = |p: &Path| -> Value {
        let text = fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    for k in 1..=SHARDS {
        let shard = out_dir.join(format!("shard-{k}.json"));
        assert!(
            shard.is_file(),
            "array task {k} left no {}",
            shard.display()
        );
        read(&shard);
    }
    let mut want = BTreeMap::new();
    leaves(&read(&unsharded), String::new(), &mut want);
    let mut got = BTreeMap::new();
    leaves(&read(&out_dir.join("merged.json")), String::new(), &mut got);
    want.retain(|p, _| !circumstantial(p));
    got.retain(|p, _| !circumstantial(p));

    let only_want: Vec<_> = want.keys().filter(|p| !got.contains_key(*p)).collect();
    let only_got: Vec<_> = got.keys().filter(|p| !want.contains_key(*p)).collect();
    assert!(
        only_want.is_empty() && only_got.is_empty(),
        "the merged JSON has another shape than the unsharded one: only unsharded {only_want:?}, \
         only merged {only_got:?}"
    );
    let differ: Vec<String> = want
        .iter()
        .filter(|(p, v)| got[*p] != **v)
        .map(|(p, v)| format!("{p}: unsharded {v}, merged {}", got[p]))
        .collect();
    assert!(
        differ.is_empty(),
        "merged ≠ unsharded:\n{}",
        differ.join("\n")
    );

    // Not a vacuous equality: images were counted, and every one of them.
    let counts: Vec<u64> = want.values().filter_map(Value::as_u64).collect();
    assert!(!counts.is_empty(), "no counts in the eval JSON");
    let judged: Vec<u64> = want
        .iter()
        .filter(|(p, _)| p.ends_with(".n"))
        .filter_map(|(_, v)| v.as_u64())
        .collect();
    assert!(
        judged.iter().any(|&n| n > 0),
        "no image was judged (no `n` > 0 among {} counts)",
        counts.len()
    );
}
