//! The retention cohort rollup on PostgreSQL (the same rollup as SQLite's, see
//! `store/sqlite/cohort.rs`): `cohort_active` counts `daily_users` rows by their user's first
//! day, the row's day and the user's sample rate, so `/analytics/retention` reads buckets.
//!
//! Owns the migration and [`ADD`], the statement ingest runs after the `users` upsert. That
//! upsert locks each user's row until commit, so two servers writing new days of one user
//! are serialized before this statement, and each sees the other's committed rows.

/// The migration: the buckets, backfilled from the rows already stored.
pub(super) const MIGRATION: &str = "
    CREATE TABLE cohort_active (
        first_day   INTEGER NOT NULL,
        day         INTEGER NOT NULL,
        sample_rate DOUBLE PRECISION NOT NULL,
        users       BIGINT NOT NULL,
        PRIMARY KEY (first_day, day, sample_rate)
    );
    INSERT INTO cohort_active (first_day, day, sample_rate, users)
    SELECT u.first_day, d.day, u.sample_rate, COUNT(*) FROM users u
    JOIN daily_users d ON d.user_id = u.user_id GROUP BY u.first_day, d.day, u.sample_rate;";

/// One statement over the group's new `daily_users` rows (`$1` days, `$2` users), after the
/// `users` upsert: +1 for each in its user's cohort (`users.first_day`, at `users.sample_rate`).
/// A user whose first day is one of its new rows (a new user, or a late event before its
/// first day) has its older rows, if any, moved from their cohort (their earliest day: the
/// first day was the earliest row's day) to the new one.
pub(super) const ADD: &str = "WITH n AS (SELECT * FROM UNNEST($1::int4[], $2::text[]) AS n(day, user_id)), \
    k AS (SELECT n.user_id, MIN(n.day) AS nd, u.first_day AS f, u.sample_rate AS r FROM n \
        JOIN users u ON u.user_id = n.user_id GROUP BY n.user_id, u.first_day, u.sample_rate), \
    old AS (SELECT k.user_id, k.f, k.r, d.day FROM k JOIN daily_users d ON d.user_id = k.user_id \
        AND d.day > k.f WHERE k.nd = k.f AND NOT EXISTS (SELECT 1 FROM n \
        WHERE n.user_id = d.user_id AND n.day = d.day)), \
    was AS (SELECT user_id, MIN(day) AS w FROM old GROUP BY user_id), \
    delta AS (SELECT k.f AS first_day, n.day, k.r AS sample_rate, 1 AS users FROM n JOIN k USING (user_id) \
        UNION ALL SELECT old.f, old.day, old.r, 1 FROM old \
        UNION ALL SELECT was.w, old.day, old.r, -1 FROM old JOIN was USING (user_id)) \
    INSERT INTO cohort_active (first_day, day, sample_rate, users) \
    SELECT first_day, day, sample_rate, SUM(users) FROM delta GROUP BY first_day, day, sample_rate \
    HAVING SUM(users) <> 0 ORDER BY first_day, day, sample_rate \
    ON CONFLICT (first_day, day, sample_rate) DO UPDATE SET users = cohort_active.users + excluded.users";
