//! The databases the server suites run on: a SQLite file, or a fresh database on the
//! PostgreSQL server named by `RAILGUN_TEST_DATABASE_URL` (`scripts/start-postgres.sh`). Without
//! that variable the PostgreSQL variants are skipped, and each suite says so once; under
//! `RAILGUN_REQUIRE_ALL=1` (CI) each of them fails instead.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use uuid::Uuid;

use crate::support::{require_all, skip};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The database URL for `kind`: `sqlite:{sqlite_file}`, or a newly created PostgreSQL
/// database; `None` (after a SKIP line naming `suite`) when PostgreSQL is not configured, a
/// failure then under `RAILGUN_REQUIRE_ALL=1`.
pub async fn database(kind: Kind, sqlite_file: &Path, suite: &str) -> Option<String> {
    match kind {
        Kind::Sqlite => Some(format!("sqlite:{}", sqlite_file.display())),
        Kind::Postgres => {
            let Ok(base) = std::env::var("RAILGUN_TEST_DATABASE_URL") else {
                skip_once(suite);
                return None;
            };
            let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                .await
                .expect("connect to RAILGUN_TEST_DATABASE_URL");
            tokio::spawn(conn);
            let name = format!("railgun_t_{}", Uuid::new_v4().simple());
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create database");
            let (prefix, _) = base.rsplit_once('/').expect("url has a database");
            Some(format!("{prefix}/{name}"))
        }
    }
}

/// Skips (one SKIP line per suite) or, under `RAILGUN_REQUIRE_ALL=1`, fails every test.
#[track_caller]
fn skip_once(suite: &str) {
    let why = format!(
        "PostgreSQL {suite} tests: RAILGUN_TEST_DATABASE_URL is not set \
         (run scripts/start-postgres.sh)"
    );
    if require_all() {
        skip(&why);
    }
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    if said
        .get_or_insert_with(HashSet::new)
        .insert(suite.to_string())
    {
        skip(&why);
    }
}

/// Drops the PostgreSQL database of `url` (forcing out its connections), from sync code
/// (a `Drop`): on a thread of its own with its own runtime. Errors are ignored: the
/// database is a test's leftover.
pub fn drop_database(url: &str) {
    let (Ok(base), Some((_, name))) = (
        std::env::var("RAILGUN_TEST_DATABASE_URL"),
        url.rsplit_once('/'),
    ) else {
        return;
    };
    let name = name.to_string();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok((c, conn)) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
                tokio::spawn(conn);
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        });
    })
    .join();
}
