//! `railgun update` and `railgun rollback`: the client's whole update path from the command
//! line (check → download → verify → apply), and switching back to the previous version.
//!
//! On any failure `update` exits 1 with one line and leaves the install root as it was:
//! downloads go to the state folder's staging area, extraction into a temporary folder
//! inside `versions/`, and `current` only moves after everything succeeded.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use railgun_core::update::{InstallMode, InstallRoot, Updater, UpdaterConfig, UpdaterEvent};
use railgun_core::Version;
use serde_json::json;

use super::check::{open_store, trusted_keys};
use super::CliResult;

/// Arguments of `railgun update`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the update tree.
    #[arg(long)]
    pub url: String,
    /// App name.
    #[arg(long)]
    pub app: String,
    /// Channel.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Release public key(s) (file or inline; repeatable).
    #[arg(long = "public-key", required = true)]
    pub public_keys: Vec<String>,
    /// Where versions are installed (`versions/`, `current`).
    #[arg(long)]
    pub install_root: PathBuf,
    /// The installed version (default: the one `current` points to, else 0.0.0).
    #[arg(long)]
    pub current_version: Option<Version>,
    /// Folder of the client state and the download staging area (default: a folder in the
    /// system's temporary directory).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Install id used for bucketing (default: derived from the machine id).
    #[arg(long)]
    pub install_id: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `railgun rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The install root.
    #[arg(long)]
    pub install_root: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `railgun update`.
pub async fn run(a: Args) -> CliResult {
    let root = InstallRoot::new(&a.install_root);
    let current = a
        .current_version
        .clone()
        .or_else(|| root.current_version())
        .unwrap_or_else(|| Version::new(0, 0, 0));
    let keys = trusted_keys(&a.public_keys, 1)?;
    let state_dir = a
        .state
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("railgun-update-{}", a.app)));
    std::fs::create_dir_all(&state_dir)?;
    let mut update = railgun_core::update::UpdateConfig::new(
        a.url.clone(),
        a.app.clone(),
        a.channel.clone(),
        current.clone(),
        keys,
    );
    update.install_id = a.install_id.clone();
    let config = UpdaterConfig::new(update, &state_dir, &a.install_root);
    let store = open_store(Some(&state_dir))?;
    let updater = Updater::new(config, store)?;

    let Some(available) = updater.check_for_updates().await? else {
        if a.json {
            println!(
                "{}",
                json!({"updated": false, "version": current.to_string()})
            );
        } else {
            println!("up to date ({current})");
        }
        return Ok(ExitCode::SUCCESS);
    };

    let show_bar = !a.json && std::io::stderr().is_terminal();
    let bar = show_bar.then(|| {
        let b = indicatif::ProgressBar::new(available.artifact.size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_message(format!("downloading {}", available.version));
        b
    });
    let mut events = updater.subscribe();
    let bar_task = bar.clone().map(|b| {
        tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                if let UpdaterEvent::DownloadProgress(p) = e {
                    b.set_position(p.transferred);
                }
            }
        })
    });
    let downloaded = updater.download_update().await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(t) = bar_task {
        t.abort();
    }
    let downloaded = downloaded?;
    let installed = updater
        .install_update(InstallMode::Now)
        .await?
        .ok_or("install was deferred")?;
    if a.json {
        println!(
            "{}",
            json!({
                "updated": true,
                "from": current.to_string(),
                "version": installed.version.to_string(),
                "path": installed.path,
                "sha256": hex::encode(downloaded.sha256),
                "size": downloaded.size,
                "previous": installed.previous.map(|v| v.to_string()),
            })
        );
    } else {
        println!(
            "updated {current} -> {} ({} bytes, sha256 {}) in {}",
            installed.version,
            downloaded.size,
            hex::encode(downloaded.sha256),
            installed.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `railgun rollback`.
pub fn run_rollback(a: RollbackArgs) -> CliResult {
    let root = InstallRoot::new(&a.install_root);
    let (from, to) = root.rollback()?;
    let from = from.map(|v| v.to_string());
    if a.json {
        println!("{}", json!({"from": from, "to": to.to_string()}));
    } else {
        println!(
            "rolled back {} -> {to}",
            from.as_deref().unwrap_or("(none)")
        );
    }
    Ok(ExitCode::SUCCESS)
}
