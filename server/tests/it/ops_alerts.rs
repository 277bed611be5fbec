//! The specification's four alerts end to end: raised by the real server (its rollout
//! engine on the manual clock, its ingest queue), written to the durable outbox in the
//! server's database, and delivered to real HTTP receivers on loopback in the Slack and the
//! PagerDuty (Events API v2) shapes, firing and resolving. Also: retries until
//! acknowledged (once, one id), `Retry-After`, refusals, and the outbox surviving a SIGKILL
//! of a real `railgun serve` child.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use railgun_core::clock::Clock;
use railgun_core::update::RolloutPolicy;
use railgun_server::alerts::{
    Alert, AlertConfig, AlertKind, Alerter, Destination, ALERT_ID_HEADER,
};
use railgun_server::analytics::queue::{IngestQueue, BACKLOG_ALERT_EVENTS};
use railgun_server::metrics::Metrics;
use railgun_server::serve::ServerConfig;
use railgun_server::store::{self, StoredEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::db::Kind;
use crate::support::{
    health_report, utf8, within, ChildServer, ReleaseSpec, ScriptedServer, TestServer, ADMIN,
};

const APP: &str = "demo";
const CHANNEL: &str = "stable";

fn t0() -> DateTime<Utc> {
    "2026-11-01T09:00:00Z".parse().expect("t")
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Hit {
    /// `slack` or `pd` (the path the destination posts to).
    path: String,
    id: String,
    body: Value,
    status: u16,
    at: Instant,
}

/// A status to answer, with an optional `Retry-After`.
type Answer = (u16, Option<&'static str>);

/// What the receiver answers: scripted answers first, then `fallback`.
#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    fallback: Arc<AtomicU16>,
    hits: mpsc::UnboundedSender<Hit>,
}

async fn hook(
    State(s): State<Script>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (status, retry_after) = s
        .answers
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or((s.fallback.load(Ordering::SeqCst), None));
    let id = headers
        .get(ALERT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = serde_json::from_str(&body).expect("alert body is JSON");
    let _ = s.hits.send(Hit {
        path,
        id,
        body,
        status,
        at: Instant::now(),
    });
    let status = StatusCode::from_u16(status).expect("status");
    match retry_after {
        Some(v) => (status, [("retry-after", v)]).into_response(),
        None => status.into_response(),
    }
}

/// A receiver on loopback (`/slack`, `/pd`, `/json`): answers `answers` in order, then
/// the fallback status (200 until changed).
struct Receiver {
    server: ScriptedServer,
    fallback: Arc<AtomicU16>,
    rx: mpsc::UnboundedReceiver<Hit>,
}

impl Receiver {
    async fn start(answers: &[Answer]) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let fallback = Arc::new(AtomicU16::new(200));
        let script = Script {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            fallback: fallback.clone(),
            hits: tx,
        };
        let router = Router::new()
            .route("/{path}", post(hook))
            .with_state(script);
        Self {
            server: ScriptedServer::spawn(router).await,
            fallback,
            rx,
        }
    }

    fn slack(&self) -> Destination {
        Destination::Slack {
            url: format!("{}/slack", self.server.url()),
        }
    }

    fn pagerduty(&self) -> Destination {
        Destination::PagerDuty {
            url: format!("{}/pd", self.server.url()),
            routing_key: "routing-key-1".into(),
        }
    }

    /// The next hit, within the deadline.
    async fn next(&mut self) -> Hit {
        within("alert delivery", self.rx.recv())
            .await
            .expect("receiver open")
    }

    /// The next `n` hits.
    async fn take(&mut self, n: usize) -> Vec<Hit> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.next().await);
        }
        v
    }

    /// Hits already received.
    fn drain(&mut self) -> Vec<Hit> {
        let mut v = Vec::new();
        while let Ok(h) = self.rx.try_recv() {
            v.push(h);
        }
        v
    }
}

fn fast(destinations: Vec<Destination>) -> AlertConfig {
    AlertConfig {
        initial_backoff: StdDuration::from_millis(2),
        max_backoff: StdDuration::from_millis(10),
        request_timeout: StdDuration::from_secs(5),
        poll: StdDuration::from_millis(20),
        ..AlertConfig::new(destinations)
    }
}

/// The server's config delivering to `destinations` with a short backoff.
fn deliver_to(destinations: Vec<Destination>) -> impl FnOnce(&mut ServerConfig) {
    move |c| c.alerts = fast(destinations)
}

fn alert(kind: AlertKind, title: &str) -> Alert {
    Alert {
        kind,
        title: title.into(),
        text: "error rate lower bound 6.2 % > 5 %".into(),
        fields: vec![("installs".into(), "1000".into())],
        event: None,
    }
}

async fn sqlite_alerter(config: AlertConfig) -> (Alerter, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store::open(&format!("sqlite:{}", utf8(&dir.path().join("a.db"))))
        .await
        .expect("store");
    (Alerter::start(config, store), dir)
}

async fn idle(a: &Alerter) {
    within("alert outbox drained", a.idle()).await;
}

/// Splits hits by receiver path, in arrival order.
fn by_path<'a>(hits: &'a [Hit], path: &str) -> Vec<&'a Hit> {
    hits.iter().filter(|h| h.path == path).collect()
}

fn machine(i: usize) -> String {
    hex::encode(Sha256::digest(format!("machine-{i}")))
}

/// Publishes and starts `version` at `pct` % (hosted elsewhere: nothing to upload).
async fn start_rollout(s: &TestServer, version: &str, pct: f64, policy: Option<RolloutPolicy>) {
    let release = s.release(&ReleaseSpec {
        app: APP,
        channel: CHANNEL,
        version,
        policy,
        released_at: t0(),
        size: 5,
        base_url: Some("https://cdn.example.com/demo"),
    });
    let body = json!({"manifest": release.envelope, "start": true, "percentage": pct});
    let r = s.post("/admin/releases", Some(ADMIN), &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

/// `n` installs of `version` report now; the first `errors` saw an error.
async fn reports(s: &TestServer, from: usize, n: usize, version: &str, errors: usize) {
    let now = s.clock.now();
    let all = (0..n)
        .map(|i| {
            health_report(
                APP,
                CHANNEL,
                version,
                machine(from + i),
                (u32::from(i < errors), 0),
                now,
            )
        })
        .collect();
    s.report_all(all).await;
}

fn actions(decisions: &[Value]) -> Vec<String> {
    decisions
        .iter()
        .map(|d| d["action"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Asserts a Slack-shaped body: `[TAG] title`, colour, and the machine part.
fn assert_slack(h: &Hit, kind: &str, severity: &str, status: &str) {
    let b = &h.body;
    assert_eq!(h.path, "slack");
    assert_eq!(b["railgun"]["kind"], kind, "{b}");
    assert_eq!(b["railgun"]["severity"], severity, "{b}");
    assert_eq!(b["railgun"]["status"], status, "{b}");
    assert_eq!(
        b["railgun"]["id"],
        h.id.as_str(),
        "the id header is the body's id"
    );
    let tag = if status == "resolved" {
        "[RESOLVED]".to_string()
    } else {
        format!("[{}]", severity.to_uppercase())
    };
    assert!(
        b["text"].as_str().unwrap_or_default().starts_with(&tag),
        "{b}"
    );
    let color = match (status, severity) {
        ("resolved", _) => "good",
        (_, "critical") => "danger",
        (_, "warning") => "warning",
        _ => "#439FE0",
    };
    assert_eq!(b["attachments"][0]["color"], color, "{b}");
}

/// Asserts a PagerDuty Events API v2 body; returns its `dedup_key`.
fn assert_pagerduty(h: &Hit, severity: &str, action: &str) -> String {
    let b = &h.body;
    assert_eq!(h.path, "pd");
    assert_eq!(b["routing_key"], "routing-key-1", "{b}");
    assert_eq!(b["event_action"], action, "{b}");
    if action == "trigger" {
        assert_eq!(b["payload"]["severity"], severity, "{b}");
        assert_eq!(b["payload"]["source"], "railgun", "{b}");
        assert!(b["payload"]["summary"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));
        assert!(b["payload"]["timestamp"].as_str().is_some(), "{b}");
    } else {
        assert!(
            b.get("payload").is_none(),
            "a resolve carries no payload: {b}"
        );
    }
    b["dedup_key"].as_str().expect("dedup_key").to_string()
}

// ---- delivery -------------------------------------------------------------------------

#[tokio::test]
async fn failing_receiver_gets_the_alert_exactly_once_under_one_id() {
    let mut recv = Receiver::start(&[(500, None), (502, None)]).await;
    let (a, _dir) = sqlite_alerter(fast(vec![recv.slack()])).await;
    assert!(a
        .raise("k", alert(AlertKind::HighErrorRate, "t"))
        .await
        .expect("raised"));
    idle(&a).await;
    let hits = recv.drain();
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        [500, 502, 200]
    );
    assert!(hits.iter().all(|h| h.id == hits[0].id && !h.id.is_empty()));
    let s = a.stats();
    assert_eq!((s.queued, s.delivered, s.failed, s.attempts), (1, 1, 0, 3));
    // Raising the same condition again while it fires sends nothing.
    assert!(!a
        .raise("k", alert(AlertKind::HighErrorRate, "t"))
        .await
        .expect("raise"));
    recv.server.stop().await.expect("stop");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mut recv = Receiver::start(&[(429, Some("1"))]).await;
    let (a, _dir) = sqlite_alerter(fast(vec![recv.slack()])).await;
    a.raise("k", alert(AlertKind::AnalyticsBacklog, "t"))
        .await
        .expect("raise");
    let hits = recv.take(2).await;
    assert_eq!((hits[0].status, hits[1].status), (429, 200));
    let gap = hits[1].at - hits[0].at;
    // The backoff alone would retry within 10 ms; Retry-After asked for a second.
    assert!(gap >= StdDuration::from_millis(900), "{gap:?}");
    recv.server.stop().await.expect("stop");
}

#[tokio::test]
async fn refused_alert_is_not_retried_and_spent_attempts_give_up() {
    let mut recv = Receiver::start(&[(400, None)]).await;
    let (a, _dir) = sqlite_alerter(fast(vec![recv.slack()])).await;
    a.raise("k1", alert(AlertKind::LowAdoption, "refused"))
        .await
        .expect("raise");
    idle(&a).await;
    assert_eq!(recv.drain().len(), 1, "a 400 is not retried");
    assert_eq!(a.stats().failed, 1);

    recv.fallback.store(503, Ordering::SeqCst);
    let (b, _dir2) = sqlite_alerter(AlertConfig {
        max_attempts: 3,
        ..fast(vec![recv.slack()])
    })
    .await;
    b.raise("k2", alert(AlertKind::LowAdoption, "down"))
        .await
        .expect("raise");
    idle(&b).await;
    assert_eq!(recv.drain().len(), 3, "three attempts, then given up");
    assert_eq!(b.stats().failed, 1);
    recv.server.stop().await.expect("stop");
}

// ---- the four alerts, end to end ---------------------------------------------------------

/// Rollout Halted (critical): on each halt (admin here; the engine's halt is the same
/// path), in the halt's transaction; resolved by the resume. Slack and PagerDuty both get
/// the trigger and the resolve under one dedup key; a second halt opens a second incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_halted_fires_critical_and_resolves_on_resume_in_slack_and_pagerduty() {
    let mut recv = Receiver::start(&[(500, None)]).await;
    let dests = vec![recv.slack(), recv.pagerduty()];
    let mut s = TestServer::with(Kind::Sqlite, "", t0(), deliver_to(dests))
        .await
        .expect("sqlite");
    start_rollout(&s, "1.1.0", 10.0, None).await;
    s.admin(
        "/admin/rollouts/demo/stable/halt",
        json!({"reason": "crashes in the field"}),
    )
    .await;
    // Slack failed once (500) and was retried: three hits, two 200s.
    let hits = recv.take(3).await;
    let ok: Vec<Hit> = hits.iter().filter(|h| h.status == 200).cloned().collect();
    let slack = by_path(&ok, "slack");
    let pd = by_path(&ok, "pd");
    assert_eq!((slack.len(), pd.len()), (1, 1), "{hits:?}");
    assert_slack(slack[0], "rollout_halted", "critical", "firing");
    assert!(slack[0].body["text"]
        .as_str()
        .unwrap_or_default()
        .contains("demo 1.1.0 (stable) halted at 10 %"));
    assert_eq!(
        slack[0].body["railgun"]["at"], "2026-11-01T09:00:00Z",
        "the injected clock"
    );
    let key = assert_pagerduty(pd[0], "critical", "trigger");
    assert_eq!(
        slack[0].id, pd[0].id,
        "one alert, one id for every destination"
    );

    s.clock.advance(Duration::minutes(5));
    s.admin("/admin/rollouts/demo/stable/resume", json!({}))
        .await;
    let hits = recv.take(2).await;
    assert_slack(
        by_path(&hits, "slack")[0],
        "rollout_halted",
        "critical",
        "resolved",
    );
    assert_eq!(
        assert_pagerduty(by_path(&hits, "pd")[0], "critical", "resolve"),
        key
    );

    // Halted again at the same stage: a new decision, a new incident.
    s.admin("/admin/rollouts/demo/stable/halt", json!({})).await;
    let hits = recv.take(2).await;
    let again = assert_pagerduty(by_path(&hits, "pd")[0], "critical", "trigger");
    assert_ne!(again, key);
    within("outbox drained", s.state().alerts.idle()).await;
    s.stop().await;
    assert!(recv.drain().is_empty(), "each delivered once");
    recv.server.stop().await.expect("stop");
}

/// High Error Rate (warning): above 5 % with at least minInstalls installs, for 15 minutes
/// continuously on the injected clock. 14 minutes do not fire; a dip ends the excursion;
/// 15 minutes fire; back under the limit resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_error_rate_fires_after_15_minutes_not_14_and_resolves_below_the_limit() {
    let mut recv = Receiver::start(&[]).await;
    let dests = vec![recv.slack(), recv.pagerduty()];
    let mut s = TestServer::with(Kind::Sqlite, "", t0(), deliver_to(dests))
        .await
        .expect("sqlite");
    // Halt only on a conclusive 20 %: a 6 % error rate warns, never halts.
    let policy = RolloutPolicy {
        max_error_rate: 0.05,
        max_crash_rate: 0.2,
        min_installs: 50,
        ..RolloutPolicy::default()
    };
    start_rollout(&s, "1.1.0", 10.0, Some(policy)).await;

    // 2 errors in 3 installs is 67 %, but 3 < minInstalls: no excursion at all.
    reports(&s, 0, 3, "1.1.0", 2).await;
    assert!(s.evaluate().await.is_empty());
    s.clock.advance(Duration::minutes(30));
    assert!(s.evaluate().await.is_empty(), "the minimum-installs guard");

    // 6 errors in 100 installs: 6 % > 5 %. The excursion starts now.
    reports(&s, 3, 97, "1.1.0", 4).await;
    assert!(s.evaluate().await.is_empty());
    s.clock.advance(Duration::minutes(14));
    assert!(s.evaluate().await.is_empty(), "14 minutes do not fire");
    // A dip: 100 more clean installs (3 %) end the excursion.
    reports(&s, 100, 100, "1.1.0", 0).await;
    assert!(s.evaluate().await.is_empty());
    // Up again: 9 more errors among 20 new installs (15 of 220: 6.8 %); a new excursion.
    reports(&s, 200, 20, "1.1.0", 9).await;
    assert!(s.evaluate().await.is_empty());
    s.clock.advance(Duration::minutes(14));
    assert!(
        s.evaluate().await.is_empty(),
        "14 minutes of the new excursion: the old one ended with the dip"
    );
    s.clock.advance(Duration::minutes(1));
    let d = s.evaluate().await;
    assert_eq!(actions(&d), ["high_error_rate"], "{d:?}");
    let hits = recv.take(2).await;
    let slack = by_path(&hits, "slack")[0];
    assert_slack(slack, "high_error_rate", "warning", "firing");
    assert!(
        slack.body["attachments"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("for 15 min"),
        "{}",
        slack.body
    );
    let key = assert_pagerduty(by_path(&hits, "pd")[0], "warning", "trigger");
    // Still high: not repeated.
    s.clock.advance(Duration::minutes(30));
    assert!(s.evaluate().await.is_empty());

    // Clean installs bring it under 5 %: resolved.
    reports(&s, 300, 200, "1.1.0", 0).await;
    assert!(s.evaluate().await.is_empty());
    let hits = recv.take(2).await;
    assert_slack(
        by_path(&hits, "slack")[0],
        "high_error_rate",
        "warning",
        "resolved",
    );
    assert_eq!(
        assert_pagerduty(by_path(&hits, "pd")[0], "warning", "resolve"),
        key
    );
    assert_eq!(s.status(APP, CHANNEL, "1.1.0").await["status"], "active");
    within("outbox drained", s.state().alerts.idle()).await;
    s.stop().await;
    assert!(recv.drain().is_empty(), "each delivered once");
    recv.server.stop().await.expect("stop");
}

/// Low Adoption (info): 48 h after the start, below 10 % of the expected installs (the
/// channel's reporting installs × the percentage); resolves once adoption caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_adoption_fires_as_info_after_48h_and_resolves_when_adoption_catches_up() {
    let mut recv = Receiver::start(&[]).await;
    let dests = vec![recv.slack(), recv.pagerduty()];
    let mut s = TestServer::with(Kind::Sqlite, "", t0(), deliver_to(dests))
        .await
        .expect("sqlite");
    let lenient = RolloutPolicy {
        max_error_rate: 0.2,
        max_crash_rate: 0.2,
        min_installs: 20,
        // No stage advance within the test: only adoption changes.
        stage_hours: 1000.0,
        ..RolloutPolicy::default()
    };
    start_rollout(&s, "1.0.0", 100.0, Some(lenient.clone())).await;
    reports(&s, 1000, 1000, "1.0.0", 0).await;
    start_rollout(&s, "1.1.0", 10.0, Some(lenient)).await;
    // 5 installs of the expected 10 % × 1 005.
    reports(&s, 0, 5, "1.1.0", 0).await;
    s.clock.advance(Duration::hours(47));
    assert!(s.evaluate().await.is_empty(), "not before 48 h");
    s.clock.advance(Duration::hours(1));
    let d = s.evaluate().await;
    assert_eq!(actions(&d), ["low_adoption"], "{d:?}");
    let hits = recv.take(2).await;
    assert_slack(by_path(&hits, "slack")[0], "low_adoption", "info", "firing");
    let key = assert_pagerduty(by_path(&hits, "pd")[0], "info", "trigger");
    assert!(s.evaluate().await.is_empty(), "raised once");

    // 95 more installs: 100 ≥ 10 % of 100.5 expected.
    reports(&s, 5, 95, "1.1.0", 0).await;
    assert!(s.evaluate().await.is_empty());
    let hits = recv.take(2).await;
    assert_slack(
        by_path(&hits, "slack")[0],
        "low_adoption",
        "info",
        "resolved",
    );
    assert_eq!(
        assert_pagerduty(by_path(&hits, "pd")[0], "info", "resolve"),
        key
    );
    within("outbox drained", s.state().alerts.idle()).await;
    s.stop().await;
    assert!(recv.drain().is_empty());
    recv.server.stop().await.expect("stop");
}

fn event(i: usize) -> StoredEvent {
    StoredEvent {
        id: uuid::Uuid::new_v4().to_string(),
        name: "app_started".into(),
        category: "lifecycle".into(),
        user_id: format!("{i:064x}"),
        session_id: uuid::Uuid::new_v4().to_string(),
        ts_ms: 1_767_225_600_000,
        day: 20_454,
        app_version: "0.2.0".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        channel: "stable".into(),
        properties: None,
        duration_ms: None,
        sequence: i as i64,
        sample_rate: 1.0,
        received_ms: 1_767_225_600_000,
    }
}

/// Analytics Backlog (warning): the real ingest queue over 10 000 events raises it once,
/// and resolves it when the writer drained it (to half the threshold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_backlog_over_10000_fires_once_and_resolves_when_drained() {
    let mut recv = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store::open(&format!("sqlite:{}", utf8(&dir.path().join("q.db"))))
        .await
        .expect("store");
    let alerter = Alerter::start(fast(vec![recv.slack(), recv.pagerduty()]), store.clone());
    let queue = IngestQueue::start(store, Arc::new(Metrics::default()), 20_000);
    queue.alert_backlog(alerter.clone(), BACKLOG_ALERT_EVENTS);
    queue
        .submit((0..10_001).map(event).collect())
        .await
        .expect("stored");
    let hits = recv.take(4).await;
    let slack = by_path(&hits, "slack");
    assert_slack(slack[0], "analytics_backlog", "warning", "firing");
    assert_slack(slack[1], "analytics_backlog", "warning", "resolved");
    let pd = by_path(&hits, "pd");
    let key = assert_pagerduty(pd[0], "warning", "trigger");
    assert_eq!(assert_pagerduty(pd[1], "warning", "resolve"), key);
    // Small batches stay under the threshold: nothing more.
    queue
        .submit((20_000..20_100).map(event).collect())
        .await
        .expect("stored");
    within("outbox drained", alerter.idle()).await;
    assert!(recv.drain().is_empty());
    queue.close().await;
    recv.server.stop().await.expect("stop");
}

/// One client's batch: one event of `user`, and `queued` events left in its queue.
fn client_batch(user: &str, queued: u64) -> serde_json::Value {
    json!({"events": [{"id": uuid::Uuid::now_v7(), "name": "screen_view",
        "category": "navigation", "userId": user, "sessionId": "s-1",
        "timestamp": Utc::now(), "appVersion": "0.2.0", "platform": "linux",
        "arch": "x64", "channel": "stable", "sequence": 1}],
        "sentAt": Utc::now(), "queued": queued})
}

/// Analytics Backlog also counts the fleet: the sum of the `queued` each client reported
/// with its latest batch over 10 000 fires it (the server's own queue being empty), through
/// a real server to a real receiver; it resolves once the sum fell to half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_backlog_counts_the_clients_queued_events() {
    let mut recv = Receiver::start(&[]).await;
    let s = TestServer::with(
        Kind::Sqlite,
        "",
        Utc::now(),
        deliver_to(vec![recv.slack(), recv.pagerduty()]),
    )
    .await
    .expect("sqlite");
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let post = |body: serde_json::Value| {
        let s = &s;
        async move {
            let r = s.post("/analytics/events", None, &body).await;
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.expect("json");
            assert_eq!(v["accepted"], 1, "{v}");
        }
    };
    // 6 000 + 4 000 = 10 000: not over the threshold.
    post(client_batch(&a, 6_000)).await;
    post(client_batch(&b, 4_000)).await;
    // The same client again replaces its figure (not added): still 10 000.
    post(client_batch(&b, 4_000)).await;
    within("outbox drained", s.state().alerts.idle()).await;
    assert!(recv.drain().is_empty(), "10 000 is not over 10 000");
    // One more queued event on b: 10 001 fires.
    post(client_batch(&b, 4_001)).await;
    let hits = recv.take(2).await;
    assert_slack(
        by_path(&hits, "slack")[0],
        "analytics_backlog",
        "warning",
        "firing",
    );
    let key = assert_pagerduty(by_path(&hits, "pd")[0], "warning", "trigger");
    // a drained its queue: 4 001 ≤ 5 000 resolves.
    post(client_batch(&a, 0)).await;
    let hits = recv.take(2).await;
    assert_slack(
        by_path(&hits, "slack")[0],
        "analytics_backlog",
        "warning",
        "resolved",
    );
    assert_eq!(
        assert_pagerduty(by_path(&hits, "pd")[0], "warning", "resolve"),
        key
    );
    // A hostile figure is refused, nothing counted.
    let r = s
        .post("/analytics/events", None, &client_batch(&a, 10_000_001))
        .await;
    assert_eq!(r.status(), 400);
    within("outbox drained", s.state().alerts.idle()).await;
    assert!(recv.drain().is_empty());
    recv.server.stop().await.expect("stop");
}

/// What a `railgun serve` child needs to publish and halt a rollout: the keys and a signed
/// release, made by an in-process server that is stopped before the child serves its files.
struct ChildSetup {
    setup: TestServer,
    release: crate::support::SignedRelease,
    http: reqwest::Client,
}

impl ChildSetup {
    async fn new() -> Self {
        let mut setup = TestServer::start(Utc::now()).await;
        let release = setup.release(&ReleaseSpec {
            app: APP,
            channel: CHANNEL,
            version: "1.1.0",
            policy: None,
            released_at: Utc::now(),
            size: 5,
            base_url: Some("https://cdn.example.com/demo"),
        });
        setup.stop().await;
        Self {
            setup,
            release,
            http: reqwest::Client::new(),
        }
    }

    /// `railgun serve` over the setup's files with `args` and `env` added.
    fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> ChildServer {
        let dir = self.setup.dir.path();
        let pubkey = dir.join("release.pub");
        let rollout_key = dir.join("rollout.key");
        let mut all: Vec<&std::ffi::OsStr> =
            vec!["--release-public-key".as_ref(), pubkey.as_os_str()];
        all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        let mut vars = vec![
            ("RAILGUN_ROLLOUT_KEY_FILE", utf8(&rollout_key)),
            ("RAILGUN_ADMIN_TOKEN", ADMIN),
            ("RAILGUN_READ_TOKEN", "read"),
        ];
        vars.extend_from_slice(env);
        ChildServer::serve(&dir.join("updates"), &dir.join("data"), &all, &vars)
    }

    async fn admin(&self, url: String, body: Value) {
        let rq = self.http.post(url).bearer_auth(ADMIN).json(&body);
        let r = within("admin", rq.send()).await.expect("admin");
        assert!(r.status().is_success(), "{}", r.status());
    }

    /// Publishes and starts the release on `child`, then halts it.
    async fn start_and_halt(&self, child: &ChildServer) {
        self.admin(
            format!("{}/admin/releases", child.url),
            json!({"manifest": self.release.envelope, "start": true}),
        )
        .await;
        self.admin(
            format!("{}/admin/rollouts/demo/stable/halt", child.url),
            json!({}),
        )
        .await;
    }
}

/// `railgun serve`'s flags: every destination at once (`--alert-webhook`,
/// `--pagerduty-routing-key` with `--pagerduty-url`, `--alert-json-webhook`), each in its
/// shape, one alert id for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_flags_deliver_to_slack_pagerduty_and_json_at_once() {
    let mut recv = Receiver::start(&[]).await;
    let c = ChildSetup::new().await;
    let base = recv.server.url();
    let (slack, pd, js) = (
        format!("{base}/slack"),
        format!("{base}/pd"),
        format!("{base}/json"),
    );
    let child = c.spawn(
        &[
            "--alert-webhook",
            &slack,
            "--pagerduty-routing-key",
            "routing-key-1",
            "--pagerduty-url",
            &pd,
            "--alert-json-webhook",
            &js,
        ],
        &[],
    );
    c.start_and_halt(&child).await;
    let hits = recv.take(3).await;
    assert_slack(
        by_path(&hits, "slack")[0],
        "rollout_halted",
        "critical",
        "firing",
    );
    assert_pagerduty(by_path(&hits, "pd")[0], "critical", "trigger");
    let j = &by_path(&hits, "json")[0].body;
    assert_eq!(
        (&j["kind"], &j["name"], &j["severity"], &j["status"]),
        (
            &json!("rollout_halted"),
            &json!("Rollout Halted"),
            &json!("critical"),
            &json!("firing")
        )
    );
    assert!(hits.iter().all(|h| h.id == hits[0].id));
    drop(child);
    recv.server.stop().await.expect("stop");
}

/// Durable outbox: an alert accepted (the halt committed) while the receiver is down
/// survives a SIGKILL of `railgun serve` and is delivered after the restart, once, under
/// the id of its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_accepted_before_a_sigkill_is_delivered_once_after_the_restart() {
    let mut recv = Receiver::start(&[]).await;
    recv.fallback.store(503, Ordering::SeqCst);
    let c = ChildSetup::new().await;
    let hook = format!("{}/slack", recv.server.url());
    let spawn = || c.spawn(&[], &[("RAILGUN_ALERT_WEBHOOK", &hook)]);
    let http = c.http.clone();
    let child = spawn();
    c.start_and_halt(&child).await;
    let first = recv.next().await;
    assert_eq!(first.status, 503);
    drop(child); // SIGKILL, reaped.
    recv.fallback.store(200, Ordering::SeqCst);
    let child = spawn();
    let delivered = loop {
        let h = recv.next().await;
        assert_eq!(h.id, first.id, "the same alert, never a new one");
        if h.status == 200 {
            break h;
        }
    };
    assert_slack(&delivered, "rollout_halted", "critical", "firing");
    // The restarted server recorded the delivery: nothing is posted again.
    let metrics = within("delivered", async {
        loop {
            let m = http
                .get(format!("{}/metrics", child.url))
                .bearer_auth("read")
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            if m.lines().any(|l| l == "railgun_alerts_delivered_total 1") {
                break m;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
    })
    .await;
    assert!(metrics.contains("railgun_alerts_delivered_total 1"));
    drop(child);
    assert!(
        recv.drain().iter().all(|h| h.status != 200),
        "delivered exactly once"
    );
    recv.server.stop().await.expect("stop");
}
