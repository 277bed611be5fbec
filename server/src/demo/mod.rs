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

pub mod artifacts;
pub mod control;
pub mod fleet;
pub mod report;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, Utc};
use railgun_core::clock::{Clock, ManualClock};
use railgun_core::error::PathIoError;
use railgun_core::identity::{bucket, in_percentage, random_hex_128, rollout_seed};
use railgun_core::trust::{KeyAlgorithm, PrivateKey, TrustedKeys};
use railgun_core::update::InstallRoot;
use railgun_core::Version;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::serve::{self, App, RunningServer, ServerConfig};
use artifacts::build_release;
use control::{Control, Tally};
use fleet::{Fleet, LaunchOutcome};
use report::{
    AnalyticsDay, AnalyticsSummary, DemoReport, Failure, HealthSummary, InstallDetail, Limits,
    RoundSummary, Verification,
};

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

fn keys_to_files(
    dir: &Path,
    key: &PrivateKey,
    name: &str,
) -> Result<(PathBuf, PathBuf), DemoError> {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    key.write_pem_file(&private)?;
    std::fs::write(&public, key.public_key().to_pem()).map_err(|source| DemoError::Io {
        path: public.display().to_string(),
        source,
    })?;
    Ok((private, public))
}

/// Per install and version: did it ever see an error, a crash.
type Seen = HashMap<Version, HashMap<usize, (bool, bool)>>;

fn tally(seen: &Seen, v: &Version) -> Tally {
    let Some(m) = seen.get(v) else {
        return Tally::default();
    };
    Tally {
        installs: m.len() as u64,
        with_errors: m.values().filter(|(e, _)| *e).count() as u64,
        with_crashes: m.values().filter(|(_, c)| *c).count() as u64,
    }
}

/// Runs the whole demo and returns it with the server still running.
pub async fn run(opts: &DemoOptions, progress: Arc<dyn Progress>) -> Result<Demo, DemoError> {
    let began = Instant::now();
    if opts.installs == 0 || opts.installs > 100_000 {
        return Err(DemoError::Invalid(format!(
            "--installs {} is outside 1..=100000",
            opts.installs
        )));
    }
    if !(0.0..=1.0).contains(&opts.sample_rate) {
        return Err(DemoError::Invalid(format!(
            "--sample-rate {} is outside 0..=1",
            opts.sample_rate
        )));
    }
    let work = WorkDir::create(opts.work_dir.clone())?;
    let dir = work.path().to_path_buf();
    let start = demo_start(Utc::now());
    let clock = ManualClock::new(start);

    // Keys, releases.
    progress.phase("keys and releases", 2);
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir).map_err(|source| DemoError::Io {
        path: keys_dir.display().to_string(),
        source,
    })?;
    let release_key = PrivateKey::generate(KeyAlgorithm::Ed25519)?;
    let rollout_key = Arc::new(PrivateKey::generate(KeyAlgorithm::Ed25519)?);
    let (_, release_pub) = keys_to_files(&keys_dir, &release_key, "release")?;
    let (rollout_file, _) = keys_to_files(&keys_dir, &rollout_key, "rollout")?;
    let policy = stats::policy_for(opts.installs);
    let old_v = Version::new(0, 1, 0);
    let new_v = Version::new(0, 2, 0);
    let builds = dir.join("builds");
    let old = build_release(
        &builds,
        APP,
        CHANNEL,
        &old_v,
        &policy,
        &release_key,
        start - Duration::days(14),
    )?;
    progress.inc();
    let new = build_release(&builds, APP, CHANNEL, &new_v, &policy, &release_key, start)?;
    progress.inc();
    progress.done("0.1.0 and 0.2.0 built and signed");

    // The server.
    let read_token = random_hex_128();
    let admin_token = random_hex_128();
    let config = ServerConfig {
        root: dir.join("tree"),
        database: format!("sqlite:{}", dir.join("data").join("railgun.db").display()),
        read_token: Some(read_token.clone()),
        admin_token: Some(admin_token.clone()),
        run_retention: false,
        clock: Arc::new(clock.clone()),
        rollout_key: Some(rollout_file),
        release_public_keys: vec![release_pub],
        // The demo asks the engine to evaluate after each simulated day.
        rollout_interval: std::time::Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    std::fs::create_dir_all(dir.join("data")).map_err(|source| DemoError::Io {
        path: dir.join("data").display().to_string(),
        source,
    })?;
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let server = App::open(&config).await?.spawn(addr).await?;
    let url = server.url();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency.max(1))
        .build()?;

    let control = Control {
        url: url.clone(),
        admin_token: admin_token.clone(),
        read_token: read_token.clone(),
        http: http.clone(),
        app: APP.into(),
        channel: CHANNEL.into(),
        version: new_v.to_string(),
        old: old.clone(),
        new: new.clone(),
        first: policy.stages[0],
    };
    control.start().await?;

    let fleet = Arc::new(Fleet {
        url: url.clone(),
        app: APP.into(),
        channel: CHANNEL.into(),
        release_keys: TrustedKeys::single(release_key.public_key().clone()),
        rollout_keys: TrustedKeys::single(rollout_key.public_key().clone()),
        clock: clock.clone(),
        http: http.clone(),
        sample_rate: opts.sample_rate,
        seed: opts.seed,
        new_rates: if opts.bad_release {
            stats::BAD
        } else {
            stats::HEALTHY
        },
        old_rates: stats::HEALTHY,
        new_version: new_v.clone(),
        dir: dir.join("installs"),
    });

    // Rounds: every joined install launches once; then a day (12 h when bad) passes and
    // the engine evaluates. 90 % of the installs exist from the start, the rest join in
    // the second round (fresh installs that get whatever the channel serves then).
    let early = (opts.installs * 9 / 10).max(1);
    let step = if opts.bad_release {
        Duration::hours(12)
    } else {
        Duration::hours(24)
    };
    let mut seen: Seen = HashMap::new();
    let mut rounds = Vec::new();
    let mut failures = Vec::new();
    let mut failure_count = 0u64;
    let mut sampled = BTreeSet::new();
    let mut events_sent = 0u64;
    let mut days = BTreeSet::new();
    let mut step_time = [std::time::Duration::ZERO; 6];
    let mut launches = 0u32;
    let max_rounds = policy.stages.len() as u32 + 3;
    let mut last = false;
    for round in 0..max_rounds {
        let joined = if round == 0 { early } else { opts.installs };
        let view = control.view().await?;
        progress.phase(
            &format!(
                "round {} · {} % {} · {} launches",
                round, view.percentage, view.status, joined
            ),
            joined as u64,
        );
        days.insert(clock.now().date_naive());
        let outcomes =
            launch_all(&fleet, joined, round, opts.concurrency, progress.clone()).await?;
        let mut summary = RoundSummary {
            round,
            at: clock.now(),
            percentage: view.percentage,
            status: view.status.clone(),
            launches: joined as u64,
            ..RoundSummary::default()
        };
        for o in &outcomes {
            match o.update {
                "rollout" => summary.updated_to_release += 1,
                "fallback" => summary.updated_to_fallback += 1,
                "rollback" => summary.rolled_back += 1,
                _ => {}
            }
            if let Some(f) = &o.failure {
                failure_count += 1;
                summary.failures += 1;
                if failures.len() < 20 {
                    failures.push(Failure {
                        install: o.index,
                        round,
                        error: f.clone(),
                    });
                }
            }
            if let Some(v) = &o.version {
                *summary.running.entry(v.to_string()).or_default() += 1;
                let e = seen
                    .entry(v.clone())
                    .or_default()
                    .entry(o.index)
                    .or_default();
                e.0 |= o.errors > 0;
                e.1 |= o.crashes > 0;
                summary.health_reports += u64::from(o.health_sent);
            }
            if o.sampled {
                sampled.insert(o.index);
            }
            events_sent += o.events_sent;
            launches += 1;
            for (sum, t) in step_time.iter_mut().zip(o.timings) {
                *sum += t;
            }
        }
        progress.done(&format!(
            "round {round}: {} → {}, {} → {}, {} failed",
            summary.updated_to_release, new_v, summary.updated_to_fallback, old_v, summary.failures
        ));
        if last {
            rounds.push(summary);
            break;
        }
        clock.advance(step);
        control.evaluate().await?;
        let after = control.view().await?;
        summary.percentage_after = Some(after.percentage);
        summary.status_after = Some(after.status.clone());
        rounds.push(summary);
        // One more round after a halt (installs see it, late joiners get the fallback);
        // after completion only if an install is not on the release yet.
        let lagging = outcomes.iter().any(|o| o.version.as_ref() != Some(&new_v));
        match after.status.as_str() {
            "active" => {}
            "complete" if !lagging && joined == opts.installs => break,
            _ => last = true,
        }
    }

    // Verification: every install's files against the published artifact it runs.
    progress.phase("verifying installs", opts.installs as u64);
    let mut verification = Verification::default();
    let mut detail = Vec::with_capacity(opts.installs);
    let mut by_version: BTreeMap<String, u64> = BTreeMap::new();
    let tree_releases = config.root.join(APP).join("releases");
    let expected: HashMap<Version, BTreeMap<String, String>> = {
        let mut m = HashMap::new();
        for r in [&old, &new] {
            // Read back what the server serves, not what was built.
            let served = tree_releases
                .join(r.version.to_string())
                .join(&r.artifact_name);
            m.insert(r.version.clone(), artifacts::archive_digests(&served)?);
        }
        m
    };
    for i in 0..opts.installs {
        let root = InstallRoot::new(fleet::install_dir(&fleet.dir, i).join("root"));
        let v = root.current_version();
        let (ok, reason) = match &v {
            None => (false, Some("nothing installed".to_string())),
            Some(v) => match expected.get(v) {
                None => (
                    false,
                    Some(format!("runs {v}, neither {new_v} nor {old_v}")),
                ),
                Some(files) => match compare_files(&root.version_dir(v), files) {
                    Ok(()) => (true, None),
                    Err(r) => (false, Some(r)),
                },
            },
        };
        let label = v
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "none".into());
        *by_version.entry(label.clone()).or_default() += 1;
        verification.installs += 1;
        if ok {
            verification.verified += 1;
            if v.as_ref() == Some(&new_v) {
                verification.on_release += 1;
            } else {
                verification.on_fallback += 1;
            }
        } else if verification.failed.len() < 20 {
            verification.failed.push(Failure {
                install: i,
                round: rounds.len() as u32,
                error: reason.clone().unwrap_or_default(),
            });
        }
        detail.push(InstallDetail {
            install: i,
            install_id: fleet::install_id(opts.seed, i)[..16].to_string(),
            version: label,
            files_verified: ok,
            reason,
        });
        progress.inc();
    }
    verification.all_verified = verification.verified == verification.installs;
    // Late joiners inside the first stage's cohort: on the release when healthy, on the
    // fallback when the release was halted before they came.
    let cohort_seed = rollout_seed(APP, CHANNEL, &new_v.to_string());
    let late_cohort: Vec<&InstallDetail> = detail[early..]
        .iter()
        .filter(|d| {
            in_percentage(
                bucket(&cohort_seed, &fleet::install_id(opts.seed, d.install)),
                policy.stages[0],
            )
        })
        .collect();
    let late_in_first_stage = late_cohort.len() as u64;
    let late_in_first_stage_on_fallback = late_cohort
        .iter()
        .filter(|d| d.version == old_v.to_string())
        .count() as u64;
    progress.done(&format!(
        "{} of {} installs hash-match their artifact",
        verification.verified, verification.installs
    ));

    // Analytics, as the server counts it.
    let mut analytics = AnalyticsSummary {
        sample_rate: opts.sample_rate,
        sampled_installs: sampled.len() as u64,
        events_sent,
        days: Vec::new(),
    };
    for d in &days {
        analytics
            .days
            .push(analytics_day(&http, &url, &read_token, &d.to_string()).await?);
    }

    let mut health = BTreeMap::new();
    for (v, _) in seen.iter() {
        let t = tally(&seen, v);
        health.insert(v.to_string(), HealthSummary::of(t));
    }
    let decisions = control.decisions().await?;
    let fin = control.view().await?;
    let report = DemoReport {
        scenario: if opts.bad_release { "bad" } else { "healthy" },
        app: APP.into(),
        channel: CHANNEL.into(),
        version: new_v.to_string(),
        fallback_version: old_v.to_string(),
        final_status: fin.status,
        final_percentage: fin.percentage,
        limits: Limits::of(&policy),
        installs: report::Installs {
            total: opts.installs as u64,
            joined_late: (opts.installs - early) as u64,
            late_in_first_stage,
            late_in_first_stage_on_fallback,
            by_version,
        },
        rounds,
        health,
        analytics,
        decisions,
        verification,
        launch_failures: failure_count,
        failures,
        url: url.clone(),
        dashboard_url: format!("{url}/dashboard#token={read_token}"),
        work_dir: dir.display().to_string(),
        seed: opts.seed,
        wall_seconds: began.elapsed().as_secs_f64(),
        mean_step_ms: report::StepTimes::mean(&step_time, launches),
        installs_detail: detail,
    };
    Ok(Demo {
        report,
        server,
        read_token,
        admin_token,
        work,
    })
}

/// Compares the files under `dir` with `expected` (relative path → SHA-256), both ways.
fn compare_files(dir: &Path, expected: &BTreeMap<String, String>) -> Result<(), String> {
    for (rel, sha) in expected {
        let p = dir.join(rel);
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let got = hex::encode(Sha256::digest(&bytes));
        if &got != sha {
            return Err(format!("{rel}: sha256 {got}, artifact has {sha}"));
        }
    }
    let mut count = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                count += 1;
            }
        }
    }
    if count != expected.len() {
        return Err(format!(
            "{count} files installed, the artifact has {}",
            expected.len()
        ));
    }
    Ok(())
}

async fn launch_all(
    fleet: &Arc<Fleet>,
    joined: usize,
    round: u32,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<Vec<LaunchOutcome>, DemoError> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..joined {
        let fleet = fleet.clone();
        let sem = sem.clone();
        let progress = progress.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let o = fleet.launch(i, round).await;
            progress.inc();
            o
        });
    }
    let mut out = Vec::with_capacity(joined);
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| DemoError::Task(e.to_string()))?);
    }
    out.sort_by_key(|o| o.index);
    Ok(out)
}

async fn analytics_day(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    date: &str,
) -> Result<AnalyticsDay, DemoError> {
    let get = |path: String| async move {
        let r = http
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(DemoError::Server {
                what: format!("GET {path}"),
                status: status.as_u16(),
                body: v.to_string(),
            });
        }
        Ok::<_, DemoError>(v)
    };
    let dau = get(format!("/analytics/dau?date={date}")).await?;
    let sessions = get(format!("/analytics/sessions?date={date}")).await?;
    Ok(AnalyticsDay {
        date: date.to_string(),
        dau: dau["users"].as_u64().unwrap_or(0),
        dau_estimate: dau["estimate"].as_f64().unwrap_or(0.0),
        sessions: sessions["count"].as_u64().unwrap_or(0),
        sessions_estimate: sessions["estimate"].as_f64().unwrap_or(0.0),
    })
}

/// The demo's first "now": the current time truncated to the hour.
pub fn demo_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(Duration::hours(1)).unwrap_or(now)
}
