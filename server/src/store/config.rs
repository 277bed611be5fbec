//! What the remote-config service keeps in the database: every published revision of each
//! app's config document, in order.
//!
//! Owns [`ConfigStore`] (implemented by both backends, a supertrait of
//! [`super::AnalyticsStore`]) and its row type [`ConfigRevisionRow`]. A revision is written
//! once and never changed: `(app, revision)` is the key, so two servers sharing one database
//! never store the same revision twice (the second insert reports `false`).
//!
//! It refuses nothing by itself: the document is stored as the service gives it (already
//! verified and signed); it holds no user data.

use super::StoreFuture;

/// One stored revision of an app's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRevisionRow {
    /// The app.
    pub app: String,
    /// The revision number (1, 2, …; only goes up).
    pub revision: i64,
    /// The document as served: a DSSE envelope, or plain JSON when unsigned (one line).
    pub document: Vec<u8>,
    /// Lowercase hex SHA-256 of `document`.
    pub sha256: String,
    /// Whether `document` is a signed envelope.
    pub signed: bool,
    /// When it was published, ms since the epoch.
    pub published_ms: i64,
    /// The revision it republishes (`railgun config rollback`), if any.
    pub rollback_of: Option<i64>,
}

/// The config revisions.
pub trait ConfigStore {
    /// Stores a new revision; `false` when `(app, revision)` is already taken.
    fn insert_config_revision(&self, row: ConfigRevisionRow) -> StoreFuture<'_, bool>;
    /// The highest revision of `app`, if any.
    fn current_config(&self, app: String) -> StoreFuture<'_, Option<ConfigRevisionRow>>;
    /// Revision `revision` of `app`, if stored.
    fn config_revision(
        &self,
        app: String,
        revision: i64,
    ) -> StoreFuture<'_, Option<ConfigRevisionRow>>;
    /// The newest `limit` revisions of `app`, newest first.
    fn config_history(&self, app: String, limit: u32) -> StoreFuture<'_, Vec<ConfigRevisionRow>>;
}
