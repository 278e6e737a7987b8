//! Jobs that measure and then report, above both [`crate::bench`] (which measures) and
//! [`crate::report`] (which draws): a sweep followed by its report, and the default job that
//! `cargo run --release` runs.

use std::path::PathBuf;

use crate::bench::sweep::{bundles_in, sweep, Existing, SweepError, SweepOptions};
use crate::protocol::prepro::Backend;
use crate::report::{write_report, ReportError, ReportOptions, ReportSummary};
use crate::results::RunResult;

/// What a sweep and its report produced.
#[derive(Debug)]
pub struct SweepReport {
    /// Every run.
    pub results: Vec<RunResult>,
    /// The report written.
    pub report: ReportSummary,
    /// Wall-clock seconds of the sweep's runs.
    pub seconds: f64,
}

/// Errors of a job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The sweep failed.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Run the sweep `opts`, then write its report (CSV, plots, cost model, report.md) into the
/// sweep's output directory.
pub fn sweep_and_report(opts: &SweepOptions) -> Result<SweepReport, JobError> {
    let outcome = sweep(opts)?;
    let ro = ReportOptions {
        reproduce_command: format!(
            "cargo run --release   # or: pibench sweep {} --out {}",
            opts.models
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            opts.out.display()
        ),
        ..ReportOptions::default()
    };
    // With --append the report covers the earlier runs too (the outcome lists this sweep's).
    let all: Vec<RunResult> = outcome
        .earlier
        .iter()
        .chain(&outcome.results)
        .cloned()
        .collect();
    let report = write_report(&all, &opts.out, &ro)?;
    Ok(SweepReport {
        results: outcome.results,
        report,
        seconds: outcome.seconds,
    })
}

/// The sweeps of the default job, in order: every bundled model with the dealer backend (online
/// costs and the ReLUs' offline costs) into `reports/`, then the RLNet bundles once more with
/// real two-party linear preprocessing (homomorphic encryption) for the full offline cost, into
/// `reports/he/`.
pub fn default_sweeps() -> Vec<SweepOptions> {
    let models = bundles_in(&crate::model::bundled::models_dir());
    let mut dealer = SweepOptions::new(models.clone(), "reports");
    // The default job regenerates reports/: it replaces the previous one.
    dealer.existing = Existing::Force;
    let rlnet: Vec<PathBuf> = models
        .into_iter()
        .filter(|m| m.to_string_lossy().contains("rlnet"))
        .collect();
    let mut he = SweepOptions::new(rlnet, "reports/he");
    he.backend = Backend::He;
    // Three repeats and a warm-up: HE time varies by ±10 % run to run on two shared cores, and
    // the cost model's held-out check needs medians, not single runs.
    he.inputs = 1;
    he.repeats = 3;
    he.emulate = vec![];
    he.existing = Existing::Force;
    vec![dealer, he]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_job_sweeps_every_bundle_then_the_rlnet_ones_with_he() {
        let [dealer, he] = <[SweepOptions; 2]>::try_from(default_sweeps()).unwrap();
        assert_eq!(dealer.backend, Backend::Dealer);
        assert_eq!(dealer.out, PathBuf::from("reports"));
        assert!(dealer.models.len() >= he.models.len() && !he.models.is_empty());
        assert_eq!(he.backend, Backend::He);
        assert_eq!(he.out, PathBuf::from("reports/he"));
        assert!(he
            .models
            .iter()
            .all(|m| m.to_string_lossy().contains("rlnet")));
        assert_eq!((he.inputs, he.repeats), (1, 3));
        assert!(he.emulate.is_empty());
    }
}
