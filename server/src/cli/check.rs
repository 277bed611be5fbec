//! `railgun check`: runs the client's update check and prints the decision.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use railgun_core::store::Store;
use railgun_core::trust::{PublicKey, TrustedKeys};
use railgun_core::update::{Arch, Platform, UpdateClient, UpdateConfig, UpdateDecision};
use railgun_core::Version;
use serde_json::json;

use super::CliResult;

/// Arguments of `railgun check`.
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
    /// Release public key(s) (file or inline, any accepted form; repeatable).
    #[arg(long = "public-key", required = true)]
    pub public_keys: Vec<String>,
    /// Rollout public key(s) that sign channel states (default: the release keys).
    #[arg(long = "rollout-public-key")]
    pub rollout_public_keys: Vec<String>,
    /// How many distinct release keys must sign.
    #[arg(long, default_value_t = 1)]
    pub threshold: usize,
    /// The installed version.
    #[arg(long)]
    pub current_version: Version,
    /// Platform (default: this one).
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Arch (default: this one).
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Install id used for bucketing (default: derived from the machine id).
    #[arg(long)]
    pub install_id: Option<String>,
    /// Folder of the client state (highest sequence seen, …).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Reads a key given inline or as a file path.
pub fn read_public_key(s: &str) -> Result<PublicKey, Box<dyn std::error::Error + Send + Sync>> {
    let path = std::path::Path::new(s);
    if !s.starts_with("-----") && s.len() < 4096 && path.is_file() {
        Ok(PublicKey::from_file(path)?)
    } else {
        Ok(PublicKey::parse(s)?)
    }
}

/// Reads a set of trusted keys.
pub fn trusted_keys(
    keys: &[String],
    threshold: usize,
) -> Result<TrustedKeys, Box<dyn std::error::Error + Send + Sync>> {
    let keys = keys
        .iter()
        .map(|k| read_public_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TrustedKeys::new(keys, threshold)?)
}

/// Opens the client store in `dir` (or in memory without one).
pub fn open_store(
    dir: Option<&PathBuf>,
) -> Result<Arc<Store>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(Arc::new(match dir {
        Some(d) => Store::open(d.join("railgun.db"))?,
        None => Store::open_in_memory()?,
    }))
}

/// The JSON printed by `--json`.
pub fn decision_json(d: &UpdateDecision) -> serde_json::Value {
    match &d.update {
        Some(u) => json!({
            "update": true,
            "version": u.version.to_string(),
            "kind": u.kind,
            "reason": d.reason,
            "bucket": d.bucket,
            "sequence": d.state.sequence,
            "artifact": {
                "platform": u.artifact.platform,
                "arch": u.artifact.arch,
                "format": u.artifact.format,
                "url": u.artifact_url.as_str(),
                "size": u.artifact.size,
                "sha256": u.artifact.sha256,
                "sigstoreBundle": u.sigstore_bundle_url.as_ref().map(|b| b.as_str()),
            },
        }),
        None => json!({
            "update": false,
            "version": null,
            "reason": d.reason,
            "bucket": d.bucket,
            "sequence": d.state.sequence,
            "channelVersion": d.state.release.version.to_string(),
            "rollout": d.state.rollout,
        }),
    }
}

/// Runs the command.
pub async fn run(a: Args) -> CliResult {
    let release_keys = trusted_keys(&a.public_keys, a.threshold)?;
    let mut config = UpdateConfig::new(a.url, a.app, a.channel, a.current_version, release_keys);
    if !a.rollout_public_keys.is_empty() {
        config.rollout_keys = Some(trusted_keys(&a.rollout_public_keys, 1)?);
    }
    if let Some(p) = a.platform {
        config.platform = p;
    }
    if let Some(ar) = a.arch {
        config.arch = ar;
    }
    config.install_id = a.install_id;
    let store = open_store(a.state.as_ref())?;
    let client = UpdateClient::new(config, store)?;
    let decision = client.check().await?;
    if a.json {
        println!("{}", decision_json(&decision));
    } else {
        match &decision.update {
            Some(u) => println!(
                "update available: {} ({}) -> {} [{} bytes, sha256 {}]",
                u.version,
                decision.reason.as_str(),
                u.artifact_url,
                u.artifact.size,
                u.artifact.sha256
            ),
            None => println!(
                "no update ({}); channel offers {} at {} % ({})",
                decision.reason.as_str(),
                decision.state.release.version,
                decision.state.rollout.percentage,
                decision.state.rollout.status.as_str()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
