//! `railgun check`: runs the client's update check and prints the decision.

use std::path::PathBuf;
use std::process::ExitCode;

use railgun_core::update::{UpdateClient, UpdateDecision};
use railgun_core::Version;
use serde_json::json;

use super::client_args::{open_store, UpdateClientArgs};
use super::CliResult;

/// Arguments of `railgun check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Server, app, channel, keys, target.
    #[command(flatten)]
    pub client: UpdateClientArgs,
    /// The installed version.
    #[arg(long)]
    pub current_version: Version,
    /// Folder of the client state (highest sequence seen, …; in memory without it).
    #[arg(long)]
    pub state: Option<PathBuf>,
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
    let config = a.client.update_config(a.current_version)?;
    let store = open_store(a.state.as_ref())?;
    let client = UpdateClient::new(config, store)?;
    let decision = client.check().await?;
    if a.client.common.json {
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
