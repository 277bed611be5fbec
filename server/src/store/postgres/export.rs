//! [`ExportStore`] on PostgreSQL: a row's export key is the id of the transaction that wrote
//! it (`export_xid`, `xid8`); the horizon is the current snapshot's `xmin`, below which every
//! transaction has ended, so a chunk below it can never gain a row later, whichever server
//! wrote and in whatever order the servers committed. The destination lock is a session
//! advisory lock on a connection of its own (released when the process dies); rows are read
//! on a fresh connection, streamed, never collected.

use std::pin::pin;

use futures_util::TryStreamExt;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use super::{connect_one, PostgresStore};
use crate::store::export::{
    daily_query, halves, stream_columns, stream_table, Chunk, Daily, Days, ExportHold, ExportLock,
    ExportStore, RowSink, Stream, Value, Watermark,
};
use crate::store::{StoreError, StoreFuture};

/// `export_xid` below the bigint `$2` (the retention purges' hold).
pub(super) const KEEP: &str = "export_xid < ($2::int8)::text::xid8";

/// The widest row a stream or daily table has.
const MAX_WIDTH: usize = 20;

/// Advisory-lock class of export destinations (the key is a hash of the destination).
const LOCK_CLASS: i32 = 7_263_452;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The current horizon: every transaction with an id below it has ended.
const HORIZON: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8";

/// How long [`settled_horizon`] waits for the transactions running when it was called.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// A horizon past every transaction that had started when this was called: it waits (at
/// most [`SETTLE`], polling) until those have ended, so an export includes every row
/// committed before it began. A transaction still open after that (a long one anywhere in
/// the cluster) holds the horizon back; its rows and everything after go in a later run.
async fn settled_horizon(c: &Client) -> Result<i64, StoreError> {
    let target: i64 = c
        .query_one(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8",
            &[],
        )
        .await?
        .get(0);
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let xmin: i64 = c.query_one(HORIZON, &[]).await?.get(0);
        if xmin >= target {
            return Ok(target);
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                "a long transaction holds the export horizon back; its rows go in a later run"
            );
            return Ok(xmin);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Streams the rows of `sql` to `sink`; stops when the sink asks.
async fn pump(
    c: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    sink: &mut dyn RowSink,
) -> Result<(), StoreError> {
    let st = c.prepare(sql).await?;
    let types: Vec<Type> = st.columns().iter().map(|c| c.type_().clone()).collect();
    let rows = c
        .query_raw(&st, params.iter().map(|p| *p as &dyn ToSql))
        .await?;
    let mut rows = pin!(rows);
    let width = types.len().min(MAX_WIDTH);
    while let Some(r) = rows.try_next().await? {
        let mut buf = [Value::Null; MAX_WIDTH];
        for (i, (slot, t)) in buf.iter_mut().zip(&types).enumerate() {
            let v = match *t {
                Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                Type::INT4 => r
                    .try_get::<_, Option<i32>>(i)?
                    .map(|v| Value::Int(v.into())),
                Type::BOOL => r
                    .try_get::<_, Option<bool>>(i)?
                    .map(|v| Value::Int(v.into())),
                Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Float),
                _ => r.try_get::<_, Option<&str>>(i)?.map(Value::Text),
            };
            *slot = v.unwrap_or(Value::Null);
        }
        if !sink.push(&buf[..width]) {
            break;
        }
    }
    Ok(())
}

/// Whether table `t` has a row with an export key in `[lo, hi)`.
async fn exists(
    c: &impl tokio_postgres::GenericClient,
    t: &str,
    lo: i64,
    hi: i64,
) -> Result<bool, StoreError> {
    Ok(c.query_one(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM {t} WHERE export_xid >= ($1::int8)::text::xid8 \
             AND export_xid < ($2::int8)::text::xid8)"
        ),
        &[&lo, &hi],
    )
    .await?
    .get(0))
}

impl ExportStore for PostgresStore {
    fn export_lock(&self, destination: String) -> StoreFuture<'_, Option<ExportLock>> {
        Box::pin(async move {
            let c = connect_one(&self.url).await?;
            let got: bool = c
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    &[&LOCK_CLASS, &destination],
                )
                .await?
                .get(0);
            Ok(got.then(|| Box::new(c) as ExportLock))
        })
    }

    fn export_register(
        &self,
        destination: String,
        tables: Vec<String>,
        enabled: Option<bool>,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO export_destinations (destination, enabled, created) VALUES ($1, $2, $3) \
                 ON CONFLICT (destination) DO NOTHING",
                &[&destination, &enabled.unwrap_or(false), &now],
            )
            .await?;
            if let Some(e) = enabled {
                tx.execute(
                    "UPDATE export_destinations SET enabled = $2 WHERE destination = $1",
                    &[&destination, &e],
                )
                .await?;
            }
            for t in &tables {
                tx.execute(
                    "INSERT INTO export_watermarks (destination, tbl, next, pending, updated) \
                     VALUES ($1, $2, 0, NULL, $3) ON CONFLICT (destination, tbl) DO NOTHING",
                    &[&destination, t, &now],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn export_known(&self, destination: String) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            Ok(self
                .reader
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM export_watermarks WHERE destination = $1)",
                    &[&destination],
                )
                .await?
                .get(0))
        })
    }

    fn export_forget(&self, destination: String) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            let n = tx
                .execute(
                    "DELETE FROM export_watermarks WHERE destination = $1",
                    &[&destination],
                )
                .await?;
            let d = tx
                .execute(
                    "DELETE FROM export_destinations WHERE destination = $1",
                    &[&destination],
                )
                .await?;
            tx.commit().await?;
            Ok(n + d > 0)
        })
    }

    fn export_watermark(&self, destination: String, table: String) -> StoreFuture<'_, Watermark> {
        Box::pin(async move {
            Ok(self
                .reader
                .query_opt(
                    "SELECT next, pending FROM export_watermarks WHERE destination = $1 AND tbl = $2",
                    &[&destination, &table],
                )
                .await?
                .map(|r| Watermark {
                    next: r.get(0),
                    pending: r.get(1),
                })
                .unwrap_or_default())
        })
    }

    fn export_horizon(&self, _stream: Stream) -> StoreFuture<'_, i64> {
        Box::pin(async move { settled_horizon(&self.reader).await })
    }

    fn export_begin(
        &self,
        destination: String,
        stream: Stream,
        max_rows: u64,
    ) -> StoreFuture<'_, Option<Chunk>> {
        Box::pin(async move {
            // Before the writer is taken: the wait must not hold ingest up.
            let horizon = settled_horizon(&self.reader).await?;
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            let table = stream.table();
            let Some(mark) = tx
                .query_opt(
                    "SELECT next, pending FROM export_watermarks WHERE destination = $1 AND tbl = $2 \
                     FOR UPDATE",
                    &[&destination, &table],
                )
                .await?
            else {
                return Ok(None);
            };
            let lo: i64 = mark.get(0);
            if let Some(hi) = mark.get::<_, Option<i64>>(1) {
                return Ok(Some(Chunk { lo, hi, redo: true }));
            }
            let (t, _) = stream_table(stream);
            let cut: Option<i64> = tx
                .query_opt(
                    &format!(
                        "SELECT export_xid::text::int8 FROM {t} \
                         WHERE export_xid >= ($1::int8)::text::xid8 AND export_xid < ($2::int8)::text::xid8 \
                         ORDER BY export_xid OFFSET $3 LIMIT 1"
                    ),
                    &[&lo, &horizon, &(max_rows.max(1) as i64)],
                )
                .await?
                .map(|r| r.get(0));
            // Rows of one transaction stay together: a chunk ends at a transaction boundary,
            // or just after the first transaction when that one alone has more rows.
            let mut hi = cut.unwrap_or(horizon);
            let mut any = exists(&tx, t, lo, hi).await?;
            if let (false, Some(x)) = (any, cut) {
                hi = x + 1;
                any = exists(&tx, t, lo, hi).await?;
            }
            if !any {
                return Ok(None);
            }
            tx.execute(
                "UPDATE export_watermarks SET pending = $3, updated = $4 \
                 WHERE destination = $1 AND tbl = $2 AND next = $5",
                &[&destination, &table, &hi, &now_ms(), &lo],
            )
            .await?;
            tx.commit().await?;
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
        Box::pin(async move {
            let c = self.writer.lock().await;
            let n = c
                .execute(
                    "UPDATE export_watermarks SET next = $4, pending = NULL, updated = $5 \
                     WHERE destination = $1 AND tbl = $2 AND next = $3",
                    &[&destination, &table, &lo, &hi, &now_ms()],
                )
                .await?;
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
        Box::pin(async move {
            let c = connect_one(&self.url).await?;
            let (t, time_col) = stream_table(stream);
            let cols = match stream {
                // The id is a `uuid` here; exported as text, as SQLite stores it.
                Stream::Events => stream_columns(stream).replacen("id,", "id::text,", 1),
                _ => stream_columns(stream).to_string(),
            };
            if keys == (0, i64::MAX) {
                let sql = format!(
                    "SELECT {cols} FROM {t} WHERE {time_col} >= $1 AND {time_col} < $2 \
                     ORDER BY {time_col}, id"
                );
                pump(&c, &sql, &[&time.0, &time.1], sink.as_mut()).await?;
            } else {
                // A chunk in any order (no sort on the server), in two halves of its keys
                // read at once on two connections, decoded on two threads.
                let sql = format!(
                    "SELECT {cols} FROM {t} WHERE export_xid >= ($1::int8)::text::xid8 \
                     AND export_xid < ($2::int8)::text::xid8 AND {time_col} >= $3 AND {time_col} < $4"
                );
                let (first, second) = halves(keys.0, keys.1);
                let other = if second.0 < second.1 {
                    sink.fork()
                } else {
                    None
                };
                let whole = if other.is_some() { first } else { keys };
                let helper = other.map(|mut other| {
                    let (url, sql) = (self.url.clone(), sql.clone());
                    tokio::spawn(async move {
                        let c = connect_one(&url).await?;
                        let params: [&(dyn ToSql + Sync); 4] =
                            [&second.0, &second.1, &time.0, &time.1];
                        pump(&c, &sql, &params, other.as_mut()).await?;
                        other.end();
                        Ok::<_, StoreError>(())
                    })
                });
                let mine = pump(
                    &c,
                    &sql,
                    &[&whole.0, &whole.1, &time.0, &time.1],
                    sink.as_mut(),
                )
                .await;
                if let Some(h) = helper {
                    h.await.map_err(|e| StoreError::Task(e.to_string()))??;
                }
                mine?;
            }
            Ok(sink)
        })
    }

    fn export_any(&self, stream: Stream, lo: i64, hi: i64) -> StoreFuture<'_, bool> {
        Box::pin(async move { exists(&self.reader, stream_table(stream).0, lo, hi).await })
    }

    fn export_event_days(&self, lo: i64, hi: i64) -> StoreFuture<'_, Vec<i32>> {
        Box::pin(async move {
            Ok(self
                .reader
                .query(
                    "SELECT DISTINCT day FROM events WHERE export_xid >= ($1::int8)::text::xid8 \
                     AND export_xid < ($2::int8)::text::xid8 ORDER BY day",
                    &[&lo, &hi],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    fn export_daily_days(&self, table: Daily, days: Days) -> StoreFuture<'_, Vec<i32>> {
        Box::pin(async move {
            let (t, _, _) = daily_query(table);
            let (from, to) = match days {
                Days::All => (i32::MIN, i32::MAX),
                Days::Range(f, t) => (f, t),
            };
            Ok(self
                .reader
                .query(
                    &format!(
                        "SELECT DISTINCT day FROM {t} WHERE day BETWEEN $1 AND $2 ORDER BY day"
                    ),
                    &[&from, &to],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    fn export_daily(
        &self,
        table: Daily,
        day: i32,
        mut sink: Box<dyn RowSink>,
    ) -> StoreFuture<'_, Box<dyn RowSink>> {
        Box::pin(async move {
            let (_, sql, _) = daily_query(table);
            let sql = sql
                .replace("?1", "$1")
                .replace("SUM(1.0 / sample_rate)", "SUM(1.0 / sample_rate)::float8");
            pump(&self.reader, &sql, &[&day], sink.as_mut()).await?;
            Ok(sink)
        })
    }

    fn export_hold(&self) -> StoreFuture<'_, ExportHold> {
        Box::pin(async move {
            let mut hold = ExportHold::default();
            for s in Stream::ALL {
                let v: Option<i64> = self
                    .reader
                    .query_one(
                        "SELECT MIN(w.next) FROM export_watermarks w JOIN export_destinations d \
                         ON d.destination = w.destination WHERE d.enabled AND w.tbl = $1",
                        &[&s.table()],
                    )
                    .await?
                    .get(0);
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
