//! End to end: publish 0.1.0 and 0.2.0 as signed tar.gz releases with real keys, serve them
//! with the real `railgun serve` application on loopback, and let the Updater check, download,
//! verify and install; then the `railgun update` / `railgun rollback` binary on the same tree.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use railgun_core::store::Store;
use railgun_core::trust::{KeyAlgorithm, PrivateKey, TrustedKeys};
use railgun_core::update::{
    Arch, Format, InstallMode, InstallRoot, Platform, RolloutStatus, UpdateConfig, Updater,
    UpdaterConfig, UpdaterEvent,
};
use railgun_core::Version;
use railgun_server::release::{
    build_manifest, publish, sign_manifest, ArtifactFile, ManifestSpec, PublishOptions,
};
use railgun_server::serve::{App, ServerConfig};

use crate::support::{
    railgun_async, railgun_json, railgun_ok, utf8, within, ScriptedServer, TestServer,
};
use sha2::{Digest, Sha256};

fn tar_gz(path: &Path, version: &str) {
    let f = fs::File::create(path).expect("create");
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, data) in [
        (
            "bin/app",
            format!("#!/bin/sh\necho {version}\n").into_bytes(),
        ),
        ("VERSION", version.as_bytes().to_vec()),
        ("lib/data.bin", vec![version.len() as u8; 100_000]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        b.append_data(&mut h, name, data.as_slice())
            .expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gz");
}

fn release(dir: &Path, tree: &Path, key: &PrivateKey, version: &str) {
    let work = dir.join(format!("build-{version}"));
    fs::create_dir_all(&work).expect("mkdir");
    let art = work.join(format!("app-{version}-linux-x64.tar.gz"));
    tar_gz(&art, version);
    let manifest = build_manifest(&ManifestSpec {
        app: "demo".into(),
        version: version.parse().expect("v"),
        channel: "stable".into(),
        notes: format!("release {version}"),
        artifacts: vec![ArtifactFile {
            path: art,
            platform: Platform::Linux,
            arch: Arch::X64,
            format: Format::TarGz,
        }],
        base_url: None,
        rollout: None,
        released_at: Utc::now(),
        sigstore_bundles: None,
    })
    .expect("manifest");
    let env = sign_manifest(&manifest, &[key]).expect("sign");
    let mpath = work.join("manifest.json");
    fs::write(&mpath, env.to_json_bytes()).expect("write");
    publish(&PublishOptions {
        root: tree.to_path_buf(),
        manifest: mpath,
        artifacts_dir: None,
        release_keys: TrustedKeys::single(key.public_key().clone()),
        rollout_key: key,
        percentage: Some(100.0),
        stages: Default::default(),
        status: RolloutStatus::Active,
        fallback: None,
        rollback_from: vec![],
        expires: chrono::Duration::days(7),
        now: Utc::now(),
    })
    .expect("publish");
}

fn sha_tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rel in ["bin/app", "VERSION", "lib/data.bin"] {
        let b = fs::read(dir.join(rel)).expect("read");
        out.push((rel.to_string(), hex::encode(Sha256::digest(&b))));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updater_checks_downloads_and_installs_from_the_real_server() {
    let t = tempfile::tempdir().expect("tmp");
    let tree = t.path().join("tree");
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    release(t.path(), &tree, &key, "0.1.0");
    release(t.path(), &tree, &key, "0.2.0");
    let mut server = TestServer::tree(&tree).await;

    // The app runs 0.1.0 from its install root.
    let install = t.path().join("install");
    let root = InstallRoot::new(&install);
    {
        let a = t.path().join("v010.tar.gz");
        tar_gz(&a, "0.1.0");
        railgun_core::update::ArchiveInstaller::new(root.clone(), Format::TarGz)
            .install_checked(&a, &Version::new(0, 1, 0));
    }

    let mut update = UpdateConfig::new(
        server.url(),
        "demo",
        "stable",
        Version::new(0, 1, 0),
        TrustedKeys::single(key.public_key().clone()),
    );
    update.platform = Platform::Linux;
    update.arch = Arch::X64;
    update.install_id = Some("install-1".into());
    let data = t.path().join("data");
    let store = Arc::new(Store::open(data.join("railgun.db")).expect("store"));
    let updater =
        Updater::new(UpdaterConfig::new(update, &data, &install), store).expect("updater");
    let mut events = updater.subscribe();

    let available = updater
        .check_for_updates()
        .await
        .expect("check")
        .expect("update");
    assert_eq!(available.version, Version::new(0, 2, 0));
    let d = updater.download_update().await.expect("download");
    assert_eq!(hex::encode(d.file.sha256), available.artifact.sha256);
    let installed = updater
        .install_update(InstallMode::Now)
        .await
        .expect("install")
        .expect("installed now");
    assert_eq!(installed.version, Version::new(0, 2, 0));
    assert_eq!(installed.previous, Some(Version::new(0, 1, 0)));
    assert_eq!(updater.current_version(), Version::new(0, 2, 0));
    assert_eq!(root.current_version(), Some(Version::new(0, 2, 0)));

    // The installed files are byte for byte those of the published archive.
    let expect = t.path().join("expect");
    fs::create_dir_all(&expect).expect("mkdir");
    railgun_core::update::extract_tar_gz(
        &t.path().join("build-0.2.0/app-0.2.0-linux-x64.tar.gz"),
        &expect,
    )
    .expect("extract");
    assert_eq!(sha_tree(&install.join("current")), sha_tree(&expect));

    // Events, in electron-updater's order.
    let mut names = Vec::new();
    while let Ok(e) = events.try_recv() {
        if !matches!(e, UpdaterEvent::DownloadProgress(_)) {
            names.push(
                serde_json::to_value(&e).expect("json")["event"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
    }
    assert_eq!(
        names,
        [
            "checking-for-update",
            "update-available",
            "update-downloaded"
        ]
    );

    // Now up to date.
    assert!(updater.check_for_updates().await.expect("check").is_none());

    // The CLI: a fresh install root at 0.1.0 updated by `railgun update`, then rolled back.
    let cli_root = t.path().join("cli-install");
    let cli_r = InstallRoot::new(&cli_root);
    railgun_core::update::ArchiveInstaller::new(cli_r.clone(), Format::TarGz)
        .install_checked(&t.path().join("v010.tar.gz"), &Version::new(0, 1, 0));
    let pubkey = t.path().join("release.pub");
    fs::write(&pubkey, key.public_key().to_pem()).expect("pub");
    let state = t.path().join("cli-state");
    let mut args = update_args(&server.url(), &cli_root, &state);
    args.extend(
        [
            "--channel",
            "stable",
            "--json",
            "--public-key",
            utf8(&pubkey),
        ]
        .map(String::from),
    );
    let j = railgun_json(&args).await;
    assert_eq!(j["version"], "0.2.0");
    assert_eq!(cli_r.current_version(), Some(Version::new(0, 2, 0)));
    railgun_ok(&["rollback", "--install-root", utf8(&cli_root)]);
    assert_eq!(cli_r.current_version(), Some(Version::new(0, 1, 0)));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_update_failure_exits_1_and_leaves_the_install_root_untouched() {
    let t = tempfile::tempdir().expect("tmp");
    let tree = t.path().join("tree");
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    release(t.path(), &tree, &key, "0.2.0");
    // Corrupt the published artifact after signing: the hash check must refuse it.
    let art = tree.join("demo/releases/0.2.0/app-0.2.0-linux-x64.tar.gz");
    let mut bytes = fs::read(&art).expect("read");
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&art, bytes).expect("write");
    let mut server = TestServer::tree(&tree).await;
    let cli_root = t.path().join("cli-install");
    let a = t.path().join("v010.tar.gz");
    tar_gz(&a, "0.1.0");
    railgun_core::update::ArchiveInstaller::new(InstallRoot::new(&cli_root), Format::TarGz)
        .install_checked(&a, &Version::new(0, 1, 0));
    let listing = |p: &Path| {
        let mut v: Vec<String> = walk(p);
        v.sort();
        v
    };
    let before = listing(&cli_root);
    let pubkey = t.path().join("release.pub");
    fs::write(&pubkey, key.public_key().to_pem()).expect("pub");
    let state = t.path().join("state");
    let mut args = update_args(&server.url(), &cli_root, &state);
    args.extend(["--public-key", utf8(&pubkey)].map(String::from));
    let out = railgun_async(&args).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("SHA-256"), "{err}");
    assert_eq!(listing(&cli_root), before);
    server.stop().await;
}

fn walk(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).into_iter().flatten().flatten() {
        let path = e.path();
        out.push(path.display().to_string());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(walk(&path));
        }
    }
    out
}

trait InstallChecked {
    fn install_checked(&self, a: &Path, v: &Version);
}

impl InstallChecked for railgun_core::update::ArchiveInstaller {
    fn install_checked(&self, a: &Path, v: &Version) {
        use railgun_core::update::Installer;
        self.install(a, v).expect("install");
    }
}

/// A published 0.2.0 tree, an install root at 0.1.0 and a config for the Updater.
struct Fixture {
    t: tempfile::TempDir,
    key: PrivateKey,
    tree: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().expect("tmp");
    let tree = t.path().join("tree");
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    release(t.path(), &tree, &key, "0.2.0");
    let a = t.path().join("v010.tar.gz");
    tar_gz(&a, "0.1.0");
    railgun_core::update::ArchiveInstaller::new(
        InstallRoot::new(t.path().join("install")),
        Format::TarGz,
    )
    .install_checked(&a, &Version::new(0, 1, 0));
    Fixture { t, key, tree }
}

impl Fixture {
    fn updater(&self, url: &str, data: &str) -> Updater {
        let mut update = UpdateConfig::new(
            url,
            "demo",
            "stable",
            Version::new(0, 1, 0),
            TrustedKeys::single(self.key.public_key().clone()),
        );
        update.platform = Platform::Linux;
        update.arch = Arch::X64;
        update.install_id = Some("install-1".into());
        let data = self.t.path().join(data);
        let store = Arc::new(Store::open(data.join("railgun.db")).expect("store"));
        let mut cfg = UpdaterConfig::new(update, &data, self.t.path().join("install"));
        cfg.download.space_margin = 0;
        Updater::new(cfg, store).expect("updater")
    }

    fn root(&self) -> InstallRoot {
        InstallRoot::new(self.t.path().join("install"))
    }
}

struct Refuse(std::sync::Mutex<Option<[u8; 32]>>);

impl railgun_core::update::ArtifactVerifier for Refuse {
    fn verify(
        &self,
        _artifact: &railgun_core::update::Artifact,
        sha256: &[u8; 32],
        bundle: Option<&[u8]>,
    ) -> Result<(), String> {
        *self.0.lock().expect("lock") = Some(*sha256);
        assert!(bundle.is_none());
        Err("no Sigstore bundle for this artifact".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_refusal_installs_nothing_and_reports_an_error_event() {
    let f = fixture();
    let mut server = TestServer::tree(&f.tree).await;
    let u = f.updater(&server.url(), "data");
    let verifier = Arc::new(Refuse(std::sync::Mutex::new(None)));
    u.set_verifier(Some(verifier.clone()));
    let mut events = u.subscribe();
    let avail = u.check_for_updates().await.expect("check").expect("update");
    let r = u.download_update().await;
    assert!(
        matches!(
            r,
            Err(railgun_core::update::UpdaterError::Verification { .. })
        ),
        "{r:?}"
    );
    let seen = verifier.0.lock().expect("lock").expect("verifier called");
    assert_eq!(hex::encode(seen), avail.artifact.sha256);
    assert!(matches!(
        u.install_update(InstallMode::Now).await,
        Err(railgun_core::update::UpdaterError::InvalidState { .. })
    ));
    assert_eq!(f.root().current_version(), Some(Version::new(0, 1, 0)));
    assert!(!f.t.path().join("data/staging/0.2.0").exists());
    let mut last_error = None;
    while let Ok(e) = events.try_recv() {
        if let UpdaterEvent::Error { code, .. } = e {
            last_error = Some(code);
        }
    }
    assert_eq!(last_error.as_deref(), Some("ERR_UPDATER_VERIFICATION"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_on_quit_waits_for_the_quit() {
    let f = fixture();
    let mut server = TestServer::tree(&f.tree).await;
    let u = f.updater(&server.url(), "data");
    u.check_for_updates().await.expect("check").expect("update");
    u.download_update().await.expect("download");
    assert!(u
        .install_update(InstallMode::OnQuit)
        .await
        .expect("defer")
        .is_none());
    assert_eq!(f.root().current_version(), Some(Version::new(0, 1, 0)));
    let done = u.on_app_quit().await.expect("quit").expect("installed");
    assert_eq!(done.version, Version::new(0, 2, 0));
    assert_eq!(f.root().current_version(), Some(Version::new(0, 2, 0)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/demo/stable/channel.json",
        get(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "120")],
                "busy",
            )
        }),
    );
    let server = ScriptedServer::spawn(app).await;
    let f = fixture();
    let u = f.updater(&server.url(), "data");
    let r = u.check_for_updates().await;
    assert!(
        matches!(
            r,
            Err(railgun_core::update::UpdaterError::Check(
                railgun_core::update::CheckError::HttpStatus {
                    status: 503,
                    retry_after: Some(120),
                    ..
                }
            ))
        ),
        "{r:?}"
    );
    assert_eq!(u.retry_after(), Some(std::time::Duration::from_secs(120)));
    server.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_updaters_on_one_data_dir_the_second_reports_busy() {
    use axum::routing::get;
    let f = fixture();
    let gate = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(tokio::sync::Notify::new());
    let artifact = f
        .tree
        .join("demo/releases/0.2.0/app-0.2.0-linux-x64.tar.gz");
    let (g, e) = (gate.clone(), entered.clone());
    let gated = axum::Router::new()
        .route(
            "/demo/releases/0.2.0/app-0.2.0-linux-x64.tar.gz",
            get(move || {
                let (g, e, artifact) = (g.clone(), e.clone(), artifact.clone());
                async move {
                    e.notify_one();
                    g.notified().await;
                    fs::read(artifact).expect("read")
                }
            }),
        )
        .fallback_service(
            App::open(&ServerConfig {
                root: f.tree.clone(),
                database: format!("sqlite:{}", f.t.path().join("gated.db").display()),
                ..ServerConfig::default()
            })
            .await
            .expect("app")
            .router,
        );
    let server = ScriptedServer::spawn(gated).await;
    let first = f.updater(&server.url(), "data");
    let second = f.updater(&server.url(), "data");
    first
        .check_for_updates()
        .await
        .expect("check")
        .expect("update");
    second
        .check_for_updates()
        .await
        .expect("check")
        .expect("update");
    let f1 = first.clone();
    let task = tokio::spawn(async move { f1.download_update().await });
    within("the first download reaches the server", entered.notified()).await;
    let r = second.download_update().await;
    assert!(
        matches!(
            r,
            Err(railgun_core::update::UpdaterError::Download(
                railgun_core::update::DownloadError::Busy { .. }
            ))
        ),
        "{r:?}"
    );
    gate.notify_one();
    within("the first download", task)
        .await
        .expect("join")
        .expect("first download");
    server.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_check_finds_and_downloads_then_stops() {
    let f = fixture();
    let mut server = TestServer::tree(&f.tree).await;
    let u = f.updater(&server.url(), "data");
    let mut events = u.subscribe();
    u.start_auto_check(std::time::Duration::from_millis(20));
    within("the automatic check downloads 0.2.0", async {
        loop {
            match events.recv().await.expect("event") {
                UpdaterEvent::UpdateDownloaded(info) => {
                    assert_eq!(info.version, "0.2.0");
                    break;
                }
                UpdaterEvent::Error { message, .. } => panic!("{message}"),
                _ => {}
            }
        }
    })
    .await;
    u.stop().await;
    assert_eq!(
        u.state(),
        railgun_core::update::UpdaterState::UpdateDownloaded
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_update_with_sigstore_required_refuses_an_artifact_without_a_bundle() {
    let t = tempfile::tempdir().expect("tmp");
    let tree = t.path().join("tree");
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    release(t.path(), &tree, &key, "0.2.0");
    let mut server = TestServer::tree(&tree).await;
    let cli_root = t.path().join("cli-install");
    let pubkey = t.path().join("release.pub");
    fs::write(&pubkey, key.public_key().to_pem()).expect("pub");
    let state = t.path().join("state");
    let base = update_args(&server.url(), &cli_root, &state);
    let run = |extra: &[&str]| {
        let mut args = base.clone();
        args.extend(
            ["--public-key", utf8(&pubkey)]
                .iter()
                .chain(extra)
                .map(|a| a.to_string()),
        );
        async move { railgun_async(&args).await }
    };
    // `required` without an identity is a usage error, named.
    let out = run(&["--sigstore", "required"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--sigstore-identity"), "{err}");
    // The release names no bundle: `required` refuses it and installs nothing.
    let out = run(&[
        "--sigstore",
        "required",
        "--sigstore-identity-regexp",
        "https://github\\.com/railgun/.*",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("bundle"), "{err}");
    assert!(
        !cli_root.join("current").exists(),
        "nothing may be installed"
    );
    // `if-present` installs it (no bundle named, nothing to check).
    let out = run(&[
        "--sigstore",
        "if-present",
        "--sigstore-identity-regexp",
        "https://github\\.com/railgun/.*",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        InstallRoot::new(&cli_root).current_version(),
        Some(Version::new(0, 2, 0))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_update_threshold_2_refuses_one_key_and_a_release_signed_by_one_of_two() {
    let t = tempfile::tempdir().expect("tmp");
    let tree = t.path().join("tree");
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let other = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
    release(t.path(), &tree, &key, "0.2.0");
    let mut server = TestServer::tree(&tree).await;
    let cli_root = t.path().join("cli-install");
    let (pubkey, other_pub) = (t.path().join("release.pub"), t.path().join("other.pub"));
    fs::write(&pubkey, key.public_key().to_pem()).expect("pub");
    fs::write(&other_pub, other.public_key().to_pem()).expect("pub");
    let state = t.path().join("state");
    let base = update_args(&server.url(), &cli_root, &state);
    let run = |keys: Vec<std::path::PathBuf>, threshold: &str| {
        let mut args = base.clone();
        args.extend(["--threshold", threshold].map(String::from));
        for k in &keys {
            args.extend(["--public-key", utf8(k)].map(String::from));
        }
        // The channel state is signed by the first key alone: the threshold of the
        // release keys is what the manifest must meet.
        args.extend(["--rollout-public-key", utf8(&keys[0])].map(String::from));
        async move { railgun_async(&args).await }
    };
    // One key cannot meet a threshold of 2: refused before any request.
    let out = run(vec![pubkey.clone()], "2").await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("threshold 2 with 1 distinct key(s)"), "{err}");
    // Two trusted release keys, threshold 2, a manifest signed by one of them: refused,
    // nothing installed.
    let out = run(vec![pubkey.clone(), other_pub.clone()], "2").await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("release manifest signature refused"), "{err}");
    assert!(err.contains("2 required"), "{err}");
    assert!(
        !cli_root.join("current").exists(),
        "nothing may be installed: {err}"
    );
    // The same keys with threshold 1 accept it (the refusal was the threshold's).
    let out = run(vec![pubkey, other_pub], "1").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        InstallRoot::new(&cli_root).current_version(),
        Some(Version::new(0, 2, 0))
    );
    server.stop().await;
}

/// `railgun update` of app `demo` from `url` into `root` (install id `x`), before its key
/// flags.
fn update_args(url: &str, root: &Path, state: &Path) -> Vec<String> {
    [
        "update",
        "--url",
        url,
        "--app",
        "demo",
        "--install-id",
        "x",
        "--install-root",
        utf8(root),
        "--state",
        utf8(state),
    ]
    .map(String::from)
    .to_vec()
}
