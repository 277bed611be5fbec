//! The demo's first phase: keys and the two signed releases, made in the work folder.
//!
//! Owns everything that exists before the server starts: a fresh Ed25519 release key and
//! rollout key (written as PEM files the server reads), the rollout policy sized for the
//! number of installs, and the two releases with real tar.gz artifacts (0.1.0 dated two
//! weeks back, 0.2.0 dated now, the next version of the same app with a delta patch from
//! 0.1.0). It refuses to reuse keys or builds from an earlier run:
//! each demo signs its own.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use railgun_core::error::IoContext;
use railgun_core::trust::{KeyAlgorithm, PrivateKey};
use railgun_core::update::RolloutPolicy;
use railgun_core::Version;

use super::artifacts::{build_release, BuiltRelease, ReleaseSpec, DEMO_APP};
use super::{stats, DemoError, Progress, APP, CHANNEL};

/// Keys, policy and releases of one demo.
pub(super) struct Setup {
    /// Signs the release manifests.
    pub(super) release_key: PrivateKey,
    /// Signs the channel state the server publishes.
    pub(super) rollout_key: PrivateKey,
    /// The release key's public PEM file (the server's trust anchor for uploads).
    pub(super) release_pub: PathBuf,
    /// The rollout key's private PEM file (the server signs with it).
    pub(super) rollout_file: PathBuf,
    /// Stages and limits, sized for the number of installs.
    pub(super) policy: RolloutPolicy,
    /// 0.1.0: everybody's version at the start, then the fallback.
    pub(super) old: BuiltRelease,
    /// 0.2.0: the release under rollout, with a patch from 0.1.0.
    pub(super) new: BuiltRelease,
}

impl Setup {
    /// Makes the keys under `dir/keys` and the releases under `dir/builds`.
    pub(super) fn prepare(
        dir: &Path,
        installs: usize,
        start: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> Result<Self, DemoError> {
        progress.phase("keys and releases", 2);
        let keys_dir = dir.join("keys");
        std::fs::create_dir_all(&keys_dir).at(&keys_dir)?;
        let release_key = PrivateKey::generate(KeyAlgorithm::Ed25519)?;
        let rollout_key = PrivateKey::generate(KeyAlgorithm::Ed25519)?;
        let (_, release_pub) = keys_to_files(&keys_dir, &release_key, "release")?;
        let (rollout_file, _) = keys_to_files(&keys_dir, &rollout_key, "rollout")?;
        let policy = stats::policy_for(installs);
        let builds = dir.join("builds");
        let spec = |version: Version, build: u32, bases| ReleaseSpec {
            app: APP,
            channel: CHANNEL,
            shape: DEMO_APP,
            version,
            build,
            bases,
            policy: Some(policy.clone()),
            released_at: start,
        };
        let old = build_release(
            &builds,
            &ReleaseSpec {
                released_at: start - Duration::days(14),
                ..spec(Version::new(0, 1, 0), 0, &[])
            },
            &release_key,
        )?;
        progress.inc();
        let new = build_release(
            &builds,
            &spec(Version::new(0, 2, 0), 1, &[&old]),
            &release_key,
        )?;
        progress.inc();
        progress.done("0.1.0 and 0.2.0 (with its patch from 0.1.0) built and signed");
        Ok(Self {
            release_key,
            rollout_key,
            release_pub,
            rollout_file,
            policy,
            old,
            new,
        })
    }
}

/// Writes `name.key` (private) and `name.pub` (public) and returns both paths.
fn keys_to_files(
    dir: &Path,
    key: &PrivateKey,
    name: &str,
) -> Result<(PathBuf, PathBuf), DemoError> {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    key.write_pem_file(&private)?;
    std::fs::write(&public, key.public_key().to_pem()).at(&public)?;
    Ok((private, public))
}
