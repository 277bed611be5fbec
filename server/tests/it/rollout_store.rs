//! The rollout tables, written once and run against both stores: SQLite always, PostgreSQL
//! when `RAILGUN_TEST_DATABASE_URL` is set (each test gets a fresh database;
//! `scripts/start-postgres.sh` starts a server and prints the variable).

use crate::db::{database, Kind};
use chrono::{DateTime, Utc};
use railgun_server::store::rollout::{
    ChannelRow, Decision, HealthCounts, HealthRow, ReleaseRow, RolloutChange, RolloutRow,
};
use railgun_server::store::{self, SharedStore};
use uuid::Uuid;

async fn open(kind: Kind, dir: &std::path::Path) -> Option<SharedStore> {
    let url = database(kind, &dir.join("rollout.db"), "rollout store").await?;
    Some(store::open(&url).await.expect("open store"))
}

fn health(id: u32, machine: u32, version: &str, errors: i64, crashes: i64, at: i64) -> HealthRow {
    HealthRow {
        id: Uuid::from_u128(id as u128).to_string(),
        machine_id: format!("{machine:064x}"),
        app: "demo".into(),
        version: version.into(),
        channel: "stable".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        period_start_ms: at - 3_600_000,
        period_end_ms: at,
        sessions: 1,
        errors,
        crashes,
        boot_reverts: 0,
        session_ends: None,
        received_ms: at,
    }
}

fn rollout(version: &str, pct: f64, started: i64) -> RolloutRow {
    RolloutRow {
        app: "demo".into(),
        channel: "stable".into(),
        version: version.into(),
        percentage: pct,
        status: "active".into(),
        fallback_version: None,
        rolled_back: false,
        policy: "{}".into(),
        started_ms: started,
        stage_started_ms: started,
        updated_ms: started,
        high_error_alerted: false,
        low_adoption_alerted: false,
    }
}

fn channel(version: &str, seq: i64) -> ChannelRow {
    ChannelRow {
        app: "demo".into(),
        channel: "stable".into(),
        version: version.into(),
        sequence: seq,
        issued_ms: seq * 1000,
        expires_ms: seq * 1000 + 10,
        envelope: format!("{{\"seq\":{seq}}}"),
    }
}

fn decision(version: &str, action: &str, at: DateTime<Utc>) -> Decision {
    Decision {
        id: Uuid::new_v4().to_string(),
        at,
        app: "demo".into(),
        channel: "stable".into(),
        version: version.into(),
        action: action.into(),
        actor: "engine".into(),
        from_percentage: 10.0,
        to_percentage: 25.0,
        installs: 1000,
        error_rate: 0.08,
        error_lower: 0.0647,
        error_upper: 0.0985,
        crash_rate: 0.0,
        crash_lower: 0.0,
        crash_upper: 0.0038,
        reason: "numbers".into(),
    }
}

async fn health_counts_distinct_installs_and_drops_duplicates(kind: Kind) {
    let dir = tempfile::tempdir().expect("tmp");
    let Some(s) = open(kind, dir.path()).await else {
        return;
    };
    assert!(s
        .insert_health(health(1, 1, "1.1.0", 2, 0, 1000))
        .await
        .expect("insert"));
    assert!(!s
        .insert_health(health(1, 1, "1.1.0", 2, 0, 1000))
        .await
        .expect("dup"));
    // Same machine, another period: still one install, now with a crash too.
    assert!(s
        .insert_health(health(2, 1, "1.1.0", 0, 1, 2000))
        .await
        .expect("insert"));
    assert!(s
        .insert_health(health(3, 2, "1.1.0", 0, 0, 3000))
        .await
        .expect("insert"));
    assert!(s
        .insert_health(health(4, 3, "1.1.0", 1, 0, 4000))
        .await
        .expect("insert"));
    assert!(s
        .insert_health(health(5, 9, "1.0.0", 5, 5, 5000))
        .await
        .expect("insert"));
    let c = s
        .health_counts("demo".into(), "stable".into(), "1.1.0".into())
        .await
        .expect("counts");
    assert_eq!(
        c,
        HealthCounts {
            installs: 3,
            with_errors: 2,
            with_crashes: 1
        }
    );
    let none = s
        .health_counts("demo".into(), "beta".into(), "1.1.0".into())
        .await
        .expect("counts");
    assert_eq!(none, HealthCounts::default());
    let pop = |since| s.channel_population("demo".into(), "stable".into(), since);
    assert_eq!(pop(0).await.expect("pop"), 4);
    assert_eq!(pop(3000).await.expect("pop"), 3);
    assert_eq!(pop(6000).await.expect("pop"), 0);
}

async fn releases_are_stored_and_pending_starts_updated(kind: Kind) {
    let dir = tempfile::tempdir().expect("tmp");
    let Some(s) = open(kind, dir.path()).await else {
        return;
    };
    assert!(s
        .get_release("demo".into(), "1.0.0".into())
        .await
        .expect("get")
        .is_none());
    let mut r = ReleaseRow {
        app: "demo".into(),
        version: "1.0.0".into(),
        channel: "stable".into(),
        envelope: "{\"payload\":\"x\"}".into(),
        manifest_sha256: "ab".repeat(32),
        created_ms: 42,
        pending_start: true,
        pending_percentage: Some(25.0),
        pending_fallback: Some("0.9.0".into()),
    };
    s.put_release(r.clone()).await.expect("put");
    assert_eq!(
        s.get_release("demo".into(), "1.0.0".into())
            .await
            .expect("get"),
        Some(r.clone())
    );
    // A second put changes only the pending fields; the manifest is immutable.
    let mut changed = r.clone();
    changed.pending_start = false;
    changed.pending_percentage = None;
    changed.pending_fallback = None;
    changed.envelope = "other".into();
    s.put_release(changed).await.expect("put");
    r.pending_start = false;
    r.pending_percentage = None;
    r.pending_fallback = None;
    assert_eq!(
        s.get_release("demo".into(), "1.0.0".into())
            .await
            .expect("get"),
        Some(r)
    );
}

async fn changes_are_atomic_and_sequences_compare_and_set(kind: Kind) {
    let dir = tempfile::tempdir().expect("tmp");
    let Some(s) = open(kind, dir.path()).await else {
        return;
    };
    let t = |ms: i64| DateTime::from_timestamp_millis(ms).expect("t");
    let ok = s
        .commit_change(RolloutChange {
            rollout: Some(rollout("1.0.0", 10.0, 1000)),
            channel: Some((channel("1.0.0", 1), None)),
            decision: Some(decision("1.0.0", "start", t(1000))),
            alerts: Default::default(),
            fence: None,
        })
        .await
        .expect("commit");
    assert!(ok);
    // A second "new channel" loses: nothing of it is written.
    let lost = s
        .commit_change(RolloutChange {
            rollout: Some(rollout("1.0.0", 50.0, 1000)),
            channel: Some((channel("1.0.0", 1), None)),
            decision: Some(decision("1.0.0", "advance", t(2000))),
            alerts: Default::default(),
            fence: None,
        })
        .await
        .expect("commit");
    assert!(!lost);
    // A stale expected sequence loses too.
    let stale = s
        .commit_change(RolloutChange {
            rollout: Some(rollout("1.0.0", 50.0, 1000)),
            channel: Some((channel("1.0.0", 2), Some(0))),
            decision: Some(decision("1.0.0", "advance", t(2000))),
            alerts: Default::default(),
            fence: None,
        })
        .await
        .expect("commit");
    assert!(!stale);
    let r = s
        .get_rollout("demo".into(), "stable".into(), "1.0.0".into())
        .await
        .expect("get")
        .expect("rollout");
    assert_eq!(r.percentage, 10.0);
    let d = s
        .decisions("demo".into(), "stable".into(), "1.0.0".into(), 10)
        .await
        .expect("decisions");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].action, "start");
    assert_eq!(d[0].at, t(1000));
    assert_eq!(d[0].installs, 1000);

    // The right expected sequence wins.
    let mut advanced = rollout("1.0.0", 25.0, 1000);
    advanced.high_error_alerted = true;
    advanced.fallback_version = Some("0.9.0".into());
    assert!(s
        .commit_change(RolloutChange {
            rollout: Some(advanced.clone()),
            channel: Some((channel("1.0.0", 2), Some(1))),
            decision: Some(decision("1.0.0", "advance", t(2000))),
            alerts: Default::default(),
            fence: None,
        })
        .await
        .expect("commit"));
    assert_eq!(
        s.get_channel("demo".into(), "stable".into())
            .await
            .expect("get"),
        Some(channel("1.0.0", 2))
    );
    assert_eq!(
        s.get_rollout("demo".into(), "stable".into(), "1.0.0".into())
            .await
            .expect("get"),
        Some(advanced)
    );
    // A decision without a channel change (warnings, low adoption).
    assert!(s
        .commit_change(RolloutChange {
            rollout: None,
            channel: None,
            decision: Some(decision("1.0.0", "low_adoption", t(3000))),
            alerts: Default::default(),
            fence: None,
        })
        .await
        .expect("commit"));
    let d = s
        .decisions("demo".into(), "stable".into(), "1.0.0".into(), 10)
        .await
        .expect("decisions");
    let actions: Vec<&str> = d.iter().map(|d| d.action.as_str()).collect();
    assert_eq!(actions, ["low_adoption", "advance", "start"]);
    let d = s
        .decisions("demo".into(), "stable".into(), "1.0.0".into(), 2)
        .await
        .expect("decisions");
    assert_eq!(d.len(), 2);

    // A newer rollout on the channel.
    assert!(s
        .commit_change(RolloutChange {
            rollout: Some(rollout("1.1.0", 10.0, 5000)),
            channel: Some((channel("1.1.0", 3), Some(2))),
            decision: None,
            alerts: Default::default(),
            fence: None,
        })
        .await
        .expect("commit"));
    let all = s.list_rollouts().await.expect("list");
    let versions: Vec<&str> = all.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"]);
    let channels = s.list_channels().await.expect("channels");
    assert_eq!(channels, vec![channel("1.1.0", 3)]);
}

both_stores!(
    health_counts_distinct_installs_and_drops_duplicates,
    releases_are_stored_and_pending_starts_updated,
    changes_are_atomic_and_sequences_compare_and_set,
);

/// The engine's lease on PostgreSQL: one holder at a time; a server that resigned (it is
/// stopping) takes it no more, even when an engine run asks, and another takes it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resigned_server_takes_the_lease_no_more() {
    use railgun_server::leader::{Leadership, ENGINE_LEASE};
    let dir = tempfile::tempdir().expect("tmp");
    let Some(s) = open(Kind::Postgres, dir.path()).await else {
        return;
    };
    let lease = std::time::Duration::from_secs(60);
    let a = Leadership::new(s.clone(), ENGINE_LEASE, lease);
    let b = Leadership::new(s.clone(), ENGINE_LEASE, lease);
    assert!(a.try_lead().await.expect("a").is_some());
    assert!(b.try_lead().await.expect("b").is_none(), "a holds it");
    a.resign().await;
    assert!(!a.is_leader());
    assert!(
        a.try_lead().await.expect("a again").is_none(),
        "a stopping server's engine run took the lease back"
    );
    assert!(b.try_lead().await.expect("b").is_some(), "released at once");
    assert!(a.try_lead().await.expect("a").is_none(), "b holds it");
}
