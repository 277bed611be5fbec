//! The per-client rate limit of the public write routes, on the real server: `429` with
//! `Retry-After` and the JSON error once a client spent its burst (one bucket for the three
//! routes; token routes and the update tree untouched), a forwarding header believed only
//! from a trusted proxy, `--no-rate-limit`, no address in the log or the database. And our
//! own clients against a tiny limit: the core's analytics uploader and health monitor wait
//! out every `Retry-After` (no request while it runs, however often the app flushes) and
//! every event and report arrives exactly once.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use railgun_core::analytics::{Analytics, Consent};
use railgun_core::health::HealthMonitor;
use railgun_server::ratelimit::RateLimit;
use railgun_server::serve::{App, ServerConfig};
use reqwest::StatusCode;
use serde_json::Value;

use crate::hostile_support::events_named;
use crate::support::ChildServer;

fn dirs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for d in ["root", "data"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("dir");
    }
    dir
}

fn start(dir: &Path, flags: &[&str]) -> ChildServer {
    let flags: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
    ChildServer::serve(&dir.join("root"), &dir.join("data"), &flags, &[])
}

async fn post(http: &reqwest::Client, url: &str, xff: Option<&str>) -> reqwest::Response {
    let mut req = http.post(url).body("{not json");
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.expect("post")
}

/// Every file of the data folder, as bytes, for "no address stored".
fn data_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir.join("data")).expect("data") {
        all.extend(std::fs::read(e.expect("entry").path()).unwrap_or_default());
    }
    all
}

#[tokio::test]
async fn a_client_past_its_burst_gets_429_with_retry_after_on_all_three_routes() {
    let dir = dirs();
    let mut s = start(
        dir.path(),
        &["--rate-limit-per-minute", "6", "--rate-limit-burst", "3"],
    );
    let http = reqwest::Client::new();
    let base = s.url.clone();
    let routes = [
        "/analytics/events",
        "/analytics/health",
        "/analytics/erasure",
    ];
    // The burst: three requests, one per route, each answered (400: not JSON).
    for r in routes {
        let res = post(&http, &format!("{base}{r}"), None).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{r}");
    }
    // Then every route answers 429, whatever the client claims to be.
    for (r, xff) in routes
        .iter()
        .zip([None, Some("198.51.100.77"), Some("203.0.113.5")])
    {
        let res = post(&http, &format!("{base}{r}"), xff).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{r}");
        let wait: u64 = res
            .headers()
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=10).contains(&wait), "{wait}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["code"], "rate_limited", "{body}");
    }
    // Token routes check their token first; the update tree is not limited.
    let res = http
        .get(format!("{base}/analytics/dau?date=2026-01-01"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = http
        .get(format!("{base}/updates/app/stable/channel.json"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    s.terminate(Duration::from_secs(20));
    let log = s.log();
    assert!(
        !log.contains("198.51.100.77") && !log.contains("203.0.113.5"),
        "{log}"
    );
    let data = data_bytes(dir.path());
    for addr in ["127.0.0.1", "198.51.100.77", "203.0.113.5"] {
        assert!(
            !data.windows(addr.len()).any(|w| w == addr.as_bytes()),
            "{addr} stored"
        );
    }
}

#[tokio::test]
async fn a_forwarding_header_names_the_client_only_from_a_trusted_proxy() {
    let dir = dirs();
    let mut s = start(
        dir.path(),
        &[
            "--rate-limit-per-minute",
            "1",
            "--rate-limit-burst",
            "1",
            "--trusted-proxy-header",
            "X-Forwarded-For",
            "--trusted-proxy",
            "127.0.0.0/8",
        ],
    );
    let http = reqwest::Client::new();
    let url = format!("{}/analytics/events", s.url);
    let status = |r: reqwest::Response| r.status();
    assert_eq!(status(post(&http, &url, Some("198.51.100.1")).await), 400);
    assert_eq!(status(post(&http, &url, Some("198.51.100.1")).await), 429);
    // Another client behind the same proxy has its own bucket.
    assert_eq!(status(post(&http, &url, Some("198.51.100.2")).await), 400);
    // The right-most address that is not a trusted proxy is the client.
    assert_eq!(
        status(post(&http, &url, Some("6.6.6.6, 198.51.100.1, 127.0.0.9")).await),
        429
    );
    // No header: the proxy itself.
    assert_eq!(status(post(&http, &url, None).await), 400);
    assert_eq!(status(post(&http, &url, None).await), 429);
    s.terminate(Duration::from_secs(20));
    assert!(!s.log().contains("198.51.100"), "{}", s.log());
}

#[tokio::test]
async fn no_rate_limit_turns_it_off() {
    let dir = dirs();
    let mut s = start(
        dir.path(),
        &[
            "--no-rate-limit",
            "--rate-limit-per-minute",
            "1",
            "--rate-limit-burst",
            "1",
        ],
    );
    let http = reqwest::Client::new();
    let url = format!("{}/analytics/events", s.url);
    for _ in 0..20 {
        assert_eq!(post(&http, &url, None).await.status(), 400);
    }
    s.terminate(Duration::from_secs(20));
}

/// What the server answered on the public write routes, as seen in front of the limiter.
#[derive(Debug, Default)]
struct Seen {
    /// (path, status) → count.
    answers: HashMap<(String, u16), usize>,
    /// Sum of `duplicates` over 2xx `POST /analytics/events`.
    events_duplicate: u64,
    /// 2xx `POST /analytics/health` with `duplicate: false` / `true`.
    reports_new: u64,
    reports_duplicate: u64,
}

impl Seen {
    fn count(&self, path: &str, status: u16) -> usize {
        self.answers
            .get(&(path.to_string(), status))
            .copied()
            .unwrap_or(0)
    }
    fn total(&self, path: &str) -> usize {
        self.answers
            .iter()
            .filter(|((p, _), _)| p == path)
            .map(|(_, n)| n)
            .sum()
    }
}

async fn record(State(seen): State<Arc<Mutex<Seen>>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    if !path.starts_with("/analytics/") {
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    {
        let mut s = seen.lock().expect("seen");
        *s.answers
            .entry((path.clone(), status.as_u16()))
            .or_default() += 1;
        if status.is_success() {
            let v: Value = serde_json::from_slice(&bytes).expect("json answer");
            if path == "/analytics/events" {
                s.events_duplicate += v["duplicates"].as_u64().unwrap_or(0);
            } else if path == "/analytics/health" {
                if v["duplicate"].as_bool().expect("duplicate") {
                    s.reports_duplicate += 1;
                } else {
                    s.reports_new += 1;
                }
            }
        }
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_clients_wait_out_retry_after_and_everything_arrives_once() {
    let dir = dirs();
    let config = ServerConfig {
        root: dir.path().join("root"),
        database: format!("sqlite:{}", dir.path().join("data/a.db").display()),
        read_token: Some("read".into()),
        run_retention: false,
        // One request a second for the whole machine (both clients share 127.0.0.1).
        rate_limit: RateLimit {
            per_minute: 60,
            burst: 1,
            ..RateLimit::default()
        },
        ..ServerConfig::default()
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut app = App::open(&config).await.expect("app");
    app.router = app
        .router
        .layer(axum::middleware::from_fn_with_state(seen.clone(), record));
    let server = app
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("spawn");
    let url = format!("http://{}", server.addr);
    let started = Instant::now();

    // The analytics client: 250 events, three batches, uploaded every 100 ms when allowed.
    let (state_a, state_h, base) = (dir.path().join("a"), dir.path().join("h"), url.clone());
    let analytics = tokio::task::spawn_blocking(move || {
        let a = Analytics::builder()
            .app("rail-gun")
            .state_dir(&state_a)
            .url(&base)
            .install_id(&"a".repeat(64))
            .default_consent(Consent::Granted)
            .sample_rate(1.0)
            .upload_interval(Some(Duration::from_millis(100)))
            .heartbeat_interval(None)
            .build()
            .expect("analytics");
        for _ in 0..250 {
            a.track("rate_limit_probe", Default::default())
                .expect("track");
        }
        // An app that flushes every 50 ms until nothing is held.
        let deadline = Instant::now() + Duration::from_secs(60);
        while a.flush().expect("flush").held > 0 {
            assert!(Instant::now() < deadline, "events still held after 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        a
    })
    .await
    .expect("join");

    // The health monitor: a startup report and three error reports, flushed by an app that
    // asks every 50 ms.
    let base = url.clone();
    let health = tokio::task::spawn_blocking(move || {
        let h = HealthMonitor::builder()
            .app("rail-gun")
            .version("1.0.0")
            .channel("stable")
            .platform("linux")
            .arch("x64")
            .url(&base)
            .state_dir(&state_h)
            .install_id("install-1")
            .default_consent(Consent::Granted)
            .build()
            .expect("monitor");
        h.on_startup().expect("startup");
        for _ in 0..3 {
            h.record_error();
            h.flush().expect("flush");
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while h.pending_reports().expect("pending") > 0 {
            assert!(Instant::now() < deadline, "health reports still pending");
            h.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(50));
        }
        h
    })
    .await
    .expect("join");

    let elapsed = started.elapsed().as_secs() as usize;
    // Everything arrived, exactly once: 250 probes on the server, no batch or report
    // acknowledged twice.
    let counted = events_named(&url, "read", "rate_limit_probe").await;
    assert_eq!(counted, 250);
    {
        let s = seen.lock().expect("seen");
        assert_eq!(s.events_duplicate, 0, "{s:?}");
        assert_eq!((s.reports_new, s.reports_duplicate), (4, 0), "{s:?}");
        // The limit was hit by both clients (the test tests something)...
        let limited_events = s.count("/analytics/events", 429);
        let limited_health = s.count("/analytics/health", 429);
        assert!(limited_events >= 1 && limited_health >= 1, "{s:?}");
        // ...and each waited out its Retry-After (1 s): at most one refused request per client
        // and second, though the uploader ticks every 100 ms and the app flushes every 50 ms.
        assert!(
            limited_events <= elapsed + 2,
            "{limited_events} in {elapsed} s: {s:?}"
        );
        assert!(
            limited_health <= elapsed + 2,
            "{limited_health} in {elapsed} s: {s:?}"
        );
        assert_eq!(
            s.total("/analytics/events"),
            s.count("/analytics/events", 200) + limited_events,
            "{s:?}"
        );
    }
    tokio::task::spawn_blocking(move || {
        analytics.shutdown().expect("analytics");
        health.shutdown().expect("health");
    })
    .await
    .expect("join");
    server.stop().await.expect("stop");
}
