//! The cheapest ring that keeps accuracy: from an evaluation over several (ℓ, f), the ring
//! `pibench eval` recommends, beside the price of one garbled ReLU at every ring evaluated.
//!
//! Every bit of ℓ costs a garbled ReLU AND gates, OTs offline and a label online, so the
//! smallest ring whose PI accuracy stays with f32 is the cheapest protocol. The bytes of a ReLU
//! at a ring are not computed from a formula here: the caller measures them by running the
//! protocol's own ReLU steps ([`crate::job::ring_cost`], through `relu-bench`, which runs
//! [`crate::protocol::site`]), so they stay what the protocol sends whatever it becomes. This
//! module only judges; it measures nothing, so evaluation does not depend on `bench`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{EvalReport, RingSummary};
use crate::eval::results::TripleJson;
use crate::ring::Ring;

/// The default tolerance: PI may lose at most this many percentage points against f32.
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// The price of one garbled ReLU at one ring, measured by running the protocol's ReLU steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingCost {
    /// ℓ.
    pub ell: u32,
    /// f.
    pub frac: u32,
    /// AND gates of the ReLU circuit.
    pub and_gates: u64,
    /// Offline bytes per ReLU, client to server (the OT extension for the client's labels).
    pub offline_bytes_c2s: f64,
    /// Offline bytes per ReLU, server to client (the garbled tables and output ciphertexts).
    pub offline_bytes_s2c: f64,
    /// Online bytes per ReLU, client to server (the client's masked share).
    pub online_bytes_c2s: f64,
    /// Online bytes per ReLU, server to client (the server's input labels).
    pub online_bytes_s2c: f64,
}

impl RingCost {
    /// Offline bytes per ReLU, both directions.
    pub fn offline_bytes(&self) -> f64 {
        self.offline_bytes_c2s + self.offline_bytes_s2c
    }

    /// Online bytes per ReLU, both directions.
    pub fn online_bytes(&self) -> f64 {
        self.online_bytes_c2s + self.online_bytes_s2c
    }

    /// (ℓ, f).
    pub fn ring(&self) -> (u32, u32) {
        (self.ell, self.frac)
    }
}

/// How one ring fared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingVerdict {
    /// ℓ.
    pub ell: u32,
    /// f.
    pub frac: u32,
    /// The largest loss of PI against f32 over the measured sets (clean, NPA, adversarial),
    /// percentage points (negative when PI was more accurate on every set).
    pub worst_loss: f64,
    /// The set of that largest loss (`clean`, `NPA`, `adversarial`).
    pub worst_set: String,
    /// Images with a wrapped (catastrophic) local truncation.
    pub wrapped: u64,
    /// Within the tolerance on every set and no wrapped output.
    pub keeps_accuracy: bool,
    /// The garbled ReLU's price at this ring, when measured.
    pub cost: Option<RingCost>,
}

/// The recommendation of an evaluation over several rings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingChoice {
    /// The tolerance used, percentage points.
    pub tolerance: f64,
    /// Every ring evaluated, in the evaluation's order.
    pub rings: Vec<RingVerdict>,
    /// The recommended ring: the smallest ℓ that keeps accuracy and, among its f, the cheapest
    /// ReLU (the fewest offline bytes measured, then the largest f: the adder's AND gates do not
    /// depend on f, the output ciphertexts shrink with it). `None` when no ring passed.
    pub recommended: Option<Ring>,
    /// The ReLU at the default ring (ℓ = 64, f = 12), which the recommendation saves against.
    pub default_cost: Option<RingCost>,
}

/// The sets of one ring's summary: (name, accuracies).
fn sets(rs: &RingSummary) -> Vec<(&'static str, TripleJson)> {
    let mut v = vec![("clean", rs.clean)];
    if let Some(n) = &rs.npa {
        v.push(("NPA", n.mean));
    }
    if let Some(a) = rs.adversarial {
        v.push(("adversarial", a));
    }
    v
}

/// Judge every ring of `report` against `tolerance` (percentage points PI may lose against f32
/// on each set) and pick the cheapest that passes; `costs` are the measured ReLU prices (any
/// ring without one is judged but shown without a price; the default ring's is used for the
/// saving when present).
pub fn choose(report: &EvalReport, tolerance: f64, costs: &[RingCost]) -> RingChoice {
    let cost_of = |ell: u32, frac: u32| costs.iter().find(|c| c.ring() == (ell, frac)).copied();
    let rings: Vec<RingVerdict> = report
        .rings
        .iter()
        .map(|rs| {
            let (worst_set, worst_loss) = sets(rs)
                .into_iter()
                .map(|(name, t)| (name, t.f32.accuracy - t.pi.accuracy))
                .fold(("clean", f64::NEG_INFINITY), |best, x| {
                    if x.1 > best.1 {
                        x
                    } else {
                        best
                    }
                });
            // A tiny slack for accuracies that are equal but printed from different sums.
            let keeps_accuracy = worst_loss <= tolerance + 1e-9 && rs.wrapped == 0;
            RingVerdict {
                ell: rs.ell,
                frac: rs.frac,
                worst_loss,
                worst_set: worst_set.to_string(),
                wrapped: rs.wrapped,
                keeps_accuracy,
                cost: cost_of(rs.ell, rs.frac),
            }
        })
        .collect();
    let recommended = rings
        .iter()
        .filter(|v| v.keeps_accuracy)
        .min_by_key(|v| {
            let bytes = v
                .cost
                .map_or(u64::MAX, |c| c.offline_bytes().round() as u64);
            (v.ell, bytes, std::cmp::Reverse(v.frac))
        })
        .and_then(|v| Ring::new(v.ell, v.frac).ok());
    let d = Ring::default();
    RingChoice {
        tolerance,
        rings,
        recommended,
        default_cost: cost_of(d.ell, d.frac),
    }
}

/// Price every ring of `report` and the default ring with `measure` (reusing prices the report
/// already carries), then judge and recommend: `report.ring_choice`.
pub fn attach<E>(
    report: &mut EvalReport,
    tolerance: f64,
    mut measure: impl FnMut(Ring) -> Result<RingCost, E>,
) -> Result<(), E> {
    let mut costs: Vec<RingCost> = report
        .ring_choice
        .iter()
        .flat_map(|c| c.rings.iter().filter_map(|v| v.cost).chain(c.default_cost))
        .collect();
    let mut wanted: Vec<Ring> = report.counts.iter().map(|c| c.ring).collect();
    wanted.push(Ring::default());
    for ring in wanted {
        if !costs.iter().any(|c| c.ring() == (ring.ell, ring.frac)) {
            costs.push(measure(ring)?);
        }
    }
    report.ring_choice = Some(choose(report, tolerance, &costs));
    Ok(())
}

impl RingChoice {
    /// The recommended ring's verdict.
    pub fn recommended_verdict(&self) -> Option<&RingVerdict> {
        let r = self.recommended?;
        self.rings
            .iter()
            .find(|v| (v.ell, v.frac) == (r.ell, r.frac))
    }

    /// The table `pibench eval` prints under the accuracies.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nring choice (PI may lose at most {} points against f32 on every set, no wrapped output; \
             bytes per ReLU measured by running the protocol's ReLU steps):",
            self.tolerance
        );
        let _ = writeln!(
            out,
            "  {:>3} {:>3} {:>9} {:>14} {:>13} {:>22} {:>8}  verdict",
            "ℓ",
            "f",
            "AND/ReLU",
            "offline B/ReLU",
            "online B/ReLU",
            "worst PI loss (points)",
            "wrapped"
        );
        for v in &self.rings {
            let (gates, off, on) = v.cost.map_or(("–".into(), "–".into(), "–".into()), |c| {
                (
                    c.and_gates.to_string(),
                    format!("{:.0}", c.offline_bytes()),
                    format!("{:.0}", c.online_bytes()),
                )
            });
            let chosen = self
                .recommended
                .is_some_and(|r| (r.ell, r.frac) == (v.ell, v.frac));
            let _ = writeln!(
                out,
                "  {:>3} {:>3} {:>9} {:>14} {:>13} {:>22} {:>8}  {}",
                v.ell,
                v.frac,
                gates,
                off,
                on,
                format!("{:+.2} ({})", v.worst_loss, v.worst_set),
                v.wrapped,
                match (chosen, v.keeps_accuracy) {
                    (true, _) => "keeps accuracy — RECOMMENDED",
                    (false, true) => "keeps accuracy",
                    (false, false) => "loses accuracy",
                }
            );
        }
        match (self.recommended_verdict(), self.default_cost) {
            (None, _) => {
                let _ = writeln!(
                    out,
                    "  no ring evaluated keeps PI accuracy within {} points of f32 without a wrapped output",
                    self.tolerance
                );
            }
            (Some(v), d) => {
                let _ = write!(out, "  recommended: --ell {} --frac {}", v.ell, v.frac);
                if let (Some(c), Some(d)) = (v.cost, d) {
                    let _ = write!(
                        out,
                        "; per ReLU {} AND gates, {:.0} B offline + {:.0} B online against {} AND gates, \
                         {:.0} B + {:.0} B at ℓ = 64, f = 12 ({:.0} % of the bytes)",
                        c.and_gates,
                        c.offline_bytes(),
                        c.online_bytes(),
                        d.and_gates,
                        d.offline_bytes(),
                        d.online_bytes(),
                        100.0 * (c.offline_bytes() + c.online_bytes())
                            / (d.offline_bytes() + d.online_bytes()).max(1e-9)
                    );
                }
                let _ = writeln!(
                    out,
                    "\n  `pibench run MODEL --ell {} --frac {}` measures the whole inference at that ring",
                    v.ell, v.frac
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::results::{AccuracyJson, PiEffects};

    fn acc(p: f64) -> AccuracyJson {
        AccuracyJson {
            accuracy: p,
            ci95: [p - 1.0, p + 1.0],
            n: 500,
            correct: (p * 5.0) as u64,
        }
    }

    fn triple(f32: f64, pi: f64) -> TripleJson {
        TripleJson {
            f32: acc(f32),
            fixed: acc(pi),
            pi: acc(pi),
        }
    }

    fn summary(ell: u32, frac: u32, clean_pi: f64, adv_pi: f64, wrapped: u64) -> RingSummary {
        RingSummary {
            ell,
            frac,
            and_gates_per_relu: crate::gc::relu_select_circuit(ell as usize, frac as usize)
                .unwrap()
                .and_count(),
            clean: triple(96.0, clean_pi),
            npa: None,
            adversarial: Some(triple(80.0, adv_pi)),
            agreement_f32_pi: 100.0,
            wrapped,
            pi_effects: PiEffects::default(),
        }
    }

    fn report(rings: Vec<RingSummary>) -> EvalReport {
        let json = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/report_support/eval-fixture.json"
        ))
        .unwrap();
        let mut r: EvalReport = serde_json::from_str(&json).unwrap();
        r.rings = rings;
        r
    }

    fn cost(ell: u32, frac: u32) -> RingCost {
        let gates = crate::gc::relu_select_circuit(ell as usize, frac as usize)
            .unwrap()
            .and_count() as u64;
        RingCost {
            ell,
            frac,
            and_gates: gates,
            offline_bytes_c2s: 32.0 * f64::from(ell),
            offline_bytes_s2c: (32 * gates) as f64
                + crate::gc::arith::ArithOutputs::new(
                    ell as usize,
                    crate::gc::relu::relu_value_bits(ell as usize, frac as usize),
                )
                .unwrap()
                .instance_bytes() as f64,
            online_bytes_c2s: f64::from(ell.div_ceil(8)),
            online_bytes_s2c: 16.0 * f64::from(ell),
        }
    }

    #[test]
    fn the_smallest_ring_within_tolerance_without_wraps_is_recommended() {
        let r = report(vec![
            summary(64, 12, 96.0, 80.0, 0),
            summary(40, 10, 96.0, 79.95, 0),
            summary(40, 12, 96.0, 80.0, 0),
            // Smaller, but wrapped outputs disqualify it whatever its accuracy.
            summary(32, 8, 96.0, 80.0, 1),
            // Smaller, but loses 0.4 points on the adversarial set.
            summary(36, 10, 96.0, 79.6, 0),
        ]);
        let costs: Vec<RingCost> = [(64, 12), (40, 10), (40, 12), (32, 8), (36, 10)]
            .iter()
            .map(|&(l, f)| cost(l, f))
            .collect();
        let c = choose(&r, DEFAULT_TOLERANCE, &costs);
        // ℓ = 40 with f = 12 is cheaper than f = 10 (fewer value bits, fewer ciphertexts).
        assert_eq!(c.recommended, Some(Ring::new(40, 12).unwrap()));
        let v = &c.rings[4];
        assert!(!v.keeps_accuracy);
        assert!((v.worst_loss - 0.4).abs() < 1e-9 && v.worst_set == "adversarial");
        assert!(!c.rings[3].keeps_accuracy && c.rings[3].wrapped == 1);
        assert!(c.rings[1].keeps_accuracy, "0.05 points is within 0.1");
        assert_eq!(c.default_cost, Some(cost(64, 12)));
        let t = c.table();
        assert!(t.contains("recommended: --ell 40 --frac 12"), "{t}");
        assert!(
            t.contains("RECOMMENDED") && t.contains("loses accuracy"),
            "{t}"
        );
        // A looser tolerance lets the smaller ring through; none passes at a negative one.
        let loose = choose(&r, 0.5, &costs);
        assert_eq!(loose.recommended, Some(Ring::new(36, 10).unwrap()));
        let none = choose(&r, -1.0, &costs);
        assert_eq!(none.recommended, None);
        assert!(none.table().contains("no ring evaluated keeps"));
    }

    #[test]
    fn a_ring_without_a_price_is_still_judged() {
        let r = report(vec![summary(64, 12, 95.0, 80.0, 0)]);
        let c = choose(&r, DEFAULT_TOLERANCE, &[]);
        assert!(
            !c.rings[0].keeps_accuracy,
            "loses one point of clean accuracy"
        );
        assert_eq!(c.rings[0].cost, None);
        let c = choose(&r, 1.0, &[]);
        assert_eq!(c.recommended, Some(Ring::default()));
    }
}
