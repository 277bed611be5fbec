//! The demo's releases: real tar.gz artifacts built in the temporary folder, real signed
//! manifests, and the per-file SHA-256 of what each archive holds (read back from the
//! archive itself, so the verification of installs does not trust the builder's memory).

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

use super::DemoError;
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
}

/// The files of a version's archive: a launcher script, a version file and some data.
fn contents(app: &str, version: &Version) -> Vec<(&'static str, Vec<u8>)> {
    let mut data = Vec::with_capacity(64 * 1024);
    let mut x = Sha256::digest(format!("{app}:{version}").as_bytes()).to_vec();
    while data.len() < 64 * 1024 {
        data.extend_from_slice(&x);
        x = Sha256::digest(&x).to_vec();
    }
    vec![
        (
            "bin/rail-gun",
            format!("#!/bin/sh\necho \"{app} {version}\"\n").into_bytes(),
        ),
        ("VERSION", format!("{version}\n").into_bytes()),
        ("resources/app.asar", data),
    ]
}

fn write_tar_gz(path: &Path, files: &[(&'static str, Vec<u8>)]) -> Result<(), DemoError> {
    let f = fs::File::create(path).at(path)?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(if name.starts_with("bin/") {
            0o755
        } else {
            0o644
        });
        h.set_mtime(0);
        b.append_data(&mut h, name, data.as_slice()).at(path)?;
    }
    b.into_inner().at(path)?.finish().at(path)?;
    Ok(())
}

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

/// Builds `version`'s artifact in `work/build-<version>/`, then its signed manifest.
pub fn build_release(
    work: &Path,
    app: &str,
    channel: &str,
    version: &Version,
    policy: &RolloutPolicy,
    key: &PrivateKey,
    released_at: DateTime<Utc>,
) -> Result<BuiltRelease, DemoError> {
    let dir = work.join(format!("build-{version}"));
    fs::create_dir_all(&dir).at(&dir)?;
    let artifact_name = format!("{app}-{version}-linux-x64.tar.gz");
    let artifact_path = dir.join(&artifact_name);
    write_tar_gz(&artifact_path, &contents(app, version))?;
    let manifest = build_manifest(&ManifestSpec {
        app: app.into(),
        version: version.clone(),
        channel: channel.into(),
        notes: format!("{app} {version} (railgun demo)"),
        artifacts: vec![ArtifactFile {
            path: artifact_path.clone(),
            platform: Platform::Linux,
            arch: Arch::X64,
            format: Format::TarGz,
        }],
        base_url: None,
        rollout: Some(policy.clone()),
        released_at,
        sigstore_bundles: None,
    })?;
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
    })
}
