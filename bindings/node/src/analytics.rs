//! `Analytics`: the core's consent-gated, sampled, durable event client for JS.
//!
//! Owns the conversion of options and properties. `track`, `screen` and the timers are
//! synchronous and never wait (the core hands events to its writer thread); `flush` and
//! `shutdown` wait on the core's threads, so they run on the tokio blocking pool and return
//! Promises. It refuses nothing of its own: names, properties and consent are the core's.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use railgun_core::analytics::{
    Analytics as CoreAnalytics, Consent, FlushReport, Properties, PropertyValue,
};

use crate::error::{from_js, spawn_promise, Code, JsFailure, INTERNAL};

/// Options of `new Analytics(...)`.
#[napi(object)]
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalyticsOptions {
    /// Server base URL (events go to `{url}/analytics/events`).
    pub url: String,
    /// App name.
    pub app: String,
    /// App version on every event.
    pub app_version: String,
    /// Update channel on every event (default `stable`).
    pub channel: Option<String>,
    /// The app's state folder (the client store `railgun.db` with the durable queue).
    pub state_dir: String,
    /// Sampling rate 0–1 (default: 1 in development, 0.1 in production builds of the core).
    pub sample_rate: Option<f64>,
    /// Consent until the user decides (the stored decision wins; default `unknown`).
    #[napi(ts_type = "'granted' | 'denied' | 'unknown'")]
    pub consent: Option<String>,
    /// Log every event as `[Analytics] name {props}` on stderr.
    pub debug: Option<bool>,
    /// Send nothing (events stay queued).
    pub dry_run: Option<bool>,
    /// User id (default: the install id, never the raw machine id).
    pub user_id: Option<String>,
}

/// What `flush()` did.
#[napi(object)]
pub struct FlushResult {
    /// Events the server acknowledged in this run.
    pub sent: f64,
    /// Events still queued.
    pub pending: f64,
}

pub(crate) fn parse_consent(c: &str) -> std::result::Result<Consent, JsFailure> {
    match c {
        "granted" => Ok(Consent::Granted),
        "denied" => Ok(Consent::Denied),
        "unknown" => Ok(Consent::Unknown),
        other => Err(JsFailure::invalid(format!(
            "consent {other:?} must be granted, denied or unknown"
        ))),
    }
}

/// A JS `Record<string, string | number | boolean>` as core properties. On the `track()` hot
/// path: one call of the engine's `JSON.stringify` and one parse cost less than walking the
/// object through Node-API property by property.
fn properties(
    env: &Env,
    p: Option<Unknown<'_>>,
) -> std::result::Result<Properties, JsFailure> {
    let Some(p) = p else {
        return Ok(Properties::new());
    };
    let bad = |e: napi::Error| JsFailure::invalid(format!("properties: {}", e.reason));
    match p.get_type().map_err(bad)? {
        ValueType::Undefined | ValueType::Null => return Ok(Properties::new()),
        ValueType::Object => {}
        t => {
            return Err(JsFailure::invalid(format!(
                "properties must be an object, not {t}"
            )))
        }
    }
    let json: String = env
        .get_global()
        .and_then(|g| g.get_named_property::<Object>("JSON"))
        .and_then(|j| j.get_named_property::<Function<Unknown, String>>("stringify"))
        .and_then(|f| f.call(p))
        .map_err(bad)?;
    let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json)
        .map_err(|_| JsFailure::invalid("properties must be a plain object"))?;
    raw.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => PropertyValue::String(s),
                serde_json::Value::Bool(b) => PropertyValue::Bool(b),
                serde_json::Value::Number(n) => match n.as_f64() {
                    Some(f) => PropertyValue::Number(f),
                    None => return Err(JsFailure::invalid(format!("property {k:?} is not a finite number"))),
                },
                serde_json::Value::Null => {
                    return Err(JsFailure::invalid(format!(
                        "property {k:?} must be a string, a finite number or a boolean"
                    )))
                }
                _ => {
                    return Err(JsFailure::invalid(format!(
                        "property {k:?} must be a string, a number or a boolean"
                    )))
                }
            };
            Ok((k, v))
        })
        .collect()
}

fn flush_result(r: FlushReport) -> FlushResult {
    FlushResult {
        sent: r.sent as f64,
        pending: r.held as f64,
    }
}

/// Privacy-first usage analytics: consent, sampling, a durable queue, batched uploads.
#[napi]
pub struct Analytics {
    core: CoreAnalytics,
}

#[napi]
impl Analytics {
    /// Opens the client store in `stateDir`, recovers a crashed session and (with consent)
    /// starts the session.
    #[napi(constructor, ts_args_type = "opts: AnalyticsOptions")]
    pub fn new(env: &Env, opts: Unknown<'_>) -> Result<Self, Code> {
        let opts: AnalyticsOptions = from_js(env, "Analytics options", opts)?;
        let mut b = CoreAnalytics::builder()
            .app(&opts.app)
            .app_version(&opts.app_version)
            .url(&opts.url)
            .state_dir(&opts.state_dir)
            .debug(opts.debug.unwrap_or(false))
            .dry_run(opts.dry_run.unwrap_or(false));
        if opts.state_dir.trim().is_empty() {
            return Err(JsFailure::invalid("stateDir must be a folder").into());
        }
        if let Some(c) = &opts.channel {
            b = b.channel(c);
        }
        if let Some(r) = opts.sample_rate {
            b = b.sample_rate(r);
        }
        if let Some(c) = &opts.consent {
            b = b.default_consent(parse_consent(c)?);
        }
        if let Some(u) = &opts.user_id {
            b = b.user_id(u);
        }
        let core = b.build().map_err(JsFailure::from)?;
        Ok(Self { core })
    }

    /// Records an event; returns at once. Throws `ERR_INVALID_ARGUMENT` for a bad name or
    /// properties; without consent or outside the sample nothing is recorded (no error).
    #[napi(ts_args_type = "name: string, properties?: Record<string, string | number | boolean>")]
    pub fn track(
        &self,
        env: &Env,
        name: String,
        properties_: Option<Unknown<'_>>,
    ) -> Result<(), Code> {
        self.core
            .track(&name, properties(env, properties_)?)
            .map_err(|e| JsFailure::from(e).into())
    }

    /// Records `screen_view {screen_name}`.
    #[napi]
    pub fn screen(&self, name: String) -> Result<(), Code> {
        self.core
            .screen(&name)
            .map_err(|e| JsFailure::from(e).into())
    }

    /// Starts (or restarts) the timer `name`.
    #[napi]
    pub fn start_timer(&self, name: String) {
        self.core.start_timer(&name);
    }

    /// Stops the timer `name` and records the event `name` with its `duration` (ms).
    /// Returns the duration, or `null` when no such timer runs.
    #[napi(ts_args_type = "name: string, properties?: Record<string, string | number | boolean>")]
    pub fn stop_timer(
        &self,
        env: &Env,
        name: String,
        properties_: Option<Unknown<'_>>,
    ) -> Result<Option<f64>, Code> {
        self.core
            .stop_timer(&name, properties(env, properties_)?)
            .map_err(|e| JsFailure::from(e).into())
    }

    /// Changes and stores the consent; `denied` purges the queue and asks the server to
    /// erase this user.
    #[napi(ts_args_type = "consent: 'granted' | 'denied' | 'unknown'")]
    pub fn set_consent(&self, consent: String) -> Result<(), Code> {
        let c = parse_consent(&consent)?;
        self.core
            .set_consent(c)
            .map_err(|e| JsFailure::from(e).into())
    }

    /// The current consent.
    #[napi(ts_return_type = "'granted' | 'denied' | 'unknown'")]
    pub fn get_consent(&self) -> String {
        self.core.consent().as_str().to_string()
    }

    /// Makes everything recorded durable, then uploads what the server takes now.
    #[napi(ts_return_type = "Promise<FlushResult>")]
    pub fn flush<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, FlushResult>> {
        let core = self.core.clone();
        spawn_promise(
            env,
            async move {
                tokio::task::spawn_blocking(move || core.flush())
                    .await
                    .map_err(|e| JsFailure::new(INTERNAL, e))?
                    .map_err(JsFailure::from)
            },
            |_, r| Ok(flush_result(r)),
        )
    }

    /// Ends the session, makes everything durable, uploads within the shutdown deadline
    /// and stops the client's threads. Later calls do nothing.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        spawn_promise(
            env,
            async move {
                tokio::task::spawn_blocking(move || core.shutdown())
                    .await
                    .map_err(|e| JsFailure::new(INTERNAL, e))?
                    .map(|_| ())
                    .map_err(JsFailure::from)
            },
            |_, v| Ok(v),
        )
    }

    /// The user id events carry.
    #[napi]
    pub fn user_id(&self) -> String {
        self.core.user_id().to_string()
    }
}
