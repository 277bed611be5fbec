//! Errors crossing into JavaScript: every core error becomes an `Error` whose `code` is one
//! of a small, stable set (`ERR_SIGNATURE_INVALID`, `ERR_CHECKSUM_MISMATCH`, …) and whose
//! message is the core's one line for people.
//!
//! The mapping is the whole contract with JS callers: the core's finer codes
//! (`UpdaterError::code()`, `SigstoreError::code()`) may change, these may not. The table for
//! JS callers is the `RailgunErrorCode` type at the top of `index.d.ts` (written in
//! `bindings/node/dts-header.d.ts`; `tests/node/errors.test.mjs` checks that the two lists
//! agree). The Electron layer adds its own few (`ERR_NOT_INITIALIZED`, …; `docs/electron.md`).

use napi::bindgen_prelude::*;
use railgun_core::analytics::AnalyticsError;
use railgun_core::flags::FlagsError;
use railgun_core::update::{CheckError, DownloadError, InstallError, UpdaterError};

/// A stable error code (the JS `error.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<Status> for Code {
    fn from(s: Status) -> Self {
        // napi's own failures (a wrong argument type, a closing environment).
        match s {
            Status::InvalidArg
            | Status::ObjectExpected
            | Status::StringExpected
            | Status::NumberExpected
            | Status::BooleanExpected
            | Status::ArrayExpected
            | Status::FunctionExpected
            | Status::BigintExpected => INVALID_ARGUMENT,
            _ => INTERNAL,
        }
    }
}

/// A bad argument or option from JS (type, range, format).
pub const INVALID_ARGUMENT: Code = Code("ERR_INVALID_ARGUMENT");
/// A signature did not verify against the trusted keys (or the document was not signed).
pub const SIGNATURE_INVALID: Code = Code("ERR_SIGNATURE_INVALID");
/// A downloaded file's SHA-256 differs from the signed manifest.
pub const CHECKSUM_MISMATCH: Code = Code("ERR_CHECKSUM_MISMATCH");
/// Signed metadata older than what was already seen (replay / rollback attack).
pub const ROLLBACK_REFUSED: Code = Code("ERR_ROLLBACK_REFUSED");
/// Signed metadata past its expiry (freeze attack).
pub const EXPIRED: Code = Code("ERR_EXPIRED");
/// The server could not be reached, timed out, or the connection broke.
pub const NETWORK: Code = Code("ERR_NETWORK");
/// The server answered with an HTTP error status.
pub const HTTP_STATUS: Code = Code("ERR_HTTP_STATUS");
/// A response or file was larger than allowed or than announced.
pub const TOO_LARGE: Code = Code("ERR_TOO_LARGE");
/// Signed documents that do not belong together (substituted manifest, other app/channel).
pub const METADATA_MISMATCH: Code = Code("ERR_METADATA_MISMATCH");
/// A verified document that breaks the schema or its rules.
pub const INVALID_DOCUMENT: Code = Code("ERR_INVALID_DOCUMENT");
/// The release has no artifact for this platform/arch/format.
pub const NO_ARTIFACT: Code = Code("ERR_NO_ARTIFACT");
/// The Sigstore policy refused the artifact.
pub const SIGSTORE_REFUSED: Code = Code("ERR_SIGSTORE_REFUSED");
/// The action does not fit the current state (e.g. `downloadUpdate()` before an update).
pub const INVALID_STATE: Code = Code("ERR_INVALID_STATE");
/// Another download holds the staging lock.
pub const BUSY: Code = Code("ERR_BUSY");
/// Not enough disk space.
pub const DISK_FULL: Code = Code("ERR_DISK_FULL");
/// The archive is corrupt, unsafe (path traversal, links out) or of an unsupported format.
pub const ARCHIVE_INVALID: Code = Code("ERR_ARCHIVE_INVALID");
/// Installing or rolling back failed (no previous version, not installed).
pub const INSTALL_FAILED: Code = Code("ERR_INSTALL_FAILED");
/// A file or the client store (SQLite) failed.
pub const IO: Code = Code("ERR_IO");
/// The client was shut down.
pub const CLOSED: Code = Code("ERR_CLOSED");
/// The announcement may not be dismissed.
pub const NOT_DISMISSIBLE: Code = Code("ERR_NOT_DISMISSIBLE");
/// A failure inside the addon itself (a bug, or Node shutting down).
pub const INTERNAL: Code = Code("ERR_INTERNAL");

/// An error for JS: a stable code and the message.
#[derive(Debug, Clone)]
pub struct JsFailure {
    /// The code.
    pub code: Code,
    /// One line for people.
    pub message: String,
}

impl JsFailure {
    /// A failure with `code` and `message`.
    pub fn new(code: Code, message: impl ToString) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }

    /// An `ERR_INVALID_ARGUMENT`.
    pub fn invalid(message: impl ToString) -> Self {
        Self::new(INVALID_ARGUMENT, message)
    }

    /// The error thrown by a synchronous method.
    pub fn into_napi(self) -> Error<Code> {
        Error::new(self.code, self.message)
    }

    /// The JS `Error` object with its `code`, built on the JS thread, as an `Error` that
    /// rejects a Promise with exactly this object.
    pub fn into_rejection(self, env: &Env) -> Error {
        let built = env
            .create_error(Error::new(Status::GenericFailure, &self.message))
            .and_then(|mut obj| {
                obj.set_named_property("code", self.code.0)?;
                Ok(Error::from(obj.to_unknown()))
            });
        built.unwrap_or_else(|e| e)
    }
}

impl From<JsFailure> for Error<Code> {
    fn from(f: JsFailure) -> Self {
        f.into_napi()
    }
}

/// The stable code of a check failure.
pub fn check_code(e: &CheckError) -> Code {
    match e {
        CheckError::Config(_) | CheckError::Url { .. } => INVALID_ARGUMENT,
        CheckError::Network { .. } | CheckError::Timeout { .. } => NETWORK,
        CheckError::HttpStatus { .. } => HTTP_STATUS,
        CheckError::TooLarge { .. } => TOO_LARGE,
        CheckError::Signature { .. } => SIGNATURE_INVALID,
        CheckError::Document(_) => INVALID_DOCUMENT,
        CheckError::WrongChannel { .. }
        | CheckError::ManifestDigestMismatch { .. }
        | CheckError::ManifestMismatch { .. } => METADATA_MISMATCH,
        CheckError::Expired { .. } => EXPIRED,
        CheckError::SequenceRollback { .. } => ROLLBACK_REFUSED,
        CheckError::NoArtifact { .. } => NO_ARTIFACT,
        CheckError::Store(_) => IO,
    }
}

/// The stable code of a download failure.
pub fn download_code(e: &DownloadError) -> Code {
    match e {
        DownloadError::Busy { .. } => BUSY,
        DownloadError::HttpStatus { .. } => HTTP_STATUS,
        DownloadError::Network { .. } | DownloadError::Stalled { .. } => NETWORK,
        DownloadError::TooMuchData { .. } | DownloadError::SizeMismatch { .. } => TOO_LARGE,
        DownloadError::ChecksumMismatch { .. } => CHECKSUM_MISMATCH,
        DownloadError::BadRange { .. } => NETWORK,
        DownloadError::InsufficientSpace { .. } => DISK_FULL,
        DownloadError::BadDigest(_) => INVALID_DOCUMENT,
        DownloadError::Io { .. } => IO,
    }
}

/// The stable code of an install failure.
pub fn install_code(e: &InstallError) -> Code {
    match e {
        InstallError::Unsupported { .. }
        | InstallError::UnsafeEntry { .. }
        | InstallError::Corrupt { .. } => ARCHIVE_INVALID,
        InstallError::NoPrevious { .. } | InstallError::NotInstalled { .. } => INSTALL_FAILED,
        InstallError::Io { .. } => IO,
    }
}

impl From<UpdaterError> for JsFailure {
    fn from(e: UpdaterError) -> Self {
        let code = match &e {
            UpdaterError::Check(c) => check_code(c),
            UpdaterError::Download(d) => download_code(d),
            UpdaterError::Install(i) => install_code(i),
            UpdaterError::Verification { .. } => SIGSTORE_REFUSED,
            UpdaterError::InvalidState { .. } => INVALID_STATE,
            UpdaterError::Config(_) => INVALID_ARGUMENT,
        };
        JsFailure::new(code, e)
    }
}

impl From<CheckError> for JsFailure {
    fn from(e: CheckError) -> Self {
        JsFailure::new(check_code(&e), e)
    }
}

impl From<AnalyticsError> for JsFailure {
    fn from(e: AnalyticsError) -> Self {
        let code = match &e {
            AnalyticsError::InvalidEvent(_) | AnalyticsError::Config(_) => INVALID_ARGUMENT,
            AnalyticsError::Store(_) | AnalyticsError::Queue(_) | AnalyticsError::Write(_) => IO,
            AnalyticsError::UploadSetup(_) => INVALID_ARGUMENT,
            AnalyticsError::Upload(_) => NETWORK,
            AnalyticsError::Thread(_) | AnalyticsError::AlreadyInitialized => INTERNAL,
            AnalyticsError::Closed => CLOSED,
        };
        JsFailure::new(code, e)
    }
}

impl From<FlagsError> for JsFailure {
    fn from(e: FlagsError) -> Self {
        let code = match &e {
            FlagsError::Config(_)
            | FlagsError::NoUrl
            | FlagsError::Url { .. }
            | FlagsError::Overrides { .. } => INVALID_ARGUMENT,
            FlagsError::Network { .. } | FlagsError::Timeout { .. } => NETWORK,
            FlagsError::HttpStatus { .. } => HTTP_STATUS,
            FlagsError::TooLarge { .. } => TOO_LARGE,
            FlagsError::Signature(_) => SIGNATURE_INVALID,
            FlagsError::Replayed { .. } => SIGNATURE_INVALID,
            FlagsError::Schema(_) => INVALID_DOCUMENT,
            FlagsError::NotDismissible { .. } => NOT_DISMISSIBLE,
            FlagsError::Store(_) => IO,
        };
        JsFailure::new(code, e)
    }
}

impl From<railgun_core::store::StoreError> for JsFailure {
    fn from(e: railgun_core::store::StoreError) -> Self {
        JsFailure::new(IO, e)
    }
}

/// Converts a JS argument (an options object, a properties record) with serde, so a wrong
/// shape is an `ERR_INVALID_ARGUMENT` naming `what` rather than a Node-API status.
pub fn from_js<T: serde::de::DeserializeOwned>(
    env: &Env,
    what: &str,
    value: Unknown<'_>,
) -> std::result::Result<T, JsFailure> {
    let t = value
        .get_type()
        .map_err(|e| JsFailure::invalid(format!("{what}: {e}")))?;
    if t != ValueType::Object {
        return Err(JsFailure::invalid(format!(
            "{what} must be an object, not {t}"
        )));
    }
    env.from_js_value::<T, _>(value)
        .map_err(|e| JsFailure::invalid(format!("{what}: {}", e.reason)))
}

/// Runs `fut` on the addon's tokio runtime and settles a Promise on the JS thread: resolved
/// with `to_js(value)`, or rejected with an `Error` carrying the stable `code`.
pub fn spawn_promise<'env, T, V, F, C>(
    env: &'env Env,
    fut: F,
    to_js: C,
) -> Result<PromiseRaw<'env, V>>
where
    T: 'static + Send,
    V: ToNapiValue,
    F: 'static + Send + std::future::Future<Output = std::result::Result<T, JsFailure>>,
    C: 'static + FnOnce(&'env Env, T) -> std::result::Result<V, JsFailure>,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, move |env, r| match r {
        Ok(v) => to_js(env, v).map_err(|f| f.into_rejection(env)),
        Err(f) => Err(f.into_rejection(env)),
    })
}
