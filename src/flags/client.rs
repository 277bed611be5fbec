//! The feature-flag client: fetches the remote config, keeps the last good copy, and answers
//! flag questions from a precomputed table.
//!
//! Fetching: `GET` the config URL with `If-None-Match` (the cached `ETag`), a body limit
//! (1 MiB by default: an endless body is refused), and, when config keys are configured, a
//! DSSE envelope of type `application/vnd.railgun.config+json` verified before parsing. Any
//! failure (network, status, size, signature, schema) keeps the last good config. The last
//! good document is kept in the client store as received and re-verified when loaded, so an
//! app starts with it offline.
//!
//! Evaluation: when a config arrives (or an override changes) every flag is evaluated once
//! for this user and app ([`super::eval`]); [`FeatureFlags::get`] is then a hash lookup under
//! a read lock, with no allocation. The first evaluation of a variant in a session reports
//! one exposure to the [`ExposureSink`], if any.
//!
//! It refuses to let a remote document it could not verify or parse change any flag.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, Weak};
use std::time::Duration;

use semver::Version;
use tokio::sync::{broadcast, watch};
use url::Url;

use crate::clock::{self, SharedClock};
use crate::net::{self, BodyError, Rng};
use crate::store::{Store, StoreError};
use crate::trust::{Envelope, TrustedKeys, PAYLOAD_CONFIG};

use super::cache::{self, CachedConfig};
use super::compiled::CompiledConfig;
use super::eval::{evaluate_all, parse_overrides, EvalContext, EvaluationDetails, Override};
use super::notices::{announcement_in_force, maintenance_at, KillSwitch, MaintenanceStatus};
use super::schema::{Announcement, RemoteConfig};
use super::stream::{read_stream, revision_of, SseEvent, StreamEnd};
use super::{ExposureSink, FlagsError, FlagsEvent};

/// Default largest config body accepted (1 MiB).
pub const DEFAULT_MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Default refresh interval (5 minutes, ±10 % jitter).
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Default time a stream may stay silent (three server heartbeats) before it is reconnected.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Environment variable naming the config URL.
pub const ENV_CONFIG_URL: &str = crate::env::CONFIG_URL;
/// Environment variable with local overrides: `{"key": true | false | "variant"}`.
pub const ENV_FLAG_OVERRIDES: &str = crate::env::FLAG_OVERRIDES;

/// How a flag client is set up.
#[derive(Debug, Clone)]
pub struct FlagsConfig {
    /// App name (the cache and announcement state are kept per app).
    pub app: String,
    /// URL of the config document (`None`: cache and overrides only).
    pub url: Option<String>,
    /// The id users are bucketed by (usually the install id).
    pub user_id: String,
    /// The running app's version.
    pub app_version: Version,
    /// The running platform (`darwin`, `win32`, `linux`; default: this one).
    pub platform: String,
    /// The app's channel (default `stable`).
    pub channel: String,
    /// Keys that sign the config; when set, unsigned documents are refused.
    pub keys: Option<TrustedKeys>,
    /// Time between background refreshes (±10 % jitter).
    pub refresh_interval: Duration,
    /// Largest body accepted.
    pub max_bytes: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Total timeout of one fetch.
    pub request_timeout: Duration,
    /// User-Agent of every request.
    pub user_agent: String,
    /// Local overrides (development).
    pub overrides: BTreeMap<String, Override>,
    /// Subscribe to the server's live stream (`…/config/{app}/stream`) when the URL is a
    /// `railgun serve` config URL (`…/config/{app}.json`); polling is the fallback.
    pub stream: bool,
    /// A stream that sent nothing (not even a heartbeat) for this long is reconnected.
    pub stream_idle_timeout: Duration,
    /// First step of the reconnect backoff (doubled per failure, full jitter, up to the
    /// refresh interval).
    pub reconnect_base: Duration,
}

impl FlagsConfig {
    /// A configuration with the required fields and defaults for the rest.
    pub fn new(app: impl Into<String>, user_id: impl Into<String>, app_version: Version) -> Self {
        let platform = match std::env::consts::OS {
            "macos" => "darwin",
            "windows" => "win32",
            other => other,
        };
        Self {
            app: app.into(),
            url: None,
            user_id: user_id.into(),
            app_version,
            platform: platform.to_string(),
            channel: "stable".into(),
            keys: None,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            max_bytes: DEFAULT_MAX_CONFIG_BYTES,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            user_agent: format!("railgun/{} (flags)", env!("CARGO_PKG_VERSION")),
            overrides: BTreeMap::new(),
            stream: true,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            reconnect_base: Duration::from_secs(1),
        }
    }

    /// Reads `RAILGUN_CONFIG_URL` (when no URL is set) and `RAILGUN_FLAG_OVERRIDES` from the
    /// process environment.
    pub fn with_env(self) -> Result<Self, FlagsError> {
        self.with_vars(crate::env::process)
    }

    /// Like [`with_env`](Self::with_env) with the variables read through `vars` (a test
    /// passes a map).
    pub fn with_vars(mut self, vars: impl Fn(&str) -> Option<String>) -> Result<Self, FlagsError> {
        if self.url.is_none() {
            self.url = crate::env::value(&vars, ENV_CONFIG_URL);
        }
        if let Some(json) = crate::env::value(&vars, ENV_FLAG_OVERRIDES) {
            let o = parse_overrides(&json).map_err(|message| FlagsError::Overrides {
                variable: ENV_FLAG_OVERRIDES,
                message,
            })?;
            self.overrides.extend(o);
        }
        Ok(self)
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new document was accepted; `changed` says whether it differs from the last one.
    Updated {
        /// Whether the document differs from the previous one.
        changed: bool,
    },
    /// The server answered 304: the cached document is current.
    NotModified,
}

struct Entry {
    details: EvaluationDetails,
    exposed: AtomicBool,
}

/// The per-install table: flag key → this user's answer (a fast keyed hasher: keys are short).
type Table = HashMap<Box<str>, Entry, foldhash::fast::RandomState>;

#[derive(Default)]
struct Snapshot {
    config: Option<Arc<RemoteConfig>>,
    /// The same config compiled (seeds hashed, versions parsed) when it was accepted.
    compiled: Option<Arc<CompiledConfig>>,
    /// The `ETag` and URL of the document, for `If-None-Match`.
    etag: Option<String>,
    url: Option<String>,
    table: Table,
}

#[derive(Default)]
struct AnnouncementState {
    dismissed: HashSet<String>,
    /// `showOnce` announcements shown in an earlier session.
    shown_before: HashSet<String>,
    /// `showOnce` announcements shown in this session (still visible until it ends).
    shown_now: HashSet<String>,
}

/// The feature-flag client.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use railgun_core::flags::{FeatureFlags, FlagsConfig};
/// use railgun_core::store::Store;
///
/// let store = Arc::new(Store::open("/tmp/railgun/state.db")?);
/// let config = FlagsConfig::new("rail-gun", "install-id", "1.4.0".parse()?).with_env()?;
/// let flags = Arc::new(FeatureFlags::new(config, store)?);
/// let _task = flags.spawn_refresh();
/// if flags.get("new-composer") { /* … */ }
/// # Ok(()) }
/// ```
pub struct FeatureFlags {
    app: String,
    url: Option<Url>,
    keys: Option<TrustedKeys>,
    refresh_interval: Duration,
    max_bytes: usize,
    ctx: EvalContext,
    store: Arc<Store>,
    http: reqwest::Client,
    clock: SharedClock,
    snapshot: RwLock<Arc<Snapshot>>,
    overrides: Mutex<BTreeMap<String, Override>>,
    exposed: Mutex<HashSet<String>>,
    sink: Option<Arc<dyn ExposureSink>>,
    notices: Mutex<AnnouncementState>,
    changes: watch::Sender<u64>,
    /// Provider events (OpenFeature's READY, CONFIGURATION_CHANGED, STALE, ERROR).
    events: broadcast::Sender<FlagsEvent>,
    ready: AtomicBool,
    /// The highest revision accepted (0: none); a lower one is refused (replay).
    revision: AtomicU64,
    stream_url: Option<Url>,
    stream_http: reqwest::Client,
    stream_idle: Duration,
    reconnect_base: Duration,
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for FeatureFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureFlags")
            .field("app", &self.app)
            .field("url", &self.url.as_ref().map(Url::as_str))
            .field("signed", &self.keys.is_some())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FeatureFlags {
    /// Builds a client and loads the last good config from `store` (offline start).
    /// A cached document that no longer verifies or parses is ignored (and logged).
    pub fn new(config: FlagsConfig, store: Arc<Store>) -> Result<Self, FlagsError> {
        let url = config
            .url
            .as_deref()
            .map(|u| {
                net::http_url(u).map_err(|source| FlagsError::Url {
                    url: u.to_string(),
                    source,
                })
            })
            .transpose()?;
        let http = net::client(
            &config.user_agent,
            config.connect_timeout,
            Some(config.request_timeout),
        )
        .map_err(|e| FlagsError::Config(format!("HTTP client: {e}")))?;
        let (dismissed, shown) = cache::hidden_announcements(&store, &config.app)?;
        let (changes, _) = watch::channel(0);
        // The stream has no total timeout: it stays open; silence is bounded by the idle
        // timeout instead.
        let stream_http = net::client(&config.user_agent, config.connect_timeout, None)
            .map_err(|e| FlagsError::Config(format!("HTTP client: {e}")))?;
        let stream_url = url
            .as_ref()
            .filter(|_| config.stream)
            .and_then(super::stream::stream_url);
        let me = Self {
            app: config.app,
            url,
            keys: config.keys,
            refresh_interval: config.refresh_interval,
            max_bytes: config.max_bytes,
            ctx: EvalContext {
                user_id: config.user_id,
                app_version: config.app_version,
                platform: config.platform,
                channel: config.channel,
            },
            store,
            http,
            clock: clock::system(),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            overrides: Mutex::new(config.overrides),
            exposed: Mutex::new(HashSet::new()),
            sink: None,
            notices: Mutex::new(AnnouncementState {
                dismissed: dismissed.into_iter().collect(),
                shown_before: shown.into_iter().collect(),
                shown_now: HashSet::new(),
            }),
            changes,
            refreshing: tokio::sync::Mutex::new(()),
            events: broadcast::channel(64).0,
            ready: AtomicBool::new(false),
            revision: AtomicU64::new(0),
            stream_url,
            stream_http,
            stream_idle: config.stream_idle_timeout,
            reconnect_base: config.reconnect_base,
        };
        match cache::load(&me.store, &me.app)? {
            Some(doc) => {
                if let Err(e) = me.accept(&doc.body, doc.etag.clone(), Some(doc.url.clone())) {
                    tracing::warn!(app = %me.app, error = %e, "cached remote config refused; starting without it");
                    me.rebuild();
                }
            }
            None => me.rebuild(),
        }
        Ok(me)
    }

    /// Uses `clock` for announcement and maintenance windows (tests, simulations).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Reports the first evaluation of each flag's variant in this session to `sink`.
    pub fn with_exposure_sink(mut self, sink: Arc<dyn ExposureSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Uses an existing HTTP client (shares its connection pool).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    fn read(&self) -> RwLockReadGuard<'_, Arc<Snapshot>> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether flag `key` is on (`false` for an unknown key). The seed's `featureFlags.get`.
    ///
    /// A lookup in the precomputed table: no allocation, no I/O.
    pub fn get(&self, key: &str) -> bool {
        let (value, exposure) = {
            let snap = self.read();
            match snap.table.get(key) {
                None => return false,
                Some(e) => (e.details.value, self.pending_exposure(e)),
            }
        };
        if let Some(variant) = exposure {
            self.emit_exposure(key, &variant);
        }
        value
    }

    /// The variant of flag `key` for this user, if it is on and has variants.
    pub fn variant(&self, key: &str) -> Option<String> {
        self.details(key).variant
    }

    /// The full evaluation of flag `key`: value, variant and reason.
    pub fn details(&self, key: &str) -> EvaluationDetails {
        let (details, exposure) = {
            let snap = self.read();
            match snap.table.get(key) {
                None => return EvaluationDetails::not_found(),
                Some(e) => (e.details.clone(), self.pending_exposure(e)),
            }
        };
        if let Some(variant) = exposure {
            self.emit_exposure(key, &variant);
        }
        details
    }

    fn pending_exposure(&self, e: &Entry) -> Option<String> {
        match &e.details.variant {
            Some(v) if self.sink.is_some() && !e.exposed.swap(true, Ordering::Relaxed) => {
                Some(v.clone())
            }
            _ => None,
        }
    }

    fn emit_exposure(&self, key: &str, variant: &str) {
        let first = lock(&self.exposed).insert(key.to_string());
        if first {
            if let Some(sink) = &self.sink {
                sink.exposure(key, variant);
            }
        }
    }

    /// Every flag's value. The seed's `featureFlags.getAll`. Reports no exposure.
    pub fn get_all(&self) -> BTreeMap<String, bool> {
        self.read()
            .table
            .iter()
            .map(|(k, e)| (k.to_string(), e.details.value))
            .collect()
    }

    /// Every flag's evaluation details. Reports no exposure.
    pub fn all_details(&self) -> BTreeMap<String, EvaluationDetails> {
        self.read()
            .table
            .iter()
            .map(|(k, e)| (k.to_string(), e.details.clone()))
            .collect()
    }

    /// The current config, if any was ever accepted.
    pub fn config(&self) -> Option<Arc<RemoteConfig>> {
        self.read().config.clone()
    }

    /// The kill switch state.
    pub fn kill_switch(&self) -> KillSwitch {
        match &self.read().config {
            Some(c) => KillSwitch {
                active: c.emergency_kill_switch,
                message: c
                    .emergency_message
                    .clone()
                    .filter(|_| c.emergency_kill_switch),
            },
            None => KillSwitch::default(),
        }
    }

    /// Whether the kill switch is on. The seed's `featureFlags.isKillSwitchActive`.
    pub fn is_kill_switch_active(&self) -> bool {
        self.read()
            .config
            .as_ref()
            .is_some_and(|c| c.emergency_kill_switch)
    }

    /// The maintenance state now. The seed's `featureFlags.getMaintenance`.
    pub fn maintenance(&self) -> MaintenanceStatus {
        let config = self.config();
        maintenance_at(
            config.as_ref().and_then(|c| c.maintenance.as_ref()),
            self.clock.now(),
        )
    }

    /// The announcements to show now: in their time window and version range, not
    /// dismissed, and for `showOnce` ones not shown in an earlier session. The seed's
    /// `featureFlags.getAnnouncements`.
    ///
    /// A `showOnce` announcement returned here is recorded as shown: it stays for this
    /// session and never comes back after a restart.
    pub fn announcements(&self) -> Vec<Announcement> {
        let Some(config) = self.config() else {
            return Vec::new();
        };
        let now = self.clock.now();
        let mut state = lock(&self.notices);
        let mut out = Vec::new();
        for a in &config.announcements {
            if !announcement_in_force(a, now, &self.ctx.app_version)
                || state.dismissed.contains(&a.id)
                || (a.show_once && state.shown_before.contains(&a.id))
            {
                continue;
            }
            if a.show_once && !state.shown_now.contains(&a.id) {
                if let Err(e) = cache::mark_shown(&self.store, &self.app, &a.id) {
                    tracing::warn!(id = %a.id, error = %e, "cannot record a showOnce announcement");
                }
                state.shown_now.insert(a.id.clone());
            }
            out.push(a.clone());
        }
        out
    }

    /// Dismisses announcement `id` for good (persisted).
    pub fn dismiss(&self, id: &str) -> Result<(), FlagsError> {
        if let Some(c) = self.config() {
            if let Some(a) = c.announcements.iter().find(|a| a.id == id) {
                if !a.dismissible {
                    return Err(FlagsError::NotDismissible { id: id.to_string() });
                }
            }
        }
        cache::mark_dismissed(&self.store, &self.app, id)?;
        lock(&self.notices).dismissed.insert(id.to_string());
        Ok(())
    }

    /// Forces flag `key` (development); it wins over the remote config.
    pub fn set_override(&self, key: impl Into<String>, value: Override) {
        lock(&self.overrides).insert(key.into(), value);
        self.rebuild();
    }

    /// Removes the override of `key`.
    pub fn clear_override(&self, key: &str) {
        lock(&self.overrides).remove(key);
        self.rebuild();
    }

    /// A receiver told (with a new generation number) whenever the flags change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The install/user id flags are evaluated for, and the rest of the context.
    pub fn context(&self) -> &EvalContext {
        &self.ctx
    }

    /// Re-evaluates the table from the current config and overrides.
    fn rebuild(&self) {
        let mut guard = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        let old = Arc::clone(&guard);
        let table = self.table_for(old.compiled.as_deref());
        *guard = Arc::new(Snapshot {
            config: old.config.clone(),
            compiled: old.compiled.clone(),
            etag: old.etag.clone(),
            url: old.url.clone(),
            table,
        });
        drop(guard);
        self.changes.send_modify(|g| *g += 1);
    }

    fn table_for(&self, config: Option<&CompiledConfig>) -> Table {
        let overrides = lock(&self.overrides).clone();
        let exposed = lock(&self.exposed);
        evaluate_all(config, &self.ctx, &overrides)
            .into_iter()
            .map(|(k, details)| {
                let seen = exposed.contains(&k);
                (
                    k.into_boxed_str(),
                    Entry {
                        details,
                        exposed: AtomicBool::new(seen),
                    },
                )
            })
            .collect()
    }

    /// Verifies (when keys are set) and parses `raw`, then makes it the current config.
    /// Returns whether the config differs from the previous one. Nothing changes on error.
    fn accept(
        &self,
        raw: &[u8],
        etag: Option<String>,
        url: Option<String>,
    ) -> Result<bool, FlagsError> {
        let payload = self.verified_payload(raw)?;
        let config = RemoteConfig::parse(&payload)?;
        let compiled = Arc::new(CompiledConfig::new(&config));
        let revision = revision_of(&config);
        // Evaluated under the write lock so a concurrent override change cannot be lost.
        let mut guard = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        let have = self.revision.load(Ordering::Acquire);
        if have > 0 && revision.is_none_or(|r| r < have) {
            // A replayed older document (or one from before revisions) is refused.
            return Err(FlagsError::Replayed {
                got: revision,
                have,
            });
        }
        if let Some(r) = revision {
            self.revision.store(r, Ordering::Release);
        }
        let table = self.table_for(Some(&compiled));
        let changed = guard.config.as_deref() != Some(&config);
        *guard = Arc::new(Snapshot {
            config: Some(Arc::new(config)),
            compiled: Some(compiled),
            etag,
            url,
            table,
        });
        drop(guard);
        if changed {
            self.changes.send_modify(|g| *g += 1);
        }
        Ok(changed)
    }

    fn verified_payload(&self, raw: &[u8]) -> Result<Vec<u8>, FlagsError> {
        match &self.keys {
            Some(keys) => Ok(keys.verify(raw, PAYLOAD_CONFIG)?.payload),
            None => {
                // Without keys a plain document is accepted; an envelope is unwrapped
                // (not verified: there is nothing to verify it against).
                match serde_json::from_slice::<Envelope>(raw) {
                    Ok(env) if env.payload_type == PAYLOAD_CONFIG => {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(env.payload.as_bytes())
                            .map_err(|e| FlagsError::Config(format!("envelope payload: {e}")))
                    }
                    _ => Ok(raw.to_vec()),
                }
            }
        }
    }

    /// Makes a document obtained out of band (a default bundled with the app, a test) the
    /// current config. It is verified and parsed exactly like a fetched one, but not cached.
    /// Returns whether it differs from the previous config; on error nothing changes.
    pub fn load_document(&self, raw: &[u8]) -> Result<bool, FlagsError> {
        // No ETag: the next refresh fetches the server's document in full.
        self.accept(raw, None, None)
    }

    /// The highest config revision accepted (`None`: no document carried one).
    pub fn revision(&self) -> Option<u64> {
        Some(self.revision.load(Ordering::Acquire)).filter(|r| *r > 0)
    }

    /// A receiver of the provider events: `Ready` once the first config from the network
    /// is in force, `ConfigurationChanged` per new config, `Stale` when the live source is
    /// lost and the last good copy is served, `Error` when a document is refused.
    pub fn subscribe_events(&self) -> broadcast::Receiver<FlagsEvent> {
        self.events.subscribe()
    }

    fn emit(&self, e: FlagsEvent) {
        let _ = self.events.send(e);
    }

    /// Tells listeners about a successful fetch or stream event.
    fn announce(&self, changed: bool) {
        let revision = self.revision();
        if !self.ready.swap(true, Ordering::AcqRel) {
            self.emit(FlagsEvent::Ready { revision });
        } else if changed {
            self.emit(FlagsEvent::ConfigurationChanged { revision });
        }
    }

    /// Fetches the config now. On any error the last good config stays in force.
    pub async fn refresh(&self) -> Result<RefreshOutcome, FlagsError> {
        let r = self.fetch().await;
        match &r {
            Ok(RefreshOutcome::Updated { changed }) => self.announce(*changed),
            Ok(RefreshOutcome::NotModified) => self.announce(false),
            Err(
                e
                @ (FlagsError::Signature(_) | FlagsError::Schema(_) | FlagsError::Replayed { .. }),
            ) => self.emit(FlagsEvent::Error {
                reason: e.to_string(),
            }),
            Err(_) => {}
        }
        r
    }

    async fn fetch(&self) -> Result<RefreshOutcome, FlagsError> {
        let url = self.url.clone().ok_or(FlagsError::NoUrl)?;
        let _one_at_a_time = self.refreshing.lock().await;
        let (etag, have_config) = {
            let snap = self.read();
            let same_url = snap.url.as_deref() == Some(url.as_str());
            (
                snap.etag.clone().filter(|_| same_url),
                snap.config.is_some() && same_url,
            )
        };
        let mut req = self.http.get(url.clone());
        if let Some(e) = &etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, e);
        }
        let mut resp = req.send().await.map_err(|e| request_error(&url, e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            if have_config {
                return Ok(RefreshOutcome::NotModified);
            }
            return Err(FlagsError::HttpStatus {
                url: url.to_string(),
                status: 304,
            });
        }
        if !status.is_success() {
            return Err(FlagsError::HttpStatus {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let new_etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = net::read_limited(&mut resp, self.max_bytes)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge { limit } => FlagsError::TooLarge {
                    url: url.to_string(),
                    limit,
                },
                BodyError::Transport(e) => request_error(&url, e),
            })?;
        let changed = self.accept(&body, new_etag.clone(), Some(url.to_string()))?;
        cache::save(
            &self.store,
            &self.app,
            &CachedConfig {
                url: url.to_string(),
                body,
                etag: new_etag,
                fetched_at: self.clock.now().to_rfc3339(),
            },
        )?;
        Ok(RefreshOutcome::Updated { changed })
    }

    /// Takes one stream event: verified, checked against replay, swapped in, cached.
    /// `false` when it was refused.
    fn take_streamed(&self, e: SseEvent) -> bool {
        if e.event != "config" {
            return true;
        }
        let Some(url) = self.url.as_ref() else {
            return false;
        };
        let body = e.data.into_bytes();
        match self.accept(&body, None, Some(url.to_string())) {
            Ok(changed) => {
                let saved = cache::save(
                    &self.store,
                    &self.app,
                    &CachedConfig {
                        url: url.to_string(),
                        body,
                        etag: None,
                        fetched_at: self.clock.now().to_rfc3339(),
                    },
                );
                if let Err(e) = saved {
                    tracing::warn!(app = %self.app, error = %e, "cannot cache the streamed config");
                }
                self.announce(changed);
                true
            }
            Err(err) => {
                tracing::warn!(app = %self.app, error = %err, "streamed remote config refused; keeping the last good config");
                self.emit(FlagsEvent::Error {
                    reason: err.to_string(),
                });
                false
            }
        }
    }

    /// Starts the background refresh. With a stream (a `railgun serve` config URL and
    /// `stream` on) the config arrives as it is published; when the stream cannot be
    /// opened the document is polled (with `ETag`) and the stream retried, with
    /// exponential backoff and full jitter up to the refresh interval, so many clients
    /// losing one server do not come back in the same second. Without a stream: a poll
    /// now, then every interval ±10 %. The task ends when the client is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        if self.stream_url.is_some() {
            return self.spawn_live();
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut jitter = net::SplitMix64::from_entropy();
            loop {
                let interval = {
                    let Some(me) = weak.upgrade() else { return };
                    if let Err(e) = me.refresh().await {
                        tracing::warn!(app = %me.app, error = %e, "remote config refresh failed; keeping the last good config");
                    }
                    net::jitter_interval(me.refresh_interval, jitter.unit())
                };
                tokio::time::sleep(interval).await;
            }
        })
    }
}

impl FeatureFlags {
    fn spawn_live(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let mut alive = self.changes.subscribe();
        let mut backoff = net::Backoff::new(
            self.reconnect_base,
            self.refresh_interval.max(self.reconnect_base),
            None,
        );
        tokio::spawn(async move {
            loop {
                let (http, url, last, idle, max) = {
                    let Some(me) = weak.upgrade() else { return };
                    let Some(url) = me.stream_url.clone() else {
                        return;
                    };
                    (
                        me.stream_http.clone(),
                        url,
                        me.revision.load(Ordering::Acquire),
                        me.stream_idle,
                        me.max_bytes + 4096,
                    )
                };
                let mut opened = false;
                let end = read_stream(&http, &url, last, idle, max, &mut alive, |e| {
                    opened = true;
                    weak.upgrade().is_some_and(|me| {
                        me.take_streamed(e);
                        true
                    })
                })
                .await;
                let delay = {
                    let Some(me) = weak.upgrade() else { return };
                    match end {
                        StreamEnd::Closed => return,
                        StreamEnd::Dropped => {
                            if opened {
                                backoff.reset();
                            }
                            tracing::info!(app = %me.app, "config stream ended; reconnecting");
                            me.fallback_poll().await;
                            backoff.fail(None)
                        }
                        StreamEnd::Refused {
                            reason,
                            retry_after,
                        } => {
                            tracing::info!(app = %me.app, %reason, "config stream unavailable; polling");
                            me.fallback_poll().await;
                            backoff.fail(retry_after)
                        }
                    }
                };
                tokio::time::sleep(delay).await;
            }
        })
    }

    /// One poll while the stream is down; `Stale` when it fails too.
    async fn fallback_poll(&self) {
        if let Err(e) = self.refresh().await {
            tracing::warn!(app = %self.app, error = %e, "remote config refresh failed; keeping the last good config");
            self.emit(FlagsEvent::Stale {
                reason: e.to_string(),
            });
        }
    }
}

fn request_error(url: &Url, e: reqwest::Error) -> FlagsError {
    if e.is_timeout() {
        return FlagsError::Timeout {
            url: url.to_string(),
        };
    }
    FlagsError::Network {
        url: url.to_string(),
        source: e,
    }
}

impl From<StoreError> for FlagsError {
    fn from(e: StoreError) -> Self {
        FlagsError::Store(e)
    }
}
