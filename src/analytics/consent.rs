//! Consent: whether this user agreed to usage analytics.
//!
//! Owns [`Consent`] (`granted | denied | unknown`) and its persistence in the client store
//! (`kv` key `analytics.consent:{app}`). Only `granted` records anything; the app chooses the
//! default until the user decides. It refuses to infer consent from anything else.
//!
//! It also owns the process-wide fan-out of a change ([`subscribe`], [`announce`]): the
//! components of one app that share a store file (analytics and the health monitor) follow a
//! decision made through any of them at once, not at their next start, so a `denied` stops
//! every one of them.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// The user's analytics consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consent {
    /// Events are recorded and uploaded.
    Granted,
    /// Nothing is recorded; the queue is purged and the server asked to erase this user.
    Denied,
    /// Not decided yet: nothing is recorded.
    Unknown,
}

impl Consent {
    /// The stored and wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Consent::Granted => "granted",
            Consent::Denied => "denied",
            Consent::Unknown => "unknown",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Consent::Granted => 1,
            Consent::Denied => 2,
            Consent::Unknown => 0,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => Consent::Granted,
            2 => Consent::Denied,
            _ => Consent::Unknown,
        }
    }
}

impl fmt::Display for Consent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A consent string that is not `granted`, `denied` or `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("consent {0:?} must be granted, denied or unknown")]
pub struct ConsentParseError(pub String);

impl FromStr for Consent {
    type Err = ConsentParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "granted" => Ok(Consent::Granted),
            "denied" => Ok(Consent::Denied),
            "unknown" => Ok(Consent::Unknown),
            _ => Err(ConsentParseError(s.to_string())),
        }
    }
}

fn key(app: &str) -> String {
    format!("analytics.consent:{app}")
}

/// The stored consent for `app`, if the user (or the app) ever set one.
pub fn load(store: &Store, app: &str) -> Result<Option<Consent>, StoreError> {
    Ok(store.get_kv(&key(app))?.and_then(|v| v.parse().ok()))
}

/// Stores the consent for `app`.
pub(crate) fn save(store: &Store, app: &str, consent: Consent) -> Result<(), StoreError> {
    store.set_kv(&key(app), consent.as_str())
}

/// What a component does when another one changed the consent (the store already has it).
pub(crate) type Listener = Arc<dyn Fn(Consent) + Send + Sync>;

struct Entry {
    id: u64,
    key: String,
    listener: Weak<dyn Fn(Consent) + Send + Sync>,
}

static LISTENERS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A component's place in the fan-out; dropping it leaves.
pub(crate) struct Subscription {
    id: u64,
    key: Option<String>,
    _listener: Listener,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.key.is_some() {
            let mut all = LISTENERS.lock().unwrap_or_else(|p| p.into_inner());
            all.retain(|e| e.id != self.id);
        }
    }
}

/// The store file and app a change applies to; `None` for an in-memory store (never shared).
fn bus_key(store: &Store, app: &str) -> Option<String> {
    let path = store.path();
    if path == Path::new(":memory:") {
        return None;
    }
    let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Some(format!("{}\0{app}", file.display()))
}

/// Joins the fan-out for `app` on `store`'s file: `listener` is called with every consent
/// another component [`announce`]s for the same file and app (on the announcer's thread,
/// after the store has it). Keep the returned [`Subscription`] as long as the component.
pub(crate) fn subscribe(store: &Store, app: &str, listener: Listener) -> Subscription {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let key = bus_key(store, app);
    if let Some(k) = &key {
        let mut all = LISTENERS.lock().unwrap_or_else(|p| p.into_inner());
        all.push(Entry {
            id,
            key: k.clone(),
            listener: Arc::downgrade(&listener),
        });
    }
    Subscription {
        id,
        key,
        _listener: listener,
    }
}

/// Tells every other component subscribed for the same file and app that the consent is
/// now `consent` (call it after [`save`]). Returns how many were told.
pub(crate) fn announce(from: &Subscription, consent: Consent) -> usize {
    let Some(key) = &from.key else { return 0 };
    let others: Vec<Listener> = {
        let all = LISTENERS.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter(|e| e.id != from.id && &e.key == key)
            .filter_map(|e| e.listener.upgrade())
            .collect()
    };
    // Called without the lock: a listener may purge a queue or wait for its own thread.
    for l in &others {
        l(consent);
    }
    others.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_persists() {
        for c in [Consent::Granted, Consent::Denied, Consent::Unknown] {
            assert_eq!(c.as_str().parse::<Consent>(), Ok(c));
            assert_eq!(Consent::from_u8(c.to_u8()), c);
        }
        assert!("yes".parse::<Consent>().is_err());
        let store = Store::open_in_memory().expect("store");
        assert_eq!(load(&store, "app").expect("load"), None);
        save(&store, "app", Consent::Denied).expect("save");
        assert_eq!(load(&store, "app").expect("load"), Some(Consent::Denied));
        assert_eq!(load(&store, "other").expect("load"), None);
    }

    #[test]
    fn a_change_reaches_the_other_components_of_the_same_file_and_app_only() {
        use std::sync::atomic::AtomicU8;
        let dir = tempfile::tempdir().expect("dir");
        let a_store = Store::open(dir.path().join("railgun.db")).expect("store");
        let b_store = Store::open(dir.path().join("railgun.db")).expect("store");
        let other_file = Store::open(dir.path().join("other.db")).expect("store");
        let seen = |slot: &Arc<AtomicU8>| -> Listener {
            let slot = slot.clone();
            Arc::new(move |c: Consent| slot.store(c.to_u8(), Ordering::SeqCst))
        };
        let (a, b, c, d) = (
            Arc::new(AtomicU8::new(9)),
            Arc::new(AtomicU8::new(9)),
            Arc::new(AtomicU8::new(9)),
            Arc::new(AtomicU8::new(9)),
        );
        let sa = subscribe(&a_store, "app", seen(&a));
        let _sb = subscribe(&b_store, "app", seen(&b));
        let _sc = subscribe(&other_file, "app", seen(&c));
        let _sd = subscribe(&b_store, "another-app", seen(&d));
        assert_eq!(announce(&sa, Consent::Denied), 1);
        assert_eq!(a.load(Ordering::SeqCst), 9, "not told of its own change");
        assert_eq!(b.load(Ordering::SeqCst), Consent::Denied.to_u8());
        assert_eq!(c.load(Ordering::SeqCst), 9, "another file");
        assert_eq!(d.load(Ordering::SeqCst), 9, "another app");
        drop(_sb);
        assert_eq!(
            announce(&sa, Consent::Granted),
            0,
            "a dropped component leaves"
        );
        let mem = Store::open_in_memory().expect("mem");
        let sm = subscribe(&mem, "app", seen(&a));
        assert_eq!(
            announce(&sm, Consent::Denied),
            0,
            "in-memory stores are never shared"
        );
    }
}
