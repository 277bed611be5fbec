//! Updates: the signed documents, the update check, download, install and the Updater.
//!
//! * [`manifest`]: the release manifest (release key) and the shared validation rules;
//! * [`channel`]: the channel state (rollout key);
//! * [`check`]: the verification pipeline that turns a channel URL into a decision;
//! * [`download`]: bounded, hashed, resumable download into staging;
//! * [`delta`]: delta patches, made by the publisher and applied by the updater to the kept
//!   copy of the installed artifact;
//! * [`install`]: per-format installers, atomic switch, rollback;
//! * [`bootguard`]: reverts a version that cannot start;
//! * [`updater`]: the state machine and its events.

mod bootguard;
mod channel;
mod check;
pub mod delta;
mod download;
mod install;
mod manifest;
mod updater;

pub use bootguard::{
    BootGuard, BootGuardError, RevertRecord, StartupOutcome, BOOT_STATE_FILE, DEFAULT_MAX_ATTEMPTS,
};
pub use channel::{ChannelState, ReleasePointer, RolloutState, RolloutStatus};
pub use check::{
    channel_url, check_digest, check_expiry, check_identity, check_version, choose_target,
    fetch_document, join_url, verify_channel_state, verify_document, verify_manifest,
    AvailableUpdate, CheckError, DecisionReason, TargetChoice, UpdateClient, UpdateConfig,
    UpdateDecision, UpdateKind, MAX_CHANNEL_STATE_BYTES, MAX_MANIFEST_BYTES,
};
pub use delta::{DeltaConfig, FallbackReason, KeptBase};
pub use download::{
    file_name_for, hash_file, parse_content_range, parse_digest, resume_headers, resume_offset,
    DownloadConfig, DownloadError, Downloaded, Downloader, LockMode, Progress, Resume, RetryPolicy,
    StagingLock, LOCK_FILE, PART_SUFFIX, PROGRESS_INTERVAL,
};
pub use install::{
    extract_tar_gz, extract_zip, installer_for, sanitize_entry_path, AppImageInstaller,
    ArchiveInstaller, InstallError, InstallRoot, Installed, Installer, UnsupportedInstaller,
    CURRENT, PREVIOUS, VERSIONS,
};
pub use manifest::{
    check_stages, check_url, is_sha256_hex, is_valid_app_name, is_valid_channel, Arch, Artifact,
    DocumentError, Format, Patch, Platform, ReleaseManifest, RolloutPolicy, KNOWN_CHANNELS,
    MAX_ARTIFACTS, MAX_ARTIFACT_SIZE, MAX_PATCHES, MAX_STAGES, SCHEMA_VERSION,
};
pub use updater::{
    ArtifactVerifier, DeltaFallback, InstallMode, UpdateDownload, UpdateFileInfo, UpdateInfo,
    UpdateProgress, Updater, UpdaterConfig, UpdaterError, UpdaterEvent, UpdaterState,
    EVENT_CAPACITY,
};
