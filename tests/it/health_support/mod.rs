//! A small real receiver of `POST /analytics/health` for the health tests (axum on
//! 127.0.0.1:0), scripted to misbehave: 5xx, 429 with `Retry-After`, 400, a connection
//! closed in the middle of a request, storing and then failing, hanging. It de-duplicates by
//! report id as the real server does and answers `{accepted, duplicate}`; tests wait for
//! reports on a condition variable, never by sleeping.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use railgun_core::health::{validate_report, HealthReport, HealthResponse};
use uuid::Uuid;

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Store and acknowledge.
    Ok,
    /// Answer with this status, store nothing.
    Status(u16),
    /// Answer with this status and `Retry-After: secs`, store nothing.
    RetryAfter(u16, u64),
    /// Drop the connection before answering (and before storing).
    Close,
    /// Store, then answer 500 (the retry is a duplicate).
    StoreThen500,
    /// Never answer.
    Hang,
    /// Answer 200 with a body that is not a receipt, store nothing.
    Garbage200,
}

#[derive(Default)]
pub struct Log {
    pub plan: VecDeque<Mode>,
    /// Every distinct report stored, in order.
    pub reports: Vec<HealthReport>,
    pub seen: HashSet<Uuid>,
    /// Every report id received in a request (retries included).
    pub received: Vec<Uuid>,
    pub duplicates: u64,
    pub requests: usize,
}

pub struct Receiver {
    pub url: String,
    pub log: Arc<Mutex<Log>>,
    stored: Arc<Condvar>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Shared = (Arc<Mutex<Log>>, Arc<Condvar>);

impl Receiver {
    pub fn start() -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let stored = Arc::new(Condvar::new());
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state: Shared = (log.clone(), stored.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let app = Router::new()
                    .route("/analytics/health", post(health))
                    .with_state(state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                url_tx.send(format!("http://{addr}")).expect("url");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("serve");
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        let url = crate::recv_within("the receiver's URL", &url_rx);
        Self {
            url,
            log,
            stored,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn plan(&self, modes: &[Mode]) {
        self.log
            .lock()
            .expect("log")
            .plan
            .extend(modes.iter().copied());
    }

    /// Waits (condition variable) until at least `n` distinct reports are stored.
    pub fn wait_for_reports(&self, n: usize, timeout: Duration) -> bool {
        let guard = self.log.lock().expect("log");
        let (_g, res) = self
            .stored
            .wait_timeout_while(guard, timeout, |l| l.reports.len() < n)
            .expect("wait");
        !res.timed_out()
    }

    pub fn reports(&self) -> Vec<HealthReport> {
        self.log.lock().expect("log").reports.clone()
    }

    pub fn received(&self) -> Vec<Uuid> {
        self.log.lock().expect("log").received.clone()
    }

    pub fn requests(&self) -> usize {
        self.log.lock().expect("log").requests
    }

    pub fn duplicates(&self) -> u64 {
        self.log.lock().expect("log").duplicates
    }

    /// Sum of (sessions, errors, crashes, bootReverts) over the distinct reports of `version`.
    pub fn totals(&self, version: &str) -> (u32, u32, u32, u32) {
        self.reports().iter().filter(|r| r.version == version).fold(
            (0, 0, 0, 0),
            |(s, e, c, b), r| {
                (
                    s + r.sessions,
                    e + r.errors,
                    c + r.crashes,
                    b + r.boot_reverts,
                )
            },
        )
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn health(State((log, stored)): State<Shared>, body: Bytes) -> Response {
    let mode = {
        let mut l = log.lock().expect("log");
        l.requests += 1;
        l.plan.pop_front().unwrap_or(Mode::Ok)
    };
    match mode {
        Mode::Close => {
            // Unwinding out of the handler aborts the connection task: the socket closes
            // with no response. resume_unwind skips the panic hook (clean test output).
            std::panic::resume_unwind(Box::new("receiver closes the connection"));
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            return StatusCode::OK.into_response();
        }
        Mode::Status(s) => return StatusCode::from_u16(s).expect("status").into_response(),
        Mode::RetryAfter(s, secs) => {
            return (
                StatusCode::from_u16(s).expect("status"),
                [("retry-after", secs.to_string())],
            )
                .into_response();
        }
        Mode::Garbage200 => return (StatusCode::OK, "ok").into_response(),
        Mode::Ok | Mode::StoreThen500 => {}
    }
    let Ok(report) = serde_json::from_slice::<HealthReport>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if validate_report(&report).is_err() {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let resp = {
        let mut l = log.lock().expect("log");
        l.received.push(report.id);
        if l.seen.insert(report.id) {
            l.reports.push(report);
            HealthResponse {
                accepted: true,
                duplicate: false,
            }
        } else {
            l.duplicates += 1;
            HealthResponse {
                accepted: false,
                duplicate: true,
            }
        }
    };
    stored.notify_all();
    if mode == Mode::StoreThen500 {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Json(resp).into_response()
}

/// A clock standing at a fixed, recent time.
pub fn manual_clock() -> railgun_core::clock::ManualClock {
    railgun_core::clock::ManualClock::new(
        chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).expect("now"),
    )
}

/// A URL nothing listens on.
///
/// The port stays bound (never listening: connecting is refused) for the life of the test
/// binary, so no other test's server can be given it: a port that was bound and dropped
/// could be handed to a concurrent test's receiver, whose script the dead client would eat.
pub fn dead_url() -> String {
    static DEAD: std::sync::OnceLock<(tokio::net::TcpSocket, String)> = std::sync::OnceLock::new();
    DEAD.get_or_init(|| {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let url = format!("http://{}", socket.local_addr().expect("addr"));
        (socket, url)
    })
    .1
    .clone()
}

/// A monitor for `version` on the store in `dir`, consent granted, with test settings.
pub fn monitor(
    dir: &std::path::Path,
    url: &str,
    version: &str,
    clock: &railgun_core::clock::ManualClock,
) -> railgun_core::health::HealthMonitorBuilder {
    railgun_core::health::HealthMonitor::builder()
        .app("rail-gun")
        .version(version)
        .channel("stable")
        .platform("linux")
        .arch("x64")
        .url(url)
        .state_dir(dir)
        .install_id("install-1")
        .clock(Arc::new(clock.clone()))
        .default_consent(railgun_core::analytics::Consent::Granted)
        .backoff(Duration::from_secs(1), Duration::from_secs(600))
        .request_timeout(Duration::from_secs(20))
        .rng_seed(7)
}

/// Every distinct period has exactly one report id.
pub fn one_id_per_period(reports: &[HealthReport]) {
    let mut periods = std::collections::HashMap::new();
    for r in reports {
        let key = (r.version.clone(), r.period_start, r.period_end);
        assert!(
            periods.insert(key.clone(), r.id).is_none(),
            "two reports for one period {key:?}"
        );
    }
}
