//! The analytics backend: ingest, queries, user deletion, retention.
//!
//! Owns [`AppState`] (store, ingest queue, metrics, clock, tokens, retention settings) and
//! [`routes`]: `POST /analytics/events` and `POST /analytics/erasure` (public: clients upload,
//! and take their data back after consent is withdrawn), the read endpoints (read token),
//! `DELETE /analytics/users/{userId}` and `DELETE /analytics/machines/{machineId}` (admin
//! token), `/metrics`. Handlers never see the client's address; logs carry counts,
//! never user ids, machine ids or properties.
//!
//! Erasure: a user id and the health reports' `machineId` come from the same install id
//! (`railgun_core::health::report_machine_id`: the id itself when it is 64 lowercase hex, as
//! the default hashed install id is, else its SHA-256 with the `railgun-health:` prefix), so
//! deleting a user also deletes the health rows of that machine id. An app that gives
//! analytics a user id of its own (not the install id) erases health data with the
//! machine route.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use railgun_core::clock::SharedClock;
use railgun_core::health::report_machine_id;
use tokio::sync::Mutex;

use crate::alerts::Alerter;
use crate::api::{ApiError, ApiJson, ApiPath};
use crate::auth::{AdminToken, Tokens};
use crate::metrics::Metrics;
use crate::serve::ServerConfig;
use crate::store::SharedStore;

pub mod ingest;
pub mod query;
pub mod queue;
pub mod retention;

use queue::IngestQueue;
use retention::RetentionConfig;

/// What the analytics handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: SharedStore,
    /// The ingest queue and its writer.
    pub queue: Arc<IngestQueue>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The clock (injectable).
    pub clock: SharedClock,
    /// Bearer tokens.
    pub tokens: Tokens,
    /// Retention settings.
    pub retention: RetentionConfig,
    /// Alert delivery (rollout engine, analytics backlog).
    pub alerts: Alerter,
    /// This server's claim on the engine's lease: the leader runs the rollout engine and
    /// sends the alerts ([`crate::leader`]).
    pub leader: crate::leader::Leadership,
    retention_task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl FromRef<AppState> for Tokens {
    fn from_ref(app: &AppState) -> Tokens {
        app.tokens.clone()
    }
}

impl AppState {
    /// Starts the writer (and, when `config.run_retention`, the retention job) over `store`,
    /// with the config's clock, tokens (and `--dev` reads), retention, queue capacity and
    /// alert webhook.
    pub fn start(config: &ServerConfig, store: SharedStore) -> Self {
        let clock = config.clock.clone();
        let retention = config.retention;
        let alerts = Alerter::start(
            crate::alerts::AlertConfig {
                clock: clock.clone(),
                ..config.alerts.clone()
            },
            store.clone(),
        );
        let metrics = Arc::new(Metrics::default());
        let queue = Arc::new(IngestQueue::start(
            store.clone(),
            metrics.clone(),
            config.queue_capacity,
        ));
        queue.alert_backlog(alerts.clone(), queue::BACKLOG_ALERT_EVENTS);
        // The queue starts empty: a backlog alert left firing by the previous process is over.
        alerts.send_clear(queue::BACKLOG_ALERT_KEY);
        alerts.attach_metrics(metrics.clone());
        let leader = crate::leader::Leadership::new(
            store.clone(),
            crate::leader::ENGINE_LEASE,
            config.leader_lease,
        );
        // One sender among servers sharing the outbox: the leader's.
        alerts.follow(leader.watch());
        metrics.follow_leader(leader.watch());
        let task = config
            .run_retention
            .then(|| retention::spawn(store.clone(), clock.clone(), retention, metrics.clone()));
        Self {
            store,
            queue,
            metrics,
            clock,
            tokens: Tokens::new(config.read_token.as_deref(), config.admin_token.as_deref())
                .with_dev_reads(config.dev),
            retention,
            alerts,
            leader,
            retention_task: Arc::new(Mutex::new(task)),
        }
    }

    /// Stops the retention job and drains the ingest queue (everything queued is committed);
    /// alerts in delivery get [`crate::alerts::SHUTDOWN_GRACE`].
    pub async fn shutdown(&self) {
        if let Some(t) = self.retention_task.lock().await.take() {
            t.abort();
        }
        self.queue.close().await;
        self.alerts.drain(crate::alerts::SHUTDOWN_GRACE).await;
    }
}

/// The analytics routes and `/metrics` (request metrics are counted by the app's layer,
/// [`crate::metrics::track`]).
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/analytics/events", post(ingest::ingest))
        .route("/analytics/dau", get(query::dau))
        .route("/analytics/wau", get(query::wau))
        .route("/analytics/mau", get(query::mau))
        .route("/analytics/sessions", get(query::sessions))
        .route("/analytics/features", get(query::features))
        .route("/analytics/retention", get(query::retention))
        .route("/analytics/dau-series", get(query::dau_series))
        .route("/analytics/feature-summary", get(query::feature_summary))
        .route("/analytics/users/{user_id}", delete(delete_user))
        .route("/analytics/erasure", post(self_erasure))
        .route("/analytics/machines/{machine_id}", delete(delete_machine))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(app): State<AppState>) -> Response {
    app.metrics.queue_depth.store(
        app.queue.depth() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// `DELETE /analytics/users/{userId}`: erases a user everywhere (admin token): events,
/// rollups, and the health rows of the machine id the same install id reports under.
/// Answers `{deleted, analytics, healthReports, healthInstalls}` (row counts; `deleted` is
/// their sum).
async fn delete_user(
    _: AdminToken,
    State(app): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    erase_user(&app, user_id).await.map(Json)
}

/// Largest body of `POST /analytics/erasure`.
const MAX_ERASURE_BYTES: usize = 1024;

/// The body of `POST /analytics/erasure`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ErasureRequest {
    user_id: String,
}

/// `POST /analytics/erasure {"userId"}`: the client's own erasure request after the user
/// withdrew consent. No token, like ingest: a client that may send events as a user id may
/// also take them back (the default user id is the hashed install id, which only that
/// install knows). Same erasure and answer as the admin `DELETE /analytics/users/{userId}`.
async fn self_erasure(
    State(app): State<AppState>,
    ApiJson(req): ApiJson<ErasureRequest, MAX_ERASURE_BYTES>,
) -> Result<Json<serde_json::Value>, ApiError> {
    erase_user(&app, req.user_id).await.map(Json)
}

/// Erases `user_id`'s events, rollups and the health rows of its machine id.
async fn erase_user(app: &AppState, user_id: String) -> Result<serde_json::Value, ApiError> {
    if user_id.is_empty() || user_id.len() > 128 {
        return Err(ApiError::bad_param("userId", "1-128 characters"));
    }
    // Events of this user still queued are committed first, then erased with the rest.
    if let Err(e) = app.queue.flush().await {
        tracing::warn!(error = %e, "ingest queue not flushed before user deletion");
    }
    let machine_id = report_machine_id(&user_id);
    let rows = app.store.delete_user(user_id).await?;
    let health = app.store.delete_machine(machine_id).await?;
    tracing::info!(rows, health = health.total(), "user erased");
    Ok(serde_json::json!({
        "deleted": rows + health.total(),
        "analytics": rows,
        "healthReports": health.reports,
        "healthInstalls": health.installs,
    }))
}

/// `DELETE /analytics/machines/{machineId}`: erases one install's health reports and
/// per-release rows (admin token); `machineId` is the 64-hex id the reports carry. Answers
/// `{deleted, healthReports, healthInstalls}`.
async fn delete_machine(
    _: AdminToken,
    State(app): State<AppState>,
    ApiPath(machine_id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hex = machine_id.len() == 64
        && machine_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(ApiError::bad_param(
            "machineId",
            "64 lowercase hex characters",
        ));
    }
    let health = app.store.delete_machine(machine_id).await?;
    tracing::info!(rows = health.total(), "install health data erased");
    Ok(Json(serde_json::json!({
        "deleted": health.total(),
        "healthReports": health.reports,
        "healthInstalls": health.installs,
    })))
}
