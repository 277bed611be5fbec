//! Consent: nothing is stored or sent while consent is `unknown` or `denied`; `denied`
//! purges the queue and asks the server to erase the user until it acknowledges.

use crate::analytics_support;

use std::sync::Arc;

use analytics_support::{manual_clock, Receiver};
use railgun_core::analytics::{load_consent, Analytics, Consent, Properties};
use railgun_core::clock::ManualClock;
use railgun_core::store::Store;

fn builder(
    dir: &std::path::Path,
    url: &str,
    clock: &ManualClock,
) -> railgun_core::analytics::AnalyticsBuilder {
    Analytics::builder()
        .app("rail-gun")
        .state_dir(dir)
        .url(url)
        .clock(Arc::new(clock.clone()))
        .install_id("user-1")
        .sample_rate(1.0)
        .upload_interval(None)
        .heartbeat_interval(None)
        .rng_seed(1)
}

#[test]
fn unknown_consent_stores_and_sends_nothing() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = builder(dir.path(), &rx.url, &clock)
        .build()
        .expect("client");
    assert_eq!(a.consent(), Consent::Unknown);
    for _ in 0..10 {
        a.track("message_sent", Properties::new()).expect("track");
    }
    a.screen("settings").expect("screen");
    let r = a.flush().expect("flush");
    assert_eq!((r.sent, r.held), (0, 0));
    let s = a.stats().expect("stats");
    assert_eq!((s.recorded, s.queued), (0, 0));
    assert_eq!(s.not_recorded, 11);
    a.shutdown().expect("shutdown");
    assert_eq!(rx.requests(), 0, "nothing sent, not even a session");
}

#[test]
fn denying_purges_the_queue_records_nothing_and_erases_the_user_until_acknowledged() {
    let rx = Receiver::start();
    rx.plan_deletes(&[503, 500]);
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = builder(dir.path(), &rx.url, &clock)
        .default_consent(Consent::Granted)
        .dry_run(true) // keep events queued so the purge has something to purge
        .build()
        .expect("client");
    for _ in 0..5 {
        a.track("message_sent", Properties::new()).expect("track");
    }
    a.persist().expect("persist");
    assert_eq!(a.stats().expect("stats").queued, 6, "session_start + 5");
    a.shutdown().expect("shutdown");
    drop(a);

    let a = builder(dir.path(), &rx.url, &clock)
        .default_consent(Consent::Granted)
        .build()
        .expect("client");
    a.set_consent(Consent::Denied).expect("deny");
    assert_eq!(a.stats().expect("stats").queued, 0, "purged at once");
    a.track("message_sent", Properties::new()).expect("track");
    a.screen("chat").expect("screen");

    // The erasure request is durable and retried: 503, then 500, then acknowledged.
    let r = a.flush().expect("flush");
    assert_eq!((r.held, r.erasures_pending), (0, 1));
    assert!(r.next_attempt_at.is_some());
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(a.flush().expect("flush").erasures_pending, 1);
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(a.flush().expect("flush").erasures_pending, 0);
    assert_eq!(rx.deletes(), vec!["user-1".to_string()]);
    a.shutdown().expect("shutdown");
    assert!(rx.ids().is_empty(), "no event ever reached the server");
    assert_eq!(rx.requests(), 0);

    // Stored: a restart with a `granted` default still records nothing.
    let store = Store::open(dir.path().join("railgun.db")).expect("store");
    assert_eq!(
        load_consent(&store, "rail-gun").expect("load"),
        Some(Consent::Denied)
    );
    drop(store);
    let a = builder(dir.path(), &rx.url, &clock)
        .default_consent(Consent::Granted)
        .build()
        .expect("client");
    assert_eq!(a.consent(), Consent::Denied);
    a.track("message_sent", Properties::new()).expect("track");
    let r = a.flush().expect("flush");
    assert_eq!((r.sent, r.held), (0, 0));
    assert!(rx.ids().is_empty());
}

#[test]
fn an_erasure_request_survives_a_restart() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    // No URL: the request cannot be sent in this run.
    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .install_id("user-2")
        .default_consent(Consent::Granted)
        .upload_interval(None)
        .build()
        .expect("client");
    a.set_consent(Consent::Denied).expect("deny");
    assert_eq!(a.flush().expect("flush").erasures_pending, 1);
    a.shutdown().expect("shutdown");
    drop(a);
    let a = builder(dir.path(), &rx.url, &clock)
        .build()
        .expect("client");
    assert_eq!(a.flush().expect("flush").erasures_pending, 0);
    assert_eq!(rx.deletes(), vec!["user-2".to_string()]);
}

#[test]
fn granting_later_starts_recording_and_the_session() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = builder(dir.path(), &rx.url, &clock)
        .build()
        .expect("client");
    a.track("message_sent", Properties::new()).expect("track");
    a.set_consent(Consent::Granted).expect("grant");
    a.track("contact_added", Properties::new()).expect("track");
    a.set_consent(Consent::Unknown).expect("undecided");
    a.track("conversation_opened", Properties::new())
        .expect("track");
    a.flush().expect("flush");
    let names: Vec<String> = rx.events().into_iter().map(|e| e.name).collect();
    assert_eq!(names, vec!["session_start", "contact_added"]);
    assert!(rx.deletes().is_empty(), "unknown is not a withdrawal");
}
