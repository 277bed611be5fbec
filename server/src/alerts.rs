//! Alerts: Slack-compatible webhooks for the rollout engine and the analytics backend.
//!
//! Owns [`Alert`], [`AlertKind`], [`Severity`] and [`Alerter`]. Sending never blocks the
//! caller: [`Alerter::send`] puts the alert on a bounded queue (full → the alert is dropped
//! and counted) and a background task posts it, retrying with exponential backoff and
//! jitter (honouring `Retry-After`) until the receiver acknowledges it or the attempt/time
//! budget is spent. Every attempt for one alert carries the same `X-Railgun-Alert-Id`, so a
//! receiver can drop a repeat it already handled. The same kind and title within the dedup
//! window (10 min by default) is sent once, so a flapping rule doesn't spam; an alert about a
//! distinct event (a rollout decision, named by [`Alert::event`]) is never merged with
//! another, so halt → resume → halt at the same stage gives two halt alerts.
//!
//! It refuses to log the webhook URL (a Slack URL is a secret) and never puts user ids or
//! event properties in an alert: alerts carry release names and numbers only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use railgun_core::clock::SharedClock;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::metrics::Metrics;

/// How long a stopping server waits for alerts still in delivery.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Header carrying the alert's id; the same on every retry of one alert.
pub const ALERT_ID_HEADER: &str = "x-railgun-alert-id";

/// How urgent an alert is (the seed's alert table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone must act now (a rollout was halted).
    Critical,
    /// Worth a look soon (high error rate, analytics backlog).
    Warning,
    /// For the record (low adoption).
    Info,
}

impl Severity {
    /// The lowercase name (`critical`, `warning`, `info`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// The Slack attachment colour.
    pub fn color(self) -> &'static str {
        match self {
            Severity::Critical => "danger",
            Severity::Warning => "warning",
            Severity::Info => "#439FE0",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The rollout engine halted a rollout (critical).
    RolloutHalted,
    /// A rollout's error rate is high but not (yet) conclusive (warning).
    HighErrorRate,
    /// Fewer than 10 % of the expected installs after 48 h (info).
    LowAdoption,
    /// The analytics ingest queue holds more than 10 000 events (warning).
    AnalyticsBacklog,
}

impl AlertKind {
    /// The severity the seed's alert table gives this kind.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::RolloutHalted => Severity::Critical,
            AlertKind::HighErrorRate | AlertKind::AnalyticsBacklog => Severity::Warning,
            AlertKind::LowAdoption => Severity::Info,
        }
    }

    /// The snake_case name used on the wire (`rollout_halted`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::RolloutHalted => "rollout_halted",
            AlertKind::HighErrorRate => "high_error_rate",
            AlertKind::LowAdoption => "low_adoption",
            AlertKind::AnalyticsBacklog => "analytics_backlog",
        }
    }
}

/// One alert. Carries numbers and names of releases, never user ids or event properties.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// One line, e.g. `"railgun 0.2.0 (stable) halted at 10 %"`.
    pub title: String,
    /// The details a person needs (rates, bounds, limits, installs).
    pub text: String,
    /// Key/value pairs shown as fields (Slack attachment fields).
    pub fields: Vec<(String, String)>,
    /// The event this alert reports, when it has an identity (the rollout decision id).
    /// Deduplication then keys on it instead of kind and title: a second decision is a
    /// second alert however alike its title, the same decision queued twice is one.
    pub event: Option<String>,
}

impl Alert {
    /// The Slack-compatible body posted for this alert:
    ///
    /// ```json
    /// {"text": "[CRITICAL] title",
    ///  "attachments": [{"color": "danger", "title": "…", "text": "…", "ts": 1767225600,
    ///                   "fields": [{"title": "k", "value": "v", "short": true}]}],
    ///  "railgun": {"id": "…", "kind": "rollout_halted", "severity": "critical",
    ///              "at": "2026-01-01T00:00:00Z"}}
    /// ```
    ///
    /// `text` and `attachments` are what Slack (and Mattermost, Discord's `/slack` endpoint,
    /// Teams' incoming webhooks) display; `railgun` is for machines.
    pub fn webhook_payload(&self, id: &str, at: DateTime<Utc>) -> Value {
        let severity = self.kind.severity();
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|(k, v)| json!({"title": k, "value": v, "short": true}))
            .collect();
        json!({
            "text": format!("[{}] {}", severity.as_str().to_uppercase(), self.title),
            "attachments": [{
                "color": severity.color(),
                "title": self.title,
                "text": self.text,
                "fields": fields,
                "ts": at.timestamp(),
            }],
            "railgun": {
                "id": id,
                "kind": self.kind.as_str(),
                "severity": severity.as_str(),
                "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
        })
    }
}

/// How an [`Alerter`] delivers. `AlertConfig::new(url)` gives the production defaults; tests
/// shorten the backoff.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Where alerts are posted (a secret for Slack: never logged).
    pub webhook: String,
    /// Alerts waiting for delivery before new ones are dropped (256).
    pub queue_capacity: usize,
    /// Alerts being delivered (retried) at the same time (4).
    pub max_in_flight: usize,
    /// Attempts per alert, the first included (8).
    pub max_attempts: u32,
    /// Time after which an alert is given up, counted from its first attempt (1 h).
    pub max_elapsed: Duration,
    /// Delay before the first retry; doubled on each further one (2 s).
    pub initial_backoff: Duration,
    /// Longest delay between two attempts, unless `Retry-After` asks for more (10 min).
    pub max_backoff: Duration,
    /// Timeout of one HTTP attempt (10 s).
    pub request_timeout: Duration,
    /// Same kind and title within this window are sent once (10 min).
    pub dedup_window: Duration,
    /// The clock the dedup window is measured with (tests inject a manual one).
    pub clock: SharedClock,
}

impl AlertConfig {
    /// The defaults for `webhook`.
    pub fn new(webhook: impl Into<String>) -> Self {
        Self {
            webhook: webhook.into(),
            queue_capacity: 256,
            max_in_flight: 4,
            max_attempts: 8,
            max_elapsed: Duration::from_secs(3600),
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(600),
            request_timeout: Duration::from_secs(10),
            dedup_window: Duration::from_secs(600),
            clock: railgun_core::clock::system(),
        }
    }
}

/// Counters of an [`Alerter`] since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertStats {
    /// Alerts accepted on the queue.
    pub queued: u64,
    /// Alerts the receiver acknowledged (2xx).
    pub delivered: u64,
    /// Alerts given up (permanent 4xx, attempts or time spent).
    pub failed: u64,
    /// Alerts dropped because the queue was full (or no runtime to deliver them).
    pub dropped: u64,
    /// Alerts not sent because the same kind and title was sent within the window.
    pub deduplicated: u64,
    /// HTTP attempts made (retries included).
    pub attempts: u64,
}

/// Why one delivery attempt did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The receiver answered with a status worth retrying (5xx, 408, 429).
    #[error("webhook answered {status}")]
    Retryable {
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The receiver refused the alert (other 4xx): retrying won't help.
    #[error("webhook refused the alert with {status}")]
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// No answer (connection, timeout); the URL is stripped from the message.
    #[error("webhook unreachable: {0}")]
    Transport(String),
}

#[derive(Debug, Default)]
struct Shared {
    queued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    deduplicated: AtomicU64,
    attempts: AtomicU64,
    pending: AtomicUsize,
    idle: Notify,
    metrics: OnceLock<Arc<Metrics>>,
}

impl Shared {
    fn finish(&self, delivered: bool) {
        if delivered {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = self.metrics.get() {
                m.alerts_delivered.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = self.metrics.get() {
                m.alerts_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.pending.fetch_sub(1, Ordering::AcqRel);
        self.idle.notify_waiters();
    }

    fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.metrics.get() {
            m.alerts_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Inner {
    tx: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    recent: Mutex<HashMap<DedupKey, DateTime<Utc>>>,
    dedup_window: chrono::Duration,
    clock: SharedClock,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("webhook", &self.tx.is_some())
            .field("stats", &self.shared)
            .finish()
    }
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            tx: None,
            shared: Arc::default(),
            recent: Mutex::default(),
            dedup_window: chrono::Duration::minutes(10),
            clock: railgun_core::clock::system(),
        }
    }
}

struct Job {
    id: String,
    body: Vec<u8>,
}

/// What deduplication compares: kind, title and the event's identity if it has one.
type DedupKey = (AlertKind, String, Option<String>);

/// Delivers alerts; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Alerter {
    inner: Arc<Inner>,
}

impl Alerter {
    /// An alerter that only logs (no webhook configured).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// An alerter posting Slack-compatible JSON to `webhook` (`RAILGUN_ALERT_WEBHOOK`) with
    /// the defaults of [`AlertConfig::new`]; `None` only logs. Must be called inside a
    /// tokio runtime when `webhook` is set (outside one it logs an error and only logs).
    pub fn new(webhook: Option<String>) -> Self {
        match webhook {
            Some(url) => Self::with_config(AlertConfig::new(url)),
            None => Self::disabled(),
        }
    }

    /// An alerter delivering as `config` says (spawns the delivery task on the current
    /// tokio runtime).
    pub fn with_config(config: AlertConfig) -> Self {
        let shared = Arc::new(Shared::default());
        let dedup_window = chrono::Duration::from_std(config.dedup_window)
            .unwrap_or_else(|_| chrono::Duration::minutes(10));
        let clock = config.clock.clone();
        let url_ok = reqwest::Url::parse(&config.webhook)
            .map(|u| matches!(u.scheme(), "http" | "https"))
            .unwrap_or(false);
        let tx = match tokio::runtime::Handle::try_current() {
            Ok(_) if !url_ok => {
                // The URL itself is not logged: a Slack webhook URL is a credential.
                tracing::error!("alert webhook is not an http(s) URL; alerts are only logged");
                None
            }
            Ok(handle) => match build_client(&config) {
                Ok(client) => {
                    let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
                    handle.spawn(worker(rx, client, config, shared.clone()));
                    Some(tx)
                }
                Err(e) => {
                    tracing::error!(error = %e.without_url(), "alert webhook client; alerts are only logged");
                    None
                }
            },
            Err(_) => {
                tracing::error!("no tokio runtime for alert delivery; alerts are only logged");
                None
            }
        };
        Self {
            inner: Arc::new(Inner {
                tx,
                shared,
                recent: Mutex::default(),
                dedup_window,
                clock,
            }),
        }
    }

    /// Counts delivered/failed/dropped alerts in `metrics` too (`/metrics`).
    pub fn attach_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.inner.shared.metrics.set(metrics);
    }

    /// Whether alerts are posted to a webhook (else only logged).
    pub fn is_enabled(&self) -> bool {
        self.inner.tx.is_some()
    }

    /// Queues `alert` for delivery and returns at once. Returns without queuing when the
    /// same kind and title was queued within the dedup window, or when the queue is full
    /// (counted in [`AlertStats::dropped`]).
    pub fn send(&self, alert: Alert) {
        let now = self.inner.clock.now();
        if !self.first_in_window(&alert, now) {
            self.inner
                .shared
                .deduplicated
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(kind = alert.kind.as_str(), title = %alert.title, "alert repeated within the dedup window; not sent");
            return;
        }
        tracing::warn!(kind = alert.kind.as_str(), severity = alert.kind.severity().as_str(), title = %alert.title, "alert");
        let Some(tx) = &self.inner.tx else { return };
        let id = uuid::Uuid::new_v4().to_string();
        let body = alert.webhook_payload(&id, now).to_string().into_bytes();
        let shared = &self.inner.shared;
        shared.pending.fetch_add(1, Ordering::AcqRel);
        match tx.try_send(Job { id, body }) {
            Ok(()) => {
                shared.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                shared.pending.fetch_sub(1, Ordering::AcqRel);
                shared.idle.notify_waiters();
                shared.drop_one();
                tracing::error!(
                    kind = alert.kind.as_str(),
                    "alert queue full; alert dropped"
                );
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> AlertStats {
        let s = &self.inner.shared;
        AlertStats {
            queued: s.queued.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            deduplicated: s.deduplicated.load(Ordering::Relaxed),
            attempts: s.attempts.load(Ordering::Relaxed),
        }
    }

    /// Waits until every queued alert is delivered or given up (shutdown, tests).
    pub async fn idle(&self) {
        let shared = &self.inner.shared;
        loop {
            let notified = shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shared.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Waits up to `grace` for the alerts in delivery (server shutdown); `true` when none
    /// is left. Alerts still retrying after it are lost with the process.
    pub async fn drain(&self, grace: Duration) -> bool {
        let done = tokio::time::timeout(grace, self.idle()).await.is_ok();
        if !done {
            let left = self.inner.shared.pending.load(Ordering::Acquire);
            tracing::error!(alerts = left, "shutting down with alerts not delivered");
        }
        done
    }

    /// Records `alert` as sent now unless the same kind+title was within the window.
    fn first_in_window(&self, alert: &Alert, now: DateTime<Utc>) -> bool {
        let window = self.inner.dedup_window;
        let mut recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() > 1024 {
            recent.retain(|_, at| now - *at < window);
        }
        let key = (alert.kind, alert.title.clone(), alert.event.clone());
        match recent.get(&key) {
            Some(at) if now - *at < window && now >= *at => false,
            _ => {
                recent.insert(key, now);
                true
            }
        }
    }
}

fn build_client(config: &AlertConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("railgun/", env!("CARGO_PKG_VERSION")))
        .build()
}

async fn worker(
    mut rx: mpsc::Receiver<Job>,
    client: reqwest::Client,
    config: AlertConfig,
    shared: Arc<Shared>,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let Some(job) = rx.recv().await else { break };
        let (client, config, shared) = (client.clone(), config.clone(), shared.clone());
        tokio::spawn(async move {
            let ok = deliver(&client, &config, &shared, &job).await;
            drop(permit);
            shared.finish(ok);
        });
    }
}

/// Posts one alert until acknowledged or out of budget; `true` when delivered.
async fn deliver(
    client: &reqwest::Client,
    config: &AlertConfig,
    shared: &Shared,
    job: &Job,
) -> bool {
    let started = tokio::time::Instant::now();
    let mut attempt = 1u32;
    loop {
        shared.attempts.fetch_add(1, Ordering::Relaxed);
        let err = match post(client, config, job).await {
            Ok(()) => {
                tracing::info!(alert_id = %job.id, attempt, "alert delivered");
                return true;
            }
            Err(e) => e,
        };
        let retry_after = match &err {
            AlertError::Refused { .. } => {
                tracing::error!(alert_id = %job.id, error = %err, "alert not delivered");
                return false;
            }
            AlertError::Retryable { retry_after, .. } => *retry_after,
            AlertError::Transport(_) => None,
        };
        if attempt >= config.max_attempts {
            tracing::error!(alert_id = %job.id, attempts = attempt, error = %err, "alert not delivered; attempts spent");
            return false;
        }
        let delay = retry_after.unwrap_or_else(|| backoff(config, attempt, jitter()));
        if started.elapsed() + delay > config.max_elapsed {
            tracing::error!(alert_id = %job.id, attempts = attempt, error = %err, "alert not delivered; time budget spent");
            return false;
        }
        tracing::warn!(alert_id = %job.id, attempt, error = %err, delay_ms = delay.as_millis() as u64, "alert delivery failed; retrying");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

async fn post(client: &reqwest::Client, config: &AlertConfig, job: &Job) -> Result<(), AlertError> {
    let res = client
        .post(&config.webhook)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ALERT_ID_HEADER, &job.id)
        .body(job.body.clone())
        .send()
        .await
        .map_err(|e| AlertError::Transport(e.without_url().to_string()))?;
    let status = res.status();
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    if status.is_server_error() || code == 408 || code == 429 {
        let retry_after = railgun_core::net::retry_after(res.headers(), Utc::now());
        Err(AlertError::Retryable {
            status: code,
            retry_after,
        })
    } else {
        Err(AlertError::Refused { status: code })
    }
}

/// The delay before retry number `attempt` (1 = first retry): `initial · 2^(attempt-1)`,
/// capped at `max_backoff`, of which the upper half is scaled by `jitter` ∈ [0, 1)
/// ("equal jitter": never less than half the step, so retries spread without collapsing).
pub fn backoff(config: &AlertConfig, attempt: u32, jitter: f64) -> Duration {
    let exp = config
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let step = exp.min(config.max_backoff);
    let half = step / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A uniform value in [0, 1) from the OS random source (through a v4 UUID).
fn jitter() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 64) as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut c = AlertConfig::new("http://127.0.0.1:9/");
        c.initial_backoff = Duration::from_secs(2);
        c.max_backoff = Duration::from_secs(60);
        assert_eq!(backoff(&c, 1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(&c, 1, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&c, 3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(&c, 3, 0.5), Duration::from_secs(6));
        assert_eq!(backoff(&c, 30, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&c, 30, 0.0), Duration::from_secs(30));
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }

    #[test]
    fn payload_is_slack_compatible() {
        let alert = Alert {
            kind: AlertKind::RolloutHalted,
            title: "app 0.2.0 (stable) halted at 10 %".into(),
            text: "crash rate lower bound 3.1 % > 1 %".into(),
            fields: vec![("installs".into(), "1000".into())],
            event: None,
        };
        let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("at");
        let v = alert.webhook_payload("id-1", at);
        assert_eq!(v["text"], "[CRITICAL] app 0.2.0 (stable) halted at 10 %");
        assert_eq!(v["attachments"][0]["color"], "danger");
        assert_eq!(v["attachments"][0]["fields"][0]["title"], "installs");
        assert_eq!(v["attachments"][0]["fields"][0]["short"], true);
        assert_eq!(v["railgun"]["kind"], "rollout_halted");
        assert_eq!(v["railgun"]["severity"], "critical");
        assert_eq!(v["railgun"]["at"], "2026-01-01T00:00:00Z");
    }

    #[tokio::test]
    async fn unusable_webhook_url_disables_delivery() {
        for bad in ["not a url", "ftp://example.com/hook", ""] {
            assert!(
                !Alerter::with_config(AlertConfig::new(bad)).is_enabled(),
                "{bad}"
            );
        }
        assert!(Alerter::new(Some("https://hooks.example.com/x".into())).is_enabled());
    }

    #[test]
    fn disabled_alerter_dedups_and_never_panics_outside_a_runtime() {
        let a = Alerter::new(Some("http://127.0.0.1:9/".into()));
        assert!(!a.is_enabled());
        let alert = Alert {
            kind: AlertKind::LowAdoption,
            title: "t".into(),
            text: String::new(),
            fields: vec![],
            event: None,
        };
        a.send(alert.clone());
        a.send(alert);
        assert_eq!(a.stats().deduplicated, 1);
    }

    #[test]
    fn alerts_about_distinct_decisions_are_never_merged() {
        let a = Alerter::new(Some("http://127.0.0.1:9/".into()));
        let halt = |decision: &str| Alert {
            kind: AlertKind::RolloutHalted,
            title: "app 0.2.0 (stable) halted at 10 %".into(),
            text: String::new(),
            fields: vec![],
            event: Some(decision.into()),
        };
        // halt → resume → halt at the same stage: two decisions, two alerts.
        a.send(halt("decision-1"));
        a.send(halt("decision-2"));
        assert_eq!(a.stats().deduplicated, 0);
        // The same decision queued twice is one alert.
        a.send(halt("decision-2"));
        assert_eq!(a.stats().deduplicated, 1);
    }
}
