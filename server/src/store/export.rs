//! What the warehouse export needs from the database: row streams, per-destination
//! watermarks, and the hold the retention job must respect.
//!
//! Owns [`ExportStore`] (a supertrait of [`super::AnalyticsStore`], implemented by both
//! backends) and its types. It knows nothing of Parquet or object stores: rows leave as
//! borrowed [`Value`]s through a [`RowSink`] (see `crate::export`).
//!
//! **Keys.** Every row of an append-only table ([`Stream`]: events, health reports, rollout
//! decisions) carries an export key that orders rows by commit: on SQLite a counter taken in
//! the writing transaction (`export_seq`; SQLite has one writer, so a key below the counter
//! is committed), on PostgreSQL the writing transaction's id (`export_xid`, `xid8`) read
//! against the snapshot's `xmin` (every transaction below it has ended, so no row below it
//! can still appear, whichever server wrote it and in whatever order they committed).
//!
//! **Watermarks.** `export_watermarks` keeps, per destination and table, `next` (every row
//! with a key below it has been written to that destination) and `pending` (the upper bound
//! of the chunk being written). A chunk `[next, pending)` is fixed in the database before
//! any of its files is written, and `next` moves to `pending` only after all of them were
//! renamed into place, so a run killed at any point redoes exactly the same chunk under the
//! same file names: nothing lost, nothing twice.
//!
//! It refuses to let retention delete a row that an enabled export has not written
//! ([`ExportStore::export_hold`]); erasure of a user is never held back.

use super::StoreFuture;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// An append-only table exported incrementally by its export key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Raw analytics events.
    Events,
    /// Health reports, one row per accepted report.
    HealthReports,
    /// The rollout decision log.
    Decisions,
}

impl Stream {
    /// Every stream.
    pub const ALL: [Stream; 3] = [Stream::Events, Stream::HealthReports, Stream::Decisions];

    /// The name of its export table (and of its watermark row).
    pub fn table(self) -> &'static str {
        match self {
            Stream::Events => "events",
            Stream::HealthReports => "health_reports",
            Stream::Decisions => "rollout_decisions",
        }
    }
}

/// A rollup exported as one snapshot file per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Daily {
    /// Distinct active users per day (`daily_users`).
    ActiveUsers,
    /// Sessions ended per day (`daily_sessions`).
    Sessions,
    /// Events and sample rate per day, event name and user (`daily_feature`).
    FeatureUsage,
}

/// One value of an exported row, borrowed from the database driver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// An integer (counts, milliseconds, day numbers).
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(&'a str),
}

/// Receives exported rows, in the column order of the export schema.
pub trait RowSink: Send {
    /// Takes one row; `false` asks the store to stop reading (the writer failed).
    fn push(&mut self, row: &[Value<'_>]) -> bool;
    /// Called once after the last row (not by the store: by whoever gave it the sink),
    /// except on a sink from [`RowSink::fork`], which the store ends itself.
    fn end(&mut self) {}
    /// A second sink delivering to the same place, for a second reader thread (a backend
    /// may read a chunk's key range in two halves at once); the store calls
    /// [`RowSink::end`] on it after its last row. `None`: one reader only.
    fn fork(&mut self) -> Option<Box<dyn RowSink>> {
        None
    }
}

/// The two halves of the key range `[lo, hi)` that two readers of a chunk take (the second
/// is empty when the range is too small to split).
pub fn halves(lo: i64, hi: i64) -> ((i64, i64), (i64, i64)) {
    if hi.saturating_sub(lo) < 2 {
        return ((lo, hi), (hi, hi));
    }
    let mid = lo + hi.saturating_sub(lo) / 2;
    ((lo, mid), (mid, hi))
}

/// The range of keys one export step writes: `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// First key of the chunk (the destination's `next`).
    pub lo: i64,
    /// Key past the chunk.
    pub hi: i64,
    /// The chunk was begun by an earlier run that did not finish: its files may exist.
    pub redo: bool,
}

/// A destination's watermark for one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermark {
    /// Every row with a key below this was written.
    pub next: i64,
    /// Upper bound of a chunk begun and not committed.
    pub pending: Option<i64>,
}

/// What retention must keep for the enabled exports: per stream, the lowest `next` of any
/// enabled destination (rows with a key at or above it are not written everywhere yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportHold {
    /// Events: keep keys `>=` this.
    pub events: Option<i64>,
    /// Health reports.
    pub health_reports: Option<i64>,
    /// Rollout decisions.
    pub decisions: Option<i64>,
}

impl ExportHold {
    /// The hold of `stream`.
    pub fn of(&self, stream: Stream) -> Option<i64> {
        match stream {
            Stream::Events => self.events,
            Stream::HealthReports => self.health_reports,
            Stream::Decisions => self.decisions,
        }
    }

    /// The key below which rows may be deleted (`i64::MAX`: no hold).
    pub fn limit(&self, stream: Stream) -> i64 {
        self.of(stream).unwrap_or(i64::MAX)
    }
}

/// A held export lock (released when dropped, or when the process dies).
pub type ExportLock = Box<dyn std::any::Any + Send>;

/// Day numbers selected for a daily table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Days {
    /// Every day the rollup has.
    All,
    /// Days `from..=to`.
    Range(i32, i32),
}

/// The export's view of the database.
pub trait ExportStore: Send + Sync {
    /// Takes the export lock of `destination` (one run per destination at a time, across
    /// processes and servers); `None` when another run holds it.
    fn export_lock(&self, destination: String) -> StoreFuture<'_, Option<ExportLock>>;
    /// Records `destination` and gives it a watermark row (at 0) for each of `tables` it
    /// lacks; `enabled: Some(b)` sets whether it holds retention back.
    fn export_register(
        &self,
        destination: String,
        tables: Vec<String>,
        enabled: Option<bool>,
    ) -> StoreFuture<'_, ()>;
    /// Whether `destination` has any watermark.
    fn export_known(&self, destination: String) -> StoreFuture<'_, bool>;
    /// Drops every watermark of `destination`; whether it had any.
    fn export_forget(&self, destination: String) -> StoreFuture<'_, bool>;
    /// The watermark of `destination` for `table` (zero when none).
    fn export_watermark(&self, destination: String, table: String) -> StoreFuture<'_, Watermark>;
    /// The key past every row of `stream` committed now.
    fn export_horizon(&self, stream: Stream) -> StoreFuture<'_, i64>;
    /// The next chunk of `stream` for `destination`: the pending one if a run left it,
    /// otherwise `[next, hi)` holding at most about `max_rows` rows, recorded as pending
    /// before it is returned. `None` when nothing is new.
    fn export_begin(
        &self,
        destination: String,
        stream: Stream,
        max_rows: u64,
    ) -> StoreFuture<'_, Option<Chunk>>;
    /// Moves `table`'s watermark of `destination` from `lo` to `hi` and clears the pending
    /// chunk; `false` (nothing changed) when `next` is no longer `lo`.
    fn export_commit(
        &self,
        destination: String,
        table: String,
        lo: i64,
        hi: i64,
    ) -> StoreFuture<'_, bool>;
    /// Streams the rows of `stream` with keys in `[lo, hi)` whose time falls in
    /// `[from_ms, to_ms)` to `sink` (given back): a date-range read (`keys` is
    /// `(0, i64::MAX)`) in time order; a chunk in any order, possibly by two readers at
    /// once (the second through [`RowSink::fork`]).
    fn export_rows(
        &self,
        stream: Stream,
        keys: (i64, i64),
        time: (i64, i64),
        sink: Box<dyn RowSink>,
    ) -> StoreFuture<'_, Box<dyn RowSink>>;
    /// Whether `stream` has a row with a key in `[lo, hi)`.
    fn export_any(&self, stream: Stream, lo: i64, hi: i64) -> StoreFuture<'_, bool>;
    /// The days of the events with keys in `[lo, hi)` (what a daily snapshot must refresh).
    fn export_event_days(&self, lo: i64, hi: i64) -> StoreFuture<'_, Vec<i32>>;
    /// The days `table` has among `days`, oldest first.
    fn export_daily_days(&self, table: Daily, days: Days) -> StoreFuture<'_, Vec<i32>>;
    /// Streams the rows of `table` for one day to `sink` (given back).
    fn export_daily(
        &self,
        table: Daily,
        day: i32,
        sink: Box<dyn RowSink>,
    ) -> StoreFuture<'_, Box<dyn RowSink>>;
    /// What retention must keep for the enabled exports.
    fn export_hold(&self) -> StoreFuture<'_, ExportHold>;
}

/// The columns each backend selects for a stream, in export order (the export's schema
/// lists the same columns: `crate::export::schema`). `ts`, `received`, `at` and the period
/// bounds are milliseconds.
pub fn stream_columns(stream: Stream) -> &'static str {
    match stream {
        Stream::Events => {
            "id, name, category, user_id, session_id, ts, app_version, platform, arch, channel, \
             properties, duration, sequence, sample_rate, received"
        }
        Stream::HealthReports => {
            "id, machine_id, app, version, channel, platform, arch, period_start, period_end, \
             sessions, errors, crashes, boot_reverts, received, ended_ok, ended_errored, \
             ended_crashed, ended_abnormal"
        }
        Stream::Decisions => {
            "id, at, app, channel, version, action, actor, from_percentage, to_percentage, \
             installs, error_rate, error_lower, error_upper, crash_rate, crash_lower, \
             crash_upper, reason"
        }
    }
}

/// The number of columns [`stream_columns`] selects.
pub fn stream_width(stream: Stream) -> usize {
    stream_columns(stream).split(',').count()
}

/// The table and time column of a stream.
pub fn stream_table(stream: Stream) -> (&'static str, &'static str) {
    match stream {
        Stream::Events => ("events", "ts"),
        Stream::HealthReports => ("health_reports", "received"),
        Stream::Decisions => ("decisions", "at"),
    }
}

/// The rollup table of a daily export, its select list for one day (in export order; the
/// day first) and its width.
pub fn daily_query(table: Daily) -> (&'static str, &'static str, usize) {
    match table {
        Daily::ActiveUsers => (
            "daily_users",
            "SELECT day, COUNT(*), SUM(1.0 / sample_rate) FROM daily_users WHERE day = ?1 GROUP BY day",
            3,
        ),
        Daily::Sessions => (
            "daily_sessions",
            "SELECT day, session_id, user_id, duration, sample_rate FROM daily_sessions \
             WHERE day = ?1 ORDER BY session_id",
            5,
        ),
        Daily::FeatureUsage => (
            "daily_feature",
            "SELECT day, name, user_id, events, sample_rate FROM daily_feature WHERE day = ?1 \
             ORDER BY name, user_id",
            5,
        ),
    }
}

/// The lock-file name of a destination beside a SQLite database: a digest of the
/// destination, so any URL makes a plain file name.
pub fn lock_suffix(destination: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(destination.as_bytes());
    format!("export-{}.lock", hex::encode(&d[..8]))
}

#[cfg(test)]
mod tests {
    use super::halves;

    #[test]
    fn halves_split_a_key_range_into_two_that_cover_it_once() {
        assert_eq!(halves(10, 20), ((10, 15), (15, 20)));
        assert_eq!(halves(10, 21), ((10, 15), (15, 21)));
        assert_eq!(halves(10, 11), ((10, 11), (11, 11)));
        assert_eq!(halves(10, 10), ((10, 10), (10, 10)));
        assert_eq!(
            halves(0, i64::MAX),
            ((0, i64::MAX / 2), (i64::MAX / 2, i64::MAX))
        );
    }
}
