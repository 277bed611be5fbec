//! The demo's second phase: the real server, the releases published to it, the fleet.
//!
//! Owns starting the server on a free loopback port over a fresh SQLite store (its clock the
//! demo's [`ManualClock`], its rollout key and release trust anchor the ones [`Setup`] made),
//! publishing 0.1.0 at 100 % and starting 0.2.0 at the first stage through [`Control`] (the
//! admin API, never the store), and describing the fleet of installs that will launch against
//! it. It refuses to run the rollout engine on its own timer: the simulation asks it to
//! evaluate after each simulated day.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use railgun_core::clock::ManualClock;
use railgun_core::error::IoContext;
use railgun_core::identity::random_hex_128;
use railgun_core::trust::TrustedKeys;

use super::alerts::AlertReceiver;
use super::control::Control;
use super::fleet::Fleet;
use super::setup::Setup;
use super::{stats, DemoError, DemoOptions, APP, CHANNEL};
use crate::serve::{App, RunningServer, ServerConfig};

/// The running server, the handle that drives its rollout, and the fleet.
pub(super) struct Live {
    /// The server (the demo hands it to the caller at the end).
    pub(super) server: RunningServer,
    /// Drives and reads the rollout over HTTP; holds the URL and both tokens.
    pub(super) control: Control,
    /// The installs.
    pub(super) fleet: Arc<Fleet>,
    /// The server's release tree (what it serves, read back by the verification).
    pub(super) tree: PathBuf,
    /// Receives the server's alerts (a JSON webhook in this process).
    pub(super) alerts: AlertReceiver,
}

impl Live {
    /// Starts the server under `dir`, publishes both releases and starts the rollout.
    pub(super) async fn start(
        dir: &Path,
        setup: &Setup,
        opts: &DemoOptions,
        clock: &ManualClock,
    ) -> Result<Self, DemoError> {
        let read_token = random_hex_128();
        let admin_token = random_hex_128();
        let data = dir.join("data");
        let alerts = AlertReceiver::start().await?;
        let config = ServerConfig {
            root: dir.join("tree"),
            database: format!("sqlite:{}", data.join("railgun.db").display()),
            read_token: Some(read_token.clone()),
            admin_token: Some(admin_token.clone()),
            run_retention: false,
            clock: Arc::new(clock.clone()),
            rollout_key: Some(setup.rollout_file.clone()),
            release_public_keys: vec![setup.release_pub.clone()],
            // The demo asks the engine to evaluate after each simulated day.
            rollout_interval: std::time::Duration::from_secs(3600),
            alerts: alerts.config(),
            // Every simulated install shares this machine's address: one client to a limiter.
            rate_limit: crate::ratelimit::RateLimit {
                enabled: false,
                ..crate::ratelimit::RateLimit::default()
            },
            ..ServerConfig::default()
        };
        std::fs::create_dir_all(&data).at(&data)?;
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let server = App::open(&config).await?.spawn(addr).await?;
        let url = server.url();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(opts.concurrency.max(1))
            .build()?;

        let control = Control {
            url: url.clone(),
            admin_token,
            read_token,
            http: http.clone(),
            app: APP.into(),
            channel: CHANNEL.into(),
            version: setup.new.version.to_string(),
            old: setup.old.clone(),
            new: setup.new.clone(),
            first: setup.policy.stages[0],
        };
        control.start().await?;

        let fleet = Arc::new(Fleet {
            url,
            app: APP.into(),
            channel: CHANNEL.into(),
            release_keys: TrustedKeys::single(setup.release_key.public_key().clone()),
            rollout_keys: TrustedKeys::single(setup.rollout_key.public_key().clone()),
            clock: clock.clone(),
            http,
            sample_rate: opts.sample_rate,
            seed: opts.seed,
            new_rates: if opts.bad_release {
                stats::BAD
            } else {
                stats::HEALTHY
            },
            old_rates: stats::HEALTHY,
            new_version: setup.new.version.clone(),
            dir: dir.join("installs"),
        });
        Ok(Self {
            server,
            control,
            fleet,
            tree: config.root,
            alerts,
        })
    }
}
