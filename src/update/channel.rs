//! The channel state (signed by the rollout key): which release a channel offers, to what
//! share of installs, with which fallback, and which versions may be rolled back from.
//!
//! Owns the wire type `{schema:1, app, channel, sequence, issuedAt, expiresAt, release,
//! rollout, fallback?, rollbackFrom?}` of DESIGN.md and its validation. The freshness
//! checks (expiry, sequence) live in [`crate::update::UpdateClient`], where the clock and the
//! store are.

use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};

use super::manifest::{
    check_url, invalid, is_sha256_hex, validate_app, validate_channel, validate_sha256,
    DocumentError, SCHEMA_VERSION,
};
use crate::trust::{SignedDocument, PAYLOAD_CHANNEL};

/// A pointer from a channel state to a signed release manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePointer {
    /// The release's version (the manifest must say the same).
    pub version: Version,
    /// URL of the manifest envelope (absolute, or relative to the channel state's URL).
    pub manifest: String,
    /// SHA-256 of the manifest envelope's bytes exactly as served.
    pub manifest_sha256: String,
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutStatus {
    /// Spreading to `percentage` of installs.
    Active,
    /// Stopped: installs get the fallback.
    Halted,
    /// Done: every install gets the release.
    Complete,
}

impl RolloutStatus {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RolloutStatus::Active => "active",
            RolloutStatus::Halted => "halted",
            RolloutStatus::Complete => "complete",
        }
    }
}

impl std::str::FromStr for RolloutStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "halted" => Ok(Self::Halted),
            "complete" => Ok(Self::Complete),
            _ => Err(format!(
                "unknown rollout status {s:?} (active, halted, complete)"
            )),
        }
    }
}

/// The rollout part of a channel state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutState {
    /// Share of installs (0–100, fractions allowed) that get the release.
    pub percentage: f64,
    /// Active, halted or complete.
    pub status: RolloutStatus,
}

/// A signed statement of what a channel offers now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelState {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// App name.
    pub app: String,
    /// Channel name.
    pub channel: String,
    /// Increases with every new state; clients refuse a lower one than they saw.
    pub sequence: u64,
    /// When it was signed.
    pub issued_at: DateTime<Utc>,
    /// After this, clients refuse it (freeze attack).
    pub expires_at: DateTime<Utc>,
    /// The release on offer.
    pub release: ReleasePointer,
    /// Who gets it.
    pub rollout: RolloutState,
    /// What installs outside the rollout (or of a halted one) get, if newer than theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<ReleasePointer>,
    /// Installed versions allowed to move to a lower version (signed rollback).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback_from: Vec<Version>,
}

impl SignedDocument for ChannelState {
    const DOC: &'static str = "channel state";
    const PAYLOAD_TYPE: &'static str = PAYLOAD_CHANNEL;
    type Error = DocumentError;

    fn malformed(message: String) -> DocumentError {
        DocumentError::Malformed {
            document: Self::DOC,
            message,
        }
    }

    /// Checks every rule of the channel state.
    fn validate(&self) -> Result<(), DocumentError> {
        let d = Self::DOC;
        if self.schema != SCHEMA_VERSION {
            return Err(DocumentError::UnsupportedSchema {
                document: d,
                found: self.schema,
            });
        }
        validate_app(d, &self.app)?;
        validate_channel(d, "channel", &self.channel)?;
        if self.expires_at <= self.issued_at {
            return Err(invalid(d, "expiresAt", "must be after issuedAt"));
        }
        let p = self.rollout.percentage;
        if !p.is_finite() || !(0.0..=100.0).contains(&p) {
            return Err(invalid(d, "rollout.percentage", "must lie within [0, 100]"));
        }
        for (name, ptr) in std::iter::once(("release", &self.release))
            .chain(self.fallback.iter().map(|f| ("fallback", f)))
        {
            // Field names are formatted only on the error path.
            check_url(&ptr.manifest)
                .map_err(|reason| invalid(d, &format!("{name}.manifest"), reason))?;
            if !is_sha256_hex(&ptr.manifest_sha256) {
                validate_sha256(d, &format!("{name}.manifestSha256"), &ptr.manifest_sha256)?;
            }
        }
        if let Some(f) = &self.fallback {
            if f.version == self.release.version {
                return Err(invalid(
                    d,
                    "fallback.version",
                    "the fallback must be another version than the release",
                ));
            }
        }
        if self.rollback_from.len() > 100 {
            return Err(invalid(d, "rollbackFrom", "more than 100 versions"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ChannelState {
        ChannelState {
            schema: 1,
            app: "app".into(),
            channel: "stable".into(),
            sequence: 3,
            issued_at: "2026-01-01T00:00:00Z".parse().expect("t"),
            expires_at: "2026-01-08T00:00:00Z".parse().expect("t"),
            release: ReleasePointer {
                version: Version::new(0, 2, 0),
                manifest: "../releases/0.2.0/manifest.json".into(),
                manifest_sha256: "0".repeat(64),
            },
            rollout: RolloutState {
                percentage: 10.0,
                status: RolloutStatus::Active,
            },
            fallback: None,
            rollback_from: vec![],
        }
    }

    #[test]
    fn wire_shape() {
        let json = serde_json::to_value(state()).expect("json");
        assert_eq!(json["release"]["manifestSha256"], "0".repeat(64));
        assert_eq!(json["rollout"]["status"], "active");
        assert!(json.get("rollbackFrom").is_none());
        let mut s = state();
        s.rollback_from = vec![Version::new(0, 3, 0)];
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["rollbackFrom"][0], "0.3.0");
    }

    #[test]
    fn validation() {
        state().validate().expect("valid");
        let mut s = state();
        s.rollout.percentage = 101.0;
        assert!(s.validate().is_err());
        let mut s = state();
        s.expires_at = s.issued_at;
        assert!(s.validate().is_err());
        let mut s = state();
        s.release.manifest_sha256 = "xyz".into();
        assert!(s.validate().is_err());
        let mut s = state();
        s.fallback = Some(s.release.clone());
        assert!(s.validate().is_err());
        assert!(ChannelState::from_verified_payload(br#"{"schema":1}"#).is_err());
    }
}
