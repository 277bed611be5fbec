//! [`AlertStore`] on SQLite: the outbox and the alert states (one writer, so a claim is a
//! plain `UPDATE … RETURNING`).

use rusqlite::{params, Connection, Transaction};

use super::SqliteStore;
use crate::store::alerts::{AlertStateRow, AlertStore, AlertWrite, Delivery, OutboxRow};
use crate::store::sql::{
    DELETE_ALERT_STATE, FINISH_ALERT, INSERT_OUTBOX, LIST_ALERT_STATES, OUTBOX_COLS,
    OUTBOX_PENDING, PURGE_FINISHED, UPSERT_ALERT_STATE,
};
use crate::store::StoreFuture;

/// Migration: the outbox and the alert states.
pub(super) const MIGRATION: &str = "CREATE TABLE alert_outbox (
        id          TEXT NOT NULL,
        destination TEXT NOT NULL,
        kind        TEXT NOT NULL,
        severity    TEXT NOT NULL,
        status      TEXT NOT NULL,
        dedup_key   TEXT NOT NULL,
        title       TEXT NOT NULL,
        body        TEXT NOT NULL,
        created     INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        next        INTEGER NOT NULL,
        delivered   INTEGER,
        failed      INTEGER,
        error       TEXT,
        PRIMARY KEY (id, destination)
     );
     CREATE INDEX alert_outbox_due ON alert_outbox(next) WHERE delivered IS NULL AND failed IS NULL;
     CREATE TABLE alert_states (
        key       TEXT PRIMARY KEY NOT NULL,
        kind      TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        since     INTEGER NOT NULL,
        fired     INTEGER,
        alert     TEXT NOT NULL
     )";

/// Writes `w` inside the caller's transaction (a rollout change, or its own).
pub(super) fn apply(tx: &Transaction<'_>, w: &AlertWrite) -> rusqlite::Result<()> {
    for key in &w.remove {
        tx.prepare_cached(DELETE_ALERT_STATE)?.execute([key])?;
    }
    for s in &w.upsert {
        tx.prepare_cached(UPSERT_ALERT_STATE)?.execute(params![
            s.key,
            s.kind,
            s.dedup_key,
            s.since_ms,
            s.fired_ms,
            s.alert
        ])?;
    }
    for o in &w.outbox {
        tx.prepare_cached(INSERT_OUTBOX)?.execute(params![
            o.id,
            o.destination,
            o.kind,
            o.severity,
            o.status,
            o.dedup_key,
            o.title,
            o.body,
            o.created_ms,
            o.attempts,
            o.next_ms,
            o.delivered_ms,
            o.failed_ms,
            o.error
        ])?;
    }
    Ok(())
}

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        destination: r.get(1)?,
        kind: r.get(2)?,
        severity: r.get(3)?,
        status: r.get(4)?,
        dedup_key: r.get(5)?,
        title: r.get(6)?,
        body: r.get(7)?,
        created_ms: r.get(8)?,
        attempts: r.get(9)?,
        next_ms: r.get(10)?,
        delivered_ms: r.get(11)?,
        failed_ms: r.get(12)?,
        error: r.get(13)?,
    })
}

fn state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertStateRow> {
    Ok(AlertStateRow {
        key: r.get(0)?,
        kind: r.get(1)?,
        dedup_key: r.get(2)?,
        since_ms: r.get(3)?,
        fired_ms: r.get(4)?,
        alert: r.get(5)?,
    })
}

fn claim(c: &mut Connection, now: i64, lease: i64, limit: u32) -> rusqlite::Result<Vec<OutboxRow>> {
    let tx = c.transaction()?;
    let rows = tx
        .prepare_cached(&format!(
            "UPDATE alert_outbox SET attempts = attempts + 1, next = ?2 WHERE rowid IN \
             (SELECT rowid FROM alert_outbox WHERE delivered IS NULL AND failed IS NULL AND next <= ?1 \
              ORDER BY created, rowid LIMIT ?3) RETURNING {OUTBOX_COLS}"
        ))?
        .query_map(params![now, lease, limit], outbox_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(rows)
}

impl AlertStore for SqliteStore {
    fn write_alerts(&self, w: AlertWrite) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            let tx = c.transaction()?;
            apply(&tx, &w)?;
            tx.commit()
        })
    }

    fn alert_states(&self) -> StoreFuture<'_, Vec<AlertStateRow>> {
        self.read(|c| {
            c.prepare_cached(LIST_ALERT_STATES)?
                .query_map([], state_row)?
                .collect()
        })
    }

    fn claim_alerts(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> StoreFuture<'_, Vec<OutboxRow>> {
        self.write(move |c| claim(c, now_ms, lease_until_ms, limit))
    }

    fn finish_alert(
        &self,
        id: String,
        destination: String,
        outcome: Delivery,
    ) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            let (delivered, failed, next, error) = outcome.columns();
            c.prepare_cached(FINISH_ALERT)?
                .execute(params![delivered, failed, next, error, id, destination])
                .map(|_| ())
        })
    }

    fn outbox(&self, limit: u32) -> StoreFuture<'_, Vec<OutboxRow>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {OUTBOX_COLS} FROM alert_outbox ORDER BY created, rowid LIMIT ?1"
            ))?
            .query_map([limit], outbox_row)?
            .collect()
        })
    }

    fn outbox_pending(&self) -> StoreFuture<'_, u64> {
        self.read(|c| {
            c.prepare_cached(OUTBOX_PENDING)?
                .query_row([], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }

    fn purge_alerts(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        self.write(move |c| c.execute(PURGE_FINISHED, [before_ms]).map(|n| n as u64))
    }
}
