//! Every number and instant a client sends to `POST /analytics/events` and
//! `POST /analytics/health` is checked before it is used (issue 15 §2–§4), over real HTTP
//! against the real server: an instant out of any calendar is a 400 naming its field (it
//! panicked the handler), a `sampleRate` below the documented bound is refused (it turned a
//! day's estimates into `null`), `dropped` is bounded per batch and its counter never wraps
//! (it went backwards), and per-event numbers out of range reject that event by its index.

use crate::db::Kind;
use crate::support::{within, TestServer};
use chrono::{DateTime, Utc};
use railgun_core::analytics::{MAX_DROPPED_PER_BATCH, MIN_SAMPLE_RATE};
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    "2026-03-02T12:00:00Z".parse().expect("t")
}

/// `POST path` without a token: status and JSON answer.
async fn post(s: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let r = s.post(path, None, body).await;
    let status = r.status().as_u16();
    (
        status,
        within("answer", r.json()).await.unwrap_or(Value::Null),
    )
}

async fn dropped_total(s: &TestServer) -> u64 {
    let text = within("metrics", s.get("/metrics", None).await.text())
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("railgun_client_dropped_events_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped counter in {text}"))
}

/// A full event as railgun clients send it (with `id`), so each test meets only its defect.
fn event(user: &str, seq: u64, ts: &str) -> Value {
    json!({"id": uuid::Uuid::new_v4(), "name": "screen_view", "category": "navigation", "userId": user,
           "sessionId": format!("{user}-s"), "timestamp": ts, "appVersion": "1.0.0",
           "platform": "linux", "arch": "x64", "channel": "stable", "sequence": seq})
}

fn error_of(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instant_out_of_any_calendar_is_a_400_naming_its_field_not_a_panic() {
    let mut b = TestServer::start(now()).await;
    // The request that panicked the handler (`DateTime + TimeDelta overflowed`).
    let (status, v) = post(
        &b,
        "/analytics/events",
        &json!({"events": [event("u1", 1, "+200000-01-01T00:00:00Z")],
                    "sentAt": "-200000-01-01T00:00:00Z", "sampleRate": 1}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).starts_with("sentAt "), "{v}");
    // A clock reset to 1970 is corrected; an event the correction would push past the end of
    // the calendar is rejected by its index, naming its timestamp; the other is stored.
    let (status, v) = post(
        &b,
        "/analytics/events",
        &json!({"events": [event("u1", 1, "+262142-12-31T00:00:00Z"),
                               event("u1", 2, "1970-01-01T00:00:00Z")],
                    "sentAt": "1970-01-01T00:00:05Z", "sampleRate": 1}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["rejected"][0]["index"], 0);
    let reason = v["rejected"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("timestamp "), "{reason}");
    // The server is still answering.
    let (status, _) = post(
        &b,
        "/analytics/events",
        &json!({"events": [event("u2", 1, "2026-03-02T11:00:00Z")],
                    "sentAt": "2026-03-02T12:00:00Z", "sampleRate": 1}),
    )
    .await;
    assert_eq!(status, 200);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_event_numbers_out_of_range_reject_that_event_naming_the_field() {
    let mut b = TestServer::start(now()).await;
    let mut long = event("u1", 1, "2026-03-02T11:00:00Z");
    long["duration"] = json!(1e300);
    let huge_seq = event("u1", u64::MAX, "2026-03-02T11:00:00Z");
    let (status, v) = post(
        &b,
        "/analytics/events",
        &json!({"events": [long, huge_seq, event("u1", 3, "2026-03-02T11:00:00Z")],
                    "sentAt": "2026-03-02T12:00:00Z", "sampleRate": 1}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["accepted"], 1, "{v}");
    let reasons: Vec<&str> = v["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default())
        .collect();
    assert!(reasons[0].starts_with("duration "), "{reasons:?}");
    assert!(reasons[1].starts_with("sequence "), "{reasons:?}");
    b.stop().await;
}

async fn sample_rate_is_bounded_and_estimates_stay_numbers(kind: Kind) {
    let Some(mut b) = TestServer::with(kind, "ingest-bounds", now(), |_| {}).await else {
        return;
    };
    for rate in [
        json!(5e-324),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(MIN_SAMPLE_RATE / 2.0),
    ] {
        let (status, v) = post(
            &b,
            "/analytics/events",
            &json!({"events": [event("u1", 1, "2026-03-02T11:00:00Z")],
                        "sentAt": "2026-03-02T12:00:00Z", "sampleRate": rate}),
        )
        .await;
        assert_eq!(status, 400, "{rate}: {v}");
        assert!(error_of(&v).starts_with("sampleRate "), "{v}");
    }
    let (status, v) = post(
        &b,
        "/analytics/events",
        &json!({"events": [event("u1", 1, "2026-03-02T11:00:00Z")],
                    "sentAt": "2026-03-02T12:00:00Z", "sampleRate": MIN_SAMPLE_RATE}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let dau = b.read("/analytics/dau?date=2026-03-02").await;
    assert_eq!(dau["users"], 1, "{dau}");
    let estimate = dau["estimate"].as_f64().unwrap_or_else(|| panic!("{dau}"));
    assert!((estimate - 10_000.0).abs() < 1e-6, "{dau}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_rate_is_bounded_and_estimates_stay_numbers_on_sqlite() {
    sample_rate_is_bounded_and_estimates_stay_numbers(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_rate_is_bounded_and_estimates_stay_numbers_on_postgres() {
    sample_rate_is_bounded_and_estimates_stay_numbers(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_is_bounded_per_batch_and_its_counter_only_goes_up() {
    let mut b = TestServer::start(now()).await;
    let batch = |dropped: u64| {
        json!({"events": [event("u1", 1, "2026-03-02T11:00:00Z")],
               "sentAt": "2026-03-02T12:00:00Z", "sampleRate": 1, "dropped": dropped})
    };
    let (status, v) = post(&b, "/analytics/events", &batch(u64::MAX)).await;
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).starts_with("dropped "), "{v}");
    assert_eq!(dropped_total(&b).await, 0, "a refused batch counts nothing");
    for _ in 0..2 {
        let (status, v) = post(&b, "/analytics/events", &batch(MAX_DROPPED_PER_BATCH)).await;
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(dropped_total(&b).await, 2 * MAX_DROPPED_PER_BATCH);
    let (status, _) = post(&b, "/analytics/events", &batch(5)).await;
    assert_eq!(status, 200);
    assert_eq!(dropped_total(&b).await, 2 * MAX_DROPPED_PER_BATCH + 5);
    b.stop().await;
}
