//! Strong `ETag`s and the conditional requests that use them, for the static update tree.
//!
//! Owns [`layer`]: a middleware in front of tower-http's `ServeDir` that resolves the
//! requested file the way `ServeDir` does and gives it a strong validator:
//!
//! - documents up to [`HASHED_MAX_BYTES`] (`channel.json`, `manifest.json`) are tagged by
//!   a SHA-256 of their bytes, so a state re-signed twice within one file-system timestamp
//!   tick, at the same size, still gets a new tag (clients polling with `If-None-Match`
//!   never miss a state);
//! - larger files (artifacts, immutable per version) by size, mtime (ns) and inode; an
//!   atomic rename (how the tree is written) always changes the inode.
//!
//! It answers `If-None-Match` (weak comparison, `*`) with 304 and `If-Match` (strong) with
//! 412 itself, and applies `If-Range` (strong ETag or exact `Last-Modified` date) by
//! dropping `Range` when the validator is stale, so a resumed download never splices two
//! versions of a file — `ServeDir` ignores `If-Range`. `Range` itself, `If-Modified-Since`,
//! `Content-Type` and bodies stay `ServeDir`'s. It refuses nothing on its own: paths it
//! cannot resolve (or that are not regular files) pass through untouched.
//!
//! The validator is computed just before `ServeDir` opens the file; a rename landing in
//! between can pair a tag with the next version's bytes for that one response (a later
//! `If-None-Match` then simply misses). Artifacts are immutable, and clients check their
//! SHA-256 anyway.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
    RANGE,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Files up to this size are tagged by a hash of their content.
pub const HASHED_MAX_BYTES: u64 = 1 << 20;

/// The validators of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// The strong entity tag, quotes included.
    pub etag: String,
    /// `Last-Modified` (IMF-fixdate), when the file system gives a time.
    pub last_modified: Option<String>,
}

/// The middleware (use with `axum::middleware::from_fn_with_state(Arc<root>, layer)`).
pub async fn layer(State(root): State<Arc<PathBuf>>, mut req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return next.run(req).await;
    }
    let Some(path) = resolve(&root, req.uri().path()) else {
        return next.run(req).await;
    };
    let Some(v) = validator(&path).await else {
        return next.run(req).await;
    };
    let tag = HeaderValue::from_str(&v.etag).ok();
    let headers = req.headers_mut();
    if let Some(if_match) = headers.get(IF_MATCH) {
        if !list_matches(if_match.as_bytes(), &v.etag, true) {
            return not_modified_or_failed(StatusCode::PRECONDITION_FAILED, &v);
        }
        headers.remove(IF_MATCH);
        headers.remove(IF_UNMODIFIED_SINCE);
    }
    if let Some(if_none_match) = headers.get(IF_NONE_MATCH) {
        if list_matches(if_none_match.as_bytes(), &v.etag, false) {
            return not_modified_or_failed(StatusCode::NOT_MODIFIED, &v);
        }
        // RFC 9110 §13.2.2: If-Modified-Since is ignored when If-None-Match is present.
        headers.remove(IF_NONE_MATCH);
        headers.remove(IF_MODIFIED_SINCE);
    }
    if let Some(if_range) = headers.remove(IF_RANGE) {
        if headers.contains_key(RANGE) && !if_range_holds(if_range.as_bytes(), &v) {
            headers.remove(RANGE);
        }
    }
    let mut res = next.run(req).await;
    if let Some(tag) = tag {
        if matches!(
            res.status(),
            StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        ) {
            res.headers_mut().insert(ETAG, tag);
        }
    }
    res
}

fn not_modified_or_failed(status: StatusCode, v: &Validator) -> Response {
    let mut res = status.into_response();
    if let Ok(tag) = HeaderValue::from_str(&v.etag) {
        res.headers_mut().insert(ETAG, tag);
    }
    if let Some(lm) = v.last_modified.as_deref().and_then(|s| s.parse().ok()) {
        res.headers_mut().insert(LAST_MODIFIED, lm);
    }
    res
}

/// The file `ServeDir` would open for `uri_path` under `root`, or `None` when the path
/// has anything but plain components (those are `ServeDir`'s to refuse).
pub fn resolve(root: &Path, uri_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(uri_path.trim_start_matches('/'))?;
    if decoded.contains('\\') || decoded.contains('\0') {
        return None;
    }
    let mut path = root.to_path_buf();
    for c in Path::new(&decoded).components() {
        match c {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(path)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The validators of the regular file at `path` (`None` for anything else).
pub async fn validator(path: &Path) -> Option<Validator> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    if !meta.is_file() {
        return None;
    }
    let modified = meta.modified().ok();
    let etag = if meta.len() <= HASHED_MAX_BYTES {
        let bytes = tokio::fs::read(path).await.ok()?;
        let digest = hex::encode(Sha256::digest(&bytes));
        format!("\"s-{}\"", &digest[..32])
    } else {
        let (secs, nanos) = modified
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| (d.as_secs(), d.subsec_nanos()))
            .unwrap_or((0, 0));
        format!(
            "\"m-{:x}-{secs:x}.{nanos:08x}-{:x}\"",
            meta.len(),
            inode(&meta)
        )
    };
    let last_modified = modified.map(|m| {
        DateTime::<Utc>::from(m)
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    });
    Some(Validator {
        etag,
        last_modified,
    })
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u64 {
    0
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
fn if_range_holds(value: &[u8], v: &Validator) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return value == v.etag;
    }
    let (Ok(asked), Some(Ok(have))) = (
        DateTime::parse_from_rfc2822(value),
        v.last_modified.as_deref().map(DateTime::parse_from_rfc2822),
    ) else {
        return false;
    };
    asked == have
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_serve_dir_and_refuses_escapes() {
        let root = Path::new("/srv/tree");
        assert_eq!(
            resolve(root, "/app/stable/channel.json"),
            Some(PathBuf::from("/srv/tree/app/stable/channel.json"))
        );
        assert_eq!(
            resolve(root, "/app/releases/1.0.0%2Bbuild/a%20b.zip"),
            Some(PathBuf::from("/srv/tree/app/releases/1.0.0+build/a b.zip"))
        );
        for bad in [
            "/../etc/passwd",
            "/app/%2e%2e/%2e%2e/x",
            "/a\\..\\b",
            "/%zz",
            "/%c0",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
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
            last_modified: Some("Thu, 01 Jan 2026 00:00:00 GMT".into()),
        };
        assert!(if_range_holds(b"\"s-abc\"", &v));
        assert!(!if_range_holds(b"W/\"s-abc\"", &v));
        assert!(if_range_holds(b"Thu, 01 Jan 2026 00:00:00 GMT", &v));
        assert!(!if_range_holds(b"Thu, 01 Jan 2026 00:00:01 GMT", &v));
        assert!(!if_range_holds(b"garbage", &v));
    }
}
