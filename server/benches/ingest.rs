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
//! events (3 000 by default: 300 000 events).
//!
//! **Scale-out** (PostgreSQL only): one, two and three `railgun serve` processes (the
//! release binary) on one fresh database and one update tree, the 16 connections spread
//! round-robin over them: the same ingest, reported as a share of the database's ceiling
//! above, and update checks (`GET /updates/APP/CHANNEL/channel.json`, read whole), reported
//! beside one server's. On one machine the servers, the database and the sender share the
//! same cores: the figure says what the database and the machine let through, not how far
//! more machines would go.
//!
//! `RAILGUN_BENCH_INGEST_PARTS` (a comma-separated subset of `sqlite`, `postgres`, `scale`;
//! all three by default) skips the other parts, for quicker runs while tuning one store.
//!
//! Run: `cargo bench -p railgun-server --bench ingest` (`scripts/bench.sh` does); each row
//! is printed as a `bench-row:` line.

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
/// Update checks per server count of the scale-out figure.
const CHECKS: usize = 20_000;
/// The `railgun` binary of this build.
const RAILGUN: &str = env!("CARGO_BIN_EXE_railgun");

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
    let r = loadgen::send(&[server.url()], batches, CONNECTIONS)
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

/// Runs the `railgun` binary with `args`; panics with its output when it fails.
fn railgun(args: &[&str]) {
    let out = Command::new(RAILGUN)
        .args(args)
        .output()
        .expect("run railgun");
    assert!(out.status.success(), "railgun {args:?}: {out:?}");
}

/// An update tree with one signed release of `bench` on `stable` at 100 %.
fn release_tree(dir: &Path) -> std::path::PathBuf {
    let p = |name: &str| dir.join(name).display().to_string();
    railgun(&["keygen", "--out", &p("keys"), "--name", "release"]);
    std::fs::create_dir_all(dir.join("dist")).expect("dist");
    std::fs::write(
        dir.join("dist/bench_2.0.0_linux_x86_64.AppImage"),
        vec![7u8; 64 << 10],
    )
    .expect("artifact");
    railgun(&[
        "release",
        "sign",
        "--key",
        &p("keys/release.key"),
        "--app",
        "bench",
        "--version",
        "2.0.0",
        "--artifacts",
        &p("dist"),
        "--out",
        &p("manifest.json"),
    ]);
    railgun(&[
        "release",
        "publish",
        "--root",
        &p("tree"),
        "--manifest",
        &p("manifest.json"),
        "--artifacts",
        &p("dist"),
        "--key",
        &p("keys/release.key"),
        "--percentage",
        "100",
    ]);
    dir.join("tree")
}

/// A `railgun serve` process; killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts `railgun serve` over `database` and the update tree `root` on a free loopback
    /// port and waits (60 s at most) for the line naming its address.
    fn start(database: &str, root: &Path, data: &Path) -> Self {
        let mut child = Command::new(RAILGUN)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--no-rate-limit",
                "--database",
                database,
            ])
            .arg("--root")
            .arg(root)
            .arg("--data-dir")
            .arg(data)
            .env("RAILGUN_READ_TOKEN", "bench-read")
            .env("RAILGUN_ADMIN_TOKEN", "bench-admin")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn railgun serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("http://") {
                    let _ = tx.send(line[at..].trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("railgun serve names its address within 60 s");
        Self { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ingest and update checks through `k` `railgun serve` processes sharing the fresh
/// database `url` and the update tree `root`: (events/s, p99 ms, checks/s, p99 ms).
async fn scale_out(
    url: &str,
    root: &Path,
    k: usize,
    batches: &[railgun_core::analytics::EventBatch],
) -> (f64, f64, f64, f64) {
    // Migrated once here, so the servers start on the current schema.
    drop(store::open(url).await.expect("open store"));
    let data = tempfile::tempdir().expect("tmp");
    let servers: Vec<Server> = (0..k)
        .map(|i| Server::start(url, root, &data.path().join(i.to_string())))
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let r = loadgen::send(&urls, batches, CONNECTIONS)
        .await
        .expect("loadgen");
    let events: usize = batches.iter().map(|b| b.events.len()).sum();
    assert_eq!(r.errors, 0, "no failed request");
    assert_eq!(r.accepted as usize, events, "every event accepted once");
    let path = "/updates/bench/stable/channel.json";
    let c = loadgen::fetch(&urls, path, CHECKS, CONNECTIONS)
        .await
        .expect("checks");
    assert_eq!(c.errors, 0, "every check answered 200");
    drop(servers);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        r.events_per_sec(),
        ms(r.percentile(0.99)),
        c.accepted as f64 / c.elapsed.as_secs_f64(),
        ms(c.percentile(0.99)),
    )
}

fn main() {
    let users: usize = std::env::var("RAILGUN_BENCH_INGEST_USERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000);
    let parts = std::env::var("RAILGUN_BENCH_INGEST_PARTS")
        .unwrap_or_else(|_| "sqlite,postgres,scale".into());
    let part = |p: &str| parts.split(',').any(|x| x.trim() == p);
    let mut dbs = Vec::new();
    if part("sqlite") {
        dbs.push(Db::Sqlite(tempfile::tempdir().expect("tmp")));
    }
    let pg = std::env::var("RAILGUN_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("RAILGUN_TEST_DATABASE_URL"));
    match pg {
        Ok(url) if part("postgres") => dbs.push(Db::Postgres(url)),
        Ok(_) => {}
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
        let mut pg_ceiling = None;
        for db in &dbs {
            let ceil = ceiling(&db.fresh("ceiling").await, &rows).await;
            if let Db::Postgres(_) = db {
                pg_ceiling = Some(ceil);
            }
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
        let (Some(ceil), Some(db)) = (pg_ceiling, dbs.iter().find(|d| matches!(d, Db::Postgres(_))))
        else {
            return;
        };
        if !part("scale") {
            return;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let root = release_tree(dir.path());
        let mut one_server_checks = None;
        for k in 1..=3 {
            let name = format!("scale{k}");
            let (rate, p99, checks, check_p99) =
                scale_out(&db.fresh(&name).await, &root, k, &batches).await;
            db.drop_all(&[&name]).await;
            let one = *one_server_checks.get_or_insert(checks);
            println!(
                "scale-out, {k} × railgun serve on one PostgreSQL: ingest {rate:.0} events/s, p99 \
                 {p99:.1} ms ({:.2} of the ceiling {ceil:.0}/s); update checks {checks:.0}/s, p99 \
                 {check_p99:.1} ms",
                rate / ceil
            );
            println!(
                "bench-row: scale-out ingest, {k} × `railgun serve` on one PostgreSQL, {n} events, \
                 {CONNECTIONS} connections round-robin | the database is the ceiling | {rate:.0}/s, \
                 p99 {p99:.1} ms | store insert without HTTP (ceiling) {ceil:.0}/s | {:.2} of the \
                 ceiling",
                rate / ceil
            );
            println!(
                "bench-row: scale-out update checks (`channel.json`), {k} × `railgun serve`, \
                 {CONNECTIONS} connections round-robin | — | {checks:.0}/s, p99 {check_p99:.1} ms \
                 | one server, same run: {one:.0}/s | {:.2}× one server",
                checks / one
            );
        }
    });
}
