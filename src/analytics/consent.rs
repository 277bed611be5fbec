//! Consent: whether this user agreed to usage analytics.
//!
//! Owns [`Consent`] (`granted | denied | unknown`) and its persistence in the client store
//! (`kv` key `analytics.consent:{app}`). Only `granted` records anything; the app chooses the
//! default until the user decides. It refuses to infer consent from anything else.

use std::fmt;
use std::str::FromStr;

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
pub fn save(store: &Store, app: &str, consent: Consent) -> Result<(), StoreError> {
    store.set_kv(&key(app), consent.as_str())
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
}
