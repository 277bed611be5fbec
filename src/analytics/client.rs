//! The analytics client: the handle an app tracks events with.
//!
//! Owns [`Analytics`] (built by [`Analytics::builder`] or from an [`AnalyticsConfig`]), the
//! process-wide handle ([`init_analytics`] / [`analytics`]), the [`EventSink`] hook other
//! modules emit through, and the three threads behind the handle: the writer (durable queue),
//! the uploader (every 30 s, on [`Analytics::flush`] and at shutdown) and the session
//! heartbeat.
//!
//! `track()` validates, checks consent and sampling (two atomic reads), stamps the event and
//! hands it to a bounded channel; it never blocks and never does I/O. It refuses to record
//! anything unless consent is `granted` and this user is inside the sample.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::consent::{self, Consent};
use super::debug::debug_line;
use super::event::{self, names, validate_properties, Properties, PropertyValue, MIN_SAMPLE_RATE};
use super::queue::{self, Db, EventContext, Pending, Writer, WriterMsg};
use super::scrub::scrub;
use super::session::{self, Session};
use super::uploader::{FlushReport, UploadConfig, UploadError, Uploader};
use super::AnalyticsError;
use crate::clock::SharedClock;
use crate::context::context_setters;
use crate::identity;
use crate::store::Store;
use crate::{ClientContext, Environment};

/// Default time between uploads.
pub const DEFAULT_UPLOAD_INTERVAL: Duration = Duration::from_secs(30);
/// Default time between session heartbeats.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(60);
/// Default capacity of the in-memory channel between `track()` and the writer.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 16_384;

/// Something that records named events: implemented by [`Analytics`], so feature flags
/// (`experiment_exposure`) and health can emit events without knowing the concrete client.
pub trait EventSink: Send + Sync {
    /// Records an event; invalid or unconsented events are silently not recorded.
    fn track_event(&self, name: &str, properties: Properties);
}

/// The sampling rate when none is given: every user while developing, 10 % in production
/// (the specification's "only 10% of users tracked in production").
pub fn default_sample_rate(environment: Environment) -> f64 {
    match environment {
        Environment::Development => 1.0,
        Environment::Production => 0.1,
    }
}

/// Whether `user_id` is inside the sample of `app` at `rate` (0–1):
/// `bucket("sample:{app}", user_id) < round(rate × 10 000)`.
pub fn is_sampled(app: &str, user_id: &str, rate: f64) -> bool {
    identity::in_percentage(
        identity::bucket(&format!("sample:{app}"), user_id),
        rate * 100.0,
    )
}

/// Plain configuration of the client (see [`Analytics::builder`] for the fluent form).
#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// App (also the sampling seed `sample:{app}`), version, channel, platform and arch on
    /// every event; the server URL (`None` keeps events queued), the store, the clock and
    /// the install id (sent as `userId`).
    pub context: ClientContext,
    /// Sampling rate 0–1; default [`default_sample_rate`] of the context's environment.
    pub sample_rate: Option<f64>,
    /// Consent until the user decides (the stored decision wins).
    pub default_consent: Consent,
    /// Log every event on stderr in the specification's form,
    /// `[Analytics] screen_view { screen_name: 'home' }` ([`debug_line`]).
    pub debug: bool,
    /// Send nothing (events stay queued).
    pub dry_run: bool,
    /// Emit `session_start`, heartbeats and `session_end` automatically.
    pub sessions: bool,
    /// Queue bound (oldest dropped beyond it).
    pub max_queue: usize,
    /// Capacity of the channel between `track()` and the writer.
    pub channel_capacity: usize,
    /// Time between automatic uploads (`None`: only on flush and shutdown).
    pub upload_interval: Option<Duration>,
    /// Time between heartbeats (`None`: only [`Analytics::heartbeat`]).
    pub heartbeat_interval: Option<Duration>,
    /// How long shutdown may spend uploading.
    pub shutdown_deadline: Duration,
    /// Upload protocol settings (its `url` and `dry_run` are taken from above).
    pub upload: UploadConfig,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            context: ClientContext::default(),
            sample_rate: None,
            default_consent: Consent::Unknown,
            debug: false,
            dry_run: false,
            sessions: true,
            max_queue: queue::DEFAULT_MAX_QUEUE,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            upload_interval: Some(DEFAULT_UPLOAD_INTERVAL),
            heartbeat_interval: Some(DEFAULT_HEARTBEAT_INTERVAL),
            shutdown_deadline: Duration::from_secs(5),
            upload: UploadConfig::default(),
        }
    }
}

/// Builds an [`Analytics`] client.
///
/// ```
/// use railgun_core::analytics::{Analytics, Consent};
/// let dir = tempfile::tempdir().unwrap();
/// let a = Analytics::builder()
///     .app("rail-gun")
///     .version("1.2.0")
///     .state_dir(dir.path())
///     .default_consent(Consent::Granted)
///     .build()
///     .unwrap();
/// a.screen("settings").unwrap();
/// a.shutdown().unwrap();
/// ```
#[derive(Debug, Default)]
pub struct AnalyticsBuilder {
    config: AnalyticsConfig,
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident: $t:ty => $field:ident) => {
        $(#[$m])*
        pub fn $name(mut self, v: $t) -> Self {
            self.config.$field = v.into();
            self
        }
    };
}

impl AnalyticsBuilder {
    /// Starts from a plain configuration.
    pub fn from_config(config: AnalyticsConfig) -> Self {
        Self { config }
    }

    context_setters!();
    setter!(/// Default consent until the user decides.
        default_consent: Consent => default_consent);
    setter!(/// Debug logging of every event.
        debug: bool => debug);
    setter!(/// Send nothing.
        dry_run: bool => dry_run);
    setter!(/// Automatic session events.
        sessions: bool => sessions);
    setter!(/// Queue bound.
        max_queue: usize => max_queue);
    setter!(/// Channel capacity.
        channel_capacity: usize => channel_capacity);
    setter!(/// Upload interval (`None`: only on flush/shutdown).
        upload_interval: Option<Duration> => upload_interval);
    setter!(/// Heartbeat interval (`None`: only explicit heartbeats).
        heartbeat_interval: Option<Duration> => heartbeat_interval);
    setter!(/// Shutdown upload deadline.
        shutdown_deadline: Duration => shutdown_deadline);
    setter!(/// Upload protocol settings.
        upload: UploadConfig => upload);

    /// The sampling rate (0–1).
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.config.sample_rate = Some(rate);
        self
    }
    /// Seed of the backoff jitter (tests).
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.config.upload.rng_seed = Some(seed);
        self
    }

    /// Opens the store, recovers a crashed session, starts the threads and (with consent)
    /// the session.
    pub fn build(self) -> Result<Analytics, AnalyticsError> {
        Analytics::start(self)
    }
}

enum UploaderMsg {
    Upload {
        deadline: Option<Instant>,
        ack: mpsc::Sender<Result<FlushReport, UploadError>>,
    },
    Nudge,
    Stop,
}

/// Counters of one client (see [`Analytics::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsStats {
    /// Events recorded by this handle (handed to the writer).
    pub recorded: u64,
    /// Events not recorded (no consent, sampled out, closed).
    pub not_recorded: u64,
    /// Events now in the durable queue.
    pub queued: u64,
    /// Events ever acknowledged by the server (persisted).
    pub sent: u64,
    /// Events ever dropped: queue full, too old, channel full (persisted).
    pub dropped: u64,
    /// Events ever refused by the server (persisted).
    pub rejected: u64,
}

struct Inner {
    app: String,
    user_id: String,
    sample_rate: f64,
    sampled_in: bool,
    debug: bool,
    sessions: bool,
    consent: AtomicU8,
    store: Arc<Store>,
    clock: SharedClock,
    writer: SyncSender<WriterMsg>,
    channel_drops: Arc<AtomicU64>,
    uploader: mpsc::Sender<UploaderMsg>,
    session: Session,
    session_started: AtomicBool,
    session_ended: AtomicBool,
    timers: Mutex<HashMap<String, DateTime<Utc>>>,
    recorded: AtomicU64,
    not_recorded: AtomicU64,
    closed: AtomicBool,
    shutdown_deadline: Duration,
    threads: Mutex<Vec<JoinHandle<()>>>,
    heartbeat: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    /// This client's place in the consent fan-out of its store file (set once, at build).
    consent_bus: OnceLock<consent::Subscription>,
}

/// The analytics client. Cheap to clone; every clone is the same client.
#[derive(Clone)]
pub struct Analytics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics")
            .field("app", &self.inner.app)
            .field("sample_rate", &self.inner.sample_rate)
            .field("consent", &self.consent())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Analytics {
    /// A builder with the defaults of [`AnalyticsConfig`].
    pub fn builder() -> AnalyticsBuilder {
        AnalyticsBuilder::default()
    }

    /// Builds a client from a plain configuration.
    pub fn from_config(config: AnalyticsConfig) -> Result<Self, AnalyticsError> {
        AnalyticsBuilder::from_config(config).build()
    }

    /// Builds the client in its phases: check the configuration, read who this is (store,
    /// install id, sample, consent), start the writer and the uploader threads, then act on
    /// what the store holds (a denied user's leftovers, a crashed session) and start.
    fn start(b: AnalyticsBuilder) -> Result<Self, AnalyticsError> {
        let c = b.config;
        let rate = Self::checked_rate(&c)?;
        let ctx = &c.context;
        let store = ctx.open_store()?;
        let clock = ctx.clock();
        let user_id = ctx.install_id(&store)?;
        let consent = consent::load(&store, &ctx.app)?.unwrap_or(c.default_consent);

        let channel_drops = Arc::new(AtomicU64::new(0));
        let (writer, writer_thread) =
            Self::spawn_writer(&c, &store, &user_id, rate, channel_drops.clone())?;
        let (uploader, uploader_thread) = match Self::spawn_uploader(&c, &store, &clock) {
            Ok(u) => u,
            Err(e) => {
                let _ = writer.send(WriterMsg::Stop(mpsc::channel().0));
                return Err(e);
            }
        };

        let inner = Arc::new(Inner {
            app: ctx.app.clone(),
            sampled_in: is_sampled(&ctx.app, &user_id, rate),
            user_id,
            sample_rate: rate,
            debug: c.debug,
            sessions: c.sessions,
            consent: AtomicU8::new(consent.to_u8()),
            store: store.clone(),
            session: Session::new(clock.now()),
            clock,
            writer,
            channel_drops,
            uploader,
            session_started: AtomicBool::new(false),
            session_ended: AtomicBool::new(false),
            timers: Mutex::new(HashMap::new()),
            recorded: AtomicU64::new(0),
            not_recorded: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            shutdown_deadline: c.shutdown_deadline,
            threads: Mutex::new(vec![writer_thread, uploader_thread]),
            heartbeat: Mutex::new(None),
            consent_bus: OnceLock::new(),
        });
        let a = Analytics { inner };
        a.follow_consent_of_other_components();
        a.recover(consent)?;
        a.start_session();
        if let (true, Some(every)) = (c.sessions, c.heartbeat_interval) {
            a.spawn_heartbeat(every)?;
        }
        Ok(a)
    }

    /// The sampling rate (given, else the environment's), after checking the configuration.
    fn checked_rate(c: &AnalyticsConfig) -> Result<f64, AnalyticsError> {
        let app = &c.context.app;
        if app.is_empty() || app.len() > 128 || app.chars().any(char::is_control) {
            return Err(AnalyticsError::Config(format!(
                "app name {app:?} must be 1-128 printable characters"
            )));
        }
        let rate = c
            .sample_rate
            .unwrap_or_else(|| default_sample_rate(c.context.environment));
        if !(rate == 0.0 || (MIN_SAMPLE_RATE..=1.0).contains(&rate)) {
            return Err(AnalyticsError::Config(format!(
                "sample rate {rate} must be 0 (nobody) or in [{MIN_SAMPLE_RATE}, 1]"
            )));
        }
        if c.max_queue == 0 || c.channel_capacity == 0 {
            return Err(AnalyticsError::Config(
                "max_queue and channel_capacity must be at least 1".into(),
            ));
        }
        Ok(rate)
    }

    /// The writer thread (the durable queue) and the bounded channel `track()` feeds it by.
    fn spawn_writer(
        c: &AnalyticsConfig,
        store: &Arc<Store>,
        user_id: &str,
        rate: f64,
        channel_drops: Arc<AtomicU64>,
    ) -> Result<(SyncSender<WriterMsg>, JoinHandle<()>), AnalyticsError> {
        let ctx = &c.context;
        let (tx, rx) = mpsc::sync_channel(c.channel_capacity);
        let writer = Writer::new(
            Db::open(store)?,
            EventContext {
                app: ctx.app.clone(),
                user_id: user_id.to_string(),
                app_version: ctx.version.clone(),
                platform: ctx.platform.clone(),
                arch: ctx.arch.clone(),
                channel: ctx.channel.clone(),
                sample_rate: rate,
                max_queue: c.max_queue,
            },
            channel_drops,
        );
        let thread = std::thread::Builder::new()
            .name("railgun-analytics-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(AnalyticsError::Thread)?;
        Ok((tx, thread))
    }

    /// The uploader thread: the uploader is created on it (it owns a runtime), and this
    /// returns once it runs or has failed to start.
    fn spawn_uploader(
        c: &AnalyticsConfig,
        store: &Arc<Store>,
        clock: &SharedClock,
    ) -> Result<(mpsc::Sender<UploaderMsg>, JoinHandle<()>), AnalyticsError> {
        let mut upload = c.upload.clone();
        upload.url = c.context.url.clone();
        upload.dry_run = c.dry_run;
        let (tx, rx) = mpsc::channel::<UploaderMsg>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (store, clock, interval) = (store.clone(), clock.clone(), c.upload_interval);
        let thread = std::thread::Builder::new()
            .name("railgun-analytics-upload".into())
            .spawn(move || match Uploader::new(&store, upload, clock) {
                Ok(u) => {
                    let _ = ready_tx.send(Ok(()));
                    run_uploader(u, rx, interval);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(AnalyticsError::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok((tx, thread)),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(AnalyticsError::Thread(std::io::Error::other(
                "the upload thread ended before it started",
            ))),
        }
    }

    /// Joins the consent fan-out of the store file: a change made by another component of
    /// this app (the health monitor) is applied here too.
    fn follow_consent_of_other_components(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let bus = consent::subscribe(
            &self.inner.store,
            &self.inner.app,
            Arc::new(move |c: Consent| {
                if let Some(inner) = weak.upgrade() {
                    if let Err(e) = (Analytics { inner }).apply_consent(c) {
                        tracing::warn!(error = %e, "consent change from another component not applied");
                    }
                }
            }),
        );
        let _ = self.inner.consent_bus.set(bus);
    }

    /// Acts on what the store holds from the last run: a denied user's leftovers go; a
    /// crashed session is closed from its last heartbeat (or forgotten when not recording).
    fn recover(&self, consent: Consent) -> Result<(), AnalyticsError> {
        if consent == Consent::Denied {
            self.purge(None)?;
        }
        let (store, app) = (&self.inner.store, &self.inner.app);
        if let Some(open) = session::open_session(store, app)? {
            if self.recording() {
                let end = session::crash_end(&open);
                self.log_debug(&end.name, end.properties.as_ref());
                self.hand_over(end);
            } else {
                session::forget_open_session(store, app)?;
            }
        }
        Ok(())
    }

    fn spawn_heartbeat(&self, every: Duration) -> Result<(), AnalyticsError> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let h = std::thread::Builder::new()
            .name("railgun-analytics-heartbeat".into())
            .spawn(move || loop {
                match stop_rx.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => match weak.upgrade() {
                        Some(inner) => Analytics { inner }.heartbeat(),
                        None => return,
                    },
                    _ => return,
                }
            })
            .map_err(AnalyticsError::Thread)?;
        *lock(&self.inner.heartbeat) = Some((stop_tx, h));
        Ok(())
    }

    fn recording(&self) -> bool {
        self.inner.sampled_in
            && !self.inner.closed.load(Ordering::Relaxed)
            && self.consent() == Consent::Granted
    }

    fn start_session(&self) {
        if self.inner.sessions
            && self.recording()
            && !self.inner.session_started.swap(true, Ordering::AcqRel)
        {
            self.inner.session.mark_started(self.inner.clock.now());
            let _ = self.record(names::SESSION_START, None, None);
        }
    }

    fn log_debug(&self, name: &str, props: Option<&Properties>) {
        if self.inner.debug {
            eprintln!("{}", debug_line(name, props));
        }
        tracing::debug!(event = name, "analytics event");
    }

    fn hand_over(&self, p: Pending) -> bool {
        let ok = queue::hand_over(&self.inner.writer, &self.inner.channel_drops, Box::new(p));
        if ok {
            self.inner.recorded.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Stamps and hands over an already validated event; false when not recorded.
    fn record(&self, name: &str, properties: Option<Properties>, duration: Option<f64>) -> bool {
        if !self.recording() {
            self.inner.not_recorded.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.log_debug(name, properties.as_ref());
        let s = &self.inner.session;
        self.hand_over(Pending {
            id: event::new_event_id(),
            name: name.to_string(),
            properties,
            timestamp: self.inner.clock.now(),
            duration,
            sequence: s.next_sequence(),
            session_id: s.id_arc(),
        })
    }

    fn prepare(name: &str, mut props: Properties) -> Result<Option<Properties>, AnalyticsError> {
        if name == names::ERROR {
            for v in props.values_mut() {
                if let PropertyValue::String(s) = v {
                    let clean: String = scrub(s).chars().take(event::MAX_STRING_LEN).collect();
                    *s = clean;
                }
            }
        }
        validate_properties(name, Some(&props))?;
        Ok((!props.is_empty()).then_some(props))
    }

    /// Records an event. Returns at once: no I/O, no waiting. Invalid names or properties
    /// are refused with the reason; without consent or outside the sample nothing is
    /// recorded (and that is not an error). The properties of an `error` event are scrubbed
    /// of emails, home-directory user names and IP addresses first.
    pub fn track(&self, name: &str, properties: Properties) -> Result<(), AnalyticsError> {
        let props = Self::prepare(name, properties)?;
        self.record(name, props, None);
        Ok(())
    }

    /// Records an `error` event with a scrubbed `message` (cut to 256 characters).
    pub fn track_error(
        &self,
        message: &str,
        mut properties: Properties,
    ) -> Result<(), AnalyticsError> {
        properties.insert("message".into(), PropertyValue::String(message.to_string()));
        self.track(names::ERROR, properties)
    }

    /// Records `screen_view {screen_name}`.
    pub fn screen(&self, name: &str) -> Result<(), AnalyticsError> {
        self.track(
            names::SCREEN_VIEW,
            Properties::from([("screen_name".to_string(), PropertyValue::from(name))]),
        )
    }

    /// Starts (or restarts) the timer `name`.
    pub fn start_timer(&self, name: &str) {
        lock(&self.inner.timers).insert(name.to_string(), self.inner.clock.now());
    }

    /// Stops the timer `name` and records the event `name` with its `duration` in
    /// milliseconds; `Ok(None)` when no such timer runs.
    pub fn stop_timer(
        &self,
        name: &str,
        properties: Properties,
    ) -> Result<Option<f64>, AnalyticsError> {
        let props = Self::prepare(name, properties)?;
        let Some(start) = lock(&self.inner.timers).remove(name) else {
            return Ok(None);
        };
        let ms = ((self.inner.clock.now() - start).num_milliseconds().max(0)) as f64;
        self.record(name, props, Some(ms));
        Ok(Some(ms))
    }

    /// Records a `session_heartbeat` now (the heartbeat thread calls this every interval).
    pub fn heartbeat(&self) {
        if self.inner.session_started.load(Ordering::Acquire)
            && !self.inner.session_ended.load(Ordering::Acquire)
        {
            self.record(names::SESSION_HEARTBEAT, None, None);
        }
    }

    /// The current consent.
    pub fn consent(&self) -> Consent {
        Consent::from_u8(self.inner.consent.load(Ordering::Acquire))
    }

    /// Changes and stores the consent. `denied` purges the queue (waiting for it) and queues
    /// a durable erasure request for this user; `granted` starts the session.
    ///
    /// The other components of this app on the same store file (the health monitor) follow
    /// at once: a `denied` here stops their recording and purges what they hold too.
    pub fn set_consent(&self, consent: Consent) -> Result<(), AnalyticsError> {
        consent::save(&self.inner.store, &self.inner.app, consent)?;
        self.apply_consent(consent)?;
        if let Some(bus) = self.inner.consent_bus.get() {
            consent::announce(bus, consent);
        }
        Ok(())
    }

    /// Acts on a consent already stored (by this client or another component).
    fn apply_consent(&self, consent: Consent) -> Result<(), AnalyticsError> {
        let old = Consent::from_u8(self.inner.consent.swap(consent.to_u8(), Ordering::AcqRel));
        match consent {
            Consent::Denied => {
                let erase = (old != Consent::Denied).then(|| self.inner.user_id.clone());
                self.purge(erase)?;
                let _ = self.inner.uploader.send(UploaderMsg::Nudge);
            }
            Consent::Granted => self.start_session(),
            Consent::Unknown => {}
        }
        Ok(())
    }

    fn purge(&self, erase_user: Option<String>) -> Result<u64, AnalyticsError> {
        let (ack, rx) = mpsc::channel();
        self.inner
            .writer
            .send(WriterMsg::Purge {
                erase_user,
                at: self.inner.clock.now(),
                ack,
            })
            .map_err(|_| AnalyticsError::Closed)?;
        let n = rx
            .recv()
            .map_err(|_| AnalyticsError::Closed)?
            .map_err(AnalyticsError::Write)?;
        Ok(n)
    }

    /// Waits until every event recorded before this call is committed to the store.
    pub fn persist(&self) -> Result<(), AnalyticsError> {
        let (ack, rx) = mpsc::channel();
        self.inner
            .writer
            .send(WriterMsg::Flush(ack))
            .map_err(|_| AnalyticsError::Closed)?;
        rx.recv()
            .map_err(|_| AnalyticsError::Closed)?
            .map_err(AnalyticsError::Write)
    }

    fn upload(&self, deadline: Option<Instant>) -> Result<FlushReport, AnalyticsError> {
        let (ack, rx) = mpsc::channel();
        self.inner
            .uploader
            .send(UploaderMsg::Upload { deadline, ack })
            .map_err(|_| AnalyticsError::Closed)?;
        rx.recv()
            .map_err(|_| AnalyticsError::Closed)?
            .map_err(AnalyticsError::Upload)
    }

    /// Makes everything recorded so far durable, then uploads what the server will take now
    /// (unless a backoff is running). The report says what was sent and what is held.
    pub fn flush(&self) -> Result<FlushReport, AnalyticsError> {
        self.persist()?;
        self.upload(None)
    }

    /// Ends the session (`session_end` with its duration), makes everything durable, uploads
    /// within the shutdown deadline and stops the threads. Later calls do nothing.
    pub fn shutdown(&self) -> Result<FlushReport, AnalyticsError> {
        // Stop the heartbeat first, so no heartbeat can follow the session's end.
        let heartbeat = lock(&self.inner.heartbeat).take();
        if let Some((stop, h)) = heartbeat {
            let _ = stop.send(());
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        self.end_session();
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(FlushReport::default());
        }
        let result = self
            .persist()
            .and_then(|()| self.upload(Some(Instant::now() + self.inner.shutdown_deadline)));
        let (ack, rx) = mpsc::channel();
        if self.inner.writer.send(WriterMsg::Stop(ack)).is_ok() {
            let _ = rx.recv();
        }
        let _ = self.inner.uploader.send(UploaderMsg::Stop);
        let threads: Vec<_> = lock(&self.inner.threads).drain(..).collect();
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        result
    }

    fn end_session(&self) {
        if self.inner.session_started.load(Ordering::Acquire)
            && !self.inner.session_ended.swap(true, Ordering::AcqRel)
        {
            let now = self.inner.clock.now();
            let d = self.inner.session.duration_ms(now);
            self.record(names::SESSION_END, None, Some(d));
        }
    }

    /// Counters: this handle's recorded/not recorded, and the store's queued, sent, dropped
    /// and rejected totals.
    pub fn stats(&self) -> Result<AnalyticsStats, AnalyticsError> {
        let (queued, sent, dropped, rejected) = self.inner.store.with_conn(|c| {
            Ok((
                queue::queued(c)?,
                queue::counter(c, queue::SENT_TOTAL)?,
                queue::counter(c, queue::DROPPED_TOTAL)?,
                queue::counter(c, queue::REJECTED_TOTAL)?,
            ))
        })?;
        Ok(AnalyticsStats {
            recorded: self.inner.recorded.load(Ordering::Relaxed),
            not_recorded: self.inner.not_recorded.load(Ordering::Relaxed),
            queued,
            sent,
            dropped: dropped + self.inner.channel_drops.load(Ordering::Relaxed),
            rejected,
        })
    }

    /// The user id events carry.
    pub fn user_id(&self) -> &str {
        &self.inner.user_id
    }

    /// The sampling rate sent with each batch.
    pub fn sample_rate(&self) -> f64 {
        self.inner.sample_rate
    }

    /// Whether this user is inside the sample.
    pub fn is_sampled_in(&self) -> bool {
        self.inner.sampled_in
    }

    /// The current session id.
    pub fn session_id(&self) -> &str {
        self.inner.session.id()
    }

    /// The client store.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }
}

impl EventSink for Analytics {
    fn track_event(&self, name: &str, properties: Properties) {
        if let Err(e) = self.track(name, properties) {
            tracing::debug!(event = name, error = %e, "analytics event refused");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone without shutdown(): commit what is queued so nothing
        // recorded is lost. The session stays open and is closed at the next start.
        if !self.closed.swap(true, Ordering::AcqRel) {
            let (ack, rx) = mpsc::channel();
            if self.writer.send(WriterMsg::Stop(ack)).is_ok() {
                let _ = rx.recv();
            }
            let _ = self.uploader.send(UploaderMsg::Stop);
        }
    }
}

fn run_uploader(mut u: Uploader, rx: mpsc::Receiver<UploaderMsg>, interval: Option<Duration>) {
    let mut next_tick = interval.map(|i| Instant::now() + i);
    loop {
        let msg = match next_tick {
            Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let periodic = match msg {
            Ok(UploaderMsg::Upload { deadline, ack }) => {
                let _ = ack.send(u.upload(deadline));
                false
            }
            Ok(UploaderMsg::Nudge) => true,
            Err(RecvTimeoutError::Timeout) => {
                next_tick = interval.map(|i| Instant::now() + i);
                true
            }
            Ok(UploaderMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
        };
        if periodic {
            if let Err(e) = u.upload(None) {
                tracing::warn!(error = %e, "analytics upload failed");
            }
        }
    }
}

static GLOBAL: OnceLock<Analytics> = OnceLock::new();

/// Creates the process-wide client (the seed's `initAnalytics`). A second call returns
/// [`AnalyticsError::AlreadyInitialized`].
pub fn init_analytics(config: AnalyticsConfig) -> Result<&'static Analytics, AnalyticsError> {
    if GLOBAL.get().is_some() {
        return Err(AnalyticsError::AlreadyInitialized);
    }
    let a = Analytics::from_config(config)?;
    match GLOBAL.set(a) {
        Ok(()) => GLOBAL.get().ok_or(AnalyticsError::AlreadyInitialized),
        Err(extra) => {
            let _ = extra.shutdown();
            Err(AnalyticsError::AlreadyInitialized)
        }
    }
}

/// The process-wide client (the seed's `getAnalytics()`), once initialised.
pub fn analytics() -> Option<&'static Analytics> {
    GLOBAL.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_properties_are_scrubbed_before_validation() {
        let long = format!("{} bob@example.com", "x".repeat(300));
        let p = Analytics::prepare(
            names::ERROR,
            Properties::from([("message".into(), PropertyValue::String(long))]),
        )
        .expect("prepared")
        .expect("some");
        match &p["message"] {
            PropertyValue::String(s) => {
                assert_eq!(s.chars().count(), event::MAX_STRING_LEN);
                assert!(!s.contains('@'));
            }
            other => panic!("{other:?}"),
        }
        assert!(Analytics::prepare("Bad Name", Properties::new()).is_err());
    }
}
