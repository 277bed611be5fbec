//! The dashboard's live feed over real HTTP: `POST /dashboard/live/ticket` (read token) and
//! `GET /dashboard/live?ticket=…` (Server-Sent Events), which refuses a missing, unknown or
//! spent ticket with 401; an open page in headless Chromium shows a decision of the rollout
//! engine (and the alert it fired, and today's active users) within 2 s without a click;
//! and `railgun serve` with open config and dashboard streams exits promptly on SIGTERM.
//!
//! The page is driven through the DevTools protocol ([`crate::dashboard::Browser`]):
//! `Runtime.evaluate` of a promise that resolves when the DOM shows what is awaited, with
//! its own deadline.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::dashboard::{
    chromium_or_skip, now0, page_until as until, publish, reports, Browser, APP,
};
use crate::support::{within, ChildServer, TestServer, ADMIN, READ};

/// `POST /dashboard/live/ticket` with `token`: the ticket.
async fn ticket(h: &TestServer, token: Option<&str>) -> reqwest::Response {
    let mut rq = h.http.post(format!("{}/dashboard/live/ticket", h.url));
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    within("ticket", rq.send()).await.expect("ticket")
}

async fn open(h: &TestServer, query: &str) -> reqwest::Response {
    within(
        "live stream",
        h.http
            .get(format!("{}/dashboard/live{query}", h.url))
            .send(),
    )
    .await
    .expect("stream")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_needs_a_fresh_ticket_from_an_authenticated_post() {
    let h = TestServer::start(now0()).await;
    // No token, a wrong token: no ticket.
    assert_eq!(ticket(&h, None).await.status(), 401);
    assert_eq!(ticket(&h, Some("not-the-token")).await.status(), 403);
    // No ticket, an unknown one: 401 with the API's JSON error.
    for q in ["", "?ticket=", "?ticket=0123456789abcdef", "?other=1"] {
        let r = open(&h, q).await;
        assert_eq!(r.status(), 401, "{q}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "invalid_ticket", "{q}: {body}");
    }
    let r = ticket(&h, Some(READ)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.expect("json");
    let t = t["ticket"].as_str().expect("ticket").to_string();
    assert!(t.len() >= 64, "{t}");
    let r = open(&h, &format!("?ticket={t}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/event-stream"));
    // Single use: the same ticket cannot open a second stream.
    assert_eq!(open(&h, &format!("?ticket={t}")).await.status(), 401);
    drop(r);
    // The admin token opens the read routes, this one too.
    assert_eq!(ticket(&h, Some(ADMIN)).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_decision_its_alert_and_todays_users_reach_the_open_page_within_2_s() {
    let Some(bin) = chromium_or_skip("live dashboard") else {
        return;
    };
    let h = TestServer::start(now0()).await;
    publish(&h, "1.0.0", 100.0).await;
    reports(&h, 40, "1.0.0", 0, 0).await;
    publish(&h, "1.1.0", 10.0).await;
    let profile = tempfile::tempdir().expect("profile");
    let mut browser = Browser::launch(&bin, profile.path(), false).await;
    let page = browser
        .open(&format!("{}/dashboard#token={READ}", h.url))
        .await;
    // The page loaded its sections and opened its live stream.
    let live = browser
        .eval(
            &page,
            &until(
                "document.getElementById('live-state').dataset.live === 'on'",
                "document.getElementById('live-today').textContent",
                30_000,
            ),
        )
        .await;
    assert_eq!(live, json!("0"), "nobody active yet today");
    assert_eq!(h.running().live.streams(), 1);

    // 1 000 installs of 1.1.0 report, 80 with errors: the engine halts the rollout (its
    // Wilson lower bound is above the 5 % limit) and fires the alert.
    reports(&h, 1000, "1.1.0", 80, 2).await;
    let at = Instant::now();
    let decisions = h.evaluate().await;
    assert!(
        decisions.iter().any(|d| d["action"] == "halt"),
        "{decisions:?}"
    );
    let shown = browser
        .eval(
            &page,
            &until(
                "document.querySelector('#live-events li[data-kind=decision].action-halt') && \
                 document.querySelector('#live-events li[data-kind=alert]') && \
                 document.querySelector('#rollouts .action-halt')",
                "document.getElementById('live-events').textContent",
                2_000,
            ),
        )
        .await;
    let took = at.elapsed();
    assert!(took <= Duration::from_secs(2), "{took:?}");
    let shown = shown.as_str().expect("text");
    assert!(shown.contains("halt notes / stable / 1.1.0"), "{shown}");
    assert!(shown.contains("by engine"), "{shown}");
    assert!(shown.contains("CRITICAL"), "{shown}");

    // Events of three users today: the count of today's active users follows.
    let events = (0..3)
        .map(|i| crate::dashboard::ev(&format!("user-{i}"), "app_open", now0()))
        .collect();
    let at = Instant::now();
    crate::dashboard::post(&h, events).await;
    let today = browser
        .eval(
            &page,
            &until(
                "document.getElementById('live-today').textContent === '3'",
                "document.getElementById('live-today-date').textContent",
                2_000,
            ),
        )
        .await;
    assert!(at.elapsed() <= Duration::from_secs(2), "{:?}", at.elapsed());
    assert_eq!(today, json!("2026-03-10"));
    browser.close().await;
}

/// Reads `r`'s body until it ends.
async fn drain(r: &mut reqwest::Response) {
    while let Ok(Some(_)) = r.chunk().await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_open_config_and_dashboard_streams_exits_promptly() {
    let dir = tempfile::tempdir().expect("dir");
    let key = railgun_core::trust::PrivateKey::generate(railgun_core::trust::KeyAlgorithm::Ed25519)
        .expect("key");
    let key_file = dir.path().join("config.key");
    key.write_pem_file(&key_file).expect("key file");
    let root = dir.path().join("tree");
    std::fs::create_dir_all(&root).expect("root");
    let mut server = ChildServer::serve(
        &root,
        &dir.path().join("data"),
        &[
            "--config-key".as_ref(),
            key_file.as_os_str(),
            "--shutdown-timeout".as_ref(),
            "30".as_ref(),
        ],
        &[("RAILGUN_READ_TOKEN", READ), ("RAILGUN_ADMIN_TOKEN", ADMIN)],
    );
    let http = reqwest::Client::new();
    let url = server.url.clone();
    let r = within(
        "publish",
        http.post(format!("{url}/admin/config/{APP}"))
            .bearer_auth(ADMIN)
            .body(r#"{"version":"1","flags":{}}"#)
            .send(),
    )
    .await
    .expect("publish");
    assert_eq!(r.status(), 201);
    let mut config = within(
        "config stream",
        http.get(format!("{url}/config/{APP}/stream")).send(),
    )
    .await
    .expect("config stream");
    assert_eq!(config.status(), 200);
    let first = within("first event", config.chunk())
        .await
        .expect("chunk")
        .expect("an event");
    assert!(String::from_utf8_lossy(&first).contains("event: config"));
    let t: Value = within(
        "ticket",
        http.post(format!("{url}/dashboard/live/ticket"))
            .bearer_auth(READ)
            .send(),
    )
    .await
    .expect("ticket")
    .json()
    .await
    .expect("json");
    let mut live = within(
        "live stream",
        http.get(format!(
            "{url}/dashboard/live?ticket={}",
            t["ticket"].as_str().expect("ticket")
        ))
        .send(),
    )
    .await
    .expect("live stream");
    assert_eq!(live.status(), 200);

    let at = Instant::now();
    server.signal(rustix::process::Signal::TERM);
    // Both streams end (the body completes) instead of waiting for the 30 s deadline.
    within("the config stream to end", drain(&mut config)).await;
    within("the dashboard stream to end", drain(&mut live)).await;
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM: {}", server.log()));
    assert!(status.success(), "{status:?}: {}", server.log());
    assert!(
        at.elapsed() < Duration::from_secs(10),
        "{:?} (the shutdown deadline is 30 s)",
        at.elapsed()
    );
    assert!(
        !server.log().contains("shutdown deadline passed"),
        "{}",
        server.log()
    );
}
