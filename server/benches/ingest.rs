//! Ingest throughput beside each database's ceiling: the same rows, the same run.
//!
//! For SQLite, and for PostgreSQL when `RAILGUN_BENCH_DATABASE_URL` (else
//! `RAILGUN_TEST_DATABASE_URL`) names a server (a fresh database is created and dropped):
//!
//! - **ingest**: the application `railgun serve` runs (`App::new` + `spawn`, rate limit off: a
//!   proxy's job) on loopback over a fresh store, fed by `railgun loadgen`'s workload and
//!   sender (`cli::loadgen::{generate, send}`): 16 connections, batches of 100 events;
//!   events/s and the p99 of the request latency;
//! - **ceiling**: the same rows (the same request bodies, parsed and checked by
//!   `prepare_batch` before the clock starts) written into another fresh store by the
//!   store's own insert (`AnalyticsStore::insert_events`) in groups of
//!   [`MAX_GROUP_EVENTS`], one after the other, with no HTTP, queue or parsing: what the
//!   database sustains for this schema and its rollups, the most ingest could reach.
//!
//! Ingest is reported as a share of its ceiling. `RAILGUN_BENCH_INGEST_USERS` users × 100
//! events (3 000 by default: 300 000 events). Run: `cargo bench -p railgun-server --bench
//! ingest` (`scripts/bench.sh` does); each row is printed as a `bench-row:` line.

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use chrono::Utc;
use railgun_server::analytics::ingest::prepare_batch;
use railgun_server::analytics::queue::MAX_GROUP_EVENTS;
use railgun_server::cli::loadgen;
use railgun_server::ratelimit::RateLimit;
use railgun_server::serve::{App, ServerConfig};
use railgun_server::store::{self, StoredEvent};

const CONNECTIONS: usize = 16;
const BATCH: usize = 100;
const EVENTS_PER_USER: usize = 100;

/// A database to measure on: SQLite files in a folder, or fresh PostgreSQL databases.
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Db {
    fn label(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    /// The URL of a new, empty database named `name`.
    async fn fresh(&self, name: &str) -> String {
        match self {
            Db::Sqlite(dir) => format!("sqlite:{}", dir.path().join(name).display()),
            Db::Postgres(base) => {
                let db = format!("railgun_bench_{name}_{}", std::process::id());
                admin(base, &format!("DROP DATABASE IF EXISTS {db}")).await;
                admin(base, &format!("CREATE DATABASE {db}")).await;
                let (prefix, _) = base.rsplit_once('/').expect("URL names a database");
                format!("{prefix}/{db}")
            }
        }
    }

    async fn drop_all(&self, names: &[&str]) {
        if let Db::Postgres(base) = self {
            for name in names {
                let db = format!("railgun_bench_{name}_{}", std::process::id());
                admin(base, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
            }
        }
    }
}

async fn admin(base: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("connect to the PostgreSQL server");
    tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
}

/// The ceiling: the rows written by the store's insert, group after group, no HTTP.
async fn ceiling(url: &str, rows: &[StoredEvent]) -> f64 {
    let store = store::open(url).await.expect("open store");
    let groups: Vec<Vec<StoredEvent>> = rows.chunks(MAX_GROUP_EVENTS).map(<[_]>::to_vec).collect();
    let t = Instant::now();
    let mut new = 0usize;
    for g in groups {
        new += store
            .insert_events(g)
            .await
            .expect("insert")
            .iter()
            .filter(|n| **n)
            .count();
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(new, rows.len(), "every row is new");
    rows.len() as f64 / secs
}

/// Ingest through the application on loopback: events/s and the p99 latency in ms.
async fn ingest(url: &str, batches: &[railgun_core::analytics::EventBatch]) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tmp");
    let config = ServerConfig {
        root: dir.path().join("updates"),
        database: url.to_string(),
        run_retention: false,
        rate_limit: RateLimit {
            enabled: false,
            ..RateLimit::default()
        },
        ..ServerConfig::default()
    };
    let store = store::open(url).await.expect("open store");
    let server = App::new(&config, store)
        .expect("app")
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("spawn");
    let r = loadgen::send(&server.url(), batches, CONNECTIONS)
        .await
        .expect("loadgen");
    server.stop().await.expect("stop");
    let events: usize = batches.iter().map(|b| b.events.len()).sum();
    assert_eq!(r.errors, 0, "no failed request");
    assert_eq!(r.accepted as usize, events, "every event accepted once");
    (
        r.events_per_sec(),
        r.percentile(0.99).as_secs_f64() * 1000.0,
    )
}

fn main() {
    let users: usize = std::env::var("RAILGUN_BENCH_INGEST_USERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000);
    let mut dbs = vec![Db::Sqlite(tempfile::tempdir().expect("tmp"))];
    let pg = std::env::var("RAILGUN_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("RAILGUN_TEST_DATABASE_URL"));
    match pg {
        Ok(url) => dbs.push(Db::Postgres(url)),
        Err(_) => println!(
            "PostgreSQL not measured: set RAILGUN_BENCH_DATABASE_URL (or RAILGUN_TEST_DATABASE_URL)"
        ),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let batches = loadgen::generate(users, EVENTS_PER_USER, BATCH, 1.0);
        let now = Utc::now();
        let rows: Vec<StoredEvent> = batches
            .iter()
            .flat_map(|b| {
                let body = serde_json::to_vec(b).expect("json");
                let p = prepare_batch(&body, now).expect("a valid batch");
                assert!(p.rejected.is_empty(), "{:?}", p.rejected);
                p.rows
            })
            .collect();
        let n = rows.len();
        for db in &dbs {
            let ceil = ceiling(&db.fresh("ceiling").await, &rows).await;
            let (rate, p99) = ingest(&db.fresh("ingest").await, &batches).await;
            db.drop_all(&["ceiling", "ingest"]).await;
            let label = db.label();
            println!(
                "ingest {label}: {n} events, {rate:.0} events/s, p99 {p99:.1} ms; \
                 ceiling (store insert, no HTTP): {ceil:.0} events/s"
            );
            let goal = match db {
                Db::Sqlite(_) => "≥ 150 000/s",
                Db::Postgres(_) => "≥ 100 000/s",
            };
            println!(
                "bench-row: ingest, {label}, {n} events, {CONNECTIONS} connections, batches of \
                 {BATCH} | {goal} at p99 ≤ 50 ms, ≥ 0.60 of the ceiling | {rate:.0}/s, p99 \
                 {p99:.1} ms | store insert without HTTP (ceiling) {ceil:.0}/s | {:.2} of the \
                 ceiling",
                rate / ceil
            );
        }
    });
}
