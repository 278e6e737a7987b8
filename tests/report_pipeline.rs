//! The report pipeline on synthetic runs: CSV, cost model, plots and report.md.

mod report_support;

use std::path::Path;

use pibench::net::link::Link;
use pibench::report::costmodel::{CostModel, Workload};
use pibench::report::{write_report, ReportError, ReportOptions, Sweep};
use report_support::{run, spec, sweep_runs, Truth, TRUTH};

/// Split one CSV line on commas (the synthetic names contain no quotes or commas).
fn fields(line: &str) -> Vec<&str> {
    line.split(',').collect()
}

#[test]
fn csv_has_one_row_per_run_with_the_right_columns() {
    let runs = sweep_runs(3, 0.03);
    let sweep = Sweep::from_results(runs.clone()).unwrap();
    let csv = sweep.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), runs.len() + 1, "header plus one row per run");
    let header = fields(lines[0]);
    for col in [
        "model",
        "method",
        "budget",
        "bn_path",
        "backend",
        "ell",
        "frac",
        "client_storage_bytes",
        "peak_rss_bytes",
        "correct",
        "lan_offline_s",
        "lan_online_s",
        "wan_online_s",
        "mobile_offline_s",
        "wan_emulated_online_s",
    ] {
        assert!(header.contains(&col), "missing column {col}");
    }
    // Each phase's seconds, bytes each way and rounds.
    for phase in ["offline", "online"] {
        for quantity in ["s", "bytes_c2s", "bytes_s2c", "rounds"] {
            let col = format!("{phase}_{quantity}");
            assert!(header.contains(&col.as_str()), "missing column {col}");
        }
    }
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    // One row per run, in report order.
    for (line, r) in lines[1..].iter().zip(&sweep.runs) {
        let f = fields(line);
        assert_eq!(f.len(), header.len(), "ragged row: {line}");
        assert_eq!(f[col("model")], r.model.card.name.as_deref().unwrap());
        assert_eq!(f[col("budget")], r.model.budget.to_string());
        assert_eq!(f[col("backend")], "dealer");
        assert_eq!(f[col("ell")], "64");
        assert_eq!(
            f[col("offline_bytes_s2c")],
            r.offline.bytes_server_to_client.to_string()
        );
        let online: f64 = f[col("online_s")].parse().unwrap();
        assert!((online - r.online.seconds).abs() < 1e-6);
        let wan: f64 = f[col("wan_online_s")].parse().unwrap();
        let want = r
            .links
            .iter()
            .find(|l| l.link.name == "wan" && !l.emulated)
            .unwrap();
        assert!((wan - want.online_seconds).abs() < 1e-6);
        // Emulated columns are empty for runs without an emulated measurement.
        let has_emu = r.links.iter().any(|l| l.emulated);
        assert_eq!(f[col("wan_emulated_online_s")].is_empty(), !has_emu);
    }
}

#[test]
fn groups_by_model_and_bn_path_with_medians() {
    let runs = sweep_runs(3, 0.05);
    let sweep = Sweep::from_results(runs.clone()).unwrap();
    // 8 bundles, one of them also run on its adversarial BN path.
    assert_eq!(sweep.groups.len(), 9);
    for g in &sweep.groups {
        assert_eq!(g.runs.len(), 3);
        let secs: Vec<f64> = sweep.runs_of(g).map(|r| r.online.seconds).collect();
        let mut sorted = secs.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(g.online.seconds.median, sorted[1]);
        assert_eq!(g.online.seconds.min, sorted[0]);
        assert_eq!(g.online.seconds.max, sorted[2]);
        assert!(g.link("wan", false).is_some() && g.link("wan", true).is_some());
        assert_eq!(g.layers.len(), sweep.runs[g.runs[0]].layers.len());
    }
    let adv = sweep
        .groups
        .iter()
        .filter(|g| g.key.bn_path == "adv")
        .count();
    assert_eq!(adv, 1);
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn cost_model_recovers_known_coefficients() {
    let runs = sweep_runs(2, 0.0);
    let sweep = Sweep::from_results(runs).unwrap();
    let m = CostModel::fit(&sweep).unwrap();
    let t = TRUTH;
    for (fit, fixed, per_relu) in [
        (&m.offline_seconds, t.off_fixed, t.off_per_relu),
        (&m.online_seconds, t.on_fixed, t.on_per_relu),
        (&m.offline_bytes_c2s, t.off_c2s_fixed, t.off_c2s_per_relu),
        (&m.offline_bytes_s2c, t.off_s2c_fixed, t.off_s2c_per_relu),
        (&m.online_bytes_c2s, t.on_c2s_fixed, t.on_c2s_per_relu),
        (&m.online_bytes_s2c, t.on_s2c_fixed, t.on_s2c_per_relu),
    ] {
        assert!(close(fit.fixed, fixed, 1e-6), "{fit:?} vs fixed {fixed}");
        assert!(
            close(fit.per_relu, per_relu, 1e-6),
            "{fit:?} vs per ReLU {per_relu}"
        );
        assert_eq!(fit.per_mac, 0.0, "one MAC count: no MAC term");
        assert!(fit.r2 > 0.999_999);
        assert!(fit.max_rel_error < 1e-6, "{fit:?}");
    }
    // All synthetic models keep ReLUs in all 17 sites: rounds are a constant.
    assert!(close(
        m.online_rounds.eval(&Workload {
            relu_sites: 17,
            ..Workload::default()
        }),
        t.on_rounds_fixed + 17.0 * t.on_rounds_per_site,
        1e-9
    ));

    // A bundle the model has not seen, on a custom link: the prediction is the formula.
    let w = Workload {
        kept_relus: 80_000,
        macs: 555_000_000,
        relu_sites: 17,
        linear_layers: 18,
    };
    let link = Link::parse("100mbit,20ms").unwrap();
    let p = m.predict(&w, &link);
    let b = 80_000.0;
    let want_online = (t.on_fixed + t.on_per_relu * b)
        + (t.on_c2s_fixed + t.on_c2s_per_relu * b) * 8.0 / 100e6
        + (t.on_s2c_fixed + t.on_s2c_per_relu * b) * 8.0 / 100e6
        + (t.on_rounds_fixed + 17.0 * t.on_rounds_per_site) * 0.020 / 2.0;
    assert!(
        close(p.online_seconds, want_online, 1e-6),
        "{p:?} vs {want_online}"
    );
    let want_offline = (t.off_fixed + t.off_per_relu * b)
        + (t.off_c2s_fixed + t.off_c2s_per_relu * b) * 8.0 / 100e6
        + (t.off_s2c_fixed + t.off_s2c_per_relu * b) * 8.0 / 100e6
        + (t.off_rounds_fixed + 17.0 * t.off_rounds_per_site) * 0.020 / 2.0;
    assert!(close(p.offline_seconds, want_offline, 1e-6));

    // Its checks against the sweep's own (noiseless) runs are exact, in and out of sample.
    let checks = m.check(&sweep);
    assert!(!checks.is_empty());
    for c in &checks {
        if c.quantity.contains("emulated") {
            // The synthetic emulated runs are 3–4% slower than the link model.
            assert!(c.rel_error().abs() < 0.05, "{c:?}");
        } else {
            assert!(c.rel_error().abs() < 1e-6, "{c:?}");
            assert!(c.rel_error_held_out().unwrap().abs() < 1e-6, "{c:?}");
        }
    }
}

#[test]
fn cost_model_fits_a_mac_term_when_mac_counts_vary() {
    let t = Truth {
        on_per_mac: 1.5e-9,
        ..TRUTH
    };
    let mut runs = Vec::new();
    for (i, (budget, macs)) in [
        (20_000u64, 300_000_000u64),
        (50_000, 555_000_000),
        (80_000, 400_000_000),
        (120_000, 900_000_000),
        (150_000, 700_000_000),
    ]
    .into_iter()
    .enumerate()
    {
        let s = report_support::Spec {
            macs,
            ..spec(&format!("m{i}"), "rlnet", budget)
        };
        runs.push(run(&s, &t, 0, 0.0));
    }
    let m = CostModel::fit(&Sweep::from_results(runs).unwrap()).unwrap();
    let f = &m.online_seconds;
    assert!(f.terms.contains(&"mac".to_string()), "{f:?}");
    assert!(close(f.per_mac, 1.5e-9, 1e-6), "{f:?}");
    assert!(close(f.per_relu, t.on_per_relu, 1e-6), "{f:?}");
    assert!(close(f.fixed, t.on_fixed, 1e-6), "{f:?}");
}

#[test]
fn cost_model_reports_its_error_on_noisy_runs() {
    let runs = sweep_runs(3, 0.05);
    let m = CostModel::fit(&Sweep::from_results(runs.clone()).unwrap()).unwrap();
    // Medians are fitted; individual runs deviate by up to the 5% jitter, which the reported
    // error must reflect (neither hidden nor inflated).
    let e = m.online_seconds.max_rel_error;
    assert!(e > 0.005 && e < 0.12, "max relative error {e}");
    assert!(m.online_seconds.median_rel_error <= e);
    let printed = m.to_string();
    assert!(printed.contains("online seconds") && printed.contains("R²"));
}

#[test]
fn cost_model_needs_two_budgets_and_round_trips_through_json() {
    let one = vec![run(&spec("only", "rlnet", 50_000), &TRUTH, 0, 0.0)];
    let err = CostModel::fit(&Sweep::from_results(one).unwrap()).unwrap_err();
    assert!(matches!(err, ReportError::CostModel(_)), "{err}");

    let m = CostModel::fit(&Sweep::from_results(sweep_runs(1, 0.0)).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("costmodel.json");
    m.save(&p).unwrap();
    assert_same_model(&CostModel::load(&p).unwrap(), &m);
    std::fs::write(&p, "{ not json").unwrap();
    assert!(matches!(
        CostModel::load(&p),
        Err(ReportError::Parse { .. })
    ));
}

/// Two cost models agree up to JSON's float round trip (the last bit of a few coefficients).
fn assert_same_model(a: &CostModel, b: &CostModel) {
    assert_eq!(
        (a.models, a.runs, &a.backend),
        (b.models, b.runs, &b.backend)
    );
    for ((na, fa), (_, fb)) in a.fits().iter().zip(b.fits().iter()) {
        assert_eq!(fa.terms, fb.terms, "{na}");
        for (x, y) in [
            (fa.fixed, fb.fixed),
            (fa.per_relu, fb.per_relu),
            (fa.per_mac, fb.per_mac),
            (fa.per_site, fb.per_site),
            (fa.max_rel_error, fb.max_rel_error),
        ] {
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(1e-300),
                "{na}: {x} vs {y}"
            );
        }
    }
}

fn assert_plot_files(dir: &Path, stem: &str, png: bool) {
    let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
    assert!(svg.contains("<svg") && svg.len() > 1000, "{stem}.svg");
    if png {
        let bytes = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
            "{stem}.png"
        );
    }
}

#[test]
fn write_report_writes_everything() {
    let runs = sweep_runs(3, 0.03);
    let keep = std::env::var_os("PIBENCH_REPORT_DEMO_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep
        .as_ref()
        .map_or(tmp.path().to_path_buf(), std::path::PathBuf::from);
    let opts = ReportOptions::default();
    let font = Path::new(&opts.font_path).exists();
    let summary = write_report(&runs, &dir, &opts).unwrap();

    assert!(summary.results_csv.exists());
    let json = summary.costmodel_json.as_ref().expect("cost model fitted");
    assert_same_model(
        &CostModel::load(json).unwrap(),
        summary.cost_model.as_ref().unwrap(),
    );

    let stems: Vec<&str> = summary.plots.iter().map(|p| p.stem.as_str()).collect();
    for stem in [
        "latency_vs_budget",
        "communication_vs_budget",
        "layer_breakdown",
        "methods_at_equal_budget",
        "accuracy_vs_latency",
    ] {
        assert!(stems.contains(&stem), "plot {stem} missing: {stems:?}");
        assert_plot_files(&dir, stem, font);
    }

    let md = std::fs::read_to_string(&summary.report_md).unwrap();
    for r in &runs {
        assert!(md.contains(r.model.card.name.as_deref().unwrap()));
    }
    for p in &summary.plots {
        let file = p.png.as_ref().unwrap_or(&p.svg);
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            md.contains(&format!("]({name})")),
            "report.md does not embed {name}"
        );
    }
    assert!(
        md.contains("trusted dealer"),
        "dealer backend must be called out"
    );
    assert!(md.contains("ℓ = 64, f = 12"));
    assert!(md.contains("## How to reproduce") && md.contains("cargo run --release"));
    // The synthetic runs record no command: the generic one, and a note that says so.
    assert!(
        md.contains(&format!(
            "{n} of the {n} runs do not record the command",
            n = runs.len()
        )),
        "{md}"
    );
    assert!(md.contains(&format!("pibench report {}", dir.display())));
    assert!(md.contains("## Cost model") && md.contains("held-out error"));
    assert!(md.contains("Test CPU @ 2.0GHz"));
}

#[test]
fn report_without_comparisons_or_accuracies_says_what_it_skipped() {
    let runs: Vec<_> = [20_000, 60_000]
        .iter()
        .map(|&b| run(&spec(&format!("rlnet-{b}"), "rlnet", b), &TRUTH, 0, 0.0))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let s = write_report(&runs, dir.path(), &ReportOptions::default()).unwrap();
    let stems: Vec<&str> = s.plots.iter().map(|p| p.stem.as_str()).collect();
    assert!(!stems.contains(&"methods_at_equal_budget"));
    assert!(!stems.contains(&"accuracy_vs_latency"));
    let md = std::fs::read_to_string(&s.report_md).unwrap();
    assert!(md.contains("Method comparison skipped"));
    assert!(md.contains("Accuracy plot skipped"));

    // One budget only: no cost model, and the report says so.
    let one = vec![run(&spec("solo", "rlnet", 30_000), &TRUTH, 0, 0.0)];
    let s = write_report(&one, dir.path(), &ReportOptions::default()).unwrap();
    assert!(s.costmodel_json.is_none());
    let md = std::fs::read_to_string(&s.report_md).unwrap();
    assert!(md.contains("Cost model not fitted"));
}

#[test]
fn empty_results_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_report(&[], dir.path(), &ReportOptions::default()).unwrap_err();
    assert!(matches!(err, ReportError::NoResults));
    assert!(matches!(
        Sweep::load_dir(dir.path()),
        Err(ReportError::NoResultsIn(_))
    ));
}

#[test]
fn load_dir_reads_run_files_and_rejects_bad_ones() {
    let runs = sweep_runs(2, 0.02);
    let dir = tempfile::tempdir().unwrap();
    for (i, r) in runs.iter().enumerate() {
        let p = dir.path().join(format!("run-{i:03}.json"));
        std::fs::write(p, serde_json::to_string(r).unwrap()).unwrap();
    }
    // An array file and a non-JSON file are fine; costmodel.json is not a run.
    std::fs::write(
        dir.path().join("batch.json"),
        serde_json::to_string(&runs[..2]).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    std::fs::write(dir.path().join("costmodel.json"), "{}").unwrap();
    let sweep = Sweep::load_dir(dir.path()).unwrap();
    assert_eq!(sweep.runs.len(), runs.len() + 2);
    assert_eq!(sweep.groups.len(), 9);

    std::fs::write(dir.path().join("broken.json"), "{\"pibench_version\": 1}").unwrap();
    match Sweep::load_dir(dir.path()) {
        Err(ReportError::Parse { path, .. }) => assert!(path.ends_with("broken.json")),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn a_single_model_without_links_or_staged_layer_names_still_reports() {
    let mut r = run(&spec("toy", "dense", 4_096), &TRUTH, 0, 0.0);
    r.links.clear();
    for (i, l) in r.layers.iter_mut().enumerate() {
        l.name = format!("l{i}");
    }
    r.layers.truncate(12);
    let keep = std::env::var_os("PIBENCH_REPORT_DEMO_DIR_TOY");
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep
        .as_ref()
        .map_or(tmp.path().to_path_buf(), std::path::PathBuf::from);
    let s = write_report(&[r], &dir, &ReportOptions::default()).unwrap();
    let stems: Vec<&str> = s.plots.iter().map(|p| p.stem.as_str()).collect();
    assert_eq!(
        stems,
        [
            "latency_vs_budget",
            "communication_vs_budget",
            "layer_breakdown"
        ]
    );
    let md = std::fs::read_to_string(&s.report_md).unwrap();
    assert!(md.contains("toy") && !md.contains("## Links"));
}

/// Two methods at the same budgets send the same bytes, so the later-drawn line covers the
/// other: the communication plot says so, and says nothing when the lines differ.
#[test]
fn communication_plot_names_lines_hidden_under_others() {
    let budgets = [50_000, 100_000, 150_000];
    let mut runs = Vec::new();
    for (method, b) in ["rlnet", "senet"]
        .into_iter()
        .flat_map(|m| budgets.map(|b| (m, b)))
    {
        runs.push(run(
            &spec(&format!("{method}-{b}"), method, b),
            &TRUTH,
            0,
            0.0,
        ));
    }
    let note = |runs: &[pibench::results::RunResult]| {
        let dir = tempfile::tempdir().unwrap();
        write_report(runs, dir.path(), &ReportOptions::default()).unwrap();
        std::fs::read_to_string(dir.path().join("communication_vs_budget.svg")).unwrap()
    };
    let svg = note(&runs);
    assert!(
        svg.contains("RLNet&apos;s lines lie under SeNet&apos;s")
            || svg.contains("RLNet's lines lie under SeNet's"),
        "no note on the hidden RLNet line"
    );
    // Different budgets: every line shows, no note.
    let svg = note(&sweep_runs(1, 0.0));
    assert!(!svg.contains("lie under"));
}
