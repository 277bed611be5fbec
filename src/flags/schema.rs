//! The remote config document: the seed's JSON, parsed strictly but tolerantly.
//!
//! Owns the wire type `{version, lastUpdated, emergencyKillSwitch, emergencyMessage,
//! flags: [{key, enabled, rolloutPercentage, minVersion, maxVersion?, platforms?, channels?,
//! variants?: [{name, weight}], description}], announcements: [{id, type, title, message,
//! dismissible, showOnce, startTime?, endTime?, minVersion?, maxVersion?}], maintenance:
//! {active, message, startTime, endTime, allowReadOnly}}` and its signing helper
//! [`sign_config`] (DSSE, payload type [`PAYLOAD_CONFIG`]).
//!
//! Unknown fields are kept (in `extra`) so a newer server never breaks an older client; a
//! known field with a wrong type is an error that names the field. It refuses duplicate flag
//! or announcement ids and documents with absurd sizes.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Deserializer, Serialize};

use crate::trust::{DsseError, Envelope, PrivateKey, PAYLOAD_CONFIG};

/// Most flags one config may hold.
pub const MAX_FLAGS: usize = 10_000;
/// Most announcements one config may hold.
pub const MAX_ANNOUNCEMENTS: usize = 1_000;
/// Most variants one flag may hold.
pub const MAX_VARIANTS: usize = 100;

/// Why a config document was refused by the parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The JSON does not have the config's shape (a wrong type names the field).
    #[error("malformed remote config: {message}")]
    Malformed {
        /// serde's description, naming the field and position.
        message: String,
    },
    /// A field breaks a rule.
    #[error("remote config: invalid {field}: {reason}")]
    Invalid {
        /// The field (JSON path).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// The whole remote config document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RemoteConfig {
    /// Version of the document (a string or a number in the seed).
    #[serde(default, deserialize_with = "string_or_number")]
    pub version: String,
    /// When the document was last edited (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// When true, every flag evaluates to off.
    #[serde(default)]
    pub emergency_kill_switch: bool,
    /// Message to show while the kill switch is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_message: Option<String>,
    /// The flags.
    #[serde(default)]
    pub flags: Vec<Flag>,
    /// The announcements.
    #[serde(default)]
    pub announcements: Vec<Announcement>,
    /// The maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One feature flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    /// The flag's key.
    pub key: String,
    /// Whether the flag is on at all.
    #[serde(default)]
    pub enabled: bool,
    /// Share of users (0–100, fractions allowed) who get it; default 100.
    #[serde(default = "hundred")]
    pub rollout_percentage: f64,
    /// Lowest app version (inclusive) that gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// Highest app version (inclusive) that gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
    /// Platforms (`darwin`, `win32`, `linux`) that get it; none = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<String>>,
    /// Channels (`stable`, `beta`, …) that get it; none = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// A/B variants, chosen by weight.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// What the flag is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One A/B variant of a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// The variant's name.
    pub name: String,
    /// Its relative weight (≥ 0).
    pub weight: f64,
}

/// One announcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Announcement {
    /// Its id (dismissals are kept by id).
    pub id: String,
    /// Its kind (`info`, `warning`, `critical`, … as the app understands them).
    #[serde(rename = "type", default = "info")]
    pub kind: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Message.
    #[serde(default)]
    pub message: String,
    /// Whether the user may dismiss it.
    #[serde(default = "yes")]
    pub dismissible: bool,
    /// Whether it is shown in one session only, never again.
    #[serde(default)]
    pub show_once: bool,
    /// Not shown before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// Not shown after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// Lowest app version (inclusive) that sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// Highest app version (inclusive) that sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// Maintenance is on now, whatever the window says.
    #[serde(default)]
    pub active: bool,
    /// Message to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Start of the window (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// End of the window (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// Whether the app may keep working read-only during maintenance.
    #[serde(default)]
    pub allow_read_only: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn hundred() -> f64 {
    100.0
}

fn yes() -> bool {
    true
}

fn info() -> String {
    "info".into()
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SoN {
        S(String),
        N(serde_json::Number),
    }
    match Option::<SoN>::deserialize(d)? {
        Some(SoN::S(s)) => Ok(s),
        Some(SoN::N(n)) => Ok(n.to_string()),
        None => Ok(String::new()),
    }
}

impl RemoteConfig {
    /// Parses and validates a config from (verified) JSON bytes.
    ///
    /// ```
    /// use railgun_core::flags::RemoteConfig;
    /// let c = RemoteConfig::parse(br#"{"version":"1","flags":[{"key":"a","enabled":true}]}"#).unwrap();
    /// assert_eq!(c.flags[0].rollout_percentage, 100.0);
    /// let e = RemoteConfig::parse(br#"{"flags":[{"key":"a","enabled":"yes"}]}"#).unwrap_err();
    /// assert!(e.to_string().contains("flags[0].enabled"));
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<Self, SchemaError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let c: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            SchemaError::Malformed {
                message: if path == "." {
                    inner.to_string()
                } else {
                    format!("field {path}: {inner}")
                },
            }
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the rules the types cannot express.
    pub fn validate(&self) -> Result<(), SchemaError> {
        let invalid = |field: String, reason: String| SchemaError::Invalid { field, reason };
        if self.flags.len() > MAX_FLAGS {
            return Err(invalid(
                "flags".into(),
                format!("{} flags, at most {MAX_FLAGS}", self.flags.len()),
            ));
        }
        if self.announcements.len() > MAX_ANNOUNCEMENTS {
            return Err(invalid(
                "announcements".into(),
                format!(
                    "{} announcements, at most {MAX_ANNOUNCEMENTS}",
                    self.announcements.len()
                ),
            ));
        }
        let mut keys = HashSet::new();
        for (i, f) in self.flags.iter().enumerate() {
            if f.key.is_empty() {
                return Err(invalid(format!("flags[{i}].key"), "empty".into()));
            }
            if !keys.insert(f.key.as_str()) {
                return Err(invalid(
                    format!("flags[{i}].key"),
                    format!("duplicate flag key {:?}", f.key),
                ));
            }
            if f.variants.len() > MAX_VARIANTS {
                return Err(invalid(
                    format!("flags[{i}].variants"),
                    format!("{} variants, at most {MAX_VARIANTS}", f.variants.len()),
                ));
            }
            for (j, v) in f.variants.iter().enumerate() {
                if !v.weight.is_finite() || v.weight < 0.0 {
                    return Err(invalid(
                        format!("flags[{i}].variants[{j}].weight"),
                        format!("{} is not a finite weight ≥ 0", v.weight),
                    ));
                }
            }
        }
        let mut ids = HashSet::new();
        for (i, a) in self.announcements.iter().enumerate() {
            if !ids.insert(a.id.as_str()) {
                return Err(invalid(
                    format!("announcements[{i}].id"),
                    format!("duplicate announcement id {:?}", a.id),
                ));
            }
        }
        Ok(())
    }
}

/// Parses a version bound leniently: `1.2.3`, `1.2.3-beta.1`, `v1.2`, `1` (missing parts are 0).
pub fn parse_version_bound(s: &str) -> Option<Version> {
    let s = s.trim();
    let s = s.strip_prefix('v').unwrap_or(s);
    if let Ok(v) = Version::parse(s) {
        return Some(v);
    }
    // "1" or "1.2", optionally with a pre-release or build suffix.
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut padded = parts.join(".");
    for _ in parts.len()..3 {
        padded.push_str(".0");
    }
    Version::parse(&format!("{padded}{rest}")).ok()
}

/// Signs a config document (JSON bytes) as a DSSE envelope of type
/// `application/vnd.railgun.config+json` with every key in `keys`.
///
/// The bytes are checked to be a valid config first, so a broken document is never signed.
pub fn sign_config(config_json: &[u8], keys: &[&PrivateKey]) -> Result<Envelope, SignConfigError> {
    RemoteConfig::parse(config_json)?;
    Ok(Envelope::sign(PAYLOAD_CONFIG, config_json, keys)?)
}

/// Why [`sign_config`] refused.
#[derive(Debug, thiserror::Error)]
pub enum SignConfigError {
    /// The document is not a valid config.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// Signing failed.
    #[error(transparent)]
    Dsse(#[from] DsseError),
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
      "version": "1.0.0",
      "lastUpdated": "2026-01-01T00:00:00Z",
      "emergencyKillSwitch": false,
      "emergencyMessage": null,
      "flags": [
        {"key": "new-composer", "enabled": true, "rolloutPercentage": 50,
         "minVersion": "1.2.0", "description": "The new composer", "owner": "team-x"}
      ],
      "announcements": [
        {"id": "a1", "type": "info", "title": "Hi", "message": "Hello",
         "dismissible": true, "showOnce": false}
      ],
      "maintenance": {"active": false, "message": "", "startTime": null, "endTime": null,
                      "allowReadOnly": true},
      "futureField": {"x": 1}
    }"#;

    #[test]
    fn parses_the_seed_shape_and_keeps_unknown_fields() {
        let c = RemoteConfig::parse(SEED.as_bytes()).expect("parse");
        assert_eq!(c.version, "1.0.0");
        assert_eq!(c.flags[0].rollout_percentage, 50.0);
        assert_eq!(c.flags[0].extra["owner"], "team-x");
        assert_eq!(c.extra["futureField"]["x"], 1);
        assert!(c.maintenance.as_ref().expect("m").allow_read_only);
        // Round trip keeps the unknown fields.
        let again = RemoteConfig::parse(&serde_json::to_vec(&c).expect("ser")).expect("parse");
        assert_eq!(again, c);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = RemoteConfig::parse(br#"{"flags":[{"key":"a","rolloutPercentage":"half"}]}"#)
            .expect_err("wrong type");
        assert!(e.to_string().contains("flags[0].rolloutPercentage"), "{e}");
        let e = RemoteConfig::parse(br#"{"maintenance":{"startTime":"tomorrow"}}"#)
            .expect_err("bad time");
        assert!(e.to_string().contains("maintenance.startTime"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = RemoteConfig::parse(br#"{"flags":[{"key":"a"},{"key":"a"}]}"#).expect_err("dup");
        assert!(matches!(e, SchemaError::Invalid { ref field, .. } if field == "flags[1].key"));
    }

    #[test]
    fn numeric_version_is_accepted() {
        assert_eq!(
            RemoteConfig::parse(br#"{"version":3}"#).expect("p").version,
            "3"
        );
    }

    #[test]
    fn sign_config_refuses_a_broken_document_and_signs_a_good_one() {
        use crate::trust::{KeyAlgorithm, TrustedKeys};
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
        assert!(matches!(
            sign_config(br#"{"flags": 3}"#, &[&key]),
            Err(SignConfigError::Schema(_))
        ));
        let env = sign_config(SEED.as_bytes(), &[&key]).expect("sign");
        assert_eq!(env.payload_type, PAYLOAD_CONFIG);
        let v = TrustedKeys::single(key.public_key().clone())
            .verify(&env.to_json_bytes(), PAYLOAD_CONFIG)
            .expect("verify");
        assert_eq!(v.payload, SEED.as_bytes());
    }

    #[test]
    fn lenient_version_bounds() {
        assert_eq!(parse_version_bound("1.2"), Version::parse("1.2.0").ok());
        assert_eq!(parse_version_bound("v2"), Version::parse("2.0.0").ok());
        assert_eq!(
            parse_version_bound("1.2-beta.1"),
            Version::parse("1.2.0-beta.1").ok()
        );
        assert_eq!(parse_version_bound("one"), None);
        assert_eq!(parse_version_bound("1..2"), None);
    }
}
