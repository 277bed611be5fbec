//! Two servers ingesting into one PostgreSQL database at once: two store handles (two writer
//! connections, as two `railgun serve` processes have) write the same events at the same
//! time, each group merged in the opposite order (as two servers' group commits may merge a
//! client's retried request), so their transactions lock the same event ids in opposite
//! orders and PostgreSQL ends one of them as a deadlock. Every event is new for exactly one
//! writer, none is lost or counted twice, no group fails (the one ended is written again),
//! and the rollups still answer what the per-user rows answer. Two writers adding different
//! days of the same users keep the feature reach buckets exact.

use railgun_server::store::{self, StoredEvent};

use crate::db::{self, Kind};
use crate::export::stored;

const USERS: usize = 60;
const NAMES: [&str; 4] = [
    "message_sent",
    "screen_view",
    "contact_added",
    "session_start",
];
/// The first day of the data (a fixed day: the test does not depend on the clock).
const DAY0: i32 = 20_400;

/// One user's events: every name twice on each of three days.
fn user_events(u: usize) -> Vec<StoredEvent> {
    user_days(u, 0..3)
}

/// One user's events on the given days (offsets from [`DAY0`]): every name twice a day.
fn user_days(u: usize, days: impl IntoIterator<Item = usize>) -> Vec<StoredEvent> {
    let user = format!("{u:064x}");
    let mut out = Vec::new();
    for d in days {
        for (n, name) in NAMES.iter().enumerate() {
            for k in 0..2 {
                let seq = (d * 100 + n * 10 + k) as i64;
                let ts = chrono::DateTime::from_timestamp_millis(
                    i64::from(DAY0 + d as i32) * 86_400_000 + seq,
                )
                .expect("an instant");
                out.push(StoredEvent {
                    name: name.to_string(),
                    user_id: user.clone(),
                    session_id: format!("s-{u}-{d}"),
                    sequence: seq,
                    ..stored(&format!("0190a000-0000-7000-8000-{u:06x}{seq:06x}"), ts)
                });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_postgres_count_each_event_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let Some(url) = db::database(Kind::Postgres, &dir.path().join("x.db"), "ingest-shared").await
    else {
        return;
    };
    let a = store::open(&url).await.expect("open a");
    let b = store::open(&url).await.expect("open b");
    // Groups of two users: writer a sends (u, u + 1), writer b (u + 1, u), pair after pair.
    let pair = |u: usize, first: usize| {
        let (x, y) = (user_events(u + first), user_events(u + 1 - first));
        x.into_iter().chain(y).collect::<Vec<_>>()
    };
    let forward: Vec<Vec<StoredEvent>> = (0..USERS).step_by(2).map(|u| pair(u, 0)).collect();
    let backward: Vec<Vec<StoredEvent>> = (0..USERS).step_by(2).map(|u| pair(u, 1)).collect();
    let total: usize = forward.iter().map(Vec::len).sum();
    let write = |s: store::SharedStore, gs: Vec<Vec<StoredEvent>>| async move {
        let mut new = std::collections::HashMap::new();
        for g in gs {
            let ids: Vec<String> = g.iter().map(|e| e.id.clone()).collect();
            let flags = s.insert_events(g).await.expect("every group is written");
            new.extend(ids.into_iter().zip(flags));
        }
        new
    };
    let (na, nb) = tokio::join!(
        tokio::spawn(write(a.clone(), forward)),
        tokio::spawn(write(b.clone(), backward))
    );
    let (na, nb) = (na.expect("writer a"), nb.expect("writer b"));
    assert_eq!(na.len(), total);
    for (id, new_a) in &na {
        assert!(new_a ^ nb[id], "{id}: new for exactly one writer");
    }
    assert_eq!(a.count_events().await.expect("count"), total as u64);
    let dau = a.active_users(DAY0, DAY0 + 2).await.expect("users");
    assert_eq!(dau.raw, USERS as u64);
    rollup_answers_the_scan(&a, 2).await;
    drop((a, b));
    db::drop_database(&url);
}

/// The feature rollup (reach buckets) answers what the per-user rows answer, for every range
/// of days within `DAY0..=DAY0 + last`.
async fn rollup_answers_the_scan(s: &store::SharedStore, last: i32) {
    for from in DAY0..=DAY0 + last {
        for to in from..=DAY0 + last {
            let scan = s.feature_totals_scan(from, to, 100).await.expect("scan");
            let rollup = s
                .feature_totals_rollup(from, to, 100)
                .await
                .expect("rollup")
                .expect("one sample rate");
            assert_eq!(rollup.len(), scan.len(), "{from}..={to}");
            for (r, s) in rollup.iter().zip(&scan) {
                assert_eq!(
                    (&r.name, r.events, r.users),
                    (&s.name, s.events, s.users),
                    "{from}..={to}"
                );
            }
        }
    }
}

/// Two servers write different new events of the same users at once (writer a the even
/// days, writer b the odd ones): each links a user's day to the previous day of the same
/// feature, so without a lock per user each would link against a snapshot lacking the
/// other's uncommitted day and the reach buckets would count a user twice in a range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_with_new_days_of_the_same_users_keep_the_reach_exact() {
    const DAYS: usize = 6;
    let dir = tempfile::tempdir().expect("tmp");
    let Some(url) = db::database(
        Kind::Postgres,
        &dir.path().join("x.db"),
        "ingest-shared-days",
    )
    .await
    else {
        return;
    };
    let a = store::open(&url).await.expect("open a");
    let b = store::open(&url).await.expect("open b");
    // One group per user and writer, both writers walking the users in the same order.
    let groups = |parity: usize| -> Vec<Vec<StoredEvent>> {
        (0..USERS)
            .map(|u| user_days(u, (0..DAYS).filter(|d| d % 2 == parity)))
            .collect()
    };
    let write = |s: store::SharedStore, gs: Vec<Vec<StoredEvent>>| async move {
        for g in gs {
            let n = g.len();
            let new = s.insert_events(g).await.expect("every group is written");
            assert_eq!(new.iter().filter(|&&x| x).count(), n, "every event is new");
        }
    };
    let (ra, rb) = tokio::join!(
        tokio::spawn(write(a.clone(), groups(0))),
        tokio::spawn(write(b.clone(), groups(1)))
    );
    ra.expect("writer a");
    rb.expect("writer b");
    let per_user = NAMES.len() * 2 * DAYS;
    assert_eq!(
        a.count_events().await.expect("count"),
        (USERS * per_user) as u64
    );
    rollup_answers_the_scan(&a, DAYS as i32 - 1).await;
    drop((a, b));
    db::drop_database(&url);
}
