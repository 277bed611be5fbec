//! The HTTP face of the config service.
//!
//! | route | token | answer |
//! |---|---|---|
//! | `GET /config/{app}.json` | public | the current document, strong `ETag`; `If-None-Match` → 304; without a hosted revision the update tree's file (static hosting), else 404 |
//! | `GET /config/{app}/stream` | public | `text/event-stream`: `event: config`, `id: REV`, `data: DOCUMENT`; heartbeats; 404 while the app has no hosted revision (clients poll); 503 past the bound |
//! | `POST /admin/config/{app}` (the document) | admin | 201 [`RevisionInfo`] |
//! | `POST /admin/config/{app}/rollback` `{"to": REV}` | admin | 201 [`RevisionInfo`] |
//! | `GET /admin/config/{app}/history[?limit=N]` | read | `{"app", "revisions": [RevisionInfo…]}`, newest first |
//! | `GET /admin/config/{app}/revisions/{rev}` | admin | that revision's document |
//!
//! A stream first sends the current revision when it is newer than `Last-Event-ID` (or
//! when there is none), then every newer revision as it is stored; it never sends a
//! revision twice or out of order. Errors are [`ApiError`]s: 400 bad document or
//! signature, 401/403 token, 404 unknown, 409 stale revision, 503 missing keys or too many
//! streams.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::Request;
use axum::extract::{FromRef, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tower::ServiceExt;

use super::{ConfigError, ConfigService, Revision, SubscriberSlot, MAX_DOCUMENT_BYTES};
use crate::api::{ApiBody, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::auth::{AdminToken, ReadToken, Tokens};
use crate::serve::etag::list_matches;

impl FromRef<ConfigService> for Tokens {
    fn from_ref(s: &ConfigService) -> Tokens {
        s.tokens().clone()
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        match &e {
            ConfigError::BadRequest(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_document", m.clone())
            }
            ConfigError::Signature(_) | ConfigError::Unsigned => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_signature", e.to_string())
            }
            ConfigError::Stale { .. } => ApiError::conflict(e.to_string()),
            ConfigError::NotFound(m) => ApiError::not_found(m.clone()),
            ConfigError::Unavailable(m) => ApiError::unavailable(m.clone()),
            ConfigError::Store(s) => ApiError::store(s),
            ConfigError::Key { .. } | ConfigError::Sign(_) => ApiError::internal(&e),
        }
    }
}

/// The config routes over `service`. `static_tree` serves `/config/{app}.json` for an app
/// that has no hosted revision, so a config kept in the update tree is served as before.
pub fn routes(service: ConfigService, static_tree: Router) -> Router {
    Router::new()
        .route(
            "/config/{file}",
            get(
                move |s: State<ConfigService>, file: ApiPath<String>, req: Request| {
                    document(s, file, req, static_tree.clone())
                },
            ),
        )
        .route("/config/{app}/stream", get(stream))
        .route("/admin/config/{app}", post(publish))
        .route("/admin/config/{app}/rollback", post(rollback))
        .route("/admin/config/{app}/history", get(history))
        .route("/admin/config/{app}/revisions/{rev}", get(revision))
        .with_state(service)
}

async fn document(
    State(s): State<ConfigService>,
    ApiPath(file): ApiPath<String>,
    req: Request,
    static_tree: Router,
) -> Result<Response, ApiError> {
    let app = file
        .strip_suffix(".json")
        .ok_or_else(|| ApiError::not_found("config documents are /config/{app}.json"))?;
    let Some(rev) = s.current(app).await? else {
        // No hosted revision: the update tree's file, if there is one (static hosting).
        let answer = static_tree.oneshot(req).await;
        return Ok(match answer {
            Ok(r) => r,
            Err(never) => match never {},
        });
    };
    let headers = req.headers();
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| list_matches(v.as_bytes(), &rev.etag, false));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            rev.document.to_string(),
        )
            .into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&rev.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

struct StreamState {
    service: ConfigService,
    app: String,
    rx: tokio::sync::broadcast::Receiver<Arc<Revision>>,
    last: u64,
    pending: Option<Arc<Revision>>,
    _slot: SubscriberSlot,
}

fn event(r: &Revision) -> Event {
    Event::default()
        .event("config")
        .id(r.revision.to_string())
        .data(&*r.document)
}

async fn stream(
    State(s): State<ConfigService>,
    ApiPath(app): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if s.is_closing() {
        return Err(ApiError::unavailable("the server is shutting down").with_retry_after(5));
    }
    let slot = s.open_slot().ok_or_else(|| {
        ApiError::unavailable(
            "too many config streams open (--config-max-subscribers); poll /config/{app}.json",
        )
        .with_retry_after(5)
    })?;
    // Subscribe before reading the current revision: nothing stored in between is missed.
    let rx = s.subscribe();
    // An app with no hosted revision has no stream: its clients poll the document (which
    // the update tree may serve) and try the stream again later.
    let current = s.current(&app).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "{app} has no hosted config; poll /config/{app}.json"
        ))
    })?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let state = StreamState {
        service: s.clone(),
        app,
        rx,
        last,
        pending: Some(Arc::new(current)),
        _slot: slot,
    };
    let events = futures_util::stream::unfold(state, |mut st| async move {
        let mut closing = std::pin::pin!(st.service.closing());
        loop {
            if let Some(r) = st.pending.take() {
                if r.revision > st.last {
                    st.last = r.revision;
                    return Some((Ok::<Event, Infallible>(event(&r)), st));
                }
            }
            let next = tokio::select! {
                // The server is shutting down: end the stream (the client reconnects).
                () = &mut closing => return None,
                next = st.rx.recv() => next,
            };
            match next {
                Ok(r) => {
                    if r.app == st.app {
                        st.pending = Some(r);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Missed some: the newest is what matters.
                    st.pending = st
                        .service
                        .current(&st.app)
                        .await
                        .ok()
                        .flatten()
                        .map(Arc::new);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(s.heartbeat()).text("heartbeat"))
        .into_response();
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

async fn publish(
    _: AdminToken,
    State(s): State<ConfigService>,
    ApiPath(app): ApiPath<String>,
    ApiBody(body): ApiBody<MAX_DOCUMENT_BYTES>,
) -> Result<Response, ApiError> {
    let info = s.publish(&app, &body).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: u64,
}

async fn rollback(
    _: AdminToken,
    State(s): State<ConfigService>,
    ApiPath(app): ApiPath<String>,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<Response, ApiError> {
    let info = s.rollback(&app, body.to).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<u32>,
}

async fn history(
    _: ReadToken,
    State(s): State<ConfigService>,
    ApiPath(app): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let revisions = s.history(&app, limit).await?;
    Ok(Json(serde_json::json!({ "app": app, "revisions": revisions })).into_response())
}

async fn revision(
    _: AdminToken,
    State(s): State<ConfigService>,
    ApiPath((app, rev)): ApiPath<(String, u64)>,
) -> Result<Response, ApiError> {
    let r = s.revision(&app, rev).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::ETAG,
                HeaderValue::from_str(&r.etag).map_err(|_| ApiError::bad_request("etag"))?,
            ),
        ],
        r.document.to_string(),
    )
        .into_response())
}
