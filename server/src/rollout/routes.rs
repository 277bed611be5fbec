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
//! The token is checked before anything else of the request ([`ReadToken`], [`AdminToken`]
//! first among the extractors). Errors are [`ApiError`]s, `{"error", "code"}`: 400 bad input
//! or signature, 401/403 token, 404 unknown, 409 conflicting state, 413 too large, 422
//! artifact bytes that differ from the manifest, 503 missing keys or a database that fails,
//! 500 file system or signing (the cause logged, never answered).

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use railgun_core::health::HealthReport;
use serde::Deserialize;

use super::registry::RegisterRequest;
use super::Rollouts;
use crate::api::{parse_json, ApiBody, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::auth::{AdminToken, ReadToken, Tokens};

/// Largest health report body.
pub const MAX_HEALTH_BYTES: usize = 16 * 1024;
/// Largest `POST /admin/releases` body.
pub const MAX_REGISTER_BYTES: usize = 4 * 1024 * 1024;
/// Largest body of the other admin routes.
const MAX_ADMIN_BYTES: usize = 16 * 1024;

impl FromRef<Rollouts> for Tokens {
    fn from_ref(s: &Rollouts) -> Tokens {
        s.tokens().clone()
    }
}

/// The rollout routes over `service`.
pub fn routes(service: Rollouts) -> Router {
    Router::new()
        .route("/analytics/health", post(health))
        .route("/analytics/rollout-status", get(rollout_status))
        .route("/analytics/rollouts", get(list))
        .route("/admin/releases", post(register))
        .route(
            "/admin/releases/{app}/{version}/artifacts/{file}",
            // The artifact streams to disk, bounded by the signed manifest's size.
            put(upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/admin/rollouts/evaluate", post(evaluate))
        .route("/admin/rollouts/{app}/{channel}/{action}", post(change))
        .with_state(service)
}

async fn health(
    State(s): State<Rollouts>,
    ApiJson(report): ApiJson<HealthReport, MAX_HEALTH_BYTES>,
) -> Result<Response, ApiError> {
    Ok(Json(s.ingest_health(report).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    version: Option<String>,
    app: Option<String>,
    channel: Option<String>,
}

async fn rollout_status(
    _: ReadToken,
    State(s): State<Rollouts>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Response, ApiError> {
    let version = q
        .version
        .ok_or_else(|| ApiError::bad_param("version", "required"))?;
    let st = s
        .status_for(&version, q.app.as_deref(), q.channel.as_deref())
        .await?;
    Ok(Json(st).into_response())
}

async fn list(_: ReadToken, State(s): State<Rollouts>) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({"rollouts": s.list().await?})).into_response())
}

async fn register(
    _: AdminToken,
    State(s): State<Rollouts>,
    ApiJson(req): ApiJson<RegisterRequest, MAX_REGISTER_BYTES>,
) -> Result<Response, ApiError> {
    let answer = s.register_release(req).await?;
    let status = if answer.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

async fn upload(
    _: AdminToken,
    State(s): State<Rollouts>,
    ApiPath((app, version, file)): ApiPath<(String, String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    Ok(Json(s.upload_artifact(&app, &version, &file, body).await?).into_response())
}

async fn evaluate(_: AdminToken, State(s): State<Rollouts>) -> Result<Response, ApiError> {
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

fn reason(r: Option<String>) -> Result<Option<String>, ApiError> {
    match r {
        Some(r) if r.len() > 1000 => Err(ApiError::bad_request(
            "reason is longer than 1000 characters",
        )),
        r => Ok(r),
    }
}

async fn change(
    _: AdminToken,
    State(s): State<Rollouts>,
    ApiPath((app, channel, action)): ApiPath<(String, String, String)>,
    ApiBody(body): ApiBody<MAX_ADMIN_BYTES>,
) -> Result<Response, ApiError> {
    let st = match action.as_str() {
        "start" => {
            let b: StartBody = parse_json(&body)?;
            s.start(&app, &channel, &b.version, b.percentage, b.fallback_version)
                .await?
        }
        "halt" => {
            let b: ReasonBody = parse_json(&body)?;
            s.halt(&app, &channel, reason(b.reason)?).await?
        }
        "resume" => {
            let b: ReasonBody = parse_json(&body)?;
            s.resume(&app, &channel, reason(b.reason)?).await?
        }
        "percentage" => {
            let b: PercentageBody = parse_json(&body)?;
            s.set_percentage(&app, &channel, b.percentage).await?
        }
        "rollback" => {
            let b: ReasonBody = parse_json(&body)?;
            s.rollback(&app, &channel, reason(b.reason)?).await?
        }
        other => {
            return Err(ApiError::not_found(format!(
                "rollout action {other:?} not found (start, halt, resume, percentage, rollback)"
            )))
        }
    };
    Ok(Json(st).into_response())
}
