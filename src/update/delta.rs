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
//! (`baseSize`/`baseSha256`, `resultSize`/`resultSha256`). [`apply_patch`] (a base given as
//! bytes) hashes the base before reading a byte of the patch; every apply refuses to produce
//! more than `resultSize` bytes (the endless-data attack on the patch path) and fails unless
//! the result has exactly the recorded size and digest, hashed in the same pass as it is
//! decoded and written. A `tar.gz` update applied from a patch is installed from the
//! verified tar, as it is.
//!
//! It refuses: a base that differs from the recorded one, a patch that is not a zstd frame
//! for that base, a result of any other size or digest, and windows beyond what the recorded
//! sizes need (memory is bounded by the signed manifest, not by the patch).
//!
//! The client's side also lives here: [`KeptBase`] keeps one copy of the installed payload
//! under the updater's data dir (the base the next patch applies to; for a `tar.gz`, the tar,
//! so applying needs no gunzip) with its size and digest, verified when it was kept. Its
//! docs say what is checked when: the record must name the patch's base before the patch
//! is downloaded; the file is hashed again before the download only when its metadata
//! changed since it was kept, since a base changed behind unchanged metadata cannot get
//! past the result's signed digest (and is then hashed, to report `base-modified`).
//! [`apply_to_file`] writes the patched payload into staging; [`FallbackReason`] is the
//! stable code an update reports when it falls back to the full artifact. The order of the
//! steps (patch chosen from the signed manifest, base record checked, patch downloaded and
//! its digest checked, then applied, then the result checked) is the updater's.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::UNIX_EPOCH;

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
    /// The kept base changed since it was kept (found when a patch applied to it failed).
    #[error("the kept copy {path} changed since it was kept: {actual_size} bytes sha256 {actual_sha256}, was {expected_size} bytes sha256 {expected_sha256}")]
    KeptBaseModified {
        /// The kept file.
        path: PathBuf,
        /// Size when it was kept.
        expected_size: u64,
        /// Digest when it was kept.
        expected_sha256: String,
        /// Size found.
        actual_size: u64,
        /// Digest found.
        actual_sha256: String,
    },
}

impl DeltaError {
    /// The stable reason code reported when an update falls back to the full artifact.
    pub fn code(&self) -> &'static str {
        match self {
            DeltaError::Io { .. } => "io-error",
            DeltaError::BaseMismatch { .. } | DeltaError::KeptBaseModified { .. } => {
                "base-modified"
            }
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
    let size = file.metadata().map_err(at(path))?.len();
    read_payload_from(file, format, path, size)
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
    out: &mut (impl Write + Send),
) -> Result<(), DeltaError> {
    check_base(patch, base)?;
    decode_checked(patch, base, patch_bytes, out).map(|_| ())
}

/// Bytes the decoder hands to the hashing writer at a time.
const CHUNK: usize = 4 << 20;
/// Chunks decoded ahead of the hashing writer.
const AHEAD: usize = 2;

/// Decodes the patch against `base` into `out`, refusing more than `patch.result_size`
/// bytes, and returns the result's SHA-256 once it has the recorded size and digest. One
/// pass: this thread decodes while a second one hashes and writes what it decoded, each
/// byte hashed once, on its way to `out`.
fn decode_checked(
    patch: &Patch,
    base: &[u8],
    patch_bytes: impl Read,
    out: &mut (impl Write + Send),
) -> Result<[u8; 32], DeltaError> {
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(BufReader::new(patch_bytes), base)
        .map_err(DeltaError::Zstd)?;
    dec.window_log_max(window_log(patch.base_size, patch.result_size))
        .map_err(DeltaError::Zstd)?;
    let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(AHEAD);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    let write_err = |source| DeltaError::Io {
        path: PathBuf::from("<patched result>"),
        source,
    };
    let (decoded, digest) = std::thread::scope(|s| {
        let sink = s.spawn(move || -> io::Result<[u8; 32]> {
            let mut hasher = Sha256::new();
            for (buf, n) in full_rx {
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                let _ = empty_tx.send(buf);
            }
            out.flush()?;
            Ok(hasher.finalize().into())
        });
        let decoded = (|| {
            let mut written = 0u64;
            loop {
                let mut buf = empty_rx.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
                let n = fill(&mut dec, &mut buf).map_err(DeltaError::Decode)?;
                if n == 0 {
                    return Ok(written);
                }
                written += n as u64;
                if written > patch.result_size {
                    return Err(DeltaError::ResultTooLarge {
                        limit: patch.result_size,
                    });
                }
                if full_tx.send((buf, n)).is_err() {
                    return Ok(written); // the writer failed: its error is the one reported
                }
            }
        })();
        drop(full_tx);
        let digest = sink
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the hashing writer panicked")));
        (decoded, digest)
    });
    let written = decoded?;
    let digest = digest.map_err(write_err)?;
    let actual_sha256 = hex::encode(digest);
    if written != patch.result_size || actual_sha256 != patch.result_sha256 {
        return Err(DeltaError::ResultMismatch {
            expected_size: patch.result_size,
            expected_sha256: patch.result_sha256.clone(),
            actual_size: written,
            actual_sha256,
        });
    }
    Ok(digest)
}

/// Reads from `r` until `buf` is full or `r` ends; the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
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
            DeltaError::KeptBaseModified { .. } => FallbackReason::BaseModified,
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
    /// The file is the artifact's uncompressed payload (a `tar.gz`'s tar). Records written
    /// before this field existed hold a `tar.gz` as downloaded: they still load, gunzipped
    /// and hashed on each use.
    #[serde(default)]
    payload: bool,
    /// The file's metadata just after it was kept; absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stamp: Option<FileStamp>,
}

impl BaseRecord {
    /// Whether the file is the payload a patch applies to, byte for byte.
    fn is_payload(&self) -> bool {
        self.payload || self.format != Format::TarGz
    }
}

/// The metadata that changes when a file is rewritten or replaced: size, modification time
/// and (on Unix) device and inode. Not a security check (anyone who can write the file can
/// restore its mtime): it only says when hashing the base up front is worth it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileStamp {
    len: u64,
    modified_secs: u64,
    modified_nanos: u32,
    device: u64,
    inode: u64,
}

impl FileStamp {
    fn of(m: &fs::Metadata) -> Option<Self> {
        let modified = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        Some(Self {
            len: m.len(),
            modified_secs: modified.as_secs(),
            modified_nanos: modified.subsec_nanos(),
            device,
            inode,
        })
    }
}

/// One copy of the installed version's payload (for a `tar.gz`, the tar inside it; for
/// every other format, the artifact) in `<data_dir>/delta-base/`, the base the next patch
/// applies to. At most one version is kept: keeping a new one removes the old.
///
/// What is checked when: the file's size and SHA-256 are recorded when it is kept, from a
/// file already verified against a signed manifest (the downloaded artifact, gunzipped
/// while it is hashed, or a patched result whose digest matched). Before a patch is
/// downloaded, the record must name the patch's base (version, platform, arch, format, size
/// and SHA-256: [`FallbackReason::NoBase`] or [`FallbackReason::BaseMismatch`]). If the
/// file's size, modification time or inode changed since it was kept, it is hashed then,
/// before the download ([`FallbackReason::BaseModified`]); if not, it is read without
/// hashing. That is safe because nothing from the base reaches an install unchecked: the
/// result of applying the patch must have the signed manifest's `resultSha256`, and a base
/// changed behind unchanged metadata yields another result, refused. When a result is
/// refused, the base that was not hashed is hashed then, so the fallback says
/// `base-modified` when that was the cause.
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

/// The kept base named by a patch, checked without reading it ([`KeptBase::open`]).
#[derive(Debug)]
pub struct KeptFile {
    path: PathBuf,
    record: BaseRecord,
    unchanged: bool,
}

/// The kept base's payload in memory, ready for [`apply_to_file`].
#[derive(Debug)]
pub struct LoadedBase {
    bytes: Vec<u8>,
    /// Hashed when it was loaded (else trusted by its unchanged metadata).
    hashed: bool,
    path: PathBuf,
    size: u64,
    sha256: String,
}

impl LoadedBase {
    /// `bytes`, checked now against the base `patch` was made for.
    pub fn checked(patch: &Patch, bytes: Vec<u8>) -> Result<Self, DeltaError> {
        check_base(patch, &bytes)?;
        Ok(Self {
            bytes,
            hashed: true,
            path: PathBuf::from("<base>"),
            size: patch.base_size,
            sha256: patch.base_sha256.clone(),
        })
    }

    /// The payload.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether its digest was computed when it was loaded.
    pub fn hashed(&self) -> bool {
        self.hashed
    }

    /// After a refused result: the base's own digest, when it differs from the one it had
    /// when it was kept (the cause to report).
    fn modified_since_kept(&self) -> Option<DeltaError> {
        if self.hashed {
            return None;
        }
        let actual_sha256 = sha256_hex(&self.bytes);
        let actual_size = self.bytes.len() as u64;
        (actual_size != self.size || actual_sha256 != self.sha256).then(|| {
            DeltaError::KeptBaseModified {
                path: self.path.clone(),
                expected_size: self.size,
                expected_sha256: self.sha256.clone(),
                actual_size,
                actual_sha256,
            }
        })
    }
}

/// Whether the file at `path` starts as a gzip stream does.
fn is_gzip(path: &Path) -> Result<bool, DeltaError> {
    let mut magic = [0u8; 2];
    let mut f = fs::File::open(path).map_err(at(path))?;
    let n = fill(&mut f, &mut magic).map_err(at(path))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
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

    /// Puts the payload of `staged` (a verified file for `version` of `artifact`, `size`
    /// bytes with SHA-256 `sha256`) beside the kept base, so the install may consume the
    /// staged file: a `tar.gz` is gunzipped (its tar hashed as it is written), any other file
    /// (or the tar a patch produced) is hard-linked (copied across file systems).
    pub fn prepare(
        &self,
        staged: &Path,
        version: &Version,
        artifact: &Artifact,
        size: u64,
        sha256: &[u8; 32],
    ) -> Result<PendingBase, DeltaError> {
        fs::create_dir_all(&self.dir).map_err(at(&self.dir))?;
        let gzipped = artifact.format == Format::TarGz && is_gzip(staged)?;
        let file = match artifact.format {
            Format::TarGz => format!("{version}.tar"),
            other => format!("{version}.{}", other.as_str()),
        };
        let path = self.dir.join(format!(".pending-{file}"));
        let _ = fs::remove_file(&path);
        let (size, sha256) = if gzipped {
            gunzip_to(staged, &path).inspect_err(|_| {
                let _ = fs::remove_file(&path);
            })?
        } else {
            if fs::hard_link(staged, &path).is_err() {
                fs::copy(staged, &path).map_err(at(&path))?;
            }
            (size, hex::encode(sha256))
        };
        Ok(PendingBase {
            path,
            record: BaseRecord {
                version: version.clone(),
                platform: artifact.platform,
                arch: artifact.arch,
                format: artifact.format,
                file,
                size,
                sha256,
                payload: true,
                stamp: None,
            },
        })
    }

    /// Makes `pending` the kept base (after its install succeeded) and removes the old one.
    pub fn commit(&self, mut pending: PendingBase) -> Result<(), DeltaError> {
        let old = self.record();
        let final_path = self.dir.join(&pending.record.file);
        fs::rename(&pending.path, &final_path).map_err(at(&final_path))?;
        pending.record.stamp = fs::metadata(&final_path)
            .ok()
            .and_then(|m| FileStamp::of(&m));
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

    /// The kept base for `patch`, checked without reading it: refused when no base of the
    /// patch's version/platform/arch/format is kept ([`FallbackReason::NoBase`]) or when the
    /// recorded payload is not the one the patch was made for
    /// ([`FallbackReason::BaseMismatch`]).
    pub fn open(&self, patch: &Patch) -> Result<KeptFile, (FallbackReason, String)> {
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
        let meta = fs::metadata(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => (
                FallbackReason::NoBase,
                format!("the kept copy {} is missing", path.display()),
            ),
            _ => (FallbackReason::IoError, at(&path)(e).to_string()),
        })?;
        if rec.is_payload() && (rec.size != patch.base_size || rec.sha256 != patch.base_sha256) {
            return Err((
                FallbackReason::BaseMismatch,
                format!(
                    "the kept copy of {} is {} bytes sha256 {}, the patch applies to {} bytes sha256 {}",
                    rec.version, rec.size, rec.sha256, patch.base_size, patch.base_sha256
                ),
            ));
        }
        let unchanged = rec.is_payload()
            && rec.stamp.is_some()
            && FileStamp::of(&meta).as_ref() == rec.stamp.as_ref();
        Ok(KeptFile {
            path,
            record: rec,
            unchanged,
        })
    }

    /// [`open`](Self::open), then [`KeptFile::load`].
    pub fn load(&self, patch: &Patch) -> Result<LoadedBase, (FallbackReason, String)> {
        self.open(patch)?.load(patch)
    }
}

impl KeptFile {
    /// Whether the file's metadata is what it was when it was kept (then [`load`](Self::load)
    /// reads it without hashing it).
    pub fn unchanged(&self) -> bool {
        self.unchanged
    }

    /// The payload, for `patch` (the one it was opened for): read as it is when its metadata
    /// is unchanged; otherwise hashed, and refused when it changed since it was kept
    /// ([`FallbackReason::BaseModified`]). A record of an older version (a kept `tar.gz`)
    /// is gunzipped while the file is hashed, and its payload checked against the patch.
    pub fn load(self, patch: &Patch) -> Result<LoadedBase, (FallbackReason, String)> {
        let path = &self.path;
        let rec = &self.record;
        let io = |e: DeltaError| (FallbackReason::IoError, e.to_string());
        let file = fs::File::open(path).map_err(|e| io(at(path)(e)))?;
        let mut reader = HashingReader {
            inner: file,
            hasher: (!self.unchanged).then(Sha256::new),
            read: 0,
        };
        let format = if rec.is_payload() {
            Format::AppImage // read as it is
        } else {
            rec.format
        };
        let payload = read_payload_from(&mut reader, format, path, rec.size);
        // Drain what the decoder left (a trailer) so the file's digest covers every byte.
        let drained = io::copy(&mut reader, &mut io::sink()).map_err(at(path));
        let file_size = reader.read;
        let file_sha256 = reader.hasher.map(|h| hex::encode(h.finalize()));
        if file_size != rec.size || file_sha256.as_ref().is_some_and(|d| *d != rec.sha256) {
            return Err((
                FallbackReason::BaseModified,
                format!(
                    "the kept copy {} changed since it was kept: {} bytes sha256 {}, was {} bytes sha256 {}",
                    path.display(),
                    file_size,
                    file_sha256.as_deref().unwrap_or("(not hashed)"),
                    rec.size,
                    rec.sha256
                ),
            ));
        }
        let payload = payload.map_err(io)?;
        drained.map_err(io)?;
        if !rec.is_payload() {
            check_base(patch, &payload)
                .map_err(|e| (FallbackReason::BaseMismatch, e.to_string()))?;
        }
        Ok(LoadedBase {
            bytes: payload,
            hashed: !self.unchanged,
            path: self.path,
            size: patch.base_size,
            sha256: patch.base_sha256.clone(),
        })
    }
}

/// Gunzips the verified `tar.gz` at `src` into `dest`: the tar's size and SHA-256.
fn gunzip_to(src: &Path, dest: &Path) -> Result<(u64, String), DeltaError> {
    let input = fs::File::open(src).map_err(at(src))?;
    let mut gz = flate2::read::GzDecoder::new(BufReader::with_capacity(1 << 20, input))
        .take(MAX_ARTIFACT_SIZE + 1);
    let out = fs::File::create(dest).map_err(at(dest))?;
    let mut w = HashingWriter {
        inner: io::BufWriter::with_capacity(1 << 20, out),
        hasher: Sha256::new(),
        written: 0,
    };
    io::copy(&mut gz, &mut w).map_err(at(src))?;
    w.flush().map_err(at(dest))?;
    if w.written > MAX_ARTIFACT_SIZE {
        return Err(DeltaError::TooLarge(src.to_path_buf()));
    }
    Ok((w.written, hex::encode(w.hasher.finalize())))
}

/// Counts what is read through it, and hashes it when it has a hasher.
struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
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

/// The payload read from `r` (a file of `format`, about `size_hint` bytes), refusing more
/// than [`MAX_ARTIFACT_SIZE`].
fn read_payload_from(
    r: impl Read,
    format: Format,
    path: &Path,
    size_hint: u64,
) -> Result<Vec<u8>, DeltaError> {
    let limit = MAX_ARTIFACT_SIZE + 1;
    let n = match format {
        Format::TarGz => {
            let mut out = Vec::new();
            let n = flate2::read::GzDecoder::new(BufReader::new(r))
                .take(limit)
                .read_to_end(&mut out);
            n.map(|n| (n, out))
        }
        _ => {
            let mut out = Vec::with_capacity(size_hint.min(MAX_ARTIFACT_SIZE) as usize + 1);
            let mut r = r.take(limit);
            r.read_to_end(&mut out).map(|n| (n, out))
        }
    }
    .map_err(at(path))?;
    if n.0 as u64 > MAX_ARTIFACT_SIZE {
        return Err(DeltaError::TooLarge(path.to_path_buf()));
    }
    Ok(n.1)
}

/// Applies the patch in the file `patch_path` (whose size and SHA-256 the caller checked
/// against the signed manifest) to `base` and writes its result, the payload, at `out`
/// (for a `tar.gz`, the tar, which the installer extracts as it is). The result's size and
/// SHA-256 must be the signed manifest's (hashed in the same pass as it is decoded and
/// written); when they are not and `base` was not hashed when it was loaded, it is hashed
/// then, and a base changed since it was kept is the error reported
/// ([`DeltaError::KeptBaseModified`]). On failure `out` is removed. Returns the result's
/// size and SHA-256.
pub fn apply_to_file(
    patch: &Patch,
    base: &LoadedBase,
    patch_path: &Path,
    out: &Path,
) -> Result<(u64, [u8; 32]), DeltaError> {
    let result = (|| {
        let patch_file = fs::File::open(patch_path).map_err(at(patch_path))?;
        let mut file = fs::File::create(out).map_err(at(out))?;
        let digest = decode_checked(patch, &base.bytes, patch_file, &mut file)?;
        Ok((patch.result_size, digest))
    })();
    match result {
        Ok(r) => Ok(r),
        Err(e) => {
            let _ = fs::remove_file(out);
            let refused = matches!(
                e,
                DeltaError::Decode(_)
                    | DeltaError::Zstd(_)
                    | DeltaError::ResultTooLarge { .. }
                    | DeltaError::ResultMismatch { .. }
            );
            Err(refused
                .then(|| base.modified_since_kept())
                .flatten()
                .unwrap_or(e))
        }
    }
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

    /// `bytes` as the artifact `name` of `format` in `dir`, and its manifest entry.
    fn artifact_file(dir: &Path, name: &str, format: Format, bytes: &[u8]) -> (PathBuf, Artifact) {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        let art = Artifact {
            platform: Platform::Linux,
            arch: Arch::X64,
            format,
            url: name.into(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            sigstore_bundle: None,
        };
        (path, art)
    }

    /// Keeps `bytes` (an artifact of `format`) as 0.1.0's base under `data`.
    fn keep(data: &Path, format: Format, bytes: &[u8]) -> KeptBase {
        let (path, art) = artifact_file(data, "staged", format, bytes);
        let kept = KeptBase::new(data);
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let pending = kept
            .prepare(&path, &"0.1.0".parse().unwrap(), &art, art.size, &digest)
            .unwrap();
        kept.commit(pending).unwrap();
        kept
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// A base kept as 0.1.0's under `dir`, a target, and the patch between them (its file
    /// and its manifest entry).
    fn kept_pair(dir: &Path) -> (Vec<u8>, Vec<u8>, PathBuf, Patch, KeptBase) {
        let (base, target) = pair();
        let bytes = create_patch(&base, &target, 3).unwrap();
        let (patch_path, _) = artifact_file(dir, "p.zst", Format::AppImage, &bytes);
        let p = patch_of(&base, &target, &bytes);
        let kept = keep(dir, Format::AppImage, &base);
        (base, target, patch_path, p, kept)
    }

    fn kept_file(kept: &KeptBase) -> PathBuf {
        kept.dir().join(kept.record().unwrap().file)
    }

    #[test]
    fn an_unchanged_kept_base_is_read_unhashed_and_the_result_still_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (_, target, patch_path, p, kept) = kept_pair(dir.path());
        let opened = kept.open(&p).unwrap();
        assert!(opened.unchanged());
        let loaded = opened.load(&p).unwrap();
        assert!(!loaded.hashed());
        let out = dir.path().join("out");
        let (size, digest) = apply_to_file(&p, &loaded, &patch_path, &out).unwrap();
        assert_eq!(
            (size, hex::encode(digest)),
            (p.result_size, p.result_sha256)
        );
        assert_eq!(fs::read(&out).unwrap(), target);
    }

    #[test]
    fn a_base_modified_behind_unchanged_metadata_is_caught_by_the_result_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (base, _, patch_path, p, kept) = kept_pair(dir.path());
        // One byte changed in place, the modification time put back: same size, inode, mtime.
        let file = kept_file(&kept);
        let mtime = fs::metadata(&file).unwrap().modified().unwrap();
        let mut f = fs::OpenOptions::new().write(true).open(&file).unwrap();
        io::Seek::seek(&mut f, io::SeekFrom::Start(500)).unwrap();
        f.write_all(&[base[500] ^ 1]).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        let loaded = kept.load(&p).unwrap();
        assert!(!loaded.hashed(), "the metadata looks unchanged");
        let out = dir.path().join("out");
        let err = apply_to_file(&p, &loaded, &patch_path, &out).unwrap_err();
        assert!(matches!(err, DeltaError::KeptBaseModified { .. }), "{err}");
        assert_eq!(FallbackReason::of(&err), FallbackReason::BaseModified);
        assert!(!out.exists(), "a refused result is removed");
    }

    #[test]
    fn a_kept_base_whose_metadata_changed_is_hashed_and_refused_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let (base, target) = pair();
        let bytes = create_patch(&base, &target, 3).unwrap();
        let p = patch_of(&base, &target, &bytes);
        let kept = keep(dir.path(), Format::AppImage, &base);
        let mut changed = base.clone();
        changed[7] ^= 1;
        let file = kept_file(&kept);
        fs::remove_file(&file).unwrap();
        fs::write(&file, &changed).unwrap();
        let opened = kept.open(&p).unwrap();
        assert!(!opened.unchanged());
        let (reason, message) = opened.load(&p).unwrap_err();
        assert_eq!(reason, FallbackReason::BaseModified, "{message}");
        // A patch made for another base is refused from the record alone.
        let mut other = p.clone();
        other.base_sha256 = sha256_hex(b"another build");
        let (reason, _) = kept.open(&other).unwrap_err();
        assert_eq!(reason, FallbackReason::BaseMismatch);
    }

    #[test]
    fn a_tar_gz_is_kept_as_its_tar_and_an_older_kept_tar_gz_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (base, target) = pair();
        let bytes = create_patch(&base, &target, 3).unwrap();
        let mut p = patch_of(&base, &target, &bytes);
        p.format = Format::TarGz;
        let kept = keep(dir.path(), Format::TarGz, &gzip(&base));
        assert_eq!(fs::read(kept_file(&kept)).unwrap(), base, "kept as the tar");
        let loaded = kept.load(&p).unwrap();
        assert_eq!(loaded.bytes(), &base[..]);
        assert!(!loaded.hashed());

        // What an older version kept: the tar.gz as downloaded, a record without the
        // payload flag or the metadata stamp.
        let old = tempfile::tempdir().unwrap();
        let kept = KeptBase::new(old.path());
        fs::create_dir_all(kept.dir()).unwrap();
        let gz = gzip(&base);
        fs::write(kept.dir().join("0.1.0.tar.gz"), &gz).unwrap();
        let record = serde_json::json!({
            "version": "0.1.0", "platform": "linux", "arch": "x64", "format": "tar.gz",
            "file": "0.1.0.tar.gz", "size": gz.len(), "sha256": sha256_hex(&gz),
        });
        fs::write(kept.dir().join(BASE_RECORD), record.to_string()).unwrap();
        let loaded = kept.load(&p).unwrap();
        assert!(loaded.hashed());
        assert_eq!(loaded.bytes(), &base[..]);
        let mut wrong = p.clone();
        wrong.base_sha256 = sha256_hex(b"another build");
        assert_eq!(
            kept.load(&wrong).unwrap_err().0,
            FallbackReason::BaseMismatch
        );
    }

    #[test]
    fn window_covers_base_and_result() {
        assert_eq!(window_log(0, 0), MIN_WINDOW_LOG);
        assert_eq!(window_log(1 << 20, 1 << 20), 21);
        assert_eq!(window_log((1 << 20) + 1, 1 << 20), 22);
        assert_eq!(window_log(u64::MAX, 1), MAX_WINDOW_LOG);
    }
}
