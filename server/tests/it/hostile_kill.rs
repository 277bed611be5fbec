//! SIGKILL and SIGTERM of a real `railgun serve` under concurrent ingest, then a restart on
//! the same database, on SQLite and on PostgreSQL: every event whose batch was acknowledged
//! (2xx) is counted exactly once, and the batches that were not (cut by the signal) are
//! sent again, as clients do, without a single duplicate.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use railgun_core::analytics::{AnalyticsEvent, EventBatch, EventCategory, IngestResponse};
use rustix::process::Signal;
use uuid::Uuid;

use crate::db::{self, Kind};
use crate::hostile_support::events_named;
use crate::support::ChildServer;

const POSTERS: usize = 4;
/// Events in one batch.
pub const PER_BATCH: usize = 50;
/// The events' name.
pub const NAME: &str = "kill_probe";
const READ: &str = "kill-read-token";

fn event(poster: usize) -> AnalyticsEvent {
    let now = Utc::now();
    AnalyticsEvent {
        id: Uuid::now_v7(),
        name: NAME.into(),
        category: EventCategory::for_name(NAME),
        user_id: format!("poster-{poster}"),
        session_id: format!("s-{poster}"),
        timestamp: now,
        app_version: "1.0.0".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        channel: "stable".into(),
        properties: None,
        duration: None,
        sequence: 1,
    }
}

/// A batch of [`PER_BATCH`] new events of poster `poster`.
pub fn batch(poster: usize) -> EventBatch {
    EventBatch {
        events: (0..PER_BATCH).map(|_| event(poster)).collect(),
        sent_at: Some(Utc::now()),
        sample_rate: 1.0,
        dropped: 0,
        queued: 0,
    }
}

/// Posts `b`; `true` when the server acknowledged every event of it.
pub async fn post(http: &reqwest::Client, url: &str, b: &EventBatch) -> bool {
    let Ok(res) = http.post(url).json(b).send().await else {
        return false;
    };
    if !res.status().is_success() {
        return false;
    }
    match res.json::<IngestResponse>().await {
        Ok(r) => {
            assert!(r.rejected.is_empty(), "valid events rejected: {r:?}");
            r.accepted + r.duplicates == PER_BATCH as u64
        }
        Err(_) => false,
    }
}

#[derive(Default)]
struct Ledger {
    /// Events of acknowledged batches.
    acked: AtomicUsize,
    /// Batches not acknowledged (refused, cut, or never answered).
    unacked: Mutex<Vec<EventBatch>>,
}

fn serve(dir: &Path, database: &str) -> ChildServer {
    ChildServer::serve(
        &dir.join("root"),
        &dir.join("data"),
        &[
            "--database".as_ref(),
            database.as_ref(),
            "--no-rate-limit".as_ref(),
        ],
        &[("RAILGUN_READ_TOKEN", READ)],
    )
}

async fn kill_under_ingest(kind: Kind, signal: Signal) {
    let dir = tempfile::tempdir().expect("tmp");
    for d in ["root", "data"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("dir");
    }
    let suite = format!("hostile_kill ({signal:?})");
    let Some(database) = db::database(kind, &dir.path().join("data/a.db"), &suite).await else {
        return;
    };
    let mut s = serve(dir.path(), &database);
    let url = format!("{}/analytics/events", s.url);

    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut posters = tokio::task::JoinSet::new();
    for p in 0..POSTERS {
        let (ledger, stop, url) = (ledger.clone(), stop.clone(), url.clone());
        posters.spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client");
            while !stop.load(Ordering::Acquire) {
                let b = batch(p);
                if post(&http, &url, &b).await {
                    ledger.acked.fetch_add(PER_BATCH, Ordering::AcqRel);
                } else {
                    ledger.unacked.lock().expect("ledger").push(b);
                }
            }
        });
    }
    // Signal the server in the middle of the ingest: 40 batches acknowledged, the posters
    // still sending.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ledger.acked.load(Ordering::Acquire) < 40 * PER_BATCH {
        assert!(
            Instant::now() < deadline,
            "no ingest within 60 s: {}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.signal(signal);
    // The requests in flight finish (or are cut); no poster starts another.
    stop.store(true, Ordering::Release);
    let status = s
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("still running 60 s after {signal:?}"));
    if signal == Signal::TERM {
        assert!(status.success(), "{status:?}: {}", s.log());
    }
    while let Some(r) = posters.join_next().await {
        r.expect("poster");
    }
    let acked = ledger.acked.load(Ordering::Acquire);

    // Restart on the same database; the clients send what was not acknowledged again.
    let s2 = serve(dir.path(), &database);
    let url2 = format!("{}/analytics/events", s2.url);
    let unacked = std::mem::take(&mut *ledger.unacked.lock().expect("ledger"));
    let http = reqwest::Client::new();
    for b in &unacked {
        assert!(post(&http, &url2, b).await, "a resent batch was refused");
    }
    let sent = acked + unacked.len() * PER_BATCH;
    assert_eq!(
        events_named(&s2.url, READ, NAME).await,
        sent as u64,
        "{acked} events acknowledged before {signal:?}, {} resent after",
        unacked.len() * PER_BATCH
    );
    drop(s2);
    if matches!(kind, Kind::Postgres) {
        db::drop_database(&database);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_concurrent_ingest_loses_no_acknowledged_event_on_sqlite() {
    kill_under_ingest(Kind::Sqlite, Signal::KILL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_concurrent_ingest_loses_no_acknowledged_event_on_postgres() {
    kill_under_ingest(Kind::Postgres, Signal::KILL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_concurrent_ingest_loses_no_acknowledged_event_on_sqlite() {
    kill_under_ingest(Kind::Sqlite, Signal::TERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_concurrent_ingest_loses_no_acknowledged_event_on_postgres() {
    kill_under_ingest(Kind::Postgres, Signal::TERM).await;
}
