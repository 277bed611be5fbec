//! The health monitor's background thread.
//!
//! Owns the thread behind [`HealthMonitor`](super::HealthMonitor): its SQLite connection,
//! its single-threaded tokio runtime and HTTP client, the period timer (jittered), the
//! backoff, and the request protocol ([`Msg`]) the handles speak to it. Every store write of
//! the monitor happens here, one at a time; messages that need no network (persist, startup,
//! consent) are handled even while a report is in flight, and a shutdown abandons a slow
//! background send rather than wait for it.
//!
//! It refuses to decide what counts (the ledger does) and never reads the clock except
//! through the injected [`Clock`](crate::clock::Clock).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedReceiver;
use url::Url;
use uuid::Uuid;

use super::ledger::{self, Counts, ReportContext, RunningMarker};
use super::monitor::{HealthError, HealthFlushReport, StartupHealth};
use super::{HealthResponse, SessionStatus};
use crate::analytics::consent::Consent;
use crate::clock::SharedClock;
use crate::net::{self, Answer, Backoff, Rng, SplitMix64};
use crate::store::{Store, StoreError};
use crate::update::BootGuard;

/// Shortest wait before an automatic retry after a failure.
const MIN_RETRY_WAIT: Duration = Duration::from_secs(1);

/// Why the thread could not start (its runtime or its HTTP client).
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Reply channel of one request to the background thread.
pub(super) type Ack<T> = Box<dyn FnOnce(Result<T, HealthError>) + Send>;

/// Requests to the background thread.
pub(super) enum Msg {
    /// Commit the in-memory counts (sent by `record_*`; no reply).
    Nudge,
    Persist(Ack<()>),
    Startup(Ack<StartupHealth>),
    Consent(Consent, Ack<()>),
    Periodic(Duration),
    Flush {
        deadline: Option<Instant>,
        ack: Ack<HealthFlushReport>,
    },
    Shutdown {
        deadline: Instant,
        ack: Ack<HealthFlushReport>,
    },
}

/// State shared by the handles and the background thread.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) consent: AtomicU8,
    pub(super) closed: AtomicBool,
    pub(super) errors: AtomicU64,
    pub(super) crashes: AtomicU64,
    pub(super) nudged: AtomicBool,
}

impl Shared {
    pub(super) fn recording(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
            && Consent::from_u8(self.consent.load(Ordering::Acquire)) == Consent::Granted
    }
}

/// Everything the thread starts with.
pub(super) struct Setup {
    pub db: HealthDb,
    pub ctx: ReportContext,
    pub version: String,
    pub channel: String,
    pub shared: Arc<Shared>,
    pub clock: SharedClock,
    pub boot_guard: Option<BootGuard>,
    pub url: Option<Url>,
    pub user_agent: String,
    pub request_timeout: Duration,
    pub backoff: Backoff,
    pub seed: u64,
    pub rx: UnboundedReceiver<Msg>,
    /// Told once the runtime and the HTTP client are built (or why not).
    pub ready: mpsc::Sender<Result<(), BoxError>>,
}

/// Starts the thread; it runs until shutdown or until every handle is dropped.
pub(super) fn spawn(s: Setup) -> Result<JoinHandle<()>, HealthError> {
    std::thread::Builder::new()
        .name("railgun-health".into())
        .spawn(move || {
            let built = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BoxError::from)
                .and_then(|rt| {
                    net::client(
                        &s.user_agent,
                        s.request_timeout.min(Duration::from_secs(10)),
                        Some(s.request_timeout),
                    )
                    .map(|http| (rt, http))
                    .map_err(BoxError::from)
                });
            let (rt, http) = match built {
                Ok(x) => {
                    let _ = s.ready.send(Ok(()));
                    x
                }
                Err(e) => {
                    let _ = s.ready.send(Err(e));
                    return;
                }
            };
            let mut w = Worker {
                db: s.db,
                ctx: s.ctx,
                version: s.version,
                channel: s.channel,
                run: Uuid::now_v7(),
                started: false,
                session_errored: false,
                session_crashed: false,
                period_start: s.clock.now(),
                shared: s.shared,
                clock: s.clock,
                boot_guard: s.boot_guard,
                url: s.url,
                http,
                request_timeout: s.request_timeout,
                backoff: s.backoff,
                next_attempt: None,
                retry_at: None,
                interval: None,
                next_tick: None,
                jitter: SplitMix64::new(net::mix64(s.seed)),
                in_shutdown: false,
                deferred: VecDeque::new(),
            };
            rt.block_on(w.run(s.rx));
        })
        .map_err(|e| HealthError::Thread(e.into()))
}

/// A database handle: an own connection (file stores) or the store's shared one (in-memory
/// stores, where a second connection would open a different database).
pub(super) enum HealthDb {
    Own(rusqlite::Connection, PathBuf),
    Shared(Arc<Store>),
}

impl HealthDb {
    pub(super) fn open(store: &Arc<Store>) -> Result<Self, StoreError> {
        if store.path().as_os_str() == ":memory:" {
            Ok(HealthDb::Shared(store.clone()))
        } else {
            Ok(HealthDb::Own(
                store.open_connection()?,
                store.path().to_path_buf(),
            ))
        }
    }

    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        match self {
            HealthDb::Own(conn, path) => f(conn).map_err(|source| StoreError::Sqlite {
                path: path.display().to_string(),
                source,
            }),
            HealthDb::Shared(store) => store.with_conn(f),
        }
    }
}

struct Worker {
    db: HealthDb,
    ctx: ReportContext,
    version: String,
    channel: String,
    run: Uuid,
    started: bool,
    /// A handled error / a crash was recorded in this run's session (the marker says so
    /// once the counts are committed).
    session_errored: bool,
    session_crashed: bool,
    /// Start of the current version's open period.
    period_start: DateTime<Utc>,
    shared: Arc<Shared>,
    clock: SharedClock,
    boot_guard: Option<BootGuard>,
    url: Option<Url>,
    http: reqwest::Client,
    request_timeout: Duration,
    backoff: Backoff,
    /// No attempt before this (injected clock).
    next_attempt: Option<DateTime<Utc>>,
    /// When the thread wakes to retry (real time).
    retry_at: Option<Instant>,
    interval: Option<Duration>,
    next_tick: Option<Instant>,
    /// Spreads the periodic reports of installs started together.
    jitter: SplitMix64,
    in_shutdown: bool,
    deferred: VecDeque<Msg>,
}

impl Worker {
    async fn run(&mut self, mut rx: UnboundedReceiver<Msg>) {
        loop {
            let msg = match self.deferred.pop_front() {
                Some(m) => Some(m),
                None => {
                    let wake = [self.next_tick, self.retry_at].into_iter().flatten().min();
                    match wake {
                        None => rx.recv().await,
                        Some(at) => {
                            let woke = tokio::select! {
                                m = rx.recv() => Some(m),
                                () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => None,
                            };
                            match woke {
                                Some(m) => m,
                                None => {
                                    self.on_timer(&mut rx).await;
                                    continue;
                                }
                            }
                        }
                    }
                }
            };
            let Some(msg) = msg else {
                // Every handle is gone without shutdown: keep what was counted; the marker
                // stays, so the next start counts this as a crash.
                if let Err(e) = self.persist() {
                    tracing::warn!(error = %e, "health counts could not be saved");
                }
                return;
            };
            match msg {
                Msg::Flush { deadline, ack } => {
                    let r = self.flush(&mut rx, deadline).await;
                    ack(r);
                }
                Msg::Shutdown { deadline, ack } => {
                    let r = self.shutdown(&mut rx, deadline).await;
                    self.shared.closed.store(true, Ordering::Release);
                    ack(r);
                    // Requests that raced the shutdown get their answer.
                    rx.close();
                    while let Ok(m) = rx.try_recv() {
                        answer_closed(m);
                    }
                    for m in self.deferred.drain(..) {
                        answer_closed(m);
                    }
                    return;
                }
                other => self.handle_local(other),
            }
        }
    }

    /// Handles a message that needs no network; defers the others.
    fn handle_local(&mut self, msg: Msg) {
        match msg {
            Msg::Nudge => {
                if let Err(e) = self.persist() {
                    tracing::warn!(error = %e, "health counts could not be saved");
                }
            }
            Msg::Persist(ack) => ack(self.persist()),
            Msg::Startup(ack) => {
                let r = self.startup();
                if matches!(r, Ok(StartupHealth { recorded: true, .. })) {
                    self.send_soon();
                }
                ack(r);
            }
            Msg::Consent(c, ack) => ack(self.consent_changed(c)),
            Msg::Periodic(every) => {
                self.interval = Some(every);
                self.schedule_tick();
            }
            m @ (Msg::Flush { .. } | Msg::Shutdown { .. }) => self.deferred.push_back(m),
        }
    }

    /// Sends the stored reports as soon as the thread is free (the report at start).
    fn send_soon(&mut self) {
        self.retry_at = Some(Instant::now());
    }

    fn schedule_tick(&mut self) {
        if let Some(every) = self.interval {
            let wait = net::jitter_interval(every, self.jitter.unit());
            self.next_tick = Some(Instant::now() + wait);
        }
    }

    async fn on_timer(&mut self, rx: &mut UnboundedReceiver<Msg>) {
        let now = Instant::now();
        if self.next_tick.is_some_and(|t| t <= now) {
            self.schedule_tick();
            if let Err(e) = self.flush(rx, None).await {
                tracing::warn!(error = %e, "periodic health report failed");
            }
        } else if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            if let Err(e) = self.send(rx, None).await {
                tracing::warn!(error = %e, "health report retry failed");
            }
        }
    }

    fn persist(&mut self) -> Result<(), HealthError> {
        self.shared.nudged.store(false, Ordering::Release);
        let counts = Counts {
            errors: self.shared.errors.swap(0, Ordering::AcqRel),
            crashes: self.shared.crashes.swap(0, Ordering::AcqRel),
            ..Counts::default()
        };
        if counts.is_zero() {
            return Ok(());
        }
        let (app, version, channel, start, run) = (
            self.ctx.app.clone(),
            self.version.clone(),
            self.channel.clone(),
            self.period_start,
            self.run,
        );
        let errored = self.session_errored || counts.errors > 0;
        let crashed = self.session_crashed || counts.crashes > 0;
        let flag = (errored, crashed) != (self.session_errored, self.session_crashed);
        let r = self.db.with(|c| {
            let tx = c.transaction()?;
            ledger::add(&tx, &app, &version, &channel, counts, start)?;
            if flag {
                // The session's status so far, for the next start to find if this run
                // never ends.
                if let Some(mut m) = ledger::marker(&tx, &app)?.filter(|m| m.run == run) {
                    m.errored |= errored;
                    m.crashed |= crashed;
                    ledger::set_marker(&tx, &app, &m)?;
                }
            }
            tx.commit()
        });
        if r.is_ok() {
            self.session_errored = errored;
            self.session_crashed = crashed;
        } else {
            // Keep them for the next attempt.
            self.shared
                .errors
                .fetch_add(counts.errors, Ordering::AcqRel);
            self.shared
                .crashes
                .fetch_add(counts.crashes, Ordering::AcqRel);
        }
        Ok(r?)
    }

    fn marker(&self, now: DateTime<Utc>) -> RunningMarker {
        RunningMarker {
            run: self.run,
            version: self.version.clone(),
            channel: self.channel.clone(),
            started_at: now,
            errored: self.session_errored,
            crashed: self.session_crashed,
        }
    }

    fn startup(&mut self) -> Result<StartupHealth, HealthError> {
        if self.started {
            return Ok(StartupHealth::default());
        }
        self.started = true;
        let app = self.ctx.app.clone();
        if !self.shared.recording() {
            // Nothing is recorded without consent: a revert is consumed, a stale marker goes.
            if let Some(g) = &self.boot_guard {
                g.take_reverted()?;
            }
            self.db.with(|c| ledger::clear_marker(c, &app))?;
            return Ok(StartupHealth::default());
        }
        let revert = match &self.boot_guard {
            Some(g) => g.take_reverted()?,
            None => None,
        };
        let now = self.clock.now();
        self.period_start = now;
        let (version, channel, ctx, marker) = (
            self.version.clone(),
            self.channel.clone(),
            self.ctx.clone(),
            self.marker(now),
        );
        let unclean = self.db.with(|c| {
            let tx = c.transaction()?;
            let old = ledger::marker(&tx, &app)?.filter(|m| m.run != marker.run);
            // The boot guard reverted away from the version the unended run was running:
            // that session crashed (one session, not an abnormal one and a crashed one).
            let reverted_run = |m: &RunningMarker| {
                revert
                    .as_ref()
                    .is_some_and(|r| r.from.to_string() == m.version)
            };
            let mut previous = None;
            if let Some(m) = &old {
                let status = if reverted_run(m) {
                    SessionStatus::Crashed
                } else {
                    m.unclean_end()
                };
                previous = Some(status);
                let crash = Counts {
                    crashes: 1,
                    ..Counts::session_end(status)
                };
                ledger::add(
                    &tx,
                    &app,
                    &m.version,
                    &m.channel,
                    crash,
                    m.started_at.min(now),
                )?;
            }
            if let Some(r) = &revert {
                let ended = if old.as_ref().is_some_and(reverted_run) {
                    Counts::default()
                } else {
                    Counts::session_end(SessionStatus::Crashed)
                };
                let c = Counts {
                    crashes: 1,
                    boot_reverts: 1,
                    ..ended
                };
                ledger::add(&tx, &app, &r.from.to_string(), &channel, c, r.at.min(now))?;
            }
            let session = Counts {
                sessions: 1,
                ..Counts::default()
            };
            ledger::add(&tx, &app, &version, &channel, session, now)?;
            ledger::set_marker(&tx, &app, &marker)?;
            ledger::close_periods(&tx, &ctx, now)?;
            tx.commit()?;
            Ok((old.map(|m| m.version), previous))
        })?;
        let (unclean, previous) = unclean;
        if let (Some(v), Some(s)) = (&unclean, previous) {
            tracing::info!(version = %v, session = s.as_str(), "previous run ended without a clean shutdown: one crash counted");
        }
        Ok(StartupHealth {
            unclean_shutdown: unclean,
            previous_session: previous,
            boot_revert: revert,
            recorded: true,
        })
    }

    fn consent_changed(&mut self, consent: Consent) -> Result<(), HealthError> {
        let app = self.ctx.app.clone();
        match consent {
            Consent::Denied => {
                self.shared.errors.store(0, Ordering::Release);
                self.shared.crashes.store(0, Ordering::Release);
                let n = self.db.with(|c| ledger::purge(c, &app))?;
                tracing::debug!(reports = n, "health data purged after consent was denied");
            }
            Consent::Unknown => {
                self.shared.errors.store(0, Ordering::Release);
                self.shared.crashes.store(0, Ordering::Release);
                self.db.with(|c| ledger::clear_marker(c, &app))?;
            }
            Consent::Granted => {
                // A run that started without consent begins to count from now.
                let now = self.clock.now();
                let has_marker = self.db.with(|c| ledger::marker(c, &app))?.is_some();
                if self.started && !has_marker {
                    self.period_start = now;
                    let (version, channel, marker) =
                        (self.version.clone(), self.channel.clone(), self.marker(now));
                    self.db.with(|c| {
                        let tx = c.transaction()?;
                        let s = Counts {
                            sessions: 1,
                            ..Counts::default()
                        };
                        ledger::add(&tx, &app, &version, &channel, s, now)?;
                        ledger::set_marker(&tx, &app, &marker)?;
                        tx.commit()
                    })?;
                }
                self.send_soon();
            }
        }
        Ok(())
    }

    /// Closes the open periods into reports (after committing the counts).
    fn close(&mut self, clear_marker: bool) -> Result<(), HealthError> {
        self.persist()?;
        if !self.shared.recording() && !clear_marker {
            return Ok(());
        }
        let now = self.clock.now();
        let (ctx, run, version, channel, start) = (
            self.ctx.clone(),
            self.run,
            self.version.clone(),
            self.channel.clone(),
            self.period_start,
        );
        let recording = self.shared.recording();
        self.db.with(|c| {
            let tx = c.transaction()?;
            if clear_marker {
                // The clean end of this run's session, with the status it reached.
                let ours = ledger::marker(&tx, &ctx.app)?.filter(|m| m.run == run);
                if let Some(m) = ours.filter(|_| recording) {
                    let end = Counts::session_end(m.clean_end());
                    ledger::add(&tx, &ctx.app, &version, &channel, end, start)?;
                }
            }
            ledger::close_periods(&tx, &ctx, now)?;
            if clear_marker {
                ledger::clear_marker(&tx, &ctx.app)?;
            }
            tx.commit()
        })?;
        self.period_start = now;
        Ok(())
    }

    async fn flush(
        &mut self,
        rx: &mut UnboundedReceiver<Msg>,
        deadline: Option<Instant>,
    ) -> Result<HealthFlushReport, HealthError> {
        self.close(false)?;
        self.send(rx, deadline).await
    }

    async fn shutdown(
        &mut self,
        rx: &mut UnboundedReceiver<Msg>,
        deadline: Instant,
    ) -> Result<HealthFlushReport, HealthError> {
        self.in_shutdown = true;
        if self.shared.recording() {
            self.close(true)?;
        } else {
            // Without consent nothing is closed or sent, but the run still ended cleanly.
            let app = self.ctx.app.clone();
            self.db.with(|c| ledger::clear_marker(c, &app))?;
        }
        let r = self.send(rx, Some(deadline)).await;
        self.shared.closed.store(true, Ordering::Release);
        r
    }

    fn postpone(
        &mut self,
        reason: String,
        retry_after: Option<Duration>,
        r: &mut HealthFlushReport,
    ) {
        let delay = self.backoff.fail(retry_after);
        let at = self.clock.now()
            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
        tracing::debug!(%reason, retry_at = %at, "health report postponed");
        self.next_attempt = Some(at);
        self.retry_at = Some(Instant::now() + delay.max(MIN_RETRY_WAIT));
        r.last_error = Some(reason);
    }

    /// Sends the stored reports, oldest first, until none is left, a failure postpones the
    /// rest or `deadline` passes. Local messages arriving meanwhile are handled at once.
    async fn send(
        &mut self,
        rx: &mut UnboundedReceiver<Msg>,
        deadline: Option<Instant>,
    ) -> Result<HealthFlushReport, HealthError> {
        let mut report = HealthFlushReport::default();
        let app = self.ctx.app.clone();
        let gated = self.next_attempt.filter(|t| self.clock.now() < *t);
        if let Some(t) = gated {
            // Still backing off: wake again when it ends.
            let left = (t - self.clock.now()).to_std().unwrap_or_default();
            self.retry_at = Some(Instant::now() + left.max(MIN_RETRY_WAIT));
        }
        if let (Some(url), None) = (self.url.clone(), gated) {
            self.next_attempt = None;
            self.retry_at = None;
            let mut after = 0;
            loop {
                if Consent::from_u8(self.shared.consent.load(Ordering::Acquire)) != Consent::Granted
                {
                    break;
                }
                let limit = match deadline {
                    None => self.request_timeout,
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            report.last_error = Some("deadline reached".into());
                            break;
                        }
                        left.min(self.request_timeout)
                    }
                };
                let Some(next) = self.db.with(|c| ledger::next_report(c, &app, after))? else {
                    break;
                };
                after = next.seq;
                let http = self.http.clone();
                let fut = net::post_json::<HealthResponse>(&http, url.clone(), next.body, limit);
                tokio::pin!(fut);
                let answer = loop {
                    let event = tokio::select! {
                        a = &mut fut => Ok(a),
                        Some(m) = rx.recv() => Err(m),
                    };
                    match event {
                        Ok(a) => break Some(a),
                        Err(m) => {
                            // A shutdown must not wait for a slow background send: the
                            // request is abandoned (the report keeps its id and is re-sent).
                            let stop = matches!(m, Msg::Shutdown { .. }) && !self.in_shutdown;
                            self.handle_local(m);
                            if stop {
                                break None;
                            }
                        }
                    }
                };
                let Some(answer) = answer else {
                    report.last_error = Some("interrupted by shutdown".into());
                    break;
                };
                match answer {
                    Answer::Acked(resp) => {
                        self.backoff.reset();
                        self.db.with(|c| ledger::acknowledge(c, next.seq))?;
                        report.sent += 1;
                        report.duplicates += u64::from(resp.duplicate);
                    }
                    Answer::Refused { status, .. } => {
                        self.db.with(|c| ledger::drop_report(c, &app, next.seq))?;
                        report.dropped += 1;
                        let total = self.db.with(|c| ledger::dropped(c, &app))?;
                        tracing::warn!(
                            status,
                            report = %next.id,
                            dropped_total = total,
                            "health report refused by the server; dropped"
                        );
                    }
                    Answer::Retry { cause, retry_after } => {
                        self.postpone(cause.to_string(), retry_after, &mut report);
                        break;
                    }
                }
            }
        }
        report.next_attempt_at = self.next_attempt;
        report.pending = self.db.with(|c| ledger::pending_count(c, &app))?;
        Ok(report)
    }
}

fn answer_closed(m: Msg) {
    match m {
        Msg::Nudge | Msg::Periodic(_) => {}
        Msg::Persist(a) => a(Err(HealthError::Closed)),
        Msg::Startup(a) => a(Err(HealthError::Closed)),
        Msg::Consent(_, a) => a(Err(HealthError::Closed)),
        Msg::Flush { ack, .. } | Msg::Shutdown { ack, .. } => ack(Err(HealthError::Closed)),
    }
}
