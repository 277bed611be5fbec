//! The retention job: raw events are kept 90 days, aggregates one year (configurable).
//!
//! Owns [`RetentionConfig`], [`purge_once`] (callable from tests with any clock) and the
//! background loop [`spawn`]. It deletes by the event's (skew-corrected) timestamp and by
//! the rollup's day; it never touches newer rows.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Days;
use railgun_core::clock::SharedClock;

use crate::metrics::Metrics;
use crate::store::{day_of, PurgeCounts, SharedStore, StoreError};

/// How long data is kept and how often the job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Raw events older than this many days are deleted.
    pub events_days: u32,
    /// Rollups older than this many days are deleted.
    pub aggregates_days: u32,
    /// Time between runs.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            events_days: 90,
            aggregates_days: 365,
            interval: Duration::from_secs(3600),
        }
    }
}

/// Runs the job once at the clock's now.
pub async fn purge_once(
    store: &SharedStore,
    clock: &SharedClock,
    config: &RetentionConfig,
) -> Result<PurgeCounts, StoreError> {
    let now = clock.now();
    let events_before = (now - Days::days(config.events_days as i64)).timestamp_millis();
    let aggregates_before = day_of(now - Days::days(config.aggregates_days as i64));
    store.purge(events_before, aggregates_before).await
}

/// Runs the job every `interval` until the task is aborted.
pub fn spawn(
    store: SharedStore,
    clock: SharedClock,
    config: RetentionConfig,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match purge_once(&store, &clock, &config).await {
                Ok(p) => {
                    metrics
                        .purged
                        .fetch_add(p.events + p.aggregates, Ordering::Relaxed);
                    tracing::info!(
                        events = p.events,
                        aggregates = p.aggregates,
                        "retention job ran"
                    );
                }
                Err(e) => tracing::error!(error = %e, "retention job failed"),
            }
        }
    })
}
