//! The operator's dashboard: `GET /dashboard` and its assets, embedded in the binary.
//!
//! Owns one HTML page (`assets/index.html`), its script and style, and a vendored copy of
//! uPlot (MIT, licence in `assets/uPlot.LICENSE`, served at
//! `/dashboard/assets/uPlot.LICENSE`). There is no build step: the files are compiled in
//! with `include_bytes!` and served as they are. The page reads its data from the read API
//! (`/analytics/dau-series`, `/analytics/sessions`, `/analytics/feature-summary`,
//! `/analytics/rollouts`) with the read token, which it takes from the URL fragment
//! (`#token=…`, never sent to the server) or a form and keeps in `sessionStorage`.
//!
//! The page's live feed (decisions, alerts, today's active users as they happen) is
//! [`live`]: a Server-Sent Events stream opened with a short-lived ticket.
//!
//! The page and its assets carry no data and need no token. Every response has a strict
//! `Content-Security-Policy` (no inline script or style, no other origin, no framing),
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, and `Cache-Control:
//! no-cache` with a strong `ETag` (content hash), so a browser revalidates with a cheap 304
//! and never runs a stale script after an upgrade. It refuses every path it does not embed
//! (404) and every method but `GET`/`HEAD` (405).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

pub mod live;

/// The `Content-Security-Policy` of every dashboard response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// File name under `/dashboard/assets/`.
    pub name: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// The page itself.
pub const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("assets/index.html"),
};

/// The files served under `/dashboard/assets/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/style.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/uPlot.min.css"),
    },
    Asset {
        name: "uPlot.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("assets/uPlot.LICENSE"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/favicon.svg"),
    },
];

/// The dashboard routes (no state, no token: the page holds no data).
pub fn routes() -> Router {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/", get(page))
        .route("/dashboard/assets/{file}", get(asset))
}

async fn page(headers: HeaderMap) -> Response {
    serve(&INDEX, etag_of(0), &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == file) {
        Some(i) => serve(&ASSETS[i], etag_of(i + 1), &headers),
        None => secured(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not found",
            )
                .into_response(),
        ),
    }
}

/// Strong ETags (first 16 bytes of the SHA-256, quoted), index 0 for the page, then
/// [`ASSETS`] in order; computed once.
fn etag_of(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS.iter())
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..16])))
            .collect()
    });
    tags.get(i).map(String::as_str).unwrap_or("\"\"")
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak validators compare weakly.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn serve(asset: &Asset, etag: &'static str, headers: &HeaderMap) -> Response {
    let mut r = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(etag));
    secured(r)
}

/// Adds the security and cache headers every dashboard response carries.
fn secured(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_differ_per_file_and_are_quoted() {
        let all: Vec<&str> = (0..=ASSETS.len()).map(etag_of).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(
                a.starts_with('"') && a.ends_with('"') && a.len() == 34,
                "{a}"
            );
            assert!(!all[i + 1..].contains(a), "duplicate etag {a}");
        }
    }

    #[test]
    fn if_none_match_forms() {
        let tag = etag_of(1);
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, tag));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", W/{tag}")).expect("value"),
        );
        assert!(not_modified(&h, tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified(&h, tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&h, tag));
    }

    #[test]
    fn page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(INDEX.body).expect("utf-8");
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').expect("tag end")];
            assert!(
                tag.contains(" src=\"/dashboard/assets/"),
                "inline script: {tag}"
            );
        }
        assert!(!html.contains("<style"), "inline style element");
        assert!(!html.contains(" style="), "inline style attribute");
        for (i, _) in html.match_indices(" on") {
            let rest = &html[i + 3..];
            let word = rest
                .find(|c: char| !c.is_ascii_lowercase())
                .unwrap_or(rest.len());
            assert!(
                !rest[word..].starts_with('='),
                "inline event handler at {i}"
            );
        }
        for a in ASSETS {
            if a.name.ends_with(".js") || a.name.ends_with(".css") {
                assert!(
                    html.contains(&format!("/dashboard/assets/{}", a.name)),
                    "{} not referenced",
                    a.name
                );
            }
        }
    }
}
