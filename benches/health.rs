//! Health monitor costs: `record_error` on the caller's thread (atomics + a nudge, no I/O),
//! and `persist` (commit the counts to the SQLite file on disk).
//!
//! `cargo bench --bench health`

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use railgun_core::analytics::Consent;
use railgun_core::health::HealthMonitor;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let h = HealthMonitor::builder()
        .app("rail-gun")
        .version("1.0.0")
        .state_dir(dir.path())
        .install_id("bench")
        .default_consent(Consent::Granted)
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    let mut g = c.benchmark_group("health");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    g.bench_function("record_error", |b| b.iter(|| h.record_error()));
    g.bench_function("record_error+persist", |b| {
        b.iter(|| {
            h.record_error();
            h.persist().expect("persist");
        })
    });
    g.finish();
    h.shutdown().expect("shutdown");
}

criterion_group!(benches, bench);
criterion_main!(benches);
