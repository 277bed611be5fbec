//! Feature flags and remote config.
//!
//! * [`schema`] — the config document (the seed's JSON plus variants, platform/channel
//!   filters, version ranges and announcement windows) and [`sign_config`];
//! * [`eval`] — pure evaluation with OpenFeature-style reasons;
//! * [`compiled`] — the config compiled when it arrives (seeds hashed, versions parsed), so
//!   that evaluating for any user allocates nothing;
//! * [`notices`] — announcements and maintenance windows;
//! * [`cache`] — the last good document and announcement state in the client store;
//! * [`client`] — [`FeatureFlags`]: fetching (ETag, size limit, DSSE), refresh, the
//!   precomputed table behind `get`, overrides, exposures, listeners;
//! * [`stream`] — the revision inside a document and the Server-Sent Events format of
//!   `GET /config/{app}/stream`.
//!
//! A document that fails verification or parsing never changes a flag: the last good
//! config stays in force, online or offline.

pub mod cache;
mod client;
mod compiled;
mod eval;
mod notices;
mod schema;
pub mod stream;

pub use client::{
    FeatureFlags, FlagsConfig, RefreshOutcome, DEFAULT_MAX_CONFIG_BYTES, DEFAULT_REFRESH_INTERVAL,
    DEFAULT_STREAM_IDLE_TIMEOUT, ENV_CONFIG_URL, ENV_FLAG_OVERRIDES,
};
pub use compiled::{CompiledConfig, CompiledFlag, Evaluation};
pub use eval::{
    choose_variant, evaluate, evaluate_all, parse_overrides, version_in_range, EvalContext,
    EvaluationDetails, Override, Reason, VersionRange,
};
pub use notices::{announcement_in_force, maintenance_at, KillSwitch, MaintenanceStatus};
pub use schema::{
    parse_version_bound, sign_config, Announcement, Flag, Flags, FlagsForm, Maintenance,
    RemoteConfig, SchemaError, SignConfigError, Variant, MAX_ANNOUNCEMENTS, MAX_FLAGS,
    MAX_VARIANTS,
};

use crate::store::StoreError;
use crate::trust::DsseError;

/// Receives one `experiment_exposure` per flag and session: the first time this user's
/// variant of a flag was evaluated. The analytics client implements it.
pub trait ExposureSink: Send + Sync {
    /// `flag`'s variant `variant` was shown to this user for the first time this session.
    fn exposure(&self, flag: &str, variant: &str);
}

/// Errors of the feature-flag client.
#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    /// The client configuration cannot work.
    #[error("invalid flags configuration: {0}")]
    Config(String),
    /// No config URL was given (`RAILGUN_CONFIG_URL` or the config).
    #[error("no remote config URL: set RAILGUN_CONFIG_URL or FlagsConfig::url")]
    NoUrl,
    /// The config URL is not usable.
    #[error("invalid remote config URL {url:?}: {source}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        #[source]
        source: crate::net::UrlError,
    },
    /// Local overrides could not be read.
    #[error("{variable} is not a JSON object of true/false/\"variant\": {message}")]
    Overrides {
        /// The environment variable.
        variable: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The server could not be reached.
    #[error(
        "cannot reach the remote config at {url}: {}",
        crate::error::chain(source)
    )]
    Network {
        /// The URL.
        url: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },
    /// The server did not answer in time.
    #[error("remote config at {url} did not answer in time")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// The server answered with an error status.
    #[error("remote config server answered {status} for {url}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body is larger than allowed.
    #[error("remote config at {url} is larger than {limit} bytes: refused")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The document is not signed by the config keys (or not signed at all).
    #[error("remote config signature refused: {0}")]
    Signature(#[from] DsseError),
    /// The document is not a valid config.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The announcement may not be dismissed.
    #[error("announcement {id:?} is not dismissible")]
    NotDismissible {
        /// The announcement id.
        id: String,
    },
    /// The client store failed.
    #[error(transparent)]
    Store(StoreError),
    /// A document older than one already accepted (a replay), or without a revision after
    /// one with a revision.
    #[error("remote config revision {} refused: revision {have} was already accepted (replay)", got.map_or_else(|| "none".to_string(), |g| g.to_string()))]
    Replayed {
        /// The document's revision, if it has one.
        got: Option<u64>,
        /// The highest revision accepted.
        have: u64,
    },
}

/// A provider event, named as in OpenFeature (`PROVIDER_READY`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagsEvent {
    /// The first config from the network is in force.
    Ready {
        /// Its revision, if it carries one.
        revision: Option<u64>,
    },
    /// A new config is in force.
    ConfigurationChanged {
        /// Its revision, if it carries one.
        revision: Option<u64>,
    },
    /// The live source is lost; the last good config is served.
    Stale {
        /// Why.
        reason: String,
    },
    /// A document was refused (signature, schema, replay).
    Error {
        /// Why.
        reason: String,
    },
}

impl FlagsEvent {
    /// The OpenFeature name: `READY`, `CONFIGURATION_CHANGED`, `STALE`, `ERROR`.
    pub fn name(&self) -> &'static str {
        match self {
            FlagsEvent::Ready { .. } => "READY",
            FlagsEvent::ConfigurationChanged { .. } => "CONFIGURATION_CHANGED",
            FlagsEvent::Stale { .. } => "STALE",
            FlagsEvent::Error { .. } => "ERROR",
        }
    }

    /// The revision it concerns, if any.
    pub fn revision(&self) -> Option<u64> {
        match self {
            FlagsEvent::Ready { revision } | FlagsEvent::ConfigurationChanged { revision } => {
                *revision
            }
            _ => None,
        }
    }

    /// The reason of a `Stale` or `Error` event.
    pub fn reason(&self) -> Option<&str> {
        match self {
            FlagsEvent::Stale { reason } | FlagsEvent::Error { reason } => Some(reason),
            _ => None,
        }
    }
}
