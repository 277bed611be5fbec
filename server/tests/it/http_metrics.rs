//! `railgun_http_requests_total` counts every route of the application (the update tree,
//! `/healthz`, the dashboard, health reports, rollout and admin routes, not only the
//! analytics ones), labelled by route template and status, never by the raw path.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::support::{TestServer, ADMIN, READ};

fn now() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().expect("t")
}

#[tokio::test]
async fn every_route_is_counted_by_its_template_never_its_path() {
    let h = TestServer::start(now()).await;
    let expect = [
        ("GET", "/healthz", None, 200, "/healthz"),
        ("GET", "/dashboard", None, 200, "/dashboard"),
        (
            "GET",
            "/dashboard/assets/app.js",
            None,
            200,
            "/dashboard/assets/{file}",
        ),
        (
            "GET",
            "/updates/secret-app/stable/channel.json",
            None,
            404,
            "/updates/{*path}",
        ),
        ("GET", "/secret-unknown-path", None, 404, "/{*path}"),
        (
            "DELETE",
            "/analytics/users/secret-user-42",
            Some(ADMIN),
            200,
            "/analytics/users/{user_id}",
        ),
        ("POST", "/analytics/health", None, 400, "/analytics/health"),
        (
            "POST",
            "/admin/rollouts/evaluate",
            None,
            401,
            "/admin/rollouts/evaluate",
        ),
        (
            "POST",
            "/admin/rollouts/secret-app/stable/halt",
            Some(ADMIN),
            404,
            "/admin/rollouts/{app}/{channel}/{action}",
        ),
        (
            "GET",
            "/analytics/rollout-status?version=9.9.9",
            Some(READ),
            404,
            "/analytics/rollout-status",
        ),
    ];
    for (method, path, token, status, _) in expect {
        let mut rq = h
            .http
            .request(method.parse().expect("method"), format!("{}{path}", h.url))
            .json(&json!({}));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        let r = rq.send().await.expect("send");
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
    }
    let text = h.get("/metrics", None).await.text().await.expect("metrics");
    for (method, path, _, status, route) in expect {
        let line =
            format!("railgun_http_requests_total{{route=\"{route}\",status=\"{status}\"}} 1");
        assert!(text.contains(&line), "{method} {path}: no {line}\n{text}");
        let latency = format!("railgun_http_request_duration_seconds_count{{route=\"{route}\"}} 1");
        assert!(text.contains(&latency), "{method} {path}: no {latency}");
    }
    assert!(
        !text.contains("secret"),
        "a raw path reached the labels:\n{text}"
    );
}
