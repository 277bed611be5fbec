//! Health ingest throughput over real HTTP and one engine run over many installs (SQLite).
//!
//! 20 000 reports from 10 000 installs of one release are posted 32 at a time, then the
//! engine evaluates the rollout. Prints reports/s and the evaluation time; asserts only
//! what must hold (every report counted once, the rollout judged). Ignored by default; run
//! `cargo test --release -p railgun-server --test rollout_scale -- --ignored --nocapture`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use railgun_core::clock::{ManualClock, SharedClock};
use railgun_core::health::HealthReport;
use railgun_core::trust::{KeyAlgorithm, PrivateKey};
use railgun_core::update::{Arch, Format, Platform};
use railgun_server::release::{build_manifest, sign_manifest, ArtifactFile, ManifestSpec};
use railgun_server::serve::{App, ServerConfig};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "posts 20 000 reports; run with --release -- --ignored --nocapture"]
async fn ingest_and_evaluate_ten_thousand_installs() {
    let dir = tempfile::tempdir().expect("tmp");
    let now: DateTime<Utc> = "2026-11-01T09:00:00Z".parse().expect("t");
    let release_key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let rollout_key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let rk = dir.path().join("rollout.key");
    rollout_key.write_pem_file(&rk).expect("key");
    let pk = dir.path().join("release.pub");
    std::fs::write(&pk, release_key.public_key().to_pem()).expect("pub");
    let config = ServerConfig {
        root: dir.path().join("updates"),
        database: format!("sqlite:{}", dir.path().join("db.sqlite").display()),
        admin_token: Some("admin".into()),
        run_retention: false,
        clock: Arc::new(ManualClock::new(now)) as SharedClock,
        rollout_key: Some(rk),
        release_public_keys: vec![pk],
        rollout_interval: std::time::Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = App::open(&config)
        .await
        .expect("app")
        .spawn(addr)
        .await
        .expect("start");
    let rollouts = server.rollouts.clone();
    let http = reqwest::Client::new();

    let art = dir.path().join("demo-2.0.0-linux-x64.tar.gz");
    std::fs::write(&art, vec![7u8; 1000]).expect("artifact");
    let manifest = build_manifest(&ManifestSpec {
        app: "demo".into(),
        version: "2.0.0".parse().expect("v"),
        channel: "stable".into(),
        notes: String::new(),
        artifacts: vec![ArtifactFile {
            path: art.clone(),
            platform: Platform::Linux,
            arch: Arch::X64,
            format: Format::TarGz,
        }],
        base_url: None,
        rollout: None,
        released_at: now,
        sigstore_bundles: None,
    })
    .expect("manifest");
    let env = sign_manifest(&manifest, &[&release_key]).expect("sign");
    let r = http
        .post(format!("{}/admin/releases", server.url()))
        .bearer_auth("admin")
        .json(&json!({"manifest": env, "percentage": 10}))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 201);
    let r = http
        .put(format!(
            "{}/admin/releases/demo/2.0.0/artifacts/demo-2.0.0-linux-x64.tar.gz",
            server.url()
        ))
        .bearer_auth("admin")
        .body(std::fs::read(&art).expect("read"))
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 200);

    let installs = 10_000usize;
    let reports = 2 * installs;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..reports {
        let install = i % installs;
        let body = HealthReport {
            id: Uuid::new_v4(),
            machine_id: hex::encode(Sha256::digest(format!("m{install}"))),
            app: "demo".into(),
            version: "2.0.0".into(),
            channel: "stable".into(),
            platform: "linux".into(),
            arch: "x64".into(),
            period_start: now - Duration::hours(1),
            period_end: now,
            sessions: 1,
            errors: u32::from(install.is_multiple_of(50)),
            crashes: 0,
            boot_reverts: 0,
        };
        let (http, url) = (http.clone(), format!("{}/analytics/health", server.url()));
        set.spawn(async move {
            let r = http.post(url).json(&body).send().await.expect("post");
            assert_eq!(r.status(), 200);
        });
        if set.len() >= 32 {
            set.join_next().await.expect("task").expect("join");
        }
    }
    while let Some(r) = set.join_next().await {
        r.expect("join");
    }
    let ingest = started.elapsed();
    let started = Instant::now();
    let decisions = rollouts.evaluate().await.expect("evaluate");
    let evaluate = started.elapsed();
    let st = rollouts
        .status("demo", "stable", "2.0.0")
        .await
        .expect("status");
    assert_eq!(st.total_installs, installs as u64);
    assert_eq!(st.installs_with_errors, (installs / 50) as u64);
    assert!(decisions.is_empty(), "2 % errors, no stage time passed");
    println!(
        "health ingest: {reports} reports in {:.2} s = {:.0} reports/s (32 concurrent); \
         evaluate over {installs} installs: {:.1} ms",
        ingest.as_secs_f64(),
        reports as f64 / ingest.as_secs_f64(),
        evaluate.as_secs_f64() * 1000.0
    );
    server.stop().await.expect("stop");
}
