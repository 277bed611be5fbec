//! The analytics read API at scale: DAU, WAU, MAU, the DAU series, sessions, one feature by
//! day, the feature summary and retention over ~10 M events (1 M with `BENCH_QUICK`, or
//! `RAILGUN_BENCH_QUERY_EVENTS`), each timed over HTTP on loopback against the real
//! application (`App::new` + `spawn`, the routes `railgun serve` answers), on SQLite and, when
//! `RAILGUN_BENCH_DATABASE_URL` (else `RAILGUN_TEST_DATABASE_URL`) names a server,
//! PostgreSQL; beside DuckDB (Python package, 2 threads) answering the same questions with
//! SQL over the same rows in the same run. The goal is ≤ 50 ms a query (the median of the
//! timed requests; the slowest is printed too). The answers are compared: the bench fails if
//! a store and DuckDB disagree on a count.
//!
//! **The data set** ([`GENERATOR`]): `events / 100` users (100 000 for 10 M) over
//! [`DAYS`] days. Each user joins on a day of the first four weeks (a cohort per day), is
//! active on a share of the following days (15, 30, 50 or 80 %), with one to three sessions
//! on an active day (`session_start`, feature events drawn with a skewed weight from
//! [`FEATURES`], `session_end` with its duration); one user in ten sends at sample rate 0.25.
//! Each user-day is one client batch (`EventBatch`, UUIDv7-like ids ordered by time), sent day
//! after day as clients would.
//!
//! **The ingest path**: each batch is serialized to JSON and checked by
//! `analytics::ingest::prepare_batch` (what `POST /analytics/events` runs on a body), and
//! the accepted rows are written in groups of `MAX_GROUP_EVENTS` by
//! `AnalyticsStore::insert_events` (what the ingest writer runs for each group commit), so
//! the events table and every rollup are written as ingest writes them. The HTTP hop of
//! ingest itself is left out: 10 M events over HTTP at today's ~20 k events/s would take
//! most of the bench's time, and `benches/ingest.rs` measures it.
//!
//! **Caching**: the SQLite file is kept under `target/bench-queries/` and the PostgreSQL
//! database as `railgun_bench_queries_g{GENERATOR}_{events}`, both keyed by the generator's
//! version and the event count, and reused when complete (a marker row written last); a
//! newer schema migrates them on open. DuckDB loads the same rows from the Parquet files
//! `railgun export` wrote from the SQLite store (also cached).
//!
//! Run: `cargo bench -p railgun-server --bench queries` (`scripts/bench.sh` does); each
//! row is printed as a `bench-row:` line. `RAILGUN_BENCH_QUERY_STORES=sqlite` (or
//! `postgres`) measures one store only, e.g. to build both data sets in two processes at
//! once (DuckDB then runs only once the SQLite store's Parquet export exists).

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use railgun_core::analytics::{AnalyticsEvent, EventBatch, EventCategory};
use railgun_server::analytics::ingest::prepare_batch;
use railgun_server::analytics::queue::MAX_GROUP_EVENTS;
use railgun_server::export::{self, ExportOptions};
use railgun_server::serve::{App, ServerConfig};
use railgun_server::store::{self, day_date, day_number, SharedStore, StoredEvent};
use serde_json::Value;

/// The generator's version: part of the cache key; bump it when the data set changes.
const GENERATOR: u32 = 1;
/// Days of traffic.
const DAYS: i64 = 35;
/// Users join during the first this many days.
const JOIN_DAYS: u64 = 28;
/// The first day: 2026-03-01.
const START: &str = "2026-03-01T00:00:00Z";
/// Feature events, most used first (drawn with a skewed weight).
const FEATURES: [&str; 36] = [
    "screen_view",
    "message_sent",
    "message_read",
    "conversation_opened",
    "reaction_added",
    "search",
    "contact_added",
    "file_shared",
    "call_started",
    "call_ended",
    "voice_message_sent",
    "sticker_sent",
    "gif_sent",
    "link_opened",
    "profile_viewed",
    "settings_opened",
    "theme_changed",
    "notification_opened",
    "group_created",
    "group_joined",
    "group_left",
    "message_edited",
    "message_deleted",
    "message_forwarded",
    "message_pinned",
    "status_updated",
    "avatar_changed",
    "backup_started",
    "backup_finished",
    "export_chat",
    "mute_chat",
    "archive_chat",
    "poll_created",
    "poll_voted",
    "location_shared",
    "camera_opened",
];
/// Requests timed per query (after two warm-up requests), rotating over the last days.
const RUNS: usize = 15;

/// A deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A user's fixed traits, from its number.
struct User {
    id: String,
    join_day: i64,
    /// Chance in 100 of being active on a day after joining.
    active: u64,
    sample_rate: f64,
    version: &'static str,
    platform: &'static str,
}

impl User {
    fn new(u: u64) -> Self {
        let h = u.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (u >> 7);
        Self {
            id: format!(
                "{:016x}{:016x}{:016x}{:016x}",
                h,
                u ^ 0x5851_f42d_4c95_7f2d,
                u.rotate_left(17),
                !u
            ),
            join_day: (h % JOIN_DAYS) as i64,
            active: [15, 30, 50, 80][((h >> 8) % 4) as usize],
            sample_rate: if (h >> 16).is_multiple_of(10) {
                0.25
            } else {
                1.0
            },
            version: ["1.4.0", "1.5.0", "1.5.1"][((h >> 24) % 3) as usize],
            platform: ["linux", "darwin", "win32"][((h >> 32) % 3) as usize],
        }
    }
}

/// Every client batch of the data set, day after day, user after user.
struct Generator {
    users: u64,
    start: DateTime<Utc>,
    day: i64,
    user: u64,
    seq: u64,
    rng: Rng,
}

impl Generator {
    fn new(events: u64) -> Self {
        Self {
            users: (events / 100).max(10),
            start: START.parse().expect("start"),
            day: 0,
            user: 0,
            seq: 0,
            rng: Rng(0x2545_f491_4f6c_dd1d),
        }
    }

    /// The next user-day's batch (`None` when every day was made).
    fn next_batch(&mut self) -> Option<EventBatch> {
        loop {
            if self.user == self.users {
                self.user = 0;
                self.day += 1;
            }
            if self.day == DAYS {
                return None;
            }
            let u = User::new(self.user);
            self.user += 1;
            let roll = self.rng.below(100);
            if self.day < u.join_day || (self.day > u.join_day && roll >= u.active) {
                continue;
            }
            return Some(self.user_day(&u));
        }
    }

    fn user_day(&mut self, u: &User) -> EventBatch {
        let sessions =
            1 + usize::from(self.rng.below(3) == 0) + usize::from(self.rng.below(6) == 0);
        let day = self.start + Duration::days(self.day);
        let mut events = Vec::new();
        let mut at = day + Duration::milliseconds(self.rng.below(40_000_000) as i64);
        for _ in 0..sessions {
            let session = uuid::Uuid::from_u128(
                (u128::from(self.rng.next()) << 64) | u128::from(self.rng.next()),
            )
            .to_string();
            let started = at;
            let features = 2 + self.rng.below(7) as usize;
            for i in 0..features + 2 {
                let name = match i {
                    0 => "session_start",
                    i if i == features + 1 => "session_end",
                    _ => {
                        // Skewed: the first names are drawn far more often.
                        let r = self.rng.below(1 << 16) as f64 / f64::from(1 << 16);
                        FEATURES[(r * r * r * FEATURES.len() as f64) as usize]
                    }
                };
                let ms = at.timestamp_millis() as u64;
                self.seq += 1;
                events.push(AnalyticsEvent {
                    // UUIDv7-like: time first, as clients make them.
                    id: uuid::Uuid::from_u128(
                        (u128::from(ms) << 80)
                            | (0x7u128 << 76)
                            | (2u128 << 62)
                            | u128::from(self.seq),
                    ),
                    name: name.into(),
                    category: EventCategory::for_name(name),
                    user_id: u.id.clone(),
                    session_id: session.clone(),
                    timestamp: at,
                    app_version: u.version.into(),
                    platform: u.platform.into(),
                    arch: "x64".into(),
                    channel: "stable".into(),
                    properties: None,
                    duration: (name == "session_end")
                        .then(|| (at - started).num_milliseconds() as f64),
                    sequence: i as u64,
                });
                at += Duration::milliseconds(1_000 + self.rng.below(90_000) as i64);
            }
            at += Duration::milliseconds(600_000 + self.rng.below(3_600_000) as i64);
        }
        EventBatch {
            events,
            sent_at: None,
            sample_rate: u.sample_rate,
            dropped: 0,
            queued: 0,
        }
    }
}

/// When the server "receives" the data set: the day after the last day.
fn received_at() -> DateTime<Utc> {
    START.parse::<DateTime<Utc>>().expect("start") + Duration::days(DAYS) + Duration::hours(1)
}

/// Fills `store` with the data set through `prepare_batch` and `insert_events`; the events
/// written.
async fn fill(store: &SharedStore, events: u64) -> u64 {
    let now = received_at();
    let mut gen = Generator::new(events);
    let mut group: Vec<StoredEvent> = Vec::with_capacity(MAX_GROUP_EVENTS + 64);
    let mut n = 0u64;
    let t = Instant::now();
    loop {
        let batch = gen.next_batch();
        if let Some(b) = &batch {
            let body = serde_json::to_vec(b).expect("json");
            let p = prepare_batch(&body, now).expect("a valid batch");
            assert!(p.rejected.is_empty(), "{:?}", p.rejected);
            group.extend(p.rows);
        }
        if group.len() >= MAX_GROUP_EVENTS || (batch.is_none() && !group.is_empty()) {
            let g = std::mem::take(&mut group);
            n += g.len() as u64;
            store.insert_events(g).await.expect("insert");
            if n % 1_000_000 < MAX_GROUP_EVENTS as u64 {
                eprintln!(
                    "queries bench: {n} events written ({:.0}/s)",
                    n as f64 / t.elapsed().as_secs_f64()
                );
            }
        }
        if batch.is_none() {
            return n;
        }
    }
}

/// A store of the data set: opened from the cache when complete, else built. The URL and
/// whether it was built now.
async fn dataset(url: &str, events: u64) -> (SharedStore, u64) {
    let store = store::open(url).await.expect("open store");
    let stored = store.count_events().await.expect("count");
    if stored > 0 && done_marker(url).await == Some(stored) {
        eprintln!("queries bench: {url}: {stored} events from the cache");
        return (store, stored);
    }
    assert_eq!(stored, 0, "{url}: an incomplete data set; remove it");
    let t = Instant::now();
    let n = fill(&store, events).await;
    eprintln!(
        "queries bench: {url}: {n} events written in {:.0} s ({:.0}/s)",
        t.elapsed().as_secs_f64(),
        n as f64 / t.elapsed().as_secs_f64()
    );
    set_marker(url, n).await;
    (store, n)
}

/// The event count the completed data set of `url` recorded, if any.
async fn done_marker(url: &str) -> Option<u64> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        std::fs::read_to_string(format!("{path}.done"))
            .ok()?
            .trim()
            .parse()
            .ok()
    } else {
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(conn);
        let row = c.query_one("SELECT n FROM bench_done", &[]).await.ok()?;
        Some(row.get::<_, i64>(0) as u64)
    }
}

async fn set_marker(url: &str, n: u64) {
    if let Some(path) = url.strip_prefix("sqlite:") {
        std::fs::write(format!("{path}.done"), n.to_string()).expect("marker");
    } else {
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        c.batch_execute(&format!(
            "CREATE TABLE bench_done (n BIGINT NOT NULL); INSERT INTO bench_done VALUES ({n}); \
             ANALYZE;"
        ))
        .await
        .expect("marker");
    }
}

/// The PostgreSQL database of the data set on the server of `base` (created if missing).
async fn postgres_db(base: &str, events: u64) -> String {
    let name = format!("railgun_bench_queries_g{GENERATOR}_{events}");
    let (c, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("connect to the PostgreSQL server");
    tokio::spawn(conn);
    let exists = c
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("list databases")
        .is_some();
    if !exists {
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
    }
    let (prefix, _) = base.rsplit_once('/').expect("the URL names a database");
    format!("{prefix}/{name}")
}

/// One question: a label, the path asked on a day, and the numbers compared with DuckDB.
struct Query {
    label: &'static str,
    path: fn(i32) -> String,
}

fn d(n: i32) -> NaiveDate {
    day_date(n)
}

fn queries() -> Vec<Query> {
    vec![
        Query {
            label: "DAU",
            path: |t| format!("/analytics/dau?date={}", d(t)),
        },
        Query {
            label: "WAU",
            path: |t| format!("/analytics/wau?date={}", d(t)),
        },
        Query {
            label: "MAU",
            path: |t| format!("/analytics/mau?date={}", d(t)),
        },
        Query {
            label: "DAU series, 30 days",
            path: |t| format!("/analytics/dau-series?from={}&to={}", d(t - 29), d(t)),
        },
        Query {
            label: "sessions of a day",
            path: |t| format!("/analytics/sessions?date={}", d(t)),
        },
        Query {
            label: "one feature by day, 30 days",
            path: |t| {
                format!(
                    "/analytics/features?name=screen_view&from={}&to={}",
                    d(t - 29),
                    d(t)
                )
            },
        },
        Query {
            label: "feature summary, 30 days",
            path: |t| format!("/analytics/feature-summary?from={}&to={}", d(t - 29), d(t)),
        },
        Query {
            label: "retention, 28 days",
            path: |t| format!("/analytics/retention?cohort={}&days=28", d(t - 28)),
        },
    ]
}

/// The days the requests rotate over (the last five days of the data set).
fn days() -> Vec<i32> {
    let last = day_number(received_at().date_naive()) - 1;
    (0..5).map(|i| last - i).collect()
}

/// The numbers of an answer that DuckDB must match, by query label (raw counts only: the
/// estimates are sums of floats in another order).
fn key_numbers(label: &str, v: &Value) -> Vec<i64> {
    let n = |v: &Value| v.as_i64().unwrap_or(-1);
    match label {
        "DAU" | "WAU" | "MAU" => vec![n(&v["users"])],
        "DAU series, 30 days" => v["days"]
            .as_array()
            .expect("days")
            .iter()
            .map(|d| n(&d["users"]))
            .collect(),
        "sessions of a day" => vec![n(&v["count"])],
        "one feature by day, 30 days" => v["days"]
            .as_array()
            .expect("days")
            .iter()
            .flat_map(|d| [n(&d["events"]), n(&d["users"])])
            .collect(),
        "feature summary, 30 days" => v["features"]
            .as_array()
            .expect("features")
            .iter()
            .flat_map(|f| [n(&f["events"]), n(&f["users"])])
            .collect(),
        "retention, 28 days" => std::iter::once(n(&v["size"]))
            .chain(
                v["days"]
                    .as_array()
                    .expect("days")
                    .iter()
                    .map(|d| n(&d["users"])),
            )
            .collect(),
        _ => unreachable!("{label}"),
    }
}

/// Per query: median ms, slowest ms, the numbers compared.
type Timings<K> = BTreeMap<K, (f64, f64, Vec<i64>)>;

/// Times every query over HTTP against the application over `store`: label → (median ms,
/// max ms, the numbers of the first day's answer).
async fn time_http(store: SharedStore) -> Timings<&'static str> {
    let dir = tempfile::tempdir().expect("tmp");
    let config = ServerConfig {
        root: dir.path().join("updates"),
        read_token: Some("bench-read".into()),
        run_retention: false,
        ..ServerConfig::default()
    };
    let server = App::new(&config, store)
        .expect("app")
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("spawn");
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", server.url());
        async move {
            let t = Instant::now();
            let r = http
                .get(&url)
                .bearer_auth("bench-read")
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), 200, "{url}");
            let v: Value = r.json().await.expect("json");
            (t.elapsed().as_secs_f64() * 1000.0, v)
        }
    };
    let days = days();
    let mut out = BTreeMap::new();
    for q in queries() {
        let (_, first) = get((q.path)(days[0])).await;
        get((q.path)(days[1])).await;
        let mut ms = Vec::with_capacity(RUNS);
        for i in 0..RUNS {
            ms.push(get((q.path)(days[i % days.len()])).await.0);
        }
        ms.sort_by(f64::total_cmp);
        out.insert(
            q.label,
            (ms[RUNS / 2], ms[RUNS - 1], key_numbers(q.label, &first)),
        );
    }
    server.stop().await.expect("stop");
    out
}

/// DuckDB answering the same questions over the same rows (exported as Parquet): label →
/// (median ms, max ms, the numbers of the first day's answer), and its load time.
fn time_duckdb(parquet: &Path) -> Option<(Timings<String>, f64)> {
    let days = days();
    let script = format!(
        r#"
import duckdb, json, time
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute("SET enable_progress_bar = false")
t = time.time()
con.execute("""CREATE TABLE events AS SELECT event_name AS name, user_id, session_id,
    CAST(epoch_ms(event_timestamp) // 86400000 AS INTEGER) AS day, duration_ms AS duration,
    sample_rate FROM read_parquet('{glob}')""")
load = time.time() - t
ACTIVE = """SELECT COUNT(*), SUM(1.0 / sr) FROM (SELECT user_id, MAX(sample_rate) AS sr
    FROM events WHERE day BETWEEN ? AND ? GROUP BY user_id)"""
Q = {{
  "DAU": (ACTIVE, lambda t: [t, t], lambda r: [r[0][0]]),
  "WAU": (ACTIVE, lambda t: [t - 6, t], lambda r: [r[0][0]]),
  "MAU": (ACTIVE, lambda t: [t - 29, t], lambda r: [r[0][0]]),
  "DAU series, 30 days": ("""SELECT day, COUNT(*), SUM(1.0 / sr) FROM (SELECT day, user_id,
      MIN(sample_rate) AS sr FROM events WHERE day BETWEEN ? AND ? GROUP BY day, user_id)
      GROUP BY day ORDER BY day""", lambda t: [t - 29, t], lambda r: [x[1] for x in r]),
  "sessions of a day": ("""SELECT COUNT(*), SUM(1.0 / sr), AVG(d), quantile_disc(d, 0.5),
      quantile_disc(d, 0.9) FROM (SELECT session_id, MAX(duration) AS d, MIN(sample_rate) AS sr
      FROM events WHERE day = ? AND name = 'session_end' AND duration IS NOT NULL
      GROUP BY session_id)""", lambda t: [t], lambda r: [r[0][0]]),
  "one feature by day, 30 days": ("""SELECT day, COUNT(*), COUNT(DISTINCT user_id),
      SUM(1.0 / sample_rate) FROM events WHERE name = 'screen_view' AND day BETWEEN ? AND ?
      GROUP BY day ORDER BY day""", lambda t: [t - 29, t],
      lambda r: [v for x in r for v in (x[1], x[2])]),
  "feature summary, 30 days": ("""SELECT name, SUM(ev) AS ev, COUNT(*) FROM (SELECT name,
      user_id, COUNT(*) AS ev FROM events WHERE day BETWEEN ? AND ? GROUP BY name, user_id)
      GROUP BY name ORDER BY ev DESC, name LIMIT 50""", lambda t: [t - 29, t],
      lambda r: [v for x in r for v in (x[1], x[2])]),
  "retention, 28 days": ("""WITH f AS (SELECT user_id FROM events GROUP BY user_id
      HAVING MIN(day) = ?), a AS (SELECT DISTINCT e.day, e.user_id FROM events e
      SEMI JOIN f ON e.user_id = f.user_id WHERE e.day BETWEEN ? AND ?)
      SELECT (SELECT COUNT(*) FROM f), s.d, (SELECT COUNT(*) FROM a WHERE a.day = s.d)
      FROM range(?, ? + 1) s(d) ORDER BY s.d""", lambda t: [t - 28, t - 28, t, t - 28, t],
      lambda r: [r[0][0]] + [x[2] for x in r]),
}}
days = {days:?}
out = {{}}
for label, (sql, args, nums) in Q.items():
    first = nums(con.execute(sql, args(days[0])).fetchall())
    con.execute(sql, args(days[1])).fetchall()
    ms = []
    for i in range({runs}):
        t = time.time()
        con.execute(sql, args(days[i % len(days)])).fetchall()
        ms.append((time.time() - t) * 1000)
    ms.sort()
    out[label] = [ms[len(ms) // 2], ms[-1], [int(v) for v in first]]
print(json.dumps({{"load": load, "queries": out}}))
"#,
        glob = parquet.join("events/**/*.parquet").display(),
        runs = RUNS,
    );
    let o = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .ok()?;
    if !o.status.success() {
        eprintln!(
            "queries bench: duckdb failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let v: Value = serde_json::from_str(text.lines().last()?).ok()?;
    let mut out = BTreeMap::new();
    for (k, q) in v["queries"].as_object()? {
        let nums = q[2]
            .as_array()?
            .iter()
            .map(|x| x.as_i64().unwrap_or(-1))
            .collect();
        out.insert(k.clone(), (q[0].as_f64()?, q[1].as_f64()?, nums));
    }
    Some((out, v["load"].as_f64()?))
}

/// The Parquet export of `store` under `dir` (kept: the cache), written once.
async fn parquet(store: &SharedStore, dir: &Path) -> PathBuf {
    let out = dir.join("parquet");
    if !dir.join("parquet.done").exists() {
        let _ = std::fs::remove_dir_all(&out);
        let opts = ExportOptions {
            tables: export::parse_tables("events").expect("tables"),
            ..ExportOptions::new(out.to_str().expect("path"))
        };
        let t = Instant::now();
        let r = export::run(store, &opts).await.expect("export");
        eprintln!(
            "queries bench: exported {} rows as Parquet in {:.0} s",
            r.rows,
            t.elapsed().as_secs_f64()
        );
        std::fs::write(dir.join("parquet.done"), r.rows.to_string()).expect("marker");
    }
    out
}

fn main() {
    let events: u64 = std::env::var("RAILGUN_BENCH_QUERY_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::var_os("BENCH_QUICK").is_some() {
            1_000_000
        } else {
            10_000_000
        });
    // The cargo target folder: benches run with the package folder as working directory.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let cache = target.join(format!("bench-queries/g{GENERATOR}-{events}"));
    std::fs::create_dir_all(&cache).expect("cache folder");
    let pg = std::env::var("RAILGUN_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("RAILGUN_TEST_DATABASE_URL"))
        .ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let only = std::env::var("RAILGUN_BENCH_QUERY_STORES").unwrap_or_default();
        let wanted = |s: &str| only.is_empty() || only.split(',').any(|o| o.trim() == s);
        let mut stores = Vec::new();
        if wanted("sqlite") {
            stores.push((
                "SQLite",
                format!("sqlite:{}", cache.join("analytics.db").display()),
            ));
        }
        match &pg {
            Some(base) if wanted("postgres") => {
                stores.push(("PostgreSQL", postgres_db(base, events).await))
            }
            Some(_) => {}
            None => println!(
                "PostgreSQL not measured: set RAILGUN_BENCH_DATABASE_URL (or RAILGUN_TEST_DATABASE_URL)"
            ),
        }
        let mut results = Vec::new();
        let mut rows = 0;
        for (label, url) in &stores {
            let (store, n) = dataset(url, events).await;
            rows = n;
            if *label == "SQLite" {
                parquet(&store, &cache).await;
            }
            results.push((*label, time_http(store).await));
        }
        let parquet_done = cache.join("parquet.done").exists();
        let duck = tokio::task::spawn_blocking({
            let p = cache.join("parquet");
            move || parquet_done.then(|| time_duckdb(&p)).flatten()
        })
        .await
        .expect("duckdb task");
        if let Some((_, load)) = &duck {
            println!("queries bench: DuckDB loaded the {rows} Parquet rows in {load:.1} s (not timed per query)");
        }
        let mut mismatches = Vec::new();
        for (store, res) in &results {
            for q in queries() {
                let (med, max, nums) = &res[q.label];
                let (peer, ratio) = match duck.as_ref().and_then(|(d, _)| d.get(q.label)) {
                    Some((pmed, _, pnums)) => {
                        if pnums != nums {
                            mismatches.push(format!("{store} {}: railgun {nums:?} duckdb {pnums:?}", q.label));
                        }
                        (
                            format!("DuckDB {pmed:.1} ms"),
                            if med <= pmed {
                                format!("{:.1}× faster", pmed / med)
                            } else {
                                format!("{:.1}× slower", med / pmed)
                            },
                        )
                    }
                    None => ("DuckDB not measured (pip install duckdb)".into(), "—".into()),
                };
                println!(
                    "bench-row: {} over {rows} events, {store}, HTTP | ≤ 50 ms | {med:.1} ms (max {max:.1}) | {peer} | {ratio}",
                    q.label
                );
            }
        }
        assert!(mismatches.is_empty(), "answers differ from DuckDB's:\n{}", mismatches.join("\n"));
    });
}
