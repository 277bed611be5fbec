//! Strong `ETag`s and the conditional requests that use them, for the static update tree.
//!
//! Owns [`Validator`] (the validators of one open file) and [`evaluate`] (RFC 9110
//! §13.2.2's order of `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since`, then `If-Range`), pure functions over headers:
//!
//! - documents up to [`HASHED_MAX_BYTES`] (`channel.json`, `manifest.json`) are tagged by
//!   a SHA-256 of the very bytes that are sent, so a state re-signed twice within one
//!   file-system timestamp tick, at the same size, still gets a new tag (clients polling
//!   with `If-None-Match` never miss a state);
//! - larger files (artifacts, immutable per version) by size, mtime (ns) and inode of the
//!   open file; an atomic rename (how the tree is written) always changes the inode.
//!
//! `If-Range` holds for an identical strong tag or the exact `Last-Modified` date;
//! otherwise the `Range` is dropped, so a resumed download never splices two versions of a
//! file. Dates are compared in whole seconds (HTTP dates have no finer grain).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::header::{
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
};
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// Files up to this size are tagged by a hash of their content.
pub const HASHED_MAX_BYTES: u64 = 1 << 20;

/// The validators of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// The strong entity tag, quotes included.
    pub etag: String,
    /// `Last-Modified` (whole seconds), when the file system gives a time.
    pub last_modified: Option<SystemTime>,
}

impl Validator {
    /// The validators of a file: `content` is its bytes when it is small enough to be
    /// hashed (see the module docs), `None` otherwise.
    pub fn new(len: u64, modified: Option<SystemTime>, inode: u64, content: Option<&[u8]>) -> Self {
        let etag = match content {
            Some(bytes) => {
                let digest = hex::encode(Sha256::digest(bytes));
                format!("\"s-{}\"", &digest[..32])
            }
            None => {
                let (secs, nanos) = modified
                    .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                    .map(|d| (d.as_secs(), d.subsec_nanos()))
                    .unwrap_or((0, 0));
                format!("\"m-{len:x}-{secs:x}.{nanos:08x}-{inode:x}\"")
            }
        };
        Self {
            etag,
            last_modified: modified.map(whole_seconds),
        }
    }

    /// `Last-Modified` as an IMF-fixdate.
    pub fn last_modified_header(&self) -> Option<String> {
        self.last_modified.map(httpdate::fmt_http_date)
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// What the conditional headers of a request decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
    /// Send the representation; `honour_range` is false when `If-Range` did not hold.
    Send {
        /// Whether a `Range` header may be applied.
        honour_range: bool,
    },
}

/// Evaluates the preconditions of a `GET`/`HEAD` against `v` (RFC 9110 §13.2.2).
pub fn evaluate(headers: &HeaderMap, v: &Validator) -> Condition {
    if let Some(if_match) = headers.get(IF_MATCH) {
        if !list_matches(if_match.as_bytes(), &v.etag, true) {
            return Condition::PreconditionFailed;
        }
    } else if let (Some(since), Some(lm)) = (date(headers, IF_UNMODIFIED_SINCE), v.last_modified) {
        if lm > since {
            return Condition::PreconditionFailed;
        }
    }
    if let Some(if_none_match) = headers.get(IF_NONE_MATCH) {
        if list_matches(if_none_match.as_bytes(), &v.etag, false) {
            return Condition::NotModified;
        }
    } else if let (Some(since), Some(lm)) = (date(headers, IF_MODIFIED_SINCE), v.last_modified) {
        if lm <= since {
            return Condition::NotModified;
        }
    }
    let honour_range = headers
        .get(IF_RANGE)
        .is_none_or(|r| if_range_holds(r.as_bytes(), v));
    Condition::Send { honour_range }
}

fn date(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<SystemTime> {
    let s = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(s.trim()).ok()
}

/// Whether the header list (`*` or comma-separated entity tags) matches `etag`: strong
/// comparison (weak tags never match) or weak (the `W/` prefix ignored).
pub fn list_matches(header: &[u8], etag: &str, strong: bool) -> bool {
    let Ok(header) = std::str::from_utf8(header) else {
        return false;
    };
    if header.trim() == "*" {
        return true;
    }
    header.split(',').map(str::trim).any(|tag| {
        if strong {
            tag == etag
        } else {
            tag.strip_prefix("W/").unwrap_or(tag) == etag
        }
    })
}

/// `If-Range` holds for an identical strong tag, or a date equal to `Last-Modified`.
pub fn if_range_holds(value: &[u8], v: &Validator) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return value == v.etag;
    }
    match (httpdate::parse_http_date(value), v.last_modified) {
        (Ok(asked), Some(have)) => asked == have,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn compares_entity_tags() {
        let tag = "\"s-abc\"";
        assert!(list_matches(b"\"x\", \"s-abc\"", tag, true));
        assert!(list_matches(b"*", tag, true));
        assert!(!list_matches(b"W/\"s-abc\"", tag, true));
        assert!(list_matches(b"W/\"s-abc\"", tag, false));
        assert!(!list_matches(b"\"s-ab\"", tag, false));
        let v = Validator {
            etag: tag.into(),
            last_modified: Some(at(1_767_225_600)),
        };
        assert_eq!(
            v.last_modified_header().as_deref(),
            Some("Thu, 01 Jan 2026 00:00:00 GMT")
        );
        assert!(if_range_holds(b"\"s-abc\"", &v));
        assert!(!if_range_holds(b"W/\"s-abc\"", &v));
        assert!(if_range_holds(b"Thu, 01 Jan 2026 00:00:00 GMT", &v));
        assert!(!if_range_holds(b"Thu, 01 Jan 2026 00:00:01 GMT", &v));
        assert!(!if_range_holds(b"garbage", &v));
    }

    #[test]
    fn tags_small_files_by_content_and_large_ones_by_metadata() {
        let a = Validator::new(3, Some(at(5)), 7, Some(b"abc"));
        let b = Validator::new(3, Some(at(5)), 7, Some(b"abd"));
        assert_ne!(a.etag, b.etag);
        let big = Validator::new(1 << 30, Some(at(5)), 7, None);
        assert_eq!(big.etag, "\"m-40000000-5.00000000-7\"");
        let ns = Validator::new(1, Some(at(5) + Duration::from_nanos(9)), 7, None);
        assert_eq!(ns.last_modified, Some(at(5)));
    }

    #[test]
    fn evaluates_preconditions_in_rfc_order() {
        let v = Validator {
            etag: "\"s-1\"".into(),
            last_modified: Some(at(1_767_225_600)),
        };
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, val) in pairs {
                m.insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(val).expect("value"),
                );
            }
            m
        };
        let lm = "Thu, 01 Jan 2026 00:00:00 GMT";
        let before = "Wed, 31 Dec 2025 23:59:59 GMT";
        let send = Condition::Send { honour_range: true };
        assert_eq!(evaluate(&h(&[]), &v), send);
        assert_eq!(
            evaluate(&h(&[("if-match", "\"x\"")]), &v),
            Condition::PreconditionFailed
        );
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(
            evaluate(
                &h(&[("if-match", "\"s-1\""), ("if-unmodified-since", before)]),
                &v
            ),
            send
        );
        assert_eq!(
            evaluate(&h(&[("if-unmodified-since", before)]), &v),
            Condition::PreconditionFailed
        );
        assert_eq!(
            evaluate(&h(&[("if-none-match", "W/\"s-1\"")]), &v),
            Condition::NotModified
        );
        assert_eq!(
            evaluate(&h(&[("if-modified-since", lm)]), &v),
            Condition::NotModified
        );
        assert_eq!(evaluate(&h(&[("if-modified-since", before)]), &v), send);
        // If-None-Match present: If-Modified-Since is ignored.
        assert_eq!(
            evaluate(
                &h(&[("if-none-match", "\"x\""), ("if-modified-since", lm)]),
                &v
            ),
            send
        );
        assert_eq!(
            evaluate(&h(&[("if-range", "\"old\"")]), &v),
            Condition::Send {
                honour_range: false
            }
        );
        assert_eq!(evaluate(&h(&[("if-range", lm)]), &v), send);
    }
}
