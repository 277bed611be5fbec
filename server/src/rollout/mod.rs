//! The rollout engine: health ingest, the release registry, rollouts with signed channel
//! states, the admin routes and the minute-by-minute evaluation.
//!
//! Owns [`Rollouts`] (the service the routes and the engine share), [`RolloutStatus`] (the
//! answer of `GET /analytics/rollout-status`), and the state machine of a rollout:
//!
//! ```text
//! start ──▶ active ──advance──▶ active (next stage) … ──complete──▶ complete
//!             │  ▲
//!        halt │  │ resume
//!             ▼  │
//!           halted ──rollback──▶ halted + rolled back (channel serves the fallback,
//!                                                       signed rollbackFrom: [version])
//! ```
//!
//! Every change signs a new channel state with the rollout key (`sequence` + 1, compare-and-
//! set in the database so two servers never sign the same number), writes
//! `ROOT/<app>/<channel>/channel.json` atomically (the update tree stays the served form,
//! the layout of `railgun release publish`), and logs a [`Decision`] with its numbers, in
//! one transaction with the rollout row. A halted rollout's state says `status: halted`
//! with the `fallback` release, so every install gets the fallback (when newer than what it
//! runs) through the client logic of `railgun_core::update::check`. States are re-signed
//! once half of `channel_expiry` is gone, so clients never see an expired one.
//!
//! It refuses: manifests not signed by a release key (verified before parsing), artifacts
//! whose bytes differ from the signed manifest, admin calls without the admin token, and
//! any change when no rollout key is configured (503). Rollout decisions use the injected
//! clock only, so tests and the demo move time instead of sleeping.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use railgun_core::clock::SharedClock;
use railgun_core::health::{validate_report, HealthReport, HealthResponse};
use railgun_core::trust::{
    DsseError, KeyError, PrivateKey, PublicKey, TrustedKeys, PAYLOAD_CHANNEL,
};
use railgun_core::update::channel::{
    ChannelState, ReleasePointer, RolloutState, RolloutStatus as Phase,
};
use railgun_core::update::manifest::{
    is_valid_app_name, is_valid_channel, DocumentError, RolloutPolicy, SCHEMA_VERSION,
};
use railgun_core::Version;
use serde::Serialize;
use tokio::sync::{Mutex, Notify};

use crate::alerts::{Alert, AlertKind, Alerter};
use crate::analytics::AppState;
use crate::auth::{AuthError, Tokens};
use crate::release::{sign_channel_state, write_atomic, ReleaseError};
use crate::serve::ServerConfig;
use crate::store::rollout::{from_ms, to_ms, ChannelRow, HealthRow, RolloutChange, RolloutRow};
use crate::store::{SharedStore, StoreError};

pub mod engine;
pub mod registry;
pub mod routes;
pub mod wilson;

pub use crate::store::rollout::Decision;
pub use engine::Health;
pub use routes::routes;
pub use wilson::Bounds;

/// Default time between two evaluations.
pub const DEFAULT_INTERVAL: StdDuration = StdDuration::from_secs(60);
/// Default validity of a signed channel state.
pub const DEFAULT_CHANNEL_EXPIRY: StdDuration = StdDuration::from_secs(7 * 24 * 3600);
/// Decisions listed in a status answer.
pub const DECISIONS_LISTED: u32 = 100;

/// Errors of the rollout engine and its routes.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The rollout key file could not be read.
    #[error("rollout key {path}: {source}")]
    RolloutKey {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A release public key file could not be read.
    #[error("release public key {path}: {source}")]
    ReleaseKey {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A feature needs configuration that is missing (answered 503).
    #[error("{0}")]
    Unavailable(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing or writing the tree failed.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The manifest envelope does not verify with the release keys.
    #[error("manifest signature: {0}")]
    Signature(#[source] DsseError),
    /// A verified document breaks a rule.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// Something named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// An uploaded artifact differs from the signed manifest (nothing was kept).
    #[error("artifact {file} does not match the signed manifest: expected {expected_size} bytes sha256 {expected_sha256}, received {actual_size} bytes sha256 {actual_sha256}")]
    ArtifactMismatch {
        /// The file name.
        file: String,
        /// Size in the manifest.
        expected_size: u64,
        /// Digest in the manifest.
        expected_sha256: String,
        /// Size received.
        actual_size: u64,
        /// Digest received.
        actual_sha256: String,
    },
    /// An upload is larger than the manifest allows (nothing was kept).
    #[error("artifact {file} is larger than the {limit} bytes the signed manifest allows")]
    TooLarge {
        /// The file name.
        file: String,
        /// The limit.
        limit: u64,
    },
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The request lacks the right token.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl RolloutError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RolloutError + '_ {
        move |source| RolloutError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Who changed a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The engine's rules.
    Engine,
    /// An admin route.
    Admin,
}

impl Actor {
    fn as_str(self) -> &'static str {
        match self {
            Actor::Engine => "engine",
            Actor::Admin => "admin",
        }
    }
}

/// The policy limits shown in a status.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Error rate that halts.
    pub max_error_rate: f64,
    /// Crash rate that halts.
    pub max_crash_rate: f64,
    /// Installs needed before any decision.
    pub min_installs: u64,
    /// Hours per stage.
    pub stage_hours: f64,
}

/// A rollout and its health (`GET /analytics/rollout-status`, `GET /analytics/rollouts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The release.
    pub version: String,
    /// The channel.
    pub channel: String,
    /// Share of installs offered the release.
    pub rollout_percentage: f64,
    /// `active` | `halted` | `complete`.
    pub status: String,
    /// Distinct installs reporting health for the release.
    pub total_installs: u64,
    /// Share of those installs with errors.
    pub error_rate: f64,
    /// Share of those installs with crashes.
    pub crash_rate: f64,
    /// 0–100, see [`engine::health_score`].
    pub health_score: u8,
    /// The app.
    pub app: String,
    /// Index (0-based) into `stages` of the current stage: the largest stage ≤ the percentage.
    pub stage: usize,
    /// The stages' percentages.
    pub stages: Vec<f64>,
    /// When the current stage started.
    pub stage_started_at: DateTime<Utc>,
    /// When the rollout started.
    pub started_at: DateTime<Utc>,
    /// Installs with at least one error.
    pub installs_with_errors: u64,
    /// Installs with at least one crash.
    pub installs_with_crashes: u64,
    /// Wilson 95 % bounds of the error rate.
    pub error_rate_bounds: Bounds,
    /// Wilson 95 % bounds of the crash rate.
    pub crash_rate_bounds: Bounds,
    /// The policy's limits.
    pub limits: Limits,
    /// The release served outside the rollout (and to everyone while halted).
    pub fallback_version: Option<String>,
    /// Rolled back: the channel serves the fallback and signs `rollbackFrom: [version]`.
    pub rolled_back: bool,
    /// Whether this is the channel's current rollout (a newer start supersedes it).
    pub current: bool,
    /// Sequence of the channel state signed for it (when current).
    pub sequence: Option<u64>,
    /// The decisions, newest first.
    pub decisions: Vec<Decision>,
}

/// The service behind the rollout routes and the engine; cheap to clone.
#[derive(Clone)]
pub struct Rollouts {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Rollouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollouts")
            .field("root", &self.inner.root)
            .field("signer", &self.inner.signer.is_ok())
            .field("release_keys", &self.inner.release_keys.is_ok())
            .finish()
    }
}

struct Inner {
    store: SharedStore,
    clock: SharedClock,
    alerts: Alerter,
    tokens: Tokens,
    root: PathBuf,
    signer: Result<PrivateKey, String>,
    release_keys: Result<TrustedKeys, String>,
    expiry: Duration,
    interval: StdDuration,
    lock: Mutex<()>,
    dropped: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The engine task watches this: the service is gone, so is the engine.
        self.dropped.notify_one();
    }
}

fn load_signer(config: &ServerConfig) -> Result<Result<PrivateKey, String>, RolloutError> {
    match &config.rollout_key {
        None => Ok(Err(
            "no rollout key configured (railgun serve --rollout-key FILE): channel states cannot be signed"
                .into(),
        )),
        Some(path) => PrivateKey::from_file(path)
            .map(Ok)
            .map_err(|source| RolloutError::RolloutKey {
                path: path.display().to_string(),
                source,
            }),
    }
}

fn load_release_keys(config: &ServerConfig) -> Result<Result<TrustedKeys, String>, RolloutError> {
    if config.release_public_keys.is_empty() {
        return Ok(Err(
            "no release public keys configured (--release-public-key FILE): releases cannot be verified"
                .into(),
        ));
    }
    let mut keys = Vec::new();
    for path in &config.release_public_keys {
        keys.push(
            PublicKey::from_file(path).map_err(|source| RolloutError::ReleaseKey {
                path: path.display().to_string(),
                source,
            })?,
        );
    }
    TrustedKeys::new(keys, 1)
        .map(Ok)
        .map_err(|e| RolloutError::Unavailable(format!("release public keys: {e}")))
}

impl Rollouts {
    /// The service over `state`'s store, clock, tokens and alerter. Key files named in the
    /// config must load; a missing key only disables what needs it (503).
    pub fn new(config: &ServerConfig, state: &AppState) -> Result<Self, RolloutError> {
        let signer = load_signer(config)?;
        let release_keys = load_release_keys(config)?;
        Ok(Self::build(config, state, signer, release_keys))
    }

    /// Like [`Rollouts::new`], but a key file that does not load only disables what needs
    /// it, with the reason in each refusal (for routers built without error handling).
    pub fn lenient(config: &ServerConfig, state: &AppState) -> Self {
        let signer = load_signer(config).unwrap_or_else(|e| Err(e.to_string()));
        let release_keys = load_release_keys(config).unwrap_or_else(|e| Err(e.to_string()));
        Self::build(config, state, signer, release_keys)
    }

    fn build(
        config: &ServerConfig,
        state: &AppState,
        signer: Result<PrivateKey, String>,
        release_keys: Result<TrustedKeys, String>,
    ) -> Self {
        let expiry = Duration::from_std(config.channel_expiry).unwrap_or(Duration::days(7));
        Self {
            inner: Arc::new(Inner {
                store: state.store.clone(),
                clock: config.clock.clone(),
                alerts: state.alerts.clone(),
                tokens: state.tokens.clone(),
                root: config.root.clone(),
                signer,
                release_keys,
                expiry: expiry.max(Duration::minutes(2)),
                interval: config.rollout_interval,
                lock: Mutex::new(()),
                dropped: Arc::new(Notify::new()),
            }),
        }
    }

    /// The clock's now.
    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(crate) fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    pub(crate) fn root(&self) -> &Path {
        &self.inner.root
    }

    pub(crate) fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    fn signer(&self) -> Result<&PrivateKey, RolloutError> {
        self.inner
            .signer
            .as_ref()
            .map_err(|e| RolloutError::Unavailable(e.clone()))
    }

    pub(crate) fn release_keys(&self) -> Result<&TrustedKeys, RolloutError> {
        self.inner
            .release_keys
            .as_ref()
            .map_err(|e| RolloutError::Unavailable(e.clone()))
    }

    /// Runs [`Rollouts::evaluate`] every `rollout_interval` (the first run at once) until
    /// the last handle of this service is dropped (the server stopped). Errors are logged.
    pub fn spawn_engine(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let dropped = self.inner.dropped.clone();
        let period = self.inner.interval.max(StdDuration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = dropped.notified() => break,
                }
                let Some(inner) = weak.upgrade() else { break };
                let service = Rollouts { inner };
                match service.evaluate().await {
                    Ok(d) if !d.is_empty() => {
                        tracing::info!(decisions = d.len(), "rollout engine decided")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "rollout engine run failed"),
                }
            }
        })
    }

    // ---- health ---------------------------------------------------------------------

    /// Stores one health report (`POST /analytics/health`); a known id is a duplicate.
    pub async fn ingest_health(&self, r: HealthReport) -> Result<HealthResponse, RolloutError> {
        validate_report(&r).map_err(|e| RolloutError::BadRequest(e.to_string()))?;
        let row = HealthRow {
            id: r.id.hyphenated().to_string(),
            machine_id: r.machine_id,
            app: r.app,
            version: r.version,
            channel: r.channel,
            platform: r.platform,
            arch: r.arch,
            period_start_ms: to_ms(r.period_start),
            period_end_ms: to_ms(r.period_end),
            sessions: r.sessions as i64,
            errors: r.errors as i64,
            crashes: r.crashes as i64,
            boot_reverts: r.boot_reverts as i64,
            received_ms: to_ms(self.now()),
        };
        let new = self.inner.store.insert_health(row).await?;
        Ok(HealthResponse {
            accepted: new,
            duplicate: !new,
        })
    }

    async fn health(&self, r: &RolloutRow, policy: &RolloutPolicy) -> Result<Health, RolloutError> {
        let c = self
            .inner
            .store
            .health_counts(r.app.clone(), r.channel.clone(), r.version.clone())
            .await?;
        Ok(Health::new(c, policy))
    }

    // ---- status ---------------------------------------------------------------------

    /// The status of one rollout.
    pub async fn status(
        &self,
        app: &str,
        channel: &str,
        version: &str,
    ) -> Result<RolloutStatus, RolloutError> {
        let r = self
            .inner
            .store
            .get_rollout(app.into(), channel.into(), version.into())
            .await?
            .ok_or_else(|| {
                RolloutError::NotFound(format!("rollout of {app} {version} on {channel}"))
            })?;
        self.status_of(r).await
    }

    /// The newest rollout of `version`, optionally of one app and channel.
    pub async fn status_for(
        &self,
        version: &str,
        app: Option<&str>,
        channel: Option<&str>,
    ) -> Result<RolloutStatus, RolloutError> {
        let r = newest_first(self.inner.store.list_rollouts().await?)
            .into_iter()
            .find(|r| {
                r.version == version
                    && app.is_none_or(|a| a == r.app)
                    && channel.is_none_or(|c| c == r.channel)
            })
            .ok_or_else(|| RolloutError::NotFound(format!("rollout of version {version}")))?;
        self.status_of(r).await
    }

    /// Every rollout, newest first.
    pub async fn list(&self) -> Result<Vec<RolloutStatus>, RolloutError> {
        let rows = newest_first(self.inner.store.list_rollouts().await?);
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.status_of(r).await?);
        }
        Ok(out)
    }

    async fn status_of(&self, r: RolloutRow) -> Result<RolloutStatus, RolloutError> {
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        let ch = self
            .inner
            .store
            .get_channel(r.app.clone(), r.channel.clone())
            .await?;
        let current = ch.as_ref().is_some_and(|c| c.version == r.version);
        let decisions = self
            .inner
            .store
            .decisions(
                r.app.clone(),
                r.channel.clone(),
                r.version.clone(),
                DECISIONS_LISTED,
            )
            .await?;
        Ok(RolloutStatus {
            stage: engine::stage_index(&policy.stages, r.percentage),
            stages: policy.stages.clone(),
            limits: Limits {
                max_error_rate: policy.max_error_rate,
                max_crash_rate: policy.max_crash_rate,
                min_installs: policy.min_installs,
                stage_hours: policy.stage_hours,
            },
            rollout_percentage: r.percentage,
            status: r.status,
            total_installs: h.installs,
            error_rate: h.error_rate,
            crash_rate: h.crash_rate,
            health_score: h.score,
            installs_with_errors: h.with_errors,
            installs_with_crashes: h.with_crashes,
            error_rate_bounds: h.error,
            crash_rate_bounds: h.crash,
            stage_started_at: from_ms(r.stage_started_ms),
            started_at: from_ms(r.started_ms),
            fallback_version: r.fallback_version,
            rolled_back: r.rolled_back,
            sequence: ch.filter(|_| current).map(|c| c.sequence as u64),
            current,
            decisions,
            app: r.app,
            channel: r.channel,
            version: r.version,
        })
    }

    // ---- changes --------------------------------------------------------------------

    fn decision(
        &self,
        r: &RolloutRow,
        action: &str,
        actor: Actor,
        from: f64,
        h: &Health,
        reason: String,
    ) -> Decision {
        Decision {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.now(),
            app: r.app.clone(),
            channel: r.channel.clone(),
            version: r.version.clone(),
            action: action.into(),
            actor: actor.as_str().into(),
            from_percentage: from,
            to_percentage: r.percentage,
            installs: h.installs,
            error_rate: h.error_rate,
            error_lower: h.error.lower,
            error_upper: h.error.upper,
            crash_rate: h.crash_rate,
            crash_lower: h.crash.lower,
            crash_upper: h.crash.upper,
            reason,
        }
    }

    async fn pointer(&self, app: &str, version: &str) -> Result<ReleasePointer, RolloutError> {
        let rel = self
            .inner
            .store
            .get_release(app.into(), version.into())
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("release {app} {version}")))?;
        Ok(ReleasePointer {
            version: parse_version(version)?,
            manifest: format!("../releases/{version}/manifest.json"),
            manifest_sha256: rel.manifest_sha256,
        })
    }

    /// The channel state a rollout row stands for.
    async fn channel_state(
        &self,
        r: &RolloutRow,
        sequence: u64,
        now: DateTime<Utc>,
    ) -> Result<ChannelState, RolloutError> {
        let fallback = match &r.fallback_version {
            Some(v) => Some(self.pointer(&r.app, v).await?),
            None => None,
        };
        let (release, rollout, fallback, rollback_from) = if r.rolled_back {
            let release = fallback.ok_or_else(|| {
                RolloutError::Conflict("a rolled-back rollout needs a fallback".into())
            })?;
            let state = RolloutState {
                percentage: 100.0,
                status: Phase::Complete,
            };
            (release, state, None, vec![parse_version(&r.version)?])
        } else {
            let status: Phase = r.status.parse().map_err(RolloutError::Conflict)?;
            let state = RolloutState {
                percentage: r.percentage,
                status,
            };
            (
                self.pointer(&r.app, &r.version).await?,
                state,
                fallback,
                vec![],
            )
        };
        Ok(ChannelState {
            schema: SCHEMA_VERSION,
            app: r.app.clone(),
            channel: r.channel.clone(),
            sequence,
            issued_at: now,
            expires_at: now + self.inner.expiry,
            release,
            rollout,
            fallback,
            rollback_from,
        })
    }

    fn channel_path(&self, app: &str, channel: &str) -> PathBuf {
        self.inner.root.join(app).join(channel).join("channel.json")
    }

    /// The sequence of the `channel.json` on disk when it is signed by the rollout key (a
    /// state published before the database knew the channel, e.g. by `railgun release
    /// publish`), so the next one is higher than any a client saw; 0 otherwise.
    async fn disk_sequence(&self, app: &str, channel: &str) -> u64 {
        let Ok(key) = self.signer() else {
            return 0;
        };
        let Ok(bytes) = tokio::fs::read(self.channel_path(app, channel)).await else {
            return 0;
        };
        verify_channel(&bytes, key.public_key())
            .map(|s| s.sequence)
            .unwrap_or(0)
    }

    /// Signs a new channel state for `r` and commits it with `r` and `decision`; writes
    /// `channel.json`. `r` becomes the channel's current rollout.
    async fn commit(
        &self,
        r: &RolloutRow,
        decision: Option<Decision>,
    ) -> Result<ChannelState, RolloutError> {
        let key = self.signer()?;
        let now = self.now();
        let prev = self
            .inner
            .store
            .get_channel(r.app.clone(), r.channel.clone())
            .await?;
        let prev_seq = prev.as_ref().map(|c| c.sequence);
        let disk = self.disk_sequence(&r.app, &r.channel).await;
        let sequence = (prev_seq.unwrap_or(0).max(0) as u64)
            .max(disk)
            .saturating_add(1);
        let state = self.channel_state(r, sequence, now).await?;
        let envelope = sign_channel_state(&state, &[key])?.to_json_bytes();
        let text = String::from_utf8(envelope.clone())
            .map_err(|e| RolloutError::Conflict(format!("channel state is not UTF-8: {e}")))?;
        let row = ChannelRow {
            app: r.app.clone(),
            channel: r.channel.clone(),
            version: r.version.clone(),
            sequence: sequence as i64,
            issued_ms: to_ms(state.issued_at),
            expires_ms: to_ms(state.expires_at),
            envelope: text,
        };
        let ok = self
            .inner
            .store
            .commit_change(RolloutChange {
                rollout: Some(r.clone()),
                channel: Some((row, prev_seq)),
                decision,
            })
            .await?;
        if !ok {
            return Err(RolloutError::Conflict(format!(
                "channel {}/{} changed concurrently; retry",
                r.app, r.channel
            )));
        }
        self.write_channel(&r.app, &r.channel, envelope).await?;
        Ok(state)
    }

    async fn write_channel(
        &self,
        app: &str,
        channel: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RolloutError> {
        let path = self.channel_path(app, channel);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|e| RolloutError::Store(StoreError::Task(e.to_string())))??;
        Ok(())
    }

    /// The current rollout of a channel.
    async fn current(&self, app: &str, channel: &str) -> Result<RolloutRow, RolloutError> {
        check_names(app, channel)?;
        let ch = self
            .inner
            .store
            .get_channel(app.into(), channel.into())
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("rollout on {app}/{channel}")))?;
        self.inner
            .store
            .get_rollout(app.into(), channel.into(), ch.version.clone())
            .await?
            .ok_or_else(|| {
                RolloutError::NotFound(format!("rollout of {app} {} on {channel}", ch.version))
            })
    }

    /// Starts rolling out a registered release on a channel (admin or a deferred start).
    pub async fn start(
        &self,
        app: &str,
        channel: &str,
        version: &str,
        percentage: Option<f64>,
        fallback: Option<String>,
    ) -> Result<RolloutStatus, RolloutError> {
        let _g = self.inner.lock.lock().await;
        self.start_locked(app, channel, version, percentage, fallback)
            .await?;
        self.status(app, channel, version).await
    }

    pub(crate) async fn start_locked(
        &self,
        app: &str,
        channel: &str,
        version: &str,
        percentage: Option<f64>,
        fallback: Option<String>,
    ) -> Result<(), RolloutError> {
        check_names(app, channel)?;
        self.signer()?;
        let v = parse_version(version)?;
        let rel = self
            .inner
            .store
            .get_release(app.into(), version.into())
            .await?
            .ok_or_else(|| RolloutError::NotFound(format!("release {app} {version}")))?;
        if rel.channel != channel {
            return Err(RolloutError::BadRequest(format!(
                "release {app} {version} was signed for channel {}, not {channel}",
                rel.channel
            )));
        }
        let missing = registry::missing_artifacts(self.root(), &rel).await?;
        if !missing.is_empty() {
            return Err(RolloutError::Conflict(format!(
                "artifacts missing for {app} {version}: {}",
                missing.join(", ")
            )));
        }
        if self
            .inner
            .store
            .get_rollout(app.into(), channel.into(), version.into())
            .await?
            .is_some()
        {
            return Err(RolloutError::Conflict(format!(
                "{app} {version} was already rolled out on {channel}"
            )));
        }
        let policy = registry::policy_of(&rel)?;
        let pct = percentage.unwrap_or(policy.stages[0]);
        check_percentage(pct)?;
        // The fallback: named, or what the channel serves now (when lower).
        let fallback = match fallback {
            Some(f) => Some(f),
            None => match self.current(app, channel).await {
                Ok(cur) => {
                    let served = if cur.rolled_back {
                        cur.fallback_version.clone()
                    } else {
                        Some(cur.version.clone())
                    };
                    served.filter(|s| parse_version(s).is_ok_and(|sv| sv < v))
                }
                Err(RolloutError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
        };
        if let Some(f) = &fallback {
            let fv = parse_version(f)?;
            if fv >= v {
                return Err(RolloutError::BadRequest(format!(
                    "fallback {f} must be lower than the release {version}"
                )));
            }
            let frel = self
                .inner
                .store
                .get_release(app.into(), f.clone())
                .await?
                .ok_or_else(|| RolloutError::NotFound(format!("fallback release {app} {f}")))?;
            if frel.channel != channel {
                return Err(RolloutError::BadRequest(format!(
                    "fallback {f} was signed for channel {}, not {channel}",
                    frel.channel
                )));
            }
        }
        let now = to_ms(self.now());
        let r = RolloutRow {
            app: app.into(),
            channel: channel.into(),
            version: version.into(),
            percentage: pct,
            status: if pct >= 100.0 { "complete" } else { "active" }.into(),
            fallback_version: fallback,
            rolled_back: false,
            policy: serde_json::to_string(&policy)
                .map_err(|e| RolloutError::BadRequest(e.to_string()))?,
            started_ms: now,
            stage_started_ms: now,
            updated_ms: now,
            high_error_alerted: false,
            low_adoption_alerted: false,
        };
        let h = self.health(&r, &policy).await?;
        let d = self.decision(
            &r,
            "start",
            Actor::Admin,
            0.0,
            &h,
            format!("started at {pct} %"),
        );
        self.commit(&r, Some(d)).await?;
        if let Some(rel) = self
            .inner
            .store
            .get_release(app.into(), version.into())
            .await?
            .filter(|r| r.pending_start)
        {
            self.inner
                .store
                .put_release(crate::store::rollout::ReleaseRow {
                    pending_start: false,
                    ..rel
                })
                .await?;
        }
        Ok(())
    }

    /// Halts the channel's current rollout: installs get the fallback.
    pub async fn halt(
        &self,
        app: &str,
        channel: &str,
        reason: Option<String>,
    ) -> Result<RolloutStatus, RolloutError> {
        let _g = self.inner.lock.lock().await;
        let r = self.current(app, channel).await?;
        if r.status != "active" {
            return Err(RolloutError::Conflict(format!(
                "rollout of {} is {}, not active",
                r.version, r.status
            )));
        }
        self.halt_locked(
            r,
            Actor::Admin,
            reason.unwrap_or_else(|| "halted by an admin".into()),
        )
        .await?;
        self.status(app, channel, &self.current(app, channel).await?.version)
            .await
    }

    async fn halt_locked(
        &self,
        mut r: RolloutRow,
        actor: Actor,
        reason: String,
    ) -> Result<Decision, RolloutError> {
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        r.status = "halted".into();
        r.updated_ms = to_ms(self.now());
        let d = self.decision(&r, "halt", actor, r.percentage, &h, reason);
        self.commit(&r, Some(d.clone())).await?;
        self.inner.alerts.send(Alert {
            kind: AlertKind::RolloutHalted,
            title: format!(
                "{} {} ({}) halted at {} %",
                r.app, r.version, r.channel, r.percentage
            ),
            text: d.reason.clone(),
            fields: alert_fields(&r, &h, &policy),
        });
        Ok(d)
    }

    /// Resumes a halted rollout; the stage timer restarts.
    pub async fn resume(
        &self,
        app: &str,
        channel: &str,
        reason: Option<String>,
    ) -> Result<RolloutStatus, RolloutError> {
        let _g = self.inner.lock.lock().await;
        let mut r = self.current(app, channel).await?;
        if r.status != "halted" || r.rolled_back {
            return Err(RolloutError::Conflict(format!(
                "rollout of {} is {}{}, not halted",
                r.version,
                r.status,
                if r.rolled_back {
                    " and rolled back"
                } else {
                    ""
                }
            )));
        }
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        let now = to_ms(self.now());
        r.status = "active".into();
        r.stage_started_ms = now;
        r.updated_ms = now;
        r.high_error_alerted = false;
        let d = self.decision(
            &r,
            "resume",
            Actor::Admin,
            r.percentage,
            &h,
            reason.unwrap_or_else(|| "resumed by an admin".into()),
        );
        self.commit(&r, Some(d)).await?;
        self.status(app, channel, &r.version).await
    }

    /// Sets the percentage of the channel's current rollout (the stage timer restarts).
    pub async fn set_percentage(
        &self,
        app: &str,
        channel: &str,
        percentage: f64,
    ) -> Result<RolloutStatus, RolloutError> {
        check_percentage(percentage)?;
        let _g = self.inner.lock.lock().await;
        let mut r = self.current(app, channel).await?;
        if r.rolled_back {
            return Err(RolloutError::Conflict(format!(
                "rollout of {} was rolled back",
                r.version
            )));
        }
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        let from = r.percentage;
        let now = to_ms(self.now());
        r.percentage = percentage;
        r.stage_started_ms = now;
        r.updated_ms = now;
        r.high_error_alerted = false;
        if r.status == "complete" && percentage < 100.0 {
            r.status = "active".into();
        }
        let d = self.decision(
            &r,
            "set_percentage",
            Actor::Admin,
            from,
            &h,
            format!("set from {from} % to {percentage} % by an admin"),
        );
        self.commit(&r, Some(d)).await?;
        self.status(app, channel, &r.version).await
    }

    /// Rolls the channel back to the fallback: the channel's release becomes the fallback
    /// and the signed state lists the bad version in `rollbackFrom`, so installs running it
    /// move down (the only way a client accepts a lower version).
    pub async fn rollback(
        &self,
        app: &str,
        channel: &str,
        reason: Option<String>,
    ) -> Result<RolloutStatus, RolloutError> {
        let _g = self.inner.lock.lock().await;
        let mut r = self.current(app, channel).await?;
        if r.rolled_back {
            return Err(RolloutError::Conflict(format!(
                "{} was already rolled back",
                r.version
            )));
        }
        let Some(fallback) = r.fallback_version.clone() else {
            return Err(RolloutError::Conflict(format!(
                "rollout of {} has no fallback release to roll back to",
                r.version
            )));
        };
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        let from = r.percentage;
        r.status = "halted".into();
        r.rolled_back = true;
        r.updated_ms = to_ms(self.now());
        let d = self.decision(
            &r,
            "rollback",
            Actor::Admin,
            from,
            &h,
            reason.unwrap_or_else(|| format!("rolled back to {fallback} by an admin")),
        );
        self.commit(&r, Some(d)).await?;
        self.status(app, channel, &r.version).await
    }

    // ---- the engine -----------------------------------------------------------------

    /// One engine run, at the injected clock's now: re-signs channel states past half their
    /// validity (and rewrites a `channel.json` that differs from the database), then applies
    /// the rules to every channel's active rollout. Returns the decisions taken.
    pub async fn evaluate(&self) -> Result<Vec<Decision>, RolloutError> {
        let _g = self.inner.lock.lock().await;
        let mut out = Vec::new();
        let channels = self.inner.store.list_channels().await?;
        for ch in channels {
            let Some(r) = self
                .inner
                .store
                .get_rollout(ch.app.clone(), ch.channel.clone(), ch.version.clone())
                .await?
            else {
                continue;
            };
            if r.status == "active" {
                if let Some(d) = self.judge(r).await? {
                    out.push(d);
                }
            }
            // Reloaded: a decision above may have signed a fresh state.
            if let Some(ch) = self.inner.store.get_channel(ch.app, ch.channel).await? {
                self.refresh(&ch).await?;
            }
        }
        Ok(out)
    }

    /// Re-signs a state past half its validity; rewrites `channel.json` when it differs.
    async fn refresh(&self, ch: &ChannelRow) -> Result<(), RolloutError> {
        let now = self.now();
        let half = from_ms(ch.issued_ms) + self.inner.expiry / 2;
        if now >= half && self.inner.signer.is_ok() {
            if let Some(r) = self
                .inner
                .store
                .get_rollout(ch.app.clone(), ch.channel.clone(), ch.version.clone())
                .await?
            {
                tracing::info!(app = %ch.app, channel = %ch.channel, "re-signing channel state before expiry");
                self.commit(&r, None).await?;
                return Ok(());
            }
        }
        let path = self.channel_path(&ch.app, &ch.channel);
        let on_disk = tokio::fs::read(&path).await.ok();
        if on_disk.as_deref() != Some(ch.envelope.as_bytes()) {
            self.write_channel(&ch.app, &ch.channel, ch.envelope.clone().into_bytes())
                .await?;
        }
        Ok(())
    }

    async fn judge(&self, mut r: RolloutRow) -> Result<Option<Decision>, RolloutError> {
        let policy = parse_policy(&r.policy);
        let h = self.health(&r, &policy).await?;
        let now = self.now();
        let verdict = engine::judge(engine::RuleInput {
            policy: &policy,
            percentage: r.percentage,
            health: &h,
            in_stage: now - from_ms(r.stage_started_ms),
            warned: r.high_error_alerted,
        });
        let from = r.percentage;
        let decision = match verdict {
            engine::Verdict::Halt { reason } => {
                return Ok(Some(self.halt_locked(r, Actor::Engine, reason).await?));
            }
            engine::Verdict::Advance { to, reason } => {
                r.percentage = to;
                r.stage_started_ms = to_ms(now);
                r.high_error_alerted = false;
                r.updated_ms = to_ms(now);
                let d = self.decision(&r, "advance", Actor::Engine, from, &h, reason);
                self.commit(&r, Some(d.clone())).await?;
                d
            }
            engine::Verdict::Complete { reason } => {
                r.status = "complete".into();
                r.updated_ms = to_ms(now);
                let d = self.decision(&r, "complete", Actor::Engine, from, &h, reason);
                self.commit(&r, Some(d.clone())).await?;
                d
            }
            engine::Verdict::HighErrorRate { reason } => {
                r.high_error_alerted = true;
                let d = self.decision(&r, "high_error_rate", Actor::Engine, from, &h, reason);
                self.note(&r, d.clone()).await?;
                self.inner.alerts.send(Alert {
                    kind: AlertKind::HighErrorRate,
                    title: format!("{} {} ({}): high error rate", r.app, r.version, r.channel),
                    text: d.reason.clone(),
                    fields: alert_fields(&r, &h, &policy),
                });
                d
            }
            engine::Verdict::Wait => {
                if r.low_adoption_alerted {
                    return Ok(None);
                }
                let since = now - Duration::days(7);
                let population = self
                    .inner
                    .store
                    .channel_population(r.app.clone(), r.channel.clone(), to_ms(since))
                    .await?;
                let Some(reason) = engine::low_adoption(
                    h.installs,
                    population,
                    r.percentage,
                    now - from_ms(r.started_ms),
                ) else {
                    return Ok(None);
                };
                r.low_adoption_alerted = true;
                let d = self.decision(&r, "low_adoption", Actor::Engine, from, &h, reason);
                self.note(&r, d.clone()).await?;
                self.inner.alerts.send(Alert {
                    kind: AlertKind::LowAdoption,
                    title: format!("{} {} ({}): low adoption", r.app, r.version, r.channel),
                    text: d.reason.clone(),
                    fields: alert_fields(&r, &h, &policy),
                });
                d
            }
        };
        Ok(Some(decision))
    }

    /// Records a decision and rollout flags without signing a new state.
    async fn note(&self, r: &RolloutRow, d: Decision) -> Result<(), RolloutError> {
        self.inner
            .store
            .commit_change(RolloutChange {
                rollout: Some(r.clone()),
                channel: None,
                decision: Some(d),
            })
            .await?;
        Ok(())
    }
}

fn alert_fields(r: &RolloutRow, h: &Health, p: &RolloutPolicy) -> Vec<(String, String)> {
    vec![
        ("app".into(), r.app.clone()),
        ("version".into(), r.version.clone()),
        ("channel".into(), r.channel.clone()),
        ("percentage".into(), format!("{} %", r.percentage)),
        ("installs".into(), h.installs.to_string()),
        (
            "error rate".into(),
            format!(
                "{:.2} % [{:.2}, {:.2}] (limit {:.2} %)",
                h.error_rate * 100.0,
                h.error.lower * 100.0,
                h.error.upper * 100.0,
                p.max_error_rate * 100.0
            ),
        ),
        (
            "crash rate".into(),
            format!(
                "{:.2} % [{:.2}, {:.2}] (limit {:.2} %)",
                h.crash_rate * 100.0,
                h.crash.lower * 100.0,
                h.crash.upper * 100.0,
                p.max_crash_rate * 100.0
            ),
        ),
    ]
}

/// Newest start first; among rollouts started at the same instant, the higher version.
fn newest_first(mut rows: Vec<RolloutRow>) -> Vec<RolloutRow> {
    rows.sort_by(|a, b| {
        b.started_ms.cmp(&a.started_ms).then_with(|| {
            match (Version::parse(&b.version), Version::parse(&a.version)) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => b.version.cmp(&a.version),
            }
        })
    });
    rows
}

fn parse_policy(json: &str) -> RolloutPolicy {
    serde_json::from_str(json).unwrap_or_default()
}

fn parse_version(v: &str) -> Result<Version, RolloutError> {
    v.parse()
        .map_err(|e| RolloutError::BadRequest(format!("version {v:?}: {e}")))
}

fn check_percentage(p: f64) -> Result<(), RolloutError> {
    if p.is_finite() && (0.0..=100.0).contains(&p) {
        Ok(())
    } else {
        Err(RolloutError::BadRequest(format!(
            "percentage {p} is not within [0, 100]"
        )))
    }
}

pub(crate) fn check_names(app: &str, channel: &str) -> Result<(), RolloutError> {
    if !is_valid_app_name(app) {
        return Err(RolloutError::BadRequest(format!(
            "app {app:?} is not 1-64 of [A-Za-z0-9._-]"
        )));
    }
    if !is_valid_channel(channel) {
        return Err(RolloutError::BadRequest(format!(
            "channel {channel:?} is not a valid channel name"
        )));
    }
    Ok(())
}

/// Verifies a channel state envelope with the rollout key's public key (tests, tools).
pub fn verify_channel(bytes: &[u8], key: &PublicKey) -> Result<ChannelState, RolloutError> {
    let v = TrustedKeys::single(key.clone())
        .verify(bytes, PAYLOAD_CHANNEL)
        .map_err(RolloutError::Signature)?;
    Ok(ChannelState::from_verified_payload(&v.payload)?)
}
