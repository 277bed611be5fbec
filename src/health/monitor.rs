//! The client health monitor: counts errors and crashes per running version and sends
//! health reports.
//!
//! Owns [`HealthMonitor`] (built by [`HealthMonitor::builder`]) and its one background
//! thread. The thread owns a SQLite connection to the client store and a single-threaded
//! tokio runtime for HTTP, so the API works the same from plain threads and from inside any
//! tokio runtime (the napi addon calls it from its own).
//!
//! * [`HealthMonitor::record_error`] / [`HealthMonitor::record_crash`] add to atomics and
//!   nudge the thread, which commits the counts within moments; they never block and never
//!   do I/O. [`HealthMonitor::persist`] waits until everything recorded is on disk.
//! * [`HealthMonitor::on_startup`] counts one crash for the version of a previous run that
//!   ended without [`HealthMonitor::shutdown`] (its running marker is still in the store),
//!   one crash + one `bootReverts` for a version the [`BootGuard`] reverted from, one
//!   session for this version, closes the periods into reports and sends them at once.
//! * Sessions (release health): a session starts at `on_startup` (or when consent is
//!   granted later) and ends at `shutdown` as `ok`, or `errored` after a
//!   [`HealthMonitor::record_error`], or `crashed` after a [`HealthMonitor::record_crash`].
//!   The running marker carries the status reached so far (written with the counts), so a
//!   run that never ends (`kill -9`, power loss) is found at the next start and counted
//!   `abnormal` (or `crashed` if a crash was recorded, or the boot guard reverted from its
//!   version). A session whose consent is withdrawn has no end.
//! * Reports are sent one per `POST {url}/analytics/health`, oldest first; a report is
//!   deleted only after a 2xx `{accepted, duplicate}` (a duplicate is an acknowledgement).
//!   408, 429, 5xx and network failures back off exponentially with full jitter (up to one
//!   hour), honouring `Retry-After`; other 4xx drop the report (counted and logged).
//!
//! **Blocking or async:** `on_startup`, `persist`, `set_consent`, `flush` and `shutdown` are
//! blocking: they wait for the background thread (`flush` and `shutdown` also for the
//! network, `shutdown` at most its deadline). From async code use [`HealthMonitor::flush_async`]
//! and [`HealthMonitor::shutdown_async`], which wait on a channel and never block a runtime
//! thread. `record_error`, `record_crash` and `consent` never block.
//!
//! Consent is the analytics consent (`analytics.consent:{app}` in the same store, so one
//! decision covers both): only `granted` records or sends anything; `denied` also purges
//! open periods and unsent reports. The monitor refuses to report anything but counts (no
//! messages, no stack traces) and sends the hashed install id, never the raw machine id.
//! Two processes sharing one state dir at once are not supported: the second start would
//! take the first one's marker for a crash.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::ledger::{self, ReportContext};
use super::worker::{self, Ack, HealthDb, Msg, Shared};
use super::{plain_field, HealthReportError};
use crate::analytics::consent::{self, Consent};
use crate::context::context_setters;
use crate::net::{self, Backoff};
use crate::store::{Store, StoreError};
use crate::update::{BootGuard, BootGuardError, RevertRecord};
use crate::ClientContext;

/// Default time between periodic reports (each one jittered by ±10 %).
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(3600);
/// Default time `shutdown` may spend sending.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Errors of the health monitor.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// A configuration value is refused.
    #[error("health monitor configuration: {field} {value:?}: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What was given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A report field would be refused by the server.
    #[error("health monitor configuration: {0}")]
    Report(#[from] HealthReportError),
    /// The server URL is not usable.
    #[error("health URL {url:?} is not a valid base URL: {source}")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it is refused.
        #[source]
        source: net::UrlError,
    },
    /// The client store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The boot guard's state could not be read.
    #[error(transparent)]
    BootGuard(#[from] BootGuardError),
    /// The background thread, its runtime or its HTTP client could not be started.
    #[error("cannot start the health monitor thread: {}", crate::error::chain(&**.0))]
    Thread(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The monitor was shut down.
    #[error("the health monitor is shut down")]
    Closed,
}

/// What [`HealthMonitor::on_startup`] found and counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartupHealth {
    /// The version whose previous run ended without a clean shutdown (one crash counted).
    pub unclean_shutdown: Option<String>,
    /// How that run's session ended: `crashed` (a crash was recorded in it, or the boot
    /// guard reverted from its version) or `abnormal`.
    pub previous_session: Option<super::SessionStatus>,
    /// The boot-guard revert counted now (one crash and one boot revert for `from`).
    pub boot_revert: Option<RevertRecord>,
    /// Whether anything was recorded (consent `granted`).
    pub recorded: bool,
}

/// What a send run did and what is left.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthFlushReport {
    /// Reports the server acknowledged in this run (accepted or duplicate).
    pub sent: u64,
    /// Of those, duplicates (stored by an earlier attempt whose answer was lost).
    pub duplicates: u64,
    /// Reports the server refused in this run (dropped, never retried).
    pub dropped: u64,
    /// Reports still waiting for the server.
    pub pending: u64,
    /// When the next attempt is allowed after a failure (by the injected clock).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last failure, for people.
    pub last_error: Option<String>,
}

/// Plain configuration of the monitor (see [`HealthMonitor::builder`]).
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// App (`[A-Za-z0-9._-]`, at most 64 characters), running version (semver), channel,
    /// platform and arch of every report; the server URL (`None` keeps reports stored),
    /// the store, the clock and the install id (sent hashed unless it already is a 64-hex
    /// hashed id, see [`report_machine_id`]).
    pub context: ClientContext,
    /// Consent until the user decides (the stored decision wins).
    pub default_consent: Consent,
    /// How long `shutdown` may spend sending.
    pub shutdown_deadline: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// First backoff step (doubled per consecutive failure, full jitter).
    pub backoff_base: Duration,
    /// Longest backoff (and longest `Retry-After` honoured).
    pub backoff_max: Duration,
    /// Seed of the jitter (tests); `None` seeds from the OS.
    pub rng_seed: Option<u64>,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            context: ClientContext::default(),
            default_consent: Consent::Unknown,
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
            request_timeout: Duration::from_secs(30),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(3600),
            rng_seed: None,
            user_agent: concat!("railgun/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// Builds a [`HealthMonitor`].
///
/// ```
/// use railgun_core::analytics::Consent;
/// use railgun_core::health::HealthMonitor;
/// let dir = tempfile::tempdir().unwrap();
/// let health = HealthMonitor::builder()
///     .app("rail-gun")
///     .version("1.2.0")
///     .state_dir(dir.path())
///     .install_id("install-1")
///     .default_consent(Consent::Granted)
///     .build()
///     .unwrap();
/// health.on_startup().unwrap();
/// health.record_error();
/// let report = health.flush().unwrap(); // no URL: the reports wait in the store
/// assert_eq!(report.pending, 2); // the report at start, and the one with the error
/// health.shutdown().unwrap();
/// ```
#[derive(Debug, Default)]
pub struct HealthMonitorBuilder {
    config: HealthConfig,
    boot_guard: Option<BootGuard>,
}

impl HealthMonitorBuilder {
    /// Starts from a plain configuration.
    pub fn from_config(config: HealthConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }
    context_setters!();

    /// Consent until the user decides.
    pub fn default_consent(mut self, consent: Consent) -> Self {
        self.config.default_consent = consent;
        self
    }
    /// The boot guard whose reverts `on_startup` counts.
    pub fn boot_guard(mut self, guard: BootGuard) -> Self {
        self.boot_guard = Some(guard);
        self
    }
    /// How long `shutdown` may spend sending.
    pub fn shutdown_deadline(mut self, d: Duration) -> Self {
        self.config.shutdown_deadline = d;
        self
    }
    /// Timeout of one request.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.config.request_timeout = d;
        self
    }
    /// Backoff: first step and ceiling.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.backoff_base = base;
        self.config.backoff_max = max;
        self
    }
    /// Seed of the backoff and period jitter (tests).
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.config.rng_seed = Some(seed);
        self
    }

    /// Checks the configuration, opens the store and starts the background thread. Nothing
    /// is counted yet: call [`HealthMonitor::on_startup`].
    pub fn build(self) -> Result<HealthMonitor, HealthError> {
        HealthMonitor::start(self)
    }
}

struct Inner {
    app: String,
    version: String,
    machine_id: String,
    store: Arc<Store>,
    shared: Arc<Shared>,
    tx: UnboundedSender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shutdown_deadline: Duration,
    /// This monitor's place in the consent fan-out of its store file (set once, at build).
    consent_bus: OnceLock<consent::Subscription>,
}

/// The client health monitor. Cheap to clone; every clone is the same monitor.
#[derive(Clone)]
pub struct HealthMonitor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("app", &self.inner.app)
            .field("version", &self.inner.version)
            .field("consent", &self.consent())
            .finish_non_exhaustive()
    }
}

fn config_err(field: &'static str, value: &str, reason: &str) -> HealthError {
    HealthError::Config {
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// The id sent as `machineId`: the install id when it already is 64 lowercase hex (a hashed
/// id), else the hex SHA-256 of `railgun-health:` + the id.
pub fn report_machine_id(install_id: &str) -> String {
    let hashed = install_id.len() == 64
        && install_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hashed {
        install_id.to_string()
    } else {
        hex::encode(Sha256::digest(format!("railgun-health:{install_id}")))
    }
}

impl HealthMonitor {
    /// A builder with the defaults of [`HealthConfig`].
    pub fn builder() -> HealthMonitorBuilder {
        HealthMonitorBuilder::default()
    }

    /// Builds a monitor from a plain configuration.
    pub fn from_config(config: HealthConfig) -> Result<Self, HealthError> {
        HealthMonitorBuilder::from_config(config).build()
    }

    fn start(b: HealthMonitorBuilder) -> Result<Self, HealthError> {
        let c = b.config;
        let ctx = c.context;
        plain_field("app", &ctx.app)?;
        plain_field("channel", &ctx.channel)?;
        plain_field("platform", &ctx.platform)?;
        plain_field("arch", &ctx.arch)?;
        if semver::Version::parse(&ctx.version).is_err() {
            return Err(HealthReportError::BadVersion(ctx.version.clone()).into());
        }
        if c.request_timeout.is_zero() || c.shutdown_deadline.is_zero() {
            return Err(config_err(
                "request_timeout/shutdown_deadline",
                &format!("{:?}/{:?}", c.request_timeout, c.shutdown_deadline),
                "must be longer than zero",
            ));
        }
        let url = ctx
            .url
            .as_deref()
            .map(|u| {
                let bad = |source| HealthError::BadUrl {
                    url: u.to_string(),
                    source,
                };
                net::base_url(u)
                    .map_err(bad)?
                    .join("analytics/health")
                    .map_err(|e| bad(e.into()))
            })
            .transpose()?;
        if let Some(id) = ctx.install_id.as_deref().filter(|id| id.trim().is_empty()) {
            return Err(config_err("install_id", id, "must not be empty"));
        }
        let store = ctx.open_store()?;
        let clock = ctx.clock();
        let install_id = ctx.install_id(&store)?;
        let machine_id = report_machine_id(&install_id);
        let consent = consent::load(&store, &ctx.app)?.unwrap_or(c.default_consent);
        let shared = Arc::new(Shared {
            consent: AtomicU8::new(consent.to_u8()),
            closed: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
            nudged: AtomicBool::new(false),
        });

        let db = HealthDb::open(&store)?;
        let (tx, rx) = unbounded_channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let seed = c.rng_seed.unwrap_or_else(net::os_seed);
        let thread = worker::spawn(worker::Setup {
            db,
            ctx: ReportContext {
                app: ctx.app.clone(),
                machine_id: machine_id.clone(),
                platform: ctx.platform.clone(),
                arch: ctx.arch.clone(),
            },
            version: ctx.version.clone(),
            channel: ctx.channel.clone(),
            shared: shared.clone(),
            clock,
            boot_guard: b.boot_guard,
            url,
            user_agent: c.user_agent.clone(),
            request_timeout: c.request_timeout,
            backoff: Backoff::new(c.backoff_base, c.backoff_max, Some(seed)),
            seed,
            rx,
            ready: ready_tx,
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(HealthError::Thread(e)),
            Err(_) => {
                return Err(HealthError::Thread(
                    "the thread ended before it started".into(),
                ))
            }
        }
        let inner = Arc::new(Inner {
            app: ctx.app,
            version: ctx.version,
            machine_id,
            store,
            shared,
            tx,
            thread: Mutex::new(Some(thread)),
            shutdown_deadline: c.shutdown_deadline,
            consent_bus: OnceLock::new(),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let bus = consent::subscribe(
            &inner.store,
            &inner.app,
            Arc::new(move |c: Consent| {
                if let Some(inner) = weak.upgrade() {
                    match (HealthMonitor { inner }).apply_consent(c) {
                        Ok(()) | Err(HealthError::Closed) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "consent change from another component not applied")
                        }
                    }
                }
            }),
        );
        let _ = inner.consent_bus.set(bus);
        Ok(Self { inner })
    }

    fn request<T: Send + 'static>(
        &self,
        make: impl FnOnce(Ack<T>) -> Msg,
    ) -> Result<T, HealthError> {
        let (tx, rx) = mpsc::channel();
        let ack: Ack<T> = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.inner
            .tx
            .send(make(ack))
            .map_err(|_| HealthError::Closed)?;
        rx.recv().map_err(|_| HealthError::Closed)?
    }

    async fn request_async<T: Send + 'static>(
        &self,
        make: impl FnOnce(Ack<T>) -> Msg,
    ) -> Result<T, HealthError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack: Ack<T> = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.inner
            .tx
            .send(make(ack))
            .map_err(|_| HealthError::Closed)?;
        rx.await.map_err(|_| HealthError::Closed)?
    }

    /// Call once at startup (blocking, local I/O only). Counts one crash for the version of a
    /// previous run that ended without [`shutdown`](Self::shutdown), one crash + one boot
    /// revert for the version the boot guard reverted from, one session for this version;
    /// marks this run as running, closes the periods and sends the reports in the
    /// background. Without consent it records nothing. A second call does nothing.
    pub fn on_startup(&self) -> Result<StartupHealth, HealthError> {
        self.request(Msg::Startup)
    }

    /// Counts one uncaught error for the running version. Never blocks, no I/O; nothing is
    /// counted without consent.
    pub fn record_error(&self) {
        self.record(&self.inner.shared.errors);
    }

    /// Counts one crash for the running version (a crash the app detected itself, e.g. a
    /// renderer or child process). Never blocks, no I/O; nothing without consent.
    pub fn record_crash(&self) {
        self.record(&self.inner.shared.crashes);
    }

    fn record(&self, counter: &AtomicU64) {
        let s = &self.inner.shared;
        if !s.recording() {
            return;
        }
        counter.fetch_add(1, Ordering::AcqRel);
        if !s.nudged.swap(true, Ordering::AcqRel) {
            let _ = self.inner.tx.send(Msg::Nudge);
        }
    }

    /// Waits (blocking, local I/O only) until every count recorded before this call is
    /// committed to the store.
    pub fn persist(&self) -> Result<(), HealthError> {
        self.request(Msg::Persist)
    }

    /// The current consent.
    pub fn consent(&self) -> Consent {
        Consent::from_u8(self.inner.shared.consent.load(Ordering::Acquire))
    }

    /// Changes and stores the consent (shared with analytics), blocking until applied.
    /// `denied` purges open periods and unsent reports; `unknown` stops recording and
    /// sending (kept data waits); `granted` starts recording (a session, the running marker).
    /// Analytics of the same app on the same store file follows at once, and a change made
    /// through analytics reaches this monitor the same way.
    pub fn set_consent(&self, consent: Consent) -> Result<(), HealthError> {
        consent::save(&self.inner.store, &self.inner.app, consent)?;
        self.apply_consent(consent)?;
        if let Some(bus) = self.inner.consent_bus.get() {
            consent::announce(bus, consent);
        }
        Ok(())
    }

    /// Acts on a consent already stored (by this monitor or another component).
    fn apply_consent(&self, consent: Consent) -> Result<(), HealthError> {
        self.inner
            .shared
            .consent
            .store(consent.to_u8(), Ordering::Release);
        self.request(|ack| Msg::Consent(consent, ack))
    }

    /// Sends a report every `interval` (each wait jittered by ±10 %); the default is
    /// [`DEFAULT_REPORT_INTERVAL`]. Calling it again changes the interval.
    pub fn start_periodic(&self, interval: Duration) -> Result<(), HealthError> {
        if interval.is_zero() {
            return Err(config_err("interval", "0s", "must be longer than zero"));
        }
        self.inner
            .tx
            .send(Msg::Periodic(interval))
            .map_err(|_| HealthError::Closed)
    }

    /// Blocking: commits the counts, closes the open periods into reports and sends what
    /// the server takes now (nothing while a backoff runs). Waits for the network (each
    /// request at most the request timeout). From async code use [`flush_async`](Self::flush_async).
    pub fn flush(&self) -> Result<HealthFlushReport, HealthError> {
        self.request(|ack| Msg::Flush {
            deadline: None,
            ack,
        })
    }

    /// [`flush`](Self::flush) without blocking the caller: awaits the background thread
    /// (works in any async runtime).
    pub async fn flush_async(&self) -> Result<HealthFlushReport, HealthError> {
        self.request_async(|ack| Msg::Flush {
            deadline: None,
            ack,
        })
        .await
    }

    /// Clean shutdown (blocking): stops recording, commits the counts, closes the periods,
    /// clears the running marker (so the next start counts no crash) and sends within the
    /// shutdown deadline; stops the thread. Unsent reports wait for the next run. Later
    /// calls answer [`HealthError::Closed`].
    pub fn shutdown(&self) -> Result<HealthFlushReport, HealthError> {
        let deadline = Instant::now() + self.inner.shutdown_deadline;
        let r = self.request(|ack| Msg::Shutdown { deadline, ack });
        let t = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = t {
            let _ = t.join();
        }
        r
    }

    /// [`shutdown`](Self::shutdown) without blocking the caller (the thread ends by itself).
    pub async fn shutdown_async(&self) -> Result<HealthFlushReport, HealthError> {
        let deadline = Instant::now() + self.inner.shutdown_deadline;
        self.request_async(|ack| Msg::Shutdown { deadline, ack })
            .await
    }

    /// Reports waiting for the server (reads the store).
    pub fn pending_reports(&self) -> Result<u64, HealthError> {
        let app = self.inner.app.clone();
        Ok(self
            .inner
            .store
            .with_conn(|c| ledger::pending_count(c, &app))?)
    }

    /// Reports ever dropped: refused by the server, corrupted, or beyond the bound.
    pub fn dropped_reports(&self) -> Result<u64, HealthError> {
        let app = self.inner.app.clone();
        Ok(self.inner.store.with_conn(|c| ledger::dropped(c, &app))?)
    }

    /// The `machineId` reports carry (hashed install id).
    pub fn machine_id(&self) -> &str {
        &self.inner.machine_id
    }

    /// The running version counts go to.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The client store.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_and_its_futures_can_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let h = HealthMonitor::builder()
            .app("rail-gun")
            .version("1.0.0")
            .install_id("install-1")
            .build()
            .expect("monitor");
        send_sync(&h);
        let owned = h.clone();
        let fut = async move { owned.flush_async().await };
        send(&fut);
        drop(fut);
        h.shutdown().expect("shutdown");
    }

    #[test]
    fn machine_id_is_always_64_hex_and_never_the_raw_id() {
        let hashed = "c".repeat(64);
        assert_eq!(report_machine_id(&hashed), hashed);
        let raw = report_machine_id("0123456789abcdef0123456789abcdef");
        assert_eq!(raw.len(), 64);
        assert!(!raw.contains("0123456789abcdef"));
        assert_eq!(raw, report_machine_id("0123456789abcdef0123456789abcdef"));
        assert_ne!(report_machine_id(&"C".repeat(64)), "C".repeat(64));
    }

    #[test]
    fn hostile_configuration_is_refused_with_the_field() {
        let e = HealthMonitor::builder()
            .app("rail gun; rm")
            .version("1.0.0")
            .install_id("x")
            .build()
            .unwrap_err();
        assert!(
            matches!(
                e,
                HealthError::Report(HealthReportError::BadField { field: "app" })
            ),
            "{e}"
        );
        let e = HealthMonitor::builder()
            .app("rail-gun")
            .version("latest")
            .install_id("x")
            .build()
            .unwrap_err();
        assert!(matches!(
            e,
            HealthError::Report(HealthReportError::BadVersion(_))
        ));
        let e = HealthMonitor::builder()
            .app("rail-gun")
            .version("1.0.0")
            .url("ftp://example.com")
            .install_id("x")
            .build()
            .unwrap_err();
        assert!(matches!(e, HealthError::BadUrl { .. }), "{e}");
    }
}
