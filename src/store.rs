//! The one client SQLite database and its migrations.
//!
//! Owns the file, its pragmas (WAL, `synchronous=NORMAL`, a busy timeout) and the schema,
//! migrated forward by `PRAGMA user_version`. Every client subsystem keeps its durable state
//! here: the install-id fallback and other small values (`kv`), the highest channel
//! `sequence` seen per app/channel (metadata-rollback protection), and the tables later
//! subsystems add through [`MIGRATIONS`].
//!
//! It refuses to open a database whose `user_version` is newer than this code knows
//! (a downgraded app must not write into a schema it does not understand).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// Errors of the client store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("client store {path}: {source}")]
    Sqlite {
        /// The database file (`:memory:` for an in-memory store).
        path: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The folder of the database could not be created.
    #[error("cannot create the folder for the client store {path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer version of railgun.
    #[error(
        "client store {path} has schema version {found}, newer than the {supported} this version \
         understands; upgrade the app or remove the file"
    )]
    TooNew {
        /// The database file.
        path: String,
        /// `user_version` found in the file.
        found: i64,
        /// Highest version this code knows.
        supported: i64,
    },
    /// A channel state's sequence is lower than one already seen (metadata rollback).
    #[error(
        "channel state for {app}/{channel} has sequence {got}, lower than {seen} already seen: \
         refusing an older (replayed) channel state"
    )]
    SequenceRollback {
        /// App name.
        app: String,
        /// Channel name.
        channel: String,
        /// Highest sequence seen before.
        seen: u64,
        /// Sequence offered now.
        got: u64,
    },
}

/// Schema migrations, applied in order; migration `i` moves `user_version` from `i` to `i + 1`.
/// Append only: never edit a migration that has shipped.
pub const MIGRATIONS: &[&str] = &[
    // 1: base tables.
    "CREATE TABLE kv (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
     );
     CREATE TABLE channel_sequence (
        app      TEXT NOT NULL,
        channel  TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        PRIMARY KEY (app, channel)
     );",
    // 2: the analytics queue (event JSON, oldest first by seq), its persisted counters
    // (dropped, sent, rejected) and pending erasure requests (DELETE /analytics/users/{id}).
    "CREATE TABLE analytics_queue (
        seq         INTEGER PRIMARY KEY,
        created_at  INTEGER NOT NULL,
        sample_rate REAL NOT NULL,
        body        TEXT NOT NULL
     );
     CREATE TABLE analytics_counter (
        name  TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
     );
     CREATE TABLE analytics_erasure (
        user_id      TEXT PRIMARY KEY NOT NULL,
        requested_at INTEGER NOT NULL
     );",
    // 3: remote config (flags): the last good document per app, and announcement state.
    "CREATE TABLE flags_config_cache (
        app        TEXT PRIMARY KEY NOT NULL,
        url        TEXT NOT NULL,
        body       BLOB NOT NULL,
        etag       TEXT,
        fetched_at TEXT NOT NULL
     );
     CREATE TABLE flags_announcement_state (
        app       TEXT NOT NULL,
        id        TEXT NOT NULL,
        dismissed INTEGER NOT NULL DEFAULT 0,
        shown     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app, id)
     );",
    // 4: rollout health: the open period per app/version/channel (counters), the closed
    // reports waiting for the server's acknowledgement (fixed id + JSON body), oldest first.
    "CREATE TABLE health_period (
        app          TEXT NOT NULL,
        version      TEXT NOT NULL,
        channel      TEXT NOT NULL,
        period_start INTEGER NOT NULL,
        sessions     INTEGER NOT NULL DEFAULT 0,
        errors       INTEGER NOT NULL DEFAULT 0,
        crashes      INTEGER NOT NULL DEFAULT 0,
        boot_reverts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app, version, channel)
     );
     CREATE TABLE health_report (
        seq        INTEGER PRIMARY KEY,
        app        TEXT NOT NULL,
        id         TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        body       TEXT NOT NULL
     );
     CREATE INDEX health_report_by_app ON health_report (app, seq);",
    // 5: release health: sessions of the open period that ended, by status.
    "ALTER TABLE health_period ADD COLUMN ended_ok INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE health_period ADD COLUMN ended_errored INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE health_period ADD COLUMN ended_crashed INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE health_period ADD COLUMN ended_abnormal INTEGER NOT NULL DEFAULT 0;",
];

/// The client store: one SQLite file shared by every client subsystem.
///
/// ```
/// use railgun_core::store::Store;
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(dir.path().join("railgun.db")).unwrap();
/// store.set_kv("greeting", "hello").unwrap();
/// assert_eq!(store.get_kv("greeting").unwrap().as_deref(), Some("hello"));
/// ```
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the store at `path`, applying pending migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
        }
        let conn = Connection::open(&path).map_err(|e| sqlite_err(&path, e))?;
        Self::init(path, conn)
    }

    /// Opens a private in-memory store (tests, dry runs).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| sqlite_err(&path, e))?;
        Self::init(path, conn)
    }

    fn init(path: PathBuf, mut conn: Connection) -> Result<Self, StoreError> {
        configure(&conn).map_err(|e| sqlite_err(&path, e))?;
        migrate(&path, &mut conn)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// Opens a second connection to the same file with the same pragmas, for a subsystem
    /// that writes from its own thread (the analytics writer, for example).
    pub fn open_connection(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path).map_err(|e| sqlite_err(&self.path, e))?;
        configure(&conn).map_err(|e| sqlite_err(&self.path, e))?;
        Ok(conn)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the store's connection.
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        f(&mut conn).map_err(|e| sqlite_err(&self.path, e))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back on drop), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads a small value.
    pub fn get_kv(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with_conn(|c| {
            c.query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    /// Writes a small value.
    pub fn set_kv(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
        })
    }

    /// Deletes a small value.
    pub fn delete_kv(&self, key: &str) -> Result<(), StoreError> {
        self.with_conn(|c| {
            c.execute("DELETE FROM kv WHERE key = ?1", [key])
                .map(|_| ())
        })
    }

    /// Returns the value under `key`, inserting `value` first when there is none.
    pub fn get_or_insert_kv(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
                params![key, value],
            )?;
            c.query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
        })
    }

    /// Highest channel-state sequence seen for `app`/`channel`, if any.
    pub fn highest_sequence(&self, app: &str, channel: &str) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = self.with_conn(|c| {
            c.query_row(
                "SELECT sequence FROM channel_sequence WHERE app = ?1 AND channel = ?2",
                params![app, channel],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(v.map(|s| s as u64))
    }

    /// Atomically checks that `sequence` is not lower than the highest seen for
    /// `app`/`channel` and records it as the new highest.
    pub fn check_and_record_sequence(
        &self,
        app: &str,
        channel: &str,
        sequence: u64,
    ) -> Result<(), StoreError> {
        // SQLite integers are signed: sequences above i64::MAX are clamped when stored,
        // which still compares correctly against any real sequence.
        let stored = i64::try_from(sequence).unwrap_or(i64::MAX);
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sqlite_err(&self.path, e))?;
        let seen: Option<i64> = tx
            .query_row(
                "SELECT sequence FROM channel_sequence WHERE app = ?1 AND channel = ?2",
                params![app, channel],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sqlite_err(&self.path, e))?;
        if let Some(seen) = seen {
            if stored < seen {
                return Err(StoreError::SequenceRollback {
                    app: app.to_string(),
                    channel: channel.to_string(),
                    seen: seen as u64,
                    got: sequence,
                });
            }
        }
        tx.execute(
            "INSERT INTO channel_sequence (app, channel, sequence) VALUES (?1, ?2, ?3)
             ON CONFLICT(app, channel) DO UPDATE SET sequence = max(sequence, excluded.sequence)",
            params![app, channel, stored],
        )
        .map_err(|e| sqlite_err(&self.path, e))?;
        tx.commit().map_err(|e| sqlite_err(&self.path, e))
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with_conn(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
    }
}

fn sqlite_err(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    // In-memory databases answer "memory" instead of "wal"; both are fine.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

fn migrate(path: &Path, conn: &mut Connection) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sqlite_err(path, e))?;
    let current: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| sqlite_err(path, e))?;
    if current > supported {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: current,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(|e| sqlite_err(path, e))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| sqlite_err(path, e))?;
    }
    tx.commit().map_err(|e| sqlite_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_to_latest_and_uses_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("a/b/railgun.db")).expect("open");
        assert_eq!(store.schema_version().expect("v"), MIGRATIONS.len() as i64);
        let mode: String = store
            .with_conn(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .expect("mode");
        assert_eq!(mode, "wal");
        drop(store);
        // Re-opening is a no-op.
        let store = Store::open(dir.path().join("a/b/railgun.db")).expect("reopen");
        assert_eq!(store.schema_version().expect("v"), MIGRATIONS.len() as i64);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("railgun.db");
        {
            let c = Connection::open(&path).expect("open");
            c.pragma_update(None, "user_version", 999).expect("pragma");
        }
        match Store::open(&path) {
            Err(StoreError::TooNew { found: 999, .. }) => {}
            other => panic!("expected TooNew, got {other:?}"),
        }
    }

    #[test]
    fn sequence_never_goes_back_and_survives_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("railgun.db");
        {
            let store = Store::open(&path).expect("open");
            store
                .check_and_record_sequence("app", "stable", 5)
                .expect("5");
            store
                .check_and_record_sequence("app", "stable", 5)
                .expect("same again");
            store
                .check_and_record_sequence("app", "beta", 1)
                .expect("other channel");
        }
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.highest_sequence("app", "stable").expect("q"), Some(5));
        match store.check_and_record_sequence("app", "stable", 4) {
            Err(StoreError::SequenceRollback {
                seen: 5, got: 4, ..
            }) => {}
            other => panic!("expected rollback error, got {other:?}"),
        }
        store
            .check_and_record_sequence("app", "stable", 9)
            .expect("9");
        assert_eq!(store.highest_sequence("app", "stable").expect("q"), Some(9));
    }
}
