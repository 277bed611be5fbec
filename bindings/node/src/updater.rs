//! `Updater`: the core's check → download → verify → install state machine for JS.
//!
//! Owns the option conversion, the Promises (every network or disk step runs on the addon's
//! tokio runtime, never on Node's thread) and the event bridge: one task forwards the core's
//! broadcast events (electron-updater's names) to every `onEvent` listener through weak
//! thread-safe functions, so listeners never keep the process alive. It refuses nothing of
//! its own: the core decides what is trusted and in which order steps may run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use railgun_core::store::Store;
use railgun_core::trust::sigstore::{
    IdentityMatcher, IdentityPolicy, SigstoreMode, SigstorePolicy, SigstoreVerifier,
};
use railgun_core::trust::{PublicKey, TrustedKeys};
use railgun_core::update::{
    Arch, AvailableUpdate, BootGuard, InstallMode, Platform, UpdateConfig, UpdateKind,
    Updater as CoreUpdater, UpdaterConfig, UpdaterEvent,
};
use railgun_core::Version;

use crate::error::{from_js, spawn_promise, Code, JsFailure, INVALID_ARGUMENT, IO};

/// Options of `new Updater(...)`.
#[napi(object)]
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdaterOptions {
    /// Base URL of the update tree (the channel state is `{url}/{app}/{channel}/channel.json`).
    pub url: String,
    /// App name.
    pub app: String,
    /// Channel: stable, beta, canary or a custom name.
    pub channel: String,
    /// Keys that sign release manifests (PEM, base64 of a PEM, or base64 Ed25519).
    pub public_keys: Vec<String>,
    /// Keys that sign channel states (default: the release keys, for static hosting).
    pub rollout_public_keys: Option<Vec<String>>,
    /// The running version (semver).
    pub current_version: String,
    /// Where versions are installed (`versions/`, `current`).
    pub install_root: String,
    /// The app's state folder (the client store `railgun.db`, staging of downloads).
    pub state_dir: String,
    /// `darwin`, `win32` or `linux` (default: this one).
    #[napi(ts_type = "'darwin' | 'win32' | 'linux'")]
    pub platform: Option<String>,
    /// `x64`, `arm64` or `ia32` (default: this one).
    #[napi(ts_type = "'x64' | 'arm64' | 'ia32'")]
    pub arch: Option<String>,
    /// The id rollouts bucket this install by (default: derived from the machine id).
    pub install_id: Option<String>,
    /// When Sigstore bundles are checked (default `off`).
    #[napi(ts_type = "'off' | 'if-present' | 'required'")]
    pub sigstore: Option<String>,
    /// Certificate identity (a regular expression matching the whole SAN) the Sigstore
    /// bundle must carry; needed unless `sigstore` is `off`.
    pub sigstore_identity: Option<String>,
    /// OIDC issuer of the Sigstore certificate (default: GitHub Actions).
    pub sigstore_issuer: Option<String>,
    /// Download as soon as an automatic check finds an update (default true).
    pub auto_download: Option<bool>,
    /// Use delta patches when the release lists one for the installed version (default true).
    pub delta: Option<bool>,
    /// Largest patch used, as a share of the full artifact (default 0.5).
    pub delta_max_share: Option<f64>,
}

/// A file of an update (electron-updater's `UpdateInfo.files`).
#[napi(object)]
pub struct UpdateFileInfo {
    /// Absolute URL.
    pub url: String,
    /// Size in bytes.
    pub size: f64,
    /// Lowercase hex SHA-256 (pinned by the signed manifest).
    pub sha256: String,
}

/// What `checkForUpdates()` found (electron-updater's `UpdateInfo`, plus `kind`).
#[napi(object)]
pub struct UpdateInfo {
    /// The version.
    pub version: String,
    /// Release time (RFC 3339).
    pub release_date: String,
    /// Release notes, when the manifest has any.
    pub release_notes: Option<String>,
    /// The file to download.
    pub files: Vec<UpdateFileInfo>,
    /// The artifact's URL (electron-updater's `path`).
    pub path: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Why this version: the channel's rollout, its fallback, or a signed rollback.
    #[napi(ts_type = "'rollout' | 'fallback' | 'rollback'")]
    pub kind: String,
}

/// Why a delta patch was not used (the `update-delta-fallback` event's payload).
#[napi(object)]
pub struct DeltaFallback {
    /// The version downloaded.
    pub version: String,
    /// The installed version the patch applies to.
    pub from: String,
    /// The stable reason code.
    #[napi(
        ts_type = "'no-base' | 'base-modified' | 'base-mismatch' | 'patch-too-large' | 'sigstore-needs-artifact' | 'result-not-artifact' | 'patch-download-failed' | 'patch-digest-mismatch' | 'patch-corrupt' | 'result-too-large' | 'result-mismatch' | 'io-error'"
    )]
    pub reason: String,
    /// One line for people.
    pub message: String,
    /// Size of the patch.
    pub patch_bytes: f64,
    /// Size of the full artifact.
    pub full_bytes: f64,
}

/// A verified download waiting in staging.
#[napi(object)]
pub struct DownloadResult {
    /// The version.
    pub version: String,
    /// The staged file.
    pub path: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Its size in bytes.
    pub size: f64,
    /// Whether it came from a delta patch.
    pub delta: bool,
    /// Bytes this update downloaded (the patch, or the artifact plus any patch given up on).
    pub downloaded_bytes: f64,
    /// Size of the full artifact.
    pub full_bytes: f64,
    /// Why a patch listed for the installed version was not used.
    pub delta_fallback: Option<DeltaFallback>,
}

/// What `installUpdate()` did.
#[napi(object)]
pub struct InstallResult {
    /// The version now current.
    pub version: String,
    /// The version that was current before (kept for rollback).
    pub previous: Option<String>,
}

type Listener = ThreadsafeFunction<
    FnArgs<(String, serde_json::Value)>,
    Unknown<'static>,
    FnArgs<(String, serde_json::Value)>,
    Status,
    false,
    true,
>;
type Listeners = Arc<Mutex<Vec<Listener>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Parses keys given as PEM / base64 strings.
pub(crate) fn parse_keys(
    what: &str,
    keys: &[String],
) -> std::result::Result<TrustedKeys, JsFailure> {
    if keys.is_empty() {
        return Err(JsFailure::invalid(format!(
            "{what}: at least one key is needed"
        )));
    }
    let parsed = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            PublicKey::parse(k).map_err(|e| JsFailure::invalid(format!("{what}[{i}]: {e}")))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    TrustedKeys::new(parsed, 1).map_err(|e| JsFailure::invalid(format!("{what}: {e}")))
}

pub(crate) fn parse_version(what: &str, v: &str) -> std::result::Result<Version, JsFailure> {
    v.trim()
        .parse()
        .map_err(|e| JsFailure::invalid(format!("{what} {v:?} is not a semantic version: {e}")))
}

fn kind_name(k: UpdateKind) -> &'static str {
    match k {
        UpdateKind::Rollout => "rollout",
        UpdateKind::Fallback => "fallback",
        UpdateKind::Rollback => "rollback",
    }
}

fn update_info(u: &AvailableUpdate) -> UpdateInfo {
    UpdateInfo {
        version: u.version.to_string(),
        release_date: u.manifest.released_at.to_rfc3339(),
        release_notes: Some(u.manifest.notes.clone()).filter(|n| !n.is_empty()),
        files: vec![UpdateFileInfo {
            url: u.artifact_url.to_string(),
            size: u.artifact.size as f64,
            sha256: u.artifact.sha256.clone(),
        }],
        path: u.artifact_url.to_string(),
        sha256: u.artifact.sha256.clone(),
        kind: kind_name(u.kind).to_string(),
    }
}

/// The stable code of a core updater code (the `error` event carries the core's code).
fn stable_event_code(core: &str) -> &'static str {
    match core {
        "ERR_UPDATER_CHECKSUM_MISMATCH" => "ERR_CHECKSUM_MISMATCH",
        "ERR_UPDATER_NETWORK" | "ERR_UPDATER_STALLED" | "ERR_UPDATER_BAD_RANGE" => "ERR_NETWORK",
        "ERR_UPDATER_HTTP_STATUS" => "ERR_HTTP_STATUS",
        "ERR_UPDATER_TOO_MUCH_DATA" | "ERR_UPDATER_SIZE_MISMATCH" => "ERR_TOO_LARGE",
        "ERR_UPDATER_BUSY" => "ERR_BUSY",
        "ERR_UPDATER_DISK_FULL" => "ERR_DISK_FULL",
        "ERR_UPDATER_BAD_DIGEST" => "ERR_INVALID_DOCUMENT",
        "ERR_UPDATER_IO" => "ERR_IO",
        "ERR_UPDATER_UNSUPPORTED_FORMAT"
        | "ERR_UPDATER_UNSAFE_ARCHIVE"
        | "ERR_UPDATER_CORRUPT_ARCHIVE" => "ERR_ARCHIVE_INVALID",
        "ERR_UPDATER_NO_PREVIOUS" | "ERR_UPDATER_NOT_INSTALLED" => "ERR_INSTALL_FAILED",
        "ERR_UPDATER_VERIFICATION" => "ERR_SIGSTORE_REFUSED",
        "ERR_UPDATER_INVALID_STATE" => "ERR_INVALID_STATE",
        "ERR_UPDATER_CONFIG" | "ERR_UPDATER_BAD_URL" => "ERR_INVALID_ARGUMENT",
        // Check steps (`CheckError::code()`), the same table as `error::check_code`.
        "ERR_UPDATER_TIMEOUT" => "ERR_NETWORK",
        "ERR_UPDATER_TOO_LARGE" => "ERR_TOO_LARGE",
        "ERR_UPDATER_SIGNATURE" => "ERR_SIGNATURE_INVALID",
        "ERR_UPDATER_INVALID_DOCUMENT" => "ERR_INVALID_DOCUMENT",
        "ERR_UPDATER_WRONG_CHANNEL"
        | "ERR_UPDATER_MANIFEST_DIGEST"
        | "ERR_UPDATER_MANIFEST_MISMATCH" => "ERR_METADATA_MISMATCH",
        "ERR_UPDATER_EXPIRED" => "ERR_EXPIRED",
        "ERR_UPDATER_ROLLBACK" => "ERR_ROLLBACK_REFUSED",
        "ERR_UPDATER_NO_ARTIFACT" => "ERR_NO_ARTIFACT",
        "ERR_UPDATER_STORE" => "ERR_IO",
        // A code this table does not know (a newer core): still an error of the check.
        _ => "ERR_CHECK_FAILED",
    }
}

/// `(name, payload)` of a core event as JS sees it.
fn event_for_js(e: &UpdaterEvent) -> (String, serde_json::Value) {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    let name = v
        .get("event")
        .and_then(|n| n.as_str())
        .unwrap_or("error")
        .to_string();
    let mut data = v
        .get_mut("data")
        .map(serde_json::Value::take)
        .unwrap_or(serde_json::Value::Null);
    if let (UpdaterEvent::Error { code, .. }, Some(obj)) = (e, data.as_object_mut()) {
        obj.insert("coreCode".into(), code.clone().into());
        obj.insert("code".into(), stable_event_code(code).into());
    }
    (name, data)
}

fn sigstore_policy(o: &UpdaterOptions) -> std::result::Result<Option<SigstorePolicy>, JsFailure> {
    let mode: SigstoreMode = match o.sigstore.as_deref() {
        None => return Ok(None),
        Some(m) => m
            .parse()
            .map_err(|e| JsFailure::invalid(format!("sigstore: {e}")))?,
    };
    if mode == SigstoreMode::Off {
        return Ok(None);
    }
    let identity = o.sigstore_identity.as_deref().ok_or_else(|| {
        JsFailure::invalid(format!(
            "sigstore {mode} needs sigstoreIdentity (a regular expression)"
        ))
    })?;
    let policy = IdentityPolicy {
        identity: IdentityMatcher::regex(identity)
            .map_err(|e| JsFailure::invalid(format!("sigstoreIdentity: {e}")))?,
        issuer: o
            .sigstore_issuer
            .clone()
            .unwrap_or_else(|| railgun_core::trust::sigstore::GITHUB_ACTIONS_ISSUER.to_string()),
    };
    let verifier = SigstoreVerifier::public_good(policy)
        .map_err(|e| JsFailure::invalid(format!("sigstore trust root: {e}")))?;
    Ok(Some(SigstorePolicy {
        mode,
        verifier: Some(Arc::new(verifier)),
    }))
}

fn build(o: &UpdaterOptions) -> std::result::Result<(CoreUpdater, PathBuf), JsFailure> {
    let current = parse_version("currentVersion", &o.current_version)?;
    let keys = parse_keys("publicKeys", &o.public_keys)?;
    let mut update = UpdateConfig::new(&o.url, &o.app, &o.channel, current, keys);
    if let Some(r) = &o.rollout_public_keys {
        update.rollout_keys = Some(parse_keys("rolloutPublicKeys", r)?);
    }
    if let Some(p) = &o.platform {
        update.platform = p
            .parse::<Platform>()
            .map_err(|e| JsFailure::invalid(format!("platform: {e}")))?;
    }
    if let Some(a) = &o.arch {
        update.arch = a
            .parse::<Arch>()
            .map_err(|e| JsFailure::invalid(format!("arch: {e}")))?;
    }
    update.install_id = o.install_id.clone();
    if o.state_dir.trim().is_empty() || o.install_root.trim().is_empty() {
        return Err(JsFailure::invalid(
            "stateDir and installRoot must be folders",
        ));
    }
    let state_dir = PathBuf::from(&o.state_dir);
    let install_root = PathBuf::from(&o.install_root);
    let mut config = UpdaterConfig::new(update, &state_dir, &install_root);
    if let Some(a) = o.auto_download {
        config.auto_download = a;
    }
    if let Some(d) = o.delta {
        config.delta.enabled = d;
    }
    if let Some(share) = o.delta_max_share {
        if !(share > 0.0 && share <= 1.0) {
            return Err(JsFailure::invalid(format!(
                "deltaMaxShare {share} is not within (0, 1]"
            )));
        }
        config.delta.max_patch_share = share;
    }
    let store = Arc::new(Store::open(state_dir.join("railgun.db"))?);
    let updater = CoreUpdater::new(config, store)?;
    if let Some(policy) = sigstore_policy(o)? {
        updater.set_verifier(Some(Arc::new(policy)));
    }
    Ok((updater, install_root))
}

/// Signed updates: check, download, verify, install, with electron-updater's events.
#[napi]
pub struct Updater {
    core: CoreUpdater,
    install_root: PathBuf,
    listeners: Listeners,
}

#[napi]
impl Updater {
    /// Opens the client store in `stateDir` and prepares the updater (no network yet).
    #[napi(constructor, ts_args_type = "opts: UpdaterOptions")]
    pub fn new(env: &Env, opts: Unknown<'_>) -> Result<Self, Code> {
        let opts: UpdaterOptions = from_js(env, "Updater options", opts)?;
        let (core, install_root) = build(&opts)?;
        let listeners: Listeners = Arc::new(Mutex::new(Vec::new()));
        let mut rx = core.subscribe();
        let fanout = Arc::clone(&listeners);
        napi::bindgen_prelude::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        let (name, data) = event_for_js(&e);
                        for l in lock(&fanout).iter() {
                            l.call(
                                (name.clone(), data.clone()).into(),
                                ThreadsafeFunctionCallMode::NonBlocking,
                            );
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Self {
            core,
            install_root,
            listeners,
        })
    }

    /// Checks the channel: the update to apply, or `null`.
    #[napi(ts_return_type = "Promise<UpdateInfo | null>")]
    pub fn check_for_updates<'env>(
        &self,
        env: &'env Env,
    ) -> Result<PromiseRaw<'env, Option<UpdateInfo>>> {
        let core = self.core.clone();
        spawn_promise(
            env,
            async move {
                core.check_for_updates()
                    .await
                    .map(|u| u.as_ref().map(update_info))
                    .map_err(JsFailure::from)
            },
            |_, v| Ok(v),
        )
    }

    /// Downloads the available update and verifies its SHA-256 (and Sigstore bundle).
    #[napi(ts_return_type = "Promise<DownloadResult>")]
    pub fn download_update<'env>(
        &self,
        env: &'env Env,
    ) -> Result<PromiseRaw<'env, DownloadResult>> {
        let core = self.core.clone();
        spawn_promise(
            env,
            async move { core.download_update().await.map_err(JsFailure::from) },
            |_, d| {
                Ok(DownloadResult {
                    version: staged_version(&d.file.path),
                    path: d.file.path.to_string_lossy().into_owned(),
                    sha256: hex_lower(&d.file.sha256),
                    size: d.file.size as f64,
                    delta: d.delta,
                    downloaded_bytes: d.downloaded_bytes as f64,
                    full_bytes: d.full_bytes as f64,
                    delta_fallback: d.fallback.map(|f| DeltaFallback {
                        version: f.version,
                        from: f.from,
                        reason: f.reason.as_str().to_string(),
                        message: f.message,
                        patch_bytes: f.patch_bytes as f64,
                        full_bytes: f.full_bytes as f64,
                    }),
                })
            },
        )
    }

    /// Installs the downloaded update now (restart the app to run it).
    #[napi(ts_return_type = "Promise<InstallResult>")]
    pub fn install_update<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, InstallResult>> {
        let core = self.core.clone();
        spawn_promise(
            env,
            async move {
                match core.install_update(InstallMode::Now).await {
                    Ok(Some(i)) => Ok(InstallResult {
                        version: i.version.to_string(),
                        previous: i.previous.map(|p| p.to_string()),
                    }),
                    Ok(None) => Err(JsFailure::new(
                        crate::error::INTERNAL,
                        "install deferred unexpectedly",
                    )),
                    Err(e) => Err(JsFailure::from(e)),
                }
            },
            |_, v| Ok(v),
        )
    }

    /// Calls `cb(name, payload)` for every event: `checking-for-update`,
    /// `update-available`, `update-not-available`, `download-progress`, `update-downloaded`,
    /// `error` (payload `{message, code, coreCode}`), `update-delta-fallback` (payload
    /// `DeltaFallback`). The listener does not keep Node alive.
    #[napi(ts_args_type = "cb: (name: UpdaterEventName, payload: unknown) => void")]
    pub fn on_event(
        &self,
        cb: Function<FnArgs<(String, serde_json::Value)>, Unknown<'static>>,
    ) -> Result<()> {
        let tsfn = cb
            .build_threadsafe_function::<FnArgs<(String, serde_json::Value)>>()
            .weak::<true>()
            .callee_handled::<false>()
            .build()?;
        lock(&self.listeners).push(tsfn);
        Ok(())
    }

    /// Checks every `intervalMs` (±10 % jitter, honouring `Retry-After`) and downloads what
    /// it finds. Replaces a running schedule.
    #[napi]
    pub fn start_auto_check(&self, interval_ms: f64) -> Result<(), Code> {
        if !interval_ms.is_finite() || interval_ms < 1000.0 {
            return Err(JsFailure::new(
                INVALID_ARGUMENT,
                format!("intervalMs {interval_ms} must be at least 1000"),
            )
            .into());
        }
        let core = self.core.clone();
        let interval = Duration::from_millis(interval_ms as u64);
        napi::bindgen_prelude::within_runtime_if_available(move || core.start_auto_check(interval));
        Ok(())
    }

    /// Stops the automatic checks.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn stop<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        spawn_promise(
            env,
            async move {
                core.stop().await;
                Ok(())
            },
            |_, v| Ok(v),
        )
    }

    /// Tells the boot guard of `installRoot` that this version started fine (no revert).
    #[napi]
    pub fn mark_boot_successful(&self) -> Result<(), Code> {
        BootGuard::new(&self.install_root)
            .mark_boot_successful()
            .map_err(|e| JsFailure::new(IO, e).into())
    }

    /// The installed version as the updater sees it (moves after an install).
    #[napi(getter)]
    pub fn current_version(&self) -> String {
        self.core.current_version().to_string()
    }

    /// `idle`, `checking`, `update-available`, `downloading`, `update-downloaded`,
    /// `installing` or `installed`.
    #[napi(getter)]
    pub fn state(&self) -> String {
        serde_json::to_value(self.core.state())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn staged_version(path: &std::path::Path) -> String {
    // Staging keeps each version in `staging/<version>/<file>` (`Downloader::version_dir`).
    path.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use railgun_core::update::Progress;
    use railgun_core::update::UpdateInfo as CoreInfo;
    use railgun_core::update::UpdateProgress;

    #[test]
    fn events_keep_electron_updater_names_and_payloads() {
        let (name, data) = event_for_js(&UpdaterEvent::DownloadProgress(UpdateProgress {
            file: Progress {
                percent: 50.0,
                transferred: 5,
                total: 10,
                bytes_per_second: 7,
            },
            delta: true,
            downloaded_bytes: 5,
            full_bytes: 100,
        }));
        assert_eq!(name, "download-progress");
        assert_eq!(data["bytesPerSecond"], 7);
        assert_eq!(data["percent"], 50.0);
        let (name, data) = event_for_js(&UpdaterEvent::CheckingForUpdate);
        assert_eq!(
            (name.as_str(), data),
            ("checking-for-update", serde_json::Value::Null)
        );
        let (name, data) = event_for_js(&UpdaterEvent::UpdateAvailable(CoreInfo {
            version: "1.2.3".into(),
            release_notes: None,
            release_date: None,
            files: vec![],
        }));
        assert_eq!(
            (name.as_str(), &data["version"]),
            ("update-available", &"1.2.3".into())
        );
    }

    #[test]
    fn error_events_carry_the_stable_code_and_the_core_code() {
        let (name, data) = event_for_js(&UpdaterEvent::Error {
            message: "sha mismatch".into(),
            code: "ERR_UPDATER_CHECKSUM_MISMATCH".into(),
        });
        assert_eq!(name, "error");
        assert_eq!(data["code"], "ERR_CHECKSUM_MISMATCH");
        assert_eq!(data["coreCode"], "ERR_UPDATER_CHECKSUM_MISMATCH");
        assert_eq!(data["message"], "sha mismatch");
        assert_eq!(
            stable_event_code("ERR_UPDATER_SOMETHING_NEW"),
            "ERR_CHECK_FAILED"
        );
        assert_eq!(
            stable_event_code("ERR_UPDATER_UNSAFE_ARCHIVE"),
            "ERR_ARCHIVE_INVALID"
        );
    }

    /// The `error` event and the rejected Promise give the same code for every check step.
    #[test]
    fn check_error_events_carry_the_same_code_as_the_rejected_promise() {
        use railgun_core::trust::DsseError;
        use railgun_core::update::CheckError;
        use railgun_core::update::DocumentError;
        let url = || "https://updates.example/x".to_string();
        let now = chrono::Utc::now();
        let all = vec![
            CheckError::Config("x".into()),
            CheckError::Url {
                url: url(),
                reason: "x".into(),
            },
            CheckError::Network {
                url: url(),
                source: reqwest::Client::new()
                    .get("no scheme")
                    .build()
                    .expect_err("a relative URL is refused"),
            },
            CheckError::Timeout { url: url() },
            CheckError::HttpStatus {
                url: url(),
                status: 503,
                retry_after: None,
            },
            CheckError::TooLarge {
                url: url(),
                limit: 1,
            },
            CheckError::Signature {
                document: "channel state",
                source: DsseError::Malformed("x".into()),
            },
            CheckError::Document(DocumentError::Malformed {
                document: "manifest",
                message: "x".into(),
            }),
            CheckError::WrongChannel {
                app: "a".into(),
                channel: "stable".into(),
                found_app: "b".into(),
                found_channel: "stable".into(),
            },
            CheckError::Expired {
                expires_at: now,
                now,
            },
            CheckError::SequenceRollback { seen: 2, got: 1 },
            CheckError::ManifestDigestMismatch {
                url: url(),
                expected: "a".into(),
                actual: "b".into(),
            },
            CheckError::ManifestMismatch {
                expected: "a".into(),
                found: "b".into(),
            },
            CheckError::NoArtifact {
                version: Version::new(1, 0, 0),
                platform: Platform::Linux,
                arch: Arch::X64,
                formats: "tar.gz".into(),
            },
        ];
        for e in all {
            let core = e.code();
            assert_eq!(
                stable_event_code(core),
                crate::error::check_code(&e).0,
                "{core}"
            );
        }
    }

    #[test]
    fn keys_and_versions_are_refused_with_invalid_argument() {
        assert_eq!(
            parse_keys("publicKeys", &[]).unwrap_err().code,
            INVALID_ARGUMENT
        );
        assert_eq!(
            parse_keys("publicKeys", &["nope".into()]).unwrap_err().code,
            INVALID_ARGUMENT
        );
        assert_eq!(
            parse_version("v", "1.x").unwrap_err().code,
            INVALID_ARGUMENT
        );
        assert_eq!(parse_version("v", " 1.2.3 ").unwrap().to_string(), "1.2.3");
    }
}
