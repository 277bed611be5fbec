//! The update check end to end: real keys, a real static tree written by the publisher's
//! code, the real `railgun serve` router on a loopback port, and `UpdateClient` over HTTP.
//! Each test is named after the attack or behaviour it pins.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{ScriptedServer, TestServer};
use chrono::{DateTime, Utc};
use railgun_core::clock::ManualClock;
use railgun_core::identity::{bucket, in_percentage};
use railgun_core::store::Store;
use railgun_core::trust::{
    DsseError, Envelope, KeyAlgorithm, PrivateKey, TrustedKeys, PAYLOAD_RELEASE,
};
use railgun_core::update::{
    Arch, ChannelState, CheckError, DecisionReason, Format, Platform, RolloutStatus, UpdateClient,
    UpdateConfig, UpdateKind,
};
use railgun_core::Version;
use railgun_server::release::{self, ArtifactFile, ManifestSpec, PublishOptions};
use sha2::{Digest, Sha256};

const APP: &str = "rail-gun";

fn now() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().expect("time")
}

fn key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key")
}

struct Fixture {
    dir: tempfile::TempDir,
    release_key: PrivateKey,
    rollout_key: PrivateKey,
    server: TestServer,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("tree")).expect("tree");
        let server = TestServer::tree(&dir.path().join("tree")).await;
        Self {
            dir,
            release_key: key(),
            rollout_key: key(),
            server,
        }
    }

    fn tree(&self) -> PathBuf {
        self.dir.path().join("tree")
    }

    fn url(&self) -> String {
        format!("{}/updates", self.server.url())
    }

    /// Writes an artifact and a manifest for `version` signed by `keys`; returns the manifest path.
    fn sign_release(&self, version: &str, keys: &[&PrivateKey]) -> PathBuf {
        let rel = self.dir.path().join(format!("build-{version}"));
        std::fs::create_dir_all(&rel).expect("dir");
        let artifact = rel.join(format!("{APP}-{version}-linux-x64.tar.gz"));
        std::fs::write(&artifact, format!("payload of {version}")).expect("artifact");
        let manifest = release::build_manifest(&ManifestSpec {
            app: APP.into(),
            version: version.parse().expect("version"),
            channel: "stable".into(),
            notes: format!("release {version}"),
            artifacts: vec![ArtifactFile {
                path: artifact,
                platform: Platform::Linux,
                arch: Arch::X64,
                format: Format::TarGz,
            }],
            base_url: None,
            rollout: None,
            released_at: now(),
            sigstore_bundles: None,
        })
        .expect("manifest");
        let env = release::sign_manifest(&manifest, keys).expect("sign");
        let path = rel.join("manifest.json");
        std::fs::write(&path, env.to_json_bytes()).expect("write");
        path
    }

    fn publish(
        &self,
        manifest: &Path,
        percentage: f64,
        status: RolloutStatus,
        fallback: Option<PathBuf>,
        rollback_from: Vec<Version>,
    ) -> ChannelState {
        self.publish_with(
            manifest,
            percentage,
            status,
            fallback,
            rollback_from,
            &self.release_keys(),
        )
    }

    fn publish_with(
        &self,
        manifest: &Path,
        percentage: f64,
        status: RolloutStatus,
        fallback: Option<PathBuf>,
        rollback_from: Vec<Version>,
        release_keys: &TrustedKeys,
    ) -> ChannelState {
        release::publish(&PublishOptions {
            root: self.tree(),
            manifest: manifest.to_path_buf(),
            artifacts_dir: None,
            release_keys: release_keys.clone(),
            rollout_key: &self.rollout_key,
            percentage: Some(percentage),
            stages: Default::default(),
            status,
            fallback,
            rollback_from,
            expires: chrono::Duration::days(7),
            now: now(),
        })
        .expect("publish")
        .state
    }

    fn release_keys(&self) -> TrustedKeys {
        TrustedKeys::single(self.release_key.public_key().clone())
    }

    fn config(&self, current: &str) -> UpdateConfig {
        let mut c = UpdateConfig::new(
            self.url(),
            APP,
            "stable",
            current.parse().expect("version"),
            self.release_keys(),
        );
        c.rollout_keys = Some(TrustedKeys::single(self.rollout_key.public_key().clone()));
        c.platform = Platform::Linux;
        c.arch = Arch::X64;
        c.install_id = Some("install-under-test".into());
        c.request_timeout = Duration::from_secs(5);
        c
    }

    fn client(&self, config: UpdateConfig) -> UpdateClient {
        self.client_with_store(config, Arc::new(Store::open_in_memory().expect("store")))
    }

    fn client_with_store(&self, config: UpdateConfig, store: Arc<Store>) -> UpdateClient {
        UpdateClient::new(config, store)
            .expect("client")
            .with_clock(Arc::new(ManualClock::new(now())))
    }

    fn channel_path(&self) -> PathBuf {
        self.tree().join(APP).join("stable").join("channel.json")
    }

    fn manifest_path(&self, version: &str) -> PathBuf {
        self.tree()
            .join(APP)
            .join("releases")
            .join(version)
            .join("manifest.json")
    }

    /// Re-signs a modified channel state with the rollout key and writes it.
    fn write_state(&self, state: &ChannelState) {
        let env = release::sign_channel_state(state, &[&self.rollout_key]).expect("sign");
        std::fs::write(self.channel_path(), env.to_json_bytes()).expect("write");
    }
}

#[tokio::test]
async fn happy_path_finds_the_signed_artifact() {
    let fx = Fixture::new().await;
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    fx.publish(&m, 100.0, RolloutStatus::Active, None, vec![]);
    let decision = fx.client(fx.config("0.1.0")).check().await.expect("check");
    let update = decision.update.expect("update");
    assert_eq!(update.version, Version::new(0, 2, 0));
    assert_eq!(update.kind, UpdateKind::Rollout);
    assert_eq!(decision.reason, DecisionReason::InRollout);
    // The artifact URL resolves, and its bytes are the ones the manifest signed.
    let body = reqwest::get(update.artifact_url.clone())
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(body.len() as u64, update.artifact.size);
    assert_eq!(hex::encode(Sha256::digest(&body)), update.artifact.sha256);
    // Up to date afterwards.
    let d = fx.client(fx.config("0.2.0")).check().await.expect("check");
    assert!(d.update.is_none());
    assert_eq!(d.reason, DecisionReason::UpToDate);
}

#[tokio::test]
async fn refuses_channel_state_with_bad_signature() {
    let fx = Fixture::new().await;
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    fx.publish(&m, 10.0, RolloutStatus::Active, None, vec![]);
    // Raise the percentage inside the signed payload without re-signing.
    let raw = std::fs::read(fx.channel_path()).expect("read");
    let mut env: Envelope = serde_json::from_slice(&raw).expect("env");
    let payload = base64_decode(&env.payload);
    let tampered = String::from_utf8(payload)
        .expect("utf8")
        .replace("\"percentage\":10.0", "\"percentage\":100.0");
    env.payload = base64_encode(tampered.as_bytes());
    std::fs::write(fx.channel_path(), env.to_json_bytes()).expect("write");
    let err = fx
        .client(fx.config("0.1.0"))
        .check()
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            CheckError::Signature {
                source: DsseError::BadSignature { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_channel_state_signed_by_untrusted_key() {
    let fx = Fixture::new().await;
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    fx.publish(&m, 100.0, RolloutStatus::Active, None, vec![]);
    let mut config = fx.config("0.1.0");
    config.rollout_keys = Some(TrustedKeys::single(key().public_key().clone()));
    let err = fx.client(config).check().await.expect_err("refused");
    assert!(
        matches!(
            err,
            CheckError::Signature {
                source: DsseError::UntrustedKey { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_a_channel_envelope_offered_as_manifest() {
    let fx = Fixture::new().await;
    // One key signs everything (static hosting), so only the payload type tells them apart.
    let mut fx = fx;
    fx.rollout_key = PrivateKey::from_pem(&fx.release_key.to_pem()).expect("same key");
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    let mut state = fx.publish(&m, 100.0, RolloutStatus::Active, None, vec![]);
    // Serve the (validly signed) channel envelope where the manifest should be.
    let channel_bytes = std::fs::read(fx.channel_path()).expect("read");
    std::fs::write(fx.manifest_path("0.2.0"), &channel_bytes).expect("write");
    state.release.manifest_sha256 = hex::encode(Sha256::digest(&channel_bytes));
    state.sequence += 1;
    fx.write_state(&state);
    let err = fx
        .client(fx.config("0.1.0"))
        .check()
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            CheckError::Signature {
                document: "release manifest",
                source: DsseError::WrongPayloadType { .. }
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_expired_channel_state() {
    let fx = Fixture::new().await;
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    fx.publish(&m, 100.0, RolloutStatus::Active, None, vec![]);
    let clock = ManualClock::new(now() + chrono::Duration::days(8));
    let client = fx.client(fx.config("0.1.0")).with_clock(Arc::new(clock));
    let err = client.check().await.expect_err("refused");
    assert!(matches!(err, CheckError::Expired { .. }), "{err}");
}

#[tokio::test]
async fn refuses_sequence_lower_than_seen_even_after_restart() {
    let fx = Fixture::new().await;
    let m1 = fx.sign_release("0.2.0", &[&fx.release_key]);
    fx.publish(&m1, 10.0, RolloutStatus::Active, None, vec![]);
    let old = std::fs::read(fx.channel_path()).expect("old state");
    let m2 = fx.sign_release("0.3.0", &[&fx.release_key]);
    let s2 = fx.publish(&m2, 10.0, RolloutStatus::Active, None, vec![]);
    assert_eq!(s2.sequence, 2);

    let db = fx.dir.path().join("client/railgun.db");
    let store = Arc::new(Store::open(&db).expect("store"));
    fx.client_with_store(fx.config("0.1.0"), store.clone())
        .check()
        .await
        .expect("sequence 2 accepted");
    // A replay of the older, validly signed state.
    std::fs::write(fx.channel_path(), &old).expect("replay");
    let err = fx
        .client_with_store(fx.config("0.1.0"), store)
        .check()
        .await
        .expect_err("refused");
    assert!(
        matches!(err, CheckError::SequenceRollback { seen: 2, got: 1 }),
        "{err}"
    );
    // After a restart (a new store handle on the same file), still refused.
    let store = Arc::new(Store::open(&db).expect("reopen"));
    let err = fx
        .client_with_store(fx.config("0.1.0"), store)
        .check()
        .await
        .expect_err("still refused");
    assert!(matches!(err, CheckError::SequenceRollback { .. }), "{err}");
}

#[tokio::test]
async fn refuses_substituted_manifest_mix_and_match() {
    let fx = Fixture::new().await;
    let old = fx.sign_release("0.1.5", &[&fx.release_key]);
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    fx.publish(&m, 100.0, RolloutStatus::Active, None, vec![]);
    // A validly signed, but different, manifest served in its place.
    std::fs::copy(&old, fx.manifest_path("0.2.0")).expect("swap");
    let err = fx
        .client(fx.config("0.1.0"))
        .check()
        .await
        .expect_err("refused");
    assert!(
        matches!(err, CheckError::ManifestDigestMismatch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_a_manifest_of_another_version_than_the_state_names() {
    let fx = Fixture::new().await;
    let old = fx.sign_release("0.1.5", &[&fx.release_key]);
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    let mut state = fx.publish(&m, 100.0, RolloutStatus::Active, None, vec![]);
    let old_bytes = std::fs::read(&old).expect("old");
    std::fs::write(fx.manifest_path("0.2.0"), &old_bytes).expect("swap");
    state.release.manifest_sha256 = hex::encode(Sha256::digest(&old_bytes));
    state.sequence += 1;
    fx.write_state(&state);
    let err = fx
        .client(fx.config("0.1.0"))
        .check()
        .await
        .expect_err("refused");
    assert!(matches!(err, CheckError::ManifestMismatch { .. }), "{err}");
}

#[tokio::test]
async fn downgrade_refused_and_rollback_only_via_rollback_from() {
    let fx = Fixture::new().await;
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    fx.publish(&m, 100.0, RolloutStatus::Active, None, vec![]);
    let d = fx.client(fx.config("0.3.0")).check().await.expect("check");
    assert!(d.update.is_none(), "never a lower version");
    assert_eq!(d.reason, DecisionReason::NewerInstalled);

    fx.publish(
        &m,
        100.0,
        RolloutStatus::Active,
        None,
        vec![Version::new(0, 3, 0)],
    );
    let d = fx.client(fx.config("0.3.0")).check().await.expect("check");
    let u = d.update.expect("signed rollback");
    assert_eq!(u.version, Version::new(0, 2, 0));
    assert_eq!(u.kind, UpdateKind::Rollback);
    // Other installed versions are not moved down.
    let d = fx.client(fx.config("0.4.0")).check().await.expect("check");
    assert!(d.update.is_none());
}

#[tokio::test]
async fn halted_rollout_gives_the_fallback() {
    let fx = Fixture::new().await;
    let fallback = fx.sign_release("0.1.1", &[&fx.release_key]);
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    fx.publish(&m, 50.0, RolloutStatus::Halted, Some(fallback), vec![]);
    let d = fx.client(fx.config("0.1.0")).check().await.expect("check");
    let u = d.update.expect("fallback");
    assert_eq!(u.version, Version::new(0, 1, 1));
    assert_eq!(u.kind, UpdateKind::Fallback);
    assert_eq!(d.reason, DecisionReason::Fallback);
}

#[tokio::test]
async fn raising_the_percentage_never_drops_an_install() {
    let fx = Fixture::new().await;
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    let ids: Vec<String> = (0..120).map(|i| format!("install-{i}")).collect();
    let mut before: Vec<bool> = vec![false; ids.len()];
    for pct in [10.0, 25.0, 50.0, 100.0] {
        fx.publish(&m, pct, RolloutStatus::Active, None, vec![]);
        let mut now_in = Vec::new();
        for id in &ids {
            let mut c = fx.config("0.1.0");
            c.install_id = Some(id.clone());
            let d = fx.client(c).check().await.expect("check");
            let inside = d.update.is_some();
            assert_eq!(
                inside,
                in_percentage(bucket("rail-gun:stable:0.2.0", id), pct),
                "decision follows the shared bucket"
            );
            now_in.push(inside);
        }
        for (was, is) in before.iter().zip(&now_in) {
            assert!(!was || *is, "an install dropped out at {pct} %");
        }
        before = now_in;
    }
    assert!(before.iter().all(|x| *x));
}

#[tokio::test]
async fn two_of_three_threshold() {
    let fx = Fixture::new().await;
    let (a, b, c) = (key(), key(), key());
    let trusted = TrustedKeys::new(
        vec![
            a.public_key().clone(),
            b.public_key().clone(),
            c.public_key().clone(),
        ],
        2,
    )
    .expect("2-of-3");
    let m = fx.sign_release("0.2.0", &[&a, &c]);
    fx.publish_with(&m, 100.0, RolloutStatus::Active, None, vec![], &trusted);
    let mut config = fx.config("0.1.0");
    config.release_keys = trusted.clone();
    fx.client(config.clone())
        .check()
        .await
        .expect("two signatures suffice");

    let only_one = fx.sign_release("0.3.0", &[&b]);
    let one_key = TrustedKeys::single(b.public_key().clone());
    fx.publish_with(
        &only_one,
        100.0,
        RolloutStatus::Active,
        None,
        vec![],
        &one_key,
    );
    let err = fx
        .client(config)
        .check()
        .await
        .expect_err("one is not enough");
    assert!(
        matches!(
            err,
            CheckError::Signature {
                source: DsseError::ThresholdNotMet {
                    valid: 1,
                    threshold: 2
                },
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn rotated_keys_old_and_new_both_verify() {
    let fx = Fixture::new().await;
    let (old, new) = (key(), key());
    let both = TrustedKeys::new(vec![old.public_key().clone(), new.public_key().clone()], 1)
        .expect("rotation");
    let m_old = fx.sign_release("0.2.0", &[&old]);
    fx.publish_with(&m_old, 100.0, RolloutStatus::Active, None, vec![], &both);
    let mut config = fx.config("0.1.0");
    config.release_keys = both.clone();
    fx.client(config.clone()).check().await.expect("old key");
    let m_new = fx.sign_release("0.3.0", &[&new]);
    fx.publish_with(&m_new, 100.0, RolloutStatus::Active, None, vec![], &both);
    let d = fx.client(config).check().await.expect("new key");
    assert_eq!(d.update.expect("update").version, Version::new(0, 3, 0));
    // A client that already dropped the old key refuses what only the old key signed.
    fx.publish_with(&m_old, 100.0, RolloutStatus::Active, None, vec![], &both);
    let mut only_new = fx.config("0.1.0");
    only_new.release_keys = TrustedKeys::single(new.public_key().clone());
    assert!(fx.client(only_new).check().await.is_err());
}

#[tokio::test]
async fn refuses_another_apps_channel_state() {
    let fx = Fixture::new().await;
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    let mut state = fx.publish(&m, 100.0, RolloutStatus::Active, None, vec![]);
    state.app = "other-app".into();
    state.sequence += 1;
    fx.write_state(&state);
    let err = fx
        .client(fx.config("0.1.0"))
        .check()
        .await
        .expect_err("refused");
    assert!(matches!(err, CheckError::WrongChannel { .. }), "{err}");
}

#[tokio::test]
async fn malformed_json_and_absurd_sizes_are_errors_not_panics() {
    let fx = Fixture::new().await;
    let m = fx.sign_release("0.2.0", &[&fx.release_key]);
    let mut state = fx.publish(&m, 100.0, RolloutStatus::Active, None, vec![]);
    let client = fx.client(fx.config("0.1.0"));

    for garbage in [
        &b"{not json"[..],
        b"",
        b"[]",
        b"{\"payloadType\":[1,2]}",
        &[0xff, 0xfe, 0x00],
    ] {
        std::fs::write(fx.channel_path(), garbage).expect("write");
        let err = client.check().await.expect_err("garbage refused");
        assert!(matches!(err, CheckError::Signature { .. }), "{err}");
    }
    // A channel state above the 1 MiB limit is cut off, not buffered.
    std::fs::write(fx.channel_path(), vec![b' '; 3 * 1024 * 1024]).expect("write");
    let err = client.check().await.expect_err("too large");
    assert!(matches!(err, CheckError::TooLarge { .. }), "{err}");

    // A correctly signed manifest with an absurd artifact size is refused after verification.
    let payload = serde_json::json!({
        "schema": 1, "app": APP, "version": "0.2.0", "channel": "stable",
        "releasedAt": "2026-06-01T12:00:00Z", "notes": "",
        "artifacts": [{"platform": "linux", "arch": "x64", "format": "tar.gz",
            "url": "a.tar.gz", "size": 1_000_000_000_000_000u64, "sha256": "a".repeat(64)}]
    });
    let env = Envelope::sign(
        PAYLOAD_RELEASE,
        &serde_json::to_vec(&payload).expect("json"),
        &[&fx.release_key],
    )
    .expect("sign");
    let bytes = env.to_json_bytes();
    std::fs::write(fx.manifest_path("0.2.0"), &bytes).expect("write");
    state.release.manifest_sha256 = hex::encode(Sha256::digest(&bytes));
    state.sequence += 10;
    fx.write_state(&state);
    let err = client.check().await.expect_err("absurd size");
    assert!(matches!(err, CheckError::Document(_)), "{err}");
    assert!(err.to_string().contains("size"), "{err}");

    // A size that does not even fit an integer is a parse error naming the field.
    let text = String::from_utf8(serde_json::to_vec(&payload).expect("json"))
        .expect("utf8")
        .replace("1000000000000000", "1e400");
    let env = Envelope::sign(PAYLOAD_RELEASE, text.as_bytes(), &[&fx.release_key]).expect("sign");
    let bytes = env.to_json_bytes();
    std::fs::write(fx.manifest_path("0.2.0"), &bytes).expect("write");
    state.release.manifest_sha256 = hex::encode(Sha256::digest(&bytes));
    state.sequence += 1;
    fx.write_state(&state);
    let err = client.check().await.expect_err("unparseable size");
    assert!(matches!(err, CheckError::Document(_)), "{err}");
}

#[tokio::test]
async fn server_error_and_hanging_server_give_typed_errors_within_the_timeout() {
    use axum::http::StatusCode;
    use axum::routing::get;
    // A server that answers 503 with Retry-After.
    let failing = axum::Router::new().route(
        "/{*path}",
        get(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "120")],
                "down",
            )
        }),
    );
    let s = ScriptedServer::spawn(failing).await;
    let key = key();
    let mut config = UpdateConfig::new(
        s.url(),
        APP,
        "stable",
        Version::new(0, 1, 0),
        TrustedKeys::single(key.public_key().clone()),
    );
    config.install_id = Some("x".into());
    let client = UpdateClient::new(
        config.clone(),
        Arc::new(Store::open_in_memory().expect("store")),
    )
    .expect("client");
    let err = client.check().await.expect_err("503");
    assert!(
        matches!(
            err,
            CheckError::HttpStatus {
                status: 503,
                retry_after: Some(120),
                ..
            }
        ),
        "{err}"
    );

    // A server that accepts the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    config.url = format!("http://{addr}");
    config.request_timeout = Duration::from_millis(300);
    let client = UpdateClient::new(config, Arc::new(Store::open_in_memory().expect("store")))
        .expect("client");
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), client.check())
        .await
        .expect("the client gives up by itself")
        .expect_err("timeout");
    assert!(matches!(err, CheckError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
