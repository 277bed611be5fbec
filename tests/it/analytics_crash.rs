//! Crash safety: a child process (this test binary, re-executed in child mode) records
//! events, calls `flush()` while the server is down, and is killed with SIGKILL. Nothing it
//! flushed is lost: the next start sends the queue, and closes the crashed session from its
//! last heartbeat.

use crate::analytics_support;
use crate::child::{child_command, stdout_lines};

use std::collections::HashSet;
use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;

use analytics_support::{manual_clock, Receiver};
use chrono::{DateTime, Utc};
use railgun_core::analytics::{Analytics, Consent, Properties, PropertyValue};
use railgun_core::clock::ManualClock;

const CHILD_ENV: &str = "RAILGUN_ANALYTICS_CRASH_CHILD";
const EVENTS: i64 = 200;

/// Child mode: `RAILGUN_ANALYTICS_CRASH_CHILD=<state dir>|<url>|<start rfc3339>`.
/// Records, flushes, says so, and waits to be killed.
#[test]
fn crash_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // a normal test run: nothing to do
    };
    let mut parts = spec.split('|');
    let (dir, url, start) = (
        parts.next().expect("dir"),
        parts.next().expect("url"),
        parts.next().expect("start"),
    );
    let clock = ManualClock::new(start.parse::<DateTime<Utc>>().expect("start"));
    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir)
        .url(url)
        .clock(Arc::new(clock.clone()))
        .install_id("crash-user")
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .debug(true)
        .upload_interval(None)
        .heartbeat_interval(None)
        .build()
        .expect("client");
    for i in 0..EVENTS {
        a.track("child_event", Properties::from([("i".into(), i.into())]))
            .expect("track");
    }
    clock.advance(chrono::Duration::seconds(90));
    a.heartbeat();
    let r = a.flush().expect("flush");
    assert!(r.held > 0, "the server is down: everything is held");
    clock.advance(chrono::Duration::seconds(45));
    a.track("after_flush", Properties::new()).expect("track");
    println!("FLUSHED {}", a.session_id());
    // Wait to be killed (the parent never writes to stdin).
    let mut buf = [0u8; 1];
    let _ = std::io::stdin().read(&mut buf);
    panic!("the child was not killed");
}

struct Child {
    session: String,
    stderr: String,
}

fn run_child_and_kill(dir: &std::path::Path, url: &str, start: DateTime<Utc>) -> Child {
    let mut child = child_command(module_path!(), "crash_child_entry")
        .env(
            CHILD_ENV,
            format!("{}|{url}|{}", dir.display(), start.to_rfc3339()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let lines = stdout_lines(&mut child);
    let mut session = None;
    while let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(120)) {
        // libtest prints "test crash_child_entry ... " before the test's own output.
        if let Some((_, s)) = line.split_once("FLUSHED ") {
            session = Some(s.trim().to_string());
            break;
        }
    }
    if session.is_none() {
        let _ = child.kill();
    }
    let session = session.expect("the child flushed");
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed, not exited: {status:?}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    Child { session, stderr }
}

#[test]
fn a_child_killed_after_flush_loses_nothing_and_its_session_is_closed_at_next_start() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let start = clock.now_fixed();
    // The server is down for the child: a port nothing listens on.
    let dead_url = crate::health_support::dead_url();
    let child = run_child_and_kill(dir.path(), &dead_url, start);

    // Debug mode logged the specification's line form.
    assert!(
        child.stderr.contains("[Analytics] child_event { i: 0 }"),
        "stderr: {}",
        &child.stderr[..child.stderr.len().min(500)]
    );

    // Restart with the server up.
    clock.set(start + chrono::Duration::hours(1));
    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .url(&rx.url)
        .clock(Arc::new(clock.clone()))
        .install_id("crash-user")
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .upload_interval(None)
        .heartbeat_interval(None)
        .build()
        .expect("client");
    let r = a.flush().expect("flush");
    assert_eq!(r.held, 0);

    let events = rx.events();
    let ids: HashSet<_> = rx.ids().into_iter().collect();
    assert_eq!(ids.len(), events.len(), "no duplicates");
    let mut is: Vec<i64> = events
        .iter()
        .filter(|e| e.name == "child_event")
        .map(|e| match e.properties.as_ref().and_then(|p| p.get("i")) {
            Some(PropertyValue::Number(n)) => *n as i64,
            other => panic!("{other:?}"),
        })
        .collect();
    is.sort_unstable();
    assert_eq!(
        is,
        (0..EVENTS).collect::<Vec<_>>(),
        "every flushed event arrived"
    );

    // The crashed session: start, heartbeat, and an end at the last heartbeat (90 s).
    let old: Vec<_> = events
        .iter()
        .filter(|e| e.session_id == child.session)
        .collect();
    let end = old
        .iter()
        .find(|e| e.name == "session_end")
        .expect("crashed session closed");
    assert_eq!(end.duration, Some(90_000.0));
    assert_eq!(end.timestamp, start + chrono::Duration::seconds(90));
    assert_eq!(
        end.properties.as_ref().and_then(|p| p.get("crashed")),
        Some(&PropertyValue::Bool(true))
    );
    let max_seq = old
        .iter()
        .filter(|e| e.name != "session_end")
        .map(|e| e.sequence)
        .max()
        .expect("seq");
    assert!(end.sequence > max_seq, "the end comes last in its session");
    assert!(old.iter().any(|e| e.name == "session_heartbeat"));
    // The new run has its own session.
    assert!(events
        .iter()
        .any(|e| e.name == "session_start" && e.session_id == a.session_id()));

    // A clean shutdown leaves nothing to close next time.
    a.shutdown().expect("shutdown");
    drop(a);
    let before = rx.events_named("session_end").len();
    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .url(&rx.url)
        .clock(Arc::new(clock.clone()))
        .install_id("crash-user")
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .sessions(false)
        .upload_interval(None)
        .build()
        .expect("client");
    a.flush().expect("flush");
    assert_eq!(rx.events_named("session_end").len(), before);
}

trait NowFixed {
    fn now_fixed(&self) -> DateTime<Utc>;
}
impl NowFixed for ManualClock {
    fn now_fixed(&self) -> DateTime<Utc> {
        use railgun_core::clock::Clock;
        // Whole milliseconds: the store keeps millisecond precision.
        DateTime::from_timestamp_millis(self.now().timestamp_millis()).expect("time")
    }
}
