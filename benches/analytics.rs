//! Analytics client benchmarks.
//!
//! * `track` on the calling thread (criterion), plus median / p99 of 100 000 individually
//!   timed calls (target: median ≤ 2 µs, p99 ≤ 20 µs);
//! * sustained durable enqueue: 100 000 events tracked and committed to SQLite (target
//!   ≥ 100 000 events/s);
//! * memory while the network is down: 100 000 events into the bounded queue with a flush
//!   every 10 000 (resident memory must stay flat).
//!
//! Each figure is printed beside its ceiling measured in the same run (a `bench-row:` line
//! for scripts/bench.sh): `track()` beside the bare hand-over it is made of (an event id, the
//! name and properties boxed and sent on a bounded channel to a thread that drains it),
//! timed the same way; the durable enqueue beside the same rows inserted into a bare SQLite
//! file with the store's pragmas (WAL, `synchronous=NORMAL`), in transactions of the
//! writer's size.
//!
//! Run: `cargo bench --bench analytics` (small samples; numbers are printed).

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use railgun_core::analytics::{Analytics, Consent, Properties, PropertyValue};

fn client(
    dir: &std::path::Path,
    url: Option<&str>,
    max_queue: usize,
    capacity: usize,
) -> Analytics {
    let mut b = Analytics::builder()
        .app("bench")
        .state_dir(dir)
        .install_id("bench-user")
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .sessions(false)
        .max_queue(max_queue)
        .channel_capacity(capacity)
        .upload_interval(None);
    if let Some(u) = url {
        b = b.url(u);
    }
    b.build().expect("client")
}

fn props(i: usize) -> Properties {
    Properties::from([
        (
            "screen_name".to_string(),
            PropertyValue::from("conversation"),
        ),
        ("i".to_string(), PropertyValue::from(i as i64)),
        ("group".to_string(), PropertyValue::from(true)),
    ])
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn bench_track(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let a = client(dir.path(), None, 10_000, 16_384);
    let mut i = 0usize;
    c.bench_function("track (caller thread)", |b| {
        b.iter(|| {
            i += 1;
            a.track(black_box("message_sent"), props(i)).expect("track")
        })
    });
    a.persist().expect("persist");

    // Median and p99 of individually timed calls; the writer is drained between chunks so
    // the numbers are those of a hand-over, not of a full channel.
    let mut t = Vec::with_capacity(100_000);
    for chunk in 0..20 {
        for j in 0..5_000 {
            let p = props(chunk * 5_000 + j);
            let s = Instant::now();
            a.track("message_sent", p).expect("track");
            t.push(s.elapsed());
        }
        a.persist().expect("persist");
    }
    t.sort_unstable();
    println!(
        "track(): median {:?}, p99 {:?}, p99.9 {:?}, max {:?} over {} calls",
        t[t.len() / 2],
        t[t.len() * 99 / 100],
        t[t.len() * 999 / 1000],
        t[t.len() - 1],
        t.len()
    );
    a.shutdown().expect("shutdown");
    let bare = bare_hand_over();
    let (med, p99) = (t[t.len() / 2], t[t.len() * 99 / 100]);
    let (bare_med, bare_p99) = (bare[bare.len() / 2], bare[bare.len() * 99 / 100]);
    println!(
        "bench-row: analytics `track()` median / p99 | ≤ 2 µs / ≤ 20 µs | {med:?} / {p99:?} \
         | bare hand-over (id + boxed event on a bounded channel) {bare_med:?} / {bare_p99:?} \
         | {:.2}× / {:.2}× the ceiling",
        med.as_secs_f64() / bare_med.as_secs_f64(),
        p99.as_secs_f64() / bare_p99.as_secs_f64()
    );
}

/// The ceiling of `track()`: 100 000 individually timed hand-overs of the same properties
/// (an event id, the name, a timestamp, boxed and sent on a bounded channel that a thread
/// drains), sorted.
fn bare_hand_over() -> Vec<Duration> {
    type Event = Box<(uuid::Uuid, String, Properties, std::time::SystemTime)>;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Event>(16_384);
    let drain = std::thread::spawn(move || rx.iter().count());
    let mut t = Vec::with_capacity(100_000);
    for i in 0..100_000 {
        let p = props(i);
        let s = Instant::now();
        let ev = Box::new((
            uuid::Uuid::now_v7(),
            "message_sent".to_string(),
            p,
            std::time::SystemTime::now(),
        ));
        tx.try_send(ev).expect("the drain keeps up");
        t.push(s.elapsed());
    }
    drop(tx);
    assert_eq!(drain.join().expect("drain"), 100_000);
    t.sort_unstable();
    t
}

/// Tracks and commits 100 000 events: events/s, how many are queued, and the queued rows
/// (`created_at`, `sample_rate`, `body`) as the store holds them.
fn durable_enqueue(max_queue: usize) -> (f64, u64, Vec<(i64, f64, String)>) {
    let dir = tempfile::tempdir().expect("dir");
    let a = client(dir.path(), None, max_queue, 131_072);
    let n = 100_000;
    let start = Instant::now();
    for i in 0..n {
        a.track("message_sent", props(i)).expect("track");
    }
    a.persist().expect("persist");
    let secs = start.elapsed().as_secs_f64();
    let stats = a.stats().expect("stats");
    assert_eq!(stats.recorded, n as u64, "every event handed over");
    a.shutdown().expect("shutdown");
    let db = rusqlite::Connection::open(dir.path().join(railgun_core::STORE_FILE)).expect("db");
    let rows = db
        .prepare("SELECT created_at, sample_rate, body FROM analytics_queue ORDER BY seq")
        .expect("select")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    (n as f64 / secs, stats.queued, rows)
}

/// The ceiling of the durable enqueue: `rows` inserted into a new SQLite file with the
/// store's pragmas and table, 2 000 rows a transaction (the writer's most): rows/s.
fn bare_sqlite_insert(rows: &[(i64, f64, String)]) -> f64 {
    let dir = tempfile::tempdir().expect("dir");
    let mut db = rusqlite::Connection::open(dir.path().join("bare.db")).expect("db");
    db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .expect("wal");
    db.execute_batch(
        "PRAGMA synchronous = NORMAL;
         CREATE TABLE analytics_queue (seq INTEGER PRIMARY KEY, created_at INTEGER NOT NULL,
                                       sample_rate REAL NOT NULL, body TEXT NOT NULL);",
    )
    .expect("schema");
    let start = Instant::now();
    for chunk in rows.chunks(2_000) {
        let tx = db.transaction().expect("tx");
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO analytics_queue (created_at, sample_rate, body) VALUES (?1, ?2, ?3)",
                )
                .expect("prepare");
            for (at, rate, body) in chunk {
                st.execute(rusqlite::params![at, rate, body])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    rows.len() as f64 / start.elapsed().as_secs_f64()
}

fn bench_durable(c: &mut Criterion) {
    for max in [200_000, 10_000] {
        let (rate, queued, rows) = durable_enqueue(max);
        println!(
            "durable enqueue (bound {max}): {rate:.0} events/s tracked and committed, {queued} queued"
        );
        if max == 200_000 {
            let bare = bare_sqlite_insert(&rows);
            println!(
                "bench-row: durable enqueue ({} events tracked and committed) | ≥ 100 000/s \
                 | {rate:.0}/s | bare SQLite insert of the same rows (WAL, synchronous=NORMAL, \
                 2 000 a transaction) {bare:.0}/s | {:.2} of the ceiling",
                rows.len(),
                rate / bare
            );
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let a = client(dir.path(), None, 10_000, 131_072);
    let mut g = c.benchmark_group("durable");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(criterion::Throughput::Elements(10_000));
    g.bench_function("10k events tracked + persisted", |b| {
        b.iter(|| {
            for i in 0..10_000 {
                a.track("message_sent", props(i)).expect("track");
            }
            a.persist().expect("persist");
        })
    });
    g.finish();
    a.shutdown().expect("shutdown");
}

fn bench_memory_offline(_c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let a = client(dir.path(), Some(&url), 10_000, 16_384);
    let mut samples = Vec::new();
    for chunk in 0..10 {
        for j in 0..10_000 {
            a.track("message_sent", props(chunk * 10_000 + j))
                .expect("track");
        }
        let r = a.flush().expect("flush");
        samples.push((rss_kib(), r.held));
    }
    let s = a.stats().expect("stats");
    println!(
        "network down, 100 000 events: RSS KiB after each 10 000 {:?}; queued {}, dropped {}",
        samples.iter().map(|s| s.0).collect::<Vec<_>>(),
        s.queued,
        s.dropped
    );
    a.shutdown().expect("shutdown");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_track, bench_durable, bench_memory_offline
}
criterion_main!(benches);
