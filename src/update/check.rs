//! The update check: from the channel state URL to "install this artifact" (or "nothing to
//! do"), refusing every document that is not fresh, signed, and consistent.
//!
//! The pipeline, one small named step each (each has a test named after the attack it
//! stops):
//!
//! 1. [`fetch_document`] — bounded download (endless data), typed HTTP errors, timeouts;
//! 2. [`verify_channel_state`] — DSSE with the rollout keys, payload type, then parse;
//! 3. [`check_identity`] — `app`/`channel` are the ones asked for (wrong software);
//! 4. [`check_expiry`] — not expired (indefinite freeze);
//! 5. `check_sequence` — not lower than the highest seen, persisted (metadata rollback);
//! 6. [`choose_target`] — rollout bucket, halt, fallback, signed `rollbackFrom`, and never
//!    a lower version otherwise (downgrade);
//! 7. [`check_digest`] — the manifest's SHA-256 is the one the state names (mix-and-match);
//! 8. [`verify_manifest`] — DSSE with the release keys, then parse and validate;
//! 9. [`check_version`] — the manifest is the version the state named;
//! 10. artifact selection for this platform/arch.
//!
//! It does not download or install artifacts: that is `download` and `install`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use semver::Version;
use serde::Serialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::clock::{self, SharedClock};
use crate::identity::{self, bucket, in_percentage, rollout_seed};
use crate::net::{self, BodyError};
use crate::store::{Store, StoreError};
use crate::trust::{DsseError, SignedDocument, TrustedKeys, VerifyError};

use super::channel::{ChannelState, ReleasePointer, RolloutStatus};
use super::manifest::{
    is_valid_app_name, is_valid_channel, Arch, Artifact, DocumentError, Format, Platform,
    ReleaseManifest,
};

/// Largest channel state accepted (1 MiB).
pub const MAX_CHANNEL_STATE_BYTES: usize = 1024 * 1024;
/// Largest release manifest accepted (10 MiB).
pub const MAX_MANIFEST_BYTES: usize = 10 * 1024 * 1024;

/// Why an update check was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The client configuration cannot work.
    #[error("invalid update configuration: {0}")]
    Config(String),
    /// A URL could not be built or is not allowed.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL (or relative reference).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The server could not be reached or the connection broke.
    #[error(
        "cannot reach the update server at {url}: {}",
        crate::error::chain(source)
    )]
    Network {
        /// The URL.
        url: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },
    /// The server did not answer in time.
    #[error("update server at {url} did not answer in time (connect or request timeout)")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// The server answered with an error status.
    #[error("update server answered {status} for {url}{}", retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    HttpStatus {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Seconds from `Retry-After`, if given.
        retry_after: Option<u64>,
    },
    /// A document larger than its limit (endless-data attack or broken server).
    #[error("{url} sent more than {limit} bytes: refused (endless-data protection)")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// A signature check failed.
    #[error("{document} signature refused: {source}")]
    Signature {
        /// Which document.
        document: &'static str,
        /// Why.
        #[source]
        source: DsseError,
    },
    /// A verified document breaks a rule.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The channel state is for another app or channel.
    #[error("channel state is for {found_app}/{found_channel}, expected {app}/{channel}: refusing another app's or channel's metadata")]
    WrongChannel {
        /// App asked for.
        app: String,
        /// Channel asked for.
        channel: String,
        /// App in the state.
        found_app: String,
        /// Channel in the state.
        found_channel: String,
    },
    /// The channel state has expired (freeze attack, or a server that stopped signing).
    #[error("channel state expired at {expires_at} (now {now}): the server may be frozen or replaying old metadata")]
    Expired {
        /// Expiry of the state.
        expires_at: DateTime<Utc>,
        /// The client's time.
        now: DateTime<Utc>,
    },
    /// The channel state is older than one already seen (metadata rollback).
    #[error("channel state sequence {got} is lower than {seen} already seen: refusing replayed metadata")]
    SequenceRollback {
        /// Highest seen.
        seen: u64,
        /// Offered.
        got: u64,
    },
    /// The manifest is not the one the channel state pinned (mix-and-match).
    #[error("manifest {url} has SHA-256 {actual}, the channel state pins {expected}: refusing a substituted manifest")]
    ManifestDigestMismatch {
        /// URL of the manifest.
        url: String,
        /// Digest named by the channel state.
        expected: String,
        /// Digest of the bytes received.
        actual: String,
    },
    /// The manifest says another version, app or channel than the state named.
    #[error("manifest is {found}, the channel state named {expected}")]
    ManifestMismatch {
        /// What the state named.
        expected: String,
        /// What the manifest says.
        found: String,
    },
    /// The release has no artifact this install can use.
    #[error("release {version} has no artifact for {platform}/{arch} in the formats {formats}")]
    NoArtifact {
        /// The version.
        version: Version,
        /// This platform.
        platform: Platform,
        /// This arch.
        arch: Arch,
        /// Formats looked for.
        formats: String,
    },
    /// The client store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl CheckError {
    /// A stable code for bindings and events: which check step refused, so an app can tell
    /// a network failure from a refused signature or a replayed state without the message.
    pub fn code(&self) -> &'static str {
        match self {
            CheckError::Config(_) => "ERR_UPDATER_CONFIG",
            CheckError::Url { .. } => "ERR_UPDATER_BAD_URL",
            CheckError::Network { .. } => "ERR_UPDATER_NETWORK",
            CheckError::Timeout { .. } => "ERR_UPDATER_TIMEOUT",
            CheckError::HttpStatus { .. } => "ERR_UPDATER_HTTP_STATUS",
            CheckError::TooLarge { .. } => "ERR_UPDATER_TOO_LARGE",
            CheckError::Signature { .. } => "ERR_UPDATER_SIGNATURE",
            CheckError::Document(_) => "ERR_UPDATER_INVALID_DOCUMENT",
            CheckError::WrongChannel { .. } => "ERR_UPDATER_WRONG_CHANNEL",
            CheckError::Expired { .. } => "ERR_UPDATER_EXPIRED",
            CheckError::SequenceRollback { .. } => "ERR_UPDATER_ROLLBACK",
            CheckError::ManifestDigestMismatch { .. } => "ERR_UPDATER_MANIFEST_DIGEST",
            CheckError::ManifestMismatch { .. } => "ERR_UPDATER_MANIFEST_MISMATCH",
            CheckError::NoArtifact { .. } => "ERR_UPDATER_NO_ARTIFACT",
            CheckError::Store(_) => "ERR_UPDATER_STORE",
        }
    }
}

impl From<StoreError> for CheckError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SequenceRollback { seen, got, .. } => {
                CheckError::SequenceRollback { seen, got }
            }
            other => CheckError::Store(other),
        }
    }
}

/// How an update client is set up.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// Base URL of the update tree; the channel state is `{url}/{app}/{channel}/channel.json`.
    pub url: String,
    /// App name.
    pub app: String,
    /// Channel (stable, beta, canary or custom).
    pub channel: String,
    /// The installed version.
    pub current_version: Version,
    /// Keys that sign release manifests.
    pub release_keys: TrustedKeys,
    /// Keys that sign channel states (`None`: the release keys, for static hosting).
    pub rollout_keys: Option<TrustedKeys>,
    /// This install's platform (defaults to the running one).
    pub platform: Platform,
    /// This install's arch (defaults to the running one).
    pub arch: Arch,
    /// Formats this install can apply, most preferred first (empty: the platform default).
    pub formats: Vec<Format>,
    /// The install id used for bucketing (`None`: derived from the machine id / store).
    pub install_id: Option<String>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Total timeout for one metadata request.
    pub request_timeout: Duration,
    /// User-Agent sent with every request.
    pub user_agent: String,
}

impl UpdateConfig {
    /// A configuration with the required fields and defaults for the rest.
    pub fn new(
        url: impl Into<String>,
        app: impl Into<String>,
        channel: impl Into<String>,
        current_version: Version,
        release_keys: TrustedKeys,
    ) -> Self {
        Self {
            url: url.into(),
            app: app.into(),
            channel: channel.into(),
            current_version,
            release_keys,
            rollout_keys: None,
            platform: Platform::current().unwrap_or(Platform::Linux),
            arch: Arch::current().unwrap_or(Arch::X64),
            formats: Vec::new(),
            install_id: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            user_agent: format!("railgun/{} (update-check)", env!("CARGO_PKG_VERSION")),
        }
    }

    fn formats(&self) -> Vec<Format> {
        if self.formats.is_empty() {
            self.platform.default_formats().to_vec()
        } else {
            self.formats.clone()
        }
    }
}

/// What kind of move an update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UpdateKind {
    /// The channel's release, this install being inside its rollout.
    Rollout,
    /// The fallback release (outside the rollout, or the rollout is halted).
    Fallback,
    /// A signed rollback from the installed version.
    Rollback,
}

/// Why a check decided what it decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DecisionReason {
    /// This install is inside the rollout of a newer release.
    InRollout,
    /// The fallback release is newer than the installed one.
    Fallback,
    /// The signed state lists the installed version in `rollbackFrom`.
    Rollback,
    /// The installed version is the channel's release.
    UpToDate,
    /// This install is outside the rollout and no newer fallback exists.
    NotInRollout,
    /// The rollout is halted and no newer fallback exists.
    Halted,
    /// The channel offers only versions lower than the installed one (never downgrade).
    NewerInstalled,
}

impl DecisionReason {
    /// The camelCase name used on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecisionReason::InRollout => "inRollout",
            DecisionReason::Fallback => "fallback",
            DecisionReason::Rollback => "rollback",
            DecisionReason::UpToDate => "upToDate",
            DecisionReason::NotInRollout => "notInRollout",
            DecisionReason::Halted => "halted",
            DecisionReason::NewerInstalled => "newerInstalled",
        }
    }
}

/// An update that passed every check and can be downloaded.
#[derive(Debug, Clone)]
pub struct AvailableUpdate {
    /// The version to move to.
    pub version: Version,
    /// Rollout, fallback or rollback.
    pub kind: UpdateKind,
    /// The verified manifest.
    pub manifest: ReleaseManifest,
    /// Where the manifest came from.
    pub manifest_url: Url,
    /// The artifact for this platform/arch/format.
    pub artifact: Artifact,
    /// The artifact's absolute URL.
    pub artifact_url: Url,
    /// The Sigstore bundle's absolute URL, when the manifest names one.
    pub sigstore_bundle_url: Option<Url>,
}

/// The outcome of a check.
#[derive(Debug, Clone)]
pub struct UpdateDecision {
    /// The update to apply, if any.
    pub update: Option<AvailableUpdate>,
    /// Why.
    pub reason: DecisionReason,
    /// This install's bucket for the channel's release (0–9999).
    pub bucket: u16,
    /// The channel state that was acted on.
    pub state: ChannelState,
}

/// Checks a channel for updates.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use railgun_core::store::Store;
/// use railgun_core::trust::{PublicKey, TrustedKeys};
/// use railgun_core::update::{UpdateClient, UpdateConfig};
///
/// let key = PublicKey::parse(&std::env::var("RAILGUN_UPDATE_PUBLIC_KEY")?)?;
/// let config = UpdateConfig::new(
///     "https://updates.example.com",
///     "rail-gun",
///     "stable",
///     "1.4.0".parse()?,
///     TrustedKeys::single(key),
/// );
/// let store = Arc::new(Store::open("/tmp/railgun/state.db")?);
/// let client = UpdateClient::new(config, store)?;
/// if let Some(update) = client.check().await?.update {
///     println!("update to {} from {}", update.version, update.artifact_url);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct UpdateClient {
    config: UpdateConfig,
    channel_url: Url,
    install_id: String,
    http: reqwest::Client,
    store: Arc<Store>,
    clock: SharedClock,
}

impl UpdateClient {
    /// Builds a client; the install id comes from the config or the machine id / store.
    pub fn new(config: UpdateConfig, store: Arc<Store>) -> Result<Self, CheckError> {
        if !is_valid_app_name(&config.app) {
            return Err(CheckError::Config(format!(
                "app name {:?} is not 1-64 of [A-Za-z0-9._-]",
                config.app
            )));
        }
        if !is_valid_channel(&config.channel) {
            return Err(CheckError::Config(format!(
                "channel {:?} is not stable, beta, canary or a custom name of [a-z0-9-]",
                config.channel
            )));
        }
        let channel_url = channel_url(&config.url, &config.app, &config.channel)?;
        let install_id = match &config.install_id {
            Some(id) => id.clone(),
            None => identity::install_id(&config.app, &store)?,
        };
        let http = net::client(
            &config.user_agent,
            config.connect_timeout,
            Some(config.request_timeout),
        )
        .map_err(|e| CheckError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            config,
            channel_url,
            install_id,
            http,
            store,
            clock: clock::system(),
        })
    }

    /// Uses `clock` instead of the system clock (tests, simulations).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Uses an existing HTTP client (shares its connection pool).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &UpdateConfig {
        &self.config
    }

    /// The HTTP client (for downloading what a check found).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The install id used for bucketing.
    pub fn install_id(&self) -> &str {
        &self.install_id
    }

    /// The URL of the channel state.
    pub fn channel_url(&self) -> &Url {
        &self.channel_url
    }

    /// Sets the installed version (after an update was applied).
    pub fn set_current_version(&mut self, version: Version) {
        self.config.current_version = version;
    }

    /// Runs the whole check pipeline.
    pub async fn check(&self) -> Result<UpdateDecision, CheckError> {
        let cfg = &self.config;
        let rollout_keys = cfg.rollout_keys.as_ref().unwrap_or(&cfg.release_keys);

        let raw = fetch_document(&self.http, &self.channel_url, MAX_CHANNEL_STATE_BYTES).await?;
        let state = verify_channel_state(&raw, rollout_keys)?;
        check_identity(&state, &cfg.app, &cfg.channel)?;
        check_expiry(&state, self.clock.now())?;
        self.store
            .check_and_record_sequence(&cfg.app, &cfg.channel, state.sequence)?;

        let choice = choose_target(&state, &cfg.current_version, &self.install_id);
        let Some((pointer, kind)) = choice.target else {
            return Ok(UpdateDecision {
                update: None,
                reason: choice.reason,
                bucket: choice.bucket,
                state,
            });
        };

        let manifest_url = join_url(&self.channel_url, &pointer.manifest)?;
        let raw = fetch_document(&self.http, &manifest_url, MAX_MANIFEST_BYTES).await?;
        check_digest(&raw, &pointer.manifest_sha256, &manifest_url)?;
        let manifest = verify_manifest(&raw, &cfg.release_keys)?;
        check_version(&manifest, pointer, &cfg.app, &cfg.channel)?;

        let formats = cfg.formats();
        let artifact = manifest
            .select_artifact(cfg.platform, cfg.arch, &formats)
            .cloned()
            .ok_or_else(|| CheckError::NoArtifact {
                version: manifest.version.clone(),
                platform: cfg.platform,
                arch: cfg.arch,
                formats: formats
                    .iter()
                    .map(Format::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let artifact_url = join_url(&manifest_url, &artifact.url)?;
        let sigstore_bundle_url = artifact
            .sigstore_bundle
            .as_deref()
            .map(|b| join_url(&manifest_url, b))
            .transpose()?;
        Ok(UpdateDecision {
            update: Some(AvailableUpdate {
                version: manifest.version.clone(),
                kind,
                manifest,
                manifest_url,
                artifact,
                artifact_url,
                sigstore_bundle_url,
            }),
            reason: choice.reason,
            bucket: choice.bucket,
            state,
        })
    }
}

/// `{base}/{app}/{channel}/channel.json`.
pub fn channel_url(base: &str, app: &str, channel: &str) -> Result<Url, CheckError> {
    let mut base_url = Url::parse(base).map_err(|e| CheckError::Url {
        url: base.to_string(),
        reason: e.to_string(),
    })?;
    if base_url.scheme() != "http" && base_url.scheme() != "https" {
        return Err(CheckError::Url {
            url: base.to_string(),
            reason: "only http and https are allowed".into(),
        });
    }
    if !base_url.path().ends_with('/') {
        let p = format!("{}/", base_url.path());
        base_url.set_path(&p);
    }
    join_url(&base_url, &format!("{app}/{channel}/channel.json"))
}

/// Resolves `reference` against `base`, allowing only http(s) results.
pub fn join_url(base: &Url, reference: &str) -> Result<Url, CheckError> {
    let bad = |reason: String| CheckError::Url {
        url: reference.to_string(),
        reason,
    };
    super::manifest::check_url(reference).map_err(bad)?;
    let url = base.join(reference).map_err(|e| bad(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad("only http and https are allowed".into()));
    }
    Ok(url)
}

/// Step 1: GET `url`, refusing error statuses and bodies above `limit` bytes.
pub async fn fetch_document(
    http: &reqwest::Client,
    url: &Url,
    limit: usize,
) -> Result<Vec<u8>, CheckError> {
    let mut resp = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| request_error(url, e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(CheckError::HttpStatus {
            url: url.to_string(),
            status: status.as_u16(),
            retry_after: net::retry_after_secs(resp.headers()),
        });
    }
    net::read_limited(&mut resp, limit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => CheckError::TooLarge {
                url: url.to_string(),
                limit,
            },
            BodyError::Transport(e) => request_error(url, e),
        })
}

/// Maps a reqwest failure to a typed error.
pub(crate) fn request_error(url: &Url, e: reqwest::Error) -> CheckError {
    if e.is_timeout() {
        CheckError::Timeout {
            url: url.to_string(),
        }
    } else {
        CheckError::Network {
            url: url.to_string(),
            source: e,
        }
    }
}

/// Steps 2 and 8: verify a document's envelope (its own payload type, `keys`), then parse
/// and validate it: the channel state with the rollout keys, the manifest with the release
/// keys.
pub fn verify_document<D>(raw: &[u8], keys: &TrustedKeys) -> Result<D, CheckError>
where
    D: SignedDocument<Error = DocumentError>,
{
    D::verify(raw, keys).map_err(|e| match e {
        VerifyError::Signature { document, source } => CheckError::Signature { document, source },
        VerifyError::Document(e) => CheckError::Document(e),
    })
}

/// Step 2: verify the channel-state envelope with the rollout keys, then parse it.
pub fn verify_channel_state(raw: &[u8], keys: &TrustedKeys) -> Result<ChannelState, CheckError> {
    verify_document(raw, keys)
}

/// Step 3: the state is for the app and channel asked for.
pub fn check_identity(state: &ChannelState, app: &str, channel: &str) -> Result<(), CheckError> {
    if state.app == app && state.channel == channel {
        Ok(())
    } else {
        Err(CheckError::WrongChannel {
            app: app.into(),
            channel: channel.into(),
            found_app: state.app.clone(),
            found_channel: state.channel.clone(),
        })
    }
}

/// Step 4: the state has not expired.
pub fn check_expiry(state: &ChannelState, now: DateTime<Utc>) -> Result<(), CheckError> {
    if now >= state.expires_at {
        Err(CheckError::Expired {
            expires_at: state.expires_at,
            now,
        })
    } else {
        Ok(())
    }
}

/// The outcome of [`choose_target`].
#[derive(Debug, Clone)]
pub struct TargetChoice<'a> {
    /// The release to move to.
    pub target: Option<(&'a ReleasePointer, UpdateKind)>,
    /// Why.
    pub reason: DecisionReason,
    /// The install's bucket for the channel's release.
    pub bucket: u16,
}

/// Step 6: which release this install should move to.
///
/// * the installed version is listed in `rollbackFrom` → the fallback (or the release) that
///   is not itself listed: a signed rollback;
/// * inside the rollout (bucket below the percentage, status not halted) and the release is
///   newer → the release;
/// * otherwise the fallback when it is newer than the installed version;
/// * never a lower version than the installed one without `rollbackFrom`.
pub fn choose_target<'a>(
    state: &'a ChannelState,
    current: &Version,
    install_id: &str,
) -> TargetChoice<'a> {
    let release = &state.release;
    let b = bucket(
        &rollout_seed(&state.app, &state.channel, &release.version.to_string()),
        install_id,
    );
    let pick = |target, reason| TargetChoice {
        target,
        reason,
        bucket: b,
    };

    if state.rollback_from.contains(current) {
        let candidates = state.fallback.iter().chain(std::iter::once(release));
        if let Some(p) = candidates
            .into_iter()
            .find(|p| p.version != *current && !state.rollback_from.contains(&p.version))
        {
            return pick(Some((p, UpdateKind::Rollback)), DecisionReason::Rollback);
        }
    }

    let in_rollout = match state.rollout.status {
        RolloutStatus::Halted => false,
        RolloutStatus::Complete => true,
        RolloutStatus::Active => in_percentage(b, state.rollout.percentage),
    };
    if in_rollout && release.version > *current {
        return pick(
            Some((release, UpdateKind::Rollout)),
            DecisionReason::InRollout,
        );
    }
    if let Some(f) = &state.fallback {
        if f.version > *current && !(in_rollout && release.version == *current) {
            return pick(Some((f, UpdateKind::Fallback)), DecisionReason::Fallback);
        }
    }
    let reason = if release.version == *current {
        if state.rollout.status == RolloutStatus::Halted {
            DecisionReason::Halted
        } else {
            DecisionReason::UpToDate
        }
    } else if release.version < *current {
        DecisionReason::NewerInstalled
    } else if state.rollout.status == RolloutStatus::Halted {
        DecisionReason::Halted
    } else {
        DecisionReason::NotInRollout
    };
    pick(None, reason)
}

/// Step 7: the manifest bytes are exactly the ones the state pinned.
pub fn check_digest(raw: &[u8], expected: &str, url: &Url) -> Result<(), CheckError> {
    let actual = hex::encode(Sha256::digest(raw));
    if actual == expected {
        Ok(())
    } else {
        Err(CheckError::ManifestDigestMismatch {
            url: url.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// Step 8: verify the manifest envelope with the release keys, then parse and validate it.
pub fn verify_manifest(raw: &[u8], keys: &TrustedKeys) -> Result<ReleaseManifest, CheckError> {
    verify_document(raw, keys)
}

/// Step 9: the manifest is the app, channel and version the state named.
pub fn check_version(
    manifest: &ReleaseManifest,
    pointer: &ReleasePointer,
    app: &str,
    channel: &str,
) -> Result<(), CheckError> {
    if manifest.version != pointer.version || manifest.app != app || manifest.channel != channel {
        return Err(CheckError::ManifestMismatch {
            expected: format!("{app}/{channel} {}", pointer.version),
            found: format!("{}/{} {}", manifest.app, manifest.channel, manifest.version),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::channel::RolloutState;

    fn ptr(v: &str) -> ReleasePointer {
        ReleasePointer {
            version: v.parse().expect("version"),
            manifest: format!("../releases/{v}/manifest.json"),
            manifest_sha256: "0".repeat(64),
        }
    }

    fn state(pct: f64, status: RolloutStatus, fallback: Option<&str>) -> ChannelState {
        ChannelState {
            schema: 1,
            app: "app".into(),
            channel: "stable".into(),
            sequence: 1,
            issued_at: "2026-01-01T00:00:00Z".parse().expect("t"),
            expires_at: "2026-01-08T00:00:00Z".parse().expect("t"),
            release: ptr("0.2.0"),
            rollout: RolloutState {
                percentage: pct,
                status,
            },
            fallback: fallback.map(ptr),
            rollback_from: vec![],
        }
    }

    fn v(s: &str) -> Version {
        s.parse().expect("version")
    }

    /// An id whose bucket for app:stable:0.2.0 is below / above `pct`.
    fn id_with(inside: bool, pct: f64) -> String {
        (0..)
            .map(|i| format!("id-{i}"))
            .find(|id| in_percentage(bucket("app:stable:0.2.0", id), pct) == inside)
            .expect("some id")
    }

    #[test]
    fn in_rollout_gets_the_release_outside_gets_nothing() {
        let s = state(10.0, RolloutStatus::Active, None);
        let c = choose_target(&s, &v("0.1.0"), &id_with(true, 10.0));
        assert_eq!(c.reason, DecisionReason::InRollout);
        let c = choose_target(&s, &v("0.1.0"), &id_with(false, 10.0));
        assert!(c.target.is_none());
        assert_eq!(c.reason, DecisionReason::NotInRollout);
    }

    #[test]
    fn halted_rollout_gives_the_fallback() {
        let s = state(100.0, RolloutStatus::Halted, Some("0.1.5"));
        let c = choose_target(&s, &v("0.1.0"), "anyone");
        let (p, kind) = c.target.expect("fallback");
        assert_eq!(p.version, v("0.1.5"));
        assert_eq!(kind, UpdateKind::Fallback);
        // Without a newer fallback: nothing, reason halted.
        let c = choose_target(&s, &v("0.1.5"), "anyone");
        assert!(c.target.is_none());
        assert_eq!(c.reason, DecisionReason::Halted);
    }

    #[test]
    fn downgrade_refused_without_rollback_from() {
        let s = state(100.0, RolloutStatus::Complete, Some("0.1.0"));
        let c = choose_target(&s, &v("0.3.0"), "anyone");
        assert!(c.target.is_none());
        assert_eq!(c.reason, DecisionReason::NewerInstalled);
        // The installed bad release with a halted rollout stays without rollbackFrom.
        let s = state(100.0, RolloutStatus::Halted, Some("0.1.0"));
        let c = choose_target(&s, &v("0.2.0"), "anyone");
        assert!(c.target.is_none());
    }

    #[test]
    fn rollback_allowed_only_via_rollback_from() {
        let mut s = state(100.0, RolloutStatus::Halted, Some("0.1.0"));
        s.rollback_from = vec![v("0.2.0")];
        let c = choose_target(&s, &v("0.2.0"), "anyone");
        let (p, kind) = c.target.expect("rollback");
        assert_eq!(
            (p.version.clone(), kind),
            (v("0.1.0"), UpdateKind::Rollback)
        );
        // Others are unaffected.
        let c = choose_target(&s, &v("0.1.0"), "anyone");
        assert!(c.target.is_none());
    }

    #[test]
    fn complete_means_everyone() {
        let s = state(0.0, RolloutStatus::Complete, None);
        let c = choose_target(&s, &v("0.1.0"), &id_with(false, 50.0));
        assert_eq!(c.reason, DecisionReason::InRollout);
    }

    #[test]
    fn raising_the_percentage_never_drops_anyone() {
        let ids: Vec<String> = (0..5000).map(|i| format!("install-{i}")).collect();
        let mut prev: Vec<bool> = vec![false; ids.len()];
        for pct in [0.5, 1.0, 10.0, 25.0, 33.33, 50.0, 99.99, 100.0] {
            let s = state(pct, RolloutStatus::Active, None);
            let now: Vec<bool> = ids
                .iter()
                .map(|id| choose_target(&s, &v("0.1.0"), id).target.is_some())
                .collect();
            for (a, b) in prev.iter().zip(&now) {
                assert!(
                    !a || *b,
                    "an install left the rollout when it grew to {pct}"
                );
            }
            let share = now.iter().filter(|x| **x).count() as f64 / ids.len() as f64;
            assert!((share * 100.0 - pct).abs() < 2.5, "{pct}% gave {share}");
            prev = now;
        }
    }

    #[test]
    fn expired_state_is_refused() {
        let s = state(10.0, RolloutStatus::Active, None);
        assert!(check_expiry(&s, "2026-01-07T23:59:59Z".parse().expect("t")).is_ok());
        assert!(matches!(
            check_expiry(&s, "2026-01-08T00:00:00Z".parse().expect("t")),
            Err(CheckError::Expired { .. })
        ));
    }

    #[test]
    fn other_apps_state_is_refused() {
        let s = state(10.0, RolloutStatus::Active, None);
        assert!(check_identity(&s, "app", "stable").is_ok());
        assert!(check_identity(&s, "other", "stable").is_err());
        assert!(check_identity(&s, "app", "beta").is_err());
    }

    #[test]
    fn urls_resolve_relative_and_refuse_other_schemes() {
        let c = channel_url("http://127.0.0.1:9/updates", "app", "stable").expect("url");
        assert_eq!(
            c.as_str(),
            "http://127.0.0.1:9/updates/app/stable/channel.json"
        );
        let m = join_url(&c, "../releases/0.2.0/manifest.json").expect("join");
        assert_eq!(
            m.as_str(),
            "http://127.0.0.1:9/updates/app/releases/0.2.0/manifest.json"
        );
        assert!(join_url(&c, "file:///etc/passwd").is_err());
        assert!(channel_url("ftp://x/", "app", "stable").is_err());
    }
}
