//! `railgun serve`: runs the server until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;
use crate::analytics::RetentionConfig;
use crate::serve::{self, ServerConfig};

/// Arguments of `railgun serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Root of the static update tree.
    #[arg(long, default_value = "railgun-data/updates")]
    pub root: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub addr: SocketAddr,
    /// Folder for the default SQLite database (`DATA_DIR/analytics.db`).
    #[arg(long, default_value = "railgun-data")]
    pub data_dir: PathBuf,
    /// Analytics database: `sqlite:PATH` or `postgres://user@host/db` (default: SQLite in
    /// the data dir).
    #[arg(long, env = "RAILGUN_DATABASE_URL")]
    pub database: Option<String>,
    /// Days raw events are kept.
    #[arg(long, default_value_t = 90)]
    pub events_retention_days: u32,
    /// Days aggregates are kept.
    #[arg(long, default_value_t = 365)]
    pub aggregates_retention_days: u32,
    /// Webhook receiving alerts as Slack-compatible JSON.
    #[arg(long, env = "RAILGUN_ALERT_WEBHOOK")]
    pub alert_webhook: Option<String>,
}

/// Runs the command. Tokens come from `RAILGUN_READ_TOKEN` / `RAILGUN_ADMIN_TOKEN` only
/// (never the command line, where `ps` would show them).
pub async fn run(a: Args) -> CliResult {
    std::fs::create_dir_all(&a.root)?;
    let database = match a.database {
        Some(d) => d,
        None => format!("sqlite:{}", a.data_dir.join("analytics.db").display()),
    };
    let config = ServerConfig {
        root: a.root,
        database,
        read_token: std::env::var("RAILGUN_READ_TOKEN").ok(),
        admin_token: std::env::var("RAILGUN_ADMIN_TOKEN").ok(),
        retention: RetentionConfig {
            events_days: a.events_retention_days,
            aggregates_days: a.aggregates_retention_days,
            ..RetentionConfig::default()
        },
        alert_webhook: a.alert_webhook,
        ..ServerConfig::default()
    };
    if config.read_token.is_none() {
        tracing::warn!(
            "RAILGUN_READ_TOKEN is not set: the analytics read endpoints refuse everyone"
        );
    }
    let server = serve::start(a.addr, &config).await?;
    tracing::info!(addr = %server.addr, "railgun server listening");
    println!("railgun server listening on {}", server.url());
    shutdown_signal().await;
    tracing::info!("shutting down: draining the ingest queue");
    server.stop().await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
