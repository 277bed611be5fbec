//! `railgun update` and `railgun rollback`: the client's whole update path from the command
//! line (check → download → verify → apply), and switching back to the previous version.
//!
//! On any failure `update` exits 1 with one line and leaves the install root as it was:
//! downloads go to the state folder's staging area, extraction into a temporary folder
//! inside `versions/`, and `current` only moves after everything succeeded.
//!
//! When the release lists a delta patch from the installed version and the state folder
//! keeps that version's artifact (any earlier `railgun update` with the same `--state`
//! kept it), the patch is downloaded instead of the artifact. A patch not used is said on
//! stderr (and as `deltaFallback` in `--json`) with its stable reason code; `--json` always
//! carries `delta`, `downloadedBytes` and `fullBytes`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use railgun_core::trust::sigstore::{
    IdentityMatcher, IdentityPolicy, SigstoreMode, SigstorePolicy, SigstoreVerifier,
};
use railgun_core::update::{
    DeltaConfig, InstallMode, InstallRoot, Updater, UpdaterConfig, UpdaterEvent,
};
use railgun_core::Version;
use serde_json::json;

use super::client_args::{open_store, UpdateClientArgs};
use super::CliResult;

/// Arguments of `railgun update`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Server, app, channel, keys, target.
    #[command(flatten)]
    pub client: UpdateClientArgs,
    /// Sigstore bundle policy of the artifacts.
    #[command(flatten)]
    pub sigstore: SigstoreArgs,
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
    /// Never use delta patches: always download the full artifact.
    #[arg(long)]
    pub no_delta: bool,
    /// Largest delta patch used, as a share of the full artifact (0 < share <= 1).
    #[arg(long, default_value_t = railgun_core::update::delta::DEFAULT_MAX_PATCH_SHARE, value_parser = parse_share)]
    pub delta_max_share: f64,
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("{s:?} is not a share within (0, 1]")),
    }
}

/// The Sigstore policy of `railgun update`: when to check artifact bundles, and whose.
#[derive(Debug, clap::Args)]
pub struct SigstoreArgs {
    /// `off`, `if-present` (check bundles the manifest names) or `required`.
    #[arg(long = "sigstore", default_value = "off")]
    pub mode: SigstoreMode,
    /// Exact certificate identity of the release workflow.
    #[arg(long = "sigstore-identity")]
    pub identity: Option<String>,
    /// Regular expression for the whole certificate identity.
    #[arg(long = "sigstore-identity-regexp", conflicts_with = "identity")]
    pub identity_regexp: Option<String>,
    /// Exact OIDC issuer.
    #[arg(
        long = "sigstore-issuer",
        default_value = "https://token.actions.githubusercontent.com"
    )]
    pub issuer: String,
    /// A trusted_root.json instead of the embedded public-good one.
    #[arg(long = "sigstore-trusted-root")]
    pub trusted_root: Option<PathBuf>,
}

impl SigstoreArgs {
    /// The policy, or `None` when the mode is `off`.
    pub fn policy(
        &self,
    ) -> Result<Option<SigstorePolicy>, Box<dyn std::error::Error + Send + Sync>> {
        if self.mode == SigstoreMode::Off {
            return Ok(None);
        }
        let identity = match (&self.identity, &self.identity_regexp) {
            (Some(id), _) => IdentityMatcher::Exact(id.clone()),
            (None, Some(re)) => IdentityMatcher::regex(re)?,
            (None, None) => {
                return Err(format!(
                    "--sigstore {} needs --sigstore-identity or --sigstore-identity-regexp",
                    self.mode
                )
                .into())
            }
        };
        let policy = IdentityPolicy {
            identity,
            issuer: self.issuer.clone(),
        };
        let verifier = match &self.trusted_root {
            Some(path) => SigstoreVerifier::with_trusted_root_json(&std::fs::read(path)?, policy)?,
            None => SigstoreVerifier::public_good(policy)?,
        };
        Ok(Some(SigstorePolicy {
            mode: self.mode,
            verifier: Some(Arc::new(verifier)),
        }))
    }
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
    let update = a.client.update_config(current.clone())?;
    let json = a.client.common.json;
    let state_dir = a.state.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("railgun-update-{}", a.client.common.app))
    });
    std::fs::create_dir_all(&state_dir)?;
    let sigstore = a.sigstore.policy()?;
    let mut config = UpdaterConfig::new(update, &state_dir, &a.install_root);
    config.delta = DeltaConfig {
        enabled: !a.no_delta,
        max_patch_share: a.delta_max_share,
    };
    let store = open_store(Some(&state_dir))?;
    let updater = Updater::new(config, store)?;
    if let Some(policy) = sigstore {
        updater.set_verifier(Some(Arc::new(policy)));
    }

    let Some(available) = updater.check_for_updates().await? else {
        if json {
            println!(
                "{}",
                json!({"updated": false, "version": current.to_string()})
            );
        } else {
            println!("up to date ({current})");
        }
        return Ok(ExitCode::SUCCESS);
    };

    let show_bar = !json && std::io::stderr().is_terminal();
    let bar_handle = show_bar.then(|| {
        let b = indicatif::ProgressBar::new(available.artifact.size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_message(format!("downloading {}", available.version));
        b
    });
    let bar = bar_handle.clone();
    let mut events = updater.subscribe();
    let version = available.version.clone();
    let watcher = tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            if let (UpdaterEvent::DownloadProgress(p), Some(b)) = (e, &bar) {
                if p.delta {
                    b.set_message(format!("downloading a patch to {version}"));
                }
                b.set_length(p.file.total);
                b.set_position(p.file.transferred);
            }
        }
    });
    let downloaded = updater.download_update().await;
    if let Some(b) = &bar_handle {
        b.finish_and_clear();
    }
    watcher.abort();
    let downloaded = downloaded?;
    if let (Some(f), false) = (&downloaded.fallback, json) {
        eprintln!(
            "delta patch from {} not used ({}): {}; downloaded the full artifact",
            f.from, f.reason, f.message
        );
    }
    let installed = updater
        .install_update(InstallMode::Now)
        .await?
        .ok_or("install was deferred")?;
    let saved = downloaded
        .full_bytes
        .saturating_sub(downloaded.downloaded_bytes);
    if json {
        println!(
            "{}",
            json!({
                "updated": true,
                "from": current.to_string(),
                "version": installed.version.to_string(),
                "path": installed.path,
                "sha256": hex::encode(downloaded.file.sha256),
                "size": downloaded.file.size,
                "previous": installed.previous.map(|v| v.to_string()),
                "delta": downloaded.delta,
                "downloadedBytes": downloaded.downloaded_bytes,
                "fullBytes": downloaded.full_bytes,
                "deltaFallback": downloaded.fallback,
            })
        );
    } else if downloaded.delta {
        println!(
            "updated {current} -> {} by a delta patch ({} of {} bytes downloaded, {saved} saved) in {}",
            installed.version,
            downloaded.downloaded_bytes,
            downloaded.full_bytes,
            installed.path.display()
        );
    } else {
        println!(
            "updated {current} -> {} ({} bytes, sha256 {}) in {}",
            installed.version,
            downloaded.file.size,
            hex::encode(downloaded.file.sha256),
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
