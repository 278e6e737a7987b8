//! What a smaller ring saves: a run at some (ℓ, f) against the default ring's cost as a sweep's
//! cost model knows it. The run's bytes are measured; the default ring's are computed from the
//! cost model's fitted per-ReLU bytes (and, for the whole inference, its prediction for the
//! same workload), so nothing here is a formula of the protocol's own.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::costmodel::{CostModel, Workload};
use super::sweep::is_relu_kind;
use crate::net::link::Link;
use crate::results::RunResult;
use crate::ring::Ring;

/// A run's bytes against the cost model's at its ring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingSaving {
    /// The run's ring.
    pub ring: Ring,
    /// The cost model's ring.
    pub model_ring: Ring,
    /// ReLUs the run kept.
    pub relus: u64,
    /// Measured: offline bytes per kept ReLU over the run's ReLU sites, both directions.
    pub measured_offline_per_relu: f64,
    /// Measured: online bytes per kept ReLU, both directions.
    pub measured_online_per_relu: f64,
    /// Computed: the cost model's per-ReLU offline bytes (both directions) at its ring.
    pub model_offline_per_relu: f64,
    /// Computed: the cost model's per-ReLU online bytes.
    pub model_online_per_relu: f64,
    /// Measured: the run's offline + online bytes, both directions.
    pub measured_total: f64,
    /// Computed: the cost model's offline + online bytes for the same workload at its ring;
    /// `None` when the run's backend differs from the model's (the linear layers' bytes would
    /// not compare).
    pub model_total: Option<f64>,
}

/// Compare `run` with `model` (normally the default job's cost model, fitted at ℓ = 64).
pub fn ring_saving(run: &RunResult, model: &CostModel) -> RingSaving {
    let (mut off, mut on, mut relus) = (0u64, 0u64, 0u64);
    for l in run.layers.iter().filter(|l| is_relu_kind(&l.kind)) {
        off += l.offline.bytes();
        on += l.online.bytes();
        relus += l.relus_kept;
    }
    let per = |b: u64| b as f64 / relus.max(1) as f64;
    let p = model.predict(&Workload::of_run(run), &Link::lan());
    let model_total = (model.backend == run.backend.to_string()).then_some(
        p.offline_bytes_c2s + p.offline_bytes_s2c + p.online_bytes_c2s + p.online_bytes_s2c,
    );
    RingSaving {
        ring: run.ring,
        model_ring: Ring::new(model.ell, model.frac).unwrap_or_default(),
        relus,
        measured_offline_per_relu: per(off),
        measured_online_per_relu: per(on),
        model_offline_per_relu: model.offline_bytes_c2s.per_relu + model.offline_bytes_s2c.per_relu,
        model_online_per_relu: model.online_bytes_c2s.per_relu + model.online_bytes_s2c.per_relu,
        measured_total: (run.offline.bytes() + run.online.bytes()) as f64,
        model_total,
    }
}

fn pct(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.0} %", 100.0 * a / b)
    } else {
        "–".into()
    }
}

impl fmt::Display for RingSaving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, m) = (self.ring, self.model_ring);
        writeln!(
            f,
            "ring ℓ = {}, f = {} against ℓ = {}, f = {} (measured in this run / computed from the cost model's per-ReLU bytes):",
            r.ell, r.frac, m.ell, m.frac
        )?;
        writeln!(
            f,
            "  per ReLU offline: {:.0} B measured vs {:.0} B computed ({}); online: {:.0} B vs {:.0} B ({})",
            self.measured_offline_per_relu,
            self.model_offline_per_relu,
            pct(self.measured_offline_per_relu, self.model_offline_per_relu),
            self.measured_online_per_relu,
            self.model_online_per_relu,
            pct(self.measured_online_per_relu, self.model_online_per_relu)
        )?;
        match self.model_total {
            Some(t) => write!(
                f,
                "  whole inference ({} ReLUs): {:.2} MB measured vs {:.2} MB computed at ℓ = {} ({})",
                self.relus,
                self.measured_total / 1e6,
                t / 1e6,
                m.ell,
                pct(self.measured_total, t)
            ),
            None => write!(
                f,
                "  whole inference: {:.2} MB measured (the cost model was fitted on another backend; totals not compared)",
                self.measured_total / 1e6
            ),
        }
    }
}

/// The saving line `pibench run` prints when its ring is not the default one: the comparison
/// with the cost model at `path`, or why there is none.
pub fn saving_note(run: &RunResult, path: &std::path::Path) -> Option<String> {
    if run.ring == Ring::default() {
        return None;
    }
    Some(match CostModel::load(path) {
        Err(e) => format!(
            "ring ℓ = {}, f = {}: no comparison with ℓ = 64 ({e}; `cargo run --release` writes reports/costmodel.json, or pass --costmodel)",
            run.ring.ell, run.ring.frac
        ),
        Ok(m) if (m.ell, m.frac) == (run.ring.ell, run.ring.frac) => format!(
            "the cost model {} was fitted at this same ring; no saving to show",
            path.display()
        ),
        Ok(m) => ring_saving(run, &m).to_string(),
    })
}
