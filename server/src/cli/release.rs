//! `railgun release sign` and `railgun release publish`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use railgun_core::trust::{PrivateKey, PublicKey, TrustedKeys};
use railgun_core::update::channel::RolloutStatus;
use railgun_core::update::manifest::RolloutPolicy;
use railgun_core::Version;

use super::CliResult;
use crate::release::{self, ArtifactFile, ManifestSpec, PublishOptions};

/// `railgun release …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Hash the artifacts and write a signed release manifest.
    Sign(SignArgs),
    /// Publish a signed manifest and a new signed channel state into a static tree.
    Publish(PublishArgs),
}

/// Arguments of `railgun release sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Release private key (PKCS#8 PEM); repeat for k-of-n signing.
    #[arg(long = "key", required = true)]
    pub keys: Vec<PathBuf>,
    /// App name.
    #[arg(long)]
    pub app: String,
    /// Version (semver).
    #[arg(long)]
    pub version: Version,
    /// Channel.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Folder of artifacts named like app-1.2.3-linux-x64.tar.gz.
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// An artifact given explicitly: PATH:PLATFORM:ARCH:FORMAT (repeatable).
    #[arg(long = "artifact")]
    pub artifact: Vec<ArtifactFile>,
    /// URL prefix of the artifacts (default: relative to the manifest).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Release notes (Markdown) file.
    #[arg(long)]
    pub notes: Option<PathBuf>,
    /// Rollout stage hours.
    #[arg(long)]
    pub stage_hours: Option<f64>,
    /// Installs needed before the rollout engine decides.
    #[arg(long)]
    pub min_installs: Option<u64>,
    /// Where to write the signed manifest.
    #[arg(long)]
    pub out: PathBuf,
    /// Folder of Sigstore bundles named `<artifact file name>.sigstore.json` (as written by
    /// `cosign sign-blob --bundle`); each one found is referenced by its artifact.
    #[arg(long)]
    pub sigstore_bundles: Option<PathBuf>,
}

/// Arguments of `railgun release publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Root of the static update tree.
    #[arg(long)]
    pub root: PathBuf,
    /// Signed manifest to publish.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Folder of the artifacts (default: the manifest's folder).
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Release private key: the manifest must verify with it; it also signs the channel
    /// state unless --rollout-key is given.
    #[arg(long)]
    pub key: PathBuf,
    /// Rollout private key that signs the channel state.
    #[arg(long)]
    pub rollout_key: Option<PathBuf>,
    /// Share of installs (0-100) that get the release.
    #[arg(long, default_value_t = 100.0)]
    pub percentage: f64,
    /// active, halted or complete.
    #[arg(long, default_value = "active")]
    pub status: RolloutStatus,
    /// Signed manifest of the fallback release.
    #[arg(long)]
    pub fallback: Option<PathBuf>,
    /// Installed version allowed to move down (repeatable).
    #[arg(long = "rollback-from")]
    pub rollback_from: Vec<Version>,
    /// Validity of the channel state (e.g. 12h, 7d).
    #[arg(long, default_value = "7d")]
    pub expires: String,
}

/// Runs `railgun release …`.
pub fn run(cmd: Command) -> CliResult {
    match cmd {
        Command::Sign(a) => sign(a),
        Command::Publish(a) => publish(a),
    }
}

fn sign(a: SignArgs) -> CliResult {
    let keys = a
        .keys
        .iter()
        .map(PrivateKey::from_file)
        .collect::<Result<Vec<_>, _>>()?;
    let mut artifacts = a.artifact.clone();
    if let Some(dir) = &a.artifacts {
        artifacts.extend(release::scan_artifacts(dir)?);
    }
    let notes = match &a.notes {
        Some(p) => std::fs::read_to_string(p)?,
        None => String::new(),
    };
    let rollout = (a.stage_hours.is_some() || a.min_installs.is_some()).then(|| {
        let mut p = RolloutPolicy::default();
        if let Some(h) = a.stage_hours {
            p.stage_hours = h;
        }
        if let Some(n) = a.min_installs {
            p.min_installs = n;
        }
        p
    });
    let manifest = release::build_manifest(&ManifestSpec {
        app: a.app,
        version: a.version,
        channel: a.channel,
        notes,
        artifacts,
        base_url: a.base_url,
        rollout,
        released_at: Utc::now(),
        sigstore_bundles: a.sigstore_bundles.clone(),
    })?;
    let key_refs: Vec<&PrivateKey> = keys.iter().collect();
    let env = release::sign_manifest(&manifest, &key_refs)?;
    release::write_atomic(&a.out, &env.to_json_bytes())?;
    println!(
        "signed {} {} ({}) with {} artifact(s) -> {}",
        manifest.app,
        manifest.version,
        manifest.channel,
        manifest.artifacts.len(),
        a.out.display()
    );
    if a.sigstore_bundles.is_some() {
        let with: Vec<&str> = manifest
            .artifacts
            .iter()
            .filter_map(|x| x.sigstore_bundle.as_deref())
            .collect();
        println!(
            "referenced {} sigstore bundle(s): {}",
            with.len(),
            with.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn publish(a: PublishArgs) -> CliResult {
    let release_key = PrivateKey::from_file(&a.key)?;
    let rollout_key = match &a.rollout_key {
        Some(p) => PrivateKey::from_file(p)?,
        None => PrivateKey::from_file(&a.key)?,
    };
    let release_keys = TrustedKeys::single(PublicKey::clone(release_key.public_key()));
    let published = release::publish(&PublishOptions {
        root: a.root,
        manifest: a.manifest,
        artifacts_dir: a.artifacts,
        release_keys,
        rollout_key: &rollout_key,
        percentage: a.percentage,
        status: a.status,
        fallback: a.fallback,
        rollback_from: a.rollback_from,
        expires: release::parse_duration(&a.expires)?,
        now: Utc::now(),
    })?;
    let s = &published.state;
    println!(
        "published {}/{} {} at {} % ({}) sequence {}, expires {} -> {}",
        s.app,
        s.channel,
        s.release.version,
        s.rollout.percentage,
        s.rollout.status.as_str(),
        s.sequence,
        s.expires_at.to_rfc3339(),
        published.channel_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
