//! Transparency-log evidence: the Rekor signed entry timestamp (SET), the RFC 9162 inclusion
//! proof up to a root hash, and the signed checkpoint (a signed note) that commits the log to
//! that root. Each check answers with its own [`SigstoreError`] variant; none of them trusts
//! a field the log key did not sign.

use ring::signature::{self, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use super::model::{InclusionProof, TlogEntry, ValidFor};
use super::{b64, SigstoreError};

/// OID of id-ecPublicKey.
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// OID of Ed25519.
const OID_ED25519: &str = "1.3.101.112";
/// OID of rsaEncryption.
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// A log key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogKeyAlg {
    /// ECDSA P-256 with SHA-256 (Rekor v1).
    P256,
    /// Ed25519 (Rekor v2).
    Ed25519,
    /// RSA PKCS#1 v1.5 with SHA-256 (some CT logs).
    RsaSha256,
}

/// Why a log key of the trust root cannot be used (the log is then skipped).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnusableKey {
    /// Not a DER SubjectPublicKeyInfo.
    #[error("the key is not a DER SubjectPublicKeyInfo")]
    Der(#[source] x509_cert::der::Error),
    /// A key algorithm no log signs with.
    #[error("unsupported log key algorithm {0}")]
    Algorithm(x509_cert::der::asn1::ObjectIdentifier),
}

/// One transparency log (Rekor, or certificate transparency) of the trust root.
#[derive(Debug, Clone)]
pub(crate) struct LogKey {
    pub base_url: String,
    pub log_id: Vec<u8>,
    pub alg: LogKeyAlg,
    /// Raw key: SEC1 uncompressed point or 32 Ed25519 bytes.
    pub raw: Vec<u8>,
    pub valid_for: Option<ValidFor>,
}

impl LogKey {
    /// Reads a key from its SPKI DER.
    pub(crate) fn from_spki(
        base_url: String,
        log_id: Vec<u8>,
        spki_der: &[u8],
        valid_for: Option<ValidFor>,
    ) -> Result<Self, UnusableKey> {
        let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(UnusableKey::Der)?;
        let alg = match spki.algorithm.oid.to_string().as_str() {
            OID_EC_PUBLIC_KEY => LogKeyAlg::P256,
            OID_ED25519 => LogKeyAlg::Ed25519,
            OID_RSA => LogKeyAlg::RsaSha256,
            _ => return Err(UnusableKey::Algorithm(spki.algorithm.oid)),
        };
        let raw = spki.subject_public_key.raw_bytes().to_vec();
        Ok(Self {
            base_url,
            log_id,
            alg,
            raw,
            valid_for,
        })
    }

    /// Verifies `sig` over `msg` with this key.
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            LogKeyAlg::P256 => &signature::ECDSA_P256_SHA256_ASN1,
            LogKeyAlg::Ed25519 => &signature::ED25519,
            LogKeyAlg::RsaSha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(alg, &self.raw)
            .verify(msg, sig)
            .is_ok()
    }

    /// The host of the log's base URL (the origin of its checkpoints).
    fn host(&self) -> &str {
        let s = self
            .base_url
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        s.split('/').next().unwrap_or(s)
    }
}

/// The bytes a Rekor SET signs: canonical JSON of body, integrated time, log id (hex) and
/// index, keys in lexical order.
pub(crate) fn set_payload(entry: &TlogEntry, integrated_time: i64, log_id: &[u8]) -> Vec<u8> {
    let body = serde_json::Value::String(entry.canonicalized_body.clone());
    format!(
        "{{\"body\":{body},\"integratedTime\":{integrated_time},\"logID\":\"{}\",\"logIndex\":{}}}",
        hex::encode(log_id),
        entry.log_index
    )
    .into_bytes()
}

/// Checks the SET of `entry` with the log key; returns the integrated time it vouches for.
pub(crate) fn check_set(entry: &TlogEntry, key: &LogKey) -> Result<i64, SigstoreError> {
    let invalid = |reason: &'static str| SigstoreError::SetInvalid {
        log_index: entry.log_index,
        reason,
        source: None,
    };
    let time = entry
        .integrated_time
        .filter(|t| *t > 0)
        .ok_or_else(|| invalid("the entry has no integrated time"))?;
    let promise = entry
        .inclusion_promise
        .as_ref()
        .ok_or_else(|| invalid("the entry has no signed entry timestamp"))?;
    let sig = b64(&promise.signed_entry_timestamp).map_err(|e| SigstoreError::SetInvalid {
        log_index: entry.log_index,
        reason: "the signed entry timestamp is not base64",
        source: Some(e),
    })?;
    if !key.verify(&set_payload(entry, time, &key.log_id), &sig) {
        return Err(invalid("the signature does not verify with the log key"));
    }
    Ok(time)
}

/// RFC 6962 leaf hash.
pub(crate) fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// RFC 9162 §2.1.3.2: the root implied by an inclusion proof, or `None` if the proof has
/// the wrong shape for `index` in a tree of `size` leaves.
pub(crate) fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    proof: &[[u8; 32]],
) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// Checks the inclusion proof of `entry` and the checkpoint that signs its root.
pub(crate) fn check_inclusion(
    entry: &TlogEntry,
    proof: &InclusionProof,
    key: &LogKey,
) -> Result<(), SigstoreError> {
    let bad_proof = |reason: &'static str| SigstoreError::InclusionProofInvalid {
        log_index: entry.log_index,
        reason,
    };
    let body = b64(&entry.canonicalized_body).map_err(|e| {
        SigstoreError::unparsable(
            "verificationMaterial.tlogEntries[0].canonicalizedBody",
            "is not base64",
            e,
        )
    })?;
    let root = hash32(
        &proof.root_hash,
        "verificationMaterial.tlogEntries[0].inclusionProof.rootHash",
    )?;
    let hashes = proof
        .hashes
        .iter()
        .map(|h| {
            hash32(
                h,
                "verificationMaterial.tlogEntries[0].inclusionProof.hashes",
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (index, size) = match (
        u64::try_from(proof.log_index),
        u64::try_from(proof.tree_size),
    ) {
        (Ok(i), Ok(s)) => (i, s),
        _ => return Err(bad_proof("negative index or tree size")),
    };
    let computed = root_from_inclusion_proof(index, size, leaf_hash(&body), &hashes)
        .ok_or_else(|| bad_proof("the proof has the wrong length for its index and tree size"))?;
    if computed != root {
        return Err(bad_proof(
            "the root computed from the entry and the proof is not the proof's root hash",
        ));
    }
    let checkpoint = proof
        .checkpoint
        .as_ref()
        .ok_or_else(|| SigstoreError::CheckpointInvalid {
            log: key.base_url.clone(),
            reason: "the inclusion proof has no checkpoint",
        })?;
    check_checkpoint(&checkpoint.envelope, key, size, &root)
}

/// A SHA-256 hash given in base64 at `part` of the bundle.
fn hash32(text: &str, part: &'static str) -> Result<[u8; 32], SigstoreError> {
    let bytes = b64(text).map_err(|e| SigstoreError::unparsable(part, "is not base64", e))?;
    bytes
        .try_into()
        .map_err(|_| SigstoreError::malformed(part, "is not a 32-byte hash"))
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    b64(text).ok()?.try_into().ok()
}

/// Verifies a signed note checkpoint: a signature line by the log key (key hint = first
/// four bytes of the log id) over the note text, whose origin names the log and whose size
/// and root hash are those of the inclusion proof.
pub(crate) fn check_checkpoint(
    note: &str,
    key: &LogKey,
    tree_size: u64,
    root: &[u8; 32],
) -> Result<(), SigstoreError> {
    let bad = |reason: &'static str| SigstoreError::CheckpointInvalid {
        log: key.base_url.clone(),
        reason,
    };
    let split = note
        .find("\n\n")
        .ok_or_else(|| bad("no blank line between the note and its signatures"))?;
    let text = &note[..split + 1];
    let mut lines = text.lines();
    let origin = lines.next().unwrap_or_default();
    let size: u64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| bad("no tree size"))?;
    let note_root = lines
        .next()
        .and_then(decode_hash)
        .ok_or_else(|| bad("no root hash"))?;
    if !origin.starts_with(key.host()) {
        return Err(bad("its origin is not this log"));
    }
    if size != tree_size || &note_root != root {
        return Err(bad(
            "it commits to another tree size or root hash than the inclusion proof",
        ));
    }
    let hint = key.log_id.get(..4).unwrap_or_default();
    let mut found_line = false;
    for line in note[split + 2..].lines().filter(|l| !l.is_empty()) {
        let Some((_name, sig_b64)) = line
            .strip_prefix("\u{2014} ")
            .and_then(|rest| rest.rsplit_once(' '))
        else {
            return Err(bad("a signature line is not `— name signature`"));
        };
        let Ok(sig) = b64(sig_b64) else {
            return Err(bad("a signature is not base64"));
        };
        if sig.len() <= 4 || &sig[..4] != hint {
            continue;
        }
        found_line = true;
        if key.verify(text.as_bytes(), &sig[4..]) {
            return Ok(());
        }
    }
    Err(bad(if found_line {
        "the checkpoint signature does not verify with the log key"
    } else {
        "no signature by the log key"
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_root(leaves: &[[u8; 32]]) -> [u8; 32] {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = leaves.len().next_power_of_two() / 2;
        let k = if k == leaves.len() { k / 2 } else { k };
        node_hash(&tree_root(&leaves[..k]), &tree_root(&leaves[k..]))
    }

    fn proof(leaves: &[[u8; 32]], m: usize) -> Vec<[u8; 32]> {
        if leaves.len() == 1 {
            return vec![];
        }
        let k = leaves.len().next_power_of_two() / 2;
        let k = if k == leaves.len() { k / 2 } else { k };
        if m < k {
            let mut p = proof(&leaves[..k], m);
            p.push(tree_root(&leaves[k..]));
            p
        } else {
            let mut p = proof(&leaves[k..], m - k);
            p.push(tree_root(&leaves[..k]));
            p
        }
    }

    #[test]
    fn inclusion_proofs_match_a_reference_tree_for_every_leaf_and_size() {
        for n in 1..=17usize {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| leaf_hash(&[i as u8])).collect();
            let root = tree_root(&leaves);
            for m in 0..n {
                let p = proof(&leaves, m);
                assert_eq!(
                    root_from_inclusion_proof(m as u64, n as u64, leaves[m], &p),
                    Some(root),
                    "leaf {m} of {n}"
                );
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert_ne!(
                        root_from_inclusion_proof(m as u64, n as u64, leaves[m], &bad),
                        Some(root)
                    );
                    assert_eq!(
                        root_from_inclusion_proof(m as u64, n as u64, leaves[m], &p[1..]),
                        None
                    );
                }
            }
            assert_eq!(
                root_from_inclusion_proof(n as u64, n as u64, leaves[0], &[]),
                None
            );
        }
    }
}
