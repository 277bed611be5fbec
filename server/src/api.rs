//! The one error answer of every route, and the request extractors that produce it.
//!
//! Owns [`ApiError`] (status, a stable `code`, the public message; one [`IntoResponse`]: JSON
//! `{"error": "…", "code": "…"}`), the conversions into it from the domain errors
//! ([`StoreError`], [`RolloutError`], [`AuthError`]), and the body extractors [`ApiBody`]
//! (bytes, bounded) and [`ApiJson`] (JSON, bounded, `400` naming the field that is wrong), and
//! [`ApiPath`] / [`ApiQuery`] (axum's `Path` and `Query` answering with it).
//! The token extractors that answer with it live in [`crate::auth`].
//!
//! It refuses to put internal text in a `5xx` answer: a database or file-system failure
//! answers a fixed message (`database unavailable`, `internal error`) and the cause is logged
//! instead, redacted of what a database may echo back (PostgreSQL's `DETAIL`/`HINT`, the
//! values of a data exception), so neither the answer nor the log carries secrets, ids or
//! event properties. A database that fails is `503` on every route (the client may retry);
//! only what is not the database's fault is `500`. Request `Content-Type` is not checked.

use std::borrow::Cow;
use std::error::Error as StdError;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::auth::AuthError;
use crate::rollout::RolloutError;
use crate::store::StoreError;

/// Largest body [`ApiBody`] and [`ApiJson`] read when the route names no other limit.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024;

/// An error answer: status, stable code, public message (and, for `5xx`, a logged cause).
///
/// Build it with the constructors ([`ApiError::bad_request`], [`ApiError::store`], …) or
/// `?` from a domain error; handlers return `Result<_, ApiError>`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    retry_after: Option<u32>,
    /// The cause, already redacted; logged when the answer is made, never answered.
    logged: Option<String>,
}

impl ApiError {
    /// An error with this status, code and public message. For a `5xx`, `message` must be
    /// written for the client (an operator's hint at most), never an error's text: use
    /// [`ApiError::internal`] or [`ApiError::store`] for causes.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            logged: None,
        }
    }

    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// `400 bad_parameter`: `parameter {name}: {reason}` (query string or path).
    pub fn bad_param(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            format!("parameter {name}: {reason}"),
        )
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `409 conflict`.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// `413 too_large`.
    pub fn too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// `503 unavailable`: a feature the server's configuration lacks, or a queue that cannot
    /// take more now. `reason` is shown: say what is missing, never an error's text.
    pub fn unavailable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
    }

    /// `503 database_unavailable` (`Retry-After: 1`); `cause` is logged, redacted.
    pub fn store(cause: &(dyn StdError + 'static)) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "database unavailable",
        )
        .with_retry_after(1);
        e.logged = Some(redacted(cause));
        e
    }

    /// `500 internal`: a failure that is neither the client's nor the database's (file
    /// system, signing); `cause` is logged, redacted.
    pub fn internal(cause: &(dyn StdError + 'static)) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        );
        e.logged = Some(redacted(cause));
        e
    }

    /// Adds `Retry-After: secs`.
    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Adds a cause to log (redacted) without changing the answer.
    pub fn logging(mut self, cause: &(dyn StdError + 'static)) -> Self {
        self.logged = Some(redacted(cause));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code (`bad_request`, `database_unavailable`, …).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The public message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.logged {
            if self.status.is_server_error() {
                tracing::error!(status = self.status.as_u16(), code = self.code, error = %cause, "request failed");
            } else {
                tracing::warn!(status = self.status.as_u16(), code = self.code, error = %cause, "request refused");
            }
        }
        let mut r = (
            self.status,
            Json(serde_json::json!({"error": self.message, "code": self.code})),
        )
            .into_response();
        let headers = r.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// The error's chain for a log line, without what a database echoes of the data: for a
/// PostgreSQL error its severity, SQLSTATE and message (no `DETAIL`, `HINT` or position;
/// no message at all for a data exception, class `22`, whose message quotes the input).
pub fn redacted(err: &(dyn StdError + 'static)) -> String {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(db) = e.downcast_ref::<tokio_postgres::error::DbError>() {
            let code = db.code().code();
            return if code.starts_with("22") {
                format!("postgres {} {code} (data exception)", db.severity())
            } else {
                format!("postgres {} {code}: {}", db.severity(), db.message())
            };
        }
        cur = e.source();
    }
    err.to_string()
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => {
                Self::new(StatusCode::UNAUTHORIZED, "missing_token", e.to_string())
            }
            AuthError::Forbidden => Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::store(&e)
    }
}

impl From<RolloutError> for ApiError {
    fn from(e: RolloutError) -> Self {
        match &e {
            RolloutError::BadRequest(m) => Self::bad_request(m.clone()),
            RolloutError::Signature(_) => {
                Self::new(StatusCode::BAD_REQUEST, "bad_signature", e.to_string())
            }
            RolloutError::Document(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_document", e.to_string())
            }
            RolloutError::NotFound(_) => Self::not_found(e.to_string()),
            RolloutError::Conflict(m) => Self::conflict(m.clone()),
            RolloutError::TooLarge { .. } => Self::too_large(e.to_string()),
            RolloutError::ArtifactMismatch { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "artifact_mismatch",
                e.to_string(),
            ),
            RolloutError::Unavailable(reason) => Self::unavailable(reason.clone()),
            // The key file's path and the parser's words stay in the log.
            RolloutError::RolloutKey { .. } => {
                Self::unavailable("the rollout key could not be loaded").logging(&e)
            }
            RolloutError::ReleaseKey { .. } => {
                Self::unavailable("a release public key could not be loaded").logging(&e)
            }
            RolloutError::Store(s) => Self::store(s),
            RolloutError::Tree(_) => Self::unavailable("update tree unavailable")
                .with_retry_after(1)
                .logging(&e),
            RolloutError::Release(_) | RolloutError::Io { .. } => Self::internal(&e),
        }
    }
}

/// A request body of at most `MAX` bytes: `413 too_large` past it (from `Content-Length`
/// before reading, or while reading), `400` when the body cannot be read.
#[derive(Debug, Clone)]
pub struct ApiBody<const MAX: usize = DEFAULT_MAX_BODY>(pub Bytes);

impl<S: Send + Sync, const MAX: usize> FromRequest<S> for ApiBody<MAX> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let too_large = || ApiError::too_large(format!("request body larger than {MAX} bytes"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX as u64) {
            return Err(too_large());
        }
        match axum::body::to_bytes(req.into_body(), MAX).await {
            Ok(b) => Ok(Self(b)),
            Err(e) => {
                let mut cur: Option<&(dyn StdError + 'static)> = Some(&e);
                while let Some(c) = cur {
                    if c.is::<http_body_util::LengthLimitError>() {
                        return Err(too_large());
                    }
                    cur = c.source();
                }
                Err(ApiError::bad_request("the request body could not be read"))
            }
        }
    }
}

/// A JSON request body of at most `MAX` bytes, parsed into `T`. `400 bad_request` names the
/// field that is wrong (`body: field machineId: invalid type…`); a body of only whitespace
/// counts as `{}`; `413` as [`ApiBody`]. `Content-Type` is not checked.
#[derive(Debug, Clone)]
pub struct ApiJson<T, const MAX: usize = DEFAULT_MAX_BODY>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const MAX: usize> FromRequest<S> for ApiJson<T, MAX> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBody(bytes) = ApiBody::<MAX>::from_request(req, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// Parses a JSON body as [`ApiJson`] does (whitespace only counts as `{}`; the error names
/// the field).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("body: {inner}"))
        } else {
            ApiError::bad_request(format!("body: field {path}: {inner}"))
        }
    })?;
    // Bytes after the document are an error too.
    de.end()
        .map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    Ok(value)
}

/// axum's [`Path`], refusing with an [`ApiError`] (`400 bad_parameter`, e.g. a path segment
/// that is not UTF-8 once decoded).
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(e) if e.status().is_server_error() => Err(ApiError::internal(&e)),
            Err(e) => Err(ApiError::new(e.status(), "bad_parameter", e.body_text())),
        }
    }
}

/// axum's [`Query`], refusing with an [`ApiError`] (`400 bad_parameter`, e.g. a parameter
/// given twice).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                e.body_text(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        user_id: String,
        #[serde(default)]
        #[allow(dead_code)]
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        n: u32,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"userId": 5}"#).expect_err("bad type");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(
            e.message().starts_with("body: field userId: invalid type"),
            "{e}"
        );
        let e = parse_json::<Body>(br#"{"userId": "u", "inner": {"n": -1}}"#).expect_err("neg");
        assert!(e.message().starts_with("body: field inner.n: "), "{e}");
        let e = parse_json::<Body>(b"  ").expect_err("empty");
        assert!(e.message().contains("missing field `userId`"), "{e}");
        let e = parse_json::<Body>(br#"{"userId": "u"} x"#).expect_err("trailing");
        assert!(e.message().contains("trailing"), "{e}");
        assert!(parse_json::<Body>(br#"{"userId": "u"}"#).is_ok());
    }

    #[test]
    fn server_errors_never_answer_their_cause() {
        let cause = std::io::Error::other("/secret/path/rollout.key: permission denied");
        for e in [ApiError::internal(&cause), ApiError::store(&cause)] {
            assert!(e.status().is_server_error());
            assert!(!e.message().contains("secret"), "{e}");
            assert!(e.logged.as_deref().is_some_and(|l| l.contains("secret")));
        }
        let e = ApiError::store(&cause);
        assert_eq!(
            (e.status().as_u16(), e.code()),
            (503, "database_unavailable")
        );
        let r = e.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn missing_token_asks_for_bearer() {
        let r = ApiError::from(AuthError::Missing).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let r = ApiError::from(AuthError::Forbidden).into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
