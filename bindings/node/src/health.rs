//! `Health`: the core's rollout-health monitor for JS.
//!
//! Owns the option conversion and the Promises of `flush`/`shutdown` (the core's async
//! forms, awaited on the addon's runtime). The constructor does what an app does at start:
//! `on_startup()` (counts an unclean previous shutdown or a boot-guard revert as a crash)
//! and the periodic report (hourly, ±10 %). Counting is the core's; nothing here decides.

use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use railgun_core::health::{HealthError, HealthMonitor, StartupHealth, DEFAULT_REPORT_INTERVAL};
use railgun_core::update::BootGuard;

use crate::analytics::parse_consent;
use crate::error::{
    from_js, spawn_promise, Code, JsFailure, CLOSED, INTERNAL, INVALID_ARGUMENT, IO,
};

/// Options of `new Health(...)`.
#[napi(object)]
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthOptions {
    /// Server base URL (reports go to `{url}/analytics/health`).
    pub url: String,
    /// App name.
    pub app: String,
    /// The running version (semver).
    pub version: String,
    /// The update channel.
    pub channel: String,
    /// The app's state folder (the client store `railgun.db`, shared with analytics).
    pub state_dir: String,
    /// Consent until the user decides (the stored decision, shared with analytics, wins).
    #[napi(ts_type = "'granted' | 'denied' | 'unknown'")]
    pub consent: Option<String>,
    /// The updater's install root: a boot-guard revert found there counts as a crash and a
    /// boot revert of the version reverted from.
    pub install_root: Option<String>,
    /// Time between reports (default one hour, ±10 % jitter).
    pub report_interval_ms: Option<f64>,
}

/// What `flush()` did.
#[napi(object)]
pub struct HealthFlushResult {
    /// Reports the server acknowledged in this run.
    pub sent: f64,
    /// Reports still waiting for the server.
    pub pending: f64,
}

/// What the start found.
#[napi(object)]
pub struct HealthStartup {
    /// The version whose previous run ended without a clean shutdown (counted as a crash).
    pub unclean_shutdown: Option<String>,
    /// The version the boot guard reverted from (counted as a crash and a boot revert).
    pub reverted_from: Option<String>,
    /// Whether anything was recorded (consent `granted`).
    pub recorded: bool,
}

impl From<HealthError> for JsFailure {
    fn from(e: HealthError) -> Self {
        let code = match &e {
            HealthError::Config { .. } | HealthError::Report(_) | HealthError::BadUrl { .. } => {
                INVALID_ARGUMENT
            }
            HealthError::Store(_) | HealthError::BootGuard(_) => IO,
            HealthError::Thread(_) => INTERNAL,
            HealthError::Closed => CLOSED,
        };
        JsFailure::new(code, e)
    }
}

/// Per-version sessions, errors, crashes and boot reverts, reported for rollout health.
#[napi]
pub struct Health {
    core: HealthMonitor,
    startup: StartupHealth,
}

#[napi]
impl Health {
    /// Opens the client store in `stateDir`, counts what the previous run left (unclean
    /// shutdown, boot revert), starts this run's session and the periodic report.
    #[napi(constructor, ts_args_type = "opts: HealthOptions")]
    pub fn new(env: &Env, opts: Unknown<'_>) -> Result<Self, Code> {
        let opts: HealthOptions = from_js(env, "Health options", opts)?;
        let ctx = crate::client_context(
            &opts.app,
            &opts.version,
            Some(&opts.channel),
            &opts.url,
            &opts.state_dir,
        )?;
        let interval = match opts.report_interval_ms {
            None => DEFAULT_REPORT_INTERVAL,
            Some(ms) if ms.is_finite() && ms >= 1000.0 => Duration::from_millis(ms as u64),
            Some(ms) => {
                return Err(JsFailure::invalid(format!(
                    "reportIntervalMs {ms} must be at least 1000"
                ))
                .into())
            }
        };
        let mut b = HealthMonitor::builder().context(ctx);
        if let Some(c) = &opts.consent {
            b = b.default_consent(parse_consent(c)?);
        }
        if let Some(root) = &opts.install_root {
            b = b.boot_guard(BootGuard::new(root));
        }
        let core = b.build().map_err(JsFailure::from)?;
        let startup = core.on_startup().map_err(JsFailure::from)?;
        core.start_periodic(interval).map_err(JsFailure::from)?;
        Ok(Self { core, startup })
    }

    /// What the start found and counted.
    #[napi]
    pub fn startup(&self) -> HealthStartup {
        HealthStartup {
            unclean_shutdown: self.startup.unclean_shutdown.clone(),
            reverted_from: self
                .startup
                .boot_revert
                .as_ref()
                .map(|r| r.from.to_string()),
            recorded: self.startup.recorded,
        }
    }

    /// Counts one uncaught error for the running version (never blocks).
    #[napi]
    pub fn record_error(&self) {
        self.core.record_error();
    }

    /// Counts one crash the app detected itself (a renderer or child process; never blocks).
    #[napi]
    pub fn record_crash(&self) {
        self.core.record_crash();
    }

    /// Changes and stores the consent (shared with analytics); `denied` purges unsent reports.
    #[napi(ts_args_type = "consent: 'granted' | 'denied' | 'unknown'")]
    pub fn set_consent(&self, consent: String) -> Result<(), Code> {
        let c = parse_consent(&consent)?;
        self.core
            .set_consent(c)
            .map_err(|e| JsFailure::from(e).into())
    }

    /// Commits the counts, closes the open periods into reports and sends what the server
    /// takes now.
    #[napi(ts_return_type = "Promise<HealthFlushResult>")]
    pub fn flush<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, HealthFlushResult>> {
        let core = self.core.clone();
        spawn_promise(
            env,
            async move { core.flush_async().await.map_err(JsFailure::from) },
            |_, r| {
                Ok(HealthFlushResult {
                    sent: r.sent as f64,
                    pending: r.pending as f64,
                })
            },
        )
    }

    /// Clean shutdown: the next start counts no crash; sends within the shutdown deadline.
    /// Later calls do nothing.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        spawn_promise(
            env,
            async move {
                match core.shutdown_async().await {
                    Ok(_) | Err(HealthError::Closed) => Ok(()),
                    Err(e) => Err(JsFailure::from(e)),
                }
            },
            |_, v| Ok(v),
        )
    }
}
