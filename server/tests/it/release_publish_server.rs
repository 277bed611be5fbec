//! `railgun release publish --server` through the real binary, against a receiver that
//! implements the SPEC C release routes on loopback (verifying the envelope and every
//! uploaded byte for real), and end to end against `railgun serve` (the rollout routes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use crate::support::{railgun_ok, utf8, ChildServer, ScriptedServer};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use railgun_core::trust::{PublicKey, SignedDocument, TrustedKeys, PAYLOAD_RELEASE};
use railgun_core::update::ReleaseManifest;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TOKEN: &str = "admin-token-for-tests";

/// Runs `railgun` with `RAILGUN_ADMIN_TOKEN` set to `token` (unset when `None`).
async fn railgun(args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_railgun"));
    cmd.args(args).env_remove("RAILGUN_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("RAILGUN_ADMIN_TOKEN", t);
    }
    cmd.output().await.expect("run railgun")
}

/// Keys and a signed release of two artifacts.
struct Release {
    dir: tempfile::TempDir,
}

impl Release {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let r = Self { dir };
        railgun_ok(&["keygen", "--out", utf8(&r.keys()), "--name", "release"]);
        railgun_ok(&["keygen", "--out", utf8(&r.keys()), "--name", "rollout"]);
        let dist = r.dist();
        std::fs::create_dir_all(&dist).expect("dist");
        std::fs::write(dist.join("rail-gun-0.2.0-linux-x64.tar.gz"), b"linux build").expect("a");
        std::fs::write(dist.join("rail-gun-0.2.0-darwin-arm64.zip"), b"mac build").expect("b");
        railgun_ok(&[
            "release",
            "sign",
            "--key",
            utf8(&r.keys().join("release.key")),
            "--app",
            "rail-gun",
            "--version",
            "0.2.0",
            "--channel",
            "stable",
            "--artifacts",
            utf8(&dist),
            "--out",
            utf8(&r.manifest()),
        ]);
        r
    }
    fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }
    fn dist(&self) -> PathBuf {
        self.dir.path().join("dist")
    }
    fn manifest(&self) -> PathBuf {
        self.dist().join("manifest.json")
    }
}

/// What the receiver saw.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    CreateRelease(Value),
    Upload { path: String, bytes: Vec<u8> },
    Start { path: String, body: Value },
}

#[derive(Default)]
struct Contract {
    keys: Option<TrustedKeys>,
    manifest: Option<ReleaseManifest>,
    uploaded: BTreeMap<String, Vec<u8>>,
    /// When set, answered as `missingArtifacts` instead of the truth (a hostile server).
    missing_override: Option<Vec<String>>,
    calls: Vec<Call>,
}

type Shared = Arc<Mutex<Contract>>;

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

fn missing(c: &Contract) -> Vec<String> {
    if let Some(m) = &c.missing_override {
        return m.clone();
    }
    c.manifest
        .as_ref()
        .map(|m| {
            m.artifacts
                .iter()
                .map(|a| a.url.clone())
                .filter(|u| !u.contains("://") && !c.uploaded.contains_key(u))
                .collect()
        })
        .unwrap_or_default()
}

async fn create_release(
    State(s): State<Shared>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&h) {
        return error(StatusCode::UNAUTHORIZED, "admin token required");
    }
    let mut c = s.lock().expect("lock");
    c.calls.push(Call::CreateRelease(body.clone()));
    let envelope = serde_json::to_vec(&body["manifest"]).expect("envelope");
    let keys = c.keys.clone().expect("keys");
    let verified = match keys.verify(&envelope, PAYLOAD_RELEASE) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let m = ReleaseManifest::from_verified_payload(&verified.payload).expect("manifest");
    let answer = json!({"app": m.app, "channel": m.channel, "version": m.version.to_string()});
    c.manifest = Some(m);
    let mut answer = answer;
    answer["missingArtifacts"] = json!(missing(&c));
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn upload(
    State(s): State<Shared>,
    h: HeaderMap,
    UrlPath((app, version, file)): UrlPath<(String, String, String)>,
    bytes: Bytes,
) -> Response {
    if !authorized(&h) {
        return error(StatusCode::UNAUTHORIZED, "admin token required");
    }
    let mut c = s.lock().expect("lock");
    c.calls.push(Call::Upload {
        path: format!("{app}/{version}/{file}"),
        bytes: bytes.to_vec(),
    });
    let Some(a) = c
        .manifest
        .as_ref()
        .and_then(|m| m.artifacts.iter().find(|a| a.url == file))
        .cloned()
    else {
        return error(StatusCode::NOT_FOUND, "no such artifact");
    };
    if bytes.len() as u64 != a.size || hex::encode(Sha256::digest(&bytes)) != a.sha256 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "does not match the manifest",
        );
    }
    c.uploaded.insert(file, bytes.to_vec());
    Json(json!({"stored": true})).into_response()
}

async fn start(
    State(s): State<Shared>,
    h: HeaderMap,
    UrlPath((app, channel)): UrlPath<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&h) {
        return error(StatusCode::UNAUTHORIZED, "admin token required");
    }
    let mut c = s.lock().expect("lock");
    c.calls.push(Call::Start {
        path: format!("{app}/{channel}"),
        body: body.clone(),
    });
    let still = missing(&Contract {
        missing_override: None,
        keys: None,
        manifest: c.manifest.clone(),
        uploaded: c.uploaded.clone(),
        calls: vec![],
    });
    if !still.is_empty() {
        return error(
            StatusCode::CONFLICT,
            &format!("artifacts missing: {still:?}"),
        );
    }
    Json(json!({
        "app": app, "channel": channel, "version": body["version"],
        "rolloutPercentage": body.get("percentage").cloned().unwrap_or(json!(10.0)),
        "status": "active", "totalInstalls": 0, "errorRate": 0.0, "crashRate": 0.0,
        "healthScore": 100.0, "fallbackVersion": body.get("fallbackVersion"), "decisions": [],
    }))
    .into_response()
}

async fn contract(
    release_pub: &Path,
    missing_override: Option<Vec<String>>,
) -> (ScriptedServer, Shared) {
    let key = PublicKey::from_file(release_pub).expect("pub");
    let state: Shared = Arc::new(Mutex::new(Contract {
        keys: Some(TrustedKeys::single(key)),
        missing_override,
        ..Contract::default()
    }));
    let router = Router::new()
        .route("/admin/releases", post(create_release))
        .route(
            "/admin/releases/{app}/{version}/artifacts/{file}",
            put(upload),
        )
        .route("/admin/rollouts/{app}/{channel}/start", post(start))
        .with_state(state.clone());
    let server = ScriptedServer::spawn(router).await;
    (server, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_uploads_missing_artifacts_then_starts() {
    let r = Release::new();
    let (server, state) = contract(&r.keys().join("release.pub"), None).await;
    let url = server.url();
    let out = railgun(
        &[
            "release",
            "publish",
            "--server",
            &url,
            "--manifest",
            utf8(&r.manifest()),
            "--percentage",
            "25",
            "--fallback-version",
            "0.1.0",
        ],
        Some(TOKEN),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("uploaded rail-gun-0.2.0-linux-x64.tar.gz"),
        "{stdout}"
    );
    assert!(stdout.contains("rollout active at 25 %"), "{stdout}");
    assert!(!stdout.contains(TOKEN) && !String::from_utf8_lossy(&out.stderr).contains(TOKEN));

    let calls = state.lock().expect("lock").calls.clone();
    assert_eq!(calls.len(), 4, "{calls:?}");
    let Call::CreateRelease(body) = &calls[0] else {
        panic!("first call: {:?}", calls[0]);
    };
    assert_eq!(body["start"], false);
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(r.manifest()).expect("manifest")).expect("json");
    assert_eq!(body["manifest"], on_disk, "the envelope is sent as signed");
    let mut uploads: Vec<(String, Vec<u8>)> = calls[1..3]
        .iter()
        .map(|call| match call {
            Call::Upload { path, bytes } => (path.clone(), bytes.clone()),
            other => panic!("expected an upload: {other:?}"),
        })
        .collect();
    uploads.sort();
    assert_eq!(
        uploads,
        vec![
            (
                "rail-gun/0.2.0/rail-gun-0.2.0-darwin-arm64.zip".into(),
                b"mac build".to_vec()
            ),
            (
                "rail-gun/0.2.0/rail-gun-0.2.0-linux-x64.tar.gz".into(),
                b"linux build".to_vec()
            ),
        ]
    );
    assert_eq!(
        calls[3],
        Call::Start {
            path: "rail-gun/stable".into(),
            body: json!({"version": "0.2.0", "percentage": 25.0, "fallbackVersion": "0.1.0"}),
        }
    );
    server.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_stop_before_anything_starts() {
    let r = Release::new();
    let args = |url: &str| {
        vec![
            "release".to_string(),
            "publish".into(),
            "--server".into(),
            url.to_string(),
            "--manifest".into(),
            utf8(&r.manifest()).to_string(),
        ]
    };

    // No token in the environment: nothing is sent.
    let (server, state) = contract(&r.keys().join("release.pub"), None).await;
    let a = args(&server.url());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = railgun(&a, None).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RAILGUN_ADMIN_TOKEN"));
    assert!(state.lock().expect("lock").calls.is_empty());

    // A wrong token: the server's refusal, and no upload or start after it.
    let out = railgun(&a, Some("wrong")).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("POST /admin/releases: server answered 401: admin token required"),
        "{stderr}"
    );
    assert!(state.lock().expect("lock").calls.is_empty());
    server.stop().await.expect("stop");

    // A hostile server asking for a path outside the artifacts folder gets nothing.
    let (server, state) = contract(
        &r.keys().join("release.pub"),
        Some(vec!["../keys/release.key".into()]),
    )
    .await;
    let a = args(&server.url());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = railgun(&a, Some(TOKEN)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a plain file name"));
    assert_eq!(
        state.lock().expect("lock").calls.len(),
        1,
        "no upload, no start"
    );
    server.stop().await.expect("stop");

    // A file the server needs that is not in --artifacts: named, and nothing started.
    let (server, state) = contract(
        &r.keys().join("release.pub"),
        Some(vec!["rail-gun-0.2.0-win32-x64.exe".into()]),
    )
    .await;
    let a = args(&server.url());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = railgun(&a, Some(TOKEN)).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rail-gun-0.2.0-win32-x64.exe"), "{stderr}");
    assert_eq!(state.lock().expect("lock").calls.len(), 1);
    server.stop().await.expect("stop");

    // Artifacts bytes that differ from the manifest: the server's 422 stops the publish.
    let (server, state) = contract(&r.keys().join("release.pub"), None).await;
    let other = r.dir.path().join("other");
    std::fs::create_dir_all(&other).expect("dir");
    std::fs::write(
        other.join("rail-gun-0.2.0-linux-x64.tar.gz"),
        b"tampered!!!",
    )
    .expect("a");
    std::fs::write(other.join("rail-gun-0.2.0-darwin-arm64.zip"), b"tampered!").expect("b");
    let mut a = args(&server.url());
    a.extend(["--artifacts".into(), utf8(&other).to_string()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = railgun(&a, Some(TOKEN)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("422"));
    assert!(!state
        .lock()
        .expect("lock")
        .calls
        .iter()
        .any(|c| matches!(c, Call::Start { .. })));
    server.stop().await.expect("stop");
}

#[test]
fn publish_to_railgun_serve_then_a_client_gets_the_update() {
    let r = Release::new();
    let root = r.dir.path().join("tree");
    let (rollout_key, release_pub) = (r.keys().join("rollout.key"), r.keys().join("release.pub"));
    let serve = ChildServer::serve(
        &root,
        &r.dir.path().join("data"),
        &[
            "--rollout-key".as_ref(),
            rollout_key.as_os_str(),
            "--release-public-key".as_ref(),
            release_pub.as_os_str(),
        ],
        &[("RAILGUN_ADMIN_TOKEN", TOKEN)],
    );
    let url = serve.url.clone();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_railgun"))
        .args(["release", "publish", "--server", &url, "--manifest"])
        .arg(r.manifest())
        .args(["--percentage", "100"])
        .env("RAILGUN_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("publish");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("uploaded rail-gun-0.2.0-linux-x64.tar.gz"),
        "{stdout}"
    );
    assert!(root
        .join("rail-gun/releases/0.2.0/rail-gun-0.2.0-linux-x64.tar.gz")
        .is_file());

    let check = railgun_ok(&[
        "check",
        "--url",
        &url,
        "--app",
        "rail-gun",
        "--public-key",
        utf8(&r.keys().join("release.pub")),
        "--rollout-public-key",
        utf8(&r.keys().join("rollout.pub")),
        "--current-version",
        "0.1.0",
        "--platform",
        "linux",
        "--arch",
        "x64",
        "--state",
        utf8(&r.dir.path().join("client")),
        "--json",
    ]);
    let json: Value = serde_json::from_str(&check).expect("json");
    assert_eq!(json["update"], true, "{json}");
    assert_eq!(json["version"], "0.2.0");

    // Publishing the same release again has nothing left to upload.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_railgun"))
        .args(["release", "publish", "--server", &url, "--manifest"])
        .arg(r.manifest())
        .env("RAILGUN_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("publish");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("uploaded"), "{stdout}");
}
