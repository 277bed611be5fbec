//! Artifact download: streaming, bounded, hashed while streaming, resumable, into staging.
//!
//! Owns the path from an artifact URL to a verified file in
//! `<data_dir>/staging/<version>/<file>`:
//!
//! * never more than the manifest's `size` bytes are accepted (endless-data attack): the
//!   download stops the moment one byte too many arrives ([`DownloadError::TooMuchData`]);
//! * SHA-256 is computed while streaming: the network task gathers the body's chunks
//!   (shared, never copied) into batches of about 1 MiB, and one blocking thread hashes
//!   and writes each batch (overlapping the transfer; memory stays bounded by a small
//!   batch queue). The file is never fsynced here: on Linux the written ranges are handed
//!   to writeback as the transfer runs (`posix_fadvise(DONTNEED)`, which starts writing
//!   dirty pages without waiting), so the installer's one `fsync` finds little left to
//!   write; a staged file is hashed again before it is reused after a restart (a crash
//!   cannot make a torn file pass);
//! * a wrong size or hash deletes the partial file and names expected and actual values;
//! * an interrupted download resumes with `Range: bytes=N-` and `If-Range`; a server that
//!   ignores `Range` (200) means starting over from byte 0 (truncate, never append), and a
//!   `206` whose `Content-Range` does not start at `N` is refused and restarted;
//! * one exclusive lock file per data dir, so two app instances never download at once
//!   (the second gets [`DownloadError::Busy`] or waits, per [`LockMode`]);
//! * connect and stall timeouts (no bytes for `stall_timeout`), retries with exponential,
//!   seedable backoff; free disk space is checked before starting;
//! * progress at most every 100 ms, and a final one.
//!
//! It refuses to decide *whether* an artifact is trusted beyond its pinned SHA-256: the
//! manifest that pins it was verified by `check`, and the Sigstore hook lives in `updater`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::manifest::Artifact;
use crate::error::{IoContext, PathIoError};
use crate::net;

/// The lock file's name inside the staging folder.
pub const LOCK_FILE: &str = "download.lock";
/// Extension of a partial download.
pub const PART_SUFFIX: &str = ".part";
/// Least time between two progress events.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Bytes of body chunks the network task gathers before handing them to the sink thread
/// (one wake-up of that thread per batch, not per chunk).
const BATCH_BYTES: usize = 1024 * 1024;
/// Batches queued between the network task and the sink thread (bounds memory: the queue
/// holds at most this many batches of about [`BATCH_BYTES`]).
const QUEUE_BATCHES: usize = 8;
/// Bytes written between two writeback kicks of the written range.
const WRITEBACK_BYTES: u64 = 8 * 1024 * 1024;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Another process (or updater) holds the staging lock.
    #[error("another download is running (lock {path} is held); try again later")]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// The server answered with an error status.
    #[error("download server answered {status} for {url}{}", retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    HttpStatus {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Seconds from `Retry-After`, if given.
        retry_after: Option<u64>,
    },
    /// The connection failed or broke.
    #[error("download of {url} failed: {}", crate::error::chain(source))]
    Network {
        /// The URL (empty when the HTTP client itself could not be built).
        url: String,
        /// What happened.
        #[source]
        source: reqwest::Error,
    },
    /// No bytes arrived for too long.
    #[error("download of {url} stalled: no data for {seconds} s")]
    Stalled {
        /// The URL.
        url: String,
        /// The stall timeout.
        seconds: u64,
    },
    /// More bytes than the manifest's size arrived (endless-data attack).
    #[error("server sent more than the {limit} bytes the manifest allows: refused (endless-data protection)")]
    TooMuchData {
        /// The manifest's size.
        limit: u64,
    },
    /// The body ended before the manifest's size.
    #[error("download ended at {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        /// The manifest's size.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// The file's SHA-256 is not the one the manifest pins.
    #[error("SHA-256 of {path} is {actual}, the manifest pins {expected}: file deleted")]
    ChecksumMismatch {
        /// Digest from the manifest.
        expected: String,
        /// Digest of the bytes received.
        actual: String,
        /// The (deleted) file.
        path: PathBuf,
    },
    /// A `206` that does not continue where the partial file ends.
    #[error(
        "server answered a range request for byte {expected_start} with {content_range:?}: refused"
    )]
    BadRange {
        /// Where the partial file ends.
        expected_start: u64,
        /// The `Content-Range` received.
        content_range: String,
    },
    /// Not enough free disk space.
    #[error("not enough free space in {path}: {needed} bytes needed, {available} available")]
    InsufficientSpace {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
        /// The staging folder.
        path: PathBuf,
    },
    /// The manifest's digest is not 64 hex characters.
    #[error("artifact digest {0:?} is not a SHA-256 in hex")]
    BadDigest(String),
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<PathIoError> for DownloadError {
    fn from(e: PathIoError) -> Self {
        DownloadError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl DownloadError {
    /// Whether another attempt (resuming) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DownloadError::Network { .. }
            | DownloadError::Stalled { .. }
            | DownloadError::BadRange { .. } => true,
            DownloadError::HttpStatus { status, .. } => {
                net::classify(*status) == net::Verdict::Retry
            }
            _ => false,
        }
    }

    /// A stable code for bindings.
    pub fn code(&self) -> &'static str {
        match self {
            DownloadError::Busy { .. } => "ERR_UPDATER_BUSY",
            DownloadError::HttpStatus { .. } => "ERR_UPDATER_HTTP_STATUS",
            DownloadError::Network { .. } => "ERR_UPDATER_NETWORK",
            DownloadError::Stalled { .. } => "ERR_UPDATER_STALLED",
            DownloadError::TooMuchData { .. } => "ERR_UPDATER_TOO_MUCH_DATA",
            DownloadError::SizeMismatch { .. } => "ERR_UPDATER_SIZE_MISMATCH",
            DownloadError::ChecksumMismatch { .. } => "ERR_UPDATER_CHECKSUM_MISMATCH",
            DownloadError::BadRange { .. } => "ERR_UPDATER_BAD_RANGE",
            DownloadError::InsufficientSpace { .. } => "ERR_UPDATER_DISK_FULL",
            DownloadError::BadDigest(_) => "ERR_UPDATER_BAD_DIGEST",
            DownloadError::Io { .. } => "ERR_UPDATER_IO",
        }
    }
}

/// What to do when another download holds the staging lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockMode {
    /// Fail at once with [`DownloadError::Busy`].
    #[default]
    Fail,
    /// Wait until the other download finishes.
    Wait,
}

/// How often and how patiently a download is retried: up to `max_attempts` attempts, the
/// waits between them an exponential backoff with full jitter ([`net::Backoff`]) from
/// `initial_delay` up to `max_delay`, or the server's `Retry-After` (capped at `max_delay`).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Ceiling of the wait before the second attempt (doubled per further failure).
    pub initial_delay: Duration,
    /// Largest wait.
    pub max_delay: Duration,
    /// Seed of the jitter (a fixed seed gives a fixed sequence of waits).
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            seed: net::os_seed(),
        }
    }
}

impl RetryPolicy {
    /// The backoff that spaces the attempts of one download.
    pub fn backoff(&self) -> net::Backoff {
        net::Backoff::with_rng(
            net::BackoffPolicy {
                base: self.initial_delay,
                max: self.max_delay,
            },
            net::SplitMix64::new(self.seed),
        )
    }
}

/// How downloads are done.
#[derive(Debug, Clone)]
pub struct DownloadConfig {
    /// The staging folder (`<data_dir>/staging`).
    pub staging_dir: PathBuf,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest time without a single byte before the attempt is abandoned.
    pub stall_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// What to do when another download runs.
    pub lock_mode: LockMode,
    /// Extra free space required beyond the artifact (bytes).
    pub space_margin: u64,
    /// User-Agent.
    pub user_agent: String,
}

impl DownloadConfig {
    /// Defaults for a data dir: staging under `<data_dir>/staging`.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        Self {
            staging_dir: data_dir.as_ref().join("staging"),
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            lock_mode: LockMode::Fail,
            space_margin: 16 * 1024 * 1024,
            user_agent: format!("railgun/{} (update-download)", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A progress report (`download-progress` in the updater's events).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// 0–100.
    pub percent: f64,
    /// Bytes of the file present so far (resumed bytes included).
    pub transferred: u64,
    /// The file's size.
    pub total: u64,
    /// Transfer rate of this session.
    pub bytes_per_second: u64,
}

/// A verified file in staging.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its SHA-256 (the raw digest, for Sigstore and other verifiers).
    pub sha256: [u8; 32],
    /// Bytes fetched over the network in this call (less than `size` after a resume).
    pub bytes_fetched: u64,
    /// Byte the last successful attempt started at (0 unless resumed).
    pub resumed_from: u64,
    /// Attempts used.
    pub attempts: u32,
}

/// Sidecar of a partial download: what it is and the validator for `If-Range`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct PartMeta {
    url: String,
    sha256: String,
    size: u64,
    validator: Option<String>,
}

/// The exclusive staging lock; released on drop.
#[derive(Debug)]
pub struct StagingLock {
    _file: File,
    path: PathBuf,
}

impl StagingLock {
    /// Takes the lock in `staging_dir`, failing with `Busy` or waiting per `mode`.
    pub async fn acquire(staging_dir: &Path, mode: LockMode) -> Result<Self, DownloadError> {
        fs::create_dir_all(staging_dir).at(staging_dir)?;
        let path = staging_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(fs::TryLockError::WouldBlock) => match mode {
                LockMode::Fail => Err(DownloadError::Busy { path }),
                LockMode::Wait => {
                    let p = path.clone();
                    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                        .await
                        .map_err(|e| DownloadError::Io {
                            path: p.clone(),
                            source: std::io::Error::other(e),
                        })?
                        .at(&p)?;
                    Ok(Self { _file: file, path })
                }
            },
            Err(fs::TryLockError::Error(e)) => Err(PathIoError::new(path, e).into()),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Downloads artifacts into staging.
#[derive(Debug, Clone)]
pub struct Downloader {
    config: DownloadConfig,
    http: reqwest::Client,
}

/// One attempt that received the whole body.
struct Attempt {
    /// Bytes fetched over the network in this attempt.
    fetched: u64,
    /// Byte of the file the attempt started at (0 unless resumed).
    started_at: u64,
    /// SHA-256 of the whole file (resumed prefix included).
    digest: [u8; 32],
}

/// One attempt that failed, with the bytes it fetched before failing.
struct Failed {
    error: DownloadError,
    fetched: u64,
}

impl From<DownloadError> for Failed {
    fn from(error: DownloadError) -> Self {
        Failed { error, fetched: 0 }
    }
}

/// What the answer to a download request means for the part file (see [`resume_offset`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Write the body from this byte of the file: 0 starts over (the file is truncated,
    /// never appended to), `have` continues the partial file.
    WriteFrom(u64),
    /// A `206` that does not continue at the partial file's end, or whose total is not the
    /// artifact's size: refused (the partial file is discarded and the download restarts).
    BadRange {
        /// The `Content-Range` received (empty when missing).
        content_range: String,
    },
    /// `416`: the partial file does not fit the server's file: start over.
    NotSatisfiable,
    /// Any other status: an HTTP error.
    Status(u16),
}

/// The resume rule (pure): where the body of an answer goes, given the status and headers
/// of the answer, the `have` bytes of the partial file the request asked to continue, and
/// the artifact's `size`.
///
/// * `200`: the whole file, from byte 0, whether a range was asked for or not (a server
///   that ignores `Range`, or whose file changed so `If-Range` did not match);
/// * `206` with `Content-Range: bytes have-…/size` (or `/*`): continue at `have`;
/// * `206` starting elsewhere, with another total, or without a readable `Content-Range`:
///   refused, [`Resume::BadRange`];
/// * `416`: [`Resume::NotSatisfiable`]; anything else: [`Resume::Status`].
pub fn resume_offset(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    have: u64,
    size: u64,
) -> Resume {
    match status {
        200 => Resume::WriteFrom(0),
        206 => {
            let cr = headers
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match parse_content_range(cr) {
                Some((start, total)) if start == have && total.is_none_or(|t| t == size) => {
                    Resume::WriteFrom(have)
                }
                _ => Resume::BadRange {
                    content_range: cr.to_string(),
                },
            }
        }
        416 => Resume::NotSatisfiable,
        other => Resume::Status(other),
    }
}

/// The headers that ask to continue a partial file of `have` bytes: `Range: bytes=have-`,
/// and `If-Range` with the validator of the first answer, so a changed file comes whole.
pub fn resume_headers(have: u64, validator: Option<&str>) -> reqwest::header::HeaderMap {
    use reqwest::header::{HeaderMap, HeaderValue, IF_RANGE, RANGE};
    let mut h = HeaderMap::new();
    if have > 0 {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes={have}-")) {
            h.insert(RANGE, v);
        }
        if let Some(v) = validator.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(IF_RANGE, v);
        }
    }
    h
}

impl Downloader {
    /// A downloader with its own HTTP client (connect timeout, no total timeout).
    pub fn new(config: DownloadConfig) -> Result<Self, DownloadError> {
        let http = net::client(&config.user_agent, config.connect_timeout, None).map_err(|e| {
            DownloadError::Network {
                url: String::new(),
                source: e,
            }
        })?;
        Ok(Self { config, http })
    }

    /// Uses this HTTP client instead (its timeouts apply; the stall timeout still does).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &DownloadConfig {
        &self.config
    }

    /// `staging/<version>/`.
    pub fn version_dir(&self, version: &Version) -> PathBuf {
        self.config.staging_dir.join(version.to_string())
    }

    /// Removes the staging folder of `version` (after install, or to discard).
    pub fn discard(&self, version: &Version) -> Result<(), DownloadError> {
        let dir = self.version_dir(version);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PathIoError::new(dir, e).into()),
        }
    }

    /// Downloads `artifact` from `url` into `staging/<version>/`, verified.
    ///
    /// `progress` is called at most every 100 ms, and once at the end.
    pub async fn download(
        &self,
        url: &Url,
        artifact: &Artifact,
        version: &Version,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Downloaded, DownloadError> {
        let expected = parse_digest(&artifact.sha256)?;
        let _lock = StagingLock::acquire(&self.config.staging_dir, self.config.lock_mode).await?;
        let dir = self.version_dir(version);
        fs::create_dir_all(&dir).at(&dir)?;
        let name = file_name_for(url, artifact);
        let final_path = dir.join(&name);
        let part = dir.join(format!("{name}{PART_SUFFIX}"));
        let meta_path = dir.join(format!("{name}{PART_SUFFIX}.json"));

        // A complete file from an earlier run: verify it and skip the network.
        if final_path.is_file() {
            let (size, digest) = hash_file(&final_path)?;
            if size == artifact.size && digest == expected {
                progress(final_progress(size, 0, Duration::ZERO));
                return Ok(Downloaded {
                    path: final_path,
                    size,
                    sha256: digest,
                    bytes_fetched: 0,
                    resumed_from: size,
                    attempts: 0,
                });
            }
            fs::remove_file(&final_path).at(&final_path)?;
        }

        let mut meta = read_meta(&meta_path);
        let fresh = PartMeta {
            url: url.to_string(),
            sha256: artifact.sha256.clone(),
            size: artifact.size,
            validator: None,
        };
        let existing = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if meta.as_ref().is_none_or(|m| {
            m.sha256 != fresh.sha256 || m.size != fresh.size || existing > artifact.size
        }) {
            remove_quiet(&part);
            meta = None;
        }
        let already = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        self.check_space(artifact.size.saturating_sub(already))?;

        let mut meta = meta.unwrap_or(fresh);
        let mut backoff = self.config.retry.backoff();
        let mut attempt = 0u32;
        let mut restarted_after_mismatch = false;
        let mut fetched_total = 0u64;
        loop {
            attempt += 1;
            let result = self
                .attempt(url, artifact, &part, &mut meta, &meta_path, progress)
                .await;
            match result {
                Ok(Attempt {
                    fetched,
                    started_at,
                    digest,
                }) => {
                    fetched_total += fetched;
                    // Size on disk, then the digest computed while streaming.
                    let size = fs::metadata(&part).at(&part)?.len();
                    if size != artifact.size {
                        remove_quiet(&part);
                        remove_quiet(&meta_path);
                        return Err(DownloadError::SizeMismatch {
                            expected: artifact.size,
                            actual: size,
                        });
                    }
                    if digest != expected {
                        remove_quiet(&part);
                        remove_quiet(&meta_path);
                        if started_at > 0 && !restarted_after_mismatch {
                            // The resumed prefix may be what is wrong: one restart from 0.
                            restarted_after_mismatch = true;
                            meta.validator = None;
                            continue;
                        }
                        return Err(DownloadError::ChecksumMismatch {
                            expected: artifact.sha256.clone(),
                            actual: hex::encode(digest),
                            path: part,
                        });
                    }
                    fs::rename(&part, &final_path).at(&final_path)?;
                    remove_quiet(&meta_path);
                    return Ok(Downloaded {
                        path: final_path,
                        size,
                        sha256: digest,
                        bytes_fetched: fetched_total,
                        resumed_from: started_at,
                        attempts: attempt,
                    });
                }
                Err(Failed { error: e, fetched }) => {
                    fetched_total += fetched;
                    match &e {
                        DownloadError::TooMuchData { .. } | DownloadError::SizeMismatch { .. } => {
                            remove_quiet(&part);
                            remove_quiet(&meta_path);
                        }
                        DownloadError::BadRange { .. } => {
                            remove_quiet(&part);
                            meta.validator = None;
                        }
                        _ => {}
                    }
                    if !e.is_retryable() || attempt >= self.config.retry.max_attempts {
                        return Err(e);
                    }
                    let retry_after = match &e {
                        DownloadError::HttpStatus {
                            retry_after: Some(s),
                            ..
                        } => Some(Duration::from_secs(*s)),
                        _ => None,
                    };
                    let delay = backoff.fail(retry_after);
                    tracing::debug!(error = %e, ?delay, attempt, "download attempt failed, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn check_space(&self, needed: u64) -> Result<(), DownloadError> {
        let dir = &self.config.staging_dir;
        let available = fs4::available_space(dir).at(dir)?;
        let needed = needed.saturating_add(self.config.space_margin);
        if available < needed {
            return Err(DownloadError::InsufficientSpace {
                needed,
                available,
                path: dir.clone(),
            });
        }
        Ok(())
    }

    /// One HTTP request: ask (resuming when a partial file exists), decide where the body
    /// goes, then receive it into the writer and the hasher.
    async fn attempt(
        &self,
        url: &Url,
        artifact: &Artifact,
        part: &Path,
        meta: &mut PartMeta,
        meta_path: &Path,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Attempt, Failed> {
        let limit = artifact.size;
        let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let stall = self.config.stall_timeout;
        let req = self
            .http
            .get(url.clone())
            .headers(resume_headers(have, meta.validator.as_deref()));
        let mut resp = tokio::time::timeout(stall, req.send())
            .await
            .map_err(|_| stalled(url, stall))?
            .map_err(|e| network(url, e))?;
        let start = match resume_offset(resp.status().as_u16(), resp.headers(), have, limit) {
            Resume::WriteFrom(start) => start,
            Resume::BadRange { content_range } => {
                return Err(DownloadError::BadRange {
                    expected_start: have,
                    content_range,
                }
                .into())
            }
            Resume::NotSatisfiable => {
                // Our partial file does not fit the server's: start over.
                remove_quiet(part);
                return Err(DownloadError::BadRange {
                    expected_start: have,
                    content_range: "416".into(),
                }
                .into());
            }
            Resume::Status(status) => {
                return Err(DownloadError::HttpStatus {
                    url: url.to_string(),
                    status,
                    retry_after: net::retry_after_secs(resp.headers()),
                }
                .into())
            }
        };
        if resp
            .content_length()
            .is_some_and(|n| n > limit.saturating_sub(start))
        {
            return Err(DownloadError::TooMuchData { limit }.into());
        }
        // Validator for a later resume.
        meta.validator = validator(resp.headers());
        meta.url = url.to_string();
        if let Ok(json) = serde_json::to_vec(meta) {
            let _ = fs::write(meta_path, json);
        }

        let file = open_part(part, start)
            .at(part)
            .map_err(DownloadError::from)?;
        // Hashing and writing run on one blocking thread, overlapping the network receive;
        // chunks are shared (reference-counted), not copied, and handed over in batches.
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(QUEUE_BATCHES);
        let sink = spawn_sink(file, part.to_path_buf(), start, rx);
        let began = Instant::now();
        let receiving = Receive {
            url,
            stall,
            start,
            limit,
            began,
        };
        let (outcome, received) = receiving.run(&mut resp, &tx, progress).await;
        drop(tx);
        let failed = |error| Failed {
            error,
            fetched: received,
        };
        let joined = |e: tokio::task::JoinError| {
            failed(DownloadError::Io {
                path: part.to_path_buf(),
                source: std::io::Error::other(e),
            })
        };
        let digest = sink.await.map_err(joined)?.map_err(failed)?;
        outcome.map_err(failed)?;
        if start + received < limit {
            return Err(failed(DownloadError::SizeMismatch {
                expected: limit,
                actual: start + received,
            }));
        }
        progress(final_progress(limit, received, began.elapsed()));
        Ok(Attempt {
            fetched: received,
            started_at: start,
            digest,
        })
    }
}

fn network(url: &Url, e: reqwest::Error) -> DownloadError {
    DownloadError::Network {
        url: url.to_string(),
        source: e,
    }
}

fn stalled(url: &Url, stall: Duration) -> DownloadError {
    DownloadError::Stalled {
        url: url.to_string(),
        seconds: stall.as_secs(),
    }
}

/// Opens the part file to write from byte `start`: truncated on 0 (never append to a
/// restarted body), else cut to `start` and positioned there.
fn open_part(part: &Path, start: u64) -> std::io::Result<File> {
    if start == 0 {
        File::create(part)
    } else {
        let mut f = OpenOptions::new().write(true).open(part)?;
        f.seek(SeekFrom::Start(start))?;
        f.set_len(start)?;
        Ok(f)
    }
}

/// The sink: a blocking thread that computes the SHA-256 of the whole file (the `start`
/// bytes already on disk after a resume, then every chunk received) and writes the chunks
/// to `file` in order. No `fsync`: durability is the installer's one `fsync` of the file it
/// installs (a staged file is re-hashed before any reuse); the written ranges are handed to
/// writeback as they grow ([`start_writeback`]) so that `fsync` finds little left to do.
fn spawn_sink(
    mut file: File,
    part: PathBuf,
    start: u64,
    mut rx: tokio::sync::mpsc::Receiver<Vec<bytes::Bytes>>,
) -> tokio::task::JoinHandle<Result<[u8; 32], DownloadError>> {
    tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        if start > 0 {
            let mut prefix = File::open(&part).at(&part)?;
            let mut buf = vec![0u8; 1024 * 1024];
            let mut left = start;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let k = prefix.read(&mut buf[..want]).at(&part)?;
                if k == 0 {
                    break;
                }
                hasher.update(&buf[..k]);
                left -= k as u64;
            }
        }
        let (mut written, mut kicked) = (start, start);
        while let Some(batch) = rx.blocking_recv() {
            for chunk in &batch {
                hasher.update(chunk);
                file.write_all(chunk).at(&part)?;
                written += chunk.len() as u64;
            }
            if written - kicked >= WRITEBACK_BYTES {
                start_writeback(&file, kicked, written - kicked);
                kicked = written;
            }
        }
        Ok(hasher.finalize().into())
    })
}

/// Starts writing back `len` bytes of `file` from `offset` without waiting for them: on
/// Linux `posix_fadvise(DONTNEED)` submits the range's dirty pages for writeback (pages
/// still dirty or under writeback stay cached). Best effort: an error only means the final
/// `fsync` writes more.
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::fadvise(
            file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::DontNeed,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// The receive loop of one attempt.
struct Receive<'a> {
    url: &'a Url,
    /// Longest wait for the next chunk.
    stall: Duration,
    /// Byte of the file the body starts at.
    start: u64,
    /// The artifact's size: one byte more is refused.
    limit: u64,
    began: Instant,
}

impl Receive<'_> {
    /// Receives the body, handing its chunks in batches to the sink, until it ends, a byte
    /// too many arrives, it stalls, or the sink stops (its error is reported by the caller).
    /// The chunks received before any end are handed over (a resume continues after them).
    /// Returns how it ended and the bytes handed over.
    async fn run(
        &self,
        resp: &mut reqwest::Response,
        tx: &tokio::sync::mpsc::Sender<Vec<bytes::Bytes>>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> (Result<(), DownloadError>, u64) {
        let mut last = self.began;
        let mut received = 0u64;
        let mut batch = Vec::new();
        let mut batched = 0usize;
        let outcome = loop {
            let chunk = match tokio::time::timeout(self.stall, resp.chunk()).await {
                Err(_) => break Err(stalled(self.url, self.stall)),
                Ok(Err(e)) => break Err(network(self.url, e)),
                Ok(Ok(None)) => break Ok(()),
                Ok(Ok(Some(c))) => c,
            };
            if self.start + received + chunk.len() as u64 > self.limit {
                break Err(DownloadError::TooMuchData { limit: self.limit });
            }
            received += chunk.len() as u64;
            batched += chunk.len();
            batch.push(chunk);
            let now = Instant::now();
            let due = now.duration_since(last) >= PROGRESS_INTERVAL;
            // A batch goes when full, or with each progress event: on a slow link the bytes
            // received still reach the file within [`PROGRESS_INTERVAL`] (for a resume).
            if batched >= BATCH_BYTES || due {
                batched = 0;
                if tx.send(std::mem::take(&mut batch)).await.is_err() {
                    return (Ok(()), received); // the sink failed; the caller reports its error
                }
            }
            if due {
                last = now;
                progress(make_progress(
                    self.start + received,
                    self.limit,
                    received,
                    now - self.began,
                ));
            }
        };
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return (Ok(()), received); // the sink failed; the caller reports its error
        }
        (outcome, received)
    }
}

fn make_progress(transferred: u64, total: u64, session: u64, elapsed: Duration) -> Progress {
    let secs = elapsed.as_secs_f64();
    Progress {
        percent: if total == 0 {
            100.0
        } else {
            transferred as f64 * 100.0 / total as f64
        },
        transferred,
        total,
        bytes_per_second: if secs > 0.0 {
            (session as f64 / secs) as u64
        } else {
            0
        },
    }
}

fn final_progress(total: u64, session: u64, elapsed: Duration) -> Progress {
    make_progress(total, total, session, elapsed)
}

/// `bytes START-END/TOTAL` → (START, TOTAL or None for `*`).
pub fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// A strong ETag, else Last-Modified.
fn validator(h: &reqwest::header::HeaderMap) -> Option<String> {
    let etag = h
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|e| !e.starts_with("W/"));
    etag.or_else(|| {
        h.get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
    })
    .map(str::to_string)
}

fn read_meta(path: &Path) -> Option<PartMeta> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn remove_quiet(path: &Path) {
    let _ = fs::remove_file(path);
}

/// The manifest's hex digest as bytes.
pub fn parse_digest(hex_digest: &str) -> Result<[u8; 32], DownloadError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut out)
        .map_err(|_| DownloadError::BadDigest(hex_digest.to_string()))?;
    Ok(out)
}

/// Size and SHA-256 of a file, streamed (1 MiB buffer).
pub fn hash_file(path: &Path) -> Result<(u64, [u8; 32]), DownloadError> {
    let mut f = File::open(path).at(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).at(path)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, h.finalize().into()))
}

/// A safe file name for the staged artifact: the URL's last segment when it is plain,
/// else `artifact.<format>`.
pub fn file_name_for(url: &Url, artifact: &Artifact) -> String {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    let ok = !last.is_empty()
        && last.len() <= 200
        && !last.starts_with('.')
        && last
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
    if ok {
        last.to_string()
    } else {
        format!("artifact.{}", artifact.format.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes 9-3/100"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    fn headers(content_range: Option<&str>) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        if let Some(v) = content_range {
            h.insert(
                reqwest::header::CONTENT_RANGE,
                v.parse().expect("header value"),
            );
        }
        h
    }

    #[test]
    fn a_200_starts_over_from_byte_zero_even_after_a_range_request() {
        // Fresh download, a server that ignores Range, and an If-Range that did not match
        // (the file changed): all answer 200 and all are written from 0, never appended.
        for have in [0, 1, 400, 999] {
            assert_eq!(
                resume_offset(200, &headers(None), have, 1000),
                Resume::WriteFrom(0)
            );
        }
        // A stray Content-Range on a 200 changes nothing.
        assert_eq!(
            resume_offset(200, &headers(Some("bytes 400-999/1000")), 400, 1000),
            Resume::WriteFrom(0)
        );
    }

    #[test]
    fn a_206_continues_only_where_the_partial_file_ends() {
        let ok = |cr: &str| resume_offset(206, &headers(Some(cr)), 400, 1000);
        assert_eq!(ok("bytes 400-999/1000"), Resume::WriteFrom(400));
        assert_eq!(ok("bytes 400-999/*"), Resume::WriteFrom(400));
        // Starts elsewhere, has another total, or cannot be read: refused.
        for bad in [
            "bytes 0-999/1000",
            "bytes 399-999/1000",
            "bytes 401-999/1000",
            "bytes 400-999/2000",
            "bytes 400-300/1000",
            "items 400-999/1000",
            "",
        ] {
            assert_eq!(
                ok(bad),
                Resume::BadRange {
                    content_range: bad.to_string()
                },
                "{bad:?}"
            );
        }
        assert_eq!(
            resume_offset(206, &headers(None), 400, 1000),
            Resume::BadRange {
                content_range: String::new()
            },
            "a 206 without Content-Range"
        );
    }

    #[test]
    fn a_416_and_other_statuses_are_not_bodies_to_write() {
        assert_eq!(
            resume_offset(416, &headers(Some("bytes */1000")), 1000, 1000),
            Resume::NotSatisfiable
        );
        for s in [204, 304, 404, 429, 500, 503] {
            assert_eq!(
                resume_offset(s, &headers(None), 400, 1000),
                Resume::Status(s)
            );
        }
    }

    #[test]
    fn resume_headers_ask_for_the_rest_only_of_the_same_file() {
        assert!(
            resume_headers(0, Some("\"etag\"")).is_empty(),
            "nothing to resume"
        );
        let h = resume_headers(400, Some("\"v1\""));
        assert_eq!(h[reqwest::header::RANGE], "bytes=400-");
        assert_eq!(h[reqwest::header::IF_RANGE], "\"v1\"");
        let h = resume_headers(400, None);
        assert_eq!(h[reqwest::header::RANGE], "bytes=400-");
        assert!(h.get(reqwest::header::IF_RANGE).is_none());
    }

    #[test]
    fn a_part_file_is_truncated_on_restart_and_cut_on_resume() {
        let dir = tempfile::tempdir().expect("tmp");
        let part = dir.path().join("a.part");
        fs::write(&part, b"0123456789").expect("write");
        let mut f = open_part(&part, 4).expect("open");
        f.write_all(b"ab").expect("write");
        drop(f);
        assert_eq!(fs::read(&part).expect("read"), b"0123ab");
        let mut f = open_part(&part, 0).expect("open");
        f.write_all(b"x").expect("write");
        drop(f);
        assert_eq!(fs::read(&part).expect("read"), b"x");
    }

    /// Serves `body` at `/a.tar.gz` on loopback.
    async fn serve(body: Vec<u8>) -> Url {
        use axum::routing::get;
        let body = bytes::Bytes::from(body);
        let app = axum::Router::new().route("/a.tar.gz", get(move || async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/a.tar.gz").parse().expect("url")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_download_is_verified_and_a_bad_one_deleted() {
        // Many chunks, not a multiple of the chunk size.
        let len = 16 * 1024 * 1024 + 12_345;
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let body: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let digest = hex::encode(Sha256::digest(&body));
        let url = serve(body.clone()).await;
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = DownloadConfig::new(dir.path());
        cfg.space_margin = 0;
        cfg.retry.max_attempts = 1;
        let d = Downloader::new(cfg).expect("downloader");
        let mut artifact = Artifact {
            platform: super::super::Platform::Linux,
            arch: super::super::Arch::X64,
            format: super::super::Format::TarGz,
            url: "a.tar.gz".into(),
            size: len as u64,
            sha256: digest,
            sigstore_bundle: None,
        };
        let r = d
            .download(&url, &artifact, &Version::new(1, 0, 0), &mut |_| {})
            .await
            .expect("download");
        assert_eq!(fs::read(&r.path).expect("staged"), body);
        // Same size, wrong digest: refused and nothing is left in staging.
        artifact.sha256 = "0".repeat(64);
        let err = d
            .download(&url, &artifact, &Version::new(2, 0, 0), &mut |_| {})
            .await
            .expect_err("wrong digest");
        assert!(
            matches!(err, DownloadError::ChecksumMismatch { .. }),
            "{err}"
        );
        let left: Vec<_> = fs::read_dir(d.version_dir(&Version::new(2, 0, 0)))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
