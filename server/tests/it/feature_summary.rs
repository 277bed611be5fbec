//! `/analytics/feature-summary` from the feature-reach rollup answers what the per-user scan
//! answers, on both stores (SQLite always, PostgreSQL when `RAILGUN_TEST_DATABASE_URL` is
//! set): the same seeded events, sent over real HTTP in a shuffled order (late days after
//! later ones, duplicates, several sample rates, users whose rate changes), compared on every
//! range of the data set, then again after deleting users and after the retention job.

use std::sync::Arc;

use crate::db::{self, database, Kind};
use crate::support::{TestServer, ADMIN};
use chrono::{DateTime, Duration, Utc};
use railgun_core::analytics::{AnalyticsEvent, EventBatch, EventCategory};
use railgun_core::clock::SharedClock;
use railgun_server::analytics::retention::{self, RetentionConfig};
use railgun_server::store::{day_number, FeatureTotal};
use serde_json::Value;
use uuid::Uuid;

const DAYS: i32 = 21;
const NAMES: [&str; 5] = [
    "message_sent",
    "screen_view",
    "contact_added",
    "file_shared",
    "search_used",
];

fn now0() -> DateTime<Utc> {
    "2026-04-30T12:00:00Z".parse().expect("t")
}

fn first_day() -> DateTime<Utc> {
    "2026-04-01T08:00:00Z".parse().expect("t")
}

/// A small deterministic generator (no seed file, same data on every run and backend).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One event of `user` named `name` at `at`.
pub fn event(user: &str, name: &str, at: DateTime<Utc>) -> AnalyticsEvent {
    AnalyticsEvent {
        id: Uuid::new_v4(),
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

/// One batch per user and day (the day's events of a few names), with that user's rate.
fn seed() -> Vec<EventBatch> {
    let mut g = Lcg(0x5eed);
    let rates = [1.0, 0.5, 0.25, 0.1];
    let mut batches = Vec::new();
    for u in 0..48 {
        let user = format!("user-{u:02}");
        let rate = rates[u % rates.len()];
        for d in 0..DAYS {
            if g.below(3) == 0 {
                continue; // not active that day
            }
            let mut events = Vec::new();
            for name in NAMES {
                if g.below(2) == 0 {
                    for i in 0..=g.below(4) {
                        let at = first_day()
                            + Duration::days(d as i64)
                            + Duration::minutes((i * 7) as i64);
                        events.push(event(&user, name, at));
                    }
                }
            }
            if events.is_empty() {
                continue;
            }
            // Users 40-47 change their rate on days 8-11 (a new app version sampling
            // differently): ranges over those days need each user's highest rate.
            let rate = if u >= 40 && (8..12).contains(&d) {
                if rate == 1.0 {
                    0.5
                } else {
                    1.0
                }
            } else {
                rate
            };
            batches.push(EventBatch {
                events,
                sent_at: Some(now0()),
                sample_rate: rate,
                dropped: 0,
                queued: 0,
            });
        }
    }
    // Shuffled: later days often arrive before earlier ones.
    for i in (1..batches.len()).rev() {
        let j = g.below(i as u64 + 1) as usize;
        batches.swap(i, j);
    }
    batches
}

fn same(a: &[FeatureTotal], b: &[FeatureTotal]) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.events == y.events
                && x.users == y.users
                && close(x.events_estimate, y.events_estimate)
                && close(x.users_estimate, y.users_estimate)
        })
}

/// Compares the rollup and the scan on every range of the data set (and some limits);
/// returns how many ranges the rollup answered (the others fell back to the scan).
async fn compare_all(h: &TestServer, label: &str) -> (usize, usize) {
    let d0 = day_number(first_day().date_naive());
    let (mut fast, mut fallback) = (0, 0);
    for from in d0 - 2..d0 + DAYS + 1 {
        for to in from..d0 + DAYS + 1 {
            for limit in [500, 2] {
                let scan = h
                    .state()
                    .store
                    .feature_totals_scan(from, to, limit)
                    .await
                    .expect("scan");
                match h
                    .state()
                    .store
                    .feature_totals_rollup(from, to, limit)
                    .await
                    .expect("rollup")
                {
                    Some(r) => {
                        assert!(
                            same(&r, &scan),
                            "{label}: {from}..={to} limit {limit}\nrollup {r:?}\nscan   {scan:?}"
                        );
                        fast += 1;
                    }
                    None => fallback += 1,
                }
                let total = h
                    .state()
                    .store
                    .feature_totals(from, to, limit)
                    .await
                    .expect("totals");
                assert!(same(&total, &scan), "{label}: {from}..={to}");
            }
        }
    }
    (fast, fallback)
}

async fn rollup_answers_what_the_scan_answers(kind: Kind) {
    let Some(mut h) = TestServer::with(kind, "feature-summary", now0(), |_| {}).await else {
        return;
    };
    let batches = seed();
    for (i, b) in batches.iter().enumerate() {
        h.send_events(b).await;
        if i % 5 == 0 {
            h.send_events(b).await; // a retried batch: duplicates change nothing
        }
    }
    h.flush().await;
    let (fast, fallback) = compare_all(&h, "seeded").await;
    assert!(fast >= 200, "the rollup answered {fast} ranges");
    assert!(fallback > 50, "rate changes fell back {fallback} times");

    // The endpoint answers the scan's numbers (JSON of the same rows).
    let r: Value = h
        .read("/analytics/feature-summary?from=2026-04-03&to=2026-04-07")
        .await;
    let d = |s: &str| day_number(s.parse().expect("d"));
    let scan = h
        .state()
        .store
        .feature_totals_scan(d("2026-04-03"), d("2026-04-07"), 50)
        .await
        .expect("scan");
    let got: Vec<FeatureTotal> = r["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| FeatureTotal {
            name: f["name"].as_str().expect("name").into(),
            events: f["events"].as_u64().expect("n"),
            events_estimate: f["eventsEstimate"].as_f64().expect("f"),
            users: f["users"].as_u64().expect("n"),
            users_estimate: f["usersEstimate"].as_f64().expect("f"),
        })
        .collect();
    assert!(!got.is_empty());
    assert!(same(&got, &scan), "{got:?} {scan:?}");

    // Late events for early days, after everything else (re-links the later days).
    let late: Vec<_> = (0..6)
        .map(|u| event(&format!("user-{u:02}"), "file_shared", first_day()))
        .collect();
    h.send_events(&EventBatch {
        events: late,
        sent_at: Some(now0()),
        sample_rate: [1.0, 0.5, 0.25, 0.1][0],
        dropped: 0,
        queued: 0,
    })
    .await;
    h.flush().await;
    compare_all(&h, "late events").await;

    // Deleting users removes them from both answers alike.
    for u in ["user-03", "user-17", "user-41"] {
        let r = h
            .http
            .delete(format!("{}/analytics/users/{u}", h.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 200);
    }
    compare_all(&h, "after deletion").await;

    // The retention job drops the first days' rollups: users whose previous day is gone
    // count on their first remaining day, in ranges starting before the cut too.
    h.clock.advance(Duration::days(343)); // 2027-04-08: aggregates before 2026-04-08 go
    let clock: SharedClock = Arc::new(h.clock.clone());
    let p = retention::purge_once(&h.state().store, &clock, &RetentionConfig::default())
        .await
        .expect("purge");
    assert!(p.aggregates > 0, "{p:?}");
    let (fast, _) = compare_all(&h, "after retention").await;
    assert!(fast > 100, "{fast}");
    h.stop().await;
}

/// `daily_feature` rows as a store of schema version 3 (before the rollup) holds them:
/// per name, day and user, with rates that change for some users.
fn old_rows() -> Vec<(String, i32, String, i64, f64)> {
    let mut g = Lcg(0xbacf);
    let d0 = day_number(first_day().date_naive());
    let mut rows = Vec::new();
    for u in 0..60 {
        for d in 0..DAYS {
            for name in NAMES {
                if g.below(3) != 0 {
                    continue;
                }
                let rate = match (u % 3, d >= 10 && u % 7 == 0) {
                    (_, true) => 0.2,
                    (0, _) => 1.0,
                    (1, _) => 0.5,
                    _ => 0.1,
                };
                let events = 1 + g.below(5) as i64;
                rows.push((name.to_string(), d0 + d, format!("old-{u}"), events, rate));
            }
        }
    }
    rows
}

async fn migration_backfills_the_rollup(kind: Kind) {
    let dir = tempfile::tempdir().expect("tmp");
    let Some(url) = database(kind, &dir.path().join("db/a.db"), "feature-summary").await else {
        return;
    };
    let rows = old_rows();
    match kind {
        Kind::Sqlite => {
            let path = url.strip_prefix("sqlite:").expect("sqlite url");
            std::fs::create_dir_all(std::path::Path::new(path).parent().expect("dir"))
                .expect("mkdir");
            let mut c = rusqlite::Connection::open(path).expect("open");
            for sql in &railgun_server::store::sqlite::MIGRATIONS[..3] {
                c.execute_batch(sql).expect("old schema");
            }
            c.pragma_update(None, "user_version", 3).expect("version");
            let tx = c.transaction().expect("tx");
            for (n, d, u, e, r) in &rows {
                tx.execute(
                    "INSERT INTO daily_feature (name, day, user_id, events, sample_rate) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![n, d, u, e, r],
                )
                .expect("row");
            }
            tx.commit().expect("commit");
        }
        Kind::Postgres => {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            for sql in &railgun_server::store::postgres::MIGRATIONS[..3] {
                c.batch_execute(sql).await.expect("old schema");
            }
            c.batch_execute(
                "CREATE TABLE railgun_schema_version (version INTEGER NOT NULL);
                 INSERT INTO railgun_schema_version VALUES (3);",
            )
            .await
            .expect("version");
            for (n, d, u, e, r) in &rows {
                c.execute(
                    "INSERT INTO daily_feature (name, day, user_id, events, sample_rate) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[n, d, u, e, r],
                )
                .await
                .expect("row");
            }
        }
    }
    // Opening migrates (4: columns, buckets, backfill).
    let store = railgun_server::store::open(&url).await.expect("migrate");
    let d0 = day_number(first_day().date_naive());
    let (mut fast, mut fallback) = (0, 0);
    for from in d0 - 1..d0 + DAYS + 1 {
        for to in from..d0 + DAYS + 1 {
            let scan = store
                .feature_totals_scan(from, to, 500)
                .await
                .expect("scan");
            match store
                .feature_totals_rollup(from, to, 500)
                .await
                .expect("rollup")
            {
                Some(r) => {
                    assert!(same(&r, &scan), "{from}..={to}\n{r:?}\n{scan:?}");
                    fast += 1;
                }
                None => fallback += 1,
            }
        }
    }
    // Rates change on day 10 for some users: ranges across it fall back, others do not.
    assert!(fast >= 100 && fallback >= 50, "{fast} {fallback}");
    drop(store);
    if let Kind::Postgres = kind {
        db::drop_database(&url);
    }
}

both_stores!(
    rollup_answers_what_the_scan_answers,
    migration_backfills_the_rollup,
);
