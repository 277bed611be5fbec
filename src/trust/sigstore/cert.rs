//! Fulcio certificates: the leaf's chain to a certificate authority of the trust root, its
//! validity at the log's integrated time, its code-signing usage, and the identity (SAN)
//! and OIDC issuer it carries. Certificate signatures are ECDSA P-256/P-384 with
//! SHA-256/SHA-384 (the public-good Fulcio) or RSA PKCS#1 v1.5 with SHA-256/384/512 (a
//! private Fulcio with an RSA CA); any other algorithm is refused.

use ring::signature::{self, UnparsedPublicKey};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::Certificate;

use super::model::ValidFor;
use super::SigstoreError;

const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const OID_SAN: &str = "2.5.29.17";
const OID_EKU: &str = "2.5.29.37";
const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
/// Fulcio's OIDC issuer extension (v1, raw string).
const OID_FULCIO_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio's OIDC issuer extension (v2, DER UTF8String).
const OID_FULCIO_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";

/// The kind of a certificate's subject key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// An EC key on the curve of this OID (empty when the parameters name none).
    Ec(String),
    /// An RSA key.
    Rsa,
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ec(curve) => write!(f, "EC key on curve {curve}"),
            Self::Rsa => f.write_str("RSA key"),
        }
    }
}

/// A parsed certificate with its DER.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

/// A certificate authority of the trust root: its chain (issuing certificate first) and
/// the window in which it may have issued certificates.
#[derive(Debug, Clone)]
pub(crate) struct Authority {
    pub uri: String,
    pub chain: Vec<Cert>,
    pub valid_for: ValidFor,
    /// Whether each certificate of the chain is signed by the next (checked once, at load).
    pub chain_signed: bool,
}

impl Authority {
    pub(crate) fn new(uri: String, chain: Vec<Cert>, valid_for: ValidFor) -> Self {
        let chain_signed = chain.windows(2).all(|w| w[0].signed_by(&w[1]));
        Self {
            uri,
            chain,
            valid_for,
            chain_signed,
        }
    }
}

impl Cert {
    /// Reads a DER certificate (the caller names the part it came from).
    pub(crate) fn from_der(der: Vec<u8>) -> Result<Self, x509_cert::der::Error> {
        let cert = Certificate::from_der(&der)?;
        Ok(Self { der, cert })
    }

    fn not_before(&self) -> i64 {
        unix(self.cert.tbs_certificate.validity.not_before)
    }

    fn not_after(&self) -> i64 {
        unix(self.cert.tbs_certificate.validity.not_after)
    }

    /// Whether the certificate is valid at `t` (Unix seconds).
    pub(crate) fn valid_at(&self, t: i64) -> bool {
        self.not_before() <= t && t <= self.not_after()
    }

    /// The subject public key: its kind and its bytes (the SEC1 point of an EC key, the
    /// PKCS#1 `RSAPublicKey` DER of an RSA key).
    pub(crate) fn public_key(&self) -> (KeyKind, &[u8]) {
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        let kind = if spki.algorithm.oid.to_string() == OID_RSA_ENCRYPTION {
            KeyKind::Rsa
        } else {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                .map(|o| o.to_string())
                .unwrap_or_default();
            KeyKind::Ec(curve)
        };
        (kind, spki.subject_public_key.raw_bytes())
    }

    /// Whether this is a root certificate (issued by its own subject).
    pub(crate) fn is_self_signed(&self) -> bool {
        let tbs = &self.cert.tbs_certificate;
        tbs.issuer == tbs.subject
    }

    /// Whether `issuer`'s key signed this certificate.
    pub(crate) fn signed_by(&self, issuer: &Cert) -> bool {
        let Ok(tbs) = self.cert.tbs_certificate.to_der() else {
            return false;
        };
        let Some(sig) = self.cert.signature.as_bytes() else {
            return false;
        };
        issuer.verifies(&self.cert.signature_algorithm.oid.to_string(), &tbs, sig)
    }

    /// Whether this certificate's key made `sig` over `msg` with the signature algorithm
    /// `sig_alg_oid` (ECDSA, or RSA PKCS#1 v1.5 for an RSA key).
    pub(crate) fn verifies(&self, sig_alg_oid: &str, msg: &[u8], sig: &[u8]) -> bool {
        let (kind, key) = self.public_key();
        let alg: &dyn signature::VerificationAlgorithm = match (&kind, sig_alg_oid) {
            (KeyKind::Ec(c), OID_ECDSA_SHA256) if c == OID_P256 => {
                &signature::ECDSA_P256_SHA256_ASN1
            }
            (KeyKind::Ec(c), OID_ECDSA_SHA384) if c == OID_P256 => {
                &signature::ECDSA_P256_SHA384_ASN1
            }
            (KeyKind::Ec(c), OID_ECDSA_SHA256) if c == OID_P384 => {
                &signature::ECDSA_P384_SHA256_ASN1
            }
            (KeyKind::Ec(c), OID_ECDSA_SHA384) if c == OID_P384 => {
                &signature::ECDSA_P384_SHA384_ASN1
            }
            (KeyKind::Rsa, OID_RSA_SHA256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa, OID_RSA_SHA384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa, OID_RSA_SHA512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            _ => return false,
        };
        UnparsedPublicKey::new(alg, key).verify(msg, sig).is_ok()
    }

    fn extension(&self, oid: &str) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// The identity: the first URI or e-mail subject alternative name.
    pub(crate) fn identity(&self) -> Result<String, SigstoreError> {
        let raw = self
            .extension(OID_SAN)
            .ok_or_else(|| bad_cert("the certificate has no subject alternative name", None))?;
        let san = SubjectAltName::from_der(raw)
            .map_err(|e| bad_cert("its subject alternative name is not DER", Some(e.into())))?;
        san.0
            .iter()
            .find_map(|n| match n {
                GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
                GeneralName::Rfc822Name(m) => Some(m.to_string()),
                _ => None,
            })
            .ok_or_else(|| bad_cert("no URI or e-mail subject alternative name", None))
    }

    /// The OIDC issuer recorded by Fulcio.
    pub(crate) fn oidc_issuer(&self) -> Result<String, SigstoreError> {
        if let Some(raw) = self.extension(OID_FULCIO_ISSUER_V2) {
            let s = x509_cert::der::asn1::Utf8StringRef::from_der(raw).map_err(|e| {
                bad_cert(
                    "its OIDC issuer extension is not a DER UTF8String",
                    Some(e.into()),
                )
            })?;
            return Ok(s.as_str().to_string());
        }
        if let Some(raw) = self.extension(OID_FULCIO_ISSUER_V1) {
            return String::from_utf8(raw.to_vec())
                .map_err(|e| bad_cert("its OIDC issuer extension is not UTF-8", Some(e.into())));
        }
        Err(bad_cert("the certificate names no OIDC issuer", None))
    }

    /// Whether the extended key usage allows code signing.
    pub(crate) fn allows_code_signing(&self) -> bool {
        self.has_eku(OID_CODE_SIGNING)
    }

    /// Whether the extended key usage lists `oid`.
    pub(crate) fn has_eku(&self, oid: &str) -> bool {
        self.extension(OID_EKU)
            .and_then(|raw| ExtendedKeyUsage::from_der(raw).ok())
            .is_some_and(|eku| eku.0.iter().any(|o| o.to_string() == oid))
    }
}

fn bad_cert(reason: &'static str, source: Option<super::ParseError>) -> SigstoreError {
    SigstoreError::Certificate { reason, source }
}

fn unix(t: x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// Checks that `leaf` chains to one of `authorities` and that every certificate of that
/// chain, and the authority itself, was valid at `time`; returns the issuing certificate.
pub(crate) fn check_chain<'a>(
    leaf: &Cert,
    authorities: &'a [Authority],
    time: i64,
) -> Result<&'a Cert, SigstoreError> {
    if !leaf.valid_at(time) {
        return Err(SigstoreError::CertificateNotValidAtTime {
            not_before: to_utc(leaf.not_before()),
            not_after: to_utc(leaf.not_after()),
            time: to_utc(time),
        });
    }
    if !leaf.allows_code_signing() {
        return Err(SigstoreError::Chain {
            reason: "the certificate is not for code signing",
            authority: None,
        });
    }
    for ca in authorities {
        let Some(first) = ca.chain.first() else {
            continue;
        };
        if !leaf.signed_by(first) {
            continue;
        }
        if !ca.valid_for.contains(time) {
            return Err(SigstoreError::Chain {
                reason: "issued outside the authority's validity in the trust root",
                authority: Some(ca.uri.clone()),
            });
        }
        let chain_ok = ca.chain_signed && ca.chain.iter().all(|c| c.valid_at(time));
        if !chain_ok {
            return Err(SigstoreError::Chain {
                reason: "the authority's chain is broken or expired at that time",
                authority: Some(ca.uri.clone()),
            });
        }
        return Ok(first);
    }
    Err(SigstoreError::Chain {
        reason: "the certificate was not issued by a certificate authority of the trust root",
        authority: None,
    })
}

pub(crate) fn to_utc(t: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t, 0).unwrap_or_default()
}
