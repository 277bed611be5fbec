//! `railgun serve --dev`: the read routes answer loopback peers without a token, decided by
//! the connection's own address (never a header); admin routes still need the admin token;
//! without `--dev` nothing changes. The real binary as a child process, and the real
//! application in process (`oneshot` with a given peer address for the cases a loopback
//! socket cannot produce).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use chrono::{DateTime, Utc};
use railgun_server::serve::App;
use tower::ServiceExt;

use crate::db::Kind;
use crate::support::{within, ChildServer, TestServer, ADMIN, READ};

fn now() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().expect("t")
}

async fn status(rq: reqwest::RequestBuilder) -> u16 {
    within("request", rq.send())
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_dev_opens_reads_to_loopback_without_a_token_and_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let (root, data) = (dir.path().join("updates"), dir.path().join("data"));
    std::fs::create_dir_all(&root).expect("root");
    let http = reqwest::Client::new();

    let dev = ChildServer::serve(
        &root,
        &data,
        &["--dev".as_ref()],
        &[("RAILGUN_READ_TOKEN", READ), ("RAILGUN_ADMIN_TOKEN", ADMIN)],
    );
    let notice = dev.preamble.join("\n");
    assert!(
        notice.contains("--dev") && notice.contains("WITHOUT a token"),
        "{notice}"
    );
    let url = &dev.url;
    for path in [
        "/analytics/dau",
        "/analytics/rollouts",
        "/analytics/feature-summary",
    ] {
        assert_eq!(
            status(http.get(format!("{url}{path}"))).await,
            200,
            "{path}"
        );
    }
    // A token presented is still checked.
    let wrong = http
        .get(format!("{url}/analytics/dau"))
        .bearer_auth("wrong");
    assert_eq!(status(wrong).await, 403);
    // Admin routes still need the admin token.
    let admin = http.post(format!("{url}/admin/rollouts/evaluate"));
    assert_eq!(status(admin).await, 401);
    let erase = http.delete(format!("{url}/analytics/users/u1"));
    assert_eq!(status(erase).await, 401);
    drop(dev);

    // Without --dev nothing changes.
    let strict = ChildServer::serve(
        &root,
        &data,
        &[],
        &[("RAILGUN_READ_TOKEN", READ), ("RAILGUN_ADMIN_TOKEN", ADMIN)],
    );
    assert!(
        strict.preamble.iter().all(|l| !l.contains("--dev")),
        "{:?}",
        strict.preamble
    );
    let r = http.get(format!("{}/analytics/dau", strict.url));
    assert_eq!(status(r).await, 401);
}

#[tokio::test]
async fn dev_reads_follow_the_peer_address_never_a_header() {
    let server = TestServer::with(Kind::Sqlite, "", now(), |c| c.dev = true)
        .await
        .expect("sqlite");
    // Over the loopback socket: open.
    let r = server.get("/analytics/dau", None).await;
    assert_eq!(r.status(), 200);

    let app = App::open(&server.config).await.expect("app").router;
    let ask = |peer: Option<&str>, forwarded: bool| {
        let mut rq = Request::builder().uri("/analytics/dau");
        if forwarded {
            rq = rq
                .header("x-forwarded-for", "127.0.0.1")
                .header("forwarded", "for=127.0.0.1")
                .header("x-real-ip", "127.0.0.1");
        }
        let mut rq = rq.body(Body::empty()).expect("request");
        if let Some(p) = peer {
            let addr: SocketAddr = p.parse().expect("addr");
            rq.extensions_mut().insert(ConnectInfo(addr));
        }
        let app = app.clone();
        async move { app.oneshot(rq).await.expect("answer").status() }
    };
    assert_eq!(ask(Some("127.0.0.1:5000"), false).await, StatusCode::OK);
    assert_eq!(ask(Some("[::1]:5000"), false).await, StatusCode::OK);
    assert_eq!(
        ask(Some("[::ffff:127.0.0.1]:5000"), false).await,
        StatusCode::OK
    );
    // Another machine, whatever its headers claim.
    assert_eq!(
        ask(Some("192.0.2.7:5000"), true).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ask(Some("[2001:db8::7]:5000"), true).await,
        StatusCode::UNAUTHORIZED
    );
    // A peer the server did not record is not trusted either.
    assert_eq!(ask(None, true).await, StatusCode::UNAUTHORIZED);

    // Admin routes: the token, even from loopback under --dev.
    let rq = Request::builder()
        .method("POST")
        .uri("/admin/rollouts/evaluate")
        .body(Body::empty())
        .map(|mut r| {
            r.extensions_mut().insert(ConnectInfo(
                "127.0.0.1:5000".parse::<SocketAddr>().expect("a"),
            ));
            r
        })
        .expect("request");
    let res = app.clone().oneshot(rq).await.expect("answer");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn without_dev_a_loopback_read_needs_the_token() {
    let server = TestServer::start(now()).await;
    assert_eq!(server.get("/analytics/dau", None).await.status(), 401);
    assert_eq!(server.read("/analytics/dau").await["users"], 0);
}
