//! The HTTP face of the rollout engine.
//!
//! Owns [`routes`]:
//!
//! | route | token | answer |
//! |---|---|---|
//! | `POST /analytics/health` | public | `{accepted, duplicate}`; 400 invalid, 413 > 16 KiB |
//! | `GET /analytics/rollout-status?version=V[&app=A][&channel=C]` | read | `RolloutStatus`; 404 |
//! | `GET /analytics/rollouts` | read | `{"rollouts": [RolloutStatus…]}`, newest first |
//! | `POST /admin/releases` | admin | 201 `{app, channel, version, missingArtifacts, created, rollout?}` |
//! | `PUT /admin/releases/{app}/{version}/artifacts/{file}` | admin | `{file, size, sha256, missingArtifacts, rollout?}` |
//! | `POST /admin/rollouts/{app}/{channel}/start` `{version, percentage?, fallbackVersion?}` | admin | `RolloutStatus` |
//! | `POST /admin/rollouts/{app}/{channel}/halt` `{reason?}` | admin | `RolloutStatus` |
//! | `POST /admin/rollouts/{app}/{channel}/resume` `{reason?}` | admin | `RolloutStatus` |
//! | `POST /admin/rollouts/{app}/{channel}/percentage` `{percentage}` | admin | `RolloutStatus` |
//! | `POST /admin/rollouts/{app}/{channel}/rollback` `{reason?}` | admin | `RolloutStatus` |
//! | `POST /admin/rollouts/evaluate` | admin | `{"decisions": [Decision…]}` |
//!
//! The token is checked before the body is read. Errors answer `{"error": "..."}`: 400 bad
//! input or signature, 401/403 token, 404 unknown, 409 conflicting state, 413 too large,
//! 422 artifact bytes that differ from the manifest, 503 missing keys, 500 otherwise.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use railgun_core::health::HealthReport;
use serde::Deserialize;

use super::registry::RegisterRequest;
use super::{RolloutError, Rollouts};
use crate::auth::Access;

/// Largest health report body.
pub const MAX_HEALTH_BYTES: usize = 16 * 1024;
/// Largest `POST /admin/releases` body.
pub const MAX_REGISTER_BYTES: usize = 4 * 1024 * 1024;
/// Largest body of the other admin routes.
const MAX_ADMIN_BYTES: usize = 16 * 1024;

impl IntoResponse for RolloutError {
    fn into_response(self) -> Response {
        let status = match &self {
            RolloutError::Auth(a) => return a.clone().into_response(),
            RolloutError::BadRequest(_)
            | RolloutError::Signature(_)
            | RolloutError::Document(_) => StatusCode::BAD_REQUEST,
            RolloutError::NotFound(_) => StatusCode::NOT_FOUND,
            RolloutError::Conflict(_) => StatusCode::CONFLICT,
            RolloutError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RolloutError::ArtifactMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            RolloutError::Unavailable(_)
            | RolloutError::RolloutKey { .. }
            | RolloutError::ReleaseKey { .. } => StatusCode::SERVICE_UNAVAILABLE,
            RolloutError::Store(_) | RolloutError::Release(_) | RolloutError::Io { .. } => {
                tracing::error!(error = %self, "rollout route failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(serde_json::json!({"error": self.to_string()}))).into_response()
    }
}

/// The rollout routes over `service`.
pub fn routes(service: Rollouts) -> Router {
    Router::new()
        .route(
            "/analytics/health",
            post(health).layer(DefaultBodyLimit::max(MAX_HEALTH_BYTES)),
        )
        .route("/analytics/rollout-status", get(rollout_status))
        .route("/analytics/rollouts", get(list))
        .route(
            "/admin/releases",
            post(register).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/admin/releases/{app}/{version}/artifacts/{file}",
            put(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/admin/rollouts/evaluate", post(evaluate))
        .route(
            "/admin/rollouts/{app}/{channel}/{action}",
            post(change).layer(DefaultBodyLimit::disable()),
        )
        .with_state(service)
}

/// Reads a body of at most `limit` bytes (after the token was checked).
async fn read_body(body: Body, limit: usize) -> Result<Bytes, RolloutError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| RolloutError::TooLarge {
            file: "request body".into(),
            limit: limit as u64,
        })
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RolloutError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| RolloutError::BadRequest(format!("body: {e}")))
}

async fn health(State(s): State<Rollouts>, body: Bytes) -> Result<Response, RolloutError> {
    let report: HealthReport = serde_json::from_slice(&body)
        .map_err(|e| RolloutError::BadRequest(format!("health report: {e}")))?;
    Ok(Json(s.ingest_health(report).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    version: Option<String>,
    app: Option<String>,
    channel: Option<String>,
}

async fn rollout_status(
    State(s): State<Rollouts>,
    h: HeaderMap,
    Query(q): Query<StatusQuery>,
) -> Result<Response, RolloutError> {
    s.tokens().check(&h, Access::Read)?;
    let version = q
        .version
        .ok_or_else(|| RolloutError::BadRequest("query parameter version is required".into()))?;
    let st = s
        .status_for(&version, q.app.as_deref(), q.channel.as_deref())
        .await?;
    Ok(Json(st).into_response())
}

async fn list(State(s): State<Rollouts>, h: HeaderMap) -> Result<Response, RolloutError> {
    s.tokens().check(&h, Access::Read)?;
    Ok(Json(serde_json::json!({"rollouts": s.list().await?})).into_response())
}

async fn register(
    State(s): State<Rollouts>,
    h: HeaderMap,
    body: Body,
) -> Result<Response, RolloutError> {
    s.tokens().check(&h, Access::Admin)?;
    let body = read_body(body, MAX_REGISTER_BYTES).await?;
    let req: RegisterRequest = json_body(&body)?;
    let answer = s.register_release(req).await?;
    let status = if answer.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

async fn upload(
    State(s): State<Rollouts>,
    h: HeaderMap,
    Path((app, version, file)): Path<(String, String, String)>,
    body: Body,
) -> Result<Response, RolloutError> {
    s.tokens().check(&h, Access::Admin)?;
    Ok(Json(s.upload_artifact(&app, &version, &file, body).await?).into_response())
}

async fn evaluate(State(s): State<Rollouts>, h: HeaderMap) -> Result<Response, RolloutError> {
    s.tokens().check(&h, Access::Admin)?;
    Ok(Json(serde_json::json!({"decisions": s.evaluate().await?})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartBody {
    version: String,
    #[serde(default)]
    percentage: Option<f64>,
    #[serde(default)]
    fallback_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PercentageBody {
    percentage: f64,
}

fn reason(r: Option<String>) -> Result<Option<String>, RolloutError> {
    match r {
        Some(r) if r.len() > 1000 => Err(RolloutError::BadRequest(
            "reason is longer than 1000 characters".into(),
        )),
        r => Ok(r),
    }
}

async fn change(
    State(s): State<Rollouts>,
    h: HeaderMap,
    Path((app, channel, action)): Path<(String, String, String)>,
    body: Body,
) -> Result<Response, RolloutError> {
    s.tokens().check(&h, Access::Admin)?;
    let body = read_body(body, MAX_ADMIN_BYTES).await?;
    let st = match action.as_str() {
        "start" => {
            let b: StartBody = json_body(&body)?;
            s.start(&app, &channel, &b.version, b.percentage, b.fallback_version)
                .await?
        }
        "halt" => {
            let b: ReasonBody = json_body(&body)?;
            s.halt(&app, &channel, reason(b.reason)?).await?
        }
        "resume" => {
            let b: ReasonBody = json_body(&body)?;
            s.resume(&app, &channel, reason(b.reason)?).await?
        }
        "percentage" => {
            let b: PercentageBody = json_body(&body)?;
            s.set_percentage(&app, &channel, b.percentage).await?
        }
        "rollback" => {
            let b: ReasonBody = json_body(&body)?;
            s.rollback(&app, &channel, reason(b.reason)?).await?
        }
        other => {
            return Err(RolloutError::NotFound(format!(
                "rollout action {other:?} (start, halt, resume, percentage, rollback)"
            )))
        }
    };
    Ok(Json(st).into_response())
}
