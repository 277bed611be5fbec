//! The Wilson score interval: how sure we are of a rate seen on few installs.
//!
//! Owns [`interval`] (95 %, `z = 1.959964`). With `k` of `n` installs affected, `p = k / n`,
//!
//! ```text
//! centre = (p + z²/2n) / (1 + z²/n)
//! half   = z / (1 + z²/n) · √(p(1−p)/n + z²/4n²)
//! ```
//!
//! and the interval is `[centre − half, centre + half]`, clamped to `[0, 1]`. Unlike the
//! normal approximation it stays inside `[0, 1]` and is wide when `n` is small, so "2 of 3
//! installs had errors" is not evidence of anything (lower bound 0.21, upper 0.94) while
//! "80 of 1 000" is (lower bound 0.065 > 5 %). It refuses nothing: `n = 0` is `[0, 1]`
//! (no knowledge), and `k > n` is treated as `k = n`.

/// `z` for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A rate and its 95 % Wilson bounds: fractions, written in percent ([`crate::percent`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Bounds {
    /// Lower bound.
    #[serde(with = "crate::percent")]
    pub lower: f64,
    /// Upper bound.
    #[serde(with = "crate::percent")]
    pub upper: f64,
}

/// The 95 % Wilson score interval of `k` successes in `n` trials.
pub fn interval(k: u64, n: u64) -> Bounds {
    if n == 0 {
        return Bounds {
            lower: 0.0,
            upper: 1.0,
        };
    }
    let n_f = n as f64;
    let p = k.min(n) as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    Bounds {
        lower: (centre - half).clamp(0.0, 1.0),
        upper: (centre + half).clamp(0.0, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-6, "{a} != {b}");
    }

    // Hand computation for 80 of 1 000: p = 0.08, z² = 3.841459, z²/n = 0.0038415,
    // centre = (0.08 + 0.0019207) / 1.0038415 = 0.0816072,
    // half = 1.959964 / 1.0038415 · √(0.08·0.92/1000 + 3.841459/4e6)
    //      = 1.952464 · √(0.0000745604) = 1.952464 · 0.0086348 = 0.0168592,
    // so [0.0647480, 0.0984664].
    #[test]
    fn eighty_errors_in_a_thousand() {
        let b = interval(80, 1000);
        close(b.lower, 0.064_748_04);
        close(b.upper, 0.098_466_44);
        assert!(b.lower > 0.05);
    }

    // 2 of 3: p = 0.6667, z²/n = 1.280486, centre = (0.666667 + 0.640243) / 2.280486
    // = 0.573083, half = 0.859449 · √(0.0740741 + 0.1067072) = 0.365423.
    #[test]
    fn two_of_three_is_wide() {
        let b = interval(2, 3);
        close(b.lower, 0.207_659_60);
        close(b.upper, 0.938_508_06);
    }

    #[test]
    fn edges() {
        let b = interval(0, 10);
        close(b.lower, 0.0);
        close(b.upper, 0.277_532_80);
        let b = interval(10, 10);
        close(b.lower, 0.722_467_20);
        close(b.upper, 1.0);
        let b = interval(1, 100);
        close(b.lower, 0.001_767_43);
        close(b.upper, 0.054_486_20);
        assert_eq!(
            interval(0, 0),
            Bounds {
                lower: 0.0,
                upper: 1.0
            }
        );
        assert_eq!(interval(7, 3), interval(3, 3));
    }

    #[test]
    fn narrows_with_more_installs() {
        let small = interval(5, 100);
        let large = interval(50, 1000);
        assert!(large.upper - large.lower < small.upper - small.lower);
        assert!(small.lower < 0.05 && small.upper > 0.05);
    }
}
