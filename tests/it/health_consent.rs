//! Consent: `unknown` and `denied` record and send nothing (not even a crash marker);
//! `denied` purges what was waiting; `granted` later starts counting from then.

use crate::health_support;

use health_support::{manual_clock, monitor, Mode, Receiver};
use railgun_core::analytics::Consent;

fn rows(h: &railgun_core::health::HealthMonitor) -> (i64, i64, i64) {
    h.store()
        .with_conn(|c| {
            Ok((
                c.query_row("SELECT count(*) FROM health_period", [], |r| r.get(0))?,
                c.query_row("SELECT count(*) FROM health_report", [], |r| r.get(0))?,
                c.query_row(
                    "SELECT count(*) FROM kv WHERE key LIKE 'health.running:%'",
                    [],
                    |r| r.get(0),
                )?,
            ))
        })
        .expect("rows")
}

#[test]
fn unknown_consent_records_and_sends_nothing_not_even_a_crash() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .default_consent(Consent::Unknown)
        .build()
        .expect("monitor");
    let s = h.on_startup().expect("startup");
    assert!(!s.recorded);
    h.record_error();
    h.record_crash();
    let r = h.flush().expect("flush");
    assert_eq!((r.sent, r.pending), (0, 0));
    assert_eq!(rows(&h), (0, 0, 0), "nothing stored, no running marker");
    drop(h); // an unclean end while consent was unknown

    clock.advance(chrono::Duration::hours(1));
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    let s = h.on_startup().expect("startup");
    assert_eq!(
        s.unclean_shutdown, None,
        "no crash counted from a run without consent"
    );
    h.flush().expect("flush");
    assert_eq!(rx.totals("1.0.0"), (1, 0, 0, 0));
    h.shutdown().expect("shutdown");
}

#[test]
fn denied_consent_purges_waiting_reports_and_sends_nothing_afterwards() {
    let rx = Receiver::start();
    rx.plan(&[Mode::Status(503)]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    clock.advance(chrono::Duration::minutes(1));
    h.record_error();
    let r = h.flush().expect("flush");
    assert_eq!(r.pending, 2, "the server failed: both reports wait");
    assert_eq!(rx.requests(), 1);

    h.record_error();
    h.set_consent(Consent::Denied).expect("deny");
    assert_eq!(h.consent(), Consent::Denied);
    assert_eq!(
        rows(&h),
        (0, 0, 0),
        "periods, reports and the marker are gone"
    );
    h.record_error();
    clock.advance(chrono::Duration::hours(2));
    let r = h.flush().expect("flush");
    assert_eq!((r.sent, r.pending), (0, 0));
    assert_eq!(rx.requests(), 1, "nothing sent after denial");
    assert!(rx.reports().is_empty());
    drop(h); // unclean, but denied: nothing is counted

    // The stored decision wins over the app's default at the next start.
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .default_consent(Consent::Granted)
        .build()
        .expect("monitor");
    assert_eq!(h.consent(), Consent::Denied);
    let s = h.on_startup().expect("startup");
    assert!(!s.recorded);
    assert_eq!(s.unclean_shutdown, None);
    h.record_crash();
    h.shutdown().expect("shutdown");
    assert_eq!(rx.requests(), 1);
}

#[test]
fn consent_granted_during_the_run_starts_counting_from_then() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .default_consent(Consent::Unknown)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    h.record_error(); // before consent: not counted
    clock.advance(chrono::Duration::minutes(1));
    h.set_consent(Consent::Granted).expect("grant");
    clock.advance(chrono::Duration::minutes(1));
    h.record_error();
    let r = h.flush().expect("flush");
    assert_eq!(r.pending, 0);
    assert_eq!(rx.totals("1.0.0"), (1, 1, 0, 0));
    assert_eq!(rows(&h).2, 1, "running now: the marker is set");
    h.shutdown().expect("shutdown");
    assert_eq!(rows(&h).2, 0, "a clean shutdown clears it");
}

/// Analytics and the health monitor of one app on one store file follow each other's
/// consent at once: a `denied` through analytics stops health and purges its reports, a
/// `granted` through health starts analytics — no restart needed.
#[test]
fn consent_changed_through_analytics_reaches_the_running_health_monitor_and_back() {
    let rx = Receiver::start();
    rx.plan(&[Mode::Status(503)]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    h.record_error();
    let r = h.flush().expect("flush");
    assert!(r.pending > 0, "the server failed: reports wait");

    let a = railgun_core::analytics::Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .url(&rx.url)
        .clock(std::sync::Arc::new(clock.clone()))
        .install_id("user-1")
        .default_consent(Consent::Granted)
        .upload_interval(None)
        .heartbeat_interval(None)
        .build()
        .expect("analytics");
    assert_eq!(a.consent(), Consent::Granted);

    a.set_consent(Consent::Denied).expect("deny");
    assert_eq!(h.consent(), Consent::Denied, "health follows at once");
    assert_eq!(
        rows(&h),
        (0, 0, 0),
        "its periods, reports and marker are gone"
    );
    h.record_error();
    assert_eq!(rows(&h), (0, 0, 0), "and it records nothing more");

    h.set_consent(Consent::Granted).expect("grant");
    assert_eq!(
        a.consent(),
        Consent::Granted,
        "analytics follows the other way"
    );

    // Another app on the same file is not touched.
    let other = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .app("another-app")
        .build()
        .expect("other app");
    a.set_consent(Consent::Unknown).expect("unknown");
    assert_eq!(h.consent(), Consent::Unknown);
    assert_eq!(other.consent(), Consent::Granted);
    a.shutdown().expect("analytics shutdown");
    h.shutdown().expect("health shutdown");
    other.shutdown().expect("other shutdown");
}
