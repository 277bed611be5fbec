//! Rollout health on the client, and the health report wire type shared with the server.
//!
//! Owns [`HealthReport`] (the body of `POST /analytics/health`, camelCase JSON), its answer
//! [`HealthResponse`], and [`validate_report`] (the same limits on both sides). The client
//! side lives in [`monitor`] ([`HealthMonitor`]: per-version error and crash counters, crash
//! detection from an unclean shutdown, boot-guard reverts counted as crashes, the periodic
//! durable sender) and its store tables in `ledger`.
//!
//! A report carries counts only: never error messages, stack traces, file paths or user
//! content. `machineId` is the hashed install id (see [`crate::identity`]), never the raw
//! machine id.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod ledger;
pub mod monitor;
mod worker;

pub use ledger::MAX_PENDING_REPORTS;
pub use monitor::{
    report_machine_id, HealthConfig, HealthError, HealthFlushReport, HealthMonitor,
    HealthMonitorBuilder, StartupHealth, DEFAULT_REPORT_INTERVAL, DEFAULT_SHUTDOWN_DEADLINE,
};

/// Largest count of any kind accepted in one report (a report covers one period of one
/// install; more than this is a broken or hostile client).
pub const MAX_COUNT: u32 = 1_000_000;
/// Longest period one report may cover.
pub const MAX_PERIOD_DAYS: i64 = 31;
/// Longest `app`, `channel`, `platform` or `arch` string.
pub const MAX_FIELD_LEN: usize = 64;

/// One install's health over one period, for one running version (`POST /analytics/health`).
///
/// ```
/// use railgun_core::health::{HealthReport, validate_report};
/// let json = r#"{"id":"0192f0c4-5b6e-7c1a-9f00-000000000001",
///   "machineId":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
///   "app":"railgun","version":"0.2.0","channel":"stable","platform":"linux","arch":"x64",
///   "periodStart":"2026-11-29T10:00:00Z","periodEnd":"2026-11-29T11:00:00Z",
///   "sessions":2,"errors":1,"crashes":0,"bootReverts":0}"#;
/// let report: HealthReport = serde_json::from_str(json).unwrap();
/// validate_report(&report).unwrap();
/// assert!(report.has_errors() && !report.has_crashes());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Report id (UUID), the dedup key: a retried report is counted once.
    pub id: Uuid,
    /// Hashed install id (64 lowercase hex characters).
    pub machine_id: String,
    /// Application name.
    pub app: String,
    /// The version that was running during the period (semver).
    pub version: String,
    /// Update channel of the install.
    pub channel: String,
    /// `darwin` | `win32` | `linux` (Node's names).
    pub platform: String,
    /// `x64` | `arm64` | `ia32`.
    pub arch: String,
    /// Start of the period the counts cover.
    pub period_start: DateTime<Utc>,
    /// End of the period the counts cover.
    pub period_end: DateTime<Utc>,
    /// App starts (sessions) of this version in the period.
    pub sessions: u32,
    /// Uncaught errors the app reported in the period.
    pub errors: u32,
    /// Crashes: unclean shutdowns detected at the next start, plus boot-guard reverts.
    pub crashes: u32,
    /// Of `crashes`, how many were boot-guard reverts away from this version.
    #[serde(default)]
    pub boot_reverts: u32,
}

impl HealthReport {
    /// Whether this install saw at least one error in the period.
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// Whether this install saw at least one crash in the period.
    pub fn has_crashes(&self) -> bool {
        self.crashes > 0
    }
}

/// The server's answer to `POST /analytics/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    /// `true` when the report was stored now.
    pub accepted: bool,
    /// `true` when a report with this id was already stored (the retry is acknowledged).
    pub duplicate: bool,
}

/// Why a health report is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthReportError {
    /// `machineId` is not 64 lowercase hex characters.
    #[error("machineId must be 64 lowercase hex characters (a hashed install id)")]
    BadMachineId,
    /// `version` is not semver.
    #[error("version {0:?} is not a semantic version")]
    BadVersion(String),
    /// A text field is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error(
        "field {field} is empty, longer than {MAX_FIELD_LEN} characters or not [A-Za-z0-9._-]"
    )]
    BadField {
        /// The field's wire name.
        field: &'static str,
    },
    /// The period ends before it starts or is longer than [`MAX_PERIOD_DAYS`].
    #[error("period {start} .. {end} is reversed or longer than {MAX_PERIOD_DAYS} days")]
    BadPeriod {
        /// Start.
        start: DateTime<Utc>,
        /// End.
        end: DateTime<Utc>,
    },
    /// A count is above [`MAX_COUNT`], or `bootReverts` > `crashes`.
    #[error("count {field} = {value} is out of range")]
    BadCount {
        /// The field's wire name.
        field: &'static str,
        /// The value sent.
        value: u32,
    },
}

fn plain_field(field: &'static str, v: &str) -> Result<(), HealthReportError> {
    let ok = !v.is_empty()
        && v.len() <= MAX_FIELD_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(HealthReportError::BadField { field })
    }
}

/// Checks a report: hashed machine id, semver version, plain short names, a sane period and
/// counts. The server applies the same rules at ingest.
pub fn validate_report(r: &HealthReport) -> Result<(), HealthReportError> {
    let hex_id = r.machine_id.len() == 64
        && r.machine_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex_id {
        return Err(HealthReportError::BadMachineId);
    }
    if semver::Version::parse(&r.version).is_err() {
        return Err(HealthReportError::BadVersion(r.version.clone()));
    }
    plain_field("app", &r.app)?;
    plain_field("channel", &r.channel)?;
    plain_field("platform", &r.platform)?;
    plain_field("arch", &r.arch)?;
    if r.period_end < r.period_start
        || r.period_end - r.period_start > Duration::days(MAX_PERIOD_DAYS)
    {
        return Err(HealthReportError::BadPeriod {
            start: r.period_start,
            end: r.period_end,
        });
    }
    for (field, value) in [
        ("sessions", r.sessions),
        ("errors", r.errors),
        ("crashes", r.crashes),
        ("bootReverts", r.boot_reverts),
    ] {
        if value > MAX_COUNT {
            return Err(HealthReportError::BadCount { field, value });
        }
    }
    if r.boot_reverts > r.crashes {
        return Err(HealthReportError::BadCount {
            field: "bootReverts",
            value: r.boot_reverts,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> HealthReport {
        HealthReport {
            id: Uuid::nil(),
            machine_id: "a".repeat(64),
            app: "railgun".into(),
            version: "0.2.0".into(),
            channel: "stable".into(),
            platform: "linux".into(),
            arch: "x64".into(),
            period_start: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            period_end: DateTime::from_timestamp(1_800_003_600, 0).unwrap(),
            sessions: 1,
            errors: 0,
            crashes: 1,
            boot_reverts: 1,
        }
    }

    #[test]
    fn valid_report_round_trips_in_camel_case() {
        let r = report();
        validate_report(&r).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"machineId\"") && json.contains("\"bootReverts\""));
        assert_eq!(serde_json::from_str::<HealthReport>(&json).unwrap(), r);
    }

    #[test]
    fn hostile_reports_are_refused_with_their_reason() {
        let mut r = report();
        r.machine_id = "raw-machine-uid".into();
        assert_eq!(validate_report(&r), Err(HealthReportError::BadMachineId));
        let mut r = report();
        r.version = "latest".into();
        assert!(matches!(
            validate_report(&r),
            Err(HealthReportError::BadVersion(_))
        ));
        let mut r = report();
        r.channel = "stable; DROP TABLE".into();
        assert_eq!(
            validate_report(&r),
            Err(HealthReportError::BadField { field: "channel" })
        );
        let mut r = report();
        std::mem::swap(&mut r.period_start, &mut r.period_end);
        assert!(matches!(
            validate_report(&r),
            Err(HealthReportError::BadPeriod { .. })
        ));
        let mut r = report();
        r.errors = MAX_COUNT + 1;
        assert!(matches!(
            validate_report(&r),
            Err(HealthReportError::BadCount {
                field: "errors",
                ..
            })
        ));
        let mut r = report();
        r.boot_reverts = 2;
        assert!(matches!(
            validate_report(&r),
            Err(HealthReportError::BadCount {
                field: "bootReverts",
                ..
            })
        ));
    }
}
