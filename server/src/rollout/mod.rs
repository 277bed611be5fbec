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
//! An admin may also halt a complete rollout, set any percentage (the stage timer restarts;
//! below 100 % a complete rollout is active again) and roll back from any state that has a
//! fallback. A new start on a channel supersedes its current rollout (`current: false`).
//!
//! Every change signs a new channel state with the rollout key (`sequence` + 1, compare-and-
//! set in the database so two servers never sign the same number), writes
//! `ROOT/<app>/<channel>/channel.json` atomically (the update tree stays the served form,
//! the layout of `railgun release publish`), and logs a [`Decision`] with its numbers, in
//! one transaction with the rollout row. A halted rollout's state says `status: halted`
//! with the `fallback` release, so every install gets the fallback (when newer than what it
//! runs) through the client logic of `railgun_core::update::UpdateClient`. States are re-signed
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
use railgun_core::error::PathIoError;
use railgun_core::health::{
    report_machine_id, validate_report, validate_report_time, HealthReport, HealthReportError,
    HealthResponse,
};
use railgun_core::trust::{
    DsseError, KeyError, PrivateKey, PublicKey, SignedDocument, TrustedKeys, PAYLOAD_CHANNEL,
};
use railgun_core::update::{
    is_valid_app_name, is_valid_channel, ChannelState, DocumentError, ReleasePointer,
    RolloutPolicy, RolloutState, RolloutStatus as Phase, SCHEMA_VERSION,
};
use railgun_core::Version;
use serde::Serialize;
use tokio::sync::{broadcast, Mutex, Notify};

use crate::alerts::{Alert, AlertKind, Alerter};
use crate::analytics::AppState;
use crate::auth::Tokens;
use crate::leader::{Fence, Leadership};
use crate::release::{sign_channel_state, ChannelStages, ReleaseError};
use crate::serve::shared::{SharedTreeError, UpdateTree};
use crate::serve::ServerConfig;
use crate::store::rollout::{from_ms, to_ms, ChannelRow, HealthRow, RolloutChange, RolloutRow};
use crate::store::{SharedStore, StoreError};

mod alerting;
pub mod engine;
mod evaluate;
mod gauges;
pub mod registry;
mod routes;
pub mod sessions;
mod state;
pub mod wilson;

pub use alerting::HIGH_ERROR_RATE_MINUTES;
pub use routes::{routes, MAX_HEALTH_BYTES, MAX_REGISTER_BYTES};

use crate::store::rollout::Decision;
use engine::Health;
use wilson::Bounds;

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
    /// The update tree (local or in the object store) could not be read or written.
    #[error(transparent)]
    Tree(#[from] SharedTreeError),
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
}

impl From<PathIoError> for RolloutError {
    fn from(e: PathIoError) -> Self {
        RolloutError::Io {
            path: e.path.display().to_string(),
            source: e.source,
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

/// The policy limits shown in a status (rates: fractions, written in percent).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Error rate that halts.
    #[serde(with = "crate::percent")]
    pub max_error_rate: f64,
    /// Crash rate that halts.
    #[serde(with = "crate::percent")]
    pub max_crash_rate: f64,
    /// Installs needed before any decision.
    pub min_installs: u64,
    /// Hours per stage.
    pub stage_hours: f64,
}

/// A rollout and its health (`GET /analytics/rollout-status`, `GET /analytics/rollouts`).
///
/// Its rates (and their bounds and limits) are fractions here and percent in its JSON
/// ([`crate::percent`]): `"errorRate": 0.8` is 0.8 %, as in the specification.
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
    #[serde(with = "crate::percent")]
    pub error_rate: f64,
    /// Share of those installs with crashes.
    #[serde(with = "crate::percent")]
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
    /// Release health with sessions: sessions by status, crash-free sessions and users,
    /// adoption ([`sessions`]), flattened into this answer.
    #[serde(flatten)]
    pub release_health: sessions::ReleaseHealth,
    /// The decisions, newest first.
    pub decisions: Vec<Decision>,
}

/// The service behind the rollout routes and the engine; cheap to clone.
///
/// In process (the demo, tests): start the server with a manual clock, move the clock, and
/// run the engine when you want instead of waiting for its tick.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use railgun_core::clock::ManualClock;
/// use railgun_server::serve::{App, ServerConfig};
///
/// let clock = ManualClock::new("2026-11-01T09:00:00Z".parse()?);
/// let config = ServerConfig {
///     clock: Arc::new(clock.clone()),
///     rollout_key: Some("rollout.key".into()),
///     release_public_keys: vec!["release.pub".into()],
///     admin_token: Some("admin".into()),
///     ..ServerConfig::default()
/// };
/// let server = App::open(&config).await?.spawn("127.0.0.1:0".parse()?).await?;
/// let rollouts = &server.rollouts;
/// // … POST /admin/releases, PUT the artifacts, clients POST /analytics/health …
/// clock.advance(chrono::Duration::hours(24));
/// for d in rollouts.evaluate().await? {
///     println!("{} {} → {} %: {}", d.action, d.version, d.to_percentage, d.reason);
/// }
/// let status = rollouts.status("demo", "stable", "1.1.0").await?;
/// println!("{} installs, score {}", status.total_installs, status.health_score);
/// server.stop().await?;
/// # Ok(()) }
/// ```
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
    metrics: Arc<crate::metrics::Metrics>,
    tokens: Tokens,
    root: PathBuf,
    /// Where manifests, artifacts and channel states are written (local or shared).
    tree: UpdateTree,
    signer: Result<PrivateKey, String>,
    release_keys: Result<TrustedKeys, String>,
    expiry: Duration,
    interval: StdDuration,
    stages: ChannelStages,
    lock: Mutex<()>,
    dropped: Arc<Notify>,
    decisions: broadcast::Sender<Decision>,
    /// This server's claim on the engine's lease (one engine among servers sharing a
    /// database).
    leader: Leadership,
}

tokio::task_local! {
    /// The fence of the engine run this task is in ([`Rollouts::evaluate`]): every change
    /// it commits carries it, so it commits only while this server still leads.
    static ENGINE_FENCE: Option<Fence>;
}

/// The fence of the current engine run, `None` outside one (an admin's change).
pub(crate) fn fence() -> Option<Fence> {
    ENGINE_FENCE.try_with(Clone::clone).ok().flatten()
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
    pub fn new(
        config: &ServerConfig,
        state: &AppState,
        tree: UpdateTree,
    ) -> Result<Self, RolloutError> {
        let signer = load_signer(config)?;
        let release_keys = load_release_keys(config)?;
        Ok(Self::build(config, state, tree, signer, release_keys))
    }

    fn build(
        config: &ServerConfig,
        state: &AppState,
        tree: UpdateTree,
        signer: Result<PrivateKey, String>,
        release_keys: Result<TrustedKeys, String>,
    ) -> Self {
        let expiry = Duration::from_std(config.channel_expiry).unwrap_or(Duration::days(7));
        Self {
            inner: Arc::new(Inner {
                store: state.store.clone(),
                clock: config.clock.clone(),
                alerts: state.alerts.clone(),
                metrics: state.metrics.clone(),
                tokens: state.tokens.clone(),
                root: config.root.clone(),
                tree,
                signer,
                release_keys,
                expiry: expiry.max(Duration::minutes(2)),
                interval: config.rollout_interval,
                stages: config.channel_stages.clone(),
                lock: Mutex::new(()),
                dropped: Arc::new(Notify::new()),
                decisions: broadcast::channel(256).0,
                leader: state.leader.clone(),
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

    pub(crate) fn tree(&self) -> &UpdateTree {
        &self.inner.tree
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

    /// Every decision recorded from now on, as it is committed (admin and engine alike; a
    /// receiver that lags loses the oldest). Lets tests and the demo wait on the engine.
    pub fn subscribe(&self) -> broadcast::Receiver<Decision> {
        self.inner.decisions.subscribe()
    }

    /// This server's claim on the engine's lease.
    pub fn leadership(&self) -> &Leadership {
        &self.inner.leader
    }

    /// Runs [`Rollouts::evaluate`] every `rollout_interval` (the first run at once, and at
    /// once when this server takes the engine's lease over) until the last handle of this
    /// service is dropped (the server stopped). A server that does not lead only refreshes
    /// its fleet gauges (read only). Errors are logged.
    pub fn spawn_engine(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let dropped = self.inner.dropped.clone();
        let period = self.inner.interval.max(StdDuration::from_millis(10));
        let mut leading = self.inner.leader.watch();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = leading.changed() => {
                        if changed.is_err() || leading.borrow_and_update().is_none() {
                            continue;
                        }
                    }
                    _ = dropped.notified() => break,
                }
                let Some(inner) = weak.upgrade() else { break };
                let service = Rollouts { inner };
                if !service.inner.leader.is_leader() {
                    if let Err(e) = service.refresh_gauges().await {
                        tracing::warn!(error = %e, "fleet gauges not refreshed");
                    }
                    continue;
                }
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
    ///
    /// The specification's report names no app: it counts for the only app that rolled out
    /// its version on its channel (or, failing that, the only app this server has). A
    /// `machineId` that is not 64-hex is stored hashed ([`report_machine_id`]), so erasing
    /// the user id it came from erases it too.
    pub async fn ingest_health(&self, r: HealthReport) -> Result<HealthResponse, RolloutError> {
        let bad = |e: HealthReportError| RolloutError::BadRequest(e.to_string());
        validate_report(&r).map_err(bad)?;
        validate_report_time(&r, self.now()).map_err(bad)?;
        let app = if r.app.is_empty() {
            self.app_of(&r.version, &r.channel).await?
        } else {
            r.app
        };
        let row = HealthRow {
            id: r.id.hyphenated().to_string(),
            machine_id: report_machine_id(&r.machine_id),
            app,
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
            session_ends: r.session_ends.map(|e| {
                [
                    i64::from(e.ok),
                    i64::from(e.errored),
                    i64::from(e.crashed),
                    i64::from(e.abnormal),
                ]
            }),
            received_ms: to_ms(self.now()),
        };
        let new = self.inner.store.insert_health(row).await?;
        Ok(HealthResponse {
            accepted: new,
            duplicate: !new,
        })
    }

    /// The app a report without `app` belongs to: the only app with a rollout of `version`
    /// on `channel`, else the only app with any rollout.
    async fn app_of(&self, version: &str, channel: &str) -> Result<String, RolloutError> {
        let rows = self.inner.store.list_rollouts().await?;
        let apps = |all: bool| {
            let mut v: Vec<&str> = rows
                .iter()
                .filter(|r| all || (r.version == version && r.channel == channel))
                .map(|r| r.app.as_str())
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut found = apps(false);
        if found.is_empty() {
            found = apps(true);
        }
        match found.as_slice() {
            [one] => Ok((*one).to_string()),
            [] => Err(RolloutError::BadRequest(format!(
                "health report names no app and this server has no rollout of {version} on {channel}: add \"app\""
            ))),
            several => Err(RolloutError::BadRequest(format!(
                "health report names no app and {version} on {channel} is rolled out for several apps ({}): add \"app\"",
                several.join(", ")
            ))),
        }
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
        let release_health = self
            .release_health_of(&r.app, &r.channel, &r.version)
            .await?;
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
            release_health,
            decisions,
            app: r.app,
            channel: r.channel,
            version: r.version,
        })
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
