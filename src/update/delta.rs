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

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{Format, Patch, MAX_ARTIFACT_SIZE};

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
    let mut out = Vec::new();
    let limit = MAX_ARTIFACT_SIZE + 1;
    let n = match format {
        Format::TarGz => flate2::read::GzDecoder::new(BufReader::new(file))
            .take(limit)
            .read_to_end(&mut out),
        _ => file.take(limit).read_to_end(&mut out),
    }
    .map_err(at(path))?;
    if n as u64 > MAX_ARTIFACT_SIZE {
        return Err(DeltaError::TooLarge(path.to_path_buf()));
    }
    Ok(out)
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
