//! The accuracy side of a report, drawn from `eval/*.json` beside the runs: the at-a-glance
//! table, the accuracy section, the CSV columns and the figures; and the saving a smaller ring
//! shows against a cost model.

mod report_support;

use std::path::{Path, PathBuf};

use pibench::eval::job::EvalReport;
use pibench::report::accuracy::Accuracies;
use pibench::report::saving::ring_saving;
use pibench::report::{clear_report_files, write_report, CostModel, ReportOptions, Sweep};
use pibench::ring::Ring;
use report_support::*;

/// A committed evaluation (a digits model, 20 images, rings ℓ 64/32 × f 12/8) as the
/// evaluation of `model`.
fn eval_of(fixture: &str, model: &str) -> EvalReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/report_support")
        .join(fixture);
    let mut r = EvalReport::read(&path).unwrap();
    r.options.model = PathBuf::from(model);
    r
}

fn runs() -> Vec<pibench::results::RunResult> {
    let specs = [
        spec("rlnet-a", "rlnet", 50_000),
        spec("senet-a", "senet", 50_000),
        spec("rlnet-b", "rlnet", 100_000),
    ];
    specs
        .iter()
        .flat_map(|s| (0..2).map(move |r| run(s, &TRUTH, r, 0.01)))
        .collect()
}

/// A directory whose `eval/` holds evaluations of two of [`runs`]' three models; returns them.
fn with_evaluations(dir: &Path) -> (EvalReport, EvalReport) {
    let eval = dir.join("eval");
    std::fs::create_dir_all(&eval).unwrap();
    let rl = eval_of("eval-fixture.json", "models/rlnet-a.safetensors");
    let se = eval_of("eval-fixture-senet.json", "models/senet-a.safetensors");
    for (name, r) in [("rlnet-a", &rl), ("senet-a", &se)] {
        std::fs::write(
            eval.join(format!("{name}.json")),
            serde_json::to_string(r).unwrap(),
        )
        .unwrap();
    }
    (rl, se)
}

#[test]
fn a_report_opens_with_accuracy_against_latency_and_tabulates_it() {
    let dir = tempfile::tempdir().unwrap();
    let (rl, se) = with_evaluations(dir.path());
    let opts = ReportOptions::default();
    let font = Path::new(&opts.font_path).exists();
    let summary = write_report(&runs(), dir.path(), &opts).unwrap();
    let md = std::fs::read_to_string(&summary.report_md).unwrap();

    // The glance section comes first, before the setup, with the headline figure.
    let glance = md.find("## At a glance").expect("glance section");
    assert!(glance < md.find("## Setup").unwrap());
    assert!(md.contains("](accuracy_vs_online_wan."), "{md}");
    // One row per evaluated model with its PI accuracies, none for the model not evaluated.
    let row = |name: &str| {
        md.lines()
            .find(|l| l.contains(&format!("| {name} |")))
            .map(str::to_string)
    };
    let rl_row = row("rlnet-a").unwrap();
    let pi = |t: &pibench::eval::results::TripleJson| format!("{:.1}", t.pi.accuracy);
    assert!(
        rl_row.contains(&format!(" {} |", pi(&rl.clean))),
        "{rl_row}"
    );
    assert!(rl_row.contains(&format!(" {} |", pi(rl.adversarial.as_ref().unwrap()))));
    assert!(rl_row.contains(&format!(" {} |", pi(&rl.npa.as_ref().unwrap().mean))));
    let section = &md[md.find("## Accuracy").unwrap()..];
    assert!(section.contains("not evaluated") && section.contains("rlnet-b"));
    // f32 and PI with intervals and n in the accuracy section.
    let c = rl.clean;
    assert!(section.contains(&format!(
        "{:.1} [{:.1}, {:.1}]",
        c.f32.accuracy, c.f32.ci95[0], c.f32.ci95[1]
    )));
    assert!(section.contains("### Accuracy against the ring"));

    // results.csv: the accuracy columns, filled for evaluated models only.
    let csv = std::fs::read_to_string(&summary.results_csv).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), header.len());
        let evaluated = f[0] != "rlnet-b";
        assert_eq!(!f[col("ca_pi")].is_empty(), evaluated, "{line}");
        if f[0] == "senet-a" {
            let want = se.adversarial.unwrap().pi.accuracy;
            assert!((f[col("adva_pi")].parse::<f64>().unwrap() - want).abs() < 1e-3);
            assert_eq!(
                f[col("npa_n")],
                se.npa.as_ref().unwrap().mean.f32.n.to_string()
            );
        }
    }

    // The figures: accuracy against online and total latency per link, the method comparison
    // (accuracy beside cost) and accuracy against ℓ.
    let stems: Vec<&str> = summary.plots.iter().map(|p| p.stem.as_str()).collect();
    for stem in [
        "accuracy_vs_online_lan",
        "accuracy_vs_total_lan",
        "accuracy_vs_online_wan",
        "accuracy_vs_total_wan",
        "methods_at_equal_budget",
        "accuracy_vs_ring",
    ] {
        assert!(stems.contains(&stem), "{stem} missing: {stems:?}");
        assert!(dir.path().join(format!("{stem}.svg")).exists());
        assert_eq!(dir.path().join(format!("{stem}.png")).exists(), font);
    }
    assert!(
        !stems.contains(&"accuracy_vs_latency"),
        "card accuracies give way"
    );
    assert!(
        !dir.path().join("accuracy_vs_latency.svg").exists()
            && !dir.path().join("accuracy_vs_latency.png").exists(),
        "no figure of the cards' accuracies is left on disk"
    );
    let svg = std::fs::read_to_string(dir.path().join("methods_at_equal_budget.svg")).unwrap();
    assert!(svg.contains("AdvA under PI") && svg.contains("accuracy beside cost"));
}

#[test]
fn clearing_a_report_removes_every_figure_it_drew() {
    let dir = tempfile::tempdir().unwrap();
    with_evaluations(dir.path());
    std::fs::write(dir.path().join("mine.svg"), "the user's").unwrap();
    let summary = write_report(&runs(), dir.path(), &ReportOptions::default()).unwrap();
    assert!(summary.plots.len() >= 6, "{:?}", summary.plots);
    let removed = clear_report_files(dir.path()).unwrap();
    for p in &summary.plots {
        for f in std::iter::once(&p.svg).chain(&p.png) {
            assert!(removed.contains(f) && !f.exists(), "{} stays", f.display());
        }
    }
    for f in [&summary.report_md, &summary.results_csv] {
        assert!(!f.exists(), "{} stays", f.display());
    }
    assert!(dir.path().join("mine.svg").exists());
    assert!(dir.path().join("eval/rlnet-a.json").exists());
}

#[test]
fn evaluations_join_by_model_taking_each_accuracy_from_the_larger_one() {
    let mut big = eval_of("eval-fixture.json", "models/x.safetensors");
    big.npa = None;
    let mut npa = eval_of("eval-fixture.json", "models/x.safetensors");
    npa.clean.f32.n = 3;
    npa.adversarial = None;
    let acc = Accuracies::from_reports(vec![
        (PathBuf::from("x.json"), big.clone()),
        (PathBuf::from("x-npa.json"), npa.clone()),
    ]);
    assert_eq!(acc.models.len(), 1);
    let m = &acc.models[0];
    assert_eq!(m.ca, Some(big.clean));
    assert_eq!(m.adv, big.adversarial);
    assert_eq!(m.npa, Some(npa.npa.unwrap().mean));
    assert!(
        m.npa_setting.contains("severities 1,3"),
        "{}",
        m.npa_setting
    );
    assert!(m.adv_setting.starts_with("PGD-2"), "{}", m.adv_setting);
    assert_eq!(m.rings.len(), 4);
}

#[test]
fn a_smaller_ring_shows_its_bytes_against_the_cost_model() {
    let sweep = Sweep::from_results(runs()).unwrap();
    let model = CostModel::fit(&sweep).unwrap();
    let mut r = runs().remove(0);
    r.ring = Ring::new(40, 10).unwrap();
    // Halve the ReLU sites' bytes, as a smaller ring would.
    for l in r.layers.iter_mut().filter(|l| l.kind == "relu") {
        l.offline.bytes_server_to_client /= 2;
        l.offline.bytes_client_to_server /= 2;
        l.online.bytes_server_to_client /= 2;
        l.online.bytes_client_to_server /= 2;
    }
    let s = ring_saving(&r, &model);
    let relus: u64 = r
        .layers
        .iter()
        .filter(|l| l.kind == "relu")
        .map(|l| l.relus_kept)
        .sum();
    assert_eq!(s.relus, relus);
    // The cost model recovers the per-ReLU bytes the runs were made with.
    let truth_off = TRUTH.off_c2s_per_relu + TRUTH.off_s2c_per_relu;
    assert!((s.model_offline_per_relu - truth_off).abs() / truth_off < 0.01);
    assert!(s.measured_offline_per_relu < 0.6 * s.model_offline_per_relu);
    assert!(s.model_total.is_some());
    let text = s.to_string();
    assert!(
        text.contains("ℓ = 40, f = 10 against ℓ = 64, f = 12"),
        "{text}"
    );
    assert!(
        text.contains("measured") && text.contains("computed"),
        "{text}"
    );
}
