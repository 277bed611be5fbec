//! Sessions: one per client run, with a start, heartbeats and an end.
//!
//! Owns the in-memory session (id, start time, the `sequence` counter that increases with
//! every event of the session) and the recovery of a session a crash left open: the writer
//! keeps the open session in the store (`kv` `analytics.open_session:{app}`) next to its
//! events, and the next start closes it with a `session_end` at its last heartbeat.
//!
//! It refuses to invent activity: a crashed session's duration ends at its last heartbeat,
//! never at the time of the next start.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::event::{names, Properties, PropertyValue};
use super::queue::{open_session_key, OpenSession, Pending};
use crate::store::{Store, StoreError};

/// The current session.
#[derive(Debug)]
pub struct Session {
    id: Arc<str>,
    /// Unix milliseconds of the start (set again when the session really starts).
    started_at: AtomicI64,
    sequence: AtomicU64,
}

impl Session {
    /// A new session starting at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            id: Arc::from(uuid::Uuid::now_v7().to_string()),
            started_at: AtomicI64::new(at.timestamp_millis()),
            sequence: AtomicU64::new(0),
        }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn id_arc(&self) -> Arc<str> {
        self.id.clone()
    }

    /// When it started.
    pub fn started_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.started_at.load(Ordering::Relaxed)).unwrap_or_default()
    }

    /// Sets the start time (consent may be granted after the client was built).
    pub fn mark_started(&self, at: DateTime<Utc>) {
        self.started_at
            .store(at.timestamp_millis(), Ordering::Relaxed);
    }

    /// The next sequence number (1, 2, 3, …).
    pub fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Milliseconds since the start.
    pub fn duration_ms(&self, now: DateTime<Utc>) -> f64 {
        millis_between(self.started_at(), now)
    }
}

fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds().max(0)) as f64
}

/// The session a crash left open for `app`, if any.
pub fn open_session(store: &Store, app: &str) -> Result<Option<OpenSession>, StoreError> {
    Ok(store
        .get_kv(&open_session_key(app))?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

/// Forgets the open session of `app` (when it cannot be reported).
pub(crate) fn forget_open_session(store: &Store, app: &str) -> Result<(), StoreError> {
    store.delete_kv(&open_session_key(app))
}

/// The `session_end` that closes a crashed session at its last heartbeat.
pub(crate) fn crash_end(open: &OpenSession) -> Pending {
    Pending {
        id: uuid::Uuid::now_v7(),
        name: names::SESSION_END.to_string(),
        properties: Some(Properties::from([(
            "crashed".to_string(),
            PropertyValue::Bool(true),
        )])),
        timestamp: open.last_heartbeat,
        duration: Some(millis_between(open.started_at, open.last_heartbeat)),
        sequence: open.sequence + 1,
        session_id: Arc::from(open.session_id.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_end_uses_last_heartbeat() {
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("t");
        let open = OpenSession {
            session_id: "s1".into(),
            started_at: start,
            last_heartbeat: start + chrono::Duration::minutes(3),
            sequence: 4,
        };
        let p = crash_end(&open);
        assert_eq!(p.duration, Some(180_000.0));
        assert_eq!(p.sequence, 5);
        assert_eq!(p.timestamp, open.last_heartbeat);
        assert_eq!(&*p.session_id, "s1");
    }

    #[test]
    fn sequence_increases() {
        let s = Session::new(Utc::now());
        assert_eq!(s.next_sequence(), 1);
        assert_eq!(s.next_sequence(), 2);
    }
}
