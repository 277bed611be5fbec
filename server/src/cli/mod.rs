//! The `railgun` subcommands: one module per command, each with `Args` and `run`.
//! Commands print results on stdout; a failure is one line on stderr and exit code 1.

use std::process::ExitCode;

pub mod check;
pub mod client_args;
pub mod config;
pub mod demo;
pub mod export;
pub mod flags;
pub mod keygen;
pub mod loadgen;
pub mod release;
pub mod serve;
pub mod track;
pub mod update;
pub mod verify;

/// What every command returns.
pub type CliResult = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>;

/// Runs an async command on a fresh multi-threaded runtime.
pub fn block_on(fut: impl std::future::Future<Output = CliResult>) -> CliResult {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info` for railgun, `warn` elsewhere).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,railgun_server=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
