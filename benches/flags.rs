//! `get(key)` for a flag with a rollout and a minVersion: a lookup in the table precomputed
//! when the config arrived (target: median ≤ 100 ns, no allocation).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use railgun_core::flags::{FeatureFlags, FlagsConfig};
use railgun_core::store::Store;

fn config() -> Vec<u8> {
    let mut flags: Vec<serde_json::Value> = (0..200)
        .map(|i| {
            serde_json::json!({"key": format!("flag-{i}"), "enabled": i % 3 != 0,
                "rolloutPercentage": (i % 100) as f64, "minVersion": "1.0.0"})
        })
        .collect();
    flags.push(serde_json::json!({"key": "new-composer", "enabled": true,
        "rolloutPercentage": 50, "minVersion": "1.2.0-beta.1"}));
    flags.push(
        serde_json::json!({"key": "theme", "enabled": true, "variants": [
        {"name": "light", "weight": 1}, {"name": "dark", "weight": 1}]}),
    );
    serde_json::to_vec(&serde_json::json!({"version": "1", "flags": flags})).unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let cfg = FlagsConfig::new("bench", "install-42", "1.4.0".parse().expect("version"));
    let flags = FeatureFlags::new(cfg, store).expect("client");
    flags.load_document(&config()).expect("config");
    let mut g = c.benchmark_group("flags");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("get rollout+minVersion", |b| {
        b.iter(|| flags.get(black_box("new-composer")))
    });
    g.bench_function("get unknown key", |b| {
        b.iter(|| flags.get(black_box("no-such-flag")))
    });
    g.bench_function("details with variant", |b| {
        b.iter(|| flags.details(black_box("theme")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
