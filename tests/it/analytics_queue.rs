//! The durable queue: bounded (oldest dropped, drops counted and reported), events older
//! than 30 days dropped, and the event shapes the client writes (timers, screens, sessions,
//! sequences).

use crate::analytics_support;

use std::sync::Arc;

use analytics_support::{manual_clock, Receiver};
use railgun_core::analytics::{Analytics, Consent, Properties, PropertyValue};
use railgun_core::clock::ManualClock;

fn builder(
    dir: &std::path::Path,
    clock: &ManualClock,
) -> railgun_core::analytics::AnalyticsBuilder {
    Analytics::builder()
        .app("rail-gun")
        .version("2.1.0")
        .channel("beta")
        .state_dir(dir)
        .clock(Arc::new(clock.clone()))
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .upload_interval(None)
        .heartbeat_interval(None)
}

fn i_of(e: &railgun_core::analytics::AnalyticsEvent) -> i64 {
    match e.properties.as_ref().and_then(|p| p.get("i")) {
        Some(PropertyValue::Number(n)) => *n as i64,
        other => panic!("no i: {other:?}"),
    }
}

#[test]
fn a_full_queue_drops_the_oldest_counts_them_and_reports_them_once() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = builder(dir.path(), &clock)
        .sessions(false)
        .max_queue(50)
        .build()
        .expect("client");
    for i in 0..120 {
        a.track("message_sent", Properties::from([("i".into(), i.into())]))
            .expect("track");
    }
    a.persist().expect("persist");
    let s = a.stats().expect("stats");
    assert_eq!((s.recorded, s.queued, s.dropped), (120, 50, 70));
    a.shutdown().expect("shutdown");
    drop(a);

    // The drop count survives a restart and travels with the next batch only.
    let rx = Receiver::start();
    let a = builder(dir.path(), &clock)
        .sessions(false)
        .max_queue(50)
        .url(&rx.url)
        .upload(railgun_core::analytics::UploadConfig {
            batch_events: 20,
            ..Default::default()
        })
        .build()
        .expect("client");
    assert_eq!(a.flush().expect("flush").sent, 50);
    let dropped: Vec<u64> = rx.batches().iter().map(|b| b.2).collect();
    assert_eq!(dropped, vec![70, 0, 0]);
    let mut is: Vec<i64> = rx.events().iter().map(i_of).collect();
    is.sort_unstable();
    assert_eq!(is, (70..120).collect::<Vec<_>>(), "the newest 50 kept");
    assert_eq!(a.stats().expect("stats").dropped, 70);
}

#[test]
fn events_older_than_30_days_are_dropped_and_counted() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = builder(dir.path(), &clock)
        .sessions(false)
        .url(&rx.url)
        .dry_run(true)
        .build()
        .expect("client");
    for i in 0..3 {
        a.track("message_sent", Properties::from([("i".into(), i.into())]))
            .expect("track");
    }
    a.persist().expect("persist");
    a.shutdown().expect("shutdown");
    drop(a);
    clock.advance(chrono::Duration::days(31));
    let a = builder(dir.path(), &clock)
        .sessions(false)
        .url(&rx.url)
        .build()
        .expect("client");
    a.track("message_sent", Properties::from([("i".into(), 3.into())]))
        .expect("track");
    let r = a.flush().expect("flush");
    assert_eq!((r.expired, r.sent), (3, 1));
    assert_eq!(rx.batches()[0].2, 3, "the drop count is reported");
}

#[test]
fn sessions_timers_and_screens_have_the_seed_shapes() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = builder(dir.path(), &clock)
        .url(&rx.url)
        .build()
        .expect("client");
    a.start_timer("conversation_opened");
    clock.advance(chrono::Duration::milliseconds(1500));
    let d = a
        .stop_timer(
            "conversation_opened",
            Properties::from([("kind".into(), "group".into())]),
        )
        .expect("timer");
    assert_eq!(d, Some(1500.0));
    assert_eq!(
        a.stop_timer("conversation_opened", Properties::new())
            .expect("again"),
        None
    );
    a.screen("settings").expect("screen");
    clock.advance(chrono::Duration::seconds(60));
    a.heartbeat();
    clock.advance(chrono::Duration::seconds(30));
    a.shutdown().expect("shutdown");

    let events = rx.events();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "session_start",
            "conversation_opened",
            "screen_view",
            "session_heartbeat",
            "session_end"
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert!(events.iter().all(|e| e.session_id == a.session_id()));
    assert!(events
        .iter()
        .all(|e| e.app_version == "2.1.0" && e.channel == "beta"));
    assert_eq!(events[1].duration, Some(1500.0));
    assert_eq!(
        events[2]
            .properties
            .as_ref()
            .and_then(|p| p.get("screen_name")),
        Some(&PropertyValue::from("settings"))
    );
    assert_eq!(
        events[4].duration,
        Some(91_500.0),
        "session_end carries the duration"
    );
    let json = serde_json::to_value(&events[2]).expect("json");
    assert_eq!(json["category"], "navigation");
    assert!(json.get("userId").is_some());
}

#[test]
fn invalid_events_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = builder(dir.path(), &clock).build().expect("client");
    let e = a
        .track("Message Sent", Properties::new())
        .expect_err("bad name");
    assert!(e.to_string().contains("Message Sent"), "{e}");
    let big: Properties = (0..33).map(|i| (format!("k{i}"), true.into())).collect();
    assert!(a.track("ok_name", big).is_err());
    assert_eq!(a.stats().expect("stats").recorded, 1, "only session_start");
}

#[test]
fn the_event_sink_hook_records_through_the_client() {
    use railgun_core::analytics::EventSink;
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = manual_clock();
    let a = builder(dir.path(), &clock)
        .sessions(false)
        .url(&rx.url)
        .build()
        .expect("client");
    let sink: Arc<dyn EventSink> = Arc::new(a.clone());
    sink.track_event(
        "experiment_exposure",
        Properties::from([("flag".into(), "composer".into())]),
    );
    sink.track_event("Not Valid", Properties::new());
    a.flush().expect("flush");
    let events = rx.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "experiment_exposure");
}

#[test]
fn the_timers_upload_and_heartbeat_on_their_own() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .url(&rx.url)
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .upload_interval(Some(std::time::Duration::from_millis(50)))
        .heartbeat_interval(Some(std::time::Duration::from_millis(20)))
        .build()
        .expect("client");
    a.track("message_sent", Properties::new()).expect("track");
    // No flush: the upload timer sends, the heartbeat timer beats.
    let limit = std::time::Duration::from_secs(20);
    assert!(rx.wait_for("message_sent", limit), "periodic upload");
    assert!(
        rx.wait_for("session_heartbeat", limit),
        "periodic heartbeat"
    );
    a.shutdown().expect("shutdown");
    let hb = rx.events_named("session_heartbeat");
    assert!(hb.iter().all(|e| e.session_id == a.session_id()));
    assert_eq!(rx.events_named("session_end").len(), 1);
}
