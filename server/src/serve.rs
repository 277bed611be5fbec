//! The HTTP server: the update tree and the analytics backend; flags and rollout routes join it.
//!
//! Owns the axum router, the shared application state and the listener. It serves the
//! static update tree (`ROOT/<app>/…`: regular files inside the root only, from [`tree`];
//! `Range`, conditional requests and strong `ETag`s from [`files`]) under `/updates/` and
//! at the root, `/healthz`, and the analytics routes ([`crate::analytics::routes`]) over
//! the store the config names.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::routing::get;
use axum::Router;
use railgun_core::clock::SharedClock;
use tokio::net::TcpListener;

use crate::alerts::Alerter;
use crate::analytics::{self, queue, AppState, RetentionConfig};
use crate::auth::Tokens;
use crate::store::{self, SharedStore, StoreError};

pub mod etag;
pub mod files;
pub mod range;
pub mod tree;

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Root of the static update tree.
    pub root: PathBuf,
    /// The analytics database: `sqlite:PATH` or `postgres://…`.
    pub database: String,
    /// Bearer token of the read endpoints (`RAILGUN_READ_TOKEN`).
    pub read_token: Option<String>,
    /// Bearer token of the admin endpoints (`RAILGUN_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Retention of raw events and aggregates.
    pub retention: RetentionConfig,
    /// Whether the retention job runs in the background.
    pub run_retention: bool,
    /// Capacity of the ingest queue, in events (503 past it).
    pub queue_capacity: usize,
    /// The clock (tests inject a manual one).
    pub clock: SharedClock,
    /// Where alerts are posted (Slack-compatible JSON; `RAILGUN_ALERT_WEBHOOK`).
    pub alert_webhook: Option<String>,
    /// Private key signing channel states (`--rollout-key`, `RAILGUN_ROLLOUT_KEY_FILE`);
    /// without it the rollout admin routes answer 503.
    pub rollout_key: Option<PathBuf>,
    /// Public keys a manifest posted to `POST /admin/releases` must be signed by
    /// (`--release-public-key`, repeatable).
    pub release_public_keys: Vec<PathBuf>,
    /// Time between two rollout engine runs (60 s).
    pub rollout_interval: std::time::Duration,
    /// Validity of a signed channel state (7 days); re-signed when half of it is gone.
    pub channel_expiry: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("railgun-data/updates"),
            database: "sqlite:railgun-data/analytics.db".into(),
            read_token: None,
            admin_token: None,
            retention: RetentionConfig::default(),
            run_retention: true,
            queue_capacity: queue::DEFAULT_CAPACITY,
            clock: railgun_core::clock::system(),
            alert_webhook: None,
            rollout_key: None,
            release_public_keys: Vec::new(),
            rollout_interval: crate::rollout::DEFAULT_INTERVAL,
            channel_expiry: crate::rollout::DEFAULT_CHANNEL_EXPIRY,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error("analytics store: {0}")]
    Store(#[from] StoreError),
    /// The address could not be bound.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    /// The rollout keys could not be loaded.
    #[error(transparent)]
    Rollout(#[from] crate::rollout::RolloutError),
}

/// Opens the store the config names and starts the analytics state (writer, retention job).
pub async fn app_state(config: &ServerConfig) -> Result<AppState, ServeError> {
    let store = store::open(&config.database).await?;
    Ok(app_state_with_store(config, store))
}

/// Starts the analytics state over an already opened store.
pub fn app_state_with_store(config: &ServerConfig, store: SharedStore) -> AppState {
    AppState::start(
        store,
        config.clock.clone(),
        Tokens::new(config.read_token.as_deref(), config.admin_token.as_deref()),
        config.retention,
        config.queue_capacity,
        config.run_retention,
        Alerter::new(config.alert_webhook.clone()),
    )
}

/// The whole application: the update tree plus the analytics and rollout routes over
/// `state` (rollout keys that do not load only disable the routes needing them; the engine
/// does not run: [`start`] runs it).
pub fn app_router(config: &ServerConfig, state: AppState) -> Router {
    let rollouts = crate::rollout::Rollouts::lenient(config, &state);
    app_router_with(config, state, rollouts)
}

/// [`app_router`] over a given rollout service (the one whose engine runs).
pub fn app_router_with(
    config: &ServerConfig,
    state: AppState,
    rollouts: crate::rollout::Rollouts,
) -> Router {
    analytics::routes(state)
        .merge(crate::rollout::routes(rollouts))
        .merge(crate::dashboard::routes())
        .merge(router(config))
}

/// Binds `addr`, serves the whole application and runs the rollout engine every
/// `rollout_interval`; stopping drains the ingest queue and ends the engine.
pub async fn start(addr: SocketAddr, config: &ServerConfig) -> Result<RunningServer, ServeError> {
    Ok(start_with_rollouts(addr, config).await?.0)
}

/// Like [`start`], and also returns the rollout service (in-process
/// [`crate::rollout::Rollouts::evaluate`], for the demo and tests with a manual clock). The
/// engine runs until the server stopped and the returned handle is dropped.
pub async fn start_with_rollouts(
    addr: SocketAddr,
    config: &ServerConfig,
) -> Result<(RunningServer, crate::rollout::Rollouts), ServeError> {
    let state = app_state(config).await?;
    let rollouts = crate::rollout::Rollouts::new(config, &state)?;
    let router = app_router_with(config, state.clone(), rollouts.clone());
    let server = spawn_app(addr, router, state).await?;
    rollouts.spawn_engine();
    Ok((server, rollouts))
}

/// Builds the router.
pub fn router(config: &ServerConfig) -> Router {
    let tree = files::routes(config.root.clone());
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .nest_service("/updates", tree.clone())
        .fallback_service(tree)
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningServer {
    /// The base URL (`http://addr`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.handle).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Binds `addr` (port 0 picks a free one) and serves `router` in the background.
pub async fn spawn(addr: SocketAddr, router: Router) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningServer {
        addr,
        handle,
        shutdown: Some(tx),
    })
}

/// Like [`spawn`], and after the listener stopped (in-flight requests answered), drains the
/// ingest queue of `state`, so [`RunningServer::stop`] returns once every queued event is
/// committed.
pub async fn spawn_app(
    addr: SocketAddr,
    router: Router,
    state: AppState,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        state.shutdown().await;
        served
    });
    Ok(RunningServer {
        addr,
        handle,
        shutdown: Some(tx),
    })
}
