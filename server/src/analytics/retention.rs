//! The retention job: raw events and health reports are kept 90 days, aggregates and the
//! rollout decision log one year, finished alert outbox rows 7 days (configurable).
//!
//! Owns [`RetentionConfig`], [`purge_once`] (callable from tests with any clock) and the
//! background loop [`spawn`]. It deletes by the event's (skew-corrected) timestamp, by the
//! rollup's day, by the health report's reception time, by an install's last report and by
//! the decision's time; it never touches newer rows.
//!
//! Health data follows the raw-event window, with two exceptions that keep the rollout
//! engine's numbers from moving because of retention: the per-install rows of a release
//! whose rollout may still decide (active, or halted and resumable) are kept whatever their
//! age (see [`crate::store::rollout`]), and the window never falls below the engine's
//! low-adoption population window ([`LOW_ADOPTION_POPULATION_DAYS`]).
//!
//! It never deletes an event, health report or rollout decision that an enabled warehouse
//! export has not written yet: it reads the exports' hold
//! ([`crate::store::export::ExportStore::export_hold`]) first and keeps every row at or past it, so
//! an export that is behind (a destination down for days) loses nothing; those rows go at
//! the first run after the export caught up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Days;
use railgun_core::clock::SharedClock;

use crate::metrics::Metrics;
use crate::rollout::engine::LOW_ADOPTION_POPULATION_DAYS;
use crate::store::export::Stream;
use crate::store::{day_of, PurgeCounts, SharedStore, StoreError};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// Days a delivered (or given-up) alert stays in the outbox.
pub const DEFAULT_ALERT_RETENTION_DAYS: u32 = 7;

/// How long data is kept and how often the job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Raw events and health reports older than this many days are deleted.
    pub events_days: u32,
    /// Rollups and rollout decisions older than this many days are deleted.
    pub aggregates_days: u32,
    /// Alert outbox rows delivered or given up, raised more than this many days ago, are
    /// deleted (rows still in delivery are kept).
    pub alerts_days: u32,
    /// Time between runs.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            events_days: 90,
            aggregates_days: 365,
            alerts_days: DEFAULT_ALERT_RETENTION_DAYS,
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
    let hold = store.export_hold().await?;
    let mut counts = store
        .purge(events_before, aggregates_before, hold.limit(Stream::Events))
        .await?;
    // The engine counts a channel's installs over the last week (low-adoption alert).
    let population_since = (now - Days::days(LOW_ADOPTION_POPULATION_DAYS)).timestamp_millis();
    let health = store
        .purge_health(
            events_before.min(population_since),
            hold.limit(Stream::HealthReports),
        )
        .await?;
    counts.health_reports = health.reports;
    counts.health_installs = health.installs;
    counts.decisions = store
        .purge_decisions(
            i64::from(aggregates_before) * DAY_MS,
            hold.limit(Stream::Decisions),
        )
        .await?;
    counts.alerts = store
        .purge_alerts((now - Days::days(i64::from(config.alerts_days))).timestamp_millis())
        .await?;
    Ok(counts)
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
                    metrics.purged.fetch_add(p.total(), Ordering::Relaxed);
                    tracing::info!(
                        events = p.events,
                        aggregates = p.aggregates,
                        health_reports = p.health_reports,
                        health_installs = p.health_installs,
                        decisions = p.decisions,
                        alerts = p.alerts,
                        "retention job ran"
                    );
                }
                Err(e) => tracing::error!(error = %e, "retention job failed"),
            }
        }
    })
}
