//! Who a client component runs for and where: one [`ClientContext`] shared by the analytics
//! client and the health monitor (and the addon's builders), so the app, its version, the
//! channel, platform, arch, server URL, client store, clock and install id are named once.
//!
//! Owns the defaults every component had copied (this platform and arch in Node's names,
//! channel `stable`, the store file `railgun.db` in the state folder, the install id from
//! the store, the [`Environment`] from the build) and the `context_setters!` that give each
//! builder the same setters. It refuses to validate: each component checks what it sends (the
//! analytics client the app name, the health monitor every field of its report).

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{self, SharedClock};
use crate::env;
use crate::identity;
use crate::store::{Store, StoreError};
use crate::update::{Arch, Platform};

/// The client store's file inside the state folder.
pub const STORE_FILE: &str = "railgun.db";

/// Where the app runs: on a developer's machine or in users' hands. It decides the defaults
/// that differ between the two (the analytics sampling rate: everything while developing,
/// 10 % in production, as the specification says).
///
/// An explicit input, so a debug build can run (and test) the production behaviour; the
/// default, [`Environment::of_build`], follows the build as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A developer's machine.
    Development,
    /// Users' machines.
    Production,
}

impl Environment {
    /// The build's environment: `development` in a debug build, `production` in a release
    /// build.
    pub const fn of_build() -> Self {
        if cfg!(debug_assertions) {
            Self::Development
        } else {
            Self::Production
        }
    }

    /// `development` or `production`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

impl Default for Environment {
    fn default() -> Self {
        Self::of_build()
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An environment name that is neither `development` nor `production`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown environment {0:?}: expected development or production")]
pub struct UnknownEnvironment(pub String);

impl std::str::FromStr for Environment {
    type Err = UnknownEnvironment;

    /// `development` or `production` (any case, surrounding spaces ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" => Ok(Self::Development),
            "production" => Ok(Self::Production),
            _ => Err(UnknownEnvironment(s.to_string())),
        }
    }
}

/// Who a client component runs for and where (see the module docs).
///
/// ```
/// use railgun_core::analytics::{Analytics, Consent};
/// use railgun_core::ClientContext;
/// let dir = tempfile::tempdir().unwrap();
/// let ctx = ClientContext::new("rail-gun", "1.2.0").state_dir(dir.path());
/// let a = Analytics::builder()
///     .context(ctx.clone())
///     .default_consent(Consent::Granted)
///     .build()
///     .unwrap();
/// assert_eq!(a.store().path(), dir.path().join("railgun.db"));
/// ```
#[derive(Debug, Clone)]
pub struct ClientContext {
    /// App name.
    pub app: String,
    /// The running app's version (semver), on every event and report.
    pub version: String,
    /// Update channel (default `stable`).
    pub channel: String,
    /// `darwin` | `win32` | `linux` (default: this platform, Node's names).
    pub platform: String,
    /// `x64` | `arm64` | `ia32` (default: this arch, Node's names).
    pub arch: String,
    /// Server base URL (`RAILGUN_ANALYTICS_URL`); `None` keeps everything stored.
    pub url: Option<String>,
    /// Folder of the client store ([`STORE_FILE`]); `None` with no `store`: in memory.
    pub state_dir: Option<PathBuf>,
    /// An already opened client store (wins over `state_dir`).
    pub store: Option<Arc<Store>>,
    /// The clock (default: the system clock).
    pub clock: Option<SharedClock>,
    /// The install id (default: [`identity::install_id`], kept in the store; never the raw
    /// machine id). Analytics sends it as `userId`, health hashed as `machineId`.
    pub install_id: Option<String>,
    /// Development or production (default: [`Environment::of_build`]).
    pub environment: Environment,
}

impl Default for ClientContext {
    fn default() -> Self {
        Self {
            app: String::new(),
            version: "0.0.0".into(),
            channel: "stable".into(),
            platform: Platform::current()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| std::env::consts::OS.to_string()),
            arch: Arch::current()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            url: None,
            state_dir: None,
            store: None,
            clock: None,
            install_id: None,
            environment: Environment::of_build(),
        }
    }
}

impl ClientContext {
    /// The context of `app` at `version`, every other field at its default.
    pub fn new(app: &str, version: &str) -> Self {
        Self {
            app: app.to_string(),
            version: version.to_string(),
            ..Self::default()
        }
    }

    /// The state folder (the client store is `railgun.db` in it).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The client store: the one given, else `railgun.db` in the state folder, else a
    /// fresh in-memory store.
    pub fn open_store(&self) -> Result<Arc<Store>, StoreError> {
        Ok(match (&self.store, &self.state_dir) {
            (Some(s), _) => s.clone(),
            (None, Some(d)) => Arc::new(Store::open(d.join(STORE_FILE))?),
            (None, None) => Arc::new(Store::open_in_memory()?),
        })
    }

    /// The context with what the process environment sets (see [`with_vars`](Self::with_vars)).
    pub fn with_env(self) -> Self {
        self.with_vars(env::process)
    }

    /// The context with what the variables read through `vars` set:
    /// `RAILGUN_ANALYTICS_URL` the server URL, `RAILGUN_UPDATE_CHANNEL` the channel. A variable
    /// unset or blank changes nothing; one that is set replaces the field (so set fields
    /// after this call to override the environment).
    pub fn with_vars(mut self, vars: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(url) = env::value(&vars, env::ANALYTICS_URL) {
            self.url = Some(url);
        }
        if let Some(channel) = env::value(&vars, env::UPDATE_CHANNEL) {
            self.channel = channel;
        }
        self
    }

    /// The clock (the system clock unless one was given).
    pub fn clock(&self) -> SharedClock {
        self.clock.clone().unwrap_or_else(clock::system)
    }

    /// The install id: the one given, else the app's id kept in `store`.
    pub fn install_id(&self, store: &Store) -> Result<String, StoreError> {
        match &self.install_id {
            Some(id) => Ok(id.clone()),
            None => identity::install_id(&self.app, store),
        }
    }
}

/// The setters of the [`ClientContext`] fields, for a builder whose `config.context` holds
/// one (`AnalyticsBuilder`, `HealthMonitorBuilder`): one list, so the builders cannot drift.
macro_rules! context_setters {
    () => {
        /// The whole client context (replaces every field set so far).
        pub fn context(mut self, context: $crate::ClientContext) -> Self {
            self.config.context = context;
            self
        }
        /// App name.
        pub fn app(mut self, app: &str) -> Self {
            self.config.context.app = app.to_string();
            self
        }
        /// The running app's version (semver).
        pub fn version(mut self, version: &str) -> Self {
            self.config.context.version = version.to_string();
            self
        }
        /// Update channel.
        pub fn channel(mut self, channel: &str) -> Self {
            self.config.context.channel = channel.to_string();
            self
        }
        /// Platform name (Node's: `darwin`, `win32`, `linux`).
        pub fn platform(mut self, platform: &str) -> Self {
            self.config.context.platform = platform.to_string();
            self
        }
        /// Arch name (Node's: `x64`, `arm64`, `ia32`).
        pub fn arch(mut self, arch: &str) -> Self {
            self.config.context.arch = arch.to_string();
            self
        }
        /// Server base URL.
        pub fn url(mut self, url: &str) -> Self {
            self.config.context.url = Some(url.to_string());
            self
        }
        /// Folder of the client store (`railgun.db`).
        pub fn state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
            self.config.context.state_dir = Some(dir.into());
            self
        }
        /// An already opened client store (wins over `state_dir`).
        pub fn store(mut self, store: std::sync::Arc<$crate::store::Store>) -> Self {
            self.config.context.store = Some(store);
            self
        }
        /// The clock (default: the system clock).
        pub fn clock(mut self, clock: $crate::clock::SharedClock) -> Self {
            self.config.context.clock = Some(clock);
            self
        }
        /// The install id (default: the one kept in the store).
        pub fn install_id(mut self, id: &str) -> Self {
            self.config.context.install_id = Some(id.to_string());
            self
        }
        /// What the process environment sets: `RAILGUN_ANALYTICS_URL`, `RAILGUN_UPDATE_CHANNEL`
        /// ([`ClientContext::with_env`]).
        pub fn with_env(mut self) -> Self {
            self.config.context = self.config.context.with_env();
            self
        }
        /// What the variables read through `vars` set ([`ClientContext::with_vars`]).
        pub fn with_vars(mut self, vars: impl Fn(&str) -> Option<String>) -> Self {
            self.config.context = self.config.context.with_vars(vars);
            self
        }
        /// Development or production (default: the build's).
        pub fn environment(mut self, environment: $crate::Environment) -> Self {
            self.config.context.environment = environment;
            self
        }
    };
}
pub(crate) use context_setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_name_this_machine_in_nodes_words() {
        let c = ClientContext::new("app", "1.0.0");
        assert_eq!(
            (c.channel.as_str(), c.version.as_str()),
            ("stable", "1.0.0")
        );
        #[cfg(target_os = "linux")]
        assert_eq!(c.platform, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(c.arch, "x64");
        assert!(!c.platform.is_empty() && !c.arch.is_empty());
    }

    #[test]
    fn the_environment_follows_the_build_unless_given_and_reads_its_two_names() {
        let built = if cfg!(debug_assertions) {
            Environment::Development
        } else {
            Environment::Production
        };
        assert_eq!(ClientContext::default().environment, built);
        for e in [Environment::Development, Environment::Production] {
            assert_eq!(e.as_str().parse::<Environment>(), Ok(e));
            assert_eq!(serde_json::to_string(&e).expect("json"), format!("\"{e}\""));
        }
        assert_eq!(" Production ".parse(), Ok(Environment::Production));
        let bad = "staging".parse::<Environment>().expect_err("unknown");
        assert_eq!(
            bad.to_string(),
            "unknown environment \"staging\": expected development or production"
        );
    }

    #[test]
    fn the_store_is_the_given_one_else_the_state_folders_else_memory() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = ClientContext::new("app", "1.0.0").state_dir(dir.path());
        let s = c.open_store().expect("store");
        assert_eq!(s.path(), dir.path().join(STORE_FILE));
        let given = ClientContext {
            store: Some(s.clone()),
            state_dir: Some(dir.path().join("elsewhere")),
            ..ClientContext::default()
        };
        assert!(Arc::ptr_eq(&given.open_store().expect("store"), &s));
        let mem = ClientContext::default().open_store().expect("memory");
        assert_eq!(mem.path().as_os_str(), ":memory:");
    }

    #[test]
    fn the_install_id_is_kept_in_the_store_unless_given() {
        let store = Store::open_in_memory().expect("store");
        let c = ClientContext::new("app", "1.0.0");
        let id = c.install_id(&store).expect("id");
        assert_eq!(c.install_id(&store).expect("again"), id, "stable");
        let given = ClientContext {
            install_id: Some("mine".into()),
            ..c
        };
        assert_eq!(given.install_id(&store).expect("given"), "mine");
    }
}
