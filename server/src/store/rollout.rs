//! What the rollout engine keeps in the database: health reports, the release registry, the
//! rollouts, the signed channel states and the decision log.
//!
//! Owns [`RolloutStore`] (implemented by both backends, a supertrait of
//! [`super::AnalyticsStore`] so one store handle serves both) and its row types. Rows carry
//! times as milliseconds since the epoch. A change of a rollout, its channel state and its
//! decision are written in one transaction ([`RolloutChange`]); the channel's `sequence` is
//! compare-and-set, so two servers sharing one database never sign the same sequence twice.
//!
//! It refuses to store a client's address or any report content beyond counts: a health row
//! is the hashed install id, the release, the period and four counters.
//!
//! Lifetime of health data: the retention job deletes reports received before its cutoff
//! and per-install rows last seen before it, except the rows of a release whose rollout can
//! still decide ([`ROLLOUT_CAN_DECIDE`]: its channel's current rollout, active, or halted and
//! not rolled back, so it may be resumed): the engine reads those rows, and retention never
//! changes a running rollout's numbers. Reports themselves are never read by the engine
//! (only their id, to drop a duplicate), so they go at the cutoff whatever the rollout. The decision
//! log holds counts and rates only (no install id) and is kept as long as the aggregates.
//! [`RolloutStore::delete_machine`] erases one install's health rows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreFuture;

/// One accepted health report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRow {
    /// Report id (hyphenated lowercase UUID), the dedup key.
    pub id: String,
    /// Hashed install id.
    pub machine_id: String,
    /// App.
    pub app: String,
    /// Version that was running.
    pub version: String,
    /// Channel.
    pub channel: String,
    /// Platform.
    pub platform: String,
    /// Arch.
    pub arch: String,
    /// Period start, ms.
    pub period_start_ms: i64,
    /// Period end, ms.
    pub period_end_ms: i64,
    /// Sessions.
    pub sessions: i64,
    /// Errors.
    pub errors: i64,
    /// Crashes.
    pub crashes: i64,
    /// Boot-guard reverts (part of `crashes`).
    pub boot_reverts: i64,
    /// Sessions ended in the period by status (ok, errored, crashed, abnormal); `None` for a
    /// report without `sessionEnds` (stored as NULL, adds nothing to the session numbers).
    pub session_ends: Option<[i64; 4]>,
    /// When the server received it, ms.
    pub received_ms: i64,
}

/// Release health of one app/channel/version, summed over its per-install rows
/// ([`RolloutStore::release_health`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseHealthRow {
    /// App.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// Version.
    pub version: String,
    /// Distinct installs that reported for the release.
    pub installs: u64,
    /// Sessions ended: ok, errored, crashed, abnormal.
    pub sessions: [u64; 4],
    /// Installs with at least one ended session.
    pub users: u64,
    /// Of those, installs with at least one crashed session.
    pub users_crashed: u64,
    /// Installs of the release that reported since the adoption window's start.
    pub active: u64,
}

/// Distinct installs of one app/channel/version and how many of them saw errors / crashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Distinct machine ids that reported.
    pub installs: u64,
    /// Of those, installs with at least one error in any report.
    pub with_errors: u64,
    /// Of those, installs with at least one crash in any report.
    pub with_crashes: u64,
}

/// Health rows removed (by retention or by deleting an install).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthDeleted {
    /// Rows of `health_reports` (one per accepted report).
    pub reports: u64,
    /// Rows of `health_installs` (one per install and release).
    pub installs: u64,
}

impl HealthDeleted {
    /// Both kinds together.
    pub fn total(&self) -> u64 {
        self.reports + self.installs
    }
}

/// The SQL condition on a `health_installs` row "the engine may still decide on these
/// numbers": its release is the one its channel currently rolls out (the engine evaluates,
/// and an admin resumes, only that one) and that rollout is active, or halted without a
/// rollback (it can be resumed). Written for both backends (`rolled_back` is a 0/1 integer
/// in SQLite and a boolean in PostgreSQL; `NOT` works on both).
pub const ROLLOUT_CAN_DECIDE: &str = "EXISTS (SELECT 1 FROM rollouts r JOIN channel_states s \
    ON s.app = r.app AND s.channel = r.channel AND s.version = r.version \
    WHERE r.app = health_installs.app AND r.channel = health_installs.channel \
    AND r.version = health_installs.version \
    AND (r.status = 'active' OR (r.status = 'halted' AND NOT r.rolled_back)))";

/// The migration that adds release-health sessions, the same text on both stores (appended
/// to each `MIGRATIONS`): a report's `sessionEnds` (NULL when the report had none) and their
/// running sums per install and release.
pub const SESSIONS_MIGRATION: &str = "ALTER TABLE health_reports ADD COLUMN ended_ok BIGINT;
     ALTER TABLE health_reports ADD COLUMN ended_errored BIGINT;
     ALTER TABLE health_reports ADD COLUMN ended_crashed BIGINT;
     ALTER TABLE health_reports ADD COLUMN ended_abnormal BIGINT;
     ALTER TABLE health_installs ADD COLUMN ended_ok BIGINT NOT NULL DEFAULT 0;
     ALTER TABLE health_installs ADD COLUMN ended_errored BIGINT NOT NULL DEFAULT 0;
     ALTER TABLE health_installs ADD COLUMN ended_crashed BIGINT NOT NULL DEFAULT 0;
     ALTER TABLE health_installs ADD COLUMN ended_abnormal BIGINT NOT NULL DEFAULT 0";

/// A registered release (its signed manifest envelope as served).
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseRow {
    /// App.
    pub app: String,
    /// Version.
    pub version: String,
    /// Channel the manifest was made for.
    pub channel: String,
    /// The manifest envelope bytes written to the tree (JSON text).
    pub envelope: String,
    /// SHA-256 (hex) of `envelope`.
    pub manifest_sha256: String,
    /// Registration time, ms.
    pub created_ms: i64,
    /// A start was requested and waits for missing artifacts.
    pub pending_start: bool,
    /// Percentage of the deferred start.
    pub pending_percentage: Option<f64>,
    /// Fallback version of the deferred start.
    pub pending_fallback: Option<String>,
}

/// One rollout of a release on a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRow {
    /// App.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// The release rolled out.
    pub version: String,
    /// Share of installs offered the release (0–100).
    pub percentage: f64,
    /// `active` | `halted` | `complete`.
    pub status: String,
    /// Release served to installs outside the rollout (or all, when halted).
    pub fallback_version: Option<String>,
    /// Rolled back: the channel serves the fallback with `rollbackFrom: [version]`.
    pub rolled_back: bool,
    /// The rollout policy (JSON of `RolloutPolicy`).
    pub policy: String,
    /// Start of the rollout, ms.
    pub started_ms: i64,
    /// Start of the current stage, ms.
    pub stage_started_ms: i64,
    /// Last change, ms.
    pub updated_ms: i64,
    /// A high-error-rate alert was sent in the current stage.
    pub high_error_alerted: bool,
    /// The low-adoption alert was sent.
    pub low_adoption_alerted: bool,
}

/// The signed channel state a channel serves now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    /// App.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// Version of the channel's current rollout.
    pub version: String,
    /// Sequence of the signed state.
    pub sequence: i64,
    /// Signing time, ms.
    pub issued_ms: i64,
    /// Expiry, ms.
    pub expires_ms: i64,
    /// The signed envelope (the bytes of `channel.json`).
    pub envelope: String,
}

/// One entry of the audit log: what changed a rollout, by whom, on which numbers.
///
/// Its rates are fractions (as stored and exported) and percent in its JSON
/// ([`crate::percent`]), like the rest of the rollout answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Decision id (UUID).
    pub id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// App.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// Version of the rollout.
    pub version: String,
    /// start | advance | halt | resume | set_percentage | rollback | complete |
    /// low_adoption | high_error_rate.
    pub action: String,
    /// engine | admin.
    pub actor: String,
    /// Percentage before.
    pub from_percentage: f64,
    /// Percentage after.
    pub to_percentage: f64,
    /// Distinct installs reporting at the time.
    pub installs: u64,
    /// Share of installs with errors.
    #[serde(with = "crate::percent")]
    pub error_rate: f64,
    /// Wilson 95 % lower bound of the error rate.
    #[serde(with = "crate::percent")]
    pub error_lower: f64,
    /// Wilson 95 % upper bound of the error rate.
    #[serde(with = "crate::percent")]
    pub error_upper: f64,
    /// Share of installs with crashes.
    #[serde(with = "crate::percent")]
    pub crash_rate: f64,
    /// Wilson 95 % lower bound of the crash rate.
    #[serde(with = "crate::percent")]
    pub crash_lower: f64,
    /// Wilson 95 % upper bound of the crash rate.
    #[serde(with = "crate::percent")]
    pub crash_upper: f64,
    /// Why, in words.
    pub reason: String,
}

/// Rows written together in one transaction.
#[derive(Debug, Clone, Default)]
pub struct RolloutChange {
    /// The rollout, inserted or replaced.
    pub rollout: Option<RolloutRow>,
    /// The new channel state and the sequence it replaces (`None`: the channel is new).
    pub channel: Option<(ChannelRow, Option<i64>)>,
    /// The decision to log.
    pub decision: Option<Decision>,
    /// Alerts raised or resolved by the change (the outbox rows and alert states), written
    /// in the same transaction: an alert about a decision exists exactly when it does.
    pub alerts: super::alerts::AlertWrite,
    /// The lease an engine run holds ([`crate::leader`]): the change commits only while it
    /// is still held under its token (checked in the same transaction; a store of one server
    /// ignores it). `None` for an admin's change.
    pub fence: Option<crate::leader::Fence>,
}

/// The rollout engine's tables.
pub trait RolloutStore: Send + Sync {
    /// Stores a health report; `false` when its id was already stored (nothing changes).
    fn insert_health(&self, row: HealthRow) -> StoreFuture<'_, bool>;
    /// Distinct installs of `app`/`channel`/`version` and those with errors / crashes.
    fn health_counts(
        &self,
        app: String,
        channel: String,
        version: String,
    ) -> StoreFuture<'_, HealthCounts>;
    /// Release health of every app/channel/version with an install reporting since
    /// `seen_since_ms` (`active`: installs reporting since `active_since_ms`), ordered by
    /// app, channel, version.
    fn release_health(
        &self,
        active_since_ms: i64,
        seen_since_ms: i64,
    ) -> StoreFuture<'_, Vec<ReleaseHealthRow>>;
    /// Release health of one app/channel/version (zeros when nothing reported).
    fn release_health_of(
        &self,
        app: String,
        channel: String,
        version: String,
        active_since_ms: i64,
    ) -> StoreFuture<'_, ReleaseHealthRow>;
    /// Distinct installs of each app (any channel and version) reporting since `since_ms`.
    fn app_active_installs(&self, since_ms: i64) -> StoreFuture<'_, Vec<(String, u64)>>;
    /// Distinct installs of `app`/`channel` (any version) reporting since `since_ms`.
    fn channel_population(
        &self,
        app: String,
        channel: String,
        since_ms: i64,
    ) -> StoreFuture<'_, u64>;
    /// Deletes reports received before `before_ms` (except those with an export key at or
    /// past `reports_keep_from`: an enabled export has not written them) and per-install
    /// rows last seen before it, keeping the rows of releases whose rollout may still decide
    /// ([`ROLLOUT_CAN_DECIDE`]).
    fn purge_health(
        &self,
        before_ms: i64,
        reports_keep_from: i64,
    ) -> StoreFuture<'_, HealthDeleted>;
    /// Deletes decisions taken before `before_ms`, except those with an export key at or
    /// past `keep_from`.
    fn purge_decisions(&self, before_ms: i64, keep_from: i64) -> StoreFuture<'_, u64>;
    /// Erases every health row of one install (its hashed id), in one transaction.
    fn delete_machine(&self, machine_id: String) -> StoreFuture<'_, HealthDeleted>;
    /// Health rows of one install (0 after deletion; tests and operators).
    fn machine_rows(&self, machine_id: String) -> StoreFuture<'_, u64>;
    /// A registered release.
    fn get_release(&self, app: String, version: String) -> StoreFuture<'_, Option<ReleaseRow>>;
    /// Registers a release, or updates its pending-start fields.
    fn put_release(&self, row: ReleaseRow) -> StoreFuture<'_, ()>;
    /// One rollout.
    fn get_rollout(
        &self,
        app: String,
        channel: String,
        version: String,
    ) -> StoreFuture<'_, Option<RolloutRow>>;
    /// Every rollout, newest first.
    fn list_rollouts(&self) -> StoreFuture<'_, Vec<RolloutRow>>;
    /// The channel state a channel serves.
    fn get_channel(&self, app: String, channel: String) -> StoreFuture<'_, Option<ChannelRow>>;
    /// Every channel state.
    fn list_channels(&self) -> StoreFuture<'_, Vec<ChannelRow>>;
    /// Writes a change in one transaction; `false` (nothing written) when the channel's
    /// sequence is no longer the one expected; [`super::StoreError::NotLeader`] (nothing
    /// written) when its fence no longer holds.
    fn commit_change(&self, change: RolloutChange) -> StoreFuture<'_, bool>;
    /// Whether several servers may share this database (PostgreSQL), so a lease elects the
    /// one running the engine; `false` for one server's file (SQLite).
    fn shared_by_servers(&self) -> bool {
        false
    }
    /// Takes lease `name` for `holder` when it is free, expired or already `holder`'s, until
    /// `ttl_ms` from now on the database's clock; the fencing token then (one more than the
    /// last holder's when the holder changed), `None` when another holder's lease runs.
    /// A store of one server grants it at once (token 0).
    fn acquire_lease(
        &self,
        name: String,
        holder: String,
        ttl_ms: i64,
    ) -> StoreFuture<'_, Option<i64>> {
        let _ = (name, holder, ttl_ms);
        Box::pin(async { Ok(Some(0)) })
    }
    /// Announces `payload` on `channel` to every server listening ([`crate::fanout`];
    /// PostgreSQL `NOTIFY`); a store of one server has nobody to tell.
    fn notify(&self, channel: &'static str, payload: String) -> StoreFuture<'_, ()> {
        let _ = (channel, payload);
        Box::pin(async { Ok(()) })
    }
    /// The payloads announced on `channel` by any server from now on (PostgreSQL `LISTEN`
    /// on a connection of its own); `None` for a store of one server.
    fn listen(&self, channel: &'static str) -> Option<tokio::sync::mpsc::Receiver<String>> {
        let _ = channel;
        None
    }
    /// Gives lease `name` up if `holder` holds it (it expires now).
    fn release_lease(&self, name: String, holder: String) -> StoreFuture<'_, ()> {
        let _ = (name, holder);
        Box::pin(async { Ok(()) })
    }
    /// The decisions of one rollout, newest first.
    fn decisions(
        &self,
        app: String,
        channel: String,
        version: String,
        limit: u32,
    ) -> StoreFuture<'_, Vec<Decision>>;
}

/// Milliseconds since the epoch of an instant.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant of milliseconds since the epoch (the epoch itself when out of range).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
