//! What every signed document shares: the release manifest, the channel state and the
//! remote config are each a JSON payload inside a DSSE envelope of their own payload type,
//! parsed only after the signature verified, then checked against the rules the types
//! cannot express.
//!
//! Owns the [`SignedDocument`] trait (as tough's `Role` does for TUF roles) and its one
//! parse: plain `serde_json` first, and only for a document that fails, a second pass that
//! names the field (`field artifacts[0].size: invalid type: ...`). It refuses to parse
//! anything before verification: [`SignedDocument::from_verified_payload`] takes the payload
//! of a [`Verified`](super::Verified) envelope, and [`SignedDocument::verify`] does both.

use super::{DsseError, TrustedKeys};

/// A signed document type: its name, its DSSE payload type, and its rules.
pub trait SignedDocument: Sized + serde::de::DeserializeOwned {
    /// The document's name in messages (`"release manifest"`).
    const DOC: &'static str;
    /// The DSSE payload type its envelopes must carry.
    const PAYLOAD_TYPE: &'static str;
    /// Why a document is refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The error for bytes that are not this document's JSON; `message` names the field.
    fn malformed(message: String) -> Self::Error;

    /// Checks every rule the types cannot express.
    fn validate(&self) -> Result<(), Self::Error>;

    /// Parses verified payload bytes and validates them.
    fn from_verified_payload(bytes: &[u8]) -> Result<Self, Self::Error> {
        let doc: Self = parse_json(bytes).map_err(Self::malformed)?;
        doc.validate()?;
        Ok(doc)
    }

    /// Verifies the envelope `raw` with `keys` and this document's payload type, then
    /// parses and validates its payload.
    fn verify(raw: &[u8], keys: &TrustedKeys) -> Result<Self, VerifyError<Self::Error>> {
        let verified =
            keys.verify(raw, Self::PAYLOAD_TYPE)
                .map_err(|source| VerifyError::Signature {
                    document: Self::DOC,
                    source,
                })?;
        Self::from_verified_payload(&verified.payload).map_err(VerifyError::Document)
    }
}

/// Why [`SignedDocument::verify`] refused an envelope.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError<E: std::error::Error + 'static> {
    /// The signature (or payload type, or threshold) was refused.
    #[error("{document} signature refused: {source}")]
    Signature {
        /// Which document.
        document: &'static str,
        /// Why.
        #[source]
        source: DsseError,
    },
    /// The signature verified; the document breaks a rule.
    #[error(transparent)]
    Document(E),
}

/// Parses JSON, naming the field of the first error (`field a.b[2]: ...`).
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    // The fast path: plain serde_json. Only a document that fails is parsed again with the
    // path-tracking deserializer, to name the field in the message.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("field {path}: {inner}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{Envelope, KeyAlgorithm, PrivateKey};

    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        n: u32,
        items: Vec<u32>,
    }

    #[derive(Debug, thiserror::Error, PartialEq)]
    enum DocError {
        #[error("malformed: {0}")]
        Malformed(String),
        #[error("n must be positive")]
        Zero,
    }

    impl SignedDocument for Doc {
        const DOC: &'static str = "test document";
        const PAYLOAD_TYPE: &'static str = "application/vnd.railgun.test+json";
        type Error = DocError;
        fn malformed(message: String) -> DocError {
            DocError::Malformed(message)
        }
        fn validate(&self) -> Result<(), DocError> {
            if self.n == 0 {
                return Err(DocError::Zero);
            }
            Ok(())
        }
    }

    #[test]
    fn a_payload_is_parsed_then_validated_and_a_bad_field_is_named() {
        let d = Doc::from_verified_payload(br#"{"n":2,"items":[1]}"#).expect("doc");
        assert_eq!((d.n, d.items.len()), (2, 1));
        assert_eq!(
            Doc::from_verified_payload(br#"{"n":0,"items":[]}"#).expect_err("rule"),
            DocError::Zero
        );
        match Doc::from_verified_payload(br#"{"n":1,"items":[1,"two"]}"#) {
            Err(DocError::Malformed(m)) => assert!(m.starts_with("field items[1]: "), "{m}"),
            other => panic!("{other:?}"),
        }
        match Doc::from_verified_payload(b"not json") {
            Err(DocError::Malformed(m)) => assert!(!m.starts_with("field"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verify_checks_the_signature_and_the_payload_type_before_parsing() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
        let keys = TrustedKeys::single(key.public_key().clone());
        let good = Envelope::sign(Doc::PAYLOAD_TYPE, br#"{"n":1,"items":[]}"#, &[&key])
            .expect("sign")
            .to_json_bytes();
        assert_eq!(Doc::verify(&good, &keys).expect("verified").n, 1);
        // The same payload under another document's type is refused before it is parsed.
        let other = Envelope::sign(
            crate::trust::PAYLOAD_CONFIG,
            br#"{"n":1,"items":[]}"#,
            &[&key],
        )
        .expect("sign")
        .to_json_bytes();
        assert!(matches!(
            Doc::verify(&other, &keys),
            Err(VerifyError::Signature {
                document: "test document",
                ..
            })
        ));
        let stranger = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("key");
        let forged = Envelope::sign(Doc::PAYLOAD_TYPE, br#"{"n":1,"items":[]}"#, &[&stranger])
            .expect("sign")
            .to_json_bytes();
        assert!(matches!(
            Doc::verify(&forged, &keys),
            Err(VerifyError::Signature { .. })
        ));
        let broken = Envelope::sign(Doc::PAYLOAD_TYPE, br#"{"n":0,"items":[]}"#, &[&key])
            .expect("sign")
            .to_json_bytes();
        assert!(matches!(
            Doc::verify(&broken, &keys),
            Err(VerifyError::Document(DocError::Zero))
        ));
    }
}
