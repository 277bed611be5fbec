//! `railgun verify` and `railgun release sign --sigstore-bundles`, run as the built binary
//! on real public-good bundles (`tests/data/sigstore/` of the core crate).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WHEEL: &str = "rfc8785-0.1.2-py3-none-any.whl";
const WHEEL_ID: &str =
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/sigstore")
        .join(name)
}

fn railgun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_railgun"))
        .args(args)
        .output()
        .unwrap()
}

fn verify(extra: &[&str], artifact: &Path) -> Output {
    let bundle = data(&format!("{WHEEL}.sigstore.json"));
    let mut args = vec![
        "verify",
        "--artifact",
        artifact.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    railgun(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn verify_prints_the_identity_and_exits_0() {
    let o = verify(&["--identity", WHEEL_ID, "--issuer", ISSUER], &data(WHEEL));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(WHEEL_ID), "{}", stdout(&o));
    assert!(stdout(&o).contains("2024-03-19T22:41:16"), "{}", stdout(&o));
}

#[test]
fn verify_accepts_the_ci_identity_regexp() {
    let re = r"https://github\.com/trailofbits/rfc8785\.py/\.github/workflows/release\.yml@refs/tags/v.*";
    let o = verify(&["--identity-regexp", re, "--issuer", ISSUER], &data(WHEEL));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn verify_refuses_another_identity_with_one_line_naming_it() {
    let re = r"https://github\.com/railgun/railgun/\.github/workflows/release\.yml@refs/tags/v.*";
    let o = verify(&["--identity-regexp", re, "--issuer", ISSUER], &data(WHEEL));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(WHEEL_ID), "{err}");
}

#[test]
fn verify_refuses_another_issuer_and_a_changed_artifact() {
    let o = verify(
        &[
            "--identity",
            WHEEL_ID,
            "--issuer",
            "https://accounts.google.com",
        ],
        &data(WHEEL),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("issued by"), "{}", stderr(&o));

    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join(WHEEL);
    let mut bytes = std::fs::read(data(WHEEL)).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&changed, bytes).unwrap();
    let o = verify(&["--identity", WHEEL_ID, "--issuer", ISSUER], &changed);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("another artifact"), "{}", stderr(&o));
}

#[test]
fn verify_uses_the_given_trusted_root() {
    let staging = data("trusted_root.STAGING.sigstore-python-test-assets.json");
    let o = verify(
        &[
            "--identity",
            WHEEL_ID,
            "--issuer",
            ISSUER,
            "--trusted-root",
            staging.to_str().unwrap(),
        ],
        &data(WHEEL),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not in the trust root"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verify_refuses_a_malformed_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.json");
    std::fs::write(&bundle, b"{\"mediaType\": 3").unwrap();
    let o = railgun(&[
        "verify",
        "--artifact",
        data(WHEEL).to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        "--identity",
        WHEEL_ID,
        "--issuer",
        ISSUER,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("malformed"), "{}", stderr(&o));
}

#[test]
fn release_sign_references_bundles_found_in_the_folder_and_publish_copies_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let arts = d.join("dist");
    std::fs::create_dir_all(&arts).unwrap();
    std::fs::write(arts.join("app-1.0.0-linux-x64.tar.gz"), b"linux build").unwrap();
    std::fs::write(arts.join("app-1.0.0-win32-x64.zip"), b"windows build").unwrap();
    // Only the linux artifact has a bundle (content is not checked at signing time).
    std::fs::copy(
        data(&format!("{WHEEL}.sigstore.json")),
        arts.join("app-1.0.0-linux-x64.tar.gz.sigstore.json"),
    )
    .unwrap();
    let keys = d.join("keys");
    let o = railgun(&["keygen", "--out", keys.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest = arts.join("manifest.json");
    let o = railgun(&[
        "release",
        "sign",
        "--key",
        keys.join("release.key").to_str().unwrap(),
        "--app",
        "app",
        "--version",
        "1.0.0",
        "--artifacts",
        arts.to_str().unwrap(),
        "--sigstore-bundles",
        arts.to_str().unwrap(),
        "--out",
        manifest.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let arts_json = m["artifacts"].as_array().unwrap();
    let linux = arts_json.iter().find(|a| a["platform"] == "linux").unwrap();
    let win = arts_json.iter().find(|a| a["platform"] == "win32").unwrap();
    assert_eq!(
        linux["sigstoreBundle"],
        "app-1.0.0-linux-x64.tar.gz.sigstore.json"
    );
    assert!(
        win.get("sigstoreBundle").is_none_or(|b| b.is_null()),
        "{win}"
    );

    let root = d.join("www");
    let o = railgun(&[
        "release",
        "publish",
        "--root",
        root.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--key",
        keys.join("release.key").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(root
        .join("app/releases/1.0.0/app-1.0.0-linux-x64.tar.gz.sigstore.json")
        .is_file());
}
