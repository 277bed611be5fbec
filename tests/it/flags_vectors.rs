//! The shared evaluation vectors (`tests/vectors/flags.json`, made by an independent Python
//! implementation): the Rust client must agree on every value, variant and reason.

use std::sync::Arc;

use railgun_core::flags::{FeatureFlags, FlagsConfig, Reason};
use railgun_core::store::Store;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    flags: serde_json::Value,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    context: Context,
    emergency_kill_switch: bool,
    expected: std::collections::BTreeMap<String, Expected>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Context {
    user_id: String,
    app_version: String,
    platform: String,
    channel: String,
}

#[derive(Deserialize)]
struct Expected {
    value: bool,
    variant: Option<String>,
    reason: Reason,
}

#[test]
fn rust_agrees_with_the_shared_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/flags.json");
    let v: Vectors =
        serde_json::from_slice(&std::fs::read(path).expect("read vectors")).expect("parse");
    assert!(v.cases.len() >= 10);
    let mut checked = 0;
    for case in &v.cases {
        let c = &case.context;
        let mut cfg = FlagsConfig::new("app", &c.user_id, c.app_version.parse().expect("v"));
        cfg.platform = c.platform.clone();
        cfg.channel = c.channel.clone();
        let flags = FeatureFlags::new(cfg, Arc::new(Store::open_in_memory().expect("store")))
            .expect("client");
        let doc = serde_json::json!({
            "emergencyKillSwitch": case.emergency_kill_switch,
            "flags": v.flags,
        });
        flags
            .load_document(&serde_json::to_vec(&doc).expect("json"))
            .expect("load");
        for (key, want) in &case.expected {
            let got = flags.details(key);
            let label = format!("{key} for {} on {}", c.user_id, c.app_version);
            assert_eq!(got.value, want.value, "value of {label}");
            assert_eq!(got.variant, want.variant, "variant of {label}");
            assert_eq!(got.reason, want.reason, "reason of {label}");
            assert_eq!(flags.get(key), want.value, "get of {label}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} evaluations checked");
}
