//! The scheduled export inside `railgun serve` (`--export-dir`, `--export-interval`).
//!
//! Owns [`ExportSchedule`] and [`ScheduledExport`]: a task that runs [`super::run`] at start
//! and then every interval, on the server's own store, as an *enabled* export (retention
//! keeps what it has not written). A run that fails is logged and retried at the next tick;
//! the watermark makes the retry pick up exactly where the failed run stopped. Stopping
//! waits for a running export up to a deadline, then abandons it (which is safe: the next
//! run redoes its chunk).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{run, ExportError, ExportOptions, Format};
use crate::store::SharedStore;

/// How long stopping waits for a running export.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// What `railgun serve` exports, where, and how often.
#[derive(Debug, Clone)]
pub struct ExportSchedule {
    /// Destination (folder or object-store URL).
    pub out: String,
    /// Time between two runs.
    pub interval: Duration,
    /// File format.
    pub format: Format,
}

/// A running schedule.
#[derive(Debug)]
pub struct ScheduledExport {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Parses an interval: seconds (`3600`), or a number with `s`, `m`, `h` or `d`.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not an interval (e.g. 3600, 90s, 15m, 1h, 1d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("the export interval must be at least one second".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Records the schedule's destination as an enabled export (watermarks at 0 for every
/// table), so retention holds its rows from now on. The server calls this before its
/// retention job starts; a destination that cannot be opened fails the start.
pub async fn register(store: &SharedStore, schedule: &ExportSchedule) -> Result<(), ExportError> {
    let dest = super::dest::open(&schedule.out)?;
    let tables = super::schema::TABLES
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    store.export_register(dest.id, tables, Some(true)).await?;
    Ok(())
}

impl ScheduledExport {
    /// Starts the schedule over `store`.
    pub fn spawn(store: SharedStore, schedule: ExportSchedule) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            let opts = ExportOptions {
                format: schedule.format,
                hold_retention: Some(true),
                ..ExportOptions::new(schedule.out.clone())
            };
            loop {
                match run(&store, &opts).await {
                    Ok(r) => tracing::info!(
                        rows = r.rows,
                        files = r.files,
                        bytes = r.bytes,
                        destination = %r.destination,
                        "scheduled export ran"
                    ),
                    Err(e) => tracing::error!(error = %e, "scheduled export failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(schedule.interval) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Self { stop, handle }
    }

    /// Stops the schedule: waits for a running export up to [`STOP_GRACE`].
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(STOP_GRACE, &mut handle).await.is_err() {
            tracing::warn!("scheduled export still running at shutdown: abandoned (the next run redoes its chunk)");
            handle.abort();
        }
    }
}
