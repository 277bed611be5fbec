//! The update tree served from an object store (`railgun serve --object-store URL`): `GET`
//! and `HEAD` of `APP/…` with the same `Range`, conditional requests and `ETag`s as the
//! local tree ([`super::files`]), so servers sharing the store answer alike.
//!
//! Owns [`serve_object`]. Documents up to [`HASHED_MAX_BYTES`] are read whole and tagged by
//! a hash of their bytes (as the local tree tags them); larger objects (artifacts, immutable
//! per version) by a hash of the store's own tag and size, which every server reads the same
//! (`Last-Modified` is the store's). A `Range` is fetched as a ranged `GET` from the store.
//!
//! It refuses what [`super::files::accept`] refuses (404), and answers a store
//! that fails `503` with the cause logged, never answered.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

use super::etag::{Validator, HASHED_MAX_BYTES};
use super::files::{accept, not_found, Part};
use crate::api::ApiError;

/// Answers one request for a file of the tree in `store`.
pub(super) async fn serve_object(
    State(store): State<Arc<dyn ObjectStore>>,
    req: Request,
) -> Response {
    let (head, rel) = match accept(&req) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let path = ObjectPath::from_iter(rel.iter().map(String::as_str));
    let meta = match store.head(&path).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => return not_found(),
        Err(e) => return failed(&e),
    };
    // Small documents: read whole, tagged by their bytes (what is hashed is what is sent).
    let (meta, content) = if meta.size <= HASHED_MAX_BYTES {
        match store.get(&path).await {
            Ok(r) => {
                let meta = r.meta.clone();
                match r.bytes().await {
                    Ok(b) => (meta, Some(b)),
                    Err(e) => return failed(&e),
                }
            }
            Err(object_store::Error::NotFound { .. }) => return not_found(),
            Err(e) => return failed(&e),
        }
    } else {
        (meta, None)
    };
    let len = content.as_ref().map_or(meta.size, |b| b.len() as u64);
    let v = validator(&meta, len, content.as_deref());
    let part = match Part::of(req.headers(), &v, len) {
        Ok(p) => p,
        Err(res) => return *res,
    };
    let (start, n) = (part.start, part.n);
    let body = if head || n == 0 {
        Body::empty()
    } else if let Some(bytes) = content {
        Body::from(bytes.slice(part.in_memory(bytes.len())))
    } else {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..start + n)),
            // The object read is the one tagged: a replaced object answers 412, not a splice.
            if_match: meta.e_tag.clone(),
            ..GetOptions::default()
        };
        match store.get_opts(&path, opts).await {
            Ok(r) => Body::from_stream(r.into_stream().map(|c| c.map_err(std::io::Error::other))),
            Err(object_store::Error::NotFound { .. }) => return not_found(),
            Err(e) => return failed(&e),
        }
    };
    part.respond(body, &rel, &v)
}

/// The validators of an object: a hash of its bytes when read whole, else of the store's
/// tag and size (the same on every server reading the store).
fn validator(meta: &ObjectMeta, len: u64, content: Option<&[u8]>) -> Validator {
    let modified = Some(std::time::SystemTime::from(meta.last_modified));
    match content {
        Some(bytes) => Validator::new(len, modified, 0, Some(bytes)),
        None => {
            let mut h = Sha256::new();
            h.update(meta.e_tag.as_deref().unwrap_or_default().as_bytes());
            h.update(len.to_be_bytes());
            h.update(
                meta.last_modified
                    .timestamp_nanos_opt()
                    .unwrap_or_default()
                    .to_be_bytes(),
            );
            let digest = hex::encode(h.finalize());
            Validator {
                etag: format!("\"o-{}\"", &digest[..32]),
                ..Validator::new(len, modified, 0, None)
            }
        }
    }
}

/// `503` for a store that failed; the cause is logged (redacted), never answered.
fn failed(e: &object_store::Error) -> Response {
    ApiError::unavailable("update tree unavailable")
        .with_retry_after(1)
        .logging(e)
        .into_response()
}
