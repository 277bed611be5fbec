//! `FeatureFlags`: the core's remote-config client for JS.
//!
//! Owns the option conversion, the Promise of `refresh()`, the optional background refresh
//! task (the server's config stream, else polling: the core's choice) and the event bridges:
//! `onChange` listeners are fed from the core's change channel, `onEvent` listeners from its
//! provider events (`READY`, `CONFIGURATION_CHANGED`, `STALE`, `ERROR`), both as weak
//! thread-safe functions. `get` is a lookup in the core's precomputed table: no I/O.
//! It refuses nothing of its own: verification, replay protection and evaluation are the
//! core's.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use railgun_core::flags::{
    Announcement as CoreAnnouncement, FeatureFlags as CoreFlags, FlagsConfig, FlagsEvent,
    RefreshOutcome,
};
use railgun_core::identity;
use railgun_core::store::Store;
use tokio::sync::broadcast;

use crate::error::{from_js, spawn_promise, Code, JsFailure, INVALID_ARGUMENT};
use crate::updater::{parse_keys, parse_version};

/// Options of `new FeatureFlags(...)`.
#[napi(object)]
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeatureFlagsOptions {
    /// URL of the config document.
    pub url: String,
    /// App name.
    pub app: String,
    /// The running app's version (semver; flags may have version ranges).
    pub app_version: String,
    /// The app's state folder (the client store `railgun.db` caches the last good config).
    pub state_dir: String,
    /// The id users are bucketed by (default: the install id).
    pub user_id: Option<String>,
    /// The app's channel (default `stable`).
    pub channel: Option<String>,
    /// Keys that sign the config; when given, unsigned documents are refused.
    pub config_public_keys: Option<Vec<String>>,
    /// When given, refreshes now and then every interval (±10 %) in the background.
    pub refresh_interval_ms: Option<f64>,
}

/// The evaluation of one flag.
#[napi(object)]
pub struct FlagDetails {
    /// Whether the flag is on.
    pub value: bool,
    /// The A/B variant, when the flag has variants and is on.
    pub variant: Option<String>,
    /// `STATIC`, `SPLIT`, `DISABLED`, `KILL_SWITCH`, `VERSION_MISMATCH`, `FLAG_NOT_FOUND`
    /// or `ERROR`.
    pub reason: String,
}

/// The emergency kill switch (the specification's
/// `const { active, message } = await featureFlags.isKillSwitchActive()`).
#[napi(object, use_nullable = true)]
pub struct KillSwitch {
    /// Whether the kill switch is on: every flag is off.
    pub active: bool,
    /// The config's `emergencyMessage` to show while it is on; `null` when it is off or
    /// the config has none.
    pub message: Option<String>,
}

/// An announcement to show.
#[napi(object)]
pub struct Announcement {
    /// Its id (dismissals are kept by id).
    pub id: String,
    /// `info`, `warning`, `critical`, … as the app understands them.
    #[napi(js_name = "type")]
    pub kind: String,
    /// Title.
    pub title: String,
    /// Message.
    pub message: String,
    /// Whether the user may dismiss it.
    pub dismissible: bool,
    /// Shown in one session only.
    pub show_once: bool,
    /// Not shown before (RFC 3339).
    pub start_time: Option<String>,
    /// Not shown after (RFC 3339).
    pub end_time: Option<String>,
}

/// The maintenance state now.
#[napi(object)]
pub struct Maintenance {
    /// Whether maintenance is in force now.
    pub active: bool,
    /// The message to show.
    pub message: Option<String>,
    /// Whether the app may keep working read-only.
    pub allow_read_only: bool,
    /// Start of the window (RFC 3339).
    pub start_time: Option<String>,
    /// End of the window (RFC 3339).
    pub end_time: Option<String>,
}

/// A provider event (OpenFeature's names), as `onEvent` listeners receive it.
#[napi(object, use_nullable = true)]
#[derive(Clone)]
pub struct FlagsProviderEvent {
    /// `READY` (the first config from the network is in force), `CONFIGURATION_CHANGED` (a
    /// new config is in force), `STALE` (the live source is lost; the last good config is
    /// served) or `ERROR` (a document was refused: signature, schema, replayed revision).
    #[napi(js_name = "type", ts_type = "FlagsEventName")]
    pub kind: String,
    /// The revision now in force (`READY`, `CONFIGURATION_CHANGED`), if the config carries one.
    pub revision: Option<i64>,
    /// Why (`STALE`, `ERROR`).
    pub reason: Option<String>,
}

impl From<FlagsEvent> for FlagsProviderEvent {
    fn from(e: FlagsEvent) -> Self {
        Self {
            kind: e.name().to_string(),
            revision: e.revision().and_then(|r| i64::try_from(r).ok()),
            reason: e.reason().map(str::to_string),
        }
    }
}

type ChangeListener = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;
type EventListener = ThreadsafeFunction<
    FlagsProviderEvent,
    Unknown<'static>,
    FlagsProviderEvent,
    Status,
    false,
    true,
>;

fn announcement(a: CoreAnnouncement) -> Announcement {
    Announcement {
        id: a.id,
        kind: a.kind,
        title: a.title,
        message: a.message,
        dismissible: a.dismissible,
        show_once: a.show_once,
        start_time: a.start_time.map(|t| t.to_rfc3339()),
        end_time: a.end_time.map(|t| t.to_rfc3339()),
    }
}

/// Remote feature flags, announcements, maintenance and the kill switch.
#[napi]
pub struct FeatureFlags {
    core: Arc<CoreFlags>,
    refresh_task: Option<tokio::task::JoinHandle<()>>,
    change_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Subscribed before the background refresh started: the first `onChange` listener takes
    /// it, so a first fetch that completes before that listener is registered still reaches
    /// it (a fresh subscription would have missed it).
    since_start: Option<tokio::sync::watch::Receiver<u64>>,
    /// The same for the first `onEvent` listener: `READY` may come before it.
    events_since_start: Option<broadcast::Receiver<FlagsEvent>>,
}

impl Drop for FeatureFlags {
    fn drop(&mut self) {
        if let Some(t) = self.refresh_task.take() {
            t.abort();
        }
        for t in self.change_tasks.drain(..) {
            t.abort();
        }
    }
}

#[napi]
impl FeatureFlags {
    /// Loads the last good config from `stateDir` (offline start); fetches nothing unless
    /// `refreshIntervalMs` is given.
    #[napi(constructor, ts_args_type = "opts: FeatureFlagsOptions")]
    pub fn new(env: &Env, opts: Unknown<'_>) -> Result<Self, Code> {
        let opts: FeatureFlagsOptions = from_js(env, "FeatureFlags options", opts)?;
        if opts.state_dir.trim().is_empty() {
            return Err(JsFailure::invalid("stateDir must be a folder").into());
        }
        let store = Arc::new(
            Store::open(std::path::Path::new(&opts.state_dir).join("railgun.db"))
                .map_err(JsFailure::from)?,
        );
        let user_id = match &opts.user_id {
            Some(u) => u.clone(),
            None => identity::install_id(&opts.app, &store).map_err(JsFailure::from)?,
        };
        let version = parse_version("appVersion", &opts.app_version)?;
        let mut config = FlagsConfig::new(&opts.app, user_id, version);
        config.url = Some(opts.url.clone());
        if let Some(c) = &opts.channel {
            config.channel = c.clone();
        }
        if let Some(k) = &opts.config_public_keys {
            config.keys = Some(parse_keys("configPublicKeys", k)?);
        }
        let interval = match opts.refresh_interval_ms {
            None => None,
            Some(ms) if ms.is_finite() && ms >= 1000.0 => Some(Duration::from_millis(ms as u64)),
            Some(ms) => {
                return Err(JsFailure::new(
                    INVALID_ARGUMENT,
                    format!("refreshIntervalMs {ms} must be at least 1000"),
                )
                .into())
            }
        };
        if let Some(i) = interval {
            config.refresh_interval = i;
        }
        let core = Arc::new(CoreFlags::new(config, store).map_err(JsFailure::from)?);
        let since_start = Some(core.subscribe());
        let events_since_start = Some(core.subscribe_events());
        let refresh_task = interval.map(|_| {
            let c = Arc::clone(&core);
            napi::bindgen_prelude::within_runtime_if_available(move || c.spawn_refresh())
        });
        Ok(Self {
            core,
            refresh_task,
            change_tasks: Vec::new(),
            since_start,
            events_since_start,
        })
    }

    /// Fetches the config now. `updated` (a new document was accepted), `not-modified`
    /// (304), or `kept-last-good` (the fetch failed or the document was refused, and the
    /// last good config stays in force). Rejects with the error's `code` when there is no
    /// good config to keep.
    #[napi(ts_return_type = "Promise<'updated' | 'not-modified' | 'kept-last-good'>")]
    pub fn refresh<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, String>> {
        let core = Arc::clone(&self.core);
        spawn_promise(
            env,
            async move {
                match core.refresh().await {
                    Ok(RefreshOutcome::Updated { .. }) => Ok("updated"),
                    Ok(RefreshOutcome::NotModified) => Ok("not-modified"),
                    Err(_) if core.config().is_some() => Ok("kept-last-good"),
                    Err(e) => Err(JsFailure::from(e)),
                }
            },
            |_, v| Ok(v.to_string()),
        )
    }

    /// Whether flag `key` is on (`false` for an unknown key).
    #[napi]
    pub fn get(&self, key: String) -> bool {
        self.core.get(&key)
    }

    /// The full evaluation of flag `key`.
    #[napi]
    pub fn details(&self, key: String) -> FlagDetails {
        let d = self.core.details(&key);
        FlagDetails {
            value: d.value,
            variant: d.variant,
            reason: d.reason.as_str().to_string(),
        }
    }

    /// Every flag's value.
    #[napi(ts_return_type = "Record<string, boolean>")]
    pub fn get_all(&self) -> std::collections::HashMap<String, bool> {
        self.core.get_all().into_iter().collect()
    }

    /// The announcements to show now (a `showOnce` one is recorded as shown).
    #[napi]
    pub fn get_announcements(&self) -> Vec<Announcement> {
        self.core
            .announcements()
            .into_iter()
            .map(announcement)
            .collect()
    }

    /// Dismisses announcement `id` for good. Throws `ERR_NOT_DISMISSIBLE` when it may not be.
    #[napi]
    pub fn dismiss(&self, id: String) -> Result<(), Code> {
        self.core
            .dismiss(&id)
            .map_err(|e| JsFailure::from(e).into())
    }

    /// The maintenance state now.
    #[napi]
    pub fn get_maintenance(&self) -> Maintenance {
        let m = self.core.maintenance();
        Maintenance {
            active: m.active,
            message: m.message,
            allow_read_only: m.allow_read_only,
            start_time: m.start_time.map(|t| t.to_rfc3339()),
            end_time: m.end_time.map(|t| t.to_rfc3339()),
        }
    }

    /// The emergency kill switch: `{active, message}` (`message` is `null` unless it is on
    /// and the config has one).
    #[napi]
    pub fn is_kill_switch_active(&self) -> KillSwitch {
        let k = self.core.kill_switch();
        KillSwitch {
            active: k.active,
            message: k.message,
        }
    }

    /// Calls `cb()` whenever the flags change (a new config, an override). The first
    /// listener is also told of a change since the constructor (the first background fetch
    /// may finish before it is registered). The listener does not keep Node alive.
    #[napi(ts_args_type = "cb: () => void")]
    pub fn on_change(&mut self, cb: Function<(), Unknown<'static>>) -> Result<()> {
        let tsfn: ChangeListener = cb
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build()?;
        let mut rx = match self.since_start.take() {
            Some(rx) => rx,
            None => {
                let mut rx = self.core.subscribe();
                rx.mark_unchanged();
                rx
            }
        };
        let task = napi::bindgen_prelude::spawn(async move {
            while rx.changed().await.is_ok() {
                tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
        });
        self.change_tasks.push(task);
        Ok(())
    }

    /// Calls `cb(event)` for every provider event: `READY`, `CONFIGURATION_CHANGED` (with the
    /// revision now in force), `STALE`, `ERROR` (with the reason). The first listener also
    /// gets the events since the constructor. The listener does not keep Node alive.
    #[napi(ts_args_type = "cb: (event: FlagsProviderEvent) => void")]
    pub fn on_event(&mut self, cb: Function<FlagsProviderEvent, Unknown<'static>>) -> Result<()> {
        let tsfn: EventListener = cb
            .build_threadsafe_function::<FlagsProviderEvent>()
            .weak::<true>()
            .callee_handled::<false>()
            .build()?;
        let mut rx = match self.events_since_start.take() {
            Some(rx) => rx,
            None => self.core.subscribe_events(),
        };
        let task = napi::bindgen_prelude::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        tsfn.call(e.into(), ThreadsafeFunctionCallMode::NonBlocking);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        self.change_tasks.push(task);
        Ok(())
    }

    /// The highest config revision accepted (a lower one is refused as a replay); `null`
    /// when no document carried one.
    #[napi]
    pub fn revision(&self) -> Option<i64> {
        self.core.revision().and_then(|r| i64::try_from(r).ok())
    }

    /// Stops the background refresh and the listeners.
    #[napi]
    pub fn close(&mut self) {
        if let Some(t) = self.refresh_task.take() {
            t.abort();
        }
        for t in self.change_tasks.drain(..) {
            t.abort();
        }
    }
}
