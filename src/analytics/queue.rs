//! The durable, bounded analytics queue and the writer thread that fills it.
//!
//! Owns the `analytics_queue`, `analytics_counter` and `analytics_erasure` tables (migration
//! 2 of the client store) and the writer: `track()` hands a [`Pending`] event to a bounded
//! in-memory channel and returns; the writer thread, with its own SQLite connection, turns
//! events into wire JSON and commits them in batched transactions, drops the oldest rows
//! beyond the bound (counted), and acknowledges `flush` markers only after the commit that
//! holds everything sent before them.
//!
//! It refuses to block the caller: when the channel is full the event is counted as dropped,
//! never waited for. It does no network I/O (that is the uploader's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::{names, AnalyticsEvent, EventCategory, Properties};
use crate::store::{Store, StoreError};

/// Default bound of the queue (events kept while offline).
pub const DEFAULT_MAX_QUEUE: usize = 10_000;
/// Events written in one transaction at most.
const MAX_TRANSACTION: usize = 2_000;

/// Counter: drops not yet reported to the server (sent as `EventBatch.dropped`).
pub(crate) const DROPPED_PENDING: &str = "dropped_pending";
/// Counter: every event dropped (queue full, too old, channel full, write failure).
pub(crate) const DROPPED_TOTAL: &str = "dropped_total";
/// Counter: events acknowledged by the server (accepted or duplicate).
pub(crate) const SENT_TOTAL: &str = "sent_total";
/// Counter: events the server refused (dropped, never retried).
pub(crate) const REJECTED_TOTAL: &str = "rejected_total";

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The client store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A queue statement failed.
    #[error("analytics queue in {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// An event could not be encoded.
    #[error("cannot encode event {name:?}: {source}")]
    Encode {
        /// Event name.
        name: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The writer thread is gone (after shutdown).
    #[error("the analytics writer has stopped")]
    WriterStopped,
}

/// A database handle: an own connection (file stores), or the store's shared one
/// (in-memory stores, where a second connection would open a different database).
pub(crate) enum Db {
    Own { conn: Connection, path: String },
    Shared(Arc<Store>),
}

impl Db {
    pub(crate) fn open(store: &Arc<Store>) -> Result<Self, QueueError> {
        if store.path().as_os_str() == ":memory:" {
            Ok(Db::Shared(store.clone()))
        } else {
            Ok(Db::Own {
                conn: store.open_connection()?,
                path: store.path().display().to_string(),
            })
        }
    }

    pub(crate) fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, QueueError> {
        match self {
            Db::Own { conn, path } => f(conn).map_err(|source| QueueError::Sqlite {
                path: path.clone(),
                source,
            }),
            Db::Shared(store) => Ok(store.with_conn(f)?),
        }
    }
}

/// Adds `delta` (may be negative) to a persisted counter.
pub(crate) fn add_counter(conn: &Connection, name: &str, delta: i64) -> rusqlite::Result<()> {
    if delta == 0 {
        return Ok(());
    }
    conn.execute(
        "INSERT INTO analytics_counter (name, value) VALUES (?1, max(?2, 0))
         ON CONFLICT(name) DO UPDATE SET value = max(value + ?2, 0)",
        params![name, delta],
    )
    .map(|_| ())
}

/// A persisted counter (0 when never set).
pub(crate) fn counter(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT value FROM analytics_counter WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

/// Records `n` dropped events (total and pending report).
pub(crate) fn count_dropped(conn: &Connection, n: u64) -> rusqlite::Result<()> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    add_counter(conn, DROPPED_PENDING, n)?;
    add_counter(conn, DROPPED_TOTAL, n)
}

/// Events waiting in the queue.
pub(crate) fn queued(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM analytics_queue", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n.max(0) as u64)
}

/// Drops the oldest events beyond `max`; returns how many.
pub(crate) fn enforce_bound(conn: &Connection, max: usize) -> rusqlite::Result<u64> {
    let n = queued(conn)?;
    let max = max as u64;
    if n <= max {
        return Ok(0);
    }
    let excess = n - max;
    conn.execute(
        "DELETE FROM analytics_queue WHERE seq IN
           (SELECT seq FROM analytics_queue ORDER BY seq LIMIT ?1)",
        [i64::try_from(excess).unwrap_or(i64::MAX)],
    )?;
    count_dropped(conn, excess)?;
    Ok(excess)
}

/// Drops events that happened before `cutoff`; returns how many (counted as dropped).
pub(crate) fn expire(conn: &Connection, cutoff: DateTime<Utc>) -> rusqlite::Result<u64> {
    let n = conn.execute(
        "DELETE FROM analytics_queue WHERE created_at < ?1",
        [cutoff.timestamp_millis()],
    )? as u64;
    count_dropped(conn, n)?;
    Ok(n)
}

/// Deletes every queued event (consent denied); returns how many. Not counted as dropped:
/// the user asked for it.
pub(crate) fn purge(conn: &Connection) -> rusqlite::Result<u64> {
    let n = conn.execute("DELETE FROM analytics_queue", [])? as u64;
    conn.execute(
        "UPDATE analytics_counter SET value = 0 WHERE name = ?1",
        [DROPPED_PENDING],
    )?;
    Ok(n)
}

/// One queued row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub seq: i64,
    pub body: String,
}

/// The oldest events sharing one sample rate: at most `max_events` and `max_bytes` of JSON.
pub(crate) fn next_batch(
    conn: &Connection,
    max_events: usize,
    max_bytes: usize,
) -> rusqlite::Result<(Vec<Row>, f64)> {
    let rate: Option<f64> = conn
        .query_row(
            "SELECT sample_rate FROM analytics_queue ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let Some(rate) = rate else {
        return Ok((Vec::new(), 1.0));
    };
    let mut stmt = conn.prepare_cached(
        "SELECT seq, body FROM analytics_queue WHERE sample_rate = ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![rate, max_events as i64])?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let Some(r) = rows.next()? {
        let body: String = r.get(1)?;
        // +1 for the comma between events.
        if !out.is_empty() && bytes + body.len() + 1 > max_bytes {
            break;
        }
        bytes += body.len() + 1;
        out.push(Row {
            seq: r.get(0)?,
            body,
        });
    }
    Ok((out, rate))
}

/// Deletes acknowledged (or refused) rows.
pub(crate) fn delete_rows(conn: &Connection, seqs: &[i64]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("DELETE FROM analytics_queue WHERE seq = ?1")?;
    for s in seqs {
        stmt.execute([s])?;
    }
    Ok(())
}

/// Queues an erasure request for `user_id`.
pub(crate) fn request_erasure(
    conn: &Connection,
    user_id: &str,
    at: DateTime<Utc>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO analytics_erasure (user_id, requested_at) VALUES (?1, ?2)
         ON CONFLICT(user_id) DO NOTHING",
        params![user_id, at.timestamp_millis()],
    )
    .map(|_| ())
}

/// Pending erasure requests.
pub(crate) fn erasures(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT user_id FROM analytics_erasure ORDER BY requested_at")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Removes an acknowledged erasure request.
pub(crate) fn erasure_done(conn: &Connection, user_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM analytics_erasure WHERE user_id = ?1",
        [user_id],
    )
    .map(|_| ())
}

/// An event recorded by `track()`, completed into wire JSON by the writer.
#[derive(Debug)]
pub(crate) struct Pending {
    pub id: Uuid,
    pub name: String,
    pub properties: Option<Properties>,
    pub timestamp: DateTime<Utc>,
    pub duration: Option<f64>,
    pub sequence: u64,
    pub session_id: Arc<str>,
}

/// What travels to the writer.
pub(crate) enum WriterMsg {
    /// An event to persist.
    Event(Box<Pending>),
    /// Acknowledge once everything before this marker is committed.
    Flush(std::sync::mpsc::Sender<Result<(), QueueError>>),
    /// Delete the queue (consent denied), optionally queuing an erasure for a user.
    Purge {
        erase_user: Option<String>,
        at: DateTime<Utc>,
        ack: std::sync::mpsc::Sender<Result<u64, QueueError>>,
    },
    /// Commit and stop.
    Stop(std::sync::mpsc::Sender<Result<(), QueueError>>),
}

/// The session a crash left open, kept in `kv` under `analytics.open_session:{app}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenSession {
    /// Session id.
    pub session_id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The last sign of life (start or heartbeat).
    pub last_heartbeat: DateTime<Utc>,
    /// Highest sequence written for it.
    pub sequence: u64,
}

/// The `kv` key of the open session of `app`.
pub(crate) fn open_session_key(app: &str) -> String {
    format!("analytics.open_session:{app}")
}

/// The fixed parts of every event this client writes.
#[derive(Debug, Clone)]
pub(crate) struct EventContext {
    pub app: String,
    pub user_id: String,
    pub app_version: String,
    pub platform: String,
    pub arch: String,
    pub channel: String,
    pub sample_rate: f64,
    pub max_queue: usize,
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub db: Db,
    pub ctx: EventContext,
    /// Events `track()` could not hand over (channel full); persisted as drops.
    pub channel_drops: Arc<AtomicU64>,
    open: Option<OpenSession>,
    open_dirty: bool,
    pending: Vec<Pending>,
}

impl Writer {
    pub(crate) fn new(db: Db, ctx: EventContext, channel_drops: Arc<AtomicU64>) -> Self {
        Self {
            db,
            ctx,
            channel_drops,
            open: None,
            open_dirty: false,
            pending: Vec::with_capacity(256),
        }
    }

    /// Runs until `Stop` or until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<WriterMsg>) {
        loop {
            let Ok(first) = rx.recv() else {
                self.commit_logged();
                return;
            };
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    WriterMsg::Event(p) => {
                        self.pending.push(*p);
                        if self.pending.len() >= MAX_TRANSACTION {
                            self.commit_logged();
                        }
                    }
                    WriterMsg::Flush(ack) => {
                        let _ = ack.send(self.commit());
                    }
                    WriterMsg::Purge {
                        erase_user,
                        at,
                        ack,
                    } => {
                        self.commit_logged();
                        let _ = ack.send(self.purge(erase_user.as_deref(), at));
                    }
                    WriterMsg::Stop(ack) => {
                        let _ = ack.send(self.commit());
                        return;
                    }
                }
                next = rx.try_recv().ok();
            }
            self.commit_logged();
        }
    }

    fn commit_logged(&mut self) {
        if let Err(e) = self.commit() {
            tracing::warn!(error = %e, "analytics: events could not be written");
        }
    }

    fn purge(&mut self, erase_user: Option<&str>, at: DateTime<Utc>) -> Result<u64, QueueError> {
        self.open = None;
        self.open_dirty = false;
        let key = open_session_key(&self.ctx.app);
        self.db.with(|c| {
            let tx = c.transaction()?;
            let n = purge(&tx)?;
            tx.execute("DELETE FROM kv WHERE key = ?1", [&key])?;
            if let Some(u) = erase_user {
                request_erasure(&tx, u, at)?;
            }
            tx.commit()?;
            Ok(n)
        })
    }

    /// Commits the pending events in one transaction. On failure the events are counted
    /// as dropped (they cannot be kept anywhere else without growing memory).
    fn commit(&mut self) -> Result<(), QueueError> {
        let channel_drops = self.channel_drops.swap(0, Ordering::Relaxed);
        if self.pending.is_empty() && channel_drops == 0 && !self.open_dirty {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let mut rows = Vec::with_capacity(batch.len());
        let mut ended: Vec<String> = Vec::new();
        for p in &batch {
            self.note_session(p, &mut ended);
            let event = AnalyticsEvent {
                id: p.id,
                name: p.name.clone(),
                category: EventCategory::for_name(&p.name),
                user_id: self.ctx.user_id.clone(),
                session_id: p.session_id.to_string(),
                timestamp: p.timestamp,
                app_version: self.ctx.app_version.clone(),
                platform: self.ctx.platform.clone(),
                arch: self.ctx.arch.clone(),
                channel: self.ctx.channel.clone(),
                properties: p.properties.clone(),
                duration: p.duration,
                sequence: p.sequence,
            };
            match serde_json::to_string(&event) {
                Ok(body) => rows.push((p.timestamp.timestamp_millis(), body)),
                Err(source) => {
                    tracing::warn!(error = %QueueError::Encode { name: p.name.clone(), source }, "analytics");
                }
            }
        }
        let encode_failures = (batch.len() - rows.len()) as u64;
        let key = open_session_key(&self.ctx.app);
        let open_json = match (&self.open, self.open_dirty) {
            (Some(o), true) => {
                Some(
                    serde_json::to_string(o).map_err(|source| QueueError::Encode {
                        name: "open session".into(),
                        source,
                    })?,
                )
            }
            _ => None,
        };
        let rate = self.ctx.sample_rate;
        let max = self.ctx.max_queue;
        let result = self.db.with(|c| {
            let tx = c.transaction()?;
            insert_rows(&tx, &rows, rate)?;
            for s in &ended {
                delete_open_session_if(&tx, &key, s)?;
            }
            if let Some(j) = &open_json {
                tx.execute(
                    "INSERT INTO kv (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![key, j],
                )?;
            }
            count_dropped(&tx, channel_drops + encode_failures)?;
            enforce_bound(&tx, max)?;
            tx.commit()
        });
        match result {
            Ok(()) => {
                self.open_dirty = false;
                Ok(())
            }
            Err(e) => {
                // Keep the count: the next successful commit persists it.
                self.channel_drops
                    .fetch_add(channel_drops + batch.len() as u64, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn note_session(&mut self, p: &Pending, ended: &mut Vec<String>) {
        match p.name.as_str() {
            names::SESSION_START => {
                self.open = Some(OpenSession {
                    session_id: p.session_id.to_string(),
                    started_at: p.timestamp,
                    last_heartbeat: p.timestamp,
                    sequence: p.sequence,
                });
                self.open_dirty = true;
            }
            names::SESSION_END => {
                if self
                    .open
                    .as_ref()
                    .is_some_and(|o| *o.session_id == *p.session_id)
                {
                    self.open = None;
                    self.open_dirty = false;
                }
                ended.push(p.session_id.to_string());
            }
            name => {
                if let Some(o) = self.open.as_mut() {
                    if *o.session_id == *p.session_id {
                        if name == names::SESSION_HEARTBEAT {
                            o.last_heartbeat = p.timestamp;
                        }
                        o.sequence = o.sequence.max(p.sequence);
                        self.open_dirty = true;
                    }
                }
            }
        }
    }
}

fn insert_rows(tx: &Transaction<'_>, rows: &[(i64, String)], rate: f64) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO analytics_queue (created_at, sample_rate, body) VALUES (?1, ?2, ?3)",
    )?;
    for (at, body) in rows {
        stmt.execute(params![at, rate, body])?;
    }
    Ok(())
}

fn delete_open_session_if(tx: &Transaction<'_>, key: &str, session: &str) -> rusqlite::Result<()> {
    let stored: Option<String> = tx
        .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
        .optional()?;
    if let Some(s) = stored {
        let matches = serde_json::from_str::<OpenSession>(&s)
            .map(|o| o.session_id == session)
            .unwrap_or(true);
        if matches {
            tx.execute("DELETE FROM kv WHERE key = ?1", [key])?;
        }
    }
    Ok(())
}

/// Hands an event to the writer without blocking; counts it as dropped when the channel is
/// full or the writer has stopped. Returns whether it was handed over.
pub(crate) fn hand_over(
    tx: &SyncSender<WriterMsg>,
    drops: &AtomicU64,
    pending: Box<Pending>,
) -> bool {
    match tx.try_send(WriterMsg::Event(pending)) {
        Ok(()) => true,
        Err(_) => {
            drops.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(conn: &Connection, n: usize, at: i64) {
        for i in 0..n {
            conn.execute(
                "INSERT INTO analytics_queue (created_at, sample_rate, body) VALUES (?1, 1.0, ?2)",
                params![at, format!("{{\"i\":{i}}}")],
            )
            .expect("insert");
        }
    }

    #[test]
    fn bound_drops_oldest_and_counts() {
        let store = Store::open_in_memory().expect("store");
        store
            .with_conn(|c| {
                rows(c, 15, 0);
                assert_eq!(enforce_bound(c, 10)?, 5);
                assert_eq!(queued(c)?, 10);
                assert_eq!(counter(c, DROPPED_PENDING)?, 5);
                let (batch, _) = next_batch(c, 100, 1 << 20)?;
                assert_eq!(batch[0].body, "{\"i\":5}");
                Ok(())
            })
            .expect("db");
    }

    #[test]
    fn batches_respect_byte_limit_and_sample_rate() {
        let store = Store::open_in_memory().expect("store");
        store
            .with_conn(|c| {
                rows(c, 10, 0);
                c.execute(
                    "INSERT INTO analytics_queue (created_at, sample_rate, body) VALUES (0, 0.5, 'x')",
                    [],
                )?;
                let (b, rate) = next_batch(c, 100, 24)?;
                assert_eq!(rate, 1.0);
                assert_eq!(b.len(), 3, "8+1 bytes each, 24 bytes allowed");
                let (b, _) = next_batch(c, 100, 1 << 20)?;
                assert_eq!(b.len(), 10, "the 0.5 row waits for its own batch");
                Ok(())
            })
            .expect("db");
    }

    #[test]
    fn expiry_counts_drops() {
        let store = Store::open_in_memory().expect("store");
        store
            .with_conn(|c| {
                rows(c, 3, 1_000);
                rows(c, 2, 5_000);
                let cutoff = DateTime::from_timestamp_millis(2_000).expect("t");
                assert_eq!(expire(c, cutoff)?, 3);
                assert_eq!(counter(c, DROPPED_TOTAL)?, 3);
                assert_eq!(queued(c)?, 2);
                add_counter(c, DROPPED_PENDING, -10)?;
                assert_eq!(counter(c, DROPPED_PENDING)?, 0, "never negative");
                Ok(())
            })
            .expect("db");
    }
}
