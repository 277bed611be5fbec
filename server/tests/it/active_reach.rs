//! DAU / WAU / MAU and the DAU series from the active-user reach rollup answer what the
//! per-user rows answer, on both stores (SQLite always, PostgreSQL when
//! `RAILGUN_TEST_DATABASE_URL` is set):
//!
//! - a hand-checked set (five users, a late day, a duplicate, a rate change) over real HTTP,
//!   its numbers worked out by hand below, then after an erasure and the retention job;
//! - a seeded set (48 users × 21 days, shuffled so late days arrive after later ones,
//!   retried batches, four sample rates, some users changing rate) compared on every range
//!   with the answer computed here from the seed, then after erasures and the retention job;
//! - retention from the cohort rollup on the seeded set: every cohort's size and its users
//!   active on each day against the answer computed from the seed (late days move users to
//!   an earlier cohort), then after erasures and the retention job.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::db::Kind;
use crate::feature_summary::{event, Lcg};
use crate::support::{TestServer, ADMIN};
use chrono::{DateTime, Duration, Utc};
use railgun_core::analytics::EventBatch;
use railgun_core::clock::SharedClock;
use railgun_server::analytics::retention::{self, RetentionConfig};
use railgun_server::store::{day_number, Count};
use serde_json::{json, Value};

fn now0() -> DateTime<Utc> {
    "2026-04-30T12:00:00Z".parse().expect("t")
}

/// Day 0 of both sets, 08:00.
fn day0() -> DateTime<Utc> {
    "2026-04-01T08:00:00Z".parse().expect("t")
}

fn date(d: i64) -> String {
    (day0() + Duration::days(d)).date_naive().to_string()
}

fn batch(user: &str, day: i64, rate: f64) -> EventBatch {
    EventBatch {
        events: vec![event(user, "screen_view", day0() + Duration::days(day))],
        sent_at: Some(now0()),
        sample_rate: rate,
        dropped: 0,
        queued: 0,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// `(users, estimate)` of `/analytics/{what}?date=`.
async fn active(h: &TestServer, what: &str, d: i64) -> (u64, f64) {
    let v: Value = h.read(&format!("/analytics/{what}?date={}", date(d))).await;
    (
        v["users"].as_u64().expect("users"),
        v["estimate"].as_f64().expect("estimate"),
    )
}

async fn range(h: &TestServer, from: i64, to: i64) -> Count {
    let d0 = day_number(day0().date_naive());
    h.state()
        .store
        .active_users(d0 + from as i32, d0 + to as i32)
        .await
        .expect("active users")
}

async fn series(h: &TestServer, from: i64, to: i64) -> Vec<(u64, f64)> {
    let v: Value = h
        .read(&format!(
            "/analytics/dau-series?from={}&to={}",
            date(from),
            date(to)
        ))
        .await;
    v["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| {
            (
                d["users"].as_u64().expect("u"),
                d["estimate"].as_f64().expect("e"),
            )
        })
        .collect()
}

async fn erase(h: &TestServer, user: &str) {
    let r = h
        .http
        .delete(format!("{}/analytics/users/{user}", h.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
}

/// Runs the retention job with the clock set so that rollups before day `cut` go.
async fn purge_before(h: &TestServer, cut: i64) {
    h.clock
        .set(day0() + Duration::days(cut + 365) - Duration::hours(8));
    let clock: SharedClock = Arc::new(h.clock.clone());
    let p = retention::purge_once(&h.state().store, &clock, &RetentionConfig::default())
        .await
        .expect("purge");
    assert!(p.aggregates > 0, "{p:?}");
}

async fn hand_checked(kind: Kind) {
    let Some(mut h) = TestServer::with(kind, "active-reach", now0(), |_| {}).await else {
        return;
    };
    // (user, day, rate), in the order sent: cat's day 0 arrives after its day 4, ann's day
    // 1 twice, dan's rate halves on day 3.
    let sent = [
        ("ann", 0, 1.0),
        ("ann", 1, 1.0),
        ("bob", 1, 0.5),
        ("bob", 2, 0.5),
        ("dan", 2, 1.0),
        ("cat", 4, 0.25),
        ("ann", 4, 1.0),
        ("dan", 3, 0.5),
        ("eve", 6, 1.0),
        ("cat", 0, 0.25),
        ("ann", 1, 1.0),
    ];
    for (u, d, r) in sent {
        h.send_events(&batch(u, d, r)).await;
    }
    h.flush().await;
    // Per day: 0 ann cat(×4) | 1 ann bob(×2) | 2 bob(×2) dan | 3 dan(×2) | 4 ann cat(×4) |
    // 5 none | 6 eve.
    let dau = [
        (2, 5.0),
        (2, 3.0),
        (2, 3.0),
        (1, 2.0),
        (2, 5.0),
        (0, 0.0),
        (1, 1.0),
    ];
    for (d, want) in dau.iter().enumerate() {
        assert_eq!(active(&h, "dau", d as i64).await, *want, "DAU of day {d}");
    }
    assert_eq!(series(&h, 0, 6).await, dau.to_vec());
    // Days 0-6: all five; dan at its highest rate (1.0): 1 + 2 + 4 + 1 + 1 (dan's rate
    // changed inside the range: the per-user rows answer).
    assert_eq!(active(&h, "wau", 6).await, (5, 9.0));
    assert_eq!(active(&h, "mau", 6).await, (5, 9.0));
    // Days 4-6 (no rate change inside): ann, cat, eve.
    assert_eq!(
        range(&h, 4, 6).await,
        Count {
            raw: 3,
            estimate: 6.0
        }
    );
    // Days 1-2: ann, bob, dan.
    assert_eq!(
        range(&h, 1, 2).await,
        Count {
            raw: 3,
            estimate: 4.0
        }
    );
    // Days 3-5: dan (0.5), ann, cat.
    assert_eq!(
        range(&h, 3, 5).await,
        Count {
            raw: 3,
            estimate: 7.0
        }
    );

    // Erasure: cat leaves every answer.
    erase(&h, "cat").await;
    assert_eq!(active(&h, "dau", 0).await, (1, 1.0));
    assert_eq!(active(&h, "wau", 6).await, (4, 5.0));
    assert_eq!(
        range(&h, 4, 6).await,
        Count {
            raw: 2,
            estimate: 2.0
        }
    );
    assert_eq!(
        range(&h, 3, 5).await,
        Count {
            raw: 2,
            estimate: 3.0
        }
    );

    // Retention drops days 0 and 1: ranges starting before day 2 start there.
    purge_before(&h, 2).await;
    // Days 2-6: bob (2), dan (1.0 at its highest), ann, eve.
    assert_eq!(
        range(&h, 0, 6).await,
        Count {
            raw: 4,
            estimate: 5.0
        }
    );
    // Days 3-6: dan (0.5; its day 2 is kept, before the range), ann (its day 1 is gone), eve.
    assert_eq!(
        range(&h, 3, 6).await,
        Count {
            raw: 3,
            estimate: 4.0
        }
    );
    assert_eq!(
        range(&h, 4, 4).await,
        Count {
            raw: 1,
            estimate: 1.0
        }
    );
    h.stop().await;
}

const DAYS: i64 = 21;

/// The seeded set: one batch per active user-day (the day's rate), shuffled; and the
/// rows it makes, `(day, user) → rate`.
fn seed() -> (Vec<EventBatch>, BTreeMap<(i64, String), f64>) {
    let mut g = Lcg(0xac71);
    let rates = [1.0, 0.5, 0.25, 0.1];
    let mut batches = Vec::new();
    let mut rows = BTreeMap::new();
    for u in 0..48 {
        let user = format!("user-{u:02}");
        for d in 0..DAYS {
            if g.below(5) < 2 {
                continue;
            }
            let mut rate = rates[u % rates.len()];
            // Users 40-47 change rate on days 8-11.
            if u >= 40 && (8..12).contains(&d) {
                rate = if rate == 1.0 { 0.5 } else { 1.0 };
            }
            batches.push(batch(&user, d, rate));
            rows.insert((d, user.clone()), rate);
        }
    }
    for i in (1..batches.len()).rev() {
        let j = g.below(i as u64 + 1) as usize;
        batches.swap(i, j);
    }
    (batches, rows)
}

/// Distinct users of `from..=to` in `rows`, each at its highest rate.
fn expected(rows: &BTreeMap<(i64, String), f64>, from: i64, to: i64) -> Count {
    let mut best: HashMap<&str, f64> = HashMap::new();
    for ((d, u), r) in rows.range((from, String::new())..(to + 1, String::new())) {
        debug_assert!((from..=to).contains(d));
        let b = best.entry(u).or_insert(*r);
        *b = b.max(*r);
    }
    Count {
        raw: best.len() as u64,
        estimate: best.values().map(|r| 1.0 / r).sum(),
    }
}

async fn compare_all(h: &TestServer, rows: &BTreeMap<(i64, String), f64>, label: &str) {
    for from in -2..DAYS + 1 {
        for to in from..DAYS + 1 {
            let got = range(h, from, to).await;
            let want = expected(rows, from, to);
            assert!(
                got.raw == want.raw && close(got.estimate, want.estimate),
                "{label}: days {from}..={to}: got {got:?}, want {want:?}"
            );
        }
    }
    let got = series(h, -2, DAYS).await;
    for (i, (users, est)) in got.iter().enumerate() {
        let d = i as i64 - 2;
        let want = expected(rows, d, d);
        assert!(
            *users == want.raw && close(*est, want.estimate),
            "{label}: DAU series day {d}: got {users} {est}, want {want:?}"
        );
    }
    // Every user-day is one `screen_view`: the feature's days are the DAU series (days
    // without users left out), events = users.
    let v = h
        .read(&format!(
            "/analytics/features?name=screen_view&from={}&to={}",
            date(-2),
            date(DAYS)
        ))
        .await;
    let days: Vec<(String, u64, u64, f64, f64)> = v["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| {
            (
                d["date"].as_str().expect("date").to_string(),
                d["events"].as_u64().expect("e"),
                d["users"].as_u64().expect("u"),
                d["eventsEstimate"].as_f64().expect("ee"),
                d["usersEstimate"].as_f64().expect("ue"),
            )
        })
        .collect();
    let want: Vec<(String, Count)> = (-2..=DAYS)
        .map(|d| (date(d), expected(rows, d, d)))
        .filter(|(_, c)| c.raw > 0)
        .collect();
    assert_eq!(days.len(), want.len(), "{label}: feature days {v}");
    for ((date, events, users, ee, ue), (wd, w)) in days.iter().zip(&want) {
        assert!(
            date == wd
                && *events == w.raw
                && *users == w.raw
                && close(*ee, w.estimate)
                && close(*ue, w.estimate),
            "{label}: feature day {wd}: got {events} {users} {ee} {ue}, want {w:?}"
        );
    }
}

async fn seeded(kind: Kind) {
    let Some(mut h) = TestServer::with(kind, "active-reach", now0(), |_| {}).await else {
        return;
    };
    let (batches, mut rows) = seed();
    for (i, b) in batches.iter().enumerate() {
        h.send_events(b).await;
        if i % 7 == 0 {
            h.send_events(b).await; // a retried batch changes nothing
        }
    }
    h.flush().await;
    compare_all(&h, &rows, "seeded").await;

    let gone: HashSet<&str> = ["user-03", "user-17", "user-42"].into();
    for u in &gone {
        erase(&h, u).await;
    }
    rows.retain(|(_, u), _| !gone.contains(u.as_str()));
    compare_all(&h, &rows, "after erasure").await;

    purge_before(&h, 5).await;
    rows.retain(|(d, _), _| *d >= 5);
    compare_all(&h, &rows, "after retention").await;
    let v = h
        .read(&format!("/analytics/mau?date={}", date(DAYS - 1)))
        .await;
    let want = expected(&rows, DAYS - 30, DAYS - 1);
    assert_eq!(v["users"], json!(want.raw), "{v}");
    h.stop().await;
}

/// Each user's cohort as the store keeps it: `user → (first day, rate of the first batch
/// sent)`, from the batches in the order sent.
fn cohorts(batches: &[EventBatch]) -> HashMap<String, (i64, f64)> {
    let d0 = day0().date_naive();
    let mut out: HashMap<String, (i64, f64)> = HashMap::new();
    for b in batches {
        let e = &b.events[0];
        let d = (e.timestamp.date_naive() - d0).num_days();
        let c = out.entry(e.user_id.clone()).or_insert((d, b.sample_rate));
        c.0 = c.0.min(d);
    }
    out
}

/// `(size, estimate)` then `(users, estimate)` of each day `c..=c + DAYS` of the cohort `c`.
fn expected_retention(
    rows: &BTreeMap<(i64, String), f64>,
    cohorts: &HashMap<String, (i64, f64)>,
    c: i64,
) -> Vec<(u64, f64)> {
    let count = |users: &mut dyn Iterator<Item = &String>| {
        users
            .filter_map(|u| cohorts.get(u).filter(|(f, _)| *f == c))
            .fold((0, 0.0), |(n, e), (_, r)| (n + 1, e + 1.0 / r))
    };
    let mut out = vec![count(&mut cohorts.keys())];
    for d in c..=c + DAYS {
        out.push(count(
            &mut rows.keys().filter(|(day, _)| *day == d).map(|(_, u)| u),
        ));
    }
    out
}

async fn compare_retention(
    h: &TestServer,
    rows: &BTreeMap<(i64, String), f64>,
    cohorts: &HashMap<String, (i64, f64)>,
    label: &str,
) {
    for c in -1..DAYS {
        let v = h
            .read(&format!(
                "/analytics/retention?cohort={}&days={DAYS}",
                date(c)
            ))
            .await;
        let mut got = vec![(
            v["size"].as_u64().expect("size"),
            v["sizeEstimate"].as_f64().expect("size estimate"),
        )];
        got.extend(v["days"].as_array().expect("days").iter().map(|d| {
            (
                d["users"].as_u64().expect("users"),
                d["estimate"].as_f64().expect("estimate"),
            )
        }));
        let want = expected_retention(rows, cohorts, c);
        assert_eq!(got.len(), want.len(), "{label}: cohort {c}: {v}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g.0 == w.0 && close(g.1, w.1),
                "{label}: cohort {c}, entry {i}: got {g:?}, want {w:?}"
            );
        }
    }
}

async fn retention_seeded(kind: Kind) {
    let Some(mut h) = TestServer::with(kind, "cohort-rollup", now0(), |_| {}).await else {
        return;
    };
    let (batches, mut rows) = seed();
    let mut cohorts = cohorts(&batches);
    for (i, b) in batches.iter().enumerate() {
        h.send_events(b).await;
        if i % 5 == 0 {
            h.send_events(b).await; // a retried batch changes nothing
        }
    }
    h.flush().await;
    compare_retention(&h, &rows, &cohorts, "seeded").await;

    let gone: HashSet<&str> = ["user-01", "user-20", "user-44"].into();
    for u in &gone {
        erase(&h, u).await;
    }
    rows.retain(|(_, u), _| !gone.contains(u.as_str()));
    cohorts.retain(|u, _| !gone.contains(u.as_str()));
    compare_retention(&h, &rows, &cohorts, "after erasure").await;

    // A late day before a user's first day moves the user's days to the earlier cohort.
    let (user, (first, rate)) = cohorts
        .iter()
        .max_by_key(|(u, (f, _))| (*f, std::cmp::Reverse(u.as_str())))
        .map(|(u, c)| (u.clone(), *c))
        .expect("a user");
    assert!(first >= 1, "{user} first seen on day {first}");
    h.send_events(&batch(&user, first - 2, rate)).await;
    h.flush().await;
    rows.insert((first - 2, user.clone()), rate);
    cohorts.insert(user, (first - 2, rate));
    compare_retention(&h, &rows, &cohorts, "after a late day").await;

    // Retention drops days 0-5: users with no day left go; the others keep their cohort.
    purge_before(&h, 6).await;
    rows.retain(|(d, _), _| *d >= 6);
    cohorts.retain(|u, _| rows.keys().any(|(_, r)| r == u));
    compare_retention(&h, &rows, &cohorts, "after retention").await;
    h.stop().await;
}

both_stores!(hand_checked, seeded, retention_seeded);
