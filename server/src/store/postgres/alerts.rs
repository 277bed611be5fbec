//! [`AlertStore`] on PostgreSQL: the outbox and the alert states. A claim takes rows with
//! `FOR UPDATE SKIP LOCKED`, so servers sharing the database never post one row at once.

use tokio_postgres::Transaction;

use super::PostgresStore;
use crate::store::alerts::{AlertStateRow, AlertStore, AlertWrite, Delivery, OutboxRow};
use crate::store::sql::{
    DELETE_ALERT_STATE, FINISH_ALERT, INSERT_OUTBOX, LIST_ALERT_STATES, OUTBOX_COLS,
    OUTBOX_PENDING, PURGE_FINISHED, UPSERT_ALERT_STATE,
};
use crate::store::{StoreError, StoreFuture};

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
        created     BIGINT NOT NULL,
        seq         BIGSERIAL,
        attempts    BIGINT NOT NULL DEFAULT 0,
        next        BIGINT NOT NULL,
        delivered   BIGINT,
        failed      BIGINT,
        error       TEXT,
        PRIMARY KEY (id, destination)
     );
     CREATE INDEX alert_outbox_due ON alert_outbox(next) WHERE delivered IS NULL AND failed IS NULL;
     CREATE TABLE alert_states (
        key       TEXT PRIMARY KEY NOT NULL,
        kind      TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        since     BIGINT NOT NULL,
        fired     BIGINT,
        alert     TEXT NOT NULL
     );";

/// Writes `w` inside the caller's transaction (a rollout change, or its own).
pub(super) async fn apply(tx: &Transaction<'_>, w: &AlertWrite) -> Result<(), StoreError> {
    for key in &w.remove {
        tx.execute(DELETE_ALERT_STATE, &[key]).await?;
    }
    for s in &w.upsert {
        tx.execute(
            UPSERT_ALERT_STATE,
            &[
                &s.key,
                &s.kind,
                &s.dedup_key,
                &s.since_ms,
                &s.fired_ms,
                &s.alert,
            ],
        )
        .await?;
    }
    for o in &w.outbox {
        tx.execute(
            INSERT_OUTBOX,
            &[
                &o.id,
                &o.destination,
                &o.kind,
                &o.severity,
                &o.status,
                &o.dedup_key,
                &o.title,
                &o.body,
                &o.created_ms,
                &o.attempts,
                &o.next_ms,
                &o.delivered_ms,
                &o.failed_ms,
                &o.error,
            ],
        )
        .await?;
    }
    Ok(())
}

fn outbox_row(r: &tokio_postgres::Row) -> OutboxRow {
    OutboxRow {
        id: r.get(0),
        destination: r.get(1),
        kind: r.get(2),
        severity: r.get(3),
        status: r.get(4),
        dedup_key: r.get(5),
        title: r.get(6),
        body: r.get(7),
        created_ms: r.get(8),
        attempts: r.get(9),
        next_ms: r.get(10),
        delivered_ms: r.get(11),
        failed_ms: r.get(12),
        error: r.get(13),
    }
}

fn state_row(r: &tokio_postgres::Row) -> AlertStateRow {
    AlertStateRow {
        key: r.get(0),
        kind: r.get(1),
        dedup_key: r.get(2),
        since_ms: r.get(3),
        fired_ms: r.get(4),
        alert: r.get(5),
    }
}

impl AlertStore for PostgresStore {
    fn write_alerts(&self, w: AlertWrite) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut c = self.writer.lock().await;
            let tx = c.transaction().await?;
            apply(&tx, &w).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn alert_states(&self) -> StoreFuture<'_, Vec<AlertStateRow>> {
        Box::pin(async move { self.read_all(LIST_ALERT_STATES, &[], state_row).await })
    }

    fn claim_alerts(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> StoreFuture<'_, Vec<OutboxRow>> {
        Box::pin(async move {
            let c = self.writer.lock().await;
            let mut rows: Vec<OutboxRow> = c
                .query(
                    &format!(
                        "UPDATE alert_outbox SET attempts = attempts + 1, next = $2 WHERE (id, destination) IN \
                         (SELECT id, destination FROM alert_outbox WHERE delivered IS NULL AND failed IS NULL \
                          AND next <= $1 ORDER BY created, seq LIMIT $3 FOR UPDATE SKIP LOCKED) \
                         RETURNING {OUTBOX_COLS}"
                    ),
                    &[&now_ms, &lease_until_ms, &i64::from(limit)],
                )
                .await?
                .iter()
                .map(outbox_row)
                .collect();
            rows.sort_by_key(|r| r.created_ms);
            Ok(rows)
        })
    }

    fn finish_alert(
        &self,
        id: String,
        destination: String,
        outcome: Delivery,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let (delivered, failed, next, error) = outcome.columns();
            self.writer
                .lock()
                .await
                .execute(
                    FINISH_ALERT,
                    &[&delivered, &failed, &next, &error, &id, &destination],
                )
                .await?;
            Ok(())
        })
    }

    fn outbox(&self, limit: u32) -> StoreFuture<'_, Vec<OutboxRow>> {
        Box::pin(async move {
            self.read_all(
                &format!("SELECT {OUTBOX_COLS} FROM alert_outbox ORDER BY created, seq LIMIT $1"),
                &[&i64::from(limit)],
                outbox_row,
            )
            .await
        })
    }

    fn outbox_pending(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let n: i64 = self.reader.query_one(OUTBOX_PENDING, &[]).await?.get(0);
            Ok(n as u64)
        })
    }

    fn purge_alerts(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let c = self.writer.lock().await;
            Ok(c.execute(PURGE_FINISHED, &[&before_ms]).await?)
        })
    }
}
