//! The demo's releases: real tar.gz artifacts built in the temporary folder (0.2.0 the next
//! version of 0.1.0's app, [`super::app`]), real signed manifests listing the delta patches
//! from earlier releases (made by the publisher's code, `release::delta`), and the per-file
//! SHA-256 of what each archive holds (read back from the archive itself, so the
//! verification of installs does not trust the builder's memory).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use railgun_core::error::IoContext;
use railgun_core::trust::{Envelope, PrivateKey};
use railgun_core::update::{Arch, Format, Platform, ReleaseManifest, RolloutPolicy};
use railgun_core::Version;
use sha2::{Digest, Sha256};

use super::app::{app_files, write_tar_gz, AppShape};
use super::DemoError;
use crate::release::delta::{add_patches, Base, MadePatch};
use crate::release::{build_manifest, sign_manifest, ArtifactFile, ManifestSpec};

/// One built and signed release.
#[derive(Debug, Clone)]
pub struct BuiltRelease {
    /// Its version.
    pub version: Version,
    /// The folder holding the artifact and `manifest.json`.
    pub dir: PathBuf,
    /// The signed manifest envelope file.
    pub manifest_path: PathBuf,
    /// The signed manifest envelope.
    pub envelope: Envelope,
    /// The manifest.
    pub manifest: ReleaseManifest,
    /// The artifact file.
    pub artifact_path: PathBuf,
    /// The artifact's file name (its relative URL).
    pub artifact_name: String,
    /// Path inside the archive → lowercase hex SHA-256 of its bytes.
    pub files: BTreeMap<String, String>,
    /// The delta patches beside the artifact, listed in the manifest.
    pub patches: Vec<MadePatch>,
}

impl BuiltRelease {
    /// The artifact as the publisher's code describes it.
    pub fn artifact_file(&self) -> ArtifactFile {
        ArtifactFile {
            path: self.artifact_path.clone(),
            platform: Platform::Linux,
            arch: Arch::X64,
            format: Format::TarGz,
        }
    }

    /// Every file to upload beside the manifest: the artifact, then the patches.
    pub fn uploads(&self) -> Vec<(String, PathBuf)> {
        let mut out = vec![(self.artifact_name.clone(), self.artifact_path.clone())];
        out.extend(
            self.patches
                .iter()
                .map(|m| (m.patch.file.clone(), m.path.clone())),
        );
        out
    }
}

/// The demo's app: about 128 KiB of files, its next version made by the same generator.
pub const DEMO_APP: AppShape = AppShape {
    size: 128 * 1024,
    seed: 18,
};

/// Reads a tar.gz back: each regular file's path and SHA-256.
pub fn archive_digests(path: &Path) -> Result<BTreeMap<String, String>, DemoError> {
    let f = fs::File::open(path).at(path)?;
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = BTreeMap::new();
    for entry in a.entries().at(path)? {
        let mut e = entry.at(path)?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let name = e.path().at(path)?.to_string_lossy().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).at(path)?;
        out.insert(name, hex::encode(Sha256::digest(&bytes)));
    }
    Ok(out)
}

/// One release to build: which build of which app, and what its manifest says.
#[derive(Debug, Clone)]
pub struct ReleaseSpec<'a> {
    /// App name.
    pub app: &'a str,
    /// Channel.
    pub channel: &'a str,
    /// The app's size and seed ([`DEMO_APP`] for the demo).
    pub shape: AppShape,
    /// Version.
    pub version: Version,
    /// 0: a release; 1: its next version ([`app_files`]).
    pub build: u32,
    /// Earlier releases to make patches from.
    pub bases: &'a [&'a BuiltRelease],
    /// Rollout policy in the manifest.
    pub policy: Option<RolloutPolicy>,
    /// Release date.
    pub released_at: DateTime<Utc>,
}

/// Builds the release's artifact in `work/build-<version>/`, the patches to it from each
/// of its bases (the publisher's `add_patches`), then its manifest signed with `key`.
pub fn build_release(
    work: &Path,
    spec: &ReleaseSpec<'_>,
    key: &PrivateKey,
) -> Result<BuiltRelease, DemoError> {
    let ReleaseSpec {
        app,
        channel,
        version,
        ..
    } = spec;
    let dir = work.join(format!("build-{version}"));
    fs::create_dir_all(&dir).at(&dir)?;
    let artifact_name = format!("{app}-{version}-linux-x64.tar.gz");
    let artifact_path = dir.join(&artifact_name);
    write_tar_gz(
        &artifact_path,
        &app_files(spec.shape, app, version, spec.build),
    )?;
    let artifact = ArtifactFile {
        path: artifact_path.clone(),
        platform: Platform::Linux,
        arch: Arch::X64,
        format: Format::TarGz,
    };
    let mut manifest = build_manifest(&ManifestSpec {
        app: app.to_string(),
        version: version.clone(),
        channel: channel.to_string(),
        notes: format!("{app} {version} (railgun demo)"),
        artifacts: vec![artifact.clone()],
        base_url: None,
        rollout: spec.policy.clone(),
        released_at: spec.released_at,
        sigstore_bundles: None,
    })?;
    let bases: Vec<Base> = spec
        .bases
        .iter()
        .map(|b| Base {
            version: b.version.clone(),
            files: vec![b.artifact_file()],
        })
        .collect();
    let (made, skipped) = add_patches(&mut manifest, &[artifact], &bases)?;
    if let Some(s) = skipped.first() {
        return Err(DemoError::Invalid(format!(
            "no patch from {} for {}: {}",
            s.from, s.artifact, s.reason
        )));
    }
    let envelope = sign_manifest(&manifest, &[key])?;
    let manifest_path = dir.join("manifest.json");
    fs::write(&manifest_path, envelope.to_json_bytes()).at(&manifest_path)?;
    let files = archive_digests(&artifact_path)?;
    Ok(BuiltRelease {
        version: version.clone(),
        dir,
        manifest_path,
        envelope,
        manifest,
        artifact_path,
        artifact_name,
        files,
        patches: made,
    })
}
