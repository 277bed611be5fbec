//! Two servers ingesting into one PostgreSQL database at once: two store handles (two writer
//! connections, as two `railgun serve` processes have) write the same events at the same
//! time, each group merged in the opposite order (as two servers' group commits may merge a
//! client's retried request), so their transactions lock the same event ids in opposite
//! orders and PostgreSQL ends one of them as a deadlock. Every event is new for exactly one
//! writer, none is lost or counted twice, no group fails (the one ended is written again),
//! and the rollups still answer what the per-user rows answer.

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
    let user = format!("{u:064x}");
    let mut out = Vec::new();
    for d in 0..3 {
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
    for (from, to) in [(DAY0, DAY0), (DAY0, DAY0 + 2), (DAY0 + 1, DAY0 + 2)] {
        let scan = a.feature_totals_scan(from, to, 100).await.expect("scan");
        let rollup = a
            .feature_totals_rollup(from, to, 100)
            .await
            .expect("rollup")
            .expect("one sample rate");
        assert_eq!(rollup.len(), NAMES.len(), "{from}..={to}");
        for (r, s) in rollup.iter().zip(&scan) {
            assert_eq!(
                (&r.name, r.events, r.users),
                (&s.name, s.events, s.users),
                "{from}..={to}"
            );
        }
    }
    drop((a, b));
    db::drop_database(&url);
}
