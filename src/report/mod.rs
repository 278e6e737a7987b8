//! Plots (plotters), tables, Markdown, CSV and JSON drawn from measured results, and the cost
//! model fitted on them.
//!
//! The entry point is [`write_report`]: from a set of [`RunResult`]s it writes `results.csv`
//! (one row per run), `costmodel.json` (the fitted [`CostModel`]), the plots (SVG, and PNG when
//! a font is available) and `report.md`, which embeds the plots and says how to reproduce it:
//! the command each run records ([`crate::results::SweepPlace`]), so that `pibench report DIR`
//! redraws the report the sweep wrote, rows in the same order ([`Sweep::from_results`]).
//! Link latencies are presented as the results carry them (`RunResult::links`, computed by the
//! runner); this module computes no link figures of its own except the cost model's predictions.

pub mod accuracy;
pub mod chart;
pub mod costmodel;
pub mod markdown;
pub mod plots;
pub mod saving;
pub mod sweep;
pub(crate) mod text;

use std::path::{Path, PathBuf};

use crate::results::RunResult;

pub use chart::PlotFile;
pub use costmodel::{CostModel, Fit, Prediction, Workload};
pub use plots::PlotSet;
pub use sweep::{LinkStat, ModelGroup, ModelKey, PhaseStat, Stat, Sweep};

/// Why a report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No results were given.
    #[error("no results to report")]
    NoResults,
    /// A results directory held no run files.
    #[error("no run results (*.json) in {0}")]
    NoResultsIn(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file did not parse (or could not be written).
    #[error("{path}: not a valid pibench JSON file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A plot could not be drawn.
    #[error("plot {plot}: {reason}")]
    Plot {
        /// The plot's file stem.
        plot: String,
        /// What went wrong.
        reason: String,
    },
    /// The cost model cannot be fitted or loaded.
    #[error("cost model: {0}")]
    CostModel(String),
    /// An evaluation file beside the runs cannot be used.
    #[error("accuracy: {0}")]
    Accuracy(String),
}

impl ReportError {
    /// The error of an I/O failure on `path`, for `map_err`.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
        move |source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The error of a JSON failure on `path`, for `map_err`.
    pub(crate) fn parse(path: &Path) -> impl FnOnce(serde_json::Error) -> ReportError + '_ {
        move |source| ReportError::Parse {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What to put in a report.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The report's title.
    pub title: String,
    /// The model (name or label) whose per-layer breakdown is plotted; default: the model with
    /// the largest budget.
    pub breakdown_model: Option<String>,
    /// The link of the method comparison and accuracy plots; default `wan` when present, else
    /// the first link the results carry.
    pub compare_link: Option<String>,
    /// The TrueType font for PNG text. When it cannot be read, SVGs are still written (text is
    /// rendered by the viewer) and PNGs are skipped with a warning.
    pub font_path: PathBuf,
    /// Whether to write PNGs next to the SVGs.
    pub png: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            title: "pibench: private inference cost of ReLU-linearized networks".into(),
            breakdown_model: None,
            compare_link: None,
            font_path: PathBuf::from(chart::DEFAULT_FONT),
            png: true,
        }
    }
}

/// What [`write_report`] wrote.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    /// `report.md`.
    pub report_md: PathBuf,
    /// `results.csv`.
    pub results_csv: PathBuf,
    /// `costmodel.json`, when the sweep could be fitted (at least two budgets).
    pub costmodel_json: Option<PathBuf>,
    /// The fitted cost model.
    pub cost_model: Option<CostModel>,
    /// The plots written.
    pub plots: Vec<PlotFile>,
    /// What was skipped and why (missing font, no accuracies, no RLNet/SeNet pair, ...).
    pub notes: Vec<String>,
}

/// Remove from `dir` the files a report writes there — `report.md`, `results.csv`, the cost
/// models and the figures under every name a report draws (SVG and PNG) — whether or not the
/// next report draws them again, so that no stale chart outlives its report (`sweep --force`).
/// Files of other names, the user's, stay. Returns the files removed.
pub fn clear_report_files(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(ReportError::io(dir)(e)),
    };
    let ours = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, ""));
        match ext {
            "md" => stem == "report",
            "csv" => stem == "results",
            "json" => stem == "costmodel" || stem.starts_with("costmodel-"),
            "svg" | "png" => plots::stem::is_report_plot(stem),
            _ => false,
        }
    };
    let mut removed = Vec::new();
    for e in entries {
        let p = e.map_err(ReportError::io(dir))?.path();
        if p.is_file() && ours(&p) {
            std::fs::remove_file(&p).map_err(ReportError::io(&p))?;
            removed.push(p);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Write `results.csv`, `costmodel.json`, the plots and `report.md` into `out_dir` (created if
/// needed).
pub fn write_report(
    results: &[RunResult],
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<ReportSummary, ReportError> {
    let sweep = Sweep::from_results(results.to_vec())?;
    std::fs::create_dir_all(out_dir).map_err(ReportError::io(out_dir))?;
    let mut notes = Vec::new();
    // The accuracies a sweep measured for its models (`eval/*.json`), when it was given data.
    let accuracies = accuracy::Accuracies::load_dir(&out_dir.join("eval"))?;

    let results_csv = out_dir.join("results.csv");
    sweep.save_csv(&results_csv)?;

    // One cost model per garbling scheme and OT: their per-ReLU bytes and times differ. The
    // main `costmodel.json` is the recommended combination's when the sweep ran it.
    let mut combos: Vec<crate::protocol::GcOptions> = Vec::new();
    // In report order, so that a redraw picks the same main combination as the sweep did.
    for r in &sweep.runs {
        if !combos.contains(&r.gc) {
            combos.push(r.gc);
        }
    }
    let main = if combos.contains(&crate::protocol::GcOptions::RECOMMENDED) {
        crate::protocol::GcOptions::RECOMMENDED
    } else {
        combos[0]
    };
    let (mut cost_model, mut costmodel_json) = (None, None);
    for &gc in &combos {
        let fitted = if combos.len() == 1 {
            CostModel::fit(&sweep)
        } else {
            let runs: Vec<RunResult> = sweep.runs.iter().filter(|r| r.gc == gc).cloned().collect();
            Sweep::from_results(runs).and_then(|s| CostModel::fit(&s))
        };
        match fitted {
            Ok(m) => {
                if combos.len() > 1 {
                    m.save(&out_dir.join(format!("costmodel-{}-{}.json", gc.garbling, gc.ot)))?;
                }
                if gc == main {
                    let p = out_dir.join("costmodel.json");
                    m.save(&p)?;
                    (cost_model, costmodel_json) = (Some(m), Some(p));
                }
            }
            Err(e) if combos.len() == 1 => notes.push(format!("Cost model not fitted: {e}.")),
            Err(e) => notes.push(format!("Cost model not fitted for {gc}: {e}.")),
        }
    }

    let plot_set = plots::write_plots(&sweep, out_dir, opts, !accuracies.is_empty())?;
    notes.extend(plot_set.notes.iter().cloned());
    let mut plot_set = plot_set;
    if !accuracies.is_empty() {
        let before = plot_set.notes.len();
        accuracy::write_plots(&sweep, &accuracies, out_dir, opts, &mut plot_set)?;
        notes.extend(plot_set.notes[before..].iter().cloned());
        let csv = sweep.to_csv_with(&accuracy::Accuracies::csv_header(), &|r| {
            accuracies.csv_row(&sweep, r)
        });
        std::fs::write(&results_csv, csv).map_err(ReportError::io(&results_csv))?;
    }

    let report_md = out_dir.join("report.md");
    let text = markdown::render(
        &sweep,
        cost_model.as_ref(),
        &plot_set,
        &notes,
        opts,
        &accuracies,
        out_dir,
    );
    std::fs::write(&report_md, text).map_err(ReportError::io(&report_md))?;

    Ok(ReportSummary {
        report_md,
        results_csv,
        costmodel_json,
        cost_model,
        plots: plot_set.files,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_removes_the_report_files_and_nothing_of_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let ours = [
            "report.md",
            "results.csv",
            "costmodel.json",
            "costmodel-threehalves-softspoken.json",
            "latency_vs_budget.svg",
            "layer_breakdown.png",
            "methods_at_equal_budget.svg",
            "accuracy_vs_latency.png",
            "accuracy_vs_ring.svg",
            "accuracy_vs_online_wan.svg",
            "accuracy_vs_total_mobile.png",
        ];
        let theirs = [
            "notes.md",
            "mine.svg",
            "latency_vs_budget.pdf",
            "accuracy_vs_online_.svg",
            "warmup-x.json",
            "results.csv.bak",
        ];
        for name in ours.iter().chain(&theirs) {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        // A directory of a report's name is not a file the report wrote.
        std::fs::create_dir(dir.path().join("layer_breakdown.svg")).unwrap();
        let removed = clear_report_files(dir.path()).unwrap();
        let mut want: Vec<PathBuf> = ours.iter().map(|n| dir.path().join(n)).collect();
        want.sort();
        assert_eq!(removed, want);
        for name in theirs {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        assert!(dir.path().join("layer_breakdown.svg").is_dir());
        assert!(clear_report_files(&dir.path().join("absent"))
            .unwrap()
            .is_empty());
    }
}
