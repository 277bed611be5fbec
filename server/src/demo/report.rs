//! The demo's report: one JSON document (`--json`) and the summary table.
//!
//! JSON shape (camelCase): `scenario` (`healthy` | `bad`), `version`,
//! `fallbackVersion`, `finalStatus`, `finalPercentage`, `limits`, `installs {total,
//! joinedLate, lateInFirstStage, lateInFirstStageOnFallback, byVersion}`, `rounds [...]`, `health {version: {installs, withErrors,
//! withCrashes, errorRate, crashRate}}`, `analytics {sampleRate, sampledInstalls, eventsSent,
//! days [{date, dau, dauEstimate, sessions, sessionsEstimate}]}`, `decisions [Decision]`,
//! `verification {installs, verified, onRelease, onFallback, allVerified, failed}`,
//! `downloads {updates, deltaUpdates, fallbacks {reason: n}, downloadedBytes, fullBytes,
//! savedBytes, savedPercent}`, `launchFailures`, `failures`, `url`, `dashboardUrl`, `workDir`,
//! `seed`, `wallSeconds`, `meanStepMs`,
//! `installsDetail [{install, installId, version, filesVerified, reason?, updates,
//! deltaUpdates, downloadedBytes, fullBytes}]`.
//!
//! Every rate (limits, health, decisions) is in percent, as in the server's rollout answers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use railgun_core::update::RolloutPolicy;
use serde::Serialize;

use super::control::{Decision, Tally};

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoReport {
    /// `healthy` or `bad`.
    pub scenario: &'static str,
    /// App.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// The release under rollout.
    pub version: String,
    /// Its fallback.
    pub fallback_version: String,
    /// `active`, `halted` or `complete`.
    pub final_status: String,
    /// Percentage at the end.
    pub final_percentage: f64,
    /// The rollout limits in the manifests.
    pub limits: Limits,
    /// Installs.
    pub installs: Installs,
    /// One entry per round of launches.
    pub rounds: Vec<RoundSummary>,
    /// Health per version, as the installs reported it.
    pub health: BTreeMap<String, HealthSummary>,
    /// Analytics as the server counts it.
    pub analytics: AnalyticsSummary,
    /// The decision log.
    pub decisions: Vec<Decision>,
    /// Every alert the server sent (its in-process receiver), firing and resolved.
    pub alerts: Vec<super::alerts::SentAlert>,
    /// Every install's files against its artifact.
    pub verification: Verification,
    /// What the fleet's updates downloaded against what full downloads would have cost.
    pub downloads: Downloads,
    /// Launches that failed.
    pub launch_failures: u64,
    /// The first of them.
    pub failures: Vec<Failure>,
    /// Server URL.
    pub url: String,
    /// Dashboard URL with the read token in the fragment.
    pub dashboard_url: String,
    /// Temporary folder.
    pub work_dir: String,
    /// Seed.
    pub seed: u64,
    /// Wall time of the simulation, seconds.
    pub wall_seconds: f64,
    /// Mean wall time of a launch's steps, milliseconds (concurrent launches overlap).
    pub mean_step_ms: StepTimes,
    /// Per install.
    pub installs_detail: Vec<InstallDetail>,
}

/// Mean wall time per launch of each step, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTimes {
    /// Opening the client store.
    pub store_open: f64,
    /// Check, download, verify, apply.
    pub update: f64,
    /// Health monitor start.
    pub health_start: f64,
    /// Analytics session (building the client and recording).
    pub analytics: f64,
    /// Analytics shutdown (commit and upload).
    pub analytics_shutdown: f64,
    /// Health shutdown (report sent).
    pub health_shutdown: f64,
}

impl StepTimes {
    /// Means of the summed step times over `n` launches.
    pub fn mean(sums: &[std::time::Duration; 6], n: u32) -> Self {
        let m = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / f64::from(n.max(1));
        Self {
            store_open: m(sums[0]),
            update: m(sums[1]),
            health_start: m(sums[2]),
            analytics: m(sums[3]),
            analytics_shutdown: m(sums[4]),
            health_shutdown: m(sums[5]),
        }
    }
}

/// Rollout limits (rates in percent, as the server's rollout answers).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Stages.
    pub stages: Vec<f64>,
    /// Hours per stage.
    pub stage_hours: f64,
    /// Error rate limit, percent.
    pub max_error_rate: f64,
    /// Crash rate limit, percent.
    pub max_crash_rate: f64,
    /// Installs before any decision.
    pub min_installs: u64,
}

impl Limits {
    /// From a manifest's policy.
    pub fn of(p: &RolloutPolicy) -> Self {
        Self {
            stages: p.stages.clone(),
            stage_hours: p.stage_hours,
            max_error_rate: crate::percent::of(p.max_error_rate),
            max_crash_rate: crate::percent::of(p.max_crash_rate),
            min_installs: p.min_installs,
        }
    }
}

/// Install counts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Installs {
    /// All.
    pub total: u64,
    /// Joined in the second round.
    pub joined_late: u64,
    /// Of those, installs whose bucket lies inside the release's first stage (they would
    /// have got the release had it not been halted).
    pub late_in_first_stage: u64,
    /// Of those, installs that run the fallback.
    pub late_in_first_stage_on_fallback: u64,
    /// Installed version (or `none`) → installs.
    pub by_version: BTreeMap<String, u64>,
}

/// One round of launches.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundSummary {
    /// Round number (a simulated day).
    pub round: u32,
    /// The demo clock at the launches.
    pub at: DateTime<Utc>,
    /// Rollout percentage served.
    pub percentage: f64,
    /// Rollout status served.
    pub status: String,
    /// Launches.
    pub launches: u64,
    /// Installs that moved to the release.
    pub updated_to_release: u64,
    /// Installs that moved to the fallback.
    pub updated_to_fallback: u64,
    /// Installs rolled back by a signed `rollbackFrom`.
    pub rolled_back: u64,
    /// Launches that failed.
    pub failures: u64,
    /// Versions that ran → launches.
    pub running: BTreeMap<String, u64>,
    /// Launches whose health reports were all acknowledged by shutdown.
    pub health_reports: u64,
    /// Percentage after the engine evaluated (absent for the last round).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage_after: Option<f64>,
    /// Status after the engine evaluated (absent for the last round).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_after: Option<String>,
}

/// Health of one version.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSummary {
    /// Installs that ran it.
    pub installs: u64,
    /// With at least one error.
    pub with_errors: u64,
    /// With at least one crash.
    pub with_crashes: u64,
    /// Share with errors, percent.
    pub error_rate: f64,
    /// Share with crashes, percent.
    pub crash_rate: f64,
}

impl HealthSummary {
    /// From counts.
    pub fn of(t: Tally) -> Self {
        let rate = |k: u64| {
            if t.installs == 0 {
                0.0
            } else {
                crate::percent::of(k as f64 / t.installs as f64)
            }
        };
        Self {
            installs: t.installs,
            with_errors: t.with_errors,
            with_crashes: t.with_crashes,
            error_rate: rate(t.with_errors),
            crash_rate: rate(t.with_crashes),
        }
    }
}

/// Analytics summary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSummary {
    /// Sampling rate.
    pub sample_rate: f64,
    /// Installs inside the sample.
    pub sampled_installs: u64,
    /// Events the server acknowledged.
    pub events_sent: u64,
    /// Per simulated day, from the server's query routes.
    pub days: Vec<AnalyticsDay>,
}

/// One day of analytics.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsDay {
    /// Date.
    pub date: String,
    /// Distinct sampled users.
    pub dau: u64,
    /// Scaled by the sample rate.
    pub dau_estimate: f64,
    /// Sessions.
    pub sessions: u64,
    /// Scaled.
    pub sessions_estimate: f64,
}

/// Verification of the installs.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Installs checked.
    pub installs: u64,
    /// Whose files match the artifact of the version they run.
    pub verified: u64,
    /// Of those, on the release.
    pub on_release: u64,
    /// Of those, on the fallback.
    pub on_fallback: u64,
    /// Every install verified.
    pub all_verified: bool,
    /// The first failures.
    pub failed: Vec<Failure>,
}

/// Bytes the updates of the fleet downloaded, as each Updater reported them
/// (`downloadedBytes`, `fullBytes` of each download).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Downloads {
    /// Updates, delta updates and bytes, summed over the fleet.
    #[serde(flatten)]
    pub totals: DownloadTotals,
    /// Updates that had a patch for the installed version and used the full artifact,
    /// per reason.
    pub fallbacks: BTreeMap<String, u64>,
    /// `fullBytes - downloadedBytes`.
    pub saved_bytes: u64,
    /// The saved share of `fullBytes`, percent.
    pub saved_percent: f64,
}

impl Downloads {
    /// Counts one update's download.
    pub fn add(&mut self, d: &super::fleet::DownloadCost) {
        self.totals.add(d);
        if let Some(r) = d.fallback {
            *self.fallbacks.entry(r.as_str().to_string()).or_default() += 1;
        }
        let t = &self.totals;
        self.saved_bytes = t.full_bytes.saturating_sub(t.downloaded_bytes);
        self.saved_percent = if t.full_bytes == 0 {
            0.0
        } else {
            crate::percent::of(self.saved_bytes as f64 / t.full_bytes as f64)
        };
    }
}

/// Updates and bytes downloaded (by one install, or the fleet).
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadTotals {
    /// Updates downloaded.
    pub updates: u64,
    /// Of those, applied from a delta patch.
    pub delta_updates: u64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Bytes full downloads would have cost.
    pub full_bytes: u64,
}

impl DownloadTotals {
    /// Counts one update's download.
    pub fn add(&mut self, d: &super::fleet::DownloadCost) {
        self.updates += 1;
        self.delta_updates += u64::from(d.delta);
        self.downloaded_bytes += d.downloaded_bytes;
        self.full_bytes += d.full_bytes;
    }
}

/// A failure.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Install.
    pub install: usize,
    /// Round.
    pub round: u32,
    /// What went wrong.
    pub error: String,
}

/// One install at the end.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallDetail {
    /// Index.
    pub install: usize,
    /// Start of its install id.
    pub install_id: String,
    /// Installed version or `none`.
    pub version: String,
    /// Files match the artifact.
    pub files_verified: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What its updates downloaded.
    #[serde(flatten)]
    pub bytes: DownloadTotals,
}

/// A rate already in percent (every rate of the report is).
fn pct(x: f64) -> String {
    format!("{x:.1} %")
}

fn opt_pct(x: Option<f64>) -> String {
    x.map(pct).unwrap_or_else(|| "-".into())
}

impl DemoReport {
    /// The human summary.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\nrailgun demo · {} release · {} installs · decisions by the server's rollout engine",
            self.scenario, self.installs.total,
        );
        let _ = writeln!(
            s,
            "limits: errors ≤ {}, crashes ≤ {}, ≥ {} installs, stages {:?} every {} h",
            pct(self.limits.max_error_rate),
            pct(self.limits.max_crash_rate),
            self.limits.min_installs,
            self.limits.stages,
            self.limits.stage_hours
        );
        let _ = writeln!(
            s,
            "\nRound Served         Launches  →{:<7} →{:<7} Failed",
            self.version, self.fallback_version
        );
        for r in &self.rounds {
            let _ = writeln!(
                s,
                "{:<4} {:>5} % {:<8} {:>8}  {:>8} {:>8} {:>6}",
                r.round,
                r.percentage,
                r.status,
                r.launches,
                r.updated_to_release,
                r.updated_to_fallback,
                r.failures
            );
        }
        let _ = writeln!(
            s,
            "\nVersion   Installed  Ran it (installs)  Error rate  Crash rate"
        );
        let versions: std::collections::BTreeSet<&String> = self
            .installs
            .by_version
            .keys()
            .chain(self.health.keys())
            .collect();
        for v in versions {
            let n = self.installs.by_version.get(v).copied().unwrap_or(0);
            let h = self.health.get(v);
            let _ = writeln!(
                s,
                "{:<9} {:>9}  {:>17}  {:>10}  {:>10}",
                v,
                n,
                h.map(|h| h.installs.to_string())
                    .unwrap_or_else(|| "-".into()),
                h.map(|h| pct(h.error_rate)).unwrap_or_else(|| "-".into()),
                h.map(|h| pct(h.crash_rate)).unwrap_or_else(|| "-".into()),
            );
        }
        let _ = writeln!(
            s,
            "\nAnalytics (sample rate {}, {} installs sampled, {} events acknowledged)",
            self.analytics.sample_rate, self.analytics.sampled_installs, self.analytics.events_sent
        );
        let _ = writeln!(s, "Date        DAU (est.)        Sessions (est.)");
        for d in &self.analytics.days {
            let _ = writeln!(
                s,
                "{}  {:>4} ({:>7.0})  {:>8} ({:>7.0})",
                d.date, d.dau, d.dau_estimate, d.sessions, d.sessions_estimate
            );
        }
        let _ = writeln!(s, "\nDecisions");
        for d in &self.decisions {
            let _ = writeln!(
                s,
                "  {} {:<9} {:>5} → {:<5} installs {:<5} errors {} [{}..{}]  crashes {} [{}..{}]  {} ({})",
                d.at.map(|t| t.format("%m-%d %H:%M").to_string()).unwrap_or_default(),
                d.action,
                d.from_percentage.map(|p| p.to_string()).unwrap_or_default(),
                d.to_percentage.map(|p| p.to_string()).unwrap_or_default(),
                d.installs.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                opt_pct(d.error_rate),
                opt_pct(d.error_lower),
                opt_pct(d.error_upper),
                opt_pct(d.crash_rate),
                opt_pct(d.crash_lower),
                opt_pct(d.crash_upper),
                d.reason.as_deref().unwrap_or(""),
                d.actor,
            );
        }
        let _ = writeln!(s, "\nAlerts sent ({})", self.alerts.len());
        for a in &self.alerts {
            let _ = writeln!(
                s,
                "  {} {:<17} {:<8} {:<8} {}",
                a.at, a.name, a.severity, a.status, a.title
            );
        }
        let v = &self.verification;
        let _ = writeln!(
            s,
            "\nFinal: {} at {} % · {} of {} installs verified ({} on {}, {} on {}) · {} launch failures · {:.1} s",
            self.final_status,
            self.final_percentage,
            v.verified,
            v.installs,
            v.on_release,
            self.version,
            v.on_fallback,
            self.fallback_version,
            self.launch_failures,
            self.wall_seconds
        );
        let d = &self.downloads;
        let t = &d.totals;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let _ = writeln!(
            s,
            "Downloads: {} updates, {} from delta patches · {:.1} MiB downloaded where full artifacts are {:.1} MiB: {:.1} MiB saved across the fleet ({:.1} %)",
            t.updates,
            t.delta_updates,
            mib(t.downloaded_bytes),
            mib(t.full_bytes),
            mib(d.saved_bytes),
            d.saved_percent
        );
        for (reason, n) in &d.fallbacks {
            let _ = writeln!(s, "  fell back to the full artifact: {reason} × {n}");
        }
        if self.installs.late_in_first_stage > 0 {
            let _ = writeln!(
                s,
                "{} installs joined in round 1; {} of them fall inside the first stage's cohort, and {} of those got the fallback {}",
                self.installs.joined_late,
                self.installs.late_in_first_stage,
                self.installs.late_in_first_stage_on_fallback,
                self.fallback_version
            );
        }
        for f in &self.failures {
            let _ = writeln!(
                s,
                "  launch failure: install {} day {}: {}",
                f.install, f.round, f.error
            );
        }
        for f in &v.failed {
            let _ = writeln!(s, "  not verified: install {}: {}", f.install, f.error);
        }
        let _ = writeln!(s, "Dashboard: {}", self.dashboard_url);
        s
    }
}
