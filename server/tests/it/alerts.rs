//! Alert delivery against real webhook receivers on loopback: retries until acknowledged
//! (once), `Retry-After`, refusals, a receiver that never answers, dedup, the JSON shape,
//! and the analytics backlog alarm.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::Kind;
use crate::support::{ReleaseSpec, ScriptedServer, TestServer, ADMIN};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use railgun_core::clock::ManualClock;
use railgun_server::alerts::{Alert, AlertConfig, AlertKind, Alerter, ALERT_ID_HEADER};
use railgun_server::analytics::queue::{BacklogAlarm, IngestQueue, BACKLOG_ALERT_EVENTS};
use railgun_server::metrics::Metrics;
use railgun_server::store::{self, StoredEvent};
use serde_json::Value;
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug)]
struct Hit {
    id: String,
    body: Value,
    status: u16,
    at: Instant,
}

/// A status to answer, with an optional `Retry-After`.
type Answer = (u16, Option<&'static str>);

#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    hits: mpsc::UnboundedSender<Hit>,
}

async fn hook(State(s): State<Script>, headers: HeaderMap, body: String) -> Response {
    let (status, retry_after) = s
        .answers
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or((200, None));
    let id = headers
        .get(ALERT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = serde_json::from_str(&body).expect("alert body is JSON");
    let _ = s.hits.send(Hit {
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

/// A webhook receiver answering `answers` in order, then 200.
async fn receiver(answers: &[Answer]) -> (ScriptedServer, mpsc::UnboundedReceiver<Hit>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let script = Script {
        answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
        hits: tx,
    };
    let router = Router::new().route("/hook", post(hook)).with_state(script);
    let server = ScriptedServer::spawn(router).await;
    (server, rx)
}

fn fast(url: String) -> AlertConfig {
    let mut c = AlertConfig::new(url);
    c.initial_backoff = Duration::from_millis(1);
    c.max_backoff = Duration::from_millis(5);
    c.request_timeout = Duration::from_secs(5);
    c
}

fn alert(kind: AlertKind, title: &str) -> Alert {
    Alert {
        kind,
        title: title.into(),
        text: "error rate lower bound 6.2 % > 5 %".into(),
        fields: vec![
            ("installs".into(), "1000".into()),
            ("errorRate".into(), "0.08".into()),
        ],
        event: None,
    }
}

async fn idle(a: &Alerter) {
    tokio::time::timeout(Duration::from_secs(20), a.idle())
        .await
        .expect("alerter became idle");
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Hit>) -> Vec<Hit> {
    let mut v = Vec::new();
    while let Ok(h) = rx.try_recv() {
        v.push(h);
    }
    v
}

#[tokio::test]
async fn webhook_failing_at_first_still_gets_the_alert_exactly_once() {
    let (server, mut rx) = receiver(&[(500, None), (503, None)]).await;
    let alerter = Alerter::with_config(fast(format!("{}/hook", server.url())));
    alerter.send(alert(AlertKind::RolloutHalted, "app 0.2.0 (stable) halted"));
    idle(&alerter).await;
    let hits = drain(&mut rx);
    let statuses: Vec<u16> = hits.iter().map(|h| h.status).collect();
    assert_eq!(statuses, vec![500, 503, 200]);
    // One alert: the same idempotency key and body on every attempt, acknowledged once.
    assert!(!hits[0].id.is_empty());
    assert!(hits
        .iter()
        .all(|h| h.id == hits[0].id && h.body == hits[0].body));
    assert_eq!(hits[0].body["railgun"]["id"], hits[0].id.as_str());
    let s = alerter.stats();
    assert_eq!((s.queued, s.delivered, s.failed, s.attempts), (1, 1, 0, 3));
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (server, mut rx) = receiver(&[(429, Some("1"))]).await;
    let alerter = Alerter::with_config(fast(format!("{}/hook", server.url())));
    alerter.send(alert(AlertKind::HighErrorRate, "app 0.2.0 error rate high"));
    idle(&alerter).await;
    let hits = drain(&mut rx);
    assert_eq!(hits.len(), 2);
    // The backoff alone would have retried after ≤ 5 ms.
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(950));
    assert_eq!(alerter.stats().delivered, 1);
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn refused_alert_is_not_retried_and_spent_attempts_give_up() {
    let (server, mut rx) = receiver(&[(400, None)]).await;
    let alerter = Alerter::with_config(fast(format!("{}/hook", server.url())));
    alerter.send(alert(AlertKind::LowAdoption, "refused"));
    idle(&alerter).await;
    assert_eq!(drain(&mut rx).len(), 1);
    assert_eq!(alerter.stats().failed, 1);
    server.stop().await.expect("stop");

    let (server, mut rx) = receiver(&[(500, None); 10]).await;
    let mut c = fast(format!("{}/hook", server.url()));
    c.max_attempts = 3;
    let alerter = Alerter::with_config(c);
    alerter.send(alert(AlertKind::LowAdoption, "always failing"));
    idle(&alerter).await;
    assert_eq!(drain(&mut rx).len(), 3);
    let s = alerter.stats();
    assert_eq!((s.delivered, s.failed, s.attempts), (0, 1, 3));
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn unresponsive_webhook_never_blocks_send() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
            let _ = accepted_tx.send(());
        }
    });
    let mut c = fast(url);
    c.queue_capacity = 2;
    c.max_in_flight = 1;
    c.request_timeout = Duration::from_secs(3600);
    let alerter = Alerter::with_config(c);
    alerter.send(alert(AlertKind::RolloutHalted, "first"));
    // The delivery task is stuck on the first alert…
    tokio::time::timeout(Duration::from_secs(10), accepted.recv())
        .await
        .expect("webhook connected");
    // …and sending goes on returning at once; past the queue's capacity alerts are dropped.
    let started = Instant::now();
    for i in 0..200 {
        alerter.send(alert(AlertKind::RolloutHalted, &format!("alert {i}")));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    let s = alerter.stats();
    assert_eq!(s.queued, 3, "{s:?}");
    assert_eq!(s.dropped, 198, "{s:?}");
    assert_eq!(s.delivered, 0);
    holder.abort();
}

#[tokio::test]
async fn repeated_alert_within_the_window_is_sent_once() {
    let (server, mut rx) = receiver(&[]).await;
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().expect("t"));
    let mut c = fast(format!("{}/hook", server.url()));
    c.clock = Arc::new(clock.clone());
    let alerter = Alerter::with_config(c);
    let flapping = alert(AlertKind::HighErrorRate, "app 0.2.0 error rate high");
    alerter.send(flapping.clone());
    clock.advance(chrono::Duration::minutes(9));
    alerter.send(flapping.clone());
    // A different title is a different alert.
    alerter.send(alert(AlertKind::HighErrorRate, "app 0.3.0 error rate high"));
    clock.advance(chrono::Duration::minutes(2));
    alerter.send(flapping);
    idle(&alerter).await;
    let hits = drain(&mut rx);
    assert_eq!(hits.len(), 3);
    assert_eq!(alerter.stats().deduplicated, 1);
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn webhook_body_is_slack_compatible_json() {
    let (server, mut rx) = receiver(&[]).await;
    let alerter = Alerter::with_config(fast(format!("{}/hook", server.url())));
    alerter.send(alert(
        AlertKind::HighErrorRate,
        "app 0.2.0 (beta) error rate high",
    ));
    idle(&alerter).await;
    let hits = drain(&mut rx);
    assert_eq!(hits.len(), 1);
    let b = &hits[0].body;
    assert_eq!(b["text"], "[WARNING] app 0.2.0 (beta) error rate high");
    let a = &b["attachments"][0];
    assert_eq!(a["color"], "warning");
    assert_eq!(a["title"], "app 0.2.0 (beta) error rate high");
    assert_eq!(a["text"], "error rate lower bound 6.2 % > 5 %");
    assert_eq!(
        a["fields"],
        serde_json::json!([
            {"title": "installs", "value": "1000", "short": true},
            {"title": "errorRate", "value": "0.08", "short": true},
        ])
    );
    assert!(a["ts"].is_i64());
    assert_eq!(b["railgun"]["kind"], "high_error_rate");
    assert_eq!(b["railgun"]["severity"], "warning");
    assert_eq!(b["railgun"]["id"], hits[0].id.as_str());
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn alert_counters_reach_metrics() {
    let (server, _rx) = receiver(&[]).await;
    let alerter = Alerter::with_config(fast(format!("{}/hook", server.url())));
    let metrics = Arc::new(Metrics::default());
    alerter.attach_metrics(metrics.clone());
    alerter.send(alert(AlertKind::LowAdoption, "low adoption"));
    idle(&alerter).await;
    assert!(metrics
        .render()
        .contains("railgun_alerts_delivered_total 1"));
    server.stop().await.expect("stop");
}

#[test]
fn backlog_alarm_fires_once_per_episode() {
    let alarm = BacklogAlarm::new(Alerter::disabled(), 10_000);
    assert!(!alarm.observe(10_000, 20_000));
    assert!(alarm.observe(10_001, 20_000));
    assert!(!alarm.observe(15_000, 20_000));
    // Still high-ish: not re-armed.
    assert!(!alarm.observe(9_000, 20_000));
    assert!(!alarm.observe(12_000, 20_000));
    // Drained: re-armed, the next episode alerts again.
    assert!(!alarm.observe(3_000, 20_000));
    assert!(alarm.observe(10_500, 20_000));
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

#[tokio::test]
async fn ingest_backlog_over_10000_events_sends_one_warning() {
    let (server, mut rx) = receiver(&[]).await;
    let alerter = Alerter::with_config(fast(format!("{}/hook", server.url())));
    let dir = tempfile::tempdir().expect("tmp");
    let db = store::open(&format!("sqlite:{}", dir.path().join("a.db").display()))
        .await
        .expect("store");
    let queue = IngestQueue::start(db, Arc::new(Metrics::default()), 30_000);
    queue.alert_backlog(alerter.clone(), BACKLOG_ALERT_EVENTS);
    // Below the threshold: nothing.
    queue
        .submit((0..5_000).map(event).collect())
        .await
        .expect("stored");
    idle(&alerter).await;
    assert_eq!(alerter.stats().queued, 0);
    // One submission takes the backlog past 10 000.
    queue
        .submit((0..10_001).map(event).collect())
        .await
        .expect("stored");
    idle(&alerter).await;
    let hits = drain(&mut rx);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].body["railgun"]["kind"], "analytics_backlog");
    assert_eq!(hits[0].body["railgun"]["severity"], "warning");
    queue.close().await;
    server.stop().await.expect("stop");
}

/// End to end: `railgun serve`'s rollout engine halts a rollout (admin route) and the
/// webhook, failing at first, gets the critical alert exactly once; a second halt after a
/// resume is a second alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halted_rollout_reaches_a_webhook_that_fails_at_first_once_and_a_second_halt_again() {
    let (hook, mut rx) = receiver(&[(500, None)]).await;
    let now = chrono::Utc::now();
    let hook_url = format!("{}/hook", hook.url());
    let mut server = TestServer::with(Kind::Sqlite, "", now, |c| c.alert_webhook = Some(hook_url))
        .await
        .expect("sqlite");
    let release = server.release(&ReleaseSpec {
        app: "app",
        channel: "stable",
        version: "0.2.0",
        policy: None,
        released_at: now,
        size: 5,
        // Hosted elsewhere: nothing to upload, the rollout starts at once.
        base_url: Some("https://cdn.example.com/app"),
    });
    let body = serde_json::json!({"manifest": release.envelope, "start": true});
    let res = server.post("/admin/releases", Some(ADMIN), &body).await;
    assert_eq!(
        res.status(),
        201,
        "{}",
        res.text().await.unwrap_or_default()
    );
    server
        .admin(
            "/admin/rollouts/app/stable/halt",
            serde_json::json!({"reason": "crashes in the field"}),
        )
        .await;

    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("first attempt")
        .expect("hit");
    let second = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("retry")
        .expect("hit");
    assert_eq!((first.status, second.status), (500, 200));
    assert_eq!(first.id, second.id);
    let b = &second.body;
    assert_eq!(b["railgun"]["kind"], "rollout_halted");
    assert_eq!(b["railgun"]["severity"], "critical");
    assert_eq!(b["attachments"][0]["color"], "danger");
    assert!(b["text"]
        .as_str()
        .unwrap_or_default()
        .contains("app 0.2.0 (stable) halted"));

    // Resumed and halted again at the same stage, well within the dedup window: a second
    // decision, so a second alert with its own id (the same title must not merge them).
    for action in ["resume", "halt"] {
        server
            .admin(
                &format!("/admin/rollouts/app/stable/{action}"),
                serde_json::json!({"reason": "again"}),
            )
            .await;
    }
    let third = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("second halt alert")
        .expect("hit");
    assert_eq!(third.status, 200);
    assert_eq!(third.body["railgun"]["kind"], "rollout_halted");
    assert_ne!(third.id, first.id, "a new alert, not a retry of the first");
    server.stop().await;
    assert!(drain(&mut rx).is_empty(), "each delivered once");
    hook.stop().await.expect("stop");
}

#[tokio::test]
async fn drain_waits_for_alerts_in_delivery_within_a_grace() {
    let (server, mut rx) = receiver(&[(503, None)]).await;
    let alerter = Alerter::with_config(fast(format!("{}/hook", server.url())));
    alerter.send(alert(AlertKind::RolloutHalted, "halted before shutdown"));
    assert!(alerter.drain(Duration::from_secs(20)).await);
    assert_eq!(drain(&mut rx).len(), 2);
    server.stop().await.expect("stop");

    // A webhook that never answers: the grace bounds the wait.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut c = fast(format!(
        "http://{}/hook",
        listener.local_addr().expect("addr")
    ));
    c.request_timeout = Duration::from_secs(3600);
    let alerter = Alerter::with_config(c);
    alerter.send(alert(AlertKind::RolloutHalted, "never answered"));
    let started = Instant::now();
    assert!(!alerter.drain(Duration::from_millis(200)).await);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}
