//! `railgun keygen` writes keys that standard tools read: the real binary writes the files,
//! then the real `openssl pkey` (OpenSSL 3) and Python's `cryptography` load the private key,
//! derive the same public key as `NAME.pub`, and a signature made by `cryptography` with it
//! verifies under railgun's reading of `NAME.pub`. Ed25519 is PKCS#8 v1 (RFC 8410); ECDSA
//! P-256 is PKCS#8 too. A key written by `openssl genpkey` is read by railgun and signs.
//!
//! Without `openssl` or `cryptography` (scripts/test.sh installs both) a test says SKIP, and
//! fails under `RAILGUN_REQUIRE_ALL=1`.

use std::path::Path;
use std::process::Command;

use railgun_core::trust::{KeyAlgorithm, PrivateKey, PublicKey};

use crate::support::{python_has, skip, utf8};

/// `railgun keygen --out DIR --name NAME --algorithm ALG`; it must succeed.
fn keygen(dir: &Path, name: &str, algorithm: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_railgun"))
        .args([
            "keygen",
            "--out",
            utf8(dir),
            "--name",
            name,
            "--algorithm",
            algorithm,
        ])
        .output()
        .expect("run railgun keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `openssl` runs; otherwise [`skip`].
fn openssl_or_skip() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip("the openssl command (Debian package openssl; scripts/test.sh installs it)");
    }
    ok
}

/// Whether Python's `cryptography` imports; otherwise [`skip`].
fn cryptography_or_skip() -> bool {
    let ok = python_has("cryptography");
    if !ok {
        skip(
            "Python's cryptography package (pip install cryptography; scripts/test.sh installs it)",
        );
    }
    ok
}

/// `openssl ARGS`: stdout, or the test fails with what OpenSSL said.
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loads `key` with `cryptography`, signs `message` with it and prints the public key PEM,
/// then the signature in hex.
const SIGN_PY: &str = r#"
import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
message = sys.argv[2].encode()
if isinstance(key, ed25519.Ed25519PrivateKey):
    sig = key.sign(message)
elif isinstance(key, ec.EllipticCurvePrivateKey):
    sig = key.sign(message, ec.ECDSA(hashes.SHA256()))
else:
    sys.exit("unexpected key type %r" % type(key))
pem = key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
sys.stdout.write(pem.decode() + sig.hex() + "\n")
"#;

fn keys_are_read_by_openssl_and_cryptography(algorithm: &str, expected: KeyAlgorithm) {
    if !openssl_or_skip() || !cryptography_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    keygen(dir.path(), "release", algorithm);
    let key = dir.path().join("release.key");
    let public = PublicKey::from_file(dir.path().join("release.pub")).expect("release.pub");
    assert_eq!(public.algorithm(), expected);

    // `openssl pkey -in release.key -noout` reads it; its public half is release.pub.
    openssl(&["pkey", "-in", utf8(&key), "-noout"]);
    let from_openssl = openssl(&["pkey", "-in", utf8(&key), "-pubout"]);
    assert_eq!(
        PublicKey::parse(&from_openssl).expect("openssl's PEM"),
        public
    );

    // Python's cryptography reads it and signs; railgun verifies with release.pub.
    let message = "railgun release 0.2.0";
    let out = Command::new("python3")
        .args(["-c", SIGN_PY, utf8(&key), message])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "cryptography refused the key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (pem, sig) = text
        .trim_end()
        .rsplit_once('\n')
        .expect("a public key, then a signature");
    assert_eq!(PublicKey::parse(pem).expect("cryptography's PEM"), public);
    let sig = hex::decode(sig).expect("hex");
    public
        .verify(message.as_bytes(), &sig)
        .expect("cryptography's signature verifies with release.pub");
    assert!(public.verify(b"another message", &sig).is_err());
}

#[test]
fn keygen_ed25519_keys_are_read_by_openssl_and_python_cryptography() {
    keys_are_read_by_openssl_and_cryptography("ed25519", KeyAlgorithm::Ed25519);
}

#[test]
fn keygen_p256_keys_are_read_by_openssl_and_python_cryptography() {
    keys_are_read_by_openssl_and_cryptography("p256", KeyAlgorithm::EcdsaP256);
}

#[test]
fn keys_written_by_openssl_are_read_and_sign() {
    if !openssl_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let ed = dir.path().join("ed25519.key");
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", utf8(&ed)]);
    let p256 = dir.path().join("p256.key");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        utf8(&p256),
    ]);
    for (path, algorithm) in [(ed, KeyAlgorithm::Ed25519), (p256, KeyAlgorithm::EcdsaP256)] {
        let key = PrivateKey::from_file(&path).expect("openssl's key is read");
        assert_eq!(key.algorithm(), algorithm);
        let pubout = openssl(&["pkey", "-in", utf8(&path), "-pubout"]);
        assert_eq!(&PublicKey::parse(&pubout).expect("pem"), key.public_key());
        let sig = key.sign(b"m").expect("sign");
        key.public_key().verify(b"m", &sig).expect("verify");
    }
}
