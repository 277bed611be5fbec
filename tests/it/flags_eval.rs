//! Flag evaluation through the client: every reason code, rollout distribution and
//! stickiness, version bounds with pre-releases, variants by weight, the kill switch,
//! overrides and exposure events.

use std::sync::{Arc, Mutex};

use railgun_core::flags::{
    evaluate, EvalContext, ExposureSink, FeatureFlags, Flag, FlagsConfig, Override, Reason,
};
use railgun_core::identity::{bucket, in_percentage};
use railgun_core::store::Store;
use railgun_core::Version;
use serde_json::json;

fn client(user: &str, version: &str, config: serde_json::Value) -> FeatureFlags {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let cfg = FlagsConfig::new("app", user, version.parse().expect("version"));
    let flags = FeatureFlags::new(cfg, store).expect("client");
    flags
        .load_document(&serde_json::to_vec(&config).expect("json"))
        .expect("config accepted");
    flags
}

fn ctx(user: &str, version: &str) -> EvalContext {
    EvalContext {
        user_id: user.into(),
        app_version: version.parse().expect("version"),
        platform: "linux".into(),
        channel: "stable".into(),
    }
}

fn flag(v: serde_json::Value) -> Flag {
    serde_json::from_value(v).expect("flag")
}

/// A user inside (or outside) `pct` % of flag `key`'s rollout.
fn user_with(key: &str, inside: bool, pct: f64) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|u| in_percentage(bucket(&format!("flag:{key}"), u), pct) == inside)
        .expect("some user")
}

#[test]
fn every_reason_code() {
    let inside = user_with("half", true, 50.0);
    let config = json!({
        "version": "1",
        "flags": [
            {"key": "static", "enabled": true},
            {"key": "half", "enabled": true, "rolloutPercentage": 50},
            {"key": "off", "enabled": false, "rolloutPercentage": 100},
            {"key": "future", "enabled": true, "minVersion": "9.0.0"},
            {"key": "broken", "enabled": true, "minVersion": "not-a-version"},
            {"key": "ab", "enabled": true, "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]},
            {"key": "zero", "enabled": true, "variants": [{"name": "a", "weight": 0}]}
        ]
    });
    let flags = client(&inside, "1.0.0", config.clone());
    let r = |k: &str| flags.details(k).reason;
    assert_eq!(r("static"), Reason::Static);
    assert_eq!(r("half"), Reason::Split);
    assert!(flags.get("half"));
    assert_eq!(r("off"), Reason::Disabled);
    assert_eq!(r("future"), Reason::VersionMismatch);
    assert_eq!(r("broken"), Reason::Error);
    assert!(flags
        .details("broken")
        .error_message
        .expect("message")
        .contains("not-a-version"));
    assert_eq!(r("ab"), Reason::Split);
    assert!(flags.details("ab").variant.is_some());
    assert_eq!(r("zero"), Reason::Error);
    assert_eq!(r("missing"), Reason::FlagNotFound);
    assert!(!flags.get("missing"));

    // Outside the rollout: off, still SPLIT.
    let outside = client(&user_with("half", false, 50.0), "1.0.0", config.clone());
    assert_eq!(outside.details("half").reason, Reason::Split);
    assert!(!outside.get("half"));

    // Kill switch.
    let mut killed = config;
    killed["emergencyKillSwitch"] = json!(true);
    killed["emergencyMessage"] = json!("Bad release, hold on");
    let flags = client(&inside, "1.0.0", killed);
    assert_eq!(r_of(&flags, "static"), Reason::KillSwitch);
    assert_eq!(r_of(&flags, "missing"), Reason::FlagNotFound);
}

fn r_of(flags: &FeatureFlags, key: &str) -> Reason {
    flags.details(key).reason
}

#[test]
fn reasons_serialize_in_screaming_snake_case() {
    let flags = client(
        "u",
        "1.0.0",
        json!({"flags": [{"key": "a", "enabled": true}]}),
    );
    let all = serde_json::to_value(flags.all_details()).expect("json");
    assert_eq!(all["a"], json!({"value": true, "reason": "STATIC"}));
    for (reason, name) in [
        (Reason::Static, "STATIC"),
        (Reason::Split, "SPLIT"),
        (Reason::Disabled, "DISABLED"),
        (Reason::KillSwitch, "KILL_SWITCH"),
        (Reason::VersionMismatch, "VERSION_MISMATCH"),
        (Reason::FlagNotFound, "FLAG_NOT_FOUND"),
        (Reason::Error, "ERROR"),
    ] {
        assert_eq!(serde_json::to_value(reason).expect("json"), json!(name));
        assert_eq!(reason.as_str(), name);
    }
}

#[test]
fn kill_switch_turns_every_flag_off_and_exposes_its_message() {
    let config = json!({
        "emergencyKillSwitch": true,
        "emergencyMessage": "Maintenance of the message relay",
        "flags": [
            {"key": "a", "enabled": true},
            {"key": "b", "enabled": true, "rolloutPercentage": 100, "variants": [{"name": "x", "weight": 1}]}
        ]
    });
    let flags = client("u", "1.0.0", config);
    assert!(flags.is_kill_switch_active());
    let ks = flags.kill_switch();
    assert!(ks.active);
    assert_eq!(
        ks.message.as_deref(),
        Some("Maintenance of the message relay")
    );
    assert!(flags.get_all().values().all(|v| !v));
    assert_eq!(flags.details("b").variant, None);
    // Turning it off again restores the flags.
    flags
        .load_document(br#"{"flags":[{"key":"a","enabled":true}]}"#)
        .expect("load");
    assert!(!flags.is_kill_switch_active());
    assert!(flags.get("a"));
}

#[test]
fn rollout_of_50_percent_hits_half_of_100k_users_within_one_percent() {
    let f = flag(json!({"key": "half", "enabled": true, "rolloutPercentage": 50}));
    let on = (0..100_000)
        .filter(|i| evaluate(&f, &ctx(&format!("install-{i}"), "1.0.0"), false).value)
        .count();
    let share = on as f64 / 100_000.0;
    assert!((share - 0.5).abs() <= 0.01, "50 % rollout gave {share}");
}

#[test]
fn raising_the_percentage_keeps_everyone_who_had_the_flag() {
    let users: Vec<String> = (0..20_000).map(|i| format!("install-{i}")).collect();
    let mut before = vec![false; users.len()];
    for pct in [1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 99.5, 100.0] {
        let f = flag(json!({"key": "grow", "enabled": true, "rolloutPercentage": pct}));
        let now: Vec<bool> = users
            .iter()
            .map(|u| evaluate(&f, &ctx(u, "1.0.0"), false).value)
            .collect();
        for (i, (b, n)) in before.iter().zip(&now).enumerate() {
            assert!(
                !b || *n,
                "{} lost the flag when it grew to {pct} %",
                users[i]
            );
        }
        let share = now.iter().filter(|x| **x).count() as f64 / users.len() as f64 * 100.0;
        assert!((share - pct).abs() < 1.5, "{pct} % gave {share} %");
        before = now;
    }
    assert!(before.iter().all(|x| *x));
}

#[test]
fn version_bounds_with_pre_releases() {
    let f =
        flag(json!({"key": "v", "enabled": true, "minVersion": "1.2.0", "maxVersion": "2.0.0"}));
    let on = |v: &str| evaluate(&f, &ctx("u", v), false);
    assert_eq!(on("1.1.9").reason, Reason::VersionMismatch);
    assert_eq!(on("1.2.0-beta.1").reason, Reason::VersionMismatch);
    assert_eq!(on("1.2.0-rc.2").reason, Reason::VersionMismatch);
    assert!(on("1.2.0").value);
    assert!(on("1.9.9").value);
    assert!(on("2.0.0-beta.1").value);
    assert!(on("2.0.0").value);
    assert_eq!(on("2.0.1").reason, Reason::VersionMismatch);
    // A pre-release bound admits later pre-releases and the release.
    let f = flag(json!({"key": "v", "enabled": true, "minVersion": "1.2.0-beta.2"}));
    let on = |v: &str| evaluate(&f, &ctx("u", v), false).value;
    assert!(!on("1.2.0-beta.1"));
    assert!(on("1.2.0-beta.2"));
    assert!(on("1.2.0-beta.10"));
    assert!(on("1.2.0"));
    // Short bounds are padded.
    let f = flag(json!({"key": "v", "enabled": true, "minVersion": "1.3"}));
    assert!(!evaluate(&f, &ctx("u", "1.2.9"), false).value);
    assert!(evaluate(&f, &ctx("u", "1.3.0"), false).value);
}

#[test]
fn variants_split_by_weight_and_stick() {
    let f = flag(json!({"key": "color", "enabled": true, "variants": [
        {"name": "red", "weight": 20}, {"name": "green", "weight": 30}, {"name": "blue", "weight": 50}
    ]}));
    let mut counts = std::collections::HashMap::new();
    let n = 50_000;
    for i in 0..n {
        let d = evaluate(&f, &ctx(&format!("install-{i}"), "1.0.0"), false);
        assert!(d.value);
        assert_eq!(d.reason, Reason::Split);
        *counts.entry(d.variant.expect("variant")).or_insert(0usize) += 1;
    }
    for (name, w) in [("red", 0.2), ("green", 0.3), ("blue", 0.5)] {
        let share = counts[name] as f64 / n as f64;
        assert!((share - w).abs() < 0.01, "{name}: {share}, expected {w}");
    }
    // Same user, same variant, every time; and the variant bucket is not the rollout one.
    let d1 = evaluate(&f, &ctx("install-7", "1.0.0"), false);
    let d2 = evaluate(&f, &ctx("install-7", "1.0.0"), false);
    assert_eq!(d1, d2);
    assert_ne!(bucket("variant:color", "x"), bucket("flag:color", "x"));
}

#[test]
fn variants_only_for_users_inside_the_rollout() {
    let key = "exp";
    let config = json!({"flags": [{"key": key, "enabled": true, "rolloutPercentage": 10,
        "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}]});
    let out = client(&user_with(key, false, 10.0), "1.0.0", config.clone());
    assert_eq!(out.details(key).variant, None);
    assert!(!out.get(key));
    let inside = client(&user_with(key, true, 10.0), "1.0.0", config);
    assert!(inside.get(key));
    assert!(inside.variant(key).is_some());
}

#[test]
fn overrides_win_over_the_remote_config() {
    let flags = client(
        "u",
        "1.0.0",
        json!({"emergencyKillSwitch": true, "flags": [{"key": "a", "enabled": false}]}),
    );
    assert!(!flags.get("a"));
    flags.set_override("a", Override::Bool(true));
    flags.set_override("local-only", Override::Variant("purple".into()));
    assert!(flags.get("a"));
    assert_eq!(flags.details("a").reason, Reason::Static);
    assert_eq!(flags.variant("local-only").as_deref(), Some("purple"));
    flags.clear_override("a");
    assert_eq!(flags.details("a").reason, Reason::KillSwitch);
}

#[test]
fn overrides_from_the_environment_and_bad_ones_are_named() {
    // Environment is process-wide: this is the only test touching it.
    std::env::set_var(
        "RAILGUN_FLAG_OVERRIDES",
        r#"{"dev-panel": true, "theme": "dark"}"#,
    );
    let cfg = FlagsConfig::new("app", "u", Version::new(1, 0, 0))
        .with_env()
        .expect("env");
    let flags =
        FeatureFlags::new(cfg, Arc::new(Store::open_in_memory().expect("store"))).expect("client");
    assert!(flags.get("dev-panel"));
    assert_eq!(flags.variant("theme").as_deref(), Some("dark"));
    std::env::set_var("RAILGUN_FLAG_OVERRIDES", r#"{"dev-panel": 3}"#);
    let e = FlagsConfig::new("app", "u", Version::new(1, 0, 0))
        .with_env()
        .expect_err("bad overrides");
    assert!(e.to_string().contains("RAILGUN_FLAG_OVERRIDES"), "{e}");
    std::env::remove_var("RAILGUN_FLAG_OVERRIDES");
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String)>>);

impl ExposureSink for Recorder {
    fn exposure(&self, flag: &str, variant: &str) {
        self.0
            .lock()
            .expect("lock")
            .push((flag.to_string(), variant.to_string()));
    }
}

#[test]
fn exposure_is_emitted_once_per_session_per_flag() {
    let rec = Arc::new(Recorder::default());
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let flags = FeatureFlags::new(
        FlagsConfig::new("app", "u", Version::new(1, 0, 0)),
        store.clone(),
    )
    .expect("client")
    .with_exposure_sink(rec.clone());
    let doc = json!({"flags": [
        {"key": "exp", "enabled": true, "variants": [{"name": "only", "weight": 1}]},
        {"key": "exp2", "enabled": true, "variants": [{"name": "v", "weight": 1}]},
        {"key": "plain", "enabled": true}
    ]});
    flags
        .load_document(&serde_json::to_vec(&doc).expect("json"))
        .expect("load");
    assert!(flags.get_all().len() == 3);
    assert!(
        rec.0.lock().expect("lock").is_empty(),
        "get_all exposes nothing"
    );
    for _ in 0..5 {
        assert!(flags.get("exp"));
        assert!(flags.get("plain"));
        assert_eq!(flags.details("exp").variant.as_deref(), Some("only"));
    }
    // A new config (same flag) does not expose again in this session.
    let mut doc2 = doc.clone();
    doc2["version"] = json!("2");
    flags
        .load_document(&serde_json::to_vec(&doc2).expect("json"))
        .expect("load");
    flags.get("exp");
    flags.details("exp2");
    flags.details("exp2");
    assert_eq!(
        *rec.0.lock().expect("lock"),
        vec![
            ("exp".to_string(), "only".to_string()),
            ("exp2".to_string(), "v".to_string())
        ]
    );
    // A new session (new client) exposes again.
    let rec2 = Arc::new(Recorder::default());
    let flags = FeatureFlags::new(FlagsConfig::new("app", "u", Version::new(1, 0, 0)), store)
        .expect("client")
        .with_exposure_sink(rec2.clone());
    flags
        .load_document(&serde_json::to_vec(&doc).expect("json"))
        .expect("load");
    flags.get("exp");
    assert_eq!(rec2.0.lock().expect("lock").len(), 1);
}

#[test]
fn listeners_are_told_when_flags_change() {
    let flags = client(
        "u",
        "1.0.0",
        json!({"flags": [{"key": "a", "enabled": true}]}),
    );
    let mut rx = flags.subscribe();
    rx.mark_unchanged();
    // The same document again: no news.
    assert!(!flags
        .load_document(br#"{"flags":[{"key":"a","enabled":true}]}"#)
        .expect("same"));
    assert!(!rx.has_changed().expect("open"));
    assert!(flags
        .load_document(br#"{"flags":[{"key":"a","enabled":false}]}"#)
        .expect("new"));
    assert!(rx.has_changed().expect("open"));
    rx.mark_unchanged();
    // A refused document changes nothing and tells no one.
    assert!(flags.load_document(b"{not json").is_err());
    assert!(!rx.has_changed().expect("open"));
    assert!(!flags.get("a"));
}
