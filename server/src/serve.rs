//! The HTTP server: the update tree today; analytics, flags and rollout routes join it.
//!
//! Owns the axum router, the shared application state and the listener. It serves the
//! static update tree (`ROOT/<app>/…`, with `Range`, `If-Modified-Since` and `ETag`-less
//! caching headers from tower-http) under `/updates/` and at the root, and `/healthz`.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Root of the static update tree.
    pub root: PathBuf,
}

/// Builds the router.
pub fn router(config: &ServerConfig) -> Router {
    let tree = ServeDir::new(&config.root).append_index_html_on_directories(false);
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
