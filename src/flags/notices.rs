//! Announcements and maintenance windows: which are in force at a given time, for a given
//! app version. Pure functions of the config, the time and the version; the client adds the
//! persisted dismissals and `showOnce` state.

use chrono::{DateTime, Utc};
use semver::Version;
use serde::Serialize;

use super::eval::version_in_range;
use super::schema::{Announcement, Maintenance};

/// The emergency kill switch as the app sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KillSwitch {
    /// Whether every flag is forced off.
    pub active: bool,
    /// The message to show, if any.
    pub message: Option<String>,
}

/// The maintenance state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceStatus {
    /// Whether maintenance is in force now.
    pub active: bool,
    /// The message to show.
    pub message: Option<String>,
    /// Start of the window, if any.
    pub start_time: Option<DateTime<Utc>>,
    /// End of the window, if any.
    pub end_time: Option<DateTime<Utc>>,
    /// Whether the app may keep working read-only.
    pub allow_read_only: bool,
}

/// Maintenance is active when `active` is set, or when `now ∈ [startTime, endTime]` (both
/// inclusive; a window with only a start is open-ended, one with only an end is not a window).
pub fn maintenance_at(m: Option<&Maintenance>, now: DateTime<Utc>) -> MaintenanceStatus {
    let Some(m) = m else {
        return MaintenanceStatus::default();
    };
    let in_window = match (m.start_time, m.end_time) {
        (Some(s), Some(e)) => s <= now && now <= e,
        (Some(s), None) => s <= now,
        _ => false,
    };
    MaintenanceStatus {
        active: m.active || in_window,
        message: m.message.clone().filter(|s| !s.is_empty()),
        start_time: m.start_time,
        end_time: m.end_time,
        allow_read_only: m.allow_read_only,
    }
}

/// Whether an announcement is in its time window (inclusive) and version range at `now`.
/// An unparseable version bound hides it (better silent than shown to the wrong versions).
pub fn announcement_in_force(a: &Announcement, now: DateTime<Utc>, version: &Version) -> bool {
    a.start_time.is_none_or(|s| s <= now)
        && a.end_time.is_none_or(|e| now <= e)
        && version_in_range(version, a.min_version.as_deref(), a.max_version.as_deref())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn window_edges_are_inclusive() {
        let m = Maintenance {
            start_time: Some(t("2026-01-01T10:00:00Z")),
            end_time: Some(t("2026-01-01T12:00:00Z")),
            ..Default::default()
        };
        assert!(!maintenance_at(Some(&m), t("2026-01-01T09:59:59Z")).active);
        assert!(maintenance_at(Some(&m), t("2026-01-01T10:00:00Z")).active);
        assert!(maintenance_at(Some(&m), t("2026-01-01T12:00:00Z")).active);
        assert!(!maintenance_at(Some(&m), t("2026-01-01T12:00:01Z")).active);
        assert!(!maintenance_at(None, t("2026-01-01T11:00:00Z")).active);
    }
}
