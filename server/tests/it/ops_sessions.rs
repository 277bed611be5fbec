//! Release health with sessions, end to end: real client processes (the core library's
//! `HealthMonitor`, each in a child process of this test binary with its own state dir)
//! report to a real server on loopback, and every session status comes from what the
//! process really did: a clean end is `ok`, a handled error `errored`, a crash (recorded,
//! then the process aborts) `crashed`, a `kill -9` found at the next start `abnormal`. The
//! server's crash-free sessions, crash-free users and adoption are checked against numbers
//! computed by hand, in `rollout-status` and in `/metrics`.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use chrono::Utc;
use railgun_core::analytics::Consent;
use railgun_core::health::HealthMonitor;
use serde_json::json;

use crate::child::{child_command, stdout_lines};
use crate::db::Kind;
use crate::support::{ReleaseSpec, TestServer, DEADLINE};

const CHILD_ENV: &str = "RAILGUN_OPS_SESSIONS_CHILD";
const APP: &str = "ops-sessions";
const CHANNEL: &str = "stable";

/// Child mode: `RAILGUN_OPS_SESSIONS_CHILD=<mode>|<state dir>|<url>|<version>|<install>`.
/// Modes: `ok` (start, clean end), `errored` (a handled error, clean end), `crash` (a crash
/// recorded, then the process aborts), `hang` (start, then wait to be killed). Prints
/// `STARTUP <previous session status or none>` after the start and `SENT <pending>` after a
/// clean end.
#[test]
fn client_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // a normal test run: nothing to do
    };
    let p: Vec<&str> = spec.split('|').collect();
    let (mode, dir, url, version, install) = (p[0], p[1], p[2], p[3], p[4]);
    let h = HealthMonitor::builder()
        .app(APP)
        .version(version)
        .channel(CHANNEL)
        .platform("linux")
        .arch("x64")
        .url(url)
        .state_dir(dir)
        .install_id(install)
        .default_consent(Consent::Granted)
        .build()
        .expect("monitor");
    let s = h.on_startup().expect("startup");
    let previous = s.previous_session.map_or("none", |s| s.as_str());
    println!("STARTUP {previous}");
    match mode {
        "errored" => h.record_error(),
        "crash" => {
            h.record_crash();
            h.persist().expect("persist");
            println!("CRASHING");
            std::process::abort();
        }
        "hang" => {
            h.persist().expect("persist");
            println!("READY");
            let mut buf = [0u8; 1];
            let _ = std::io::stdin().read(&mut buf);
            panic!("the child was not killed");
        }
        _ => {}
    }
    let r = h.shutdown().expect("shutdown");
    println!("SENT {}", r.pending);
}

/// Runs the child in `mode`; returns it with its stdout lines on a channel.
fn spawn(
    mode: &str,
    dir: &Path,
    url: &str,
    version: &str,
    install: &str,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = child_command(module_path!(), "client_child")
        .env(
            CHILD_ENV,
            format!("{mode}|{}|{url}|{version}|{install}", dir.display()),
        )
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let rx = stdout_lines(&mut child);
    (child, rx)
}

/// What follows `prefix` on the first line holding it (the harness may print `test … `
/// before it on the same line), within the deadline.
fn expect_line(rx: &std::sync::mpsc::Receiver<String>, prefix: &str) -> String {
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some((_, rest)) = line.split_once(prefix) {
                    return rest.split_whitespace().next().unwrap_or("").to_string();
                }
            }
            Err(e) => panic!("no {prefix:?} line from the child: {e}"),
        }
    }
}

/// Waits for the child's exit (within the deadline).
fn wait(child: &mut Child) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(std::time::Instant::now() < end, "the child did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run that ends on its own: its previous session's status, after checking it sent all.
fn run(mode: &str, dir: &Path, url: &str, version: &str, install: &str) -> String {
    let (mut child, rx) = spawn(mode, dir, url, version, install);
    let previous = expect_line(&rx, "STARTUP ");
    assert_eq!(expect_line(&rx, "SENT "), "0", "{mode}: every report sent");
    assert!(
        wait(&mut child).success(),
        "{mode}: the child exits cleanly"
    );
    previous
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_status_from_a_real_client_and_the_crash_free_numbers_sqlite() {
    each_session_status(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_status_from_a_real_client_and_the_crash_free_numbers_postgres() {
    each_session_status(Kind::Postgres).await;
}

async fn each_session_status(kind: Kind) {
    let now = Utc::now();
    let Some(server) = TestServer::with(kind, "ops_sessions", now, |_| {}).await else {
        return;
    };
    for (version, pct) in [("1.0.0", 100.0), ("1.1.0", 10.0)] {
        let release = server.release(&ReleaseSpec {
            app: APP,
            channel: CHANNEL,
            version,
            policy: None,
            released_at: now - chrono::Duration::days(1),
            size: 1_000,
            base_url: None,
        });
        server
            .publish(&release, json!({"start": true, "percentage": pct}))
            .await;
    }
    let url = server.url();
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().expect("dir")).collect();
    let (a, b, c, d, e) = (
        dirs[0].path().to_path_buf(),
        dirs[1].path().to_path_buf(),
        dirs[2].path().to_path_buf(),
        dirs[3].path().to_path_buf(),
        dirs[4].path().to_path_buf(),
    );
    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        // A: a clean end → ok.
        assert_eq!(run("ok", &a, &u, "1.1.0", "install-a"), "none");
        // B: a handled error, then a clean end → errored.
        assert_eq!(run("errored", &b, &u, "1.1.0", "install-b"), "none");
        // C: a crash recorded, the process aborts; the next start counts it crashed.
        let (mut child, rx) = spawn("crash", &c, &u, "1.1.0", "install-c");
        expect_line(&rx, "CRASHING");
        assert!(!wait(&mut child).success(), "aborted");
        assert_eq!(run("ok", &c, &u, "1.1.0", "install-c"), "crashed");
        // D: killed with SIGKILL while running; the next start counts it abnormal.
        let (mut child, rx) = spawn("hang", &d, &u, "1.1.0", "install-d");
        expect_line(&rx, "READY");
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        assert!(!wait(&mut child).success(), "killed");
        assert_eq!(run("ok", &d, &u, "1.1.0", "install-d"), "abnormal");
        // E: the app's other version.
        assert_eq!(run("ok", &e, &u, "1.0.0", "install-e"), "none");
    })
    .await
    .expect("children");

    // By hand, 1.1.0: ok A, C's and D's second runs (3); errored B (1); crashed C (1);
    // abnormal D (1): 6 sessions, 1 crashed → crash-free sessions 5/6. Installs with an
    // ended session A, B, C, D (4), one with a crash → crash-free users 3/4. Active installs
    // of the app: A–E (5); of 1.1.0: 4 → adoption 80 %; 1.0.0: 1/5.
    let st = server.status(APP, CHANNEL, "1.1.0").await;
    assert_eq!(
        st["sessions"],
        json!({"ok": 3, "errored": 1, "crashed": 1, "abnormal": 1}),
        "{st}"
    );
    let pct = |v: &serde_json::Value| v.as_f64().expect("number");
    assert!(
        (pct(&st["crashFreeSessions"]) - 500.0 / 6.0).abs() < 1e-4,
        "{st}"
    );
    assert_eq!(pct(&st["crashFreeUsers"]), 75.0, "{st}");
    assert_eq!(pct(&st["adoption"]), 80.0, "{st}");
    assert_eq!(
        (
            st["activeInstalls"].as_u64(),
            st["appActiveInstalls"].as_u64()
        ),
        (Some(4), Some(5))
    );
    let old = server.status(APP, CHANNEL, "1.0.0").await;
    assert_eq!(
        old["sessions"],
        json!({"ok": 1, "errored": 0, "crashed": 0, "abnormal": 0})
    );
    assert_eq!(
        (
            pct(&old["crashFreeSessions"]),
            pct(&old["crashFreeUsers"]),
            pct(&old["adoption"])
        ),
        (100.0, 100.0, 20.0)
    );

    // The same numbers in /metrics, computed by the engine run (never per scrape).
    server.evaluate().await;
    let text = server
        .http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let sample = |name: &str, version: &str, extra: &str| -> f64 {
        let labels = format!("app=\"{APP}\",channel=\"{CHANNEL}\",version=\"{version}\"{extra}");
        let prefix = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{prefix} not in /metrics"))
            .parse()
            .expect("value")
    };
    assert!(
        (sample("railgun_release_crash_free_sessions_ratio", "1.1.0", "") - 5.0 / 6.0).abs() < 1e-9
    );
    assert_eq!(
        sample("railgun_release_crash_free_users_ratio", "1.1.0", ""),
        0.75
    );
    assert_eq!(sample("railgun_release_adoption_ratio", "1.1.0", ""), 0.8);
    assert_eq!(sample("railgun_release_adoption_ratio", "1.0.0", ""), 0.2);
    assert_eq!(
        sample("railgun_release_sessions", "1.1.0", ",status=\"abnormal\""),
        1.0
    );
    assert_eq!(
        sample("railgun_release_sessions", "1.1.0", ",status=\"ok\""),
        3.0
    );
}

#[tokio::test]
async fn a_report_without_sessions_is_accepted_and_adds_no_session() {
    let now = Utc::now();
    let server = TestServer::start(now).await;
    let release = server.release(&ReleaseSpec {
        app: APP,
        channel: CHANNEL,
        version: "2.0.0",
        policy: None,
        released_at: now,
        size: 1_000,
        base_url: None,
    });
    server
        .publish(&release, json!({"start": true, "percentage": 100}))
        .await;
    // An older client's report (no sessionEnds) and the specification's form.
    let old = crate::support::health_report(APP, CHANNEL, "2.0.0", "a".repeat(64), (0, 1), now);
    assert_eq!(server.report(&old).await["accepted"], true);
    let spec = json!({"version": "2.0.0", "channel": CHANNEL, "platform": "darwin",
        "arch": "arm64", "machineId": "hashed-id", "errors": 0, "crashes": 0,
        "timestamp": now.to_rfc3339()});
    let r = server.post("/analytics/health", None, &spec).await;
    assert_eq!(r.status(), 200);
    let st = server.status(APP, CHANNEL, "2.0.0").await;
    assert_eq!(st["totalInstalls"], 2, "{st}");
    assert_eq!(
        st["sessions"],
        json!({"ok": 0, "errored": 0, "crashed": 0, "abnormal": 0})
    );
    assert!(
        st["crashFreeSessions"].is_null() && st["crashFreeUsers"].is_null(),
        "{st}"
    );
    assert_eq!(st["adoption"], 100.0, "{st}");
    // A hostile count is refused with a 400 naming it, nothing stored.
    let mut bad = serde_json::to_value(crate::support::health_report(
        APP,
        CHANNEL,
        "2.0.0",
        "b".repeat(64),
        (0, 0),
        now,
    ))
    .expect("json");
    bad["sessionEnds"] = json!({"ok": 2_000_000});
    let r = server.post("/analytics/health", None, &bad).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("sessionEnds.ok"));
    assert_eq!(
        server.status(APP, CHANNEL, "2.0.0").await["totalInstalls"],
        2
    );
}
