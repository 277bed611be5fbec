//! `@railgun/core`: the Node-API addon over `railgun-core`.
//!
//! A thin translation layer: it converts options, values and errors, runs the core's async
//! work on the addon's tokio runtime (so Node's event loop never waits on the network or the
//! disk) and forwards events through thread-safe functions. Behaviour lives in the core; an
//! `if` about behaviour here is a bug. Every failure reaches JS as an `Error` with a stable
//! `code` ([`error`]).
//!
//! `unsafe` appears only inside the code the napi macros generate.

#![deny(unsafe_code)]

use napi_derive::napi;

pub mod analytics;
pub mod error;
pub mod flags;
pub mod health;
pub mod updater;

use error::{Code, JsFailure};
use napi::bindgen_prelude::Result;

/// The rollout/experiment bucket (0–9999) of `id` under `seed`: the same number in every
/// language (`tests/vectors/bucket.json`).
#[napi]
pub fn bucket(seed: String, id: String) -> u32 {
    u32::from(railgun_core::identity::bucket(&seed, &id))
}

/// This install's id for `app`: an HMAC of the machine id (never the raw id), or a random
/// id kept in the client store of `stateDir` when the machine id is unavailable.
#[napi]
pub fn install_id(app: String, state_dir: String) -> Result<String, Code> {
    if state_dir.trim().is_empty() {
        return Err(JsFailure::invalid("stateDir must be a folder").into());
    }
    let store = railgun_core::store::Store::open(
        std::path::Path::new(&state_dir).join(railgun_core::STORE_FILE),
    )
    .map_err(JsFailure::from)?;
    railgun_core::identity::install_id(&app, &store).map_err(|e| JsFailure::from(e).into())
}

/// The core's [`ClientContext`](railgun_core::ClientContext) from the options the JS
/// components share (`app`, the version, `channel`, `url`, `stateDir`): one conversion, so
/// `Analytics` and `Health` cannot drift.
pub(crate) fn client_context(
    app: &str,
    version: &str,
    channel: Option<&str>,
    url: &str,
    state_dir: &str,
) -> std::result::Result<railgun_core::ClientContext, JsFailure> {
    if state_dir.trim().is_empty() {
        return Err(JsFailure::invalid("stateDir must be a folder"));
    }
    let mut ctx = railgun_core::ClientContext::new(app, version).state_dir(state_dir);
    if let Some(c) = channel {
        ctx.channel = c.to_string();
    }
    ctx.url = Some(url.to_string());
    Ok(ctx)
}
