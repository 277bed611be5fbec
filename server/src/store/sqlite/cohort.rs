//! The retention cohort rollup on SQLite: what makes `/analytics/retention` read a few
//! hundred buckets instead of every user of the cohort and each of its active days.
//!
//! Owns the migration and [`add_rows`], called by ingest once the group's `daily_users` rows
//! and `users` upserts are written. `cohort_active` counts `daily_users` rows by their user's
//! first day (`users.first_day`), the row's day and the user's sample rate (`users`): the
//! users of a cohort active on a day. A late event that moves a user's first day earlier
//! moves the user's other rows to the new cohort. Erasure and the retention job keep it
//! exact (the statements are in [`crate::store::sql`]): a purge deletes the buckets of the
//! days whose `daily_users` rows it deletes, and the users it deletes have no row left.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{params, Transaction};

/// Fills `cohort_active` (empty) from the `users` and `daily_users` rows (the migration, and
/// stores built by raw SQL).
macro_rules! rebuild_cohort {
    () => {
        "INSERT INTO cohort_active (first_day, day, sample_rate, users)
         SELECT u.first_day, d.day, u.sample_rate, COUNT(*) FROM users u
         JOIN daily_users d ON d.user_id = u.user_id WHERE true
         GROUP BY u.first_day, d.day, u.sample_rate;"
    };
}
pub(super) use rebuild_cohort;

/// The migration: the buckets, backfilled from the rows already stored.
pub(super) const MIGRATION: &str = concat!(
    "CREATE TABLE cohort_active (
        first_day   INTEGER NOT NULL,
        day         INTEGER NOT NULL,
        sample_rate REAL NOT NULL,
        users       INTEGER NOT NULL,
        PRIMARY KEY (first_day, day, sample_rate)
     ) WITHOUT ROWID;",
    rebuild_cohort!()
);

const USER: &str = "SELECT first_day, sample_rate FROM users WHERE user_id = ?1";
const LATER_DAYS: &str = "SELECT day FROM daily_users WHERE user_id = ?1 AND day > ?2";
const BUCKET: &str = "INSERT INTO cohort_active (first_day, day, sample_rate, users) \
    VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET users = users + excluded.users";

/// Counts the group's new `daily_users` rows (`(day, user)`) in their users' cohorts, after
/// the `users` upsert. A user whose first day is one of its new rows (a new user, or a late
/// event before its first day) has its older rows, if any, moved from their cohort (their
/// earliest day: `users.first_day` was the earliest row's day) to the new one.
pub(super) fn add_rows<'a>(
    tx: &Transaction<'_>,
    rows: impl Iterator<Item = (i32, &'a str)>,
) -> rusqlite::Result<()> {
    let mut by_user: HashMap<&str, Vec<i32>> = HashMap::new();
    for (day, user) in rows {
        by_user.entry(user).or_default().push(day);
    }
    let mut delta: BTreeMap<(i32, i32, u64), i64> = BTreeMap::new();
    let mut user = tx.prepare_cached(USER)?;
    let mut later = tx.prepare_cached(LATER_DAYS)?;
    for (u, days) in &by_user {
        let (first, rate): (i32, f64) = user.query_row([u], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for d in days {
            *delta.entry((first, *d, rate.to_bits())).or_default() += 1;
        }
        if days.contains(&first) {
            let new: HashSet<i32> = days.iter().copied().collect();
            let mut older: Vec<i32> = later
                .query_map(params![u, first], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            older.retain(|d| !new.contains(d));
            if let Some(was) = older.iter().min().copied() {
                for d in older {
                    *delta.entry((was, d, rate.to_bits())).or_default() -= 1;
                    *delta.entry((first, d, rate.to_bits())).or_default() += 1;
                }
            }
        }
    }
    let mut bucket = tx.prepare_cached(BUCKET)?;
    for ((first, day, rate), n) in delta.into_iter().filter(|(_, n)| *n != 0) {
        bucket.execute(params![first, day, f64::from_bits(rate), n])?;
    }
    Ok(())
}
