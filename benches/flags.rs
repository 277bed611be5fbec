//! Flag evaluation beside Unleash Yggdrasil, in the same run, on the specification's
//! `voice_messages` flag (enabled, 50 % rollout, `minVersion` 0.2.0) and the same users.
//!
//! * `new user each call`: railgun's compiled config evaluates the flag for a different user
//!   every call (what a server evaluating for many users pays); Yggdrasil's `is_enabled`
//!   with the same user ids and the same app version. Goal: railgun ≥ 2× Yggdrasil's speed.
//! * `this install`: railgun's `FeatureFlags::get` (the table precomputed for this install
//!   when the config arrived) against Yggdrasil's `is_enabled` for that same user. Goal ≥ 10×.
//!
//! Yggdrasil gets the flag as Unleash expresses it: a `flexibleRollout` strategy
//! (rollout 50, stickiness `userId`, group `voice_messages`) with the constraint
//! `appVersion SEMVER_GTE 0.2.0`. Before timing, both engines evaluate the same users and
//! the bench checks that each puts about half of them in and that both agree on the version
//! gate: the two sides answer the same question.
//!
//! Instructions rather than time (repeatable on a loaded machine): with `FLAGS_INSTRUCTIONS=N`
//! set, the binary evaluates the flag for N new users with each engine, once, in the functions
//! `railgun_new_users` and `yggdrasil_new_users`, and exits; run it under callgrind and divide
//! each function's inclusive count by N:
//!
//! ```text
//! FLAGS_INSTRUCTIONS=100000 valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/deps/flags-<hash>
//! callgrind_annotate --inclusive=yes cg.out | grep _new_users
//! ```

// A benchmark may panic on a broken setup: it measures, it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use railgun_core::flags::{CompiledConfig, EvalContext, FeatureFlags, FlagsConfig, RemoteConfig};
use railgun_core::store::Store;
use unleash_yggdrasil::{ClientFeatures, Context, EngineState};

/// The specification's config document (section 3), verbatim in its flags.
const SPEC_CONFIG: &str = r#"{
  "version": "1.0.0",
  "lastUpdated": "2024-12-27T00:00:00Z",
  "emergencyKillSwitch": false,
  "emergencyMessage": null,
  "flags": {
    "voice_messages": {
      "key": "voice_messages",
      "enabled": true,
      "rolloutPercentage": 50,
      "minVersion": "0.2.0"
    },
    "reactions": {
      "enabled": false,
      "description": "Message reactions feature"
    }
  }
}"#;

/// The same two flags in Unleash's client API format.
const UNLEASH_FEATURES: &str = r#"{
  "version": 2,
  "features": [
    {"name": "voice_messages", "enabled": true, "strategies": [
      {"name": "flexibleRollout",
       "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "voice_messages"},
       "constraints": [{"contextName": "appVersion", "operator": "SEMVER_GTE",
                        "value": "0.2.0", "inverted": false, "caseInsensitive": false}]}]},
    {"name": "reactions", "enabled": false, "strategies": []}
  ]
}"#;

const APP_VERSION: &str = "1.4.0";
const USERS: usize = 4096;
const FLAG: &str = "voice_messages";

/// Install-id-shaped users (64 hex digits, like `identity::install_id`), deterministic.
fn users() -> Vec<String> {
    (0..USERS)
        .map(|i| {
            let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (0..4)
                .map(|_| {
                    x ^= x >> 31;
                    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    format!("{x:016x}")
                })
                .collect()
        })
        .collect()
}

fn railgun_context(user: &str, version: &str) -> EvalContext {
    EvalContext {
        user_id: user.to_string(),
        app_version: version.parse().expect("version"),
        platform: "linux".into(),
        channel: "stable".into(),
    }
}

fn unleash_context(user: &str, version: &str) -> Context {
    Context {
        user_id: Some(user.to_string()),
        app_name: Some("rail-gun".into()),
        properties: Some(HashMap::from([("appVersion".into(), version.into())])),
        ..Context::default()
    }
}

fn yggdrasil() -> EngineState {
    let engine = EngineState::initial_state(chrono::Utc::now());
    let features: ClientFeatures = serde_json::from_str(UNLEASH_FEATURES).expect("features");
    if let Some(warnings) = engine.apply_client_features(features) {
        assert!(warnings.is_empty(), "yggdrasil warnings: {warnings:?}");
    }
    engine
}

/// Both engines on every user, on a version inside and one below `minVersion`.
fn check_same_question(compiled: &CompiledConfig, engine: &EngineState, users: &[String]) {
    for version in [APP_VERSION, "0.1.9"] {
        let (mut ours, mut theirs) = (0usize, 0usize);
        for u in users {
            ours += usize::from(compiled.evaluate(FLAG, &railgun_context(u, version)).value);
            theirs += usize::from(engine.is_enabled(FLAG, &unleash_context(u, version), &None));
        }
        if version == APP_VERSION {
            for (who, n) in [("railgun", ours), ("yggdrasil", theirs)] {
                let share = n as f64 / users.len() as f64;
                assert!((0.45..0.55).contains(&share), "{who} enables {share:.3}");
            }
        } else {
            assert_eq!((ours, theirs), (0, 0), "below minVersion nobody gets it");
        }
        eprintln!(
            "voice_messages on {version}: railgun enables {ours}/{n}, yggdrasil {theirs}/{n}",
            n = users.len()
        );
    }
}

/// `voice_messages` for every context, by railgun's compiled config: how many are on.
#[inline(never)]
fn railgun_new_users(compiled: &CompiledConfig, users: &[EvalContext]) -> usize {
    users
        .iter()
        .filter(|u| compiled.evaluate(black_box(FLAG), u).value)
        .count()
}

/// The same by Yggdrasil's `is_enabled`.
#[inline(never)]
fn yggdrasil_new_users(engine: &EngineState, users: &[Context]) -> usize {
    users
        .iter()
        .filter(|u| engine.is_enabled(black_box(FLAG), u, &None))
        .count()
}

/// Each engine's context for each user, on [`APP_VERSION`].
fn contexts(users: &[String]) -> (Vec<EvalContext>, Vec<Context>) {
    users
        .iter()
        .map(|u| {
            (
                railgun_context(u, APP_VERSION),
                unleash_context(u, APP_VERSION),
            )
        })
        .unzip()
}

/// One pass of each engine over `n` new users, for an instruction counter to read.
fn count_instructions(n: usize) {
    let users: Vec<String> = users().into_iter().cycle().take(n).collect();
    let compiled = CompiledConfig::new(&RemoteConfig::parse(SPEC_CONFIG.as_bytes()).expect("spec"));
    let engine = yggdrasil();
    let (ours, theirs) = contexts(&users);
    let on = (
        railgun_new_users(&compiled, &ours),
        yggdrasil_new_users(&engine, &theirs),
    );
    eprintln!(
        "{n} new users: railgun enables {}, yggdrasil {}",
        on.0, on.1
    );
}

fn bench(c: &mut Criterion) {
    let users = users();
    let config = RemoteConfig::parse(SPEC_CONFIG.as_bytes()).expect("spec config");
    let compiled = CompiledConfig::new(&config);
    let engine = yggdrasil();
    check_same_question(&compiled, &engine, &users);

    let (ours, theirs) = contexts(&users);

    let mut g = c.benchmark_group("flags");
    g.sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    let mut i = 0;
    g.bench_function("new user each call/railgun", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            compiled.evaluate(black_box(FLAG), &ours[i]).value
        })
    });
    let mut i = 0;
    g.bench_function("new user each call/yggdrasil", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            engine.is_enabled(black_box(FLAG), &theirs[i], &None)
        })
    });

    // This install: a user both engines let in (their bucketing hashes differ, so not every
    // user is in both halves), so that each side walks its whole rule; railgun reads the
    // client's table precomputed for this install when the config arrived.
    let me = (0..USERS)
        .find(|&i| {
            compiled.evaluate(FLAG, &ours[i]).value && engine.is_enabled(FLAG, &theirs[i], &None)
        })
        .expect("a user both engines enable");
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let cfg = FlagsConfig::new(
        "rail-gun",
        &users[me],
        APP_VERSION.parse().expect("version"),
    );
    let flags = FeatureFlags::new(cfg, store).expect("client");
    flags.load_document(SPEC_CONFIG.as_bytes()).expect("config");
    assert!(
        flags.get(FLAG),
        "the client agrees with its compiled config"
    );
    g.bench_function("this install/railgun", |b| {
        b.iter(|| flags.get(black_box(FLAG)))
    });
    g.bench_function("this install/yggdrasil", |b| {
        b.iter(|| engine.is_enabled(black_box(FLAG), &theirs[me], &None))
    });
    g.bench_function("this install/railgun unknown key", |b| {
        b.iter(|| flags.get(black_box("no-such-flag")))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Some(n) = std::env::var_os("FLAGS_INSTRUCTIONS") {
        let n = n
            .to_str()
            .and_then(|n| n.parse().ok())
            .expect("FLAGS_INSTRUCTIONS=N");
        count_instructions(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
