//! The durable side of client health: open periods, closed reports and the running marker.
//!
//! Owns the `health_period` and `health_report` tables (migration 4 of the client store) and
//! two `kv` keys per app: `health.running:{app}` (the marker a clean shutdown clears; found
//! at the next start it means the previous run crashed) and `health.dropped:{app}` (reports
//! dropped: refused by the server, unreadable, or beyond the bound).
//!
//! A period collects counts per app, version and channel. Closing it turns the counts into a
//! [`HealthReport`] with a fresh, fixed id, stored as JSON in the same transaction that
//! deletes the period: from then on the report is only re-sent (same id) until the server
//! acknowledges it, so counts are never lost and never counted twice. It does no network I/O
//! and never reads the clock (times are passed in).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    validate_report, HealthReport, SessionEnds, SessionStatus, MAX_COUNT, MAX_PERIOD_DAYS,
};

/// Most closed reports kept while the server is unreachable (oldest dropped, counted).
pub const MAX_PENDING_REPORTS: u64 = 1_000;

/// Counts to add to a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub sessions: u64,
    pub errors: u64,
    pub crashes: u64,
    pub boot_reverts: u64,
    /// Sessions ended, by status: ok, errored, crashed, abnormal.
    pub ended: [u64; 4],
}

impl Counts {
    pub(crate) fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    /// One session that ended with `status`.
    pub(crate) fn session_end(status: SessionStatus) -> Self {
        let mut c = Counts::default();
        c.ended[status_index(status)] = 1;
        c
    }
}

fn status_index(s: SessionStatus) -> usize {
    match s {
        SessionStatus::Ok => 0,
        SessionStatus::Errored => 1,
        SessionStatus::Crashed => 2,
        SessionStatus::Abnormal => 3,
    }
}

/// What every report of this install carries besides the counts.
#[derive(Debug, Clone)]
pub(crate) struct ReportContext {
    pub app: String,
    pub machine_id: String,
    pub platform: String,
    pub arch: String,
}

/// The marker of a running process (`kv` `health.running:{app}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunningMarker {
    /// Id of the run that wrote it.
    pub run: Uuid,
    /// The version that was running.
    pub version: String,
    /// Its channel.
    pub channel: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// A handled error was recorded in this run's session (absent in markers of older
    /// versions: false).
    #[serde(default)]
    pub errored: bool,
    /// A crash was recorded in this run's session.
    #[serde(default)]
    pub crashed: bool,
}

impl RunningMarker {
    /// How the session ends if it ends now, cleanly.
    pub(crate) fn clean_end(&self) -> SessionStatus {
        if self.crashed {
            SessionStatus::Crashed
        } else if self.errored {
            SessionStatus::Errored
        } else {
            SessionStatus::Ok
        }
    }

    /// How the session ended when its marker is found at the next start: `crashed` if a
    /// crash was recorded, else `abnormal` (it never ended).
    pub(crate) fn unclean_end(&self) -> SessionStatus {
        if self.crashed {
            SessionStatus::Crashed
        } else {
            SessionStatus::Abnormal
        }
    }
}

/// A closed report waiting for the server.
#[derive(Debug, Clone)]
pub(crate) struct PendingReport {
    pub seq: i64,
    pub id: Uuid,
    pub body: String,
}

fn marker_key(app: &str) -> String {
    format!("health.running:{app}")
}

fn dropped_key(app: &str) -> String {
    format!("health.dropped:{app}")
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Adds `c` to the open period of `app`/`version`/`channel`, creating it starting at `start`
/// (an existing period keeps the earlier start).
pub(crate) fn add(
    conn: &Connection,
    app: &str,
    version: &str,
    channel: &str,
    c: Counts,
    start: DateTime<Utc>,
) -> rusqlite::Result<()> {
    if c.is_zero() {
        return Ok(());
    }
    conn.execute(
        "INSERT INTO health_period
            (app, version, channel, period_start, sessions, errors, crashes, boot_reverts,
             ended_ok, ended_errored, ended_crashed, ended_abnormal)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT(app, version, channel) DO UPDATE SET
            period_start = min(period_start, excluded.period_start),
            sessions = sessions + excluded.sessions,
            errors = errors + excluded.errors,
            crashes = crashes + excluded.crashes,
            boot_reverts = boot_reverts + excluded.boot_reverts,
            ended_ok = ended_ok + excluded.ended_ok,
            ended_errored = ended_errored + excluded.ended_errored,
            ended_crashed = ended_crashed + excluded.ended_crashed,
            ended_abnormal = ended_abnormal + excluded.ended_abnormal",
        params![
            app,
            version,
            channel,
            ms(start),
            clamp_i64(c.sessions),
            clamp_i64(c.errors),
            clamp_i64(c.crashes),
            clamp_i64(c.boot_reverts),
            clamp_i64(c.ended[0]),
            clamp_i64(c.ended[1]),
            clamp_i64(c.ended[2]),
            clamp_i64(c.ended[3]),
        ],
    )?;
    Ok(())
}

fn count32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX).min(MAX_COUNT)
}

/// Closes every open period of the app into a report ending at `now` (periods with all
/// counts zero are simply removed). Returns the ids of the new reports. A period that cannot
/// make a valid report (a corrupted row) is dropped and counted, never retried forever.
pub(crate) fn close_periods(
    conn: &Connection,
    ctx: &ReportContext,
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<Uuid>> {
    type Row = (String, String, i64, i64, i64, i64, i64, [i64; 4]);
    let rows: Vec<Row> = {
        let mut st = conn.prepare(
            "SELECT version, channel, period_start, sessions, errors, crashes, boot_reverts,
                    ended_ok, ended_errored, ended_crashed, ended_abnormal
             FROM health_period WHERE app = ?1 ORDER BY period_start",
        )?;
        let it = st.query_map([&ctx.app], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
            ))
        })?;
        it.collect::<rusqlite::Result<_>>()?
    };
    let mut ids = Vec::new();
    for (version, channel, start, sessions, errors, crashes, reverts, ended) in rows {
        conn.execute(
            "DELETE FROM health_period WHERE app = ?1 AND version = ?2 AND channel = ?3",
            params![ctx.app, version, channel],
        )?;
        if sessions <= 0
            && errors <= 0
            && crashes <= 0
            && reverts <= 0
            && ended.iter().all(|n| *n <= 0)
        {
            continue;
        }
        // A clock that went back, or a period longer than the server takes, is clamped.
        let period_end = now.max(from_ms(start));
        let period_start = from_ms(start).max(period_end - chrono::Duration::days(MAX_PERIOD_DAYS));
        let crashes = count32(crashes);
        let report = HealthReport {
            id: Uuid::now_v7(),
            machine_id: ctx.machine_id.clone(),
            app: ctx.app.clone(),
            version,
            channel,
            platform: ctx.platform.clone(),
            arch: ctx.arch.clone(),
            period_start,
            period_end,
            sessions: count32(sessions),
            errors: count32(errors),
            crashes,
            boot_reverts: count32(reverts).min(crashes),
            session_ends: Some(SessionEnds {
                ok: count32(ended[0]),
                errored: count32(ended[1]),
                crashed: count32(ended[2]),
                abnormal: count32(ended[3]),
            }),
        };
        if let Err(e) = validate_report(&report) {
            tracing::warn!(error = %e, "health period cannot make a valid report; dropped");
            add_dropped(conn, &ctx.app, 1)?;
            continue;
        }
        let body = serde_json::to_string(&report)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        conn.execute(
            "INSERT INTO health_report (app, id, created_at, body) VALUES (?1, ?2, ?3, ?4)",
            params![ctx.app, report.id.to_string(), ms(now), body],
        )?;
        ids.push(report.id);
    }
    // The bound: the oldest reports go first, counted.
    let pending = pending_count(conn, &ctx.app)?;
    if pending > MAX_PENDING_REPORTS {
        let excess = pending - MAX_PENDING_REPORTS;
        conn.execute(
            "DELETE FROM health_report WHERE seq IN
               (SELECT seq FROM health_report WHERE app = ?1 ORDER BY seq LIMIT ?2)",
            params![ctx.app, clamp_i64(excess)],
        )?;
        tracing::warn!(
            count = excess,
            "health reports dropped: too many waiting for the server"
        );
        add_dropped(conn, &ctx.app, excess)?;
    }
    Ok(ids)
}

/// The oldest report of `app` waiting for the server.
pub(crate) fn next_report(
    conn: &Connection,
    app: &str,
    after_seq: i64,
) -> rusqlite::Result<Option<PendingReport>> {
    let row: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT seq, id, body FROM health_report WHERE app = ?1 AND seq > ?2
             ORDER BY seq LIMIT 1",
            params![app, after_seq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.map(|(seq, id, body)| PendingReport {
        seq,
        id: id.parse().unwrap_or(Uuid::nil()),
        body,
    }))
}

/// Deletes an acknowledged report.
pub(crate) fn acknowledge(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM health_report WHERE seq = ?1", [seq])
        .map(|_| ())
}

/// Deletes a report the server refused, counting it as dropped.
pub(crate) fn drop_report(conn: &Connection, app: &str, seq: i64) -> rusqlite::Result<()> {
    let n = conn.execute("DELETE FROM health_report WHERE seq = ?1", [seq])?;
    add_dropped(conn, app, n as u64)
}

/// Reports of `app` waiting for the server.
pub(crate) fn pending_count(conn: &Connection, app: &str) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM health_report WHERE app = ?1",
        [app],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

fn add_dropped(conn: &Connection, app: &str, n: u64) -> rusqlite::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let old = dropped(conn, app)?;
    set_kv(conn, &dropped_key(app), &old.saturating_add(n).to_string())
}

/// Reports of `app` ever dropped (refused by the server, corrupted, beyond the bound).
pub(crate) fn dropped(conn: &Connection, app: &str) -> rusqlite::Result<u64> {
    Ok(get_kv(conn, &dropped_key(app))?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Forgets everything recorded for `app`: open periods, pending reports, the marker.
/// Returns how many reports were purged.
pub(crate) fn purge(conn: &Connection, app: &str) -> rusqlite::Result<u64> {
    conn.execute("DELETE FROM health_period WHERE app = ?1", [app])?;
    let n = conn.execute("DELETE FROM health_report WHERE app = ?1", [app])?;
    clear_marker(conn, app)?;
    Ok(n as u64)
}

/// The running marker of `app`, if a run left one.
pub(crate) fn marker(conn: &Connection, app: &str) -> rusqlite::Result<Option<RunningMarker>> {
    Ok(get_kv(conn, &marker_key(app))?.and_then(|v| serde_json::from_str(&v).ok()))
}

/// Sets the running marker of `app`.
pub(crate) fn set_marker(conn: &Connection, app: &str, m: &RunningMarker) -> rusqlite::Result<()> {
    let json = serde_json::to_string(m)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    set_kv(conn, &marker_key(app), &json)
}

/// Clears the running marker of `app` (a clean shutdown).
pub(crate) fn clear_marker(conn: &Connection, app: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM kv WHERE key = ?1", [marker_key(app)])
        .map(|_| ())
}

fn get_kv(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

fn set_kv(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO kv (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn ctx() -> ReportContext {
        ReportContext {
            app: "rail-gun".into(),
            machine_id: "b".repeat(64),
            platform: "linux".into(),
            arch: "x64".into(),
        }
    }

    fn t(h: i64) -> DateTime<Utc> {
        from_ms(1_800_000_000_000) + chrono::Duration::hours(h)
    }

    #[test]
    fn closing_turns_counts_into_one_fixed_report_per_version() {
        let store = Store::open_in_memory().expect("store");
        store
            .with_conn(|c| {
                let one = Counts {
                    errors: 2,
                    ..Counts::default()
                };
                add(c, "rail-gun", "1.0.0", "stable", one, t(0))?;
                add(c, "rail-gun", "1.0.0", "stable", one, t(1))?;
                add(
                    c,
                    "rail-gun",
                    "1.1.0",
                    "stable",
                    Counts {
                        crashes: 1,
                        boot_reverts: 1,
                        ..Counts::default()
                    },
                    t(1),
                )?;
                add(c, "other", "1.0.0", "stable", one, t(0))?;
                let ids = close_periods(c, &ctx(), t(2))?;
                assert_eq!(ids.len(), 2);
                assert_eq!(pending_count(c, "rail-gun")?, 2);
                assert_eq!(pending_count(c, "other")?, 0, "other apps are untouched");
                let first = next_report(c, "rail-gun", 0)?.expect("report");
                let r: HealthReport = serde_json::from_str(&first.body).expect("json");
                assert_eq!(r.id, first.id);
                assert_eq!((r.version.as_str(), r.errors), ("1.0.0", 4));
                assert_eq!((r.period_start, r.period_end), (t(0), t(2)));
                // Closing again makes nothing new: the counts moved into the reports.
                assert!(close_periods(c, &ctx(), t(3))?.is_empty());
                Ok(())
            })
            .expect("sql");
    }

    #[test]
    fn hostile_rows_are_clamped_or_dropped_not_retried() {
        let store = Store::open_in_memory().expect("store");
        store
            .with_conn(|c| {
                // Counts beyond the limit, reverts above crashes, a clock gone backwards.
                c.execute(
                    "INSERT INTO health_period (app, version, channel, period_start, sessions,
                     errors, crashes, boot_reverts) VALUES ('rail-gun','1.0.0','stable',?1,
                     1, 99999999999, 1, 5)",
                    [ms(t(5))],
                )?;
                // A version that is not semver (a corrupted row).
                c.execute(
                    "INSERT INTO health_period (app, version, channel, period_start, sessions,
                     errors, crashes, boot_reverts) VALUES ('rail-gun','latest','stable',?1,
                     1, 0, 0, 0)",
                    [ms(t(0))],
                )?;
                let ids = close_periods(c, &ctx(), t(1))?;
                assert_eq!(ids.len(), 1);
                let r: HealthReport =
                    serde_json::from_str(&next_report(c, "rail-gun", 0)?.expect("r").body)
                        .expect("json");
                validate_report(&r).expect("valid");
                assert_eq!(r.errors, MAX_COUNT);
                assert_eq!(r.boot_reverts, 1);
                assert_eq!(r.period_start, r.period_end);
                assert_eq!(dropped(c, "rail-gun")?, 1);
                Ok(())
            })
            .expect("sql");
    }

    #[test]
    fn the_pending_bound_drops_the_oldest_and_counts_them() {
        let store = Store::open_in_memory().expect("store");
        store
            .with_conn(|c| {
                for i in 0..(MAX_PENDING_REPORTS + 3) {
                    let one = Counts {
                        sessions: 1,
                        ..Counts::default()
                    };
                    add(c, "rail-gun", "1.0.0", "stable", one, t(0))?;
                    close_periods(c, &ctx(), t(0) + chrono::Duration::seconds(i as i64))?;
                }
                assert_eq!(pending_count(c, "rail-gun")?, MAX_PENDING_REPORTS);
                assert_eq!(dropped(c, "rail-gun")?, 3);
                Ok(())
            })
            .expect("sql");
    }
}
