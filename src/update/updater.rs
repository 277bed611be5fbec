//! The Updater: check → download → verify → install as one state machine with
//! electron-updater's events.
//!
//! Owns the order of the steps and the events (`checking-for-update`, `update-available`,
//! `update-not-available`, `download-progress`, `update-downloaded`, `error`, and
//! `update-delta-fallback`) delivered on a `tokio::sync::broadcast` channel, periodic checks with ±10 % jitter that honour
//! `Retry-After`, and install now or on quit. After an install the check client's current
//! version moves to the installed one.
//!
//! Verification hook: after the SHA-256 pinned by the signed manifest matched, an optional
//! [`ArtifactVerifier`] (Sigstore, plugged in by the app or the lead) sees the artifact, its
//! raw digest and its bundle (fetched with a 256 KiB limit when the manifest names one);
//! a refusal deletes the staged file and nothing is installed.
//!
//! Delta path: when the signed manifest lists a patch from the installed version for the
//! chosen artifact, the updater checks that the patch is worth it and can be checked like
//! the artifact, that the kept copy of the installed payload ([`KeptBase`]) is recorded as
//! the patch's base (and, when its metadata changed since it was kept, hashed and intact),
//! downloads the patch through the same [`Downloader`] (resume, the manifest's size as the
//! cap, its SHA-256) while an unchanged base is read, and only then applies it
//! ([`delta::apply_to_file`], which checks the result's size and digest against the manifest);
//! the result then goes through the same verifier hook and installer as a full download. Any
//! failure falls back to the full artifact and says so: an `update-delta-fallback` event
//! with a [`FallbackReason`], and [`UpdateDownload::fallback`]. Every install keeps its
//! payload as the next base (one version).
//!
//! It refuses actions out of order (`download_update` before an update is available,
//! `install_update` before it is downloaded) with [`UpdaterError::InvalidState`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use semver::Version;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::check::{
    fetch_document, join_url, AvailableUpdate, CheckError, UpdateClient, UpdateConfig,
};
use super::delta::{self, DeltaConfig, FallbackReason, KeptBase};
use super::download::{
    file_name_for, DownloadConfig, DownloadError, Downloaded, Downloader, Progress, StagingLock,
};
use super::install::{installer_for, InstallError, Installed};
use super::manifest::{Artifact, Patch};
use crate::net::{self, Rng};
use crate::store::Store;
use crate::trust::sigstore::MAX_BUNDLE_BYTES;
use crate::trust::{PublicKey, TrustedKeys};

/// Capacity of the event channel (slow receivers lose the oldest events).
pub const EVENT_CAPACITY: usize = 256;

/// An extra check of a downloaded artifact (the Sigstore hook).
pub trait ArtifactVerifier: Send + Sync {
    /// Accepts or refuses the artifact whose SHA-256 already matched the signed manifest.
    fn verify(
        &self,
        artifact: &Artifact,
        sha256: &[u8; 32],
        bundle: Option<&[u8]>,
    ) -> Result<(), String>;

    /// Whether [`verify`](Self::verify) will check the artifact's own digest (`bundle_named`:
    /// the manifest names a bundle for it). When it will, a delta patch whose result is not
    /// the artifact's bytes (a `tar.gz`'s tar) is not used: the full artifact is. The
    /// default assumes it will.
    fn checks_digest(&self, artifact: &Artifact, bundle_named: bool) -> bool {
        let _ = (artifact, bundle_named);
        true
    }
}

/// The Sigstore policy plugs into the Updater as its artifact verifier: with
/// `Updater::set_verifier(Some(Arc::new(policy)))` every artifact is checked (off, if-present
/// or required) after its SHA-256 matched and before it is applied.
impl ArtifactVerifier for crate::trust::sigstore::SigstorePolicy {
    fn verify(
        &self,
        artifact: &Artifact,
        sha256: &[u8; 32],
        bundle: Option<&[u8]>,
    ) -> Result<(), String> {
        self.check(sha256, bundle).map(|_| ()).map_err(|e| {
            format!(
                "Sigstore check of the {}/{}/{} artifact failed: {}",
                artifact.platform,
                artifact.arch,
                artifact.format,
                crate::error::chain(&e)
            )
        })
    }

    fn checks_digest(&self, _artifact: &Artifact, bundle_named: bool) -> bool {
        use crate::trust::sigstore::SigstoreMode;
        match self.mode {
            SigstoreMode::Off => false,
            SigstoreMode::IfPresent => bundle_named,
            SigstoreMode::Required => true,
        }
    }
}

/// Why an Updater action failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdaterError {
    /// The check failed.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The download failed.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The install failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The artifact verifier (Sigstore) refused the artifact.
    #[error("artifact of {version} refused by the verifier: {message}")]
    Verification {
        /// The version.
        version: Version,
        /// Why.
        message: String,
    },
    /// The action does not fit the current state.
    #[error("cannot {action} while {state}")]
    InvalidState {
        /// What was asked.
        action: &'static str,
        /// The current state.
        state: UpdaterState,
    },
    /// The configuration cannot work.
    #[error("invalid updater configuration: {0}")]
    Config(String),
}

impl UpdaterError {
    /// A stable code for bindings.
    pub fn code(&self) -> &'static str {
        match self {
            UpdaterError::Check(e) => e.code(),
            UpdaterError::Download(e) => e.code(),
            UpdaterError::Install(e) => e.code(),
            UpdaterError::Verification { .. } => "ERR_UPDATER_VERIFICATION",
            UpdaterError::InvalidState { .. } => "ERR_UPDATER_INVALID_STATE",
            UpdaterError::Config(_) => "ERR_UPDATER_CONFIG",
        }
    }
}

/// Where the Updater is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdaterState {
    /// Nothing going on.
    Idle,
    /// A check runs.
    Checking,
    /// An update is available, not downloaded.
    UpdateAvailable,
    /// A download runs.
    Downloading,
    /// A verified download waits to be installed.
    UpdateDownloaded,
    /// An install runs.
    Installing,
    /// An update was installed (restart to run it).
    Installed,
}

impl std::fmt::Display for UpdaterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            UpdaterState::Idle => "idle",
            UpdaterState::Checking => "checking for an update",
            UpdaterState::UpdateAvailable => "an update is available but not downloaded",
            UpdaterState::Downloading => "downloading",
            UpdaterState::UpdateDownloaded => "an update is downloaded",
            UpdaterState::Installing => "installing",
            UpdaterState::Installed => "an update is installed",
        };
        f.write_str(s)
    }
}

/// A file of an update, as in electron-updater's `UpdateInfo.files`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFileInfo {
    /// Absolute URL.
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// What the events say about an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInfo {
    /// The version.
    pub version: String,
    /// Release notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_notes: Option<String>,
    /// Release time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// The file to download.
    #[serde(default)]
    pub files: Vec<UpdateFileInfo>,
}

impl UpdateInfo {
    fn of(u: &AvailableUpdate) -> Self {
        Self {
            version: u.version.to_string(),
            release_notes: Some(u.manifest.notes.clone()).filter(|n| !n.is_empty()),
            release_date: Some(u.manifest.released_at.to_rfc3339()),
            files: vec![UpdateFileInfo {
                url: u.artifact_url.to_string(),
                size: u.artifact.size,
                sha256: u.artifact.sha256.clone(),
            }],
        }
    }

    fn current(v: &Version) -> Self {
        Self {
            version: v.to_string(),
            release_notes: None,
            release_date: None,
            files: Vec::new(),
        }
    }
}

/// Download progress of an update (`download-progress`): electron-updater's fields for the
/// file being downloaded (the patch or the artifact), and what the update costs against the
/// full artifact.
///
/// JSON: `{"percent", "transferred", "total", "bytesPerSecond", "delta", "downloadedBytes",
/// "fullBytes"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProgress {
    /// The file being downloaded.
    #[serde(flatten)]
    pub file: Progress,
    /// Whether the file is a delta patch.
    pub delta: bool,
    /// Bytes this update has downloaded so far (a patch given up on included).
    pub downloaded_bytes: u64,
    /// Size of the full artifact.
    pub full_bytes: u64,
}

/// Why an update did not use the patch the manifest lists for the installed version
/// (`update-delta-fallback`); the full artifact is downloaded instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaFallback {
    /// The version being downloaded.
    pub version: String,
    /// The installed version the patch applies to.
    pub from: String,
    /// The stable reason code.
    pub reason: FallbackReason,
    /// One line for people.
    pub message: String,
    /// Size of the patch.
    pub patch_bytes: u64,
    /// Size of the full artifact.
    pub full_bytes: u64,
}

/// A verified download waiting to be installed, and how it was obtained.
#[derive(Debug, Clone)]
pub struct UpdateDownload {
    /// The verified file in staging that the installer applies: the artifact, or the
    /// patched payload as a file of the artifact's format.
    pub file: Downloaded,
    /// Whether it came from a delta patch.
    pub delta: bool,
    /// Bytes this update downloaded: the patch, or the artifact plus any patch given up on.
    pub downloaded_bytes: u64,
    /// Size of the full artifact.
    pub full_bytes: u64,
    /// Why a patch listed for the installed version was not used.
    pub fallback: Option<DeltaFallback>,
}

/// The Updater's events, with electron-updater's names.
///
/// JSON: `{"event": "download-progress", "data": {"percent": …, "transferred": …,
/// "total": …, "bytesPerSecond": …, "delta": …, "downloadedBytes": …, "fullBytes": …}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "kebab-case")]
pub enum UpdaterEvent {
    /// A check started.
    CheckingForUpdate,
    /// A newer signed release is available for this install.
    UpdateAvailable(UpdateInfo),
    /// Nothing to do (the info is the installed version).
    UpdateNotAvailable(UpdateInfo),
    /// Download progress (at most every 100 ms).
    DownloadProgress(UpdateProgress),
    /// The update is downloaded and verified.
    UpdateDownloaded(UpdateInfo),
    /// A patch for the installed version was not used: the full artifact is downloaded.
    UpdateDeltaFallback(DeltaFallback),
    /// Something failed.
    Error {
        /// One line for people.
        message: String,
        /// A stable code.
        code: String,
    },
}

/// When to install a downloaded update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InstallMode {
    /// Now (the app restarts into it when it wants).
    #[default]
    Now,
    /// When the app quits ([`Updater::on_app_quit`]).
    OnQuit,
}

/// How an Updater is set up.
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// The check (URL, app, channel, keys, current version, platform…).
    pub update: UpdateConfig,
    /// The app's data dir (staging lives in `<data_dir>/staging`).
    pub data_dir: PathBuf,
    /// Where versions are installed (`versions/`, `current`).
    pub install_root: PathBuf,
    /// Download settings.
    pub download: DownloadConfig,
    /// When delta patches are tried.
    pub delta: DeltaConfig,
    /// Download as soon as an automatic check finds an update.
    pub auto_download: bool,
    /// Seed of the check-interval jitter.
    pub jitter_seed: u64,
}

impl UpdaterConfig {
    /// A configuration from code.
    pub fn new(
        update: UpdateConfig,
        data_dir: impl Into<PathBuf>,
        install_root: impl Into<PathBuf>,
    ) -> Self {
        let data_dir = data_dir.into();
        Self {
            update,
            download: DownloadConfig::new(&data_dir),
            delta: DeltaConfig::default(),
            data_dir,
            install_root: install_root.into(),
            auto_download: true,
            jitter_seed: net::os_seed(),
        }
    }

    /// A configuration from the process environment: `RAILGUN_UPDATE_URL`,
    /// `RAILGUN_UPDATE_CHANNEL` (default `stable`) and `RAILGUN_UPDATE_PUBLIC_KEY` (base64
    /// of a PEM, or any form [`PublicKey::parse`] reads); see [`crate::env`].
    pub fn from_env(
        app: &str,
        current_version: Version,
        data_dir: impl Into<PathBuf>,
        install_root: impl Into<PathBuf>,
    ) -> Result<Self, UpdaterError> {
        Self::from_vars(
            crate::env::process,
            app,
            current_version,
            data_dir,
            install_root,
        )
    }

    /// Like [`from_env`](Self::from_env) with the variables read through `vars` (a test
    /// passes a map). The URL and key are required: their absence or a key that does not
    /// parse is a [`UpdaterError::Config`] naming the variable.
    pub fn from_vars(
        vars: impl Fn(&str) -> Option<String>,
        app: &str,
        current_version: Version,
        data_dir: impl Into<PathBuf>,
        install_root: impl Into<PathBuf>,
    ) -> Result<Self, UpdaterError> {
        use crate::env;
        let need = |k: &str| {
            env::value(&vars, k).ok_or_else(|| UpdaterError::Config(format!("{k} is not set")))
        };
        let url = need(env::UPDATE_URL)?;
        let channel = env::value(&vars, env::UPDATE_CHANNEL).unwrap_or_else(|| "stable".into());
        let key = PublicKey::parse(&need(env::UPDATE_PUBLIC_KEY)?)
            .map_err(|e| UpdaterError::Config(format!("{}: {e}", env::UPDATE_PUBLIC_KEY)))?;
        let update =
            UpdateConfig::new(url, app, channel, current_version, TrustedKeys::single(key));
        Ok(Self::new(update, data_dir, install_root))
    }
}

#[derive(Debug, Clone)]
enum Phase {
    Idle,
    Checking,
    Available(Box<AvailableUpdate>),
    Downloading,
    Downloaded(Box<AvailableUpdate>, UpdateDownload),
    Installing,
    Installed(Version),
}

impl Phase {
    fn state(&self) -> UpdaterState {
        match self {
            Phase::Idle => UpdaterState::Idle,
            Phase::Checking => UpdaterState::Checking,
            Phase::Available(_) => UpdaterState::UpdateAvailable,
            Phase::Downloading => UpdaterState::Downloading,
            Phase::Downloaded(..) => UpdaterState::UpdateDownloaded,
            Phase::Installing => UpdaterState::Installing,
            Phase::Installed(_) => UpdaterState::Installed,
        }
    }
}

struct AutoCheck {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    config: UpdaterConfig,
    client: Mutex<UpdateClient>,
    downloader: Downloader,
    phase: Mutex<Phase>,
    events: broadcast::Sender<UpdaterEvent>,
    verifier: Mutex<Option<Arc<dyn ArtifactVerifier>>>,
    install_on_quit: Mutex<bool>,
    retry_after: Mutex<Option<Duration>>,
    auto: Mutex<Option<AutoCheck>>,
}

/// The update state machine. Cheap to clone (shared state).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use railgun_core::store::Store;
/// use railgun_core::update::{InstallMode, Updater, UpdaterConfig};
///
/// let config = UpdaterConfig::from_env("rail-gun", "1.4.0".parse()?, "/var/lib/rail-gun", "/opt/rail-gun")?;
/// let store = Arc::new(Store::open("/var/lib/rail-gun/railgun.db")?);
/// let updater = Updater::new(config, store)?;
/// let mut events = updater.subscribe();
/// tokio::spawn(async move {
///     while let Ok(e) = events.recv().await {
///         println!("{}", serde_json::to_string(&e).unwrap_or_default());
///     }
/// });
/// if updater.check_for_updates().await?.is_some() {
///     updater.download_update().await?;
///     updater.install_update(InstallMode::OnQuit).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Updater {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Updater {
    /// An Updater with its check client on `store`.
    pub fn new(config: UpdaterConfig, store: Arc<Store>) -> Result<Self, UpdaterError> {
        let client = UpdateClient::new(config.update.clone(), store)?;
        Self::with_client(config, client)
    }

    /// An Updater around an existing check client (clock, HTTP client already set).
    pub fn with_client(config: UpdaterConfig, client: UpdateClient) -> Result<Self, UpdaterError> {
        let downloader = Downloader::new(config.download.clone())?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                client: Mutex::new(client),
                downloader,
                phase: Mutex::new(Phase::Idle),
                events,
                verifier: Mutex::new(None),
                install_on_quit: Mutex::new(false),
                retry_after: Mutex::new(None),
                auto: Mutex::new(None),
            }),
        })
    }

    /// Sets the artifact verifier (Sigstore) run after the SHA-256 and before install.
    pub fn set_verifier(&self, verifier: Option<Arc<dyn ArtifactVerifier>>) {
        *lock(&self.inner.verifier) = verifier;
    }

    /// A receiver of the events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<UpdaterEvent> {
        self.inner.events.subscribe()
    }

    /// The current state.
    pub fn state(&self) -> UpdaterState {
        lock(&self.inner.phase).state()
    }

    /// The installed version as the check client sees it.
    pub fn current_version(&self) -> Version {
        lock(&self.inner.client).config().current_version.clone()
    }

    /// The `Retry-After` the server asked for on the last failed check, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        *lock(&self.inner.retry_after)
    }

    fn emit(&self, e: UpdaterEvent) {
        let _ = self.inner.events.send(e);
    }

    fn emit_error(&self, e: &UpdaterError) {
        self.emit(UpdaterEvent::Error {
            message: e.to_string(),
            code: e.code().to_string(),
        });
    }

    fn set(&self, p: Phase) {
        *lock(&self.inner.phase) = p;
    }

    /// Checks the channel. `Some` when an update is available.
    pub async fn check_for_updates(&self) -> Result<Option<AvailableUpdate>, UpdaterError> {
        let previous = {
            let mut p = lock(&self.inner.phase);
            match &*p {
                Phase::Checking | Phase::Downloading | Phase::Installing => {
                    return Err(UpdaterError::InvalidState {
                        action: "check for updates",
                        state: p.state(),
                    })
                }
                _ => {}
            }
            std::mem::replace(&mut *p, Phase::Checking)
        };
        self.emit(UpdaterEvent::CheckingForUpdate);
        let client = lock(&self.inner.client).clone();
        match client.check().await {
            Ok(decision) => {
                *lock(&self.inner.retry_after) = None;
                match decision.update {
                    Some(u) => {
                        // Keep a finished download of the same version.
                        let keep = matches!(&previous, Phase::Downloaded(a, _) if a.version == u.version && a.artifact == u.artifact);
                        self.set(if keep {
                            previous
                        } else {
                            Phase::Available(Box::new(u.clone()))
                        });
                        self.emit(UpdaterEvent::UpdateAvailable(UpdateInfo::of(&u)));
                        Ok(Some(u))
                    }
                    None => {
                        self.set(match previous {
                            Phase::Installed(v) => Phase::Installed(v),
                            _ => Phase::Idle,
                        });
                        self.emit(UpdaterEvent::UpdateNotAvailable(UpdateInfo::current(
                            &client.config().current_version,
                        )));
                        Ok(None)
                    }
                }
            }
            Err(e) => {
                if let CheckError::HttpStatus {
                    retry_after: Some(s),
                    ..
                } = &e
                {
                    *lock(&self.inner.retry_after) = Some(Duration::from_secs(*s));
                }
                self.set(previous);
                let e = UpdaterError::Check(e);
                self.emit_error(&e);
                Err(e)
            }
        }
    }

    /// Downloads and verifies the available update.
    pub async fn download_update(&self) -> Result<UpdateDownload, UpdaterError> {
        let update = {
            let mut p = lock(&self.inner.phase);
            match &*p {
                Phase::Available(u) => {
                    let u = u.clone();
                    *p = Phase::Downloading;
                    u
                }
                Phase::Downloaded(_, d) => return Ok(d.clone()),
                other => {
                    return Err(UpdaterError::InvalidState {
                        action: "download an update",
                        state: other.state(),
                    })
                }
            }
        };
        match self.download_and_verify(&update).await {
            Ok(d) => {
                self.set(Phase::Downloaded(update.clone(), d.clone()));
                self.emit(UpdaterEvent::UpdateDownloaded(UpdateInfo::of(&update)));
                Ok(d)
            }
            Err(e) => {
                self.set(Phase::Available(update));
                self.emit_error(&e);
                Err(e)
            }
        }
    }

    async fn download_and_verify(
        &self,
        u: &AvailableUpdate,
    ) -> Result<UpdateDownload, UpdaterError> {
        let full_bytes = u.artifact.size;
        let verifier = lock(&self.inner.verifier).clone();
        let mut fallback = None;
        let mut spent = 0u64;
        if let Some(patch) = self.patch_for(u) {
            let checks = verifier
                .as_ref()
                .is_some_and(|v| v.checks_digest(&u.artifact, u.sigstore_bundle_url.is_some()));
            match self.download_patched(u, &patch, checks).await {
                Ok(file) => {
                    self.verify_hook(u, &file, verifier.as_deref()).await?;
                    return Ok(UpdateDownload {
                        file,
                        delta: true,
                        downloaded_bytes: patch.size,
                        full_bytes,
                        fallback: None,
                    });
                }
                Err(Refused {
                    reason,
                    message,
                    fetched,
                }) => {
                    spent = fetched;
                    let f = DeltaFallback {
                        version: u.version.to_string(),
                        from: patch.from.to_string(),
                        reason,
                        message,
                        patch_bytes: patch.size,
                        full_bytes,
                    };
                    tracing::info!(reason = %f.reason, message = %f.message, "delta patch not used, downloading the full artifact");
                    self.emit(UpdaterEvent::UpdateDeltaFallback(f.clone()));
                    fallback = Some(f);
                }
            }
        }
        let events = self.inner.events.clone();
        let mut progress = move |p: Progress| {
            let _ = events.send(UpdaterEvent::DownloadProgress(UpdateProgress {
                file: p,
                delta: false,
                downloaded_bytes: spent + p.transferred,
                full_bytes,
            }));
        };
        let file = self
            .inner
            .downloader
            .download(&u.artifact_url, &u.artifact, &u.version, &mut progress)
            .await?;
        self.verify_hook(u, &file, verifier.as_deref()).await?;
        Ok(UpdateDownload {
            file,
            delta: false,
            downloaded_bytes: spent + full_bytes,
            full_bytes,
            fallback,
        })
    }

    /// The Sigstore hook: after the pinned SHA-256 matched, before anything is applied.
    async fn verify_hook(
        &self,
        u: &AvailableUpdate,
        d: &Downloaded,
        verifier: Option<&dyn ArtifactVerifier>,
    ) -> Result<(), UpdaterError> {
        let Some(v) = verifier else {
            return Ok(());
        };
        let bundle = match &u.sigstore_bundle_url {
            Some(url) => {
                let http = lock(&self.inner.client).http().clone();
                Some(fetch_document(&http, url, MAX_BUNDLE_BYTES).await?)
            }
            None => None,
        };
        if let Err(message) = v.verify(&u.artifact, &d.sha256, bundle.as_deref()) {
            let _ = self.inner.downloader.discard(&u.version);
            return Err(UpdaterError::Verification {
                version: u.version.clone(),
                message,
            });
        }
        Ok(())
    }

    /// The patch the signed manifest lists from the installed version for the chosen
    /// artifact, when delta updates are on.
    fn patch_for(&self, u: &AvailableUpdate) -> Option<Patch> {
        if !self.inner.config.delta.enabled {
            return None;
        }
        let current = self.current_version();
        u.manifest.patch_for(&u.artifact, &current).cloned()
    }

    /// The delta path, each step before the next: the patch is worth it and checkable
    /// ([`delta::precheck`]), the kept base is recorded as the patch's base (hashed now if
    /// its metadata changed), the patch is downloaded and its size and SHA-256 are the
    /// manifest's (the [`Downloader`]), and only then is it applied, the result checked
    /// against the manifest.
    async fn download_patched(
        &self,
        u: &AvailableUpdate,
        patch: &Patch,
        sigstore_checks: bool,
    ) -> Result<Downloaded, Refused> {
        delta::precheck(
            patch,
            &u.artifact,
            &self.inner.config.delta,
            sigstore_checks,
        )
        .map_err(Refused::before_download)?;
        let kept = KeptBase::new(&self.inner.config.data_dir);
        let p = patch.clone();
        let opened = tokio::task::spawn_blocking(move || kept.open(&p))
            .await
            .map_err(|e| Refused::io(e.to_string(), 0))?
            .map_err(Refused::before_download)?;
        // A base whose metadata changed since it was kept is hashed before the download (a
        // modified base costs no patch bytes); an unchanged one is read while the patch
        // downloads, unhashed: the result's signed digest covers it.
        let unchanged = opened.unchanged();
        let p = patch.clone();
        let loading = tokio::task::spawn_blocking(move || opened.load(&p));
        let base = if unchanged {
            BaseLoad::Reading(loading)
        } else {
            BaseLoad::Ready(BaseLoad::join(loading, 0).await?)
        };

        let url = join_url(&u.manifest_url, &patch.file).map_err(|e| Refused {
            reason: FallbackReason::PatchDownloadFailed,
            message: e.to_string(),
            fetched: 0,
        })?;
        let as_file = Artifact {
            platform: patch.platform,
            arch: patch.arch,
            format: patch.format,
            url: patch.file.clone(),
            size: patch.size,
            sha256: patch.sha256.clone(),
            sigstore_bundle: None,
        };
        let events = self.inner.events.clone();
        let full_bytes = u.artifact.size;
        let mut progress = move |p: Progress| {
            let _ = events.send(UpdaterEvent::DownloadProgress(UpdateProgress {
                file: p,
                delta: true,
                downloaded_bytes: p.transferred,
                full_bytes,
            }));
        };
        let downloaded = self
            .inner
            .downloader
            .download(&url, &as_file, &u.version, &mut progress)
            .await
            .map_err(|e| Refused {
                reason: match e {
                    DownloadError::ChecksumMismatch { .. }
                    | DownloadError::SizeMismatch { .. }
                    | DownloadError::TooMuchData { .. } => FallbackReason::PatchDigestMismatch,
                    _ => FallbackReason::PatchDownloadFailed,
                },
                message: e.to_string(),
                fetched: 0,
            })?;

        // Only a patch whose bytes are the signed manifest's reaches this point.
        let fetched = downloaded.size;
        let base = match base {
            BaseLoad::Ready(b) => b,
            BaseLoad::Reading(task) => BaseLoad::join(task, fetched).await?,
        };
        let config = self.inner.downloader.config();
        let _lock = StagingLock::acquire(&config.staging_dir, config.lock_mode)
            .await
            .map_err(|e| Refused::io(e.to_string(), fetched))?;
        let out = self
            .inner
            .downloader
            .version_dir(&u.version)
            .join(file_name_for(&u.artifact_url, &u.artifact));
        let p = patch.clone();
        let patch_path = downloaded.path.clone();
        let target = out.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let r = delta::apply_to_file(&p, &base, &patch_path, &target);
            let _ = std::fs::remove_file(&patch_path);
            r
        })
        .await
        .map_err(|e| Refused::io(e.to_string(), fetched))?;
        let (size, sha256) = applied.map_err(|e| Refused {
            reason: FallbackReason::of(&e),
            message: e.to_string(),
            fetched,
        })?;
        Ok(Downloaded {
            path: out,
            size,
            sha256,
            bytes_fetched: downloaded.bytes_fetched,
            resumed_from: downloaded.resumed_from,
            attempts: downloaded.attempts,
        })
    }

    /// Installs the downloaded update now, or marks it for [`on_app_quit`](Self::on_app_quit).
    /// Returns what was installed (`None` when deferred).
    pub async fn install_update(
        &self,
        mode: InstallMode,
    ) -> Result<Option<Installed>, UpdaterError> {
        {
            let p = lock(&self.inner.phase);
            if !matches!(&*p, Phase::Downloaded(..)) {
                return Err(UpdaterError::InvalidState {
                    action: "install an update",
                    state: p.state(),
                });
            }
        }
        match mode {
            InstallMode::OnQuit => {
                *lock(&self.inner.install_on_quit) = true;
                Ok(None)
            }
            InstallMode::Now => self.install_now().await.map(Some),
        }
    }

    /// Call when the app quits: applies an update deferred with [`InstallMode::OnQuit`].
    pub async fn on_app_quit(&self) -> Result<Option<Installed>, UpdaterError> {
        self.stop().await;
        let pending = std::mem::take(&mut *lock(&self.inner.install_on_quit));
        if pending && matches!(&*lock(&self.inner.phase), Phase::Downloaded(..)) {
            return self.install_now().await.map(Some);
        }
        Ok(None)
    }

    async fn install_now(&self) -> Result<Installed, UpdaterError> {
        let (update, downloaded) = {
            let mut p = lock(&self.inner.phase);
            match std::mem::replace(&mut *p, Phase::Installing) {
                Phase::Downloaded(u, d) => (u, d),
                other => {
                    let state = other.state();
                    *p = other;
                    return Err(UpdaterError::InvalidState {
                        action: "install an update",
                        state,
                    });
                }
            }
        };
        let artifact = update.artifact.clone();
        let root = self.inner.config.install_root.clone();
        let file = downloaded.file.clone();
        let version = update.version.clone();
        let kept = KeptBase::new(&self.inner.config.data_dir);
        let result = tokio::task::spawn_blocking(move || {
            // The installed file becomes the next update's delta base (linked before the
            // install may consume it, recorded once the install succeeded). Failing to keep
            // it costs the next update its patch, never this install.
            let pending = kept
                .prepare(&file.path, &version, &artifact, file.size, &file.sha256)
                .map_err(|e| tracing::warn!(error = %e, "cannot keep the delta base"))
                .ok();
            let installed = installer_for(artifact.format, artifact.platform, &root)
                .install(&file.path, &version);
            if let Some(p) = pending {
                if installed.is_ok() {
                    if let Err(e) = kept.commit(p) {
                        tracing::warn!(error = %e, "cannot keep the delta base");
                    }
                } else {
                    kept.abandon(p);
                }
            }
            installed
        })
        .await
        .map_err(|e| {
            UpdaterError::Install(InstallError::Io {
                path: self.inner.config.install_root.clone(),
                source: std::io::Error::other(e),
            })
        })
        .and_then(|r| r.map_err(UpdaterError::from));
        match result {
            Ok(installed) => {
                lock(&self.inner.client).set_current_version(installed.version.clone());
                let _ = self.inner.downloader.discard(&installed.version);
                self.set(Phase::Installed(installed.version.clone()));
                Ok(installed)
            }
            Err(e) => {
                self.set(Phase::Downloaded(update, downloaded));
                self.emit_error(&e);
                Err(e)
            }
        }
    }

    /// Checks every `interval` (±10 % jitter, never sooner than a `Retry-After`), and
    /// downloads what it finds when `auto_download` is set. Replaces a running schedule.
    pub fn start_auto_check(&self, interval: Duration) {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut jitter = net::SplitMix64::new(me.inner.config.jitter_seed);
            loop {
                let mut delay = net::jitter_interval(interval, jitter.unit());
                if let Some(ra) = me.retry_after() {
                    delay = delay.max(ra);
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop_rx.changed() => return,
                }
                if let Ok(Some(_)) = me.check_for_updates().await {
                    if me.inner.config.auto_download {
                        let _ = me.download_update().await;
                    }
                }
            }
        });
        let old = lock(&self.inner.auto).replace(AutoCheck {
            stop: stop_tx,
            task,
        });
        if let Some(old) = old {
            let _ = old.stop.send(true);
            old.task.abort();
        }
    }

    /// Stops automatic checks (a check or download in flight is abandoned).
    pub async fn stop(&self) {
        let auto = lock(&self.inner.auto).take();
        if let Some(a) = auto {
            let _ = a.stop.send(true);
            a.task.abort();
            let _ = a.task.await;
        }
    }
}

/// The kept base of the delta path: loaded, or being read while the patch downloads.
enum BaseLoad {
    Ready(delta::LoadedBase),
    Reading(tokio::task::JoinHandle<Result<delta::LoadedBase, (FallbackReason, String)>>),
}

impl BaseLoad {
    /// The loaded base, or why it cannot be used (`fetched` patch bytes spent by then).
    async fn join(
        task: tokio::task::JoinHandle<Result<delta::LoadedBase, (FallbackReason, String)>>,
        fetched: u64,
    ) -> Result<delta::LoadedBase, Refused> {
        task.await
            .map_err(|e| Refused::io(e.to_string(), fetched))?
            .map_err(|(reason, message)| Refused {
                reason,
                message,
                fetched,
            })
    }
}

/// Why the delta path gave up, and the patch bytes it fetched before that.
struct Refused {
    reason: FallbackReason,
    message: String,
    fetched: u64,
}

impl Refused {
    fn before_download((reason, message): (FallbackReason, String)) -> Self {
        Self {
            reason,
            message,
            fetched: 0,
        }
    }

    fn io(message: String, fetched: u64) -> Self {
        Self {
            reason: FallbackReason::IoError,
            message,
            fetched,
        }
    }
}

impl From<crate::store::StoreError> for UpdaterError {
    fn from(e: crate::store::StoreError) -> Self {
        UpdaterError::Check(CheckError::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_use_electron_updater_names() {
        let names: Vec<String> = [
            UpdaterEvent::CheckingForUpdate,
            UpdaterEvent::UpdateAvailable(UpdateInfo::current(&Version::new(1, 0, 0))),
            UpdaterEvent::UpdateNotAvailable(UpdateInfo::current(&Version::new(1, 0, 0))),
            UpdaterEvent::DownloadProgress(progress()),
            UpdaterEvent::UpdateDownloaded(UpdateInfo::current(&Version::new(1, 0, 0))),
            UpdaterEvent::UpdateDeltaFallback(DeltaFallback {
                version: "1.1.0".into(),
                from: "1.0.0".into(),
                reason: FallbackReason::BaseModified,
                message: "m".into(),
                patch_bytes: 1,
                full_bytes: 2,
            }),
            UpdaterEvent::Error {
                message: "m".into(),
                code: "c".into(),
            },
        ]
        .iter()
        .map(|e| {
            serde_json::to_value(e).expect("json")["event"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
        assert_eq!(
            names,
            [
                "checking-for-update",
                "update-available",
                "update-not-available",
                "download-progress",
                "update-downloaded",
                "update-delta-fallback",
                "error"
            ]
        );
        let p = serde_json::to_value(UpdaterEvent::DownloadProgress(progress())).expect("json");
        assert_eq!(p["data"]["bytesPerSecond"], 3);
        assert_eq!(p["data"]["delta"], true);
        assert_eq!(p["data"]["downloadedBytes"], 1);
        assert_eq!(p["data"]["fullBytes"], 20);
        let back: UpdaterEvent = serde_json::from_value(p).expect("reads back");
        assert_eq!(back, UpdaterEvent::DownloadProgress(progress()));
    }

    fn progress() -> UpdateProgress {
        UpdateProgress {
            file: Progress {
                percent: 50.0,
                transferred: 1,
                total: 2,
                bytes_per_second: 3,
            },
            delta: true,
            downloaded_bytes: 1,
            full_bytes: 20,
        }
    }

    #[test]
    fn config_from_env_variables() {
        let key =
            crate::trust::PrivateKey::generate(crate::trust::KeyAlgorithm::Ed25519).expect("key");
        let b64 = key.public_key().to_base64_pem();
        let vars = |k: &str| match k {
            "RAILGUN_UPDATE_URL" => Some("https://u.example.com".to_string()),
            "RAILGUN_UPDATE_PUBLIC_KEY" => Some(b64.clone()),
            _ => None,
        };
        let c = UpdaterConfig::from_vars(vars, "app", Version::new(1, 0, 0), "/d", "/i")
            .expect("config");
        assert_eq!(c.update.channel, "stable");
        assert_eq!(c.update.url, "https://u.example.com");
        let missing = UpdaterConfig::from_vars(|_| None, "app", Version::new(1, 0, 0), "/d", "/i");
        assert!(
            matches!(missing, Err(UpdaterError::Config(m)) if m.contains("RAILGUN_UPDATE_URL"))
        );
    }
}
