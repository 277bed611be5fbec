//! The analytics wire types and the validation rules shared by client and server.
//!
//! Owns `AnalyticsEvent` (camelCase JSON: exactly the specification's interface plus an
//! optional `id`), the upload batch `{events, sentAt?, sampleRate?, dropped?}` (the
//! specification's `{ "events": [...] }` alone is a complete batch), the server's answer
//! `{accepted, duplicates, rejected: [{index, reason}]}`, the seed's event names, and
//! [`validate_event`] / [`validate_batch`] — the same limits on both sides: names
//! `^[a-z][a-z0-9_]{0,63}$`, ≤ 32 properties, keys ≤ 64 characters, strings ≤ 256
//! characters, `sequence` ≤ 2^63 − 1, `duration` ≤ a year, `sampleRate` in
//! [[`MIN_SAMPLE_RATE`], 1], `dropped` ≤ [`MAX_DROPPED_PER_BATCH`].
//!
//! An event sent without `id` gets its identity from its content ([`derived_event_id`]:
//! SHA-256 over userId, sessionId, sequence, name and timestamp, as a UUID), so a re-sent
//! event is still counted once. Railgun clients always send an `id` (UUID v7).
//!
//! It refuses nested property values: a property is a string, a number or a boolean.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
/// Smallest `sampleRate`: one bucket of the 10 000 the bucketing function has, the finest
/// sampling it can express (estimates scale counts by at most 10 000).
pub const MIN_SAMPLE_RATE: f64 = 1e-4;
/// Most dropped events one batch may report (a client with more reports them over several
/// batches; railgun clients do).
pub const MAX_DROPPED_PER_BATCH: u64 = 1_000_000;
/// Largest `duration`: a year, in milliseconds.
pub const MAX_DURATION_MS: f64 = 366.0 * 24.0 * 3600.0 * 1000.0;
/// Largest `sequence` (it is stored as a signed 64-bit integer).
pub const MAX_SEQUENCE: u64 = i64::MAX as u64;

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

/// One analytics event (the specification's `AnalyticsEvent` plus `id`).
///
/// On the wire `id` is optional: an event read without one gets [`derived_event_id`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "WireEvent")]
pub struct AnalyticsEvent {
    /// UUID (v7 from railgun clients, derived from the content when sent without), the key
    /// for de-duplication.
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

/// [`AnalyticsEvent`] as it is read: the specification's fields, `id` optional.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent {
    #[serde(default)]
    id: Option<Uuid>,
    name: String,
    category: EventCategory,
    user_id: String,
    session_id: String,
    timestamp: DateTime<Utc>,
    app_version: String,
    platform: String,
    arch: String,
    channel: String,
    #[serde(default)]
    properties: Option<Properties>,
    #[serde(default)]
    duration: Option<f64>,
    sequence: u64,
}

impl From<WireEvent> for AnalyticsEvent {
    fn from(w: WireEvent) -> Self {
        let id = w.id.unwrap_or_else(|| {
            derived_event_id(&w.user_id, &w.session_id, w.sequence, &w.name, w.timestamp)
        });
        Self {
            id,
            name: w.name,
            category: w.category,
            user_id: w.user_id,
            session_id: w.session_id,
            timestamp: w.timestamp,
            app_version: w.app_version,
            platform: w.platform,
            arch: w.arch,
            channel: w.channel,
            properties: w.properties,
            duration: w.duration,
            sequence: w.sequence,
        }
    }
}

/// A UUID (version 8, RFC 9562) from the SHA-256 of `domain` and `parts`, each part
/// preceded by a 0x00 byte: the first 16 bytes of the digest with the version and variant
/// bits set. The identity of a document sent without an id.
pub fn content_uuid(domain: &str, parts: &[&[u8]]) -> Uuid {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The identity of an event sent without `id`: [`content_uuid`] of
/// `railgun-event-id:v1` and userId, sessionId, sequence (decimal), name and timestamp
/// (Unix milliseconds, decimal), as the client sent them (before any skew correction).
///
/// ```
/// use railgun_core::analytics::derived_event_id;
/// let t = "2024-12-27T12:00:00Z".parse().unwrap();
/// let a = derived_event_id("u1", "s1", 4, "screen_view", t);
/// assert_eq!(a, derived_event_id("u1", "s1", 4, "screen_view", t));
/// assert_ne!(a, derived_event_id("u1", "s1", 5, "screen_view", t));
/// assert_eq!(a.get_version_num(), 8);
/// ```
pub fn derived_event_id(
    user_id: &str,
    session_id: &str,
    sequence: u64,
    name: &str,
    timestamp: DateTime<Utc>,
) -> Uuid {
    content_uuid(
        "railgun-event-id:v1",
        &[
            user_id.as_bytes(),
            session_id.as_bytes(),
            sequence.to_string().as_bytes(),
            name.as_bytes(),
            timestamp.timestamp_millis().to_string().as_bytes(),
        ],
    )
}

/// An upload: `POST /analytics/events`.
///
/// `{"events": [...]}` alone is a complete batch: without `sentAt` no clock-skew correction
/// is made, without `sampleRate` the rate is 1 (every user tracked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBatch {
    /// The events.
    pub events: Vec<AnalyticsEvent>,
    /// When the client sent the batch, by its clock (for skew correction; railgun clients
    /// always send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    /// The client's sampling rate in [[`MIN_SAMPLE_RATE`], 1] (default 1): estimates scale
    /// counts by `1 / sampleRate`.
    #[serde(default = "one")]
    pub sample_rate: f64,
    /// Events the client dropped since its last batch (queue full or too old).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// Events still waiting in the client's queue besides this batch (optional, 0 when
    /// absent): the server's Analytics Backlog alert sums the latest value of each client.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queued: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn one() -> f64 {
    1.0
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
    #[error("duration must be a finite number of milliseconds in [0, {MAX_DURATION_MS}]")]
    InvalidDuration,
    /// A bad sequence number.
    #[error("sequence {0} is larger than {MAX_SEQUENCE}")]
    InvalidSequence(u64),
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
        if !d.is_finite() || !(0.0..=MAX_DURATION_MS).contains(&d) {
            return Err(EventError::InvalidDuration);
        }
    }
    if e.sequence > MAX_SEQUENCE {
        return Err(EventError::InvalidSequence(e.sequence));
    }
    Ok(())
}

/// Largest `queued` a batch may report (a client's queue is bounded far below).
pub const MAX_QUEUED_REPORTED: u64 = 10_000_000;

/// Why a batch as a whole is refused (the server answers 400 naming the field).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// `sampleRate` outside [[`MIN_SAMPLE_RATE`], 1] (or not finite).
    #[error("sampleRate {0} must be in [{MIN_SAMPLE_RATE}, 1]")]
    SampleRate(f64),
    /// `dropped` above [`MAX_DROPPED_PER_BATCH`].
    #[error("dropped {0} is more than {MAX_DROPPED_PER_BATCH} events per batch")]
    Dropped(u64),
}

/// Checks a batch's own fields (`sampleRate`, `dropped`); events are checked one by one
/// with [`validate_event`].
pub fn validate_batch(sample_rate: f64, dropped: u64) -> Result<(), BatchError> {
    if !(MIN_SAMPLE_RATE..=1.0).contains(&sample_rate) {
        return Err(BatchError::SampleRate(sample_rate));
    }
    if dropped > MAX_DROPPED_PER_BATCH {
        return Err(BatchError::Dropped(dropped));
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
    fn an_event_without_id_gets_the_same_identity_each_time() {
        let mut json = serde_json::to_value(event()).expect("json");
        json.as_object_mut().expect("object").remove("id");
        let a: AnalyticsEvent = serde_json::from_value(json.clone()).expect("no id");
        let b: AnalyticsEvent = serde_json::from_value(json.clone()).expect("no id");
        assert_eq!(a.id, b.id);
        assert_eq!(
            a.id,
            derived_event_id("u", "s", 1, "screen_view", a.timestamp)
        );
        // The same instant written in another offset is the same event.
        json["timestamp"] = "2026-01-01T01:00:00+01:00".into();
        let c: AnalyticsEvent = serde_json::from_value(json.clone()).expect("offset");
        assert_eq!(c.id, a.id);
        for (field, value) in [
            ("userId", serde_json::json!("u2")),
            ("sessionId", serde_json::json!("s2")),
            ("sequence", serde_json::json!(2)),
            ("name", serde_json::json!("screen_viewed")),
            ("timestamp", serde_json::json!("2026-01-01T00:00:00.001Z")),
        ] {
            let mut j = json.clone();
            j[field] = value;
            let d: AnalyticsEvent = serde_json::from_value(j).expect("other");
            assert_ne!(d.id, a.id, "{field} is part of the identity");
        }
        // An id that is sent is kept.
        let e = event();
        let back: AnalyticsEvent =
            serde_json::from_value(serde_json::to_value(&e).expect("json")).expect("back");
        assert_eq!(back.id, e.id);
    }

    #[test]
    fn the_specification_batch_alone_is_complete() {
        let mut json = serde_json::to_value(event()).expect("json");
        json.as_object_mut().expect("object").remove("id");
        let b: EventBatch =
            serde_json::from_value(serde_json::json!({ "events": [json] })).expect("batch");
        assert_eq!((b.sent_at, b.sample_rate, b.dropped), (None, 1.0, 0));
        validate_batch(b.sample_rate, b.dropped).expect("defaults are valid");
    }

    #[test]
    fn batch_numbers_are_bounded() {
        for rate in [0.0, 5e-324, 9.9e-5, 1.000001, f64::NAN, f64::INFINITY] {
            assert_eq!(
                validate_batch(rate, 0).map_err(|e| matches!(e, BatchError::SampleRate(_))),
                Err(true),
                "{rate}"
            );
        }
        validate_batch(MIN_SAMPLE_RATE, MAX_DROPPED_PER_BATCH).expect("bounds are inclusive");
        assert_eq!(
            validate_batch(1.0, u64::MAX),
            Err(BatchError::Dropped(u64::MAX))
        );
        let mut e = event();
        e.sequence = u64::MAX;
        assert_eq!(
            validate_event(&e),
            Err(EventError::InvalidSequence(u64::MAX))
        );
        let mut e = event();
        e.duration = Some(1e300);
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
