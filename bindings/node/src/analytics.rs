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
    /// Sampling rate 0–1 (default: 1 in development, 0.1 in production).
    pub sample_rate: Option<f64>,
    /// Where the app runs; decides the default sampling rate (default `production`, the
    /// addon's build: pass `development` while developing, e.g. when `!app.isPackaged`).
    #[napi(ts_type = "'development' | 'production'")]
    pub environment: Option<String>,
    /// Consent until the user decides (the stored decision wins; default `unknown`).
    #[napi(ts_type = "'granted' | 'denied' | 'unknown'")]
    pub consent: Option<String>,
    /// Log every event on stderr as `[Analytics] screen_view { screen_name: 'home' }`.
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
    /// Erasure requests (after `denied`) the server has not acknowledged yet.
    pub erasures_pending: f64,
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

/// The engine's `JSON.stringify`, looked up once per client.
type Stringify = FunctionRef<napi::sys::napi_value, String>;

fn json_stringify(env: &Env) -> Result<Stringify> {
    env.get_global()?
        .get_named_property::<Object>("JSON")?
        .get_named_property::<Function<napi::sys::napi_value, String>>("stringify")?
        .create_ref()
}

/// A JS `Record<string, string | number | boolean>` as core properties. On the `track()` hot
/// path: one call of the engine's `JSON.stringify` and one parse cost less than walking the
/// object through Node-API property by property. (`undefined` and function values are
/// dropped, as `JSON.stringify` does; `NaN`, nested objects and arrays are refused.)
fn properties(
    env: &Env,
    stringify: &Stringify,
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
    let json: String = stringify
        .borrow_back(env)
        .and_then(|f| f.call(p.raw()))
        .map_err(bad)?;
    serde_json::from_str::<JsProperties>(&json)
        .map(|p| p.0)
        .map_err(|e| JsFailure::invalid(format!("properties: {e}")))
}

/// Properties parsed straight from `JSON.stringify`'s output (no intermediate JSON tree).
struct JsProperties(Properties);

/// One property value: a string, a finite number or a boolean.
struct JsValueOnly(PropertyValue);

impl<'de> serde::Deserialize<'de> for JsValueOnly {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = JsValueOnly;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a finite number or a boolean")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(JsValueOnly(PropertyValue::String(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(
                self,
                v: String,
            ) -> std::result::Result<Self::Value, E> {
                Ok(JsValueOnly(PropertyValue::String(v)))
            }
            fn visit_bool<E: serde::de::Error>(
                self,
                v: bool,
            ) -> std::result::Result<Self::Value, E> {
                Ok(JsValueOnly(PropertyValue::Bool(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
                Ok(JsValueOnly(PropertyValue::Number(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(JsValueOnly(PropertyValue::Number(v as f64)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
                Ok(JsValueOnly(PropertyValue::Number(v as f64)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> serde::Deserialize<'de> for JsProperties {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsProperties;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a plain object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Properties::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<JsValueOnly>().map_err(|e| {
                        serde::de::Error::custom(format_args!("property {key:?}: {e}"))
                    })?;
                    out.insert(key, value.0);
                }
                Ok(JsProperties(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn flush_result(r: FlushReport) -> FlushResult {
    FlushResult {
        sent: r.sent as f64,
        pending: r.held as f64,
        erasures_pending: r.erasures_pending as f64,
    }
}

/// Privacy-first usage analytics: consent, sampling, a durable queue, batched uploads.
#[napi]
pub struct Analytics {
    core: CoreAnalytics,
    stringify: Stringify,
}

#[napi]
impl Analytics {
    /// Opens the client store in `stateDir`, recovers a crashed session and (with consent)
    /// starts the session.
    #[napi(constructor, ts_args_type = "opts: AnalyticsOptions")]
    pub fn new(env: &Env, opts: Unknown<'_>) -> Result<Self, Code> {
        let opts: AnalyticsOptions = from_js(env, "Analytics options", opts)?;
        let mut ctx = crate::client_context(
            &opts.app,
            &opts.app_version,
            opts.channel.as_deref(),
            &opts.url,
            &opts.state_dir,
        )?;
        ctx.install_id = opts.user_id.clone();
        if let Some(e) = &opts.environment {
            ctx.environment = e.parse().map_err(JsFailure::invalid)?;
        }
        let mut b = CoreAnalytics::builder()
            .context(ctx)
            .debug(opts.debug.unwrap_or(false))
            .dry_run(opts.dry_run.unwrap_or(false));
        if let Some(r) = opts.sample_rate {
            b = b.sample_rate(r);
        }
        if let Some(c) = &opts.consent {
            b = b.default_consent(parse_consent(c)?);
        }
        let core = b.build().map_err(JsFailure::from)?;
        let stringify = json_stringify(env).map_err(|e| JsFailure::new(INTERNAL, e.reason))?;
        Ok(Self { core, stringify })
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
            .track(&name, properties(env, &self.stringify, properties_)?)
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
            .stop_timer(&name, properties(env, &self.stringify, properties_)?)
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
