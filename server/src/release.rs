//! The publisher's side of updates: building and signing release manifests from a folder
//! of artifacts, and publishing them with a signed channel state into a static tree
//!
//! ```text
//! ROOT/<app>/<channel>/channel.json              channel state (rollout key)
//! ROOT/<app>/releases/<version>/manifest.json    release manifest (release key)
//! ROOT/<app>/releases/<version>/<artifacts>      the files, beside their manifest
//! ```
//!
//! that `railgun serve` (or any CDN) serves as is. It refuses to publish an artifact whose
//! bytes do not match the signed manifest, and never lowers a channel's `sequence`.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use railgun_core::error::{IoContext, PathIoError};
use railgun_core::trust::{
    DsseError, Envelope, PrivateKey, SignedDocument, TrustedKeys, PAYLOAD_CHANNEL, PAYLOAD_RELEASE,
};
use railgun_core::update::{
    check_url, Arch, Artifact, ChannelState, DocumentError, Format, Platform, ReleaseManifest,
    ReleasePointer, RolloutPolicy, RolloutState, RolloutStatus, SCHEMA_VERSION,
};
use railgun_core::Version;
use sha2::{Digest, Sha256};

pub mod delta;
pub mod export;
pub mod remote;
pub mod stages;

pub use stages::{ChannelStages, ChannelStagesArg};

/// Errors of signing and publishing.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file name that says nothing of its platform/arch/format.
    #[error("cannot tell platform/arch/format of {0:?}: name it like app-1.2.3-linux-x64.tar.gz or pass --artifact PATH:PLATFORM:ARCH:FORMAT")]
    UnknownArtifact(String),
    /// A bad `--artifact` specification.
    #[error("bad --artifact {0:?}: expected PATH:PLATFORM:ARCH:FORMAT")]
    BadArtifactSpec(String),
    /// No artifacts found.
    #[error("no artifacts to sign")]
    NoArtifacts,
    /// The manifest does not validate.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// Signing or verification failed.
    #[error(transparent)]
    Signature(#[from] DsseError),
    /// A key could not be used.
    #[error(transparent)]
    Key(#[from] railgun_core::trust::KeyError),
    /// An artifact's bytes differ from the signed manifest.
    #[error("artifact {path} does not match the signed manifest: expected {expected_size} bytes sha256 {expected_sha256}, found {actual_size} bytes sha256 {actual_sha256}")]
    ArtifactMismatch {
        /// The file.
        path: String,
        /// Size in the manifest.
        expected_size: u64,
        /// Digest in the manifest.
        expected_sha256: String,
        /// Size on disk.
        actual_size: u64,
        /// Digest on disk.
        actual_sha256: String,
    },
    /// The tree's channel state cannot be read with the publishing key.
    #[error("existing {path} is not a channel state signed by the rollout key ({reason}); refusing to overwrite it")]
    ForeignChannelState {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A bad duration string.
    #[error("bad duration {0:?}: use e.g. 30m, 12h, 7d")]
    BadDuration(String),
    /// Inconsistent options.
    #[error("{0}")]
    Invalid(String),
}

impl From<PathIoError> for ReleaseError {
    fn from(e: PathIoError) -> Self {
        ReleaseError::Io {
            path: e.path.display().to_string(),
            source: e.source,
        }
    }
}

/// Size and lowercase hex SHA-256 of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(u64, String), ReleaseError> {
    let mut f = fs::File::open(path).at(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}

/// Platform, arch and format from a file name such as `app-0.2.0-linux-x64.tar.gz`.
pub fn classify_file_name(name: &str) -> Option<(Platform, Arch, Format)> {
    let lower = name.to_ascii_lowercase();
    let (stem, format) = [
        (".tar.gz", Format::TarGz),
        (".tgz", Format::TarGz),
        (".appimage", Format::AppImage),
        (".zip", Format::Zip),
        (".dmg", Format::Dmg),
        (".exe", Format::Nsis),
        (".deb", Format::Deb),
        (".rpm", Format::Rpm),
    ]
    .into_iter()
    .find_map(|(ext, f)| {
        lower
            .strip_suffix(ext)
            .map(|s| (s.replace("x86_64", "x64"), f))
    })?;
    let mut parts = stem.rsplit(['-', '_']);
    let arch = match parts.next()? {
        "x64" | "x86_64" | "amd64" => Arch::X64,
        "arm64" | "aarch64" => Arch::Arm64,
        "ia32" | "x86" | "i386" | "i686" => Arch::Ia32,
        _ => return None,
    };
    let platform = match parts.next()? {
        "linux" => Platform::Linux,
        "darwin" | "mac" | "macos" | "osx" => Platform::Darwin,
        "win32" | "win" | "windows" => Platform::Win32,
        _ => return None,
    };
    Some((platform, arch, format))
}

/// One file to put in a manifest.
#[derive(Debug, Clone)]
pub struct ArtifactFile {
    /// The file.
    pub path: PathBuf,
    /// Its platform.
    pub platform: Platform,
    /// Its arch.
    pub arch: Arch,
    /// Its format.
    pub format: Format,
}

impl std::str::FromStr for ArtifactFile {
    type Err = ReleaseError;
    /// `PATH:PLATFORM:ARCH:FORMAT`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ReleaseError::BadArtifactSpec(s.to_string());
        let mut it = s.rsplitn(4, ':');
        let format = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let arch = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let platform = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let path = PathBuf::from(it.next().ok_or_else(bad)?);
        Ok(Self {
            path,
            platform,
            arch,
            format,
        })
    }
}

/// Finds the artifacts in `dir` by their file names (signatures and bundles are skipped).
pub fn scan_artifacts(dir: &Path) -> Result<Vec<ArtifactFile>, ReleaseError> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .at(dir)?
        .collect::<Result<_, _>>()
        .at(dir)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if !path.is_file() {
            continue;
        }
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".sigstore.json")
            || name.ends_with(".sig")
            || name.ends_with(".json")
            || name.ends_with(".patch")
            || name.starts_with('.')
        {
            continue;
        }
        let (platform, arch, format) =
            classify_file_name(&name).ok_or(ReleaseError::UnknownArtifact(name))?;
        out.push(ArtifactFile {
            path,
            platform,
            arch,
            format,
        });
    }
    Ok(out)
}

/// What to put in a release manifest.
#[derive(Debug, Clone)]
pub struct ManifestSpec {
    /// App name.
    pub app: String,
    /// Version.
    pub version: Version,
    /// Channel.
    pub channel: String,
    /// Release notes.
    pub notes: String,
    /// The files.
    pub artifacts: Vec<ArtifactFile>,
    /// Prefix for artifact URLs; `None` makes them relative to the manifest.
    pub base_url: Option<String>,
    /// Rollout policy (defaults when `None`).
    pub rollout: Option<RolloutPolicy>,
    /// Release time.
    pub released_at: DateTime<Utc>,
    /// Folder of Sigstore bundles: an artifact `NAME` whose `NAME.sigstore.json` is found
    /// there gets a `sigstoreBundle` URL (same base as the artifact URL).
    pub sigstore_bundles: Option<PathBuf>,
}

/// Hashes the files and builds a validated manifest.
pub fn build_manifest(spec: &ManifestSpec) -> Result<ReleaseManifest, ReleaseError> {
    if spec.artifacts.is_empty() {
        return Err(ReleaseError::NoArtifacts);
    }
    let mut artifacts = Vec::new();
    for a in &spec.artifacts {
        let (size, sha256) = hash_file(&a.path)?;
        let name = a
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .ok_or_else(|| ReleaseError::UnknownArtifact(a.path.display().to_string()))?;
        let url = match &spec.base_url {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), name),
            None => name.clone(),
        };
        check_url(&url).map_err(|r| ReleaseError::Invalid(format!("artifact URL {url:?}: {r}")))?;
        let sigstore_bundle = spec.sigstore_bundles.as_ref().and_then(|dir| {
            let bundle = format!("{name}.sigstore.json");
            dir.join(&bundle).is_file().then(|| match &spec.base_url {
                Some(base) => format!("{}/{}", base.trim_end_matches('/'), bundle),
                None => bundle,
            })
        });
        artifacts.push(Artifact {
            platform: a.platform,
            arch: a.arch,
            format: a.format,
            url,
            size,
            sha256,
            sigstore_bundle,
        });
    }
    let manifest = ReleaseManifest {
        schema: SCHEMA_VERSION,
        app: spec.app.clone(),
        version: spec.version.clone(),
        channel: spec.channel.clone(),
        released_at: spec.released_at,
        notes: spec.notes.clone(),
        artifacts,
        rollout: spec.rollout.clone(),
        patches: Vec::new(),
    };
    manifest.validate()?;
    Ok(manifest)
}

/// Signs a manifest as a DSSE envelope of type `application/vnd.railgun.release+json`.
pub fn sign_manifest(
    manifest: &ReleaseManifest,
    keys: &[&PrivateKey],
) -> Result<Envelope, ReleaseError> {
    manifest.validate()?;
    let payload = serde_json::to_vec(manifest).map_err(|e| ReleaseError::Invalid(e.to_string()))?;
    Ok(Envelope::sign(PAYLOAD_RELEASE, &payload, keys)?)
}

/// Signs a channel state as a DSSE envelope of type `application/vnd.railgun.channel+json`.
pub fn sign_channel_state(
    state: &ChannelState,
    keys: &[&PrivateKey],
) -> Result<Envelope, ReleaseError> {
    state.validate()?;
    let payload = serde_json::to_vec(state).map_err(|e| ReleaseError::Invalid(e.to_string()))?;
    Ok(Envelope::sign(PAYLOAD_CHANNEL, &payload, keys)?)
}

/// Parses `30s`, `30m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, ReleaseError> {
    let bad = || ReleaseError::BadDuration(s.to_string());
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    if d <= Duration::zero() || d > Duration::days(366) {
        return Err(bad());
    }
    Ok(d)
}

/// How to publish a release into a static tree.
#[derive(Debug)]
pub struct PublishOptions<'a> {
    /// Root of the tree.
    pub root: PathBuf,
    /// The signed manifest envelope to publish.
    pub manifest: PathBuf,
    /// Where its artifacts are (default: the manifest's folder).
    pub artifacts_dir: Option<PathBuf>,
    /// Keys the manifest must verify with (the release keys).
    pub release_keys: TrustedKeys,
    /// Key that signs the channel state.
    pub rollout_key: &'a PrivateKey,
    /// Share of installs that get the release; `None`: the first of its channel's stages
    /// (`stages`: 100 on `beta` and `canary`, 10 on `stable` by default).
    pub percentage: Option<f64>,
    /// The stages of each channel (a static tree has no engine: a publisher widens a staged
    /// rollout by publishing again with the next percentage).
    pub stages: ChannelStages,
    /// Rollout status.
    pub status: RolloutStatus,
    /// A signed manifest of the fallback release.
    pub fallback: Option<PathBuf>,
    /// Installed versions allowed to move down.
    pub rollback_from: Vec<Version>,
    /// How long the channel state is valid.
    pub expires: Duration,
    /// Time of signing.
    pub now: DateTime<Utc>,
}

/// What [`publish`] wrote.
#[derive(Debug, Clone)]
pub struct Published {
    /// The signed channel state.
    pub state: ChannelState,
    /// Where it was written.
    pub channel_path: PathBuf,
    /// The stages of the release's channel (its percentage is one of them unless given).
    pub stages: Vec<f64>,
}

/// A manifest envelope read from disk and verified.
struct LoadedManifest {
    bytes: Vec<u8>,
    manifest: ReleaseManifest,
    dir: PathBuf,
}

fn load_manifest(path: &Path, keys: &TrustedKeys) -> Result<LoadedManifest, ReleaseError> {
    let bytes = fs::read(path).at(path)?;
    let verified = keys.verify(&bytes, PAYLOAD_RELEASE)?;
    let manifest = ReleaseManifest::from_verified_payload(&verified.payload)?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(LoadedManifest {
        bytes,
        manifest,
        dir,
    })
}

/// Copies a release (manifest bytes and relative artifacts, each checked against the
/// manifest) into `ROOT/<app>/releases/<version>/`. Returns the pointer to it.
fn install_release(
    root: &Path,
    m: &LoadedManifest,
    artifacts_dir: &Path,
) -> Result<ReleasePointer, ReleaseError> {
    let rel_dir = root
        .join(&m.manifest.app)
        .join("releases")
        .join(m.manifest.version.to_string());
    // Check every file against the signed manifest before anything is copied.
    for a in &m.manifest.artifacts {
        verify_relative(&a.url, artifacts_dir, a.size, &a.sha256)?;
    }
    for p in &m.manifest.patches {
        verify_relative(&p.file, artifacts_dir, p.size, &p.sha256)?;
    }
    fs::create_dir_all(&rel_dir).at(&rel_dir)?;
    for a in &m.manifest.artifacts {
        copy_relative(&a.url, artifacts_dir, &rel_dir)?;
        if let Some(b) = &a.sigstore_bundle {
            copy_relative(b, artifacts_dir, &rel_dir)?;
        }
    }
    for p in &m.manifest.patches {
        copy_relative(&p.file, artifacts_dir, &rel_dir)?;
    }
    write_atomic(&rel_dir.join("manifest.json"), &m.bytes)?;
    Ok(ReleasePointer {
        version: m.manifest.version.clone(),
        manifest: format!("../releases/{}/manifest.json", m.manifest.version),
        manifest_sha256: hex::encode(Sha256::digest(&m.bytes)),
    })
}

/// Refuses a relative URL that is not a plain file name (hosted URLs pass).
fn plain_file_name(url: &str) -> Result<Option<&str>, ReleaseError> {
    if url.contains("://") {
        return Ok(None); // hosted elsewhere (a CDN): nothing to copy
    }
    if url.contains('/') || url.contains("..") || url.starts_with('.') {
        return Err(ReleaseError::Invalid(format!(
            "relative artifact URL {url:?} must be a plain file name to be published"
        )));
    }
    Ok(Some(url))
}

/// Checks that the file named by a relative URL has the manifest's size and digest.
pub(crate) fn verify_relative(
    url: &str,
    from: &Path,
    expected_size: u64,
    expected_sha256: &str,
) -> Result<(), ReleaseError> {
    let Some(name) = plain_file_name(url)? else {
        return Ok(());
    };
    let src = from.join(name);
    let (size, sha) = hash_file(&src)?;
    if size != expected_size || sha != expected_sha256 {
        return Err(ReleaseError::ArtifactMismatch {
            path: src.display().to_string(),
            expected_size,
            expected_sha256: expected_sha256.to_string(),
            actual_size: size,
            actual_sha256: sha,
        });
    }
    Ok(())
}

/// Copies the file named by a relative URL (through a temporary name and a rename).
fn copy_relative(url: &str, from: &Path, to: &Path) -> Result<(), ReleaseError> {
    let Some(name) = plain_file_name(url)? else {
        return Ok(());
    };
    let src = from.join(name);
    let dst = to.join(name);
    if src != dst {
        let tmp = to.join(format!(".{name}.tmp"));
        fs::copy(&src, &tmp).at(&src)?;
        fs::rename(&tmp, &dst).at(&dst)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReleaseError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).at(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    ));
    let mut f = fs::File::create(&tmp).at(&tmp)?;
    f.write_all(bytes).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    fs::rename(&tmp, path).at(path)?;
    Ok(())
}

/// The sequence of the channel state at `path`, verified with `key`'s public key; 0 when
/// there is none.
fn current_sequence(path: &Path, key: &PrivateKey) -> Result<u64, ReleaseError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(PathIoError::new(path, e).into()),
    };
    let foreign = |reason: String| ReleaseError::ForeignChannelState {
        path: path.display().to_string(),
        reason,
    };
    let verified = TrustedKeys::single(key.public_key().clone())
        .verify(&bytes, PAYLOAD_CHANNEL)
        .map_err(|e| foreign(e.to_string()))?;
    let state = ChannelState::from_verified_payload(&verified.payload)
        .map_err(|e| foreign(e.to_string()))?;
    Ok(state.sequence)
}

/// Publishes a signed manifest (and its artifacts) and a new signed channel state.
pub fn publish(opts: &PublishOptions<'_>) -> Result<Published, ReleaseError> {
    let m = load_manifest(&opts.manifest, &opts.release_keys)?;
    let artifacts_dir = opts.artifacts_dir.clone().unwrap_or_else(|| m.dir.clone());
    let release = install_release(&opts.root, &m, &artifacts_dir)?;
    let fallback = match &opts.fallback {
        Some(path) => {
            let f = load_manifest(path, &opts.release_keys)?;
            if f.manifest.app != m.manifest.app {
                return Err(ReleaseError::Invalid(format!(
                    "fallback is a release of {}, not {}",
                    f.manifest.app, m.manifest.app
                )));
            }
            let dir = f.dir.clone();
            Some(install_release(&opts.root, &f, &dir)?)
        }
        None => None,
    };
    let channel_path = opts
        .root
        .join(&m.manifest.app)
        .join(&m.manifest.channel)
        .join("channel.json");
    let stages = opts
        .stages
        .for_channel(&m.manifest.channel, &m.manifest.rollout_policy().stages);
    let percentage = opts.percentage.unwrap_or(stages[0]);
    if !(0.0..=100.0).contains(&percentage) {
        return Err(ReleaseError::Invalid(format!(
            "percentage {percentage} is not within [0, 100]"
        )));
    }
    let sequence = current_sequence(&channel_path, opts.rollout_key)? + 1;
    let state = ChannelState {
        schema: SCHEMA_VERSION,
        app: m.manifest.app.clone(),
        channel: m.manifest.channel.clone(),
        sequence,
        issued_at: opts.now,
        expires_at: opts.now + opts.expires,
        release,
        rollout: RolloutState {
            percentage,
            status: opts.status,
        },
        fallback,
        rollback_from: opts.rollback_from.clone(),
    };
    let env = sign_channel_state(&state, &[opts.rollout_key])?;
    write_atomic(&channel_path, &env.to_json_bytes())?;
    Ok(Published {
        state,
        channel_path,
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_common_file_names() {
        assert_eq!(
            classify_file_name("rail-gun-0.2.0-linux-x64.tar.gz"),
            Some((Platform::Linux, Arch::X64, Format::TarGz))
        );
        assert_eq!(
            classify_file_name("Rail-Gun-1.0.0-darwin-arm64.zip"),
            Some((Platform::Darwin, Arch::Arm64, Format::Zip))
        );
        assert_eq!(
            classify_file_name("app_1.0.0_linux_x86_64.AppImage"),
            Some((Platform::Linux, Arch::X64, Format::AppImage))
        );
        assert_eq!(
            classify_file_name("app-1.0.0-win32-x64.exe"),
            Some((Platform::Win32, Arch::X64, Format::Nsis))
        );
        assert_eq!(classify_file_name("README.md"), None);
    }

    #[test]
    fn parses_artifact_specs_and_durations() {
        let a: ArtifactFile = "dist/x.bin:linux:arm64:appimage".parse().expect("spec");
        assert_eq!(a.path, PathBuf::from("dist/x.bin"));
        assert_eq!(
            (a.platform, a.arch, a.format),
            (Platform::Linux, Arch::Arm64, Format::AppImage)
        );
        assert!("x:linux:arm64".parse::<ArtifactFile>().is_err());
        assert_eq!(parse_duration("7d").expect("7d"), Duration::days(7));
        assert_eq!(parse_duration("90m").expect("m"), Duration::minutes(90));
        for bad in ["", "7", "d", "-1d", "0h", "1000d", "7w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
