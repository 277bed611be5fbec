//! A small real HTTP receiver for the analytics tests (axum on 127.0.0.1:0), scripted to
//! misbehave: 5xx, 429 with `Retry-After`, 400 naming one bad event, a closed connection in
//! the middle of a request, storing and then failing, hanging. It records every event id it
//! stored, de-duplicating by id as the real server does.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use railgun_core::analytics::{
    AnalyticsEvent, EventBatch, IngestResponse, PropertyValue, RejectedEvent,
};
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
    /// Store, then answer 500 (the client must retry; the retry is a duplicate).
    StoreThen500,
    /// Never answer.
    Hang,
}

#[derive(Default)]
pub struct Log {
    pub plan: VecDeque<Mode>,
    pub delete_plan: VecDeque<u16>,
    /// Every event id stored, in order (never twice: duplicates are counted instead).
    pub ids: Vec<Uuid>,
    pub seen: HashSet<Uuid>,
    pub events: Vec<AnalyticsEvent>,
    pub batches: Vec<(usize, f64, u64)>,
    /// The `queued` of each batch.
    pub queued: Vec<u64>,
    pub duplicates: u64,
    pub requests: usize,
    pub deletes: Vec<String>,
}

pub struct Receiver {
    pub url: String,
    pub log: Arc<Mutex<Log>>,
    stored: Arc<Condvar>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let stored = Arc::new(Condvar::new());
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = (log.clone(), stored.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let app = Router::new()
                    .route("/analytics/events", post(events))
                    .route("/analytics/erasure", post(erase))
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

    /// Waits (on a condition variable, not a sleep) until an event named `name` is stored;
    /// false after `timeout`.
    pub fn wait_for(&self, name: &str, timeout: Duration) -> bool {
        let guard = self.log.lock().expect("log");
        let (_g, res) = self
            .stored
            .wait_timeout_while(guard, timeout, |l| !l.events.iter().any(|e| e.name == name))
            .expect("wait");
        !res.timed_out()
    }

    pub fn plan(&self, modes: &[Mode]) {
        self.log
            .lock()
            .expect("log")
            .plan
            .extend(modes.iter().copied());
    }

    pub fn plan_deletes(&self, statuses: &[u16]) {
        self.log
            .lock()
            .expect("log")
            .delete_plan
            .extend(statuses.iter().copied());
    }

    pub fn requests(&self) -> usize {
        self.log.lock().expect("log").requests
    }

    pub fn ids(&self) -> Vec<Uuid> {
        self.log.lock().expect("log").ids.clone()
    }

    pub fn events(&self) -> Vec<AnalyticsEvent> {
        self.log.lock().expect("log").events.clone()
    }

    pub fn events_named(&self, name: &str) -> Vec<AnalyticsEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.name == name)
            .collect()
    }

    pub fn duplicates(&self) -> u64 {
        self.log.lock().expect("log").duplicates
    }

    /// (events, sampleRate, dropped) of every batch stored.
    pub fn queued(&self) -> Vec<u64> {
        self.log.lock().expect("log").queued.clone()
    }

    pub fn batches(&self) -> Vec<(usize, f64, u64)> {
        self.log.lock().expect("log").batches.clone()
    }

    pub fn deletes(&self) -> Vec<String> {
        self.log.lock().expect("log").deletes.clone()
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

fn poisoned(e: &AnalyticsEvent) -> bool {
    e.properties
        .as_ref()
        .and_then(|p| p.get("poison"))
        .is_some_and(|v| *v == PropertyValue::Bool(true))
}

fn store(log: &mut Log, batch: &EventBatch) -> IngestResponse {
    let mut resp = IngestResponse::default();
    log.batches
        .push((batch.events.len(), batch.sample_rate, batch.dropped));
    log.queued.push(batch.queued);
    for e in &batch.events {
        if log.seen.insert(e.id) {
            log.ids.push(e.id);
            log.events.push(e.clone());
            resp.accepted += 1;
        } else {
            log.duplicates += 1;
            resp.duplicates += 1;
        }
    }
    resp
}

type Shared = (Arc<Mutex<Log>>, Arc<Condvar>);

async fn events(State((log, stored)): State<Shared>, _h: HeaderMap, body: Bytes) -> Response {
    let mode = {
        let mut l = log.lock().expect("log");
        l.requests += 1;
        l.plan.pop_front().unwrap_or(Mode::Ok)
    };
    match mode {
        Mode::Close => {
            // Unwinding out of the handler aborts the connection task: the socket closes
            // with no response, as when a proxy dies mid-request. resume_unwind skips the
            // panic hook, so the test output stays clean.
            std::panic::resume_unwind(Box::new("receiver closes the connection"));
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            return StatusCode::OK.into_response();
        }
        Mode::Status(s) => {
            return StatusCode::from_u16(s).expect("status").into_response();
        }
        Mode::RetryAfter(s, secs) => {
            return (
                StatusCode::from_u16(s).expect("status"),
                [("retry-after", secs.to_string())],
            )
                .into_response();
        }
        Mode::Ok | Mode::StoreThen500 => {}
    }
    let Ok(batch) = serde_json::from_slice::<EventBatch>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let rejected: Vec<RejectedEvent> = batch
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| poisoned(e))
        .map(|(index, _)| RejectedEvent {
            index,
            reason: "poisoned".into(),
        })
        .collect();
    if !rejected.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(IngestResponse {
                accepted: 0,
                duplicates: 0,
                rejected,
            }),
        )
            .into_response();
    }
    let resp = store(&mut log.lock().expect("log"), &batch);
    stored.notify_all();
    if mode == Mode::StoreThen500 {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Json(resp).into_response()
}

async fn erase(State((log, _)): State<Shared>, Json(body): Json<serde_json::Value>) -> StatusCode {
    let id = body["userId"].as_str().unwrap_or_default().to_string();
    let mut l = log.lock().expect("log");
    let status = l.delete_plan.pop_front().unwrap_or(204);
    if (200..300).contains(&status) {
        l.deletes.push(id);
    }
    StatusCode::from_u16(status).expect("status")
}

/// A clock standing at a fixed, recent time (events must not look 30 days old).
pub fn manual_clock() -> railgun_core::clock::ManualClock {
    railgun_core::clock::ManualClock::new(chrono::Utc::now())
}
