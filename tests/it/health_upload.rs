//! Sending health reports over real HTTP (a scripted axum receiver on loopback): retried
//! reports keep their id and are counted once, backoff and `Retry-After`, refused reports
//! dropped and counted, periodic reports, shutdown deadlines, and use from inside tokio.

use crate::health_support;

use std::time::{Duration, Instant};

use health_support::{dead_url, manual_clock, monitor, one_id_per_period, Mode, Receiver};
use railgun_core::clock::Clock;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_report_refused_with_500_arrives_later_with_the_same_id_and_is_counted_once() {
    let rx = Receiver::start();
    rx.plan(&[Mode::Status(500)]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    clock.advance(chrono::Duration::minutes(5));
    h.record_error();
    h.record_error();
    let first = h.flush().expect("flush");
    assert_eq!(
        rx.requests(),
        1,
        "one attempt, then the backoff holds the rest"
    );
    assert_eq!(first.pending, 2);
    assert!(first.next_attempt_at.is_some());
    assert!(rx.reports().is_empty());

    // Within the backoff nothing is sent, however often flush is called.
    h.flush().expect("flush");
    assert_eq!(rx.requests(), 1);

    clock.advance(chrono::Duration::hours(1));
    let second = h.flush().expect("flush");
    assert_eq!(second.pending, 0);
    let reports = rx.reports();
    assert_eq!(reports.len(), 2);
    one_id_per_period(&reports);
    assert_eq!(rx.duplicates(), 0);
    assert_eq!(rx.totals("1.0.0"), (1, 2, 0, 0));
    assert_eq!(reports[0].machine_id, h.machine_id());
    assert_eq!(h.machine_id().len(), 64);
    h.shutdown().expect("shutdown");
}

#[test]
fn a_report_stored_but_answered_500_is_resent_and_acknowledged_as_a_duplicate() {
    let rx = Receiver::start();
    rx.plan(&[Mode::StoreThen500]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    h.flush().expect("flush");
    clock.advance(chrono::Duration::hours(1));
    let r = h.flush().expect("flush");
    assert_eq!(r.pending, 0);
    let received = rx.received();
    assert_eq!(received.len(), 2, "sent twice");
    assert_eq!(received[0], received[1], "with the same id");
    assert_eq!(rx.reports().len(), 1, "stored once");
    assert_eq!(rx.duplicates(), 1);
    assert_eq!(rx.totals("1.0.0"), (1, 0, 0, 0));
    h.shutdown().expect("shutdown");
}

#[test]
fn a_connection_closed_mid_request_loses_nothing_and_counts_nothing_twice() {
    let rx = Receiver::start();
    rx.plan(&[Mode::Close, Mode::Close]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    clock.advance(chrono::Duration::minutes(1));
    h.record_crash();
    let r = h.flush().expect("flush");
    assert!(r.pending >= 1);
    assert!(r.last_error.is_some() || r.next_attempt_at.is_some());
    for _ in 0..3 {
        clock.advance(chrono::Duration::hours(1));
        h.flush().expect("flush");
    }
    assert_eq!(h.pending_reports().expect("pending"), 0);
    let reports = rx.reports();
    one_id_per_period(&reports);
    assert_eq!(rx.totals("1.0.0"), (1, 0, 1, 0));
    assert_eq!(rx.duplicates(), 0);
    h.shutdown().expect("shutdown");
}

#[test]
fn retry_after_is_honoured_to_the_second() {
    let rx = Receiver::start();
    rx.plan(&[Mode::RetryAfter(429, 120)]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    let r = h.flush().expect("flush");
    assert_eq!(rx.requests(), 1);
    assert_eq!(
        r.next_attempt_at,
        Some(clock.now() + chrono::Duration::seconds(120))
    );
    clock.advance(chrono::Duration::seconds(119));
    h.flush().expect("flush");
    assert_eq!(rx.requests(), 1, "not before Retry-After");
    clock.advance(chrono::Duration::seconds(2));
    let r = h.flush().expect("flush");
    assert_eq!((r.sent, r.pending), (1, 0));
    h.shutdown().expect("shutdown");
}

#[test]
fn a_report_refused_with_400_is_dropped_and_counted_and_the_next_one_still_goes() {
    let rx = Receiver::start();
    rx.plan(&[Mode::Status(400)]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    clock.advance(chrono::Duration::minutes(1));
    h.record_error();
    let r = h.flush().expect("flush");
    assert_eq!(r.pending, 0);
    assert_eq!(h.dropped_reports().expect("dropped"), 1);
    let reports = rx.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        rx.totals("1.0.0"),
        (0, 1, 0, 0),
        "the start report was refused"
    );
    h.shutdown().expect("shutdown");
}

#[test]
fn periodic_reports_arrive_without_flush() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    assert!(rx.wait_for_reports(1, WAIT), "the report at start");
    clock.advance(chrono::Duration::minutes(1));
    h.record_error();
    h.start_periodic(Duration::from_millis(100))
        .expect("periodic");
    assert!(rx.wait_for_reports(2, WAIT), "a periodic report");
    assert_eq!(rx.totals("1.0.0"), (1, 1, 0, 0));
    assert!(h.start_periodic(Duration::ZERO).is_err());
    h.shutdown().expect("shutdown");
}

#[test]
fn shutdown_keeps_its_deadline_against_a_server_that_never_answers() {
    let rx = Receiver::start();
    rx.plan(&[Mode::Hang, Mode::Hang]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .shutdown_deadline(Duration::from_millis(300))
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    h.record_error();
    let t = Instant::now();
    let r = h.shutdown().expect("shutdown");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(r.pending >= 1);
    assert!(matches!(
        h.flush(),
        Err(railgun_core::health::HealthError::Closed)
    ));
    drop(h);

    // The next run sends what the hanging server never acknowledged; no crash is counted.
    let rx2 = Receiver::start();
    clock.advance(chrono::Duration::hours(1));
    let h = monitor(dir.path(), &rx2.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    let s = h.on_startup().expect("startup");
    assert_eq!(s.unclean_shutdown, None);
    let r = h.flush().expect("flush");
    assert_eq!(r.pending, 0);
    assert_eq!(rx2.totals("1.0.0"), (2, 1, 0, 0));
    h.shutdown().expect("shutdown");
}

#[test]
fn without_a_url_reports_wait_in_the_store() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = railgun_core::health::HealthMonitor::builder()
        .app("rail-gun")
        .version("1.0.0")
        .state_dir(dir.path())
        .install_id("install-1")
        .clock(std::sync::Arc::new(clock.clone()))
        .default_consent(railgun_core::analytics::Consent::Granted)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    let r = h.flush().expect("flush");
    assert_eq!((r.sent, r.pending), (0, 1));
    h.shutdown().expect("shutdown");
}

#[test]
fn a_200_without_a_readable_receipt_is_not_an_acknowledgement() {
    let rx = Receiver::start();
    rx.plan(&[Mode::Garbage200]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    let r = h.flush().expect("flush");
    assert_eq!(r.pending, 1, "kept: the server may not have stored it");
    clock.advance(chrono::Duration::hours(1));
    let r = h.flush().expect("flush");
    assert_eq!((r.pending, rx.reports().len()), (0, 1));
    assert_eq!(rx.requests(), 2);
    h.shutdown().expect("shutdown");
}

#[test]
fn the_server_being_down_keeps_reports_for_the_next_run() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &dead_url(), "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    let r = h.flush().expect("flush");
    assert_eq!(r.pending, 1);
    assert!(r.next_attempt_at.is_some());
    h.shutdown().expect("shutdown");
}

#[tokio::test(flavor = "current_thread")]
async fn works_from_inside_a_tokio_runtime_without_blocking_it() {
    let rx = crate::within("the receiver", tokio::task::spawn_blocking(Receiver::start))
        .await
        .expect("receiver");
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let h = monitor(dir.path(), &rx.url, "1.0.0", &clock)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    h.record_error();
    let r = crate::within("flush", h.flush_async())
        .await
        .expect("flush");
    assert_eq!(r.pending, 0);
    crate::within("shutdown", h.shutdown_async())
        .await
        .expect("shutdown");
    assert_eq!(rx.totals("1.0.0"), (1, 1, 0, 0));
    crate::within(
        "stopping the receiver",
        tokio::task::spawn_blocking(move || drop(rx)),
    )
    .await
    .expect("stop");
}
