//! The JSON shapes read by the verifier: Sigstore bundles (media types v0.1, v0.2, v0.3)
//! and `trusted_root.json`. Only the fields that verification uses are declared; numbers
//! that protobuf-JSON writes as strings (`logIndex`, `integratedTime`, `treeSize`) are read
//! from either a string or a number. Nothing here checks a signature.

use serde::{Deserialize, Deserializer};

/// A Sigstore bundle (`application/vnd.dev.sigstore.bundle…+json`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default)]
    pub message_signature: Option<MessageSignature>,
    #[serde(default)]
    pub dsse_envelope: Option<DsseEnvelope>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerificationMaterial {
    /// v0.3: the leaf certificate alone.
    #[serde(default)]
    pub certificate: Option<RawBytes>,
    /// v0.1 / v0.2: leaf first, possibly followed by the chain (ignored: the chain comes
    /// from the trust root).
    #[serde(default)]
    pub x509_certificate_chain: Option<CertChain>,
    /// Managed-key bundles: a hint naming the key.
    #[serde(default)]
    pub public_key: Option<PublicKeyHint>,
    #[serde(default)]
    pub tlog_entries: Vec<TlogEntry>,
    #[serde(default)]
    pub timestamp_verification_data: Option<TimestampVerificationData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TimestampVerificationData {
    #[serde(default)]
    pub rfc3161_timestamps: Vec<Rfc3161Timestamp>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rfc3161Timestamp {
    /// Base64 DER of a TimeStampResp or TimeStampToken.
    pub signed_timestamp: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PublicKeyHint {
    #[serde(default)]
    #[allow(dead_code)]
    pub hint: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CertChain {
    pub certificates: Vec<RawBytes>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawBytes {
    /// Base64 (standard alphabet).
    pub raw_bytes: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TlogEntry {
    #[serde(deserialize_with = "int_or_string")]
    pub log_index: i64,
    pub log_id: LogId,
    pub kind_version: KindVersion,
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub integrated_time: Option<i64>,
    #[serde(default)]
    pub inclusion_promise: Option<InclusionPromise>,
    #[serde(default)]
    pub inclusion_proof: Option<InclusionProof>,
    /// Base64 of the canonical JSON body of the entry.
    pub canonicalized_body: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogId {
    /// Base64 of the log id (SHA-256 of the log key's SPKI DER for Rekor v1).
    pub key_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KindVersion {
    pub kind: String,
    pub version: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InclusionPromise {
    /// Base64 of the ECDSA signature over the canonical entry (SET).
    pub signed_entry_timestamp: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InclusionProof {
    #[serde(deserialize_with = "int_or_string")]
    pub log_index: i64,
    /// Base64.
    pub root_hash: String,
    #[serde(deserialize_with = "int_or_string")]
    pub tree_size: i64,
    /// Base64 each.
    #[serde(default)]
    pub hashes: Vec<String>,
    /// Required to verify (checked by `tlog`), optional to parse, so that its absence is
    /// named as such.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Checkpoint {
    /// A signed note (`origin\nsize\nroot\n\n— name sig\n`).
    pub envelope: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageSignature {
    pub message_digest: MessageDigest,
    /// Base64 of the ASN.1 DER signature.
    pub signature: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageDigest {
    pub algorithm: String,
    /// Base64.
    pub digest: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DsseEnvelope {
    /// Base64.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<DsseSignature>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DsseSignature {
    /// Base64.
    pub sig: String,
}

/// `trusted_root.json` (`application/vnd.dev.sigstore.trustedroot+json;version=0.1`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrustedRootJson {
    pub media_type: String,
    #[serde(default)]
    pub tlogs: Vec<TransparencyLog>,
    #[serde(default)]
    pub certificate_authorities: Vec<CertificateAuthority>,
    #[serde(default)]
    pub timestamp_authorities: Vec<CertificateAuthority>,
    /// Certificate transparency logs (the issuers of the certificates' SCTs).
    #[serde(default)]
    pub ctlogs: Vec<TransparencyLog>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TransparencyLog {
    pub base_url: String,
    pub public_key: TrustedKey,
    pub log_id: LogId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrustedKey {
    /// Base64 SPKI DER.
    pub raw_bytes: String,
    pub key_details: String,
    #[serde(default)]
    pub valid_for: Option<ValidFor>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ValidFor {
    pub start: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
}

impl ValidFor {
    /// Whether `t` (Unix seconds) falls inside the window (an absent end is open).
    pub(crate) fn contains(&self, t: i64) -> bool {
        self.start.timestamp() <= t && self.end.is_none_or(|e| t <= e.timestamp())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CertificateAuthority {
    /// Optional in the protobuf message (some trust roots name only the subject).
    #[serde(default)]
    pub uri: String,
    pub cert_chain: CertChain,
    pub valid_for: ValidFor,
}

fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        I(i64),
        S(String),
    }
    match N::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn opt_int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int_or_string(d).map(Some)
}
