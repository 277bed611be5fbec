//! The bounded ingest queue and its writer task (group commit).
//!
//! Owns the hand-off between ingest requests and the database: a request submits its
//! cleaned events and waits; one writer task takes every job waiting (up to
//! [`MAX_GROUP_EVENTS`]), writes them in one transaction and answers each request with the
//! ids that were new. So an acknowledgement always follows a commit (nothing acknowledged
//! is lost on a restart), duplicates are decided by the database at commit time, and a
//! burst costs one transaction per group rather than one per request.
//!
//! It refuses work past its capacity (counted in events, 10 000 by default): the request
//! gets [`QueueError::Full`] (503 with `Retry-After`) instead of the queue growing.
//! When the backlog (queued plus the submission) passes [`BACKLOG_ALERT_EVENTS`], or the
//! fleet's queued events do (the sum over clients of the latest `queued` each reported in a
//! batch within [`CLIENT_BACKLOG_TTL_MINUTES`]), the [`BacklogAlarm`] sends one
//! `AnalyticsBacklog` alert per episode; it resolves once both fell to half the threshold.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::alerts::{Alert, AlertKind, Alerter};
use crate::metrics::Metrics;
use crate::store::{SharedStore, StoredEvent};

/// Most events written in one transaction.
pub const MAX_GROUP_EVENTS: usize = 2_000;
/// Default capacity of the queue, in events.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Backlog, in events, past which the analytics backlog alert fires (the seed's table).
pub const BACKLOG_ALERT_EVENTS: usize = 10_000;
/// Minutes a client's reported queue counts after its last batch.
pub const CLIENT_BACKLOG_TTL_MINUTES: i64 = 60;
/// Most clients whose reported queue is remembered (the rest are ignored until some expire).
pub const MAX_CLIENTS_TRACKED: usize = 100_000;

/// The alert condition's key (one per server database).
pub const BACKLOG_ALERT_KEY: &str = "analytics_backlog";

/// Raises one [`AlertKind::AnalyticsBacklog`] alert when the backlog passes its threshold,
/// and resolves it once the backlog fell back to half of it (so a queue hovering around
/// the threshold raises one alert, not one per request).
#[derive(Debug)]
pub struct BacklogAlarm {
    alerter: Alerter,
    threshold: usize,
    raised: AtomicBool,
    /// Client key → (queued events it reported, when).
    clients: Mutex<HashMap<String, (u64, DateTime<Utc>)>>,
}

impl BacklogAlarm {
    /// An alarm sending to `alerter` past `threshold` events.
    pub fn new(alerter: Alerter, threshold: usize) -> Self {
        Self {
            alerter,
            threshold,
            raised: AtomicBool::new(false),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Records the queue `client` reported at `now` and returns the fleet's sum (reports
    /// older than [`CLIENT_BACKLOG_TTL_MINUTES`] dropped).
    pub fn client_reported(&self, client: &str, queued: u64, now: DateTime<Utc>) -> u64 {
        let mut m = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let cutoff = now - chrono::Duration::minutes(CLIENT_BACKLOG_TTL_MINUTES);
        m.retain(|_, (_, at)| *at >= cutoff);
        if queued == 0 {
            m.remove(client);
        } else if m.len() < MAX_CLIENTS_TRACKED || m.contains_key(client) {
            m.insert(client.to_string(), (queued, now));
        }
        m.values().map(|(n, _)| *n).fold(0, u64::saturating_add)
    }

    /// The fleet's reported queued events (as last summed).
    pub fn fleet_queued(&self) -> u64 {
        let m = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        m.values().map(|(n, _)| *n).fold(0, u64::saturating_add)
    }

    /// Looks at the backlog (`depth` events, queue `capacity`); `true` when this call
    /// raised the alert.
    pub fn observe(&self, depth: usize, capacity: usize) -> bool {
        let fleet = self.fleet_queued();
        let limit = self.threshold as u64;
        if depth > self.threshold || fleet > limit {
            if self.raised.swap(true, Ordering::AcqRel) {
                return false;
            }
            self.alerter.send(
                BACKLOG_ALERT_KEY,
                Alert {
                    kind: AlertKind::AnalyticsBacklog,
                    title: format!("analytics ingest backlog over {} events", self.threshold),
                    text: format!(
                        "{depth} events waiting or refused (queue capacity {capacity}), {fleet} \
                     queued on clients; uploads past the capacity get 503 and are retried by \
                     clients. Check the database's write latency \
                     (railgun_store_commit_duration_seconds) and the clients' connectivity."
                    ),
                    fields: vec![
                        ("backlog".into(), depth.to_string()),
                        ("client queues".into(), fleet.to_string()),
                        ("capacity".into(), capacity.to_string()),
                        ("threshold".into(), self.threshold.to_string()),
                    ],
                    event: None,
                },
            );
            true
        } else {
            let calm = depth <= self.threshold / 2 && fleet <= limit / 2;
            if calm && self.raised.swap(false, Ordering::AcqRel) {
                self.alerter.send_clear(BACKLOG_ALERT_KEY);
            }
            false
        }
    }
}

/// Why a submission was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue holds too many events.
    #[error("ingest queue full ({depth} events queued, capacity {capacity})")]
    Full {
        /// Events queued.
        depth: usize,
        /// Capacity.
        capacity: usize,
    },
    /// The server is shutting down.
    #[error("server shutting down")]
    Closed,
    /// The database refused the group.
    #[error("store: {0}")]
    Store(String),
}

enum Msg {
    Job(Job),
    Shutdown,
}

struct Job {
    events: Vec<StoredEvent>,
    reply: oneshot::Sender<Result<Vec<bool>, QueueError>>,
}

/// The queue handle (cheap to share behind an `Arc`).
#[derive(Debug)]
pub struct IngestQueue {
    tx: mpsc::UnboundedSender<Msg>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
    backlog: Arc<OnceLock<BacklogAlarm>>,
}

impl IngestQueue {
    /// Starts the writer task over `store`.
    pub fn start(store: SharedStore, metrics: Arc<Metrics>, capacity: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicUsize::new(0));
        let backlog = Arc::new(OnceLock::new());
        let writer = tokio::spawn(writer(
            rx,
            store,
            metrics,
            depth.clone(),
            backlog.clone(),
            capacity,
        ));
        Self {
            tx,
            depth,
            capacity,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
            backlog,
        }
    }

    /// Sends an [`AlertKind::AnalyticsBacklog`] alert through `alerter` when the backlog
    /// passes `threshold` events (once per episode; set once, later calls are ignored).
    pub fn alert_backlog(&self, alerter: Alerter, threshold: usize) {
        let _ = self.backlog.set(BacklogAlarm::new(alerter, threshold));
    }

    /// Records the queue a client reported with a batch at `now` and judges the backlog
    /// again (see [`BacklogAlarm`]).
    pub fn client_backlog(&self, client: &str, queued: u64, now: DateTime<Utc>) {
        if let Some(alarm) = self.backlog.get() {
            alarm.client_reported(client, queued, now);
            alarm.observe(self.depth(), self.capacity);
        }
    }

    /// Events queued and not yet committed.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Submits events and waits for their commit: `true` for each new event, `false` for a
    /// duplicate.
    pub async fn submit(&self, events: Vec<StoredEvent>) -> Result<Vec<bool>, QueueError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        let n = events.len();
        let before = self.depth.fetch_add(n, Ordering::AcqRel);
        if let Some(alarm) = self.backlog.get() {
            alarm.observe(before + n, self.capacity);
        }
        if before + n > self.capacity {
            self.depth.fetch_sub(n, Ordering::AcqRel);
            return Err(QueueError::Full {
                depth: before,
                capacity: self.capacity,
            });
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Job(Job { events, reply })).is_err() {
            self.depth.fetch_sub(n, Ordering::AcqRel);
            return Err(QueueError::Closed);
        }
        // A dropped reply means the writer stopped before this job: not stored, not acked.
        rx.await.unwrap_or(Err(QueueError::Closed))
    }

    /// Waits until everything submitted before this call is committed (a barrier: user
    /// deletion runs after it, so no queued event of the user lands after the erase).
    pub async fn flush(&self) -> Result<(), QueueError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Job(Job {
                events: Vec::new(),
                reply,
            }))
            .map_err(|_| QueueError::Closed)?;
        rx.await.unwrap_or(Err(QueueError::Closed)).map(|_| ())
    }

    /// Refuses new work, lets the writer commit everything queued, and waits for it.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.tx.send(Msg::Shutdown);
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }
}

async fn writer(
    mut rx: mpsc::UnboundedReceiver<Msg>,
    store: SharedStore,
    metrics: Arc<Metrics>,
    depth: Arc<AtomicUsize>,
    backlog: Arc<OnceLock<BacklogAlarm>>,
    capacity: usize,
) {
    let mut stopping = false;
    while !stopping {
        let Some(first) = rx.recv().await else { break };
        let mut jobs = Vec::new();
        let mut total = 0;
        match first {
            Msg::Job(j) => {
                total += j.events.len();
                jobs.push(j);
            }
            Msg::Shutdown => stopping = true,
        }
        while total < MAX_GROUP_EVENTS && !stopping {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => {
                    total += j.events.len();
                    jobs.push(j);
                }
                Ok(Msg::Shutdown) => stopping = true,
                Err(_) => break,
            }
        }
        if jobs.is_empty() {
            continue;
        }
        metrics
            .queue_depth
            .store(depth.load(Ordering::Relaxed) as u64, Ordering::Relaxed);
        let mut sizes = Vec::with_capacity(jobs.len());
        let mut all = Vec::with_capacity(total);
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            sizes.push(j.events.len());
            all.extend(j.events);
            replies.push(j.reply);
        }
        let started = Instant::now();
        let result = store.insert_events(all).await;
        metrics.record_commit(started.elapsed());
        let left = depth
            .fetch_sub(total, Ordering::AcqRel)
            .saturating_sub(total);
        metrics.queue_depth.store(left as u64, Ordering::Relaxed);
        if let Some(alarm) = backlog.get() {
            alarm.observe(left, capacity);
        }
        match result {
            Ok(new) => {
                let mut it = new.into_iter();
                for (reply, n) in replies.into_iter().zip(sizes) {
                    let part: Vec<bool> = it.by_ref().take(n).collect();
                    let _ = reply.send(Ok(part));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = total, "ingest commit failed");
                for reply in replies {
                    let _ = reply.send(Err(QueueError::Store(e.to_string())));
                }
            }
        }
    }
    // Anything submitted after the shutdown marker is answered `Closed` as `rx` drops.
}
