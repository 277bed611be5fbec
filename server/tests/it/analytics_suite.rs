//! The analytics backend over real HTTP, written once and run against both stores:
//! SQLite always, PostgreSQL when `RAILGUN_TEST_DATABASE_URL` is set (each test gets its own
//! fresh database; `scripts/start-postgres.sh` starts a server and prints the variable).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::db::Kind;
use crate::support::{within, TestServer, ADMIN, READ};
use chrono::{DateTime, Duration, Utc};
use railgun_core::analytics::{
    AnalyticsEvent, EventBatch, EventCategory, IngestResponse, Properties, PropertyValue,
};
use railgun_core::clock::SharedClock;
use railgun_server::analytics::retention::{self, RetentionConfig};
use railgun_server::store;
use serde_json::Value;
use uuid::Uuid;

fn now0() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().expect("t")
}

/// The real server on `kind` (`None`: PostgreSQL not configured, skipped).
async fn start(kind: Kind) -> Option<TestServer> {
    TestServer::with(kind, "analytics", now0(), |_| {}).await
}

/// `POST /analytics/events` with `body` as it is.
async fn post_raw(h: &TestServer, body: Vec<u8>) -> reqwest::Response {
    let rq = h
        .http
        .post(format!("{}/analytics/events", h.url))
        .header("content-type", "application/json")
        .body(body);
    within("ingest", rq.send()).await.expect("post")
}

/// `POST /analytics/events`: 200, the answer.
async fn post(h: &TestServer, batch: &EventBatch) -> IngestResponse {
    serde_json::from_value(h.send_events(batch).await).expect("answer")
}

fn ev(user: &str, name: &str, at: DateTime<Utc>) -> AnalyticsEvent {
    AnalyticsEvent {
        id: Uuid::now_v7(),
        name: name.into(),
        category: EventCategory::for_name(name),
        user_id: user.into(),
        session_id: format!("s-{user}-{}", at.date_naive()),
        timestamp: at,
        app_version: "1.0.0".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        channel: "stable".into(),
        properties: None,
        duration: None,
        sequence: 1,
    }
}

fn batch(events: Vec<AnalyticsEvent>, sample_rate: f64) -> EventBatch {
    EventBatch {
        events,
        sent_at: Some(now0()),
        sample_rate,
        dropped: 0,
        queued: 0,
    }
}

fn day(d: u32) -> DateTime<Utc> {
    // 2026-03-01 + d days, at 10:00.
    "2026-03-01T10:00:00Z".parse::<DateTime<Utc>>().expect("t") + Duration::days(d as i64)
}

// ---------------------------------------------------------------------------------------

async fn each_validation_limit_rejects_by_index(kind: Kind) {
    let Some(h) = start(kind).await else {
        return;
    };
    let now = now0();
    let mut events = vec![ev("u1", "screen_view", now)]; // 0 ok
    events.push(ev("u1", "Bad-Name", now)); // 1
    let mut e = ev("u1", "screen_view", now);
    e.properties = Some(
        (0..33)
            .map(|i| (format!("k{i}"), PropertyValue::Bool(true)))
            .collect(),
    );
    events.push(e); // 2 too many properties
    let mut e = ev("u1", "screen_view", now);
    e.properties = Some(Properties::from([("k".into(), "x".repeat(257).into())]));
    events.push(e); // 3 long string
    let mut e = ev("u1", "screen_view", now);
    e.properties = Some(Properties::from([("bad key!".into(), true.into())]));
    events.push(e); // 4 bad key
    events.push(ev("u1", "screen_view", now + Duration::days(8))); // 5 future
    events.push(ev("u1", "screen_view", now - Duration::days(91))); // 6 past
    let mut e = ev("u1", "screen_view", now);
    e.user_id = String::new();
    events.push(e); // 7 empty user id
    let mut e = ev("u1", "session_end", now);
    e.duration = Some(-5.0);
    events.push(e); // 8 negative duration
    let mut e = ev("u1", "screen_view", now);
    e.properties = Some(Properties::from([
        ("email".into(), "alice@example.com".into()),
        ("addr".into(), "10.1.2.3".into()),
        ("v6".into(), "2001:db8::1".into()),
        ("screen_name".into(), "settings".into()),
    ]));
    events.push(e); // 9 ok, 3 values scrubbed
    events.push(ev("u1", "screen_view", now + Duration::days(6))); // 10 ok
    let mut json = serde_json::to_value(batch(events, 1.0)).expect("json");
    // 11: a nested property value does not parse: rejected alone.
    let mut nested = serde_json::to_value(ev("u1", "screen_view", now)).expect("json");
    nested["properties"] = serde_json::json!({"a": {"b": 1}});
    json["events"].as_array_mut().expect("arr").push(nested);
    let r = post_raw(&h, serde_json::to_vec(&json).expect("b")).await;
    assert_eq!(r.status(), 200);
    let a: IngestResponse = r.json().await.expect("a");
    let idx: Vec<usize> = a.rejected.iter().map(|r| r.index).collect();
    assert_eq!(idx, vec![1, 2, 3, 4, 5, 6, 7, 8, 11], "{a:?}");
    assert_eq!(a.accepted, 3);
    assert!(a.rejected[4].reason.contains("future"), "{a:?}");
    assert!(a.rejected[5].reason.contains("past"), "{a:?}");
    let metrics = h.get("/metrics", None).await.text().await.expect("m");
    assert!(
        metrics.contains("railgun_properties_scrubbed_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("railgun_events_rejected_total 9"),
        "{metrics}"
    );

    // 501 events: 413.
    let many: Vec<_> = (0..501).map(|_| ev("u1", "screen_view", now)).collect();
    let r = post_raw(&h, serde_json::to_vec(&batch(many, 1.0)).expect("b")).await;
    assert_eq!(r.status(), 413);
    // 500 events: fine.
    let many: Vec<_> = (0..500).map(|_| ev("u1", "screen_view", now)).collect();
    assert_eq!(post(&h, &batch(many, 1.0)).await.accepted, 500);
    // Body over 1 MiB: 413.
    let r = post_raw(&h, vec![b' '; 1024 * 1024 + 1]).await;
    assert_eq!(r.status(), 413);
    // Bad sample rates and malformed JSON: 400.
    for sr in [0.0, -1.0, 1.5] {
        let r = post_raw(
            &h,
            serde_json::to_vec(&batch(vec![ev("u1", "x", now)], sr)).expect("b"),
        )
        .await;
        assert_eq!(r.status(), 400, "{sr}");
    }
    assert_eq!(post_raw(&h, b"{not json".to_vec()).await.status(), 400);
    assert_eq!(
        post_raw(&h, b"{\"events\": 5}".to_vec()).await.status(),
        400
    );
}

async fn duplicate_batches_are_counted_once(kind: Kind) {
    let Some(h) = start(kind).await else {
        return;
    };
    let events: Vec<_> = (0..10)
        .map(|i| ev(&format!("u{i}"), "screen_view", now0()))
        .collect();
    let b = batch(events.clone(), 1.0);
    let a = post(&h, &b).await;
    assert_eq!((a.accepted, a.duplicates), (10, 0));
    let a = post(&h, &b).await;
    assert_eq!((a.accepted, a.duplicates), (0, 10));
    let mut mixed: Vec<_> = events[..5].to_vec();
    mixed.extend((0..5).map(|i| ev(&format!("n{i}"), "screen_view", now0())));
    let dup = mixed[7].clone();
    mixed.push(dup); // the same id twice in one batch
    let a = post(&h, &batch(mixed, 1.0)).await;
    assert_eq!((a.accepted, a.duplicates), (5, 6));
    // Concurrent retries of the same batch: stored once in total.
    let fresh = batch(
        (0..20)
            .map(|i| ev(&format!("c{i}"), "message_sent", now0()))
            .collect(),
        1.0,
    );
    let (a1, a2) = tokio::join!(post(&h, &fresh), post(&h, &fresh));
    assert_eq!(a1.accepted + a2.accepted, 20);
    assert_eq!(a1.duplicates + a2.duplicates, 20);
    assert_eq!(h.state().store.count_events().await.expect("n"), 35);
    let dau = h.read("/analytics/dau?date=2026-03-10").await;
    assert_eq!(dau["users"], 35);
    let f = h
        .read("/analytics/features?name=message_sent&from=2026-03-10&to=2026-03-10")
        .await;
    assert_eq!(f["events"], 20, "{f}");
}

async fn skewed_client_clocks_are_corrected(kind: Kind) {
    let Some(h) = start(kind).await else {
        return;
    };
    let now = now0();
    // A client clock 3 days slow: it thinks now is now-3d; the event happened 1 h ago.
    let slow = now - Duration::days(3);
    let b = EventBatch {
        events: vec![ev("slow", "screen_view", slow - Duration::hours(1))],
        sent_at: Some(slow),
        sample_rate: 1.0,
        dropped: 0,
        queued: 0,
    };
    assert_eq!(post(&h, &b).await.accepted, 1);
    // A client clock 10 days fast (beyond the 7-day limit before correction).
    let fast = now + Duration::days(10);
    let b = EventBatch {
        events: vec![ev("fast", "screen_view", fast - Duration::minutes(5))],
        sent_at: Some(fast),
        sample_rate: 1.0,
        dropped: 0,
        queued: 0,
    };
    assert_eq!(post(&h, &b).await.accepted, 1);
    // Both land on the server's today, not on the client's.
    assert_eq!(h.read("/analytics/dau?date=2026-03-10").await["users"], 2);
    assert_eq!(h.read("/analytics/dau?date=2026-03-07").await["users"], 0);
    assert_eq!(h.read("/analytics/dau?date=2026-03-20").await["users"], 0);
    // The same future timestamp with an honest sentAt is refused.
    let b = batch(vec![ev("fast", "screen_view", fast)], 1.0);
    let a = post(&h, &b).await;
    assert_eq!(a.accepted, 0);
    assert_eq!(a.rejected.len(), 1);
    // Small skews (network delay) are left alone: an event at 23:59:50 stays on its day.
    let late = "2026-03-09T23:59:50Z".parse::<DateTime<Utc>>().expect("t");
    let b = EventBatch {
        events: vec![ev("edge", "screen_view", late)],
        sent_at: Some(now - Duration::seconds(20)),
        sample_rate: 1.0,
        dropped: 0,
        queued: 0,
    };
    assert_eq!(post(&h, &b).await.accepted, 1);
    assert_eq!(h.read("/analytics/dau?date=2026-03-09").await["users"], 1);
}

fn end(user: &str, at: DateTime<Utc>, ms: f64, session: &str) -> AnalyticsEvent {
    let mut e = ev(user, "session_end", at);
    e.duration = Some(ms);
    e.session_id = session.into();
    e
}

async fn load_hand_checked(h: &TestServer) {
    // u1: days 0, 1, 7; u2: 0, 1; u3: 0; u4 (sampled 0.5): first seen day 1, also 7;
    // u5 (sampled 0.25): day 5.
    let full = vec![
        ev("u1", "session_start", day(0)),
        ev("u1", "message_sent", day(0)),
        ev("u1", "message_sent", day(0) + Duration::minutes(1)),
        end("u1", day(0), 60_000.0, "s1a"),
        end("u1", day(0) + Duration::hours(2), 300_000.0, "s1b"),
        ev("u2", "message_sent", day(0)),
        end("u2", day(0), 120_000.0, "s2"),
        end("u3", day(0), 30_000.0, "s3"),
        ev("u1", "screen_view", day(1)),
        ev("u2", "screen_view", day(1)),
        ev("u1", "screen_view", day(7)),
    ];
    post(h, &batch(full, 1.0)).await;
    let half = vec![
        ev("u4", "message_sent", day(1)),
        ev("u4", "message_sent", day(1) + Duration::minutes(3)),
        ev("u4", "screen_view", day(7)),
    ];
    post(h, &batch(half, 0.5)).await;
    post(h, &batch(vec![ev("u5", "screen_view", day(5))], 0.25)).await;
}

async fn queries_match_a_hand_checked_data_set(kind: Kind) {
    let Some(h) = start(kind).await else {
        return;
    };
    load_hand_checked(&h).await;
    let dau0 = h.read("/analytics/dau?date=2026-03-01").await;
    assert_eq!(
        (dau0["users"].as_u64(), dau0["estimate"].as_f64()),
        (Some(3), Some(3.0))
    );
    let dau1 = h.read("/analytics/dau?date=2026-03-02").await;
    assert_eq!(
        (dau1["users"].as_u64(), dau1["estimate"].as_f64()),
        (Some(3), Some(4.0))
    );
    let wau = h.read("/analytics/wau?date=2026-03-08").await; // 03-02 .. 03-08
    assert_eq!(
        (wau["users"].as_u64(), wau["estimate"].as_f64()),
        (Some(4), Some(8.0)),
        "{wau}"
    );
    assert_eq!(wau["from"], "2026-03-02");
    let mau = h.read("/analytics/mau?date=2026-03-08").await;
    assert_eq!(
        (mau["users"].as_u64(), mau["estimate"].as_f64()),
        (Some(5), Some(9.0))
    );

    let s = h.read("/analytics/sessions?date=2026-03-01").await;
    assert_eq!(s["count"], 4, "{s}");
    assert_eq!(s["meanMs"].as_f64(), Some(127_500.0));
    assert_eq!(s["medianMs"].as_f64(), Some(60_000.0));
    assert_eq!(s["p90Ms"].as_f64(), Some(300_000.0));

    let f = h
        .read("/analytics/features?name=message_sent&from=2026-03-01&to=2026-03-02")
        .await;
    assert_eq!(f["events"], 5, "{f}");
    assert_eq!(f["eventsEstimate"].as_f64(), Some(7.0));
    let days = f["days"].as_array().expect("days");
    assert_eq!(days.len(), 2);
    assert_eq!(days[0]["date"], "2026-03-01");
    assert_eq!(
        (days[0]["events"].as_u64(), days[0]["users"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        (days[1]["events"].as_u64(), days[1]["users"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(days[1]["usersEstimate"].as_f64(), Some(2.0));
    assert_eq!(days[1]["eventsEstimate"].as_f64(), Some(4.0));

    let r = h
        .read("/analytics/retention?cohort=2026-03-01&days=7")
        .await;
    assert_eq!(r["size"], 3, "{r}");
    let users: Vec<u64> = r["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["users"].as_u64().expect("n"))
        .collect();
    assert_eq!(users, vec![3, 2, 0, 0, 0, 0, 0, 1]);
    assert_eq!(r["days"][0]["rate"].as_f64(), Some(1.0));
    assert!((r["days"][1]["rate"].as_f64().expect("r") - 2.0 / 3.0).abs() < 1e-9);
    let r1 = h
        .read("/analytics/retention?cohort=2026-03-02&days=6")
        .await;
    assert_eq!(r1["size"], 1);
    assert_eq!(r1["sizeEstimate"].as_f64(), Some(2.0));
    assert_eq!(r1["days"][6]["users"], 1);
}

async fn deletion_erases_a_user_everywhere(kind: Kind) {
    let Some(h) = start(kind).await else {
        return;
    };
    load_hand_checked(&h).await;
    assert!(h.state().store.user_rows("u1".into()).await.expect("n") > 0);
    let del = |token: Option<&'static str>, user: &'static str| {
        let mut rq = h.http.delete(format!("{}/analytics/users/{user}", h.url));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send()
    };
    assert_eq!(del(None, "u1").await.expect("d").status(), 401);
    assert_eq!(del(Some(READ), "u1").await.expect("d").status(), 403);
    let r = del(Some(ADMIN), "u1").await.expect("d");
    assert_eq!(r.status(), 200);
    assert_eq!(h.state().store.user_rows("u1".into()).await.expect("n"), 0);
    assert!(h.state().store.user_rows("u2".into()).await.expect("n") > 0);
    assert_eq!(h.read("/analytics/dau?date=2026-03-01").await["users"], 2);
    assert_eq!(
        h.read("/analytics/sessions?date=2026-03-01").await["count"],
        2
    );
    let r = h
        .read("/analytics/retention?cohort=2026-03-01&days=7")
        .await;
    assert_eq!(r["size"], 2);
    assert_eq!(r["days"][7]["users"], 0);
}

async fn retention_job_deletes_old_events_then_old_aggregates(kind: Kind) {
    let Some(h) = start(kind).await else {
        return;
    };
    let now = now0();
    post(
        &h,
        &batch(
            vec![
                ev("old", "screen_view", now - Duration::days(80)),
                ev("new", "screen_view", now - Duration::days(1)),
            ],
            1.0,
        ),
    )
    .await;
    let old_day = (now - Duration::days(80)).date_naive().to_string();
    let cfg = RetentionConfig::default();
    let clock: SharedClock = Arc::new(h.clock.clone());
    let p = retention::purge_once(&h.state().store, &clock, &cfg)
        .await
        .expect("purge");
    assert_eq!(p.events, 0);
    h.clock.advance(Duration::days(15)); // the old event is now 95 days old
    let p = retention::purge_once(&h.state().store, &clock, &cfg)
        .await
        .expect("purge");
    assert_eq!((p.events, p.aggregates), (1, 0));
    assert_eq!(h.state().store.count_events().await.expect("n"), 1);
    // Aggregates stay: the old day still counts.
    assert_eq!(
        h.read(&format!("/analytics/dau?date={old_day}")).await["users"],
        1
    );
    h.clock.advance(Duration::days(280)); // old day is now 375 days back, new 296
    let p = retention::purge_once(&h.state().store, &clock, &cfg)
        .await
        .expect("purge");
    assert_eq!(p.events, 1);
    assert!(p.aggregates >= 3, "{p:?}");
    assert_eq!(
        h.read(&format!("/analytics/dau?date={old_day}")).await["users"],
        0
    );
    let recent = (now - Duration::days(1)).date_naive().to_string();
    assert_eq!(
        h.read(&format!("/analytics/dau?date={recent}")).await["users"],
        1
    );
    // Configurable: a 0-day aggregate window clears everything.
    let all = RetentionConfig {
        events_days: 0,
        aggregates_days: 0,
        ..cfg
    };
    retention::purge_once(&h.state().store, &clock, &all)
        .await
        .expect("purge");
    assert_eq!(
        h.read(&format!("/analytics/dau?date={recent}")).await["users"],
        0
    );
}

async fn read_and_admin_routes_need_their_tokens(kind: Kind) {
    let Some(h) = start(kind).await else {
        return;
    };
    for path in [
        "/analytics/dau?date=2026-03-01",
        "/analytics/wau?date=2026-03-01",
        "/analytics/mau?date=2026-03-01",
        "/analytics/sessions?date=2026-03-01",
        "/analytics/features?name=screen_view",
        "/analytics/retention?cohort=2026-03-01&days=3",
    ] {
        let r = h.get(path, None).await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert_eq!(h.get(path, Some("wrong")).await.status(), 403, "{path}");
        assert_eq!(
            h.get(path, Some(&format!("{READ}x"))).await.status(),
            403,
            "{path}"
        );
        assert_eq!(h.get(path, Some(READ)).await.status(), 200, "{path}");
        assert_eq!(h.get(path, Some(ADMIN)).await.status(), 200, "{path}");
    }
    let r = h
        .http
        .get(format!("{}/analytics/dau", h.url))
        .header("authorization", format!("Basic {READ}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    assert_eq!(h.get("/healthz", None).await.status(), 200);
    // The static update tree is still served beside the analytics routes.
    std::fs::create_dir_all(h.config.root.join("app")).expect("dir");
    std::fs::write(h.config.root.join("app/stable.json"), b"{}").expect("w");
    for path in ["/updates/app/stable.json", "/app/stable.json"] {
        let r = h.get(path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.text().await.expect("t"), "{}");
    }
}

async fn sql_injection_in_parameters_is_refused(kind: Kind) {
    let Some(h) = start(kind).await else {
        return;
    };
    load_hand_checked(&h).await;
    for path in [
        "/analytics/dau?date=2026-03-01'%20OR%20'1'='1",
        "/analytics/dau?date=2026-03-01;DROP%20TABLE%20events",
        "/analytics/wau?date=1%20OR%201=1",
        "/analytics/sessions?date=%27%3B--",
        "/analytics/features?name=x';DROP%20TABLE%20events;--",
        "/analytics/features?name=message_sent&from=2026-03-01'--",
        "/analytics/features?name=message_sent%20OR%201=1",
        "/analytics/retention?cohort=2026-03-01&days=1;DELETE%20FROM%20users",
        "/analytics/retention?cohort=2026-03-01'%20UNION%20SELECT%201--&days=1",
        "/analytics/retention?cohort=2026-03-01&days=99999999999",
    ] {
        let r = h.get(path, Some(READ)).await;
        assert_eq!(r.status(), 400, "{path}");
    }
    // A path parameter goes to the database bound, as data: it matches no user.
    let r = h
        .http
        .delete(format!("{}/analytics/users/u1'%20OR%20'1'='1", h.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("d");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("j")["deleted"], 0);
    assert_eq!(h.read("/analytics/dau?date=2026-03-01").await["users"], 3);
    // Hostile strings inside events are stored as data too.
    let mut e = ev("x'); DROP TABLE events; --", "screen_view", now0());
    e.session_id = "'; DELETE FROM daily_users; --".into();
    assert_eq!(post(&h, &batch(vec![e], 1.0)).await.accepted, 1);
    assert_eq!(h.read("/analytics/dau?date=2026-03-01").await["users"], 3);
    assert_eq!(h.read("/analytics/dau?date=2026-03-10").await["users"], 1);
}

async fn full_queue_answers_503_with_retry_after(kind: Kind) {
    let Some(h) = TestServer::with(kind, "analytics", now0(), |c| c.queue_capacity = 10).await
    else {
        return;
    };
    let events: Vec<_> = (0..11).map(|_| ev("u", "screen_view", now0())).collect();
    let r = post_raw(&h, serde_json::to_vec(&batch(events, 1.0)).expect("b")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let events: Vec<_> = (0..10).map(|_| ev("u", "screen_view", now0())).collect();
    let mut b = batch(events, 1.0);
    b.dropped = 7; // the client says its own queue overflowed
    assert_eq!(post(&h, &b).await.accepted, 10);
    let m = h.get("/metrics", None).await.text().await.expect("m");
    for name in [
        "railgun_ingest_overloaded_total 1",
        "railgun_events_ingested_total 10",
        "railgun_ingest_queue_depth 0",
        "railgun_client_dropped_events_total 7",
        "railgun_http_requests_total{route=\"/analytics/events\",status=\"503\"} 1",
        "railgun_http_request_duration_seconds_bucket{route=\"/analytics/events\",le=\"+Inf\"} 2",
        "railgun_store_commit_duration_seconds_count 1",
    ] {
        assert!(m.contains(name), "{name} in\n{m}");
    }
}

async fn restart_during_load_loses_no_acknowledged_event(kind: Kind) {
    let Some(mut h) = start(kind).await else {
        return;
    };
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let ok_batches = Arc::new(AtomicUsize::new(0));
    let halfway = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (url, http, acked, ok, halfway) = (
            h.url.clone(),
            h.http.clone(),
            acked.clone(),
            ok_batches.clone(),
            halfway.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0..1000 {
                let events: Vec<_> = (0..50)
                    .map(|k| ev(&format!("u{t}-{i}-{k}"), "screen_view", now0()))
                    .collect();
                let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
                let res = http
                    .post(format!("{url}/analytics/events"))
                    .json(&batch(events, 1.0))
                    .send()
                    .await;
                let Ok(res) = res else { break };
                if res.status() != 200 {
                    continue;
                }
                let Ok(a) = res.json::<IngestResponse>().await else {
                    break;
                };
                assert_eq!(a.accepted, 50);
                acked.lock().expect("l").extend(ids);
                if ok.fetch_add(1, Ordering::SeqCst) + 1 == 40 {
                    halfway.notify_one();
                }
            }
        }));
    }
    within("40 batches acknowledged", halfway.notified()).await;
    h.stop().await; // graceful: in-flight requests answered, the queue drained
    for t in tasks {
        within("a sender ends", t).await.expect("task");
    }
    let acked: Vec<String> = acked.lock().expect("l").iter().cloned().collect();
    assert!(acked.len() >= 40 * 50);
    // Reopen the same database in a fresh store: every acknowledged id is there.
    let reopened = store::open(h.database()).await.expect("reopen");
    let present = reopened.contains_events(acked.clone()).await.expect("q");
    let missing = present.iter().filter(|p| !**p).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged events lost",
        acked.len()
    );
    // And the server starts again over it.
    h.restart().await;
    let n = h.read("/analytics/dau?date=2026-03-10").await["users"]
        .as_u64()
        .expect("n");
    assert!(n as usize >= acked.len());
    h.stop().await;
}

both_stores!(
    each_validation_limit_rejects_by_index,
    duplicate_batches_are_counted_once,
    skewed_client_clocks_are_corrected,
    queries_match_a_hand_checked_data_set,
    deletion_erases_a_user_everywhere,
    retention_job_deletes_old_events_then_old_aggregates,
    read_and_admin_routes_need_their_tokens,
    sql_injection_in_parameters_is_refused,
    full_queue_answers_503_with_retry_after,
    restart_during_load_loses_no_acknowledged_event,
);
