//! `railgun verify` and `railgun release sign --sigstore-bundles`, run as the built binary
//! on real public-good bundles (`tests/data/sigstore/` of the core crate).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::railgun;

const WHEEL: &str = "rfc8785-0.1.2-py3-none-any.whl";
const WHEEL_ID: &str =
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/sigstore")
        .join(name)
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

/// A bundle signed with a managed P-256 key and logged in a local Rekor-v1-style log, with
/// the trust root naming that log: (trusted_root.json, bundle) for `artifact`.
fn managed_key_bundle(
    signer: &railgun_core::trust::PrivateKey,
    artifact: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use railgun_core::trust::{KeyAlgorithm, PrivateKey};
    use serde_json::json;
    use sha2::{Digest, Sha256};
    let b64 = |b: &[u8]| STANDARD.encode(b);
    let log = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let log_spki = log.public_key().spki_der().to_vec();
    let log_id = Sha256::digest(&log_spki).to_vec();
    let public_good: serde_json::Value =
        serde_json::from_slice(railgun_core::trust::sigstore::PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let root = json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{"baseUrl": "https://rekor.local.test", "hashAlgorithm": "SHA2_256",
                   "publicKey": {"rawBytes": b64(&log_spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                 "validFor": {"start": "2020-01-01T00:00:00Z"}},
                   "logId": {"keyId": b64(&log_id)}}],
        "certificateAuthorities": public_good["certificateAuthorities"],
    });
    let digest = Sha256::digest(artifact).to_vec();
    let sig = signer.sign(artifact).unwrap();
    let body = serde_json::to_vec(
        &json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hex::encode(&digest)}},
        "signature": {"content": b64(&sig),
                      "publicKey": {"content": b64(signer.public_key().to_pem().as_bytes())}}}}),
    )
    .unwrap();
    let body_b64 = b64(&body);
    let set_payload = format!(
        "{{\"body\":\"{body_b64}\",\"integratedTime\":1750000000,\"logID\":\"{}\",\"logIndex\":7}}",
        hex::encode(&log_id)
    );
    let set = log.sign(set_payload.as_bytes()).unwrap();
    // A one-entry tree: the root is the leaf hash.
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(&body);
    let root_hash = h.finalize().to_vec();
    let note = format!("rekor.local.test - 1\n1\n{}\n", b64(&root_hash));
    let mut note_sig = log_id[..4].to_vec();
    note_sig.extend(log.sign(note.as_bytes()).unwrap());
    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "release"}, "tlogEntries": [{
            "logIndex": "7", "logId": {"keyId": b64(&log_id)},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
            "integratedTime": "1750000000",
            "inclusionPromise": {"signedEntryTimestamp": b64(&set)},
            "inclusionProof": {"logIndex": "0", "rootHash": b64(&root_hash), "treeSize": "1",
                "hashes": [], "checkpoint": {"envelope":
                    format!("{note}\n\u{2014} rekor.local.test {}\n", b64(&note_sig))}},
            "canonicalizedBody": body_b64}]},
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": b64(&digest)},
                             "signature": b64(&sig)},
    });
    (
        serde_json::to_vec(&root).unwrap(),
        serde_json::to_vec(&bundle).unwrap(),
    )
}

#[test]
fn verify_with_a_managed_key_accepts_its_bundle_and_refuses_another_key() {
    use railgun_core::trust::{KeyAlgorithm, PrivateKey};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let signer = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let artifact = b"app build";
    let (root, bundle) = managed_key_bundle(&signer, artifact);
    std::fs::write(d.join("app.tar.gz"), artifact).unwrap();
    std::fs::write(d.join("app.tar.gz.sigstore.json"), bundle).unwrap();
    std::fs::write(d.join("root.json"), root).unwrap();
    std::fs::write(d.join("signer.pub"), signer.public_key().to_pem()).unwrap();
    std::fs::write(d.join("other.pub"), other.public_key().to_pem()).unwrap();
    let run = |key: &str| {
        railgun(&[
            "verify",
            "--artifact",
            d.join("app.tar.gz").to_str().unwrap(),
            "--bundle",
            d.join("app.tar.gz.sigstore.json").to_str().unwrap(),
            "--key",
            d.join(key).to_str().unwrap(),
            "--trusted-root",
            d.join("root.json").to_str().unwrap(),
        ])
    };
    let o = run("signer.pub");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(signer.public_key().keyid()),
        "{}",
        stdout(&o)
    );
    let o = run("other.pub");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
}
