//! Remote config hosted by the server: signed revisions, history, rollback and live push.
//!
//! Owns [`ConfigService`] (publish, rollback, current revision, history), [`Revision`] (one
//! stored document as served), [`RevisionBus`] (how "a new revision was stored" reaches the
//! streams; [`LocalBus`] in one process, a PostgreSQL `LISTEN/NOTIFY` fan-out can implement
//! it for several servers) and the routes ([`routes`]).
//!
//! Publishing: a plain JSON document is stamped with the next revision (`"revision": N`
//! inside the payload) and signed with the server's config key (`--config-key`); a DSSE
//! envelope (`application/vnd.railgun.config+json`) signed by the publisher is verified
//! against the config public keys (`--config-public-key`, and the config key's own public
//! key) and must already carry a revision above the current one. Revisions only go up; the
//! history is kept; a rollback republishes an older document as a new revision.
//!
//! It refuses: an envelope that does not verify, a document that is not a valid config,
//! an unsigned document when the server verifies signatures but holds no key to sign, a
//! revision not above the current one (409), and a stream past `--config-max-subscribers`
//! (503). Open streams end when the server shuts down ([`ConfigService::close`]), so they
//! never hold a shutdown until its deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use railgun_core::clock::SharedClock;
use railgun_core::flags::stream::{revision_of, with_revision};
use railgun_core::flags::RemoteConfig;
use railgun_core::trust::{
    DsseError, Envelope, KeyError, PrivateKey, PublicKey, TrustedKeys, PAYLOAD_CONFIG,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, watch};

use crate::auth::Tokens;
use crate::serve::ServerConfig;
use crate::store::config::ConfigRevisionRow;
use crate::store::{SharedStore, StoreError};

pub mod routes;

pub use routes::routes;

/// Default time between two heartbeats of a config stream.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// Default bound of open config streams.
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 16_384;
/// Largest config document accepted at publish.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Why a config operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The request is not acceptable (bad app name, not a config, …).
    #[error("{0}")]
    BadRequest(String),
    /// A signature did not verify.
    #[error("config signature refused: {0}")]
    Signature(#[source] DsseError),
    /// An unsigned document where signatures are required.
    #[error("unsigned config refused: this server verifies config signatures (--config-public-key) and holds no config key (--config-key) to sign it")]
    Unsigned,
    /// The revision is not above the current one.
    #[error("revision {got} is not above the current revision {current} of {app}")]
    Stale {
        /// The app.
        app: String,
        /// The current revision.
        current: u64,
        /// The revision refused.
        got: u64,
    },
    /// No such app or revision.
    #[error("{0}")]
    NotFound(String),
    /// The server lacks what the operation needs.
    #[error("{0}")]
    Unavailable(String),
    /// A key file does not load.
    #[error("config key {path}: {source}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// Signing failed.
    #[error("cannot sign the config: {0}")]
    Sign(#[source] DsseError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One stored revision, as the routes serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The app.
    pub app: String,
    /// The revision number.
    pub revision: u64,
    /// The document as served (one line of JSON: an envelope, or the plain config).
    pub document: Arc<str>,
    /// Strong `ETag`, quotes included.
    pub etag: String,
    /// Lowercase hex SHA-256 of the document.
    pub sha256: String,
    /// Whether the document is signed.
    pub signed: bool,
    /// When it was published, ms since the epoch.
    pub published_ms: i64,
    /// The revision it republishes, if any.
    pub rollback_of: Option<u64>,
}

impl Revision {
    pub(crate) fn from_row(r: ConfigRevisionRow) -> Self {
        let etag = format!(
            "\"r{}-{}\"",
            r.revision,
            &r.sha256[..r.sha256.len().min(16)]
        );
        Self {
            app: r.app,
            revision: r.revision.max(0) as u64,
            document: String::from_utf8_lossy(&r.document).into(),
            etag,
            sha256: r.sha256,
            signed: r.signed,
            published_ms: r.published_ms,
            rollback_of: r.rollback_of.map(|n| n.max(0) as u64),
        }
    }
}

/// What a publish or rollback answers, and one entry of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionInfo {
    /// The app.
    pub app: String,
    /// The revision number.
    pub revision: u64,
    /// Strong `ETag`.
    pub etag: String,
    /// SHA-256 of the document.
    pub sha256: String,
    /// Whether the document is signed.
    pub signed: bool,
    /// When it was published (RFC 3339).
    pub published_at: String,
    /// The revision it republishes, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
}

impl From<&Revision> for RevisionInfo {
    fn from(r: &Revision) -> Self {
        Self {
            app: r.app.clone(),
            revision: r.revision,
            etag: r.etag.clone(),
            sha256: r.sha256.clone(),
            signed: r.signed,
            published_at: chrono::DateTime::from_timestamp_millis(r.published_ms)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            rollback_of: r.rollback_of,
        }
    }
}

/// How "a new revision was stored" reaches every open stream. One process: [`LocalBus`];
/// several servers over one database: an implementation that also forwards what the
/// others stored (PostgreSQL `LISTEN/NOTIFY`, reading the row once per server).
pub trait RevisionBus: Send + Sync + std::fmt::Debug {
    /// Announces a revision this server stored.
    fn publish(&self, revision: Arc<Revision>);
    /// A receiver of every revision announced from now on.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Revision>>;
}

/// [`RevisionBus`] within one process (a `tokio` broadcast channel).
#[derive(Debug)]
pub struct LocalBus(broadcast::Sender<Arc<Revision>>);

impl Default for LocalBus {
    fn default() -> Self {
        Self(broadcast::channel(64).0)
    }
}

impl RevisionBus for LocalBus {
    fn publish(&self, revision: Arc<Revision>) {
        // No receiver is not an error: nobody is listening.
        let _ = self.0.send(revision);
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Revision>> {
        self.0.subscribe()
    }
}

/// The config service (cheap to clone).
#[derive(Debug, Clone)]
pub struct ConfigService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: SharedStore,
    clock: SharedClock,
    tokens: Tokens,
    signer: Option<PrivateKey>,
    keys: Option<TrustedKeys>,
    heartbeat: Duration,
    max_subscribers: usize,
    subscribers: AtomicUsize,
    bus: Arc<dyn RevisionBus>,
    publishing: tokio::sync::Mutex<()>,
    closing: watch::Sender<bool>,
}

/// One open stream, counted while it lives.
#[derive(Debug)]
pub struct SubscriberSlot {
    service: ConfigService,
}

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.service
            .inner
            .subscribers
            .fetch_sub(1, Ordering::Relaxed);
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn check_app(app: &str) -> Result<(), ConfigError> {
    if railgun_core::update::is_valid_app_name(app) {
        Ok(())
    } else {
        Err(ConfigError::BadRequest(format!(
            "app {app:?} is not 1-64 of [A-Za-z0-9._-]"
        )))
    }
}

fn parse_config(payload: &[u8]) -> Result<RemoteConfig, ConfigError> {
    RemoteConfig::parse(payload)
        .map_err(|e| ConfigError::BadRequest(format!("not a valid config: {e}")))
}

impl ConfigService {
    /// The service over `store`: loads `--config-key` and `--config-public-key` (a file
    /// that does not load is an error).
    pub fn new(
        config: &ServerConfig,
        store: SharedStore,
        tokens: Tokens,
    ) -> Result<Self, ConfigError> {
        let signer = config
            .config_key
            .as_ref()
            .map(|p| {
                PrivateKey::from_file(p).map_err(|source| ConfigError::Key {
                    path: p.display().to_string(),
                    source,
                })
            })
            .transpose()?;
        let mut public: Vec<PublicKey> = Vec::new();
        for p in &config.config_public_keys {
            public.push(PublicKey::from_file(p).map_err(|source| ConfigError::Key {
                path: p.display().to_string(),
                source,
            })?);
        }
        if let Some(s) = &signer {
            if !public.iter().any(|k| k.keyid() == s.public_key().keyid()) {
                public.push(s.public_key().clone());
            }
        }
        let keys = if public.is_empty() {
            None
        } else {
            Some(TrustedKeys::new(public, 1).map_err(ConfigError::Sign)?)
        };
        // Several servers over one database: revisions stored by the others reach this
        // one's streams too (`crate::fanout`).
        let bus: Arc<dyn RevisionBus> = if store.shared_by_servers() {
            Arc::new(crate::fanout::SharedBus::start(store.clone()))
        } else {
            Arc::new(LocalBus::default())
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock: config.clock.clone(),
                tokens,
                signer,
                keys,
                heartbeat: config.config_heartbeat,
                max_subscribers: config.config_max_subscribers,
                subscribers: AtomicUsize::new(0),
                bus,
                publishing: tokio::sync::Mutex::new(()),
                closing: watch::channel(false).0,
            }),
        })
    }

    pub(crate) fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// Time between two heartbeats of a stream.
    pub fn heartbeat(&self) -> Duration {
        self.inner.heartbeat
    }

    /// Streams open now.
    pub fn subscribers(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }

    /// A slot for one more stream, or `None` past the bound.
    pub fn open_slot(&self) -> Option<SubscriberSlot> {
        let n = self.inner.subscribers.fetch_add(1, Ordering::Relaxed);
        let slot = SubscriberSlot {
            service: self.clone(),
        };
        (n < self.inner.max_subscribers).then_some(slot)
    }

    /// Ends every open stream and refuses new ones (the server is shutting down).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Whether [`ConfigService::close`] was called.
    pub fn is_closing(&self) -> bool {
        *self.inner.closing.borrow()
    }

    /// Resolves once the server is shutting down.
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// A receiver of every revision stored from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Revision>> {
        self.inner.bus.subscribe()
    }

    /// The current revision of `app`.
    pub async fn current(&self, app: &str) -> Result<Option<Revision>, ConfigError> {
        check_app(app)?;
        Ok(self
            .inner
            .store
            .current_config(app.to_string())
            .await?
            .map(Revision::from_row))
    }

    /// Revision `revision` of `app`.
    pub async fn revision(&self, app: &str, revision: u64) -> Result<Revision, ConfigError> {
        check_app(app)?;
        self.inner
            .store
            .config_revision(app.to_string(), revision.min(i64::MAX as u64) as i64)
            .await?
            .map(Revision::from_row)
            .ok_or_else(|| {
                ConfigError::NotFound(format!("{app} has no config revision {revision}"))
            })
    }

    /// The newest `limit` revisions of `app`, newest first.
    pub async fn history(&self, app: &str, limit: u32) -> Result<Vec<RevisionInfo>, ConfigError> {
        check_app(app)?;
        let rows = self
            .inner
            .store
            .config_history(app.to_string(), limit)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| RevisionInfo::from(&Revision::from_row(r)))
            .collect())
    }

    /// Stores `body` (plain config JSON or a signed envelope) as the next revision of `app`.
    pub async fn publish(&self, app: &str, body: &[u8]) -> Result<RevisionInfo, ConfigError> {
        check_app(app)?;
        let _one = self.inner.publishing.lock().await;
        let current = self.current_number(app).await?;
        let (document, revision, signed) = if is_envelope(body) {
            let keys = self.inner.keys.as_ref().ok_or_else(|| {
                ConfigError::Unavailable(
                    "no config public keys configured (--config-public-key FILE): a signed config cannot be verified"
                        .into(),
                )
            })?;
            let v = keys
                .verify(body, PAYLOAD_CONFIG)
                .map_err(ConfigError::Signature)?;
            let config = parse_config(&v.payload)?;
            let got = revision_of(&config).ok_or_else(|| {
                ConfigError::BadRequest(format!(
                    "a signed config must carry its revision in the payload (\"revision\": {})",
                    current + 1
                ))
            })?;
            if got <= current {
                return Err(ConfigError::Stale {
                    app: app.into(),
                    current,
                    got,
                });
            }
            let env: Envelope = serde_json::from_slice(body)
                .map_err(|e| ConfigError::BadRequest(format!("envelope: {e}")))?;
            (compact(&env), got, true)
        } else {
            let payload = with_revision(body, current + 1)
                .map_err(|e| ConfigError::BadRequest(e.to_string()))?;
            self.sign_new(&payload)?
        };
        self.store(app, document, revision, signed, None).await
    }

    /// Republishes revision `to` of `app` as a new revision.
    pub async fn rollback(&self, app: &str, to: u64) -> Result<RevisionInfo, ConfigError> {
        check_app(app)?;
        let _one = self.inner.publishing.lock().await;
        let old = self.revision(app, to).await?;
        let current = self.current_number(app).await?;
        let payload = if old.signed {
            if self.inner.signer.is_none() {
                return Err(ConfigError::Unavailable(
                    "rolling back a signed revision needs the server's config key (--config-key), or sign it yourself: railgun config rollback --key FILE".into(),
                ));
            }
            let env: Envelope = serde_json::from_str(&old.document)
                .map_err(|e| ConfigError::BadRequest(format!("stored envelope: {e}")))?;
            base64::engine::general_purpose::STANDARD
                .decode(env.payload.as_bytes())
                .map_err(|e| ConfigError::BadRequest(format!("stored envelope payload: {e}")))?
        } else {
            old.document.as_bytes().to_vec()
        };
        let payload = with_revision(&payload, current + 1)
            .map_err(|e| ConfigError::BadRequest(e.to_string()))?;
        let (document, revision, signed) = self.sign_new(&payload)?;
        self.store(app, document, revision, signed, Some(to)).await
    }

    async fn current_number(&self, app: &str) -> Result<u64, ConfigError> {
        Ok(self.current(app).await?.map_or(0, |r| r.revision))
    }

    /// Validates a stamped payload and signs it with the server's key (plain when the
    /// server neither signs nor verifies).
    fn sign_new(&self, payload: &[u8]) -> Result<(Vec<u8>, u64, bool), ConfigError> {
        let config = parse_config(payload)?;
        let revision = revision_of(&config).unwrap_or(0);
        match (&self.inner.signer, &self.inner.keys) {
            (Some(key), _) => {
                let env =
                    Envelope::sign(PAYLOAD_CONFIG, payload, &[key]).map_err(ConfigError::Sign)?;
                Ok((compact(&env), revision, true))
            }
            (None, Some(_)) => Err(ConfigError::Unsigned),
            (None, None) => Ok((payload.to_vec(), revision, false)),
        }
    }

    async fn store(
        &self,
        app: &str,
        document: Vec<u8>,
        revision: u64,
        signed: bool,
        rollback_of: Option<u64>,
    ) -> Result<RevisionInfo, ConfigError> {
        let row = ConfigRevisionRow {
            app: app.to_string(),
            revision: revision.min(i64::MAX as u64) as i64,
            sha256: sha256_hex(&document),
            document,
            signed,
            published_ms: self.inner.clock.now().timestamp_millis(),
            rollback_of: rollback_of.map(|n| n as i64),
        };
        if !self.inner.store.insert_config_revision(row.clone()).await? {
            // Another server sharing the database stored this revision first.
            return Err(ConfigError::Stale {
                app: app.into(),
                current: revision,
                got: revision,
            });
        }
        let rev = Arc::new(Revision::from_row(row));
        tracing::info!(app, revision, signed, "config revision published");
        self.inner.bus.publish(rev.clone());
        Ok(RevisionInfo::from(&*rev))
    }
}

fn is_envelope(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        payload_type: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Probe>(body).is_ok_and(|p| p.payload_type.is_some())
}

fn compact(env: &Envelope) -> Vec<u8> {
    // Serializing plain strings cannot fail.
    serde_json::to_vec(env).unwrap_or_default()
}
