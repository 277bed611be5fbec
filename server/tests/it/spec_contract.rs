//! The specification's documents and calls, copied verbatim into `tests/fixtures/spec/`,
//! driven over real HTTP on loopback against the real server, on SQLite and on PostgreSQL
//! (`db::database`): its remote config served from the update tree and read by the real
//! flags client, its `{ "events": [...] }` batch of events with exactly the fields of its
//! `AnalyticsEvent` and the queries it lists, its health report, and its rollout-status call.
//! The server's clock stands at the specification's dates (2024-12-27).
//!
//! Bad input keeps its clear errors: a malformed batch or report is refused naming the field.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::db::Kind;
use crate::support::{
    health_report, signed_release, within, ChildServer, ReleaseSpec, TestServer, ADMIN,
};
use chrono::{DateTime, Utc};
use railgun_core::flags::{sign_config, FeatureFlags, FlagsConfig, Reason, RefreshOutcome};
use railgun_core::store::Store;
use railgun_core::trust::PublicKey;
use railgun_core::trust::{KeyAlgorithm, PrivateKey, TrustedKeys};
use railgun_core::update::ChannelState;
use railgun_server::release::ChannelStages;
use railgun_server::rollout::verify_channel;
use serde_json::{json, Value};

/// The app the specification's documents belong to (they never name it).
const APP: &str = "rail-gun";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../tests/fixtures/spec/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

/// The server's clock: an hour after the specification's health report.
fn now() -> DateTime<Utc> {
    at("2024-12-27T13:00:00Z")
}

async fn start(kind: Kind) -> Option<TestServer> {
    TestServer::with(kind, "spec-contract", now(), |_| {}).await
}

/// `POST path` with the body text as written and `Content-Type: application/json`: status
/// and JSON answer.
async fn post(s: &TestServer, path: &str, token: Option<&str>, body: String) -> (u16, Value) {
    let mut rq = s
        .http
        .post(format!("{}{path}", s.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    let r = within(path, rq.send()).await.expect("post");
    let status = r.status().as_u16();
    (status, within(path, r.json()).await.unwrap_or(Value::Null))
}

/// `GET path` with the read token: status and JSON answer.
async fn get(s: &TestServer, path: &str) -> (u16, Value) {
    let r = s.get(path, Some(crate::support::READ)).await;
    let status = r.status().as_u16();
    (status, within(path, r.json()).await.unwrap_or(Value::Null))
}

/// Signs, registers and uploads `version` of `app` for `channel`; the server starts it at
/// `percentage`, or at its first stage.
async fn publish(s: &TestServer, app: &str, version: &str, channel: &str, percentage: Option<f64>) {
    let rel = s.release(&ReleaseSpec {
        app,
        channel,
        version,
        policy: None,
        released_at: now(),
        size: 3000,
        base_url: None,
    });
    let extra = match percentage {
        Some(p) => json!({"percentage": p}),
        None => json!({}),
    };
    s.publish(&rel, extra).await;
}

// ---- remote config ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specification_config_served_signed_is_read_refreshed_with_its_etag_and_cached() {
    let mut s = start(Kind::Sqlite).await.expect("sqlite");
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let env = sign_config(fixture("remote-config.json").as_bytes(), &[&key]).expect("sign");
    let file = s.config.root.join(APP).join("config.json");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    std::fs::write(&file, env.to_json_bytes()).expect("write");

    let client_dir = tempfile::tempdir().expect("tmp");
    let store_path = client_dir.path().join("client.db");
    let url = format!("{}/updates/{APP}/config.json", s.url);
    let client = || {
        let mut cfg = FlagsConfig::new(APP, "user-1", "0.2.0".parse().expect("v"));
        cfg.url = Some(url.clone());
        cfg.keys = Some(TrustedKeys::single(key.public_key().clone()));
        FeatureFlags::new(cfg, Arc::new(Store::open(&store_path).expect("store"))).expect("client")
    };
    let flags = client();
    assert_eq!(
        flags.refresh().await.expect("first fetch"),
        RefreshOutcome::Updated { changed: true }
    );
    assert_eq!(
        flags.refresh().await.expect("second fetch"),
        RefreshOutcome::NotModified,
        "the tree's ETag answers 304"
    );
    let all = flags.all_details();
    assert_eq!(all.len(), 2);
    assert_eq!(all["reactions"].reason, Reason::Disabled);
    assert_eq!(all["voice_messages"].reason, Reason::Split);
    let expected = flags.get_all();
    drop(flags);
    s.stop().await;
    // Offline: a new client starts from the cached copy.
    let offline = client();
    assert_eq!(offline.get_all(), expected);
    assert_eq!(offline.announcements().len(), 1);
}

// ---- events -------------------------------------------------------------------------------

/// The fields of the specification's `AnalyticsEvent` interface.
fn interface_fields() -> Vec<String> {
    fixture("analytics-event.ts")
        .lines()
        .filter_map(|l| {
            let (name, _) = l.trim().split_once(':')?;
            (!name.contains(' ')).then(|| name.trim_end_matches('?').to_string())
        })
        .collect()
}

/// An event with exactly the interface's fields (no `id`).
fn spec_event(user: &str, session: &str, seq: u64, name: &str, ts: &str, ms: f64) -> Value {
    let mut e = serde_json::Map::new();
    for field in interface_fields() {
        let v = match field.as_str() {
            "name" => json!(name),
            "category" => json!(if name.starts_with("session") {
                "session"
            } else {
                "feature"
            }),
            "userId" => json!(user),
            "sessionId" => json!(session),
            "timestamp" => json!(ts),
            "appVersion" => json!("0.2.0"),
            "platform" => json!("darwin"),
            "arch" => json!("arm64"),
            "channel" => json!("stable"),
            "properties" => json!({"conversation_type": "direct"}),
            "duration" => json!(ms),
            "sequence" => json!(seq),
            other => panic!("unknown interface field {other}"),
        };
        e.insert(field, v);
    }
    Value::Object(e)
}

/// The specification's "Backend Endpoints" block: (method, path, header lines, body line).
fn endpoints() -> Vec<(String, String, Vec<String>, Option<String>)> {
    let mut out: Vec<(String, String, Vec<String>, Option<String>)> = Vec::new();
    for line in fixture("backend-endpoints.sh").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some((method, path)) = line
            .split_once(' ')
            .filter(|(m, _)| m.chars().all(|c| c.is_ascii_uppercase()))
        {
            out.push((method.into(), path.into(), vec![], None));
        } else if line.starts_with('{') {
            out.last_mut().expect("a call").3 = Some(line.to_string());
        } else {
            out.last_mut().expect("a call").2.push(line.to_string());
        }
    }
    out
}

async fn events_and_queries_work_as_written(kind: Kind) {
    let Some(mut s) = start(kind).await else {
        return;
    };
    let events = [
        spec_event(
            "u1",
            "u1-a",
            1,
            "session_start",
            "2024-12-01T09:00:00Z",
            0.0,
        ),
        spec_event(
            "u2",
            "u2-a",
            1,
            "session_start",
            "2024-12-01T10:00:00Z",
            0.0,
        ),
        spec_event(
            "u1",
            "u1-b",
            1,
            "voice_messages",
            "2024-12-27T09:00:00Z",
            0.0,
        ),
        spec_event(
            "u1",
            "u1-b",
            2,
            "session_end",
            "2024-12-27T09:01:00Z",
            60_000.0,
        ),
        spec_event(
            "u3",
            "u3-a",
            1,
            "voice_messages",
            "2024-12-27T11:00:00Z",
            0.0,
        ),
    ];
    let calls = endpoints();
    assert_eq!(calls.len(), 5, "{calls:?}");
    let (method, path, headers, body) = &calls[0];
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/analytics/events")
    );
    assert_eq!(headers, &["Content-Type: application/json".to_string()]);
    let body = body
        .as_ref()
        .expect("the batch")
        .replace("[...]", &Value::from(events.to_vec()).to_string());
    let (status, v) = post(&s, path, None, body.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"accepted": 5, "duplicates": 0, "rejected": []}));
    // Sent again (no ids: each identity is derived from the content): counted once.
    let (status, v) = post(&s, path, None, body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"accepted": 0, "duplicates": 5, "rejected": []}));

    let mut answers = Vec::new();
    for (method, path, _, _) in &calls[1..] {
        assert_eq!(method, "GET");
        let (status, v) = get(&s, path).await;
        assert_eq!(status, 200, "{path}: {v}");
        answers.push(v);
    }
    // GET /analytics/dau?date=2024-12-27
    assert_eq!(
        (answers[0]["users"].clone(), answers[0]["estimate"].clone()),
        (json!(2), json!(2.0))
    );
    // GET /analytics/sessions?date=2024-12-27
    assert_eq!(answers[1]["count"], 1);
    assert_eq!(answers[1]["meanMs"], 60_000.0);
    // GET /analytics/features?name=voice_messages
    assert_eq!(answers[2]["events"], 2);
    // GET /analytics/retention?cohort=2024-12-01&days=30
    assert_eq!(answers[3]["size"], 2);
    let day26 = &answers[3]["days"][26];
    assert_eq!(
        (day26["date"].clone(), day26["users"].clone()),
        (json!("2024-12-27"), json!(1))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specification_batch_and_queries_work_as_written_on_sqlite() {
    events_and_queries_work_as_written(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specification_batch_and_queries_work_as_written_on_postgres() {
    events_and_queries_work_as_written(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_batch_is_still_refused_with_the_field_named() {
    let mut s = start(Kind::Sqlite).await.expect("sqlite");
    let ok = spec_event("u1", "s", 1, "screen_view", "2024-12-27T12:00:00Z", 0.0);
    for (body, field) in [
        (json!({"events": {"a": 1}}), "events"),
        (json!({"events": [ok], "sampleRate": "all"}), "sampleRate"),
        (json!({"events": [ok], "sentAt": "yesterday"}), "sentAt"),
    ] {
        let (status, v) = post(&s, "/analytics/events", None, body.to_string()).await;
        assert_eq!(status, 400, "{body}");
        let text = v["error"].as_str().unwrap_or_default();
        assert!(
            text.contains("malformed batch") && text.contains(field),
            "{text}"
        );
    }
    // A bad event is rejected by its index, naming its field; the others are stored.
    let mut bad = ok.clone();
    bad.as_object_mut().expect("event").remove("userId");
    let (status, v) = post(
        &s,
        "/analytics/events",
        None,
        json!({"events": [bad, ok]}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["accepted"], 1);
    let reason = v["rejected"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("userId"), "{reason}");
    s.stop().await;
}

// ---- health reports -----------------------------------------------------------------------

/// The specification's health report (a TypeScript object literal) as JSON text.
fn spec_health_report() -> String {
    fixture("health-report.ts")
        .lines()
        .map(|l| match l.trim_start().split_once(':') {
            Some((k, rest)) if k.chars().all(|c| c.is_ascii_alphanumeric()) => {
                format!("\"{k}\":{rest}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect()
}

async fn health_report_counts_once(kind: Kind) {
    let Some(mut s) = start(kind).await else {
        return;
    };
    let report = spec_health_report();
    // No release of 0.2.0 yet: the report cannot say which app it is about.
    let (status, v) = post(&s, "/analytics/health", None, report.clone()).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap_or_default().contains("\"app\""),
        "{v}"
    );

    publish(&s, APP, "0.2.0", "stable", None).await;
    let (status, v) = post(&s, "/analytics/health", None, report.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"accepted": true, "duplicate": false}));
    let (status, v) = post(&s, "/analytics/health", None, report).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"accepted": false, "duplicate": true}),
        "a retry counts once"
    );
    let (status, st) = get(&s, "/analytics/rollout-status?version=0.2.0").await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["totalInstalls"], 1);
    assert_eq!(
        (st["app"].clone(), st["channel"].clone()),
        (json!(APP), json!("stable"))
    );
    // "hashed-id" was stored only hashed; erasing that user id erases the report.
    let r = s
        .http
        .delete(format!("{}/analytics/users/hashed-id", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("delete");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["healthReports"], 1, "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specification_health_report_counts_once_for_its_release_on_sqlite() {
    health_report_counts_once(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specification_health_report_counts_once_for_its_release_on_postgres() {
    health_report_counts_once(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_health_report_is_still_refused_with_the_field_named() {
    let mut s = start(Kind::Sqlite).await.expect("sqlite");
    publish(&s, APP, "0.2.0", "stable", None).await;
    let good: Value = serde_json::from_str(&spec_health_report()).expect("json");
    for (field, value, named) in [
        ("errors", json!(-1), "errors"),
        ("timestamp", json!("noon"), "timestamp"),
        ("machineId", json!("raw id; rm"), "machineId"),
        ("timestamp", json!("+200000-01-01T00:00:00Z"), "periodEnd"),
        ("version", json!("latest"), "version"),
    ] {
        let mut b = good.clone();
        b[field] = value;
        let (status, v) = post(&s, "/analytics/health", None, b.to_string()).await;
        assert_eq!(status, 400, "{field}: {v}");
        let text = v["error"].as_str().unwrap_or_default();
        assert!(text.contains(named), "{field}: {text}");
    }
    let mut b = good.clone();
    b.as_object_mut().expect("report").remove("timestamp");
    let (status, v) = post(&s, "/analytics/health", None, b.to_string()).await;
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timestamp"),
        "{v}"
    );
    s.stop().await;
}

// ---- rollout status -----------------------------------------------------------------------

/// The specification's rollout-status call (its `GET` line) and its answer (the JSON after
/// `# Response`).
fn spec_rollout_status() -> (String, Value) {
    let text = fixture("rollout-status.sh");
    let call = text
        .lines()
        .find_map(|l| l.strip_prefix("GET "))
        .expect("the GET line")
        .trim()
        .to_string();
    let answer = &text[text.find('{').expect("the answer")..];
    (
        call,
        serde_json::from_str(answer).expect("the answer is JSON"),
    )
}

async fn rollout_status_answers_as_written(kind: Kind) {
    let Some(mut s) = start(kind).await else {
        return;
    };
    let (call, spec) = spec_rollout_status();
    let pct = spec["rolloutPercentage"]
        .as_f64()
        .expect("rolloutPercentage");
    publish(&s, APP, "0.2.0", "stable", Some(pct)).await;
    // 1 000 installs: 8 with errors and 1 with a crash, the example's 0.8 % and 0.1 %.
    let reports = (0..1000u32)
        .map(|i| {
            let issues = (u32::from(i < 8), u32::from(i == 8));
            health_report(APP, "stable", "0.2.0", format!("{i:064x}"), issues, now())
        })
        .collect();
    s.report_all(reports).await;

    let (status, st) = get(&s, &call).await;
    assert_eq!(status, 200, "{call}: {st}");
    // Every field of the specification's answer, with its type.
    for (field, example) in spec.as_object().expect("an object") {
        let got = &st[field];
        let same_type =
            (example.is_number() && got.is_number()) || (example.is_string() && got.is_string());
        assert!(
            same_type,
            "{field}: {got} is not like the example's {example}"
        );
    }
    for field in ["version", "channel", "status"] {
        assert_eq!(st[field].as_str(), spec[field].as_str(), "{field}");
    }
    assert_eq!(st["rolloutPercentage"], pct);
    assert_eq!(st["totalInstalls"], 1000);
    // Rates in percent, as the example ("errorRate": 0.8 is 0.8 %).
    assert_eq!(st["errorRate"], 0.8, "{st}");
    assert_eq!(st["crashRate"], 0.1, "{st}");
    // 100 × (1 − max(0.8 / 5, 0.1 / 1)).
    assert_eq!(st["healthScore"], 84, "{st}");
    // One answer, one unit: the bounds surround the rates and the limits are the
    // specification's "> 5 %" and "> 1 %".
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let (e, c) = (&st["errorRateBounds"], &st["crashRateBounds"]);
    assert!(f(&e["lower"]) < 0.8 && 0.8 < f(&e["upper"]), "{e}");
    assert!(f(&c["lower"]) < 0.1 && 0.1 < f(&c["upper"]), "{c}");
    assert_eq!(
        (
            st["limits"]["maxErrorRate"].clone(),
            st["limits"]["maxCrashRate"].clone()
        ),
        (json!(5.0), json!(1.0))
    );
    // The decision log and the list of rollouts speak the same unit.
    s.admin(
        &format!("/admin/rollouts/{APP}/stable/percentage"),
        json!({"percentage": 50}),
    )
    .await;
    let (_, st) = get(&s, &call).await;
    let d = &st["decisions"][0];
    assert_eq!(d["action"], "set_percentage", "{st}");
    assert_eq!(
        (d["errorRate"].clone(), d["crashRate"].clone()),
        (json!(0.8), json!(0.1))
    );
    assert!(
        f(&d["errorUpper"]) > 0.8 && f(&d["errorUpper"]) < 5.0,
        "{d}"
    );
    let (_, list) = get(&s, "/analytics/rollouts").await;
    assert_eq!(list["rollouts"][0]["errorRate"], 0.8, "{list}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specification_rollout_status_call_answers_its_fields_in_percent_on_sqlite() {
    rollout_status_answers_as_written(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specification_rollout_status_call_answers_its_fields_in_percent_on_postgres() {
    rollout_status_answers_as_written(Kind::Postgres).await;
}

// ---- update channels ----------------------------------------------------------------------

/// `GET /analytics/rollout-status` of `version` on `channel`.
async fn rollout(s: &TestServer, version: &str, channel: &str) -> Value {
    s.read(&format!(
        "/analytics/rollout-status?version={version}&app={APP}&channel={channel}"
    ))
    .await
}

/// The signed channel state `ROOT/rail-gun/{channel}/channel.json`, verified.
fn channel_state(root: &std::path::Path, key: &PublicKey, channel: &str) -> ChannelState {
    let bytes = std::fs::read(root.join(APP).join(channel).join("channel.json")).expect("read");
    verify_channel(&bytes, key).expect("signed by the rollout key")
}

async fn channels_start_as_the_specification_says(kind: Kind) {
    let Some(s) = start(kind).await else {
        return;
    };
    // "stable: Gradual (10% → 100%)", "beta / canary: 100% immediate".
    for (version, channel) in [("0.2.0", "stable"), ("0.3.0", "beta"), ("0.4.0", "canary")] {
        publish(&s, APP, version, channel, None).await;
    }
    let stable = rollout(&s, "0.2.0", "stable").await;
    assert_eq!(stable["rolloutPercentage"], 10.0, "{stable}");
    assert_eq!(stable["stages"], json!([10.0, 25.0, 50.0, 100.0]));
    for (version, channel) in [("0.3.0", "beta"), ("0.4.0", "canary")] {
        let st = rollout(&s, version, channel).await;
        assert_eq!(st["rolloutPercentage"], 100.0, "{channel}: {st}");
        assert_eq!(st["stages"], json!([100.0]), "{channel}");
        // Served to everyone at once, and still watched by the halt rules for its stage.
        assert_eq!(st["status"], "active", "{channel}");
        let state = channel_state(&s.config.root, s.rollout_key.public_key(), channel);
        assert_eq!(state.rollout.percentage, 100.0, "{channel}");
    }
    // A canary whose installs crash is halted like any rollout.
    let now = now();
    for i in 0..60 {
        let r = health_report(APP, "canary", "0.4.0", format!("{i:064x}"), (1, 1), now);
        let (status, v) = post(&s, "/analytics/health", None, json!(r).to_string()).await;
        assert_eq!(status, 200, "{v}");
    }
    let d = s.admin("/admin/rollouts/evaluate", json!({})).await;
    let halted: Vec<&Value> = d["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["action"] == "halt")
        .collect();
    assert_eq!(halted.len(), 1, "{d}");
    assert_eq!(halted[0]["channel"], "canary");
    assert_eq!(rollout(&s, "0.2.0", "stable").await["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beta_and_canary_start_at_100_percent_at_once_and_stable_at_10_on_sqlite() {
    channels_start_as_the_specification_says(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beta_and_canary_start_at_100_percent_at_once_and_stable_at_10_on_postgres() {
    channels_start_as_the_specification_says(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stages_of_each_channel_are_server_configuration() {
    let s = TestServer::with(Kind::Sqlite, "spec-contract", now(), |c| {
        c.channel_stages = ChannelStages::with([
            "canary=50,100".parse().expect("canary"),
            "stable=25,100".parse().expect("stable"),
        ]);
    })
    .await
    .expect("sqlite");
    for (version, channel) in [("0.2.0", "stable"), ("0.3.0", "beta"), ("0.4.0", "canary")] {
        publish(&s, APP, version, channel, None).await;
    }
    for (version, channel, pct, stages) in [
        ("0.2.0", "stable", 25.0, json!([25.0, 100.0])),
        ("0.3.0", "beta", 100.0, json!([100.0])),
        ("0.4.0", "canary", 50.0, json!([50.0, 100.0])),
    ] {
        let st = rollout(&s, version, channel).await;
        assert_eq!(st["rolloutPercentage"], pct, "{channel}: {st}");
        assert_eq!(st["stages"], stages, "{channel}");
    }
    // An explicit percentage still wins.
    publish(&s, APP, "0.5.0", "canary", Some(5.0)).await;
    assert_eq!(
        rollout(&s, "0.5.0", "canary").await["rolloutPercentage"],
        5.0
    );
}

/// Writes `NAME.key`/`NAME.pub` for `key` into `dir`.
fn key_files(dir: &std::path::Path, name: &str, key: &PrivateKey) -> (PathBuf, PathBuf) {
    let (k, p) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    key.write_pem_file(&k).expect("key");
    std::fs::write(&p, key.public_key().to_pem()).expect("pub");
    (k, p)
}

/// A signed manifest of `version` for `channel` with one artifact beside it; its path.
fn manifest_file(dir: &std::path::Path, key: &PrivateKey, version: &str, channel: &str) -> PathBuf {
    let rel = signed_release(
        dir,
        &ReleaseSpec {
            app: APP,
            channel,
            version,
            policy: None,
            released_at: Utc::now(),
            size: 1000,
            base_url: None,
        },
        key,
    );
    let path = rel.build.join("manifest.json");
    std::fs::write(&path, rel.envelope.to_string()).expect("write manifest");
    path
}

fn railgun(args: &[&OsStr], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_railgun"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run railgun");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn release_publish_to_railgun_serve_and_into_a_static_tree_starts_each_channel_at_its_stage() {
    let dir = tempfile::tempdir().expect("tmp");
    let release = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let rollout_key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let (release_key_file, release_pub) = key_files(dir.path(), "release", &release);
    let (rollout_key_file, _) = key_files(dir.path(), "rollout", &rollout_key);

    // A real `railgun serve` with one channel configured by its flag.
    let served = dir.path().join("served");
    let serve = ChildServer::serve(
        &served,
        &dir.path().join("data"),
        &[
            "--rollout-key".as_ref(),
            rollout_key_file.as_os_str(),
            "--release-public-key".as_ref(),
            release_pub.as_os_str(),
            "--channel-stages".as_ref(),
            "beta=20,100".as_ref(),
        ],
        &[("RAILGUN_ADMIN_TOKEN", ADMIN)],
    );
    for (version, channel, pct) in [
        ("0.2.0", "stable", 10.0),
        ("0.3.0", "beta", 20.0),
        ("0.4.0", "canary", 100.0),
    ] {
        let m = manifest_file(dir.path(), &release, version, channel);
        let (ok, out, err) = railgun(
            &[
                "release".as_ref(),
                "publish".as_ref(),
                "--server".as_ref(),
                serve.url.as_ref(),
                "--manifest".as_ref(),
                m.as_os_str(),
            ],
            &[("RAILGUN_ADMIN_TOKEN", ADMIN)],
        );
        assert!(ok, "{channel}: {err}");
        assert!(out.contains(&format!("at {pct} %")), "{channel}: {out}");
        let state = channel_state(&served, rollout_key.public_key(), channel);
        assert_eq!(state.rollout.percentage, pct, "{channel} via --server");
    }

    // A static tree: no server, the same defaults.
    let tree = dir.path().join("tree");
    for (version, channel, pct) in [
        ("0.2.0", "stable", 10.0),
        ("0.3.0", "beta", 100.0),
        ("0.4.0", "canary", 100.0),
    ] {
        let m = manifest_file(dir.path(), &release, version, channel);
        let (ok, out, err) = railgun(
            &[
                "release".as_ref(),
                "publish".as_ref(),
                "--root".as_ref(),
                tree.as_os_str(),
                "--manifest".as_ref(),
                m.as_os_str(),
                "--key".as_ref(),
                release_key_file.as_os_str(),
                "--rollout-key".as_ref(),
                rollout_key_file.as_os_str(),
            ],
            &[],
        );
        assert!(ok, "{channel}: {err}");
        let state = channel_state(&tree, rollout_key.public_key(), channel);
        assert_eq!(state.rollout.percentage, pct, "{channel} in a static tree");
        assert_eq!(
            out.contains("publish again with --percentage 25"),
            channel == "stable",
            "{channel}: {out}"
        );
    }
    // A bad setting is refused before anything starts.
    let (ok, _, err) = railgun(
        &[
            "serve".as_ref(),
            "--channel-stages".as_ref(),
            "stable=10,50".as_ref(),
        ],
        &[],
    );
    assert!(!ok && err.contains("the last stage must be 100"), "{err}");
}
