//! The numbers the demo needs on its own side: rollout limits sized to the simulated fleet
//! (with the engine's Wilson bounds).
//!
//! Why sized: with the DESIGN's limits (5 % errors, 1 % crashes) a stage can only advance
//! once the 95 % Wilson upper bound of its crash rate is below 1 %, which takes ≥ 381
//! installs *with zero crashes* in the stage. A 10 % first stage of a 200- or 2000-install
//! demo can never prove that, so the demo writes limits into its manifests that a stage of
//! its size can decide, and prints them.

use railgun_core::update::RolloutPolicy;

/// Wilson score interval `(lower, upper)` of `k` in `n`: the rollout engine's own
/// [`crate::rollout::wilson::interval`], so the demo sizes its limits by the same rule.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    let b = crate::rollout::wilson::interval(k, n);
    (b.lower, b.upper)
}

/// Rounds up to the next hundredth.
fn ceil_hundredth(x: f64) -> f64 {
    (x * 100.0).ceil() / 100.0
}

/// Simulated rates of one release.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Share of sessions that report an error.
    pub error: f64,
    /// Share of sessions that crash.
    pub crash: f64,
}

/// A healthy release: 0.5 % of sessions see an error, 0.1 % crash.
pub const HEALTHY: Rates = Rates {
    error: 0.005,
    crash: 0.001,
};
/// The bad release of `--bad-release`: 30 % of sessions crash, 60 % see errors.
pub const BAD: Rates = Rates {
    error: 0.6,
    crash: 0.3,
};

/// Rollout policy for a fleet of `installs`: stages 10/25/50/100 of 24 h; each limit is
/// the Wilson upper bound of a healthy first stage (≈ 10 % of the fleet) at its expected
/// count rounded up, and never below the DESIGN's 5 % / 1 %;
/// `minInstalls` is half the expected first stage (at least 5).
pub fn policy_for(installs: usize) -> RolloutPolicy {
    let first = ((installs as f64) * 0.10).max(1.0) as u64;
    let limit = |rate: f64, floor: f64| {
        let k = (rate * first as f64).ceil() as u64;
        ceil_hundredth(wilson(k, first).1).max(floor)
    };
    RolloutPolicy {
        stages: vec![10.0, 25.0, 50.0, 100.0],
        stage_hours: 24.0,
        max_error_rate: limit(HEALTHY.error, 0.05),
        max_crash_rate: limit(HEALTHY.crash, 0.01),
        min_installs: (first / 2).max(5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_known_values() {
        let (l, u) = wilson(0, 20);
        assert!(l == 0.0 && (u - 0.1611).abs() < 1e-3, "{u}");
        let (l, u) = wilson(6, 20);
        assert!(
            (l - 0.1455).abs() < 1e-3 && (u - 0.5190).abs() < 1e-3,
            "{l} {u}"
        );
        assert_eq!(wilson(3, 0), (0.0, 1.0));
    }

    #[test]
    fn sized_limits_separate_a_bad_first_stage_from_a_healthy_one() {
        for installs in [200usize, 2000, 20_000] {
            let p = policy_for(installs);
            let n = (installs / 10) as u64;
            // A healthy stage with the expected counts advances...
            let e = (HEALTHY.error * n as f64).ceil() as u64;
            assert!(wilson(e, n).1 < p.max_error_rate, "{installs}: {p:?}");
            assert!(wilson(0, n).1 < p.max_crash_rate, "{installs}: {p:?}");
            // ...and a bad one halts on errors at the expected counts.
            let bad = (BAD.error * n as f64) as u64;
            assert!(wilson(bad, n).0 > p.max_error_rate, "{installs}: {p:?}");
        }
    }
}
