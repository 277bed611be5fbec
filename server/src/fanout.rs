//! Fan-out among servers sharing a PostgreSQL database: what one server stores reaches the
//! open streams of every other at once, through PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! Owns [`SharedBus`] (the config [`RevisionBus`] of several servers), [`listen`] (one dedicated connection per channel, its notifications forwarded to a
//! receiver, reconnected with a growing delay when the database goes away) and the channel
//! names. A config notification carries a short JSON naming what changed (never the data
//! itself, nor anything about users): each server reads the row once from the database, so a
//! payload too large for `NOTIFY` (8 000 bytes) never matters, and a notification lost while
//! a listener reconnects only delays what a client's next poll fetches anyway. A dashboard
//! notification carries the live feed's frame itself (a rollout decision or an alert's
//! title, a few hundred bytes; nothing about users), as no row holds it.
//!
//! It refuses nothing; a connection that fails is logged without its URL.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::config::{LocalBus, Revision, RevisionBus};
use crate::store::SharedStore;

/// The channel of config revisions (`{"app", "revision", "from"}`).
pub const CONFIG_CHANNEL: &str = "railgun_config";

/// The channel of the dashboard's live feed (`{"from", "event", "data"}`: a rollout
/// decision or fired alert as the stream sends it, or `ingested`; see
/// [`crate::dashboard::live`]).
pub const DASHBOARD_CHANNEL: &str = "railgun_dashboard";

/// Longest wait between two attempts to reconnect a listener.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Listens on `channel` over its own connection to `url`, forwarding each notification's
/// payload, until the receiver is dropped. Reconnects (with a growing delay, 10 s at most)
/// when the connection fails.
pub fn listen(url: String, channel: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            if tx.is_closed() {
                return;
            }
            match run(&url, channel, &tx).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(channel, error = %e, "fan-out listener lost its connection; reconnecting");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    });
    rx
}

/// One connection's life: `LISTEN`, then forward until it fails (`Err`) or nobody
/// receives any more (`Ok`).
async fn run(
    url: &str,
    channel: &str,
    tx: &mpsc::Sender<String>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = tokio_postgres::connect(url, NoTls).await?;
    let (msgs_tx, mut msgs) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = stream.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if msgs_tx.send(Ok(n.payload().to_string())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = msgs_tx.send(Err(e));
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    tracing::info!(channel, "fan-out listener connected");
    let out = loop {
        match msgs.recv().await {
            Some(Ok(payload)) => {
                if tx.send(payload).await.is_err() {
                    break Ok(());
                }
            }
            Some(Err(e)) => break Err(e),
            // The connection ended without an error: reconnect like after one.
            None => break client.batch_execute("SELECT 1").await,
        }
    };
    driver.abort();
    out
}

/// What a config notification says: which revision of which app, stored by which server.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ConfigNote {
    app: String,
    revision: i64,
    from: String,
}

/// The [`RevisionBus`] of servers sharing a database: a revision this server stores reaches
/// its own streams at once and is announced with `NOTIFY`; one another server stored is read
/// from the database once and handed to this server's streams.
#[derive(Debug)]
pub struct SharedBus {
    local: Arc<LocalBus>,
    store: SharedStore,
    id: String,
}

impl SharedBus {
    /// The bus over `store` (which must be shared by servers: its [`listen`] answers),
    /// listening from now on.
    pub fn start(store: SharedStore) -> Self {
        let local = Arc::new(LocalBus::default());
        let id = uuid::Uuid::new_v4().simple().to_string();
        if let Some(mut rx) = store.listen(CONFIG_CHANNEL) {
            let (local, store, me) = (local.clone(), store.clone(), id.clone());
            tokio::spawn(async move {
                while let Some(payload) = rx.recv().await {
                    let Ok(note) = serde_json::from_str::<ConfigNote>(&payload) else {
                        continue;
                    };
                    if note.from == me {
                        continue;
                    }
                    match store.config_revision(note.app, note.revision).await {
                        Ok(Some(row)) => local.publish(Arc::new(Revision::from_row(row))),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "config revision announced by another server not read")
                        }
                    }
                }
            });
        }
        Self { local, store, id }
    }
}

impl RevisionBus for SharedBus {
    fn publish(&self, revision: Arc<Revision>) {
        let note = ConfigNote {
            app: revision.app.clone(),
            revision: revision.revision.min(i64::MAX as u64) as i64,
            from: self.id.clone(),
        };
        self.local.publish(revision);
        let store = self.store.clone();
        tokio::spawn(async move {
            let payload = serde_json::to_string(&note).unwrap_or_default();
            if let Err(e) = store.notify(CONFIG_CHANNEL, payload).await {
                tracing::warn!(error = %e, "config revision not announced to the other servers");
            }
        });
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Revision>> {
        self.local.subscribe()
    }
}
