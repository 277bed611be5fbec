//! The active-user reach rollup on PostgreSQL (the same rollup as SQLite's, see
//! `store/sqlite/active.rs`): each `daily_users` row keeps its user's previous active day
//! (`prev_day`, -1 none) and whether the sample rate changed since (`rate_changed`);
//! `active_reach` counts rows by day, `prev_day`, rate and `rate_changed`, so WAU, MAU and
//! the DAU series read buckets.
//!
//! Owns migration 10 and [`add_daily_users`], the one place ingest writes `daily_users`
//! rows: the group's rows in one statement, then the new ones linked and counted in one more.

use tokio_postgres::{Statement, Transaction};

use super::StoreError;

/// Migration 10: the links, the buckets (backfilled), and `daily_users_user` on
/// `(user_id, day)` so a user's previous day is one index step away.
pub(super) const MIGRATION: &str = "
    ALTER TABLE daily_users ADD COLUMN prev_day INTEGER NOT NULL DEFAULT -1;
    ALTER TABLE daily_users ADD COLUMN rate_changed INTEGER NOT NULL DEFAULT 0;
    DROP INDEX daily_users_user;
    CREATE INDEX daily_users_user ON daily_users(user_id, day);
    CREATE TABLE active_reach (
        day          INTEGER NOT NULL,
        prev_day     INTEGER NOT NULL,
        sample_rate  DOUBLE PRECISION NOT NULL,
        rate_changed INTEGER NOT NULL,
        users        BIGINT NOT NULL,
        PRIMARY KEY (day, prev_day, sample_rate, rate_changed)
    );
    UPDATE daily_users d SET prev_day = t.p, rate_changed = t.c FROM (
        SELECT day, user_id, COALESCE(LAG(day) OVER w, -1) AS p,
               COALESCE((LAG(sample_rate) OVER w <> sample_rate)::int, 0) AS c
        FROM daily_users WINDOW w AS (PARTITION BY user_id ORDER BY day)) AS t
    WHERE d.day = t.day AND d.user_id = t.user_id AND (d.prev_day <> t.p OR d.rate_changed <> t.c);
    INSERT INTO active_reach (day, prev_day, sample_rate, rate_changed, users)
    SELECT day, prev_day, sample_rate, rate_changed, COUNT(*) FROM daily_users
    GROUP BY day, prev_day, sample_rate, rate_changed;";

/// The group's `daily_users` rows (`$1` days, `$2` users, `$3` rates): the new ones come back.
pub(super) const INSERT: &str = "INSERT INTO daily_users (day, user_id, sample_rate) \
    SELECT * FROM UNNEST($1::int4[], $2::text[], $3::float8[]) ON CONFLICT DO NOTHING \
    RETURNING day, user_id";

/// One statement, after [`INSERT`], over the new rows (`$1` days, `$2` users): re-links each
/// of their users from its earliest new day on (`prev_day`: the previous active day,
/// `rate_changed`: the rate differs from that day's) and moves the buckets: +1 for every
/// new or re-linked row as it is now, -1 for a re-linked row as it was.
pub(super) const LINK: &str = "WITH n AS (SELECT * FROM UNNEST($1::int4[], $2::text[]) AS n(day, user_id)), \
    k AS (SELECT user_id, MIN(day) AS day FROM n GROUP BY user_id), \
    t AS (SELECT d.user_id, d.day, d.sample_rate, d.prev_day AS old_p, d.rate_changed AS old_c, \
        k.day AS kd, nn.day IS NOT NULL AS fresh, COALESCE(LAG(d.day) OVER w, -1) AS p, \
        COALESCE((LAG(d.sample_rate) OVER w <> d.sample_rate)::int, 0) AS c \
        FROM k JOIN daily_users d ON d.user_id = k.user_id AND d.day >= COALESCE((SELECT MAX(b.day) \
        FROM daily_users b WHERE b.user_id = k.user_id AND b.day < k.day), k.day) \
        LEFT JOIN n nn ON nn.user_id = d.user_id AND nn.day = d.day \
        WINDOW w AS (PARTITION BY d.user_id ORDER BY d.day)), \
    moved AS (SELECT * FROM t WHERE day >= kd AND (fresh OR old_p <> p OR old_c <> c)), \
    relink AS (UPDATE daily_users d SET prev_day = m.p, rate_changed = m.c FROM moved m \
        WHERE d.day = m.day AND d.user_id = m.user_id AND (m.old_p <> m.p OR m.old_c <> m.c)) \
    INSERT INTO active_reach (day, prev_day, sample_rate, rate_changed, users) \
    SELECT day, prev_day, sample_rate, rate_changed, SUM(users) FROM ( \
        SELECT day, p AS prev_day, sample_rate, c AS rate_changed, 1 AS users FROM moved \
        UNION ALL SELECT day, old_p, sample_rate, old_c, -1 FROM moved WHERE NOT fresh) x \
    GROUP BY day, prev_day, sample_rate, rate_changed \
    ORDER BY day, prev_day, sample_rate, rate_changed \
    ON CONFLICT (day, prev_day, sample_rate, rate_changed) DO UPDATE SET \
    users = active_reach.users + excluded.users";

/// Writes the group's `daily_users` rows ([`INSERT`] prepared as `insert`), then links and
/// counts the new ones ([`LINK`] prepared as `link`). Rows already stored change nothing.
/// The new rows' days and users.
pub(super) async fn add_daily_users(
    tx: &Transaction<'_>,
    insert: &Statement,
    link: &Statement,
    days: &[i32],
    users: &[&str],
    rates: &[f64],
) -> Result<(Vec<i32>, Vec<String>), StoreError> {
    let new = tx.query(insert, &[&days, &users, &rates]).await?;
    let new_days: Vec<i32> = new.iter().map(|r| r.get(0)).collect();
    let new_users: Vec<String> = new.iter().map(|r| r.get(1)).collect();
    if !new.is_empty() {
        tx.execute(link, &[&new_days, &new_users]).await?;
    }
    Ok((new_days, new_users))
}
