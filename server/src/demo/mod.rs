//! `railgun demo`: a whole staged rollout on one machine.
//!
//! Owns the simulation: a temporary folder with fresh keys, a fresh SQLite store and the
//! real server on a free loopback port (its clock a [`ManualClock`] the demo moves a day per
//! stage); two releases with real tar.gz artifacts (0.1.0 at 100 %, then 0.2.0 from 10 %
//! with 0.1.0 as fallback); and N installs (tokio tasks, bounded concurrency), each
//! launched once per round through the real client library over real HTTP — update check,
//! download, verification and apply into its own folder, an analytics session through the
//! durable queue and uploader, and a health report. Between rounds the clock advances and
//! the rollout engine is asked to evaluate. At the end every install's files are hashed and
//! compared to the published artifact of the version it runs.
//!
//! It refuses to fake either side: nothing is written into an install folder except by the
//! Updater, and every rollout decision is the server's engine's (see [`control`]).
//!
//! [`run`] reads as its phases, one module each: `setup` (keys, releases), `publish`
//! (server, rollout start, fleet), `simulate` (rounds), `verify` (installed files) and
//! `collect` (the server's counts, the report).

pub mod alerts;
pub mod app;
pub mod artifacts;
mod collect;
pub mod control;
pub mod fleet;
mod publish;
pub mod report;
mod setup;
mod simulate;
pub mod stats;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, Utc};
use railgun_core::clock::{Clock, ManualClock};
use railgun_core::error::PathIoError;
use railgun_core::identity::random_hex_128;

use crate::serve::{self, RunningServer};
use publish::Live;
use report::DemoReport;
use setup::Setup;
use simulate::Simulation;
use verify::Verified;

/// App name of the demo.
pub const APP: &str = "rail-gun";
/// Channel of the demo.
pub const CHANNEL: &str = "stable";

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Building or publishing a release failed.
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
    /// A key could not be made.
    #[error(transparent)]
    Key(#[from] railgun_core::trust::KeyError),
    /// The server did not start.
    #[error(transparent)]
    Serve(#[from] serve::ServeError),
    /// A client store failed.
    #[error(transparent)]
    Store(#[from] railgun_core::store::StoreError),
    /// The update client failed.
    #[error(transparent)]
    Update(#[from] railgun_core::update::UpdaterError),
    /// The update check failed.
    #[error(transparent)]
    Check(#[from] railgun_core::update::CheckError),
    /// The health monitor failed.
    #[error(transparent)]
    Health(#[from] railgun_core::health::HealthError),
    /// The analytics client failed.
    #[error(transparent)]
    Analytics(#[from] railgun_core::analytics::AnalyticsError),
    /// An HTTP request failed.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered an error.
    #[error("{what} answered {status}: {body}")]
    Server {
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// The answer's start.
        body: String,
    },
    /// A task panicked or was cancelled.
    #[error("simulation task failed: {0}")]
    Task(String),
    /// Something the demo refuses.
    #[error("{0}")]
    Invalid(String),
}

impl From<PathIoError> for DemoError {
    fn from(e: PathIoError) -> Self {
        DemoError::Io {
            path: e.path.display().to_string(),
            source: e.source,
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Number of installs.
    pub installs: usize,
    /// Make 0.2.0 crash often (the engine should halt it).
    pub bad_release: bool,
    /// Seed of every random choice (and of the install ids).
    pub seed: u64,
    /// Launches running at once.
    pub concurrency: usize,
    /// Analytics sampling rate (0–1).
    pub sample_rate: f64,
    /// Where to work (default: a new folder in the system's temporary directory).
    pub work_dir: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            installs: 2000,
            bad_release: false,
            seed: 1,
            concurrency: 64,
            sample_rate: 0.2,
            work_dir: None,
        }
    }
}

/// Receives progress (the CLI draws bars; tests ignore it).
pub trait Progress: Send + Sync {
    /// A phase of `total` steps begins.
    fn phase(&self, label: &str, total: u64);
    /// One step done.
    fn inc(&self);
    /// The phase ended; `summary` says how.
    fn done(&self, summary: &str);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str, _: u64) {}
    fn inc(&self) {}
    fn done(&self, _: &str) {}
}

/// The demo's temporary folder, removed on drop unless kept.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn create(given: Option<PathBuf>) -> Result<Self, DemoError> {
        let (path, remove) = match given {
            Some(p) => (p, false),
            None => (
                std::env::temp_dir().join(format!("railgun-demo-{}", &random_hex_128()[..12])),
                true,
            ),
        };
        std::fs::create_dir_all(&path).map_err(|source| DemoError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { path, remove })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the folder after the demo.
    pub fn keep(&mut self) {
        self.remove = false;
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A finished demo whose server still runs.
#[derive(Debug)]
pub struct Demo {
    /// What happened.
    pub report: DemoReport,
    /// The server (stop it, or keep it for `--keep`).
    pub server: RunningServer,
    /// The read token (for the dashboard).
    pub read_token: String,
    /// The admin token.
    pub admin_token: String,
    /// The temporary folder.
    pub work: WorkDir,
}

impl DemoOptions {
    /// Refuses options outside the ranges the demo supports.
    fn check(&self) -> Result<(), DemoError> {
        if self.installs == 0 || self.installs > 100_000 {
            return Err(DemoError::Invalid(format!(
                "--installs {} is outside 1..=100000",
                self.installs
            )));
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(DemoError::Invalid(format!(
                "--sample-rate {} is outside 0..=1",
                self.sample_rate
            )));
        }
        Ok(())
    }
}

/// Runs the whole demo and returns it with the server still running.
///
/// The phases, each in its module: `setup` (keys, releases), `publish` (server, rollout
/// start, fleet), `simulate` (rounds of launches and evaluations), `verify` (installed
/// files against the served artifacts), `collect` (the server's counts and the report).
pub async fn run(opts: &DemoOptions, progress: Arc<dyn Progress>) -> Result<Demo, DemoError> {
    let began = Instant::now();
    opts.check()?;
    let work = WorkDir::create(opts.work_dir.clone())?;
    let dir = work.path();
    let clock = ManualClock::new(demo_start(Utc::now()));
    let setup = Setup::prepare(dir, opts.installs, clock.now(), progress.as_ref())?;
    let live = Live::start(dir, &setup, opts, &clock).await?;
    let sim = Simulation::run(&live, &setup, opts, &clock, &progress).await?;
    let verified = Verified::check(&live, &setup, opts, &sim, progress.as_ref())?;
    let report = collect::report(dir, opts, &setup, &live, sim, verified, began).await?;
    let Live {
        server, control, ..
    } = live;
    Ok(Demo {
        report,
        server,
        read_token: control.read_token,
        admin_token: control.admin_token,
        work,
    })
}

/// The demo's first "now": the current time truncated to the hour.
pub fn demo_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(Duration::hours(1)).unwrap_or(now)
}
