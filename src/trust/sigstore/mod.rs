//! Sigstore bundle verification, offline: was this artifact signed by our CI?
//!
//! Owns checking a Sigstore bundle (JSON, media types v0.1, v0.2 and v0.3) for an artifact
//! given by its digest or its file, against a trust root (`trusted_root.json`; the
//! public-good one is embedded, [`PUBLIC_GOOD_TRUSTED_ROOT`]) and an identity policy (or a
//! managed key). It passes all 70 sigstore-conformance `bundle-verify` cases
//! (`tests/it/sigstore_conformance.rs`). The pipeline, each step with its own
//! [`SigstoreError`] variant:
//!
//! 1. `parse_bundle`: size limit ([`MAX_BUNDLE_BYTES`]), JSON shape, media type; a v0.1/v0.2
//!    certificate chain must not carry a root certificate.
//! 2. `check_log_entry`: the entry's log id names a log of the trust root. Its time comes
//!    from the Rekor v1 signed entry timestamp (SET), verified with that log's key, or, for
//!    Rekor v2 entries (which carry no SET), from RFC 3161 timestamps of a timestamp
//!    authority of the trust root (`tsa`). Every RFC 3161 timestamp the bundle carries must
//!    verify, beside a SET too. The log key was valid then; the inclusion proof leads from
//!    the entry to the root hash, and a checkpoint signed by the log key commits to that
//!    root (required from bundle v0.2 on and for Rekor v2) (`tlog`).
//! 3. `check_chain` (`cert`): the leaf certificate was issued by a Fulcio authority of the
//!    trust root (ECDSA or RSA), for code signing; leaf, chain and the authority's window
//!    all contain every time of step 2. At least one of its signed certificate timestamps
//!    verifies with a certificate transparency log of the trust root (`sct`).
//! 4. `check_identity`: certificate identity (SAN) and OIDC issuer match the policy.
//! 5. `check_signature`: the artifact digest is the one signed (hashedrekord message
//!    signature, or an in-toto statement subject inside a DSSE envelope) and the signature
//!    verifies with the certificate's key (or the managed key).
//! 6. `check_body`: the log entry records this very signature, key and digest; entries
//!    `hashedrekord` 0.0.1/0.0.2, `dsse` 0.0.1/0.0.2 and `intoto` 0.0.2 are read, and a
//!    Rekor v2 `hashedrekord` may record a DSSE envelope by the digest of its PAE.
//!
//! It refuses bundles with several log entries, other entry kinds (`rekord`, `intoto`
//! 0.0.1, ...), and signature schemes other than ECDSA P-256 (Fulcio's) or, for managed
//! keys, Ed25519 in DSSE.
//!
//! Verification is synchronous and pure (no network, no async runtime): about 1–2 ms per
//! bundle, see `benches/sigstore.rs`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256, Sha512};

use crate::trust::keys::{KeyAlgorithm, PublicKey};

mod cert;
mod model;
mod sct;
mod tlog;
mod tsa;

use cert::{Authority, Cert};
use model::{Bundle, TlogEntry};
use tlog::LogKey;

/// The public-good instance's `trusted_root.json` (sha256 6494e21e…0b66), as shipped by
/// sigstore-python 4.5.1 and `@sigstore/tuf` 4.0.2.
pub const PUBLIC_GOOD_TRUSTED_ROOT: &[u8] = include_bytes!("trusted_root.json");

/// Largest bundle accepted (real bundles are 5–15 KiB).
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// OIDC issuer of GitHub Actions.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

const MEDIA_TYPES: [(&str, u8); 4] = [
    ("application/vnd.dev.sigstore.bundle+json;version=0.1", 1),
    ("application/vnd.dev.sigstore.bundle+json;version=0.2", 2),
    ("application/vnd.dev.sigstore.bundle+json;version=0.3", 3),
    ("application/vnd.dev.sigstore.bundle.v0.3+json", 3),
];
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The error of a parser (JSON, base64, DER, UTF-8) that refused a part of a bundle.
pub type ParseError = Box<dyn std::error::Error + Send + Sync>;

/// Why a bundle was refused. Each failure names the part of the bundle (a JSON path such
/// as `verificationMaterial.tlogEntries[0].canonicalizedBody`) or of the trust root it is
/// about, and keeps the error of the parser that refused it as its `source()`.
#[derive(Debug, thiserror::Error)]
pub enum SigstoreError {
    /// The bundle is larger than [`MAX_BUNDLE_BYTES`].
    #[error("sigstore bundle of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a bundle: a part that is missing, or not JSON, base64 or DER of its shape.
    #[error("malformed sigstore bundle: {part} {problem}")]
    Malformed {
        /// The part, as a JSON path (`bundle` for the whole document).
        part: &'static str,
        /// What is wrong with it (`is not base64`).
        problem: &'static str,
        /// The parser's error, when a parser refused it.
        #[source]
        source: Option<ParseError>,
    },
    /// A bundle media type this verifier does not know.
    #[error("unsupported sigstore bundle media type {0:?}")]
    UnsupportedMediaType(String),
    /// The trust root could not be read.
    #[error("unusable sigstore trust root: {part} {problem}")]
    TrustRoot {
        /// The part, as a JSON path (`tlogs[1].publicKey.rawBytes`).
        part: String,
        /// What is wrong with it.
        problem: &'static str,
        /// The parser's error, when a parser refused it.
        #[source]
        source: Option<ParseError>,
    },
    /// A log entry kind/version this verifier does not check.
    #[error("unsupported transparency log entry {kind} {version}")]
    UnsupportedLogEntry {
        /// Entry kind.
        kind: String,
        /// Entry version.
        version: String,
    },
    /// No (or more than one) transparency log entry.
    #[error("the bundle must carry exactly one transparency log entry, found {0}")]
    TlogEntryCount(usize),
    /// The entry's log is not in the trust root.
    #[error("transparency log {log_id} is not in the trust root")]
    UnknownLog {
        /// Hex log id.
        log_id: String,
    },
    /// The log key was not valid at the integrated time.
    #[error("the key of log {log} was not valid at {integrated_time}")]
    LogKeyNotValidAtTime {
        /// The log's URL.
        log: String,
        /// When the entry was logged.
        integrated_time: DateTime<Utc>,
    },
    /// A Rekor v2 entry without a signed timestamp from a timestamp authority.
    #[error("the transparency log entry has no time: Rekor v2 entries need an RFC 3161 timestamp")]
    MissingTimestamp,
    /// An RFC 3161 timestamp of the bundle does not verify.
    #[error("invalid RFC 3161 timestamp {index}{}: {reason}", of_authority(.authority))]
    TimestampInvalid {
        /// Its index in `verificationMaterial.timestampVerificationData.rfc3161Timestamps`.
        index: usize,
        /// Why.
        reason: &'static str,
        /// The timestamp authority (its URI in the trust root) that signed it, once known.
        authority: Option<String>,
        /// The parser's error, when a parser refused it.
        #[source]
        source: Option<ParseError>,
    },
    /// The signed entry timestamp does not verify.
    #[error("transparency log entry {log_index}: invalid signed entry timestamp: {reason}")]
    SetInvalid {
        /// Entry index.
        log_index: i64,
        /// Why.
        reason: &'static str,
        /// The base64 error, when the SET is not base64.
        #[source]
        source: Option<base64::DecodeError>,
    },
    /// A bundle of v0.2 or later without inclusion proof.
    #[error("transparency log entry {0} has no inclusion proof")]
    MissingInclusionProof(i64),
    /// The inclusion proof does not lead to its root hash.
    #[error("transparency log entry {log_index}: invalid inclusion proof: {reason}")]
    InclusionProofInvalid {
        /// Entry index.
        log_index: i64,
        /// Why.
        reason: &'static str,
    },
    /// The checkpoint is malformed, not signed by the log, or for another tree.
    #[error("invalid checkpoint of transparency log {log}: {reason}")]
    CheckpointInvalid {
        /// The log's URL.
        log: String,
        /// Why.
        reason: &'static str,
    },
    /// The log entry does not record this bundle's signature, key or digest.
    #[error("the transparency log entry does not match the bundle: {0}")]
    LogEntryMismatch(&'static str),
    /// A certificate that cannot be read or lacks a field Fulcio always sets.
    #[error("bad signing certificate: {reason}")]
    Certificate {
        /// Why.
        reason: &'static str,
        /// The parser's error, when a parser refused it.
        #[source]
        source: Option<ParseError>,
    },
    /// The certificate does not chain to the trust root.
    #[error("certificate chain{}: {reason}", of_authority(.authority))]
    Chain {
        /// Why.
        reason: &'static str,
        /// The certificate authority (its URI in the trust root) that issued the
        /// certificate, once known.
        authority: Option<String>,
    },
    /// No signed certificate timestamp of the certificate verifies with a certificate
    /// transparency log of the trust root.
    #[error("the signing certificate has no valid signed certificate timestamp from a CT log of the trust root ({found} found)")]
    NoVerifiedSct {
        /// How many SCTs the certificate carries.
        found: usize,
    },
    /// The certificate was not valid at a time the bundle proves (the log's integrated
    /// time, or the time of an RFC 3161 timestamp).
    #[error("the signing certificate (valid {not_before} to {not_after}) was not valid at {time}, when the bundle was logged or timestamped")]
    CertificateNotValidAtTime {
        /// Start of validity.
        not_before: DateTime<Utc>,
        /// End of validity.
        not_after: DateTime<Utc>,
        /// The time proven by the log entry or a timestamp.
        time: DateTime<Utc>,
    },
    /// The certificate identity is not the expected one.
    #[error("signed by {found}, expected {expected}")]
    IdentityMismatch {
        /// Identity in the certificate.
        found: String,
        /// What the policy asks.
        expected: String,
    },
    /// The OIDC issuer is not the expected one.
    #[error("identity issued by {found}, expected {expected}")]
    IssuerMismatch {
        /// Issuer in the certificate.
        found: String,
        /// What the policy asks.
        expected: String,
    },
    /// The bundle signs another artifact.
    #[error("the bundle signs another artifact: expected {expected}, bundle has {found}")]
    ArtifactDigestMismatch {
        /// The artifact's digest (hex).
        expected: String,
        /// What the bundle signs (hex digest(s)).
        found: String,
    },
    /// The signature does not verify with the signer's key.
    #[error("the artifact signature does not verify with the signer's key")]
    BadSignature,
    /// The bundle uses a signing scheme this verifier does not check.
    #[error("unsupported signature: {what} {found}")]
    UnsupportedSignature {
        /// What is not supported (`DSSE payload type`).
        what: &'static str,
        /// What the bundle has.
        found: String,
    },
    /// The policy requires a bundle and none was given.
    #[error("a sigstore bundle is required for this artifact and none was published")]
    BundleMissing,
    /// Verification was asked for without a verifier.
    #[error("sigstore mode {0} needs a verifier (identity and issuer)")]
    NoVerifier(SigstoreMode),
    /// A bad identity regular expression.
    #[error("bad identity regular expression {pattern:?}")]
    BadRegex {
        /// The pattern.
        pattern: String,
        /// Why the regex crate refused it.
        #[source]
        source: regex::Error,
    },
    /// A bad `off | if-present | required` string.
    #[error("unknown sigstore mode {0:?}: expected off, if-present or required")]
    BadMode(String),
    /// Reading the artifact failed.
    #[error("{}: cannot read the artifact", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl SigstoreError {
    /// `part` of the bundle is missing or has the wrong shape.
    pub(crate) fn malformed(part: &'static str, problem: &'static str) -> Self {
        Self::Malformed {
            part,
            problem,
            source: None,
        }
    }

    /// A parser refused `part` of the bundle.
    pub(crate) fn unparsable(
        part: &'static str,
        problem: &'static str,
        source: impl Into<ParseError>,
    ) -> Self {
        Self::Malformed {
            part,
            problem,
            source: Some(source.into()),
        }
    }

    /// `part` of the trust root is unusable.
    fn trust_root(part: String, problem: &'static str, source: Option<ParseError>) -> Self {
        Self::TrustRoot {
            part,
            problem,
            source,
        }
    }
}

fn no_certificate() -> SigstoreError {
    SigstoreError::Certificate {
        reason: "the bundle carries no certificate (signed with a managed key?)",
        source: None,
    }
}

/// ` of <authority>` when it is known.
fn of_authority(authority: &Option<String>) -> String {
    authority
        .as_deref()
        .map(|a| format!(" of {a}"))
        .unwrap_or_default()
}

impl SigstoreError {
    /// A stable code for this failure (for bindings and logs), e.g. `sigstore_identity_mismatch`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "sigstore_too_large",
            Self::Malformed { .. } => "sigstore_malformed",
            Self::UnsupportedMediaType { .. } => "sigstore_unsupported_media_type",
            Self::TrustRoot { .. } => "sigstore_trust_root",
            Self::UnsupportedLogEntry { .. } => "sigstore_unsupported_log_entry",
            Self::TlogEntryCount { .. } => "sigstore_tlog_entry_count",
            Self::UnknownLog { .. } => "sigstore_unknown_log",
            Self::LogKeyNotValidAtTime { .. } => "sigstore_log_key_not_valid_at_time",
            Self::MissingTimestamp { .. } => "sigstore_missing_timestamp",
            Self::TimestampInvalid { .. } => "sigstore_timestamp_invalid",
            Self::SetInvalid { .. } => "sigstore_set_invalid",
            Self::MissingInclusionProof { .. } => "sigstore_missing_inclusion_proof",
            Self::InclusionProofInvalid { .. } => "sigstore_inclusion_proof_invalid",
            Self::CheckpointInvalid { .. } => "sigstore_checkpoint_invalid",
            Self::LogEntryMismatch { .. } => "sigstore_log_entry_mismatch",
            Self::Certificate { .. } => "sigstore_certificate",
            Self::Chain { .. } => "sigstore_chain",
            Self::NoVerifiedSct { .. } => "sigstore_no_verified_sct",
            Self::CertificateNotValidAtTime { .. } => "sigstore_certificate_not_valid_at_time",
            Self::IdentityMismatch { .. } => "sigstore_identity_mismatch",
            Self::IssuerMismatch { .. } => "sigstore_issuer_mismatch",
            Self::ArtifactDigestMismatch { .. } => "sigstore_artifact_digest_mismatch",
            Self::BadSignature { .. } => "sigstore_bad_signature",
            Self::UnsupportedSignature { .. } => "sigstore_unsupported_signature",
            Self::BundleMissing { .. } => "sigstore_bundle_missing",
            Self::NoVerifier { .. } => "sigstore_no_verifier",
            Self::BadRegex { .. } => "sigstore_bad_regex",
            Self::BadMode { .. } => "sigstore_bad_mode",
            Self::Io { .. } => "sigstore_io",
        }
    }
}

/// When the update client checks Sigstore bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigstoreMode {
    /// Never.
    #[default]
    Off,
    /// When the manifest names a bundle.
    IfPresent,
    /// Always; an artifact without a bundle is refused.
    Required,
}

impl FromStr for SigstoreMode {
    type Err = SigstoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "if-present" => Ok(Self::IfPresent),
            "required" => Ok(Self::Required),
            _ => Err(SigstoreError::BadMode(s.to_string())),
        }
    }
}

impl std::fmt::Display for SigstoreMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::IfPresent => "if-present",
            Self::Required => "required",
        })
    }
}

/// How the certificate identity (SAN) must look.
#[derive(Debug, Clone)]
pub enum IdentityMatcher {
    /// Exactly this string.
    Exact(String),
    /// A regular expression that must match the whole identity.
    Regex(regex::Regex),
}

impl IdentityMatcher {
    /// A regular expression matcher, anchored at both ends.
    pub fn regex(pattern: &str) -> Result<Self, SigstoreError> {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(Self::Regex)
            .map_err(|source| SigstoreError::BadRegex {
                pattern: pattern.to_string(),
                source,
            })
    }

    /// Whether `identity` matches.
    pub fn matches(&self, identity: &str) -> bool {
        match self {
            Self::Exact(s) => s == identity,
            Self::Regex(re) => re
                .find(identity)
                .is_some_and(|m| m.start() == 0 && m.end() == identity.len()),
        }
    }
}

impl std::fmt::Display for IdentityMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(s) => f.write_str(s),
            Self::Regex(re) => write!(f, "an identity matching {}", re.as_str()),
        }
    }
}

/// Who must have signed: certificate identity and OIDC issuer.
#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    /// The certificate identity.
    pub identity: IdentityMatcher,
    /// The exact OIDC issuer.
    pub issuer: String,
}

impl IdentityPolicy {
    /// The release workflow of a GitHub repository, on a `v*` tag:
    /// `https://github.com/<owner>/<repo>/.github/workflows/release.yml@refs/tags/v*`, issued
    /// by GitHub Actions.
    pub fn github_release(owner: &str, repo: &str) -> Result<Self, SigstoreError> {
        let pattern = format!(
            r"https://github\.com/{}/{}/\.github/workflows/release\.yml@refs/tags/v[0-9A-Za-z.+_-]+",
            regex::escape(owner),
            regex::escape(repo)
        );
        Ok(Self {
            identity: IdentityMatcher::regex(&pattern)?,
            issuer: GITHUB_ACTIONS_ISSUER.to_string(),
        })
    }
}

/// What signed: an identity policy (keyless) or a managed key.
#[derive(Debug, Clone)]
enum Signer {
    Identity(IdentityPolicy),
    Key(PublicKey),
}

/// A trust root and a policy, ready to verify bundles. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct SigstoreVerifier {
    root: TrustRoot,
    signer: Signer,
}

/// The parts of a `trusted_root.json` that verification uses.
#[derive(Debug, Clone)]
struct TrustRoot {
    logs: Vec<LogKey>,
    authorities: Vec<Authority>,
    tsas: Vec<Authority>,
    ct_logs: Vec<LogKey>,
}

/// What a verified bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The certificate identity (SAN), or `key <keyid>` for a managed key.
    pub identity: String,
    /// The OIDC issuer (empty for a managed key).
    pub issuer: String,
    /// When the transparency log recorded the signature.
    pub integrated_time: DateTime<Utc>,
    /// The entry's index in the log.
    pub log_index: i64,
    /// The log's URL.
    pub log: String,
}

/// The digests an artifact is known by.
struct Digests {
    sha256: [u8; 32],
    sha512: Option<[u8; 64]>,
}

/// The signer's key as found in the bundle (certificate) or given (managed key).
enum SignerKey<'a> {
    Cert(&'a Cert),
    Key(&'a PublicKey),
}

impl SignerKey<'_> {
    /// DER that the log entry records (certificate or SPKI).
    fn der(&self) -> &[u8] {
        match self {
            Self::Cert(c) => &c.der,
            Self::Key(k) => k.spki_der(),
        }
    }

    /// Verifies an ECDSA P-256 signature over a SHA-256 digest.
    fn verify_prehash(&self, digest: &[u8; 32], sig: &[u8]) -> Result<(), SigstoreError> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let point = match self {
            Self::Cert(c) => match c.public_key() {
                (cert::KeyKind::Ec(curve), point) if curve == "1.2.840.10045.3.1.7" => point,
                (kind, _) => {
                    return Err(SigstoreError::UnsupportedSignature {
                        what: "certificate key (Fulcio signing keys are ECDSA P-256)",
                        found: kind.to_string(),
                    })
                }
            },
            Self::Key(k) if k.algorithm() == KeyAlgorithm::EcdsaP256 => {
                k.spki_der().get(26..).unwrap_or_default()
            }
            Self::Key(k) => {
                return Err(SigstoreError::UnsupportedSignature {
                    what: "message signature (hashedrekord) by a key that cannot sign a digest (use a DSSE bundle)",
                    found: k.algorithm().to_string(),
                })
            }
        };
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| {
            SigstoreError::Certificate {
                reason: "its P-256 public key is not a curve point",
                source: Some(e.into()),
            }
        })?;
        let sig = p256::ecdsa::Signature::from_der(sig).map_err(|_| SigstoreError::BadSignature)?;
        vk.verify_prehash(digest, &sig)
            .map_err(|_| SigstoreError::BadSignature)
    }

    /// Verifies a signature over a whole message.
    fn verify_message(&self, msg: &[u8], sig: &[u8]) -> Result<(), SigstoreError> {
        match self {
            Self::Cert(_) => {
                let digest: [u8; 32] = Sha256::digest(msg).into();
                self.verify_prehash(&digest, sig)
            }
            Self::Key(k) => k.verify(msg, sig).map_err(|_| SigstoreError::BadSignature),
        }
    }
}

impl SigstoreVerifier {
    /// A verifier with the embedded public-good trust root.
    pub fn public_good(policy: IdentityPolicy) -> Result<Self, SigstoreError> {
        Self::with_trusted_root_json(PUBLIC_GOOD_TRUSTED_ROOT, policy)
    }

    /// A verifier with the given `trusted_root.json`.
    pub fn with_trusted_root_json(
        json: &[u8],
        policy: IdentityPolicy,
    ) -> Result<Self, SigstoreError> {
        Ok(Self {
            root: load_trust_root(json)?,
            signer: Signer::Identity(policy),
        })
    }

    /// A verifier for bundles signed with a managed key (`cosign sign-blob --key`): the
    /// signature must verify with `key`; the transparency-log checks are the same.
    pub fn with_key(
        trusted_root_json: Option<&[u8]>,
        key: PublicKey,
    ) -> Result<Self, SigstoreError> {
        Ok(Self {
            root: load_trust_root(trusted_root_json.unwrap_or(PUBLIC_GOOD_TRUSTED_ROOT))?,
            signer: Signer::Key(key),
        })
    }

    /// Verifies a bundle for an artifact given by its SHA-256 digest (hashedrekord message
    /// signatures and DSSE/in-toto subjects with a `sha256` digest).
    pub fn verify_digest(
        &self,
        artifact_sha256: &[u8; 32],
        bundle_json: &[u8],
    ) -> Result<VerifiedIdentity, SigstoreError> {
        self.verify(
            &Digests {
                sha256: *artifact_sha256,
                sha512: None,
            },
            bundle_json,
        )
    }

    /// Verifies a bundle for a file (also matches in-toto subjects given by SHA-512, as npm
    /// provenance has them).
    pub fn verify_file(
        &self,
        artifact: &Path,
        bundle_json: &[u8],
    ) -> Result<VerifiedIdentity, SigstoreError> {
        let io = |source| SigstoreError::Io {
            path: artifact.to_path_buf(),
            source,
        };
        let mut f = std::fs::File::open(artifact).map_err(io)?;
        let (mut h256, mut h512) = (Sha256::new(), Sha512::new());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            h256.update(&buf[..n]);
            h512.update(&buf[..n]);
        }
        self.verify(
            &Digests {
                sha256: h256.finalize().into(),
                sha512: Some(h512.finalize().into()),
            },
            bundle_json,
        )
    }

    fn verify(
        &self,
        digests: &Digests,
        bundle_json: &[u8],
    ) -> Result<VerifiedIdentity, SigstoreError> {
        let (bundle, version) = parse_bundle(bundle_json)?;
        let cert = match (&self.signer, leaf_certificate(&bundle)?) {
            (Signer::Identity(_), Some(c)) => Some(c),
            (Signer::Identity(_), None) => return Err(no_certificate()),
            (Signer::Key(_), _) if bundle.verification_material.public_key.is_none() => {
                return Err(SigstoreError::UnsupportedSignature {
                    what: "signer for a managed-key verifier",
                    found: "certificate".into(),
                })
            }
            (Signer::Key(_), _) => None,
        };
        let (entry, log, time, stamped) = self.check_log_entry(&bundle, version)?;
        let (signer_key, identity, issuer) = match (&self.signer, &cert) {
            (Signer::Identity(policy), Some(cert)) => {
                // The certificate must have been valid at every time the bundle proves.
                let issuer = cert::check_chain(cert, &self.root.authorities, time)?;
                for t in stamped {
                    cert::check_chain(cert, &self.root.authorities, t)?;
                }
                sct::check_scts(cert, issuer, &self.root.ct_logs)?;
                let (identity, issuer) = check_identity(cert, policy)?;
                (SignerKey::Cert(cert), identity, issuer)
            }
            (Signer::Key(key), _) => (
                SignerKey::Key(key),
                format!("key {}", key.keyid()),
                String::new(),
            ),
            (Signer::Identity(_), None) => return Err(no_certificate()),
        };
        let signed = check_signature(&bundle, &signer_key, digests)?;
        check_body(entry, &signed, &signer_key)?;
        Ok(VerifiedIdentity {
            identity,
            issuer,
            integrated_time: cert::to_utc(time),
            log_index: entry.log_index,
            log: log.base_url.clone(),
        })
    }

    /// Step 2: the log entry, its SET (time), its inclusion proof and checkpoint. Returns
    /// the entry, its log, its time (the SET's, or for Rekor v2 the earliest timestamp) and
    /// the times of every RFC 3161 timestamp of the bundle (each verified).
    fn check_log_entry<'b>(
        &self,
        bundle: &'b Bundle,
        version: u8,
    ) -> Result<(&'b TlogEntry, &LogKey, i64, Vec<i64>), SigstoreError> {
        let entries = &bundle.verification_material.tlog_entries;
        let [entry] = entries.as_slice() else {
            return Err(SigstoreError::TlogEntryCount(entries.len()));
        };
        let kv = &entry.kind_version;
        let rekor_v2 = match (kv.kind.as_str(), kv.version.as_str()) {
            ("hashedrekord", "0.0.1") | ("dsse", "0.0.1") | ("intoto", "0.0.2") => false,
            ("hashedrekord", "0.0.2") | ("dsse", "0.0.2") => true,
            _ => {
                return Err(SigstoreError::UnsupportedLogEntry {
                    kind: kv.kind.clone(),
                    version: kv.version.clone(),
                })
            }
        };
        let log_id = b64(&entry.log_id.key_id).map_err(|e| {
            SigstoreError::unparsable(
                "verificationMaterial.tlogEntries[0].logId.keyId",
                "is not base64",
                e,
            )
        })?;
        let log = self
            .root
            .logs
            .iter()
            .find(|l| l.log_id == log_id)
            .ok_or_else(|| SigstoreError::UnknownLog {
                log_id: hex::encode(&log_id),
            })?;
        let stamped = self.timestamp_times(bundle)?;
        let time = if rekor_v2 {
            // Rekor v2 signs no time: it comes from a timestamp authority, over the signature.
            stamped
                .iter()
                .copied()
                .min()
                .ok_or(SigstoreError::MissingTimestamp)?
        } else {
            tlog::check_set(entry, log)?
        };
        if log.valid_for.is_some_and(|v| !v.contains(time)) {
            return Err(SigstoreError::LogKeyNotValidAtTime {
                log: log.base_url.clone(),
                integrated_time: cert::to_utc(time),
            });
        }
        match &entry.inclusion_proof {
            Some(proof) => tlog::check_inclusion(entry, proof, log)?,
            None if version >= 2 || rekor_v2 => {
                return Err(SigstoreError::MissingInclusionProof(entry.log_index))
            }
            None => {}
        }
        Ok((entry, log, time, stamped))
    }
}

impl SigstoreVerifier {
    /// The times vouched for by the bundle's RFC 3161 timestamps (none when it has none;
    /// each one present must verify).
    fn timestamp_times(&self, bundle: &Bundle) -> Result<Vec<i64>, SigstoreError> {
        let stamps = bundle
            .verification_material
            .timestamp_verification_data
            .as_ref()
            .map(|t| t.rfc3161_timestamps.as_slice())
            .unwrap_or_default();
        if stamps.is_empty() {
            return Ok(Vec::new());
        }
        let signature = signature_bytes(bundle)?;
        stamps
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let der =
                    b64(&s.signed_timestamp).map_err(|e| SigstoreError::TimestampInvalid {
                        index,
                        reason: "it is not base64",
                        authority: None,
                        source: Some(e.into()),
                    })?;
                tsa::verify_timestamp(index, &der, &signature, &self.root.tsas)
            })
            .collect()
    }
}

/// The artifact signature bytes (what a timestamp authority stamps).
fn signature_bytes(bundle: &Bundle) -> Result<Vec<u8>, SigstoreError> {
    let text = match (&bundle.message_signature, &bundle.dsse_envelope) {
        (Some(m), None) => &m.signature,
        (None, Some(e)) => match e.signatures.as_slice() {
            [s] => &s.sig,
            _ => return Err(dsse_signature_count(e.signatures.len())),
        },
        _ => return Err(not_one_content()),
    };
    b64(text).map_err(|e| SigstoreError::unparsable(SIGNATURE_PART, "is not base64", e))
}

/// Where the artifact signature is (message signature or the DSSE envelope's one).
const SIGNATURE_PART: &str = "messageSignature.signature or dsseEnvelope.signatures[0].sig";

fn dsse_signature_count(n: usize) -> SigstoreError {
    SigstoreError::UnsupportedSignature {
        what: "number of DSSE signatures (expected one)",
        found: n.to_string(),
    }
}

fn not_one_content() -> SigstoreError {
    SigstoreError::malformed(
        "messageSignature / dsseEnvelope",
        "must be exactly one of the two",
    )
}

fn load_trust_root(json: &[u8]) -> Result<TrustRoot, SigstoreError> {
    let root: model::TrustedRootJson = serde_json::from_slice(json).map_err(|e| {
        SigstoreError::trust_root(
            "trusted_root.json".into(),
            "is not JSON of a trust root's shape",
            Some(e.into()),
        )
    })?;
    if !root
        .media_type
        .starts_with("application/vnd.dev.sigstore.trustedroot")
    {
        return Err(SigstoreError::trust_root(
            format!("mediaType {:?}", root.media_type),
            "is not a trusted root's",
            None,
        ));
    }
    let logs = load_logs("tlogs", &root.tlogs)?;
    let ct_logs = load_logs("ctlogs", &root.ctlogs)?;
    let authorities = load_authorities("certificateAuthorities", &root.certificate_authorities)?;
    let tsas = load_authorities("timestampAuthorities", &root.timestamp_authorities)?;
    if logs.is_empty() || authorities.is_empty() {
        return Err(SigstoreError::trust_root(
            "tlogs / certificateAuthorities".into(),
            "name no usable transparency log or certificate authority",
            None,
        ));
    }
    Ok(TrustRoot {
        logs,
        authorities,
        tsas,
        ct_logs,
    })
}

/// The logs (`field` of the trust root) whose keys this verifier can use.
fn load_logs(field: &str, logs: &[model::TransparencyLog]) -> Result<Vec<LogKey>, SigstoreError> {
    let mut keys = Vec::new();
    for (i, t) in logs.iter().enumerate() {
        let not_b64 = |at: &'static str| {
            move |e: base64::DecodeError| {
                SigstoreError::trust_root(
                    format!("{field}[{i}].{at}"),
                    "is not base64",
                    Some(e.into()),
                )
            }
        };
        let spki = b64(&t.public_key.raw_bytes).map_err(not_b64("publicKey.rawBytes"))?;
        let log_id = b64(&t.log_id.key_id).map_err(not_b64("logId.keyId"))?;
        match LogKey::from_spki(t.base_url.clone(), log_id, &spki, t.public_key.valid_for) {
            Ok(k) => keys.push(k),
            // A log with a key type we cannot use can never vouch for a bundle; skip it.
            Err(e) => {
                tracing::debug!(log = %t.base_url, details = %t.public_key.key_details, error = %e, "skipping log")
            }
        }
    }
    Ok(keys)
}

/// The certificate or timestamp authorities (`field` of the trust root).
fn load_authorities(
    field: &str,
    cas: &[model::CertificateAuthority],
) -> Result<Vec<Authority>, SigstoreError> {
    let mut authorities = Vec::new();
    for (i, ca) in cas.iter().enumerate() {
        let chain = ca
            .cert_chain
            .certificates
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let part = || format!("{field}[{i}].certChain.certificates[{j}].rawBytes");
                let der = b64(&c.raw_bytes).map_err(|e| {
                    SigstoreError::trust_root(part(), "is not base64", Some(e.into()))
                })?;
                Cert::from_der(der).map_err(|e| {
                    SigstoreError::trust_root(part(), "is not a DER certificate", Some(e.into()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        authorities.push(Authority::new(ca.uri.clone(), chain, ca.valid_for));
    }
    Ok(authorities)
}

/// Step 1: size, JSON, media type.
fn parse_bundle(json: &[u8]) -> Result<(Bundle, u8), SigstoreError> {
    if json.len() > MAX_BUNDLE_BYTES {
        return Err(SigstoreError::TooLarge {
            size: json.len(),
            limit: MAX_BUNDLE_BYTES,
        });
    }
    let bundle: Bundle = serde_json::from_slice(json)
        .map_err(|e| SigstoreError::unparsable("bundle", "is not JSON of a bundle's shape", e))?;
    let version = MEDIA_TYPES
        .iter()
        .find(|(m, _)| *m == bundle.media_type)
        .map(|(_, v)| *v)
        .ok_or_else(|| SigstoreError::UnsupportedMediaType(bundle.media_type.clone()))?;
    Ok((bundle, version))
}

/// The signing certificate of the bundle. A v0.1/v0.2 chain may carry intermediates after
/// the leaf (ignored: the chain comes from the trust root) but never a root certificate:
/// trust in a root comes from the trust root alone.
fn leaf_certificate(bundle: &Bundle) -> Result<Option<Cert>, SigstoreError> {
    const LEAF: &str = "verificationMaterial.certificate.rawBytes";
    const CHAIN: &str = "verificationMaterial.x509CertificateChain.certificates";
    let vm = &bundle.verification_material;
    let cert = |raw: &str, part: &'static str| {
        let der = b64(raw).map_err(|e| SigstoreError::unparsable(part, "is not base64", e))?;
        Cert::from_der(der)
            .map_err(|e| SigstoreError::unparsable(part, "is not a DER certificate", e))
    };
    match (&vm.certificate, &vm.x509_certificate_chain) {
        (Some(c), _) => cert(&c.raw_bytes, LEAF).map(Some),
        (None, Some(chain)) => {
            let certs = chain
                .certificates
                .iter()
                .map(|c| cert(&c.raw_bytes, CHAIN))
                .collect::<Result<Vec<_>, _>>()?;
            if certs.iter().any(Cert::is_self_signed) {
                return Err(SigstoreError::Chain {
                    reason: "the bundle's certificate chain carries a root certificate",
                    authority: None,
                });
            }
            certs
                .into_iter()
                .next()
                .map(Some)
                .ok_or_else(|| SigstoreError::malformed(CHAIN, "is empty"))
        }
        (None, None) => Ok(None),
    }
}

/// Step 4: identity and issuer.
fn check_identity(cert: &Cert, policy: &IdentityPolicy) -> Result<(String, String), SigstoreError> {
    let identity = cert.identity()?;
    let issuer = cert.oidc_issuer()?;
    if !policy.identity.matches(&identity) {
        return Err(SigstoreError::IdentityMismatch {
            found: identity,
            expected: policy.identity.to_string(),
        });
    }
    if issuer != policy.issuer {
        return Err(SigstoreError::IssuerMismatch {
            found: issuer,
            expected: policy.issuer.clone(),
        });
    }
    Ok((identity, issuer))
}

/// What the bundle signed, as the log entry must record it.
enum Signed {
    Message {
        digest: [u8; 32],
        signature: Vec<u8>,
    },
    Dsse {
        payload: Vec<u8>,
        /// SHA-256 of the PAE that was signed (what a Rekor v2 `hashedrekord` records).
        pae_sha256: [u8; 32],
        signature: Vec<u8>,
    },
}

/// Step 5: the artifact digest is the signed one, and the signature verifies.
fn check_signature(
    bundle: &Bundle,
    key: &SignerKey<'_>,
    digests: &Digests,
) -> Result<Signed, SigstoreError> {
    let b64 = |s: &str, part: &'static str| {
        b64(s).map_err(|e| SigstoreError::unparsable(part, "is not base64", e))
    };
    match (&bundle.message_signature, &bundle.dsse_envelope) {
        (Some(m), None) => {
            if m.message_digest.algorithm != "SHA2_256" {
                return Err(SigstoreError::UnsupportedSignature {
                    what: "message digest algorithm",
                    found: m.message_digest.algorithm.clone(),
                });
            }
            const DIGEST: &str = "messageSignature.messageDigest.digest";
            let digest: [u8; 32] = b64(&m.message_digest.digest, DIGEST)?
                .try_into()
                .map_err(|_| SigstoreError::malformed(DIGEST, "is not 32 bytes"))?;
            if digest != digests.sha256 {
                return Err(SigstoreError::ArtifactDigestMismatch {
                    expected: hex::encode(digests.sha256),
                    found: hex::encode(digest),
                });
            }
            let signature = b64(&m.signature, "messageSignature.signature")?;
            key.verify_prehash(&digest, &signature)?;
            Ok(Signed::Message { digest, signature })
        }
        (None, Some(env)) => {
            if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(SigstoreError::UnsupportedSignature {
                    what: "DSSE payload type",
                    found: env.payload_type.clone(),
                });
            }
            let [sig] = env.signatures.as_slice() else {
                return Err(dsse_signature_count(env.signatures.len()));
            };
            let payload = b64(&env.payload, "dsseEnvelope.payload")?;
            let signature = b64(&sig.sig, "dsseEnvelope.signatures[0].sig")?;
            let pae = crate::trust::pae(&env.payload_type, &payload);
            key.verify_message(&pae, &signature)?;
            check_subject(&payload, digests)?;
            Ok(Signed::Dsse {
                payload,
                pae_sha256: Sha256::digest(&pae).into(),
                signature,
            })
        }
        _ => Err(not_one_content()),
    }
}

/// The in-toto statement names the artifact among its subjects.
fn check_subject(payload: &[u8], digests: &Digests) -> Result<(), SigstoreError> {
    #[derive(serde::Deserialize)]
    struct Statement {
        subject: Vec<Subject>,
    }
    #[derive(serde::Deserialize)]
    struct Subject {
        #[serde(default)]
        digest: std::collections::BTreeMap<String, String>,
    }
    let st: Statement = serde_json::from_slice(payload).map_err(|e| {
        SigstoreError::unparsable(
            "dsseEnvelope.payload",
            "is not an in-toto statement with subjects",
            e,
        )
    })?;
    let want256 = hex::encode(digests.sha256);
    let want512 = digests.sha512.map(hex::encode);
    let mut found = Vec::new();
    for s in &st.subject {
        for (alg, value) in &s.digest {
            let value = value.to_ascii_lowercase();
            if (alg == "sha256" && value == want256)
                || (alg == "sha512" && want512.as_deref() == Some(value.as_str()))
            {
                return Ok(());
            }
            found.push(format!("{alg}:{value}"));
        }
    }
    Err(SigstoreError::ArtifactDigestMismatch {
        expected: want256,
        found: found.join(", "),
    })
}

/// Step 6: the log entry records this signature, this key and this digest. The body (signed
/// by the log) must be of the kind and version the entry was checked as, and one that
/// records this bundle's content:
///
/// | entry | records |
/// |---|---|
/// | `hashedrekord` 0.0.1 | hex digest, signature, PEM certificate or key |
/// | `dsse` 0.0.1 | payload hash, signatures with PEM verifiers |
/// | `intoto` 0.0.2 | payload hash, signatures (base64 of the base64 signature) with PEM keys |
/// | `hashedrekord` 0.0.2 (Rekor v2) | digest of the artifact, or of the DSSE PAE (rekor-v2-spec §6.1.4) |
/// | `dsse` 0.0.2 (Rekor v2) | payload hash, signatures with DER verifiers |
fn check_body(
    entry: &TlogEntry,
    signed: &Signed,
    key: &SignerKey<'_>,
) -> Result<(), SigstoreError> {
    const BODY: &str = "verificationMaterial.tlogEntries[0].canonicalizedBody";
    let mismatch = SigstoreError::LogEntryMismatch;
    let body = b64(&entry.canonicalized_body)
        .map_err(|e| SigstoreError::unparsable(BODY, "is not base64", e))?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| SigstoreError::unparsable(BODY, "is not JSON", e))?;
    let kv = &entry.kind_version;
    let (kind, version) = (body["kind"].as_str(), body["apiVersion"].as_str());
    if kind != Some(kv.kind.as_str()) || version != Some(kv.version.as_str()) {
        return Err(mismatch(
            "the entry body is not of the kind and version the entry names",
        ));
    }
    let spec = &body["spec"];
    match (kv.kind.as_str(), kv.version.as_str(), signed) {
        ("hashedrekord", "0.0.1", Signed::Message { digest, signature }) => {
            if str_at(&spec["data"]["hash"]["algorithm"]) != Some("sha256")
                || str_at(&spec["data"]["hash"]["value"]) != Some(hex::encode(digest).as_str())
            {
                return Err(mismatch("the entry records another digest"));
            }
            if !same_b64(&spec["signature"]["content"], signature) {
                return Err(mismatch("the entry records another signature"));
            }
            if !same_pem(&spec["signature"]["publicKey"]["content"], key) {
                return Err(mismatch("the entry records another certificate or key"));
            }
        }
        (
            "dsse",
            "0.0.1",
            Signed::Dsse {
                payload, signature, ..
            },
        ) => {
            check_payload_hash(&spec["payloadHash"], payload)?;
            let recorded = spec["signatures"].as_array().is_some_and(|sigs| {
                sigs.iter()
                    .any(|s| same_b64(&s["signature"], signature) && same_pem(&s["verifier"], key))
            });
            if !recorded {
                return Err(mismatch("the entry records another signature or signer"));
            }
        }
        (
            "intoto",
            "0.0.2",
            Signed::Dsse {
                payload, signature, ..
            },
        ) => {
            let content = &spec["content"];
            check_payload_hash(&content["payloadHash"], payload)?;
            // Rekor stores the envelope's base64 signature text, base64-encoded again.
            let same_sig = |v: &serde_json::Value| {
                v.as_str()
                    .and_then(|s| b64(s).ok())
                    .and_then(|text| b64(std::str::from_utf8(&text).ok()?).ok())
                    .is_some_and(|d| d == *signature)
            };
            let recorded = content["envelope"]["signatures"]
                .as_array()
                .is_some_and(|sigs| {
                    sigs.iter()
                        .any(|s| same_sig(&s["sig"]) && same_pem(&s["publicKey"], key))
                });
            if !recorded {
                return Err(mismatch("the entry records another signature or signer"));
            }
        }
        ("hashedrekord", "0.0.2", Signed::Message { digest, signature }) => {
            check_hashedrekord_v2(&spec["hashedRekordV002"], digest, signature, key)?
        }
        (
            "hashedrekord",
            "0.0.2",
            Signed::Dsse {
                pae_sha256,
                signature,
                ..
            },
        ) => check_hashedrekord_v2(&spec["hashedRekordV002"], pae_sha256, signature, key)?,
        (
            "dsse",
            "0.0.2",
            Signed::Dsse {
                payload, signature, ..
            },
        ) => {
            let spec = &spec["dsseV002"];
            if spec["payloadHash"]["algorithm"] != "SHA2_256"
                || !same_b64(&spec["payloadHash"]["digest"], &Sha256::digest(payload))
            {
                return Err(mismatch("the entry records another payload"));
            }
            let recorded = spec["signatures"]
                .as_array()
                .is_some_and(|sigs| sigs.iter().any(|s| same_v2_sig(s, signature, key)));
            if !recorded {
                return Err(mismatch("the entry records another signature or signer"));
            }
        }
        _ => return Err(mismatch("the entry kind does not match the bundle content")),
    }
    Ok(())
}

/// A Rekor v2 `hashedRekordV002` spec records `digest` (SHA-256), `signature` and the signer.
fn check_hashedrekord_v2(
    spec: &serde_json::Value,
    digest: &[u8; 32],
    signature: &[u8],
    key: &SignerKey<'_>,
) -> Result<(), SigstoreError> {
    let mismatch = SigstoreError::LogEntryMismatch;
    if spec["data"]["algorithm"] != "SHA2_256" || !same_b64(&spec["data"]["digest"], digest) {
        return Err(mismatch("the entry records another digest"));
    }
    if !same_v2_sig(&spec["signature"], signature, key) {
        return Err(mismatch("the entry records another signature or signer"));
    }
    Ok(())
}

/// A Rekor v1 `payloadHash` (hex SHA-256) of the DSSE payload.
fn check_payload_hash(v: &serde_json::Value, payload: &[u8]) -> Result<(), SigstoreError> {
    if str_at(&v["algorithm"]) != Some("sha256")
        || str_at(&v["value"]) != Some(hex::encode(Sha256::digest(payload)).as_str())
    {
        return Err(SigstoreError::LogEntryMismatch(
            "the entry records another payload",
        ));
    }
    Ok(())
}

fn str_at(v: &serde_json::Value) -> Option<&str> {
    v.as_str()
}

/// `v` is base64 of exactly `bytes`.
fn same_b64(v: &serde_json::Value, bytes: &[u8]) -> bool {
    v.as_str()
        .and_then(|s| b64(s).ok())
        .is_some_and(|d| d == bytes)
}

/// `v` is base64 of a PEM block whose DER is the signer's certificate or key (Rekor v1).
fn same_pem(v: &serde_json::Value, key: &SignerKey<'_>) -> bool {
    v.as_str()
        .and_then(|s| b64(s).ok())
        .and_then(|pem| pem_to_der(&pem))
        .is_some_and(|der| der == key.der())
}

/// A Rekor v2 signature: base64 `content` and a verifier with the signer's DER.
fn same_v2_sig(s: &serde_json::Value, sig: &[u8], key: &SignerKey<'_>) -> bool {
    let v = &s["verifier"];
    same_b64(&s["content"], sig)
        && (same_b64(&v["x509Certificate"]["rawBytes"], key.der())
            || same_b64(&v["publicKey"]["rawBytes"], key.der()))
}

/// Base64 as protobuf JSON writes it: standard or URL-safe alphabet, padded or not; line
/// breaks (which `base64` and `openssl` insert) are ignored, as Go's and Python's decoders do.
pub(crate) fn b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let joined;
    let s = if s.contains(['\r', '\n']) {
        joined = s.replace(['\r', '\n'], "");
        joined.as_str()
    } else {
        s
    };
    STANDARD.decode(s).or_else(|e| {
        [URL_SAFE, URL_SAFE_NO_PAD, STANDARD_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(s).ok())
            .ok_or(e)
    })
}

/// DER of the first block of a PEM text.
fn pem_to_der(pem: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let b64: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END "))
        .collect();
    STANDARD.decode(b64).ok()
}

/// The update client's Sigstore policy.
#[derive(Debug, Clone, Default)]
pub struct SigstorePolicy {
    /// When to check.
    pub mode: SigstoreMode,
    /// The verifier (needed unless `mode` is `Off`).
    pub verifier: Option<Arc<SigstoreVerifier>>,
}

impl SigstorePolicy {
    /// `Off`: `Ok(None)`. `IfPresent`: verifies when a bundle is given. `Required`: refuses
    /// a missing bundle.
    pub fn check(
        &self,
        artifact_sha256: &[u8; 32],
        bundle: Option<&[u8]>,
    ) -> Result<Option<VerifiedIdentity>, SigstoreError> {
        let bundle = match (self.mode, bundle) {
            (SigstoreMode::Off, _) | (SigstoreMode::IfPresent, None) => return Ok(None),
            (SigstoreMode::Required, None) => return Err(SigstoreError::BundleMissing),
            (_, Some(b)) => b,
        };
        let verifier = self
            .verifier
            .as_ref()
            .ok_or(SigstoreError::NoVerifier(self.mode))?;
        verifier.verify_digest(artifact_sha256, bundle).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_trust_root_loads_with_both_rekor_logs_and_fulcio() {
        let root = load_trust_root(PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
        assert_eq!(root.logs.len(), 2);
        assert!(root.authorities.len() >= 2);
        assert!(root.authorities.iter().all(|a| a.chain_signed));
        assert!(!root.tsas.is_empty() && root.tsas.iter().all(|a| a.chain_signed));
        assert_eq!(
            hex::encode(Sha256::digest(PUBLIC_GOOD_TRUSTED_ROOT)),
            "6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66"
        );
    }

    #[test]
    fn modes_parse_and_print() {
        for m in ["off", "if-present", "required"] {
            assert_eq!(m.parse::<SigstoreMode>().unwrap().to_string(), m);
        }
        assert!(matches!(
            "maybe".parse::<SigstoreMode>(),
            Err(SigstoreError::BadMode(_))
        ));
    }

    #[test]
    fn regex_matcher_is_anchored() {
        let m = IdentityMatcher::regex("https://a/b").unwrap();
        assert!(m.matches("https://a/b"));
        assert!(!m.matches("https://a/b/evil"));
        assert!(!m.matches("xhttps://a/b"));
    }
}
