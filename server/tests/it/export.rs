//! `railgun export` end to end, on SQLite and PostgreSQL: events go in through the real
//! ingest (HTTP on loopback), the real binary exports them, and an independent reader
//! (DuckDB's Python package, installed by `scripts/test.sh`) reads the files back; its SQL
//! over the files must give the API's answers. A child export is SIGKILLed at controlled
//! points (after its N-th published file, through the test-only hook
//! `RAILGUN_EXPORT_TEST_PAUSE_AFTER_FILES`) and run again: every row exactly once. The S3
//! destination runs against moto's S3-compatible server on loopback.
//!
//! Without DuckDB (or moto) the tests that need it say SKIP, and fail under
//! `RAILGUN_REQUIRE_ALL=1`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::db::{database, Kind};
use crate::support::python_has;
use chrono::{DateTime, Duration, Utc};
use railgun_core::analytics::{AnalyticsEvent, EventBatch, EventCategory, Properties};
use railgun_core::clock::{ManualClock, SharedClock};
use railgun_core::health::{HealthReport, SessionEnds};
use railgun_server::analytics::retention::{self, RetentionConfig};
use railgun_server::analytics::AppState;
use railgun_server::export::{self, ExportOptions};
use railgun_server::serve::{App, RunningServer, ServerConfig};
use railgun_server::store::rollout::{Decision, RolloutChange, RolloutRow};
use railgun_server::store::{self, SharedStore, StoredEvent};
use serde_json::Value;
use uuid::Uuid;

const READ: &str = "export-read-token";
const BIN: &str = env!("CARGO_BIN_EXE_railgun");

fn now0() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().expect("t")
}

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    "2026-03-01T00:00:00Z".parse::<DateTime<Utc>>().expect("t")
        + Duration::days(day as i64)
        + Duration::hours(hour as i64)
        + Duration::minutes(minute as i64)
}

fn ev(user: &str, name: &str, t: DateTime<Utc>) -> AnalyticsEvent {
    AnalyticsEvent {
        id: Uuid::new_v4(),
        name: name.into(),
        category: EventCategory::for_name(name),
        user_id: user.into(),
        session_id: format!("s-{user}-{}", t.date_naive()),
        timestamp: t,
        app_version: "1.0.0".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        channel: "stable".into(),
        properties: None,
        duration: None,
        sequence: 1,
    }
}

/// A child process killed and reaped when dropped (also when a test fails).
/// Says SKIP, or fails under `RAILGUN_REQUIRE_ALL=1`.
fn missing(what: &str) {
    if std::env::var("RAILGUN_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{what} is required (RAILGUN_REQUIRE_ALL=1): install it with scripts/test.sh");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: export tests that need {what}: not installed (scripts/test.sh installs it)"
    );
}

fn duckdb_or_skip() -> bool {
    python_has("duckdb") || {
        missing("DuckDB's Python package (pip install duckdb)");
        false
    }
}

/// Runs SQL queries with DuckDB (in `dir`); each answer is a list of rows (lists).
fn duck(dir: &Path, queries: &[&str]) -> Vec<Vec<Vec<Value>>> {
    const SCRIPT: &str = r#"
import duckdb, json, sys
con = duckdb.connect()
out = []
for q in json.load(sys.stdin):
    rows = con.execute(q).fetchall()
    out.append([[v if isinstance(v, (int, float, str, type(None))) else str(v) for v in r] for r in rows])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let body = serde_json::to_vec(queries).expect("json");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&body)
        .expect("write");
    let out = child.wait_with_output().expect("duckdb");
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("duckdb json")
}

fn one(dir: &Path, q: &str) -> Value {
    duck(dir, &[q])[0][0][0].clone()
}

fn railgun(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("railgun")
}

/// `railgun export --database DB --out OUT ARGS… --json`, which must succeed.
fn export_json(db: &str, out: &Path, args: &[&str]) -> Value {
    let mut all = vec![
        "export",
        "--database",
        db,
        "--out",
        out.to_str().expect("p"),
        "--json",
    ];
    all.extend_from_slice(args);
    let o = railgun(&all);
    assert!(
        o.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("report")
}

fn table_rows(report: &Value, table: &str) -> u64 {
    report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == table)
        .map_or(0, |t| t["rows"].as_u64().expect("rows"))
}

struct Harness {
    server: Option<RunningServer>,
    url: String,
    http: reqwest::Client,
    database: String,
    state: AppState,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn start(kind: Kind) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = database(kind, &dir.path().join("db/analytics.db"), "export").await?;
        let clock = ManualClock::new(now0());
        let config = ServerConfig {
            root: dir.path().join("updates"),
            database: database.clone(),
            read_token: Some(READ.into()),
            run_retention: false,
            clock: Arc::new(clock) as SharedClock,
            ..ServerConfig::default()
        };
        std::fs::create_dir_all(&config.root).expect("root");
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let server = App::open(&config)
            .await
            .expect("app")
            .spawn(addr)
            .await
            .expect("spawn");
        let state = server.state.clone();
        Some(Self {
            url: server.url(),
            server: Some(server),
            http: reqwest::Client::new(),
            database,
            state,
            dir,
        })
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn post(&self, events: Vec<AnalyticsEvent>, sample_rate: f64) {
        let n = events.len();
        let r = self
            .http
            .post(format!("{}/analytics/events", self.url))
            .json(&EventBatch {
                events,
                sent_at: Some(now0()),
                sample_rate,
                dropped: 0,
                queued: 0,
            })
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["accepted"], n, "{v}");
        // The answer comes after the commit: the rows are in the database now.
    }

    async fn api(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(READ)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.expect("json")
    }

    async fn health_report(&self, session_ends: Option<SessionEnds>) {
        let body = HealthReport {
            id: Uuid::new_v4(),
            machine_id: "a".repeat(64),
            app: "rail-gun".into(),
            version: "1.0.0".into(),
            channel: "stable".into(),
            platform: "linux".into(),
            arch: "x64".into(),
            period_start: now0() - Duration::hours(1),
            period_end: now0(),
            sessions: 2,
            errors: 1,
            crashes: 0,
            boot_reverts: 0,
            session_ends,
        };
        let r = self
            .http
            .post(format!("{}/analytics/health", self.url))
            .json(&body)
            .send()
            .await
            .expect("health");
        assert_eq!(r.status(), 200);
    }

    /// A rollout and its start decision, through the store's own transaction.
    async fn rollout(&self) {
        let rollout = RolloutRow {
            app: "rail-gun".into(),
            channel: "stable".into(),
            version: "1.0.0".into(),
            percentage: 10.0,
            status: "active".into(),
            fallback_version: None,
            rolled_back: false,
            policy: "{}".into(),
            started_ms: now0().timestamp_millis(),
            stage_started_ms: now0().timestamp_millis(),
            updated_ms: now0().timestamp_millis(),
            high_error_alerted: false,
            low_adoption_alerted: false,
        };
        let decision = Decision {
            id: Uuid::new_v4().to_string(),
            at: now0(),
            app: "rail-gun".into(),
            channel: "stable".into(),
            version: "1.0.0".into(),
            action: "start".into(),
            actor: "admin".into(),
            from_percentage: 0.0,
            to_percentage: 10.0,
            installs: 0,
            error_rate: 0.0,
            error_lower: 0.0,
            error_upper: 0.0,
            crash_rate: 0.0,
            crash_lower: 0.0,
            crash_upper: 0.0,
            reason: "started by an admin".into(),
        };
        let ok = self
            .state
            .store
            .commit_change(RolloutChange {
                rollout: Some(rollout),
                channel: None,
                decision: Some(decision),
                alerts: Default::default(),
                fence: None,
            })
            .await
            .expect("commit");
        assert!(ok);
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.expect("stop");
        }
    }
}

/// The hand-checked set: 9 events of 3 users over 2026-03-01, 03-02 and 03-05.
///   DAU: 03-01 u1 u2 (estimate 1 + 2), 03-02 u1 u3, 03-05 u3.
///   message_sent: 03-01 3 events / 2 users, 03-02 1 / 1, 03-05 1 / 1.
async fn load_hand_checked(h: &Harness) {
    let mut home = ev("u1", "screen_view", at(0, 10, 0));
    home.properties = Some(Properties::from([("screen_name".into(), "home".into())]));
    let mut end = ev("u1", "session_end", at(0, 10, 3));
    end.duration = Some(60_000.0);
    h.post(
        vec![
            home,
            ev("u1", "message_sent", at(0, 10, 1)),
            ev("u1", "message_sent", at(0, 10, 2)),
            end,
            ev("u1", "message_sent", at(1, 10, 0)),
            ev("u3", "screen_view", at(1, 11, 0)),
            ev("u3", "message_sent", at(4, 10, 0)),
        ],
        1.0,
    )
    .await;
    h.post(
        vec![
            ev("u2", "message_sent", at(0, 12, 0)),
            ev("u2", "screen_view", at(0, 12, 5)),
        ],
        0.5,
    )
    .await;
}

const EVENTS: &str = "read_parquet('events/*/*.parquet', hive_partitioning = true)";
const DAU: &str = "read_parquet('daily_active_users/*/*.parquet', hive_partitioning = true)";
const FEATURES: &str = "read_parquet('feature_usage/*/*.parquet', hive_partitioning = true)";

/// DuckDB's answers over the files must be the API's, day by day.
async fn files_agree_with_the_api(h: &Harness, out: &Path, days: &[&str]) {
    for d in days {
        let api = h.api(&format!("/analytics/dau?date={d}")).await;
        let q = duck(
            out,
            &[
                &format!("SELECT COUNT(DISTINCT user_id) FROM {EVENTS} WHERE date = DATE '{d}'"),
                &format!(
                    "SELECT active_users, active_users_estimate FROM {DAU} WHERE date = DATE '{d}'"
                ),
            ],
        );
        assert_eq!(q[0][0][0], api["users"], "DAU from events on {d}: {api}");
        assert_eq!(
            q[1],
            vec![vec![api["users"].clone(), api["estimate"].clone()]],
            "{d}"
        );
    }
    let (from, to) = (days[0], days[days.len() - 1]);
    let api = h
        .api(&format!(
            "/analytics/features?name=message_sent&from={from}&to={to}"
        ))
        .await;
    let rows = duck(
        out,
        &[&format!(
            "SELECT strftime(day, '%Y-%m-%d'), SUM(events)::BIGINT, COUNT(*)::BIGINT, \
             SUM(events / sample_rate), SUM(1 / sample_rate) FROM {FEATURES} \
             WHERE event_name = 'message_sent' AND day BETWEEN DATE '{from}' AND DATE '{to}' \
             GROUP BY day ORDER BY day"
        )],
    )
    .remove(0);
    let want: Vec<Vec<Value>> = api["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| {
            vec![
                d["date"].clone(),
                d["events"].clone(),
                d["users"].clone(),
                d["eventsEstimate"].clone(),
                d["usersEstimate"].clone(),
            ]
        })
        .collect();
    assert_eq!(rows, want, "feature usage from the files vs {api}");
}

both_stores!(
    exports_a_hand_checked_data_set_that_duckdb_reads_back_as_the_api_answers,
    an_export_killed_midway_and_run_again_writes_every_row_exactly_once,
    retention_keeps_what_an_enabled_export_has_not_written,
);

async fn exports_a_hand_checked_data_set_that_duckdb_reads_back_as_the_api_answers(kind: Kind) {
    if !duckdb_or_skip() {
        return;
    }
    let Some(h) = Harness::start(kind).await else {
        return;
    };
    load_hand_checked(&h).await;
    // One report with release-health session ends, one without (an older client).
    let ends = SessionEnds {
        ok: 3,
        errored: 1,
        crashed: 2,
        abnormal: 1,
    };
    h.health_report(Some(ends)).await;
    h.health_report(None).await;
    h.rollout().await;
    let out = h.out("warehouse");

    let r = export_json(&h.database, &out, &[]);
    assert_eq!(table_rows(&r, "events"), 9, "{r}");
    assert_eq!(table_rows(&r, "daily_active_users"), 3);
    assert_eq!(table_rows(&r, "health_reports"), 2);
    assert_eq!(table_rows(&r, "rollouts"), 1);
    assert_eq!(table_rows(&r, "rollout_decisions"), 1);
    for f in [
        "events/date=2026-03-01",
        "events/date=2026-03-02",
        "events/date=2026-03-05",
        "daily_active_users/date=2026-03-01/part-00000.parquet",
        "feature_usage/date=2026-03-05/part-00000.parquet",
        "rollouts/part-00000.parquet",
        "_railgun_export.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let files = duck(&out, &["SELECT COUNT(*) FROM glob('events/*/*.parquet')"]);
    assert_eq!(files[0][0][0], 3, "one file per day of the one chunk");

    let q = duck(
        &out,
        &[
            &format!("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM {EVENTS}"),
            &format!(
                "SELECT strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S'), \
                 json_extract_string(properties, '$.screen_name'), sample_rate, typeof(event_timestamp) \
                 FROM {EVENTS} WHERE user_id = 'u1' AND event_name = 'screen_view'"
            ),
            &format!("SELECT duration_ms FROM {EVENTS} WHERE event_name = 'session_end'"),
            "SELECT DISTINCT compression FROM parquet_metadata('events/*/*.parquet')",
            "SELECT COUNT(*), SUM(errors), MIN(machine_id) FROM read_parquet('health_reports/*/*.parquet')",
            "SELECT action, to_percentage FROM read_parquet('rollout_decisions/*/*.parquet')",
            "SELECT version, status, percentage FROM 'rollouts/part-00000.parquet'",
            "SELECT session_id, duration_ms FROM read_parquet('sessions/*/*.parquet')",
            "SELECT sessions_ended_ok, sessions_ended_errored, sessions_ended_crashed, \
             sessions_ended_abnormal FROM read_parquet('health_reports/*/*.parquet') \
             ORDER BY sessions_ended_ok NULLS LAST",
            "SELECT SUM(sessions_ended_ok), SUM(sessions_ended_errored), \
             SUM(sessions_ended_crashed), SUM(sessions_ended_abnormal) \
             FROM read_parquet('health_reports/*/*.parquet')",
        ],
    );
    assert_eq!(q[0], vec![vec![Value::from(9), Value::from(9)]]);
    assert_eq!(
        q[1],
        vec![vec![
            Value::from("2026-03-01T10:00:00"),
            Value::from("home"),
            Value::from(1.0),
            Value::from("TIMESTAMP WITH TIME ZONE")
        ]]
    );
    assert_eq!(q[2], vec![vec![Value::from(60_000.0)]]);
    assert_eq!(q[3], vec![vec![Value::from("ZSTD")]]);
    assert_eq!(
        q[4],
        vec![vec![
            Value::from(2),
            Value::from(2),
            Value::from("a".repeat(64))
        ]]
    );
    assert_eq!(q[5], vec![vec![Value::from("start"), Value::from(10.0)]]);
    assert_eq!(
        q[6],
        vec![vec![
            Value::from("1.0.0"),
            Value::from("active"),
            Value::from(10.0)
        ]]
    );
    assert_eq!(
        q[7],
        vec![vec![Value::from("s-u1-2026-03-01"), Value::from(60_000.0)]]
    );
    // The health rows keep each report's session ends (null without them), and their sums
    // are the release's sessions as the API answers them.
    assert_eq!(
        q[8],
        vec![
            vec![3, 1, 2, 1].into_iter().map(Value::from).collect(),
            vec![Value::Null; 4]
        ]
    );
    let status = h
        .api("/analytics/rollout-status?version=1.0.0&app=rail-gun&channel=stable")
        .await;
    let s = &status["sessions"];
    assert_eq!(
        q[9],
        vec![vec![
            s["ok"].clone(),
            s["errored"].clone(),
            s["crashed"].clone(),
            s["abnormal"].clone()
        ]],
        "{status}"
    );
    files_agree_with_the_api(&h, &out, &["2026-03-01", "2026-03-02", "2026-03-05"]).await;

    // Nothing new: nothing written, and it says so.
    let r = export_json(&h.database, &out, &[]);
    assert_eq!(r["files"], 0, "{r}");
    assert!(
        r["summary"]
            .as_str()
            .expect("s")
            .starts_with("nothing new to export"),
        "{r}"
    );

    // A new day and a late event of an old day: only those events; both days' DAU files
    // are rewritten, never duplicated.
    h.post(
        vec![
            ev("u4", "screen_view", at(4, 15, 0)),
            ev("u2", "message_sent", at(1, 9, 0)),
        ],
        1.0,
    )
    .await;
    let r = export_json(&h.database, &out, &[]);
    assert_eq!(table_rows(&r, "events"), 2, "{r}");
    assert_eq!(table_rows(&r, "daily_active_users"), 2, "{r}");
    assert_eq!(table_rows(&r, "health_reports"), 0, "{r}");
    assert_eq!(
        one(
            &out,
            &format!("SELECT COUNT(*) - COUNT(DISTINCT event_id) FROM {EVENTS}")
        ),
        0
    );
    assert_eq!(one(&out, &format!("SELECT COUNT(*) FROM {EVENTS}")), 11);
    assert_eq!(one(&out, &format!("SELECT COUNT(*) FROM {DAU}")), 3);
    files_agree_with_the_api(&h, &out, &["2026-03-01", "2026-03-02", "2026-03-05"]).await;

    // The same data as NDJSON: same rows, BigQuery's JSON types.
    let nd = h.out("ndjson");
    let r = export_json(&h.database, &nd, &["--format", "ndjson"]);
    assert_eq!(table_rows(&r, "events"), 11, "{r}");
    let q = duck(
        &nd,
        &[
            "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM read_json('events/*/*.ndjson', hive_partitioning = true)",
            "SELECT event_timestamp FROM read_json('events/*/*.ndjson', format = 'newline_delimited', \
             columns = {event_timestamp: 'VARCHAR', event_name: 'VARCHAR', user_id: 'VARCHAR'}) \
             WHERE user_id = 'u1' AND event_name = 'screen_view'",
            "SELECT sessions_ended_crashed FROM read_json('health_reports/*/*.ndjson', \
             format = 'newline_delimited') ORDER BY 1 NULLS LAST",
        ],
    );
    assert_eq!(q[0], vec![vec![Value::from(11), Value::from(11)]]);
    assert_eq!(q[1], vec![vec![Value::from("2026-03-01T10:00:00.000000Z")]]);
    assert_eq!(q[2], vec![vec![Value::from(2)], vec![Value::Null]]);
    h.stop().await;
}

/// The lines of a child's output, as they come.
fn lines(from: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Runs an export that pauses after its `n`-th published file, and SIGKILLs it there.
/// `false` when it finished before publishing `n` files.
fn export_killed_after(db: &str, out: &Path, n: usize, chunk_rows: &str) -> bool {
    let mut child = Command::new(BIN)
        .args([
            "export",
            "--database",
            db,
            "--out",
            out.to_str().expect("p"),
            "--chunk-rows",
            chunk_rows,
        ])
        .env("RAILGUN_EXPORT_TEST_PAUSE_AFTER_FILES", n.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn export");
    let rx = lines(child.stderr.take().expect("stderr"));
    let deadline = std::time::Instant::now() + StdDuration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("test pause") => {
                child.kill().expect("SIGKILL");
                let _ = child.wait();
                return true;
            }
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait");
                assert!(status.success(), "export failed before pausing");
                return false;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("export neither paused nor finished within 120 s");
            }
        }
    }
}

async fn an_export_killed_midway_and_run_again_writes_every_row_exactly_once(kind: Kind) {
    if !duckdb_or_skip() {
        return;
    }
    let Some(h) = Harness::start(kind).await else {
        return;
    };
    let users = ["k1", "k2", "k3", "k4", "k5"];
    let batch = |from: u32| -> Vec<AnalyticsEvent> {
        (0..30)
            .map(|i| {
                ev(
                    users[i % 5],
                    "message_sent",
                    at(from + (i as u32 % 6), 8, i as u32),
                )
            })
            .collect()
    };
    h.post(batch(0), 1.0).await;
    h.post(batch(0), 1.0).await;
    let out = h.out("killed");
    // Chunks of 8 rows over 6 days: a chunk writes up to 6 files. Kill inside the first
    // chunk, then on the last file of a chunk (before its watermark moved), then in a
    // daily table.
    assert!(export_killed_after(&h.database, &out, 2, "8"));
    let id = url::Url::from_directory_path(out.canonicalize().expect("out")).expect("url");
    let mark = h
        .state
        .store
        .export_watermark(id.as_str().trim_end_matches('/').into(), "events".into())
        .await
        .expect("watermark");
    assert!(
        mark.pending.is_some(),
        "the killed run left its chunk pending: {mark:?}"
    );
    h.post(batch(2), 0.5).await; // new rows while a chunk is pending
    assert!(export_killed_after(&h.database, &out, 1, "8"));
    assert!(export_killed_after(&h.database, &out, 7, "8"));
    export_killed_after(&h.database, &out, 40, "8"); // may finish first: fine
    export_json(&h.database, &out, &["--chunk-rows", "8"]);
    let q = duck(
        &out,
        &[
            &format!("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM {EVENTS}"),
            &format!("SELECT COUNT(*), COUNT(DISTINCT date) FROM {DAU}"),
            "SELECT COUNT(*) FROM glob('**/*#*')",
        ],
    );
    assert_eq!(
        q[0],
        vec![vec![Value::from(90), Value::from(90)]],
        "every row once"
    );
    assert_eq!(q[1][0][0], q[1][0][1], "one DAU row per day");
    assert_eq!(q[2], vec![vec![Value::from(0)]], "no staging file left");
    let days: Vec<String> = (0..8)
        .map(|d| at(d, 0, 0).format("%Y-%m-%d").to_string())
        .collect();
    let days: Vec<&str> = days.iter().map(String::as_str).collect();
    files_agree_with_the_api(&h, &out, &days).await;
    h.stop().await;
}

/// A stored event of user `r1` at `ts` (other suites change the fields they need).
pub fn stored(id: &str, ts: DateTime<Utc>) -> StoredEvent {
    StoredEvent {
        id: id.into(),
        name: "screen_view".into(),
        category: "navigation".into(),
        user_id: "r1".into(),
        session_id: "s".into(),
        ts_ms: ts.timestamp_millis(),
        day: store::day_of(ts),
        app_version: "1.0.0".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        channel: "stable".into(),
        properties: None,
        duration_ms: None,
        sequence: 1,
        sample_rate: 1.0,
        received_ms: ts.timestamp_millis(),
    }
}

async fn retention_keeps_what_an_enabled_export_has_not_written(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(db) = database(kind, &dir.path().join("r.db"), "export").await else {
        return;
    };
    let store: SharedStore = store::open(&db).await.expect("open");
    let old = "2026-01-01T10:00:00Z".parse::<DateTime<Utc>>().expect("t");
    // Ids are UUIDs, as ingest stores them (PostgreSQL keeps them as `uuid`).
    let ids = |p: &str, n: usize| {
        (0..n)
            .map(|i| stored(&format!("0190a000-0000-7000-8000-{p}{i:011x}"), old))
            .collect()
    };
    store.insert_events(ids("a", 5)).await.expect("insert");
    let out = dir.path().join("held");
    let opts = ExportOptions {
        hold_retention: Some(true),
        ..ExportOptions::new(out.to_str().expect("p"))
    };
    let r = export::run(&store, &opts).await.expect("export");
    assert_eq!(r.tables[0].rows, 5);
    // Three late rows arrive; the export has not written them.
    store.insert_events(ids("b", 3)).await.expect("insert");
    let clock: SharedClock = Arc::new(ManualClock::new("2026-06-01T00:00:00Z".parse().expect("t")));
    let p = retention::purge_once(&store, &clock, &RetentionConfig::default())
        .await
        .expect("purge");
    assert_eq!(p.events, 5, "only the exported rows go");
    assert_eq!(store.count_events().await.expect("n"), 3);
    let r = export::run(&store, &opts).await.expect("export");
    assert_eq!(r.tables[0].rows, 3);
    let p = retention::purge_once(&store, &clock, &RetentionConfig::default())
        .await
        .expect("purge");
    assert_eq!(p.events, 3);
    // A destination that does not hold retention (the default of `railgun export`) never
    // keeps a row past its window.
    store.insert_events(ids("c", 2)).await.expect("insert");
    let free = dir.path().join("free");
    export::run(&store, &ExportOptions::new(free.to_str().expect("p")))
        .await
        .expect("export");
    store.insert_events(ids("d", 2)).await.expect("insert");
    let release = ExportOptions {
        hold_retention: Some(false),
        ..opts.clone()
    };
    export::run(&store, &release).await.expect("export");
    store.insert_events(ids("e", 2)).await.expect("insert");
    let p = retention::purge_once(&store, &clock, &RetentionConfig::default())
        .await
        .expect("purge");
    assert_eq!(
        p.events, 6,
        "no enabled export: everything past the window goes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_range_writes_nothing_and_says_so() {
    let Some(h) = Harness::start(Kind::Sqlite).await else {
        return;
    };
    load_hand_checked(&h).await;
    let out = h.out("empty");
    let o = railgun(&[
        "export",
        "--database",
        &h.database,
        "--out",
        out.to_str().expect("p"),
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-31",
        "--tables",
        "events,daily_active_users",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("no rows between 2025-01-01 and 2025-01-31: nothing written"),
        "{stdout}"
    );
    assert!(!out.join("events").exists() && !out.join("daily_active_users").exists());

    // An incremental export of an empty database says so too.
    let empty = h.dir.path().join("empty.db");
    let db = format!("sqlite:{}", empty.display());
    store::open(&db).await.expect("create");
    let r = export_json(&db, &h.out("empty-incr"), &[]);
    assert_eq!(r["files"], 0, "{r}");
    assert!(
        r["summary"].as_str().expect("s").starts_with("nothing new"),
        "{r}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_date_range_export_writes_those_days_once_and_a_rerun_overwrites_them() {
    if !duckdb_or_skip() {
        return;
    }
    let Some(h) = Harness::start(Kind::Sqlite).await else {
        return;
    };
    load_hand_checked(&h).await;
    let out = h.out("range");
    let args = ["--from", "2026-03-02", "--to", "2026-03-05"];
    let r = export_json(&h.database, &out, &args);
    assert_eq!(table_rows(&r, "events"), 3, "{r}");
    let r = export_json(&h.database, &out, &args);
    assert_eq!(table_rows(&r, "events"), 3, "{r}");
    assert_eq!(one(&out, &format!("SELECT COUNT(*) FROM {EVENTS}")), 3);
    assert_eq!(one(&out, &format!("SELECT COUNT(*) FROM {DAU}")), 2);
    // An incremental export into it would mix the two kinds of file names: refused.
    let o = railgun(&[
        "export",
        "--database",
        &h.database,
        "--out",
        out.to_str().expect("p"),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("holds dates parquet exports"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_fail_with_clear_errors_and_write_nothing() {
    let Some(h) = Harness::start(Kind::Sqlite).await else {
        return;
    };
    let file = h.out("a-file");
    std::fs::write(&file, b"x").expect("write");
    let out = h.out("fine");
    let out = out.to_str().expect("p");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--out", file.to_str().expect("p")],
            "exists and is not a folder",
        ),
        (vec!["--out", "ftp://host/x"], "unsupported scheme \"ftp\""),
        (
            vec!["--out", out, "--from", "2026-03-05", "--to", "2026-03-01"],
            "--from 2026-03-05 is after --to 2026-03-01",
        ),
        (
            vec!["--out", out, "--tables", "events,bogus"],
            "unknown table \"bogus\"",
        ),
        (
            vec!["--out", out, "--from", "yesterday"],
            "invalid value 'yesterday'",
        ),
        (vec!["--out", out, "--format", "csv"], "invalid value 'csv'"),
    ];
    for (args, want) in cases {
        let mut all = vec!["export", "--database", &h.database];
        all.extend_from_slice(&args);
        let o = railgun(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(
        !Path::new(out).exists(),
        "a refused run created its destination"
    );
    let o = railgun(&[
        "export",
        "--data-dir",
        h.out("nowhere").to_str().expect("p"),
        "--out",
        out,
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no database at"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_on_its_schedule() {
    if !duckdb_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = format!("sqlite:{}", data.join("analytics.db").display());
    let s = store::open(&db).await.expect("open");
    let old = "2026-03-01T10:00:00Z".parse::<DateTime<Utc>>().expect("t");
    s.insert_events((0..7).map(|i| stored(&format!("s{i}"), old)).collect())
        .await
        .expect("insert");
    drop(s);
    let out = dir.path().join("scheduled");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("p"),
            "--root",
            dir.path().join("updates").to_str().expect("p"),
            "--export-dir",
            out.to_str().expect("p"),
            "--export-interval",
            "1h",
        ])
        .env("RUST_LOG", "warn,railgun_server=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let rx = lines(child.stderr.take().expect("stderr"));
    let line = loop {
        match rx.recv_timeout(StdDuration::from_secs(120)) {
            Ok(l) if l.contains("scheduled export") => break l,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("no scheduled export: {e}");
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("scheduled export ran"), "{line}");
    assert_eq!(one(&out, &format!("SELECT COUNT(*) FROM {EVENTS}")), 7);
    // The scheduled destination holds retention.
    let s = store::open(&db).await.expect("open");
    assert!(s.export_hold().await.expect("hold").events.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_to_an_s3_compatible_server() {
    if !duckdb_or_skip() {
        return;
    }
    let Some(moto) = crate::support::Moto::start("warehouse") else {
        return;
    };
    let endpoint = moto.endpoint.clone();

    let Some(h) = Harness::start(Kind::Sqlite).await else {
        return;
    };
    load_hand_checked(&h).await;
    let s3 = |args: &[&str]| {
        Command::new(BIN)
            .args([
                "export",
                "--database",
                &h.database,
                "--out",
                "s3://warehouse/railgun",
                "--json",
            ])
            .args(args)
            .envs(moto.env())
            .env("RUST_LOG", "warn")
            .output()
            .expect("export")
    };
    let o = s3(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).expect("report");
    assert_eq!(table_rows(&r, "events"), 9, "{r}");
    assert_eq!(r["destination"], "s3://warehouse/railgun");
    let o = s3(&[]);
    let r: Value = serde_json::from_slice(&o.stdout).expect("report");
    assert_eq!(r["files"], 0, "{r}");

    // Download what the bucket holds and read it with DuckDB.
    let got = h.out("from-s3");
    const FETCH: &str = r#"
import sys, os, boto3
c = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
for o in c.list_objects_v2(Bucket="warehouse", Prefix="railgun/")["Contents"]:
    dst = os.path.join(sys.argv[2], o["Key"][len("railgun/"):])
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    c.download_file("warehouse", o["Key"], dst)
"#;
    let f = Command::new("python3")
        .args(["-c", FETCH, &endpoint, got.to_str().expect("p")])
        .output()
        .expect("fetch");
    assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));
    drop(moto);
    assert_eq!(
        duck(
            &got,
            &[&format!(
                "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM {EVENTS}"
            )]
        )[0],
        vec![vec![Value::from(9), Value::from(9)]]
    );
    files_agree_with_the_api(&h, &got, &["2026-03-01", "2026-03-02", "2026-03-05"]).await;
    h.stop().await;
}
