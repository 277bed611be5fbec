//! [`ExportStore`] on SQLite: export keys from `export_counters` (taken in the writing
//! transaction; SQLite has one writer, so every key below the counter is committed), an
//! `flock` per destination beside the database file, and rows read on a connection of
//! their own (a long export never holds the queries' reader).

use std::fs::OpenOptions;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{connect, SqliteStore};
use crate::store::export::{
    daily_query, halves, lock_suffix, stream_columns, stream_table, stream_width, Chunk, Daily,
    Days, ExportHold, ExportLock, ExportStore, RowSink, Stream, Value, Watermark,
};
use crate::store::{StoreError, StoreFuture};

/// Hands out `n` export keys of `tbl` in the writing transaction; the first one.
pub(super) fn take_keys(tx: &Transaction<'_>, tbl: &str, n: usize) -> rusqlite::Result<i64> {
    let first: i64 = tx
        .prepare_cached("SELECT next FROM export_counters WHERE tbl = ?1")?
        .query_row([tbl], |r| r.get(0))?;
    tx.prepare_cached("UPDATE export_counters SET next = next + ?2 WHERE tbl = ?1")?
        .execute(params![tbl, n as i64])?;
    Ok(first)
}

fn counter_table(stream: Stream) -> &'static str {
    stream_table(stream).0
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn value(v: ValueRef<'_>, i: usize) -> rusqlite::Result<Value<'_>> {
    Ok(match v {
        ValueRef::Null | ValueRef::Blob(_) => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(_) => Value::Text(v.as_str().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })?),
    })
}

/// The widest row a stream or daily table has.
const MAX_WIDTH: usize = 20;

/// Streams the rows of `stmt` to `sink`, `width` columns each; stops when the sink asks.
fn pump(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    width: usize,
    sink: &mut dyn RowSink,
) -> rusqlite::Result<()> {
    let width = width.min(MAX_WIDTH);
    let mut rows = stmt.query(params)?;
    while let Some(r) = rows.next()? {
        let mut buf = [Value::Null; MAX_WIDTH];
        for (i, slot) in buf.iter_mut().enumerate().take(width) {
            *slot = value(r.get_ref(i)?, i)?;
        }
        if !sink.push(&buf[..width]) {
            break;
        }
    }
    Ok(())
}

/// Streams the rows of `stream` with keys in `[lo, hi)` (and time in `time`) to `sink`, in
/// rowid order: the rowids of those keys are looked up in the key index (a covering scan),
/// and then the table is read along its rowid range, filtered by key, instead of a rowid
/// lookup per row from the key index. Both happen in the caller's read transaction, so
/// the rowids cannot change in between (rowids follow the order rows were written, as the
/// keys do: the range holds those rows and few others).
fn read_keys(
    c: &Connection,
    stream: Stream,
    (lo, hi): (i64, i64),
    time: (i64, i64),
    sink: &mut dyn RowSink,
) -> rusqlite::Result<()> {
    let (t, time_col) = stream_table(stream);
    let bounds: Option<(i64, i64)> = c
        .prepare(&format!(
            "SELECT MIN(rowid), MAX(rowid) FROM {t} WHERE export_seq >= ?1 AND export_seq < ?2"
        ))?
        .query_row([lo, hi], |r| {
            Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?))
        })?;
    let Some((first, last)) = bounds else {
        return Ok(());
    };
    let cols = stream_columns(stream);
    // `+` keeps the key and time columns from choosing an index over the rowid range.
    let mut st = c.prepare(&format!(
        "SELECT {cols} FROM {t} WHERE rowid BETWEEN ?1 AND ?2 AND +export_seq >= ?3 \
         AND +export_seq < ?4 AND +{time_col} >= ?5 AND +{time_col} < ?6"
    ))?;
    pump(
        &mut st,
        params![first, last, lo, hi, time.0, time.1],
        stream_width(stream),
        sink,
    )
}

impl SqliteStore {
    /// Runs `f` on a fresh read connection on the blocking pool (export reads are long).
    fn read_own<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let path = self.path();
        let name = self.inner.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let c = connect(&path)?;
                c.execute_batch("BEGIN")?;
                let out = f(&c);
                let _ = c.execute_batch("COMMIT");
                out
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(|source| StoreError::Sqlite { path: name, source })
        })
    }
}

impl ExportStore for SqliteStore {
    fn export_lock(&self, destination: String) -> StoreFuture<'_, Option<ExportLock>> {
        let lock_path = format!("{}-{}", self.inner.path, lock_suffix(&destination));
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let io = |source| StoreError::Io {
                    path: lock_path.clone(),
                    source,
                };
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(io)?;
                match f.try_lock() {
                    Ok(()) => Ok(Some(Box::new(f) as ExportLock)),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
                }
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        })
    }

    fn export_register(
        &self,
        destination: String,
        tables: Vec<String>,
        enabled: Option<bool>,
    ) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO export_destinations (destination, enabled, created) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (destination) DO NOTHING",
                params![destination, enabled.unwrap_or(false), now],
            )?;
            if let Some(e) = enabled {
                tx.execute(
                    "UPDATE export_destinations SET enabled = ?2 WHERE destination = ?1",
                    params![destination, e],
                )?;
            }
            for t in &tables {
                tx.execute(
                    "INSERT INTO export_watermarks (destination, tbl, next, pending, updated) \
                     VALUES (?1, ?2, 0, NULL, ?3) ON CONFLICT (destination, tbl) DO NOTHING",
                    params![destination, t, now],
                )?;
            }
            tx.commit()
        })
    }

    fn export_known(&self, destination: String) -> StoreFuture<'_, bool> {
        self.read(move |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM export_watermarks WHERE destination = ?1)",
                [&destination],
                |r| r.get(0),
            )
        })
    }

    fn export_forget(&self, destination: String) -> StoreFuture<'_, bool> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "DELETE FROM export_watermarks WHERE destination = ?1",
                [&destination],
            )?;
            let d = tx.execute(
                "DELETE FROM export_destinations WHERE destination = ?1",
                [&destination],
            )?;
            tx.commit()?;
            Ok(n + d > 0)
        })
    }

    fn export_watermark(&self, destination: String, table: String) -> StoreFuture<'_, Watermark> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT next, pending FROM export_watermarks WHERE destination = ?1 AND tbl = ?2",
                [&destination, &table],
                |r| {
                    Ok(Watermark {
                        next: r.get(0)?,
                        pending: r.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
        })
    }

    fn export_horizon(&self, stream: Stream) -> StoreFuture<'_, i64> {
        self.read(move |c| {
            c.query_row(
                "SELECT next FROM export_counters WHERE tbl = ?1",
                [counter_table(stream)],
                |r| r.get(0),
            )
        })
    }

    fn export_begin(
        &self,
        destination: String,
        stream: Stream,
        max_rows: u64,
    ) -> StoreFuture<'_, Option<Chunk>> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let table = stream.table();
            let mark = tx
                .query_row(
                    "SELECT next, pending FROM export_watermarks WHERE destination = ?1 AND tbl = ?2",
                    [&destination, table],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
                )
                .optional()?;
            let Some((lo, pending)) = mark else {
                return Ok(None);
            };
            if let Some(hi) = pending {
                return Ok(Some(Chunk { lo, hi, redo: true }));
            }
            let horizon: i64 = tx.query_row(
                "SELECT next FROM export_counters WHERE tbl = ?1",
                [counter_table(stream)],
                |r| r.get(0),
            )?;
            let t = counter_table(stream);
            let cut: Option<i64> = tx
                .query_row(
                    &format!(
                        "SELECT export_seq FROM {t} WHERE export_seq >= ?1 AND export_seq < ?2 \
                         ORDER BY export_seq LIMIT 1 OFFSET ?3"
                    ),
                    params![lo, horizon, max_rows.max(1) as i64],
                    |r| r.get(0),
                )
                .optional()?;
            let hi = cut.unwrap_or(horizon);
            let any: bool = tx.query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {t} WHERE export_seq >= ?1 AND export_seq < ?2)"
                ),
                params![lo, hi],
                |r| r.get(0),
            )?;
            if !any {
                return Ok(None);
            }
            tx.execute(
                "UPDATE export_watermarks SET pending = ?3, updated = ?4 \
                 WHERE destination = ?1 AND tbl = ?2 AND next = ?5",
                params![destination, table, hi, now_ms(), lo],
            )?;
            tx.commit()?;
            Ok(Some(Chunk {
                lo,
                hi,
                redo: false,
            }))
        })
    }

    fn export_commit(
        &self,
        destination: String,
        table: String,
        lo: i64,
        hi: i64,
    ) -> StoreFuture<'_, bool> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE export_watermarks SET next = ?4, pending = NULL, updated = ?5 \
                 WHERE destination = ?1 AND tbl = ?2 AND next = ?3",
                params![destination, table, lo, hi, now_ms()],
            )?;
            Ok(n == 1)
        })
    }

    fn export_rows(
        &self,
        stream: Stream,
        keys: (i64, i64),
        time: (i64, i64),
        mut sink: Box<dyn RowSink>,
    ) -> StoreFuture<'_, Box<dyn RowSink>> {
        let path = self.path();
        self.read_own(move |c| {
            let (t, time_col) = stream_table(stream);
            let cols = stream_columns(stream);
            let width = stream_width(stream);
            if keys == (0, i64::MAX) {
                let mut st = c.prepare(&format!(
                    "SELECT {cols} FROM {t} WHERE {time_col} >= ?1 AND {time_col} < ?2 \
                     ORDER BY {time_col}, id"
                ))?;
                pump(&mut st, params![time.0, time.1], width, sink.as_mut())?;
            } else {
                let (first, second) = halves(keys.0, keys.1);
                let other = if second.0 < second.1 {
                    sink.fork()
                } else {
                    None
                };
                let whole = if other.is_some() { first } else { keys };
                std::thread::scope(|scope| {
                    let helper = other.map(|mut other| {
                        let path = path.clone();
                        scope.spawn(move || -> rusqlite::Result<()> {
                            let c = connect(&path)?;
                            c.execute_batch("BEGIN")?;
                            read_keys(&c, stream, second, time, other.as_mut())?;
                            other.end();
                            c.execute_batch("COMMIT")
                        })
                    });
                    let mine = read_keys(c, stream, whole, time, sink.as_mut());
                    let theirs = match helper.map(|h| h.join()) {
                        None => Ok(()),
                        Some(Ok(r)) => r,
                        Some(Err(panic)) => std::panic::resume_unwind(panic),
                    };
                    mine.and(theirs)
                })?;
            }
            Ok(sink)
        })
    }

    fn export_any(&self, stream: Stream, lo: i64, hi: i64) -> StoreFuture<'_, bool> {
        self.read(move |c| {
            let t = counter_table(stream);
            c.query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {t} WHERE export_seq >= ?1 AND export_seq < ?2)"
                ),
                [lo, hi],
                |r| r.get(0),
            )
        })
    }

    fn export_event_days(&self, lo: i64, hi: i64) -> StoreFuture<'_, Vec<i32>> {
        self.read_own(move |c| {
            c.prepare(
                "SELECT DISTINCT day FROM events WHERE export_seq >= ?1 AND export_seq < ?2 ORDER BY day",
            )?
            .query_map([lo, hi], |r| r.get(0))?
            .collect()
        })
    }

    fn export_daily_days(&self, table: Daily, days: Days) -> StoreFuture<'_, Vec<i32>> {
        self.read_own(move |c| {
            let (t, _, _) = daily_query(table);
            let (from, to) = match days {
                Days::All => (i32::MIN, i32::MAX),
                Days::Range(f, t) => (f, t),
            };
            // `users` keeps one row per user; the per-day tables are indexed by day or lead
            // with it, except `daily_feature` (name first): a full scan, once per run.
            c.prepare(&format!(
                "SELECT DISTINCT day FROM {t} WHERE day BETWEEN ?1 AND ?2 ORDER BY day"
            ))?
            .query_map([from, to], |r| r.get(0))?
            .collect()
        })
    }

    fn export_daily(
        &self,
        table: Daily,
        day: i32,
        mut sink: Box<dyn RowSink>,
    ) -> StoreFuture<'_, Box<dyn RowSink>> {
        self.read_own(move |c| {
            let (_, sql, width) = daily_query(table);
            let mut st = c.prepare(sql)?;
            pump(&mut st, [day], width, sink.as_mut())?;
            Ok(sink)
        })
    }

    fn export_hold(&self) -> StoreFuture<'_, ExportHold> {
        self.read(|c| {
            let mut hold = ExportHold::default();
            let mut st = c.prepare_cached(
                "SELECT MIN(w.next) FROM export_watermarks w JOIN export_destinations d \
                 ON d.destination = w.destination WHERE d.enabled AND w.tbl = ?1",
            )?;
            for s in Stream::ALL {
                let v: Option<i64> = st.query_row([s.table()], |r| r.get(0))?;
                match s {
                    Stream::Events => hold.events = v,
                    Stream::HealthReports => hold.health_reports = v,
                    Stream::Decisions => hold.decisions = v,
                }
            }
            Ok(hold)
        })
    }
}
