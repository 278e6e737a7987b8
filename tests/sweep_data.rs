//! `pibench sweep --data`: every model of a sweep evaluated beside its runs, and a report that
//! shows accuracy beside latency, redrawn from the JSON files alone.

use std::path::{Path, PathBuf};
use std::process::Command;

mod cli_support;
use cli_support::cifar_test_file;

const MODELS: [&str; 2] = [
    "tests/fixtures/rlnet-resnet18-w8-c10.safetensors",
    "tests/fixtures/snl-resnet18-w8-c10.safetensors",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pibench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pibench"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("running pibench")
}

/// `pibench sweep MODELS --out OUT` of one input and one repeat without emulation, plus `extra`.
fn small_sweep(models: &[&str], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["sweep"];
    args.extend(models);
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(["--inputs", "1", "--repeats", "1", "--emulate", "none"]);
    args.extend(extra);
    pibench(&args)
}

#[test]
fn sweep_with_data_evaluates_every_model_and_reports_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_test_file(dir.path(), 6);
    let out = dir.path().join("sweep");
    let o = small_sweep(
        &MODELS,
        &out,
        &[
            "--data",
            data.to_str().unwrap(),
            "--eval-limit",
            "4",
            "--npa-limit",
            "2",
            "--corrupt",
            "gaussian_noise,contrast",
            "--severities",
            "1,5",
            "--attack-steps",
            "1",
            "--eval-ell",
            "64,40",
            "--eval-frac",
            "12",
        ],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "sweep failed: {}\n{stdout}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("4 accuracy evaluations"), "{stdout}");
    // Each model: CA and AdvA on 4 images at both rings; NPA on 2 images at the sweep's ring.
    for m in MODELS {
        let stem = Path::new(m).file_stem().unwrap().to_str().unwrap();
        let main =
            pibench::eval::job::EvalReport::read(&out.join(format!("eval/{stem}.json"))).unwrap();
        assert_eq!(main.clean.f32.n, 4);
        assert_eq!(main.adversarial.unwrap().f32.n, 4);
        assert!(main.npa.is_none());
        let rings: Vec<(u32, u32)> = main.rings.iter().map(|r| (r.ell, r.frac)).collect();
        assert_eq!(rings, vec![(64, 12), (40, 12)]);
        let npa = pibench::eval::job::EvalReport::read(&out.join(format!("eval/{stem}-npa.json")))
            .unwrap();
        assert_eq!(npa.npa.as_ref().unwrap().mean.f32.n, 2 * 2 * 2);
        assert!(npa.adversarial.is_none());
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("## At a glance") && md.contains("## Accuracy"),
        "{md}"
    );
    assert!(md.contains("--data") && md.contains("--npa-limit 2"));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("ca_pi,ca_pi_ci95_lo"));
    assert!(out.join("accuracy_vs_online_lan.svg").exists());
    assert!(out.join("accuracy_vs_ring.svg").exists());

    // The report is redrawn from the JSON files alone, accuracies included.
    std::fs::remove_file(out.join("report.md")).unwrap();
    let o = pibench(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = std::fs::read_to_string(out.join("report.md")).unwrap();
    let table =
        |s: &str| s[s.find("## Accuracy").unwrap()..s.find("## Plots").unwrap()].to_string();
    assert_eq!(table(&again), table(&md));

    // --force clears the earlier evaluations with the runs.
    let o = small_sweep(&MODELS[..1], &out, &["--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_dir(out.join("eval")).unwrap().count(), 0);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(!md.contains("## At a glance"));
}

/// `report.md` without the line that says when it was generated.
fn without_date(md: &str) -> String {
    md.lines()
        .filter(|l| !l.starts_with("Generated "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn report_redraws_what_the_sweep_wrote_and_its_command_reruns_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    // Two repeats of two models: the sweep measures them models innermost, while their files
    // sort model by model.
    let mut args = vec!["sweep"];
    args.extend(MODELS);
    args.extend([
        "--out",
        out.to_str().unwrap(),
        "--inputs",
        "1",
        "--repeats",
        "2",
    ]);
    args.extend([
        "--emulate",
        "none",
        "--garbling",
        "half-gates",
        "--ot",
        "iknp",
    ]);
    args.extend(["--link", "wan", "--link", "100mbit,20ms"]);
    let o = pibench(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let (csv, md, costmodel) = (
        read("results.csv"),
        read("report.md"),
        read("costmodel.json"),
    );
    // The command with the options that differ from the defaults (two repeats do not).
    let command = format!(
        "pibench sweep {} --out {} --inputs 1 --link wan --link 100mbit,20ms --emulate none \
         --garbling half-gates --ot iknp",
        MODELS.join(" "),
        out.display()
    );
    assert!(md.contains(&format!("```sh\n{command}\n```")), "{md}");
    assert!(!md.contains("do not record the command"), "{md}");
    let rows: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "rlnet-resnet18-w8-c10",
            "rlnet-resnet18-w8-c10",
            "snl-resnet18-w8-c10",
            "snl-resnet18-w8-c10"
        ]
    );

    let o = pibench(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read("results.csv"), csv);
    assert_eq!(read("costmodel.json"), costmodel);
    assert_eq!(without_date(&read("report.md")), without_date(&md));

    // The recorded command is one the command line takes, and it measures the same runs.
    let words: Vec<&str> = command.split(' ').skip(1).chain(["--force"]).collect();
    let o = pibench(&words);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = read("results.csv");
    assert_eq!(again.lines().count(), csv.lines().count());
    let forced = command.replacen(" --inputs", " --force --inputs", 1);
    assert!(read("report.md").contains(&format!("```sh\n{forced}\n```")));
}
