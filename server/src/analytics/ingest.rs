//! `POST /analytics/events`: validation, clock-skew correction, scrubbing, then the queue.
//!
//! Owns the per-event rules on top of the shared ones ([`validate_event`],
//! [`validate_batch`]): timestamps at most 7 days ahead or 90 days behind the server's clock
//! after skew correction (`skew = server_now − sentAt`, applied when `sentAt` is given and
//! the skew exceeds [`SKEW_THRESHOLD_SECS`]), and the removal of property values that look
//! like an email or an IP address. A bad event is rejected by its index; the others go on.
//!
//! Every number and instant a client sends is checked before it is used: `sentAt` within
//! [`MAX_SKEW_DAYS`] of the server's clock, skew correction by checked arithmetic,
//! `sampleRate` and `dropped` within the shared bounds. A batch that breaks them is a 400
//! naming the field, never a panic.
//!
//! It refuses to look at the client's address: the handler has no connection info.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use railgun_core::analytics::{
    validate_batch, validate_event, AnalyticsEvent, EventBatch, IngestResponse, PropertyValue,
    RejectedEvent, MAX_BATCH_EVENTS, MAX_QUEUED_REPORTED,
};
use regex::Regex;
use serde::Deserialize;

use super::queue::QueueError;
use super::AppState;
use crate::api::{ApiBody, ApiError};
use crate::store::{day_of, StoredEvent};

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Skews smaller than this (seconds) are network delay, not a wrong clock: left alone.
pub const SKEW_THRESHOLD_SECS: i64 = 60;
/// How far ahead of the server an event may be, after correction.
pub const MAX_FUTURE_DAYS: i64 = 7;
/// How far behind the server an event may be, after correction.
pub const MAX_PAST_DAYS: i64 = 90;
/// How far `sentAt` may be from the server's clock (a century: a clock reset to 1970 is
/// still corrected; an instant out of any calendar is refused).
pub const MAX_SKEW_DAYS: i64 = 36_525;

/// The batch with each event left unparsed, for the slow path that rejects by index.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LooseBatch {
    events: Vec<serde_json::Value>,
    #[serde(default)]
    sent_at: Option<DateTime<Utc>>,
    #[serde(default = "one")]
    sample_rate: f64,
    #[serde(default)]
    dropped: u64,
    #[serde(default)]
    queued: u64,
}

fn one() -> f64 {
    1.0
}

/// Deserializes `T`; the error names the field (`field events[2].sequence: …`).
fn named<'de, T, D>(de: D) -> Result<T, String>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("field {path}: {inner}")
        }
    })
}

/// The clock-skew correction for a batch sent at `sent_at` and received at `now`: zero
/// without `sentAt` or below [`SKEW_THRESHOLD_SECS`]; an error naming `sentAt` when it is
/// more than [`MAX_SKEW_DAYS`] away.
pub fn skew(now: DateTime<Utc>, sent_at: Option<DateTime<Utc>>) -> Result<Duration, String> {
    let Some(sent_at) = sent_at else {
        return Ok(Duration::zero());
    };
    // Both instants are in chrono's range, so their difference is too; bound it first.
    let s = now.signed_duration_since(sent_at);
    if s.num_days().abs() > MAX_SKEW_DAYS {
        return Err(format!(
            "sentAt {} is more than {MAX_SKEW_DAYS} days from the server's clock",
            sent_at.to_rfc3339()
        ));
    }
    Ok(if s.num_seconds().abs() >= SKEW_THRESHOLD_SECS {
        s
    } else {
        Duration::zero()
    })
}

fn email_re() -> Option<&'static Regex> {
    static R: OnceLock<Option<Regex>> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"(?i)[a-z0-9._%+\-]+@[a-z0-9\-]+(\.[a-z0-9\-]+)*\.[a-z]{2,}").ok())
        .as_ref()
}

fn ipv4_re() -> Option<&'static Regex> {
    static R: OnceLock<Option<Regex>> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r"(^|[^0-9.])(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}($|[^0-9.])",
        )
        .ok()
    })
    .as_ref()
}

/// Whether a string looks like (or contains) an email or an IP address.
pub fn looks_personal(s: &str) -> bool {
    if s.contains('@') && email_re().is_some_and(|r| r.is_match(s)) {
        return true;
    }
    if s.contains('.') && ipv4_re().is_some_and(|r| r.is_match(s)) {
        return true;
    }
    // IPv6 (and bracketed / zoned forms) anywhere in the string, token by token.
    s.contains(':')
        && s.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '(' | ')'))
            .any(|tok| {
                let t = tok.trim_matches(|c| c == '[' || c == ']');
                let t = t.split('%').next().unwrap_or(t);
                t.matches(':').count() >= 2 && t.parse::<std::net::Ipv6Addr>().is_ok()
            })
}

/// Removes personal-looking string values; how many were removed.
pub fn scrub(e: &mut AnalyticsEvent) -> u64 {
    let Some(props) = e.properties.as_mut() else {
        return 0;
    };
    let before = props.len();
    props.retain(|_, v| !matches!(v, PropertyValue::String(s) if looks_personal(s)));
    (before - props.len()) as u64
}

/// Checks one event and turns it into a row, or says why not.
fn prepare(
    mut e: AnalyticsEvent,
    now: DateTime<Utc>,
    skew: Duration,
    sample_rate: f64,
    scrubbed: &mut u64,
) -> Result<StoredEvent, String> {
    validate_event(&e).map_err(|err| err.to_string())?;
    // Client instants reach ±262 000 years: the sum may not exist (found by fuzzing).
    let ts = e.timestamp.checked_add_signed(skew).ok_or_else(|| {
        format!(
            "timestamp {} is out of range after clock-skew correction",
            e.timestamp.to_rfc3339()
        )
    })?;
    if ts > now + Duration::days(MAX_FUTURE_DAYS) {
        return Err(format!(
            "timestamp is more than {MAX_FUTURE_DAYS} days in the future"
        ));
    }
    if ts < now - Duration::days(MAX_PAST_DAYS) {
        return Err(format!(
            "timestamp is more than {MAX_PAST_DAYS} days in the past"
        ));
    }
    *scrubbed += scrub(&mut e);
    let properties = match &e.properties {
        Some(p) if !p.is_empty() => {
            Some(serde_json::to_string(p).map_err(|err| format!("properties: {err}"))?)
        }
        _ => None,
    };
    Ok(StoredEvent {
        id: e.id.hyphenated().to_string(),
        category: e.category.as_str().to_string(),
        name: e.name,
        user_id: e.user_id,
        session_id: e.session_id,
        ts_ms: ts.timestamp_millis(),
        day: day_of(ts),
        app_version: e.app_version,
        platform: e.platform,
        arch: e.arch,
        channel: e.channel,
        properties,
        duration_ms: e.duration,
        sequence: i64::try_from(e.sequence).unwrap_or(i64::MAX),
        sample_rate,
        received_ms: now.timestamp_millis(),
    })
}

/// A batch checked and turned into rows: what the handler stores and counts.
#[derive(Debug)]
pub struct PreparedBatch {
    /// The events that passed, as rows.
    pub rows: Vec<StoredEvent>,
    /// The events that did not, by index.
    pub rejected: Vec<RejectedEvent>,
    /// Property values removed because they looked personal.
    pub scrubbed: u64,
    /// Events the client says it dropped.
    pub dropped: u64,
    /// Events the client says are still queued besides this batch.
    pub queued: u64,
}

/// Parses and checks a request body received at `now`: pure (no store, no metrics), so that
/// the fuzz target `event_batch` drives exactly what the handler runs.
pub fn prepare_batch(body: &[u8], now: DateTime<Utc>) -> Result<PreparedBatch, ApiError> {
    // Fast path: the whole batch parses; slow path: parse each event alone.
    #[allow(clippy::type_complexity)]
    let (events, sent_at, sample_rate, dropped, queued): (
        Vec<Result<AnalyticsEvent, String>>,
        _,
        _,
        _,
        _,
    ) = match serde_json::from_slice::<EventBatch>(body) {
        Ok(b) => (
            b.events.into_iter().map(Ok).collect(),
            b.sent_at,
            b.sample_rate,
            b.dropped,
            b.queued,
        ),
        Err(_) => match named(&mut serde_json::Deserializer::from_slice(body)) {
            Ok::<LooseBatch, _>(b) => (
                b.events
                    .into_iter()
                    .map(|v| named(v).map_err(|e| format!("malformed event: {e}")))
                    .collect(),
                b.sent_at,
                b.sample_rate,
                b.dropped,
                b.queued,
            ),
            Err(e) => return Err(ApiError::bad_request(format!("malformed batch: {e}"))),
        },
    };
    if events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::too_large(format!(
            "{} events, at most {MAX_BATCH_EVENTS}",
            events.len()
        )));
    }
    validate_batch(sample_rate, dropped).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if queued > MAX_QUEUED_REPORTED {
        return Err(ApiError::bad_request(format!(
            "queued {queued} is more than {MAX_QUEUED_REPORTED} events"
        )));
    }
    let skew = skew(now, sent_at).map_err(ApiError::bad_request)?;
    let mut rejected = Vec::new();
    let mut rows = Vec::with_capacity(events.len());
    let mut scrubbed = 0;
    for (index, e) in events.into_iter().enumerate() {
        match e.and_then(|e| prepare(e, now, skew, sample_rate, &mut scrubbed)) {
            Ok(row) => rows.push(row),
            Err(reason) => rejected.push(RejectedEvent { index, reason }),
        }
    }
    Ok(PreparedBatch {
        rows,
        rejected,
        scrubbed,
        dropped,
        queued,
    })
}

/// The handler.
pub async fn ingest(
    State(app): State<AppState>,
    ApiBody(body): ApiBody<MAX_BODY_BYTES>,
) -> Response {
    let PreparedBatch {
        rows,
        rejected,
        scrubbed,
        dropped,
        queued,
    } = match prepare_batch(&body, app.clock.now()) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let m = &app.metrics;
    // Bounded per batch above; saturating so no sum of batches can wrap the counter.
    let _ = m
        .client_dropped
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_add(dropped))
        });
    m.rejected
        .fetch_add(rejected.len() as u64, Ordering::Relaxed);
    m.scrubbed.fetch_add(scrubbed, Ordering::Relaxed);
    // The client's own backlog, keyed by its (hashed) user id: the fleet's sum feeds the
    // Analytics Backlog alert beside the server's queue.
    if let Some(client) = rows.first().map(|r| r.user_id.clone()) {
        app.queue.client_backlog(&client, queued, app.clock.now());
    }
    match app.queue.submit(rows).await {
        Ok(new) => {
            let accepted = new.iter().filter(|n| **n).count() as u64;
            let duplicates = new.len() as u64 - accepted;
            m.ingested.fetch_add(accepted, Ordering::Relaxed);
            m.duplicates.fetch_add(duplicates, Ordering::Relaxed);
            tracing::debug!(
                accepted,
                duplicates,
                rejected = rejected.len(),
                "batch ingested"
            );
            Json(IngestResponse {
                accepted,
                duplicates,
                rejected,
            })
            .into_response()
        }
        Err(e) => {
            if matches!(e, QueueError::Full { .. }) {
                m.overloaded.fetch_add(1, Ordering::Relaxed);
            }
            // The database's own message (paths, SQL) stays in the log, not in the answer.
            let refusal = match &e {
                QueueError::Store(_) => ApiError::store(&e),
                other => {
                    tracing::warn!(error = %other, "batch not stored");
                    ApiError::unavailable(other.to_string()).with_retry_after(1)
                }
            };
            refusal.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_values() {
        for s in [
            "alice@example.com",
            "mail me: Bob.Smith+x@mail.co.uk please",
            "10.0.0.1",
            "from 192.168.1.20:443",
            "::1",
            "2001:db8::ff00:42:8329",
            "[fe80::1%eth0]",
        ] {
            assert!(looks_personal(s), "{s}");
        }
        for s in [
            "settings",
            "1.2.3",
            "v1.2.3.4.5",
            "12:30:00",
            "a@b",
            "3.14",
            "999.1.1.1",
        ] {
            assert!(!looks_personal(s), "{s}");
        }
    }

    #[test]
    fn an_instant_that_overflows_with_the_skew_is_refused_not_a_panic() {
        // The fuzz target event_batch's crash: sentAt far in the past makes the skew huge,
        // and the event's timestamp plus it leaves chrono's range. Such a sentAt is refused
        // as a whole, naming it.
        let body = br#"{"events":[{"id":"0192f0c8-1b2a-7c3d-8e4f-000000000001","name":"x",
            "category":"custom","userId":"u-aaaaaaaaaaaaaaaa","sessionId":"s",
            "timestamp":"+200000-01-01T00:00:00Z","appVersion":"1.2.3","platform":"linux",
            "arch":"x64","channel":"stable","sequence":1}],
            "sentAt":"-200000-01-01T00:00:00Z","sampleRate":1}"#;
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("t");
        let e = prepare_batch(body, now).expect_err("sentAt out of any calendar");
        assert!(e.message().starts_with("sentAt "), "{e:?}");
        // A plausible sentAt (a clock reset to 1970) whose correction pushes an event out of
        // the calendar rejects that event only.
        let body = String::from_utf8_lossy(body)
            .replace("-200000-01-01T00:00:00Z", "1970-01-01T00:00:00Z")
            .replace("+200000-01-01T00:00:00Z", "+262142-12-31T00:00:00Z");
        let batch = prepare_batch(body.as_bytes(), now).expect("well formed");
        assert!(batch.rows.is_empty());
        assert!(
            batch.rejected[0].reason.contains("out of range"),
            "{:?}",
            batch.rejected
        );
    }

    #[test]
    fn small_skew_is_ignored() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("t");
        assert_eq!(
            skew(now, Some(now - Duration::seconds(5))),
            Ok(Duration::zero())
        );
        assert_eq!(
            skew(now, Some(now - Duration::hours(3))),
            Ok(Duration::hours(3))
        );
        assert_eq!(skew(now, None), Ok(Duration::zero()));
    }

    #[test]
    fn a_sent_at_out_of_any_calendar_is_an_error_naming_it() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("t");
        let far: DateTime<Utc> = "-200000-01-01T00:00:00Z".parse().expect("t");
        let e = skew(now, Some(far)).expect_err("far");
        assert!(e.starts_with("sentAt "), "{e}");
        let reset: DateTime<Utc> = "1970-01-01T00:00:00Z".parse().expect("t");
        assert!(
            skew(now, Some(reset)).is_ok(),
            "a clock reset to 1970 is corrected"
        );
    }
}
