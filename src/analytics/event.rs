//! The analytics wire types and the validation rules shared by client and server.
//!
//! Owns `AnalyticsEvent` (camelCase JSON, the seed's shape plus `id`), the upload batch
//! `{events, sentAt, sampleRate, dropped?}`, the server's answer
//! `{accepted, duplicates, rejected: [{index, reason}]}`, the seed's event names, and
//! [`validate_event`] — the same limits on both sides: names `^[a-z][a-z0-9_]{0,63}$`,
//! ≤ 32 properties, keys ≤ 64 characters, strings ≤ 256 characters.
//!
//! It refuses nested property values: a property is a string, a number or a boolean.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most properties on one event.
pub const MAX_PROPERTIES: usize = 32;
/// Longest property key.
pub const MAX_KEY_LEN: usize = 64;
/// Longest string property value.
pub const MAX_STRING_LEN: usize = 256;
/// Longest event name.
pub const MAX_NAME_LEN: usize = 64;
/// Most events in one upload batch accepted by the server.
pub const MAX_BATCH_EVENTS: usize = 500;

/// The seed's event names.
pub mod names {
    /// A session began.
    pub const SESSION_START: &str = "session_start";
    /// A session is still active (every 60 s).
    pub const SESSION_HEARTBEAT: &str = "session_heartbeat";
    /// A session ended (carries `duration`).
    pub const SESSION_END: &str = "session_end";
    /// A screen was shown (`screen_name`).
    pub const SCREEN_VIEW: &str = "screen_view";
    /// A message was sent (never its content).
    pub const MESSAGE_SENT: &str = "message_sent";
    /// A conversation was opened.
    pub const CONVERSATION_OPENED: &str = "conversation_opened";
    /// A contact was added (never who).
    pub const CONTACT_ADDED: &str = "contact_added";
    /// An update check ran.
    pub const UPDATE_CHECKED: &str = "update_checked";
    /// An update was found.
    pub const UPDATE_AVAILABLE: &str = "update_available";
    /// An update was downloaded and verified.
    pub const UPDATE_DOWNLOADED: &str = "update_downloaded";
    /// An update was installed.
    pub const UPDATE_INSTALLED: &str = "update_installed";
    /// An error happened (message scrubbed).
    pub const ERROR: &str = "error";
    /// First evaluation of an A/B variant in a session.
    pub const EXPERIMENT_EXPOSURE: &str = "experiment_exposure";
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventCategory {
    /// Session lifecycle.
    Session,
    /// Screens and navigation.
    Navigation,
    /// Feature usage.
    Feature,
    /// Updater activity.
    Update,
    /// Errors.
    Error,
    /// Anything else.
    Custom,
}

impl EventCategory {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventCategory::Session => "session",
            EventCategory::Navigation => "navigation",
            EventCategory::Feature => "feature",
            EventCategory::Update => "update",
            EventCategory::Error => "error",
            EventCategory::Custom => "custom",
        }
    }

    /// The category the seed gives a known event name (`Custom` for others).
    pub fn for_name(name: &str) -> Self {
        use names::*;
        match name {
            SESSION_START | SESSION_HEARTBEAT | SESSION_END => EventCategory::Session,
            SCREEN_VIEW | CONVERSATION_OPENED => EventCategory::Navigation,
            MESSAGE_SENT | CONTACT_ADDED | EXPERIMENT_EXPOSURE => EventCategory::Feature,
            UPDATE_CHECKED | UPDATE_AVAILABLE | UPDATE_DOWNLOADED | UPDATE_INSTALLED => {
                EventCategory::Update
            }
            ERROR => EventCategory::Error,
            _ => EventCategory::Custom,
        }
    }
}

/// A property value: string, number or boolean.
///
/// Whole numbers serialize without a fraction (`3`, not `3.0`), as JavaScript writes them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string (≤ 256 characters).
    String(String),
}

impl Serialize for PropertyValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// Largest integer an f64 holds exactly (2^53).
        const EXACT: f64 = 9_007_199_254_740_992.0;
        match self {
            PropertyValue::Bool(b) => s.serialize_bool(*b),
            PropertyValue::Number(n) if n.fract() == 0.0 && n.abs() <= EXACT => {
                s.serialize_i64(*n as i64)
            }
            PropertyValue::Number(n) => s.serialize_f64(*n),
            PropertyValue::String(v) => s.serialize_str(v),
        }
    }
}

impl From<&str> for PropertyValue {
    fn from(s: &str) -> Self {
        PropertyValue::String(s.to_string())
    }
}
impl From<String> for PropertyValue {
    fn from(s: String) -> Self {
        PropertyValue::String(s)
    }
}
impl From<f64> for PropertyValue {
    fn from(n: f64) -> Self {
        PropertyValue::Number(n)
    }
}
impl From<i64> for PropertyValue {
    fn from(n: i64) -> Self {
        PropertyValue::Number(n as f64)
    }
}
impl From<bool> for PropertyValue {
    fn from(b: bool) -> Self {
        PropertyValue::Bool(b)
    }
}

/// Event properties, ordered by key.
pub type Properties = BTreeMap<String, PropertyValue>;

/// One analytics event (the seed's `AnalyticsEvent` plus `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsEvent {
    /// UUID (v7 from railgun clients), the key for de-duplication.
    pub id: Uuid,
    /// Event name (`^[a-z][a-z0-9_]{0,63}$`).
    pub name: String,
    /// Category.
    pub category: EventCategory,
    /// Hashed install/user id (never a raw machine id).
    pub user_id: String,
    /// Session id.
    pub session_id: String,
    /// When it happened, by the client's clock.
    pub timestamp: DateTime<Utc>,
    /// App version.
    pub app_version: String,
    /// `darwin`, `win32`, `linux`.
    pub platform: String,
    /// `x64`, `arm64`, `ia32`.
    pub arch: String,
    /// Update channel.
    pub channel: String,
    /// Properties (string, number or boolean values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Properties>,
    /// Duration in milliseconds (timed events, `session_end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Increases within a session.
    pub sequence: u64,
}

/// An upload: `POST /analytics/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBatch {
    /// The events.
    pub events: Vec<AnalyticsEvent>,
    /// When the client sent the batch, by its clock (for skew correction).
    pub sent_at: DateTime<Utc>,
    /// The client's sampling rate (0–1]: estimates scale counts by `1 / sampleRate`.
    pub sample_rate: f64,
    /// Events the client dropped since its last batch (queue full or too old).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One refused event in an [`IngestResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedEvent {
    /// Index in the batch.
    pub index: usize,
    /// Why.
    pub reason: String,
}

/// The server's answer to an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestResponse {
    /// Events stored now.
    pub accepted: u64,
    /// Events already stored before (same `id`), acknowledged without storing again.
    pub duplicates: u64,
    /// Events refused, by index.
    #[serde(default)]
    pub rejected: Vec<RejectedEvent>,
}

/// Why an event breaks the shared limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Bad event name.
    #[error("event name {0:?} must match ^[a-z][a-z0-9_]{{0,63}}$")]
    InvalidName(String),
    /// Too many properties.
    #[error("{0} properties, at most {MAX_PROPERTIES}")]
    TooManyProperties(usize),
    /// A bad property key.
    #[error("property key {0:?} must be 1-{MAX_KEY_LEN} characters of [A-Za-z0-9_.-]")]
    InvalidKey(String),
    /// A string value too long.
    #[error("property {key:?} is {len} characters long, at most {MAX_STRING_LEN}")]
    ValueTooLong {
        /// The key.
        key: String,
        /// Its length in characters.
        len: usize,
    },
    /// A number that is not finite.
    #[error("property {0:?} is not a finite number")]
    NotFinite(String),
    /// A bad duration.
    #[error("duration must be a finite number of milliseconds ≥ 0")]
    InvalidDuration,
    /// A bad id field.
    #[error("{field} must be 1-128 printable characters")]
    InvalidField {
        /// The field.
        field: &'static str,
    },
}

/// Whether `name` is a valid event name: `^[a-z][a-z0-9_]{0,63}$`.
pub fn is_valid_event_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Checks a name and properties against the shared limits.
pub fn validate_properties(name: &str, properties: Option<&Properties>) -> Result<(), EventError> {
    if !is_valid_event_name(name) {
        return Err(EventError::InvalidName(name.to_string()));
    }
    let Some(props) = properties else {
        return Ok(());
    };
    if props.len() > MAX_PROPERTIES {
        return Err(EventError::TooManyProperties(props.len()));
    }
    for (k, v) in props {
        if k.is_empty()
            || k.len() > MAX_KEY_LEN
            || !k
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        {
            return Err(EventError::InvalidKey(k.clone()));
        }
        match v {
            PropertyValue::String(s) => {
                let len = s.chars().count();
                if len > MAX_STRING_LEN {
                    return Err(EventError::ValueTooLong {
                        key: k.clone(),
                        len,
                    });
                }
            }
            PropertyValue::Number(n) if !n.is_finite() => {
                return Err(EventError::NotFinite(k.clone()))
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_field(field: &'static str, v: &str) -> Result<(), EventError> {
    if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
        Err(EventError::InvalidField { field })
    } else {
        Ok(())
    }
}

/// Checks a whole event against the shared limits.
pub fn validate_event(e: &AnalyticsEvent) -> Result<(), EventError> {
    validate_properties(&e.name, e.properties.as_ref())?;
    check_field("userId", &e.user_id)?;
    check_field("sessionId", &e.session_id)?;
    check_field("appVersion", &e.app_version)?;
    check_field("platform", &e.platform)?;
    check_field("arch", &e.arch)?;
    check_field("channel", &e.channel)?;
    if let Some(d) = e.duration {
        if !d.is_finite() || d < 0.0 {
            return Err(EventError::InvalidDuration);
        }
    }
    Ok(())
}

/// A new time-ordered event id (UUID v7).
pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AnalyticsEvent {
        AnalyticsEvent {
            id: new_event_id(),
            name: names::SCREEN_VIEW.into(),
            category: EventCategory::Navigation,
            user_id: "u".into(),
            session_id: "s".into(),
            timestamp: "2026-01-01T00:00:00Z".parse().expect("t"),
            app_version: "1.0.0".into(),
            platform: "linux".into(),
            arch: "x64".into(),
            channel: "stable".into(),
            properties: Some(Properties::from([(
                "screen_name".to_string(),
                PropertyValue::from("settings"),
            )])),
            duration: None,
            sequence: 1,
        }
    }

    #[test]
    fn wire_shape_is_camel_case() {
        let e = event();
        let json = serde_json::to_value(&e).expect("json");
        for key in ["userId", "sessionId", "appVersion", "timestamp", "sequence"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["category"], "navigation");
        assert_eq!(json["properties"]["screen_name"], "settings");
        let back: AnalyticsEvent = serde_json::from_value(json).expect("back");
        assert_eq!(back, e);
    }

    #[test]
    fn limits() {
        validate_event(&event()).expect("valid");
        for bad in ["", "Screen", "1abc", "a-b", &"a".repeat(65)] {
            assert!(!is_valid_event_name(bad), "{bad}");
        }
        assert!(is_valid_event_name(&"a".repeat(64)));
        let mut e = event();
        e.properties = Some(
            (0..33)
                .map(|i| (format!("k{i}"), PropertyValue::Bool(true)))
                .collect(),
        );
        assert_eq!(validate_event(&e), Err(EventError::TooManyProperties(33)));
        let mut e = event();
        e.properties = Some(Properties::from([("k".into(), "x".repeat(257).into())]));
        assert!(matches!(
            validate_event(&e),
            Err(EventError::ValueTooLong { .. })
        ));
        let mut e = event();
        e.properties = Some(Properties::from([("k".repeat(65), true.into())]));
        assert!(matches!(validate_event(&e), Err(EventError::InvalidKey(_))));
        let mut e = event();
        e.duration = Some(-1.0);
        assert_eq!(validate_event(&e), Err(EventError::InvalidDuration));
    }

    #[test]
    fn whole_numbers_have_no_fraction() {
        let p = Properties::from([
            ("a".to_string(), PropertyValue::from(3i64)),
            ("b".to_string(), PropertyValue::from(1.5)),
            ("c".to_string(), PropertyValue::from(-0.0)),
        ]);
        let json = serde_json::to_string(&p).expect("json");
        assert_eq!(json, r#"{"a":3,"b":1.5,"c":0}"#);
        let back: Properties = serde_json::from_str(&json).expect("back");
        assert_eq!(back["a"], PropertyValue::Number(3.0));
    }

    #[test]
    fn nested_values_do_not_parse() {
        let mut json = serde_json::to_value(event()).expect("json");
        json["properties"]["nested"] = serde_json::json!({"a": 1});
        assert!(serde_json::from_value::<AnalyticsEvent>(json).is_err());
    }

    #[test]
    fn categories_of_known_names() {
        assert_eq!(
            EventCategory::for_name("session_end"),
            EventCategory::Session
        );
        assert_eq!(
            EventCategory::for_name("update_checked"),
            EventCategory::Update
        );
        assert_eq!(EventCategory::for_name("my_event"), EventCategory::Custom);
    }
}
