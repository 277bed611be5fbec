//! The public sigstore-conformance `bundle-verify` cases, run offline from
//! `../shared/testdata/sigstore-conformance/bundle-verify` (beside the clone; see its
//! PROVENANCE.md, never copied into the repository). Every case is run the way the
//! conformance suite runs it: the bundle, the artifact (`artifact`, else `a.txt` at the
//! top), the case's `trusted_root.json` (else the embedded public-good root), `key.pub` for
//! a managed key, else the `identity` / `issuer` files (else the conformance beacon's). A
//! case whose name ends in `_fail` must be refused, and for its own reason (the error code
//! of [`REFUSALS`], so that no negative case passes by an incidental refusal); every other
//! must verify.
//!
//! Without the folder the tests print a loud line and pass for a developer's partial
//! checkout; under `RAILGUN_REQUIRE_ALL=1` (CI) they fail.

use std::path::{Path, PathBuf};

use railgun_core::trust::sigstore::{
    IdentityMatcher, IdentityPolicy, SigstoreError, SigstoreVerifier, VerifiedIdentity,
    PUBLIC_GOOD_TRUSTED_ROOT,
};
use railgun_core::trust::PublicKey;

const BEACON_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const BEACON_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// How many cases the pinned conformance commit has (PROVENANCE.md).
const CASE_COUNT: usize = 70;

/// Why each negative case is refused: the case's README names the defect, the code names
/// the check that catches it (`key_pub`: the case's `key.pub` is not a key).
const REFUSALS: &[(&str, &str)] = &[
    ("bundle-empty-certificate-chain_fail", "sigstore_malformed"),
    ("bundle-from-wrong-instance_fail", "sigstore_unknown_log"),
    (
        "bundle-invalid-base64-signature_fail",
        "sigstore_set_invalid",
    ),
    ("bundle-malformed-json_fail", "sigstore_malformed"),
    ("bundle-negative-log-index_fail", "sigstore_set_invalid"),
    (
        "bundle-unknown-version_fail",
        "sigstore_unsupported_media_type",
    ),
    ("bundle-with-root-cert_fail", "sigstore_chain"),
    ("checkpoint-bad-keyhint_fail", "sigstore_checkpoint_invalid"),
    (
        "checkpoint-wrong-roothash_fail",
        "sigstore_checkpoint_invalid",
    ),
    ("dsse-invalid-sig_fail", "sigstore_bad_signature"),
    ("dsse-mismatch-envelope_fail", "sigstore_log_entry_mismatch"),
    ("dsse-mismatch-sig_fail", "sigstore_log_entry_mismatch"),
    (
        "inclusion-proof-corrupted-hash_fail",
        "sigstore_inclusion_proof_invalid",
    ),
    ("incorrect-public-key_fail", "sigstore_set_invalid"),
    (
        "integrated-time-in-future_fail",
        "sigstore_certificate_not_valid_at_time",
    ),
    (
        "intoto-expired-certificate_fail",
        "sigstore_certificate_not_valid_at_time",
    ),
    (
        "intoto-log-entry-mismatch_fail",
        "sigstore_log_entry_mismatch",
    ),
    (
        "intoto-missing-inclusion-proof_fail",
        "sigstore_missing_inclusion_proof",
    ),
    (
        "intoto-set-outside-signing-cert-validity_fail",
        "sigstore_certificate_not_valid_at_time",
    ),
    (
        "intoto-tsa-timestamp-outside-cert-validity_fail",
        "sigstore_certificate_not_valid_at_time",
    ),
    (
        "invalid-checkpoint-signature_fail",
        "sigstore_checkpoint_invalid",
    ),
    ("invalid-ct-key_fail", "sigstore_no_verified_sct"),
    (
        "invalid-inclusion-proof_fail",
        "sigstore_inclusion_proof_invalid",
    ),
    ("managed-key-no-key_fail", "sigstore_certificate"),
    ("managed-key-wrong-key_fail", "key_pub"),
    (
        "message-digest-mismatch_fail",
        "sigstore_artifact_digest_mismatch",
    ),
    (
        "rekor2-checkpoint-missing-log-signature_fail",
        "sigstore_checkpoint_invalid",
    ),
    (
        "rekor2-checkpoint-missing-origin_fail",
        "sigstore_checkpoint_invalid",
    ),
    (
        "rekor2-checkpoint-missing-root-hash_fail",
        "sigstore_checkpoint_invalid",
    ),
    (
        "rekor2-checkpoint-missing-size_fail",
        "sigstore_checkpoint_invalid",
    ),
    (
        "rekor2-checkpoint-no-matching-signature_fail",
        "sigstore_checkpoint_invalid",
    ),
    ("rekor2-dsse-invalid-sig_fail", "sigstore_bad_signature"),
    (
        "rekor2-dsse-mismatch-envelope_fail",
        "sigstore_log_entry_mismatch",
    ),
    (
        "rekor2-dsse-mismatch-sig_fail",
        "sigstore_log_entry_mismatch",
    ),
    (
        "rekor2-no-inclusion-proof_fail",
        "sigstore_missing_inclusion_proof",
    ),
    ("rekor2-no-timestamp_fail", "sigstore_missing_timestamp"),
    (
        "rekor2-timestamp-outside-trust-root-tsa-validity_fail",
        "sigstore_timestamp_invalid",
    ),
    (
        "rekor2-timestamp-outside-tsa-cert-validity_fail",
        "sigstore_timestamp_invalid",
    ),
    (
        "rekor2-timestamp-payload-mismatch_fail",
        "sigstore_timestamp_invalid",
    ),
    (
        "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail",
        "sigstore_timestamp_invalid",
    ),
    (
        "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail",
        "sigstore_timestamp_invalid",
    ),
    (
        "rekor2-timestamp-with-incorrect-time_fail",
        "sigstore_certificate_not_valid_at_time",
    ),
    ("set-invalid-signature_fail", "sigstore_set_invalid"),
    ("signature-mismatch_fail", "sigstore_bad_signature"),
    (
        "trust-root-tlog-missing-validity-start_fail",
        "sigstore_trust_root",
    ),
    (
        "wrong-hashedrekord-artifact_fail",
        "sigstore_log_entry_mismatch",
    ),
    (
        "wrong-hashedrekord-cert-and-sig_fail",
        "sigstore_log_entry_mismatch",
    ),
    (
        "wrong-hashedrekord-entry_fail",
        "sigstore_log_entry_mismatch",
    ),
    ("wrong-material_fail", "sigstore_artifact_digest_mismatch"),
];

/// The cases folder, or `None` (with a loud line) when it is absent outside CI.
fn cases_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/sigstore-conformance/bundle-verify");
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "the sigstore-conformance cases are missing: expected {} (the shared test data beside \
         the clone)",
        dir.display()
    );
    if std::env::var("RAILGUN_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{msg}; RAILGUN_REQUIRE_ALL=1 forbids skipping");
    }
    // Written to the process's stderr, past libtest's capture, once per run.
    static LOUD: std::sync::Once = std::sync::Once::new();
    LOUD.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!! SKIPPED the sigstore-conformance tests: {msg} !!!!!\n"
        );
    });
    None
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// A refusal: its code and its message.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    message: String,
}

impl From<SigstoreError> for Refusal {
    fn from(e: SigstoreError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// Verifies one case as the conformance suite's `verify-bundle` would; a `key.pub` that is
/// not a public key (`managed-key-wrong-key_fail` has one) is a refusal like any other.
fn run_case(case: &Path) -> Result<VerifiedIdentity, Refusal> {
    let bundle = std::fs::read(case.join("bundle.sigstore.json")).expect("bundle.sigstore.json");
    let artifact = match case.join("artifact") {
        p if p.is_file() => p,
        _ => case.parent().expect("parent").join("a.txt"),
    };
    let root = std::fs::read(case.join("trusted_root.json")).ok();
    let verifier = match read_trimmed(&case.join("key.pub")) {
        Some(pem) => {
            let key = PublicKey::from_pem(&pem).map_err(|e| Refusal {
                code: "key_pub",
                message: e.to_string(),
            })?;
            SigstoreVerifier::with_key(root.as_deref(), key)?
        }
        None => {
            let policy = IdentityPolicy {
                identity: IdentityMatcher::Exact(
                    read_trimmed(&case.join("identity")).unwrap_or(BEACON_IDENTITY.into()),
                ),
                issuer: read_trimmed(&case.join("issuer")).unwrap_or(BEACON_ISSUER.into()),
            };
            SigstoreVerifier::with_trusted_root_json(
                root.as_deref().unwrap_or(PUBLIC_GOOD_TRUSTED_ROOT),
                policy,
            )?
        }
    };
    Ok(verifier.verify_file(&artifact, &bundle)?)
}

/// Runs the named case and asserts its expected outcome.
fn expect_case(name: &str) {
    let Some(dir) = cases_dir() else { return };
    let case = dir.join(name);
    assert!(case.is_dir(), "no case {}", case.display());
    if let Some(wrong) = judge(name, run_case(&case)) {
        panic!("{wrong}");
    }
}

/// `None` when the outcome of case `name` is the expected one, else what went wrong.
fn judge(name: &str, result: Result<VerifiedIdentity, Refusal>) -> Option<String> {
    let expected = REFUSALS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
    match (result, expected) {
        (Ok(_), None) => None,
        (Err(r), Some(code)) if r.code == code => None,
        (Ok(id), Some(code)) => Some(format!(
            "{name}: verified ({}), must be refused with {code}",
            id.identity
        )),
        (Err(r), Some(code)) => Some(format!(
            "{name}: refused with {} ({}), expected {code}",
            r.code, r.message
        )),
        (Err(r), None) => Some(format!("{name}: refused: {} ({})", r.code, r.message)),
    }
}

#[test]
fn sigstore_conformance_all_70_cases_pass_and_fail_as_expected() {
    let Some(dir) = cases_dir() else { return };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read the cases folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("bundle.sigstore.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), CASE_COUNT, "case count of {}", dir.display());
    // Every `_fail` case has its expected refusal, and nothing else has one.
    let negative: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.ends_with("_fail"))
        .collect();
    let listed: Vec<&str> = REFUSALS.iter().map(|(n, _)| *n).collect();
    assert_eq!(negative, listed, "REFUSALS lists exactly the _fail cases");
    let mut wrong = Vec::new();
    let (mut verified, mut refused) = (0, 0);
    for name in &names {
        let result = run_case(&dir.join(name));
        let ok = result.is_ok();
        match judge(name, result) {
            Some(w) => wrong.push(w),
            None if ok => verified += 1,
            None => refused += 1,
        }
    }
    let right = verified + refused;
    eprintln!(
        "sigstore-conformance bundle-verify: {right}/{} ({verified} verified, {refused} refused as expected)",
        names.len()
    );
    assert!(
        wrong.is_empty(),
        "{right}/{} conformance cases right; wrong:\n{}",
        names.len(),
        wrong.join("\n")
    );
}

#[test]
fn sigstore_conformance_bundle_with_sct_with_extensions_verifies() {
    expect_case("bundle-with-sct-with-extensions");
}

#[test]
fn sigstore_conformance_intoto_0_0_2_entry_with_custom_trust_root_verifies() {
    expect_case("intoto-with-custom-trust-root");
}

#[test]
fn sigstore_conformance_rekor2_hashedrekord_over_dsse_verifies() {
    expect_case("rekor2-dsse-happy-path");
}
