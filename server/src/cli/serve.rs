//! `railgun serve`: runs the server until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;
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
}

/// Runs the command.
pub async fn run(a: Args) -> CliResult {
    std::fs::create_dir_all(&a.root)?;
    let config = ServerConfig { root: a.root };
    let server = serve::spawn(a.addr, serve::router(&config)).await?;
    tracing::info!(addr = %server.addr, "railgun server listening");
    println!("railgun server listening on {}", server.url());
    shutdown_signal().await;
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
