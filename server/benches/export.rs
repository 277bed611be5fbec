//! Warehouse export throughput: N events (10 M by default; `RAILGUN_BENCH_EXPORT_EVENTS`)
//! in a fresh SQLite store, exported as Parquet (zstd) by `railgun_server::export::run`,
//! beside a ceiling and a peer measured in the same run:
//!
//! - ceiling: the same rows read from the database into a sink that drops them (what the
//!   export would reach if encoding and writing cost nothing);
//! - peer: DuckDB (Python package, 2 threads) copying the same rows from the exported files
//!   into one zstd Parquet file (`COPY … TO 'x.parquet'`), when DuckDB is installed.
//!
//! The events are made by [`Generator`], in the shape real traffic has: `users` installs,
//! each with one session a day for 30 days (`session_start`, screens and feature events,
//! `session_end` with a duration; 10 to 56 events, 33 on average), ids that are UUIDv7-like
//! (ordered by time, as the client makes them), hashed-looking user ids, properties on screen
//! views and sent messages. They arrive day after day, as ingest would receive them, in
//! batches of 10 000 through the store's insert (`AnalyticsStore::insert_events`: the
//! function the ingest writer calls for each group commit, so the events table, its export
//! keys and every rollup are written as ingest writes them); HTTP and validation are left
//! out because `railgun loadgen` measures them. The same seed makes the same events.
//!
//! The database: a fresh SQLite file, or with `RAILGUN_BENCH_EXPORT_DATABASE=postgres://…`
//! a fresh database created on that PostgreSQL server (and dropped at the end). With
//! `RAILGUN_BENCH_EXPORT_KEEP=DIR` (SQLite) the database is `DIR/analytics.db` and is kept:
//! a later run with the same `DIR` skips the insert and measures the same rows again (each
//! run exports to a destination of its own, removed at the end).
//!
//! Run: `cargo bench -p railgun-server --bench export` (`scripts/bench.sh` does).

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use railgun_server::export::{self, ExportOptions};
use railgun_server::store::export::{RowSink, Stream, Value};
use railgun_server::store::{self, StoredEvent};

/// Feature events between a session's start and end.
const FEATURES: [&str; 10] = [
    "screen_view",
    "screen_view",
    "screen_view",
    "message_sent",
    "message_read",
    "message_read",
    "call_started",
    "file_shared",
    "reaction_added",
    "search",
];

/// Days of traffic.
const DAYS: u64 = 30;
/// Average events per user and day.
const EVENTS_PER_DAY: u64 = 33;
/// Events per `insert_events` call.
const BATCH: usize = 10_000;

/// A cheap deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Makes `n` events: day after day, user after user, one session each.
struct Generator {
    n: u64,
    made: u64,
    users: u64,
    day: u64,
    user: u64,
    start_ms: i64,
    rng: Rng,
}

impl Generator {
    fn new(n: u64) -> Self {
        Self {
            n,
            made: 0,
            users: (n / (DAYS * EVENTS_PER_DAY)).max(1),
            day: 0,
            user: 0,
            start_ms: 1_772_323_200_000, // 2026-03-01
            rng: Rng(0x2545_f491_4f6c_dd1d),
        }
    }

    /// The next batch of at most `max` events (empty when all `n` were made).
    fn batch(&mut self, max: usize) -> Vec<StoredEvent> {
        let mut out = Vec::with_capacity(max + 64);
        while out.len() < max && self.made < self.n {
            self.session(&mut out);
            self.user += 1;
            if self.user == self.users {
                self.user = 0;
                self.day = (self.day + 1) % DAYS;
            }
        }
        out
    }

    /// One session of the current user on the current day.
    fn session(&mut self, out: &mut Vec<StoredEvent>) {
        let (u, rng) = (self.user, &mut self.rng);
        let len = (10 + rng.below(47)).min(self.n - self.made);
        let day_ms = self.start_ms + (self.day * 86_400_000) as i64;
        let mut ts = day_ms + rng.below(86_400_000 - 3_600_000) as i64;
        let first = ts;
        let user_id = format!(
            "{:016x}{:016x}{:016x}{:016x}",
            u.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            u ^ 0x5851_f42d_4c95_7f2d,
            u.rotate_left(17),
            !u
        );
        let session_id = format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            u & 0xffff_ffff,
            self.day,
            rng.next() & 0xffff_ffff_ffff
        );
        for i in 0..len {
            let name = match i {
                0 => "session_start",
                i if i + 1 == len => "session_end",
                _ => FEATURES[rng.below(FEATURES.len() as u64) as usize],
            };
            let properties = match name {
                "screen_view" => Some(format!("{{\"screen_name\":\"screen_{}\"}}", rng.below(20))),
                "message_sent" => Some(format!(
                    "{{\"length_bucket\":{},\"has_attachment\":{}}}",
                    rng.below(4),
                    rng.below(7) == 0
                )),
                _ => None,
            };
            let seq = self.made;
            self.made += 1;
            out.push(StoredEvent {
                id: format!(
                    "{:08x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
                    ts >> 16,
                    ts & 0xffff,
                    (seq >> 48) & 0xfff,
                    (seq >> 36) & 0xfff,
                    seq & 0xffff_ffff_ffff
                ),
                name: name.into(),
                category: if name.starts_with("session") {
                    "session".into()
                } else {
                    "feature".into()
                },
                user_id: user_id.clone(),
                session_id: session_id.clone(),
                ts_ms: ts,
                day: ts.div_euclid(86_400_000) as i32,
                app_version: ["1.4.0", "1.5.0", "1.5.1"][(u % 3) as usize].into(),
                platform: ["linux", "darwin", "win32"][(u % 3) as usize].into(),
                arch: ["x64", "arm64"][(u % 2) as usize].into(),
                channel: "stable".into(),
                properties,
                duration_ms: (name == "session_end").then_some((ts - first) as f64),
                sequence: i as i64,
                sample_rate: 1.0,
                received_ms: ts + 1_000 + rng.below(5_000) as i64,
            });
            ts += 1_000 + rng.below(60_000) as i64;
        }
    }
}

/// Counts rows and drops them (into the shared total when it is dropped).
struct Count(u64, Arc<AtomicU64>);

impl RowSink for Count {
    fn push(&mut self, row: &[Value<'_>]) -> bool {
        self.0 += u64::from(!row.is_empty());
        true
    }

    /// The ceiling reads as the export does: two readers when the store splits a chunk.
    fn fork(&mut self) -> Option<Box<dyn RowSink>> {
        Some(Box::new(Count(0, self.1.clone())))
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.1.fetch_add(self.0, Ordering::Relaxed);
    }
}

fn du(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        du(&p)
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::var("RAILGUN_BENCH_EXPORT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let pg = std::env::var("RAILGUN_BENCH_EXPORT_DATABASE").ok();
    let keep = std::env::var_os("RAILGUN_BENCH_EXPORT_KEEP")
        .filter(|_| pg.is_none())
        .map(std::path::PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("railgun-export-bench-{}", std::process::id()))
    });
    let reuse = keep.is_some() && dir.join("analytics.db").exists();
    std::fs::create_dir_all(&dir)?;
    let (db, backend) = match &pg {
        Some(base) => (fresh_postgres(base).await?, "PostgreSQL"),
        None => (
            format!("sqlite:{}", dir.join("analytics.db").display()),
            "SQLite",
        ),
    };
    let store = store::open(&db).await?;

    let mut events = Generator::new(n);
    let users = events.users;
    let t = Instant::now();
    if !reuse {
        loop {
            let batch = events.batch(BATCH);
            if batch.is_empty() {
                break;
            }
            store.insert_events(batch).await?;
        }
    }
    let insert_s = t.elapsed().as_secs_f64();
    if reuse {
        println!(
            "export bench: reusing the events of {} (not inserted again)",
            dir.display()
        );
    } else {
        println!(
            "export bench: inserted {n} events ({users} users x {DAYS} days) into {backend} \
             through the store's insert in {insert_s:.1} s ({:.0} events/s)",
            n as f64 / insert_s
        );
    }

    // Ceiling: read every row, drop it.
    let horizon = store.export_horizon(Stream::Events).await?;
    let read = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let _ = store
        .export_rows(
            Stream::Events,
            (0, horizon),
            (i64::MIN, i64::MAX),
            Box::new(Count(0, read.clone())),
        )
        .await?;
    let read_s = t.elapsed().as_secs_f64();
    let n = read.load(Ordering::Relaxed);
    let read_rate = n as f64 / read_s;
    println!("export bench: read only (ceiling): {read_s:.2} s, {read_rate:.0} rows/s ({n} rows)");

    // The export (to a destination of its own: a kept database remembers the others).
    let out = dir.join(format!("out-{}", std::process::id()));
    let opts = ExportOptions {
        tables: export::parse_tables("events")?,
        ..ExportOptions::new(out.to_str().ok_or("path")?)
    };
    let t = Instant::now();
    let report = export::run(&store, &opts).await?;
    let export_s = t.elapsed().as_secs_f64();
    let rate = report.rows as f64 / export_s;
    let bytes = du(&out.join("events"));
    println!(
        "export bench: railgun export: {} rows in {} files, {export_s:.2} s, {rate:.0} rows/s, \
         {bytes} bytes, {:.0} bytes per million events",
        report.rows,
        report.files,
        bytes as f64 / (report.rows as f64 / 1e6)
    );
    println!(
        "export bench: export / read-only ratio: {:.2}",
        rate / read_rate
    );

    // Peer: DuckDB re-encodes the same rows as zstd Parquet, 2 threads.
    let script = format!(
        "import duckdb, time\ncon = duckdb.connect()\ncon.execute('SET threads = 2')\ncon.execute('SET enable_progress_bar = false')\n\
         t = time.time()\n\
         con.execute(\"COPY (SELECT * FROM read_parquet('{0}/events/*/*.parquet')) TO '{0}/duck.parquet' (FORMAT parquet, COMPRESSION zstd)\")\n\
         print(time.time() - t)\n",
        out.display()
    );
    match std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
    {
        Ok(o) if o.status.success() => {
            // The time is the last line (DuckDB may print a progress bar before it).
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let s: f64 = text
                .lines()
                .rev()
                .find_map(|l| l.trim().parse().ok())
                .ok_or("no time from duckdb")?;
            let peer = report.rows as f64 / s;
            let pbytes = std::fs::metadata(out.join("duck.parquet"))?.len();
            println!(
                "export bench: duckdb COPY to parquet (peer): {s:.2} s, {peer:.0} rows/s, \
                 {:.0} bytes per million events; railgun / duckdb ratio: {:.2}",
                pbytes as f64 / (report.rows as f64 / 1e6),
                rate / peer
            );
        }
        _ => println!(
            "export bench: duckdb COPY to parquet (peer): not measured (pip install duckdb)"
        ),
    }
    drop(store);
    if let Some(base) = &pg {
        drop_postgres(base, &db).await;
    }
    let _ = std::fs::remove_dir_all(if keep.is_some() { &out } else { &dir });
    Ok(())
}

/// A new database on the PostgreSQL server of `base`; its URL.
async fn fresh_postgres(base: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let name = format!("railgun_bench_export_{}", std::process::id());
    // One statement each: a multi-statement batch runs in a transaction, which DROP and
    // CREATE DATABASE refuse.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let (prefix, _) = base.rsplit_once('/').ok_or("the URL names no database")?;
    Ok(format!("{prefix}/{name}"))
}

/// Drops the database of `url` made by [`fresh_postgres`].
async fn drop_postgres(base: &str, url: &str) {
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if let Ok((client, conn)) = tokio_postgres::connect(base, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}
