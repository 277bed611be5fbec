//! Lifetime of rollout-health data over real HTTP on loopback, written once and run against
//! both stores: SQLite always (a real file), PostgreSQL when `RAILGUN_TEST_DATABASE_URL` is
//! set (each test gets its own database; `scripts/start-postgres.sh` prints the variable).
//!
//! The retention job runs with a manual clock (`purge_once`), never on a timer: reports past
//! the raw-event window go, recent ones stay, the per-install rows of the rollout the engine
//! still decides on stay, so its numbers do not move. User deletion erases the health rows of
//! the user's install, and only those; the machine route erases an install by its id.

use std::sync::Arc;

use crate::db::Kind;
use crate::support::{health_report, ReleaseSpec, TestServer, ADMIN, READ};
use chrono::{DateTime, Duration, Utc};
use railgun_core::analytics::{AnalyticsEvent, EventBatch, EventCategory};
use railgun_core::clock::{Clock, SharedClock};
use railgun_core::health::report_machine_id;
use railgun_core::update::RolloutPolicy;
use railgun_server::analytics::retention::{self, RetentionConfig};
use railgun_server::store;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const APP: &str = "notes";
const CHANNEL: &str = "stable";

fn t0() -> DateTime<Utc> {
    "2026-06-01T09:00:00Z".parse().expect("t")
}

/// The real server on `kind` (`None`: PostgreSQL not configured, skipped).
async fn start(kind: Kind) -> Option<TestServer> {
    TestServer::with(kind, "health", t0(), |_| {}).await
}

/// Registers, uploads and starts `version` at `pct` %.
async fn publish(h: &TestServer, version: &str, pct: f64) {
    let policy = RolloutPolicy {
        stages: vec![10.0, 25.0, 50.0, 100.0],
        stage_hours: 24.0,
        max_error_rate: 0.5,
        max_crash_rate: 0.5,
        // Never enough installs: the engine waits, the numbers are only read.
        min_installs: 100_000,
    };
    let release = h.release(&ReleaseSpec {
        app: APP,
        channel: CHANNEL,
        version,
        policy: Some(policy),
        released_at: t0(),
        size: 4_000,
        base_url: None,
    });
    h.publish(&release, json!({"start": true, "percentage": pct}))
        .await;
}

async fn report(h: &TestServer, machine_id: &str, version: &str, errors: u32, crashes: u32) {
    let r = health_report(
        APP,
        CHANNEL,
        version,
        machine_id.into(),
        (errors, crashes),
        h.clock.now(),
    );
    let v = h.report(&r).await;
    assert_eq!(v["accepted"], true, "{v}");
}

async fn status(h: &TestServer, version: &str) -> Value {
    h.status(APP, CHANNEL, version).await
}

async fn rows(h: &TestServer, machine_id: &str) -> u64 {
    h.state()
        .store
        .machine_rows(machine_id.into())
        .await
        .expect("rows")
}

async fn purge(h: &TestServer) -> store::PurgeCounts {
    let clock: SharedClock = Arc::new(h.clock.clone());
    retention::purge_once(&h.state().store, &clock, &RetentionConfig::default())
        .await
        .expect("purge")
}

/// A hashed install id, as the client sends it (`machineId` and, by default, `userId`).
fn machine(i: usize) -> String {
    hex::encode(Sha256::digest(format!("install-{i}")))
}

/// The numbers the engine decides on, from `rollout-status`.
fn numbers(st: &Value) -> Value {
    json!({
        "installs": st["totalInstalls"],
        "errors": st["installsWithErrors"],
        "crashes": st["installsWithCrashes"],
        "errorRate": st["errorRate"],
        "crashRate": st["crashRate"],
        "errorRateBounds": st["errorRateBounds"],
        "crashRateBounds": st["crashRateBounds"],
        "healthScore": st["healthScore"],
    })
}

fn event(user: &str, at: DateTime<Utc>) -> AnalyticsEvent {
    AnalyticsEvent {
        id: Uuid::now_v7(),
        name: "screen_view".into(),
        category: EventCategory::for_name("screen_view"),
        user_id: user.into(),
        session_id: format!("s-{user}"),
        timestamp: at,
        app_version: "1.0.0".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        channel: CHANNEL.into(),
        properties: None,
        duration: None,
        sequence: 1,
    }
}

// ---------------------------------------------------------------------------------------

async fn retention_removes_old_health_data_but_not_an_active_rollouts(kind: Kind) {
    let Some(mut h) = start(kind).await else {
        return;
    };
    publish(&h, "1.0.0", 10.0).await;
    // Day 0: 12 installs on the rolling release (3 with errors, 1 crash), 8 on an old
    // release that has no rollout.
    for i in 0..12 {
        report(
            &h,
            &machine(i),
            "1.0.0",
            u32::from(i < 3),
            u32::from(i == 0),
        )
        .await;
    }
    for i in 100..108 {
        report(&h, &machine(i), "0.9.0", 1, 0).await;
    }
    // Day 10: install 0 reports again (its row's last_seen moves; the day-0 report stays old).
    h.clock.advance(Duration::days(10));
    report(&h, &machine(0), "1.0.0", 0, 0).await;
    let before = numbers(&status(&h, "1.0.0").await);
    assert_eq!(before["installs"], 12, "{before}");
    assert_eq!(before["errors"], 3, "{before}");

    // Day 89 (day-0 reports are 89 days old): nothing goes.
    h.clock.advance(Duration::days(79));
    let p = purge(&h).await;
    assert_eq!((p.health_reports, p.health_installs), (0, 0), "{p:?}");
    // A recent report on the old release: it stays.
    report(&h, &machine(107), "0.9.0", 0, 0).await;

    // Day 91: the day-0 reports are past the 90-day window.
    h.clock.advance(Duration::days(2));
    let p = purge(&h).await;
    assert_eq!(p.health_reports, 12 + 8, "{p:?}");
    // The 0.9.0 rows of installs that stopped reporting go; install 107 reported on day 89.
    assert_eq!(p.health_installs, 7, "{p:?}");
    assert_eq!(rows(&h, &machine(100)).await, 0);
    assert_eq!(
        rows(&h, &machine(107)).await,
        2,
        "recent report and its install row"
    );
    // The rollout of 1.0.0 is active: its per-install rows stay, its reports do not.
    assert_eq!(
        rows(&h, &machine(5)).await,
        1,
        "install row kept, report gone"
    );
    assert_eq!(
        rows(&h, &machine(0)).await,
        2,
        "day-10 report and install row"
    );
    let after = numbers(&status(&h, "1.0.0").await);
    assert_eq!(after, before, "retention moved an active rollout's numbers");
    // The engine decides on the same numbers: it waits (installs < minInstalls) or logs a
    // decision carrying exactly them.
    let d = h.admin("/admin/rollouts/evaluate", json!({})).await;
    for x in d["decisions"].as_array().expect("decisions") {
        assert_eq!(x["installs"], before["installs"], "{x}");
        assert_eq!(x["errorRate"], before["errorRate"], "{x}");
    }

    // Halted (not rolled back) it can be resumed: still kept. Day 121: install 0's day-10
    // report goes; install 107's day-89 report and row stay.
    h.admin(&format!("/admin/rollouts/{APP}/{CHANNEL}/halt"), json!({}))
        .await;
    h.clock.advance(Duration::days(30));
    let p = purge(&h).await;
    assert_eq!((p.health_reports, p.health_installs), (1, 0), "{p:?}");
    assert_eq!(p.decisions, 0, "{p:?}");
    assert_eq!(rows(&h, &machine(107)).await, 2);
    assert_eq!(numbers(&status(&h, "1.0.0").await), before);

    // Day 487: the decision log (start on day 0, halt on day 91) is past a year and goes;
    // the halted rollout's numbers stay.
    h.clock.advance(Duration::days(366));
    let p = purge(&h).await;
    assert!(p.decisions >= 2, "start and halt: {p:?}");
    assert_eq!((p.health_reports, p.health_installs), (1, 1), "{p:?}");
    assert_eq!(rows(&h, &machine(107)).await, 0);
    assert_eq!(numbers(&status(&h, "1.0.0").await), before);
    let st = status(&h, "1.0.0").await;
    assert_eq!(st["decisions"], json!([]), "{st}");

    // Superseded by the next release, the old rollout decides nothing more: its rows go.
    publish(&h, "1.1.0", 10.0).await;
    let p = purge(&h).await;
    assert_eq!(p.health_installs, 12, "{p:?}");
    assert_eq!(numbers(&status(&h, "1.0.0").await)["installs"], 0);
    h.stop().await;
}

async fn deleting_a_user_removes_their_health_rows_and_only_theirs(kind: Kind) {
    let Some(mut h) = start(kind).await else {
        return;
    };
    publish(&h, "1.0.0", 10.0).await;
    // Installs 1 and 2 use the default identity: userId == machineId (hashed install id).
    // Install 3's app gives both analytics and health the id "custom-user-3".
    let custom = "custom-user-3";
    let custom_machine = report_machine_id(custom);
    let users = [machine(1), machine(2), custom.to_string()];
    let machines = [machine(1), machine(2), custom_machine.clone()];
    for (u, m) in users.iter().zip(&machines) {
        report(&h, m, "1.0.0", 1, 0).await;
        report(&h, m, "1.0.0", 0, 0).await;
        report(&h, m, "0.9.0", 0, 1).await;
        let b = EventBatch {
            events: vec![event(u, t0())],
            sent_at: Some(t0()),
            sample_rate: 1.0,
            dropped: 0,
            queued: 0,
        };
        let r = h
            .http
            .post(format!("{}/analytics/events", h.url))
            .json(&b)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    for m in &machines {
        assert_eq!(rows(&h, m).await, 5, "3 reports + 2 install rows");
    }

    let path = format!("/analytics/users/{}", machine(1));
    assert_eq!(h.delete(&path, None).await.status(), 401);
    assert_eq!(h.delete(&path, Some(READ)).await.status(), 403);
    assert_eq!(h.delete(&path, Some("wrong")).await.status(), 403);
    assert_eq!(
        rows(&h, &machine(1)).await,
        5,
        "refused requests delete nothing"
    );
    let r = h.delete(&path, Some(ADMIN)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["healthReports"], 3, "{v}");
    assert_eq!(v["healthInstalls"], 2, "{v}");
    assert!(v["analytics"].as_u64().expect("n") >= 1, "{v}");
    assert_eq!(
        v["deleted"].as_u64(),
        Some(v["analytics"].as_u64().expect("n") + 5),
        "{v}"
    );
    assert_eq!(rows(&h, &machine(1)).await, 0);
    assert_eq!(h.state().store.user_rows(machine(1)).await.expect("n"), 0);
    assert_eq!(
        rows(&h, &machine(2)).await,
        5,
        "another install is untouched"
    );
    assert_eq!(rows(&h, &custom_machine).await, 5);
    let st = status(&h, "1.0.0").await;
    assert_eq!(st["totalInstalls"], 2, "{st}");

    // A second deletion finds nothing.
    let v: Value = h
        .delete(&path, Some(ADMIN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["deleted"], 0, "{v}");

    // A custom (non-hex) user id reaches the machine id its health reports used.
    let v: Value = h
        .delete(&format!("/analytics/users/{custom}"), Some(ADMIN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (v["healthReports"].clone(), v["healthInstalls"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(rows(&h, &custom_machine).await, 0);
    assert_eq!(rows(&h, &machine(2)).await, 5);

    // The machine route: admin only, a hashed id only.
    let path = format!("/analytics/machines/{}", machine(2));
    assert_eq!(h.delete(&path, None).await.status(), 401);
    assert_eq!(h.delete(&path, Some(READ)).await.status(), 403);
    for bad in [
        "not-hex".to_string(),
        machine(2).to_uppercase(),
        format!("{}0", machine(2)),
        "%27%3B%20DROP%20TABLE%20health_reports%3B--".to_string(),
    ] {
        let r = h
            .delete(&format!("/analytics/machines/{bad}"), Some(ADMIN))
            .await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(rows(&h, &machine(2)).await, 5);
    let v: Value = h
        .delete(&path, Some(ADMIN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        v,
        json!({"deleted": 5, "healthReports": 3, "healthInstalls": 2})
    );
    assert_eq!(rows(&h, &machine(2)).await, 0);
    // Its analytics events are a user's data, not touched by the machine route.
    assert!(h.state().store.user_rows(machine(2)).await.expect("n") > 0);
    assert_eq!(status(&h, "1.0.0").await["totalInstalls"], 0);
    h.stop().await;
}

both_stores!(
    retention_removes_old_health_data_but_not_an_active_rollouts,
    deleting_a_user_removes_their_health_rows_and_only_theirs,
);
