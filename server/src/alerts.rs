//! Alerts: the specification's four alerts, raised and resolved, delivered from a durable
//! outbox to Slack-compatible webhooks, PagerDuty (Events API v2) and generic JSON webhooks.
//!
//! Owns [`Alert`], [`AlertKind`], [`Severity`], [`AlertStatus`], [`Destination`] and
//! [`Alerter`]. Raising an alert never posts anything by itself: [`Alerter::fire`] and
//! [`Alerter::resolve`] turn it into an [`AlertWrite`] (the alert's state and one outbox row
//! per destination) that the caller commits, in the same transaction as the rollout
//! decision that raised it when there is one ([`crate::store::rollout::RolloutChange`]). An
//! alert is *accepted* once committed: a server killed afterwards delivers it after its
//! restart. The sender task claims due rows with a lease, posts each one, retries with
//! exponential backoff and jitter (honouring `Retry-After`) until the receiver acknowledges
//! it or the attempts are spent, and marks it delivered. Every attempt of one alert, and the
//! same alert to every destination, carries the same `X-Railgun-Alert-Id`, so a receiver can
//! drop a repeat it already handled (a kill between the post and the mark repeats one post).
//!
//! An alert and its resolve share a `dedup_key` (PagerDuty's incident key): the condition's
//! subject, plus the decision id when the alert reports a decision, so halt → resume → halt
//! opens two incidents. The same kind and title within the dedup window (10 min) is sent
//! once, so a flapping rule doesn't spam; an alert about a distinct event (a rollout
//! decision, named by [`Alert::event`]) is never merged with another.
//!
//! It refuses to log or store the destinations' URLs and routing keys (secrets: outbox rows
//! name a destination `slack#1`, `pagerduty#1`, `json#1`) and never puts user ids or event
//! properties in an alert: alerts carry release names and numbers only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use railgun_core::clock::SharedClock;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::store::alerts::{AlertStateRow, AlertWrite, Delivery, OutboxRow};
use crate::store::{SharedStore, StoreError};

/// How long a stopping server waits for alerts still in delivery (the rest stays in the
/// outbox and goes after the restart).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Header carrying the alert's id; the same on every retry and every destination.
pub const ALERT_ID_HEADER: &str = "x-railgun-alert-id";

/// PagerDuty's Events API v2 endpoint (`--pagerduty-url` points elsewhere).
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// How urgent an alert is (the specification's alert table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
    /// The lowercase name (`critical`, `warning`, `info`), also PagerDuty's severity.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The rollout engine (or an admin) halted a rollout (critical).
    RolloutHalted,
    /// A rollout's error rate stayed above its limit for 15 minutes (warning).
    HighErrorRate,
    /// Fewer than 10 % of the expected installs after 48 h (info).
    LowAdoption,
    /// The analytics ingest queue holds more than 10 000 events (warning).
    AnalyticsBacklog,
}

impl AlertKind {
    /// The severity the specification's alert table gives this kind.
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

    /// The specification's name (`Rollout Halted`, …).
    pub fn display_name(self) -> &'static str {
        match self {
            AlertKind::RolloutHalted => "Rollout Halted",
            AlertKind::HighErrorRate => "High Error Rate",
            AlertKind::LowAdoption => "Low Adoption",
            AlertKind::AnalyticsBacklog => "Analytics Backlog",
        }
    }
}

/// Whether an alert opens or closes an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition cleared.
    Resolved,
}

impl AlertStatus {
    /// `firing` | `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert. Carries numbers and names of releases, never user ids or event properties.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// One line, e.g. `"railgun 0.2.0 (stable) halted at 10 %"`.
    pub title: String,
    /// The details a person needs (rates, bounds, limits, installs).
    pub text: String,
    /// Key/value pairs shown as fields (Slack attachment fields, PagerDuty custom details).
    pub fields: Vec<(String, String)>,
    /// The event this alert reports, when it has an identity (the rollout decision id).
    /// Deduplication then keys on it instead of kind and title: a second decision is a
    /// second alert however alike its title, the same decision raised twice is one.
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
    ///              "status": "firing", "dedupKey": "…", "at": "2026-01-01T00:00:00Z"}}
    /// ```
    ///
    /// A resolve says `[RESOLVED]` with the colour `good`. `text` and `attachments` are what
    /// Slack (and Mattermost, Discord's `/slack` endpoint, Teams' incoming webhooks)
    /// display; `railgun` is for machines.
    pub fn slack_payload(
        &self,
        id: &str,
        status: AlertStatus,
        dedup_key: &str,
        at: DateTime<Utc>,
    ) -> Value {
        let severity = self.kind.severity();
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|(k, v)| json!({"title": k, "value": v, "short": true}))
            .collect();
        let (tag, color, text) = match status {
            AlertStatus::Firing => (
                severity.as_str().to_uppercase(),
                severity.color(),
                self.text.clone(),
            ),
            AlertStatus::Resolved => (
                "RESOLVED".to_string(),
                "good",
                format!("{} cleared. {}", self.kind.display_name(), self.text),
            ),
        };
        json!({
            "text": format!("[{tag}] {}", self.title),
            "attachments": [{
                "color": color,
                "title": self.title,
                "text": text,
                "fields": fields,
                "ts": at.timestamp(),
            }],
            "railgun": {
                "id": id,
                "kind": self.kind.as_str(),
                "severity": severity.as_str(),
                "status": status.as_str(),
                "dedupKey": dedup_key,
                "at": rfc3339(at),
            },
        })
    }

    /// The PagerDuty Events API v2 body: `trigger` with the payload (severity mapped:
    /// critical, warning, info), or `resolve`; both with the alert's `dedup_key`.
    pub fn pagerduty_payload(
        &self,
        routing_key: &str,
        status: AlertStatus,
        dedup_key: &str,
        at: DateTime<Utc>,
    ) -> Value {
        match status {
            AlertStatus::Resolved => json!({
                "routing_key": routing_key,
                "event_action": "resolve",
                "dedup_key": dedup_key,
            }),
            AlertStatus::Firing => {
                let mut details = Map::new();
                for (k, v) in &self.fields {
                    details.insert(k.clone(), Value::String(v.clone()));
                }
                details.insert("text".into(), Value::String(self.text.clone()));
                let summary: String = self.title.chars().take(1024).collect();
                json!({
                    "routing_key": routing_key,
                    "event_action": "trigger",
                    "dedup_key": dedup_key,
                    "client": "railgun",
                    "payload": {
                        "summary": summary,
                        "source": "railgun",
                        "severity": self.kind.severity().as_str(),
                        "timestamp": rfc3339(at),
                        "class": self.kind.as_str(),
                        "component": self.field("app").unwrap_or("analytics"),
                        "group": self.field("channel").unwrap_or(""),
                        "custom_details": details,
                    },
                })
            }
        }
    }

    /// The generic JSON body: `{"id", "dedupKey", "kind", "name", "severity", "status",
    /// "title", "text", "fields": {…}, "at"}`.
    pub fn json_payload(
        &self,
        id: &str,
        status: AlertStatus,
        dedup_key: &str,
        at: DateTime<Utc>,
    ) -> Value {
        let fields: Map<String, Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "id": id,
            "dedupKey": dedup_key,
            "kind": self.kind.as_str(),
            "name": self.kind.display_name(),
            "severity": self.kind.severity().as_str(),
            "status": status.as_str(),
            "title": self.title,
            "text": self.text,
            "fields": fields,
            "at": rfc3339(at),
        })
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Where alerts go. Several at once; each gets every alert.
#[derive(Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Slack-compatible incoming webhook (`--alert-webhook`, `RAILGUN_ALERT_WEBHOOK`).
    Slack {
        /// The webhook URL (a secret).
        url: String,
    },
    /// PagerDuty's Events API v2 (`--pagerduty-routing-key`, `--pagerduty-url`).
    PagerDuty {
        /// The events endpoint ([`PAGERDUTY_EVENTS_URL`] unless pointed elsewhere).
        url: String,
        /// The integration's routing key (a secret).
        routing_key: String,
    },
    /// A generic JSON webhook (`--alert-json-webhook`).
    Json {
        /// The webhook URL.
        url: String,
    },
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL or the routing key: both are credentials.
        f.write_str(match self {
            Destination::Slack { .. } => "Slack",
            Destination::PagerDuty { .. } => "PagerDuty",
            Destination::Json { .. } => "Json",
        })
    }
}

impl Destination {
    fn url(&self) -> &str {
        match self {
            Destination::Slack { url }
            | Destination::PagerDuty { url, .. }
            | Destination::Json { url } => url,
        }
    }

    fn prefix(&self) -> &'static str {
        match self {
            Destination::Slack { .. } => "slack",
            Destination::PagerDuty { .. } => "pagerduty",
            Destination::Json { .. } => "json",
        }
    }

    fn render(
        &self,
        alert: &Alert,
        id: &str,
        status: AlertStatus,
        dedup_key: &str,
        at: DateTime<Utc>,
    ) -> Value {
        match self {
            Destination::Slack { .. } => alert.slack_payload(id, status, dedup_key, at),
            Destination::PagerDuty { routing_key, .. } => {
                alert.pagerduty_payload(routing_key, status, dedup_key, at)
            }
            Destination::Json { .. } => alert.json_payload(id, status, dedup_key, at),
        }
    }
}

/// How an [`Alerter`] delivers. `AlertConfig::default()` has no destination (alerts are
/// only logged and kept as states); tests shorten the backoff and the poll.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Where alerts go.
    pub destinations: Vec<Destination>,
    /// Attempts per alert and destination, the first included (12: about an hour with
    /// the default backoff).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled on each further one (2 s).
    pub initial_backoff: Duration,
    /// Longest delay between two attempts, unless `Retry-After` asks for more (10 min).
    pub max_backoff: Duration,
    /// Timeout of one HTTP attempt (10 s).
    pub request_timeout: Duration,
    /// How long a claimed row is left to its sender before another claim may take it (a
    /// sender killed mid-post); above the request timeout (15 s).
    pub lease: Duration,
    /// How often the sender looks for due rows when nothing woke it (1 s).
    pub poll: Duration,
    /// Same kind and title within this window are sent once (10 min).
    pub dedup_window: Duration,
    /// The clock alerts are stamped and deduplicated with (tests inject a manual one).
    pub clock: SharedClock,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            destinations: Vec::new(),
            max_attempts: 12,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(600),
            request_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            dedup_window: Duration::from_secs(600),
            clock: railgun_core::clock::system(),
        }
    }
}

impl AlertConfig {
    /// The defaults, delivering to `destinations`.
    pub fn new(destinations: Vec<Destination>) -> Self {
        Self {
            destinations,
            ..Self::default()
        }
    }
}

/// Counters of an [`Alerter`] since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertStats {
    /// Outbox rows accepted (one per alert and destination).
    pub queued: u64,
    /// Rows the receiver acknowledged (2xx).
    pub delivered: u64,
    /// Rows given up (permanent 4xx, attempts spent, destination gone).
    pub failed: u64,
    /// Alerts that could not be written to the outbox (database down).
    pub dropped: u64,
    /// Alerts not raised because the same kind and title was within the window.
    pub deduplicated: u64,
    /// HTTP attempts made (retries included).
    pub attempts: u64,
}

/// Why one delivery attempt did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The receiver answered with a status worth retrying (5xx, 408, 429).
    #[error("receiver answered {status}")]
    Retryable {
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The receiver refused the alert (other 4xx): retrying won't help.
    #[error("receiver refused the alert with {status}")]
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// No answer (connection, timeout); the URL is stripped from the message.
    #[error("receiver unreachable: {0}")]
    Transport(String),
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    deduplicated: AtomicU64,
    attempts: AtomicU64,
}

struct Inner {
    config: AlertConfig,
    /// Destinations usable (http(s) URL), by outbox name.
    targets: Vec<(String, Destination)>,
    store: Option<SharedStore>,
    client: Option<reqwest::Client>,
    counters: Counters,
    metrics: OnceLock<Arc<Metrics>>,
    recent: Mutex<HashMap<DedupKey, DateTime<Utc>>>,
    wake: Arc<Notify>,
    delivered: Notify,
    stopped: AtomicBool,
    /// Serialises the read-modify-write of states raised outside the engine (backlog).
    states: tokio::sync::Mutex<()>,
    /// While it holds `None` this server does not lead ([`crate::leader`]) and its sender
    /// leaves the outbox to the leader's; unset: always sends.
    gate: OnceLock<tokio::sync::watch::Receiver<Option<i64>>>,
    /// Every alert fired, once committed (the dashboard's live feed).
    fired: tokio::sync::broadcast::Sender<Alert>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("destinations", &self.config.destinations)
            .field("counters", &self.counters)
            .finish()
    }
}

/// What deduplication compares: kind, title and the event's identity if it has one.
type DedupKey = (AlertKind, String, Option<String>);

/// Raises, resolves and delivers alerts; cheap to clone.
#[derive(Debug, Clone)]
pub struct Alerter {
    inner: Arc<Inner>,
}

impl Default for Alerter {
    fn default() -> Self {
        Self::disabled()
    }
}

impl Alerter {
    /// An alerter with no destination and no store: alerts are only logged.
    pub fn disabled() -> Self {
        Self::build(AlertConfig::default(), None)
    }

    /// An alerter over `store`'s outbox delivering to `config`'s destinations; spawns the
    /// sender on the current tokio runtime (outside one, or without a destination, it
    /// only logs). Destinations that are not http(s) URLs are left out (logged, without
    /// the URL).
    pub fn start(config: AlertConfig, store: SharedStore) -> Self {
        let a = Self::build(config, Some(store));
        if a.inner.client.is_some() && !a.inner.targets.is_empty() {
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(sender(Arc::downgrade(&a.inner), a.inner.wake.clone()));
                }
                Err(_) => {
                    tracing::error!(
                        "no tokio runtime for alert delivery; alerts stay in the outbox"
                    )
                }
            }
        }
        a
    }

    fn build(config: AlertConfig, store: Option<SharedStore>) -> Self {
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        let mut targets = Vec::new();
        for d in &config.destinations {
            let n = counts.entry(d.prefix()).or_default();
            *n += 1;
            let ok = reqwest::Url::parse(d.url())
                .map(|u| matches!(u.scheme(), "http" | "https"))
                .unwrap_or(false);
            if ok {
                targets.push((format!("{}#{n}", d.prefix()), d.clone()));
            } else {
                // The URL itself is not logged: a webhook URL is a credential.
                tracing::error!(
                    destination = d.prefix(),
                    "alert destination is not an http(s) URL; left out"
                );
            }
        }
        let client = match build_client(&config) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e.without_url(), "alert HTTP client; alerts are only logged");
                None
            }
        };
        Self {
            inner: Arc::new(Inner {
                config,
                targets,
                store,
                client,
                counters: Counters::default(),
                metrics: OnceLock::new(),
                recent: Mutex::default(),
                wake: Arc::new(Notify::new()),
                delivered: Notify::new(),
                stopped: AtomicBool::new(false),
                states: tokio::sync::Mutex::new(()),
                gate: OnceLock::new(),
                fired: tokio::sync::broadcast::channel(64).0,
            }),
        }
    }

    /// Counts delivered/failed/dropped alerts in `metrics` too (`/metrics`).
    pub fn attach_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.inner.metrics.set(metrics);
    }

    /// Sends only while `leading` holds a token: servers sharing one outbox leave it to
    /// the one leading ([`crate::leader::Leadership::watch`]).
    pub fn follow(&self, leading: tokio::sync::watch::Receiver<Option<i64>>) {
        let _ = self.inner.gate.set(leading);
    }

    /// Whether this server's sender delivers (it leads, or follows no lease).
    fn may_send(&self) -> bool {
        self.inner.gate.get().is_none_or(|g| g.borrow().is_some())
    }

    /// Whether alerts go to at least one destination (else only logged).
    pub fn is_enabled(&self) -> bool {
        !self.inner.targets.is_empty() && self.inner.client.is_some()
    }

    /// The clock's now.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.config.clock.now()
    }

    /// The rows raising `alert` for the condition `key` (e.g.
    /// `rollout_halted/app/stable/1.2.0`) that started at `since`: its state, fired now,
    /// and one outbox row per destination. Empty when the same alert was raised within
    /// the dedup window. The caller commits it (with its decision) and calls
    /// [`Alerter::committed`].
    pub fn fire(&self, key: &str, alert: &Alert, since: DateTime<Utc>) -> AlertWrite {
        let now = self.now();
        if !self.first_in_window(alert, now) {
            self.inner
                .counters
                .deduplicated
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(kind = alert.kind.as_str(), title = %alert.title, "alert repeated within the dedup window; not sent");
            return AlertWrite::default();
        }
        tracing::warn!(kind = alert.kind.as_str(), severity = alert.kind.severity().as_str(), title = %alert.title, "alert");
        let dedup_key = match &alert.event {
            Some(e) => format!("railgun/{key}/{e}"),
            None => format!("railgun/{key}"),
        };
        AlertWrite {
            upsert: vec![AlertStateRow {
                key: key.to_string(),
                kind: alert.kind.as_str().to_string(),
                dedup_key: dedup_key.clone(),
                since_ms: since.timestamp_millis(),
                fired_ms: Some(now.timestamp_millis()),
                alert: serde_json::to_string(alert).unwrap_or_default(),
            }],
            remove: Vec::new(),
            outbox: self.rows(alert, AlertStatus::Firing, &dedup_key, now),
        }
    }

    /// The rows closing the condition `state`: its state removed and, when it had fired,
    /// the resolve for each destination (same `dedup_key`, title and fields).
    pub fn resolve(&self, state: &AlertStateRow) -> AlertWrite {
        let mut w = AlertWrite {
            remove: vec![state.key.clone()],
            ..AlertWrite::default()
        };
        if state.fired_ms.is_some() {
            if let Ok(alert) = serde_json::from_str::<Alert>(&state.alert) {
                tracing::info!(kind = alert.kind.as_str(), title = %alert.title, "alert resolved");
                w.outbox = self.rows(&alert, AlertStatus::Resolved, &state.dedup_key, self.now());
            }
        }
        w
    }

    /// The row that starts watching a condition (`key`, of `kind`) seen true since `since`
    /// without raising anything yet (High Error Rate's 15 minutes).
    pub fn watch(&self, key: &str, kind: AlertKind, since: DateTime<Utc>) -> AlertWrite {
        AlertWrite {
            upsert: vec![AlertStateRow {
                key: key.to_string(),
                kind: kind.as_str().to_string(),
                dedup_key: String::new(),
                since_ms: since.timestamp_millis(),
                fired_ms: None,
                alert: "null".into(),
            }],
            ..AlertWrite::default()
        }
    }

    /// Every alert fired from now on, once its write is committed (a receiver that lags
    /// loses the oldest).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Alert> {
        self.inner.fired.subscribe()
    }

    /// Tells the sender that `write` was committed (counts its rows, wakes the sender) and
    /// the [subscribers](Alerter::subscribe) which alerts it fired.
    pub fn committed(&self, write: &AlertWrite) {
        if self.inner.fired.receiver_count() > 0 {
            for row in write.upsert.iter().filter(|r| r.fired_ms.is_some()) {
                if let Ok(alert) = serde_json::from_str::<Alert>(&row.alert) {
                    let _ = self.inner.fired.send(alert);
                }
            }
        }
        if write.outbox.is_empty() {
            return;
        }
        self.inner
            .counters
            .queued
            .fetch_add(write.outbox.len() as u64, Ordering::Relaxed);
        self.inner.wake.notify_one();
    }

    /// Raises `alert` for `key` unless it is already firing, outside any decision (the
    /// analytics backlog): written to the outbox in a transaction of its own. `true` when
    /// raised.
    pub async fn raise(&self, key: &str, alert: Alert) -> Result<bool, StoreError> {
        let Some(store) = &self.inner.store else {
            tracing::warn!(kind = alert.kind.as_str(), title = %alert.title, "alert (no outbox)");
            return Ok(false);
        };
        let _g = self.inner.states.lock().await;
        let states = store.alert_states().await?;
        if states.iter().any(|s| s.key == key && s.fired_ms.is_some()) {
            return Ok(false);
        }
        let w = self.fire(key, &alert, self.now());
        if w.is_empty() {
            return Ok(false);
        }
        store.write_alerts(w.clone()).await?;
        self.committed(&w);
        Ok(true)
    }

    /// Resolves the condition `key` if it is watched or firing; `true` when it was.
    pub async fn clear(&self, key: &str) -> Result<bool, StoreError> {
        let Some(store) = &self.inner.store else {
            return Ok(false);
        };
        let _g = self.inner.states.lock().await;
        let states = store.alert_states().await?;
        let Some(s) = states.iter().find(|s| s.key == key) else {
            return Ok(false);
        };
        let w = self.resolve(s);
        store.write_alerts(w.clone()).await?;
        self.committed(&w);
        Ok(true)
    }

    /// [`Alerter::raise`] from synchronous code: runs on the current runtime (a failure to
    /// write is logged and counted as dropped).
    pub fn send(&self, key: &str, alert: Alert) {
        let me = self.clone();
        let key = key.to_string();
        self.spawn(async move { me.raise(&key, alert).await.map(|_| ()) });
    }

    /// [`Alerter::clear`] from synchronous code.
    pub fn send_clear(&self, key: &str) {
        let me = self.clone();
        let key = key.to_string();
        self.spawn(async move { me.clear(&key).await.map(|_| ()) });
    }

    fn spawn(&self, f: impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static) {
        let me = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    if let Err(e) = f.await {
                        me.drop_one();
                        tracing::error!(error = %e, "alert not written to the outbox");
                    }
                });
            }
            Err(_) => {
                self.drop_one();
                tracing::error!("no tokio runtime; alert only logged");
            }
        }
    }

    fn drop_one(&self) {
        self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.inner.metrics.get() {
            m.alerts_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> AlertStats {
        let s = &self.inner.counters;
        AlertStats {
            queued: s.queued.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            deduplicated: s.deduplicated.load(Ordering::Relaxed),
            attempts: s.attempts.load(Ordering::Relaxed),
        }
    }

    /// Waits until no outbox row waits for delivery (each delivered or given up). Callers
    /// bound it with a timeout. Without a destination or a store, or while another server
    /// leads (its sender delivers), it returns at once.
    pub async fn idle(&self) {
        let Some(store) = self.inner.store.clone().filter(|_| self.is_enabled()) else {
            return;
        };
        loop {
            if !self.may_send() {
                return;
            }
            let delivered = self.inner.delivered.notified();
            tokio::pin!(delivered);
            delivered.as_mut().enable();
            match store.outbox_pending().await {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox"),
            }
            // A row may wait for a retry: look again after a short while either way.
            let _ = tokio::time::timeout(Duration::from_millis(50), delivered).await;
        }
    }

    /// Waits up to `grace` for the alerts in the outbox (server shutdown), then stops the
    /// sender; `true` when none was left. The rest stays in the outbox for the next start.
    pub async fn drain(&self, grace: Duration) -> bool {
        let done = tokio::time::timeout(grace, self.idle()).await.is_ok();
        if !done {
            tracing::warn!("shutting down with alerts not delivered; they stay in the outbox");
        }
        self.inner.stopped.store(true, Ordering::Release);
        self.inner.wake.notify_one();
        done
    }

    fn rows(
        &self,
        alert: &Alert,
        status: AlertStatus,
        dedup_key: &str,
        at: DateTime<Utc>,
    ) -> Vec<OutboxRow> {
        let id = uuid::Uuid::new_v4().to_string();
        self.inner
            .targets
            .iter()
            .map(|(name, d)| OutboxRow {
                id: id.clone(),
                destination: name.clone(),
                kind: alert.kind.as_str().to_string(),
                severity: alert.kind.severity().as_str().to_string(),
                status: status.as_str().to_string(),
                dedup_key: dedup_key.to_string(),
                title: alert.title.clone(),
                body: d.render(alert, &id, status, dedup_key, at).to_string(),
                created_ms: at.timestamp_millis(),
                attempts: 0,
                next_ms: 0,
                delivered_ms: None,
                failed_ms: None,
                error: None,
            })
            .collect()
    }

    /// Records `alert` as raised now unless the same kind+title(+event) was within the
    /// window.
    fn first_in_window(&self, alert: &Alert, now: DateTime<Utc>) -> bool {
        let window = chrono::Duration::from_std(self.inner.config.dedup_window)
            .unwrap_or_else(|_| chrono::Duration::minutes(10));
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

    fn finish(&self, outcome: &Delivery) {
        let c = &self.inner.counters;
        let m = self.inner.metrics.get();
        match outcome {
            Delivery::Delivered(_) => {
                c.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = m {
                    m.alerts_delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            Delivery::Failed { .. } => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = m {
                    m.alerts_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Delivery::Retry { .. } => {}
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

fn wall_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The sender: claims due rows, posts them, records the outcome; sleeps until woken or
/// the poll interval passed. Ends when the last [`Alerter`] is dropped or after a drain.
async fn sender(weak: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(inner) = weak.upgrade() else { return };
        if inner.stopped.load(Ordering::Acquire) {
            return;
        }
        let a = Alerter { inner };
        let poll = a.inner.config.poll;
        let (Some(store), Some(client)) = (a.inner.store.clone(), a.inner.client.clone()) else {
            return;
        };
        if !a.may_send() {
            // Another server leads and sends; look again at the next poll.
            drop(a);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        let now = wall_ms();
        let lease = now + a.inner.config.lease.as_millis() as i64;
        let rows = match store.claim_alerts(now, lease, 16).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "alert outbox unavailable");
                Vec::new()
            }
        };
        if rows.is_empty() {
            drop(a);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        let jobs = rows.into_iter().map(|row| {
            let (a, client, store) = (a.clone(), client.clone(), store.clone());
            async move {
                let outcome = attempt(&a, &client, &row).await;
                a.finish(&outcome);
                if let Err(e) = store
                    .finish_alert(row.id.clone(), row.destination.clone(), outcome)
                    .await
                {
                    tracing::warn!(alert_id = %row.id, error = %e, "alert outcome not recorded; retried after the lease");
                }
            }
        });
        futures_util::future::join_all(jobs).await;
        a.inner.delivered.notify_waiters();
    }
}

/// One attempt on one row; what to record.
async fn attempt(a: &Alerter, client: &reqwest::Client, row: &OutboxRow) -> Delivery {
    let config = &a.inner.config;
    let Some((_, dest)) = a.inner.targets.iter().find(|(n, _)| *n == row.destination) else {
        return Delivery::Failed {
            at_ms: wall_ms(),
            error: format!("destination {} is no longer configured", row.destination),
        };
    };
    a.inner.counters.attempts.fetch_add(1, Ordering::Relaxed);
    let err = match post(client, dest.url(), &row.id, &row.body).await {
        Ok(()) => {
            tracing::info!(alert_id = %row.id, destination = %row.destination, attempt = row.attempts, "alert delivered");
            return Delivery::Delivered(wall_ms());
        }
        Err(e) => e,
    };
    let retry_after = match &err {
        AlertError::Refused { .. } => {
            tracing::error!(alert_id = %row.id, destination = %row.destination, error = %err, "alert not delivered");
            return Delivery::Failed {
                at_ms: wall_ms(),
                error: err.to_string(),
            };
        }
        AlertError::Retryable { retry_after, .. } => *retry_after,
        AlertError::Transport(_) => None,
    };
    let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
    if attempts >= config.max_attempts {
        tracing::error!(alert_id = %row.id, destination = %row.destination, attempts, error = %err, "alert not delivered; attempts spent");
        return Delivery::Failed {
            at_ms: wall_ms(),
            error: err.to_string(),
        };
    }
    let delay = retry_after.unwrap_or_else(|| backoff(config, attempts, jitter()));
    tracing::warn!(alert_id = %row.id, destination = %row.destination, attempt = attempts, error = %err, delay_ms = delay.as_millis() as u64, "alert delivery failed; retrying");
    Delivery::Retry {
        next_ms: wall_ms() + delay.as_millis() as i64,
        error: err.to_string(),
    }
}

async fn post(client: &reqwest::Client, url: &str, id: &str, body: &str) -> Result<(), AlertError> {
    let res = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ALERT_ID_HEADER, id)
        .body(body.to_string())
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

    fn alert(kind: AlertKind, event: Option<&str>) -> Alert {
        Alert {
            kind,
            title: "app 0.2.0 (stable) halted at 10 %".into(),
            text: "crash rate lower bound 3.1 % > 1 %".into(),
            fields: vec![
                ("app".into(), "app".into()),
                ("channel".into(), "stable".into()),
                ("installs".into(), "1000".into()),
            ],
            event: event.map(str::to_string),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let c = AlertConfig {
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            ..AlertConfig::default()
        };
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
    fn slack_payload_fires_and_resolves() {
        let a = alert(AlertKind::RolloutHalted, None);
        let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("at");
        let v = a.slack_payload("id-1", AlertStatus::Firing, "k", at);
        assert_eq!(v["text"], "[CRITICAL] app 0.2.0 (stable) halted at 10 %");
        assert_eq!(v["attachments"][0]["color"], "danger");
        assert_eq!(v["attachments"][0]["fields"][2]["title"], "installs");
        assert_eq!(v["attachments"][0]["fields"][2]["short"], true);
        assert_eq!(v["railgun"]["kind"], "rollout_halted");
        assert_eq!(v["railgun"]["severity"], "critical");
        assert_eq!(v["railgun"]["status"], "firing");
        assert_eq!(v["railgun"]["at"], "2026-01-01T00:00:00Z");
        let r = a.slack_payload("id-2", AlertStatus::Resolved, "k", at);
        assert_eq!(r["text"], "[RESOLVED] app 0.2.0 (stable) halted at 10 %");
        assert_eq!(r["attachments"][0]["color"], "good");
        assert_eq!(r["railgun"]["status"], "resolved");
    }

    #[test]
    fn pagerduty_payload_maps_severity_and_keeps_the_dedup_key() {
        let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("at");
        for (kind, sev) in [
            (AlertKind::RolloutHalted, "critical"),
            (AlertKind::HighErrorRate, "warning"),
            (AlertKind::AnalyticsBacklog, "warning"),
            (AlertKind::LowAdoption, "info"),
        ] {
            let v = alert(kind, None).pagerduty_payload("rk", AlertStatus::Firing, "dk", at);
            assert_eq!(v["event_action"], "trigger");
            assert_eq!(v["routing_key"], "rk");
            assert_eq!(v["dedup_key"], "dk");
            assert_eq!(v["payload"]["severity"], sev);
            assert_eq!(v["payload"]["source"], "railgun");
            assert_eq!(v["payload"]["component"], "app");
            assert_eq!(v["payload"]["custom_details"]["installs"], "1000");
        }
        let r = alert(AlertKind::LowAdoption, None).pagerduty_payload(
            "rk",
            AlertStatus::Resolved,
            "dk",
            at,
        );
        assert_eq!(
            r,
            json!({"routing_key": "rk", "event_action": "resolve", "dedup_key": "dk"})
        );
    }

    #[test]
    fn destinations_are_named_and_never_show_their_secrets() {
        let d = Destination::PagerDuty {
            url: "https://x.example/enqueue".into(),
            routing_key: "secret-key".into(),
        };
        assert_eq!(format!("{d:?}"), "PagerDuty");
        let a = Alerter::build(
            AlertConfig::new(vec![
                Destination::Slack {
                    url: "https://hooks.example.com/a".into(),
                },
                Destination::Slack {
                    url: "not a url".into(),
                },
                d,
                Destination::Json {
                    url: "ftp://example.com/hook".into(),
                },
            ]),
            None,
        );
        let names: Vec<&str> = a.inner.targets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["slack#1", "pagerduty#1"]);
        assert!(!format!("{a:?}").contains("secret-key"));
    }

    #[test]
    fn alerts_about_distinct_decisions_are_never_merged() {
        let a = Alerter::build(
            AlertConfig::new(vec![Destination::Slack {
                url: "http://127.0.0.1:9/".into(),
            }]),
            None,
        );
        let now = a.now();
        // halt → resume → halt at the same stage: two decisions, two alerts.
        let one = a.fire("k", &alert(AlertKind::RolloutHalted, Some("d-1")), now);
        let two = a.fire("k", &alert(AlertKind::RolloutHalted, Some("d-2")), now);
        assert_eq!((one.outbox.len(), two.outbox.len()), (1, 1));
        assert_ne!(one.upsert[0].dedup_key, two.upsert[0].dedup_key);
        assert_eq!(a.stats().deduplicated, 0);
        // The same decision raised twice is one alert; an alert without an event repeats
        // within the window only once.
        assert!(a
            .fire("k", &alert(AlertKind::RolloutHalted, Some("d-2")), now)
            .is_empty());
        assert_eq!(
            a.fire("b", &alert(AlertKind::LowAdoption, None), now)
                .outbox
                .len(),
            1
        );
        assert!(a
            .fire("b", &alert(AlertKind::LowAdoption, None), now)
            .is_empty());
        assert_eq!(a.stats().deduplicated, 2);
    }

    #[test]
    fn resolve_repeats_the_fired_alert_under_its_dedup_key() {
        let a = Alerter::build(
            AlertConfig::new(vec![
                Destination::Slack {
                    url: "http://127.0.0.1:9/s".into(),
                },
                Destination::PagerDuty {
                    url: "http://127.0.0.1:9/p".into(),
                    routing_key: "rk".into(),
                },
            ]),
            None,
        );
        let fired = a.fire("k", &alert(AlertKind::HighErrorRate, None), a.now());
        let r = a.resolve(&fired.upsert[0]);
        assert_eq!(r.remove, ["k"]);
        assert_eq!(r.outbox.len(), 2);
        assert!(r.outbox.iter().all(|o| o.status == "resolved"));
        assert!(r.outbox.iter().all(|o| o.dedup_key == "railgun/k"));
        // A watched condition that never fired resolves silently.
        let w = a.watch("w", AlertKind::HighErrorRate, a.now());
        assert!(a.resolve(&w.upsert[0]).outbox.is_empty());
    }
}
