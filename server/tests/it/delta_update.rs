//! Delta updates on the client, end to end: releases signed with real keys and real zstd
//! patches (`release::delta::add_patches`), published into a tree the real application
//! serves on loopback, and the Updater (and the `railgun update` binary) moving installs
//! from 0.1.0 to 0.2.0. A patch installs exactly what the full artifact installs; every
//! reason not to use it ends in a reported fallback and a correct install.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use railgun_core::store::Store;
use railgun_core::trust::{KeyAlgorithm, PrivateKey, TrustedKeys};
use railgun_core::update::{
    Arch, Artifact, ArtifactVerifier, FallbackReason, Format, InstallMode, InstallRoot, Platform,
    RolloutStatus, UpdateConfig, UpdateDownload, Updater, UpdaterConfig, UpdaterEvent,
};
use railgun_core::Version;
use railgun_server::release::delta::{add_patches, Base};
use railgun_server::release::{
    build_manifest, publish, sign_manifest, ArtifactFile, ManifestSpec, PublishOptions,
};
use sha2::{Digest, Sha256};

use crate::support::{railgun_json, utf8, within, TestServer};

const APP: &str = "rail-gun";

/// Pseudo-random bytes (xorshift), so the payload does not compress away.
pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The files of build `build` of the app: each build rewrites part of the JS bundle and
/// adds an asset; builds 0 and 1 play 0.1.0 and 0.2.0, build 7 another build of 0.1.0.
pub(crate) fn app_files(build: u64) -> Vec<(String, Vec<u8>)> {
    let mut bundle = noise(1, 600_000);
    if build > 0 {
        bundle[1000..3000].copy_from_slice(&noise(9 + build, 2000));
    }
    let mut files = vec![
        ("app/main.js".to_string(), bundle),
        ("app/native.node".to_string(), noise(2, 300_000)),
        ("app/assets/logo.png".to_string(), noise(3, 200_000)),
    ];
    for b in 1..=build.min(3) {
        files.push((format!("app/assets/new-{b}.png"), noise(3 + b, 20_000)));
    }
    files
}

/// Writes build `build` of the app as a tar.gz.
pub(crate) fn write_app(path: &Path, build: u64) {
    let file = fs::File::create(path).expect("create");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in app_files(build) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        tar.append_data(&mut h, name, &data[..]).expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gz");
}

/// An update tree served by the real application, and the key that signs everything.
struct Fixture {
    t: tempfile::TempDir,
    key: PrivateKey,
    tree: PathBuf,
    server: TestServer,
    format: Format,
}

impl Fixture {
    async fn new(format: Format) -> Self {
        let t = tempfile::tempdir().expect("tmp");
        let tree = t.path().join("tree");
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
        let server = TestServer::tree(&tree).await;
        Self {
            t,
            key,
            tree,
            server,
            format,
        }
    }

    /// The artifact of `build` for `version`, built in its own folder.
    fn artifact(&self, version: &str, build: u64) -> ArtifactFile {
        let dir = self.t.path().join(format!("build-{version}-{build}"));
        fs::create_dir_all(&dir).expect("mkdir");
        let path = match self.format {
            Format::TarGz => {
                let p = dir.join(format!("{APP}-{version}-linux-x64.tar.gz"));
                write_app(&p, build);
                p
            }
            _ => {
                let p = dir.join(format!("{APP}-{version}-linux-x64.AppImage"));
                let mut bytes = noise(5, 400_000);
                bytes[100..100 + 64].copy_from_slice(&noise(40 + build, 64));
                bytes.extend_from_slice(&noise(50 + build, 1000 * build as usize));
                fs::write(&p, bytes).expect("write");
                p
            }
        };
        ArtifactFile {
            path,
            platform: Platform::Linux,
            arch: Arch::X64,
            format: self.format,
        }
    }

    /// Signs and publishes `version` (build `build`) at 100 %, with patches from `bases`.
    /// Returns the artifact and the patch file names.
    fn publish(&self, version: &str, build: u64, bases: &[(&str, u64)]) -> (PathBuf, Vec<String>) {
        let art = self.artifact(version, build);
        let mut manifest = build_manifest(&ManifestSpec {
            app: APP.into(),
            version: version.parse().expect("v"),
            channel: "stable".into(),
            notes: String::new(),
            artifacts: vec![art.clone()],
            base_url: None,
            rollout: None,
            released_at: Utc::now(),
            sigstore_bundles: None,
        })
        .expect("manifest");
        let bases: Vec<Base> = bases
            .iter()
            .map(|(v, b)| Base {
                version: v.parse().expect("v"),
                files: vec![self.artifact(v, *b)],
            })
            .collect();
        let (made, skipped) =
            add_patches(&mut manifest, std::slice::from_ref(&art), &bases).expect("patch");
        assert!(skipped.is_empty(), "{skipped:?}");
        let env = sign_manifest(&manifest, &[&self.key]).expect("sign");
        let mpath = art.path.parent().expect("dir").join("manifest.json");
        fs::write(&mpath, env.to_json_bytes()).expect("write");
        publish(&PublishOptions {
            root: self.tree.clone(),
            manifest: mpath,
            artifacts_dir: None,
            release_keys: TrustedKeys::single(self.key.public_key().clone()),
            rollout_key: &self.key,
            percentage: Some(100.0),
            stages: Default::default(),
            status: RolloutStatus::Active,
            fallback: None,
            rollback_from: vec![],
            expires: chrono::Duration::days(7),
            now: Utc::now(),
        })
        .expect("publish");
        (art.path, made.into_iter().map(|m| m.patch.file).collect())
    }

    fn published(&self, version: &str, file: &str) -> PathBuf {
        self.tree
            .join(APP)
            .join("releases")
            .join(version)
            .join(file)
    }

    /// A client named `name` (its own data dir and install root).
    fn client(&self, name: &str) -> Client {
        Client {
            data: self.t.path().join(name).join("data"),
            root: self.t.path().join(name).join("root"),
            url: self.server.url(),
            key: self.key.public_key().clone(),
            format: self.format,
            tweak: None,
            verifier: None,
        }
    }
}

type Tweak = fn(&mut UpdaterConfig);

struct Client {
    data: PathBuf,
    root: PathBuf,
    url: String,
    key: railgun_core::trust::PublicKey,
    format: Format,
    tweak: Option<Tweak>,
    verifier: Option<Arc<dyn ArtifactVerifier>>,
}

impl Client {
    fn installed(&self) -> Option<Version> {
        match self.format {
            Format::TarGz => InstallRoot::new(&self.root).current_version(),
            _ => None,
        }
    }

    /// One check → download → install from `from`, with every event it sent.
    async fn update(&self, from: &str) -> (UpdateDownload, Vec<UpdaterEvent>) {
        let mut update = UpdateConfig::new(
            &self.url,
            APP,
            "stable",
            from.parse().expect("v"),
            TrustedKeys::single(self.key.clone()),
        );
        update.platform = Platform::Linux;
        update.arch = Arch::X64;
        update.formats = vec![self.format];
        update.install_id = Some("install-1".into());
        let store = Arc::new(Store::open(self.data.join("railgun.db")).expect("store"));
        let mut config = UpdaterConfig::new(update, &self.data, &self.root);
        if let Some(t) = self.tweak {
            t(&mut config);
        }
        let updater = Updater::new(config, store).expect("updater");
        updater.set_verifier(self.verifier.clone());
        let mut rx = updater.subscribe();
        within("update", async {
            updater
                .check_for_updates()
                .await
                .expect("check")
                .expect("an update");
            let d = updater.download_update().await.expect("download");
            updater
                .install_update(InstallMode::Now)
                .await
                .expect("install")
                .expect("installed now");
            let mut events = Vec::new();
            while let Ok(e) = rx.try_recv() {
                events.push(e);
            }
            (d, events)
        })
        .await
    }

    /// Every file under the installed version: relative path → SHA-256.
    fn tree(&self) -> BTreeMap<String, String> {
        let dir = match self.format {
            Format::TarGz => self.root.join("current"),
            _ => self.root.join("app.AppImage"),
        };
        digests(&dir)
    }

    /// The kept base file (there is exactly one).
    fn kept_base(&self) -> PathBuf {
        let dir = self.data.join(railgun_core::update::delta::BASE_DIR);
        let files: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("kept base dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.ends_with("base.json"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    }
}

fn digests(path: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if path.is_file() {
        out.insert(
            String::new(),
            hex::encode(Sha256::digest(fs::read(path).expect("read"))),
        );
        return out;
    }
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).expect("dir").flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).expect("rel").display().to_string();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(
                    rel,
                    hex::encode(Sha256::digest(fs::read(&p).expect("read"))),
                );
            }
        }
    }
    walk(path, path, &mut out);
    out
}

/// What a tar.gz holds: relative path → SHA-256.
fn archive_tree(path: &Path) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().expect("tmp");
    let gz = flate2::read::GzDecoder::new(fs::File::open(path).expect("open"));
    tar::Archive::new(gz).unpack(dir.path()).expect("extract");
    digests(dir.path())
}

fn fallbacks(events: &[UpdaterEvent]) -> Vec<FallbackReason> {
    events
        .iter()
        .filter_map(|e| match e {
            UpdaterEvent::UpdateDeltaFallback(f) => Some(f.reason),
            _ => None,
        })
        .collect()
}

fn progress_flags(events: &[UpdaterEvent]) -> Vec<bool> {
    let mut flags: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            UpdaterEvent::DownloadProgress(p) => Some(p.delta),
            _ => None,
        })
        .collect();
    flags.dedup();
    flags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_installs_exactly_what_the_full_artifact_installs() {
    let f = Fixture::new(Format::TarGz).await;
    f.publish("0.1.0", 0, &[]);
    let delta = f.client("delta");
    let mut full = f.client("full");
    full.tweak = Some(|c| c.delta.enabled = false);

    // A manifest without patches works as before: the full artifact, no fallback.
    for c in [&delta, &full] {
        let (d, events) = c.update("0.0.0").await;
        assert!(!d.delta && d.fallback.is_none(), "{d:?}");
        assert_eq!(d.downloaded_bytes, d.full_bytes);
        assert!(fallbacks(&events).is_empty());
        assert_eq!(progress_flags(&events), [false]);
        assert_eq!(c.installed(), Some(Version::new(0, 1, 0)));
    }

    let (artifact, patches) = f.publish("0.2.0", 1, &[("0.1.0", 0)]);
    let patch_size = fs::metadata(f.published("0.2.0", &patches[0]))
        .expect("patch")
        .len();
    let (d, events) = delta.update("0.1.0").await;
    assert!(d.delta, "{d:?}");
    assert_eq!(d.fallback, None);
    assert_eq!(d.downloaded_bytes, patch_size);
    assert_eq!(d.full_bytes, fs::metadata(&artifact).expect("a").len());
    assert!(
        patch_size * 10 < d.full_bytes,
        "{patch_size} vs {}",
        d.full_bytes
    );
    assert!(fallbacks(&events).is_empty());
    assert_eq!(progress_flags(&events), [true]);
    let last = events
        .iter()
        .rev()
        .find_map(|e| match e {
            UpdaterEvent::DownloadProgress(p) => Some(*p),
            _ => None,
        })
        .expect("progress");
    assert_eq!(
        (last.downloaded_bytes, last.full_bytes),
        (patch_size, d.full_bytes)
    );

    let (d, _) = full.update("0.1.0").await;
    assert!(!d.delta && d.fallback.is_none(), "{d:?}");

    // Bit-identical: the delta install, the full install and the published archive.
    let expected = archive_tree(&artifact);
    assert_eq!(expected.len(), 4);
    assert_eq!(delta.tree(), expected);
    assert_eq!(full.tree(), expected);
    assert_eq!(delta.installed(), Some(Version::new(0, 2, 0)));

    // The patched install is the next base: 0.3.0 with a patch from 0.2.0 takes it too.
    f.publish("0.3.0", 2, &[("0.2.0", 1)]);
    let (d, _) = delta.update("0.2.0").await;
    assert!(d.delta && d.fallback.is_none(), "{d:?}");
    assert_eq!(
        delta.tree(),
        archive_tree(&f.artifact("0.3.0", 2).path),
        "0.3.0 from the patched 0.2.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_not_to_use_a_patch_is_reported_and_the_full_artifact_installed() {
    let f = Fixture::new(Format::TarGz).await;
    f.publish("0.1.0", 0, &[]);
    let modified = f.client("modified");
    let mut too_big = f.client("too-big");
    too_big.tweak = Some(|c| c.delta.max_patch_share = 0.001);
    let tampered = f.client("tampered");
    for c in [&modified, &too_big, &tampered] {
        c.update("0.0.0").await;
    }
    // Installed by something else than the updater: no kept base.
    let no_base = f.client("no-base");
    railgun_core::update::installer_for(Format::TarGz, Platform::Linux, &no_base.root)
        .install(&f.artifact("0.1.0", 0).path, &Version::new(0, 1, 0))
        .expect("install 0.1.0");

    let (artifact, patches) = f.publish("0.2.0", 1, &[("0.1.0", 0)]);
    let expected = archive_tree(&artifact);
    let full_bytes = fs::metadata(&artifact).expect("a").len();

    // A locally modified base.
    let kept = modified.kept_base();
    let mut bytes = fs::read(&kept).expect("kept");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&kept, bytes).expect("modify");

    let check = |c: &Client, (d, events): (UpdateDownload, Vec<UpdaterEvent>), want| {
        assert!(!d.delta, "{d:?}");
        let fb = d.fallback.clone().expect("a fallback");
        assert_eq!(fb.reason, want, "{fb:?}");
        assert_eq!(fallbacks(&events), [want]);
        assert_eq!(progress_flags(&events).last(), Some(&false));
        assert_eq!(c.tree(), expected, "{want:?}");
        assert_eq!(c.installed(), Some(Version::new(0, 2, 0)));
        assert!(d.downloaded_bytes >= full_bytes);
        fb
    };
    check(
        &modified,
        modified.update("0.1.0").await,
        FallbackReason::BaseModified,
    );
    let fb = check(
        &too_big,
        too_big.update("0.1.0").await,
        FallbackReason::PatchTooLarge,
    );
    assert_eq!(fb.full_bytes, full_bytes);
    assert_eq!(fb.from, "0.1.0");
    check(
        &no_base,
        no_base.update("0.1.0").await,
        FallbackReason::NoBase,
    );

    // A tampered patch is refused by its signed digest before anything is applied: the
    // reason is the download's (a patch applied would have failed as patch-corrupt or
    // result-mismatch).
    let served = f.published("0.2.0", &patches[0]);
    let mut bytes = fs::read(&served).expect("patch");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&served, bytes).expect("tamper");
    check(
        &tampered,
        tampered.update("0.1.0").await,
        FallbackReason::PatchDigestMismatch,
    );
    let staging = tampered.data.join("staging").join("0.2.0");
    assert!(!staging.exists(), "staging left behind: {staging:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_for_another_build_of_the_installed_version_is_not_applied() {
    let f = Fixture::new(Format::TarGz).await;
    f.publish("0.1.0", 0, &[]);
    let c = f.client("c");
    c.update("0.0.0").await;
    // 0.2.0's patch was made from another build of 0.1.0 (build 7).
    let (artifact, _) = f.publish("0.2.0", 1, &[("0.1.0", 7)]);
    let (d, events) = c.update("0.1.0").await;
    assert_eq!(
        d.fallback.as_ref().map(|f| f.reason),
        Some(FallbackReason::BaseMismatch),
        "{d:?}"
    );
    assert_eq!(fallbacks(&events), [FallbackReason::BaseMismatch]);
    assert_eq!(c.tree(), archive_tree(&artifact));
}

/// A verifier that accepts and records the digest it was shown (the Sigstore hook).
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<String>>,
}

impl ArtifactVerifier for Recorder {
    fn verify(&self, _: &Artifact, sha256: &[u8; 32], _: Option<&[u8]>) -> Result<(), String> {
        self.seen.lock().expect("lock").push(hex::encode(sha256));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_sees_the_artifact_digest_and_a_tar_patch_never_bypasses_it() {
    // AppImage: the patch produces the artifact's own bytes, so the verifier is shown the
    // artifact's digest exactly as after a full download.
    let f = Fixture::new(Format::AppImage).await;
    f.publish("0.1.0", 0, &[]);
    let mut c = f.client("appimage");
    let recorder = Arc::new(Recorder::default());
    c.verifier = Some(recorder.clone());
    c.update("0.0.0").await;
    let (artifact, _) = f.publish("0.2.0", 1, &[("0.1.0", 0)]);
    let (d, _) = c.update("0.1.0").await;
    assert!(d.delta, "{d:?}");
    let digest = hex::encode(Sha256::digest(fs::read(&artifact).expect("a")));
    assert_eq!(recorder.seen.lock().expect("lock").last(), Some(&digest));
    assert_eq!(c.tree(), digests(&artifact));

    // tar.gz: the patch produces the tar, which no bundle of the tar.gz signs: a verifier
    // that checks digests makes the update take the full artifact, and sees its digest.
    let f = Fixture::new(Format::TarGz).await;
    f.publish("0.1.0", 0, &[]);
    let mut c = f.client("targz");
    let recorder = Arc::new(Recorder::default());
    c.verifier = Some(recorder.clone());
    c.update("0.0.0").await;
    let (artifact, _) = f.publish("0.2.0", 1, &[("0.1.0", 0)]);
    let (d, events) = c.update("0.1.0").await;
    assert_eq!(fallbacks(&events), [FallbackReason::SigstoreNeedsArtifact]);
    assert!(!d.delta);
    let digest = hex::encode(Sha256::digest(fs::read(&artifact).expect("a")));
    assert_eq!(recorder.seen.lock().expect("lock").last(), Some(&digest));
    assert_eq!(c.tree(), archive_tree(&artifact));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn railgun_update_json_reports_the_patch_and_the_fallback() {
    let f = Fixture::new(Format::TarGz).await;
    f.publish("0.1.0", 0, &[]);
    let pubkey = f.t.path().join("release.pub");
    fs::write(&pubkey, f.key.public_key().to_pem()).expect("pub");
    let url = f.server.url();
    let run = |name: &str| cli_update(f.t.path().join(name), url.clone(), pubkey.clone());
    let (v, _) = run("a").await;
    assert_eq!(v["version"], "0.1.0");
    assert_eq!(v["delta"], false);
    assert!(v["deltaFallback"].is_null(), "{v}");
    let (v, state_b) = run("b").await;
    assert_eq!(v["version"], "0.1.0");

    let (artifact, patches) = f.publish("0.2.0", 1, &[("0.1.0", 0)]);
    let patch_size = fs::metadata(f.published("0.2.0", &patches[0]))
        .expect("patch")
        .len();
    let full = fs::metadata(&artifact).expect("a").len();
    let (v, _) = run("a").await;
    assert_eq!(v["version"], "0.2.0", "{v}");
    assert_eq!(v["delta"], true, "{v}");
    assert_eq!(v["downloadedBytes"], patch_size, "{v}");
    assert_eq!(v["fullBytes"], full, "{v}");

    // b's kept base is modified: the same update, reported as a fallback.
    let kept = state_b.join(railgun_core::update::delta::BASE_DIR);
    let file = fs::read_dir(&kept)
        .expect("kept")
        .flatten()
        .map(|e| e.path())
        .find(|p| !p.ends_with("base.json"))
        .expect("a kept file");
    fs::write(&file, b"not the artifact").expect("modify");
    let (v, _) = run("b").await;
    assert_eq!(v["version"], "0.2.0", "{v}");
    assert_eq!(v["delta"], false, "{v}");
    assert_eq!(v["deltaFallback"]["reason"], "base-modified", "{v}");
    assert_eq!(v["downloadedBytes"], full, "{v}");
}

/// `railgun update --json` of the install in `dir` (`state/`, `root/`); its JSON and state.
async fn cli_update(dir: PathBuf, url: String, pubkey: PathBuf) -> (serde_json::Value, PathBuf) {
    let (state, root) = (dir.join("state"), dir.join("root"));
    let v = railgun_json(&[
        "update",
        "--url",
        &url,
        "--app",
        APP,
        "--json",
        "--platform",
        "linux",
        "--arch",
        "x64",
        "--public-key",
        utf8(&pubkey),
        "--install-root",
        utf8(&root),
        "--state",
        utf8(&state),
    ])
    .await;
    (v, state)
}
