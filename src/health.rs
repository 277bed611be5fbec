//! Rollout health on the client, and the health report wire type shared with the server.
//!
//! Owns [`HealthReport`] (the body of `POST /analytics/health`, camelCase JSON), its answer
//! [`HealthResponse`], and [`validate_report`] (the same limits on both sides).
//!
//! The specification's report `{version, channel, platform, arch, machineId, errors,
//! crashes, timestamp}` is a complete report: `id` is then derived from the content
//! ([`derived_report_id`]), so a retried report still counts once; the period is the instant
//! `timestamp`; `app` is left empty for the server to find (the only app with that version on
//! that channel); `sessions` and `bootReverts` are 0. Railgun clients send the full form
//! (`id`, `app`, `periodStart`/`periodEnd`, `sessions`, `sessionEnds`). The client
//! side lives in [`monitor`] ([`HealthMonitor`]: per-version error and crash counters, crash
//! detection from an unclean shutdown, boot-guard reverts counted as crashes, the periodic
//! durable sender) and its store tables in `ledger`.
//!
//! Release health follows Sentry's session model: each session (one run of the app, from
//! [`HealthMonitor::on_startup`] to [`HealthMonitor::shutdown`]) ends in one
//! [`SessionStatus`], and a report counts the sessions of its version that ended in its
//! period by status ([`SessionEnds`], optional on the wire: a report without it is still
//! accepted and simply adds nothing to the session numbers).
//!
//! A report carries counts only: never error messages, stack traces, file paths or user
//! content. `machineId` is the hashed install id (see [`crate::identity`]), never the raw
//! machine id.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::analytics::content_uuid;

mod ledger;
mod monitor;
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
/// Longest `machineId`.
pub const MAX_MACHINE_ID_LEN: usize = 128;
/// How far ahead of the server's clock a report's period may end.
pub const MAX_FUTURE_DAYS: i64 = 7;
/// How far behind the server's clock a report's period may start (raw reports are kept 90
/// days).
pub const MAX_PAST_DAYS: i64 = 90;

/// One install's health over one period, for one running version (`POST /analytics/health`).
///
/// ```
/// use railgun_core::health::{HealthReport, validate_report};
/// let json = r#"{"id":"0192f0c4-5b6e-7c1a-9f00-000000000001",
///   "machineId":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
///   "app":"railgun","version":"0.2.0","channel":"stable","platform":"linux","arch":"x64",
///   "periodStart":"2026-11-29T10:00:00Z","periodEnd":"2026-11-29T11:00:00Z",
///   "sessions":2,"errors":1,"crashes":0,"bootReverts":0,
///   "sessionEnds":{"ok":1,"errored":1,"crashed":0,"abnormal":0}}"#;
/// let report: HealthReport = serde_json::from_str(json).unwrap();
/// validate_report(&report).unwrap();
/// assert!(report.has_errors() && !report.has_crashes());
/// ```
///
/// The specification's form, without `id`, `app` or a period, reads too:
///
/// ```
/// use railgun_core::health::{HealthReport, validate_report};
/// let spec = r#"{"version": "0.2.0", "channel": "stable", "platform": "darwin",
///   "arch": "arm64", "machineId": "hashed-id", "errors": 0, "crashes": 0,
///   "timestamp": "2024-12-27T12:00:00Z"}"#;
/// let a: HealthReport = serde_json::from_str(spec).unwrap();
/// let b: HealthReport = serde_json::from_str(spec).unwrap();
/// validate_report(&a).unwrap();
/// assert_eq!(a.id, b.id); // derived from the content: a retry counts once
/// assert_eq!(a.period_start, a.period_end);
/// assert!(a.app.is_empty()); // the server finds it
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "WireReport")]
pub struct HealthReport {
    /// Report id (UUID), the dedup key: a retried report is counted once. Derived from the
    /// content ([`derived_report_id`]) when the report is sent without one.
    pub id: Uuid,
    /// Hashed install id: 64 lowercase hex from railgun clients; any 1–128 characters of
    /// `[A-Za-z0-9._-]` are accepted (the server stores a non-hex id only hashed, see
    /// [`report_machine_id`]).
    pub machine_id: String,
    /// Application name; empty when the report does not name it (the server then takes the
    /// only app that has this version on this channel).
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
    /// Sessions of this version that ended in the period, by how they ended (`None`: the
    /// client does not report sessions, e.g. the specification's form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_ends: Option<SessionEnds>,
}

/// How a session ended (Sentry's release-health statuses), worst last but one:
/// `crashed` outranks `abnormal`, which outranks `errored`, which outranks `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Ended cleanly ([`HealthMonitor::shutdown`]) with no error and no crash recorded.
    Ok,
    /// Ended cleanly after at least one handled error ([`HealthMonitor::record_error`]).
    Errored,
    /// A crash was recorded in it ([`HealthMonitor::record_crash`]), or the boot guard
    /// reverted away from its version.
    Crashed,
    /// Never ended and no crash recorded (killed, power loss, a hang the user ended): found
    /// at the next start by the running marker left in the client store.
    Abnormal,
}

impl SessionStatus {
    /// The wire name (`ok`, `errored`, `crashed`, `abnormal`).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Ok => "ok",
            SessionStatus::Errored => "errored",
            SessionStatus::Crashed => "crashed",
            SessionStatus::Abnormal => "abnormal",
        }
    }
}

/// Sessions ended in a period, by status (`sessionEnds` of a report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnds {
    /// Ended `ok`.
    #[serde(default)]
    pub ok: u32,
    /// Ended `errored`.
    #[serde(default)]
    pub errored: u32,
    /// Ended `crashed`.
    #[serde(default)]
    pub crashed: u32,
    /// Ended `abnormal`.
    #[serde(default)]
    pub abnormal: u32,
}

impl SessionEnds {
    /// Every session counted.
    pub fn total(&self) -> u64 {
        u64::from(self.ok)
            + u64::from(self.errored)
            + u64::from(self.crashed)
            + u64::from(self.abnormal)
    }

    /// The count of one status.
    pub fn get(&self, s: SessionStatus) -> u32 {
        match s {
            SessionStatus::Ok => self.ok,
            SessionStatus::Errored => self.errored,
            SessionStatus::Crashed => self.crashed,
            SessionStatus::Abnormal => self.abnormal,
        }
    }
}

/// [`HealthReport`] as it is read: the full form, or the specification's (`id`, `app`, the
/// period, `sessions` and `bootReverts` optional; `timestamp` instead of a period).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireReport {
    #[serde(default)]
    id: Option<Uuid>,
    machine_id: String,
    #[serde(default)]
    app: String,
    version: String,
    channel: String,
    platform: String,
    arch: String,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    period_start: Option<DateTime<Utc>>,
    #[serde(default)]
    period_end: Option<DateTime<Utc>>,
    #[serde(default)]
    sessions: u32,
    errors: u32,
    crashes: u32,
    #[serde(default)]
    boot_reverts: u32,
    #[serde(default)]
    session_ends: Option<SessionEnds>,
}

impl TryFrom<WireReport> for HealthReport {
    type Error = String;

    fn try_from(w: WireReport) -> Result<Self, String> {
        let (period_start, period_end) = match (w.period_start, w.period_end, w.timestamp) {
            (Some(s), Some(e), _) => (s, e),
            (None, None, Some(t)) => (t, t),
            (None, None, None) => {
                return Err("missing field `timestamp` (or `periodStart` and `periodEnd`)".into())
            }
            (Some(_), None, _) => {
                return Err("missing field `periodEnd` (it comes with `periodStart`)".into())
            }
            (None, Some(_), _) => {
                return Err("missing field `periodStart` (it comes with `periodEnd`)".into())
            }
        };
        let id = w.id.unwrap_or_else(|| {
            derived_report_id(
                &w.machine_id,
                &w.version,
                &w.channel,
                period_start,
                period_end,
            )
        });
        Ok(Self {
            id,
            machine_id: w.machine_id,
            app: w.app,
            version: w.version,
            channel: w.channel,
            platform: w.platform,
            arch: w.arch,
            period_start,
            period_end,
            sessions: w.sessions,
            errors: w.errors,
            crashes: w.crashes,
            boot_reverts: w.boot_reverts,
            session_ends: w.session_ends,
        })
    }
}

/// The identity of a report sent without `id`: [`content_uuid`] of `railgun-health-id:v1`
/// and machineId, version, channel, periodStart and periodEnd (Unix milliseconds, decimal;
/// both are `timestamp` in the specification's form), as the client sent them.
pub fn derived_report_id(
    machine_id: &str,
    version: &str,
    channel: &str,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
) -> Uuid {
    content_uuid(
        "railgun-health-id:v1",
        &[
            machine_id.as_bytes(),
            version.as_bytes(),
            channel.as_bytes(),
            period_start.timestamp_millis().to_string().as_bytes(),
            period_end.timestamp_millis().to_string().as_bytes(),
        ],
    )
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
    /// `machineId` is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("machineId must be 1-{MAX_MACHINE_ID_LEN} of [A-Za-z0-9._-] (a hashed install id, never the raw machine id)")]
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
    /// The period lies outside the window the server accepts around its clock.
    #[error("{field} {value} is more than {days} days {direction} the server's clock")]
    BadTime {
        /// The field's wire name (`periodStart`, `periodEnd`; both are `timestamp` in the
        /// specification's form).
        field: &'static str,
        /// The value sent.
        value: DateTime<Utc>,
        /// The limit in days.
        days: i64,
        /// `ahead of` or `behind`.
        direction: &'static str,
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
    let plain_id = !r.machine_id.is_empty()
        && r.machine_id.len() <= MAX_MACHINE_ID_LEN
        && r.machine_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !plain_id {
        return Err(HealthReportError::BadMachineId);
    }
    if semver::Version::parse(&r.version).is_err() {
        return Err(HealthReportError::BadVersion(r.version.clone()));
    }
    if !r.app.is_empty() {
        plain_field("app", &r.app)?;
    }
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
    ]
    .into_iter()
    .chain(r.session_ends.iter().flat_map(|e| {
        [
            ("sessionEnds.ok", e.ok),
            ("sessionEnds.errored", e.errored),
            ("sessionEnds.crashed", e.crashed),
            ("sessionEnds.abnormal", e.abnormal),
        ]
    })) {
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

/// Checks a report's period against the server's clock `now`: it may end at most
/// [`MAX_FUTURE_DAYS`] ahead and start at most [`MAX_PAST_DAYS`] behind.
pub fn validate_report_time(r: &HealthReport, now: DateTime<Utc>) -> Result<(), HealthReportError> {
    // `now` ± a few days is always inside chrono's range; the report's instants are compared,
    // never added to.
    if r.period_end > now + Duration::days(MAX_FUTURE_DAYS) {
        return Err(HealthReportError::BadTime {
            field: "periodEnd",
            value: r.period_end,
            days: MAX_FUTURE_DAYS,
            direction: "ahead of",
        });
    }
    if r.period_start < now - Duration::days(MAX_PAST_DAYS) {
        return Err(HealthReportError::BadTime {
            field: "periodStart",
            value: r.period_start,
            days: MAX_PAST_DAYS,
            direction: "behind",
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
            session_ends: Some(SessionEnds {
                crashed: 1,
                ..SessionEnds::default()
            }),
        }
    }

    #[test]
    fn valid_report_round_trips_in_camel_case() {
        let r = report();
        validate_report(&r).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"machineId\"") && json.contains("\"bootReverts\""));
        assert!(json.contains(r#""sessionEnds":{"ok":0,"errored":0,"crashed":1,"abnormal":0}"#));
        assert_eq!(serde_json::from_str::<HealthReport>(&json).unwrap(), r);
    }

    #[test]
    fn hostile_reports_are_refused_with_their_reason() {
        let mut r = report();
        r.machine_id = "raw machine uid; with spaces".into();
        assert_eq!(validate_report(&r), Err(HealthReportError::BadMachineId));
        r.machine_id = "a".repeat(MAX_MACHINE_ID_LEN + 1);
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

    const SPEC: &str = r#"{"version": "0.2.0", "channel": "stable", "platform": "darwin",
        "arch": "arm64", "machineId": "hashed-id", "errors": 0, "crashes": 0,
        "timestamp": "2024-12-27T12:00:00Z"}"#;

    #[test]
    fn the_specification_report_reads_with_a_derived_id() {
        let r: HealthReport = serde_json::from_str(SPEC).expect("spec report");
        validate_report(&r).expect("valid");
        let t: DateTime<Utc> = "2024-12-27T12:00:00Z".parse().expect("t");
        assert_eq!((r.period_start, r.period_end), (t, t));
        assert_eq!(
            r.id,
            derived_report_id("hashed-id", "0.2.0", "stable", t, t)
        );
        assert_eq!((r.sessions, r.boot_reverts, r.app.as_str()), (0, 0, ""));
        assert_eq!(
            r.session_ends, None,
            "the specification's form reports no sessions"
        );
        assert!(!serde_json::to_string(&r)
            .expect("json")
            .contains("sessionEnds"));
        let mut v: serde_json::Value = serde_json::from_str(SPEC).expect("json");
        v["timestamp"] = "2024-12-27T12:00:01Z".into();
        let later: HealthReport = serde_json::from_value(v).expect("later");
        assert_ne!(later.id, r.id, "another instant is another report");
    }

    #[test]
    fn a_report_needs_a_time_and_a_whole_period() {
        for (drop, add, missing) in [
            ("timestamp", None, "timestamp"),
            ("timestamp", Some("periodStart"), "periodEnd"),
            ("timestamp", Some("periodEnd"), "periodStart"),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(SPEC).expect("json");
            v.as_object_mut().expect("object").remove(drop);
            if let Some(f) = add {
                v[f] = "2024-12-27T12:00:00Z".into();
            }
            let e = serde_json::from_value::<HealthReport>(v).expect_err("incomplete");
            assert!(e.to_string().contains(&format!("`{missing}`")), "{e}");
        }
    }

    #[test]
    fn a_period_far_from_the_server_clock_is_refused_naming_the_field() {
        let now: DateTime<Utc> = "2024-12-27T12:00:00Z".parse().expect("t");
        let r: HealthReport = serde_json::from_str(SPEC).expect("spec report");
        validate_report_time(&r, now).expect("now");
        let mut v: serde_json::Value = serde_json::from_str(SPEC).expect("json");
        v["timestamp"] = "+200000-01-01T00:00:00Z".into();
        let far: HealthReport = serde_json::from_value(v.clone()).expect("parses");
        let e = validate_report_time(&far, now).expect_err("future");
        assert!(e.to_string().starts_with("periodEnd "), "{e}");
        v["timestamp"] = "-200000-01-01T00:00:00Z".into();
        let past: HealthReport = serde_json::from_value(v).expect("parses");
        let e = validate_report_time(&past, now).expect_err("past");
        assert!(e.to_string().starts_with("periodStart "), "{e}");
    }
}
