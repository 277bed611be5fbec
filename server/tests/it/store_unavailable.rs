//! A database that goes away: every route that needs it answers `503` with the same fixed
//! JSON (`{"error": "database unavailable", "code": "database_unavailable"}`, `Retry-After`),
//! the public ones included, and no answer carries the database's own words. Real
//! PostgreSQL (the database is dropped under the running server); skipped, saying so,
//! without `RAILGUN_TEST_DATABASE_URL`.

use crate::db::Kind;
use crate::support::{TestServer, ADMIN, READ};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_503_without_the_database_text_when_postgres_is_gone() {
    let now = "2026-03-10T12:00:00Z";
    let Some(mut server) = TestServer::with(
        Kind::Postgres,
        "store_unavailable",
        now.parse().expect("t"),
        |_| {},
    )
    .await
    else {
        return;
    };
    let url = server.database().to_string();
    let base = server.url();

    // The database disappears under the running server.
    let admin_url = std::env::var("RAILGUN_TEST_DATABASE_URL").expect("url");
    let (_, name) = url.rsplit_once('/').expect("name");
    let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop database");

    let report = json!({
        "id": "0192f0c4-5b6e-7c1a-9f00-000000000001",
        "machineId": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "app": "demo", "version": "1.0.0", "channel": "stable", "platform": "linux",
        "arch": "x64", "periodStart": "2026-03-10T10:00:00Z",
        "periodEnd": "2026-03-10T11:00:00Z", "sessions": 1, "errors": 0, "crashes": 0
    });
    let event = json!({
        "events": [{"id": "0193a1c2-7b4e-7c1a-9f00-000000000001", "name": "app_start",
            "category": "session", "userId": "u1", "sessionId": "s1",
            "timestamp": "2026-03-10T11:00:00Z", "appVersion": "1.0.0", "platform": "linux",
            "arch": "x64", "channel": "stable", "sequence": 0}],
        "sentAt": now, "sampleRate": 1.0
    });
    let http = reqwest::Client::new();
    let cases = [
        ("GET", "/analytics/dau", Some(READ), None),
        ("GET", "/analytics/feature-summary", Some(READ), None),
        (
            "GET",
            "/analytics/rollout-status?version=1.0.0",
            Some(READ),
            None,
        ),
        ("GET", "/analytics/rollouts", Some(READ), None),
        ("POST", "/analytics/health", None, Some(report)),
        ("POST", "/analytics/events", None, Some(event)),
        (
            "POST",
            "/analytics/erasure",
            None,
            Some(json!({"userId": "u1"})),
        ),
        ("DELETE", "/analytics/users/u1", Some(ADMIN), None),
        (
            "DELETE",
            "/analytics/machines/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            Some(ADMIN),
            None,
        ),
    ];
    for (method, path, token, body) in cases {
        let mut rq = http.request(method.parse().expect("method"), format!("{base}{path}"));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.expect("send");
        let status = r.status();
        let retry = r.headers().get("retry-after").cloned();
        let text = r.text().await.expect("text");
        assert_eq!(status, 503, "{method} {path}: {text}");
        assert_eq!(
            retry.as_ref().map(|v| v.as_bytes()),
            Some(&b"1"[..]),
            "{method} {path}"
        );
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            v,
            json!({"error": "database unavailable", "code": "database_unavailable"}),
            "{method} {path}"
        );
        assert!(!text.contains(name), "{method} {path}: {text}");
    }
    // Stopping drains nothing (the queue refused the batch) and returns.
    server.stop().await;
}
