//! Warehouse export throughput: N events (10 M by default; `RAILGUN_BENCH_EXPORT_EVENTS`)
//! in a fresh SQLite store, exported as Parquet (zstd) by `railgun_server::export::run`,
//! beside a ceiling and a peer measured in the same run:
//!
//! - ceiling: the same rows read from the database into a sink that drops them (what the
//!   export would reach if encoding and writing cost nothing);
//! - peer: DuckDB (Python package, 2 threads) copying the same rows from the exported files
//!   into one zstd Parquet file (`COPY … TO 'x.parquet'`), when DuckDB is installed.
//!
//! The events go in through the store's insert (`AnalyticsStore::insert_events`, batches of
//! 10 000): the function the ingest writer calls for each group commit, so the events table,
//! its export keys and every rollup are written as ingest writes them; HTTP and validation
//! are left out because `railgun loadgen` measures them, and they would make the setup take
//! minutes longer without changing a row.
//!
//! Run: `cargo bench -p railgun-server --bench export` (`scripts/bench.sh` does).

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use railgun_server::export::{self, ExportOptions};
use railgun_server::store::export::{RowSink, Stream, Value};
use railgun_server::store::{self, StoredEvent};

const NAMES: [&str; 12] = [
    "screen_view",
    "message_sent",
    "message_read",
    "call_started",
    "call_ended",
    "file_shared",
    "reaction_added",
    "search",
    "settings_changed",
    "session_start",
    "session_heartbeat",
    "session_end",
];

/// A cheap deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn event(i: u64, rng: &mut Rng, start_ms: i64) -> StoredEvent {
    let user = rng.next() % 100_000;
    let name = NAMES[(rng.next() % NAMES.len() as u64) as usize];
    let ts = start_ms + (rng.next() % (30 * 86_400_000)) as i64;
    let properties = (rng.next() % 10 < 3).then(|| {
        format!(
            "{{\"screen_name\":\"s{}\",\"count\":{}}}",
            rng.next() % 20,
            rng.next() % 100
        )
    });
    StoredEvent {
        id: format!(
            "{:08x}-0000-4000-8000-{:012x}",
            i >> 48,
            i & 0xffff_ffff_ffff
        ),
        name: name.into(),
        category: if name.starts_with("session") {
            "session".into()
        } else {
            "feature".into()
        },
        user_id: format!("{:064x}", user.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        session_id: format!("{:08x}-1111-4000-8000-{:012x}", user, ts / 3_600_000),
        ts_ms: ts,
        day: (ts / 86_400_000) as i32,
        app_version: ["1.4.0", "1.5.0", "1.5.1"][(user % 3) as usize].into(),
        platform: ["linux", "darwin", "win32"][(user % 3) as usize].into(),
        arch: "x64".into(),
        channel: "stable".into(),
        properties,
        duration_ms: (name == "session_end").then(|| (rng.next() % 3_600_000) as f64),
        sequence: (i % 500) as i64,
        sample_rate: 1.0,
        received_ms: ts + 1_000,
    }
}

struct Count(u64);

impl RowSink for Count {
    fn push(&mut self, row: &[Value<'_>]) -> bool {
        self.0 += u64::from(!row.is_empty());
        true
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
    let dir = std::env::temp_dir().join(format!("railgun-export-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite:{}", dir.join("analytics.db").display());
    let store = store::open(&db).await?;

    let start_ms = 1_772_323_200_000; // 2026-03-01
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<StoredEvent> = (i..(i + 10_000).min(n))
            .map(|k| event(k, &mut rng, start_ms))
            .collect();
        i += batch.len() as u64;
        store.insert_events(batch).await?;
    }
    let insert_s = t.elapsed().as_secs_f64();
    println!(
        "export bench: inserted {n} events through the store's insert in {insert_s:.1} s ({:.0} events/s)",
        n as f64 / insert_s
    );

    // Ceiling: read every row, drop it.
    let horizon = store.export_horizon(Stream::Events).await?;
    let t = Instant::now();
    let _ = store
        .export_rows(
            Stream::Events,
            (0, horizon),
            (i64::MIN, i64::MAX),
            Box::new(Count(0)),
        )
        .await?;
    let read_s = t.elapsed().as_secs_f64();
    let read_rate = n as f64 / read_s;
    println!("export bench: read only (ceiling): {read_s:.2} s, {read_rate:.0} rows/s");

    // The export.
    let out = dir.join("out");
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
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
