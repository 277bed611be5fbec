//! The simulated installs. Each one is a folder (`installs/<n>/state` with its own client
//! SQLite store, `installs/<n>/root` with `versions/` and `current`) and, per round, one app
//! launch that goes through the real client library over real HTTP: the [`Updater`]
//! (check → download → verify → apply), an [`Analytics`] session (consent granted, sampled
//! per user) and a [`HealthMonitor`] run (startup, errors and crashes the app noticed,
//! clean shutdown that sends the period's report) for the version that ran.
//!
//! Randomness is a hash of (seed, install, round, purpose) through the one bucketing
//! function, so a run is reproducible with `--seed`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use railgun_core::analytics::{Analytics, Consent, Properties, PropertyValue};
use railgun_core::clock::{Clock, ManualClock, SharedClock};
use railgun_core::health::HealthMonitor;
use railgun_core::identity::bucket;
use railgun_core::store::Store;
use railgun_core::trust::TrustedKeys;
use railgun_core::update::{
    Arch, FallbackReason, Format, InstallMode, InstallRoot, Platform, UpdateClient, UpdateConfig,
    UpdateKind, Updater, UpdaterConfig,
};
use railgun_core::Version;
use sha2::{Digest, Sha256};

use super::stats::Rates;
use super::DemoError;

/// What every install shares.
#[derive(Debug)]
pub struct Fleet {
    /// Server base URL.
    pub url: String,
    /// App name.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// Keys of release manifests.
    pub release_keys: TrustedKeys,
    /// Keys of channel states.
    pub rollout_keys: TrustedKeys,
    /// The demo's clock (the server's too).
    pub clock: ManualClock,
    /// One HTTP client for update checks (its connection pool is shared).
    pub http: reqwest::Client,
    /// Analytics sampling rate.
    pub sample_rate: f64,
    /// Seed of the simulation.
    pub seed: u64,
    /// Rates of the release under rollout.
    pub new_rates: Rates,
    /// Rates of every other version.
    pub old_rates: Rates,
    /// The version under rollout.
    pub new_version: Version,
    /// Where installs live.
    pub dir: PathBuf,
}

/// What one update's download cost, as the Updater reported it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DownloadCost {
    /// Whether a delta patch was applied.
    pub delta: bool,
    /// Bytes downloaded (the patch, or the artifact plus any patch given up on).
    pub downloaded_bytes: u64,
    /// Size of the full artifact.
    pub full_bytes: u64,
    /// Why a patch listed for the installed version was not used.
    pub fallback: Option<FallbackReason>,
}

/// What one launch of one install did.
#[derive(Debug, Clone)]
pub struct LaunchOutcome {
    /// The install.
    pub index: usize,
    /// Version before the launch's update check (`None`: nothing installed).
    pub before: Option<Version>,
    /// Version that ran (after the update).
    pub version: Option<Version>,
    /// `rollout`, `fallback`, `rollback` when an update was applied, else `none`.
    pub update: &'static str,
    /// What the update's download cost (`None`: nothing downloaded).
    pub download: Option<DownloadCost>,
    /// Errors in the session.
    pub errors: u32,
    /// Crashes in the session.
    pub crashes: u32,
    /// Whether the user is inside the analytics sample.
    pub sampled: bool,
    /// Events the server acknowledged.
    pub events_sent: u64,
    /// Whether every health report of the launch was acknowledged (none pending).
    pub health_sent: bool,
    /// A failure, for people.
    pub failure: Option<String>,
    /// Wall time of the steps: store open, update, health start, analytics session,
    /// analytics shutdown, health shutdown.
    pub timings: [std::time::Duration; 6],
}

/// What one session does (moved into the blocking task).
struct Session {
    id: String,
    version: String,
    store: Arc<Store>,
    clock: Arc<InstallClock>,
    minutes: i64,
    messages: u32,
    errors: u32,
    crashes: u32,
}

/// The clock of one install: the demo's clock minus an offset (sessions end at the
/// demo's "now", so nothing the server receives lies in its future).
#[derive(Debug)]
pub struct InstallClock {
    base: ManualClock,
    offset_ms: AtomicI64,
}

impl InstallClock {
    fn new(base: ManualClock, behind: Duration) -> Self {
        Self {
            base,
            offset_ms: AtomicI64::new(-behind.num_milliseconds()),
        }
    }

    fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::AcqRel);
    }
}

impl Clock for InstallClock {
    fn now(&self) -> DateTime<Utc> {
        self.base.now() + Duration::milliseconds(self.offset_ms.load(Ordering::Acquire))
    }
}

/// The install id of install `index` (64 hex: also its health `machineId`).
pub fn install_id(seed: u64, index: usize) -> String {
    hex::encode(Sha256::digest(
        format!("railgun-demo:{seed}:{index}").as_bytes(),
    ))
}

/// The install's folder.
pub fn install_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("{index:05}"))
}

/// A draw in [0, 10 000) for (install, round, purpose).
fn draw(seed: u64, id: &str, round: u32, what: &str) -> u16 {
    bucket(&format!("demo:{seed}:{round}:{what}"), id)
}

fn chance(seed: u64, id: &str, round: u32, what: &str, p: f64) -> bool {
    f64::from(draw(seed, id, round, what)) < p * 10_000.0
}

impl Fleet {
    /// One app launch of install `index` in `round`.
    pub async fn launch(self: &Arc<Self>, index: usize, round: u32) -> LaunchOutcome {
        let mut out = LaunchOutcome {
            index,
            before: None,
            version: None,
            update: "none",
            download: None,
            errors: 0,
            crashes: 0,
            sampled: false,
            events_sent: 0,
            health_sent: false,
            failure: None,
            timings: Default::default(),
        };
        if let Err(e) = self.launch_inner(index, round, &mut out).await {
            out.failure = Some(railgun_core::error::chain(&e).to_string());
        }
        out
    }

    async fn launch_inner(
        self: &Arc<Self>,
        index: usize,
        round: u32,
        out: &mut LaunchOutcome,
    ) -> Result<(), DemoError> {
        let id = install_id(self.seed, index);
        let home = install_dir(&self.dir, index);
        let state = home.join("state");
        let root = InstallRoot::new(home.join("root"));
        let t0 = std::time::Instant::now();
        let db = state.join("railgun.db");
        let store = tokio::task::spawn_blocking(move || Store::open(db))
            .await
            .map_err(|e| DemoError::Task(e.to_string()))??;
        let store = Arc::new(store);
        out.timings[0] = t0.elapsed();

        // Sessions last 5–95 minutes and end at the demo's "now".
        let minutes = 5 + i64::from(draw(self.seed, &id, round, "length") % 90);
        let clock = Arc::new(InstallClock::new(
            self.clock.clone(),
            Duration::minutes(minutes),
        ));
        let shared: SharedClock = clock.clone();

        // 1. Update: check → download → verify → apply.
        let before = root.current_version();
        out.before = before.clone();
        let mut cfg = UpdateConfig::new(
            format!("{}/updates", self.url),
            self.app.clone(),
            self.channel.clone(),
            before.clone().unwrap_or(Version::new(0, 0, 0)),
            self.release_keys.clone(),
        );
        cfg.rollout_keys = Some(self.rollout_keys.clone());
        cfg.platform = Platform::Linux;
        cfg.arch = Arch::X64;
        cfg.formats = vec![Format::TarGz];
        cfg.install_id = Some(id.clone());
        let client = UpdateClient::new(cfg.clone(), store.clone())?
            .with_clock(shared.clone())
            .with_http_client(self.http.clone());
        let updater = Updater::with_client(
            UpdaterConfig::new(cfg, &state, root.path().to_path_buf()),
            client,
        )?;
        if let Some(u) = updater.check_for_updates().await? {
            let d = updater.download_update().await?;
            out.download = Some(DownloadCost {
                delta: d.delta,
                downloaded_bytes: d.downloaded_bytes,
                full_bytes: d.full_bytes,
                fallback: d.fallback.as_ref().map(|f| f.reason),
            });
            updater.install_update(InstallMode::Now).await?;
            out.update = match u.kind {
                UpdateKind::Rollout => "rollout",
                UpdateKind::Fallback => "fallback",
                UpdateKind::Rollback => "rollback",
            };
        }
        out.timings[1] = t0.elapsed() - out.timings[0];
        let Some(version) = root.current_version() else {
            return Ok(()); // nothing to run yet
        };
        out.version = Some(version.clone());

        // 2. The session: analytics (sampled per user) and the health counters.
        let rates = if version == self.new_version {
            self.new_rates
        } else {
            self.old_rates
        };
        out.crashes = u32::from(chance(self.seed, &id, round, "crash", rates.crash));
        out.errors =
            u32::from(out.crashes > 0 || chance(self.seed, &id, round, "error", rates.error));
        let messages = 1 + u32::from(draw(self.seed, &id, round, "messages") % 12);
        let me = self.clone();
        let session = Session {
            id: id.clone(),
            version: version.to_string(),
            store,
            clock,
            minutes,
            messages,
            errors: out.errors,
            crashes: out.crashes,
        };
        let (sampled, sent, health_sent, t) =
            tokio::task::spawn_blocking(move || me.session(session))
                .await
                .map_err(|e| DemoError::Task(e.to_string()))??;
        out.timings[2..].copy_from_slice(&t);
        out.sampled = sampled;
        out.events_sent = sent;
        out.health_sent = health_sent;
        Ok(())
    }

    /// One app session (blocking: the analytics and health clients run their own threads).
    /// Returns (sampled in, events acknowledged, health report acknowledged).
    fn session(
        &self,
        s: Session,
    ) -> Result<(bool, u64, bool, [std::time::Duration; 4]), DemoError> {
        let mut t = [std::time::Duration::ZERO; 4];
        let mut at = std::time::Instant::now();
        let mut lap = |i: usize| {
            let now = std::time::Instant::now();
            t[i] = now - at;
            at = now;
        };
        let Session {
            id,
            version,
            store,
            clock,
            minutes,
            messages,
            errors,
            crashes,
        } = s;
        let id = id.as_str();
        let version = version.as_str();
        let shared: SharedClock = clock.clone();
        let health = HealthMonitor::builder()
            .app(&self.app)
            .version(version)
            .channel(&self.channel)
            .platform("linux")
            .arch("x64")
            .url(&self.url)
            .store(store.clone())
            .clock(shared.clone())
            .install_id(id)
            .default_consent(Consent::Granted)
            .build()?;
        health.on_startup()?;
        lap(0);
        let a = Analytics::builder()
            .app(&self.app)
            .version(version)
            .channel(&self.channel)
            .platform("linux")
            .arch("x64")
            .url(&self.url)
            .store(store)
            .clock(shared)
            .install_id(id)
            .sample_rate(self.sample_rate)
            .default_consent(Consent::Granted)
            .upload_interval(None)
            .heartbeat_interval(None)
            .build()?;
        let sampled = a.is_sampled_in();
        a.screen("chats")?;
        let step = Duration::minutes(minutes) / (messages as i32 + 1);
        for n in 0..messages {
            clock.advance(step);
            let props = Properties::from([
                ("kind".to_string(), PropertyValue::from("text")),
                (
                    "length".to_string(),
                    PropertyValue::from(f64::from(n % 7 * 20)),
                ),
            ]);
            a.track("message_sent", props)?;
            if n % 5 == 4 {
                a.heartbeat();
            }
        }
        if errors > 0 {
            a.track_error("renderer: failed to decode attachment", Properties::new())?;
            health.record_error();
        }
        if crashes > 0 {
            health.record_crash();
        }
        clock.advance(step);
        lap(1);
        let report = a.shutdown()?;
        lap(2);
        let h = health.shutdown()?;
        lap(3);
        // Acknowledged: nothing left waiting (the startup report may have gone already).
        Ok((sampled, report.sent, h.pending == 0 && h.dropped == 0, t))
    }
}
