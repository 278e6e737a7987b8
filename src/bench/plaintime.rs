//! `pibench plain`: the plain reference inferences of a bundle, timed: f32 and fixed point, and
//! the fixed-point logit error against f32.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::run::{load_input, load_network, BenchError, InputSpec};
use crate::model::BnPath;
use crate::plain::{self, FixedNetwork};
use crate::ring::Ring;

/// Timings of the plain inferences.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlainTiming {
    /// Bundle.
    pub model: String,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Median seconds of one f32 inference.
    pub f32_seconds: f64,
    /// Median seconds of one fixed-point inference on the ring.
    pub fixed_seconds: f64,
    /// ℓ and f.
    pub ring: Ring,
    /// Largest |fixed − f32| logit difference over the inputs.
    pub max_logit_error: f64,
    /// Inputs whose fixed-point class equals the f32 class.
    pub same_class: usize,
    /// Inputs run.
    pub inputs: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Run `inputs` seeded inputs through both plain inferences.
pub fn plain_timing(
    model: &std::path::Path,
    bn: BnPath,
    ring: Ring,
    inputs: usize,
) -> Result<PlainTiming, BenchError> {
    let net = load_network(model, bn)?;
    let fixed = FixedNetwork::lower(&net, ring)?;
    let (mut tf, mut tx) = (Vec::new(), Vec::new());
    let (mut err, mut same) = (0.0f64, 0);
    for seed in 0..inputs.max(1) as u64 {
        let x = load_input(&InputSpec::Random { seed }, &net)?;
        let t = Instant::now();
        let f = plain::forward_f32(&net, &x)?;
        tf.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let q = fixed.forward(&x)?;
        tx.push(t.elapsed().as_secs_f64());
        err = q
            .logits
            .iter()
            .zip(&f)
            .map(|(a, &b)| (a - b as f64).abs())
            .fold(err, f64::max);
        let qc = q
            .logits
            .iter()
            .enumerate()
            .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
            .0;
        same += usize::from(qc == plain::f32::argmax(&f));
    }
    Ok(PlainTiming {
        model: model.display().to_string(),
        macs: net.macs(),
        f32_seconds: median(tf),
        fixed_seconds: median(tx),
        ring,
        max_logit_error: err,
        same_class: same,
        inputs: inputs.max(1),
    })
}
