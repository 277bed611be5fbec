//! The update tree over HTTP: `GET` and `HEAD` of `ROOT/<app>/…`, under `/updates/` and at
//! the root.
//!
//! Owns [`routes`] and the mapping of a request path to tree components
//! ([`request_components`]). Files are opened through [`super::tree`] (regular files inside
//! the root only), tagged by [`super::etag`] from the open file (so the tag always
//! describes the bytes sent), conditional headers evaluated there, and `Range` answered by
//! [`super::range::parse_range`]. `Content-Type` is guessed from the extension;
//! `Accept-Ranges: bytes`, `Last-Modified` and `ETag` go with every file.
//!
//! It refuses, with `404 not_found` ([`ApiError`]): paths with an encoded separator (`%2F`, `%5C`), a
//! backslash, NUL, a `..` or `.` segment once decoded, invalid percent-encoding or UTF-8,
//! a trailing `/` (no folder listings), and everything [`super::tree::open`] refuses
//! (links, FIFOs, sockets, devices, folders, names too long). Those are not logged; a
//! genuine I/O fault answers `500 internal` and logs the path relative to the root, never
//! the file system's absolute path. Methods other than `GET`/`HEAD` get 405 (`Allow`).

use std::io::{Read, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCEPT_RANGES, ALLOW, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::etag::{self, Condition, Validator, HASHED_MAX_BYTES};
use super::range::{parse_range, RangeAnswer};
use super::tree::{self, TreeError, TreeFile};
use crate::api::ApiError;

/// Read size of file bodies.
const CHUNK: usize = 64 * 1024;

/// The tree's router: every path it is given names a file under `root` (nest it, or use
/// it as a fallback).
pub fn routes(root: PathBuf) -> Router {
    Router::new()
        .fallback(serve_file)
        .with_state(Arc::new(root))
}

/// The router of `tree`: from its object store when it has one (every server answers the
/// same bytes and tags), else from the local folder ([`routes`]).
pub fn tree_routes(tree: super::shared::UpdateTree) -> Router {
    match tree.objects() {
        Some(store) => Router::new()
            .fallback(super::objects::serve_object)
            .with_state(store.clone()),
        None => routes(tree.root().to_path_buf()),
    }
}

/// The components of the tree path a request path names, decoded; `None` for anything
/// refused (see the module docs).
pub fn request_components(uri_path: &str) -> Option<Vec<String>> {
    let rest = uri_path.strip_prefix('/').unwrap_or(uri_path);
    if rest.is_empty() || rest.ends_with('/') {
        return None;
    }
    let mut out = Vec::new();
    for raw in rest.split('/') {
        if raw.is_empty() || raw == "." {
            continue;
        }
        if raw.contains('\\') {
            return None;
        }
        let decoded = percent_decode(raw)?;
        if !tree::plain(&decoded) {
            return None;
        }
        out.push(decoded);
    }
    (!out.is_empty()).then_some(out)
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

/// An opened file and, when small, its bytes (what is hashed is what is sent).
struct Opened {
    file: TreeFile,
    content: Option<Vec<u8>>,
}

fn open_blocking(root: &std::path::Path, rel: &[String]) -> Result<Opened, TreeError> {
    let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
    let mut file = tree::open(root, &parts)?;
    let content = if file.len <= HASHED_MAX_BYTES {
        let mut bytes = Vec::with_capacity(usize::try_from(file.len).unwrap_or(0));
        (&mut file.file)
            .take(HASHED_MAX_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|source| TreeError::Io {
                rel: parts.iter().collect(),
                source,
            })?;
        // What was read is the representation (a file rewritten in place may differ from
        // its stat).
        file.len = bytes.len() as u64;
        Some(bytes)
    } else {
        None
    };
    Ok(Opened { file, content })
}

async fn serve_file(State(root): State<Arc<PathBuf>>, req: Request) -> Response {
    let (head, rel) = match accept(&req) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let opened = {
        let root = root.clone();
        let rel = rel.clone();
        tokio::task::spawn_blocking(move || open_blocking(&root, &rel)).await
    };
    let opened = match opened {
        Ok(Ok(o)) => o,
        Ok(Err(TreeError::NotFound(miss))) => {
            tracing::trace!(%miss, "update tree: not found");
            return not_found();
        }
        Ok(Err(e)) => return ApiError::internal(&e).into_response(),
        Err(e) => return ApiError::internal(&e).into_response(),
    };
    let f = &opened.file;
    let v = Validator::new(f.len, f.modified, f.inode, opened.content.as_deref());
    let part = match Part::of(req.headers(), &v, f.len) {
        Ok(p) => p,
        Err(res) => return *res,
    };
    let body = if head || part.n == 0 {
        Body::empty()
    } else {
        body(opened, &part).await
    };
    part.respond(body, &rel, &v)
}

/// The method and path checks both trees' servers start with ([`super::objects`] too): a
/// `GET` or `HEAD` (`true`) and the tree components it names, or the answer (405 with
/// `Allow`, 404).
pub(super) fn accept(req: &Request) -> Result<(bool, Vec<String>), Box<Response>> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut res = StatusCode::METHOD_NOT_ALLOWED.into_response();
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET,HEAD"));
        return Err(Box::new(res));
    }
    match request_components(req.uri().path()) {
        Some(rel) => Ok((head, rel)),
        None => Err(Box::new(not_found())),
    }
}

/// The bytes a request is sent of a `len`-byte file tagged `v`: all (200) or one range
/// (206), once its conditional headers let it through.
pub(super) struct Part {
    status: StatusCode,
    /// The first byte sent.
    pub(super) start: u64,
    /// How many bytes are sent.
    pub(super) n: u64,
    len: u64,
}

impl Part {
    /// The part `headers` ask for, or the answer already due (304, 412, 416).
    pub(super) fn of(headers: &HeaderMap, v: &Validator, len: u64) -> Result<Self, Box<Response>> {
        let honour_range = match etag::evaluate(headers, v) {
            Condition::NotModified => return Err(Box::new(bare(StatusCode::NOT_MODIFIED, v))),
            Condition::PreconditionFailed => {
                return Err(Box::new(bare(StatusCode::PRECONDITION_FAILED, v)))
            }
            Condition::Send { honour_range } => honour_range,
        };
        let answer = match headers.get(RANGE) {
            Some(r) if honour_range => parse_range(r.as_bytes(), len),
            _ => RangeAnswer::Whole,
        };
        let (status, start, n) = match answer {
            RangeAnswer::Unsatisfiable => {
                let mut res = bare(StatusCode::RANGE_NOT_SATISFIABLE, v);
                insert(&mut res, CONTENT_RANGE, &format!("bytes */{len}"));
                insert(&mut res, ACCEPT_RANGES, "bytes");
                return Err(Box::new(res));
            }
            RangeAnswer::Whole => (StatusCode::OK, 0, len),
            RangeAnswer::Partial { start, end } => {
                (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
            }
        };
        Ok(Self {
            status,
            start,
            n,
            len,
        })
    }

    /// Where the part lies in a representation held in memory (`size` bytes).
    pub(super) fn in_memory(&self, size: usize) -> std::ops::Range<usize> {
        let at = |x: u64| usize::try_from(x).unwrap_or(usize::MAX).min(size);
        at(self.start)..at(self.start.saturating_add(self.n))
    }

    /// The response sending `body` (this part of the file `rel`, or nothing for `HEAD`):
    /// `Content-Range`, `Content-Length`, `Content-Type` guessed from the name,
    /// `Accept-Ranges` and the validators.
    pub(super) fn respond(&self, body: Body, rel: &[String], v: &Validator) -> Response {
        let Self {
            status,
            start,
            n,
            len,
        } = *self;
        let mut res = (status, body).into_response();
        if status == StatusCode::PARTIAL_CONTENT {
            insert(
                &mut res,
                CONTENT_RANGE,
                &format!("bytes {start}-{}/{len}", start + n - 1),
            );
        }
        let mime = mime_guess::from_path(rel.last().map(String::as_str).unwrap_or_default())
            .first_raw()
            .unwrap_or("application/octet-stream");
        insert(&mut res, CONTENT_LENGTH, &n.to_string());
        insert(&mut res, CONTENT_TYPE, mime);
        insert(&mut res, ACCEPT_RANGES, "bytes");
        validators(&mut res, v);
        res
    }
}

/// The bytes of `part`: from memory for a hashed file, streamed from the open descriptor
/// otherwise.
async fn body(opened: Opened, part: &Part) -> Body {
    let (start, n) = (part.start, part.n);
    if let Some(bytes) = opened.content {
        return Body::from(bytes[part.in_memory(bytes.len())].to_vec());
    }
    let mut file = tokio::fs::File::from_std(opened.file.file);
    if start > 0 {
        if let Err(e) = file.seek(SeekFrom::Start(start)).await {
            tracing::error!(error = %e, "update tree: seek failed");
            return Body::empty();
        }
    }
    Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file.take(n),
        CHUNK,
    ))
}

pub(super) fn not_found() -> Response {
    ApiError::not_found("no such file").into_response()
}

/// A status without a body, with the validators.
pub(super) fn bare(status: StatusCode, v: &Validator) -> Response {
    let mut res = status.into_response();
    validators(&mut res, v);
    res
}

pub(super) fn validators(res: &mut Response, v: &Validator) {
    insert(res, ETAG, &v.etag);
    if let Some(lm) = v.last_modified_header() {
        insert(res, LAST_MODIFIED, &lm);
    }
}

pub(super) fn insert(res: &mut Response, name: axum::http::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_request_paths_to_plain_components() {
        let c = |p: &str| request_components(p);
        assert_eq!(
            c("/app/stable/channel.json"),
            Some(vec!["app".into(), "stable".into(), "channel.json".into()])
        );
        assert_eq!(
            c("/app/releases/1.0.0%2Bbuild/a%20b.zip"),
            Some(vec![
                "app".into(),
                "releases".into(),
                "1.0.0+build".into(),
                "a b.zip".into()
            ])
        );
        assert_eq!(c("//app/./x"), Some(vec!["app".into(), "x".into()]));
        for bad in [
            "/",
            "",
            "/app/",
            "/../etc/passwd",
            "/app/%2e%2e/%2e%2e/x",
            "/app/%2E",
            "/a\\..\\b",
            "/app%2fstable/channel.json",
            "/app%5Cstable",
            "/x%00",
            "/%zz",
            "/%c0",
            "/%",
            "/%4",
        ] {
            assert_eq!(c(bad), None, "{bad}");
        }
    }
}
