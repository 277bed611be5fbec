//! The PostgreSQL store: several stateless servers can share one database.
//!
//! Owns the PostgreSQL schema and its migrations (a `railgun_schema_version` table, applied
//! under an advisory lock so servers starting together do not race). Plain TCP without TLS
//! (`tokio-postgres`, `NoTls`): run it on a private network or a local socket; no OpenSSL.
//!
//! A group of events is written in one transaction with array parameters (`UNNEST`): the
//! events first (`ON CONFLICT (id) DO NOTHING RETURNING id` says which were new), then the
//! rollups of the new ones, pre-aggregated here so one statement never updates a row twice.
//! Servers sharing the database write the same rows in the same order (keys sorted), and a
//! group PostgreSQL ends for a deadlock or a serialization failure is written again.

use std::collections::HashSet;

use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

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
    day_date, AnalyticsStore, Count, DayCount, FeatureDay, FeatureTotal, PurgeCounts, Rollups,
    SessionStats, StoreError, StoreFuture, StoredEvent,
};

/// Recomputes `daily_feature.prev_day` / `rate_changed` and `feature_reach` from the
/// `daily_feature` rows (migration 4).
macro_rules! rebuild_reach {
    () => {
        "UPDATE daily_feature d SET prev_day = t.p, rate_changed = t.c FROM (
            SELECT name, day, user_id, COALESCE(LAG(day) OVER w, -1) AS p,
                   COALESCE((LAG(sample_rate) OVER w <> sample_rate)::int, 0) AS c
            FROM daily_feature WINDOW w AS (PARTITION BY name, user_id ORDER BY day)) AS t
         WHERE d.name = t.name AND d.day = t.day AND d.user_id = t.user_id
           AND (d.prev_day <> t.p OR d.rate_changed <> t.c);
         DELETE FROM feature_reach;
         INSERT INTO feature_reach (day, name, prev_day, sample_rate, rate_changed, users, events)
         SELECT day, name, prev_day, sample_rate, rate_changed, COUNT(*), SUM(events)
         FROM daily_feature GROUP BY day, name, prev_day, sample_rate, rate_changed;"
    };
}

/// The feature keys of one ingest group (per name and user, the earliest day), from the
/// arrays of the `daily_feature` upsert: `$1` names, `$2` days, `$3` users.
macro_rules! keys_cte {
    () => {
        "WITH k AS (SELECT name, user_id, MIN(day) AS day FROM \
         UNNEST($1::text[], $3::text[], $2::int4[]) AS u(name, user_id, day) GROUP BY name, user_id)"
    };
}

/// One statement (one round trip): removes the `feature_reach` contribution of every
/// `daily_feature` row the keys may change (their day and later days of the same name and
/// user), as they were before it, then upserts the group's rows (new rows get `prev_day`
/// and `rate_changed` from [`RELINK_AND_ADD`]). Both parts see the same snapshot.
const FORGET_AND_UPSERT: &str = concat!(
    keys_cte!(),
    ", forget AS (INSERT INTO feature_reach (day, name, prev_day, sample_rate, rate_changed, \
     users, events) SELECT f.day, f.name, f.prev_day, f.sample_rate, f.rate_changed, -COUNT(*), \
     -SUM(f.events) FROM k JOIN daily_feature f ON f.user_id = k.user_id AND f.name = k.name \
     AND f.day >= k.day GROUP BY f.day, f.name, f.prev_day, f.sample_rate, f.rate_changed \
     ORDER BY 1, 2, 3, 4, 5 ON CONFLICT (day, name, prev_day, sample_rate, rate_changed) DO UPDATE SET \
     users = feature_reach.users + excluded.users, events = feature_reach.events + excluded.events) \
     INSERT INTO daily_feature (name, day, user_id, events, sample_rate) \
     SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::int8[], $5::float8[]) \
     ON CONFLICT (name, day, user_id) DO UPDATE SET events = daily_feature.events + excluded.events"
);

/// One statement, after [`FORGET_AND_UPSERT`]: re-links the rows of the keyed names and
/// users from each key's day on (`prev_day`: the previous day of the same name and user, -1
/// none; `rate_changed`: the sample rate differs from that day's) and adds their
/// `feature_reach` contribution as they are now.
const RELINK_AND_ADD: &str = concat!(
    keys_cte!(),
    ", t AS (SELECT f.name, f.user_id, f.day, f.events, f.sample_rate, f.prev_day AS old_p, \
     f.rate_changed AS old_c, k.day AS kd, COALESCE(LAG(f.day) OVER w, -1) AS p, \
     COALESCE((LAG(f.sample_rate) OVER w <> f.sample_rate)::int, 0) AS c \
     FROM k JOIN daily_feature f ON f.user_id = k.user_id AND f.name = k.name \
     AND f.day >= COALESCE((SELECT MAX(b.day) FROM daily_feature b WHERE b.user_id = k.user_id \
     AND b.name = k.name AND b.day < k.day), k.day) \
     WINDOW w AS (PARTITION BY f.name, f.user_id ORDER BY f.day)), \
     relink AS (UPDATE daily_feature d SET prev_day = t.p, rate_changed = t.c FROM t \
     WHERE t.day >= t.kd AND d.name = t.name AND d.day = t.day AND d.user_id = t.user_id \
     AND (t.old_p <> t.p OR t.old_c <> t.c)) \
     INSERT INTO feature_reach (day, name, prev_day, sample_rate, rate_changed, users, events) \
     SELECT day, name, p, sample_rate, c, COUNT(*), SUM(events) FROM t WHERE day >= kd \
     GROUP BY day, name, p, sample_rate, c ORDER BY 1, 2, 3, 4, 5 \
     ON CONFLICT (day, name, prev_day, sample_rate, rate_changed) DO UPDATE SET \
     users = feature_reach.users + excluded.users, events = feature_reach.events + excluded.events"
);

/// Schema migrations; migration `i` moves the version from `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: raw events and daily rollups.
    "CREATE TABLE events (
        id          TEXT PRIMARY KEY NOT NULL,
        name        TEXT NOT NULL,
        category    TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        session_id  TEXT NOT NULL,
        ts          BIGINT NOT NULL,
        day         INTEGER NOT NULL,
        app_version TEXT NOT NULL,
        platform    TEXT NOT NULL,
        arch        TEXT NOT NULL,
        channel     TEXT NOT NULL,
        properties  TEXT,
        duration    DOUBLE PRECISION,
        sequence    BIGINT NOT NULL,
        sample_rate DOUBLE PRECISION NOT NULL,
        received    BIGINT NOT NULL
     );
     CREATE INDEX events_ts ON events(ts);
     CREATE INDEX events_user ON events(user_id);
     CREATE TABLE daily_users (
        day         INTEGER NOT NULL,
        user_id     TEXT NOT NULL,
        sample_rate DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (day, user_id)
     );
     CREATE INDEX daily_users_day_rate ON daily_users(day, sample_rate);
     CREATE INDEX daily_users_user ON daily_users(user_id);
     CREATE TABLE users (
        user_id     TEXT PRIMARY KEY NOT NULL,
        first_day   INTEGER NOT NULL,
        last_day    INTEGER NOT NULL,
        sample_rate DOUBLE PRECISION NOT NULL
     );
     CREATE INDEX users_first_day ON users(first_day);
     CREATE TABLE daily_sessions (
        day         INTEGER NOT NULL,
        session_id  TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        duration    DOUBLE PRECISION NOT NULL,
        sample_rate DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (day, session_id)
     );
     CREATE INDEX daily_sessions_user ON daily_sessions(user_id);
     CREATE TABLE daily_feature (
        name        TEXT NOT NULL,
        day         INTEGER NOT NULL,
        user_id     TEXT NOT NULL,
        events      BIGINT NOT NULL,
        sample_rate DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (name, day, user_id)
     );
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
        period_start BIGINT NOT NULL,
        period_end   BIGINT NOT NULL,
        sessions     BIGINT NOT NULL,
        errors       BIGINT NOT NULL,
        crashes      BIGINT NOT NULL,
        boot_reverts BIGINT NOT NULL,
        received     BIGINT NOT NULL
     );
     CREATE TABLE health_installs (
        app        TEXT NOT NULL,
        channel    TEXT NOT NULL,
        version    TEXT NOT NULL,
        machine_id TEXT NOT NULL,
        errors     BIGINT NOT NULL,
        crashes    BIGINT NOT NULL,
        last_seen  BIGINT NOT NULL,
        PRIMARY KEY (app, channel, version, machine_id)
     );
     CREATE INDEX health_installs_seen ON health_installs(app, channel, last_seen);
     CREATE TABLE releases (
        app                TEXT NOT NULL,
        version            TEXT NOT NULL,
        channel            TEXT NOT NULL,
        envelope           TEXT NOT NULL,
        manifest_sha256    TEXT NOT NULL,
        created            BIGINT NOT NULL,
        pending_start      BOOLEAN NOT NULL,
        pending_percentage DOUBLE PRECISION,
        pending_fallback   TEXT,
        PRIMARY KEY (app, version)
     );
     CREATE TABLE rollouts (
        app                  TEXT NOT NULL,
        channel              TEXT NOT NULL,
        version              TEXT NOT NULL,
        percentage           DOUBLE PRECISION NOT NULL,
        status               TEXT NOT NULL,
        fallback_version     TEXT,
        rolled_back          BOOLEAN NOT NULL,
        policy               TEXT NOT NULL,
        started              BIGINT NOT NULL,
        stage_started        BIGINT NOT NULL,
        updated              BIGINT NOT NULL,
        high_error_alerted   BOOLEAN NOT NULL,
        low_adoption_alerted BOOLEAN NOT NULL,
        PRIMARY KEY (app, channel, version)
     );
     CREATE TABLE channel_states (
        app      TEXT NOT NULL,
        channel  TEXT NOT NULL,
        version  TEXT NOT NULL,
        sequence BIGINT NOT NULL,
        issued   BIGINT NOT NULL,
        expires  BIGINT NOT NULL,
        envelope TEXT NOT NULL,
        PRIMARY KEY (app, channel)
     );
     CREATE TABLE decisions (
        seq             BIGSERIAL,
        id              TEXT PRIMARY KEY NOT NULL,
        at              BIGINT NOT NULL,
        app             TEXT NOT NULL,
        channel         TEXT NOT NULL,
        version         TEXT NOT NULL,
        action          TEXT NOT NULL,
        actor           TEXT NOT NULL,
        from_percentage DOUBLE PRECISION NOT NULL,
        to_percentage   DOUBLE PRECISION NOT NULL,
        installs        BIGINT NOT NULL,
        error_rate      DOUBLE PRECISION NOT NULL,
        error_lower     DOUBLE PRECISION NOT NULL,
        error_upper     DOUBLE PRECISION NOT NULL,
        crash_rate      DOUBLE PRECISION NOT NULL,
        crash_lower     DOUBLE PRECISION NOT NULL,
        crash_upper     DOUBLE PRECISION NOT NULL,
        reason          TEXT NOT NULL
     );
     CREATE INDEX decisions_rollout ON decisions(app, channel, version, at);",
    // 3: health data lifetime: the retention job deletes by time, erasure by install id.
    "CREATE INDEX health_reports_received ON health_reports(received);
     CREATE INDEX health_reports_machine ON health_reports(machine_id);
     CREATE INDEX health_installs_machine ON health_installs(machine_id);
     CREATE INDEX decisions_at ON decisions(at);",
    // 4: feature reach (see the SQLite store): `prev_day` / `rate_changed` per
    // `daily_feature` row, buckets in `feature_reach`, backfilled. The user index gains the
    // name and day, so ingest finds a user's previous day of a name in one probe.
    concat!(
        "ALTER TABLE daily_feature ADD COLUMN prev_day INTEGER NOT NULL DEFAULT -1;
         ALTER TABLE daily_feature ADD COLUMN rate_changed INTEGER NOT NULL DEFAULT 0;
         DROP INDEX daily_feature_user;
         CREATE INDEX daily_feature_user ON daily_feature(user_id, name, day);
         CREATE TABLE feature_reach (
            day          INTEGER NOT NULL,
            name         TEXT NOT NULL,
            prev_day     INTEGER NOT NULL,
            sample_rate  DOUBLE PRECISION NOT NULL,
            rate_changed INTEGER NOT NULL,
            users        BIGINT NOT NULL,
            events       BIGINT NOT NULL,
            PRIMARY KEY (day, name, prev_day, sample_rate, rate_changed)
         );",
        rebuild_reach!()
    ),
    // 5: warehouse export (`crate::store::export`): each row of the append-only tables keeps
    // the id of the transaction that wrote it (existing rows get 0: written before any
    // export), and each destination's watermarks.
    "ALTER TABLE events ADD COLUMN export_xid xid8 NOT NULL DEFAULT '0';
     ALTER TABLE events ALTER COLUMN export_xid SET DEFAULT pg_current_xact_id();
     CREATE INDEX events_export_xid ON events(export_xid);
     ALTER TABLE health_reports ADD COLUMN export_xid xid8 NOT NULL DEFAULT '0';
     ALTER TABLE health_reports ALTER COLUMN export_xid SET DEFAULT pg_current_xact_id();
     CREATE INDEX health_reports_export_xid ON health_reports(export_xid);
     ALTER TABLE decisions ADD COLUMN export_xid xid8 NOT NULL DEFAULT '0';
     ALTER TABLE decisions ALTER COLUMN export_xid SET DEFAULT pg_current_xact_id();
     CREATE INDEX decisions_export_xid ON decisions(export_xid);
     CREATE TABLE export_destinations (
        destination TEXT PRIMARY KEY NOT NULL,
        enabled     BOOLEAN NOT NULL,
        created     BIGINT NOT NULL
     );
     CREATE TABLE export_watermarks (
        destination TEXT NOT NULL,
        tbl         TEXT NOT NULL,
        next        BIGINT NOT NULL,
        pending     BIGINT,
        updated     BIGINT NOT NULL,
        PRIMARY KEY (destination, tbl)
     );",
    // 6: the durable alert outbox and the watched alert conditions (`crate::store::alerts`).
    alerts::MIGRATION,
    // 7: remote config revisions (`crate::store::config`), kept for history and rollback.
    config::MIGRATION,
    // 8: the leases electing the one server that runs the rollout engine (`crate::leader`).
    LEASE_MIGRATION,
    // 9: release health: sessions ended by status, per report and per install and release.
    super::rollout::SESSIONS_MIGRATION,
    // 10: active-user reach (`active`): WAU / MAU / the DAU series from buckets. Backfilled.
    active::MIGRATION,
    // 11: a cheaper `events` row to insert (its indexes were about half an event's insert):
    // the id, the dedup key, as a 16-byte `uuid` (every stored id is one: the wire type is a
    // UUID) instead of 37 bytes of text; `ts` by block ranges (events arrive in about time
    // order; the retention purge and the date-range export read ranges of it); `user_id` by
    // hash (erasure looks one user up; no 64-character key per entry).
    "DROP INDEX events_ts;
     DROP INDEX events_user;
     ALTER TABLE events ALTER COLUMN id TYPE uuid USING id::uuid;
     CREATE INDEX events_ts ON events USING brin (ts) WITH (autosummarize = on);
     CREATE INDEX events_user ON events USING hash (user_id);",
    // 12: retention cohorts (`cohort`): active users by first day and day. Backfilled.
    cohort::MIGRATION,
];

/// Leases (`crate::leader`): a holder, a fencing token that only grows (a lease given up
/// expires, its row stays) and an expiry in milliseconds of the database's clock.
const LEASE_MIGRATION: &str = "CREATE TABLE leader_leases (
        name    TEXT PRIMARY KEY NOT NULL,
        holder  TEXT NOT NULL,
        token   BIGINT NOT NULL,
        expires BIGINT NOT NULL
     );";

/// Now on the database's clock, in milliseconds (leases never compare two servers' clocks).
macro_rules! db_now_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::int8"
    };
}

/// Takes a lease (`$1` name, `$2` holder, `$3` time to live in ms) when it is free,
/// expired or the holder's own; the token goes up by one when the holder changes.
const ACQUIRE_LEASE: &str = concat!(
    "INSERT INTO leader_leases AS l (name, holder, token, expires) VALUES ($1, $2, 1, ",
    db_now_ms!(),
    " + $3) ON CONFLICT (name) DO UPDATE SET \
     token = CASE WHEN l.holder = excluded.holder THEN l.token ELSE l.token + 1 END, \
     holder = excluded.holder, expires = excluded.expires \
     WHERE l.holder = excluded.holder OR l.expires <= ",
    db_now_ms!(),
    " RETURNING token"
);

/// Gives a lease up (`$1` name, `$2` holder): it expires now; the row and its token stay.
const RELEASE_LEASE: &str = "UPDATE leader_leases SET expires = 0 WHERE name = $1 AND holder = $2";

/// The fence of a change (`$1` name, `$2` holder, `$3` token): the lease row, locked
/// against a takeover until the change commits, while it is held and unexpired.
const CHECK_FENCE: &str = concat!(
    "SELECT 1 FROM leader_leases WHERE name = $1 AND holder = $2 AND token = $3 AND expires > ",
    db_now_ms!(),
    " FOR SHARE"
);

/// The PostgreSQL analytics store.
pub struct PostgresStore {
    writer: Mutex<Client>,
    ingest: Ingest,
    reader: Client,
    /// The leases' own connection: a renewal never waits behind ingest or a slow read.
    lease: Client,
    /// The database URL (the export opens connections of its own).
    url: String,
}

async fn connect_one(url: &str) -> Result<Client, StoreError> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

impl std::fmt::Debug for PostgresStore {
    // The URL may carry a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects (two connections: writer and reader) and migrates.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut writer = connect_one(url).await?;
        migrate(&mut writer).await?;
        let ingest = Ingest::prepare(&writer).await?;
        let reader = connect_one(url).await?;
        let lease = connect_one(url).await?;
        Ok(Self {
            writer: Mutex::new(writer),
            ingest,
            reader,
            lease,
            url: url.to_string(),
        })
    }

    /// Runs raw SQL (tests that reset the database).
    pub async fn batch_execute(&self, sql: &str) -> Result<(), StoreError> {
        self.writer.lock().await.batch_execute(sql).await?;
        Ok(())
    }

    /// The row `sql` answers on the reader connection, if any, as `f` reads it.
    async fn read_opt<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        f: impl Fn(&Row) -> T,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.reader.query_opt(sql, params).await?.as_ref().map(f))
    }

    /// Every row `sql` answers on the reader connection, as `f` reads it.
    async fn read_all<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        f: impl Fn(&Row) -> T,
    ) -> Result<Vec<T>, StoreError> {
        Ok(self
            .reader
            .query(sql, params)
            .await?
            .iter()
            .map(f)
            .collect())
    }
}

async fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let tx = c.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7263451);
         CREATE TABLE IF NOT EXISTS railgun_schema_version (version INTEGER NOT NULL);",
    )
    .await?;
    let row = tx
        .query_opt("SELECT version FROM railgun_schema_version", &[])
        .await?;
    let version = match row {
        Some(r) => r.get::<_, i32>(0) as i64,
        None => {
            tx.execute("INSERT INTO railgun_schema_version VALUES (0)", &[])
                .await?;
            0
        }
    };
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::TooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "UPDATE railgun_schema_version SET version = $1",
            &[&((i + 1) as i32)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

macro_rules! event_cols {
    () => {
        "id, name, category, user_id, session_id, ts, day, app_version, platform, arch, channel, \
         properties, duration, sequence, sample_rate, received"
    };
}

/// The group's events (ids as text, stored as `uuid`); the ids that were new come back.
const INSERT_EVENTS: &str = concat!(
    "INSERT INTO events (",
    event_cols!(),
    ") SELECT id::uuid, name, category, user_id, session_id, ts, day, app_version, platform, \
     arch, channel, properties, duration, sequence, sample_rate, received \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], \
     $7::int4[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::float8[], \
     $14::int8[], $15::float8[], $16::int8[]) AS u(",
    event_cols!(),
    ") ON CONFLICT (id) DO NOTHING RETURNING id::text"
);

const UPSERT_USERS: &str = "INSERT INTO users (user_id, first_day, last_day, sample_rate) \
    SELECT * FROM UNNEST($1::text[], $2::int4[], $3::int4[], $4::float8[]) \
    ON CONFLICT (user_id) DO UPDATE SET first_day = LEAST(users.first_day, excluded.first_day), \
    last_day = GREATEST(users.last_day, excluded.last_day)";
const UPSERT_SESSIONS: &str = "INSERT INTO daily_sessions (day, session_id, user_id, duration, \
    sample_rate) SELECT * FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::float8[], $5::float8[]) \
    ON CONFLICT (day, session_id) DO UPDATE SET duration = GREATEST(daily_sessions.duration, excluded.duration)";

/// Sessions ended on `$1`: count, estimate, mean, median and 90th percentile duration
/// ([`super::session_stats`] in SQL; zeros for a day without sessions).
const SESSION_STATS: &str = "SELECT COUNT(*), COALESCE(SUM(1.0 / sample_rate), 0)::float8, \
    COALESCE(AVG(duration), 0)::float8, \
    COALESCE(percentile_disc(0.5) WITHIN GROUP (ORDER BY duration), 0)::float8, \
    COALESCE(percentile_disc(0.9) WITHIN GROUP (ORDER BY duration), 0)::float8 \
    FROM daily_sessions WHERE day = $1";

/// The ingest statements, prepared once on the writer connection (a group of events costs
/// one round trip per statement, not two).
#[derive(Debug)]
struct Ingest {
    events: Statement,
    daily_users: Statement,
    active_link: Statement,
    users: Statement,
    cohort: Statement,
    feature: Statement,
    reach: Statement,
    sessions: Statement,
}

impl Ingest {
    async fn prepare(c: &Client) -> Result<Self, StoreError> {
        Ok(Self {
            events: c.prepare(INSERT_EVENTS).await?,
            daily_users: c.prepare(active::INSERT).await?,
            active_link: c.prepare(active::LINK).await?,
            users: c.prepare(UPSERT_USERS).await?,
            cohort: c.prepare(cohort::ADD).await?,
            feature: c.prepare(FORGET_AND_UPSERT).await?,
            reach: c.prepare(RELINK_AND_ADD).await?,
            sessions: c.prepare(UPSERT_SESSIONS).await?,
        })
    }
}

async fn insert_all(
    c: &mut Client,
    st: &Ingest,
    events: &[StoredEvent],
) -> Result<Vec<bool>, StoreError> {
    // Columns borrowed from the events (no copy of their strings).
    macro_rules! col {
        ($f:ident) => {
            events.iter().map(|e| e.$f).collect::<Vec<_>>()
        };
        (&$f:ident) => {
            events.iter().map(|e| e.$f.as_str()).collect::<Vec<_>>()
        };
    }
    let tx = c.transaction().await?;
    let rows = tx
        .query(
            &st.events,
            &[
                &col!(&id),
                &col!(&name),
                &col!(&category),
                &col!(&user_id),
                &col!(&session_id),
                &col!(ts_ms),
                &col!(day),
                &col!(&app_version),
                &col!(&platform),
                &col!(&arch),
                &col!(&channel),
                &events
                    .iter()
                    .map(|e| e.properties.as_deref())
                    .collect::<Vec<_>>(),
                &col!(duration_ms),
                &col!(sequence),
                &col!(sample_rate),
                &col!(received_ms),
            ],
        )
        .await?;
    let mut inserted: HashSet<&str> = rows.iter().map(|r| r.get::<_, &str>(0)).collect();
    // An id inserted once is new only at its first position in this group.
    let new: Vec<bool> = events
        .iter()
        .map(|e| inserted.remove(e.id.as_str()))
        .collect();

    let Rollups {
        daily_users: daily,
        users,
        feature,
        sessions,
    } = Rollups::of(events, &new);
    // Every statement writes its rows in key order, so two servers' transactions on the
    // same rows take their locks in the same order (and a deadlock left is retried).
    if !daily.is_empty() {
        let mut dkeys: Vec<_> = daily.keys().copied().collect();
        dkeys.sort_unstable();
        let (days, uids, srs): (Vec<i32>, Vec<&str>, Vec<f64>) =
            unzip3(dkeys.iter().map(|k| (k.0, k.1, daily[k])));
        let (new_days, new_users) =
            active::add_daily_users(&tx, &st.daily_users, &st.active_link, &days, &uids, &srs)
                .await?;
        let mut uids: Vec<&str> = users.keys().copied().collect();
        uids.sort_unstable();
        let firsts: Vec<i32> = uids.iter().map(|u| users[u].0).collect();
        let lasts: Vec<i32> = uids.iter().map(|u| users[u].1).collect();
        let srs: Vec<f64> = uids.iter().map(|u| users[u].2).collect();
        // The `users` upsert locks each user's row until commit, and it runs before the
        // feature statements: two servers writing new days of one user are serialized here,
        // so each relinks `daily_feature` against the other's committed rows, never against
        // a snapshot lacking them (`ingest_shared` fails if this moves below them).
        tx.execute(&st.users, &[&uids, &firsts, &lasts, &srs])
            .await?;
        if !new_days.is_empty() {
            tx.execute(&st.cohort, &[&new_days, &new_users]).await?;
        }
        let mut keys: Vec<_> = feature.keys().copied().collect();
        keys.sort_unstable();
        let names: Vec<&str> = keys.iter().map(|k| k.0).collect();
        let fdays: Vec<i32> = keys.iter().map(|k| k.1).collect();
        let fusers: Vec<&str> = keys.iter().map(|k| k.2).collect();
        let counts: Vec<i64> = keys.iter().map(|k| feature[k].0).collect();
        let fsrs: Vec<f64> = keys.iter().map(|k| feature[k].1).collect();
        // The feature rollup and its reach buckets: two statements (see the constants).
        tx.execute(&st.feature, &[&names, &fdays, &fusers, &counts, &fsrs])
            .await?;
        tx.execute(&st.reach, &[&names, &fdays, &fusers]).await?;
    }
    if !sessions.is_empty() {
        let mut keys: Vec<_> = sessions.keys().copied().collect();
        keys.sort_unstable();
        let sdays: Vec<i32> = keys.iter().map(|k| k.0).collect();
        let sids: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let suids: Vec<&str> = keys.iter().map(|k| sessions[k].0).collect();
        let durs: Vec<f64> = keys.iter().map(|k| sessions[k].1).collect();
        let ssrs: Vec<f64> = keys.iter().map(|k| sessions[k].2).collect();
        tx.execute(&st.sessions, &[&sdays, &sids, &suids, &durs, &ssrs])
            .await?;
    }
    tx.commit().await?;
    Ok(new)
}

/// Attempts at one ingest group when PostgreSQL ends it for a lock conflict with another
/// server's transaction.
const INSERT_TRIES: u32 = 5;

/// Whether PostgreSQL ended the transaction for a deadlock or a serialization failure
/// (nothing of it was kept; running it again is safe).
fn is_lock_conflict(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

fn unzip3<A, B, C>(it: impl Iterator<Item = (A, B, C)>) -> (Vec<A>, Vec<B>, Vec<C>) {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for (x, y, z) in it {
        a.push(x);
        b.push(y);
        c.push(z);
    }
    (a, b, c)
}

fn count(row: &tokio_postgres::Row) -> Count {
    Count {
        raw: row.get::<_, i64>(0) as u64,
        estimate: row.get::<_, f64>(1),
    }
}

impl AnalyticsStore for PostgresStore {
    fn insert_events(&self, events: Vec<StoredEvent>) -> StoreFuture<'_, Vec<bool>> {
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let mut tries = 1;
            loop {
                match insert_all(&mut c, &self.ingest, &events).await {
                    // Another server's transaction on the same rows: nothing of this one
                    // was kept (rolled back), so it runs again from the start.
                    Err(StoreError::Postgres(e))
                        if tries < INSERT_TRIES && is_lock_conflict(&e) =>
                    {
                        tracing::debug!(error = %e, tries, "ingest group retried");
                        tries += 1;
                    }
                    r => return r,
                }
            }
        })
    }

    fn active_users(&self, from: i32, to: i32) -> StoreFuture<'_, Count> {
        Box::pin(async move {
            let floor: Option<i32> = self.reader.query_one(sql::ACTIVE_FLOOR, &[]).await?.get(0);
            let from = floor.map_or(from, |f| f.max(from));
            let changed: bool = self
                .reader
                .query_one(sql::ACTIVE_RATE_CHANGED, &[&from, &to])
                .await?
                .get(0);
            let sql = if changed {
                sql::ACTIVE_SCAN
            } else {
                sql::ACTIVE_TOTAL
            };
            Ok(count(&self.reader.query_one(sql, &[&from, &to]).await?))
        })
    }

    fn sessions(&self, day: i32) -> StoreFuture<'_, SessionStats> {
        Box::pin(async move {
            // Summed in the database: one row comes back, not every session of the day.
            // `percentile_disc` is the nearest rank ([`super::percentile`]).
            let r = self.reader.query_one(SESSION_STATS, &[&day]).await?;
            Ok(SessionStats {
                count: r.get::<_, i64>(0) as u64,
                estimate: r.get(1),
                mean_ms: r.get(2),
                median_ms: r.get(3),
                p90_ms: r.get(4),
            })
        })
    }

    fn feature(&self, name: String, from: i32, to: i32) -> StoreFuture<'_, Vec<FeatureDay>> {
        Box::pin(async move {
            let rows = self
                .reader
                .query(sql::FEATURE_BY_DAY, &[&name, &from, &to])
                .await?;
            Ok(rows
                .iter()
                .map(|r| FeatureDay {
                    date: day_date(r.get(0)),
                    events: r.get::<_, i64>(1) as u64,
                    events_estimate: r.get(2),
                    users: r.get::<_, i64>(3) as u64,
                    users_estimate: r.get(4),
                })
                .collect())
        })
    }

    fn retention(&self, cohort: i32, days: u32) -> StoreFuture<'_, (Count, Vec<Count>)> {
        Box::pin(async move {
            let size = count(
                &self
                    .reader
                    .query_one(
                        "SELECT COUNT(*), COALESCE(SUM(1.0 / sample_rate), 0)::float8 FROM users \
                         WHERE first_day = $1",
                        &[&cohort],
                    )
                    .await?,
            );
            let last = cohort + days as i32;
            let mut per_day = vec![Count::default(); days as usize + 1];
            for r in self
                .reader
                .query(sql::COHORT_BY_DAY, &[&cohort, &last])
                .await?
            {
                let d: i32 = r.get(0);
                per_day[(d - cohort) as usize] = Count {
                    raw: r.get::<_, i64>(1) as u64,
                    estimate: r.get(2),
                };
            }
            Ok((size, per_day))
        })
    }

    fn delete_user(&self, user_id: String) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            tx.execute(
                "INSERT INTO feature_reach (day, name, prev_day, sample_rate, rate_changed, users, \
                 events) SELECT day, name, prev_day, sample_rate, rate_changed, -COUNT(*), -SUM(events) \
                 FROM daily_feature WHERE user_id = $1 \
                 GROUP BY day, name, prev_day, sample_rate, rate_changed \
                 ON CONFLICT (day, name, prev_day, sample_rate, rate_changed) DO UPDATE SET \
                 users = feature_reach.users + excluded.users, events = feature_reach.events + excluded.events",
                &[&user_id],
            )
            .await?;
            tx.execute(sql::ACTIVE_FORGET_USER, &[&user_id]).await?;
            tx.execute(sql::COHORT_FORGET_USER, &[&user_id]).await?;
            let mut n = 0;
            for t in USER_TABLES {
                n += tx.execute(&sql::delete_user_rows(t), &[&user_id]).await?;
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    fn purge(
        &self,
        events_before_ms: i64,
        aggregates_before: i32,
        events_keep_from: i64,
    ) -> StoreFuture<'_, PurgeCounts> {
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            let events = tx
                .execute(
                    &format!("DELETE FROM events WHERE ts < $1 AND {}", export::KEEP),
                    &[&events_before_ms, &events_keep_from],
                )
                .await?;
            let mut aggregates = 0;
            for t in DAILY_TABLES {
                aggregates += tx
                    .execute(&sql::purge_days(t), &[&aggregates_before])
                    .await?;
            }
            aggregates += tx.execute(sql::PURGE_USERS, &[&aggregates_before]).await?;
            aggregates += tx.execute(sql::PURGE_REACH, &[&aggregates_before]).await?;
            aggregates += tx
                .execute(sql::PURGE_ACTIVE_REACH, &[&aggregates_before])
                .await?;
            aggregates += tx.execute(sql::PURGE_COHORT, &[&aggregates_before]).await?;
            tx.execute(sql::PURGE_EMPTY_REACH, &[]).await?;
            tx.execute(sql::PURGE_EMPTY_ACTIVE_REACH, &[]).await?;
            tx.execute(sql::PURGE_EMPTY_COHORT, &[]).await?;
            tx.commit().await?;
            Ok(PurgeCounts {
                events,
                aggregates,
                ..PurgeCounts::default()
            })
        })
    }

    fn contains_events(&self, ids: Vec<String>) -> StoreFuture<'_, Vec<bool>> {
        Box::pin(async move {
            // Ids are stored as `uuid`: one that is not a UUID was never stored.
            let uuids: Vec<Option<String>> = ids
                .iter()
                .map(|i| uuid::Uuid::try_parse(i).ok().map(|u| u.to_string()))
                .collect();
            let valid: Vec<&str> = uuids.iter().flatten().map(String::as_str).collect();
            let rows = self
                .reader
                .query(
                    "SELECT id::text FROM events WHERE id = ANY($1::text[]::uuid[])",
                    &[&valid],
                )
                .await?;
            let found: HashSet<&str> = rows.iter().map(|r| r.get(0)).collect();
            Ok(uuids
                .iter()
                .map(|u| u.as_deref().is_some_and(|u| found.contains(u)))
                .collect())
        })
    }

    fn count_events(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let r = self.reader.query_one(sql::COUNT_EVENTS, &[]).await?;
            Ok(r.get::<_, i64>(0) as u64)
        })
    }

    fn user_rows(&self, user_id: String) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut n = 0;
            for t in USER_TABLES {
                let r = self
                    .reader
                    .query_one(&sql::count_user_rows(t), &[&user_id])
                    .await?;
                n += r.get::<_, i64>(0) as u64;
            }
            Ok(n)
        })
    }

    fn daily_active(&self, from: i32, to: i32) -> StoreFuture<'_, Vec<DayCount>> {
        Box::pin(async move {
            let rows = self.reader.query(sql::ACTIVE_BY_DAY, &[&from, &to]).await?;
            Ok(rows
                .iter()
                .map(|r| DayCount {
                    date: day_date(r.get(0)),
                    users: r.get::<_, i64>(1) as u64,
                    estimate: r.get(2),
                })
                .collect())
        })
    }

    fn feature_totals_rollup(
        &self,
        from: i32,
        to: i32,
        limit: u32,
    ) -> StoreFuture<'_, Option<Vec<FeatureTotal>>> {
        Box::pin(async move {
            let floor: Option<i32> = self.reader.query_one(sql::REACH_FLOOR, &[]).await?.get(0);
            let from = floor.map_or(from, |f| f.max(from));
            let changed: bool = self
                .reader
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM feature_reach WHERE day BETWEEN $1 AND $2 \
                     AND prev_day >= $1 AND rate_changed <> 0 AND users > 0)",
                    &[&from, &to],
                )
                .await?
                .get(0);
            if changed {
                return Ok(None);
            }
            let limit = i64::from(limit);
            let rows = self
                .reader
                .query(
                    "SELECT name, SUM(events)::int8, SUM(events / sample_rate)::float8, \
                     SUM(CASE WHEN prev_day < $1 THEN users ELSE 0 END)::int8, \
                     SUM(CASE WHEN prev_day < $1 THEN users / sample_rate ELSE 0 END)::float8 \
                     FROM feature_reach WHERE day BETWEEN $1 AND $2 GROUP BY name \
                     HAVING SUM(CASE WHEN prev_day < $1 THEN users ELSE 0 END) > 0 \
                     ORDER BY SUM(events) DESC, name LIMIT $3",
                    &[&from, &to, &limit],
                )
                .await?;
            Ok(Some(
                rows.iter()
                    .map(|r| FeatureTotal {
                        name: r.get(0),
                        events: r.get::<_, i64>(1) as u64,
                        events_estimate: r.get(2),
                        users: r.get::<_, i64>(3) as u64,
                        users_estimate: r.get(4),
                    })
                    .collect(),
            ))
        })
    }

    fn feature_totals_scan(
        &self,
        from: i32,
        to: i32,
        limit: u32,
    ) -> StoreFuture<'_, Vec<FeatureTotal>> {
        Box::pin(async move {
            let limit = i64::from(limit);
            let rows = self
                .reader
                .query(
                    "SELECT name, SUM(ev)::int8, SUM(ev_est)::float8, COUNT(*), \
                     SUM(1.0 / sr)::float8 FROM (SELECT name, user_id, SUM(events) AS ev, \
                     SUM(events / sample_rate) AS ev_est, MAX(sample_rate) AS sr FROM daily_feature \
                     WHERE day BETWEEN $1 AND $2 GROUP BY name, user_id) t \
                     GROUP BY name ORDER BY SUM(ev) DESC, name LIMIT $3",
                    &[&from, &to, &limit],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| FeatureTotal {
                    name: r.get(0),
                    events: r.get::<_, i64>(1) as u64,
                    events_estimate: r.get(2),
                    users: r.get::<_, i64>(3) as u64,
                    users_estimate: r.get(4),
                })
                .collect())
        })
    }
}

// ---- rollout health -------------------------------------------------------------------

fn release_row(r: &tokio_postgres::Row) -> ReleaseRow {
    ReleaseRow {
        app: r.get(0),
        version: r.get(1),
        channel: r.get(2),
        envelope: r.get(3),
        manifest_sha256: r.get(4),
        created_ms: r.get(5),
        pending_start: r.get(6),
        pending_percentage: r.get(7),
        pending_fallback: r.get(8),
    }
}

fn rollout_row(r: &tokio_postgres::Row) -> RolloutRow {
    RolloutRow {
        app: r.get(0),
        channel: r.get(1),
        version: r.get(2),
        percentage: r.get(3),
        status: r.get(4),
        fallback_version: r.get(5),
        rolled_back: r.get(6),
        policy: r.get(7),
        started_ms: r.get(8),
        stage_started_ms: r.get(9),
        updated_ms: r.get(10),
        high_error_alerted: r.get(11),
        low_adoption_alerted: r.get(12),
    }
}

fn channel_row(r: &tokio_postgres::Row) -> ChannelRow {
    ChannelRow {
        app: r.get(0),
        channel: r.get(1),
        version: r.get(2),
        sequence: r.get(3),
        issued_ms: r.get(4),
        expires_ms: r.get(5),
        envelope: r.get(6),
    }
}

fn decision_row(r: &tokio_postgres::Row) -> Decision {
    Decision {
        id: r.get(0),
        at: from_ms(r.get(1)),
        app: r.get(2),
        channel: r.get(3),
        version: r.get(4),
        action: r.get(5),
        actor: r.get(6),
        from_percentage: r.get(7),
        to_percentage: r.get(8),
        installs: r.get::<_, i64>(9) as u64,
        error_rate: r.get(10),
        error_lower: r.get(11),
        error_upper: r.get(12),
        crash_rate: r.get(13),
        crash_lower: r.get(14),
        crash_upper: r.get(15),
        reason: r.get(16),
    }
}

/// A row of [`sql::RELEASE_HEALTH`] / [`sql::RELEASE_HEALTH_OF`].
fn release_health_row(r: &tokio_postgres::Row) -> ReleaseHealthRow {
    let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
    ReleaseHealthRow {
        app: r.get(0),
        channel: r.get(1),
        version: r.get(2),
        installs: n(3),
        active: n(4),
        sessions: [n(5), n(6), n(7), n(8)],
        users: n(9),
        users_crashed: n(10),
    }
}

impl RolloutStore for PostgresStore {
    fn insert_health(&self, h: HealthRow) -> StoreFuture<'_, bool> {
        let ended = h.session_ends;
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            let n = tx
                .execute(
                    "INSERT INTO health_reports (id, machine_id, app, version, channel, platform, \
                     arch, period_start, period_end, sessions, errors, crashes, boot_reverts, received, \
                     ended_ok, ended_errored, ended_crashed, ended_abnormal) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                     ON CONFLICT (id) DO NOTHING",
                    &[&h.id, &h.machine_id, &h.app, &h.version, &h.channel, &h.platform, &h.arch,
                      &h.period_start_ms, &h.period_end_ms, &h.sessions, &h.errors, &h.crashes,
                      &h.boot_reverts, &h.received_ms, &ended.map(|e| e[0]), &ended.map(|e| e[1]),
                      &ended.map(|e| e[2]), &ended.map(|e| e[3])],
                )
                .await?;
            if n == 1 {
                let e = ended.unwrap_or_default();
                tx.execute(
                    "INSERT INTO health_installs (app, channel, version, machine_id, errors, crashes, last_seen, \
                     ended_ok, ended_errored, ended_crashed, ended_abnormal) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (app, channel, version, machine_id) DO UPDATE \
                     SET errors = health_installs.errors + excluded.errors, \
                     crashes = health_installs.crashes + excluded.crashes, \
                     last_seen = GREATEST(health_installs.last_seen, excluded.last_seen), \
                     ended_ok = health_installs.ended_ok + excluded.ended_ok, \
                     ended_errored = health_installs.ended_errored + excluded.ended_errored, \
                     ended_crashed = health_installs.ended_crashed + excluded.ended_crashed, \
                     ended_abnormal = health_installs.ended_abnormal + excluded.ended_abnormal",
                    &[&h.app, &h.channel, &h.version, &h.machine_id, &h.errors, &h.crashes, &h.received_ms,
                      &e[0], &e[1], &e[2], &e[3]],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    fn health_counts(
        &self,
        app: String,
        channel: String,
        version: String,
    ) -> StoreFuture<'_, HealthCounts> {
        Box::pin(async move {
            let r = self
                .reader
                .query_one(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE errors > 0), COUNT(*) FILTER (WHERE crashes > 0) \
                     FROM health_installs WHERE app = $1 AND channel = $2 AND version = $3",
                    &[&app, &channel, &version],
                )
                .await?;
            Ok(HealthCounts {
                installs: r.get::<_, i64>(0) as u64,
                with_errors: r.get::<_, i64>(1) as u64,
                with_crashes: r.get::<_, i64>(2) as u64,
            })
        })
    }

    fn release_health(
        &self,
        active_since_ms: i64,
        seen_since_ms: i64,
    ) -> StoreFuture<'_, Vec<ReleaseHealthRow>> {
        Box::pin(async move {
            self.read_all(
                sql::RELEASE_HEALTH,
                &[&active_since_ms, &seen_since_ms],
                release_health_row,
            )
            .await
        })
    }

    fn release_health_of(
        &self,
        app: String,
        channel: String,
        version: String,
        active_since_ms: i64,
    ) -> StoreFuture<'_, ReleaseHealthRow> {
        Box::pin(async move {
            let row = self
                .reader
                .query_opt(
                    sql::RELEASE_HEALTH_OF,
                    &[&active_since_ms, &app, &channel, &version],
                )
                .await?;
            Ok(row
                .as_ref()
                .map(release_health_row)
                .unwrap_or(ReleaseHealthRow {
                    app,
                    channel,
                    version,
                    ..ReleaseHealthRow::default()
                }))
        })
    }

    fn app_active_installs(&self, since_ms: i64) -> StoreFuture<'_, Vec<(String, u64)>> {
        Box::pin(async move {
            let rows = self
                .reader
                .query(sql::APP_ACTIVE_INSTALLS, &[&since_ms])
                .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64))
                .collect())
        })
    }

    fn channel_population(
        &self,
        app: String,
        channel: String,
        since_ms: i64,
    ) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let r = self
                .reader
                .query_one(sql::ACTIVE_INSTALLS, &[&app, &channel, &since_ms])
                .await?;
            Ok(r.get::<_, i64>(0) as u64)
        })
    }

    fn purge_health(
        &self,
        before_ms: i64,
        reports_keep_from: i64,
    ) -> StoreFuture<'_, HealthDeleted> {
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            let reports = tx
                .execute(
                    &format!(
                        "DELETE FROM health_reports WHERE received < $1 AND {}",
                        export::KEEP
                    ),
                    &[&before_ms, &reports_keep_from],
                )
                .await?;
            let installs = tx
                .execute(
                    &format!(
                        "DELETE FROM health_installs WHERE last_seen < $1 AND NOT {ROLLOUT_CAN_DECIDE}"
                    ),
                    &[&before_ms],
                )
                .await?;
            tx.commit().await?;
            Ok(HealthDeleted { reports, installs })
        })
    }

    fn purge_decisions(&self, before_ms: i64, keep_from: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let c = self.writer.lock().await;
            Ok(c.execute(
                &format!("DELETE FROM decisions WHERE at < $1 AND {}", export::KEEP),
                &[&before_ms, &keep_from],
            )
            .await?)
        })
    }

    fn delete_machine(&self, machine_id: String) -> StoreFuture<'_, HealthDeleted> {
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            let reports = tx
                .execute(sql::DELETE_MACHINE_REPORTS, &[&machine_id])
                .await?;
            let installs = tx
                .execute(sql::DELETE_MACHINE_INSTALLS, &[&machine_id])
                .await?;
            tx.commit().await?;
            Ok(HealthDeleted { reports, installs })
        })
    }

    fn machine_rows(&self, machine_id: String) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let r = self
                .reader
                .query_one(sql::MACHINE_ROWS, &[&machine_id])
                .await?;
            Ok(r.get::<_, i64>(0) as u64)
        })
    }

    fn get_release(&self, app: String, version: String) -> StoreFuture<'_, Option<ReleaseRow>> {
        Box::pin(async move {
            self.read_opt(sql::GET_RELEASE, &[&app, &version], release_row)
                .await
        })
    }

    fn put_release(&self, r: ReleaseRow) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let c = self.writer.lock().await;
            c.execute(
                &format!("INSERT INTO releases ({RELEASE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (app, version) DO UPDATE SET pending_start = excluded.pending_start, \
                 pending_percentage = excluded.pending_percentage, pending_fallback = excluded.pending_fallback"),
                &[&r.app, &r.version, &r.channel, &r.envelope, &r.manifest_sha256, &r.created_ms,
                  &r.pending_start, &r.pending_percentage, &r.pending_fallback],
            )
            .await?;
            Ok(())
        })
    }

    fn get_rollout(
        &self,
        app: String,
        channel: String,
        version: String,
    ) -> StoreFuture<'_, Option<RolloutRow>> {
        Box::pin(async move {
            self.read_opt(sql::GET_ROLLOUT, &[&app, &channel, &version], rollout_row)
                .await
        })
    }

    fn list_rollouts(&self) -> StoreFuture<'_, Vec<RolloutRow>> {
        Box::pin(async move { self.read_all(sql::LIST_ROLLOUTS, &[], rollout_row).await })
    }

    fn get_channel(&self, app: String, channel: String) -> StoreFuture<'_, Option<ChannelRow>> {
        Box::pin(async move {
            self.read_opt(sql::GET_CHANNEL, &[&app, &channel], channel_row)
                .await
        })
    }

    fn list_channels(&self) -> StoreFuture<'_, Vec<ChannelRow>> {
        Box::pin(async move { self.read_all(sql::LIST_CHANNELS, &[], channel_row).await })
    }

    fn commit_change(&self, ch: RolloutChange) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            if let Some(f) = &ch.fence {
                if tx
                    .query_opt(CHECK_FENCE, &[&f.name, &f.holder, &f.token])
                    .await?
                    .is_none()
                {
                    tx.rollback().await?;
                    return Err(StoreError::NotLeader(f.name.clone()));
                }
            }
            if let Some((row, expected)) = &ch.channel {
                let n = match expected {
                    None => {
                        tx.execute(
                            &format!("INSERT INTO channel_states ({CHANNEL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                             ON CONFLICT (app, channel) DO NOTHING"),
                            &[&row.app, &row.channel, &row.version, &row.sequence, &row.issued_ms, &row.expires_ms, &row.envelope],
                        )
                        .await?
                    }
                    Some(prev) => {
                        tx.execute(
                            "UPDATE channel_states SET version = $3, sequence = $4, issued = $5, expires = $6, \
                             envelope = $7 WHERE app = $1 AND channel = $2 AND sequence = $8",
                            &[&row.app, &row.channel, &row.version, &row.sequence, &row.issued_ms, &row.expires_ms, &row.envelope, prev],
                        )
                        .await?
                    }
                };
                if n != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
            }
            if let Some(r) = &ch.rollout {
                tx.execute(
                    &format!("INSERT INTO rollouts ({ROLLOUT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (app, channel, version) DO UPDATE SET percentage = excluded.percentage, \
                     status = excluded.status, fallback_version = excluded.fallback_version, \
                     rolled_back = excluded.rolled_back, policy = excluded.policy, started = excluded.started, \
                     stage_started = excluded.stage_started, updated = excluded.updated, \
                     high_error_alerted = excluded.high_error_alerted, low_adoption_alerted = excluded.low_adoption_alerted"),
                    &[&r.app, &r.channel, &r.version, &r.percentage, &r.status, &r.fallback_version, &r.rolled_back,
                      &r.policy, &r.started_ms, &r.stage_started_ms, &r.updated_ms, &r.high_error_alerted, &r.low_adoption_alerted],
                )
                .await?;
            }
            if let Some(d) = &ch.decision {
                let installs = d.installs as i64;
                tx.execute(
                    &format!("INSERT INTO decisions ({DECISION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"),
                    &[&d.id, &to_ms(d.at), &d.app, &d.channel, &d.version, &d.action, &d.actor, &d.from_percentage,
                      &d.to_percentage, &installs, &d.error_rate, &d.error_lower, &d.error_upper, &d.crash_rate,
                      &d.crash_lower, &d.crash_upper, &d.reason],
                )
                .await?;
            }
            alerts::apply(&tx, &ch.alerts).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn shared_by_servers(&self) -> bool {
        true
    }

    fn acquire_lease(
        &self,
        name: String,
        holder: String,
        ttl_ms: i64,
    ) -> StoreFuture<'_, Option<i64>> {
        Box::pin(async move {
            let row = self
                .lease
                .query_opt(ACQUIRE_LEASE, &[&name, &holder, &ttl_ms])
                .await?;
            Ok(row.map(|r| r.get::<_, i64>(0)))
        })
    }

    fn notify(&self, channel: &'static str, payload: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.lease
                .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await?;
            Ok(())
        })
    }

    fn listen(&self, channel: &'static str) -> Option<tokio::sync::mpsc::Receiver<String>> {
        Some(crate::fanout::listen(self.url.clone(), channel))
    }

    fn release_lease(&self, name: String, holder: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.lease.execute(RELEASE_LEASE, &[&name, &holder]).await?;
            Ok(())
        })
    }

    fn decisions(
        &self,
        app: String,
        channel: String,
        version: String,
        limit: u32,
    ) -> StoreFuture<'_, Vec<Decision>> {
        Box::pin(async move {
            let limit = limit as i64;
            self.read_all(&format!("SELECT {DECISION_COLS} FROM decisions WHERE app = $1 AND channel = $2 AND version = $3 \
                     ORDER BY at DESC, seq DESC LIMIT $4"),
                    &[&app, &channel, &version, &limit], decision_row).await
        })
    }
}
