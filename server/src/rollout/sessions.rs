//! Release health with sessions (Sentry's model): per app, channel and version, how the
//! sessions of the release ended, the crash-free sessions and users, and the adoption.
//!
//! Owns [`ReleaseHealth`] (the numbers, built from a store row by [`ReleaseHealth::new`])
//! and [`Rollouts::release_health`] (every release seen lately, for the gauges). Definitions
//! (`docs/operations.md`, "Release health"):
//!
//! * **crash-free sessions** = 1 − crashed ÷ ended sessions (`ok` + `errored` + `crashed` +
//!   `abnormal`); an `abnormal` session (never ended, e.g. killed) is not a crash here, it
//!   is shown beside it. The rollout's crash *rate* stays the halt's conservative measure,
//!   where an unclean shutdown counts as a crash.
//! * **crash-free users** = 1 − installs with a crashed session ÷ installs with an ended
//!   session.
//! * **adoption** = the release's installs reporting in the last 24 h ÷ the app's installs
//!   reporting in the last 24 h (any channel and version); the shares of one app's versions
//!   may add up to more than 100 % when an install moved between versions in the window.
//!
//! It refuses to invent numbers: without an ended session the crash-free rates are `None`
//! (`null` in JSON, no gauge sample), never 100 %. Counts come from the per-install rows of
//! `health_installs`, so a retried report counts once.

use super::*;
use crate::store::rollout::ReleaseHealthRow;

/// Hours of reports that make an install "active" for adoption.
pub const ADOPTION_WINDOW_HOURS: i64 = 24;
/// Days a release must have reported in to be listed (gauges).
pub const RELEASE_HEALTH_LISTED_DAYS: i64 = 7;

/// Sessions of a release that ended, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SessionCounts {
    /// Ended cleanly without error or crash.
    pub ok: u64,
    /// Ended cleanly after a handled error.
    pub errored: u64,
    /// A crash was recorded in it (or the boot guard reverted from it).
    pub crashed: u64,
    /// Never ended and no crash recorded (found at the next start).
    pub abnormal: u64,
}

impl SessionCounts {
    /// Every ended session.
    pub fn total(&self) -> u64 {
        self.ok + self.errored + self.crashed + self.abnormal
    }
}

/// The release health of one app/channel/version. Its rates are fractions here and percent
/// in JSON ([`crate::percent`]), like the rest of the rollout answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseHealth {
    /// Sessions ended, by status.
    pub sessions: SessionCounts,
    /// 1 − crashed ÷ ended sessions; `None` without an ended session.
    #[serde(with = "crate::percent::option")]
    pub crash_free_sessions: Option<f64>,
    /// 1 − installs with a crashed session ÷ installs with an ended session.
    #[serde(with = "crate::percent::option")]
    pub crash_free_users: Option<f64>,
    /// The release's installs reporting in the last 24 h ÷ the app's.
    #[serde(with = "crate::percent")]
    pub adoption: f64,
    /// The release's installs reporting in the last 24 h.
    pub active_installs: u64,
    /// The app's installs reporting in the last 24 h (any channel and version).
    pub app_active_installs: u64,
}

impl ReleaseHealth {
    /// The numbers of a store row, with the app's active installs.
    pub fn new(row: &ReleaseHealthRow, app_active: u64) -> Self {
        let [ok, errored, crashed, abnormal] = row.sessions;
        let sessions = SessionCounts {
            ok,
            errored,
            crashed,
            abnormal,
        };
        let free = |bad: u64, all: u64| (all > 0).then(|| 1.0 - bad.min(all) as f64 / all as f64);
        Self {
            sessions,
            crash_free_sessions: free(crashed, sessions.total()),
            crash_free_users: free(row.users_crashed, row.users),
            adoption: if app_active == 0 {
                0.0
            } else {
                row.active.min(app_active) as f64 / app_active as f64
            },
            active_installs: row.active,
            app_active_installs: app_active,
        }
    }
}

impl Rollouts {
    fn adoption_since(&self) -> i64 {
        to_ms(self.now() - Duration::hours(ADOPTION_WINDOW_HOURS))
    }

    /// The release health of one app/channel/version at the injected clock's now.
    pub async fn release_health_of(
        &self,
        app: &str,
        channel: &str,
        version: &str,
    ) -> Result<ReleaseHealth, RolloutError> {
        let since = self.adoption_since();
        let store = &self.inner.store;
        let row = store
            .release_health_of(app.into(), channel.into(), version.into(), since)
            .await?;
        let app_active = store
            .app_active_installs(since)
            .await?
            .into_iter()
            .find(|(a, _)| a == app)
            .map_or(0, |(_, n)| n);
        Ok(ReleaseHealth::new(&row, app_active))
    }

    /// The release health of every app/channel/version that reported in the last 7 days,
    /// ordered by app, channel and version.
    pub async fn release_health(
        &self,
    ) -> Result<Vec<(ReleaseHealthRow, ReleaseHealth)>, RolloutError> {
        let since = self.adoption_since();
        let listed = to_ms(self.now() - Duration::days(RELEASE_HEALTH_LISTED_DAYS));
        let store = &self.inner.store;
        let apps: std::collections::HashMap<String, u64> = store
            .app_active_installs(since)
            .await?
            .into_iter()
            .collect();
        Ok(store
            .release_health(since, listed)
            .await?
            .into_iter()
            .map(|row| {
                let h = ReleaseHealth::new(&row, apps.get(&row.app).copied().unwrap_or(0));
                (row, h)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_free_rates_and_adoption_by_hand() {
        // 10 sessions: 6 ok, 2 errored, 1 crashed, 1 abnormal, over 4 installs, 1 of them
        // with the crash; 3 of the 4 active, of 12 active installs of the app.
        let row = ReleaseHealthRow {
            installs: 4,
            sessions: [6, 2, 1, 1],
            users: 4,
            users_crashed: 1,
            active: 3,
            ..ReleaseHealthRow::default()
        };
        let h = ReleaseHealth::new(&row, 12);
        assert_eq!(h.sessions.total(), 10);
        assert_eq!(h.crash_free_sessions, Some(0.9));
        assert_eq!(h.crash_free_users, Some(0.75));
        assert_eq!(h.adoption, 0.25);
        let json = serde_json::to_value(h).expect("json");
        assert_eq!(json["crashFreeSessions"], 90.0);
        assert_eq!(json["crashFreeUsers"], 75.0);
        assert_eq!(json["adoption"], 25.0);
        assert_eq!(json["sessions"]["abnormal"], 1);
    }

    #[test]
    fn no_ended_session_is_no_rate_not_a_perfect_one() {
        let h = ReleaseHealth::new(&ReleaseHealthRow::default(), 0);
        assert_eq!((h.crash_free_sessions, h.crash_free_users), (None, None));
        assert_eq!(h.adoption, 0.0);
        let json = serde_json::to_value(h).expect("json");
        assert!(json["crashFreeSessions"].is_null());
    }
}
