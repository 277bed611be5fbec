//! The alert outbox and alert states in both stores (SQLite always, PostgreSQL when
//! `RAILGUN_TEST_DATABASE_URL` is set; required under `RAILGUN_REQUIRE_ALL=1`): claims
//! with a lease, outcomes, an alert that exists exactly when its decision does, and the
//! retention job's purge of finished rows on the injected clock.

use crate::db::{database, Kind};
use railgun_core::clock::{Clock, ManualClock, SharedClock};
use railgun_server::alerts::{Alert, AlertConfig, AlertKind, Alerter, Destination};
use railgun_server::analytics::retention::{self, RetentionConfig};
use railgun_server::store::alerts::{AlertWrite, Delivery};
use railgun_server::store::rollout::{ChannelRow, RolloutChange, RolloutRow};
use railgun_server::store::{self, SharedStore};

async fn open(kind: Kind, dir: &std::path::Path) -> Option<SharedStore> {
    let url = database(kind, &dir.join("outbox.db"), "alert outbox").await?;
    Some(store::open(&url).await.expect("open store"))
}

/// An alerter that renders rows for two destinations; its own outbox is a separate SQLite
/// file (the test drives the store under test by hand).
fn alerter() -> (Alerter, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let own = store::sqlite::SqliteStore::open(&dir.path().join("own.db")).expect("sqlite");
    let a = Alerter::start(
        AlertConfig::new(vec![
            Destination::Slack {
                url: "http://127.0.0.1:9/slack".into(),
            },
            Destination::PagerDuty {
                url: "http://127.0.0.1:9/pd".into(),
                routing_key: "rk".into(),
            },
        ]),
        std::sync::Arc::new(own),
    );
    (a, dir)
}

fn halted(event: &str) -> Alert {
    Alert {
        kind: AlertKind::RolloutHalted,
        title: "demo 1.1.0 (stable) halted at 10 %".into(),
        text: "error rate".into(),
        fields: vec![("app".into(), "demo".into())],
        event: Some(event.into()),
    }
}

fn rollout() -> RolloutRow {
    RolloutRow {
        app: "demo".into(),
        channel: "stable".into(),
        version: "1.1.0".into(),
        percentage: 10.0,
        status: "halted".into(),
        fallback_version: None,
        rolled_back: false,
        policy: "{}".into(),
        started_ms: 1000,
        stage_started_ms: 1000,
        updated_ms: 1000,
        high_error_alerted: false,
        low_adoption_alerted: false,
    }
}

fn channel(seq: i64) -> ChannelRow {
    ChannelRow {
        app: "demo".into(),
        channel: "stable".into(),
        version: "1.1.0".into(),
        sequence: seq,
        issued_ms: seq * 1000,
        expires_ms: seq * 1000 + 10,
        envelope: format!("{{\"seq\":{seq}}}"),
    }
}

async fn claims_take_due_rows_under_a_lease_and_record_outcomes(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(s) = open(kind, dir.path()).await else {
        return;
    };
    let (a, _own) = alerter();
    let w = a.fire("rollout_halted/demo/stable/1.1.0", &halted("d-1"), a.now());
    assert_eq!(w.outbox.len(), 2, "one row per destination");
    s.write_alerts(w.clone()).await.expect("write");
    // Written twice (a retried transaction): the same rows, not new ones.
    s.write_alerts(w.clone()).await.expect("write again");
    assert_eq!(s.outbox_pending().await.expect("pending"), 2);
    let states = s.alert_states().await.expect("states");
    assert_eq!(states.len(), 1);
    assert_eq!(
        states[0].dedup_key,
        "railgun/rollout_halted/demo/stable/1.1.0/d-1"
    );

    let claimed = s.claim_alerts(100, 15_100, 16).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(claimed
        .iter()
        .all(|r| r.attempts == 1 && r.next_ms == 15_100));
    // Leased: a second sender (another server, or this one) finds nothing due.
    assert!(s
        .claim_alerts(200, 15_200, 16)
        .await
        .expect("claim")
        .is_empty());
    let (slack, pd) = (&claimed[0], &claimed[1]);
    s.finish_alert(
        slack.id.clone(),
        slack.destination.clone(),
        Delivery::Delivered(300),
    )
    .await
    .expect("finish");
    s.finish_alert(
        pd.id.clone(),
        pd.destination.clone(),
        Delivery::Retry {
            next_ms: 1_000,
            error: "receiver answered 503".into(),
        },
    )
    .await
    .expect("finish");
    assert_eq!(s.outbox_pending().await.expect("pending"), 1);
    assert!(s
        .claim_alerts(999, 20_000, 16)
        .await
        .expect("claim")
        .is_empty());
    let again = s.claim_alerts(1_000, 20_000, 16).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].attempts, again[0].destination.as_str()),
        (2, pd.destination.as_str())
    );
    s.finish_alert(
        pd.id.clone(),
        pd.destination.clone(),
        Delivery::Failed {
            at_ms: 1_100,
            error: "receiver refused the alert with 400".into(),
        },
    )
    .await
    .expect("finish");
    assert_eq!(s.outbox_pending().await.expect("pending"), 0);
    let all = s.outbox(10).await.expect("outbox");
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|r| r.delivered_ms == Some(300)));
    assert!(all.iter().any(|r| r.failed_ms == Some(1_100)));

    // The resolve removes the state and queues the resolved rows.
    let r = a.resolve(&states[0]);
    s.write_alerts(r).await.expect("resolve");
    assert!(s.alert_states().await.expect("states").is_empty());
    let all = s.outbox(10).await.expect("outbox");
    assert_eq!(all.iter().filter(|r| r.status == "resolved").count(), 2);
}

async fn alert_is_written_exactly_when_its_decision_is(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(s) = open(kind, dir.path()).await else {
        return;
    };
    let (a, _own) = alerter();
    assert!(s
        .commit_change(RolloutChange {
            rollout: Some(rollout()),
            channel: Some((channel(1), None)),
            decision: None,
            alerts: AlertWrite::default(),
            fence: None,
        })
        .await
        .expect("commit"));
    // Lost compare-and-set (another server signed sequence 2): nothing is written, the
    // alert included.
    let lost = a.fire(
        "rollout_halted/demo/stable/1.1.0",
        &halted("d-lost"),
        a.now(),
    );
    assert!(!s
        .commit_change(RolloutChange {
            rollout: Some(rollout()),
            channel: Some((channel(3), Some(2))),
            decision: None,
            alerts: lost,
            fence: None,
        })
        .await
        .expect("commit"));
    assert_eq!(s.outbox_pending().await.expect("pending"), 0);
    assert!(s.alert_states().await.expect("states").is_empty());
    // Won: the alert is accepted with the change.
    let won = a.fire(
        "rollout_halted/demo/stable/1.1.0",
        &halted("d-won"),
        a.now(),
    );
    assert!(s
        .commit_change(RolloutChange {
            rollout: Some(rollout()),
            channel: Some((channel(2), Some(1))),
            decision: None,
            alerts: won,
            fence: None,
        })
        .await
        .expect("commit"));
    assert_eq!(s.outbox_pending().await.expect("pending"), 2);
    assert_eq!(s.alert_states().await.expect("states").len(), 1);
}

async fn finished_rows_are_purged_after_the_retention_on_the_injected_clock(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(s) = open(kind, dir.path()).await else {
        return;
    };
    let (a, _own) = alerter();
    let raised = a.now();
    s.write_alerts(a.fire("rollout_halted/demo/stable/1.1.0", &halted("d-2"), raised))
        .await
        .expect("write");
    let rows = s.claim_alerts(0, 1, 16).await.expect("claim");
    let (slack, pd) = (&rows[0], &rows[1]);
    s.finish_alert(
        slack.id.clone(),
        slack.destination.clone(),
        Delivery::Delivered(5),
    )
    .await
    .expect("delivered");
    s.finish_alert(
        pd.id.clone(),
        pd.destination.clone(),
        Delivery::Retry {
            next_ms: 10,
            error: "receiver answered 503".into(),
        },
    )
    .await
    .expect("retry");
    let clock = ManualClock::new(raised);
    let shared: SharedClock = std::sync::Arc::new(clock.clone());
    let config = RetentionConfig::default();
    assert_eq!(config.alerts_days, 7, "the default");
    let purge = || async {
        retention::purge_once(&s, &shared, &config)
            .await
            .expect("purge")
    };
    // Six days later: nothing is old enough.
    clock.advance(chrono::Duration::days(6));
    assert_eq!(purge().await.alerts, 0);
    assert_eq!(s.outbox(10).await.expect("outbox").len(), 2);
    // Eight days: the delivered row goes; the one still in delivery stays, whatever its age.
    clock.advance(chrono::Duration::days(2));
    assert_eq!(purge().await.alerts, 1);
    let left = s.outbox(10).await.expect("outbox");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].destination, pd.destination);
    assert_eq!(s.outbox_pending().await.expect("pending"), 1);
    // Given up: finished, so it goes at the next run.
    s.finish_alert(
        pd.id.clone(),
        pd.destination.clone(),
        Delivery::Failed {
            at_ms: 20,
            error: "receiver refused the alert with 400".into(),
        },
    )
    .await
    .expect("failed");
    assert_eq!(purge().await.alerts, 1);
    assert!(s.outbox(10).await.expect("outbox").is_empty());
    // Configurable: a newer alert under a 0-day retention goes at once once delivered.
    let now = clock.now();
    s.write_alerts(a.fire("rollout_halted/demo/stable/1.2.0", &halted("d-3"), now))
        .await
        .expect("write");
    for r in s.claim_alerts(0, 1, 16).await.expect("claim") {
        s.finish_alert(r.id, r.destination, Delivery::Delivered(30))
            .await
            .expect("delivered");
    }
    clock.advance(chrono::Duration::milliseconds(1));
    let zero = RetentionConfig {
        alerts_days: 0,
        ..config
    };
    let n = retention::purge_once(&s, &shared, &zero)
        .await
        .expect("purge");
    assert_eq!(n.alerts, 2);
}

both_stores!(
    claims_take_due_rows_under_a_lease_and_record_outcomes,
    alert_is_written_exactly_when_its_decision_is,
    finished_rows_are_purged_after_the_retention_on_the_injected_clock,
);
