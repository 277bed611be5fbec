//! The uploader: moves queued events to the server, and erasure requests after consent is
//! withdrawn.
//!
//! Owns the upload protocol: batches of at most 100 events and 512 KiB to
//! `POST {url}/analytics/events` as [`EventBatch`]; rows are deleted only after a 2xx
//! [`IngestResponse`] (accepted and duplicates are acknowledged, rejected ones are dropped and
//! counted); 408, 429, 5xx and network errors back off exponentially with full jitter up to
//! one hour, honouring `Retry-After`; other 4xx drop the events the server names as rejected
//! and, without such a list, give up on the batch after a few attempts instead of retrying it
//! forever. Erasure requests (`POST {url}/analytics/erasure {"userId"}`) are retried until the
//! server answers 2xx or 404.
//!
//! It refuses to decide *when* to run (the client's timer, `flush()` and shutdown do) and it
//! never reads the clock except through the injected [`Clock`](crate::clock::Clock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use url::Url;

use super::event::{AnalyticsEvent, EventBatch, IngestResponse, MAX_DROPPED_PER_BATCH};
use super::queue::{self, Db, QueueError, DROPPED_PENDING, REJECTED_TOTAL, SENT_TOTAL};
use crate::clock::SharedClock;
use crate::net::{self, Answer, Backoff, RetryCause, Verdict};
use crate::store::Store;

/// Most events in one upload.
pub const DEFAULT_BATCH_EVENTS: usize = 100;
/// Most bytes of event JSON in one upload.
pub const DEFAULT_BATCH_BYTES: usize = 512 * 1024;

/// Errors that stop an upload run (HTTP failures are not errors: they schedule a retry).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The queue could not be read or updated.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The server URL is not usable.
    #[error("analytics URL {url:?} is not a valid base URL: {source}")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it is refused.
        #[source]
        source: net::UrlError,
    },
    /// The HTTP client could not be built.
    #[error("cannot start the analytics HTTP client: {}", crate::error::chain(.0))]
    Client(#[source] reqwest::Error),
    /// The uploader's runtime could not be built.
    #[error("cannot start the analytics upload runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// How the uploader behaves.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Base URL of the server (`{url}/analytics/events`); `None` keeps everything queued.
    pub url: Option<String>,
    /// Send nothing (debug/dry-run mode): everything stays queued.
    pub dry_run: bool,
    /// Most events per batch (≤ 100).
    pub batch_events: usize,
    /// Most bytes of event JSON per batch (≤ 512 KiB).
    pub batch_bytes: usize,
    /// First backoff step (doubled per consecutive failure, full jitter).
    pub backoff_base: Duration,
    /// Longest backoff (and longest `Retry-After` honoured).
    pub backoff_max: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Events older than this are dropped (counted).
    pub max_age: chrono::Duration,
    /// Consecutive 4xx answers without a list of rejected events before a batch is dropped.
    pub max_client_errors: u32,
    /// Seed of the jitter RNG (tests); `None` seeds from the OS.
    pub rng_seed: Option<u64>,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            url: None,
            dry_run: false,
            batch_events: DEFAULT_BATCH_EVENTS,
            batch_bytes: DEFAULT_BATCH_BYTES,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
            max_age: chrono::Duration::days(30),
            max_client_errors: 3,
            rng_seed: None,
            user_agent: concat!("railgun/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// What an upload run did and what is left.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlushReport {
    /// Events the server acknowledged in this run (accepted or duplicate).
    pub sent: u64,
    /// Of those, duplicates (already stored by an earlier, unanswered upload).
    pub duplicates: u64,
    /// Events the server refused in this run (dropped).
    pub rejected: u64,
    /// Events dropped in this run because they were too old.
    pub expired: u64,
    /// Events still queued.
    pub held: u64,
    /// Erasure requests still waiting for the server.
    pub erasures_pending: u64,
    /// When the next attempt is allowed (after a failure), by the injected clock.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last failure, for people (never contains event data).
    pub last_error: Option<String>,
}

/// Uploads the queue of one client store. Used by the client's upload thread and directly by
/// `railgun flush`.
pub struct Uploader {
    db: Db,
    config: UploadConfig,
    base: Option<Url>,
    clock: SharedClock,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    backoff: Backoff,
    next_attempt: Option<DateTime<Utc>>,
    client_errors: u32,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("url", &self.base.as_ref().map(Url::as_str))
            .field("next_attempt", &self.next_attempt)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// An uploader for the queue in `store`. It owns its own SQLite connection and a
    /// single-threaded async runtime, so it must not be driven from inside another runtime.
    pub fn new(
        store: &Arc<Store>,
        config: UploadConfig,
        clock: SharedClock,
    ) -> Result<Self, UploadError> {
        let base = match &config.url {
            None => None,
            Some(u) => Some(parse_base(u)?),
        };
        let http = net::client(
            &config.user_agent,
            config.request_timeout.min(Duration::from_secs(10)),
            Some(config.request_timeout),
        )
        .map_err(UploadError::Client)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(UploadError::Runtime)?;
        let backoff = Backoff::new(config.backoff_base, config.backoff_max, config.rng_seed);
        Ok(Self {
            db: Db::open(store)?,
            config,
            base,
            clock,
            http,
            rt,
            backoff,
            next_attempt: None,
            client_errors: 0,
        })
    }

    /// When the next attempt is allowed, if a failure postponed it.
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.next_attempt
    }

    /// Uploads until the queue is empty, a failure postpones the rest, or `deadline` passes.
    /// Does nothing but report while a backoff is running.
    pub fn upload(&mut self, deadline: Option<Instant>) -> Result<FlushReport, UploadError> {
        let mut report = FlushReport::default();
        let cutoff = self.clock.now() - self.config.max_age;
        report.expired = self.db.with(|c| queue::expire(c, cutoff))?;
        if let Some(base) = self.base.clone().filter(|_| !self.config.dry_run) {
            let waiting = self.next_attempt.is_some_and(|t| self.clock.now() < t);
            if !waiting {
                self.next_attempt = None;
                if self.erase(&base, deadline, &mut report)? {
                    self.send_events(&base, deadline, &mut report)?;
                }
            }
        }
        report.next_attempt_at = self.next_attempt;
        report.held = self.db.with(|c| queue::queued(c))?;
        report.erasures_pending = self.db.with(|c| queue::erasures(c))?.len() as u64;
        Ok(report)
    }

    fn postpone(
        &mut self,
        reason: String,
        retry_after: Option<Duration>,
        report: &mut FlushReport,
    ) {
        let delay = self.backoff.fail(retry_after);
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
        let at = self.clock.now() + delay;
        tracing::debug!(%reason, retry_at = %at, "analytics upload postponed");
        self.next_attempt = Some(at);
        report.last_error = Some(reason);
    }

    fn remaining(deadline: Option<Instant>, timeout: Duration) -> Option<Duration> {
        match deadline {
            None => Some(timeout),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(timeout))
            }
        }
    }

    /// Sends pending erasure requests; false when one must be retried later.
    fn erase(
        &mut self,
        base: &Url,
        deadline: Option<Instant>,
        report: &mut FlushReport,
    ) -> Result<bool, UploadError> {
        for user in self.db.with(|c| queue::erasures(c))? {
            let Some(limit) = Self::remaining(deadline, self.config.request_timeout) else {
                return Ok(false);
            };
            // The client's own erasure route (no admin token: the user id is the client's);
            // the id travels in the body, never spliced into a path.
            let url = join(base, "analytics/erasure")?;
            let body = serde_json::json!({ "userId": user }).to_string();
            let req = self
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            match self.rt.block_on(net::send(req, limit)) {
                // 404: the server holds nothing of this user; done as well.
                Ok(reply)
                    if net::classify(reply.status) == Verdict::Success || reply.status == 404 =>
                {
                    self.db.with(|c| queue::erasure_done(c, &user))?;
                    self.backoff.reset();
                }
                // Any other answer, a refusal included, keeps the request: an erasure is
                // never given up on.
                Ok(reply) => {
                    let reason = format!("erasure request answered {}", reply.status);
                    self.postpone(reason, reply.retry_after, report);
                    return Ok(false);
                }
                Err(cause) => {
                    self.postpone(format!("erasure request failed: {cause}"), None, report);
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn send_events(
        &mut self,
        base: &Url,
        deadline: Option<Instant>,
        report: &mut FlushReport,
    ) -> Result<(), UploadError> {
        let url = join(base, "analytics/events")?;
        let max_events = self.config.batch_events.clamp(1, DEFAULT_BATCH_EVENTS);
        let max_bytes = self.config.batch_bytes.clamp(1024, DEFAULT_BATCH_BYTES) - 512;
        loop {
            let Some(limit) = Self::remaining(deadline, self.config.request_timeout) else {
                report.last_error = Some("shutdown deadline reached".into());
                return Ok(());
            };
            let (rows, rate) = self
                .db
                .with(|c| queue::next_batch(c, max_events, max_bytes))?;
            if rows.is_empty() {
                return Ok(());
            }
            // Rows that no longer parse are refused here, as the server would.
            let mut events = Vec::with_capacity(rows.len());
            let mut seqs = Vec::with_capacity(rows.len());
            let mut corrupt = Vec::new();
            for r in &rows {
                match serde_json::from_str::<AnalyticsEvent>(&r.body) {
                    Ok(e) => {
                        events.push(e);
                        seqs.push(r.seq);
                    }
                    Err(_) => corrupt.push(r.seq),
                }
            }
            if !corrupt.is_empty() {
                self.drop_rejected(&corrupt, report)?;
                continue;
            }
            // At most MAX_DROPPED_PER_BATCH per batch; the rest goes with the next ones.
            let dropped = self
                .db
                .with(|c| queue::counter(c, DROPPED_PENDING))?
                .min(MAX_DROPPED_PER_BATCH);
            let events_len = events.len() as u64;
            let batch = EventBatch {
                events,
                sent_at: Some(self.clock.now()),
                sample_rate: rate,
                dropped,
                queued: self
                    .db
                    .with(|c| queue::queued(c))?
                    .saturating_sub(events_len),
            };
            let body = serde_json::to_vec(&batch).map_err(|source| QueueError::Encode {
                name: "batch".into(),
                source,
            })?;
            let answer = self.rt.block_on(net::post_json::<IngestResponse>(
                &self.http,
                url.clone(),
                body,
                limit,
            ));
            match answer {
                Answer::Acked(resp) => {
                    self.backoff.reset();
                    self.client_errors = 0;
                    let rejected: Vec<usize> = valid_indices(&resp, seqs.len());
                    for r in &resp.rejected {
                        tracing::debug!(index = r.index, reason = %r.reason, "analytics event rejected");
                    }
                    let n = seqs.len() as u64;
                    let refused = rejected.len() as u64;
                    self.db.with(|c| {
                        let tx = c.transaction()?;
                        queue::delete_rows(&tx, &seqs)?;
                        queue::add_counter(&tx, SENT_TOTAL, (n - refused) as i64)?;
                        queue::add_counter(&tx, REJECTED_TOTAL, refused as i64)?;
                        queue::add_counter(&tx, DROPPED_PENDING, -(dropped as i64))?;
                        tx.commit()
                    })?;
                    report.sent += n - refused;
                    report.duplicates += resp.duplicates;
                    report.rejected += refused;
                }
                Answer::Refused { status, body } => {
                    let named: Vec<i64> = body
                        .as_ref()
                        .map(|b| valid_indices(b, seqs.len()))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|i| seqs[i])
                        .collect();
                    if !named.is_empty() {
                        tracing::debug!(status, count = named.len(), "analytics events refused");
                        self.drop_rejected(&named, report)?;
                        continue;
                    }
                    self.client_errors += 1;
                    if self.client_errors >= self.config.max_client_errors.max(1) {
                        tracing::warn!(
                            status,
                            count = seqs.len(),
                            "analytics batch refused repeatedly; dropping it"
                        );
                        self.client_errors = 0;
                        self.drop_rejected(&seqs, report)?;
                        continue;
                    }
                    self.postpone(format!("server refused the batch ({status})"), None, report);
                    return Ok(());
                }
                Answer::Retry { cause, retry_after } => {
                    self.postpone(upload_failure(&cause), retry_after, report);
                    return Ok(());
                }
            }
        }
    }

    fn drop_rejected(&mut self, seqs: &[i64], report: &mut FlushReport) -> Result<(), UploadError> {
        self.db.with(|c| {
            let tx = c.transaction()?;
            queue::delete_rows(&tx, seqs)?;
            queue::add_counter(&tx, REJECTED_TOTAL, seqs.len() as i64)?;
            tx.commit()
        })?;
        report.rejected += seqs.len() as u64;
        Ok(())
    }
}

fn valid_indices(resp: &IngestResponse, len: usize) -> Vec<usize> {
    let mut v: Vec<usize> = resp
        .rejected
        .iter()
        .map(|r| r.index)
        .filter(|i| *i < len)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn parse_base(u: &str) -> Result<Url, UploadError> {
    net::base_url(u).map_err(|source| UploadError::BadUrl {
        url: u.to_string(),
        source,
    })
}

fn join(base: &Url, path: &str) -> Result<Url, UploadError> {
    base.join(path).map_err(|e| UploadError::BadUrl {
        url: base.to_string(),
        source: e.into(),
    })
}

/// The text of a postponed upload, for people (never event data).
fn upload_failure(cause: &RetryCause) -> String {
    match cause {
        RetryCause::Transport(_) => format!("upload {cause}"),
        _ => cause.to_string(),
    }
}
