//! Sigstore bundle verification against real public-good bundles (see
//! `tests/data/sigstore/README.md`), and every way of tampering with them.

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use railgun_core::trust::sigstore::{
    IdentityMatcher, IdentityPolicy, SigstoreError, SigstoreMode, SigstorePolicy, SigstoreVerifier,
    GITHUB_ACTIONS_ISSUER, MAX_BUNDLE_BYTES,
};
use railgun_core::trust::{KeyAlgorithm, PrivateKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

const WHEEL: &str = "rfc8785-0.1.2-py3-none-any.whl";
const WHEEL_BUNDLE: &str = "rfc8785-0.1.2-py3-none-any.whl.sigstore.json";
const WHEEL_ID: &str =
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2";
const NPM: &str = "sigstore-5.0.0.tgz";
const NPM_BUNDLE: &str = "sigstore-5.0.0.tgz.npm-provenance.sigstore.json";
const NPM_ID: &str =
    "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main";
const COSIGN_BUNDLE: &str = "cosign_bundle_v03.json";
const COSIGN_ID: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const COSIGN_SUBJECT: &str = "c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sigstore")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

fn policy(identity: &str) -> IdentityPolicy {
    IdentityPolicy {
        identity: IdentityMatcher::Exact(identity.to_string()),
        issuer: GITHUB_ACTIONS_ISSUER.to_string(),
    }
}

fn verifier(identity: &str) -> SigstoreVerifier {
    SigstoreVerifier::public_good(policy(identity)).unwrap()
}

fn sha256_of(name: &str) -> [u8; 32] {
    Sha256::digest(read(name)).into()
}

fn cosign_digest() -> [u8; 32] {
    hex::decode(COSIGN_SUBJECT).unwrap().try_into().unwrap()
}

fn wheel_digest() -> [u8; 32] {
    sha256_of(WHEEL)
}

/// The wheel bundle as JSON, changed by `f`, re-serialised.
fn tampered(name: &str, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&read(name)).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Flips one bit of a base64 field (at byte `at` of the decoded value).
fn flip_b64(v: &mut Value, at: usize) {
    let mut bytes = STANDARD.decode(v.as_str().unwrap()).unwrap();
    bytes[at] ^= 0x01;
    *v = Value::String(STANDARD.encode(bytes));
}

fn entry(v: &mut Value) -> &mut Value {
    &mut v["verificationMaterial"]["tlogEntries"][0]
}

// ---- real bundles verify ----

#[test]
fn github_wheel_bundle_v02_verifies_by_file_and_by_digest() {
    let v = verifier(WHEEL_ID);
    let by_file = v.verify_file(&data(WHEEL), &read(WHEEL_BUNDLE)).unwrap();
    assert_eq!(by_file.identity, WHEEL_ID);
    assert_eq!(by_file.issuer, GITHUB_ACTIONS_ISSUER);
    assert_eq!(by_file.integrated_time.timestamp(), 1_710_888_076);
    assert_eq!(by_file.log_index, 79_605_083);
    assert_eq!(by_file.log, "https://rekor.sigstore.dev");
    let by_digest = v
        .verify_digest(&wheel_digest(), &read(WHEEL_BUNDLE))
        .unwrap();
    assert_eq!(by_file, by_digest);
}

#[test]
fn npm_provenance_v03_dsse_bundle_verifies_by_file_with_its_sha512_subject() {
    let id = verifier(NPM_ID)
        .verify_file(&data(NPM), &read(NPM_BUNDLE))
        .unwrap();
    assert_eq!(id.identity, NPM_ID);
    assert_eq!(id.integrated_time.timestamp(), 1_780_347_770);
}

#[test]
fn cosign_v03_dsse_bundle_verifies_by_its_subject_digest() {
    let id = verifier(COSIGN_ID)
        .verify_digest(&cosign_digest(), &read(COSIGN_BUNDLE))
        .unwrap();
    assert_eq!(id.identity, COSIGN_ID);
}

#[test]
fn a_trust_root_given_as_a_file_is_used() {
    // The older production root still has the Rekor v1 key and the Fulcio CAs.
    let v = SigstoreVerifier::with_trusted_root_json(
        &read("trusted_root.sigstore-rs-prod.json"),
        policy(WHEEL_ID),
    )
    .unwrap();
    v.verify_digest(&wheel_digest(), &read(WHEEL_BUNDLE))
        .unwrap();
}

#[test]
fn ci_identity_regexp_accepts_release_tags_of_the_repository_only() {
    let p = IdentityPolicy::github_release("trailofbits", "rfc8785.py").unwrap();
    let v = SigstoreVerifier::public_good(p.clone()).unwrap();
    v.verify_digest(&wheel_digest(), &read(WHEEL_BUNDLE))
        .unwrap();
    for good in [
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v1.0.0",
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v2.0.0-rc.1",
    ] {
        assert!(p.identity.matches(good), "{good}");
    }
    for bad in [
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/heads/main",
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/other.yml@refs/tags/v1.0.0",
        "https://github.com/trailofbits/rfc8785Xpy/.github/workflows/release.yml@refs/tags/v1.0.0",
        "https://github.com/evil/rfc8785.py/.github/workflows/release.yml@refs/tags/v1.0.0",
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v1 ",
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/",
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v1/x",
        "http://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v1.0.0",
    ] {
        assert!(!p.identity.matches(bad), "{bad}");
    }
    // A branch build of another project is refused, naming what was found.
    let npm = SigstoreVerifier::public_good(
        IdentityPolicy::github_release("sigstore", "sigstore-js").unwrap(),
    )
    .unwrap();
    match npm.verify_file(&data(NPM), &read(NPM_BUNDLE)) {
        Err(SigstoreError::IdentityMismatch { found, .. }) => assert_eq!(found, NPM_ID),
        other => panic!("{other:?}"),
    }
}

// ---- refused: each with its own error ----

#[test]
fn refuses_bundle_for_a_changed_artifact() {
    let mut digest = wheel_digest();
    digest[0] ^= 1;
    let e = verifier(WHEEL_ID).verify_digest(&digest, &read(WHEEL_BUNDLE));
    assert!(
        matches!(e, Err(SigstoreError::ArtifactDigestMismatch { .. })),
        "{e:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut whl = read(WHEEL);
    let last = whl.len() - 1;
    whl[last] ^= 1;
    let path = dir.path().join(WHEEL);
    std::fs::write(&path, whl).unwrap();
    let e = verifier(WHEEL_ID).verify_file(&path, &read(WHEEL_BUNDLE));
    assert!(
        matches!(e, Err(SigstoreError::ArtifactDigestMismatch { .. })),
        "{e:?}"
    );

    let mut d = cosign_digest();
    d[31] ^= 1;
    let e = verifier(COSIGN_ID).verify_digest(&d, &read(COSIGN_BUNDLE));
    assert!(
        matches!(e, Err(SigstoreError::ArtifactDigestMismatch { .. })),
        "{e:?}"
    );
    let e = verifier(NPM_ID).verify_file(&data(WHEEL), &read(NPM_BUNDLE));
    assert!(
        matches!(e, Err(SigstoreError::ArtifactDigestMismatch { .. })),
        "{e:?}"
    );
}

#[test]
fn refuses_bundle_from_another_identity_naming_the_identity_found() {
    let other = "https://github.com/railgun/railgun/.github/workflows/release.yml@refs/tags/v0.1.2";
    match verifier(other).verify_digest(&wheel_digest(), &read(WHEEL_BUNDLE)) {
        Err(e @ SigstoreError::IdentityMismatch { .. }) => {
            assert!(e.to_string().contains(WHEEL_ID), "{e}");
            assert_eq!(e.code(), "sigstore_identity_mismatch");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_bundle_from_another_issuer() {
    let p = IdentityPolicy {
        identity: IdentityMatcher::Exact(WHEEL_ID.into()),
        issuer: "https://accounts.google.com".into(),
    };
    let e = SigstoreVerifier::public_good(p)
        .unwrap()
        .verify_digest(&wheel_digest(), &read(WHEEL_BUNDLE));
    match e {
        Err(SigstoreError::IssuerMismatch { found, .. }) => {
            assert_eq!(found, GITHUB_ACTIONS_ISSUER)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_bundle_with_a_changed_signature() {
    let b = tampered(WHEEL_BUNDLE, |v| {
        flip_b64(&mut v["messageSignature"]["signature"], 10)
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(matches!(e, Err(SigstoreError::BadSignature)), "{e:?}");

    // The cosign bundle also carries an RFC 3161 timestamp over its signature (checked
    // beside the SET): a changed signature is not the stamped one.
    let b = tampered(COSIGN_BUNDLE, |v| {
        flip_b64(&mut v["dsseEnvelope"]["signatures"][0]["sig"], 10)
    });
    let e = verifier(COSIGN_ID).verify_digest(&cosign_digest(), &b);
    assert!(
        matches!(e, Err(SigstoreError::TimestampInvalid { .. })),
        "{e:?}"
    );
    // Without the timestamp, the signature itself is refused.
    let b = tampered(COSIGN_BUNDLE, |v| {
        flip_b64(&mut v["dsseEnvelope"]["signatures"][0]["sig"], 10);
        v["verificationMaterial"]
            .as_object_mut()
            .unwrap()
            .remove("timestampVerificationData");
    });
    let e = verifier(COSIGN_ID).verify_digest(&cosign_digest(), &b);
    assert!(matches!(e, Err(SigstoreError::BadSignature)), "{e:?}");
}

#[test]
fn refuses_dsse_bundle_with_a_changed_payload() {
    let b = tampered(COSIGN_BUNDLE, |v| {
        let p = STANDARD
            .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let mut st: Value = serde_json::from_slice(&p).unwrap();
        st["predicateType"] = Value::String("https://evil.example/predicate".into());
        v["dsseEnvelope"]["payload"] =
            Value::String(STANDARD.encode(serde_json::to_vec(&st).unwrap()));
    });
    let e = verifier(COSIGN_ID).verify_digest(&cosign_digest(), &b);
    assert!(matches!(e, Err(SigstoreError::BadSignature)), "{e:?}");
}

#[test]
fn refuses_log_entry_with_an_altered_integrated_time() {
    let b = tampered(WHEEL_BUNDLE, |v| {
        entry(v)["integratedTime"] = Value::String("1710888077".into());
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(matches!(e, Err(SigstoreError::SetInvalid { .. })), "{e:?}");
}

#[test]
fn refuses_log_entry_with_an_altered_body() {
    let b = tampered(WHEEL_BUNDLE, |v| {
        let body = STANDARD
            .decode(entry(v)["canonicalizedBody"].as_str().unwrap())
            .unwrap();
        let mut body: Value = serde_json::from_slice(&body).unwrap();
        body["spec"]["data"]["hash"]["value"] = Value::String(hex::encode([7u8; 32]));
        entry(v)["canonicalizedBody"] =
            Value::String(STANDARD.encode(serde_json::to_vec(&body).unwrap()));
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(matches!(e, Err(SigstoreError::SetInvalid { .. })), "{e:?}");
}

#[test]
fn refuses_log_entry_with_an_altered_signed_entry_timestamp() {
    let b = tampered(WHEEL_BUNDLE, |v| {
        flip_b64(
            &mut entry(v)["inclusionPromise"]["signedEntryTimestamp"],
            12,
        )
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(matches!(e, Err(SigstoreError::SetInvalid { .. })), "{e:?}");
}

#[test]
fn refuses_log_entry_with_an_altered_inclusion_proof_hash() {
    for i in [0, 7, 15] {
        let b = tampered(WHEEL_BUNDLE, |v| {
            flip_b64(&mut entry(v)["inclusionProof"]["hashes"][i], 3)
        });
        let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
        assert!(
            matches!(e, Err(SigstoreError::InclusionProofInvalid { .. })),
            "{e:?}"
        );
    }
    let b = tampered(COSIGN_BUNDLE, |v| {
        let hashes = entry(v)["inclusionProof"]["hashes"].as_array_mut().unwrap();
        hashes.pop();
    });
    let e = verifier(COSIGN_ID).verify_digest(&cosign_digest(), &b);
    assert!(
        matches!(e, Err(SigstoreError::InclusionProofInvalid { .. })),
        "{e:?}"
    );
    let b = tampered(COSIGN_BUNDLE, |v| {
        entry(v)["inclusionProof"]["logIndex"] = Value::String("1139201546".into());
    });
    let e = verifier(COSIGN_ID).verify_digest(&cosign_digest(), &b);
    assert!(
        matches!(e, Err(SigstoreError::InclusionProofInvalid { .. })),
        "{e:?}"
    );
}

#[test]
fn refuses_log_entry_with_an_altered_checkpoint() {
    // Signature of the note changed.
    let b = tampered(WHEEL_BUNDLE, |v| {
        let cp = &mut entry(v)["inclusionProof"]["checkpoint"]["envelope"];
        let text = cp.as_str().unwrap().to_string();
        let (head, sig) = text.trim_end().rsplit_once(' ').unwrap();
        let mut raw = STANDARD.decode(sig).unwrap();
        raw[20] ^= 1;
        *cp = Value::String(format!("{head} {}\n", STANDARD.encode(raw)));
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(
        matches!(e, Err(SigstoreError::CheckpointInvalid { .. })),
        "{e:?}"
    );
    // A note for another tree size.
    let b = tampered(WHEEL_BUNDLE, |v| {
        let cp = &mut entry(v)["inclusionProof"]["checkpoint"]["envelope"];
        *cp = Value::String(cp.as_str().unwrap().replace("\n75441653\n", "\n75441654\n"));
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(
        matches!(e, Err(SigstoreError::CheckpointInvalid { .. })),
        "{e:?}"
    );
    // No signature at all.
    let b = tampered(WHEEL_BUNDLE, |v| {
        let cp = &mut entry(v)["inclusionProof"]["checkpoint"]["envelope"];
        let text = cp.as_str().unwrap().to_string();
        *cp = Value::String(text[..text.find("\n\n").unwrap() + 2].to_string());
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(
        matches!(e, Err(SigstoreError::CheckpointInvalid { .. })),
        "{e:?}"
    );
}

#[test]
fn refuses_v02_bundle_without_inclusion_proof() {
    let b = tampered(WHEEL_BUNDLE, |v| {
        entry(v).as_object_mut().unwrap().remove("inclusionProof");
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(
        matches!(e, Err(SigstoreError::MissingInclusionProof(_))),
        "{e:?}"
    );
}

#[test]
fn refuses_entry_of_a_log_outside_the_trust_root() {
    let b = tampered(WHEEL_BUNDLE, |v| {
        flip_b64(&mut entry(v)["logId"]["keyId"], 0)
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(matches!(e, Err(SigstoreError::UnknownLog { .. })), "{e:?}");
    // The staging trust root knows neither the production log nor its Fulcio.
    let staging = SigstoreVerifier::with_trusted_root_json(
        &read("trusted_root.STAGING.sigstore-python-test-assets.json"),
        policy(WHEEL_ID),
    )
    .unwrap();
    let e = staging.verify_digest(&wheel_digest(), &read(WHEEL_BUNDLE));
    assert!(matches!(e, Err(SigstoreError::UnknownLog { .. })), "{e:?}");
}

#[test]
fn refuses_certificate_not_valid_at_the_integrated_time() {
    // The npm signature with the (genuine, earlier) log entry of the cosign bundle: the npm
    // certificate did not exist yet when that entry was logged.
    let cosign: Value = serde_json::from_slice(&read(COSIGN_BUNDLE)).unwrap();
    let b = tampered(NPM_BUNDLE, |v| {
        *entry(v) = cosign["verificationMaterial"]["tlogEntries"][0].clone();
    });
    let e = verifier(NPM_ID).verify_file(&data(NPM), &b);
    assert!(
        matches!(e, Err(SigstoreError::CertificateNotValidAtTime { .. })),
        "{e:?}"
    );
}

#[test]
fn refuses_certificate_not_issued_by_the_trust_root() {
    // A leaf certificate whose issuer signature is broken.
    let b = tampered(WHEEL_BUNDLE, |v| {
        let c =
            &mut v["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"];
        let mut der = STANDARD.decode(c.as_str().unwrap()).unwrap();
        let n = der.len();
        der[n - 5] ^= 1; // inside the signature value
        *c = Value::String(STANDARD.encode(der));
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(matches!(e, Err(SigstoreError::Chain { .. })), "{e:?}");
}

/// The public-good trust root, changed by `f`.
fn public_good_root(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(railgun_core::trust::sigstore::PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn refuses_certificate_without_an_sct_from_a_ct_log_of_the_trust_root() {
    let refused = |root: Vec<u8>| {
        SigstoreVerifier::with_trusted_root_json(&root, policy(WHEEL_ID))
            .unwrap()
            .verify_digest(&wheel_digest(), &read(WHEEL_BUNDLE))
    };
    // No CT log at all.
    let e = refused(public_good_root(|v| v["ctlogs"] = serde_json::json!([])));
    assert!(
        matches!(e, Err(SigstoreError::NoVerifiedSct { found: 1 })),
        "{e:?}"
    );
    // The SCT's log with another key under the same log id.
    let e = refused(public_good_root(|v| {
        let other = v["tlogs"][0]["publicKey"]["rawBytes"].clone();
        for log in v["ctlogs"].as_array_mut().unwrap() {
            log["publicKey"]["rawBytes"] = other.clone();
        }
    }));
    assert!(
        matches!(e, Err(SigstoreError::NoVerifiedSct { .. })),
        "{e:?}"
    );
    // The SCT's time outside its log key's validity.
    let e = refused(public_good_root(|v| {
        for log in v["ctlogs"].as_array_mut().unwrap() {
            log["publicKey"]["validFor"] = serde_json::json!({"start": "2030-01-01T00:00:00Z"});
        }
    }));
    assert!(
        matches!(e, Err(SigstoreError::NoVerifiedSct { .. })),
        "{e:?}"
    );
    // The unchanged root verifies (the SCT was checked, not skipped).
    refused(public_good_root(|_| {})).unwrap();
}

#[test]
fn refuses_bundle_whose_certificate_chain_carries_a_root_certificate() {
    let root = public_good_root(|_| {});
    let root: Value = serde_json::from_slice(&root).unwrap();
    let b = tampered(WHEEL_BUNDLE, |v| {
        let fulcio = root["certificateAuthorities"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|ca| ca["certChain"]["certificates"].as_array()?.last().cloned())
            .next_back()
            .unwrap();
        v["verificationMaterial"]["x509CertificateChain"]["certificates"]
            .as_array_mut()
            .unwrap()
            .push(fulcio);
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(matches!(e, Err(SigstoreError::Chain { .. })), "{e:?}");
}

#[test]
fn refuses_log_entry_whose_body_is_of_another_kind_than_it_names() {
    // The SET covers the body, not `kindVersion`: the body's own kind must match it.
    let b = tampered(WHEEL_BUNDLE, |v| {
        entry(v)["kindVersion"]["kind"] = "dsse".into();
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    assert!(
        matches!(e, Err(SigstoreError::LogEntryMismatch(_))),
        "{e:?}"
    );
}

#[test]
fn refuses_inclusion_proof_without_checkpoint_naming_it() {
    let b = tampered(WHEEL_BUNDLE, |v| {
        entry(v)["inclusionProof"]
            .as_object_mut()
            .unwrap()
            .remove("checkpoint");
    });
    let e = verifier(WHEEL_ID).verify_digest(&wheel_digest(), &b);
    match e {
        Err(e @ SigstoreError::CheckpointInvalid { .. }) => {
            assert!(e.to_string().contains("no checkpoint"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn base64_with_line_breaks_is_read_as_protobuf_json_decoders_do() {
    // `base64` and `openssl` wrap at 64 or 76 columns; Go's and Python's decoders skip the
    // line breaks (sigstore-conformance has such a timestamp).
    let b = tampered(WHEEL_BUNDLE, |v| {
        let sig = v["messageSignature"]["signature"]
            .as_str()
            .unwrap()
            .to_string();
        let (a, z) = sig.split_at(20);
        v["messageSignature"]["signature"] = format!("{a}\n{z}\r\n").into();
    });
    verifier(WHEEL_ID)
        .verify_digest(&wheel_digest(), &b)
        .unwrap();
}

const V2_BUNDLE: &str = "staging-rekor-v2.txt.sigstore.json";

fn stamp(v: &mut Value) -> &mut Value {
    &mut v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
        ["signedTimestamp"]
}

fn staging_v2_verifier() -> SigstoreVerifier {
    SigstoreVerifier::with_trusted_root_json(
        &read("trusted_root.STAGING.sigstore-python-test-assets.json"),
        IdentityPolicy {
            identity: IdentityMatcher::Exact("jku@goto.fi".into()),
            issuer: "https://github.com/login/oauth".into(),
        },
    )
    .unwrap()
}

#[test]
fn rekor_v2_bundle_verifies_with_its_rfc3161_timestamp_and_checkpoint() {
    let id = staging_v2_verifier()
        .verify_file(&data("staging-rekor-v2.txt"), &read(V2_BUNDLE))
        .unwrap();
    assert_eq!(id.identity, "jku@goto.fi");
    assert_eq!(id.log, "https://log2025-alpha1.rekor.sigstage.dev");
    // genTime of the timestamp: 2025-06-09T11:57:38Z.
    assert_eq!(id.integrated_time.to_rfc3339(), "2025-06-09T11:57:38+00:00");
    // The public-good root does not know the staging log.
    let e = SigstoreVerifier::public_good(policy("jku@goto.fi"))
        .unwrap()
        .verify_file(&data("staging-rekor-v2.txt"), &read(V2_BUNDLE));
    assert!(matches!(e, Err(SigstoreError::UnknownLog { .. })), "{e:?}");
}

#[test]
fn refuses_rekor_v2_bundle_with_altered_timestamp_proof_or_signature() {
    let v = staging_v2_verifier();
    let art = data("staging-rekor-v2.txt");
    // No timestamp: no time.
    let b = tampered(V2_BUNDLE, |v| {
        v["verificationMaterial"]
            .as_object_mut()
            .unwrap()
            .remove("timestampVerificationData");
    });
    assert!(matches!(
        v.verify_file(&art, &b),
        Err(SigstoreError::MissingTimestamp)
    ));
    // Every byte of the timestamp matters (signature, TSTInfo, time, imprint).
    let len = STANDARD
        .decode(
            stamp(&mut serde_json::from_slice(&read(V2_BUNDLE)).unwrap())
                .as_str()
                .unwrap(),
        )
        .unwrap()
        .len();
    for at in [100, 120, 150, 200, len - 10] {
        let b = tampered(V2_BUNDLE, |v| flip_b64(stamp(v), at));
        let e = v.verify_file(&art, &b);
        assert!(
            matches!(e, Err(SigstoreError::TimestampInvalid { .. })),
            "byte {at}: {e:?}"
        );
    }
    // A changed signature is not the stamped one.
    let b = tampered(V2_BUNDLE, |v| {
        flip_b64(&mut v["messageSignature"]["signature"], 10)
    });
    let e = v.verify_file(&art, &b);
    assert!(
        matches!(e, Err(SigstoreError::TimestampInvalid { .. })),
        "{e:?}"
    );
    // Inclusion proof and checkpoint (Ed25519 signed note).
    let b = tampered(V2_BUNDLE, |v| {
        flip_b64(&mut entry(v)["inclusionProof"]["hashes"][1], 0)
    });
    let e = v.verify_file(&art, &b);
    assert!(
        matches!(e, Err(SigstoreError::InclusionProofInvalid { .. })),
        "{e:?}"
    );
    let b = tampered(V2_BUNDLE, |v| {
        let cp = &mut entry(v)["inclusionProof"]["checkpoint"]["envelope"];
        let text = cp.as_str().unwrap().to_string();
        let (head, sig) = text.trim_end().rsplit_once(' ').unwrap();
        let mut raw = STANDARD.decode(sig).unwrap();
        raw[30] ^= 1;
        *cp = Value::String(format!("{head} {}\n", STANDARD.encode(raw)));
    });
    let e = v.verify_file(&art, &b);
    assert!(
        matches!(e, Err(SigstoreError::CheckpointInvalid { .. })),
        "{e:?}"
    );
    // A changed artifact.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("a.txt");
    std::fs::write(&other, b"another text").unwrap();
    let e = v.verify_file(&other, &read(V2_BUNDLE));
    assert!(
        matches!(e, Err(SigstoreError::ArtifactDigestMismatch { .. })),
        "{e:?}"
    );
}

#[test]
fn managed_key_mode_refuses_certificate_bundles() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let v = SigstoreVerifier::with_key(None, key.public_key().clone()).unwrap();
    let e = v.verify_digest(&wheel_digest(), &read(WHEEL_BUNDLE));
    assert!(
        matches!(e, Err(SigstoreError::UnsupportedSignature { .. })),
        "{e:?}"
    );
}

// ---- malformed input: errors, never panics ----

#[test]
fn malformed_bundles_give_errors() {
    let v = verifier(WHEEL_ID);
    let d = wheel_digest();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("object", b"{}".to_vec()),
        ("binary", vec![0xff, 0x00, 0x13]),
        (
            "index as object",
            tampered(WHEEL_BUNDLE, |v| {
                entry(v)["logIndex"] = serde_json::json!({})
            }),
        ),
        (
            "index not a number",
            tampered(WHEEL_BUNDLE, |v| entry(v)["logIndex"] = "x1".into()),
        ),
        (
            "certificate as number",
            tampered(WHEEL_BUNDLE, |v| {
                v["verificationMaterial"]["x509CertificateChain"] = 5.into()
            }),
        ),
        (
            "certificate garbage",
            tampered(WHEEL_BUNDLE, |v| {
                v["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"] =
                    "AAAA".into()
            }),
        ),
        (
            "empty chain",
            tampered(WHEEL_BUNDLE, |v| {
                v["verificationMaterial"]["x509CertificateChain"]["certificates"] =
                    serde_json::json!([])
            }),
        ),
        (
            "no entries",
            tampered(WHEEL_BUNDLE, |v| {
                v["verificationMaterial"]["tlogEntries"] = serde_json::json!([])
            }),
        ),
        (
            "media type",
            tampered(WHEEL_BUNDLE, |v| v["mediaType"] = "application/json".into()),
        ),
        (
            "both contents",
            tampered(
                COSIGN_BUNDLE,
                |v| v["messageSignature"] = serde_json::json!({"messageDigest": {"algorithm": "SHA2_256", "digest": ""}, "signature": ""}),
            ),
        ),
        (
            "no content",
            tampered(WHEEL_BUNDLE, |v| {
                v.as_object_mut().unwrap().remove("messageSignature");
            }),
        ),
        (
            "digest not base64",
            tampered(WHEEL_BUNDLE, |v| {
                v["messageSignature"]["messageDigest"]["digest"] = "!!".into()
            }),
        ),
        (
            "digest short",
            tampered(WHEEL_BUNDLE, |v| {
                v["messageSignature"]["messageDigest"]["digest"] = "AAAA".into()
            }),
        ),
        (
            "signature not DER",
            tampered(WHEEL_BUNDLE, |v| {
                v["messageSignature"]["signature"] = "AAAA".into()
            }),
        ),
        (
            "checkpoint empty",
            tampered(WHEEL_BUNDLE, |v| {
                entry(v)["inclusionProof"]["checkpoint"]["envelope"] = "".into()
            }),
        ),
        (
            "negative tree size",
            tampered(WHEEL_BUNDLE, |v| {
                entry(v)["inclusionProof"]["treeSize"] = "-1".into()
            }),
        ),
        (
            "huge index",
            tampered(WHEEL_BUNDLE, |v| {
                entry(v)["inclusionProof"]["logIndex"] = "9223372036854775807".into()
            }),
        ),
    ];
    for (name, bundle) in cases {
        assert!(v.verify_digest(&d, &bundle).is_err(), "{name} verified");
    }
    let huge = vec![b' '; MAX_BUNDLE_BYTES + 1];
    assert!(matches!(
        v.verify_digest(&d, &huge),
        Err(SigstoreError::TooLarge { .. })
    ));
}

/// The source of `e`, downcast to `T`.
fn source_of<T: std::error::Error + 'static>(e: &SigstoreError) -> Option<&T> {
    std::error::Error::source(e)?.downcast_ref::<T>()
}

#[test]
fn errors_name_the_part_of_the_bundle_and_keep_the_parsers_error() {
    let v = verifier(WHEEL_ID);
    let d = wheel_digest();
    let e = v.verify_digest(&d, b"{\"mediaType\": 5}").unwrap_err();
    assert!(
        matches!(e, SigstoreError::Malformed { part: "bundle", .. }),
        "{e:?}"
    );
    assert!(source_of::<serde_json::Error>(&e).is_some(), "{e:?}");

    let b = tampered(WHEEL_BUNDLE, |v| {
        v["messageSignature"]["signature"] = "not base64!".into()
    });
    let e = v.verify_digest(&d, &b).unwrap_err();
    assert!(
        matches!(
            e,
            SigstoreError::Malformed {
                part: "messageSignature.signature",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(source_of::<base64::DecodeError>(&e).is_some(), "{e:?}");
    assert_eq!(e.code(), "sigstore_malformed");
    assert_eq!(
        e.to_string(),
        "malformed sigstore bundle: messageSignature.signature is not base64"
    );

    let b = tampered(WHEEL_BUNDLE, |v| {
        v["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"] =
            STANDARD.encode(b"not DER").into()
    });
    let e = v.verify_digest(&d, &b).unwrap_err();
    assert!(
        matches!(
            e,
            SigstoreError::Malformed {
                part: "verificationMaterial.x509CertificateChain.certificates",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(source_of::<x509_cert::der::Error>(&e).is_some(), "{e:?}");

    // The trust root names the certificate by its JSON path.
    let root = public_good_root(|v| {
        v["certificateAuthorities"][1]["certChain"]["certificates"][0]["rawBytes"] =
            STANDARD.encode(b"not DER").into()
    });
    match SigstoreVerifier::with_trusted_root_json(&root, policy(WHEEL_ID)) {
        Err(e @ SigstoreError::TrustRoot { .. }) => {
            assert!(
                e.to_string()
                    .contains("certificateAuthorities[1].certChain.certificates[0].rawBytes"),
                "{e}"
            );
            assert!(source_of::<x509_cert::der::Error>(&e).is_some(), "{e:?}");
        }
        other => panic!("{other:?}"),
    }

    // Reading the artifact: the path, and the I/O error as the source.
    let missing = data("no-such-artifact");
    match v.verify_file(&missing, &read(WHEEL_BUNDLE)) {
        Err(e @ SigstoreError::Io { .. }) => {
            assert!(matches!(&e, SigstoreError::Io { path, .. } if *path == missing));
            let io = source_of::<std::io::Error>(&e).unwrap();
            assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }

    // A bad identity pattern keeps the regex crate's error.
    match IdentityMatcher::regex("(") {
        Err(e @ SigstoreError::BadRegex { .. }) => {
            assert!(source_of::<regex::Error>(&e).is_some(), "{e:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_and_bit_flipped_bundles_never_panic_and_truncations_never_verify() {
    let v = verifier(WHEEL_ID);
    let d = wheel_digest();
    let bundle = read(WHEEL_BUNDLE);
    for n in (0..bundle.len()).step_by(13) {
        assert!(
            v.verify_digest(&d, &bundle[..n]).is_err(),
            "prefix {n} verified"
        );
    }
    for i in (0..bundle.len()).step_by(29) {
        let mut b = bundle.clone();
        b[i] ^= 0x04;
        let _ = v.verify_digest(&d, &b);
    }
}

// ---- the update client's policy ----

#[test]
fn policy_modes() {
    let d = wheel_digest();
    let bundle = read(WHEEL_BUNDLE);
    let v = Some(Arc::new(verifier(WHEEL_ID)));
    let off = SigstorePolicy {
        mode: SigstoreMode::Off,
        verifier: None,
    };
    assert!(off.check(&d, Some(&bundle)).unwrap().is_none());
    let if_present = SigstorePolicy {
        mode: SigstoreMode::IfPresent,
        verifier: v.clone(),
    };
    assert!(if_present.check(&d, None).unwrap().is_none());
    assert_eq!(
        if_present
            .check(&d, Some(&bundle))
            .unwrap()
            .unwrap()
            .identity,
        WHEEL_ID
    );
    let required = SigstorePolicy {
        mode: SigstoreMode::Required,
        verifier: v,
    };
    assert!(matches!(
        required.check(&d, None),
        Err(SigstoreError::BundleMissing)
    ));
    assert!(required.check(&d, Some(&bundle)).unwrap().is_some());
    let mut other = d;
    other[5] ^= 1;
    assert!(matches!(
        required.check(&other, Some(&bundle)),
        Err(SigstoreError::ArtifactDigestMismatch { .. })
    ));
    let no_verifier = SigstorePolicy {
        mode: SigstoreMode::Required,
        verifier: None,
    };
    assert!(matches!(
        no_verifier.check(&d, Some(&bundle)),
        Err(SigstoreError::NoVerifier(_))
    ));
}

// ---- a local Sigstore instance: managed keys, and the log entry checks with our own log ----

/// A trusted root with one local Rekor v1 log (and the public-good Fulcio CAs), and a
/// bundle for `artifact` signed with `signer`, logged at index 1 of a 3-entry tree. The log
/// entry records `recorded_key` (normally the signer's).
fn local_instance(
    signer: &PrivateKey,
    recorded_key: &PrivateKey,
    log: &PrivateKey,
    log_valid_from: &str,
    artifact: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    use serde_json::json;
    let b64 = |b: &[u8]| STANDARD.encode(b);
    let node = |l: &[u8], r: &[u8]| -> Vec<u8> {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().to_vec()
    };
    let leaf = |b: &[u8]| -> Vec<u8> {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(b);
        h.finalize().to_vec()
    };
    let log_spki = log.public_key().spki_der().to_vec();
    let log_id = Sha256::digest(&log_spki).to_vec();
    let public_good: Value =
        serde_json::from_slice(railgun_core::trust::sigstore::PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    let root = json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{
            "baseUrl": "https://rekor.local.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(&log_spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                          "validFor": {"start": log_valid_from}},
            "logId": {"keyId": b64(&log_id)},
        }],
        "certificateAuthorities": public_good["certificateAuthorities"],
    });

    let digest = Sha256::digest(artifact).to_vec();
    let sig = signer.sign(artifact).unwrap();
    let body = serde_json::to_vec(&json!({
        "apiVersion": "0.0.1", "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex::encode(&digest)}},
            "signature": {"content": b64(&sig),
                          "publicKey": {"content": b64(recorded_key.public_key().to_pem().as_bytes())}},
        },
    }))
    .unwrap();
    let body_b64 = b64(&body);
    let time = 1_750_000_000i64;
    let set_payload = format!(
        "{{\"body\":\"{body_b64}\",\"integratedTime\":{time},\"logID\":\"{}\",\"logIndex\":42}}",
        hex::encode(&log_id)
    );
    let set = log.sign(set_payload.as_bytes()).unwrap();
    let (l0, l1, l2) = (leaf(b"entry 0"), leaf(&body), leaf(b"entry 2"));
    let root_hash = node(&node(&l0, &l1), &l2);
    let note = format!("rekor.local.test - 1\n3\n{}\n", b64(&root_hash));
    let mut note_sig = log_id[..4].to_vec();
    note_sig.extend(log.sign(note.as_bytes()).unwrap());
    let envelope = format!("{note}\n\u{2014} rekor.local.test {}\n", b64(&note_sig));
    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "publicKey": {"hint": signer.public_key().keyid()},
            "tlogEntries": [{
                "logIndex": "42",
                "logId": {"keyId": b64(&log_id)},
                "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                "integratedTime": time.to_string(),
                "inclusionPromise": {"signedEntryTimestamp": b64(&set)},
                "inclusionProof": {"logIndex": "1", "rootHash": b64(&root_hash), "treeSize": "3",
                                   "hashes": [b64(&l0), b64(&l2)],
                                   "checkpoint": {"envelope": envelope}},
                "canonicalizedBody": body_b64,
            }],
        },
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": b64(&digest)},
                             "signature": b64(&sig)},
    });
    (
        serde_json::to_vec(&root).unwrap(),
        serde_json::to_vec(&bundle).unwrap(),
    )
}

#[test]
fn managed_key_bundle_from_a_local_log_verifies_and_refuses_another_key() {
    let signer = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let log = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let artifact = b"app-1.0.0-linux-x64.tar.gz contents";
    let digest: [u8; 32] = Sha256::digest(artifact).into();
    let (root, bundle) = local_instance(&signer, &signer, &log, "2020-01-01T00:00:00Z", artifact);

    let v = SigstoreVerifier::with_key(Some(&root), signer.public_key().clone()).unwrap();
    let id = v.verify_digest(&digest, &bundle).unwrap();
    assert_eq!(id.identity, format!("key {}", signer.public_key().keyid()));
    assert_eq!(id.integrated_time.timestamp(), 1_750_000_000);
    assert_eq!(id.log_index, 42);

    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let v = SigstoreVerifier::with_key(Some(&root), other.public_key().clone()).unwrap();
    assert!(matches!(
        v.verify_digest(&digest, &bundle),
        Err(SigstoreError::BadSignature)
    ));
    // A keyless verifier wants a certificate.
    let v = SigstoreVerifier::with_trusted_root_json(&root, policy(WHEEL_ID)).unwrap();
    assert!(matches!(
        v.verify_digest(&digest, &bundle),
        Err(SigstoreError::Certificate { .. })
    ));
    // The same bundle is unknown to the public-good log.
    let v = SigstoreVerifier::with_key(None, signer.public_key().clone()).unwrap();
    assert!(matches!(
        v.verify_digest(&digest, &bundle),
        Err(SigstoreError::UnknownLog { .. })
    ));
}

#[test]
fn refuses_log_entry_that_records_another_signer() {
    // A genuine log entry (valid SET, proof, checkpoint) for a signature by another key.
    let signer = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let log = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let artifact = b"artifact";
    let (root, bundle) = local_instance(&signer, &other, &log, "2020-01-01T00:00:00Z", artifact);
    let v = SigstoreVerifier::with_key(Some(&root), signer.public_key().clone()).unwrap();
    let e = v.verify_digest(&Sha256::digest(artifact).into(), &bundle);
    assert!(
        matches!(e, Err(SigstoreError::LogEntryMismatch(_))),
        "{e:?}"
    );
}

#[test]
fn refuses_entry_logged_outside_the_log_key_validity() {
    let signer = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let log = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let artifact = b"artifact";
    let (root, bundle) = local_instance(&signer, &signer, &log, "2026-01-01T00:00:00Z", artifact);
    let v = SigstoreVerifier::with_key(Some(&root), signer.public_key().clone()).unwrap();
    let e = v.verify_digest(&Sha256::digest(artifact).into(), &bundle);
    assert!(
        matches!(e, Err(SigstoreError::LogKeyNotValidAtTime { .. })),
        "{e:?}"
    );
}

#[test]
fn sigstore_policy_is_the_updaters_artifact_verifier() {
    use railgun_core::trust::sigstore::{SigstoreMode, SigstorePolicy};
    use railgun_core::update::ArtifactVerifier;
    use railgun_core::update::{Arch, Artifact, Format, Platform};
    use sha2::Digest;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sigstore/");
    let wheel = std::fs::read(format!("{dir}rfc8785-0.1.2-py3-none-any.whl")).expect("wheel");
    let bundle = std::fs::read(format!("{dir}rfc8785-0.1.2-py3-none-any.whl.sigstore.json"))
        .expect("bundle");
    let policy =
        railgun_core::trust::sigstore::IdentityPolicy::github_release("trailofbits", "rfc8785.py")
            .expect("policy");
    let verifier = std::sync::Arc::new(
        railgun_core::trust::sigstore::SigstoreVerifier::public_good(policy).expect("verifier"),
    );
    let artifact = Artifact {
        platform: Platform::Linux,
        arch: Arch::X64,
        format: Format::TarGz,
        url: "a.tar.gz".into(),
        size: wheel.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(&wheel)),
        sigstore_bundle: Some("a.tar.gz.sigstore.json".into()),
    };
    let digest: [u8; 32] = sha2::Sha256::digest(&wheel).into();
    let required = SigstorePolicy {
        mode: SigstoreMode::Required,
        verifier: Some(verifier.clone()),
    };
    required
        .verify(&artifact, &digest, Some(&bundle))
        .expect("our CI signed it");
    assert!(
        required.verify(&artifact, &digest, None).is_err(),
        "missing bundle refused"
    );
    let other: [u8; 32] = sha2::Sha256::digest(b"another artifact").into();
    let err = required
        .verify(&artifact, &other, Some(&bundle))
        .expect_err("wrong artifact");
    assert!(err.contains("Sigstore"), "{err}");
    let if_present = SigstorePolicy {
        mode: SigstoreMode::IfPresent,
        verifier: Some(verifier),
    };
    if_present
        .verify(&artifact, &digest, None)
        .expect("no bundle is fine when optional");
}
