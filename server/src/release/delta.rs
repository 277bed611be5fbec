//! `railgun release sign --delta-from DIR`: delta patches from earlier versions.
//!
//! For each artifact of the new release and each earlier version given, it finds the earlier
//! artifact of the same platform/arch/format, makes a zstd patch-from patch between their
//! uncompressed payloads (`railgun_core::update::delta`) and writes it beside the new
//! artifact as `<artifact>.from-<version>.patch`, listing it in the manifest (which is then
//! signed). DIR is the folder of the earlier manifest (`manifest.json`, verified with the
//! signing keys, and whose artifacts are checked against it) or a folder of artifacts named
//! like `app-0.1.0-linux-x64.tar.gz` (the version is read from the names).
//!
//! It refuses: an earlier version that is not older, an earlier manifest of another app or
//! that does not verify, artifacts that do not match the earlier manifest. It leaves out (and
//! reports) patches that are not smaller than the full artifact.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use railgun_core::error::IoContext;
use railgun_core::trust::{SignedDocument, TrustedKeys, PAYLOAD_RELEASE};
use railgun_core::update::delta::{create_patch, read_payload, sha256_hex, PATCH_LEVEL};
use railgun_core::update::{Patch, ReleaseManifest};
use railgun_core::Version;

use super::{scan_artifacts, verify_relative, write_atomic, ArtifactFile, ReleaseError};

/// An earlier version's artifacts, found in a `--delta-from` folder.
#[derive(Debug, Clone)]
pub struct Base {
    /// The earlier version.
    pub version: Version,
    /// Its artifacts.
    pub files: Vec<ArtifactFile>,
}

/// What one patch made.
#[derive(Debug, Clone)]
pub struct MadePatch {
    /// Where it was written.
    pub path: PathBuf,
    /// The manifest entry.
    pub patch: Patch,
    /// Size of the full (compressed) artifact it replaces.
    pub full_size: u64,
    /// Time taken to make it.
    pub elapsed: Duration,
}

/// A patch left out, and why.
#[derive(Debug, Clone)]
pub struct SkippedPatch {
    /// The artifact.
    pub artifact: String,
    /// The earlier version.
    pub from: Version,
    /// Why.
    pub reason: String,
}

/// Reads the earlier version found in `dir` (see the module docs).
pub fn load_base(dir: &Path, app: &str, keys: &TrustedKeys) -> Result<Base, ReleaseError> {
    let manifest_path = dir.join("manifest.json");
    if manifest_path.is_file() {
        let bytes = fs::read(&manifest_path).at(&manifest_path)?;
        let verified = keys.verify(&bytes, PAYLOAD_RELEASE)?;
        let m = ReleaseManifest::from_verified_payload(&verified.payload)?;
        if m.app != app {
            return Err(ReleaseError::Invalid(format!(
                "{} is a manifest of {:?}, not {app:?}",
                manifest_path.display(),
                m.app
            )));
        }
        let mut files = Vec::new();
        for a in &m.artifacts {
            if a.url.contains("://") || a.url.contains('/') || a.url.starts_with('.') {
                continue; // hosted elsewhere: not here to diff against
            }
            let path = dir.join(&a.url);
            if !path.is_file() {
                continue;
            }
            verify_relative(&a.url, dir, a.size, &a.sha256)?;
            files.push(ArtifactFile {
                path,
                platform: a.platform,
                arch: a.arch,
                format: a.format,
            });
        }
        return Ok(Base {
            version: m.version,
            files,
        });
    }
    let files = scan_artifacts(dir)?;
    let mut version: Option<Version> = None;
    for f in &files {
        let name = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let v = version_from_name(&name, app).ok_or_else(|| {
            ReleaseError::Invalid(format!(
                "--delta-from {}: cannot read the version of {name:?} (name it like \
                 {app}-0.1.0-linux-x64.tar.gz, or give the folder of its manifest)",
                dir.display()
            ))
        })?;
        match &version {
            Some(seen) if *seen != v => {
                return Err(ReleaseError::Invalid(format!(
                    "--delta-from {} holds versions {seen} and {v}: give one folder per version",
                    dir.display()
                )))
            }
            _ => version = Some(v),
        }
    }
    let version = version.ok_or_else(|| {
        ReleaseError::Invalid(format!("--delta-from {}: no artifacts", dir.display()))
    })?;
    Ok(Base { version, files })
}

/// The version in a name like `app-0.1.0-linux-x64.tar.gz`.
fn version_from_name(name: &str, app: &str) -> Option<Version> {
    let rest = name.strip_prefix(app)?.strip_prefix(['-', '_'])?;
    let stem = [
        ".tar.gz",
        ".tgz",
        ".AppImage",
        ".appimage",
        ".zip",
        ".dmg",
        ".exe",
        ".deb",
        ".rpm",
    ]
    .iter()
    .find_map(|ext| rest.strip_suffix(ext))?;
    let mut parts = stem.rsplitn(3, ['-', '_']);
    let (_arch, _platform) = (parts.next()?, parts.next()?);
    parts.next()?.parse().ok()
}

/// The file name of the patch from `from` for the artifact file `artifact_name`.
pub fn patch_file_name(artifact_name: &str, from: &Version) -> String {
    format!("{artifact_name}.from-{from}.patch")
}

/// Makes the patches from every base to the new `artifacts`, writes them beside the new
/// artifacts and lists them in `manifest` (not yet signed).
pub fn add_patches(
    manifest: &mut ReleaseManifest,
    artifacts: &[ArtifactFile],
    bases: &[Base],
) -> Result<(Vec<MadePatch>, Vec<SkippedPatch>), ReleaseError> {
    let mut made = Vec::new();
    let mut skipped = Vec::new();
    for base in bases {
        if base.version >= manifest.version {
            return Err(ReleaseError::Invalid(format!(
                "--delta-from version {} is not older than {}",
                base.version, manifest.version
            )));
        }
        for new in artifacts {
            let Some(old) = base.files.iter().find(|b| {
                b.platform == new.platform && b.arch == new.arch && b.format == new.format
            }) else {
                continue;
            };
            let name = new
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .ok_or_else(|| ReleaseError::UnknownArtifact(new.path.display().to_string()))?;
            let full_size = fs::metadata(&new.path).at(&new.path)?.len();
            let started = Instant::now();
            let (patch, bytes) = make_patch(&old.path, new, &base.version)?;
            let elapsed = started.elapsed();
            if bytes.len() as u64 >= full_size {
                skipped.push(SkippedPatch {
                    artifact: name,
                    from: base.version.clone(),
                    reason: format!(
                        "the patch ({} bytes) is not smaller than the artifact ({full_size} bytes)",
                        bytes.len()
                    ),
                });
                continue;
            }
            let file = patch_file_name(&name, &base.version);
            let path = new
                .path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join(&file);
            write_atomic(&path, &bytes)?;
            let patch = Patch { file, ..patch };
            manifest.patches.push(patch.clone());
            made.push(MadePatch {
                path,
                patch,
                full_size,
                elapsed,
            });
        }
    }
    Ok((made, skipped))
}

/// Makes the patch between two artifact files (its `file` is left empty).
pub fn make_patch(
    old: &Path,
    new: &ArtifactFile,
    from: &Version,
) -> Result<(Patch, Vec<u8>), ReleaseError> {
    let delta_err = |e: railgun_core::update::delta::DeltaError| {
        ReleaseError::Invalid(format!(
            "patch {} -> {}: {e}",
            old.display(),
            new.path.display()
        ))
    };
    let base = read_payload(old, new.format).map_err(delta_err)?;
    let target = read_payload(&new.path, new.format).map_err(delta_err)?;
    let bytes = create_patch(&base, &target, PATCH_LEVEL).map_err(delta_err)?;
    Ok((
        Patch {
            file: String::new(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            from: from.clone(),
            platform: new.platform,
            arch: new.arch,
            format: new.format,
            base_size: base.len() as u64,
            base_sha256: sha256_hex(&base),
            result_size: target.len() as u64,
            result_sha256: sha256_hex(&target),
        },
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_from_artifact_names() {
        let v = |s: &str| version_from_name(s, "app");
        assert_eq!(v("app-0.1.0-linux-x64.tar.gz"), Some(Version::new(0, 1, 0)));
        assert_eq!(
            v("app-1.0.0-beta.1-darwin-arm64.zip"),
            Some("1.0.0-beta.1".parse().unwrap())
        );
        assert_eq!(v("other-0.1.0-linux-x64.tar.gz"), None);
        assert_eq!(v("app-linux-x64.tar.gz"), None);
    }
}
