//! `railgun flags`: fetches the remote config as a client would and prints every flag's
//! (or one flag's) evaluation, the active announcements, maintenance and the kill switch.
//!
//! Read-only for the user's view: it does not record `showOnce` announcements as shown
//! unless it runs against the app's own state folder (then it behaves exactly like the app).

use std::path::PathBuf;
use std::process::ExitCode;

use railgun_core::flags::{FeatureFlags, FlagsConfig};
use railgun_core::Version;
use serde_json::json;

use super::client_args::{open_store, trusted_keys};
use super::CliResult;

/// Arguments of `railgun flags`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// URL of the config document (default: $RAILGUN_CONFIG_URL).
    #[arg(long)]
    pub url: Option<String>,
    /// App name.
    #[arg(long)]
    pub app: String,
    /// Folder of the client state (cache, dismissed announcements); in memory without it.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The user/install id flags are evaluated for.
    #[arg(long)]
    pub user_id: String,
    /// The app version.
    #[arg(long)]
    pub app_version: Version,
    /// Platform (darwin, win32, linux; default: this one).
    #[arg(long)]
    pub platform: Option<String>,
    /// Channel.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Only this flag.
    #[arg(long)]
    pub key: Option<String>,
    /// Public key(s) that sign the config (file or inline; repeatable). With one, unsigned
    /// documents are refused.
    #[arg(long = "config-public-key")]
    pub config_public_keys: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep running and print one line per config revision received (the server's live
    /// stream when it offers one, else polling); stops on Ctrl-C.
    #[arg(long)]
    pub watch: bool,
}

/// Runs the command.
pub async fn run(a: Args) -> CliResult {
    let mut config = FlagsConfig::new(a.app, a.user_id, a.app_version).with_env()?;
    if a.url.is_some() {
        config.url = a.url;
    }
    if let Some(p) = a.platform {
        config.platform = p;
    }
    config.channel = a.channel;
    if !a.config_public_keys.is_empty() {
        config.keys = Some(trusted_keys(&a.config_public_keys, 1)?);
    }
    let store = open_store(a.state.as_ref())?;
    if a.watch {
        return watch(config, store, a.json).await;
    }
    let flags = FeatureFlags::new(config, store)?;
    let fetch_error = match flags.refresh().await {
        Ok(_) => None,
        Err(e) if flags.config().is_some() => {
            // Like the app: keep going with the cached config, but say so.
            eprintln!(
                "warning: {}; showing the cached config",
                railgun_core::error::chain(&e)
            );
            Some(e.to_string())
        }
        Err(e) => return Err(e.into()),
    };
    let details = match &a.key {
        Some(k) => std::iter::once((k.clone(), flags.details(k))).collect(),
        None => flags.all_details(),
    };
    let announcements = flags.announcements();
    let maintenance = flags.maintenance();
    let kill = flags.kill_switch();
    if a.json {
        let out = json!({
            "configVersion": flags.config().map(|c| c.version.clone()),
            "flags": details,
            "announcements": announcements,
            "maintenance": maintenance,
            "killSwitch": kill,
            "fetchError": fetch_error,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(c) = flags.config() {
        println!("config version {}", c.version);
    }
    println!(
        "kill switch: {}{}",
        if kill.active { "ACTIVE" } else { "off" },
        kill.message.map(|m| format!(" ({m})")).unwrap_or_default()
    );
    println!(
        "maintenance: {}{}",
        if maintenance.active {
            if maintenance.allow_read_only {
                "ACTIVE (read-only allowed)"
            } else {
                "ACTIVE"
            }
        } else {
            "off"
        },
        maintenance
            .message
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    println!("flags:");
    for (k, d) in &details {
        println!(
            "  {k:<32} {:<5} {:<16}{}",
            d.value,
            d.reason.as_str(),
            d.variant
                .as_deref()
                .map(|v| format!(" variant={v}"))
                .unwrap_or_default()
        );
    }
    println!("announcements:");
    if announcements.is_empty() {
        println!("  (none)");
    }
    for an in &announcements {
        println!("  [{}] {} ({}): {}", an.kind, an.title, an.id, an.message);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--watch`: one line per revision received (and per STALE / ERROR), until Ctrl-C.
async fn watch(
    config: FlagsConfig,
    store: std::sync::Arc<railgun_core::store::Store>,
    as_json: bool,
) -> CliResult {
    use std::io::Write;
    let flags = std::sync::Arc::new(FeatureFlags::new(config, store)?);
    let mut events = flags.subscribe_events();
    let task = flags.spawn_refresh();
    loop {
        let e = tokio::select! {
            e = events.recv() => e,
            _ = tokio::signal::ctrl_c() => break,
        };
        let e = match e {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        };
        let kill = flags.kill_switch();
        let on = flags.get_all().values().filter(|v| **v).count();
        let line = if as_json {
            json!({
                "event": e.name(),
                "revision": e.revision(),
                "reason": e.reason(),
                "killSwitch": kill,
                "flagsOn": on,
            })
            .to_string()
        } else {
            let rev = e
                .revision()
                .map_or_else(|| "-".to_string(), |r| r.to_string());
            match e.reason() {
                Some(r) => format!("{} {r}", e.name()),
                None => format!(
                    "{} revision {rev} kill-switch {} flags-on {on}",
                    e.name(),
                    if kill.active { "ACTIVE" } else { "off" }
                ),
            }
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    task.abort();
    Ok(ExitCode::SUCCESS)
}
