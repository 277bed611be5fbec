//! The fleet gauges of `/metrics`, computed on the engine's schedule (every engine run,
//! never per scrape): per app, channel and version of each channel's current rollout, the
//! firing alerts, the release health with sessions of every release that reported in the
//! last 7 days (`railgun_release_*`, see [`super::sessions`]), and the active users of the
//! analytics backend.
//!
//! Owns [`Rollouts::refresh_gauges`] and the names it exports (`docs/operations.md`,
//! "Metrics"; `deploy/prometheus/alerts.yml` and `deploy/grafana/railgun.json` read them).
//! Rates are fractions (`_ratio`), times are Unix seconds (`_timestamp_seconds`). Labels are
//! release names, alert kinds and event names only (`app`, `channel`, `version`, `status`,
//! `kind`, `severity`, `window`, `quantile`, `feature`, the top 20 event names): never an
//! install id, a user id or an event property.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::*;
use crate::store::day_of;

/// Features (event names) exported, the most used first.
const FEATURES_EXPORTED: u32 = 20;

/// The rollout statuses exported as a state set (`railgun_rollout_status{status}`).
const STATUSES: [&str; 3] = ["active", "halted", "complete"];

/// One gauge family: its help and its samples (label text, value).
type Family = (&'static str, Vec<(String, f64)>);

/// Gauges being built, by name.
#[derive(Default)]
struct Gauges(BTreeMap<&'static str, Family>);

impl Gauges {
    fn set(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], v: f64) {
        let text = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        self.0
            .entry(name)
            .or_insert((help, Vec::new()))
            .1
            .push((text, v));
    }

    fn render(&self) -> String {
        let mut s = String::new();
        for (name, (help, samples)) in &self.0 {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in samples {
                if labels.is_empty() {
                    let _ = writeln!(s, "{name} {v}");
                } else {
                    let _ = writeln!(s, "{name}{{{labels}}} {v}");
                }
            }
        }
        s
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Rollouts {
    /// Recomputes the fleet gauges from the database at the injected clock's now and hands
    /// them to `/metrics`.
    pub(super) async fn refresh_gauges(&self) -> Result<(), RolloutError> {
        let now = self.now();
        let mut g = Gauges::default();
        for super::alerting::Current {
            rollout: r,
            policy,
            health: h,
            population,
        } in self.current_rollouts().await?
        {
            let l = [
                ("app", r.app.as_str()),
                ("channel", r.channel.as_str()),
                ("version", r.version.as_str()),
            ];
            g.set(
                "railgun_rollout_percentage",
                "Share of installs offered the release, in percent.",
                &l,
                r.percentage,
            );
            for st in STATUSES {
                let with = [l[0], l[1], l[2], ("status", st)];
                g.set(
                    "railgun_rollout_status",
                    "1 for the rollout's status (active, halted, complete), else 0.",
                    &with,
                    f64::from(u8::from(r.status == st)),
                );
            }
            g.set(
                "railgun_rollout_installs",
                "Distinct installs that reported for the release.",
                &l,
                h.installs as f64,
            );
            g.set(
                "railgun_rollout_error_ratio",
                "Share of the release's installs that reported an error.",
                &l,
                h.error_rate,
            );
            g.set(
                "railgun_rollout_crash_ratio",
                "Share of the release's installs that reported a crash.",
                &l,
                h.crash_rate,
            );
            g.set(
                "railgun_rollout_error_ratio_limit",
                "The policy's maxErrorRate.",
                &l,
                policy.max_error_rate,
            );
            g.set(
                "railgun_rollout_crash_ratio_limit",
                "The policy's maxCrashRate.",
                &l,
                policy.max_crash_rate,
            );
            g.set(
                "railgun_rollout_min_installs",
                "The policy's minInstalls.",
                &l,
                policy.min_installs as f64,
            );
            g.set(
                "railgun_rollout_health_score",
                "The health score, 0-100.",
                &l,
                f64::from(h.score),
            );
            g.set(
                "railgun_rollout_crash_free_users_ratio",
                "Share of the release's installs without a crash.",
                &l,
                if h.installs == 0 {
                    1.0
                } else {
                    1.0 - h.crash_rate
                },
            );
            g.set("railgun_rollout_expected_installs", "Installs expected at the percentage: the channel's installs reporting in 7 days x the percentage.", &l, population as f64 * r.percentage / 100.0);
            g.set(
                "railgun_rollout_adoption_ratio",
                "Share of the channel's active installs (7 days) on the release.",
                &l,
                if population == 0 {
                    0.0
                } else {
                    h.installs as f64 / population as f64
                },
            );
            g.set(
                "railgun_rollout_started_timestamp_seconds",
                "When the rollout started (Unix seconds).",
                &l,
                r.started_ms as f64 / 1000.0,
            );
        }
        for (row, rh) in self.release_health().await? {
            let l = [
                ("app", row.app.as_str()),
                ("channel", row.channel.as_str()),
                ("version", row.version.as_str()),
            ];
            for (status, n) in [
                ("ok", rh.sessions.ok),
                ("errored", rh.sessions.errored),
                ("crashed", rh.sessions.crashed),
                ("abnormal", rh.sessions.abnormal),
            ] {
                let with = [l[0], l[1], l[2], ("status", status)];
                g.set(
                    "railgun_release_sessions",
                    "Sessions of the release that ended, by status (ok, errored, crashed, abnormal).",
                    &with,
                    n as f64,
                );
            }
            if let Some(v) = rh.crash_free_sessions {
                g.set(
                    "railgun_release_crash_free_sessions_ratio",
                    "Share of the release's ended sessions that did not crash.",
                    &l,
                    v,
                );
            }
            if let Some(v) = rh.crash_free_users {
                g.set(
                    "railgun_release_crash_free_users_ratio",
                    "Share of the release's installs with an ended session and no crashed session.",
                    &l,
                    v,
                );
            }
            g.set(
                "railgun_release_adoption_ratio",
                "Share of the app's installs reporting in 24 h that run the release (on this channel).",
                &l,
                rh.adoption,
            );
            g.set(
                "railgun_release_active_installs",
                "Installs of the release reporting in the last 24 h.",
                &l,
                rh.active_installs as f64,
            );
        }
        let mut firing: BTreeMap<&str, u32> = BTreeMap::new();
        for k in [
            AlertKind::RolloutHalted,
            AlertKind::HighErrorRate,
            AlertKind::LowAdoption,
            AlertKind::AnalyticsBacklog,
        ] {
            firing.insert(k.as_str(), 0);
        }
        for s in self.inner.store.alert_states().await? {
            if s.fired_ms.is_some() {
                *firing.entry(leak_kind(&s.kind)).or_default() += 1;
            }
        }
        for (kind, n) in firing {
            let severity = kind_severity(kind);
            g.set(
                "railgun_alerts_firing",
                "Alerts fired and not yet resolved, by kind.",
                &[("kind", kind), ("severity", severity)],
                f64::from(n),
            );
        }
        let today = day_of(now);
        for (window, days) in [("1d", 1), ("7d", 7), ("30d", 30)] {
            let c = self
                .inner
                .store
                .active_users(today - (days - 1), today)
                .await?;
            g.set("railgun_active_users", "Distinct active users over the window ending today (1d = DAU, 7d = WAU, 30d = MAU), estimated from sampling.", &[("window", window)], c.estimate);
        }
        let sessions = self.inner.store.sessions(today).await?;
        g.set(
            "railgun_sessions",
            "Sessions that ended today, estimated from sampling.",
            &[],
            sessions.estimate,
        );
        g.set(
            "railgun_session_duration_seconds",
            "Length of the sessions that ended today, by quantile.",
            &[("quantile", "0.5")],
            sessions.median_ms / 1000.0,
        );
        g.set(
            "railgun_session_duration_seconds",
            "Length of the sessions that ended today, by quantile.",
            &[("quantile", "0.9")],
            sessions.p90_ms / 1000.0,
        );
        for f in self
            .inner
            .store
            .feature_totals(today - 6, today, FEATURES_EXPORTED)
            .await?
        {
            g.set("railgun_feature_users", "Distinct users of a feature (event name) over the last 7 days, estimated; the top 20.", &[("feature", &f.name)], f.users_estimate);
            g.set(
                "railgun_feature_events",
                "Events of a feature (event name) over the last 7 days, estimated; the top 20.",
                &[("feature", &f.name)],
                f.events_estimate,
            );
        }
        self.inner.metrics.set_fleet(g.render());
        Ok(())
    }
}

/// The static name of a stored alert kind (unknown kinds are counted as `other`).
fn leak_kind(kind: &str) -> &'static str {
    [
        AlertKind::RolloutHalted,
        AlertKind::HighErrorRate,
        AlertKind::LowAdoption,
        AlertKind::AnalyticsBacklog,
    ]
    .into_iter()
    .map(AlertKind::as_str)
    .find(|k| *k == kind)
    .unwrap_or("other")
}

fn kind_severity(kind: &str) -> &'static str {
    [
        AlertKind::RolloutHalted,
        AlertKind::HighErrorRate,
        AlertKind::LowAdoption,
        AlertKind::AnalyticsBacklog,
    ]
    .into_iter()
    .find(|k| k.as_str() == kind)
    .map(|k| k.severity().as_str())
    .unwrap_or("warning")
}
