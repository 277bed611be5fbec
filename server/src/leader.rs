//! One rollout engine at a time: the servers sharing a database elect the one that runs
//! the engine and the alert sender, through a lease row in that database.
//!
//! Owns [`Leadership`] (this server's claim on the lease, renewed in the background) and
//! [`Fence`] (the token a leader's writes carry). The lease is one row of
//! `leader_leases` (PostgreSQL): a holder (a random id drawn at each start), a fencing token
//! and an expiry, all judged on the database's clock so the servers' clocks never matter.
//! A server takes the lease when it is free or expired, and the token then goes up by one;
//! the holder renews it every quarter of `--leader-lease` and writes an expiry three
//! quarters ahead, so when the holder dies another server, polling at the same pace, takes
//! over within one lease. A clean stop gives the lease up at once.
//!
//! Every write of an engine run carries the [`Fence`]: the store checks it in the same
//! transaction as the decision (`SELECT … FOR SHARE` on the lease row: the holder, the token
//! and an unexpired lease), so a server that lost its lease while deciding (paused, cut off
//! from the database) commits nothing, and a takeover waits for a decision being committed.
//! A decision is recorded, its channel state signed and its alert queued exactly once.
//!
//! SQLite is one server's file: its store grants the lease at once and checks no fence
//! (`railgun serve` says so at start). It refuses nothing itself; losing or winning the lease
//! is logged once per change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{SharedStore, StoreError};

/// The lease the rollout engine runs under.
pub const ENGINE_LEASE: &str = "rollout-engine";

/// Default `--leader-lease`: the longest a dead leader's engine stays without a successor.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Shortest lease accepted (the renewal runs every quarter of it).
pub const MIN_LEASE: Duration = Duration::from_millis(400);

/// What a leader's writes carry: the store commits them only while `holder` still holds
/// lease `name` under `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease (`rollout-engine`).
    pub name: String,
    /// This server's holder id.
    pub holder: String,
    /// The fencing token the lease had when this server took it.
    pub token: i64,
}

struct Inner {
    store: SharedStore,
    name: String,
    holder: String,
    lease: Duration,
    /// The token while this server leads, `None` otherwise.
    state: watch::Sender<Option<i64>>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Set by [`Leadership::resign`]: a stopping server takes the lease no more (an engine
    /// run still in flight would otherwise take it back and keep renewing it).
    resigned: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .field("lease", &self.lease)
            .field("token", &*self.state.borrow())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }
}

/// This server's claim on a lease; cheap to clone.
#[derive(Debug, Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

impl Leadership {
    /// A claim on `name` in `store`'s database, `lease` long (at least [`MIN_LEASE`]), under
    /// a fresh holder id. A store of one server (SQLite) grants it at once.
    pub fn new(store: SharedStore, name: &str, lease: Duration) -> Self {
        let single = !store.shared_by_servers();
        Self {
            inner: Arc::new(Inner {
                store,
                name: name.to_string(),
                holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
                lease: lease.max(MIN_LEASE),
                state: watch::channel(single.then_some(0)).0,
                task: Mutex::new(None),
                resigned: AtomicBool::new(false),
            }),
        }
    }

    /// This server's holder id (random per start).
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// The lease's length.
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    /// Whether this server held the lease at its last renewal.
    pub fn is_leader(&self) -> bool {
        self.inner.state.borrow().is_some()
    }

    /// Changes of leadership (the token while leading, `None` otherwise).
    pub fn watch(&self) -> watch::Receiver<Option<i64>> {
        self.inner.state.subscribe()
    }

    /// Takes or renews the lease now; the fence of this server's writes while it leads,
    /// `None` when another server holds it.
    pub async fn try_lead(&self) -> Result<Option<Fence>, StoreError> {
        let i = &self.inner;
        // Written three quarters ahead, renewed every quarter: a successor polling every
        // quarter takes over within one lease of the holder's last renewal.
        let ttl_ms = (i.lease.as_millis() * 3 / 4).max(1) as i64;
        if i.resigned.load(Ordering::Acquire) {
            return Ok(None);
        }
        let token = i
            .store
            .acquire_lease(i.name.clone(), i.holder.clone(), ttl_ms)
            .await?;
        // Resigned meanwhile: its release was sent after this acquisition, and stands.
        if i.resigned.load(Ordering::Acquire) {
            return Ok(None);
        }
        let before = *i.state.borrow();
        if before != token {
            match (before, token) {
                (_, Some(t)) => {
                    tracing::info!(lease = %i.name, holder = %i.holder, token = t, "this server leads: it runs the rollout engine and sends the alerts")
                }
                (Some(_), None) => {
                    tracing::warn!(lease = %i.name, holder = %i.holder, "this server lost the lease: another one runs the rollout engine")
                }
                (None, None) => {}
            }
            i.state.send_replace(token);
        }
        Ok(token.map(|token| Fence {
            name: i.name.clone(),
            holder: i.holder.clone(),
            token,
        }))
    }

    /// Renews (or tries to take) the lease every quarter of it until the last handle is
    /// dropped; a database error counts as not leading. A leader whose renewal is not
    /// confirmed within the lease it last wrote (three quarters of `--leader-lease`, counted
    /// from before that renewal was sent, so never past the database's expiry) stops
    /// leading by itself: a server starved or cut off from the database does not go on
    /// calling itself leader (the gauge, the alert sender) while a successor takes over.
    pub fn spawn(&self) {
        self.inner.resigned.store(false, Ordering::Release);
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let period = self.inner.lease / 4;
        let ttl = self.inner.lease * 3 / 4;
        let shared = self.inner.store.shared_by_servers();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Until when this server's last confirmed renewal holds (shared stores only).
            let mut valid_until: Option<tokio::time::Instant> = None;
            loop {
                let lapsed = async {
                    match valid_until {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = lapsed => {
                        valid_until = None;
                        let Some(inner) = weak.upgrade() else { break };
                        if inner.state.borrow().is_some() {
                            tracing::warn!(lease = %inner.name, "leader lease not renewed in time: this server stops leading");
                            inner.state.send_replace(None);
                        }
                        continue;
                    }
                    _ = tick.tick() => {}
                }
                let Some(inner) = weak.upgrade() else { break };
                let me = Leadership { inner };
                let sent = tokio::time::Instant::now();
                let renewed = match valid_until {
                    // The renewal itself may not outlast the lease this server holds.
                    Some(d) => tokio::time::timeout_at(d, me.try_lead()).await.ok(),
                    None => Some(me.try_lead().await),
                };
                match renewed {
                    Some(Ok(Some(_))) => valid_until = shared.then(|| sent + ttl),
                    Some(Ok(None)) => valid_until = None,
                    Some(Err(e)) => {
                        valid_until = None;
                        tracing::warn!(error = %e, "leader lease not renewed");
                        if me.is_leader() {
                            tracing::warn!(lease = %me.inner.name, "this server stops leading until the database answers");
                            me.inner.state.send_replace(None);
                        }
                    }
                    // Timed out: the next turn of the loop sees the lease lapse.
                    None => {}
                }
            }
        });
        let old = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(task.abort_handle());
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Stops renewing and gives the lease up (a clean stop: a successor takes over at once);
    /// [`Leadership::try_lead`] takes it no more until [`Leadership::spawn`].
    pub async fn resign(&self) {
        self.inner.resigned.store(true, Ordering::Release);
        if let Some(t) = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
        let was = self.inner.state.send_replace(None);
        // Also when this server did not lead yet: an acquisition in flight (sent before this
        // release, on the same connection) may have taken the lease.
        if self.inner.store.shared_by_servers() {
            match self
                .inner
                .store
                .release_lease(self.inner.name.clone(), self.inner.holder.clone())
                .await
            {
                Ok(()) if was.is_some() => {
                    tracing::info!(lease = %self.inner.name, "leader lease given up")
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "leader lease not given up; it expires by itself")
                }
            }
        }
    }
}
