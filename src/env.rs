//! The environment variables of the specification (§5, Configuration) and the one rule each
//! component's `from_env` / `with_env` reads them by.
//!
//! Owns the names and the reading rule: every read goes through a lookup function
//! (`Fn(&str) -> Option<String>`: [`process`] in an app, a map in a test, so no test touches
//! the process environment), surrounding spaces go, and a variable set to a blank value counts
//! as unset. It refuses to decide what a missing variable means: the updater cannot start
//! without its URL and key, analytics and health keep everything stored without a URL, flags
//! run on their cache and overrides without a config URL.
//!
//! | variable | read by |
//! |---|---|
//! | `RAILGUN_UPDATE_URL` | [`UpdaterConfig::from_env`](crate::update::UpdaterConfig::from_env) |
//! | `RAILGUN_UPDATE_CHANNEL` | the updater, and [`ClientContext::with_env`](crate::ClientContext::with_env) (the channel on events and reports) |
//! | `RAILGUN_UPDATE_PUBLIC_KEY` | the updater (base64 of a PEM, or any form [`PublicKey::parse`](crate::trust::PublicKey::parse) reads) |
//! | `RAILGUN_ANALYTICS_URL` | [`ClientContext::with_env`](crate::ClientContext::with_env): analytics and health |
//! | `RAILGUN_CONFIG_URL` | [`FlagsConfig::with_env`](crate::flags::FlagsConfig::with_env) |

/// The update server's base URL.
pub const UPDATE_URL: &str = "RAILGUN_UPDATE_URL";
/// The update channel (default `stable`).
pub const UPDATE_CHANNEL: &str = "RAILGUN_UPDATE_CHANNEL";
/// The release public key, base64 of its PEM.
pub const UPDATE_PUBLIC_KEY: &str = "RAILGUN_UPDATE_PUBLIC_KEY";
/// The analytics (and health) server's base URL.
pub const ANALYTICS_URL: &str = "RAILGUN_ANALYTICS_URL";
/// The remote config document's URL.
pub const CONFIG_URL: &str = "RAILGUN_CONFIG_URL";
/// Local flag overrides while developing: `{"key": true | false | "variant"}`.
pub const FLAG_OVERRIDES: &str = "RAILGUN_FLAG_OVERRIDES";

/// The process environment as a lookup function (a value that is not UTF-8 counts as unset).
pub fn process(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The value of `name` through `vars`, trimmed; `None` when unset or blank.
pub fn value(vars: impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    vars(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_blank_value_is_unset_and_spaces_go() {
        let vars = |k: &str| match k {
            "A" => Some("  http://x  ".to_string()),
            "B" => Some(" \t".to_string()),
            _ => None,
        };
        assert_eq!(super::value(vars, "A").as_deref(), Some("http://x"));
        assert_eq!(super::value(vars, "B"), None);
        assert_eq!(super::value(vars, "C"), None);
    }
}
