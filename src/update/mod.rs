//! Updates: the signed documents, the update check, and (later) download and install.
//!
//! * [`manifest`]: the release manifest (release key) and the shared validation rules;
//! * [`channel`]: the channel state (rollout key);
//! * [`check`]: the verification pipeline that turns a channel URL into a decision.

pub mod channel;
pub mod check;
pub mod download;
pub mod install;
pub mod manifest;
pub mod updater;

pub use channel::{ChannelState, ReleasePointer, RolloutState, RolloutStatus};
pub use check::{
    AvailableUpdate, CheckError, DecisionReason, UpdateClient, UpdateConfig, UpdateDecision,
    UpdateKind,
};
pub use manifest::{
    Arch, Artifact, DocumentError, Format, Platform, ReleaseManifest, RolloutPolicy,
};
