//! The token is checked before anything else of a request: every read and admin route,
//! with no token, a wrong token, or the read token on an admin route, answers 401/403
//! whatever is wrong with its path, query or body. Driven through the real application
//! router (`tower::ServiceExt::oneshot`, no socket) for the matrix, and over a real
//! socket for the two requests the security review found answering 400 before the token.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use railgun_core::clock::{ManualClock, SharedClock};
use railgun_server::serve::{App, ServerConfig};
use tower::ServiceExt;

use crate::support::ScriptedServer;

const READ: &str = "read-token-matrix";
const ADMIN: &str = "admin-token-matrix";

/// Which token a route needs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    Read,
    Admin,
}

/// A route of the matrix: method, a well-formed path, and where a malformed one goes.
struct Route {
    method: Method,
    path: &'static str,
    /// The same route with a path segment that does not decode (`%ff%fe`), if it has one.
    bad_path: Option<&'static str>,
    needs: Needs,
    /// Largest body the route reads (an oversized body is one byte more).
    max_body: usize,
}

fn routes() -> Vec<Route> {
    let read = |path| Route {
        method: Method::GET,
        path,
        bad_path: None,
        needs: Needs::Read,
        max_body: 0,
    };
    let mut r: Vec<Route> = [
        "/analytics/dau",
        "/analytics/wau",
        "/analytics/mau",
        "/analytics/sessions",
        "/analytics/features",
        "/analytics/retention",
        "/analytics/dau-series",
        "/analytics/feature-summary",
        "/analytics/rollout-status",
        "/analytics/rollouts",
    ]
    .into_iter()
    .map(read)
    .collect();
    let admin = |method, path, bad_path, max_body| Route {
        method,
        path,
        bad_path,
        needs: Needs::Admin,
        max_body,
    };
    r.extend([
        admin(
            Method::DELETE,
            "/analytics/users/u1",
            Some("/analytics/users/%ff%fe"),
            0,
        ),
        admin(
            Method::DELETE,
            "/analytics/machines/00",
            Some("/analytics/machines/%ff%fe"),
            0,
        ),
        admin(Method::POST, "/admin/releases", None, 4 * 1024 * 1024),
        admin(
            Method::PUT,
            "/admin/releases/app/1.0.0/artifacts/a.tar.gz",
            Some("/admin/releases/app/1.0.0/artifacts/%ff%fe"),
            64 * 1024,
        ),
        admin(Method::POST, "/admin/rollouts/evaluate", None, 16 * 1024),
    ]);
    for action in ["start", "halt", "resume", "percentage", "rollback"] {
        let path: &'static str = format!("/admin/rollouts/app/stable/{action}").leak();
        let bad: &'static str = format!("/admin/rollouts/%ff%fe/stable/{action}").leak();
        r.push(admin(Method::POST, path, Some(bad), 16 * 1024));
    }
    r
}

/// What is wrong with the request besides its token.
#[derive(Debug, Clone, Copy)]
enum Malformed {
    Nothing,
    Path,
    Query,
    Body,
    OversizedBody,
}

/// The credentials presented.
#[derive(Debug, Clone, Copy)]
enum Presented {
    Nothing,
    Wrong,
    ReadToken,
}

fn request(route: &Route, bad: Malformed, token: Presented) -> Option<Request<Body>> {
    let path = match bad {
        Malformed::Path => route.bad_path?,
        _ => route.path,
    };
    // Repeated, undecodable and out-of-range parameters.
    let uri = match bad {
        Malformed::Query => format!("{path}?version=a&version=b&date=%ff&days=-1&limit=x"),
        _ => path.to_string(),
    };
    let body = match bad {
        Malformed::Body => Body::from("{not json"),
        Malformed::OversizedBody if route.max_body > 0 => {
            Body::from(vec![b'x'; route.max_body + 1])
        }
        Malformed::OversizedBody => return None,
        _ => Body::empty(),
    };
    let mut rq = Request::builder().method(route.method.clone()).uri(uri);
    rq = match token {
        Presented::Nothing => rq,
        Presented::Wrong => rq.header(header::AUTHORIZATION, "Bearer not-a-token"),
        Presented::ReadToken => rq.header(header::AUTHORIZATION, format!("Bearer {READ}")),
    };
    Some(rq.body(body).expect("request"))
}

async fn router(dir: &std::path::Path) -> Router {
    let config = ServerConfig {
        root: dir.join("updates"),
        database: format!("sqlite:{}", dir.join("db/railgun.db").display()),
        read_token: Some(READ.into()),
        admin_token: Some(ADMIN.into()),
        run_retention: false,
        clock: Arc::new(ManualClock::new("2026-03-10T12:00:00Z".parse().expect("t")))
            as SharedClock,
        ..ServerConfig::default()
    };
    std::fs::create_dir_all(&config.root).expect("root");
    App::open(&config).await.expect("app").router
}

#[tokio::test]
async fn every_token_route_refuses_a_missing_or_wrong_token_before_reading_the_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let app = router(dir.path()).await;
    let mut checked = 0;
    for route in routes() {
        for bad in [
            Malformed::Nothing,
            Malformed::Path,
            Malformed::Query,
            Malformed::Body,
            Malformed::OversizedBody,
        ] {
            for token in [Presented::Nothing, Presented::Wrong, Presented::ReadToken] {
                let want = match (token, route.needs) {
                    (Presented::Nothing, _) => StatusCode::UNAUTHORIZED,
                    (Presented::Wrong, _) => StatusCode::FORBIDDEN,
                    (Presented::ReadToken, Needs::Admin) => StatusCode::FORBIDDEN,
                    // The read token opens read routes: not part of this matrix.
                    (Presented::ReadToken, Needs::Read) => continue,
                };
                let Some(rq) = request(&route, bad, token) else {
                    continue;
                };
                let what = format!("{} {} {bad:?} {token:?}", route.method, rq.uri());
                let res = app.clone().oneshot(rq).await.expect("answer");
                assert_eq!(res.status(), want, "{what}");
                if want == StatusCode::UNAUTHORIZED {
                    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer", "{what}");
                }
                let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
                    .await
                    .expect("body");
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json error");
                let code = if want == StatusCode::UNAUTHORIZED {
                    "missing_token"
                } else {
                    "forbidden"
                };
                assert_eq!(v["code"], code, "{what}: {v}");
                checked += 1;
            }
        }
    }
    // 10 read routes × 3 cases × 2 tokens, 10 admin routes × 3–5 cases × 3 tokens.
    assert_eq!(checked, 198, "requests checked");
}

#[tokio::test]
async fn with_the_token_a_malformed_request_is_a_json_400_naming_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tmp");
    let app = router(dir.path()).await;
    let cases = [
        (Method::DELETE, "/analytics/users/%ff%fe", ADMIN, ""),
        (
            Method::GET,
            "/analytics/rollout-status?version=a&version=b",
            READ,
            "",
        ),
        (Method::GET, "/analytics/dau?date=yesterday", READ, ""),
        (
            Method::POST,
            "/admin/rollouts/app/stable/percentage",
            ADMIN,
            r#"{"percentage": "x"}"#,
        ),
    ];
    for (method, uri, token, body) in cases {
        let rq = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(body))
            .expect("request");
        let res = app.clone().oneshot(rq).await.expect("answer");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{method} {uri}");
        let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json error");
        assert!(v["error"].is_string(), "{method} {uri}: {v}");
        assert!(v["code"].is_string(), "{method} {uri}: {v}");
    }
    // The field is named.
    let rq = Request::builder()
        .method(Method::POST)
        .uri("/admin/rollouts/app/stable/percentage")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::from(r#"{"percentage": "x"}"#))
        .expect("request");
    let res = app.clone().oneshot(rq).await.expect("answer");
    let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("percentage")),
        "{v}"
    );
}

/// The two requests of the security review, over a real socket: 401, not 400.
#[tokio::test]
async fn over_a_socket_an_undecodable_path_or_repeated_parameter_without_token_is_401() {
    let dir = tempfile::tempdir().expect("tmp");
    let app = router(dir.path()).await;
    let server = ScriptedServer::spawn(app).await;
    let http = reqwest::Client::new();
    let r = http
        .delete(format!("{}/analytics/users/%ff%fe", server.url()))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!(
            "{}/analytics/rollout-status?version=a&version=b",
            server.url()
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    server.stop().await.expect("stop");
}
