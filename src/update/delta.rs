//! Delta patches: making them (publisher) and applying them (client), both on the
//! uncompressed payload of an artifact.
//!
//! A patch is one zstd frame compressed in patch-from mode: the base payload is the frame's
//! reference prefix, long-distance matching is on and the window covers base and result, so
//! unchanged stretches anywhere in the base become short references. The payload of a
//! `tar.gz` is the tar inside it (diffing the gzip stream would find almost nothing, since
//! one changed byte reshuffles every byte after it); of every other format, the file itself.
//!
//! Bit-exactness: the client does not recompress. The signed manifest records the size and
//! SHA-256 of the base payload a patch expects and of the payload it must produce
//! (`baseSize`/`baseSha256`, `resultSize`/`resultSha256`); [`apply_patch`] checks the base
//! before reading a byte of the patch, refuses to produce more than `resultSize` bytes (the
//! endless-data attack on the patch path), and fails unless the result has exactly the
//! recorded size and digest. A `tar.gz` update applied from a patch is installed from the
//! verified tar.
//!
//! It refuses: a base that differs from the recorded one, a patch that is not a zstd frame
//! for that base, a result of any other size or digest, and windows beyond what the recorded
//! sizes need (memory is bounded by the signed manifest, not by the patch).
//!
//! The client's side also lives here: [`KeptBase`] keeps one copy of the installed
//! artifact under the updater's data dir (the base the next patch applies to) and notices a
//! copy modified since it was kept; [`apply_to_file`] writes a patched payload as a file of
//! the artifact's format (a `tar.gz` result is the verified tar in a stored, uncompressed
//! gzip stream, so the installer reads it like any `tar.gz`); [`FallbackReason`] is the
//! stable code an update reports when it falls back to the full artifact. The order of the
//! steps (patch chosen from the signed manifest, base checked, patch downloaded and its
//! digest checked, then applied, then the result checked) is the updater's.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::manifest::{Arch, Artifact, Format, Patch, Platform, MAX_ARTIFACT_SIZE};

/// zstd level patches are made with (19: small patches; made once, applied many times).
pub const PATCH_LEVEL: i32 = 19;
/// Largest window log zstd allows on 64-bit hosts.
const MAX_WINDOW_LOG: u32 = 31;
/// Smallest window log zstd allows.
const MIN_WINDOW_LOG: u32 = 10;

/// Why a patch could not be made or applied. Each has a stable [`DeltaError::code`].
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The base payload differs from the one the patch was made for.
    #[error("the installed base differs from the patch's: expected {expected_size} bytes sha256 {expected_sha256}, found {actual_size} bytes sha256 {actual_sha256}")]
    BaseMismatch {
        /// Recorded size.
        expected_size: u64,
        /// Recorded digest.
        expected_sha256: String,
        /// Size found.
        actual_size: u64,
        /// Digest found.
        actual_sha256: String,
    },
    /// The payload is larger than any artifact may be.
    #[error("payload of {0} is larger than {MAX_ARTIFACT_SIZE} bytes")]
    TooLarge(PathBuf),
    /// The patch does not decode against the base (corrupt, or made for another base).
    #[error("the patch does not decode: {0}")]
    Decode(#[source] io::Error),
    /// Applying the patch would produce more than the recorded result size.
    #[error("the patch produces more than the recorded {limit} bytes")]
    ResultTooLarge {
        /// The recorded result size.
        limit: u64,
    },
    /// The result differs from the recorded size or digest.
    #[error("the patched result does not match the signed manifest: expected {expected_size} bytes sha256 {expected_sha256}, got {actual_size} bytes sha256 {actual_sha256}")]
    ResultMismatch {
        /// Recorded size.
        expected_size: u64,
        /// Recorded digest.
        expected_sha256: String,
        /// Size produced.
        actual_size: u64,
        /// Digest produced.
        actual_sha256: String,
    },
    /// zstd refused a parameter or failed while compressing.
    #[error("zstd: {0}")]
    Zstd(#[source] io::Error),
}

impl DeltaError {
    /// The stable reason code reported when an update falls back to the full artifact.
    pub fn code(&self) -> &'static str {
        match self {
            DeltaError::Io { .. } => "io-error",
            DeltaError::BaseMismatch { .. } => "base-modified",
            DeltaError::TooLarge(_) => "base-too-large",
            DeltaError::Decode(_) => "patch-corrupt",
            DeltaError::ResultTooLarge { .. } => "result-too-large",
            DeltaError::ResultMismatch { .. } => "result-mismatch",
            DeltaError::Zstd(_) => "zstd-error",
        }
    }
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> DeltaError + '_ {
    move |source| DeltaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The uncompressed payload of the artifact at `path`: the tar inside a `tar.gz`, the file
/// itself otherwise. Refuses payloads above [`MAX_ARTIFACT_SIZE`].
pub fn read_payload(path: &Path, format: Format) -> Result<Vec<u8>, DeltaError> {
    let file = fs::File::open(path).map_err(at(path))?;
    read_payload_from(file, format, path)
}

/// The window log a patch from `base_size` to `result_size` bytes needs (base and result
/// must both fit in the window), within zstd's limits.
pub fn window_log(base_size: u64, result_size: u64) -> u32 {
    let span = base_size.saturating_add(result_size).max(1);
    let log = 64 - (span - 1).leading_zeros();
    log.clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG)
}

/// Makes a patch that turns `base` into `target` (both uncompressed payloads).
pub fn create_patch(base: &[u8], target: &[u8], level: i32) -> Result<Vec<u8>, DeltaError> {
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, base)
        .map_err(DeltaError::Zstd)?;
    enc.long_distance_matching(true).map_err(DeltaError::Zstd)?;
    enc.window_log(window_log(base.len() as u64, target.len() as u64))
        .map_err(DeltaError::Zstd)?;
    enc.include_checksum(true).map_err(DeltaError::Zstd)?;
    enc.set_pledged_src_size(Some(target.len() as u64))
        .map_err(DeltaError::Zstd)?;
    enc.write_all(target).map_err(DeltaError::Zstd)?;
    enc.finish().map_err(DeltaError::Zstd)
}

/// Checks that `base` is the payload `patch` was made for.
pub fn check_base(patch: &Patch, base: &[u8]) -> Result<(), DeltaError> {
    let actual_sha256 = sha256_hex(base);
    if base.len() as u64 != patch.base_size || actual_sha256 != patch.base_sha256 {
        return Err(DeltaError::BaseMismatch {
            expected_size: patch.base_size,
            expected_sha256: patch.base_sha256.clone(),
            actual_size: base.len() as u64,
            actual_sha256,
        });
    }
    Ok(())
}

/// Applies the patch read from `patch_bytes` (whose size and digest the caller has checked
/// against the signed manifest) to `base`, writing the result to `out`. Checks the base
/// first, never writes more than `patch.result_size` bytes, and fails unless the result has
/// the recorded size and SHA-256. On failure `out` holds a partial result the caller
/// discards.
pub fn apply_patch(
    patch: &Patch,
    base: &[u8],
    patch_bytes: impl Read,
    out: &mut impl Write,
) -> Result<(), DeltaError> {
    check_base(patch, base)?;
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(BufReader::new(patch_bytes), base)
        .map_err(DeltaError::Zstd)?;
    dec.window_log_max(window_log(patch.base_size, patch.result_size))
        .map_err(DeltaError::Zstd)?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match dec.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DeltaError::Decode(e)),
        };
        written += n as u64;
        if written > patch.result_size {
            return Err(DeltaError::ResultTooLarge {
                limit: patch.result_size,
            });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|source| DeltaError::Io {
            path: PathBuf::from("<patched result>"),
            source,
        })?;
    }
    let actual_sha256 = hex::encode(hasher.finalize());
    if written != patch.result_size || actual_sha256 != patch.result_sha256 {
        return Err(DeltaError::ResultMismatch {
            expected_size: patch.result_size,
            expected_sha256: patch.result_sha256.clone(),
            actual_size: written,
            actual_sha256,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The client's side: when to try a patch, the kept base, applying into staging.

/// Folder of the kept base, under the updater's data dir.
pub const BASE_DIR: &str = "delta-base";
/// The kept base's record (what it is a copy of, and its digest when it was kept).
const BASE_RECORD: &str = "base.json";
/// Default largest patch, as a share of the full artifact's size.
pub const DEFAULT_MAX_PATCH_SHARE: f64 = 0.5;

/// When the updater tries a patch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeltaConfig {
    /// Try patches at all (default true).
    pub enabled: bool,
    /// A patch larger than this share of the full artifact is not worth its risk: the full
    /// artifact is downloaded instead (default 0.5).
    pub max_patch_share: f64,
}

impl Default for DeltaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_patch_share: DEFAULT_MAX_PATCH_SHARE,
        }
    }
}

/// Why an update that had a patch for the installed version used the full artifact. The
/// wire form (`update-delta-fallback` events, `railgun update --json`) is the kebab-case
/// name, stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FallbackReason {
    /// No copy of the installed version's artifact is kept (first update, or another
    /// installer put the running version there).
    NoBase,
    /// The kept copy changed since it was kept.
    BaseModified,
    /// The patch was made for another build of the installed version.
    BaseMismatch,
    /// The patch is larger than the configured share of the full artifact.
    PatchTooLarge,
    /// A Sigstore bundle signs the artifact's bytes, which a patch of a `tar.gz` does not
    /// reproduce (it produces the tar inside): only the full artifact can be checked.
    SigstoreNeedsArtifact,
    /// The manifest says the patch produces something other than the artifact (a format
    /// whose payload is the file itself).
    ResultNotArtifact,
    /// The patch could not be downloaded (network, HTTP status, disk).
    PatchDownloadFailed,
    /// The patch's bytes are not the size or SHA-256 the signed manifest pins (tampered or
    /// corrupted): refused before it was applied.
    PatchDigestMismatch,
    /// The patch does not decode against the base.
    PatchCorrupt,
    /// Applying the patch would produce more than the recorded result size.
    ResultTooLarge,
    /// The patched result is not the size or SHA-256 the signed manifest records.
    ResultMismatch,
    /// Reading the base or writing the result failed.
    IoError,
}

impl FallbackReason {
    /// The stable code.
    pub fn as_str(&self) -> &'static str {
        match self {
            FallbackReason::NoBase => "no-base",
            FallbackReason::BaseModified => "base-modified",
            FallbackReason::BaseMismatch => "base-mismatch",
            FallbackReason::PatchTooLarge => "patch-too-large",
            FallbackReason::SigstoreNeedsArtifact => "sigstore-needs-artifact",
            FallbackReason::ResultNotArtifact => "result-not-artifact",
            FallbackReason::PatchDownloadFailed => "patch-download-failed",
            FallbackReason::PatchDigestMismatch => "patch-digest-mismatch",
            FallbackReason::PatchCorrupt => "patch-corrupt",
            FallbackReason::ResultTooLarge => "result-too-large",
            FallbackReason::ResultMismatch => "result-mismatch",
            FallbackReason::IoError => "io-error",
        }
    }

    /// The reason an apply error gives.
    pub fn of(e: &DeltaError) -> Self {
        match e {
            DeltaError::BaseMismatch { .. } => FallbackReason::BaseMismatch,
            DeltaError::Decode(_) | DeltaError::Zstd(_) => FallbackReason::PatchCorrupt,
            DeltaError::ResultTooLarge { .. } => FallbackReason::ResultTooLarge,
            DeltaError::ResultMismatch { .. } => FallbackReason::ResultMismatch,
            DeltaError::Io { .. } | DeltaError::TooLarge(_) => FallbackReason::IoError,
        }
    }
}

impl std::fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks that need no download: the patch is small enough, and its result can be checked
/// like the artifact (`sigstore_checks`: a verifier will check the artifact's digest).
pub fn precheck(
    patch: &Patch,
    artifact: &Artifact,
    config: &DeltaConfig,
    sigstore_checks: bool,
) -> Result<(), (FallbackReason, String)> {
    let limit = artifact.size as f64 * config.max_patch_share;
    if patch.size as f64 > limit {
        return Err((
            FallbackReason::PatchTooLarge,
            format!(
                "the patch ({} bytes) is larger than {} % of the artifact ({} bytes)",
                patch.size,
                config.max_patch_share * 100.0,
                artifact.size
            ),
        ));
    }
    let payload_is_file = artifact.format != Format::TarGz;
    if payload_is_file
        && (patch.result_sha256 != artifact.sha256 || patch.result_size != artifact.size)
    {
        return Err((
            FallbackReason::ResultNotArtifact,
            format!(
                "the patch produces {} bytes sha256 {}, the artifact is {} bytes sha256 {}",
                patch.result_size, patch.result_sha256, artifact.size, artifact.sha256
            ),
        ));
    }
    if !payload_is_file && sigstore_checks {
        return Err((
            FallbackReason::SigstoreNeedsArtifact,
            "the artifact's Sigstore bundle signs the tar.gz, a patch produces the tar inside"
                .into(),
        ));
    }
    Ok(())
}

/// What the kept base is a copy of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BaseRecord {
    version: Version,
    platform: Platform,
    arch: Arch,
    format: Format,
    /// The file's name inside [`BASE_DIR`].
    file: String,
    /// The file's size and SHA-256 when it was kept.
    size: u64,
    sha256: String,
}

/// One copy of the installed version's artifact (or of a file of its format holding the
/// same payload) in `<data_dir>/delta-base/`, the base the next patch applies to. At most
/// one version is kept: keeping a new one removes the old.
#[derive(Debug, Clone)]
pub struct KeptBase {
    dir: PathBuf,
}

/// A base about to be kept: linked in before the install (which may move the staged
/// file), recorded only after the install succeeded ([`KeptBase::commit`]).
#[derive(Debug)]
pub struct PendingBase {
    path: PathBuf,
    record: BaseRecord,
}

impl KeptBase {
    /// The kept base of the updater whose data dir is `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(BASE_DIR),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record(&self) -> Option<BaseRecord> {
        let bytes = fs::read(self.dir.join(BASE_RECORD)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Puts `staged` (a verified file of `artifact`'s format for `version`, `size` bytes
    /// with SHA-256 `sha256`) beside the kept base as a hard link (a copy across file
    /// systems), so the install may consume the staged file.
    pub fn prepare(
        &self,
        staged: &Path,
        version: &Version,
        artifact: &Artifact,
        size: u64,
        sha256: &[u8; 32],
    ) -> Result<PendingBase, DeltaError> {
        fs::create_dir_all(&self.dir).map_err(at(&self.dir))?;
        let file = format!("{version}.{}", artifact.format.as_str());
        let path = self.dir.join(format!(".pending-{file}"));
        let _ = fs::remove_file(&path);
        if fs::hard_link(staged, &path).is_err() {
            fs::copy(staged, &path).map_err(at(&path))?;
        }
        Ok(PendingBase {
            path,
            record: BaseRecord {
                version: version.clone(),
                platform: artifact.platform,
                arch: artifact.arch,
                format: artifact.format,
                file,
                size,
                sha256: hex::encode(sha256),
            },
        })
    }

    /// Makes `pending` the kept base (after its install succeeded) and removes the old one.
    pub fn commit(&self, pending: PendingBase) -> Result<(), DeltaError> {
        let old = self.record();
        let final_path = self.dir.join(&pending.record.file);
        fs::rename(&pending.path, &final_path).map_err(at(&final_path))?;
        let json = serde_json::to_vec(&pending.record).map_err(|e| DeltaError::Io {
            path: self.dir.join(BASE_RECORD),
            source: io::Error::other(e),
        })?;
        let tmp = self.dir.join(format!(".{BASE_RECORD}.tmp"));
        fs::write(&tmp, json).map_err(at(&tmp))?;
        let record = self.dir.join(BASE_RECORD);
        fs::rename(&tmp, &record).map_err(at(&record))?;
        if let Some(old) = old.filter(|o| o.file != pending.record.file) {
            let _ = fs::remove_file(self.dir.join(old.file));
        }
        Ok(())
    }

    /// Drops a base that was not installed.
    pub fn abandon(&self, pending: PendingBase) {
        let _ = fs::remove_file(pending.path);
    }

    /// The payload of the kept base for `patch`: refused when no base of the patch's
    /// version/platform/arch/format is kept ([`FallbackReason::NoBase`]), when the copy
    /// changed since it was kept ([`FallbackReason::BaseModified`]), or when it is not the
    /// payload the patch was made for ([`FallbackReason::BaseMismatch`]). One pass over the
    /// file: its digest and the payload's are computed while it is read.
    pub fn load(&self, patch: &Patch) -> Result<Vec<u8>, (FallbackReason, String)> {
        let Some(rec) = self.record() else {
            return Err((
                FallbackReason::NoBase,
                format!("no copy of {}'s artifact is kept", patch.from),
            ));
        };
        if rec.version != patch.from
            || rec.platform != patch.platform
            || rec.arch != patch.arch
            || rec.format != patch.format
        {
            return Err((
                FallbackReason::NoBase,
                format!(
                    "the kept copy is of {} {}/{}/{}, the patch applies to {} {}/{}/{}",
                    rec.version,
                    rec.platform,
                    rec.arch,
                    rec.format,
                    patch.from,
                    patch.platform,
                    patch.arch,
                    patch.format
                ),
            ));
        }
        let path = self.dir.join(&rec.file);
        let io = |e: DeltaError| (FallbackReason::IoError, e.to_string());
        let file = fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => (
                FallbackReason::NoBase,
                format!("the kept copy {} is missing", path.display()),
            ),
            _ => io(DeltaError::Io {
                path: path.clone(),
                source: e,
            }),
        })?;
        let mut reader = HashingReader {
            inner: file,
            hasher: Sha256::new(),
            read: 0,
        };
        let payload = read_payload_from(&mut reader, rec.format, &path);
        // Drain what the decoder left (a trailer) so the file's digest covers every byte.
        let drained = io::copy(&mut reader, &mut io::sink()).map_err(at(&path));
        let (file_size, file_sha256) = (reader.read, hex::encode(reader.hasher.finalize()));
        if file_size != rec.size || file_sha256 != rec.sha256 {
            return Err((
                FallbackReason::BaseModified,
                format!(
                    "the kept copy {} changed since it was kept: {} bytes sha256 {}, was {} bytes sha256 {}",
                    path.display(),
                    file_size,
                    file_sha256,
                    rec.size,
                    rec.sha256
                ),
            ));
        }
        let payload = payload.map_err(io)?;
        drained.map_err(io)?;
        check_base(patch, &payload).map_err(|e| (FallbackReason::BaseMismatch, e.to_string()))?;
        Ok(payload)
    }
}

/// Counts and hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Counts and hashes what is written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The payload read from `r` (a file of `format`), refusing more than [`MAX_ARTIFACT_SIZE`].
fn read_payload_from(r: impl Read, format: Format, path: &Path) -> Result<Vec<u8>, DeltaError> {
    let mut out = Vec::new();
    let limit = MAX_ARTIFACT_SIZE + 1;
    let n = match format {
        Format::TarGz => flate2::read::GzDecoder::new(BufReader::new(r))
            .take(limit)
            .read_to_end(&mut out),
        _ => BufReader::new(r).take(limit).read_to_end(&mut out),
    }
    .map_err(at(path))?;
    if n as u64 > MAX_ARTIFACT_SIZE {
        return Err(DeltaError::TooLarge(path.to_path_buf()));
    }
    Ok(out)
}

/// Applies the patch in the file `patch_path` (whose size and SHA-256 the caller checked
/// against the signed manifest) to `base` and writes the result as a file of the patch's
/// format at `out`: the payload itself, or for a `tar.gz` the tar in a stored (level 0)
/// gzip stream, which the installer reads like any `tar.gz` without recompressing. The
/// result's size and SHA-256 are checked by [`apply_patch`]; on failure `out` is removed.
/// Returns the written file's size and SHA-256.
pub fn apply_to_file(
    patch: &Patch,
    base: &[u8],
    patch_path: &Path,
    out: &Path,
) -> Result<(u64, [u8; 32]), DeltaError> {
    let result = (|| {
        let patch_file = fs::File::open(patch_path).map_err(at(patch_path))?;
        let file = fs::File::create(out).map_err(at(out))?;
        let mut w = HashingWriter {
            inner: io::BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            written: 0,
        };
        if patch.format == Format::TarGz {
            let mut gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::none());
            apply_patch(patch, base, patch_file, &mut gz)?;
            gz.finish().map_err(at(out))?;
        } else {
            apply_patch(patch, base, patch_file, &mut w)?;
        }
        w.flush().map_err(at(out))?;
        Ok((w.written, w.hasher.finalize().into()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(out);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::manifest::{Arch, Platform};

    fn sample(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn patch_of(base: &[u8], target: &[u8], bytes: &[u8]) -> Patch {
        Patch {
            file: "p.zst".into(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            from: "0.1.0".parse().unwrap(),
            platform: Platform::Linux,
            arch: Arch::X64,
            format: Format::AppImage,
            base_size: base.len() as u64,
            base_sha256: sha256_hex(base),
            result_size: target.len() as u64,
            result_sha256: sha256_hex(target),
        }
    }

    fn pair() -> (Vec<u8>, Vec<u8>) {
        let base = sample(1, 1 << 20);
        let mut target = base.clone();
        target[1000..1100].copy_from_slice(&sample(2, 100));
        target.extend_from_slice(&sample(3, 4096));
        (base, target)
    }

    #[test]
    fn a_patch_reproduces_the_target_and_is_small() {
        let (base, target) = pair();
        let bytes = create_patch(&base, &target, 3).unwrap();
        assert!(bytes.len() < 16 * 1024, "patch of {} bytes", bytes.len());
        let mut out = Vec::new();
        apply_patch(
            &patch_of(&base, &target, &bytes),
            &base,
            &bytes[..],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, target);
    }

    #[test]
    fn a_modified_base_is_refused_before_the_patch_is_read() {
        let (base, target) = pair();
        let bytes = create_patch(&base, &target, 3).unwrap();
        let p = patch_of(&base, &target, &bytes);
        let mut changed = base.clone();
        changed[7] ^= 1;
        let unreadable = io::Cursor::new(Vec::<u8>::new()).chain(FailingReader);
        let err = apply_patch(&p, &changed, unreadable, &mut Vec::new()).unwrap_err();
        assert_eq!(err.code(), "base-modified", "{err}");
    }

    struct FailingReader;
    impl Read for FailingReader {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("the patch was read although the base does not match")
        }
    }

    #[test]
    fn a_tampered_patch_or_wrong_result_digest_is_refused() {
        let (base, target) = pair();
        let mut bytes = create_patch(&base, &target, 3).unwrap();
        let p = patch_of(&base, &target, &bytes);
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        let err = apply_patch(&p, &base, &bytes[..], &mut Vec::new()).unwrap_err();
        assert!(
            matches!(err.code(), "patch-corrupt" | "result-mismatch"),
            "{err}"
        );
        let good = create_patch(&base, &target, 3).unwrap();
        let mut wrong = patch_of(&base, &target, &good);
        wrong.result_sha256 = sha256_hex(b"something else");
        let err = apply_patch(&wrong, &base, &good[..], &mut Vec::new()).unwrap_err();
        assert_eq!(err.code(), "result-mismatch", "{err}");
    }

    #[test]
    fn a_patch_never_produces_more_than_the_recorded_size() {
        let base = sample(1, 4096);
        let endless = vec![0u8; 1 << 20];
        let bytes = create_patch(&base, &endless, 1).unwrap();
        let mut p = patch_of(&base, &endless, &bytes);
        p.result_size = (1 << 20) - 1000;
        let mut out = Vec::new();
        let err = apply_patch(&p, &base, &bytes[..], &mut out).unwrap_err();
        assert_eq!(err.code(), "result-too-large", "{err}");
        assert!(out.len() as u64 <= p.result_size);
    }

    #[test]
    fn window_covers_base_and_result() {
        assert_eq!(window_log(0, 0), MIN_WINDOW_LOG);
        assert_eq!(window_log(1 << 20, 1 << 20), 21);
        assert_eq!(window_log((1 << 20) + 1, 1 << 20), 22);
        assert_eq!(window_log(u64::MAX, 1), MAX_WINDOW_LOG);
    }
}
