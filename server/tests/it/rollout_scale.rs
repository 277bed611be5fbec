//! Health ingest throughput over real HTTP and one engine run over many installs (SQLite).
//!
//! 20 000 reports from 10 000 installs of one release are posted 32 at a time, then the
//! engine evaluates the rollout. Prints reports/s and the evaluation time; asserts only
//! what must hold (every report counted once, the rollout judged). Ignored by default; run
//! `cargo test --release -p railgun-server --test it rollout_scale -- --ignored --nocapture`.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{health_report, ReleaseSpec, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "posts 20 000 reports; run with --release -- --ignored --nocapture"]
async fn ingest_and_evaluate_ten_thousand_installs() {
    let now: DateTime<Utc> = "2026-11-01T09:00:00Z".parse().expect("t");
    let mut server = TestServer::start(now).await;
    let release = server.release(&ReleaseSpec {
        app: "demo",
        channel: "stable",
        version: "2.0.0",
        policy: None,
        released_at: now,
        size: 1000,
        base_url: None,
    });
    server.publish(&release, json!({"percentage": 10})).await;

    let installs = 10_000usize;
    let reports = 2 * installs;
    let started = Instant::now();
    let all = (0..reports)
        .map(|i| {
            let install = i % installs;
            health_report(
                "demo",
                "stable",
                "2.0.0",
                hex::encode(Sha256::digest(format!("m{install}"))),
                (u32::from(install.is_multiple_of(50)), 0),
                now,
            )
        })
        .collect();
    server.report_all(all).await;
    let ingest = started.elapsed();
    let started = Instant::now();
    let decisions = server.rollouts().evaluate().await.expect("evaluate");
    let evaluate = started.elapsed();
    let st = server
        .rollouts()
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
    server.stop().await;
}
