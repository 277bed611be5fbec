//! DSSE v1 envelopes: signing, and verification with an expected payload type and a
//! k-of-n threshold over distinct trusted keys.
//!
//! Owns the envelope wire format
//! `{"payloadType", "payload": base64, "signatures": [{"keyid", "sig"}]}` and the
//! pre-authentication encoding `PAE(T, b) = "DSSEv1" SP len(T) SP T SP len(b) SP b`.
//! Verification returns the payload *bytes*; callers parse them only after this succeeded
//! ("verify first, parse after"). It refuses an envelope whose `payloadType` is not the one
//! the caller expects, so a signed config can never pass as a release.

use std::borrow::Cow;
use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::keys::{decode_base64_any, KeyError, PrivateKey, PublicKey};

/// Payload type of a release manifest.
pub const PAYLOAD_RELEASE: &str = "application/vnd.railgun.release+json";
/// Payload type of a channel state.
pub const PAYLOAD_CHANNEL: &str = "application/vnd.railgun.channel+json";
/// Payload type of a remote config document.
pub const PAYLOAD_CONFIG: &str = "application/vnd.railgun.config+json";

/// Largest envelope accepted by [`TrustedKeys::verify`] (16 MiB).
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;
/// Most signatures looked at in one envelope (bounds the work an attacker can cause).
pub const MAX_SIGNATURES: usize = 32;

/// Errors of envelope signing and verification.
#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    /// The envelope is not valid JSON of the DSSE shape.
    #[error("malformed signed envelope: {0}")]
    Malformed(String),
    /// The envelope is larger than allowed.
    #[error("signed envelope is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The envelope carries another kind of document.
    #[error("signed envelope has payload type {found:?}, expected {expected:?}")]
    WrongPayloadType {
        /// Expected payload type.
        expected: String,
        /// Payload type found.
        found: String,
    },
    /// The envelope has no signature at all.
    #[error("signed envelope carries no signature")]
    NoSignatures,
    /// No signature was made by a trusted key.
    #[error("signed envelope is not signed by any trusted key (signed by key ids: {keyids:?})")]
    UntrustedKey {
        /// Key ids named by the envelope.
        keyids: Vec<String>,
    },
    /// A signature claiming a trusted key does not verify.
    #[error(
        "signature by trusted key {keyid} does not verify: the document was altered or forged"
    )]
    BadSignature {
        /// The trusted key named by the bad signature.
        keyid: String,
    },
    /// Too few distinct trusted keys signed.
    #[error("signed by {valid} distinct trusted key(s), {threshold} required")]
    ThresholdNotMet {
        /// Distinct trusted keys with a valid signature.
        valid: usize,
        /// Required.
        threshold: usize,
    },
    /// A trust configuration that cannot ever verify anything.
    #[error("invalid trust configuration: {0}")]
    InvalidTrust(String),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Key id of the signer (may be empty in foreign envelopes).
    #[serde(default)]
    pub keyid: String,
    /// Base64 signature over the PAE.
    pub sig: String,
}

/// A DSSE v1 envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Media type of the payload.
    pub payload_type: String,
    /// Base64 of the payload bytes.
    pub payload: String,
    /// Signatures over `PAE(payloadType, payload bytes)`.
    pub signatures: Vec<Signature>,
}

/// The envelope as read by [`TrustedKeys::verify`]: same wire shape as [`Envelope`], but
/// strings borrow from the input, so the (large) base64 payload is not copied before it is
/// decoded.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeRef<'a> {
    #[serde(borrow)]
    payload_type: Cow<'a, str>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(borrow)]
    signatures: Vec<SignatureRef<'a>>,
}

#[derive(Deserialize)]
struct SignatureRef<'a> {
    #[serde(default, borrow)]
    keyid: Cow<'a, str>,
    #[serde(borrow)]
    sig: Cow<'a, str>,
}

/// Read access to one signature, owned or borrowed.
trait SignatureFields {
    fn keyid(&self) -> &str;
    fn sig(&self) -> &str;
}

impl SignatureFields for Signature {
    fn keyid(&self) -> &str {
        &self.keyid
    }
    fn sig(&self) -> &str {
        &self.sig
    }
}

impl SignatureFields for SignatureRef<'_> {
    fn keyid(&self) -> &str {
        &self.keyid
    }
    fn sig(&self) -> &str {
        &self.sig
    }
}

/// The DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` as `payload_type` with every key in `keys`.
    ///
    /// ```
    /// use railgun_core::trust::{Envelope, KeyAlgorithm, PrivateKey, TrustedKeys, PAYLOAD_CONFIG};
    /// let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
    /// let env = Envelope::sign(PAYLOAD_CONFIG, br#"{"version":"1"}"#, &[&key]).unwrap();
    /// let trusted = TrustedKeys::new(vec![key.public_key().clone()], 1).unwrap();
    /// let verified = trusted.verify(&env.to_json_bytes(), PAYLOAD_CONFIG).unwrap();
    /// assert_eq!(verified.payload, br#"{"version":"1"}"#);
    /// ```
    pub fn sign(
        payload_type: &str,
        payload: &[u8],
        keys: &[&PrivateKey],
    ) -> Result<Self, DsseError> {
        let msg = pae(payload_type, payload);
        let signatures = keys
            .iter()
            .map(|k| {
                Ok(Signature {
                    keyid: k.public_key().keyid().to_string(),
                    sig: STANDARD.encode(k.sign(&msg)?),
                })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok(Self {
            payload_type: payload_type.to_string(),
            payload: STANDARD.encode(payload),
            signatures,
        })
    }

    /// Adds a signature by `key` (for k-of-n signing by several parties).
    pub fn add_signature(&mut self, key: &PrivateKey) -> Result<(), DsseError> {
        let payload = decode_base64_any(&self.payload)
            .ok_or_else(|| DsseError::Malformed("payload is not base64".into()))?;
        let sig = key.sign(&pae(&self.payload_type, &payload))?;
        self.signatures.push(Signature {
            keyid: key.public_key().keyid().to_string(),
            sig: STANDARD.encode(sig),
        });
        Ok(())
    }

    /// Pretty JSON bytes of the envelope.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serializing plain strings cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// A payload whose signatures were verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The payload bytes, safe to parse now.
    pub payload: Vec<u8>,
    /// Key ids of the distinct trusted keys whose signatures verified.
    pub keyids: Vec<String>,
}

/// The keys trusted for one role, and how many of them must sign.
///
/// Several keys allow rotation (old and new both trusted during the change); a threshold
/// above one requires several distinct keys to agree.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
    threshold: usize,
}

impl TrustedKeys {
    /// Trusts `keys`, requiring `threshold` distinct ones to sign.
    pub fn new(keys: Vec<PublicKey>, threshold: usize) -> Result<Self, DsseError> {
        let mut seen = BTreeSet::new();
        let keys: Vec<PublicKey> = keys
            .into_iter()
            .filter(|k| seen.insert(k.keyid().to_string()))
            .collect();
        if keys.is_empty() {
            return Err(DsseError::InvalidTrust("no trusted keys".into()));
        }
        if threshold == 0 || threshold > keys.len() {
            return Err(DsseError::InvalidTrust(format!(
                "threshold {threshold} with {} distinct key(s)",
                keys.len()
            )));
        }
        Ok(Self { keys, threshold })
    }

    /// Trusts a single key.
    pub fn single(key: PublicKey) -> Self {
        Self {
            keys: vec![key],
            threshold: 1,
        }
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The threshold.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Verifies a serialized envelope of `expected_type` and returns its payload bytes.
    pub fn verify(&self, envelope: &[u8], expected_type: &str) -> Result<Verified, DsseError> {
        if envelope.len() > MAX_ENVELOPE_BYTES {
            return Err(DsseError::TooLarge {
                size: envelope.len(),
                limit: MAX_ENVELOPE_BYTES,
            });
        }
        let env: EnvelopeRef<'_> =
            serde_json::from_slice(envelope).map_err(|e| DsseError::Malformed(e.to_string()))?;
        self.verify_fields(
            &env.payload_type,
            &env.payload,
            &env.signatures,
            expected_type,
        )
    }

    /// Verifies a parsed envelope of `expected_type` and returns its payload bytes.
    pub fn verify_envelope(
        &self,
        env: &Envelope,
        expected_type: &str,
    ) -> Result<Verified, DsseError> {
        self.verify_fields(
            &env.payload_type,
            &env.payload,
            &env.signatures,
            expected_type,
        )
    }

    fn verify_fields<S: SignatureFields>(
        &self,
        payload_type: &str,
        payload: &str,
        signatures: &[S],
        expected_type: &str,
    ) -> Result<Verified, DsseError> {
        if payload_type != expected_type {
            return Err(DsseError::WrongPayloadType {
                expected: expected_type.to_string(),
                found: payload_type.to_string(),
            });
        }
        if signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::Malformed(format!(
                "{} signatures, at most {MAX_SIGNATURES} are read",
                signatures.len()
            )));
        }
        let payload = decode_base64_any(payload)
            .ok_or_else(|| DsseError::Malformed("payload is not base64".into()))?;
        let msg = pae(payload_type, &payload);

        let mut valid: BTreeSet<&str> = BTreeSet::new();
        let mut bad_trusted: Option<String> = None;
        for s in signatures {
            let Some(sig) = decode_base64_any(s.sig()) else {
                continue;
            };
            let candidates = self
                .keys
                .iter()
                .filter(|k| s.keyid().is_empty() || k.keyid() == s.keyid());
            for key in candidates {
                if valid.contains(key.keyid()) {
                    continue;
                }
                match key.verify(&msg, &sig) {
                    Ok(()) => {
                        valid.insert(key.keyid());
                        break;
                    }
                    Err(_) if !s.keyid().is_empty() => {
                        bad_trusted.get_or_insert_with(|| key.keyid().to_string());
                    }
                    Err(_) => {}
                }
            }
        }
        if valid.len() >= self.threshold {
            return Ok(Verified {
                payload,
                keyids: valid.into_iter().map(str::to_string).collect(),
            });
        }
        if valid.is_empty() {
            if let Some(keyid) = bad_trusted {
                return Err(DsseError::BadSignature { keyid });
            }
            let named_trusted = signatures
                .iter()
                .any(|s| s.keyid().is_empty() || self.keys.iter().any(|k| k.keyid() == s.keyid()));
            if named_trusted {
                // Keyless signatures that match no trusted key: forged or altered.
                return Err(DsseError::BadSignature {
                    keyid: String::new(),
                });
            }
            return Err(DsseError::UntrustedKey {
                keyids: signatures.iter().map(|s| s.keyid().to_string()).collect(),
            });
        }
        Err(DsseError::ThresholdNotMet {
            valid: valid.len(),
            threshold: self.threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::KeyAlgorithm;

    fn key() -> PrivateKey {
        PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key")
    }

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE specification's protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn verifies_a_signed_payload() {
        let k = key();
        let env = Envelope::sign(PAYLOAD_RELEASE, b"{}", &[&k]).expect("sign");
        let t = TrustedKeys::single(k.public_key().clone());
        let v = t.verify(&env.to_json_bytes(), PAYLOAD_RELEASE).expect("ok");
        assert_eq!(v.payload, b"{}");
        assert_eq!(v.keyids, vec![k.public_key().keyid().to_string()]);
    }

    #[test]
    fn borrowed_and_owned_paths_agree_also_with_json_escapes() {
        let k = key();
        let t = TrustedKeys::single(k.public_key().clone());
        let env = Envelope::sign(PAYLOAD_RELEASE, b"{\"v\":1}", &[&k]).expect("sign");
        // `\/` is a JSON escape: the reader must unescape (not borrow) and still verify.
        let text = String::from_utf8(env.to_json_bytes())
            .expect("utf8")
            .replace("application/vnd", "application\\/vnd");
        assert!(text.contains("\\/"));
        let v = t
            .verify(text.as_bytes(), PAYLOAD_RELEASE)
            .expect("escaped ok");
        assert_eq!(v.payload, b"{\"v\":1}");
        let owned = t.verify_envelope(&env, PAYLOAD_RELEASE).expect("owned ok");
        assert_eq!(owned.payload, v.payload);
        assert_eq!(owned.keyids, v.keyids);
        // A missing keyid defaults to empty on the borrowed path too.
        let keyless = text.replace(&format!("\"keyid\": \"{}\",", k.public_key().keyid()), "");
        assert!(!keyless.contains("keyid"));
        t.verify(keyless.as_bytes(), PAYLOAD_RELEASE)
            .expect("keyless signature by the trusted key");
    }

    #[test]
    fn refuses_wrong_payload_type() {
        let k = key();
        let env = Envelope::sign(PAYLOAD_CHANNEL, b"{}", &[&k]).expect("sign");
        let t = TrustedKeys::single(k.public_key().clone());
        assert!(matches!(
            t.verify(&env.to_json_bytes(), PAYLOAD_RELEASE),
            Err(DsseError::WrongPayloadType { .. })
        ));
    }

    #[test]
    fn refuses_untrusted_key() {
        let (k, other) = (key(), key());
        let env = Envelope::sign(PAYLOAD_RELEASE, b"{}", &[&other]).expect("sign");
        let t = TrustedKeys::single(k.public_key().clone());
        assert!(matches!(
            t.verify(&env.to_json_bytes(), PAYLOAD_RELEASE),
            Err(DsseError::UntrustedKey { .. })
        ));
    }

    #[test]
    fn refuses_altered_payload_and_forged_keyid() {
        let (k, other) = (key(), key());
        let mut env = Envelope::sign(PAYLOAD_RELEASE, b"{\"v\":1}", &[&k]).expect("sign");
        env.payload = STANDARD.encode(b"{\"v\":2}");
        let t = TrustedKeys::single(k.public_key().clone());
        assert!(matches!(
            t.verify_envelope(&env, PAYLOAD_RELEASE),
            Err(DsseError::BadSignature { .. })
        ));
        // A signature by another key that claims the trusted key's id.
        let mut forged = Envelope::sign(PAYLOAD_RELEASE, b"{}", &[&other]).expect("sign");
        forged.signatures[0].keyid = k.public_key().keyid().to_string();
        assert!(matches!(
            t.verify_envelope(&forged, PAYLOAD_RELEASE),
            Err(DsseError::BadSignature { .. })
        ));
    }

    #[test]
    fn threshold_counts_distinct_keys_only() {
        let (a, b, c) = (key(), key(), key());
        let trusted = TrustedKeys::new(
            vec![
                a.public_key().clone(),
                b.public_key().clone(),
                c.public_key().clone(),
            ],
            2,
        )
        .expect("2-of-3");
        let two = Envelope::sign(PAYLOAD_RELEASE, b"x", &[&a, &c]).expect("sign");
        assert_eq!(
            trusted
                .verify_envelope(&two, PAYLOAD_RELEASE)
                .expect("2 of 3")
                .keyids
                .len(),
            2
        );
        // The same key twice is one key.
        let twice = Envelope::sign(PAYLOAD_RELEASE, b"x", &[&a, &a]).expect("sign");
        assert!(matches!(
            trusted.verify_envelope(&twice, PAYLOAD_RELEASE),
            Err(DsseError::ThresholdNotMet {
                valid: 1,
                threshold: 2
            })
        ));
        // An empty keyid cannot be used to count one key twice either.
        let mut anon = Envelope::sign(PAYLOAD_RELEASE, b"x", &[&a, &a]).expect("sign");
        anon.signatures[1].keyid.clear();
        assert!(trusted.verify_envelope(&anon, PAYLOAD_RELEASE).is_err());
    }

    #[test]
    fn rotation_trusts_old_and_new_keys() {
        let (old, new) = (key(), key());
        let trusted = TrustedKeys::new(vec![old.public_key().clone(), new.public_key().clone()], 1)
            .expect("rotation");
        for k in [&old, &new] {
            let env = Envelope::sign(PAYLOAD_RELEASE, b"x", &[k]).expect("sign");
            trusted
                .verify_envelope(&env, PAYLOAD_RELEASE)
                .expect("either key");
        }
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        let t = TrustedKeys::single(key().public_key().clone());
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"payloadType\":1}",
            b"{\"payloadType\":\"application/vnd.railgun.release+json\",\"payload\":\"!!\",\"signatures\":[{\"sig\":\"AA==\"}]}",
            b"{\"payloadType\":\"application/vnd.railgun.release+json\",\"payload\":\"\",\"signatures\":[]}",
        ] {
            assert!(t.verify(bad, PAYLOAD_RELEASE).is_err());
        }
        assert!(TrustedKeys::new(vec![], 1).is_err());
        assert!(TrustedKeys::new(vec![key().public_key().clone()], 2).is_err());
        assert!(TrustedKeys::new(vec![key().public_key().clone()], 0).is_err());
    }
}
