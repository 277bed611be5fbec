//! The active-user reach rollup on SQLite: what makes WAU, MAU and the DAU series read a few
//! thousand buckets instead of every user of the range.
//!
//! Owns migration 9 and [`add_daily_user`], the one place ingest writes a `daily_users` row.
//! Each `daily_users` row keeps the previous day its user was active (`prev_day`, -1 none)
//! and whether the sample rate changed since that day (`rate_changed`); `active_reach`
//! counts rows by day, `prev_day`, sample rate and `rate_changed`. A user active in
//! `from..=to` counts once, on the row of its first day inside the range: the row whose
//! `prev_day` is before `from` (the queries are in [`crate::store::sql`]).

use rusqlite::{params, OptionalExtension, Transaction};

/// Recomputes `daily_users.prev_day` / `rate_changed` and `active_reach` from the
/// `daily_users` rows (migration 9, and stores built by raw SQL).
macro_rules! rebuild_active {
    () => {
        "UPDATE daily_users SET prev_day = t.p, rate_changed = t.c FROM (
            SELECT day, user_id, LAG(day, 1, -1) OVER w AS p,
                   COALESCE(LAG(sample_rate) OVER w <> sample_rate, 0) AS c
            FROM daily_users WINDOW w AS (PARTITION BY user_id ORDER BY day)) AS t
         WHERE daily_users.day = t.day AND daily_users.user_id = t.user_id
           AND (daily_users.prev_day <> t.p OR daily_users.rate_changed <> t.c);
         DELETE FROM active_reach;
         INSERT INTO active_reach (day, prev_day, sample_rate, rate_changed, users)
         SELECT day, prev_day, sample_rate, rate_changed, COUNT(*)
         FROM daily_users WHERE true GROUP BY day, prev_day, sample_rate, rate_changed;"
    };
}
pub(super) use rebuild_active;

/// Migration 9: the links, the buckets (backfilled), and `daily_users_user` on
/// `(user_id, day)` so a user's previous and next day are one index step away.
pub(super) const MIGRATION: &str = concat!(
    "ALTER TABLE daily_users ADD COLUMN prev_day INTEGER NOT NULL DEFAULT -1;
     ALTER TABLE daily_users ADD COLUMN rate_changed INTEGER NOT NULL DEFAULT 0;
     DROP INDEX daily_users_user;
     CREATE INDEX daily_users_user ON daily_users(user_id, day);
     CREATE TABLE active_reach (
        day          INTEGER NOT NULL,
        prev_day     INTEGER NOT NULL,
        sample_rate  REAL NOT NULL,
        rate_changed INTEGER NOT NULL,
        users        INTEGER NOT NULL,
        PRIMARY KEY (day, prev_day, sample_rate, rate_changed)
     ) WITHOUT ROWID;",
    rebuild_active!()
);

const PREV: &str = "SELECT day, sample_rate FROM daily_users WHERE user_id = ?1 AND day < ?2 \
    ORDER BY day DESC LIMIT 1";
const INSERT: &str = "INSERT OR IGNORE INTO daily_users (day, user_id, sample_rate, prev_day, \
    rate_changed) VALUES (?1, ?2, ?3, ?4, ?5)";
const NEXT: &str = "SELECT day, prev_day, sample_rate, rate_changed FROM daily_users \
    WHERE user_id = ?1 AND day > ?2 ORDER BY day LIMIT 1";
const RELINK: &str =
    "UPDATE daily_users SET prev_day = ?3, rate_changed = ?4 WHERE day = ?1 AND user_id = ?2";
const BUCKET: &str = "INSERT INTO active_reach (day, prev_day, sample_rate, rate_changed, users) \
    VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET users = users + excluded.users";

/// Writes the `daily_users` row of `user` on `day` (at `rate`) if it is new, linked to the
/// user's previous active day, re-links the user's next active day to it (a late event),
/// and moves the buckets of both rows. A row already stored changes nothing. Whether the
/// row was new.
pub(super) fn add_daily_user(
    tx: &Transaction<'_>,
    day: i32,
    user: &str,
    rate: f64,
) -> rusqlite::Result<bool> {
    let prev: Option<(i32, f64)> = tx
        .prepare_cached(PREV)?
        .query_row(params![user, day], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (prev_day, changed) = prev.map_or((-1, false), |(d, r)| (d, r != rate));
    if tx
        .prepare_cached(INSERT)?
        .execute(params![day, user, rate, prev_day, changed])?
        == 0
    {
        return Ok(false);
    }
    let mut bucket = tx.prepare_cached(BUCKET)?;
    bucket.execute(params![day, prev_day, rate, changed, 1])?;
    let next: Option<(i32, i32, f64, bool)> = tx
        .prepare_cached(NEXT)?
        .query_row(params![user, day], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    if let Some((n_day, n_prev, n_rate, n_changed)) = next {
        let now_changed = n_rate != rate;
        bucket.execute(params![n_day, n_prev, n_rate, n_changed, -1])?;
        tx.prepare_cached(RELINK)?
            .execute(params![n_day, user, day, now_changed])?;
        bucket.execute(params![n_day, day, n_rate, now_changed, 1])?;
    }
    Ok(true)
}
