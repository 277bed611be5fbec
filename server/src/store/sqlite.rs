//! The SQLite store: one file, WAL, a writer connection and a reader connection.
//!
//! Owns the SQLite schema and its migrations (by `PRAGMA user_version`). Every call runs on
//! tokio's blocking pool, so the async server never waits on the file. Writes come from the
//! single ingest writer task, one transaction per group of requests (group commit); reads
//! use their own connection so queries do not queue behind writes (WAL).
//!
//! Durability: `synchronous=NORMAL` in WAL mode: a committed transaction survives a crash or
//! kill of the process (the case the ingest acknowledgement promises); only a power loss
//! can lose the last commits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

mod active;
mod alerts;
mod cohort;
mod config;
mod export;

use super::rollout::{
    from_ms, to_ms, ChannelRow, Decision, HealthCounts, HealthDeleted, HealthRow, ReleaseHealthRow,
    ReleaseRow, RolloutChange, RolloutRow, RolloutStore, ROLLOUT_CAN_DECIDE,
};
use super::sql::{
    self, CHANNEL_COLS, DAILY_TABLES, DECISION_COLS, RELEASE_COLS, ROLLOUT_COLS, USER_TABLES,
};
use super::{
    day_date, session_stats, AnalyticsStore, Count, DayCount, FeatureDay, FeatureTotal,
    PurgeCounts, Rollups, SessionStats, StoreError, StoreFuture, StoredEvent,
};

/// Recomputes `daily_feature.prev_day` / `rate_changed` and `feature_reach` from the
/// `daily_feature` rows (migration 4, and stores built by raw SQL).
macro_rules! rebuild_reach {
    () => {
        "UPDATE daily_feature SET prev_day = t.p, rate_changed = t.c FROM (
            SELECT name, day, user_id, LAG(day, 1, -1) OVER w AS p,
                   COALESCE(LAG(sample_rate) OVER w <> sample_rate, 0) AS c
            FROM daily_feature WINDOW w AS (PARTITION BY name, user_id ORDER BY day)) AS t
         WHERE daily_feature.name = t.name AND daily_feature.day = t.day
           AND daily_feature.user_id = t.user_id
           AND (daily_feature.prev_day <> t.p OR daily_feature.rate_changed <> t.c);
         DELETE FROM feature_reach;
         INSERT INTO feature_reach (day, name, prev_day, sample_rate, rate_changed, users, events)
         SELECT day, name, prev_day, sample_rate, rate_changed, COUNT(*), SUM(events)
         FROM daily_feature WHERE true GROUP BY day, name, prev_day, sample_rate, rate_changed;"
    };
}

/// Schema migrations; migration `i` moves `user_version` from `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: raw events and daily rollups.
    "CREATE TABLE events (
        id          TEXT PRIMARY KEY NOT NULL,
        name        TEXT NOT NULL,
        category    TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        session_id  TEXT NOT NULL,
        ts          INTEGER NOT NULL,
        day         INTEGER NOT NULL,
        app_version TEXT NOT NULL,
        platform    TEXT NOT NULL,
        arch        TEXT NOT NULL,
        channel     TEXT NOT NULL,
        properties  TEXT,
        duration    REAL,
        sequence    INTEGER NOT NULL,
        sample_rate REAL NOT NULL,
        received    INTEGER NOT NULL
     );
     CREATE INDEX events_ts ON events(ts);
     CREATE INDEX events_user ON events(user_id);
     CREATE TABLE daily_users (
        day         INTEGER NOT NULL,
        user_id     TEXT NOT NULL,
        sample_rate REAL NOT NULL,
        UNIQUE (day, user_id)
     );
     -- Covering index for DAU: a day's count and estimate read ~16 bytes per user.
     CREATE INDEX daily_users_day_rate ON daily_users(day, sample_rate);
     CREATE INDEX daily_users_user ON daily_users(user_id);
     CREATE TABLE users (
        user_id     TEXT PRIMARY KEY NOT NULL,
        first_day   INTEGER NOT NULL,
        last_day    INTEGER NOT NULL,
        sample_rate REAL NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX users_first_day ON users(first_day);
     CREATE TABLE daily_sessions (
        day         INTEGER NOT NULL,
        session_id  TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        duration    REAL NOT NULL,
        sample_rate REAL NOT NULL,
        PRIMARY KEY (day, session_id)
     ) WITHOUT ROWID;
     CREATE INDEX daily_sessions_user ON daily_sessions(user_id);
     CREATE TABLE daily_feature (
        name        TEXT NOT NULL,
        day         INTEGER NOT NULL,
        user_id     TEXT NOT NULL,
        events      INTEGER NOT NULL,
        sample_rate REAL NOT NULL,
        PRIMARY KEY (name, day, user_id)
     ) WITHOUT ROWID;
     CREATE INDEX daily_feature_user ON daily_feature(user_id);",
    // 2: rollout health: reports, releases, rollouts, channel states, decisions.
    "CREATE TABLE health_reports (
        id           TEXT PRIMARY KEY NOT NULL,
        machine_id   TEXT NOT NULL,
        app          TEXT NOT NULL,
        version      TEXT NOT NULL,
        channel      TEXT NOT NULL,
        platform     TEXT NOT NULL,
        arch         TEXT NOT NULL,
        period_start INTEGER NOT NULL,
        period_end   INTEGER NOT NULL,
        sessions     INTEGER NOT NULL,
        errors       INTEGER NOT NULL,
        crashes      INTEGER NOT NULL,
        boot_reverts INTEGER NOT NULL,
        received     INTEGER NOT NULL
     );
     -- One row per install and release, upserted at ingest: the rates read this, not the
     -- reports (an install sends one report an hour).
     CREATE TABLE health_installs (
        app        TEXT NOT NULL,
        channel    TEXT NOT NULL,
        version    TEXT NOT NULL,
        machine_id TEXT NOT NULL,
        errors     INTEGER NOT NULL,
        crashes    INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        PRIMARY KEY (app, channel, version, machine_id)
     ) WITHOUT ROWID;
     CREATE INDEX health_installs_seen ON health_installs(app, channel, last_seen);
     CREATE TABLE releases (
        app                TEXT NOT NULL,
        version            TEXT NOT NULL,
        channel            TEXT NOT NULL,
        envelope           TEXT NOT NULL,
        manifest_sha256    TEXT NOT NULL,
        created            INTEGER NOT NULL,
        pending_start      INTEGER NOT NULL,
        pending_percentage REAL,
        pending_fallback   TEXT,
        PRIMARY KEY (app, version)
     );
     CREATE TABLE rollouts (
        app                  TEXT NOT NULL,
        channel              TEXT NOT NULL,
        version              TEXT NOT NULL,
        percentage           REAL NOT NULL,
        status               TEXT NOT NULL,
        fallback_version     TEXT,
        rolled_back          INTEGER NOT NULL,
        policy               TEXT NOT NULL,
        started              INTEGER NOT NULL,
        stage_started        INTEGER NOT NULL,
        updated              INTEGER NOT NULL,
        high_error_alerted   INTEGER NOT NULL,
        low_adoption_alerted INTEGER NOT NULL,
        PRIMARY KEY (app, channel, version)
     );
     CREATE TABLE channel_states (
        app      TEXT NOT NULL,
        channel  TEXT NOT NULL,
        version  TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        issued   INTEGER NOT NULL,
        expires  INTEGER NOT NULL,
        envelope TEXT NOT NULL,
        PRIMARY KEY (app, channel)
     );
     CREATE TABLE decisions (
        id              TEXT PRIMARY KEY NOT NULL,
        at              INTEGER NOT NULL,
        app             TEXT NOT NULL,
        channel         TEXT NOT NULL,
        version         TEXT NOT NULL,
        action          TEXT NOT NULL,
        actor           TEXT NOT NULL,
        from_percentage REAL NOT NULL,
        to_percentage   REAL NOT NULL,
        installs        INTEGER NOT NULL,
        error_rate      REAL NOT NULL,
        error_lower     REAL NOT NULL,
        error_upper     REAL NOT NULL,
        crash_rate      REAL NOT NULL,
        crash_lower     REAL NOT NULL,
        crash_upper     REAL NOT NULL,
        reason          TEXT NOT NULL
     );
     CREATE INDEX decisions_rollout ON decisions(app, channel, version, at);",
    // 3: health data lifetime: the retention job deletes by time, erasure by install id.
    "CREATE INDEX health_reports_received ON health_reports(received);
     CREATE INDEX health_reports_machine ON health_reports(machine_id);
     CREATE INDEX health_installs_machine ON health_installs(machine_id);
     CREATE INDEX decisions_at ON decisions(at);",
    // 4: feature reach: each `daily_feature` row knows the previous day its user used the
    // name (and whether the sample rate changed since); `feature_reach` counts rows by that,
    // so the feature summary reads buckets instead of every user of the range. Backfilled.
    concat!(
        "ALTER TABLE daily_feature ADD COLUMN prev_day INTEGER NOT NULL DEFAULT -1;
         ALTER TABLE daily_feature ADD COLUMN rate_changed INTEGER NOT NULL DEFAULT 0;
         CREATE TABLE feature_reach (
            day          INTEGER NOT NULL,
            name         TEXT NOT NULL,
            prev_day     INTEGER NOT NULL,
            sample_rate  REAL NOT NULL,
            rate_changed INTEGER NOT NULL,
            users        INTEGER NOT NULL,
            events       INTEGER NOT NULL,
            PRIMARY KEY (day, name, prev_day, sample_rate, rate_changed)
         ) WITHOUT ROWID;",
        rebuild_reach!()
    ),
    // 5: warehouse export (`crate::store::export`): an export key per row of the append-only
    // tables (existing rows keep their insertion order), the counters that hand keys out in
    // the writing transaction, and each destination's watermarks.
    "ALTER TABLE events ADD COLUMN export_seq INTEGER NOT NULL DEFAULT 0;
     UPDATE events SET export_seq = rowid;
     CREATE INDEX events_export_seq ON events(export_seq);
     ALTER TABLE health_reports ADD COLUMN export_seq INTEGER NOT NULL DEFAULT 0;
     UPDATE health_reports SET export_seq = rowid;
     CREATE INDEX health_reports_export_seq ON health_reports(export_seq);
     ALTER TABLE decisions ADD COLUMN export_seq INTEGER NOT NULL DEFAULT 0;
     UPDATE decisions SET export_seq = rowid;
     CREATE INDEX decisions_export_seq ON decisions(export_seq);
     CREATE TABLE export_counters (
        tbl  TEXT PRIMARY KEY NOT NULL,
        next INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO export_counters SELECT 'events', COALESCE(MAX(export_seq), 0) + 1 FROM events;
     INSERT INTO export_counters SELECT 'health_reports', COALESCE(MAX(export_seq), 0) + 1 FROM health_reports;
     INSERT INTO export_counters SELECT 'decisions', COALESCE(MAX(export_seq), 0) + 1 FROM decisions;
     CREATE TABLE export_destinations (
        destination TEXT PRIMARY KEY NOT NULL,
        enabled     INTEGER NOT NULL,
        created     INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE export_watermarks (
        destination TEXT NOT NULL,
        tbl         TEXT NOT NULL,
        next        INTEGER NOT NULL,
        pending     INTEGER,
        updated     INTEGER NOT NULL,
        PRIMARY KEY (destination, tbl)
     ) WITHOUT ROWID;",
    // 6: the durable alert outbox and the watched alert conditions (`crate::store::alerts`).
    alerts::MIGRATION,
    // 7: remote config revisions (`crate::store::config`), kept for history and rollback.
    config::MIGRATION,
    // 8: release health: sessions ended by status, per report and per install and release.
    super::rollout::SESSIONS_MIGRATION,
    // 9: active-user reach (`active`): WAU / MAU / the DAU series from buckets. Backfilled.
    active::MIGRATION,
    // 10: retention cohorts (`cohort`): active users by first day and day. Backfilled.
    cohort::MIGRATION,
];

const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events (id, name, category, user_id, \
    session_id, ts, day, app_version, platform, arch, channel, properties, duration, sequence, \
    sample_rate, received, export_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
    ?13, ?14, ?15, ?16, ?17)";
const UPSERT_USER: &str = "INSERT INTO users (user_id, first_day, last_day, sample_rate) \
    VALUES (?1, ?2, ?3, ?4) ON CONFLICT(user_id) DO UPDATE SET \
    first_day = min(first_day, excluded.first_day), last_day = max(last_day, excluded.last_day)";
const UPSERT_SESSION: &str = "INSERT INTO daily_sessions (day, session_id, user_id, duration, \
    sample_rate) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(day, session_id) DO UPDATE SET \
    duration = max(duration, excluded.duration)";
const UPSERT_FEATURE: &str = "INSERT INTO daily_feature (name, day, user_id, events, sample_rate) \
    VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name, day, user_id) DO UPDATE SET events = events + excluded.events";

/// The feature keys of one ingest group (per name and user, the earliest day), on the
/// writer connection only.
const FEATURE_KEYS: &str = "CREATE TEMP TABLE IF NOT EXISTS feature_keys (name TEXT NOT NULL, \
    user_id TEXT NOT NULL, day INTEGER NOT NULL, PRIMARY KEY (name, user_id)) WITHOUT ROWID";
const UPSERT_KEY: &str = "INSERT INTO temp.feature_keys (name, user_id, day) VALUES (?1, ?2, ?3) \
    ON CONFLICT(name, user_id) DO UPDATE SET day = min(day, excluded.day)";

/// Adds (`+`) or removes (`-`) the `feature_reach` contribution of every `daily_feature` row
/// a key may change: its own day and later days of the same name and user. `CROSS JOIN`
/// keeps the (small, unanalysed) key table outside: each key probes `daily_feature_user`
/// (its entries carry the primary key, so `(user_id, name, day)`), never a table scan.
macro_rules! reach_delta {
    ($sign:literal) => {
        concat!(
            "INSERT INTO feature_reach (day, name, prev_day, sample_rate, rate_changed, users, events) \
             SELECT f.day, f.name, f.prev_day, f.sample_rate, f.rate_changed, ",
            $sign,
            "COUNT(*), ",
            $sign,
            "SUM(f.events) FROM temp.feature_keys k CROSS JOIN daily_feature f ON f.user_id = k.user_id \
             AND f.name = k.name AND f.day >= k.day WHERE true \
             GROUP BY f.day, f.name, f.prev_day, f.sample_rate, f.rate_changed \
             ON CONFLICT DO UPDATE SET users = users + excluded.users, events = events + excluded.events"
        )
    };
}

/// Re-links the rows of the keyed names and users from each key's day on: `prev_day` is the
/// previous day of the same name and user (-1: none), `rate_changed` whether the sample rate
/// differs from that day's.
const RELINK: &str = "UPDATE daily_feature SET prev_day = t.p, rate_changed = t.c FROM ( \
    SELECT f.name, f.user_id, f.day, k.day AS kd, LAG(f.day, 1, -1) OVER w AS p, \
    COALESCE(LAG(f.sample_rate) OVER w <> f.sample_rate, 0) AS c \
    FROM temp.feature_keys k CROSS JOIN daily_feature f ON f.user_id = k.user_id AND f.name = k.name \
    AND f.day >= COALESCE((SELECT MAX(b.day) FROM daily_feature b WHERE b.user_id = k.user_id \
    AND b.name = k.name AND b.day < k.day), k.day) \
    WINDOW w AS (PARTITION BY f.name, f.user_id ORDER BY f.day)) AS t \
    WHERE t.day >= t.kd AND daily_feature.name = t.name AND daily_feature.day = t.day \
    AND daily_feature.user_id = t.user_id \
    AND (daily_feature.prev_day <> t.p OR daily_feature.rate_changed <> t.c)";

/// Removes a user's `feature_reach` contribution (before the rows are deleted).
const REACH_FORGET_USER: &str = "INSERT INTO feature_reach (day, name, prev_day, sample_rate, \
    rate_changed, users, events) SELECT day, name, prev_day, sample_rate, rate_changed, -COUNT(*), \
    -SUM(events) FROM daily_feature WHERE user_id = ?1 \
    GROUP BY day, name, prev_day, sample_rate, rate_changed \
    ON CONFLICT DO UPDATE SET users = users + excluded.users, events = events + excluded.events";

/// Whether a user's sample rate changed between two days inside `?1..=?2` (then the
/// estimate of users needs each user's highest rate: [`FEATURE_TOTALS`]).
const REACH_RATE_CHANGED: &str = "SELECT EXISTS (SELECT 1 FROM feature_reach WHERE day BETWEEN \
    ?1 AND ?2 AND prev_day >= ?1 AND rate_changed <> 0 AND users > 0)";

/// Per name over `?1..=?2`: events from every row; users from the rows whose previous day
/// of the name is before `?1` (each user's first day in the range).
const REACH_TOTALS: &str = "SELECT name, SUM(events), SUM(events / sample_rate), \
    SUM(CASE WHEN prev_day < ?1 THEN users ELSE 0 END), \
    SUM(CASE WHEN prev_day < ?1 THEN users / sample_rate ELSE 0.0 END) \
    FROM feature_reach WHERE day BETWEEN ?1 AND ?2 GROUP BY name \
    HAVING SUM(CASE WHEN prev_day < ?1 THEN users ELSE 0 END) > 0 \
    ORDER BY SUM(events) DESC, name LIMIT ?3";

/// Per name: events, and distinct users over the range (each user once, at its highest
/// sample rate, like `active_users`), from the per-user rows: the reference answer, and the
/// one used when a user's sample rate changed inside the range.
const FEATURE_TOTALS: &str = "SELECT name, SUM(ev), SUM(ev_est), COUNT(*), SUM(1.0 / sr) FROM \
    (SELECT name, user_id, SUM(events) AS ev, SUM(events / sample_rate) AS ev_est, \
     MAX(sample_rate) AS sr FROM daily_feature WHERE day BETWEEN ?1 AND ?2 GROUP BY name, user_id) \
    GROUP BY name ORDER BY SUM(ev) DESC, name LIMIT ?3";

#[derive(Debug)]
struct Inner {
    path: String,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

/// The SQLite analytics store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteStore {
    /// Opens (creating the folder and file) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let sq = |source| StoreError::Sqlite {
            path: name.clone(),
            source,
        };
        let writer = connect(path).map_err(sq)?;
        migrate(&writer, &name)?;
        writer.execute_batch(FEATURE_KEYS).map_err(sq)?;
        let reader = connect(path).map_err(sq)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: name,
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.inner.path)
    }

    /// Runs `f` with the writer connection on the blocking pool.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut c = lock(&inner.writer);
                f(&mut c).map_err(|source| StoreError::Sqlite {
                    path: inner.path.clone(),
                    source,
                })
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }

    /// Runs `f` with the reader connection on the blocking pool.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let c = lock(&inner.reader);
                f(&c).map_err(|source| StoreError::Sqlite {
                    path: inner.path.clone(),
                    source,
                })
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }

    /// Recomputes the reach rollups (`feature_reach` from `daily_feature`, `active_reach`
    /// and `cohort_active` from `daily_users`) after a store was built by raw SQL, as the scale tests do; ingest
    /// keeps them current by itself.
    pub fn rebuild_reach(&self) -> Result<(), StoreError> {
        self.with_writer(|c| {
            c.execute_batch(concat!(
                "BEGIN;",
                rebuild_reach!(),
                active::rebuild_active!(),
                "DELETE FROM cohort_active;",
                cohort::rebuild_cohort!(),
                "COMMIT;"
            ))
        })
    }

    /// Runs raw SQL on the writer connection (benchmarks and tests that build large stores).
    pub fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut c = lock(&self.inner.writer);
        f(&mut c).map_err(|source| StoreError::Sqlite {
            path: self.inner.path.clone(),
            source,
        })
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "cache_size", -65536)?;
    c.set_prepared_statement_cache_capacity(32);
    Ok(c)
}

fn migrate(c: &Connection, path: &str) -> Result<(), StoreError> {
    let sq = |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    };
    let version: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sq)?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::TooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let batch = format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        );
        c.execute_batch(&batch).map_err(sq)?;
    }
    Ok(())
}

fn insert_all(c: &mut Connection, events: &[StoredEvent]) -> rusqlite::Result<Vec<bool>> {
    let tx = c.transaction()?;
    let mut out = Vec::with_capacity(events.len());
    let mut key = export::take_keys(&tx, "events", events.len())?;
    {
        let mut ins = tx.prepare_cached(INSERT_EVENT)?;
        let mut us = tx.prepare_cached(UPSERT_USER)?;
        let mut se = tx.prepare_cached(UPSERT_SESSION)?;
        let mut fe = tx.prepare_cached(UPSERT_FEATURE)?;
        for e in events {
            let n = ins.execute(params![
                e.id,
                e.name,
                e.category,
                e.user_id,
                e.session_id,
                e.ts_ms,
                e.day,
                e.app_version,
                e.platform,
                e.arch,
                e.channel,
                e.properties,
                e.duration_ms,
                e.sequence,
                e.sample_rate,
                e.received_ms,
                key
            ])?;
            key += 1;
            out.push(n == 1);
        }
        let r = Rollups::of(events, &out);
        let mut new_days = Vec::with_capacity(r.daily_users.len());
        for ((day, user), sr) in &r.daily_users {
            if active::add_daily_user(&tx, *day, user, *sr)? {
                new_days.push((*day, *user));
            }
        }
        for (user, (first, last, sr)) in &r.users {
            us.execute(params![user, first, last, sr])?;
        }
        cohort::add_rows(&tx, new_days.into_iter())?;
        if !r.feature.is_empty() {
            tx.execute("DELETE FROM temp.feature_keys", [])?;
            let mut key = tx.prepare_cached(UPSERT_KEY)?;
            for (name, day, user) in r.feature.keys() {
                key.execute(params![name, user, day])?;
            }
            tx.prepare_cached(reach_delta!("-"))?.execute([])?;
            for ((name, day, user), (n, sr)) in &r.feature {
                fe.execute(params![name, day, user, n, sr])?;
            }
            tx.prepare_cached(RELINK)?.execute([])?;
            tx.prepare_cached(reach_delta!(""))?.execute([])?;
        }
        for ((day, session), (user, d, sr)) in &r.sessions {
            se.execute(params![day, session, user, d, sr])?;
        }
    }
    tx.commit()?;
    Ok(out)
}

impl AnalyticsStore for SqliteStore {
    fn insert_events(&self, events: Vec<StoredEvent>) -> StoreFuture<'_, Vec<bool>> {
        self.write(move |c| insert_all(c, &events))
    }

    fn active_users(&self, from: i32, to: i32) -> StoreFuture<'_, Count> {
        self.read(move |c| {
            let floor: Option<i32> = c
                .prepare_cached(sql::ACTIVE_FLOOR)?
                .query_row([], |r| r.get(0))?;
            let from = floor.map_or(from, |f| f.max(from));
            let changed: bool = c
                .prepare_cached(sql::ACTIVE_RATE_CHANGED)?
                .query_row(params![from, to], |r| r.get(0))?;
            let sql = if changed {
                sql::ACTIVE_SCAN
            } else {
                sql::ACTIVE_TOTAL
            };
            c.prepare_cached(sql)?.query_row(params![from, to], |r| {
                Ok(Count {
                    raw: r.get::<_, i64>(0)? as u64,
                    estimate: r.get(1)?,
                })
            })
        })
    }

    fn sessions(&self, day: i32) -> StoreFuture<'_, SessionStats> {
        self.read(move |c| {
            let mut st = c.prepare_cached(sql::SESSIONS_OF_DAY)?;
            let rows = st
                .query_map([day], |r| Ok((r.get::<_, f64>(0)?, r.get::<_, f64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(session_stats(rows))
        })
    }

    fn feature(&self, name: String, from: i32, to: i32) -> StoreFuture<'_, Vec<FeatureDay>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(sql::FEATURE_BY_DAY)?;
            let rows = st
                .query_map(params![name, from, to], |r| {
                    Ok(FeatureDay {
                        date: day_date(r.get(0)?),
                        events: r.get::<_, i64>(1)? as u64,
                        events_estimate: r.get(2)?,
                        users: r.get::<_, i64>(3)? as u64,
                        users_estimate: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn retention(&self, cohort: i32, days: u32) -> StoreFuture<'_, (Count, Vec<Count>)> {
        self.read(move |c| {
            let size = c
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(1.0 / sample_rate), 0) FROM users WHERE first_day = ?1",
                )?
                .query_row([cohort], |r| {
                    Ok(Count {
                        raw: r.get::<_, i64>(0)? as u64,
                        estimate: r.get(1)?,
                    })
                })?;
            let mut per_day = vec![Count::default(); days as usize + 1];
            let mut st = c.prepare_cached(sql::COHORT_BY_DAY)?;
            let mut rows = st.query(params![cohort, cohort + days as i32])?;
            while let Some(r) = rows.next()? {
                let d: i32 = r.get(0)?;
                per_day[(d - cohort) as usize] = Count {
                    raw: r.get::<_, i64>(1)? as u64,
                    estimate: r.get(2)?,
                };
            }
            Ok((size, per_day))
        })
    }

    fn delete_user(&self, user_id: String) -> StoreFuture<'_, u64> {
        self.write(move |c| {
            let tx = c.transaction()?;
            tx.execute(REACH_FORGET_USER, [&user_id])?;
            tx.execute(sql::ACTIVE_FORGET_USER, [&user_id])?;
            tx.execute(sql::COHORT_FORGET_USER, [&user_id])?;
            let mut n = 0u64;
            for t in USER_TABLES {
                n += tx.execute(&sql::delete_user_rows(t), [&user_id])? as u64;
            }
            tx.commit()?;
            Ok(n)
        })
    }

    fn purge(
        &self,
        events_before_ms: i64,
        aggregates_before: i32,
        events_keep_from: i64,
    ) -> StoreFuture<'_, PurgeCounts> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let events = tx.execute(
                "DELETE FROM events WHERE ts < ?1 AND export_seq < ?2",
                [events_before_ms, events_keep_from],
            )? as u64;
            let mut aggregates = 0u64;
            for t in DAILY_TABLES {
                aggregates += tx.execute(&sql::purge_days(t), [aggregates_before])? as u64;
            }
            aggregates += tx.execute(sql::PURGE_USERS, [aggregates_before])? as u64;
            aggregates += tx.execute(sql::PURGE_REACH, [aggregates_before])? as u64;
            aggregates += tx.execute(sql::PURGE_ACTIVE_REACH, [aggregates_before])? as u64;
            aggregates += tx.execute(sql::PURGE_COHORT, [aggregates_before])? as u64;
            tx.execute(sql::PURGE_EMPTY_REACH, [])?;
            tx.execute(sql::PURGE_EMPTY_ACTIVE_REACH, [])?;
            tx.execute(sql::PURGE_EMPTY_COHORT, [])?;
            tx.commit()?;
            Ok(PurgeCounts {
                events,
                aggregates,
                ..PurgeCounts::default()
            })
        })
    }

    fn contains_events(&self, ids: Vec<String>) -> StoreFuture<'_, Vec<bool>> {
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT 1 FROM events WHERE id = ?1")?;
            ids.iter()
                .map(|id| Ok(st.query_row([id], |_| Ok(())).optional()?.is_some()))
                .collect()
        })
    }

    fn count_events(&self) -> StoreFuture<'_, u64> {
        self.read(|c| {
            c.query_row(sql::COUNT_EVENTS, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }

    fn user_rows(&self, user_id: String) -> StoreFuture<'_, u64> {
        self.read(move |c| {
            let mut n = 0u64;
            for t in USER_TABLES {
                n += c.query_row(&sql::count_user_rows(t), [&user_id], |r| r.get::<_, i64>(0))?
                    as u64;
            }
            Ok(n)
        })
    }

    fn daily_active(&self, from: i32, to: i32) -> StoreFuture<'_, Vec<DayCount>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(sql::ACTIVE_BY_DAY)?;
            let rows = st
                .query_map(params![from, to], |r| {
                    Ok(DayCount {
                        date: day_date(r.get(0)?),
                        users: r.get::<_, i64>(1)? as u64,
                        estimate: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn feature_totals_rollup(
        &self,
        from: i32,
        to: i32,
        limit: u32,
    ) -> StoreFuture<'_, Option<Vec<FeatureTotal>>> {
        self.read(move |c| {
            let floor: Option<i32> = c
                .prepare_cached(sql::REACH_FLOOR)?
                .query_row([], |r| r.get(0))?;
            let from = floor.map_or(from, |f| f.max(from));
            let changed: bool = c
                .prepare_cached(REACH_RATE_CHANGED)?
                .query_row(params![from, to], |r| r.get(0))?;
            if changed {
                return Ok(None);
            }
            let mut st = c.prepare_cached(REACH_TOTALS)?;
            let rows = st
                .query_map(params![from, to, limit], |r| {
                    Ok(FeatureTotal {
                        name: r.get(0)?,
                        events: r.get::<_, i64>(1)? as u64,
                        events_estimate: r.get(2)?,
                        users: r.get::<_, i64>(3)? as u64,
                        users_estimate: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(rows))
        })
    }

    fn feature_totals_scan(
        &self,
        from: i32,
        to: i32,
        limit: u32,
    ) -> StoreFuture<'_, Vec<FeatureTotal>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(FEATURE_TOTALS)?;
            let rows = st
                .query_map(params![from, to, limit], |r| {
                    Ok(FeatureTotal {
                        name: r.get(0)?,
                        events: r.get::<_, i64>(1)? as u64,
                        events_estimate: r.get(2)?,
                        users: r.get::<_, i64>(3)? as u64,
                        users_estimate: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

// ---- rollout health -------------------------------------------------------------------

fn release_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReleaseRow> {
    Ok(ReleaseRow {
        app: r.get(0)?,
        version: r.get(1)?,
        channel: r.get(2)?,
        envelope: r.get(3)?,
        manifest_sha256: r.get(4)?,
        created_ms: r.get(5)?,
        pending_start: r.get(6)?,
        pending_percentage: r.get(7)?,
        pending_fallback: r.get(8)?,
    })
}

fn rollout_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RolloutRow> {
    Ok(RolloutRow {
        app: r.get(0)?,
        channel: r.get(1)?,
        version: r.get(2)?,
        percentage: r.get(3)?,
        status: r.get(4)?,
        fallback_version: r.get(5)?,
        rolled_back: r.get(6)?,
        policy: r.get(7)?,
        started_ms: r.get(8)?,
        stage_started_ms: r.get(9)?,
        updated_ms: r.get(10)?,
        high_error_alerted: r.get(11)?,
        low_adoption_alerted: r.get(12)?,
    })
}

fn channel_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChannelRow> {
    Ok(ChannelRow {
        app: r.get(0)?,
        channel: r.get(1)?,
        version: r.get(2)?,
        sequence: r.get(3)?,
        issued_ms: r.get(4)?,
        expires_ms: r.get(5)?,
        envelope: r.get(6)?,
    })
}

fn decision_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Decision> {
    Ok(Decision {
        id: r.get(0)?,
        at: from_ms(r.get(1)?),
        app: r.get(2)?,
        channel: r.get(3)?,
        version: r.get(4)?,
        action: r.get(5)?,
        actor: r.get(6)?,
        from_percentage: r.get(7)?,
        to_percentage: r.get(8)?,
        installs: r.get::<_, i64>(9)? as u64,
        error_rate: r.get(10)?,
        error_lower: r.get(11)?,
        error_upper: r.get(12)?,
        crash_rate: r.get(13)?,
        crash_lower: r.get(14)?,
        crash_upper: r.get(15)?,
        reason: r.get(16)?,
    })
}

fn commit(c: &mut Connection, ch: RolloutChange) -> rusqlite::Result<bool> {
    let tx = c.transaction()?;
    if let Some((row, expected)) = &ch.channel {
        let n = match expected {
            None => tx.execute(
                &format!("INSERT OR IGNORE INTO channel_states ({CHANNEL_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![row.app, row.channel, row.version, row.sequence, row.issued_ms, row.expires_ms, row.envelope],
            )?,
            Some(prev) => tx.execute(
                "UPDATE channel_states SET version = ?3, sequence = ?4, issued = ?5, expires = ?6, \
                 envelope = ?7 WHERE app = ?1 AND channel = ?2 AND sequence = ?8",
                params![row.app, row.channel, row.version, row.sequence, row.issued_ms, row.expires_ms, row.envelope, prev],
            )?,
        };
        if n != 1 {
            tx.rollback()?;
            return Ok(false);
        }
    }
    if let Some(r) = &ch.rollout {
        tx.execute(
            &format!("INSERT OR REPLACE INTO rollouts ({ROLLOUT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
            params![r.app, r.channel, r.version, r.percentage, r.status, r.fallback_version, r.rolled_back,
                r.policy, r.started_ms, r.stage_started_ms, r.updated_ms, r.high_error_alerted, r.low_adoption_alerted],
        )?;
    }
    if let Some(d) = &ch.decision {
        let key = export::take_keys(&tx, "decisions", 1)?;
        tx.execute(
            &format!("INSERT INTO decisions ({DECISION_COLS}, export_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"),
            params![d.id, to_ms(d.at), d.app, d.channel, d.version, d.action, d.actor, d.from_percentage,
                d.to_percentage, d.installs as i64, d.error_rate, d.error_lower, d.error_upper, d.crash_rate,
                d.crash_lower, d.crash_upper, d.reason, key],
        )?;
    }
    alerts::apply(&tx, &ch.alerts)?;
    tx.commit()?;
    Ok(true)
}

/// A row of [`sql::RELEASE_HEALTH`] / [`sql::RELEASE_HEALTH_OF`].
fn release_health_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReleaseHealthRow> {
    let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
    Ok(ReleaseHealthRow {
        app: r.get(0)?,
        channel: r.get(1)?,
        version: r.get(2)?,
        installs: n(3)?,
        active: n(4)?,
        sessions: [n(5)?, n(6)?, n(7)?, n(8)?],
        users: n(9)?,
        users_crashed: n(10)?,
    })
}

impl RolloutStore for SqliteStore {
    fn insert_health(&self, h: HealthRow) -> StoreFuture<'_, bool> {
        let ended = h.session_ends;
        self.write(move |c| {
            let tx = c.transaction()?;
            let key = export::take_keys(&tx, "health_reports", 1)?;
            let n = tx.prepare_cached(
                "INSERT OR IGNORE INTO health_reports (id, machine_id, app, version, channel, platform, \
                 arch, period_start, period_end, sessions, errors, crashes, boot_reverts, received, \
                 export_seq, ended_ok, ended_errored, ended_crashed, ended_abnormal) VALUES (?1, ?2, ?3, ?4, \
                 ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )?
            .execute(params![h.id, h.machine_id, h.app, h.version, h.channel, h.platform, h.arch,
                h.period_start_ms, h.period_end_ms, h.sessions, h.errors, h.crashes, h.boot_reverts, h.received_ms, key,
                ended.map(|e| e[0]), ended.map(|e| e[1]), ended.map(|e| e[2]), ended.map(|e| e[3])])?;
            if n == 1 {
                let e = ended.unwrap_or_default();
                tx.prepare_cached(
                    "INSERT INTO health_installs (app, channel, version, machine_id, errors, crashes, last_seen, \
                     ended_ok, ended_errored, ended_crashed, ended_abnormal) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (app, channel, version, machine_id) DO UPDATE \
                     SET errors = errors + excluded.errors, crashes = crashes + excluded.crashes, \
                     last_seen = max(last_seen, excluded.last_seen), ended_ok = ended_ok + excluded.ended_ok, \
                     ended_errored = ended_errored + excluded.ended_errored, \
                     ended_crashed = ended_crashed + excluded.ended_crashed, \
                     ended_abnormal = ended_abnormal + excluded.ended_abnormal",
                )?
                .execute(params![h.app, h.channel, h.version, h.machine_id, h.errors, h.crashes, h.received_ms,
                    e[0], e[1], e[2], e[3]])?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
    }

    fn health_counts(
        &self,
        app: String,
        channel: String,
        version: String,
    ) -> StoreFuture<'_, HealthCounts> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(errors > 0), 0), COALESCE(SUM(crashes > 0), 0) FROM \
                 health_installs WHERE app = ?1 AND channel = ?2 AND version = ?3",
            )?
            .query_row(params![app, channel, version], |r| {
                Ok(HealthCounts {
                    installs: r.get::<_, i64>(0)? as u64,
                    with_errors: r.get::<_, i64>(1)? as u64,
                    with_crashes: r.get::<_, i64>(2)? as u64,
                })
            })
        })
    }

    fn release_health(
        &self,
        active_since_ms: i64,
        seen_since_ms: i64,
    ) -> StoreFuture<'_, Vec<ReleaseHealthRow>> {
        self.read(move |c| {
            c.prepare_cached(sql::RELEASE_HEALTH)?
                .query_map([active_since_ms, seen_since_ms], release_health_row)?
                .collect()
        })
    }

    fn release_health_of(
        &self,
        app: String,
        channel: String,
        version: String,
        active_since_ms: i64,
    ) -> StoreFuture<'_, ReleaseHealthRow> {
        self.read(move |c| {
            let row = c
                .prepare_cached(sql::RELEASE_HEALTH_OF)?
                .query_row(
                    params![active_since_ms, app, channel, version],
                    release_health_row,
                )
                .optional()?;
            Ok(row.unwrap_or(ReleaseHealthRow {
                app,
                channel,
                version,
                ..ReleaseHealthRow::default()
            }))
        })
    }

    fn app_active_installs(&self, since_ms: i64) -> StoreFuture<'_, Vec<(String, u64)>> {
        self.read(move |c| {
            c.prepare_cached(sql::APP_ACTIVE_INSTALLS)?
                .query_map([since_ms], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })?
                .collect()
        })
    }

    fn channel_population(
        &self,
        app: String,
        channel: String,
        since_ms: i64,
    ) -> StoreFuture<'_, u64> {
        self.read(move |c| {
            c.prepare_cached(sql::ACTIVE_INSTALLS)?
                .query_row(params![app, channel, since_ms], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }

    fn purge_health(
        &self,
        before_ms: i64,
        reports_keep_from: i64,
    ) -> StoreFuture<'_, HealthDeleted> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let reports = tx.execute(
                "DELETE FROM health_reports WHERE received < ?1 AND export_seq < ?2",
                [before_ms, reports_keep_from],
            )? as u64;
            let installs = tx.execute(
                &format!(
                    "DELETE FROM health_installs WHERE last_seen < ?1 AND NOT {ROLLOUT_CAN_DECIDE}"
                ),
                [before_ms],
            )? as u64;
            tx.commit()?;
            Ok(HealthDeleted { reports, installs })
        })
    }

    fn purge_decisions(&self, before_ms: i64, keep_from: i64) -> StoreFuture<'_, u64> {
        self.write(move |c| {
            c.execute(
                "DELETE FROM decisions WHERE at < ?1 AND export_seq < ?2",
                [before_ms, keep_from],
            )
            .map(|n| n as u64)
        })
    }

    fn delete_machine(&self, machine_id: String) -> StoreFuture<'_, HealthDeleted> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let reports = tx.execute(sql::DELETE_MACHINE_REPORTS, [&machine_id])? as u64;
            let installs = tx.execute(sql::DELETE_MACHINE_INSTALLS, [&machine_id])? as u64;
            tx.commit()?;
            Ok(HealthDeleted { reports, installs })
        })
    }

    fn machine_rows(&self, machine_id: String) -> StoreFuture<'_, u64> {
        self.read(move |c| {
            c.query_row(sql::MACHINE_ROWS, [&machine_id], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }

    fn get_release(&self, app: String, version: String) -> StoreFuture<'_, Option<ReleaseRow>> {
        self.read(move |c| {
            c.prepare_cached(sql::GET_RELEASE)?
                .query_row(params![app, version], release_row)
                .optional()
        })
    }

    fn put_release(&self, r: ReleaseRow) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO releases ({RELEASE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT(app, version) DO UPDATE SET pending_start = excluded.pending_start, \
                 pending_percentage = excluded.pending_percentage, pending_fallback = excluded.pending_fallback"),
                params![r.app, r.version, r.channel, r.envelope, r.manifest_sha256, r.created_ms,
                    r.pending_start, r.pending_percentage, r.pending_fallback],
            )?;
            Ok(())
        })
    }

    fn get_rollout(
        &self,
        app: String,
        channel: String,
        version: String,
    ) -> StoreFuture<'_, Option<RolloutRow>> {
        self.read(move |c| {
            c.prepare_cached(sql::GET_ROLLOUT)?
                .query_row(params![app, channel, version], rollout_row)
                .optional()
        })
    }

    fn list_rollouts(&self) -> StoreFuture<'_, Vec<RolloutRow>> {
        self.read(|c| {
            c.prepare_cached(sql::LIST_ROLLOUTS)?
                .query_map([], rollout_row)?
                .collect()
        })
    }

    fn get_channel(&self, app: String, channel: String) -> StoreFuture<'_, Option<ChannelRow>> {
        self.read(move |c| {
            c.prepare_cached(sql::GET_CHANNEL)?
                .query_row(params![app, channel], channel_row)
                .optional()
        })
    }

    fn list_channels(&self) -> StoreFuture<'_, Vec<ChannelRow>> {
        self.read(|c| {
            c.prepare_cached(sql::LIST_CHANNELS)?
                .query_map([], channel_row)?
                .collect()
        })
    }

    fn commit_change(&self, change: RolloutChange) -> StoreFuture<'_, bool> {
        self.write(move |c| commit(c, change))
    }

    fn decisions(
        &self,
        app: String,
        channel: String,
        version: String,
        limit: u32,
    ) -> StoreFuture<'_, Vec<Decision>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {DECISION_COLS} FROM decisions WHERE app = ?1 AND channel = ?2 AND version = ?3 \
                 ORDER BY at DESC, rowid DESC LIMIT ?4"
            ))?
            .query_map(params![app, channel, version, limit], decision_row)?
            .collect()
        })
    }
}
