//! [`ConfigStore`] on SQLite: the `config_revisions` table.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::config::{ConfigRevisionRow, ConfigStore};
use crate::store::StoreFuture;

/// Migration 7: the revisions, kept for history and rollback.
pub(super) const MIGRATION: &str = "CREATE TABLE config_revisions (
        app         TEXT NOT NULL,
        revision    INTEGER NOT NULL,
        document    BLOB NOT NULL,
        sha256      TEXT NOT NULL,
        signed      INTEGER NOT NULL,
        published   INTEGER NOT NULL,
        rollback_of INTEGER,
        PRIMARY KEY (app, revision)
     ) WITHOUT ROWID;";

const COLS: &str = "app, revision, document, sha256, signed, published, rollback_of";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConfigRevisionRow> {
    Ok(ConfigRevisionRow {
        app: r.get(0)?,
        revision: r.get(1)?,
        document: r.get(2)?,
        sha256: r.get(3)?,
        signed: r.get(4)?,
        published_ms: r.get(5)?,
        rollback_of: r.get(6)?,
    })
}

impl ConfigStore for SqliteStore {
    fn insert_config_revision(&self, r: ConfigRevisionRow) -> StoreFuture<'_, bool> {
        self.write(move |c| {
            let n = c
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO config_revisions ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ))?
                .execute(params![
                    r.app,
                    r.revision,
                    r.document,
                    r.sha256,
                    r.signed,
                    r.published_ms,
                    r.rollback_of
                ])?;
            Ok(n == 1)
        })
    }

    fn current_config(&self, app: String) -> StoreFuture<'_, Option<ConfigRevisionRow>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLS} FROM config_revisions WHERE app = ?1 ORDER BY revision DESC LIMIT 1"
            ))?
            .query_row([app], row)
            .optional()
        })
    }

    fn config_revision(
        &self,
        app: String,
        revision: i64,
    ) -> StoreFuture<'_, Option<ConfigRevisionRow>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLS} FROM config_revisions WHERE app = ?1 AND revision = ?2"
            ))?
            .query_row(params![app, revision], row)
            .optional()
        })
    }

    fn config_history(&self, app: String, limit: u32) -> StoreFuture<'_, Vec<ConfigRevisionRow>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM config_revisions WHERE app = ?1 ORDER BY revision DESC LIMIT ?2"
            ))?;
            let rows = st.query_map(params![app, limit], row)?;
            rows.collect()
        })
    }
}
