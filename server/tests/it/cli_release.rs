//! The publisher's workflow through the real `railgun` binary: keygen → release sign →
//! release publish → serve → check, and the check's exit codes.

use crate::support::{railgun, railgun_ok, utf8, ChildServer};

#[test]
fn keygen_sign_publish_serve_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    let out = railgun_ok(&["keygen", "--out", utf8(&keys), "--name", "release"]);
    assert!(out.contains("RAILGUN_UPDATE_PUBLIC_KEY="));
    railgun_ok(&[
        "keygen",
        "--out",
        utf8(&keys),
        "--name",
        "rollout",
        "--algorithm",
        "p256",
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("release.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // keygen never overwrites a key.
    assert!(
        !railgun(&["keygen", "--out", utf8(&keys), "--name", "release"])
            .status
            .success()
    );

    let dist = dir.path().join("dist");
    std::fs::create_dir_all(&dist).expect("dist");
    std::fs::write(dist.join("rail-gun-0.2.0-linux-x64.tar.gz"), b"linux build").expect("a");
    std::fs::write(dist.join("rail-gun-0.2.0-darwin-arm64.zip"), b"mac build").expect("b");
    let manifest = dist.join("manifest.json");
    let out = railgun_ok(&[
        "release",
        "sign",
        "--key",
        utf8(&keys.join("release.key")),
        "--app",
        "rail-gun",
        "--version",
        "0.2.0",
        "--channel",
        "stable",
        "--artifacts",
        utf8(&dist),
        "--out",
        utf8(&manifest),
    ]);
    assert!(out.contains("2 artifact(s)"), "{out}");

    let root = dir.path().join("tree");
    let out = railgun_ok(&[
        "release",
        "publish",
        "--root",
        utf8(&root),
        "--manifest",
        utf8(&manifest),
        "--key",
        utf8(&keys.join("release.key")),
        "--rollout-key",
        utf8(&keys.join("rollout.key")),
        "--percentage",
        "100",
        "--expires",
        "2d",
    ]);
    assert!(out.contains("sequence 1"), "{out}");
    assert!(root
        .join("rail-gun/releases/0.2.0/rail-gun-0.2.0-linux-x64.tar.gz")
        .is_file());
    let out = railgun_ok(&[
        "release",
        "publish",
        "--root",
        utf8(&root),
        "--manifest",
        utf8(&manifest),
        "--key",
        utf8(&keys.join("release.key")),
        "--rollout-key",
        utf8(&keys.join("rollout.key")),
        "--percentage",
        "100",
    ]);
    assert!(out.contains("sequence 2"), "{out}");

    // Its database in the test's dir (it used to land in the working directory).
    let server = ChildServer::serve(&root, &dir.path().join("serve-data"), &[], &[]);
    let url = server.url.clone();
    let state = dir.path().join("client");
    let check = |key: &str| {
        railgun(&[
            "check",
            "--url",
            &url,
            "--app",
            "rail-gun",
            "--channel",
            "stable",
            "--public-key",
            key,
            "--rollout-public-key",
            utf8(&keys.join("rollout.pub")),
            "--current-version",
            "0.1.0",
            "--platform",
            "linux",
            "--arch",
            "x64",
            "--state",
            utf8(&state),
            "--json",
        ])
    };
    let out = check(utf8(&keys.join("release.pub")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["update"], true);
    assert_eq!(json["version"], "0.2.0");
    assert_eq!(json["artifact"]["format"], "tar.gz");
    assert_eq!(json["artifact"]["size"], 11);

    // The base64-of-PEM form of RAILGUN_UPDATE_PUBLIC_KEY works too.
    let pem = std::fs::read_to_string(keys.join("release.pub")).expect("pub");
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(pem)
    };
    assert!(check(&b64).status.success());

    // The wrong key: exit 1 and exactly one line on stderr.
    let out = check(utf8(&keys.join("rollout.pub")));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not signed by any trusted key"), "{stderr}");
}

#[test]
fn publish_refuses_an_artifact_that_differs_from_the_signed_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    railgun_ok(&["keygen", "--out", utf8(&keys)]);
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(&dist).expect("dist");
    let artifact = dist.join("app-1.0.0-linux-x64.tar.gz");
    std::fs::write(&artifact, b"original").expect("a");
    let manifest = dist.join("manifest.json");
    railgun_ok(&[
        "release",
        "sign",
        "--key",
        utf8(&keys.join("release.key")),
        "--app",
        "app",
        "--version",
        "1.0.0",
        "--artifacts",
        utf8(&dist),
        "--out",
        utf8(&manifest),
    ]);
    std::fs::write(&artifact, b"tampered").expect("tamper");
    let root = dir.path().join("tree");
    let out = railgun(&[
        "release",
        "publish",
        "--root",
        utf8(&root),
        "--manifest",
        utf8(&manifest),
        "--key",
        utf8(&keys.join("release.key")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match the signed manifest"));
    assert!(
        !root.join("app/stable/channel.json").exists(),
        "nothing published"
    );
    assert!(
        !root.join("app/releases/1.0.0").exists(),
        "nothing half-copied"
    );
}
