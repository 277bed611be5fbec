//! Every integration test of this crate in one binary (one link, one file on disk:
//! thirty-odd binaries filled CI's disk). Each module is one former `tests/*.rs` file.

// A test binary has no public surface, and a test may panic with its message.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

mod analytics_consent;
mod analytics_crash;
mod analytics_debug;
mod analytics_queue;
mod analytics_sampling;
mod analytics_scrub;
mod analytics_support;
mod analytics_upload;
mod bucket_vectors;
mod child;
mod env_vars;
mod flags_eval;
mod flags_fetch;
mod flags_noalloc;
mod flags_vectors;
mod health_consent;
mod health_crash;
mod health_support;
mod health_upload;
mod sigstore;
mod sigstore_conformance;
mod spec_contract;
mod update_download;
mod update_install;

/// How long any one wait of a test may take: a regression fails the test instead of hanging it.
pub(crate) const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Awaits `fut`, failing the test (naming `what`) when it takes longer than [`DEADLINE`].
pub(crate) async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still waiting after {DEADLINE:?}"),
    }
}

/// Receives from `rx`, failing the test (naming `what`) after [`DEADLINE`] or when the
/// sender is gone.
pub(crate) fn recv_within<T>(what: &str, rx: &std::sync::mpsc::Receiver<T>) -> T {
    match rx.recv_timeout(DEADLINE) {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e} after waiting up to {DEADLINE:?}"),
    }
}
