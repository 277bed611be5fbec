//! The dashboard's live feed: what happens on the server reaches an open `/dashboard` by
//! itself, as Server-Sent Events.
//!
//! Owns [`Live`] (the short-lived stream tickets, the bound on open streams and the fan-out)
//! and its routes:
//!
//! * `POST /dashboard/live/ticket` (read token) answers `{"ticket", "expiresInSeconds"}`: a
//!   random single-use ticket valid [`TICKET_TTL`]. A browser's `EventSource` cannot set an
//!   `Authorization` header, and the read token must never travel in a URL (URLs are logged);
//!   the ticket may, as it opens one stream once and expires within seconds.
//! * `GET /dashboard/live?ticket=…` is the stream: `event: decision` (a rollout decision as
//!   `GET /analytics/rollouts` shows it, admin or engine), `event: alert` (an alert fired:
//!   kind, severity, title) and `event: active-users` (today's active users `{date, users,
//!   estimate}`, at most once a second and only when events were ingested), a heartbeat
//!   comment every 15 s.
//!
//! Servers sharing a PostgreSQL database share the feed ([`crate::fanout`]): each announces
//! the decisions and alerts it published (the frame itself: a rollout decision or an alert's
//! kind, severity and title, never anything about users) and, at most once a second, that it
//! ingested events; every other server hands the frames to its own streams and recounts
//! today's active users. So a page open on any server shows what the leader decided.
//!
//! It refuses a missing, unknown, used or expired ticket (401), more than
//! [`DEFAULT_MAX_STREAMS`] open streams (503 with `Retry-After`), and more than
//! [`MAX_TICKETS`] outstanding tickets (the oldest are dropped). Streams end when the server
//! shuts down ([`Live::close`]), so they never hold a shutdown until its deadline.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::alerts::Alert;
use crate::analytics::AppState;
use crate::api::ApiError;
use crate::auth::{ReadToken, Tokens};
use crate::store::day_number;
use crate::store::rollout::Decision;

/// How long a ticket may wait before it opens its stream.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Outstanding tickets kept at most (the oldest are dropped first).
pub const MAX_TICKETS: usize = 1024;
/// Dashboard streams open at once, at most.
pub const DEFAULT_MAX_STREAMS: usize = 64;
/// Time between two heartbeats of a stream.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often today's active users are recounted (only after new events).
pub const ACTIVE_USERS_PERIOD: Duration = Duration::from_secs(1);

/// One event of the feed, serialised once for every stream.
#[derive(Debug)]
struct Frame {
    event: &'static str,
    data: String,
}

/// What one server announces to the dashboards of the others: a frame it published
/// (`decision`, `alert`, with `data`), or `ingested` (events were ingested: recount).
#[derive(Debug, Serialize, Deserialize)]
struct Note {
    from: String,
    event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<String>,
}

/// The largest note announced (PostgreSQL refuses a `NOTIFY` payload of 8 000 bytes).
const MAX_NOTE_BYTES: usize = 7_900;

/// The feed's share of the fan-out among servers: its identity (to skip its own notes) and
/// the store that announces.
struct Fanout {
    store: crate::store::SharedStore,
    me: String,
}

impl Fanout {
    /// Announces `event` (with `data`) to the other servers, in the background.
    fn announce(&self, event: &str, data: Option<&str>) {
        let note = Note {
            from: self.me.clone(),
            event: event.to_string(),
            data: data.map(str::to_string),
        };
        let Ok(payload) = serde_json::to_string(&note) else {
            return;
        };
        if payload.len() > MAX_NOTE_BYTES {
            tracing::warn!(
                event,
                bytes = payload.len(),
                "dashboard event too large to announce to the other servers"
            );
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store
                .notify(crate::fanout::DASHBOARD_CHANNEL, payload)
                .await
            {
                tracing::warn!(error = %e, "dashboard event not announced to the other servers");
            }
        });
    }
}

/// The next note of `rx` (pending forever without one, or once it closed).
async fn next_note(rx: &mut Option<tokio::sync::mpsc::Receiver<String>>) -> Option<String> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

struct Inner {
    tickets: Mutex<HashMap<String, Instant>>,
    frames: broadcast::Sender<Arc<Frame>>,
    streams: AtomicUsize,
    max_streams: usize,
    closing: watch::Sender<bool>,
}

/// The live feed of the dashboard; cheap to clone.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("streams", &self.streams())
            .finish_non_exhaustive()
    }
}

impl Default for Live {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_STREAMS)
    }
}

/// Resolves once `closing` turns true (or its sender is gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An open stream's place in the bound; released when the stream ends.
struct Slot(Arc<Inner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Live {
    /// A feed allowing `max_streams` open streams.
    pub fn new(max_streams: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                tickets: Mutex::new(HashMap::new()),
                frames: broadcast::channel(256).0,
                streams: AtomicUsize::new(0),
                max_streams,
                closing: watch::channel(false).0,
            }),
        }
    }

    /// Streams open now.
    pub fn streams(&self) -> usize {
        self.inner.streams.load(Ordering::Acquire)
    }

    /// Ends every open stream and refuses new ones (the server is shutting down).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// A new single-use ticket.
    fn issue(&self) -> String {
        let ticket = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut t = lock(&self.inner.tickets);
        t.retain(|_, at| now.duration_since(*at) < TICKET_TTL);
        while t.len() >= MAX_TICKETS {
            let Some(oldest) = t.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone()) else {
                break;
            };
            t.remove(&oldest);
        }
        t.insert(ticket.clone(), now);
        ticket
    }

    /// Takes `ticket` if it is outstanding and fresh (it cannot be used again).
    fn redeem(&self, ticket: &str) -> bool {
        lock(&self.inner.tickets)
            .remove(ticket)
            .is_some_and(|at| at.elapsed() < TICKET_TTL)
    }

    fn publish(&self, event: &'static str, data: String) {
        // No receiver: no page is open, nothing to do.
        let _ = self.inner.frames.send(Arc::new(Frame { event, data }));
    }

    /// Forwards rollout decisions and fired alerts to the open streams, and recounts today's
    /// active users after new events (at most every [`ACTIVE_USERS_PERIOD`], and only while
    /// a stream is open). With a store shared by servers, announces both (and that events
    /// were ingested) to the others and takes theirs in. Ends when [`Live::close`] is called
    /// or both sources close.
    pub fn spawn_feed(
        &self,
        mut decisions: broadcast::Receiver<Decision>,
        mut alerts: broadcast::Receiver<Alert>,
        app: AppState,
    ) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        let mut closing = self.inner.closing.subscribe();
        let fanout = app.store.shared_by_servers().then(|| Fanout {
            store: app.store.clone(),
            me: uuid::Uuid::new_v4().simple().to_string(),
        });
        let mut notes = match &fanout {
            Some(_) => app.store.listen(crate::fanout::DASHBOARD_CHANNEL),
            None => None,
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ACTIVE_USERS_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen_events = app.metrics.ingested.load(Ordering::Relaxed);
            // Events were ingested (here or on another server) since the last count.
            let mut dirty = false;
            let mut last_sent: Option<(i32, u64)> = None;
            let (mut decisions_open, mut alerts_open) = (true, true);
            // A frame of this server: to its streams, and announced to the others.
            let local = |event: &'static str, data: String| {
                if let Some(f) = &fanout {
                    f.announce(event, Some(&data));
                }
                live.publish(event, data);
            };
            loop {
                tokio::select! {
                    () = closed(&mut closing) => return,
                    d = decisions.recv(), if decisions_open => match d {
                        Ok(d) => match serde_json::to_string(&d) {
                            Ok(s) => local("decision", s),
                            Err(e) => tracing::warn!(error = %e, "decision not serialisable"),
                        },
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => decisions_open = false,
                    },
                    a = alerts.recv(), if alerts_open => match a {
                        Ok(a) => local("alert", json!({
                            "kind": a.kind.as_str(),
                            "severity": a.kind.severity().as_str(),
                            "title": a.title,
                            "at": app.clock.now().to_rfc3339(),
                        }).to_string()),
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => alerts_open = false,
                    },
                    n = next_note(&mut notes) => match n {
                        Some(payload) => match serde_json::from_str::<Note>(&payload) {
                            Ok(n) if fanout.as_ref().is_some_and(|f| f.me == n.from) => {}
                            Ok(n) => match (n.event.as_str(), n.data) {
                                ("decision", Some(d)) => live.publish("decision", d),
                                ("alert", Some(d)) => live.publish("alert", d),
                                ("ingested", _) => dirty = true,
                                _ => {}
                            },
                            Err(_) => {}
                        },
                        None => notes = None,
                    },
                    _ = tick.tick() => {
                        let now = app.metrics.ingested.load(Ordering::Relaxed);
                        let here = now != seen_events;
                        seen_events = now;
                        if here {
                            if let Some(f) = &fanout {
                                f.announce("ingested", None);
                            }
                        }
                        dirty |= here;
                        if !dirty || live.inner.frames.receiver_count() == 0 {
                            continue;
                        }
                        dirty = false;
                        let date = app.clock.now().date_naive();
                        let day = day_number(date);
                        match app.store.active_users(day, day).await {
                            Ok(c) if last_sent != Some((day, c.raw)) => {
                                last_sent = Some((day, c.raw));
                                live.publish("active-users", json!({
                                    "date": date.to_string(), "users": c.raw, "estimate": c.estimate,
                                }).to_string());
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot count today's active users"),
                        }
                    }
                }
                if !decisions_open && !alerts_open {
                    return;
                }
            }
        })
    }
}

/// The routes' state: the feed and the tokens the ticket route checks.
#[derive(Clone)]
struct LiveState {
    live: Live,
    tokens: Tokens,
}

impl FromRef<LiveState> for Tokens {
    fn from_ref(s: &LiveState) -> Tokens {
        s.tokens.clone()
    }
}

/// `POST /dashboard/live/ticket` and `GET /dashboard/live`.
pub fn routes(live: Live, tokens: Tokens) -> Router {
    Router::new()
        .route("/dashboard/live/ticket", post(ticket))
        .route("/dashboard/live", get(stream))
        .with_state(LiveState { live, tokens })
}

/// The answer of `POST /dashboard/live/ticket`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Ticket {
    ticket: String,
    expires_in_seconds: u64,
}

async fn ticket(_: ReadToken, State(s): State<LiveState>) -> Response {
    let mut r = Json(Ticket {
        ticket: s.live.issue(),
        expires_in_seconds: TICKET_TTL.as_secs(),
    })
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    ticket: Option<String>,
}

fn no_ticket() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_ticket",
        "a fresh ticket from POST /dashboard/live/ticket (read token) is needed",
    )
}

async fn stream(
    State(s): State<LiveState>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let ticket = query.ok().and_then(|q| q.0.ticket).ok_or_else(no_ticket)?;
    if !s.live.redeem(&ticket) {
        return Err(no_ticket());
    }
    let inner = Arc::clone(&s.live.inner);
    if *inner.closing.borrow() {
        return Err(ApiError::unavailable("the server is shutting down").with_retry_after(5));
    }
    let open = inner.streams.fetch_add(1, Ordering::AcqRel);
    let slot = Slot(Arc::clone(&inner));
    if open >= inner.max_streams {
        return Err(
            ApiError::unavailable("too many dashboard streams open; reload later")
                .with_retry_after(5),
        );
    }
    let rx = inner.frames.subscribe();
    let closing = inner.closing.subscribe();
    let events = futures_util::stream::unfold(
        (rx, closing, slot),
        |(mut rx, mut closing, slot)| async move {
            loop {
                let next = tokio::select! {
                    () = closed(&mut closing) => return None,
                    f = rx.recv() => f,
                };
                match next {
                    Ok(f) => {
                        let e = Event::default().event(f.event).data(&f.data);
                        return Some((Ok::<Event, Infallible>(e), (rx, closing, slot)));
                    }
                    // A page that fell behind reloads what it shows on the next event.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response();
    let h = resp.headers_mut();
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
