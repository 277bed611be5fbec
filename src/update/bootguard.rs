//! The boot guard: a new version that cannot start is undone by the next start.
//!
//! The app calls [`BootGuard::on_startup`] first thing, and
//! [`BootGuard::mark_boot_successful`] once it is up. A version that was started
//! [`DEFAULT_MAX_ATTEMPTS`] times without being marked successful is considered broken: the
//! next `on_startup` switches `current` back to the previous version (see
//! [`InstallRoot::rollback`]), remembers the broken version so it is never reverted *to*,
//! and keeps a [`RevertRecord`] until [`BootGuard::take_reverted`] hands it to the health
//! report (which counts a crash for that version).
//!
//! State lives in one small JSON file in the install root (`boot-state.json`), written by
//! temporary file + fsync + rename. It refuses to revert when there is no previous version
//! or the previous one is itself known broken (no ping-pong).

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};

use super::install::{write_atomic, InstallError, InstallRoot};
use crate::clock::{self, SharedClock};

/// Starts without success after which a version is reverted.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The state file's name in the install root.
pub const BOOT_STATE_FILE: &str = "boot-state.json";

/// Why the boot guard failed.
#[derive(Debug, thiserror::Error)]
pub enum BootGuardError {
    /// Reverting failed.
    #[error("boot guard could not revert: {0}")]
    Install(#[from] InstallError),
    /// The state file could not be read or written.
    #[error("boot guard state {path}: {source}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What went wrong (reading, encoding or writing it).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A revert done by the boot guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevertRecord {
    /// The version that failed to start.
    pub from: Version,
    /// The version switched back to.
    pub to: Version,
    /// When.
    pub at: DateTime<Utc>,
}

/// What `on_startup` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupOutcome {
    /// No installed version to guard (not installed through an install root).
    Unmanaged,
    /// The version already started successfully once.
    Confirmed {
        /// The version.
        version: Version,
    },
    /// The version is on trial: this is start number `attempt`.
    Trial {
        /// The version.
        version: Version,
        /// 1-based start count.
        attempt: u32,
    },
    /// The version failed too often and `current` now points to the previous one: the app
    /// should restart itself (it is running the broken version's code).
    Reverted(RevertRecord),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BootState {
    version: Option<Version>,
    attempts: u32,
    successful: bool,
    #[serde(default)]
    broken: Vec<Version>,
    #[serde(default)]
    pending_revert: Option<RevertRecord>,
}

/// Counts starts of the current version and reverts broken ones.
#[derive(Debug, Clone)]
pub struct BootGuard {
    root: InstallRoot,
    state_path: PathBuf,
    max_attempts: u32,
    clock: SharedClock,
}

impl BootGuard {
    /// A guard for the install root at `root` (state in `root/boot-state.json`).
    pub fn new(root: impl AsRef<Path>) -> Self {
        let root = InstallRoot::new(root.as_ref());
        Self {
            state_path: root.path().join(BOOT_STATE_FILE),
            root,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            clock: clock::system(),
        }
    }

    /// Reverts after `n` unsuccessful starts instead of 3.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Uses this clock for revert times.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn load(&self) -> Result<BootState, BootGuardError> {
        match fs::read(&self.state_path) {
            Ok(b) => Ok(serde_json::from_slice(&b).unwrap_or_else(|e| {
                // A torn or foreign file must not stop the app from starting.
                tracing::warn!(path = %self.state_path.display(), error = %e, "boot state unreadable; starting afresh");
                BootState::default()
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BootState::default()),
            Err(e) => Err(self.state_err(e.into())),
        }
    }

    fn save(&self, s: &BootState) -> Result<(), BootGuardError> {
        let json = serde_json::to_vec_pretty(s).map_err(|e| self.state_err(e.into()))?;
        write_atomic(&self.state_path, &json).map_err(|e| self.state_err(e.into()))
    }

    fn state_err(&self, source: Box<dyn std::error::Error + Send + Sync>) -> BootGuardError {
        BootGuardError::State {
            path: self.state_path.clone(),
            source,
        }
    }

    /// Call first thing at startup: counts this start, and reverts a version that failed
    /// `max_attempts` times.
    pub fn on_startup(&self) -> Result<StartupOutcome, BootGuardError> {
        let Some(current) = self.root.current_version() else {
            return Ok(StartupOutcome::Unmanaged);
        };
        let mut s = self.load()?;
        if s.version.as_ref() != Some(&current) {
            s.version = Some(current.clone());
            s.attempts = 0;
            s.successful = false;
        }
        if s.successful {
            return Ok(StartupOutcome::Confirmed { version: current });
        }
        if s.attempts >= self.max_attempts {
            let prev = self.root.previous_version();
            if let Some(prev) = prev.filter(|p| !s.broken.contains(p)) {
                self.root.switch_to(&prev)?;
                let record = RevertRecord {
                    from: current.clone(),
                    to: prev.clone(),
                    at: self.clock.now(),
                };
                tracing::warn!(from = %record.from, to = %record.to, "version failed to start {} times: reverted", s.attempts);
                if !s.broken.contains(&current) {
                    s.broken.push(current);
                }
                s.version = Some(prev);
                s.attempts = 0;
                // The previous version ran before; it is on trial again only if it fails.
                s.successful = true;
                s.pending_revert = Some(record.clone());
                self.save(&s)?;
                return Ok(StartupOutcome::Reverted(record));
            }
        }
        s.attempts = s.attempts.saturating_add(1);
        self.save(&s)?;
        Ok(StartupOutcome::Trial {
            version: current,
            attempt: s.attempts,
        })
    }

    /// Call once the app is up: the current version is good.
    pub fn mark_boot_successful(&self) -> Result<(), BootGuardError> {
        let Some(current) = self.root.current_version() else {
            return Ok(());
        };
        let mut s = self.load()?;
        s.version = Some(current.clone());
        s.attempts = 0;
        s.successful = true;
        s.broken.retain(|v| *v != current);
        self.save(&s)
    }

    /// The revert not yet reported, if any (taken once: the health report counts a crash
    /// for `from`).
    pub fn take_reverted(&self) -> Result<Option<RevertRecord>, BootGuardError> {
        let mut s = self.load()?;
        let r = s.pending_revert.take();
        if r.is_some() {
            self.save(&s)?;
        }
        Ok(r)
    }

    /// Versions known not to start (never reverted to).
    pub fn broken_versions(&self) -> Result<Vec<Version>, BootGuardError> {
        Ok(self.load()?.broken)
    }
}
