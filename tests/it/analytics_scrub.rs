//! Error messages are scrubbed of emails, home-directory user names and IP addresses before
//! they are stored, so they never reach the queue, let alone the server.

use crate::analytics_support;

use std::sync::Arc;

use analytics_support::{manual_clock, Receiver};
use railgun_core::analytics::scrub::scrub;
use railgun_core::analytics::{Analytics, Consent, Properties, PropertyValue};

#[test]
fn scrubs_emails_home_paths_and_ip_addresses() {
    let cases = [
        (
            "mail to alice.smith+x@mail.example.co.uk failed",
            "mail to <email> failed",
        ),
        (
            "open /home/alice/.config/app.db: denied",
            "open /home/<user>/.config/app.db: denied",
        ),
        (
            "crash in /Users/Bob Smith/x",
            "crash in /Users/<user> Smith/x",
        ),
        (
            r"C:\Users\carol\AppData\Roaming\app",
            r"C:\Users\<user>\AppData\Roaming\app",
        ),
        (
            "connect 192.168.1.20:443 refused",
            "connect <ip>:443 refused",
        ),
        ("peer 2001:db8::ff00:42:8329 reset", "peer <ip> reset"),
        ("loopback ::1 only", "loopback <ip> only"),
        ("999.1.1.1 is not an address", "999.1.1.1 is not an address"),
        ("at 10:42:07 retry 3 of 5", "at 10:42:07 retry 3 of 5"),
    ];
    for (input, want) in cases {
        assert_eq!(scrub(input), want, "{input}");
    }
}

#[test]
fn an_error_event_is_stored_and_sent_scrubbed() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .url(&rx.url)
        .clock(Arc::new(manual_clock()))
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .sessions(false)
        .dry_run(true)
        .upload_interval(None)
        .build()
        .expect("client");
    a.track_error(
        "sync failed for dave@example.org reading /home/dave/db from 10.1.2.3 via fe80::1%eth0",
        Properties::from([("code".into(), "E_SYNC".into())]),
    )
    .expect("track");
    a.persist().expect("persist");
    // What is on disk is already clean.
    let raw: String = a
        .store()
        .with_conn(|c| c.query_row("SELECT body FROM analytics_queue", [], |r| r.get(0)))
        .expect("row");
    for secret in ["dave@", "/home/dave", "10.1.2.3", "fe80::1"] {
        assert!(!raw.contains(secret), "{secret} stored: {raw}");
    }
    a.shutdown().expect("shutdown");
    drop(a);

    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .url(&rx.url)
        .default_consent(Consent::Granted)
        .sample_rate(1.0)
        .sessions(false)
        .upload_interval(None)
        .build()
        .expect("client");
    a.flush().expect("flush");
    let events = rx.events_named("error");
    assert_eq!(events.len(), 1);
    let p = events[0].properties.as_ref().expect("props");
    assert_eq!(
        p.get("message"),
        Some(&PropertyValue::from(
            "sync failed for <email> reading /home/<user>/db from <ip> via <ip>"
        ))
    );
    assert_eq!(p.get("code"), Some(&PropertyValue::from("E_SYNC")));
    assert_eq!(
        serde_json::to_value(&events[0]).expect("json")["category"],
        "error"
    );
}
