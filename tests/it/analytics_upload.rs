//! The uploader against a hostile receiver: every event id reaches it exactly once after it
//! recovers, whatever it did before. Time is a manual clock; nothing sleeps.

use crate::analytics_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics_support::{manual_clock, Mode, Receiver};
use railgun_core::analytics::{Analytics, Consent, Properties, PropertyValue};
use railgun_core::clock::{Clock, ManualClock};
use uuid::Uuid;

fn client(dir: &std::path::Path, url: &str, clock: &ManualClock) -> Analytics {
    Analytics::builder()
        .app("rail-gun")
        .version("1.0.0")
        .state_dir(dir)
        .url(url)
        .clock(Arc::new(clock.clone()))
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .sessions(false)
        .upload_interval(None)
        .rng_seed(42)
        .build()
        .expect("client")
}

fn props(i: i64) -> Properties {
    Properties::from([("i".to_string(), PropertyValue::from(i))])
}

fn assert_exactly_once(rx: &Receiver, expected: usize) {
    let ids = rx.ids();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(ids.len(), expected, "every event stored");
    assert_eq!(unique.len(), expected, "no event stored twice");
    let mut is: Vec<i64> = rx
        .events()
        .iter()
        .map(|e| match e.properties.as_ref().and_then(|p| p.get("i")) {
            Some(PropertyValue::Number(n)) => *n as i64,
            other => panic!("missing i: {other:?}"),
        })
        .collect();
    is.sort_unstable();
    assert_eq!(is, (0..expected as i64).collect::<Vec<_>>());
}

#[test]
fn server_errors_closed_connections_and_retry_after_lose_and_duplicate_nothing() {
    let rx = Receiver::start();
    rx.plan(&[
        Mode::Status(500),
        Mode::Close,
        Mode::Status(503),
        Mode::RetryAfter(429, 120),
    ]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = client(dir.path(), &rx.url, &clock);
    for i in 0..30 {
        a.track("message_sent", props(i)).expect("track");
    }

    // 500: nothing acknowledged, everything held, a retry scheduled.
    let r = a.flush().expect("flush");
    assert_eq!((r.sent, r.held), (0, 30));
    let retry_at = r.next_attempt_at.expect("backoff");
    assert!(retry_at > clock.now());
    assert_eq!(rx.requests(), 1);

    // During the backoff a flush makes the events durable but sends nothing.
    let r = a.flush().expect("flush");
    assert_eq!(r.held, 30);
    assert_eq!(rx.requests(), 1, "no request during the backoff");

    // Connection closed mid-request.
    clock.advance(chrono::Duration::hours(2));
    let r = a.flush().expect("flush");
    assert_eq!((r.sent, r.held), (0, 30));
    assert!(r.last_error.is_some());
    assert_eq!(rx.requests(), 2);

    // 503.
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(a.flush().expect("flush").held, 30);
    assert_eq!(rx.requests(), 3);

    // 429 with Retry-After: 120 s exactly, not the jittered backoff.
    clock.advance(chrono::Duration::hours(2));
    let r = a.flush().expect("flush");
    assert_eq!(
        r.next_attempt_at,
        Some(clock.now() + chrono::Duration::seconds(120))
    );
    clock.advance(chrono::Duration::seconds(119));
    a.flush().expect("flush");
    assert_eq!(rx.requests(), 4, "Retry-After honoured");
    clock.advance(chrono::Duration::seconds(2));

    // Recovered.
    let r = a.flush().expect("flush");
    assert_eq!((r.sent, r.held, r.next_attempt_at), (30, 0, None));
    assert_exactly_once(&rx, 30);
    assert_eq!(rx.duplicates(), 0);
    let s = a.stats().expect("stats");
    assert_eq!((s.sent, s.queued, s.dropped, s.rejected), (30, 0, 0, 0));
    a.shutdown().expect("shutdown");
}

#[test]
fn an_event_the_server_rejects_is_dropped_and_the_rest_delivered() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = client(dir.path(), &rx.url, &clock);
    for i in 0..10 {
        let mut p = props(i);
        if i == 4 {
            p.insert("poison".into(), true.into());
        }
        a.track("feature_used", p).expect("track");
    }
    let r = a.flush().expect("flush");
    assert_eq!((r.sent, r.rejected, r.held), (9, 1, 0));
    let got: HashSet<i64> = rx
        .events()
        .iter()
        .filter_map(|e| match e.properties.as_ref()?.get("i")? {
            PropertyValue::Number(n) => Some(*n as i64),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 9);
    assert!(!got.contains(&4));
    assert_eq!(rx.requests(), 2, "one refusal, one delivery");
    assert_eq!(a.stats().expect("stats").rejected, 1);
}

#[test]
fn stored_but_unanswered_batches_come_back_as_duplicates_not_twice() {
    let rx = Receiver::start();
    rx.plan(&[Mode::StoreThen500]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = client(dir.path(), &rx.url, &clock);
    for i in 0..5 {
        a.track("message_sent", props(i)).expect("track");
    }
    assert_eq!(a.flush().expect("flush").held, 5);
    clock.advance(chrono::Duration::hours(2));
    let r = a.flush().expect("flush");
    assert_eq!((r.sent, r.duplicates, r.held), (5, 5, 0));
    assert_exactly_once(&rx, 5);
}

#[test]
fn a_client_error_without_a_receipt_is_not_retried_forever() {
    let rx = Receiver::start();
    rx.plan(&[Mode::Status(404), Mode::Status(404), Mode::Status(404)]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = client(dir.path(), &rx.url, &clock);
    for i in 0..3 {
        a.track("message_sent", props(i)).expect("track");
    }
    assert_eq!(a.flush().expect("flush").held, 3);
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(a.flush().expect("flush").held, 3);
    clock.advance(chrono::Duration::hours(2));
    let r = a.flush().expect("flush");
    assert_eq!((r.held, r.rejected), (0, 3), "given up after 3 refusals");
    assert_eq!(rx.requests(), 3);
    assert!(rx.ids().is_empty());
}

#[test]
fn batches_hold_at_most_100_events_and_carry_the_sample_rate() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = client(dir.path(), &rx.url, &clock);
    for i in 0..250 {
        a.track("message_sent", props(i)).expect("track");
    }
    assert_eq!(a.flush().expect("flush").sent, 250);
    let sizes: Vec<usize> = rx.batches().iter().map(|b| b.0).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    assert!(rx.batches().iter().all(|b| b.1 == 1.0));
    // Each batch reports what is still queued behind it (the server's backlog alert sums it).
    assert_eq!(rx.queued(), vec![150, 50, 0]);
    assert_exactly_once(&rx, 250);
}

#[test]
fn shutdown_gives_up_on_a_hanging_server_within_its_deadline_and_keeps_the_events() {
    let rx = Receiver::start();
    rx.plan(&[Mode::Hang]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .url(&rx.url)
        .clock(Arc::new(clock.clone()))
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .sessions(false)
        .upload_interval(None)
        .shutdown_deadline(Duration::from_millis(300))
        .build()
        .expect("client");
    for i in 0..4 {
        a.track("message_sent", props(i)).expect("track");
    }
    let started = Instant::now();
    let r = a.shutdown().expect("shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.held, 4);
    drop(a);

    // The next run delivers them.
    let a = client(dir.path(), &rx.url, &clock);
    assert_eq!(a.flush().expect("flush").sent, 4);
    assert_exactly_once(&rx, 4);
}
