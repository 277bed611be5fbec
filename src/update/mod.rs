//! Updates: the signed documents, the update check, download, install and the Updater.
//!
//! * [`manifest`]: the release manifest (release key) and the shared validation rules;
//! * [`channel`]: the channel state (rollout key);
//! * [`check`]: the verification pipeline that turns a channel URL into a decision;
//! * [`download`]: bounded, hashed, resumable download into staging;
//! * [`install`]: per-format installers, atomic switch, rollback;
//! * [`bootguard`]: reverts a version that cannot start;
//! * [`updater`]: the state machine and its events.

pub mod bootguard;
pub mod channel;
pub mod check;
pub mod delta;
pub mod download;
pub mod install;
pub mod manifest;
pub mod updater;

pub use bootguard::{BootGuard, BootGuardError, RevertRecord, StartupOutcome};
pub use channel::{ChannelState, ReleasePointer, RolloutState, RolloutStatus};
pub use check::{
    AvailableUpdate, CheckError, DecisionReason, UpdateClient, UpdateConfig, UpdateDecision,
    UpdateKind,
};
pub use download::{
    DownloadConfig, DownloadError, Downloaded, Downloader, LockMode, Progress, RetryPolicy,
};
pub use install::{installer_for, InstallError, InstallRoot, Installed, Installer};
pub use manifest::{
    Arch, Artifact, DocumentError, Format, Platform, ReleaseManifest, RolloutPolicy,
};
pub use updater::{
    ArtifactVerifier, InstallMode, UpdateInfo, Updater, UpdaterConfig, UpdaterError, UpdaterEvent,
    UpdaterState,
};
