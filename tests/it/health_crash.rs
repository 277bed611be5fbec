//! Crash counting: an unclean previous run is one crash for the version that was running, a
//! clean shutdown is none, a boot-guard revert is one crash + one boot revert for the version
//! reverted from, counts follow the version across an update, and a child process killed
//! with SIGKILL after `record_error` + `persist` loses nothing.

use crate::child::{child_command, stdout_lines};
use crate::health_support;

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use health_support::{dead_url, manual_clock, monitor, one_id_per_period, Receiver};
use railgun_core::clock::{Clock, ManualClock};
use railgun_core::update::{BootGuard, InstallRoot, StartupOutcome};
use railgun_core::Version;

const CHILD_ENV: &str = "RAILGUN_HEALTH_CRASH_CHILD";

#[test]
fn an_unclean_previous_run_counts_one_crash_for_the_version_that_was_running() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    // Run 1: version 1.0.0, the server is down, the process ends without shutdown.
    let h = monitor(dir.path(), &dead_url(), "1.0.0", &clock)
        .build()
        .expect("monitor");
    let s = h.on_startup().expect("startup");
    assert_eq!(s.unclean_shutdown, None);
    assert!(s.recorded);
    h.record_error();
    h.persist().expect("persist");
    drop(h);

    // Run 2: updated to 1.1.0.
    let rx = Receiver::start();
    clock.advance(chrono::Duration::hours(2));
    let h = monitor(dir.path(), &rx.url, "1.1.0", &clock)
        .build()
        .expect("monitor");
    let s = h.on_startup().expect("startup");
    assert_eq!(s.unclean_shutdown.as_deref(), Some("1.0.0"));
    clock.advance(chrono::Duration::minutes(1));
    h.record_error();
    h.record_error();
    let r = h.flush().expect("flush");
    assert_eq!(r.pending, 0);
    one_id_per_period(&rx.reports());
    // (sessions, errors, crashes, bootReverts) per version.
    assert_eq!(
        rx.totals("1.0.0"),
        (1, 1, 1, 0),
        "the crash is the old version's"
    );
    assert_eq!(
        rx.totals("1.1.0"),
        (1, 2, 0, 0),
        "the new version's own counts"
    );
    let old = rx
        .reports()
        .into_iter()
        .find(|r| r.version == "1.0.0" && r.crashes == 1)
        .expect("crash report");
    assert!(old.period_start <= old.period_end);
    // A second on_startup in the same run counts nothing more.
    assert_eq!(h.on_startup().expect("again").unclean_shutdown, None);
    h.shutdown().expect("shutdown");
}

#[test]
fn a_clean_shutdown_counts_no_crash() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &dead_url(), "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    h.shutdown().expect("shutdown");
    drop(h);

    let rx = Receiver::start();
    clock.advance(chrono::Duration::hours(1));
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    let s = h.on_startup().expect("startup");
    assert_eq!(s.unclean_shutdown, None);
    h.flush().expect("flush");
    assert_eq!(rx.totals("1.0.0"), (2, 0, 0, 0));
    h.shutdown().expect("shutdown");
}

#[test]
fn counts_across_a_version_change_go_to_the_right_version() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    // 1.0.0 counts three errors; the server is down, so they wait in the store.
    let h = monitor(dir.path(), &dead_url(), "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    clock.advance(chrono::Duration::minutes(10));
    for _ in 0..3 {
        h.record_error();
    }
    h.shutdown().expect("shutdown");
    drop(h);

    // Updated to 2.0.0: its own error and crash are its own; 1.0.0's arrive unchanged.
    let rx = Receiver::start();
    clock.advance(chrono::Duration::hours(1));
    let h = monitor(dir.path(), &rx.url, "2.0.0", &clock)
        .channel("beta")
        .build()
        .expect("monitor");
    assert_eq!(h.on_startup().expect("startup").unclean_shutdown, None);
    clock.advance(chrono::Duration::minutes(10));
    h.record_error();
    h.record_crash();
    h.flush().expect("flush");
    one_id_per_period(&rx.reports());
    assert_eq!(rx.totals("1.0.0"), (1, 3, 0, 0));
    assert_eq!(rx.totals("2.0.0"), (1, 1, 1, 0));
    for r in rx.reports() {
        let expected = if r.version == "1.0.0" {
            "stable"
        } else {
            "beta"
        };
        assert_eq!(r.channel, expected, "each report keeps its run's channel");
    }
    h.shutdown().expect("shutdown");
}

fn v(s: &str) -> Version {
    s.parse().expect("version")
}

#[test]
fn a_boot_guard_revert_counts_a_crash_and_a_boot_revert_for_the_reverted_version() {
    let t = tempfile::tempdir().expect("dir");
    let root = InstallRoot::new(t.path().join("root"));
    for ver in ["0.1.0", "0.2.0"] {
        std::fs::create_dir_all(root.version_dir(&v(ver))).expect("mkdir");
        root.switch_to(&v(ver)).expect("switch");
    }
    let clock = manual_clock();
    let guard = BootGuard::new(root.path()).with_clock(Arc::new(clock.clone()));
    for _ in 0..3 {
        assert!(matches!(
            guard.on_startup().expect("guard"),
            StartupOutcome::Trial { .. }
        ));
    }
    assert!(matches!(
        guard.on_startup().expect("guard"),
        StartupOutcome::Reverted(_)
    ));

    let rx = Receiver::start();
    let state = t.path().join("state");
    let h = monitor(&state, &rx.url, "0.1.0", &clock)
        .boot_guard(guard.clone())
        .build()
        .expect("monitor");
    let s = h.on_startup().expect("startup");
    let revert = s.boot_revert.expect("revert counted");
    assert_eq!((revert.from, revert.to), (v("0.2.0"), v("0.1.0")));
    h.flush().expect("flush");
    assert_eq!(rx.totals("0.2.0"), (0, 0, 1, 1));
    assert_eq!(rx.totals("0.1.0"), (1, 0, 0, 0));
    assert!(guard.take_reverted().expect("take").is_none(), "taken once");
    h.shutdown().expect("shutdown");
    drop(h);

    // The next start does not count the same revert again.
    clock.advance(chrono::Duration::hours(1));
    let h = monitor(&state, &rx.url, "0.1.0", &clock)
        .boot_guard(guard)
        .build()
        .expect("monitor");
    assert_eq!(h.on_startup().expect("startup").boot_revert, None);
    h.flush().expect("flush");
    assert_eq!(rx.totals("0.2.0"), (0, 0, 1, 1));
    h.shutdown().expect("shutdown");
}

/// Child mode: `RAILGUN_HEALTH_CRASH_CHILD=<state dir>|<url>|<start rfc3339>`. Counts,
/// persists, says so, and waits to be killed.
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
    let h = monitor(std::path::Path::new(dir), url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    for _ in 0..5 {
        h.record_error();
    }
    h.record_crash();
    h.persist().expect("persist");
    println!("PERSISTED");
    let mut buf = [0u8; 1];
    let _ = std::io::stdin().read(&mut buf);
    panic!("the child was not killed");
}

#[test]
fn a_child_killed_with_sigkill_after_persist_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let start = clock.now();
    let mut child = child_command(module_path!(), "crash_child_entry")
        .env(
            CHILD_ENV,
            format!(
                "{}|{}|{}",
                dir.path().display(),
                dead_url(),
                start.to_rfc3339()
            ),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let lines = stdout_lines(&mut child);
    let mut persisted = false;
    while let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(120)) {
        if line.contains("PERSISTED") {
            persisted = true;
            break;
        }
    }
    if !persisted {
        let _ = child.kill();
    }
    assert!(persisted, "the child persisted");
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed, not exited: {status:?}");

    // The next start: the kill is one more crash of 1.0.0, and every count arrives once.
    let rx = Receiver::start();
    clock.advance(chrono::Duration::hours(1));
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    let s = h.on_startup().expect("startup");
    assert_eq!(s.unclean_shutdown.as_deref(), Some("1.0.0"));
    let r = h.flush().expect("flush");
    assert_eq!(r.pending, 0);
    assert_eq!(rx.duplicates(), 0);
    one_id_per_period(&rx.reports());
    // Two sessions (the child's and this one), 5 errors, the child's own crash + the kill.
    assert_eq!(rx.totals("1.0.0"), (2, 5, 2, 0));
    h.shutdown().expect("shutdown");
}
