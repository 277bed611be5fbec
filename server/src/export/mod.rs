//! Warehouse export: events, daily aggregates, rollouts and health reports as
//! Hive-partitioned Parquet (zstd) or NDJSON files for BigQuery, Snowflake and DuckDB,
//! incremental and exactly once (`railgun export`, and `railgun serve --export-dir`).
//!
//! Owns the export run ([`run`]): which tables ([`schema::TABLES`]), in which order, in
//! which steps, and when a destination's watermark moves. Three kinds of table:
//!
//! - **incremental** (events, health reports, rollout decisions): rows are written once,
//!   by export key ([`crate::store::export`]), in chunks of at most `chunk_rows` rows; a chunk
//!   `[lo, hi)` is recorded as pending before its files are written, its files are named
//!   after it (`part-LO-HI.parquet`, one per `date=` partition), and the watermark moves to
//!   `hi` only after every file was published. A run killed anywhere redoes the same chunk
//!   under the same names, so each row ends up in exactly one file.
//! - **daily** (daily active users, sessions, feature usage): one file per day
//!   (`part-00000.parquet`), rewritten whole whenever events of that day were exported, so
//!   a late event updates its day and a day is never counted twice.
//! - **snapshot** (rollouts): one file, rewritten when a decision was logged.
//!
//! `--from/--to` makes a **date-range export**: every row of those days, no watermark read
//! or moved, one file per day (`part-00000`), rewritten by a rerun. A destination takes one
//! kind and one format only (its `_railgun_export.json` says which), so the two kinds never
//! duplicate rows in one place. It refuses: a destination it cannot create or write, a
//! scheme it does not know, `--from` after `--to`, an unknown table, a second run on the
//! same destination at the same time.

use std::collections::BTreeSet;
use std::sync::mpsc::sync_channel;

use chrono::NaiveDate;
use serde::Serialize;

use crate::store::export::{Chunk, Days, RowSink, Stream, Value, DAY_MS};
use crate::store::rollout::RolloutRow;
use crate::store::{day_number, SharedStore, StoreError};

pub mod dest;
pub mod schedule;
pub mod schema;
pub mod write;

use dest::Destination;
use schema::{Mode, Table, TABLES};
use write::{encode, FileDone, Msg, PartitionSink};

/// Rows per incremental chunk by default (about 4 M: bounded memory, large files).
pub const DEFAULT_CHUNK_ROWS: u64 = 4_000_000;

/// File format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Apache Parquet, zstd-compressed.
    #[default]
    Parquet,
    /// Newline-delimited JSON, one object per row.
    Ndjson,
}

impl Format {
    /// `parquet` | `ndjson`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Ndjson => "ndjson",
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The destination cannot be used.
    #[error("--out {out}: {reason}")]
    Destination {
        /// As given.
        out: String,
        /// Why.
        reason: String,
    },
    /// `--from` is after `--to`.
    #[error("--from {from} is after --to {to}")]
    FromAfterTo {
        /// First day.
        from: NaiveDate,
        /// Last day.
        to: NaiveDate,
    },
    /// A table name is not known.
    #[error("unknown table {name:?} (tables: {known})")]
    UnknownTable {
        /// As given.
        name: String,
        /// The known names.
        known: String,
    },
    /// Another run holds the destination.
    #[error("another export to {0} is running; try again when it has finished")]
    Busy(String),
    /// The destination receives another kind or format of export.
    #[error("{out} holds {found} exports; this run would write {wanted} (use another --out)")]
    Mixed {
        /// Destination.
        out: String,
        /// What its marker says.
        found: String,
        /// What this run would write.
        wanted: String,
    },
    /// A date-range export into a destination that has incremental watermarks.
    #[error("{0} receives incremental exports: write a --from/--to export to another --out")]
    RangeIntoIncremental(String),
    /// The database failed.
    #[error("export store: {0}")]
    Store(#[from] StoreError),
    /// A file could not be written.
    #[error("writing {path}: {reason}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A row did not fit the schema.
    #[error("export rows: {0}")]
    Rows(String),
    /// The watermark moved under this run (a concurrent run without the lock).
    #[error("the watermark of {table} at {destination} moved during the run; nothing was lost, run again")]
    Moved {
        /// Destination.
        destination: String,
        /// Table.
        table: String,
    },
    /// The encoder task failed.
    #[error("export task failed: {0}")]
    Task(String),
}

/// What to export and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Destination: a folder, `file://…`, `s3://…`, `gs://…`, `az://…`.
    pub out: String,
    /// File format.
    pub format: Format,
    /// Tables to export (all when empty).
    pub tables: Vec<&'static Table>,
    /// First day of a date-range export.
    pub from: Option<NaiveDate>,
    /// Last day of a date-range export.
    pub to: Option<NaiveDate>,
    /// Rows per incremental chunk.
    pub chunk_rows: u64,
    /// `Some(true)`: retention keeps what this destination has not received yet;
    /// `Some(false)`: it no longer does; `None`: unchanged (off for a new destination).
    pub hold_retention: Option<bool>,
}

impl ExportOptions {
    /// Everything, incrementally, as Parquet, to `out`.
    pub fn new(out: impl Into<String>) -> Self {
        Self {
            out: out.into(),
            format: Format::Parquet,
            tables: Vec::new(),
            from: None,
            to: None,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            hold_retention: None,
        }
    }
}

/// Parses a comma-separated list of table names.
pub fn parse_tables(list: &str) -> Result<Vec<&'static Table>, ExportError> {
    let mut out: Vec<&'static Table> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let t = schema::table(name).ok_or_else(|| ExportError::UnknownTable {
            name: name.to_string(),
            known: schema::names(),
        })?;
        if !out.iter().any(|o| o.name == t.name) {
            out.push(t);
        }
    }
    Ok(out)
}

/// What one table's export wrote.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    /// Table name.
    pub table: String,
    /// Rows written.
    pub rows: u64,
    /// Files published (rewritten daily files included).
    pub files: u64,
    /// Bytes published.
    pub bytes: u64,
    /// Chunks redone after an interrupted run.
    pub redone: u64,
    /// Stale files removed.
    pub removed: u64,
}

/// What a run wrote.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    /// The destination's identity.
    pub destination: String,
    /// `incremental` or `dates`.
    pub mode: String,
    /// Per table, in export order.
    pub tables: Vec<TableReport>,
    /// Rows written in all.
    pub rows: u64,
    /// Files published in all.
    pub files: u64,
    /// Bytes published in all.
    pub bytes: u64,
    /// One sentence for a person.
    pub summary: String,
}

impl TableReport {
    fn add(&mut self, files: &[FileDone]) {
        for f in files {
            self.rows += f.rows;
            self.files += 1;
            self.bytes += f.bytes;
        }
    }
}

/// Writes what `feed` pushes into one file per partition named `name`.
async fn step<F, Fut>(
    dest: &Destination,
    table: &'static Table,
    format: Format,
    name: String,
    feed: F,
) -> Result<Vec<FileDone>, ExportError>
where
    F: FnOnce(Box<dyn RowSink>) -> Fut,
    Fut: std::future::Future<Output = Result<Box<dyn RowSink>, StoreError>>,
{
    let (tx, rx) = sync_channel::<Msg>(2);
    let abort = tx.clone();
    let store = dest.store.clone();
    let rt = tokio::runtime::Handle::current();
    let encoder = tokio::task::spawn_blocking(move || encode(rx, store, table, format, name, rt));
    let fed = feed(Box::new(PartitionSink::new(table, tx))).await;
    match fed {
        Ok(mut sink) => {
            sink.end();
            drop(sink);
        }
        Err(e) => {
            let _ = abort.send(Msg::Abort(e.to_string()));
            drop(abort);
            let _ = encoder.await;
            return Err(e.into());
        }
    }
    drop(abort);
    encoder
        .await
        .map_err(|e| ExportError::Task(e.to_string()))?
}

/// The file name of an incremental chunk (the same on every try of that chunk).
pub fn chunk_file(chunk: Chunk, format: Format) -> String {
    format!("part-{:012}-{:012}.{}", chunk.lo, chunk.hi, format.name())
}

/// The file name of a daily, snapshot or date-range file.
pub fn day_file(format: Format) -> String {
    format!("part-00000.{}", format.name())
}

/// Runs one export.
pub async fn run(store: &SharedStore, opts: &ExportOptions) -> Result<ExportReport, ExportError> {
    let range = match (opts.from, opts.to) {
        (None, None) => None,
        (from, to) => {
            let from = from.unwrap_or(NaiveDate::MIN);
            let to = to.unwrap_or(NaiveDate::MAX);
            if from > to {
                return Err(ExportError::FromAfterTo { from, to });
            }
            Some((day_number(from), day_number(to)))
        }
    };
    let tables: Vec<&'static Table> = if opts.tables.is_empty() {
        TABLES.iter().collect()
    } else {
        opts.tables.clone()
    };
    let dest = dest::open(&opts.out)?;
    let _lock = store
        .export_lock(dest.id.clone())
        .await?
        .ok_or_else(|| ExportError::Busy(dest.id.clone()))?;
    dest.clean_staging(&tables);
    let mut report = ExportReport {
        destination: dest.id.clone(),
        ..ExportReport::default()
    };
    match range {
        Some((from, to)) => {
            report.mode = "dates".into();
            if store.export_known(dest.id.clone()).await? {
                return Err(ExportError::RangeIntoIncremental(dest.id.clone()));
            }
            dest.claim("dates", opts.format).await?;
            for t in &tables {
                report
                    .tables
                    .push(export_dates(store, &dest, t, opts.format, from, to).await?);
            }
        }
        None => {
            report.mode = "incremental".into();
            dest.claim("incremental", opts.format).await?;
            let names = tables.iter().map(|t| t.name.to_string()).collect();
            store
                .export_register(dest.id.clone(), names, opts.hold_retention)
                .await?;
            for t in &tables {
                report
                    .tables
                    .push(export_incremental(store, &dest, t, opts).await?);
            }
        }
    }
    report.rows = report.tables.iter().map(|t| t.rows).sum();
    report.files = report.tables.iter().map(|t| t.files).sum();
    report.bytes = report.tables.iter().map(|t| t.bytes).sum();
    report.summary = match (&report.mode[..], report.files, range) {
        ("dates", 0, Some((from, to))) => format!(
            "no rows between {} and {}: nothing written",
            crate::store::day_date(from.max(0)),
            crate::store::day_date(to.min(day_number(NaiveDate::MAX)))
        ),
        (_, 0, _) => format!("nothing new to export to {} since the last run", dest.id),
        _ => format!(
            "exported {} rows in {} files ({} bytes) to {}",
            report.rows, report.files, report.bytes, dest.id
        ),
    };
    Ok(report)
}

async fn export_incremental(
    store: &SharedStore,
    dest: &Destination,
    t: &'static Table,
    opts: &ExportOptions,
) -> Result<TableReport, ExportError> {
    let mut rep = TableReport {
        table: t.name.into(),
        ..TableReport::default()
    };
    let commit = |lo: i64, hi: i64| async move {
        if store
            .export_commit(dest.id.clone(), t.name.to_string(), lo, hi)
            .await?
        {
            Ok(())
        } else {
            Err(ExportError::Moved {
                destination: dest.id.clone(),
                table: t.name.into(),
            })
        }
    };
    match t.mode {
        Mode::Incremental(stream) => {
            while let Some(chunk) = store
                .export_begin(dest.id.clone(), stream, opts.chunk_rows)
                .await?
            {
                let name = chunk_file(chunk, opts.format);
                let files = step(dest, t, opts.format, name.clone(), |sink| {
                    store.export_rows(stream, (chunk.lo, chunk.hi), (i64::MIN, i64::MAX), sink)
                })
                .await?;
                if chunk.redo {
                    rep.redone += 1;
                    let keep: BTreeSet<Option<i32>> = files.iter().map(|f| f.day).collect();
                    rep.removed += dest.remove_stale(t, &name, &keep, None).await?;
                }
                rep.add(&files);
                commit(chunk.lo, chunk.hi).await?;
            }
        }
        Mode::Daily(daily) => {
            let mark = store
                .export_watermark(dest.id.clone(), t.name.to_string())
                .await?;
            let horizon = store.export_horizon(Stream::Events).await?;
            if mark.next != 0 && !store.export_any(Stream::Events, mark.next, horizon).await? {
                return Ok(rep);
            }
            let days = if mark.next == 0 {
                store.export_daily_days(daily, Days::All).await?
            } else {
                store.export_event_days(mark.next, horizon).await?
            };
            for day in days {
                let (files, removed) = daily_step(store, dest, t, daily, day, opts.format).await?;
                rep.removed += u64::from(removed);
                rep.add(&files);
            }
            commit(mark.next, horizon).await?;
        }
        Mode::Snapshot => {
            let mark = store
                .export_watermark(dest.id.clone(), t.name.to_string())
                .await?;
            let horizon = store.export_horizon(Stream::Decisions).await?;
            // Every change of a rollout logs a decision: no new decision, no change.
            if mark.next != 0
                && !store
                    .export_any(Stream::Decisions, mark.next, horizon)
                    .await?
            {
                return Ok(rep);
            }
            rep.add(&rollouts_step(store, dest, t, opts.format).await?);
            commit(mark.next, horizon).await?;
        }
    }
    Ok(rep)
}

/// Rewrites one day of a daily table, or removes its file when the day has no rows left
/// (then `true`).
async fn daily_step(
    store: &SharedStore,
    dest: &Destination,
    t: &'static Table,
    daily: crate::store::export::Daily,
    day: i32,
    format: Format,
) -> Result<(Vec<FileDone>, bool), ExportError> {
    let name = day_file(format);
    let files = step(dest, t, format, name.clone(), |sink| {
        store.export_daily(daily, day, sink)
    })
    .await?;
    let removed = files.is_empty() && dest.remove(&write::file_path(t, Some(day), &name)).await?;
    Ok((files, removed))
}

async fn rollouts_step(
    store: &SharedStore,
    dest: &Destination,
    t: &'static Table,
    format: Format,
) -> Result<Vec<FileDone>, ExportError> {
    let rows: Vec<RolloutRow> = store.list_rollouts().await?;
    step(dest, t, format, day_file(format), |mut sink| async move {
        for r in &rows {
            let fallback = r
                .fallback_version
                .as_deref()
                .map_or(Value::Null, Value::Text);
            let row = [
                Value::Text(&r.app),
                Value::Text(&r.channel),
                Value::Text(&r.version),
                Value::Float(r.percentage),
                Value::Text(&r.status),
                fallback,
                Value::Int(r.rolled_back.into()),
                Value::Text(&r.policy),
                Value::Int(r.started_ms),
                Value::Int(r.stage_started_ms),
                Value::Int(r.updated_ms),
            ];
            if !sink.push(&row) {
                break;
            }
        }
        Ok(sink)
    })
    .await
}

async fn export_dates(
    store: &SharedStore,
    dest: &Destination,
    t: &'static Table,
    format: Format,
    from: i32,
    to: i32,
) -> Result<TableReport, ExportError> {
    let mut rep = TableReport {
        table: t.name.into(),
        ..TableReport::default()
    };
    let name = day_file(format);
    match t.mode {
        Mode::Incremental(stream) => {
            let time = (
                i64::from(from).saturating_mul(DAY_MS),
                (i64::from(to) + 1).saturating_mul(DAY_MS),
            );
            let files = step(dest, t, format, name.clone(), |sink| {
                store.export_rows(stream, (0, i64::MAX), time, sink)
            })
            .await?;
            let keep: BTreeSet<Option<i32>> = files.iter().map(|f| f.day).collect();
            rep.removed += dest.remove_stale(t, &name, &keep, Some((from, to))).await?;
            rep.add(&files);
        }
        Mode::Daily(daily) => {
            for day in store
                .export_daily_days(daily, Days::Range(from, to))
                .await?
            {
                rep.add(&daily_step(store, dest, t, daily, day, format).await?.0);
            }
        }
        Mode::Snapshot => rep.add(&rollouts_step(store, dest, t, format).await?),
    }
    Ok(rep)
}
