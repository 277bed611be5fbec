//! The specification's environment variables (§5) drive the core's `from_env` / `with_env`,
//! one test each. Every test passes its variables as a map through the lookup function, so
//! none touches the process environment (tests run in parallel).

use crate::{analytics_support, health_support};

use std::collections::HashMap;
use std::time::Duration;

use railgun_core::analytics::{Analytics, Consent, Properties};
use railgun_core::flags::FlagsConfig;
use railgun_core::trust::{KeyAlgorithm, PrivateKey, PAYLOAD_RELEASE};
use railgun_core::update::{UpdaterConfig, UpdaterError};
use railgun_core::{env, ClientContext, Version};

/// A lookup function over `pairs` (what a test passes instead of the process environment).
fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn key_b64() -> (PrivateKey, String) {
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let b64 = key.public_key().to_base64_pem();
    (key, b64)
}

fn updater(pairs: &[(&str, &str)]) -> Result<UpdaterConfig, UpdaterError> {
    UpdaterConfig::from_vars(vars(pairs), "rail-gun", Version::new(1, 0, 0), "/d", "/i")
}

fn config_error(r: Result<UpdaterConfig, UpdaterError>) -> String {
    match r {
        Err(UpdaterError::Config(m)) => m,
        other => panic!("a configuration error, not {other:?}"),
    }
}

#[test]
fn railgun_update_url_is_the_update_server_and_required() {
    let (_, key) = key_b64();
    let c = updater(&[
        (env::UPDATE_URL, " https://updates.example.com "),
        (env::UPDATE_PUBLIC_KEY, &key),
    ])
    .expect("config");
    assert_eq!(c.update.url, "https://updates.example.com");
    for blank in [None, Some(""), Some("  ")] {
        let mut pairs = vec![(env::UPDATE_PUBLIC_KEY, key.as_str())];
        pairs.extend(blank.map(|b| (env::UPDATE_URL, b)));
        assert_eq!(
            config_error(updater(&pairs)),
            "RAILGUN_UPDATE_URL is not set"
        );
    }
}

#[test]
fn railgun_update_channel_is_the_updates_channel_and_the_one_on_events_and_reports() {
    let (_, key) = key_b64();
    let base = [
        (env::UPDATE_URL, "https://u.example.com"),
        (env::UPDATE_PUBLIC_KEY, key.as_str()),
    ];
    assert_eq!(updater(&base).expect("default").update.channel, "stable");
    let mut with = base.to_vec();
    with.push((env::UPDATE_CHANNEL, "beta"));
    assert_eq!(updater(&with).expect("beta").update.channel, "beta");

    // The analytics and health context carries it too (events and reports name the channel).
    let ctx =
        ClientContext::new("rail-gun", "1.0.0").with_vars(vars(&[(env::UPDATE_CHANNEL, "beta")]));
    assert_eq!(ctx.channel, "beta");
    let unset =
        ClientContext::new("rail-gun", "1.0.0").with_vars(vars(&[(env::UPDATE_CHANNEL, " ")]));
    assert_eq!(unset.channel, "stable");
}

#[test]
fn railgun_update_public_key_base64_pem_is_the_only_trusted_release_key() {
    let (key, b64) = key_b64();
    let c = updater(&[
        (env::UPDATE_URL, "https://u.example.com"),
        (env::UPDATE_PUBLIC_KEY, &b64),
    ])
    .expect("config");
    let trusted = &c.update.release_keys;
    assert_eq!(trusted.keys().len(), 1);
    assert_eq!(trusted.keys()[0].keyid(), key.public_key().keyid());
    // A manifest signed by that key verifies; one signed by another key does not.
    let signed = railgun_core::trust::Envelope::sign(PAYLOAD_RELEASE, b"{}", &[&key])
        .expect("sign")
        .to_json_bytes();
    trusted.verify(&signed, PAYLOAD_RELEASE).expect("verifies");
    let (stranger, _) = key_b64();
    let foreign = railgun_core::trust::Envelope::sign(PAYLOAD_RELEASE, b"{}", &[&stranger])
        .expect("sign")
        .to_json_bytes();
    assert!(trusted.verify(&foreign, PAYLOAD_RELEASE).is_err());

    let bad = config_error(updater(&[
        (env::UPDATE_URL, "https://u.example.com"),
        (env::UPDATE_PUBLIC_KEY, "not a key"),
    ]));
    assert!(bad.starts_with("RAILGUN_UPDATE_PUBLIC_KEY: "), "{bad}");
}

#[test]
fn railgun_analytics_url_is_where_events_and_health_reports_go() {
    // Events.
    let rx = analytics_support::Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .with_vars(vars(&[(env::ANALYTICS_URL, &rx.url)]))
        .sample_rate(1.0)
        .sessions(false)
        .default_consent(Consent::Granted)
        .upload_interval(None)
        .heartbeat_interval(None)
        .build()
        .expect("client");
    a.track("message_sent", Properties::new()).expect("track");
    assert_eq!(a.flush().expect("flush").sent, 1);
    a.shutdown().expect("shutdown");
    assert_eq!(rx.events_named("message_sent").len(), 1);

    // Health reports: the variable replaces the URL set before it.
    let hx = health_support::Receiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let clock = health_support::manual_clock();
    let h = health_support::monitor(dir.path(), &health_support::dead_url(), "1.0.0", &clock)
        .with_vars(vars(&[(env::ANALYTICS_URL, &hx.url)]))
        .build()
        .expect("monitor");
    h.on_startup().expect("startup");
    h.record_error();
    h.flush().expect("flush");
    assert!(
        hx.wait_for_reports(1, Duration::from_secs(20)),
        "a report arrived"
    );
    h.shutdown().expect("shutdown");
}

#[test]
fn railgun_config_url_is_where_flags_come_from_unless_the_code_names_one() {
    let from_env = FlagsConfig::new("rail-gun", "install-1", Version::new(1, 0, 0))
        .with_vars(vars(&[(
            env::CONFIG_URL,
            "https://config.example.com/config.json",
        )]))
        .expect("config");
    assert_eq!(
        from_env.url.as_deref(),
        Some("https://config.example.com/config.json")
    );
    let mut given = FlagsConfig::new("rail-gun", "install-1", Version::new(1, 0, 0));
    given.url = Some("https://mine.example.com/c.json".into());
    let given = given
        .with_vars(vars(&[(
            env::CONFIG_URL,
            "https://config.example.com/config.json",
        )]))
        .expect("config");
    assert_eq!(
        given.url.as_deref(),
        Some("https://mine.example.com/c.json")
    );
    let none = FlagsConfig::new("rail-gun", "install-1", Version::new(1, 0, 0))
        .with_vars(vars(&[(env::CONFIG_URL, "")]))
        .expect("config");
    assert_eq!(none.url, None);
}
