//! # railgun-core
//!
//! A secure, privacy-first release and telemetry kit for desktop apps: signed auto-updates
//! with phased rollout, usage analytics, feature flags and rollout health. This crate is
//! everything a client needs; the server and the publisher's tools live in
//! `railgun-server`, the Electron addon in `bindings/node`.
//!
//! * [`analytics`] — usage analytics;
//! * [`flags`] — feature flags and remote config;
//! * [`health`] — rollout health reports;
//! * [`trust`] — keys and DSSE envelopes;
//! * [`update`] — release manifests, channel states, the update check;
//! * [`identity`] — the install id and the one bucketing function;
//! * [`store`] — the client SQLite database;
//! * [`net`] — the HTTP behaviour every client shares (answer classification, `Retry-After`,
//!   backoff, the error chain, the HTTP client);
//! * [`ClientContext`] — who a client component runs for and where (app, version, channel,
//!   platform, arch, URL, store, clock, install id), shared by analytics and health;
//! * [`clock`] — injectable time;
//! * [`error`] — the error chain on one line and the `.at(path)` I/O context.
//!
//! ```
//! use railgun_core::identity::{bucket, in_percentage};
//! // Is this install inside a 10 % rollout of 0.2.0?
//! let inside = in_percentage(bucket("rail-gun:stable:0.2.0", "install-id"), 10.0);
//! # let _ = inside;
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analytics;
pub mod clock;
mod context;
pub mod env;
pub mod error;
pub mod flags;
pub mod health;
pub mod identity;
pub mod net;
pub mod store;
pub mod trust;
pub mod update;

pub use context::{ClientContext, Environment, UnknownEnvironment, STORE_FILE};
pub use semver::Version;
