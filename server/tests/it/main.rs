//! Every integration test of this crate in one binary (one link, one file on disk:
//! thirty-odd binaries filled CI's disk). Each module is one former `tests/*.rs` file.

// A test binary has no public surface, and a test may panic with its message.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

/// `both_stores!(a, b, …)`: each `async fn a(kind: Kind)` of the module as two tests,
/// `sqlite::a` and `postgres::a` (skipped, or failed under `RAILGUN_REQUIRE_ALL=1`, without
/// PostgreSQL: [`db::database`]). Defined before the modules so that each of them sees it.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::db::Kind::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::db::Kind::Postgres).await })*
        }
    };
}

mod active_reach;
mod analytics_scale;
mod analytics_suite;
mod auth_matrix;
mod cli_release;
mod cli_track;
// Shared with the core crate's suites (see its module documentation).
#[path = "../../../tests/it/child.rs"]
mod child;
mod config_client;
mod config_server;
mod config_support;
mod dashboard;
mod dashboard_live;
mod db;
mod delta_e2e;
mod delta_update;
mod demo;
mod dev_reads;
mod erasure_e2e;
mod export;
mod feature_summary;
mod health_privacy;
mod hostile_conn;
mod hostile_kill;
mod hostile_ratelimit;
mod hostile_support;
mod hostile_tree;
mod http_metrics;
mod ingest_bounds;
mod ingest_shared;
mod keygen;
mod ops_alerts;
mod ops_grafana;
mod ops_outbox;
mod ops_prometheus;
mod ops_sessions;
mod release_export;
mod release_publish_server;
mod require_all;
mod rollout_engine;
mod rollout_scale;
mod rollout_store;
mod scale_fanout;
mod scale_kill;
mod scale_leader;
mod scale_nginx;
mod scale_tree;
mod serve_etag;
mod spec_contract;
mod store_unavailable;
mod support;
mod update_check;
mod update_e2e;
mod verify_cli;
