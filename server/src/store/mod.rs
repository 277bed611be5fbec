//! The server's analytics store: one trait, two databases.
//!
//! Owns [`AnalyticsStore`] (what the ingest writer and the query endpoints need), the row
//! type written at ingest ([`StoredEvent`]), the query answers, and the choice of database
//! from a URL ([`open`]): `sqlite:PATH` (the default, one embedded file) or
//! `postgres://…` (several stateless servers sharing one database). Each backend keeps its
//! own schema migrations, numbered in a `schema_version` table.
//!
//! Raw events are kept beside daily rollup tables upserted at ingest (`daily_users`,
//! `daily_sessions`, `daily_feature`, `users` with first/last day, `feature_reach`), so the
//! queries read rollups and stay fast on large stores. `feature_reach` answers distinct users
//! of a name over any range without reading every user: each `daily_feature` row keeps the
//! previous day its user used the name (`prev_day`), and a user is counted on the rows whose
//! `prev_day` falls before the range (its first day inside it); buckets count rows by day,
//! name, `prev_day`, sample rate and whether the rate changed since `prev_day`. A range
//! starting before the oldest kept day starts at that day (a `prev_day` older than it was
//! purged); this holds while the aggregate window is at least the 90 days ingest accepts
//! late events for, so no late row lands before the purge cut. When a user's sample rate
//! changed between two days of the range, the answer comes from the per-user rows. Active
//! users over a range (WAU, MAU, the DAU series) work the same way: each `daily_users` row
//! keeps its user's previous active day and `active_reach` counts rows by day, that day,
//! sample rate and whether the rate changed (`sqlite/active.rs`, `postgres/active.rs`).
//! Retention reads `cohort_active`: `daily_users` rows counted by their user's first day, day
//! and rate (`sqlite/cohort.rs`, `postgres/cohort.rs`).
//! Rollups are written only for events that were new (not duplicates), in the same
//! transaction as the events.
//!
//! It refuses to store client IP addresses: no column exists for them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

pub mod alerts;
pub mod config;
pub mod export;
pub mod postgres;
pub mod rollout;
mod sql;
pub mod sqlite;

use alerts::AlertStore;
use config::ConfigStore;
use export::ExportStore;
use rollout::RolloutStore;

/// A boxed future returned by the store (the trait is used as `dyn`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Errors of the server store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL failed.
    #[error("postgres store: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The database URL is not understood.
    #[error("database {0:?} is neither sqlite:PATH nor postgres://…")]
    BadUrl(String),
    /// The folder of the database file could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The schema is newer than this code.
    #[error("database schema version {found} is newer than {supported}; upgrade railgun")]
    TooNew {
        /// Version found.
        found: i64,
        /// Highest version known.
        supported: i64,
    },
    /// A fenced write of a server that no longer holds its lease (another server leads):
    /// nothing was written.
    #[error("lease {0} is no longer held by this server: another server leads")]
    NotLeader(String),
    /// A blocking task panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(String),
}

/// One accepted, cleaned event as written at ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Event id (dedup key), hyphenated lowercase UUID.
    pub id: String,
    /// Event name.
    pub name: String,
    /// Category wire name.
    pub category: String,
    /// Hashed user id.
    pub user_id: String,
    /// Session id.
    pub session_id: String,
    /// Skew-corrected timestamp, milliseconds since the epoch.
    pub ts_ms: i64,
    /// Day of `ts_ms` (days since 1970-01-01, UTC).
    pub day: i32,
    /// App version.
    pub app_version: String,
    /// Platform.
    pub platform: String,
    /// Arch.
    pub arch: String,
    /// Channel.
    pub channel: String,
    /// Properties as JSON text (after scrubbing), if any.
    pub properties: Option<String>,
    /// Duration in milliseconds.
    pub duration_ms: Option<f64>,
    /// Sequence in the session.
    pub sequence: i64,
    /// The batch's sample rate (0, 1].
    pub sample_rate: f64,
    /// When the server received it, milliseconds since the epoch.
    pub received_ms: i64,
}

/// A count with its sample-rate estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Count {
    /// Distinct users actually seen.
    pub raw: u64,
    /// Σ 1/sampleRate over those users.
    pub estimate: f64,
}

/// Sessions ended on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStats {
    /// Sessions counted (raw).
    pub count: u64,
    /// Σ 1/sampleRate over those sessions.
    pub estimate: f64,
    /// Mean duration, ms.
    pub mean_ms: f64,
    /// Median duration, ms.
    pub median_ms: f64,
    /// 90th percentile duration, ms.
    pub p90_ms: f64,
}

/// One day of a feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureDay {
    /// The day.
    pub date: NaiveDate,
    /// Events (raw).
    pub events: u64,
    /// Events scaled by the sample rate.
    pub events_estimate: f64,
    /// Distinct users (raw).
    pub users: u64,
    /// Users scaled by the sample rate.
    pub users_estimate: f64,
}

/// Active users of one day (a point of the DAU series).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DayCount {
    /// The day.
    pub date: NaiveDate,
    /// Distinct users active that day (raw).
    pub users: u64,
    /// Users scaled by the sample rate.
    pub estimate: f64,
}

/// One feature (event name) summed over a range of days.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureTotal {
    /// The event name.
    pub name: String,
    /// Events (raw).
    pub events: u64,
    /// Events scaled by the sample rate.
    pub events_estimate: f64,
    /// Distinct users over the whole range (raw).
    pub users: u64,
    /// Users scaled by the sample rate.
    pub users_estimate: f64,
}

/// Rows the retention job removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeCounts {
    /// Raw events deleted.
    pub events: u64,
    /// Rollup rows deleted.
    pub aggregates: u64,
    /// Health reports deleted.
    pub health_reports: u64,
    /// Per-install health rows deleted.
    pub health_installs: u64,
    /// Rollout decisions deleted.
    pub decisions: u64,
    /// Finished alert outbox rows (delivered or given up) deleted.
    pub alerts: u64,
}

impl PurgeCounts {
    /// Every row removed.
    pub fn total(&self) -> u64 {
        self.events
            + self.aggregates
            + self.health_reports
            + self.health_installs
            + self.decisions
            + self.alerts
    }
}

/// Converts a date to the day number stored.
pub fn day_number(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

/// Converts a day number back to a date.
pub fn day_date(n: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default() + chrono::Duration::days(n as i64)
}

/// Day number of an instant.
pub fn day_of(t: DateTime<Utc>) -> i32 {
    day_number(t.date_naive())
}

/// What the server needs from its database.
/// The rollout engine's tables ([`RolloutStore`]), the export's watermarks
/// ([`ExportStore`]), the alert outbox ([`AlertStore`]) and the config revisions
/// ([`ConfigStore`]) live in the same database.
pub trait AnalyticsStore:
    RolloutStore + ExportStore + AlertStore + ConfigStore + Send + Sync + std::fmt::Debug
{
    /// Writes events in one transaction; `true` for each event that was new, `false` for a
    /// duplicate id (already stored, or earlier in the same call).
    fn insert_events(&self, events: Vec<StoredEvent>) -> StoreFuture<'_, Vec<bool>>;
    /// Distinct active users over the days `from..=to`.
    fn active_users(&self, from: i32, to: i32) -> StoreFuture<'_, Count>;
    /// Sessions that ended on `day`.
    fn sessions(&self, day: i32) -> StoreFuture<'_, SessionStats>;
    /// One feature (event name) per day over `from..=to`.
    fn feature(&self, name: String, from: i32, to: i32) -> StoreFuture<'_, Vec<FeatureDay>>;
    /// The cohort of users first seen on `cohort`: its size, then the users of it active on
    /// each day `cohort + d` for `d` in `0..=days`.
    fn retention(&self, cohort: i32, days: u32) -> StoreFuture<'_, (Count, Vec<Count>)>;
    /// Erases a user everywhere; the number of rows removed.
    fn delete_user(&self, user_id: String) -> StoreFuture<'_, u64>;
    /// Deletes raw events before `events_before_ms` (except those with an export key at or
    /// past `events_keep_from`: an enabled export has not written them) and rollups before
    /// day `aggregates_before`.
    fn purge(
        &self,
        events_before_ms: i64,
        aggregates_before: i32,
        events_keep_from: i64,
    ) -> StoreFuture<'_, PurgeCounts>;
    /// Whether each id is stored (tests and operators).
    fn contains_events(&self, ids: Vec<String>) -> StoreFuture<'_, Vec<bool>>;
    /// Total raw events stored.
    fn count_events(&self) -> StoreFuture<'_, u64>;
    /// Rows anywhere that mention `user_id` (0 after deletion).
    fn user_rows(&self, user_id: String) -> StoreFuture<'_, u64>;
    /// Daily active users of each day in `from..=to` that has any, oldest first.
    fn daily_active(&self, from: i32, to: i32) -> StoreFuture<'_, Vec<DayCount>>;
    /// Every event name seen in `from..=to` with its events and distinct users, most events
    /// first (ties by name), at most `limit` of them: from the feature-reach rollup, or, when
    /// a user's sample rate changed inside the range, from the per-user rows.
    fn feature_totals(&self, from: i32, to: i32, limit: u32) -> StoreFuture<'_, Vec<FeatureTotal>> {
        Box::pin(async move {
            match self.feature_totals_rollup(from, to, limit).await? {
                Some(t) => Ok(t),
                None => self.feature_totals_scan(from, to, limit).await,
            }
        })
    }
    /// [`Self::feature_totals`] from the `feature_reach` buckets (rows per day, name and the
    /// user's previous day of that name): a user counts on its first day inside the range.
    /// `None` when a user's sample rate changed between two days of the range (the estimate
    /// then needs each user's highest rate, which the buckets do not keep).
    fn feature_totals_rollup(
        &self,
        from: i32,
        to: i32,
        limit: u32,
    ) -> StoreFuture<'_, Option<Vec<FeatureTotal>>>;
    /// [`Self::feature_totals`] from the per-user `daily_feature` rows (reads every user of
    /// the range): the reference answer and the fallback.
    fn feature_totals_scan(
        &self,
        from: i32,
        to: i32,
        limit: u32,
    ) -> StoreFuture<'_, Vec<FeatureTotal>>;
}

/// A shared store handle.
pub type SharedStore = Arc<dyn AnalyticsStore>;

/// Opens the store a URL names: `sqlite:PATH`, a bare path, or `postgres://…`.
pub async fn open(url: &str) -> Result<SharedStore, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(url).await?))
    } else {
        let path = url.strip_prefix("sqlite:").unwrap_or(url);
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(StoreError::BadUrl(url.to_string()));
        }
        let path = std::path::PathBuf::from(path);
        let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(Arc::new(store))
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Session statistics from durations and sample rates.
pub fn session_stats(mut rows: Vec<(f64, f64)>) -> SessionStats {
    if rows.is_empty() {
        return SessionStats::default();
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let d: Vec<f64> = rows.iter().map(|r| r.0).collect();
    SessionStats {
        count: d.len() as u64,
        estimate: rows.iter().map(|r| 1.0 / r.1).sum(),
        mean_ms: d.iter().sum::<f64>() / d.len() as f64,
        median_ms: percentile(&d, 0.5),
        p90_ms: percentile(&d, 0.9),
    }
}

/// The rollup rows a group of new events adds, pre-aggregated so each key is written once.
#[derive(Debug, Default)]
pub struct Rollups<'a> {
    /// `(day, user) → sample rate` of the first event.
    pub daily_users: HashMap<(i32, &'a str), f64>,
    /// `user → (first day, last day, sample rate)`.
    pub users: HashMap<&'a str, (i32, i32, f64)>,
    /// `(name, day, user) → (events, sample rate)`.
    pub feature: HashMap<(&'a str, i32, &'a str), (i64, f64)>,
    /// `(day, session) → (user, longest duration, sample rate)` from `session_end`.
    pub sessions: HashMap<(i32, &'a str), (&'a str, f64, f64)>,
}

impl<'a> Rollups<'a> {
    /// Aggregates the events whose `new` flag is set.
    pub fn of(events: &'a [StoredEvent], new: &[bool]) -> Self {
        let mut r = Rollups::default();
        for e in events.iter().zip(new).filter(|(_, n)| **n).map(|(e, _)| e) {
            r.daily_users
                .entry((e.day, &e.user_id))
                .or_insert(e.sample_rate);
            let u = r
                .users
                .entry(&e.user_id)
                .or_insert((e.day, e.day, e.sample_rate));
            u.0 = u.0.min(e.day);
            u.1 = u.1.max(e.day);
            r.feature
                .entry((&e.name, e.day, &e.user_id))
                .or_insert((0, e.sample_rate))
                .0 += 1;
            if e.name == "session_end" {
                if let Some(d) = e.duration_ms {
                    let s = r.sessions.entry((e.day, &e.session_id)).or_insert((
                        &e.user_id,
                        d,
                        e.sample_rate,
                    ));
                    s.1 = s.1.max(d);
                }
            }
        }
        r
    }
}
