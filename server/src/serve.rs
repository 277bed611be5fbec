//! The HTTP server: one application, built once ([`App::new`]) and served ([`App::spawn`]).
//!
//! Owns [`ServerConfig`], [`App`] (the router, the analytics state, the rollout service) and
//! [`RunningServer`]. The router joins the static update tree (`ROOT/<app>/…` under
//! `/updates/` and at the root: regular files inside the root only, from [`tree`]; `Range`,
//! conditional requests and strong `ETag`s from [`files`]), `/healthz`, the analytics
//! routes ([`crate::analytics::routes`]), the rollout health and admin routes
//! ([`crate::rollout::routes`]), the hosted remote config ([`crate::config::routes`]) and
//! the dashboard ([`crate::dashboard::routes`]). Serving runs the rollout engine and, on
//! stop, drains the ingest queue.
//!
//! It refuses to start when a key file the config names does not load, and keeps no other
//! way to build the application: the CLI, the demo and the tests all go through [`App`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::routing::get;
use axum::Router;
use railgun_core::clock::SharedClock;
use tokio::net::TcpListener;

use crate::analytics::retention::RetentionConfig;
use crate::analytics::{self, queue, AppState};
use crate::rollout::Rollouts;
use crate::store::{self, SharedStore, StoreError};

pub mod conn;
pub mod etag;
pub mod files;
mod objects;
pub mod range;
pub mod shared;
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
    /// Where and how alerts are delivered (destinations, backoff); its clock is replaced
    /// by `clock`.
    pub alerts: crate::alerts::AlertConfig,
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
    /// The rollout stages of each channel (`--channel-stages`; by default `beta` and
    /// `canary` get 100 % at once, others follow their manifest: 10 → 25 → 50 → 100).
    pub channel_stages: crate::release::ChannelStages,
    /// `railgun serve --dev`: the read routes also answer loopback peers without a token
    /// (never the default; admin routes still need the admin token).
    pub dev: bool,
    /// The scheduled warehouse export (`--export-dir`, `--export-interval`), if any.
    pub export: Option<crate::export::schedule::ExportSchedule>,
    /// Request-head, idle and shutdown time limits of every connection.
    pub connections: conn::ConnLimits,
    /// Private key signing published config revisions (`--config-key`).
    pub config_key: Option<PathBuf>,
    /// Public keys a publisher-signed config must verify against (`--config-public-key`).
    pub config_public_keys: Vec<PathBuf>,
    /// Time between two heartbeats of a config stream (`--config-heartbeat`, 15 s).
    pub config_heartbeat: std::time::Duration,
    /// Bound of open config streams (`--config-max-subscribers`; 503 past it).
    pub config_max_subscribers: usize,
    /// Per-client rate limit of the public write routes.
    pub rate_limit: crate::ratelimit::RateLimit,
    /// The object store holding the update tree, shared by every server
    /// (`--object-store URL`: `file:///path`, `s3://`, `gs://`, `az://`); `None`: the local
    /// tree at `root`.
    pub object_store: Option<String>,
    /// Lease of the rollout engine among servers sharing a PostgreSQL database
    /// (`--leader-lease`, 60 s): a dead leader's successor takes over within it.
    pub leader_lease: std::time::Duration,
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
            alerts: crate::alerts::AlertConfig::default(),
            rollout_key: None,
            release_public_keys: Vec::new(),
            rollout_interval: crate::rollout::DEFAULT_INTERVAL,
            channel_expiry: crate::rollout::DEFAULT_CHANNEL_EXPIRY,
            channel_stages: crate::release::ChannelStages::default(),
            dev: false,
            export: None,
            connections: conn::ConnLimits::default(),
            config_key: None,
            config_public_keys: Vec::new(),
            config_heartbeat: crate::config::DEFAULT_HEARTBEAT,
            config_max_subscribers: crate::config::DEFAULT_MAX_SUBSCRIBERS,
            rate_limit: crate::ratelimit::RateLimit::default(),
            leader_lease: crate::leader::DEFAULT_LEASE,
            object_store: None,
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
    /// The scheduled export's destination cannot be used.
    #[error("export: {0}")]
    Export(#[from] crate::export::ExportError),
    /// The update tree's object store cannot be opened.
    #[error("update tree object store: {0}")]
    Tree(#[source] crate::export::ExportError),
    /// The config keys could not be loaded.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The whole application over one store: the router, the analytics state (store, ingest
/// queue, metrics) and the rollout service, ready to [`spawn`](App::spawn) or to drive
/// in process (`tower::ServiceExt::oneshot` on `router`).
#[derive(Debug)]
pub struct App {
    /// Every route (see the module documentation).
    pub router: Router,
    /// The analytics state the routes share (its writer runs from [`App::new`] on).
    pub state: AppState,
    /// The rollout service (in process: `evaluate`, `status`, `subscribe`).
    pub rollouts: Rollouts,
    /// The remote-config service (revisions, streams).
    pub configs: crate::config::ConfigService,
    /// The dashboard's live feed.
    pub live: crate::dashboard::live::Live,
    config: ServerConfig,
}

impl App {
    /// Builds the application over `store`: starts the ingest writer (and the retention job
    /// when `run_retention`), loads the rollout keys the config names (a file that does not
    /// load is an error; a key not configured only disables what needs it, 503) and builds
    /// the router. The rollout engine runs once the app is [spawned](App::spawn).
    pub fn new(config: &ServerConfig, store: SharedStore) -> Result<Self, ServeError> {
        let tree = shared::UpdateTree::for_config(config).map_err(ServeError::Tree)?;
        let state = AppState::start(config, store);
        let rollouts = Rollouts::new(config, &state, tree.clone())?;
        let configs =
            crate::config::ConfigService::new(config, state.store.clone(), state.tokens.clone())?;
        let live = crate::dashboard::live::Live::default();
        let router = analytics::routes(state.clone())
            .merge(crate::rollout::routes(rollouts.clone()))
            .merge(crate::config::routes(
                configs.clone(),
                files::tree_routes(tree.clone()),
            ))
            .merge(crate::dashboard::routes())
            .merge(crate::dashboard::live::routes(
                live.clone(),
                state.tokens.clone(),
            ))
            .merge(update_tree(tree))
            .layer(axum::middleware::from_fn_with_state(
                crate::ratelimit::RateLimiter::new(config.rate_limit.clone()),
                crate::ratelimit::layer,
            ))
            // Outermost: a 429 of the limiter is counted too.
            .layer(axum::middleware::from_fn_with_state(
                state.metrics.clone(),
                crate::metrics::track,
            ));
        Ok(Self {
            router,
            state,
            rollouts,
            configs,
            live,
            config: config.clone(),
        })
    }

    /// [`App::new`] over the store `config.database` names (opened and migrated). A
    /// scheduled export is registered first, so the retention job holds its rows from its
    /// first run on.
    pub async fn open(config: &ServerConfig) -> Result<Self, ServeError> {
        let store = store::open(&config.database).await?;
        if let Some(e) = &config.export {
            crate::export::schedule::register(&store, e).await?;
        }
        Self::new(config, store)
    }

    /// Binds `addr` (port 0 picks a free one), serves the application in the background and
    /// runs the rollout engine every `rollout_interval`. [`RunningServer::stop`] ends the
    /// listener, lets in-flight requests finish, then drains the ingest queue.
    pub async fn spawn(self, addr: SocketAddr) -> Result<RunningServer, ServeError> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let App {
            router,
            state,
            rollouts,
            configs,
            live,
            config,
        } = self;
        state.leader.spawn();
        rollouts.spawn_engine();
        live.spawn_feed(
            rollouts.subscribe(),
            state.alerts.subscribe(),
            state.clone(),
        );
        let export = config
            .export
            .clone()
            .map(|e| crate::export::schedule::ScheduledExport::spawn(state.store.clone(), e));
        let drained = state.clone();
        let (closing_configs, closing_live) = (configs.clone(), live.clone());
        let handle = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.await;
                // Open event streams end now instead of holding the shutdown until its
                // deadline (their clients reconnect to whichever server answers next).
                closing_configs.close();
                closing_live.close();
            };
            let served = serve_connections(listener, router, &config, stop).await;
            drained.shutdown().await;
            // Last: a successor takes the engine (and the outbox) over at once.
            drained.leader.resign().await;
            served
        });
        Ok(RunningServer {
            addr,
            state,
            rollouts,
            configs,
            live,
            handle,
            shutdown: Some(tx),
            export,
        })
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the connections in
/// flight finish within the shutdown deadline ([`conn::serve`], with the config's
/// [`conn::ConnLimits`]). Each request carries its peer's address
/// (`ConnectInfo<SocketAddr>`, what `--dev` and the rate limiter decide on).
async fn serve_connections(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    conn::serve(listener, router, config.connections, shutdown).await
}

/// The update tree under `/updates/` and at the root, and `/healthz`.
fn update_tree(tree: shared::UpdateTree) -> Router {
    let tree = files::tree_routes(tree);
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
    /// The analytics state (e.g. `state.queue.flush()` to wait for ingest).
    pub state: AppState,
    /// The rollout service; the engine runs until the server stopped and this is dropped.
    pub rollouts: Rollouts,
    /// The remote-config service.
    pub configs: crate::config::ConfigService,
    /// The dashboard's live feed.
    pub live: crate::dashboard::live::Live,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    export: Option<crate::export::schedule::ScheduledExport>,
}

impl RunningServer {
    /// The base URL (`http://addr`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it (in-flight requests answered, the ingest queue
    /// committed).
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(e) = self.export.take() {
            e.stop().await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.handle).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
