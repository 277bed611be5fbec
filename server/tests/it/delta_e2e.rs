//! Delta patches through the real `railgun` binary: `release sign --delta-from` makes a
//! patch per artifact and earlier version, lists it in the signed manifest, and
//! `release publish` puts it beside the artifacts after checking it like an artifact.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use railgun_core::trust::{PublicKey, SignedDocument, TrustedKeys, PAYLOAD_RELEASE};
use railgun_core::update::delta::{apply_patch, read_payload};
use railgun_core::update::{Format, ReleaseManifest};

use crate::delta_update::write_app;
use crate::support::{railgun, railgun_ok, utf8};

fn sign(keys: &Path, version: &str, dist: &Path, extra: &[&str]) -> String {
    let manifest = dist.join("manifest.json");
    let key = keys.join("release.key");
    let mut args = vec![
        "release",
        "sign",
        "--key",
        utf8(&key),
        "--app",
        "rail-gun",
        "--version",
        version,
        "--channel",
        "stable",
        "--artifacts",
        utf8(dist),
        "--out",
        utf8(&manifest),
    ];
    args.extend_from_slice(extra);
    railgun_ok(&args)
}

fn manifest(keys: &Path, path: &Path) -> ReleaseManifest {
    let key = PublicKey::from_file(keys.join("release.pub")).expect("public key");
    let verified = TrustedKeys::single(key)
        .verify(&std::fs::read(path).expect("manifest"), PAYLOAD_RELEASE)
        .expect("verifies");
    ReleaseManifest::from_verified_payload(&verified.payload).expect("manifest")
}

#[test]
fn sign_delta_from_lists_a_bit_exact_patch_and_publish_checks_and_copies_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    railgun_ok(&["keygen", "--out", utf8(&keys), "--name", "release"]);
    let v1 = dir.path().join("v1");
    let v2 = dir.path().join("v2");
    std::fs::create_dir_all(&v1).expect("v1");
    std::fs::create_dir_all(&v2).expect("v2");
    let old = v1.join("rail-gun-0.1.0-linux-x64.tar.gz");
    let new = v2.join("rail-gun-0.2.0-linux-x64.tar.gz");
    write_app(&old, 0);
    write_app(&new, 1);
    sign(&keys, "0.1.0", &v1, &[]);
    let out = sign(&keys, "0.2.0", &v2, &["--delta-from", utf8(&v1)]);
    assert!(
        out.contains("patch from 0.1.0 for linux/x64/tar.gz"),
        "{out}"
    );

    let m = manifest(&keys, &v2.join("manifest.json"));
    assert_eq!(m.patches.len(), 1, "{:?}", m.patches);
    let patch = &m.patches[0];
    assert_eq!(
        patch.file,
        "rail-gun-0.2.0-linux-x64.tar.gz.from-0.1.0.patch"
    );
    assert_eq!(patch.from.to_string(), "0.1.0");
    let full = std::fs::metadata(&new).expect("artifact").len();
    assert!(
        patch.size * 5 < full,
        "patch {} bytes vs artifact {full}",
        patch.size
    );

    // Applying the patch to 0.1.0's tar gives 0.2.0's tar, byte for byte.
    let base = read_payload(&old, Format::TarGz).expect("base");
    let mut result = Vec::new();
    let patch_path = v2.join(&patch.file);
    let patch_bytes = std::fs::read(&patch_path).expect("patch");
    apply_patch(patch, &base, &patch_bytes[..], &mut result).expect("applies");
    let mut expected = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&new).expect("new"))
        .read_to_end(&mut expected)
        .expect("gunzip");
    assert!(result == expected, "the patched tar differs from 0.2.0's");

    // A folder of bare artifacts (no manifest) works too: the version comes from the name.
    std::fs::remove_file(v1.join("manifest.json")).expect("rm");
    let out = sign(&keys, "0.2.0", &v2, &["--delta-from", utf8(&v1)]);
    assert!(out.contains("patch from 0.1.0"), "{out}");
    assert_eq!(
        manifest(&keys, &v2.join("manifest.json")).patches,
        m.patches
    );

    // publish copies the patch beside the artifact…
    let root = dir.path().join("root");
    let publish = |root: &Path| {
        railgun(&[
            "release",
            "publish",
            "--root",
            utf8(root),
            "--manifest",
            utf8(&v2.join("manifest.json")),
            "--key",
            utf8(&keys.join("release.key")),
        ])
    };
    let out = publish(&root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published = root.join("rail-gun/releases/0.2.0").join(&patch.file);
    assert_eq!(
        std::fs::read(&published).expect("published patch"),
        patch_bytes
    );

    // release export verifies the patch like an artifact and carries it.
    let export = |out: &Path| {
        railgun(&[
            "release",
            "export",
            "--root",
            utf8(&root),
            "--out",
            utf8(out),
            "--public-key",
            utf8(&keys.join("release.pub")),
            "--rollout-public-key",
            utf8(&keys.join("release.pub")),
        ])
    };
    let exported = dir.path().join("export");
    let out = export(&exported);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = exported.join("rail-gun/releases/0.2.0").join(&patch.file);
    assert_eq!(std::fs::read(&copied).expect("exported patch"), patch_bytes);
    std::fs::write(&published, b"not the patch").expect("tamper published");
    let out = export(&dir.path().join("export2"));
    assert!(!out.status.success(), "a tampered patch was exported");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&patch.file), "{err}");

    // …and refuses a patch whose bytes differ from the signed manifest.
    let mut tampered = patch_bytes.clone();
    tampered[10] ^= 1;
    std::fs::write(&patch_path, &tampered).expect("tamper");
    let out = publish(&dir.path().join("root2"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match the signed manifest"), "{err}");
}

#[test]
fn delta_from_a_version_that_is_not_older_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    railgun_ok(&["keygen", "--out", utf8(&keys), "--name", "release"]);
    let v1 = dir.path().join("v1");
    let v2 = dir.path().join("v2");
    std::fs::create_dir_all(&v1).expect("v1");
    std::fs::create_dir_all(&v2).expect("v2");
    write_app(&v1.join("rail-gun-0.3.0-linux-x64.tar.gz"), 0);
    write_app(&v2.join("rail-gun-0.2.0-linux-x64.tar.gz"), 1);
    let out = railgun(&[
        "release",
        "sign",
        "--key",
        utf8(&keys.join("release.key")),
        "--app",
        "rail-gun",
        "--version",
        "0.2.0",
        "--artifacts",
        utf8(&v2),
        "--out",
        utf8(&v2.join("manifest.json")),
        "--delta-from",
        utf8(&v1),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0.3.0 is not older than 0.2.0"), "{err}");
}

#[test]
fn release_publish_server_uploads_patches_and_clients_update_by_them() {
    const TOKEN: &str = "admin-token-for-delta";
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    railgun_ok(&["keygen", "--out", utf8(&keys), "--name", "release"]);
    railgun_ok(&["keygen", "--out", utf8(&keys), "--name", "rollout"]);
    let (v1, v2) = (dir.path().join("v1"), dir.path().join("v2"));
    std::fs::create_dir_all(&v1).expect("v1");
    std::fs::create_dir_all(&v2).expect("v2");
    write_app(&v1.join("rail-gun-0.1.0-linux-x64.tar.gz"), 0);
    write_app(&v2.join("rail-gun-0.2.0-linux-x64.tar.gz"), 1);
    sign(&keys, "0.1.0", &v1, &[]);
    sign(&keys, "0.2.0", &v2, &["--delta-from", utf8(&v1)]);
    let patch = manifest(&keys, &v2.join("manifest.json")).patches[0].clone();

    let root = dir.path().join("tree");
    let (rollout_key, release_pub) = (keys.join("rollout.key"), keys.join("release.pub"));
    let serve = crate::support::ChildServer::serve(
        &root,
        &dir.path().join("data"),
        &[
            "--rollout-key".as_ref(),
            rollout_key.as_os_str(),
            "--release-public-key".as_ref(),
            release_pub.as_os_str(),
        ],
        &[("RAILGUN_ADMIN_TOKEN", TOKEN)],
    );
    let publish = |dist: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_railgun"))
            .args(["release", "publish", "--server", &serve.url, "--manifest"])
            .arg(dist.join("manifest.json"))
            .args(["--percentage", "100"])
            .env("RAILGUN_ADMIN_TOKEN", TOKEN)
            .output()
            .expect("publish");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let update = || {
        let out = railgun_ok(&[
            "update",
            "--url",
            &serve.url,
            "--app",
            "rail-gun",
            "--public-key",
            utf8(&release_pub),
            "--rollout-public-key",
            utf8(&keys.join("rollout.pub")),
            "--platform",
            "linux",
            "--arch",
            "x64",
            "--install-root",
            utf8(&dir.path().join("install")),
            "--state",
            utf8(&dir.path().join("state")),
            "--json",
        ]);
        serde_json::from_str::<serde_json::Value>(&out).expect("json")
    };

    publish(&v1);
    assert_eq!(update()["version"], "0.1.0");
    // The patch is uploaded like an artifact, checked against the signed manifest.
    let out = publish(&v2);
    assert!(out.contains(&format!("uploaded {}", patch.file)), "{out}");
    let stored = root.join("rail-gun/releases/0.2.0").join(&patch.file);
    assert_eq!(
        std::fs::read(&stored).expect("stored patch"),
        std::fs::read(v2.join(&patch.file)).expect("patch")
    );
    let json = update();
    assert_eq!(json["version"], "0.2.0", "{json}");
    assert_eq!(json["delta"], true, "{json}");
    assert_eq!(json["downloadedBytes"], patch.size, "{json}");
}
