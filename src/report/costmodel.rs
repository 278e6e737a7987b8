//! The cost model: per-phase linear fits of compute seconds, bytes each way and rounds against
//! the ReLU budget (and MACs, and ReLU sites), fitted on a sweep, saved as `costmodel.json`, and
//! used to predict a bundle's cost on any link without running it.
//!
//! Each quantity `y` is fitted as `y = fixed + per_relu·kept_relus [+ per_mac·macs]` (rounds:
//! `y = fixed + per_site·relu_sites`) by least squares on relative residuals — the models of a
//! sweep span an order of magnitude of budgets, and an absolute fit would sacrifice the small
//! ones. A term is only used when the sweep can determine it: distinct values, more points than
//! terms, and a column not collinear with the others; otherwise it is dropped (coefficient 0).
//!
//! Link time is `compute + bytes_up·8/up_bps + bytes_down·8/down_bps + rounds·RTT/2`:
//! [`Link::latency`], the formula every run's link estimates use.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::net::link::Link;
use crate::results::{PhaseCost, RunResult};

use super::sweep::{link_order, structure_of, ModelGroup, PhaseStat, Sweep};
use super::ReportError;

/// Version of the `costmodel.json` schema.
pub const COSTMODEL_VERSION: u32 = 1;

/// What the cost model needs to know about a bundle: all public, available without running it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// ReLUs kept by the masks (the budget).
    pub kept_relus: u64,
    /// Multiply-accumulates of one inference.
    pub macs: u64,
    /// ReLU sites with at least one kept ReLU.
    pub relu_sites: u64,
    /// Linear layers (convolutions and fully connected).
    pub linear_layers: u64,
}

impl Workload {
    /// The workload of a measured run.
    pub fn of_run(r: &RunResult) -> Workload {
        let (relu_sites, linear_layers) = structure_of(r);
        Workload {
            kept_relus: r.model.budget,
            macs: r.model.macs,
            relu_sites,
            linear_layers,
        }
    }

    /// The workload of a sweep's model (one point of the fit).
    pub fn of_group(g: &ModelGroup) -> Workload {
        Workload {
            kept_relus: g.budget,
            macs: g.macs,
            relu_sites: g.relu_sites,
            linear_layers: g.linear_layers,
        }
    }

    /// The workload of a loaded network (for `pibench predict`).
    pub fn of_network(net: &crate::model::Network) -> Workload {
        Workload {
            kept_relus: net.kept_relus() as u64,
            macs: net.macs(),
            relu_sites: net.sites().iter().filter(|s| s.kept > 0).count() as u64,
            linear_layers: net
                .layers
                .iter()
                .filter(|l| super::sweep::is_linear_kind(l.op.kind()))
                .count() as u64,
        }
    }
}

/// One fitted quantity: `fixed + per_relu·relus + per_mac·macs + per_site·sites`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// Constant term.
    pub fixed: f64,
    /// Per kept ReLU.
    pub per_relu: f64,
    /// Per multiply-accumulate (0 when the sweep cannot determine it).
    pub per_mac: f64,
    /// Per ReLU site with kept ReLUs (rounds only).
    pub per_site: f64,
    /// The terms actually fitted (`fixed`, `relu`, `mac`, `site`).
    pub terms: Vec<String>,
    /// Coefficient of determination on the fitted points.
    pub r2: f64,
    /// Largest |predicted − measured| / measured over the sweep's runs.
    pub max_rel_error: f64,
    /// Median of the same.
    pub median_rel_error: f64,
    /// Points fitted (one per model: the median of its runs).
    pub points: usize,
}

impl Fit {
    /// The fitted value for a workload (never negative: a negative cost is a fit artefact).
    pub fn eval(&self, w: &Workload) -> f64 {
        (self.fixed
            + self.per_relu * w.kept_relus as f64
            + self.per_mac * w.macs as f64
            + self.per_site * w.relu_sites as f64)
            .max(0.0)
    }
}

/// Which regressors a quantity may use.
#[derive(Clone, Copy)]
enum Regressors {
    /// `fixed + relu [+ mac]`.
    Budget,
    /// `fixed + site`.
    Sites,
}

/// A phase whose costs are fitted, read from a model's medians and from a run alike.
#[derive(Clone, Copy)]
enum Phase {
    Offline,
    Online,
}

impl Phase {
    fn of_group(self, g: &ModelGroup) -> &PhaseStat {
        match self {
            Phase::Offline => &g.offline,
            Phase::Online => &g.online,
        }
    }

    fn of_run(self, r: &RunResult) -> &PhaseCost {
        match self {
            Phase::Offline => &r.offline,
            Phase::Online => &r.online,
        }
    }
}

/// A fitted quantity of a phase.
#[derive(Clone, Copy)]
enum Quantity {
    Seconds,
    BytesC2s,
    BytesS2c,
    Rounds,
}

impl Quantity {
    /// The median over a model's runs.
    fn of_stat(self, p: &PhaseStat) -> f64 {
        match self {
            Quantity::Seconds => p.seconds.median,
            Quantity::BytesC2s => p.bytes_client_to_server.median,
            Quantity::BytesS2c => p.bytes_server_to_client.median,
            Quantity::Rounds => p.rounds.median,
        }
    }

    /// One run's value.
    fn of_cost(self, p: &PhaseCost) -> f64 {
        match self {
            Quantity::Seconds => p.seconds,
            Quantity::BytesC2s => p.bytes_client_to_server as f64,
            Quantity::BytesS2c => p.bytes_server_to_client as f64,
            Quantity::Rounds => p.rounds as f64,
        }
    }

    /// Rounds grow with the sites, not the ReLUs.
    fn regressors(self) -> Regressors {
        match self {
            Quantity::Rounds => Regressors::Sites,
            _ => Regressors::Budget,
        }
    }
}

/// The fitted cost model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// Schema version ([`COSTMODEL_VERSION`]).
    pub version: u32,
    /// Preprocessing backend of the runs it was fitted on.
    pub backend: String,
    /// Garbling scheme and OT of the runs it was fitted on (absent in models fitted before the
    /// choice existed: half gates and IKNP).
    #[serde(flatten, default)]
    pub gc: crate::protocol::GcOptions,
    /// Ring bit width ℓ.
    pub ell: u32,
    /// Fractional bits f.
    pub frac: u32,
    /// CPU of the machine the runs were measured on.
    pub machine: String,
    /// Worker threads per process.
    pub threads: usize,
    /// Models (points) the fit used.
    pub models: usize,
    /// Runs the errors were measured on.
    pub runs: usize,
    /// Offline compute seconds.
    pub offline_seconds: Fit,
    /// Online compute seconds.
    pub online_seconds: Fit,
    /// Offline bytes client → server.
    pub offline_bytes_c2s: Fit,
    /// Offline bytes server → client.
    pub offline_bytes_s2c: Fit,
    /// Online bytes client → server.
    pub online_bytes_c2s: Fit,
    /// Online bytes server → client.
    pub online_bytes_s2c: Fit,
    /// Offline rounds.
    pub offline_rounds: Fit,
    /// Online rounds.
    pub online_rounds: Fit,
}

/// A predicted cost on one link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The link.
    pub link: String,
    /// Offline compute seconds (no link).
    pub offline_compute_seconds: f64,
    /// Online compute seconds (no link).
    pub online_compute_seconds: f64,
    /// Offline seconds on the link.
    pub offline_seconds: f64,
    /// Online seconds on the link.
    pub online_seconds: f64,
    /// Offline bytes client → server.
    pub offline_bytes_c2s: f64,
    /// Offline bytes server → client.
    pub offline_bytes_s2c: f64,
    /// Online bytes client → server.
    pub online_bytes_c2s: f64,
    /// Online bytes server → client.
    pub online_bytes_s2c: f64,
    /// Offline rounds.
    pub offline_rounds: f64,
    /// Online rounds.
    pub online_rounds: f64,
}

/// Measured against predicted for one model and one quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Model label.
    pub model: String,
    /// What is compared: `offline compute`, `online wan`, `online wan (emulated)`, ...
    pub quantity: String,
    /// Median measured value (seconds).
    pub measured: f64,
    /// Predicted value (seconds).
    pub predicted: f64,
    /// Predicted by a model fitted without this model's runs (leave-one-model-out), when the
    /// sweep has enough models for that.
    pub predicted_held_out: Option<f64>,
}

impl Check {
    /// (predicted − measured) / measured.
    pub fn rel_error(&self) -> f64 {
        rel_err(self.predicted, self.measured)
    }

    /// The same for the held-out prediction.
    pub fn rel_error_held_out(&self) -> Option<f64> {
        self.predicted_held_out.map(|p| rel_err(p, self.measured))
    }
}

fn rel_err(pred: f64, meas: f64) -> f64 {
    if meas.abs() < 1e-12 {
        if pred.abs() < 1e-12 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (pred - meas) / meas
    }
}

impl CostModel {
    /// Fit on a sweep: one point per model (the median of its runs). Needs at least two models
    /// with different budgets.
    pub fn fit(sweep: &Sweep) -> Result<CostModel, ReportError> {
        let points: Vec<(Workload, &ModelGroup)> = sweep
            .groups
            .iter()
            .map(|g| (Workload::of_group(g), g))
            .collect();
        let mut budgets: Vec<u64> = points.iter().map(|(w, _)| w.kept_relus).collect();
        budgets.sort_unstable();
        budgets.dedup();
        if budgets.len() < 2 {
            return Err(ReportError::CostModel(format!(
                "needs models with at least two different ReLU budgets, the sweep has {}",
                budgets.len()
            )));
        }
        let ws: Vec<Workload> = points.iter().map(|(w, _)| *w).collect();
        let runs_w: Vec<Workload> = sweep.runs.iter().map(Workload::of_run).collect();
        let q = |phase: Phase, quantity: Quantity| {
            let y: Vec<f64> = points
                .iter()
                .map(|(_, g)| quantity.of_stat(phase.of_group(g)))
                .collect();
            let mut fit = fit_one(&ws, &y, quantity.regressors());
            let errs: Vec<f64> = sweep
                .runs
                .iter()
                .zip(&runs_w)
                .map(|(r, w)| rel_err(fit.eval(w), quantity.of_cost(phase.of_run(r))).abs())
                .collect();
            let s = super::sweep::Stat::of(&errs);
            fit.max_rel_error = s.max;
            fit.median_rel_error = s.median;
            fit
        };
        let first = &sweep.runs[0];
        Ok(CostModel {
            version: COSTMODEL_VERSION,
            backend: first.backend.to_string(),
            gc: first.gc,
            ell: first.ring.ell,
            frac: first.ring.frac,
            machine: first.machine.cpu.clone(),
            threads: first.threads,
            models: points.len(),
            runs: sweep.runs.len(),
            offline_seconds: q(Phase::Offline, Quantity::Seconds),
            online_seconds: q(Phase::Online, Quantity::Seconds),
            offline_bytes_c2s: q(Phase::Offline, Quantity::BytesC2s),
            offline_bytes_s2c: q(Phase::Offline, Quantity::BytesS2c),
            online_bytes_c2s: q(Phase::Online, Quantity::BytesC2s),
            online_bytes_s2c: q(Phase::Online, Quantity::BytesS2c),
            offline_rounds: q(Phase::Offline, Quantity::Rounds),
            online_rounds: q(Phase::Online, Quantity::Rounds),
        })
    }

    /// Predict a workload's cost on `link`.
    pub fn predict(&self, w: &Workload, link: &Link) -> Prediction {
        let p = self.predict_compute(w);
        Prediction {
            link: link.name.clone(),
            offline_seconds: link.latency(
                p.offline_compute_seconds,
                p.offline_bytes_c2s,
                p.offline_bytes_s2c,
                p.offline_rounds,
            ),
            online_seconds: link.latency(
                p.online_compute_seconds,
                p.online_bytes_c2s,
                p.online_bytes_s2c,
                p.online_rounds,
            ),
            ..p
        }
    }

    /// Predict a workload's cost without a link: the link seconds are the compute seconds.
    fn predict_compute(&self, w: &Workload) -> Prediction {
        let (offline, online) = (self.offline_seconds.eval(w), self.online_seconds.eval(w));
        Prediction {
            link: "compute".into(),
            offline_compute_seconds: offline,
            online_compute_seconds: online,
            offline_seconds: offline,
            online_seconds: online,
            offline_bytes_c2s: self.offline_bytes_c2s.eval(w),
            offline_bytes_s2c: self.offline_bytes_s2c.eval(w),
            online_bytes_c2s: self.online_bytes_c2s.eval(w),
            online_bytes_s2c: self.online_bytes_s2c.eval(w),
            offline_rounds: self.offline_rounds.eval(w).round(),
            online_rounds: self.online_rounds.eval(w).round(),
        }
    }

    /// The fitted quantities with their names, for printing.
    pub fn fits(&self) -> [(&'static str, &Fit); 8] {
        [
            ("offline seconds", &self.offline_seconds),
            ("online seconds", &self.online_seconds),
            ("offline bytes c→s", &self.offline_bytes_c2s),
            ("offline bytes s→c", &self.offline_bytes_s2c),
            ("online bytes c→s", &self.online_bytes_c2s),
            ("online bytes s→c", &self.online_bytes_s2c),
            ("offline rounds", &self.offline_rounds),
            ("online rounds", &self.online_rounds),
        ]
    }

    /// Compare predictions with the sweep's measurements, per model: compute seconds per phase
    /// and every link the runs carry (estimates, and emulated measurements where run). With at
    /// least four models, each model is also predicted by a fit on the others
    /// (leave-one-model-out), the honest figure for a bundle the model has not seen.
    pub fn check(&self, sweep: &Sweep) -> Vec<Check> {
        let held_out: Vec<Option<CostModel>> = sweep
            .groups
            .iter()
            .map(|g| {
                if sweep.groups.len() < 4 {
                    return None;
                }
                let others: Vec<RunResult> = sweep
                    .groups
                    .iter()
                    // The whole bundle is held out, on every batch-norm path it was run with.
                    .filter(|o| o.key.path != g.key.path)
                    .flat_map(|o| sweep.runs_of(o).cloned())
                    .collect();
                Sweep::from_results(others)
                    .ok()
                    .and_then(|s| CostModel::fit(&s).ok())
            })
            .collect();
        let mut out = Vec::new();
        for (g, ho) in sweep.groups.iter().zip(&held_out) {
            let w = Workload::of_group(g);
            let label = g.label();
            // Both phases of one prediction against their measured medians.
            let mut push =
                |what: &str, measured: (f64, f64), p: Prediction, ph: Option<Prediction>| {
                    let phases = [
                        (
                            "offline",
                            measured.0,
                            p.offline_seconds,
                            ph.as_ref().map(|p| p.offline_seconds),
                        ),
                        (
                            "online",
                            measured.1,
                            p.online_seconds,
                            ph.as_ref().map(|p| p.online_seconds),
                        ),
                    ];
                    for (phase, measured, predicted, predicted_held_out) in phases {
                        out.push(Check {
                            model: label.clone(),
                            quantity: format!("{phase} {what}"),
                            measured,
                            predicted,
                            predicted_held_out,
                        });
                    }
                };
            push(
                "compute",
                (g.offline.seconds.median, g.online.seconds.median),
                self.predict_compute(&w),
                ho.as_ref().map(|m| m.predict_compute(&w)),
            );
            let mut links = g.links.clone();
            links.sort_by(|a, b| {
                (link_order(&a.link.name), a.emulated).cmp(&(link_order(&b.link.name), b.emulated))
            });
            for l in &links {
                let tag = if l.emulated {
                    format!("{} (emulated)", l.link.name)
                } else {
                    l.link.name.clone()
                };
                push(
                    &tag,
                    (l.offline.median, l.online.median),
                    self.predict(&w, &l.link),
                    ho.as_ref().map(|m| m.predict(&w, &l.link)),
                );
            }
        }
        out
    }

    /// Write as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ReportError> {
        let text = serde_json::to_string_pretty(self).map_err(ReportError::parse(path))?;
        std::fs::write(path, text).map_err(ReportError::io(path))
    }

    /// Read a `costmodel.json`.
    pub fn load(path: &Path) -> Result<CostModel, ReportError> {
        let text = std::fs::read_to_string(path).map_err(ReportError::io(path))?;
        let m: CostModel = serde_json::from_str(&text).map_err(ReportError::parse(path))?;
        if m.version > COSTMODEL_VERSION {
            return Err(ReportError::CostModel(format!(
                "{} has cost-model version {}, this pibench reads up to {}",
                path.display(),
                m.version,
                COSTMODEL_VERSION
            )));
        }
        Ok(m)
    }
}

impl fmt::Display for CostModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cost model: {} models, {} runs, backend {}, garbling {}, OT {}, ℓ = {}, f = {}, {} threads on {}",
            self.models,
            self.runs,
            self.backend,
            self.gc.garbling,
            self.gc.ot,
            self.ell,
            self.frac,
            self.threads,
            self.machine
        )?;
        writeln!(
            f,
            "{:<18} {:>12} {:>12} {:>12} {:>10} {:>7} {:>9} {:>9}",
            "quantity", "fixed", "per ReLU", "per MAC", "per site", "R²", "max err", "med err"
        )?;
        for (name, fit) in self.fits() {
            writeln!(
                f,
                "{:<18} {:>12.4e} {:>12.4e} {:>12.4e} {:>10.3} {:>7.4} {:>8.1}% {:>8.1}%",
                name,
                fit.fixed,
                fit.per_relu,
                fit.per_mac,
                fit.per_site,
                fit.r2,
                fit.max_rel_error * 100.0,
                fit.median_rel_error * 100.0
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Prediction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "predicted on {}:", self.link)?;
        writeln!(
            f,
            "  offline: {:.3} s ({:.3} s compute), {:.2} MB c→s, {:.2} MB s→c, {} rounds",
            self.offline_seconds,
            self.offline_compute_seconds,
            self.offline_bytes_c2s / 1e6,
            self.offline_bytes_s2c / 1e6,
            self.offline_rounds
        )?;
        writeln!(
            f,
            "  online:  {:.3} s ({:.3} s compute), {:.2} MB c→s, {:.2} MB s→c, {} rounds",
            self.online_seconds,
            self.online_compute_seconds,
            self.online_bytes_c2s / 1e6,
            self.online_bytes_s2c / 1e6,
            self.online_rounds
        )
    }
}

/// Fit one quantity; see the module documentation for which terms are used.
fn fit_one(ws: &[Workload], y: &[f64], reg: Regressors) -> Fit {
    let n = ws.len();
    let distinct = |f: fn(&Workload) -> u64| {
        let mut v: Vec<u64> = ws.iter().map(f).collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    // Candidate terms in priority order: the first ones are kept when points are scarce.
    let mut terms: Vec<&'static str> = vec!["fixed"];
    match reg {
        Regressors::Budget => {
            if distinct(|w| w.kept_relus) >= 2 {
                terms.push("relu");
            }
            // A MAC term needs its own variation and a spare point beyond the terms.
            if distinct(|w| w.macs) >= 2 && n >= 4 {
                terms.push("mac");
            }
        }
        Regressors::Sites => {
            if distinct(|w| w.relu_sites) >= 2 {
                terms.push("site");
            }
        }
    }
    let col = |t: &str, w: &Workload| match t {
        "fixed" => 1.0,
        "relu" => w.kept_relus as f64,
        "mac" => w.macs as f64,
        "site" => w.relu_sites as f64,
        _ => 0.0,
    };
    // Relative residuals: weight each row by 1/|y| (when every y is positive).
    let weights: Vec<f64> = if y.iter().all(|&v| v > 0.0) {
        y.iter().map(|v| 1.0 / v).collect()
    } else {
        vec![1.0; n]
    };
    let coef = loop {
        let a: Vec<Vec<f64>> = ws
            .iter()
            .zip(&weights)
            .map(|(w, &wt)| terms.iter().map(|t| col(t, w) * wt).collect())
            .collect();
        let b: Vec<f64> = y.iter().zip(&weights).map(|(v, wt)| v * wt).collect();
        match lstsq(&a, &b) {
            Some(c) => break c,
            // Rank deficient (collinear columns): drop the last, least important term.
            None if terms.len() > 1 => {
                terms.pop();
            }
            None => break vec![0.0],
        }
    };
    let mut fit = Fit {
        points: n,
        terms: terms.iter().map(|s| s.to_string()).collect(),
        ..Fit::default()
    };
    for (t, c) in terms.iter().zip(&coef) {
        match *t {
            "fixed" => fit.fixed = *c,
            "relu" => fit.per_relu = *c,
            "mac" => fit.per_mac = *c,
            "site" => fit.per_site = *c,
            _ => {}
        }
    }
    let mean = y.iter().sum::<f64>() / n as f64;
    let ss_tot: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let ss_res: f64 = ws
        .iter()
        .zip(y)
        .map(|(w, v)| (fit.eval(w) - v).powi(2))
        .sum();
    fit.r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res <= 1e-12 * (1.0 + mean * mean) {
        1.0
    } else {
        0.0
    };
    fit
}

/// Least squares `min ‖A x − b‖` by Householder QR on unit-norm columns. `None` when A is
/// (numerically) rank deficient or has more columns than rows.
// Index loops read like the textbook algorithm; iterator chains over two indices would not.
#[allow(clippy::needless_range_loop)]
fn lstsq(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let m = a.len();
    let n = a.first()?.len();
    if n == 0 || m < n {
        return None;
    }
    // Column scaling keeps a per-ReLU column (~1e5) and a constant column comparable.
    let scale: Vec<f64> = (0..n)
        .map(|j| (0..m).map(|i| a[i][j] * a[i][j]).sum::<f64>().sqrt())
        .collect();
    if scale.iter().any(|&s| s == 0.0 || !s.is_finite()) {
        return None;
    }
    let mut r: Vec<Vec<f64>> = (0..m)
        .map(|i| (0..n).map(|j| a[i][j] / scale[j]).collect())
        .collect();
    let mut qb = b.to_vec();
    for k in 0..n {
        let norm = (k..m).map(|i| r[i][k] * r[i][k]).sum::<f64>().sqrt();
        if norm < 1e-9 {
            return None;
        }
        let alpha = if r[k][k] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..m).map(|i| r[i][k]).collect();
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        if vnorm2 > 0.0 {
            for j in k..n {
                let d: f64 = (k..m).map(|i| v[i - k] * r[i][j]).sum::<f64>() * 2.0 / vnorm2;
                for i in k..m {
                    r[i][j] -= d * v[i - k];
                }
            }
            let d: f64 = (k..m).map(|i| v[i - k] * qb[i]).sum::<f64>() * 2.0 / vnorm2;
            for i in k..m {
                qb[i] -= d * v[i - k];
            }
        }
        // After scaling every column has norm 1, so a tiny diagonal means collinearity.
        if r[k][k].abs() < 1e-7 {
            return None;
        }
    }
    let mut x = vec![0.0; n];
    for k in (0..n).rev() {
        let s: f64 = ((k + 1)..n).map(|j| r[k][j] * x[j]).sum();
        x[k] = (qb[k] - s) / r[k][k];
    }
    Some(x.iter().zip(&scale).map(|(xi, s)| xi / s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lstsq_solves_exact_system() {
        // y = 2 + 3x
        let a: Vec<Vec<f64>> = (0..5).map(|i| vec![1.0, i as f64 * 1e5]).collect();
        let b: Vec<f64> = (0..5).map(|i| 2.0 + 3e-5 * (i as f64 * 1e5)).collect();
        let x = lstsq(&a, &b).unwrap();
        assert!((x[0] - 2.0).abs() < 1e-9);
        assert!((x[1] - 3e-5).abs() < 1e-15);
    }

    #[test]
    fn lstsq_rejects_collinear() {
        let a: Vec<Vec<f64>> = (0..5)
            .map(|i| vec![1.0, i as f64, 2.0 * i as f64])
            .collect();
        let b = vec![1.0; 5];
        assert!(lstsq(&a, &b).is_none());
    }

    #[test]
    fn collinear_mac_term_is_dropped() {
        // MACs proportional to ReLUs: the MAC column adds nothing and must be dropped.
        let ws: Vec<Workload> = (1..=5)
            .map(|i| Workload {
                kept_relus: i * 10_000,
                macs: i * 10_000 * 500,
                relu_sites: 17,
                linear_layers: 20,
            })
            .collect();
        let y: Vec<f64> = ws
            .iter()
            .map(|w| 0.5 + 2e-5 * w.kept_relus as f64)
            .collect();
        let f = fit_one(&ws, &y, Regressors::Budget);
        assert_eq!(f.terms, ["fixed", "relu"]);
        assert!((f.per_relu - 2e-5).abs() < 1e-12);
        assert!((f.fixed - 0.5).abs() < 1e-9);
    }

    #[test]
    fn predictions_take_the_same_links_as_runs() {
        // `predict --link` and `run --link` parse with the one `net::link` parser: units
        // required, terabits accepted.
        assert!(Link::parse("100,20").is_err());
        assert!(Link::parse("fast").is_err() && Link::parse("0,10").is_err());
        let fast = Link::parse("1tbit,1ms").unwrap();
        let fit = |fixed: f64| Fit {
            fixed,
            ..Fit::default()
        };
        let m = CostModel {
            version: COSTMODEL_VERSION,
            backend: "dealer".into(),
            gc: Default::default(),
            ell: 64,
            frac: 12,
            machine: String::new(),
            threads: 1,
            models: 1,
            runs: 1,
            offline_seconds: fit(2.0),
            online_seconds: fit(0.5),
            offline_bytes_c2s: fit(1e6),
            offline_bytes_s2c: fit(2e6),
            online_bytes_c2s: fit(0.0),
            online_bytes_s2c: fit(1e3),
            offline_rounds: fit(4.0),
            online_rounds: fit(2.0),
        };
        let w = Workload::default();
        let slow = Link::parse("8mbit/16mbit,100ms").unwrap();
        let p = m.predict(&w, &slow);
        // 2 s compute + 1e6 B up (1 s) + 2e6 B down (1 s) + 4 rounds × 50 ms
        assert!((p.offline_seconds - 4.2).abs() < 1e-12, "{p:?}");
        assert_eq!(p.offline_seconds, slow.latency(2.0, 1e6, 2e6, 4.0));
        assert!(m.predict(&w, &fast).online_seconds < 0.51);
    }
}
