//! The rollout engine over real HTTP on loopback: the real server (`App::spawn`)
//! with a manual clock, real keys and signatures, a real SQLite file, and the real update
//! client (`UpdateClient::check`) reading the channel states the engine signs.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use railgun_core::health::HealthReport;
use railgun_core::identity::{bucket, in_percentage, rollout_seed};
use railgun_core::store::Store;
use railgun_core::trust::{Envelope, KeyAlgorithm, PrivateKey, TrustedKeys, PAYLOAD_CONFIG};
use railgun_core::update::{
    Arch, ChannelState, CheckError, DecisionReason, Platform, RolloutPolicy, RolloutState,
    RolloutStatus, UpdateClient, UpdateConfig, UpdateKind,
};
use railgun_core::Version;
use railgun_server::rollout::verify_channel;
use railgun_server::serve::{App, ServerConfig};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::db::Kind;
use crate::support::{health_report, utf8, ChildServer, ReleaseSpec, TestServer, ADMIN, READ};

const APP: &str = "demo";
const CHANNEL: &str = "stable";

fn t0() -> DateTime<Utc> {
    "2026-11-01T09:00:00Z".parse().expect("t")
}

/// The shared test server with this suite's release shape and rollout helpers.
struct H(TestServer);

impl std::ops::Deref for H {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl H {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        H(TestServer::with(Kind::Sqlite, "", t0(), tweak)
            .await
            .expect("SQLite always runs"))
    }

    async fn stop(mut self) {
        self.0.stop().await;
    }

    fn root(&self) -> &Path {
        &self.config.root
    }

    /// A signed manifest of `version` with one artifact; returns (envelope, file name, bytes).
    fn release(&self, version: &str, policy: Option<RolloutPolicy>) -> (Value, String, Vec<u8>) {
        self.release_signed_by(version, policy, &self.release_key)
    }

    fn release_signed_by(
        &self,
        version: &str,
        policy: Option<RolloutPolicy>,
        key: &PrivateKey,
    ) -> (Value, String, Vec<u8>) {
        let r = self.0.release_signed_by(&spec(version, policy), key);
        (r.envelope, r.file, r.bytes)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        self.0.post(path, token, &body).await
    }

    async fn upload(&self, version: &str, file: &str, bytes: Vec<u8>) -> reqwest::Response {
        self.0.upload(APP, version, file, bytes).await
    }

    /// Registers and uploads a release; starts it unless `start` is `None`.
    async fn publish(
        &self,
        version: &str,
        policy: Option<RolloutPolicy>,
        start: Option<(f64, Option<&str>)>,
    ) -> Value {
        let release = self.0.release(&spec(version, policy));
        let mut extra = json!({"start": start.is_some()});
        if let Some((pct, fallback)) = start {
            extra["percentage"] = json!(pct);
            if let Some(f) = fallback {
                extra["fallbackVersion"] = json!(f);
            }
        }
        self.0.publish(&release, extra).await
    }

    async fn report(&self, machine: usize, version: &str, errors: u32, crashes: u32) -> Value {
        self.0
            .report(&report(machine, version, errors, crashes, self.clock_now()))
            .await
    }

    /// `n` installs of `version` report; the first `errors` had errors, the first `crashes`
    /// crashed (machines numbered from `from`).
    async fn reports(&self, from: usize, n: usize, version: &str, errors: usize, crashes: usize) {
        let now = self.clock_now();
        let all = (0..n)
            .map(|i| {
                report(
                    from + i,
                    version,
                    u32::from(i < errors),
                    u32::from(i < crashes),
                    now,
                )
            })
            .collect();
        self.report_all(all).await;
    }

    fn clock_now(&self) -> DateTime<Utc> {
        use railgun_core::clock::Clock;
        self.clock.now()
    }

    async fn status(&self, version: &str) -> Value {
        self.0.status(APP, CHANNEL, version).await
    }

    fn channel_state(&self) -> ChannelState {
        let bytes =
            std::fs::read(self.root().join(APP).join(CHANNEL).join("channel.json")).expect("read");
        verify_channel(&bytes, self.rollout_key.public_key()).expect("signed by the rollout key")
    }

    fn client(&self, current: &str, install_id: &str) -> UpdateClient {
        let mut cfg = UpdateConfig::new(
            self.url.clone(),
            APP,
            CHANNEL,
            current.parse().expect("v"),
            TrustedKeys::single(self.release_key.public_key().clone()),
        );
        cfg.rollout_keys = Some(TrustedKeys::single(self.rollout_key.public_key().clone()));
        cfg.platform = Platform::Linux;
        cfg.arch = Arch::X64;
        cfg.install_id = Some(install_id.into());
        let store = Arc::new(
            Store::open(
                self.dir
                    .path()
                    .join(format!("client-{install_id}-{current}.db")),
            )
            .expect("store"),
        );
        UpdateClient::new(cfg, store)
            .expect("client")
            .with_clock(Arc::new(self.clock.clone()))
    }
}

fn machine(i: usize) -> String {
    hex::encode(Sha256::digest(format!("machine-{i}")))
}

fn report(i: usize, version: &str, errors: u32, crashes: u32, now: DateTime<Utc>) -> HealthReport {
    health_report(APP, CHANNEL, version, machine(i), (errors, crashes), now)
}

/// This suite's releases: one 20 000-byte artifact, released at `t0`.
fn spec(version: &str, policy: Option<RolloutPolicy>) -> ReleaseSpec<'_> {
    ReleaseSpec {
        app: APP,
        channel: CHANNEL,
        version,
        policy,
        released_at: t0(),
        size: 20_000,
        base_url: None,
    }
}

/// An install id inside (or outside) `pct` % of the rollout of `version`.
fn install_id(version: &str, pct: f64, inside: bool) -> String {
    let seed = rollout_seed(APP, CHANNEL, version);
    (0..10_000)
        .map(|i| format!("install-{i}"))
        .find(|id| in_percentage(bucket(&seed, id), pct) == inside)
        .expect("an install id")
}

fn actions(decisions: &[Value]) -> Vec<String> {
    decisions
        .iter()
        .map(|d| d["action"].as_str().unwrap_or("").to_string())
        .collect()
}

fn lenient_policy() -> RolloutPolicy {
    RolloutPolicy {
        stages: vec![10.0, 25.0, 50.0, 100.0],
        stage_hours: 24.0,
        max_error_rate: 0.2,
        max_crash_rate: 0.2,
        min_installs: 20,
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_rule_ignores_2_errors_in_3_installs_and_fires_on_80_in_1000() {
    let h = H::start().await;
    h.publish("1.0.0", None, Some((100.0, None))).await;
    h.publish("1.1.0", None, Some((10.0, None))).await;
    let st = h.status("1.1.0").await;
    assert_eq!(
        st["fallbackVersion"], "1.0.0",
        "defaults to what the channel served"
    );

    // 2 errors in 3 installs: 67 %, but 3 installs < minInstalls (50): no halt.
    h.reports(0, 3, "1.1.0", 2, 0).await;
    // Nor a High Error Rate alert: the same minimum-installs guard (ops_alerts tests it).
    let d = h.evaluate().await;
    assert!(d.is_empty(), "{d:?}");
    let st = h.status("1.1.0").await;
    assert_eq!(st["status"], "active");
    assert_eq!(st["totalInstalls"], 3);
    assert_eq!(st["installsWithErrors"], 2);
    // Rates, bounds and limits in percent, as in the specification.
    assert!(st["errorRateBounds"]["lower"].as_f64().expect("f") > 20.0);
    assert_eq!(h.channel_state().rollout.status, RolloutStatus::Active);

    // 80 errors in 1 000 installs: Wilson lower bound 6.47 % > 5 %.
    h.reports(3, 997, "1.1.0", 78, 0).await;
    let d = h.evaluate().await;
    assert_eq!(actions(&d), ["halt"], "{d:?}");
    assert_eq!(d[0]["actor"], "engine");
    assert_eq!(d[0]["installs"], 1000);
    assert_eq!(d[0]["errorRate"], 8.0);
    assert!((d[0]["errorLower"].as_f64().expect("f") - 6.474_8).abs() < 1e-3);
    let st = h.status("1.1.0").await;
    assert_eq!(st["status"], "halted");
    assert_eq!(st["errorRate"], 8.0);
    assert_eq!(st["healthScore"], 0);
    assert_eq!(
        actions(st["decisions"].as_array().expect("a")),
        ["halt", "start"]
    );
    let state = h.channel_state();
    assert_eq!(state.rollout.status, RolloutStatus::Halted);
    assert_eq!(
        state.fallback.as_ref().map(|f| f.version.clone()),
        Some(Version::new(1, 0, 0))
    );
    // Halted rollouts are not evaluated again.
    assert!(h.evaluate().await.is_empty());
    // A fixed release supersedes it; its default fallback is the last good one, not 1.1.0.
    h.publish("1.1.1", None, Some((10.0, None))).await;
    let st = h.status("1.1.1").await;
    assert_eq!(st["fallbackVersion"], "1.0.0");
    assert_eq!(st["current"], true);
    assert_eq!(h.status("1.1.0").await["current"], false);
    assert_eq!(h.channel_state().release.version, Version::new(1, 1, 1));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advances_only_after_the_stage_time() {
    let h = H::start().await;
    h.publish("1.0.0", Some(lenient_policy()), Some((100.0, None)))
        .await;
    h.publish("1.1.0", Some(lenient_policy()), Some((10.0, None)))
        .await;
    let seq0 = h.channel_state().sequence;
    h.reports(0, 30, "1.1.0", 0, 0).await;
    assert!(h.evaluate().await.is_empty(), "no stage time passed");
    h.clock.advance(Duration::hours(23));
    assert!(h.evaluate().await.is_empty(), "23 h < 24 h");
    assert_eq!(h.channel_state().sequence, seq0);
    h.clock.advance(Duration::hours(1));
    let d = h.evaluate().await;
    assert_eq!(actions(&d), ["advance"], "{d:?}");
    assert_eq!(
        (
            d[0]["fromPercentage"].as_f64(),
            d[0]["toPercentage"].as_f64()
        ),
        (Some(10.0), Some(25.0))
    );
    let state = h.channel_state();
    assert_eq!(state.rollout.percentage, 25.0);
    assert_eq!(state.sequence, seq0 + 1);
    let st = h.status("1.1.0").await;
    assert_eq!(st["stage"], 1);
    assert_eq!(st["rolloutPercentage"], 25.0);
    assert_eq!(st["stageStartedAt"], json!(h.clock_now()));
    // The new stage starts its own timer.
    h.clock.advance(Duration::hours(12));
    assert!(h.evaluate().await.is_empty());
    for to in [50.0, 100.0] {
        h.clock.advance(Duration::hours(24));
        let d = h.evaluate().await;
        assert_eq!(actions(&d), ["advance"]);
        assert_eq!(d[0]["toPercentage"].as_f64(), Some(to));
    }
    h.clock.advance(Duration::hours(24));
    assert_eq!(actions(&h.evaluate().await), ["complete"]);
    assert_eq!(h.channel_state().rollout.status, RolloutStatus::Complete);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_installs_never_advance_and_low_adoption_is_flagged_after_48h() {
    let h = H::start().await;
    h.publish("1.0.0", Some(lenient_policy()), Some((100.0, None)))
        .await;
    // 300 installs of 1.0.0 report: the channel's population.
    h.reports(1000, 300, "1.0.0", 0, 0).await;
    h.publish("1.1.0", Some(lenient_policy()), Some((10.0, None)))
        .await;
    h.reports(0, 2, "1.1.0", 0, 0).await;
    h.clock.advance(Duration::hours(47));
    assert!(h.evaluate().await.is_empty());
    h.clock.advance(Duration::hours(1));
    let d = h.evaluate().await;
    // 2 installs < 10 % of the expected 10 % × 302.
    assert_eq!(actions(&d), ["low_adoption"], "{d:?}");
    assert!(h.evaluate().await.is_empty(), "flagged once");
    assert_eq!(h.status("1.1.0").await["rolloutPercentage"], 10.0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halted_rollout_serves_the_fallback_to_clients_outside_and_inside_the_cohort() {
    let h = H::start().await;
    h.publish("1.0.0", None, Some((100.0, None))).await;
    h.publish("1.1.0", None, Some((10.0, Some("1.0.0")))).await;
    let outside = h.client("0.9.0", &install_id("1.1.0", 10.0, false));
    let inside = h.client("0.9.0", &install_id("1.1.0", 10.0, true));

    let d = outside.check().await.expect("check");
    let u = d.update.expect("fallback");
    assert_eq!(
        (u.version.clone(), u.kind),
        (Version::new(1, 0, 0), UpdateKind::Fallback)
    );
    let d = inside.check().await.expect("check");
    assert_eq!(d.update.expect("release").version, Version::new(1, 1, 0));

    let st = h
        .admin(
            &format!("/admin/rollouts/{APP}/{CHANNEL}/halt"),
            json!({"reason": "bad reviews"}),
        )
        .await;
    assert_eq!(st["status"], "halted");
    assert_eq!(st["decisions"][0]["action"], "halt");
    assert_eq!(st["decisions"][0]["actor"], "admin");

    for c in [&outside, &inside] {
        let d = c.check().await.expect("check");
        assert_eq!(d.state.rollout.status, RolloutStatus::Halted);
        let u = d.update.expect("fallback");
        assert_eq!(
            (u.version.clone(), u.kind),
            (Version::new(1, 0, 0), UpdateKind::Fallback)
        );
        // The artifact the client would download is the uploaded one.
        let bytes = h
            .http
            .get(u.artifact_url.clone())
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(hex::encode(Sha256::digest(&bytes)), u.artifact.sha256);
    }

    // Resume: the inside client gets the release again.
    let st = h
        .admin(
            &format!("/admin/rollouts/{APP}/{CHANNEL}/resume"),
            json!({}),
        )
        .await;
    assert_eq!(st["status"], "active");
    let d = inside.check().await.expect("check");
    assert_eq!(d.update.expect("release").version, Version::new(1, 1, 0));
    // And a percentage set by hand.
    let st = h
        .admin(
            &format!("/admin/rollouts/{APP}/{CHANNEL}/percentage"),
            json!({"percentage": 100}),
        )
        .await;
    assert_eq!(st["rolloutPercentage"], 100.0);
    let d = outside.check().await.expect("check");
    assert_eq!(d.update.expect("release").version, Version::new(1, 1, 0));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_is_authorised_only_by_a_signed_state() {
    let h = H::start().await;
    h.publish("1.0.0", None, Some((100.0, None))).await;
    h.publish("1.1.0", None, Some((50.0, None))).await;
    h.admin(&format!("/admin/rollouts/{APP}/{CHANNEL}/halt"), json!({}))
        .await;
    let bad = h.client("1.1.0", "install-on-bad");

    // Halted, the fallback is lower: never a downgrade without rollbackFrom.
    let d = bad.check().await.expect("check");
    assert!(d.update.is_none());
    assert_eq!(d.reason, DecisionReason::Halted);

    // A state listing 1.1.0 in rollbackFrom but signed by another key is refused.
    let path = h.root().join(APP).join(CHANNEL).join("channel.json");
    let genuine = std::fs::read(&path).expect("read");
    let mut forged = h.channel_state();
    forged.sequence += 100;
    forged.release = forged.fallback.take().expect("fallback");
    forged.rollout = RolloutState {
        percentage: 100.0,
        status: RolloutStatus::Complete,
    };
    forged.rollback_from = vec![Version::new(1, 1, 0)];
    let attacker = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let env = railgun_server::release::sign_channel_state(&forged, &[&attacker]).expect("sign");
    std::fs::write(&path, env.to_json_bytes()).expect("write");
    let err = bad.check().await.expect_err("forged state");
    assert!(matches!(err, CheckError::Signature { .. }), "{err:?}");
    std::fs::write(&path, &genuine).expect("restore");

    // The admin rollback signs rollbackFrom: [1.1.0]; now the client moves down.
    let st = h
        .admin(
            &format!("/admin/rollouts/{APP}/{CHANNEL}/rollback"),
            json!({"reason": "data loss"}),
        )
        .await;
    assert_eq!(st["rolledBack"], true);
    assert_eq!(st["decisions"][0]["action"], "rollback");
    let state = h.channel_state();
    assert_eq!(state.rollback_from, vec![Version::new(1, 1, 0)]);
    assert_eq!(state.release.version, Version::new(1, 0, 0));
    assert!(
        state.sequence < forged.sequence,
        "the forged number was not adopted"
    );
    let d = bad.check().await.expect("check");
    let u = d.update.expect("rollback");
    assert_eq!(
        (u.version.clone(), u.kind),
        (Version::new(1, 0, 0), UpdateKind::Rollback)
    );
    // A client on 1.0.0 stays.
    assert!(h
        .client("1.0.0", "install-ok")
        .check()
        .await
        .expect("check")
        .update
        .is_none());
    // Rolled back twice, or resumed: refused.
    for action in ["rollback", "resume"] {
        let r = h
            .post(
                &format!("/admin/rollouts/{APP}/{CHANNEL}/{action}"),
                Some(ADMIN),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), 409, "{action}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_reports_halt_the_rollout_and_the_next_check_gets_the_fallback() {
    let h = H::start().await;
    h.publish("1.0.0", None, Some((100.0, None))).await;
    h.publish("1.1.0", None, Some((10.0, None))).await;
    let client = h.client("0.9.0", &install_id("1.1.0", 10.0, true));
    let d = client.check().await.expect("check");
    assert_eq!(d.update.expect("release").version, Version::new(1, 1, 0));

    // 60 installs of 1.1.0 report; 10 of them crashed (17 %, lower bound 9 % > 1 %).
    h.reports(0, 60, "1.1.0", 0, 10).await;
    // Through the in-process handle too (what the demo uses); the route is the same call.
    let d = h.rollouts().evaluate().await.expect("evaluate");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].action, "halt");
    assert_eq!(d[0].installs, 60);
    assert!(d[0].crash_lower > 0.01, "{:?}", d[0]);
    assert!(d[0].reason.contains("crash rate"), "{}", d[0].reason);

    let d = client.check().await.expect("check");
    let u = d.update.expect("fallback");
    assert_eq!(
        (u.version.clone(), u.kind),
        (Version::new(1, 0, 0), UpdateKind::Fallback)
    );
    let st = h.status("1.1.0").await;
    assert_eq!(st["status"], "halted");
    assert_eq!(st["totalInstalls"], 60);
    assert_eq!(st["installsWithCrashes"], 10);
    assert_eq!(st["limits"]["maxCrashRate"], 1.0);
    // The list the dashboard reads: newest first.
    let r = h
        .http
        .get(format!("{}/analytics/rollouts", h.url))
        .bearer_auth(READ)
        .send()
        .await
        .expect("get");
    let v: Value = r.json().await.expect("json");
    let versions: Vec<&str> = v["rollouts"]
        .as_array()
        .expect("a")
        .iter()
        .map(|r| r["version"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_states_are_resigned_before_they_expire() {
    let h = H::start().await;
    h.publish("1.0.0", None, Some((100.0, None))).await;
    let s1 = h.channel_state();
    h.clock.advance(Duration::days(3));
    assert!(h.evaluate().await.is_empty());
    assert_eq!(
        h.channel_state().sequence,
        s1.sequence,
        "not yet half of 7 days"
    );
    h.clock.advance(Duration::hours(13));
    assert!(
        h.evaluate().await.is_empty(),
        "re-signing is not a decision"
    );
    let s2 = h.channel_state();
    assert_eq!(s2.sequence, s1.sequence + 1);
    assert_eq!(s2.expires_at, h.clock_now() + Duration::days(7));
    // A channel.json removed from the tree is written again from the database.
    std::fs::remove_file(h.root().join(APP).join(CHANNEL).join("channel.json")).expect("rm");
    h.evaluate().await;
    assert_eq!(h.channel_state(), s2);
    // Days later the client still accepts it.
    h.clock.advance(Duration::days(5));
    let d = h
        .client("0.9.0", "install-x")
        .check()
        .await
        .expect("not expired");
    assert_eq!(d.update.expect("update").version, Version::new(1, 0, 0));
    h.stop().await;
}

// ---- hostile --------------------------------------------------------------------------

fn tree_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).expect("prefix").display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_unsigned_or_wrongly_signed_manifests_and_writes_nothing() {
    let h = H::start().await;
    let stranger = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let (by_stranger, _, _) = h.release_signed_by("1.0.0", None, &stranger);
    let (good, _, _) = h.release("1.0.0", None);
    let mut tampered = good.clone();
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let payload = b64
            .decode(tampered["payload"].as_str().expect("payload"))
            .expect("b64");
        let text = String::from_utf8(payload)
            .expect("utf8")
            .replace("1.0.0", "1.0.1");
        tampered["payload"] = json!(b64.encode(text));
    }
    let env: Envelope = serde_json::from_value(good.clone()).expect("env");
    let payload = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&env.payload)
            .expect("b64")
    };
    let as_config = Envelope::sign(PAYLOAD_CONFIG, &payload, &[&h.release_key]).expect("sign");
    let unsigned: Value = serde_json::from_slice(&payload).expect("manifest json");
    let mut no_sigs = good.clone();
    no_sigs["signatures"] = json!([]);

    for (what, manifest) in [
        ("signed by a stranger", by_stranger),
        ("tampered payload", tampered),
        (
            "signed as a config",
            serde_json::to_value(&as_config).expect("v"),
        ),
        ("a bare manifest", unsigned),
        ("no signatures", no_sigs),
        ("not an envelope", json!(42)),
    ] {
        let r = h
            .post(
                "/admin/releases",
                Some(ADMIN),
                json!({"manifest": manifest}),
            )
            .await;
        assert_eq!(r.status(), 400, "{what}");
    }
    assert!(
        tree_files(h.root()).is_empty(),
        "{:?}",
        tree_files(h.root())
    );
    let r = h
        .http
        .get(format!("{}/analytics/rollouts", h.url))
        .bearer_auth(READ)
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.json::<Value>().await.expect("json")["rollouts"],
        json!([])
    );

    // The genuine one is accepted; registering it again is idempotent, another manifest
    // for the same version is a conflict.
    let r = h
        .post(
            "/admin/releases",
            Some(ADMIN),
            json!({"manifest": good, "start": false}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = h
        .post(
            "/admin/releases",
            Some(ADMIN),
            json!({"manifest": good, "start": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (other, _, _) = h.release("1.0.0", Some(lenient_policy()));
    let r = h
        .post(
            "/admin/releases",
            Some(ADMIN),
            json!({"manifest": other, "start": false}),
        )
        .await;
    assert_eq!(r.status(), 409);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_artifacts_with_a_wrong_hash_or_size_and_leaves_nothing() {
    let h = H::start().await;
    let (env, name, bytes) = h.release("1.0.0", None);
    let reg = h
        .admin(
            "/admin/releases",
            json!({"manifest": env, "percentage": 100}),
        )
        .await;
    assert_eq!(reg["missingArtifacts"], json!([name.clone()]));
    assert!(reg.get("rollout").is_none(), "deferred: {reg}");
    let release_dir = h.root().join(APP).join("releases").join("1.0.0");
    let only_manifest = vec!["manifest.json".to_string()];

    let mut wrong = bytes.clone();
    wrong[100] ^= 1;
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"more");
    for (what, body, status) in [
        ("same size, other bytes", wrong, 422),
        ("one byte short", bytes[..bytes.len() - 1].to_vec(), 422),
        ("oversize", longer, 413),
        ("empty", vec![], 422),
    ] {
        let r = h.upload("1.0.0", &name, body).await;
        assert_eq!(r.status(), status, "{what}");
        assert_eq!(tree_files(&release_dir), only_manifest, "{what}");
    }
    for (file, status) in [("other-file.tar.gz", 404), (".hidden", 400)] {
        assert_eq!(
            h.upload("1.0.0", file, bytes.clone()).await.status(),
            status,
            "{file}"
        );
    }
    assert_eq!(h.upload("9.9.9", &name, bytes.clone()).await.status(), 404);
    // Starting with an artifact missing is a conflict.
    let r = h
        .post(
            &format!("/admin/rollouts/{APP}/{CHANNEL}/start"),
            Some(ADMIN),
            json!({"version": "1.0.0"}),
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(!h
        .root()
        .join(APP)
        .join(CHANNEL)
        .join("channel.json")
        .exists());

    // The right bytes complete the deferred start.
    let r = h.upload("1.0.0", &name, bytes.clone()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["missingArtifacts"], json!([]));
    assert_eq!(v["rollout"]["status"], "complete");
    assert_eq!(v["rollout"]["rolloutPercentage"], 100.0);
    assert_eq!(std::fs::read(release_dir.join(&name)).expect("read"), bytes);
    assert_eq!(h.channel_state().release.version, Version::new(1, 0, 0));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_read_routes_need_their_tokens() {
    let h = H::start().await;
    let admin_posts = [
        "/admin/releases",
        "/admin/rollouts/evaluate",
        "/admin/rollouts/demo/stable/start",
        "/admin/rollouts/demo/stable/halt",
        "/admin/rollouts/demo/stable/resume",
        "/admin/rollouts/demo/stable/percentage",
        "/admin/rollouts/demo/stable/rollback",
    ];
    for path in admin_posts {
        assert_eq!(h.post(path, None, json!({})).await.status(), 401, "{path}");
        assert_eq!(
            h.post(path, Some(READ), json!({})).await.status(),
            403,
            "{path}"
        );
        assert_eq!(
            h.post(path, Some("nope"), json!({})).await.status(),
            403,
            "{path}"
        );
    }
    let put = |token: Option<&'static str>| {
        let mut rq = h
            .http
            .put(format!(
                "{}/admin/releases/demo/1.0.0/artifacts/a.tar.gz",
                h.url
            ))
            .body("x");
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send()
    };
    assert_eq!(put(None).await.expect("put").status(), 401);
    assert_eq!(put(Some(READ)).await.expect("put").status(), 403);
    for path in [
        "/analytics/rollouts",
        "/analytics/rollout-status?version=1.0.0",
    ] {
        let r = h
            .http
            .get(format!("{}{path}", h.url))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 401, "{path}");
        let r = h
            .http
            .get(format!("{}{path}", h.url))
            .bearer_auth("nope")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = h
        .http
        .get(format!("{}/analytics/rollout-status?version=1.0.0", h.url))
        .bearer_auth(READ)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_health_reports_are_refused_and_a_duplicate_counts_once() {
    let h = H::start().await;
    h.publish("1.0.0", None, Some((100.0, None))).await;
    let url = format!("{}/analytics/health", h.url);
    let good = serde_json::to_value(report(1, "1.0.0", 1, 0, h.clock_now())).expect("json");
    let mut bad_cases = Vec::new();
    for (field, value) in [
        ("machineId", json!("raw machine id")),
        ("version", json!("one")),
        ("app", json!("../etc")),
        ("errors", json!(-1)),
        ("crashes", json!(2_000_000)),
        ("id", json!("not-a-uuid")),
        ("periodEnd", json!("2020-01-01T00:00:00Z")),
    ] {
        let mut b = good.clone();
        b[field] = value;
        bad_cases.push((field.to_string(), serde_json::to_vec(&b).expect("v")));
    }
    bad_cases.push(("not json".into(), b"{nope".to_vec()));
    bad_cases.push(("an array".into(), b"[]".to_vec()));
    for (what, body) in bad_cases {
        let r = h
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 400, "{what}");
    }
    let big = vec![b' '; 17 * 1024];
    let r = h.http.post(&url).body(big).send().await.expect("post");
    assert_eq!(r.status(), 413);

    let first = h.http.post(&url).json(&good).send().await.expect("post");
    assert_eq!(
        first.json::<Value>().await.expect("json"),
        json!({"accepted": true, "duplicate": false})
    );
    let again = h.http.post(&url).json(&good).send().await.expect("post");
    assert_eq!(
        again.json::<Value>().await.expect("json"),
        json!({"accepted": false, "duplicate": true})
    );
    // Another report of the same machine is stored, but it is still one install.
    assert_eq!(h.report(1, "1.0.0", 0, 1).await["accepted"], true);
    let st = h.status("1.0.0").await;
    assert_eq!(st["totalInstalls"], 1);
    assert_eq!(st["installsWithErrors"], 1);
    assert_eq!(st["installsWithCrashes"], 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_the_admin_routes_answer_503_and_bad_key_files_stop_the_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = ServerConfig {
        root: dir.path().join("updates"),
        database: format!("sqlite:{}", dir.path().join("db.sqlite").display()),
        admin_token: Some(ADMIN.into()),
        run_retention: false,
        ..ServerConfig::default()
    };
    let server = App::open(&config)
        .await
        .expect("app")
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    let r = reqwest::Client::new()
        .post(format!("{}/admin/releases", server.url()))
        .bearer_auth(ADMIN)
        .json(&json!({"manifest": {}}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 503);
    server.stop().await.expect("stop");

    let bad = ServerConfig {
        rollout_key: Some(dir.path().join("missing.key")),
        ..config
    };
    let err = App::open(&bad).await.expect_err("missing key file");
    assert!(err.to_string().contains("missing.key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_by_itself_every_interval() {
    let h = H::start_with(|c| c.rollout_interval = std::time::Duration::from_millis(20)).await;
    h.publish("1.0.0", None, Some((100.0, None))).await;
    h.publish("1.1.0", None, Some((10.0, None))).await;
    let mut decisions = h.rollouts().subscribe();
    h.reports(0, 60, "1.1.0", 0, 10).await;
    // Wait on the engine's decision itself (no polling, no sleep).
    let d = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let d = decisions.recv().await.expect("decision");
            if d.action == "halt" {
                break d;
            }
        }
    })
    .await
    .expect("the engine halted the rollout on its own");
    assert_eq!((d.actor.as_str(), d.version.as_str()), ("engine", "1.1.0"));
    assert_eq!(h.channel_state().rollout.status, RolloutStatus::Halted);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn railgun_serve_takes_the_rollout_flags() {
    let dir = tempfile::tempdir().expect("tmp");
    let rollout_key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let rk = dir.path().join("rollout.key");
    rollout_key.write_pem_file(&rk).expect("key");
    let release_key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let pk = dir.path().join("release.pub");
    std::fs::write(&pk, release_key.public_key().to_pem()).expect("pub");
    let server = ChildServer::serve(
        &dir.path().join("updates"),
        &dir.path().join("data"),
        &[
            "--release-public-key".as_ref(),
            pk.as_os_str(),
            "--rollout-interval-secs".as_ref(),
            "3600".as_ref(),
        ],
        &[
            ("RAILGUN_ROLLOUT_KEY_FILE", utf8(&rk)),
            ("RAILGUN_ADMIN_TOKEN", ADMIN),
        ],
    );
    let url = server.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // With both keys configured, a release is verified (a stranger's is refused: 400, not
    // the 503 of an unconfigured server) and the engine answers.
    let http = reqwest::Client::new();
    let stranger = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let env =
        Envelope::sign(railgun_core::trust::PAYLOAD_RELEASE, b"{}", &[&stranger]).expect("sign");
    let r = http
        .post(format!("{url}/admin/releases"))
        .bearer_auth(ADMIN)
        .json(&json!({"manifest": env}))
        .send()
        .await
        .expect("post");
    let status = r.status();
    let evaluated = http
        .post(format!("{url}/admin/rollouts/evaluate"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("post");
    let evaluated_status = evaluated.status();
    drop(server);
    assert_eq!(status, 400);
    assert_eq!(evaluated_status, 200);
}
