//! The flags the client commands share, defined once and flattened into each command
//! (`#[command(flatten)]`), so that `--help` shows each flag once and the commands cannot
//! drift apart: which server, app and channel ([`ClientArgs`]), which keys to trust and how
//! many of them must sign ([`TrustArgs`]), and what the update client asks for
//! ([`UpdateClientArgs`]).
//!
//! Owns reading those flags into the core's types: trusted keys from files or inline text,
//! the client store, an [`UpdateConfig`]. It refuses a threshold the keys cannot meet (0, or
//! more than the distinct keys given) before any request is made. The state folder is not
//! here on purpose: it means something different to each command (in memory by default for
//! `check`, a temporary folder for `update`, required for `track`).

use std::path::PathBuf;
use std::sync::Arc;

use railgun_core::store::Store;
use railgun_core::trust::{PublicKey, TrustedKeys};
use railgun_core::update::{Arch, Platform, UpdateConfig};
use railgun_core::Version;

/// The error of reading the flags (the commands' own error type).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which server, app and channel a client command talks about, and how it prints.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Base URL of the railgun server (the update tree; analytics for `track`).
    #[arg(long)]
    pub url: String,
    /// App name (also the analytics sampling seed).
    #[arg(long)]
    pub app: String,
    /// Channel.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The keys trusted to sign releases and channel states.
#[derive(Debug, Clone, clap::Args)]
pub struct TrustArgs {
    /// Release public key(s) that sign manifests (file or inline, any accepted form;
    /// repeatable).
    #[arg(long = "public-key", required = true)]
    pub public_keys: Vec<String>,
    /// Rollout public key(s) that sign channel states (default: the release keys).
    #[arg(long = "rollout-public-key")]
    pub rollout_public_keys: Vec<String>,
    /// How many distinct release keys must sign a manifest.
    #[arg(long, default_value_t = 1)]
    pub threshold: usize,
}

impl TrustArgs {
    /// The release keys with `--threshold`.
    pub fn release_keys(&self) -> Result<TrustedKeys, BoxError> {
        trusted_keys(&self.public_keys, self.threshold)
    }

    /// The rollout keys (any one of them signs a channel state), or `None` when none were
    /// given and the release keys sign channel states too.
    pub fn rollout_keys(&self) -> Result<Option<TrustedKeys>, BoxError> {
        if self.rollout_public_keys.is_empty() {
            return Ok(None);
        }
        trusted_keys(&self.rollout_public_keys, 1).map(Some)
    }
}

/// What `check` and `update` share: the client, its trust, and the target it asks for.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateClientArgs {
    /// Server, app, channel, output.
    #[command(flatten)]
    pub common: ClientArgs,
    /// Trusted keys and threshold.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Platform (default: this one).
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Arch (default: this one).
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Install id used for bucketing (default: derived from the machine id).
    #[arg(long)]
    pub install_id: Option<String>,
}

impl UpdateClientArgs {
    /// The update client's configuration for an install running `current`.
    pub fn update_config(&self, current: Version) -> Result<UpdateConfig, BoxError> {
        let c = &self.common;
        let mut config = UpdateConfig::new(
            c.url.clone(),
            c.app.clone(),
            c.channel.clone(),
            current,
            self.trust.release_keys()?,
        );
        config.rollout_keys = self.trust.rollout_keys()?;
        if let Some(p) = self.platform {
            config.platform = p;
        }
        if let Some(a) = self.arch {
            config.arch = a;
        }
        config.install_id = self.install_id.clone();
        Ok(config)
    }
}

/// Reads a key given inline or as a file path.
pub fn read_public_key(s: &str) -> Result<PublicKey, BoxError> {
    let path = std::path::Path::new(s);
    if !s.starts_with("-----") && s.len() < 4096 && path.is_file() {
        Ok(PublicKey::from_file(path)?)
    } else {
        Ok(PublicKey::parse(s)?)
    }
}

/// Reads a set of trusted keys, `threshold` of which must sign.
pub fn trusted_keys(keys: &[String], threshold: usize) -> Result<TrustedKeys, BoxError> {
    let keys = keys
        .iter()
        .map(|k| read_public_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TrustedKeys::new(keys, threshold)?)
}

/// Opens the client store in `dir` (or in memory without one).
pub fn open_store(dir: Option<&PathBuf>) -> Result<Arc<Store>, BoxError> {
    Ok(Arc::new(match dir {
        Some(d) => Store::open(d.join("railgun.db"))?,
        None => Store::open_in_memory()?,
    }))
}
