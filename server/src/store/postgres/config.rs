//! [`ConfigStore`] on PostgreSQL: the `config_revisions` table.

use super::PostgresStore;
use crate::store::config::{ConfigRevisionRow, ConfigStore};
use crate::store::StoreFuture;

/// Migration 7: the revisions, kept for history and rollback.
pub(super) const MIGRATION: &str = "CREATE TABLE config_revisions (
        app         TEXT NOT NULL,
        revision    BIGINT NOT NULL,
        document    BYTEA NOT NULL,
        sha256      TEXT NOT NULL,
        signed      BOOLEAN NOT NULL,
        published   BIGINT NOT NULL,
        rollback_of BIGINT,
        PRIMARY KEY (app, revision)
     );";

const COLS: &str = "app, revision, document, sha256, signed, published, rollback_of";

fn row(r: &tokio_postgres::Row) -> ConfigRevisionRow {
    ConfigRevisionRow {
        app: r.get(0),
        revision: r.get(1),
        document: r.get(2),
        sha256: r.get(3),
        signed: r.get(4),
        published_ms: r.get(5),
        rollback_of: r.get(6),
    }
}

impl ConfigStore for PostgresStore {
    fn insert_config_revision(&self, r: ConfigRevisionRow) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let c = self.writer.lock().await;
            let n = c
                .execute(
                    &format!(
                        "INSERT INTO config_revisions ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (app, revision) DO NOTHING"
                    ),
                    &[
                        &r.app,
                        &r.revision,
                        &r.document,
                        &r.sha256,
                        &r.signed,
                        &r.published_ms,
                        &r.rollback_of,
                    ],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn current_config(&self, app: String) -> StoreFuture<'_, Option<ConfigRevisionRow>> {
        Box::pin(async move {
            self.read_opt(&format!(
                        "SELECT {COLS} FROM config_revisions WHERE app = $1 ORDER BY revision DESC LIMIT 1"
                    ),
                    &[&app], row).await
        })
    }

    fn config_revision(
        &self,
        app: String,
        revision: i64,
    ) -> StoreFuture<'_, Option<ConfigRevisionRow>> {
        Box::pin(async move {
            self.read_opt(
                &format!("SELECT {COLS} FROM config_revisions WHERE app = $1 AND revision = $2"),
                &[&app, &revision],
                row,
            )
            .await
        })
    }

    fn config_history(&self, app: String, limit: u32) -> StoreFuture<'_, Vec<ConfigRevisionRow>> {
        Box::pin(async move {
            self.read_all(&format!(
                        "SELECT {COLS} FROM config_revisions WHERE app = $1 ORDER BY revision DESC LIMIT $2"
                    ),
                    &[&app, &i64::from(limit)], row).await
        })
    }
}
