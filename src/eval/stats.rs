//! Small statistics of an evaluation: accuracies and agreement rates as proportions with their
//! 95% confidence interval.
//!
//! The interval is Wilson's score interval (Wilson 1927; "method 3" of Newcombe 1998): the set of
//! true proportions p for which the observed k of n is within z standard errors,
//! `(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)` with z = 1.95996 (two-sided 95%).
//! Unlike the normal ("Wald") interval it stays inside [0, 1], is not empty at k = 0 or k = n,
//! and keeps close to its nominal coverage for the small n of `--limit` runs and for accuracies
//! near 0 or 100%.

use serde::{Deserialize, Serialize};

/// The two-sided 95% quantile of the standard normal distribution.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Errors of the statistics helpers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatsError {
    /// Two per-image lists that should align have different lengths.
    #[error("cannot compare {what}: {left} against {right} entries")]
    LengthMismatch {
        /// What was compared.
        what: &'static str,
        /// Entries on the left.
        left: usize,
        /// Entries on the right.
        right: usize,
    },
}

/// k successes out of n trials: an accuracy (correct predictions of n images) or an agreement
/// rate (images on which two arithmetics predict the same class).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proportion {
    /// Successes.
    pub hits: u64,
    /// Trials.
    pub n: u64,
}

/// A proportion as results report it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The proportion in percent.
    pub accuracy: f64,
    /// Wilson's 95% interval in percent, `[low, high]`.
    pub ci95: [f64; 2],
    /// Trials.
    pub n: u64,
}

impl Proportion {
    /// `hits` out of `n`.
    pub fn new(hits: u64, n: u64) -> Self {
        Proportion { hits, n }
    }

    /// Count one more trial.
    pub fn record(&mut self, hit: bool) {
        self.hits += u64::from(hit);
        self.n += 1;
    }

    /// The union of two disjoint sets of trials (shards of one run merge exactly).
    pub fn merge(self, other: Proportion) -> Proportion {
        Proportion {
            hits: self.hits + other.hits,
            n: self.n + other.n,
        }
    }

    /// `hits / n` in percent; `None` without trials.
    pub fn percent(&self) -> Option<f64> {
        (self.n > 0).then(|| 100.0 * self.hits as f64 / self.n as f64)
    }

    /// Wilson's 95% score interval in percent; `None` without trials.
    pub fn ci95(&self) -> Option<(f64, f64)> {
        wilson_interval(self.hits, self.n, Z95).map(|(lo, hi)| (100.0 * lo, 100.0 * hi))
    }

    /// Percent, interval and n; `None` without trials.
    pub fn summary(&self) -> Option<Summary> {
        let (lo, hi) = self.ci95()?;
        Some(Summary {
            accuracy: self.percent()?,
            ci95: [lo, hi],
            n: self.n,
        })
    }
}

/// Wilson's score interval `(low, high)` for `hits` successes out of `n` at normal quantile `z`,
/// as fractions in [0, 1]; `None` when `n` is 0 or `hits > n`.
pub fn wilson_interval(hits: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 || hits > n {
        return None;
    }
    let nf = n as f64;
    let p = hits as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = z / denom * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    // The ends are exactly 0 and 1 at k = 0 and k = n; clamp the rounding.
    let lo = if hits == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if hits == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some((lo, hi))
}

/// The images whose two labels agree: `accuracy(predicted, truth)` or the agreement of two
/// arithmetics' classes. `what` names the comparison in the error.
pub fn matches(
    what: &'static str,
    left: &[usize],
    right: &[usize],
) -> Result<Proportion, StatsError> {
    if left.len() != right.len() {
        return Err(StatsError::LengthMismatch {
            what,
            left: left.len(),
            right: right.len(),
        });
    }
    let hits = left.iter().zip(right).filter(|(a, b)| a == b).count();
    Ok(Proportion::new(hits as u64, left.len() as u64))
}

/// Accuracy of `predicted` classes against the true `labels`.
pub fn accuracy(predicted: &[usize], labels: &[usize]) -> Result<Proportion, StatsError> {
    matches("predictions with labels", predicted, labels)
}

/// Agreement of two arithmetics' predicted classes on the same images (f32 against PI, ...).
pub fn agreement(a: &[usize], b: &[usize]) -> Result<Proportion, StatsError> {
    matches("two arithmetics' classes", a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_newcombe_1998_table_i() {
        // Newcombe, "Two-sided confidence intervals for the single proportion: comparison of
        // seven methods", Stat. Med. 17 (1998), Table I, method 3 (score, no continuity
        // correction), given to four places.
        for (k, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let (a, b) = wilson_interval(k, n, Z95).unwrap();
            assert!(close(a, lo) && close(b, hi), "{k}/{n}: ({a}, {b})");
        }
    }

    #[test]
    fn wilson_edge_cases() {
        assert_eq!(wilson_interval(0, 0, Z95), None);
        assert_eq!(wilson_interval(3, 2, Z95), None);
        let (lo, hi) = wilson_interval(10, 10, Z95).unwrap();
        assert_eq!(hi, 1.0);
        assert!(close(lo, 1.0 - 0.2775), "{lo}");
        // Symmetric around one half.
        let (lo, hi) = wilson_interval(50, 100, Z95).unwrap();
        assert!(close(lo, 0.4038) && close(hi, 0.5962), "({lo}, {hi})");
    }

    #[test]
    fn accuracy_and_agreement() {
        let p = accuracy(&[1, 2, 3, 4], &[1, 2, 0, 4]).unwrap();
        assert_eq!(p, Proportion::new(3, 4));
        assert_eq!(p.percent(), Some(75.0));
        let s = p.summary().unwrap();
        assert_eq!((s.accuracy, s.n), (75.0, 4));
        assert!(s.ci95[0] < 75.0 && 75.0 < s.ci95[1]);
        assert_eq!(
            agreement(&[1], &[1, 2]),
            Err(StatsError::LengthMismatch {
                what: "two arithmetics' classes",
                left: 1,
                right: 2
            })
        );
        assert_eq!(Proportion::default().percent(), None);
        assert_eq!(Proportion::default().summary(), None);
        let mut q = Proportion::default();
        q.record(true);
        q.record(false);
        assert_eq!(q.merge(p), Proportion::new(4, 6));
    }
}
