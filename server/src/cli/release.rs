//! `railgun release sign`, `railgun release publish` (into a static tree, or to a server
//! with `--server`) and `railgun release export` (a verified copy of a tree for a CDN).

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use railgun_core::trust::{PrivateKey, PublicKey, TrustedKeys};
use railgun_core::update::{RolloutPolicy, RolloutStatus};
use railgun_core::Version;

use super::client_args::TrustArgs;
use super::CliResult;
use crate::release::delta;
use crate::release::export::{self, TreeKeys};
use crate::release::remote::{self, RemotePublish};
use crate::release::{self, ArtifactFile, ManifestSpec, PublishOptions};

/// `railgun release …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Hash the artifacts and write a signed release manifest.
    Sign(SignArgs),
    /// Publish a signed manifest and a new signed channel state into a static tree, or
    /// to a running server (--server) that signs the channel state and runs the rollout.
    Publish(PublishArgs),
    /// Verify every document of a tree and copy it atomically to a folder for a CDN.
    Export(ExportArgs),
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
    /// Make delta patches from an earlier version: the folder of its signed manifest (checked
    /// with --key) or of its artifacts named like app-0.1.0-linux-x64.tar.gz (repeatable).
    /// Patches are written beside the artifacts and listed in the signed manifest.
    #[arg(long = "delta-from", value_name = "DIR")]
    pub delta_from: Vec<PathBuf>,
}

/// Arguments of `railgun release publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Root of the static update tree.
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    pub root: Option<PathBuf>,
    /// Base URL of a railgun server to publish to (admin token from RAILGUN_ADMIN_TOKEN);
    /// the server checks the manifest, takes the missing artifacts and starts the rollout.
    #[arg(long)]
    pub server: Option<String>,
    /// Signed manifest to publish.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Folder of the artifacts (default: the manifest's folder).
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Release private key: the manifest must verify with it; it also signs the channel
    /// state unless --rollout-key is given.
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    pub key: Option<PathBuf>,
    /// Rollout private key that signs the channel state.
    #[arg(long, conflicts_with = "server")]
    pub rollout_key: Option<PathBuf>,
    /// Share of installs (0-100) that get the release [default: the first of its channel's
    /// stages: 100 on beta and canary, 10 on stable].
    #[arg(long)]
    pub percentage: Option<f64>,
    /// Static tree: rollout stages of a channel, CHANNEL=P1,P2,…,100 (repeatable), as
    /// `railgun serve --channel-stages` (with --server, the server's configuration applies).
    #[arg(
        long = "channel-stages",
        value_name = "CHANNEL=STAGES",
        conflicts_with = "server"
    )]
    pub channel_stages: Vec<crate::release::ChannelStagesArg>,
    /// With --server: version served to installs outside the rollout and when halted.
    #[arg(long, requires = "server")]
    pub fallback_version: Option<String>,
    /// active, halted or complete.
    #[arg(long, default_value = "active", conflicts_with = "server")]
    pub status: RolloutStatus,
    /// Signed manifest of the fallback release.
    #[arg(long, conflicts_with = "server")]
    pub fallback: Option<PathBuf>,
    /// Installed version allowed to move down (repeatable).
    #[arg(long = "rollback-from", conflicts_with = "server")]
    pub rollback_from: Vec<Version>,
    /// Validity of the channel state (e.g. 12h, 7d).
    #[arg(long, default_value = "7d", conflicts_with = "server")]
    pub expires: String,
}

/// Arguments of `railgun release export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Root of the update tree to export.
    #[arg(
        long,
        required_unless_present = "object_store",
        conflicts_with = "object_store"
    )]
    pub root: Option<PathBuf>,
    /// Or the object store holding the tree (what `railgun serve --object-store` names:
    /// `file:///path`, `s3://bucket/prefix` with the AWS environment, `gs://`, `az://`).
    #[arg(long, value_name = "URL")]
    pub object_store: Option<String>,
    /// Destination folder (replaced atomically; must be new, empty or a previous export).
    #[arg(long)]
    pub out: PathBuf,
    /// Trusted keys and threshold.
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// Runs `railgun release …`.
pub fn run(cmd: Command) -> CliResult {
    match cmd {
        Command::Sign(a) => sign(a),
        Command::Publish(a) if a.server.is_some() => super::block_on(publish_server(a)),
        Command::Publish(a) => publish(a),
        Command::Export(a) => export_tree(a),
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
    let mut manifest = release::build_manifest(&ManifestSpec {
        app: a.app,
        version: a.version,
        channel: a.channel,
        notes,
        artifacts: artifacts.clone(),
        base_url: a.base_url,
        rollout,
        released_at: Utc::now(),
        sigstore_bundles: a.sigstore_bundles.clone(),
    })?;
    if !a.delta_from.is_empty() {
        let publics = keys.iter().map(|k| k.public_key().clone()).collect();
        let trusted = TrustedKeys::new(publics, 1)?;
        let bases = a
            .delta_from
            .iter()
            .map(|dir| delta::load_base(dir, &manifest.app, &trusted))
            .collect::<Result<Vec<_>, _>>()?;
        let (made, skipped) = delta::add_patches(&mut manifest, &artifacts, &bases)?;
        for m in &made {
            println!(
                "patch from {} for {}/{}/{}: {} bytes ({:.1} % of the {}-byte artifact, made in {:.1} s) -> {}",
                m.patch.from,
                m.patch.platform,
                m.patch.arch,
                m.patch.format,
                m.patch.size,
                m.patch.size as f64 * 100.0 / m.full_size as f64,
                m.full_size,
                m.elapsed.as_secs_f64(),
                m.path.display()
            );
        }
        for s in &skipped {
            println!("no patch from {} for {}: {}", s.from, s.artifact, s.reason);
        }
    }
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
    let (Some(root), Some(key)) = (a.root, a.key) else {
        return Err("--root and --key are needed to publish into a static tree".into());
    };
    let release_key = PrivateKey::from_file(&key)?;
    let rollout_key = match &a.rollout_key {
        Some(p) => PrivateKey::from_file(p)?,
        None => PrivateKey::from_file(&key)?,
    };
    let release_keys = TrustedKeys::single(PublicKey::clone(release_key.public_key()));
    let published = release::publish(&PublishOptions {
        root,
        manifest: a.manifest,
        artifacts_dir: a.artifacts,
        release_keys,
        rollout_key: &rollout_key,
        percentage: a.percentage,
        stages: crate::release::ChannelStages::with(a.channel_stages),
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
    if let Some(next) = published.stages.iter().find(|p| **p > s.rollout.percentage) {
        println!(
            "{} rolls out in stages {}: a static tree has no rollout engine, so publish again \
             with --percentage {next} to widen it (or publish with --server)",
            s.channel,
            published
                .stages
                .iter()
                .map(|p| format!("{p} %"))
                .collect::<Vec<_>>()
                .join(" → ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn publish_server(a: PublishArgs) -> CliResult {
    let server = a.server.unwrap_or_default();
    let token = std::env::var("RAILGUN_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or("set RAILGUN_ADMIN_TOKEN to the server's admin token to publish with --server")?;
    if let Some(p) = a.percentage {
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("--percentage {p}: use 0-100").into());
        }
    }
    let artifacts_dir = a
        .artifacts
        .clone()
        .unwrap_or_else(|| remote::default_artifacts_dir(&a.manifest));
    let done = remote::publish_remote(&RemotePublish {
        server,
        token,
        manifest: a.manifest,
        artifacts_dir,
        percentage: a.percentage,
        fallback_version: a.fallback_version,
    })
    .await?;
    for f in &done.uploaded {
        println!("uploaded {f}");
    }
    let r = &done.rollout;
    let pct = r
        .get("rolloutPercentage")
        .and_then(serde_json::Value::as_f64)
        .map(|p| format!("{p} %"))
        .unwrap_or_else(|| "?".into());
    let status = r
        .get("status")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("?");
    println!(
        "published {}/{} {} to the server: rollout {status} at {pct} ({} artifact(s) uploaded)",
        done.app,
        done.channel,
        done.version,
        done.uploaded.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn export_tree(a: ExportArgs) -> CliResult {
    let release = a.trust.release_keys()?;
    let rollout = a.trust.rollout_keys()?.unwrap_or_else(|| release.clone());
    let keys = TreeKeys { release, rollout };
    let done = match (&a.root, &a.object_store) {
        (Some(root), _) => export::export(root, &a.out, &keys, Utc::now())?,
        (None, Some(url)) => {
            let d = crate::export::dest::open(url)?;
            let out = a.out.clone();
            let mut done = None;
            super::block_on(async {
                done = Some(export::export_objects(d.store, &d.id, &out, &keys, Utc::now()).await?);
                Ok(ExitCode::SUCCESS)
            })?;
            done.ok_or("export did not run")?
        }
        (None, None) => return Err("--root or --object-store is needed".into()),
    };
    for skipped in &done.tree.skipped {
        println!(
            "not exported (no signed document names it): {}",
            skipped.display()
        );
    }
    println!(
        "exported {} channel state(s), {} release(s), {} file(s), {} bytes -> {}",
        done.tree.channels.len(),
        done.tree.releases.len(),
        done.tree.files.len(),
        done.bytes,
        done.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
