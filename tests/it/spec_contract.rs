//! The specification's documents, copied verbatim into `tests/fixtures/spec/`, driven against
//! the core as a new user would copy them: the remote config (flags keyed by name), an event
//! with exactly the fields of its `AnalyticsEvent` interface, the `{ "events": [...] }` batch
//! and the health report. The server side (real HTTP against `railgun serve`) is
//! `server/tests/it/spec_contract.rs`.
//!
//! `every_fixture_is_a_verbatim_copy_of_the_specification` keeps the fixtures honest: each
//! must appear, byte for byte, in `../shared/spec/specification.md`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use railgun_core::clock::ManualClock;
use railgun_core::flags::{
    evaluate_all, sign_config, CompiledConfig, EvalContext, FeatureFlags, FlagsConfig, FlagsForm,
    Reason, RemoteConfig,
};
use railgun_core::identity::{bucket, in_percentage};
use railgun_core::store::Store;
use railgun_core::trust::{KeyAlgorithm, PrivateKey, TrustedKeys};
use serde_json::{json, Value};

/// The fixtures, each a snippet of the specification.
pub const FIXTURES: [&str; 5] = [
    "remote-config.json",
    "analytics-event.ts",
    "backend-endpoints.sh",
    "health-report.ts",
    "rollout-status.sh",
];

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/spec/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn require_all() -> bool {
    std::env::var("RAILGUN_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

#[test]
fn every_fixture_is_a_verbatim_copy_of_the_specification() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/spec/specification.md"
    );
    let spec = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if !require_all() => {
            eprintln!("SKIP: {path}: {e} (the fixtures are not compared with the specification)");
            return;
        }
        Err(e) => panic!(
            "{path}: {e} (RAILGUN_REQUIRE_ALL=1: the specification must be beside the clone)"
        ),
    };
    for name in FIXTURES {
        let text = fixture(name);
        assert!(text.len() > 50, "{name} is too short to be a snippet");
        assert!(
            spec.contains(&format!("\n{text}```")),
            "{name} is not a verbatim code block of the specification"
        );
    }
}

/// The specification's config document, as written.
fn spec_config() -> Vec<u8> {
    fixture("remote-config.json").into_bytes()
}

fn client(user: &str, version: &str, clock: &ManualClock) -> FeatureFlags {
    let cfg = FlagsConfig::new("rail-gun", user, version.parse().expect("version"));
    FeatureFlags::new(cfg, Arc::new(Store::open_in_memory().expect("store")))
        .expect("client")
        .with_clock(Arc::new(clock.clone()))
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

#[test]
fn the_specification_config_document_is_accepted_and_evaluated_as_written() {
    let c = RemoteConfig::parse(&spec_config()).expect("the specification's config parses");
    assert_eq!(c.flags.form, FlagsForm::Map);
    assert_eq!(c.version, "1.0.0");
    let keys: Vec<&str> = c.flags.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["voice_messages", "reactions"], "keys from the map");
    assert_eq!(
        c.flags[1].description.as_deref(),
        Some("Message reactions feature")
    );

    let clock = ManualClock::new(at("2024-12-27T12:00:00Z"));
    // rolloutPercentage 50 over the one bucketing function, seed "flag:{key}".
    let compiled = CompiledConfig::new(&c);
    let mut on = 0;
    for i in 0..1000 {
        let ctx = EvalContext {
            user_id: format!("user-{i}"),
            app_version: "0.2.0".parse().expect("v"),
            platform: "darwin".into(),
            channel: "stable".into(),
        };
        let all = evaluate_all(Some(&compiled), &ctx, &BTreeMap::new());
        let d = &all["voice_messages"];
        let inside = in_percentage(bucket("flag:voice_messages", &ctx.user_id), 50.0);
        assert_eq!(
            (d.value, d.reason),
            (inside, Reason::Split),
            "{}",
            ctx.user_id
        );
        on += usize::from(d.value);
        let r = &all["reactions"];
        assert_eq!((r.value, r.reason), (false, Reason::Disabled));
    }
    assert!((400..600).contains(&on), "{on} of 1000 inside 50 %");
    // The client over the same document agrees, with the announcement in force.
    for i in 0..3 {
        let user = format!("user-{i}");
        let flags = client(&user, "0.2.0", &clock);
        flags.load_document(&spec_config()).expect("load");
        let inside = in_percentage(bucket("flag:voice_messages", &user), 50.0);
        assert_eq!(flags.get("voice_messages"), inside, "{user}");
        assert!(!flags.get("reactions"));
        assert!(!flags.kill_switch().active);
        let ann = flags.announcements();
        assert_eq!(ann.len(), 1);
        assert_eq!(
            (ann[0].id.as_str(), ann[0].kind.as_str()),
            ("maintenance-2024-12-28", "warning")
        );
        assert!(ann[0].show_once && ann[0].dismissible);
    }

    // minVersion 0.2.0: an older app does not get it.
    let old = client("user-1", "0.1.9", &clock);
    old.load_document(&spec_config()).expect("load");
    assert_eq!(
        old.details("voice_messages").reason,
        Reason::VersionMismatch
    );

    // The maintenance window, 2-4am UTC on Dec 28 (inclusive).
    let flags = client("user-1", "0.2.0", &clock);
    flags.load_document(&spec_config()).expect("load");
    assert!(!flags.maintenance().active);
    clock.set(at("2024-12-28T03:00:00Z"));
    let m = flags.maintenance();
    assert!(m.active && m.allow_read_only);
    assert_eq!(m.message.as_deref(), Some("We're performing maintenance"));
    clock.set(at("2024-12-28T04:00:01Z"));
    assert!(!flags.maintenance().active);
}

#[test]
fn the_specification_config_signed_is_verified_and_evaluated_the_same() {
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let env = sign_config(&spec_config(), &[&key]).expect("sign the specification's config");
    let clock = ManualClock::new(at("2024-12-27T12:00:00Z"));
    let mut cfg = FlagsConfig::new("rail-gun", "user-7", "0.2.0".parse().expect("v"));
    cfg.keys = Some(TrustedKeys::single(key.public_key().clone()));
    let signed = FeatureFlags::new(cfg, Arc::new(Store::open_in_memory().expect("store")))
        .expect("client")
        .with_clock(Arc::new(clock.clone()));
    // Keys configured: the unsigned document is refused, the signed one accepted.
    assert!(signed.load_document(&spec_config()).is_err());
    signed
        .load_document(&env.to_json_bytes())
        .expect("signed config");
    let plain = client("user-7", "0.2.0", &clock);
    plain.load_document(&spec_config()).expect("load");
    assert_eq!(signed.all_details(), plain.all_details());
    assert_eq!(signed.get_all().len(), 2);
}

/// The shared vectors' flags (a list) rewritten as the specification's object keyed by name,
/// with `key` dropped from every other flag (it is optional there).
fn as_map(flags: &Value) -> Value {
    let mut map = serde_json::Map::new();
    for (i, f) in flags.as_array().expect("list").iter().enumerate() {
        let mut f = f.clone();
        let key = f["key"].as_str().expect("key").to_string();
        if i % 2 == 0 {
            f.as_object_mut().expect("flag").remove("key");
        }
        map.insert(key, f);
    }
    Value::Object(map)
}

#[test]
fn the_map_and_list_forms_agree_on_the_shared_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/flags.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    let mut checked = 0;
    for case in v["cases"].as_array().expect("cases") {
        let c = &case["context"];
        let mut cfg = FlagsConfig::new(
            "app",
            c["userId"].as_str().expect("user"),
            c["appVersion"].as_str().expect("v").parse().expect("v"),
        );
        cfg.platform = c["platform"].as_str().expect("platform").into();
        cfg.channel = c["channel"].as_str().expect("channel").into();
        let flags = FeatureFlags::new(cfg, Arc::new(Store::open_in_memory().expect("store")))
            .expect("client");
        let doc = json!({
            "emergencyKillSwitch": case["emergencyKillSwitch"],
            "flags": as_map(&v["flags"]),
        });
        flags
            .load_document(&serde_json::to_vec(&doc).expect("json"))
            .expect("the map form loads");
        let expected: BTreeMap<String, Value> =
            serde_json::from_value(case["expected"].clone()).expect("expected");
        for (key, want) in expected {
            let got = serde_json::to_value(flags.details(&key)).expect("details");
            assert_eq!(got["value"], want["value"], "{key} in {c}");
            assert_eq!(got["reason"], want["reason"], "{key} in {c}");
            assert_eq!(
                got.get("variant").unwrap_or(&Value::Null),
                want.get("variant").unwrap_or(&Value::Null),
                "{key} in {c}"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} evaluations");
}

#[test]
fn a_malformed_config_is_still_refused_with_the_field_named() {
    let mut doc: Value = serde_json::from_slice(&spec_config()).expect("json");
    doc["flags"]["voice_messages"]["rolloutPercentage"] = json!("half");
    let e = RemoteConfig::parse(&serde_json::to_vec(&doc).expect("json")).expect_err("bad");
    assert!(
        e.to_string()
            .contains("flags.voice_messages.rolloutPercentage"),
        "{e}"
    );
    let mut doc: Value = serde_json::from_slice(&spec_config()).expect("json");
    doc["flags"]["voice_messages"]["key"] = json!("voice");
    let e = RemoteConfig::parse(&serde_json::to_vec(&doc).expect("json")).expect_err("bad");
    let text = e.to_string();
    assert!(
        text.contains("\"voice_messages\"") && text.contains("\"voice\""),
        "names both keys: {text}"
    );
    let flags = client("u", "0.2.0", &ManualClock::new(at("2024-12-27T12:00:00Z")));
    flags.load_document(&spec_config()).expect("good");
    assert!(flags
        .load_document(&serde_json::to_vec(&doc).expect("json"))
        .is_err());
    // The last good document stays in force.
    assert_eq!(flags.details("reactions").reason, Reason::Disabled);
}

/// The fields of the specification's `AnalyticsEvent` interface: (name, optional).
pub fn interface_fields() -> Vec<(String, bool)> {
    fixture("analytics-event.ts")
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (name, _) = l.split_once(':')?;
            if l.starts_with("interface") || name.contains(' ') {
                return None;
            }
            Some(match name.strip_suffix('?') {
                Some(n) => (n.to_string(), true),
                None => (name.to_string(), false),
            })
        })
        .collect()
}

/// A JSON event with exactly the interface's fields (optional ones included).
fn spec_event(user: &str, sequence: u64, name: &str) -> Value {
    let mut e = serde_json::Map::new();
    for (field, _) in interface_fields() {
        let v = match field.as_str() {
            "name" => json!(name),
            "category" => json!("feature"),
            "userId" => json!(user),
            "sessionId" => json!(format!("{user}-session")),
            "timestamp" => json!("2024-12-27T12:00:00Z"),
            "appVersion" => json!("0.2.0"),
            "platform" => json!("darwin"),
            "arch" => json!("arm64"),
            "channel" => json!("stable"),
            "properties" => json!({"conversation_type": "direct", "count": 2, "voice": true}),
            "duration" => json!(1500),
            "sequence" => json!(sequence),
            other => panic!("the interface has a field this test does not know: {other}"),
        };
        e.insert(field, v);
    }
    Value::Object(e)
}

#[test]
fn an_event_with_exactly_the_interface_fields_is_accepted_and_gets_a_stable_identity() {
    use railgun_core::analytics::AnalyticsEvent;
    use railgun_core::analytics::{derived_event_id, validate_event, EventBatch};
    let fields = interface_fields();
    assert_eq!(fields.len(), 12, "{fields:?}");
    assert!(fields.contains(&("duration".into(), true)));
    let json = spec_event("9f86d081", 4, "message_sent");
    let e: AnalyticsEvent = serde_json::from_value(json.clone()).expect("the interface's event");
    validate_event(&e).expect("valid");
    assert_eq!(e.duration, Some(1500.0));
    assert_eq!(
        e.id,
        derived_event_id(
            "9f86d081",
            "9f86d081-session",
            4,
            "message_sent",
            e.timestamp
        )
    );
    // Our own type has exactly the interface's fields, plus `id`.
    let ours: std::collections::BTreeSet<String> = serde_json::to_value(&e)
        .expect("json")
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    let spec: std::collections::BTreeSet<String> = fields
        .iter()
        .map(|(f, _)| f.clone())
        .chain(["id".to_string()])
        .collect();
    assert_eq!(ours, spec);
    // The specification's `{ "events": [...] }` is a complete batch.
    let body = fixture("backend-endpoints.sh")
        .lines()
        .find(|l| l.starts_with("{ \"events\""))
        .expect("the batch line")
        .replace("[...]", &format!("[{json}]"));
    let b: EventBatch = serde_json::from_str(&body).expect("the specification's batch");
    assert_eq!((b.events.len(), b.sent_at, b.sample_rate), (1, None, 1.0));
    assert_eq!(b.events[0], e);
}

/// The specification's health report (a TypeScript object literal) as JSON.
pub fn spec_health_report() -> Value {
    let text: String = fixture("health-report.ts")
        .lines()
        .map(|l| match l.trim_start().split_once(':') {
            Some((k, rest)) if k.chars().all(|c| c.is_ascii_alphanumeric()) => {
                format!("\"{k}\":{rest}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn the_specification_health_report_is_accepted_with_a_derived_identity() {
    use railgun_core::health::{validate_report, HealthReport};
    let json = spec_health_report();
    assert_eq!(json["machineId"], "hashed-id");
    let a: HealthReport = serde_json::from_value(json.clone()).expect("the spec's report");
    let b: HealthReport = serde_json::from_value(json).expect("again");
    validate_report(&a).expect("valid");
    assert_eq!(a.id, b.id, "a retry has the same identity");
    assert_eq!(a.period_end, at("2024-12-27T12:00:00Z"));
    assert_eq!((a.errors, a.crashes), (0, 0));
}
