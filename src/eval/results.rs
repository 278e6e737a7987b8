//! What `pibench eval` reports: for clean, corrupted and adversarial images, how many were
//! classified correctly under each arithmetic (f32, the fixed-point oracle, the PI arithmetic).
//!
//! Everything is kept as counts, so that shards of one evaluation merge exactly (the merged
//! numbers are those of one unsharded run); accuracies, intervals and the NPA mean are derived
//! from the counts when the JSON is written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The arithmetics an image is classified under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arith {
    /// Plain f32, what PyTorch computes.
    F32,
    /// The deterministic fixed-point oracle (exact floor truncation everywhere).
    Fixed,
    /// The arithmetic private inference computes: local truncation on random shares.
    Pi,
}

/// Images judged and images classified correctly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Images judged.
    pub n: u64,
    /// Images whose predicted class equals the label.
    pub correct: u64,
}

impl Tally {
    /// Count one image.
    pub fn add(&mut self, correct: bool) {
        self.n += 1;
        self.correct += u64::from(correct);
    }

    /// The sum of two tallies.
    pub fn merged(self, other: Tally) -> Tally {
        Tally {
            n: self.n + other.n,
            correct: self.correct + other.correct,
        }
    }

    /// Accuracy in percent (0 when nothing was judged).
    pub fn percent(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            100.0 * self.correct as f64 / self.n as f64
        }
    }

    /// The 95% Wilson score interval of the accuracy, in percent.
    ///
    /// Wilson rather than the normal approximation: it stays inside [0, 100] and is honest at
    /// accuracies near 0 or 100 and for small `n`.
    pub fn ci95(&self) -> [f64; 2] {
        if self.n == 0 {
            return [0.0, 100.0];
        }
        const Z: f64 = 1.959_963_984_540_054;
        let n = self.n as f64;
        let p = self.correct as f64 / n;
        let z2 = Z * Z;
        let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
        let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
        [
            100.0 * (centre - half).max(0.0),
            100.0 * (centre + half).min(1.0),
        ]
    }
}

/// One tally per arithmetic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tallies {
    /// Plain f32.
    pub f32: Tally,
    /// Fixed-point oracle.
    pub fixed: Tally,
    /// PI arithmetic.
    pub pi: Tally,
}

impl Tallies {
    /// The tally of one arithmetic.
    pub fn get_mut(&mut self, a: Arith) -> &mut Tally {
        match a {
            Arith::F32 => &mut self.f32,
            Arith::Fixed => &mut self.fixed,
            Arith::Pi => &mut self.pi,
        }
    }

    /// The tally of one arithmetic.
    pub fn get(&self, a: Arith) -> Tally {
        match a {
            Arith::F32 => self.f32,
            Arith::Fixed => self.fixed,
            Arith::Pi => self.pi,
        }
    }

    /// The sum of two.
    pub fn merged(self, o: Tallies) -> Tallies {
        Tallies {
            f32: self.f32.merged(o.f32),
            fixed: self.fixed.merged(o.fixed),
            pi: self.pi.merged(o.pi),
        }
    }

    /// Count one image classified under all three arithmetics.
    pub fn add(&mut self, label: u32, f32: u32, fixed: u32, pi: u32) {
        self.f32.add(f32 == label);
        self.fixed.add(fixed == label);
        self.pi.add(pi == label);
    }
}

/// How the PI arithmetic departed from the fixed-point oracle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiEffects {
    /// Images classified (under f32 and PI).
    pub images: u64,
    /// Images whose PI class equals their f32 class.
    pub agree_f32_pi: u64,
    /// Images whose PI class equals their fixed-point class.
    pub agree_fixed_pi: u64,
    /// Images in which at least one local truncation wrapped (an error of about 2^(ℓ−t)
    /// instead of ±1 ulp: a catastrophic output).
    pub wrapped: u64,
    /// Wrapped images whose PI class differs from the fixed-point class.
    pub wrapped_changed_class: u64,
    /// Locally truncated elements that came out one ulp away from the exact floor.
    pub ulp_deviations: u64,
    /// Locally truncated elements in all.
    pub local_truncations: u64,
}

impl PiEffects {
    /// The sum of two.
    pub fn merged(self, o: PiEffects) -> PiEffects {
        PiEffects {
            images: self.images + o.images,
            agree_f32_pi: self.agree_f32_pi + o.agree_f32_pi,
            agree_fixed_pi: self.agree_fixed_pi + o.agree_fixed_pi,
            wrapped: self.wrapped + o.wrapped,
            wrapped_changed_class: self.wrapped_changed_class + o.wrapped_changed_class,
            ulp_deviations: self.ulp_deviations + o.ulp_deviations,
            local_truncations: self.local_truncations + o.local_truncations,
        }
    }
}

/// The counts of one evaluation (or one shard of it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// The test set as it is.
    pub clean: Tallies,
    /// Corruption → severity → tallies.
    pub corrupted: BTreeMap<String, BTreeMap<u8, Tallies>>,
    /// Adversarial examples (crafted on f32).
    pub adversarial: Tallies,
    /// PI against the other arithmetics, over every image judged.
    pub pi: PiEffects,
}

impl Counts {
    /// Add another shard's counts.
    pub fn merge(&mut self, other: &Counts) {
        self.clean = self.clean.merged(other.clean);
        self.adversarial = self.adversarial.merged(other.adversarial);
        self.pi = self.pi.merged(other.pi);
        for (name, sev) in &other.corrupted {
            let mine = self.corrupted.entry(name.clone()).or_default();
            for (&s, t) in sev {
                let e = mine.entry(s).or_default();
                *e = e.merged(*t);
            }
        }
    }

    /// NPA as RLNet computes it: for each corruption the mean accuracy over its severities, then
    /// the mean over corruptions. `None` without corrupted images.
    pub fn npa(&self, a: Arith) -> Option<f64> {
        if self.corrupted.is_empty() {
            return None;
        }
        let per: Vec<f64> = self
            .corrupted
            .values()
            .map(|sev| sev.values().map(|t| t.get(a).percent()).sum::<f64>() / sev.len() as f64)
            .collect();
        Some(per.iter().sum::<f64>() / per.len() as f64)
    }

    /// Every corrupted image pooled (for the interval of NPA: with equal counts per corruption and
    /// severity its accuracy equals NPA).
    pub fn corrupted_pooled(&self) -> Tallies {
        self.corrupted
            .values()
            .flat_map(|s| s.values())
            .fold(Tallies::default(), |acc, t| acc.merged(*t))
    }
}

/// One accuracy as written to JSON: the derived figures and the counts they come from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccuracyJson {
    /// Percent.
    pub accuracy: f64,
    /// 95% Wilson interval, percent.
    pub ci95: [f64; 2],
    /// Images judged.
    pub n: u64,
    /// Images classified correctly.
    pub correct: u64,
}

impl From<Tally> for AccuracyJson {
    fn from(t: Tally) -> Self {
        AccuracyJson {
            accuracy: t.percent(),
            ci95: t.ci95(),
            n: t.n,
            correct: t.correct,
        }
    }
}

/// The three arithmetics of one accuracy, as written to JSON.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripleJson {
    /// Plain f32.
    pub f32: AccuracyJson,
    /// Fixed-point oracle.
    pub fixed: AccuracyJson,
    /// PI arithmetic.
    pub pi: AccuracyJson,
}

impl From<Tallies> for TripleJson {
    fn from(t: Tallies) -> Self {
        TripleJson {
            f32: t.f32.into(),
            fixed: t.fixed.into(),
            pi: t.pi.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_known_values() {
        // 81 of 263: the worked example of Wilson (1927) as tabulated by Newcombe (1998),
        // interval 0.2553 to 0.3662.
        let t = Tally {
            n: 263,
            correct: 81,
        };
        let [lo, hi] = t.ci95();
        assert!((lo - 25.53).abs() < 0.01, "{lo}");
        assert!((hi - 36.62).abs() < 0.01, "{hi}");
        // All correct: the upper end is 100, the lower end below it.
        let all = Tally { n: 10, correct: 10 };
        let [lo, hi] = all.ci95();
        assert!((hi - 100.0).abs() < 1e-9, "{hi}");
        assert!((lo - 72.25).abs() < 0.01, "{lo}");
        assert_eq!(Tally::default().ci95(), [0.0, 100.0]);
    }

    #[test]
    fn npa_is_mean_of_corruption_means_and_merge_is_exact() {
        let mut a = Counts::default();
        let mut b = Counts::default();
        let t = |correct| Tallies {
            f32: Tally { n: 10, correct },
            fixed: Tally { n: 10, correct },
            pi: Tally { n: 10, correct },
        };
        a.corrupted
            .entry("fog".into())
            .or_default()
            .insert(1, t(10));
        a.corrupted.entry("fog".into()).or_default().insert(2, t(0));
        b.corrupted
            .entry("snow".into())
            .or_default()
            .insert(1, t(5));
        b.corrupted
            .entry("fog".into())
            .or_default()
            .insert(1, t(10));
        a.merge(&b);
        // fog: (20/20 + 0/10)/2 = 50 %, snow: 50 %.
        assert_eq!(a.npa(Arith::Pi), Some(50.0));
        assert_eq!(a.corrupted["fog"][&1].pi, Tally { n: 20, correct: 20 });
        assert_eq!(a.corrupted_pooled().f32, Tally { n: 40, correct: 25 });
        assert_eq!(Counts::default().npa(Arith::F32), None);
    }
}
