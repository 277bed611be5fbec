//! End to end: publish 0.1.0 and 0.2.0 as signed tar.gz releases with real keys, serve them
//! with the real `railgun serve` router on loopback, and let the Updater check, download,
//! verify and install; then the `railgun update` / `railgun rollback` binary on the same tree.

use std::fs;
use std::path::Path;
use std::process::Command;
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
use railgun_server::serve::{router, spawn, ServerConfig};
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
        percentage: 100.0,
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
    let server = spawn(
        "127.0.0.1:0".parse().expect("addr"),
        router(&ServerConfig { root: tree.clone() }),
    )
    .await
    .expect("serve");

    // The app runs 0.1.0 from its install root.
    let install = t.path().join("install");
    let root = InstallRoot::new(&install);
    {
        let a = t.path().join("v010.tar.gz");
        tar_gz(&a, "0.1.0");
        railgun_core::update::install::ArchiveInstaller::new(root.clone(), Format::TarGz)
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
    assert_eq!(hex::encode(d.sha256), available.artifact.sha256);
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
    railgun_core::update::install::extract_tar_gz(
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
    railgun_core::update::install::ArchiveInstaller::new(cli_r.clone(), Format::TarGz)
        .install_checked(&t.path().join("v010.tar.gz"), &Version::new(0, 1, 0));
    let pubkey = t.path().join("release.pub");
    fs::write(&pubkey, key.public_key().to_pem()).expect("pub");
    let bin = env!("CARGO_BIN_EXE_railgun");
    let url = server.url();
    let out = tokio::task::spawn_blocking({
        let (cli_root, pubkey, state) =
            (cli_root.clone(), pubkey.clone(), t.path().join("cli-state"));
        move || {
            Command::new(bin)
                .args([
                    "update",
                    "--url",
                    &url,
                    "--app",
                    "demo",
                    "--channel",
                    "stable",
                    "--json",
                    "--install-id",
                    "x",
                ])
                .arg("--public-key")
                .arg(&pubkey)
                .arg("--install-root")
                .arg(&cli_root)
                .arg("--state")
                .arg(&state)
                .output()
                .expect("run railgun update")
        }
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(j["version"], "0.2.0");
    assert_eq!(cli_r.current_version(), Some(Version::new(0, 2, 0)));
    let out = Command::new(bin)
        .args(["rollback", "--install-root"])
        .arg(&cli_root)
        .output()
        .expect("run railgun rollback");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cli_r.current_version(), Some(Version::new(0, 1, 0)));

    server.stop().await.expect("stop");
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
    let server = spawn(
        "127.0.0.1:0".parse().expect("addr"),
        router(&ServerConfig { root: tree.clone() }),
    )
    .await
    .expect("serve");
    let cli_root = t.path().join("cli-install");
    let a = t.path().join("v010.tar.gz");
    tar_gz(&a, "0.1.0");
    railgun_core::update::install::ArchiveInstaller::new(
        InstallRoot::new(&cli_root),
        Format::TarGz,
    )
    .install_checked(&a, &Version::new(0, 1, 0));
    let listing = |p: &Path| {
        let mut v: Vec<String> = walk(p);
        v.sort();
        v
    };
    let before = listing(&cli_root);
    let pubkey = t.path().join("release.pub");
    fs::write(&pubkey, key.public_key().to_pem()).expect("pub");
    let bin = env!("CARGO_BIN_EXE_railgun");
    let url = server.url();
    let state = t.path().join("state");
    let cr = cli_root.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args([
                "update",
                "--url",
                &url,
                "--app",
                "demo",
                "--install-id",
                "x",
            ])
            .arg("--public-key")
            .arg(&pubkey)
            .arg("--install-root")
            .arg(&cr)
            .arg("--state")
            .arg(&state)
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("SHA-256"), "{err}");
    assert_eq!(listing(&cli_root), before);
    server.stop().await.expect("stop");
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

impl InstallChecked for railgun_core::update::install::ArchiveInstaller {
    fn install_checked(&self, a: &Path, v: &Version) {
        use railgun_core::update::Installer;
        self.install(a, v).expect("install");
    }
}
