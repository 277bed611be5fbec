//! Scale-out, SIGKILL under ingest: three real `railgun serve` processes on one PostgreSQL
//! database behind nginx (the deployment kit's configuration); posters send batches through
//! it, each retrying a batch (the same event ids) until it is acknowledged, as clients do.
//! One server is SIGKILLed midway: the posters carry on through the other two, every batch
//! is acknowledged in the end, and every event is counted exactly once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::hostile_kill::{batch, post, NAME, PER_BATCH};
use crate::hostile_support::events_named;
use crate::scale_leader::Cluster;
use crate::scale_nginx::Balancer;
use crate::support::READ;

const POSTERS: usize = 4;

/// Waits until `acked` reaches `n` (a minute at most).
async fn until_acked(acked: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Acquire) < n {
        assert!(
            Instant::now() < deadline,
            "{n} events not acknowledged within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_of_three_servers_under_ingest_counts_every_event_once() {
    let Some(mut c) = Cluster::local(3, &["--no-rate-limit"]).await else {
        return;
    };
    let addrs: Vec<_> = c.servers.iter().flatten().map(|s| s.addr).collect();
    let Some(lb) = Balancer::start(&c.setup.dir.path().join("nginx"), &addrs).await else {
        return;
    };
    let url = format!("{}/analytics/events", lb.url);
    let acked = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut posters = tokio::task::JoinSet::new();
    for p in 0..POSTERS {
        let (acked, retries, stop, url) =
            (acked.clone(), retries.clone(), stop.clone(), url.clone());
        posters.spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut sent = 0;
            while !stop.load(Ordering::Acquire) {
                let b = batch(p);
                // Sent again, the same ids, until acknowledged (a minute at most).
                let deadline = Instant::now() + Duration::from_secs(60);
                while !post(&http, &url, &b).await {
                    assert!(Instant::now() < deadline, "a batch unacknowledged for 60 s");
                    retries.fetch_add(1, Ordering::AcqRel);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                acked.fetch_add(PER_BATCH, Ordering::AcqRel);
                sent += PER_BATCH;
            }
            sent
        });
    }
    // Midway: 40 batches acknowledged, the posters still sending.
    until_acked(&acked, 40 * PER_BATCH).await;
    let mut dead = c.servers[1].take().expect("server 1");
    dead.signal(Signal::KILL);
    dead.wait_exit(Duration::from_secs(30)).expect("killed");
    let at_kill = acked.load(Ordering::Acquire);
    // The other two carry on: 40 more batches.
    until_acked(&acked, at_kill + 40 * PER_BATCH).await;
    stop.store(true, Ordering::Release);
    let mut sent = 0;
    while let Some(r) = posters.join_next().await {
        sent += r.expect("poster");
    }
    assert_eq!(sent, acked.load(Ordering::Acquire));
    println!(
        "{sent} events acknowledged through 3 servers, one SIGKILLed after {at_kill}; {} posts retried",
        retries.load(Ordering::Acquire)
    );
    for i in [0, 2] {
        assert_eq!(
            events_named(&c.url(i), READ, NAME).await,
            sent as u64,
            "server {i}: every acknowledged event once"
        );
    }
    for s in c.servers.iter_mut().flatten() {
        s.terminate(Duration::from_secs(20));
    }
}
