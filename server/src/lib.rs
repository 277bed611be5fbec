//! `railgun-server`: the server (`railgun serve`) and the publisher's tools behind the
//! `railgun` binary. Wire types come from `railgun-core`; nothing here redefines them.

pub mod alerts;
pub mod analytics;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod export;
pub mod fanout;
pub mod leader;
pub mod metrics;
pub mod percent;
pub mod ratelimit;
pub mod release;
pub mod rollout;
pub mod serve;
pub mod store;
