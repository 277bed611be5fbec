//! The SQL the two stores share, defined once: column lists, table lists and every
//! statement that is the same text on SQLite and PostgreSQL.
//!
//! Statements use PostgreSQL's `$N` placeholders. SQLite reads `$N` as a named parameter
//! and numbers parameters in the order they first appear, so a shared statement must name
//! `$1`, `$2`, … first in that order (a test checks every one); a statement that cannot is
//! written per store.
//!
//! The deliberate differences stay in the store they belong to, each with its reason there:
//! the migrations (types: `INTEGER`/`REAL` against `BIGINT`/`DOUBLE PRECISION`; migration 4
//! rebuilds `daily_feature_user` only on PostgreSQL), the ingest statements (`perf` owns
//! them: `INSERT OR IGNORE` row by row on SQLite, `UNNEST` batches on PostgreSQL), sums cast
//! with `::int8`/`::float8` on PostgreSQL (its `SUM` of integers is `numeric`), membership
//! by `= ANY($1)` on PostgreSQL against one lookup per id on SQLite, and the export
//! watermark (`export_seq` on SQLite, transaction ids on PostgreSQL: `export.rs` of each),
//! and the alert outbox's order and claim (`rowid` and one writer on SQLite; a `seq` column
//! and `FOR UPDATE SKIP LOCKED` on PostgreSQL: `alerts.rs` of each).

/// Tables that hold a `user_id` column (deletion and checks walk them all).
pub(super) const USER_TABLES: &[&str] = &[
    "events",
    "daily_users",
    "users",
    "daily_sessions",
    "daily_feature",
];

/// Daily rollup tables, purged by `day`.
pub(super) const DAILY_TABLES: &[&str] = &["daily_users", "daily_sessions", "daily_feature"];

macro_rules! release_cols {
    () => {
        "app, version, channel, envelope, manifest_sha256, created, pending_start, \
         pending_percentage, pending_fallback"
    };
}
macro_rules! rollout_cols {
    () => {
        "app, channel, version, percentage, status, fallback_version, rolled_back, policy, \
         started, stage_started, updated, high_error_alerted, low_adoption_alerted"
    };
}
macro_rules! channel_cols {
    () => {
        "app, channel, version, sequence, issued, expires, envelope"
    };
}

macro_rules! outbox_cols {
    () => {
        "id, destination, kind, severity, status, dedup_key, title, body, created, attempts, \
         next, delivered, failed, error"
    };
}
macro_rules! state_cols {
    () => {
        "key, kind, dedup_key, since, fired, alert"
    };
}

/// Columns of `releases`, in the order the row mappers read them.
pub(super) const RELEASE_COLS: &str = release_cols!();
/// Columns of `rollouts`, in the order the row mappers read them.
pub(super) const ROLLOUT_COLS: &str = rollout_cols!();
/// Columns of `channel_states`, in the order the row mappers read them.
pub(super) const CHANNEL_COLS: &str = channel_cols!();
/// Columns of `decisions`, in the order the row mappers read them.
pub(super) const DECISION_COLS: &str = "id, at, app, channel, version, action, actor, \
    from_percentage, to_percentage, installs, error_rate, error_lower, error_upper, \
    crash_rate, crash_lower, crash_upper, reason";

/// Session durations and sample rates of one day.
pub(super) const SESSIONS_OF_DAY: &str =
    "SELECT duration, sample_rate FROM daily_sessions WHERE day = $1";
/// The earliest day any `daily_feature` row still has: a `prev_day` before it was purged.
pub(super) const REACH_FLOOR: &str = "SELECT MIN(day) FROM feature_reach WHERE users > 0";
/// Every stored event.
pub(super) const COUNT_EVENTS: &str = "SELECT COUNT(*) FROM events";
/// Retention: users last seen before a day.
pub(super) const PURGE_USERS: &str = "DELETE FROM users WHERE last_day < $1";
/// Retention: reach buckets before a day.
pub(super) const PURGE_REACH: &str = "DELETE FROM feature_reach WHERE day < $1";
/// Buckets emptied by re-linking or deletion (no row, nothing to count).
pub(super) const PURGE_EMPTY_REACH: &str = "DELETE FROM feature_reach WHERE users = 0";

/// The earliest day any `daily_users` row still has (`active_reach`, like [`REACH_FLOOR`]).
pub(super) const ACTIVE_FLOOR: &str = "SELECT MIN(day) FROM active_reach WHERE users > 0";
/// Whether a user's sample rate changed between two days inside `$1..=$2` (the estimate
/// then needs each user's highest rate: the per-user rows answer).
pub(super) const ACTIVE_RATE_CHANGED: &str = "SELECT EXISTS (SELECT 1 FROM active_reach \
    WHERE day BETWEEN $1 AND $2 AND prev_day >= $1 AND rate_changed <> 0 AND users > 0)";
/// Distinct active users over `$1..=$2` and their estimate: each user counts on its first
/// day inside the range (the rows whose previous active day is before `$1`).
pub(super) const ACTIVE_TOTAL: &str = "SELECT CAST(COALESCE(SUM(users), 0) AS BIGINT), \
    CAST(COALESCE(SUM(users * (1.0 / sample_rate)), 0) AS DOUBLE PRECISION) FROM active_reach \
    WHERE day BETWEEN $1 AND $2 AND prev_day < $1";
/// Active users of each day of `$1..=$2` that has any, oldest first.
pub(super) const ACTIVE_BY_DAY: &str = "SELECT day, CAST(SUM(users) AS BIGINT), \
    CAST(SUM(users * (1.0 / sample_rate)) AS DOUBLE PRECISION) FROM active_reach \
    WHERE day BETWEEN $1 AND $2 GROUP BY day HAVING SUM(users) > 0 ORDER BY day";
/// Distinct active users over `$1..=$2` from the per-user rows (each user at its highest
/// sample rate): the reference answer, and the one used when a rate changed in the range.
pub(super) const ACTIVE_SCAN: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(1.0 / sr), 0) AS \
    DOUBLE PRECISION) FROM (SELECT user_id, MAX(sample_rate) AS sr FROM daily_users \
    WHERE day BETWEEN $1 AND $2 GROUP BY user_id) t";
/// One event name per day of `$2..=$3` from the `feature_reach` buckets (every row of a day
/// is one user of that day): events, their estimate, users, their estimate.
pub(super) const FEATURE_BY_DAY: &str = "SELECT day, CAST(SUM(events) AS BIGINT), \
    CAST(SUM(events / sample_rate) AS DOUBLE PRECISION), CAST(SUM(users) AS BIGINT), \
    CAST(SUM(users * (1.0 / sample_rate)) AS DOUBLE PRECISION) FROM feature_reach \
    WHERE name = $1 AND day BETWEEN $2 AND $3 GROUP BY day HAVING SUM(users) > 0 ORDER BY day";
/// Retention: the users first seen on `$1` active on each day of `$1..=$2` (days with none
/// left out), each user at its `users` rate, from the `cohort_active` buckets.
pub(super) const COHORT_BY_DAY: &str = "SELECT day, CAST(SUM(users) AS BIGINT), \
    CAST(SUM(users * (1.0 / sample_rate)) AS DOUBLE PRECISION) FROM cohort_active \
    WHERE first_day = $1 AND day BETWEEN $1 AND $2 GROUP BY day HAVING SUM(users) > 0 \
    ORDER BY day";
/// Erasure: removes a user's `cohort_active` contribution (before its rows are deleted).
pub(super) const COHORT_FORGET_USER: &str = "INSERT INTO cohort_active (first_day, day, \
    sample_rate, users) SELECT u.first_day, d.day, u.sample_rate, -COUNT(*) FROM users u \
    JOIN daily_users d ON d.user_id = u.user_id WHERE u.user_id = $1 \
    GROUP BY u.first_day, d.day, u.sample_rate ON CONFLICT (first_day, day, sample_rate) \
    DO UPDATE SET users = cohort_active.users + excluded.users";
/// Retention: cohort buckets before a day (the `daily_users` rows they count go too).
pub(super) const PURGE_COHORT: &str = "DELETE FROM cohort_active WHERE day < $1";
/// Cohort buckets emptied by moves or deletion.
pub(super) const PURGE_EMPTY_COHORT: &str = "DELETE FROM cohort_active WHERE users = 0";
/// Erasure: removes a user's `active_reach` contribution (before its rows are deleted).
pub(super) const ACTIVE_FORGET_USER: &str = "INSERT INTO active_reach (day, prev_day, \
    sample_rate, rate_changed, users) SELECT day, prev_day, sample_rate, rate_changed, -COUNT(*) \
    FROM daily_users WHERE user_id = $1 GROUP BY day, prev_day, sample_rate, rate_changed \
    ON CONFLICT (day, prev_day, sample_rate, rate_changed) DO UPDATE SET \
    users = active_reach.users + excluded.users";
/// Retention: active-user buckets before a day.
pub(super) const PURGE_ACTIVE_REACH: &str = "DELETE FROM active_reach WHERE day < $1";
/// Active-user buckets emptied by re-linking or deletion.
pub(super) const PURGE_EMPTY_ACTIVE_REACH: &str = "DELETE FROM active_reach WHERE users = 0";

/// Distinct installs of a channel seen since a time.
pub(super) const ACTIVE_INSTALLS: &str = "SELECT COUNT(DISTINCT machine_id) FROM \
    health_installs WHERE app = $1 AND channel = $2 AND last_seen >= $3";
/// The columns of a release-health row ([`super::rollout::ReleaseHealthRow`]) over
/// `health_installs`, `$1` the adoption window's start. Sums cast to `BIGINT` (PostgreSQL's
/// `SUM` of integers is `numeric`).
macro_rules! release_health_cols {
    () => {
        "SELECT app, channel, version, CAST(COUNT(*) AS BIGINT),          CAST(COALESCE(SUM(CASE WHEN last_seen >= $1 THEN 1 ELSE 0 END), 0) AS BIGINT),          CAST(COALESCE(SUM(ended_ok), 0) AS BIGINT),          CAST(COALESCE(SUM(ended_errored), 0) AS BIGINT),          CAST(COALESCE(SUM(ended_crashed), 0) AS BIGINT),          CAST(COALESCE(SUM(ended_abnormal), 0) AS BIGINT),          CAST(COALESCE(SUM(CASE WHEN ended_ok + ended_errored + ended_crashed + ended_abnormal > 0          THEN 1 ELSE 0 END), 0) AS BIGINT),          CAST(COALESCE(SUM(CASE WHEN ended_crashed > 0 THEN 1 ELSE 0 END), 0) AS BIGINT)          FROM health_installs "
    };
}
/// Release health of every release seen since `$2` (adoption window from `$1`).
pub(super) const RELEASE_HEALTH: &str = concat!(
    release_health_cols!(),
    "GROUP BY app, channel, version HAVING MAX(last_seen) >= $2 ORDER BY app, channel, version"
);
/// Release health of one release (`$2` app, `$3` channel, `$4` version).
pub(super) const RELEASE_HEALTH_OF: &str = concat!(
    release_health_cols!(),
    "WHERE app = $2 AND channel = $3 AND version = $4 GROUP BY app, channel, version"
);
/// Distinct installs of each app reporting since `$1`.
pub(super) const APP_ACTIVE_INSTALLS: &str = "SELECT app, COUNT(DISTINCT machine_id) FROM \
    health_installs WHERE last_seen >= $1 GROUP BY app ORDER BY app";
/// Erasure: one machine's health reports.
pub(super) const DELETE_MACHINE_REPORTS: &str = "DELETE FROM health_reports WHERE machine_id = $1";
/// Erasure: one machine's install row.
pub(super) const DELETE_MACHINE_INSTALLS: &str =
    "DELETE FROM health_installs WHERE machine_id = $1";
/// Rows one machine still has (0 after an erasure).
pub(super) const MACHINE_ROWS: &str = "SELECT (SELECT COUNT(*) FROM health_reports WHERE \
    machine_id = $1) + (SELECT COUNT(*) FROM health_installs WHERE machine_id = $1)";

/// One release.
pub(super) const GET_RELEASE: &str = concat!(
    "SELECT ",
    release_cols!(),
    " FROM releases WHERE app = $1 AND version = $2"
);
/// One rollout.
pub(super) const GET_ROLLOUT: &str = concat!(
    "SELECT ",
    rollout_cols!(),
    " FROM rollouts WHERE app = $1 AND channel = $2 AND version = $3"
);
/// Every rollout, newest first.
pub(super) const LIST_ROLLOUTS: &str = concat!(
    "SELECT ",
    rollout_cols!(),
    " FROM rollouts ORDER BY started DESC, app, channel, version"
);
/// One channel state.
pub(super) const GET_CHANNEL: &str = concat!(
    "SELECT ",
    channel_cols!(),
    " FROM channel_states WHERE app = $1 AND channel = $2"
);
/// Every channel state.
pub(super) const LIST_CHANNELS: &str = concat!(
    "SELECT ",
    channel_cols!(),
    " FROM channel_states ORDER BY app, channel"
);

/// Columns of `alert_outbox` in the order of [`OutboxRow`](super::alerts::OutboxRow).
pub(super) const OUTBOX_COLS: &str = outbox_cols!();
/// Every alert state.
pub(super) const LIST_ALERT_STATES: &str =
    concat!("SELECT ", state_cols!(), " FROM alert_states ORDER BY key");
/// An alert state resolved.
pub(super) const DELETE_ALERT_STATE: &str = "DELETE FROM alert_states WHERE key = $1";
/// An alert state written (firing, or pending since a time).
pub(super) const UPSERT_ALERT_STATE: &str = concat!(
    "INSERT INTO alert_states (",
    state_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, \
     dedup_key = excluded.dedup_key, since = excluded.since, fired = excluded.fired, \
     alert = excluded.alert"
);
/// An alert queued for one destination; a row already there (the same alert) stays as is.
pub(super) const INSERT_OUTBOX: &str = concat!(
    "INSERT INTO alert_outbox (",
    outbox_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
     ON CONFLICT (id, destination) DO NOTHING"
);
/// The outcome of one delivery attempt: delivered, failed for good or retried at `next`
/// (`$1` to `$4`), for the alert `$5` at destination `$6`.
pub(super) const FINISH_ALERT: &str = "UPDATE alert_outbox SET delivered = $1, failed = $2, \
    next = $3, error = $4 WHERE id = $5 AND destination = $6";
/// Outbox rows neither delivered nor given up.
pub(super) const OUTBOX_PENDING: &str =
    "SELECT COUNT(*) FROM alert_outbox WHERE delivered IS NULL AND failed IS NULL";
/// Finished outbox rows (delivered or given up) raised before `$1`
/// ([`AlertStore::purge_alerts`](super::alerts::AlertStore::purge_alerts)).
pub(super) const PURGE_FINISHED: &str = "DELETE FROM alert_outbox WHERE created < $1 \
    AND (delivered IS NOT NULL OR failed IS NOT NULL)";

/// `DELETE FROM {table} WHERE user_id = $1` (a table of [`USER_TABLES`]).
pub(super) fn delete_user_rows(table: &str) -> String {
    format!("DELETE FROM {table} WHERE user_id = $1")
}

/// `SELECT COUNT(*) FROM {table} WHERE user_id = $1` (a table of [`USER_TABLES`]).
pub(super) fn count_user_rows(table: &str) -> String {
    format!("SELECT COUNT(*) FROM {table} WHERE user_id = $1")
}

/// `DELETE FROM {table} WHERE day < $1` (a table of [`DAILY_TABLES`]).
pub(super) fn purge_days(table: &str) -> String {
    format!("DELETE FROM {table} WHERE day < $1")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shared statement (the builders with their first table).
    fn all() -> Vec<String> {
        let mut v: Vec<String> = [
            SESSIONS_OF_DAY,
            REACH_FLOOR,
            COUNT_EVENTS,
            PURGE_USERS,
            PURGE_REACH,
            PURGE_EMPTY_REACH,
            ACTIVE_FLOOR,
            ACTIVE_RATE_CHANGED,
            ACTIVE_TOTAL,
            ACTIVE_BY_DAY,
            ACTIVE_SCAN,
            ACTIVE_FORGET_USER,
            FEATURE_BY_DAY,
            COHORT_BY_DAY,
            COHORT_FORGET_USER,
            PURGE_COHORT,
            PURGE_EMPTY_COHORT,
            PURGE_ACTIVE_REACH,
            PURGE_EMPTY_ACTIVE_REACH,
            ACTIVE_INSTALLS,
            RELEASE_HEALTH,
            RELEASE_HEALTH_OF,
            APP_ACTIVE_INSTALLS,
            DELETE_MACHINE_REPORTS,
            DELETE_MACHINE_INSTALLS,
            MACHINE_ROWS,
            GET_RELEASE,
            GET_ROLLOUT,
            LIST_ROLLOUTS,
            GET_CHANNEL,
            LIST_CHANNELS,
            LIST_ALERT_STATES,
            DELETE_ALERT_STATE,
            UPSERT_ALERT_STATE,
            INSERT_OUTBOX,
            FINISH_ALERT,
            OUTBOX_PENDING,
            PURGE_FINISHED,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(delete_user_rows(USER_TABLES[0]));
        v.push(count_user_rows(USER_TABLES[0]));
        v.push(purge_days(DAILY_TABLES[0]));
        v
    }

    /// `$N` placeholders in order of appearance.
    fn placeholders(sql: &str) -> Vec<usize> {
        let b = sql.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'$' {
                let digits: String = sql[i + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                out.push(digits.parse().expect("a number after $"));
                i += digits.len();
            }
            i += 1;
        }
        out
    }

    #[test]
    fn every_shared_statement_names_its_parameters_first_in_order() {
        for sql in all() {
            let mut next = 1;
            for n in placeholders(&sql) {
                assert!(n <= next, "{sql}: ${n} appears before ${next}");
                if n == next {
                    next += 1;
                }
            }
        }
    }

    #[test]
    fn sqlite_binds_shared_statements_by_position() {
        let c = rusqlite::Connection::open_in_memory().expect("sqlite");
        let got: (i64, i64, i64) = c
            .query_row("SELECT $1, $2, $1", [10, 20], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("query");
        assert_eq!(got, (10, 20, 10));
    }
}
