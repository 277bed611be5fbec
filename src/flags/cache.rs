//! The flags' durable state in the client store: the last good config document (the bytes
//! as received, re-verified when loaded) with its `ETag`, and which announcements were
//! dismissed or, for `showOnce` ones, already shown.
//!
//! It stores no evaluation results and nothing about the user beyond announcement ids.

use rusqlite::{params, OptionalExtension};

use crate::store::{Store, StoreError};

/// The cached document of one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedConfig {
    /// The URL it came from.
    pub url: String,
    /// The bytes as received (a DSSE envelope when keys are configured).
    pub body: Vec<u8>,
    /// The `ETag` the server gave, if any.
    pub etag: Option<String>,
    /// When it was fetched (RFC 3339).
    pub fetched_at: String,
}

/// Reads the cached document of `app`.
pub fn load(store: &Store, app: &str) -> Result<Option<CachedConfig>, StoreError> {
    store.with_conn(|c| {
        c.query_row(
            "SELECT url, body, etag, fetched_at FROM flags_config_cache WHERE app = ?1",
            [app],
            |r| {
                Ok(CachedConfig {
                    url: r.get(0)?,
                    body: r.get(1)?,
                    etag: r.get(2)?,
                    fetched_at: r.get(3)?,
                })
            },
        )
        .optional()
    })
}

/// Replaces the cached document of `app`.
pub fn save(store: &Store, app: &str, doc: &CachedConfig) -> Result<(), StoreError> {
    store.with_conn(|c| {
        c.execute(
            "INSERT INTO flags_config_cache (app, url, body, etag, fetched_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(app) DO UPDATE SET url = excluded.url, body = excluded.body,
                 etag = excluded.etag, fetched_at = excluded.fetched_at",
            params![app, doc.url, doc.body, doc.etag, doc.fetched_at],
        )
        .map(|_| ())
    })
}

/// Announcement ids of `app` that must not be shown again (dismissed, or `showOnce` shown).
pub fn hidden_announcements(
    store: &Store,
    app: &str,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    store.with_conn(|c| {
        let mut st =
            c.prepare("SELECT id, dismissed, shown FROM flags_announcement_state WHERE app = ?1")?;
        let rows = st.query_map([app], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?;
        let mut dismissed = Vec::new();
        let mut shown = Vec::new();
        for row in rows {
            let (id, d, s) = row?;
            if d {
                dismissed.push(id.clone());
            }
            if s {
                shown.push(id);
            }
        }
        Ok((dismissed, shown))
    })
}

/// Records that announcement `id` of `app` was dismissed.
pub fn mark_dismissed(store: &Store, app: &str, id: &str) -> Result<(), StoreError> {
    store.with_conn(|c| {
        c.execute(
            "INSERT INTO flags_announcement_state (app, id, dismissed) VALUES (?1, ?2, 1)
             ON CONFLICT(app, id) DO UPDATE SET dismissed = 1",
            params![app, id],
        )
        .map(|_| ())
    })
}

/// Records that `showOnce` announcement `id` of `app` was shown.
pub fn mark_shown(store: &Store, app: &str, id: &str) -> Result<(), StoreError> {
    store.with_conn(|c| {
        c.execute(
            "INSERT INTO flags_announcement_state (app, id, shown) VALUES (?1, ?2, 1)
             ON CONFLICT(app, id) DO UPDATE SET shown = 1",
            params![app, id],
        )
        .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_document_and_announcement_state() {
        let store = Store::open_in_memory().expect("store");
        assert_eq!(load(&store, "app").expect("load"), None);
        let doc = CachedConfig {
            url: "http://x/config.json".into(),
            body: b"{}".to_vec(),
            etag: Some("\"v1\"".into()),
            fetched_at: "2026-01-01T00:00:00Z".into(),
        };
        save(&store, "app", &doc).expect("save");
        assert_eq!(load(&store, "app").expect("load"), Some(doc));
        mark_dismissed(&store, "app", "a").expect("d");
        mark_shown(&store, "app", "b").expect("s");
        mark_shown(&store, "app", "a").expect("s");
        let (d, mut s) = hidden_announcements(&store, "app").expect("h");
        s.sort();
        assert_eq!(d, vec!["a".to_string()]);
        assert_eq!(s, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(
            hidden_announcements(&store, "other").expect("h"),
            (vec![], vec![])
        );
    }
}
