//! The rollout rules, pure: from a release's health numbers, its policy and the time spent
//! in its stage, what should happen next.
//!
//! Owns [`Health`] (installs, rates, Wilson bounds, the health score), [`judge`] (halt /
//! advance / complete), [`high_error_rate`] and [`low_adoption`]. No I/O and no clock
//! here: [`super::Rollouts::evaluate`] reads the store and the injected clock, calls these,
//! and records what they decide. The rules (issue 8, DESIGN.md "Rollout health"):
//!
//! * **halt** when installs ≥ `minInstalls` and the Wilson 95 % lower bound of the error
//!   rate > `maxErrorRate`, or of the crash rate > `maxCrashRate` (no halts on noise);
//! * **advance** to the next stage (10 → 25 → 50 → 100 % by default) when `stageHours`
//!   passed in the stage, installs ≥ `minInstalls` and both upper bounds are below the
//!   limits; at 100 % the same test marks the rollout **complete**;
//! * **high error rate** ([`high_error_rate`], the condition; `super::alerting` times it):
//!   installs ≥ `minInstalls` and the error rate above `maxErrorRate` — an alert once it
//!   held for 15 minutes, never a halt by itself;
//! * **low adoption** when, 48 h after the start, fewer than 10 % of the
//!   expected installs (the channel's installs reporting in the last 7 days, any version,
//!   × the percentage) run the release.
//!
//! It refuses to advance on missing evidence: too few installs never advance a stage.

use chrono::Duration;
use railgun_core::update::RolloutPolicy;
use serde::Serialize;

use super::wilson::{self, Bounds};
use crate::store::rollout::HealthCounts;

/// Hours after the start before low adoption is judged.
pub const LOW_ADOPTION_AFTER_HOURS: i64 = 48;
/// Days of health reports that make a channel's population (the installs expected at 100 %).
pub const LOW_ADOPTION_POPULATION_DAYS: i64 = 7;
/// Share of the expected installs below which adoption is low.
pub const LOW_ADOPTION_SHARE: f64 = 0.10;

/// A release's health: counts, rates and their 95 % Wilson bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Distinct installs that reported for the release.
    pub installs: u64,
    /// Installs with at least one error.
    pub with_errors: u64,
    /// Installs with at least one crash.
    pub with_crashes: u64,
    /// `with_errors / installs` (0 without installs).
    pub error_rate: f64,
    /// `with_crashes / installs` (0 without installs).
    pub crash_rate: f64,
    /// Wilson bounds of the error rate.
    pub error: Bounds,
    /// Wilson bounds of the crash rate.
    pub crash: Bounds,
    /// The health score, see [`health_score`].
    pub score: u8,
}

impl Health {
    /// The numbers of `counts` judged against `policy`'s limits.
    pub fn new(counts: HealthCounts, policy: &RolloutPolicy) -> Self {
        let n = counts.installs;
        let rate = |k: u64| {
            if n == 0 {
                0.0
            } else {
                k.min(n) as f64 / n as f64
            }
        };
        let error_rate = rate(counts.with_errors);
        let crash_rate = rate(counts.with_crashes);
        Self {
            installs: n,
            with_errors: counts.with_errors,
            with_crashes: counts.with_crashes,
            error_rate,
            crash_rate,
            error: wilson::interval(counts.with_errors, n),
            crash: wilson::interval(counts.with_crashes, n),
            score: health_score(error_rate, crash_rate, policy),
        }
    }
}

/// The health score, 0–100: how far the observed rates stay from their limits,
///
/// ```text
/// score = round(100 × clamp(1 − max(errorRate / maxErrorRate, crashRate / maxCrashRate), 0, 1))
/// ```
///
/// 100 = no errors and no crashes; 50 = one rate at half its limit; 0 = a rate at or above
/// its limit. It is a display number on point estimates; the halt and advance rules use the
/// Wilson bounds, not the score. A limit of 0 makes any occurrence score 0.
pub fn health_score(error_rate: f64, crash_rate: f64, policy: &RolloutPolicy) -> u8 {
    let ratio = |rate: f64, limit: f64| {
        if limit > 0.0 {
            rate / limit
        } else if rate > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    };
    let worst =
        ratio(error_rate, policy.max_error_rate).max(ratio(crash_rate, policy.max_crash_rate));
    (100.0 * (1.0 - worst).clamp(0.0, 1.0)).round() as u8
}

/// What the rules say about an active rollout.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Stop the rollout.
    Halt {
        /// Why, with the numbers.
        reason: String,
    },
    /// Move to the next stage.
    Advance {
        /// The next stage's percentage.
        to: f64,
        /// Why.
        reason: String,
    },
    /// The last stage is healthy: done.
    Complete {
        /// Why.
        reason: String,
    },
    /// Nothing to do yet.
    Wait,
}

/// What the rules know of one active rollout.
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    /// The release's policy.
    pub policy: &'a RolloutPolicy,
    /// The current percentage.
    pub percentage: f64,
    /// The release's health.
    pub health: &'a Health,
    /// Time spent in the current stage.
    pub in_stage: Duration,
}

/// The next stage above `percentage`, if any.
pub fn next_stage(stages: &[f64], percentage: f64) -> Option<f64> {
    stages.iter().copied().find(|s| *s > percentage + 1e-9)
}

/// Index (0-based) of the stage the percentage is in: the largest stage ≤ it (0 below all).
pub fn stage_index(stages: &[f64], percentage: f64) -> usize {
    stages
        .iter()
        .rposition(|s| *s <= percentage + 1e-9)
        .unwrap_or(0)
}

/// Applies the halt / advance / complete rules, in that order.
pub fn judge(i: RuleInput<'_>) -> Verdict {
    let p = i.policy;
    let h = i.health;
    let enough = h.installs >= p.min_installs;
    if enough && (h.error.lower > p.max_error_rate || h.crash.lower > p.max_crash_rate) {
        let which = if h.crash.lower > p.max_crash_rate {
            format!(
                "crash rate {:.2} % (95 % lower bound {:.2} %) above the {:.2} % limit",
                h.crash_rate * 100.0,
                h.crash.lower * 100.0,
                p.max_crash_rate * 100.0
            )
        } else {
            format!(
                "error rate {:.2} % (95 % lower bound {:.2} %) above the {:.2} % limit",
                h.error_rate * 100.0,
                h.error.lower * 100.0,
                p.max_error_rate * 100.0
            )
        };
        return Verdict::Halt {
            reason: format!("{which} over {} installs", h.installs),
        };
    }
    let stage_done = i.in_stage >= Duration::seconds((p.stage_hours * 3600.0).round() as i64);
    let healthy = h.error.upper < p.max_error_rate && h.crash.upper < p.max_crash_rate;
    if stage_done && enough && healthy {
        let reason = format!(
            "{} h in stage, {} installs, error upper bound {:.2} % < {:.2} %, crash upper bound {:.2} % < {:.2} %",
            p.stage_hours,
            h.installs,
            h.error.upper * 100.0,
            p.max_error_rate * 100.0,
            h.crash.upper * 100.0,
            p.max_crash_rate * 100.0
        );
        return match next_stage(&p.stages, i.percentage) {
            Some(to) => Verdict::Advance { to, reason },
            None => Verdict::Complete { reason },
        };
    }
    Verdict::Wait
}

/// The High Error Rate condition: `Some(reason)` when at least `minInstalls` installs
/// reported (the halt's guard: no alert on noise) and the error rate is above
/// `maxErrorRate` (5 % by default). `super::alerting` fires it once it held for 15 minutes.
pub fn high_error_rate(h: &Health, p: &RolloutPolicy) -> Option<String> {
    (h.installs >= p.min_installs && h.error_rate > p.max_error_rate).then(|| {
        format!(
            "error rate {:.2} % above the {:.2} % limit over {} installs (95 % bounds {:.2} – {:.2} %)",
            h.error_rate * 100.0,
            p.max_error_rate * 100.0,
            h.installs,
            h.error.lower * 100.0,
            h.error.upper * 100.0
        )
    })
}

/// The low-adoption rule: `Some(reason)` when, [`LOW_ADOPTION_AFTER_HOURS`] after the start,
/// the release has fewer than [`LOW_ADOPTION_SHARE`] of the installs expected from the
/// channel's reporting installs (`population`) at `percentage`.
pub fn low_adoption(
    installs: u64,
    population: u64,
    percentage: f64,
    since_start: Duration,
) -> Option<String> {
    if since_start < Duration::hours(LOW_ADOPTION_AFTER_HOURS) || population == 0 {
        return None;
    }
    let expected = population as f64 * percentage / 100.0;
    ((installs as f64) < LOW_ADOPTION_SHARE * expected).then(|| {
        format!(
            "{installs} installs after {} h, expected about {expected:.0} ({percentage} % of {population} reporting installs)",
            since_start.num_hours()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: u64, e: u64, c: u64) -> HealthCounts {
        HealthCounts {
            installs: n,
            with_errors: e,
            with_crashes: c,
        }
    }

    fn run(h: HealthCounts, pct: f64, hours: i64) -> Verdict {
        let p = RolloutPolicy::default();
        let health = Health::new(h, &p);
        judge(RuleInput {
            policy: &p,
            percentage: pct,
            health: &health,
            in_stage: Duration::hours(hours),
        })
    }

    #[test]
    fn halt_needs_enough_installs_and_a_conclusive_lower_bound() {
        // 2 errors in 3 installs: 67 %, but 3 < minInstalls (50): nothing.
        assert_eq!(run(counts(3, 2, 0), 10.0, 1), Verdict::Wait);
        // 80 in 1 000: lower bound 6.5 % > 5 %.
        assert!(matches!(
            run(counts(1000, 80, 0), 10.0, 1),
            Verdict::Halt { .. }
        ));
        // 60 in 1 000: 6 % observed, lower bound 4.7 %: not conclusive.
        assert_eq!(run(counts(1000, 60, 0), 10.0, 1), Verdict::Wait);
        // Crashes: 20 of 1 000 (2 %, lower bound 1.3 % > 1 %).
        assert!(matches!(
            run(counts(1000, 0, 20), 10.0, 1),
            Verdict::Halt { .. }
        ));
    }

    #[test]
    fn advance_only_after_the_stage_time_with_healthy_upper_bounds() {
        assert_eq!(run(counts(400, 0, 0), 10.0, 23), Verdict::Wait);
        assert!(
            matches!(run(counts(400, 0, 0), 10.0, 24), Verdict::Advance { to, .. } if to == 25.0)
        );
        assert!(
            matches!(run(counts(400, 0, 0), 50.0, 24), Verdict::Advance { to, .. } if to == 100.0)
        );
        assert!(matches!(
            run(counts(400, 0, 0), 100.0, 24),
            Verdict::Complete { .. }
        ));
        // No crash in 200 installs still leaves the crash upper bound at 1.9 % > 1 %.
        assert_eq!(run(counts(200, 0, 0), 10.0, 100), Verdict::Wait);
        // Too few installs: never advance.
        assert_eq!(run(counts(49, 0, 0), 10.0, 100), Verdict::Wait);
        // Upper bound of crashes not below 1 %: 1 crash in 200 → upper 2.8 %.
        assert_eq!(run(counts(200, 0, 1), 10.0, 100), Verdict::Wait);
        // Between stages (admin set 30 %): next is 50.
        assert!(
            matches!(run(counts(400, 0, 0), 30.0, 24), Verdict::Advance { to, .. } if to == 50.0)
        );
    }

    #[test]
    fn high_error_rate_needs_min_installs_and_a_rate_above_the_limit() {
        let p = RolloutPolicy::default();
        let h = |n, e| Health::new(counts(n, e, 0), &p);
        assert!(high_error_rate(&h(3, 2), &p).is_none(), "3 < minInstalls");
        assert!(
            high_error_rate(&h(1000, 50), &p).is_none(),
            "5 % is not above 5 %"
        );
        assert!(high_error_rate(&h(1000, 51), &p).is_some());
        assert!(high_error_rate(&h(50, 3), &p).is_some());
    }

    #[test]
    fn health_score_is_distance_to_the_limits() {
        let p = RolloutPolicy::default();
        assert_eq!(health_score(0.0, 0.0, &p), 100);
        assert_eq!(health_score(0.025, 0.0, &p), 50);
        assert_eq!(health_score(0.0, 0.005, &p), 50);
        assert_eq!(health_score(0.01, 0.008, &p), 20);
        assert_eq!(health_score(0.08, 0.0, &p), 0);
    }

    #[test]
    fn stages() {
        let s = [10.0, 25.0, 50.0, 100.0];
        assert_eq!(stage_index(&s, 10.0), 0);
        assert_eq!(stage_index(&s, 30.0), 1);
        assert_eq!(stage_index(&s, 100.0), 3);
        assert_eq!(stage_index(&s, 5.0), 0);
        assert_eq!(next_stage(&s, 5.0), Some(10.0));
        assert_eq!(next_stage(&s, 100.0), None);
    }

    #[test]
    fn low_adoption_after_two_days_below_a_tenth_of_expected() {
        assert_eq!(low_adoption(1, 1000, 10.0, Duration::hours(47)), None);
        assert!(low_adoption(9, 1000, 10.0, Duration::hours(48)).is_some());
        assert_eq!(low_adoption(10, 1000, 10.0, Duration::hours(48)), None);
        assert_eq!(low_adoption(0, 0, 10.0, Duration::hours(100)), None);
    }
}
