//! The confidence interval every accuracy and agreement rate of an evaluation is reported with
//! (the counts themselves are [`super::results::Tally`]).
//!
//! The interval is Wilson's score interval (Wilson 1927; "method 3" of Newcombe 1998): the set of
//! true proportions p for which the observed k of n is within z standard errors,
//! `(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)` with z = 1.95996 (two-sided 95%).
//! Unlike the normal ("Wald") interval it stays inside [0, 1], is not empty at k = 0 or k = n,
//! and keeps close to its nominal coverage for the small n of `--limit` runs and for accuracies
//! near 0 or 100%.

/// The two-sided 95% quantile of the standard normal distribution.
pub const Z95: f64 = 1.959_963_984_540_054;

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
}
