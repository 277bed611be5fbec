//! The durable alert outbox and the alert states, in the server's database.
//!
//! Owns [`AlertStore`] (implemented by both backends, a supertrait of
//! [`super::AnalyticsStore`]) and its rows. An alert is *accepted* when its [`OutboxRow`]s
//! (one per destination) are committed: [`AlertWrite`] is written in one transaction, and
//! a rollout decision that raises an alert carries its `AlertWrite` in the same
//! transaction as the decision ([`super::rollout::RolloutChange::alerts`]). The sender
//! (`crate::alerts`) claims due rows with a lease ([`AlertStore::claim_alerts`]: a server
//! killed mid-delivery leaves the row to be retried after the lease, by it or by another
//! server sharing the database), posts them and records the outcome
//! ([`AlertStore::finish_alert`]).
//!
//! [`AlertStateRow`]s are the conditions being watched: an excursion that has started (High
//! Error Rate's 15 minutes run from `since`) and an alert that fired and waits for its
//! resolve. Their `alert` JSON keeps the title and fields the resolve repeats.
//!
//! It refuses to store destination URLs or routing keys (secrets): a row names its
//! destination by kind and position (`slack#1`, `pagerduty#1`, `json#1`).

use super::StoreFuture;

/// One alert for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Alert id (UUID): the same for every destination and every attempt
    /// (`X-Railgun-Alert-Id`).
    pub id: String,
    /// Destination name (`slack#1`, `pagerduty#1`, `json#1`).
    pub destination: String,
    /// `rollout_halted` | `high_error_rate` | `low_adoption` | `analytics_backlog`.
    pub kind: String,
    /// `critical` | `warning` | `info`.
    pub severity: String,
    /// `firing` | `resolved`.
    pub status: String,
    /// The key shared by an alert and its resolve (PagerDuty's `dedup_key`).
    pub dedup_key: String,
    /// One line.
    pub title: String,
    /// The body posted, rendered for the destination (JSON text).
    pub body: String,
    /// When the alert was raised (the injected clock), ms.
    pub created_ms: i64,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Not before this wall-clock time, ms (0: at once).
    pub next_ms: i64,
    /// When the receiver acknowledged it, ms.
    pub delivered_ms: Option<i64>,
    /// When it was given up, ms.
    pub failed_ms: Option<i64>,
    /// The last error (status or transport, never the URL).
    pub error: Option<String>,
}

/// A watched alert condition: started (`fired_ms` none) or fired and not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertStateRow {
    /// The condition's subject, e.g. `high_error_rate/app/stable/1.2.0`.
    pub key: String,
    /// The alert kind (snake_case).
    pub kind: String,
    /// The dedup key of the firing alert (empty before it fires).
    pub dedup_key: String,
    /// When the condition was first seen true (the injected clock), ms.
    pub since_ms: i64,
    /// When the alert fired, ms.
    pub fired_ms: Option<i64>,
    /// The fired alert (JSON), repeated by its resolve.
    pub alert: String,
}

/// Alert rows written in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertWrite {
    /// States inserted or replaced.
    pub upsert: Vec<AlertStateRow>,
    /// States removed (by key).
    pub remove: Vec<String>,
    /// Outbox rows added (an existing id + destination is kept as it is).
    pub outbox: Vec<OutboxRow>,
}

impl AlertWrite {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty() && self.outbox.is_empty()
    }

    /// Appends `other`'s rows.
    pub fn extend(&mut self, other: AlertWrite) {
        self.upsert.extend(other.upsert);
        self.remove.extend(other.remove);
        self.outbox.extend(other.outbox);
    }
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Acknowledged (2xx) at this time, ms.
    Delivered(i64),
    /// Failed, try again at `next_ms`.
    Retry {
        /// Next attempt, ms.
        next_ms: i64,
        /// Why.
        error: String,
    },
    /// Given up at `at_ms`.
    Failed {
        /// When, ms.
        at_ms: i64,
        /// Why.
        error: String,
    },
}

impl Delivery {
    /// The outbox columns this outcome sets: `delivered`, `failed`, `next` and `error`.
    pub(crate) fn columns(self) -> (Option<i64>, Option<i64>, i64, Option<String>) {
        match self {
            Delivery::Delivered(at) => (Some(at), None, at, None),
            Delivery::Retry { next_ms, error } => (None, None, next_ms, Some(error)),
            Delivery::Failed { at_ms, error } => (None, Some(at_ms), at_ms, Some(error)),
        }
    }
}

/// The alert tables.
pub trait AlertStore: Send + Sync {
    /// Writes states and outbox rows in one transaction.
    fn write_alerts(&self, write: AlertWrite) -> StoreFuture<'_, ()>;
    /// Every watched condition.
    fn alert_states(&self) -> StoreFuture<'_, Vec<AlertStateRow>>;
    /// Claims up to `limit` rows due at `now_ms` (not delivered, not given up): counts an
    /// attempt and moves `next_ms` to `lease_until_ms`, so a sender that dies mid-delivery
    /// leaves the row to the next claim after the lease. Oldest first.
    fn claim_alerts(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> StoreFuture<'_, Vec<OutboxRow>>;
    /// Records the outcome of an attempt on one row.
    fn finish_alert(
        &self,
        id: String,
        destination: String,
        outcome: Delivery,
    ) -> StoreFuture<'_, ()>;
    /// Outbox rows, oldest first (the demo's table, operators, tests), at most `limit`.
    fn outbox(&self, limit: u32) -> StoreFuture<'_, Vec<OutboxRow>>;
    /// Rows neither delivered nor given up.
    fn outbox_pending(&self) -> StoreFuture<'_, u64>;
    /// Deletes the finished rows (delivered or given up) raised before `before_ms` (the
    /// injected clock's `created`); rows still in delivery stay whatever their age. The
    /// number deleted.
    fn purge_alerts(&self, before_ms: i64) -> StoreFuture<'_, u64>;
}
