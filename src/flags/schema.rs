//! The remote config document: the seed's JSON, parsed strictly but tolerantly.
//!
//! Owns the wire type `{version, lastUpdated, emergencyKillSwitch, emergencyMessage,
//! flags: {NAME: {key?, enabled, rolloutPercentage, minVersion, maxVersion?, platforms?,
//! channels?, variants?: [{name, weight}], description}}, announcements: [{id, type, title,
//! message, dismissible, showOnce, startTime?, endTime?, minVersion?, maxVersion?}],
//! maintenance: {active, message, startTime, endTime, allowReadOnly}}` and its signing helper
//! [`sign_config`] (DSSE, payload type [`PAYLOAD_CONFIG`]).
//!
//! `flags` is the specification's object keyed by flag name (a flag's `key` is optional
//! there and taken from its map key) or, as earlier releases wrote it, a list of flags each
//! with its `key`. Both read into the same [`RemoteConfig::flags`]; [`FlagsForm`] remembers
//! which one was read so a document serializes back in its own form.
//!
//! Unknown fields are kept (in `extra`) so a newer server never breaks an older client; a
//! known field with a wrong type is an error that names the field. It refuses a `key` that
//! differs from its map key (naming both), duplicate flag keys or announcement ids, and
//! documents with absurd sizes.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use semver::Version;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::trust::{DsseError, Envelope, PrivateKey, SignedDocument, PAYLOAD_CONFIG};

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
    /// The flags, in document order (from either form of `flags`, see [`FlagsForm`]).
    #[serde(
        default,
        deserialize_with = "flags_any_form",
        serialize_with = "flags_as_read"
    )]
    pub flags: Flags,
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

/// The flags of a document and the form `flags` was written in; derefs to the list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flags {
    /// The flags, in document order.
    pub list: Vec<Flag>,
    /// How `flags` was written (serialization writes the same form).
    pub form: FlagsForm,
}

impl std::ops::Deref for Flags {
    type Target = Vec<Flag>;
    fn deref(&self) -> &Vec<Flag> {
        &self.list
    }
}

impl std::ops::DerefMut for Flags {
    fn deref_mut(&mut self) -> &mut Vec<Flag> {
        &mut self.list
    }
}

impl<'a> IntoIterator for &'a Flags {
    type Item = &'a Flag;
    type IntoIter = std::slice::Iter<'a, Flag>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl From<Vec<Flag>> for Flags {
    fn from(list: Vec<Flag>) -> Self {
        Self {
            list,
            form: FlagsForm::default(),
        }
    }
}

/// The two ways a document may write `flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlagsForm {
    /// The specification's form: an object keyed by flag name, `key` optional in each.
    #[default]
    Map,
    /// A list of flags, each with its `key` (what earlier releases wrote).
    List,
}

impl Flags {
    /// The JSON path of flag `i` as the document wrote it: `flags.NAME` or `flags[i]`.
    pub fn path(&self, i: usize) -> String {
        match (self.form, self.list.get(i)) {
            (FlagsForm::Map, Some(f)) => format!("flags.{}", f.key),
            _ => format!("flags[{i}]"),
        }
    }
}

/// Reads `flags` as an object keyed by flag name or as a list (`null` is no flags).
fn flags_any_form<'de, D: Deserializer<'de>>(d: D) -> Result<Flags, D::Error> {
    struct AnyForm;
    impl<'de> Visitor<'de> for AnyForm {
        type Value = Flags;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of flags keyed by flag name, or a list of flags")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Flags, E> {
            Ok(Flags::default())
        }

        fn visit_none<E: de::Error>(self) -> Result<Flags, E> {
            Ok(Flags::default())
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Flags, D2::Error> {
            d.deserialize_any(self)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Flags, A::Error> {
            let mut list = Vec::new();
            while let Some(f) = seq.next_element::<Flag>()? {
                list.push(f);
            }
            Ok(Flags {
                list,
                form: FlagsForm::List,
            })
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Flags, A::Error> {
            let mut list: Vec<Flag> = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                let mut f: Flag = map.next_value()?;
                if f.key.is_empty() {
                    f.key.clone_from(&name);
                } else if f.key != name {
                    return Err(de::Error::custom(format!(
                        "flag {name:?} has key {:?}: a flag's key must equal its map key",
                        f.key
                    )));
                }
                list.push(f);
            }
            Ok(Flags {
                list,
                form: FlagsForm::Map,
            })
        }
    }
    d.deserialize_option(AnyForm)
}

/// Writes `flags` in the form it was read in.
fn flags_as_read<S: Serializer>(flags: &Flags, s: S) -> Result<S::Ok, S::Error> {
    match flags.form {
        FlagsForm::List => {
            let mut seq = s.serialize_seq(Some(flags.len()))?;
            for f in flags.iter() {
                seq.serialize_element(f)?;
            }
            seq.end()
        }
        FlagsForm::Map => {
            let mut map = s.serialize_map(Some(flags.len()))?;
            for f in flags.iter() {
                map.serialize_entry(&f.key, f)?;
            }
            map.end()
        }
    }
}

/// One feature flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    /// The flag's key: required in the list form; in the object form optional (the map key
    /// is used) and, when given, equal to the map key.
    #[serde(default)]
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

impl SignedDocument for RemoteConfig {
    const DOC: &'static str = "remote config";
    const PAYLOAD_TYPE: &'static str = PAYLOAD_CONFIG;
    type Error = SchemaError;

    fn malformed(message: String) -> SchemaError {
        SchemaError::Malformed { message }
    }

    fn validate(&self) -> Result<(), SchemaError> {
        RemoteConfig::validate(self)
    }
}

impl RemoteConfig {
    /// Parses and validates a config from (verified) JSON bytes.
    ///
    /// ```
    /// use railgun_core::flags::RemoteConfig;
    /// let c = RemoteConfig::parse(br#"{"version":"1","flags":{"a":{"enabled":true}}}"#).unwrap();
    /// assert_eq!((c.flags[0].key.as_str(), c.flags[0].rollout_percentage), ("a", 100.0));
    /// let c = RemoteConfig::parse(br#"{"version":"1","flags":[{"key":"a","enabled":true}]}"#).unwrap();
    /// assert_eq!(c.flags[0].rollout_percentage, 100.0);
    /// let e = RemoteConfig::parse(br#"{"flags":[{"key":"a","enabled":"yes"}]}"#).unwrap_err();
    /// assert!(e.to_string().contains("flags[0].enabled"));
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<Self, SchemaError> {
        Self::from_verified_payload(bytes)
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
            let at = self.flags.path(i);
            if f.key.is_empty() {
                return Err(invalid(format!("{at}.key"), "missing or empty".into()));
            }
            if !keys.insert(f.key.as_str()) {
                return Err(invalid(
                    format!("{at}.key"),
                    format!("duplicate flag key {:?}", f.key),
                ));
            }
            if f.variants.len() > MAX_VARIANTS {
                return Err(invalid(
                    format!("{at}.variants"),
                    format!("{} variants, at most {MAX_VARIANTS}", f.variants.len()),
                ));
            }
            for (j, v) in f.variants.iter().enumerate() {
                if !v.weight.is_finite() || v.weight < 0.0 {
                    return Err(invalid(
                        format!("{at}.variants[{j}].weight"),
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

    /// The specification's form of `flags`: an object keyed by flag name.
    const SPEC_FORM: &str = r#"{"flags": {
        "voice_messages": {"key": "voice_messages", "enabled": true, "rolloutPercentage": 50,
                           "minVersion": "0.2.0"},
        "reactions": {"enabled": false, "description": "Message reactions feature"}}}"#;

    #[test]
    fn flags_keyed_by_name_take_their_key_from_the_map() {
        let c = RemoteConfig::parse(SPEC_FORM.as_bytes()).expect("parse");
        assert_eq!(c.flags.form, FlagsForm::Map);
        let keys: Vec<&str> = c.flags.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["voice_messages", "reactions"]);
        assert_eq!(c.flags[0].rollout_percentage, 50.0);
        assert_eq!(c.flags[1].rollout_percentage, 100.0);
        // Serialized back in its own form, each entry carrying its key.
        let json = serde_json::to_value(&c).expect("ser");
        assert_eq!(json["flags"]["reactions"]["key"], "reactions");
        assert_eq!(
            RemoteConfig::parse(&serde_json::to_vec(&c).expect("ser")).expect("again"),
            c
        );
        let list = RemoteConfig::parse(SEED.as_bytes()).expect("list");
        assert_eq!(list.flags.form, FlagsForm::List);
        assert!(serde_json::to_value(&list).expect("ser")["flags"].is_array());
    }

    #[test]
    fn a_key_that_differs_from_its_map_key_names_both() {
        let e = RemoteConfig::parse(br#"{"flags": {"voice_messages": {"key": "voice"}}}"#)
            .expect_err("mismatch");
        let text = e.to_string();
        assert!(
            text.contains("\"voice_messages\"") && text.contains("\"voice\""),
            "{text}"
        );
        assert!(text.contains("field flags"), "{text}");
    }

    #[test]
    fn errors_inside_the_map_form_name_the_flag() {
        let e = RemoteConfig::parse(br#"{"flags": {"a": {"rolloutPercentage": "half"}}}"#)
            .expect_err("wrong type");
        assert!(e.to_string().contains("flags.a.rolloutPercentage"), "{e}");
        let e = RemoteConfig::parse(
            br#"{"flags": {"a": {"variants": [{"name": "x", "weight": -1}]}}}"#,
        )
        .expect_err("weight");
        assert!(
            matches!(e, SchemaError::Invalid { ref field, .. } if field == "flags.a.variants[0].weight"),
            "{e}"
        );
        let e = RemoteConfig::parse(br#"{"flags": {"a": {}, "a": {}}}"#).expect_err("dup");
        assert!(
            matches!(e, SchemaError::Invalid { ref field, .. } if field == "flags.a.key"),
            "{e}"
        );
        let e = RemoteConfig::parse(br#"{"flags": [{"enabled": true}]}"#).expect_err("no key");
        assert!(
            matches!(e, SchemaError::Invalid { ref field, .. } if field == "flags[0].key"),
            "{e}"
        );
        let e = RemoteConfig::parse(br#"{"flags": 3}"#).expect_err("number");
        assert!(e.to_string().contains("field flags"), "{e}");
        assert!(RemoteConfig::parse(br#"{"flags": null}"#)
            .expect("null")
            .flags
            .is_empty());
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
