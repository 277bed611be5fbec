//! `railgun serve`: runs the server until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::CliResult;
use crate::analytics::retention::RetentionConfig;
use crate::ratelimit::{self, RateLimit};
use crate::serve::{conn, App, ServerConfig};

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
    /// Days an alert stays in the outbox once delivered or given up.
    #[arg(long, default_value_t = crate::analytics::retention::DEFAULT_ALERT_RETENTION_DAYS)]
    pub alert_retention_days: u32,
    /// Webhook receiving alerts as Slack-compatible JSON (repeatable; the variable takes
    /// several separated by commas).
    #[arg(
        long = "alert-webhook",
        env = "RAILGUN_ALERT_WEBHOOK",
        value_delimiter = ','
    )]
    pub alert_webhooks: Vec<String>,
    /// Webhook receiving alerts as plain JSON (repeatable).
    #[arg(
        long = "alert-json-webhook",
        env = "RAILGUN_ALERT_JSON_WEBHOOK",
        value_delimiter = ','
    )]
    pub alert_json_webhooks: Vec<String>,
    /// PagerDuty Events API v2 routing key: alerts trigger and resolve incidents (repeatable).
    #[arg(
        long = "pagerduty-routing-key",
        env = "RAILGUN_PAGERDUTY_ROUTING_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub pagerduty_routing_keys: Vec<String>,
    /// PagerDuty events endpoint (default: PagerDuty's; point it at a proxy or a test receiver).
    #[arg(long, env = "RAILGUN_PAGERDUTY_URL", default_value = crate::alerts::PAGERDUTY_EVENTS_URL)]
    pub pagerduty_url: String,
    /// Private key (PKCS#8 PEM) signing channel states for the rollout engine.
    #[arg(long, env = "RAILGUN_ROLLOUT_KEY_FILE")]
    pub rollout_key: Option<PathBuf>,
    /// Public key of a release signer accepted by `POST /admin/releases` (repeatable).
    #[arg(long = "release-public-key")]
    pub release_public_keys: Vec<PathBuf>,
    /// Seconds between two rollout engine runs.
    #[arg(long, default_value_t = 60)]
    pub rollout_interval_secs: u64,
    /// Days a signed channel state stays valid (re-signed after half of it).
    #[arg(long, default_value_t = 7)]
    pub channel_expiry_days: u64,
    /// Rollout stages of a channel, CHANNEL=P1,P2,…,100 (repeatable), e.g.
    /// `--channel-stages canary=100 --channel-stages stable=10,25,50,100`. Default: beta=100,
    /// canary=100; other channels follow their release manifest (10,25,50,100).
    #[arg(long = "channel-stages", value_name = "CHANNEL=STAGES")]
    pub channel_stages: Vec<crate::release::ChannelStagesArg>,
    /// Development only: the read routes (`/analytics/dau`, …) answer WITHOUT a token to
    /// clients on this machine (loopback peers: 127.0.0.0/8, ::1). Admin routes still need
    /// RAILGUN_ADMIN_TOKEN; other machines still need a token. Never in production.
    #[arg(long)]
    pub dev: bool,
    /// Export to this folder or object-store URL (s3://, gs://, az://) on a schedule, as
    /// `railgun export` does; retention keeps what it has not written yet.
    #[arg(long, value_name = "DEST")]
    pub export_dir: Option<String>,
    /// Time between two scheduled exports: seconds, or with s, m, h or d (`1h`).
    #[arg(long, default_value = "1h", value_parser = crate::export::schedule::parse_interval)]
    pub export_interval: std::time::Duration,
    /// Format of the scheduled export.
    #[arg(long, value_enum, default_value = "parquet")]
    pub export_format: crate::export::Format,
    /// Seconds a client has to send a whole request head (from its first byte; from the
    /// connection's start for the first request).
    #[arg(long, default_value = "10", value_parser = conn::parse_seconds)]
    pub header_timeout: Duration,
    /// Seconds a kept-alive connection may wait for its next request, and a transfer may
    /// stall on its client.
    #[arg(long, default_value = "60", value_parser = conn::parse_seconds)]
    pub idle_timeout: Duration,
    /// Seconds the requests in flight get after SIGTERM or Ctrl-C; connections still open
    /// then are closed.
    #[arg(long, default_value = "20", value_parser = conn::parse_seconds)]
    pub shutdown_timeout: Duration,
    /// Private key (PKCS#8 PEM) signing the config revisions published to this server.
    #[arg(long, env = "RAILGUN_CONFIG_KEY_FILE")]
    pub config_key: Option<PathBuf>,
    /// Public key a publisher-signed config must verify against (repeatable); with one,
    /// unsigned configs are refused unless --config-key can sign them.
    #[arg(long = "config-public-key")]
    pub config_public_keys: Vec<PathBuf>,
    /// Seconds between two heartbeats of a config stream.
    #[arg(long, default_value = "15", value_parser = conn::parse_seconds)]
    pub config_heartbeat: Duration,
    /// Config streams open at once; more answer 503 (clients then poll).
    #[arg(long, default_value_t = crate::config::DEFAULT_MAX_SUBSCRIBERS)]
    pub config_max_subscribers: usize,
    /// Requests a minute each client may send to POST /analytics/{events,health,erasure}
    /// (sustained; one bucket per client for the three).
    #[arg(long, default_value_t = ratelimit::DEFAULT_PER_MINUTE, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_minute: u32,
    /// Requests a client may send at once before the per-minute rate applies.
    #[arg(long, default_value_t = ratelimit::DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,
    /// Do not rate-limit the public routes (a proxy in front does it).
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Header naming the client behind a trusted proxy (e.g. X-Forwarded-For); believed
    /// only from --trusted-proxy peers.
    #[arg(long, requires = "trusted_proxies")]
    pub trusted_proxy_header: Option<axum::http::HeaderName>,
    /// Object store holding the update tree, shared by several servers: `file:///path`,
    /// `s3://bucket/prefix` (AWS_* variables; AWS_ENDPOINT for an S3-compatible server),
    /// `gs://`, `az://`. Default: the local tree at --root.
    #[arg(long, env = "RAILGUN_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Seconds of the rollout engine's lease among servers sharing a PostgreSQL database:
    /// one server runs the engine and sends the alerts; when it dies another takes over
    /// within this time. Ignored on SQLite (one server).
    #[arg(long, default_value = "60", value_parser = conn::parse_seconds)]
    pub leader_lease: Duration,
    /// Address or CIDR block of a proxy whose --trusted-proxy-header is believed
    /// (repeatable).
    #[arg(long = "trusted-proxy", requires = "trusted_proxy_header")]
    pub trusted_proxies: Vec<ratelimit::IpBlock>,
}

/// The line `railgun serve --dev` prints before it listens.
pub const DEV_NOTICE: &str =
    "railgun serve --dev: DEVELOPMENT MODE: the read routes (/analytics/dau, \
    /analytics/rollout-status, ...) answer WITHOUT a token to clients on this machine (loopback: \
    127.0.0.0/8, ::1); other machines and every admin route still need their token. Never use \
    --dev in production.";

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
            alerts_days: a.alert_retention_days,
            ..RetentionConfig::default()
        },
        alerts: crate::alerts::AlertConfig::new(
            a.alert_webhooks
                .into_iter()
                .map(|url| crate::alerts::Destination::Slack { url })
                .chain(a.pagerduty_routing_keys.into_iter().map(|routing_key| {
                    crate::alerts::Destination::PagerDuty {
                        url: a.pagerduty_url.clone(),
                        routing_key,
                    }
                }))
                .chain(
                    a.alert_json_webhooks
                        .into_iter()
                        .map(|url| crate::alerts::Destination::Json { url }),
                )
                .collect(),
        ),
        rollout_key: a.rollout_key,
        release_public_keys: a.release_public_keys,
        rollout_interval: std::time::Duration::from_secs(a.rollout_interval_secs.max(1)),
        channel_expiry: std::time::Duration::from_secs(a.channel_expiry_days.max(1) * 86_400),
        channel_stages: crate::release::ChannelStages::with(a.channel_stages),
        dev: a.dev,
        export: a
            .export_dir
            .map(|out| crate::export::schedule::ExportSchedule {
                out,
                interval: a.export_interval,
                format: a.export_format,
            }),
        connections: conn::ConnLimits {
            header_timeout: a.header_timeout,
            idle_timeout: a.idle_timeout,
            shutdown_timeout: a.shutdown_timeout,
        },
        config_key: a.config_key,
        config_public_keys: a.config_public_keys,
        config_heartbeat: a.config_heartbeat,
        config_max_subscribers: a.config_max_subscribers,
        rate_limit: RateLimit {
            enabled: !a.no_rate_limit,
            per_minute: a.rate_limit_per_minute,
            burst: a.rate_limit_burst,
            client_header: a.trusted_proxy_header,
            trusted_proxies: a.trusted_proxies,
            ..RateLimit::default()
        },
        leader_lease: a.leader_lease,
        object_store: a.object_store,
        ..ServerConfig::default()
    };
    if config.dev {
        tracing::warn!("--dev: read routes answer loopback clients without a token");
        println!("{DEV_NOTICE}");
    } else if config.read_token.is_none() {
        tracing::warn!(
            "RAILGUN_READ_TOKEN is not set: the analytics read endpoints refuse everyone"
        );
    }
    let app = App::open(&config).await?;
    if app.state.store.shared_by_servers() {
        tracing::info!(
            lease_secs = config.leader_lease.as_secs_f64(),
            "PostgreSQL: servers sharing this database elect one to run the rollout engine and send the alerts"
        );
    } else {
        tracing::info!("SQLite: one server only; to run several behind a load balancer, share a PostgreSQL database (--database postgres://...)");
    }
    let server = app.spawn(a.addr).await?;
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
