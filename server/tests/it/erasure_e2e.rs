//! Withdrawing consent erases the user on the real server: the core's `Analytics` client,
//! over loopback, against `railgun serve` on a SQLite file. The client's erasure route needs
//! no token (the admin `DELETE` does), and hostile bodies are refused.

use std::sync::Arc;

use railgun_core::analytics::{Analytics, Consent};
use railgun_core::clock::ManualClock;

use crate::support::TestServer;

async fn dau(h: &TestServer, date: &str) -> u64 {
    let v = h.read(&format!("/analytics/dau?date={date}")).await;
    v["users"].as_u64().expect("users")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_consent_erases_the_user_on_the_real_server() {
    let now = chrono::Utc::now();
    let mut server = TestServer::start(now).await;
    let dir = tempfile::tempdir().expect("tmp");
    let url = server.url();
    let http = server.http.clone();
    let today = now.date_naive().to_string();

    // Two users on two installs; both record events that reach the server.
    let base = url.clone();
    let client = move |state: &std::path::Path, user: &str| {
        let clock = ManualClock::new(now);
        Analytics::builder()
            .app("rail-gun")
            .state_dir(state)
            .url(&base)
            .clock(Arc::new(clock))
            .install_id(user)
            .default_consent(Consent::Granted)
            .sample_rate(1.0)
            .upload_interval(None)
            .heartbeat_interval(None)
            .build()
            .expect("client")
    };
    let (sa, sb) = (dir.path().join("a"), dir.path().join("b"));
    let (ua, ub) = ("a".repeat(64), "b".repeat(64));
    let (a, b) = tokio::task::spawn_blocking(move || {
        let a = client(&sa, &ua);
        let b = client(&sb, &ub);
        for c in [&a, &b] {
            c.track("message_sent", Default::default()).expect("track");
            assert_eq!(c.flush().expect("flush").held, 0);
        }
        (a, b)
    })
    .await
    .expect("join");
    assert_eq!(dau(&server, &today).await, 2);

    // User a withdraws consent: the queue goes and the server erases a, not b.
    let a = tokio::task::spawn_blocking(move || {
        a.set_consent(Consent::Denied).expect("deny");
        let r = a.flush().expect("flush");
        assert_eq!(r.erasures_pending, 0, "the server acknowledged the erasure");
        a
    })
    .await
    .expect("join");
    assert_eq!(dau(&server, &today).await, 1, "only b is left");

    // Hostile bodies: refused, nothing erased.
    for (body, status) in [
        ("not json".to_string(), 400),
        (r#"{"user":"b"}"#.to_string(), 400),
        (r#"{"userId":""}"#.to_string(), 400),
        (format!(r#"{{"userId":"{}"}}"#, "x".repeat(129)), 400),
        (format!(r#"{{"userId":"{}"}}"#, "x".repeat(4096)), 413),
    ] {
        let res = http
            .post(format!("{url}/analytics/erasure"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(
            res.status().as_u16(),
            status,
            "{}",
            &body[..body.len().min(40)]
        );
    }
    // The admin route still wants its token.
    let res = http
        .delete(format!("{url}/analytics/users/{}", "b".repeat(64)))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(dau(&server, &today).await, 1);

    tokio::task::spawn_blocking(move || {
        a.shutdown().expect("a");
        b.shutdown().expect("b");
    })
    .await
    .expect("join");
    server.stop().await;
}
