//! Signed certificate timestamps (SCTs, RFC 6962 §3.2) embedded in Fulcio certificates:
//! the promise of a certificate transparency (CT) log of the trust root that the
//! certificate was logged, so a mis-issued certificate cannot stay hidden.
//!
//! A certificate is accepted when at least one of its embedded SCTs verifies with the key
//! of a CT log of the trust root, over the precertificate (the certificate without its SCT
//! list) and the issuer's key hash, at a time inside that log key's validity. SCTs from
//! logs the trust root does not know are ignored (as sigstore-go does); SCT extensions
//! (used by static CT logs) are signed like any other byte. It refuses a certificate with
//! no SCT list, an unreadable list, or no SCT that verifies.

use sha2::{Digest, Sha256};
use x509_cert::der::asn1::OctetStringRef;
use x509_cert::der::{Decode, Encode};

use super::cert::Cert;
use super::tlog::{LogKey, LogKeyAlg};
use super::SigstoreError;

/// The X.509 extension carrying the SCT list.
const OID_SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";

/// One SCT, as read from the TLS encoding.
struct Sct<'a> {
    log_id: &'a [u8],
    /// Milliseconds since the epoch.
    timestamp: u64,
    extensions: &'a [u8],
    hash_alg: u8,
    sig_alg: u8,
    signature: &'a [u8],
}

/// A reader of TLS (RFC 8446 §3) encoded data.
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn uint(&mut self, n: usize) -> Option<u64> {
        Some(
            self.bytes(n)?
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        )
    }

    /// A vector with a `len_bytes`-byte length prefix.
    fn vector(&mut self, len_bytes: usize) -> Option<&'a [u8]> {
        let n = usize::try_from(self.uint(len_bytes)?).ok()?;
        self.bytes(n)
    }
}

fn parse_sct(raw: &[u8]) -> Option<Sct<'_>> {
    let mut r = Tls(raw);
    if r.uint(1)? != 0 {
        return None; // only v1 exists
    }
    let sct = Sct {
        log_id: r.bytes(32)?,
        timestamp: r.uint(8)?,
        extensions: r.vector(2)?,
        hash_alg: u8::try_from(r.uint(1)?).ok()?,
        sig_alg: u8::try_from(r.uint(1)?).ok()?,
        signature: r.vector(2)?,
    };
    r.0.is_empty().then_some(sct)
}

/// The SCTs of `leaf`: `None` when the list is absent or unreadable.
fn scts(leaf: &Cert) -> Option<Vec<Sct<'_>>> {
    let ext = leaf
        .cert
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id.to_string() == OID_SCT_LIST)?;
    // The extension value is an OCTET STRING holding the TLS `SignedCertificateTimestampList`.
    let inner = OctetStringRef::from_der(ext.extn_value.as_bytes()).ok()?;
    let mut list = Tls(inner.as_bytes());
    let mut all = Tls(list.vector(2)?);
    if !list.0.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    while !all.0.is_empty() {
        out.push(parse_sct(all.vector(2)?)?);
    }
    Some(out)
}

/// The DER of `leaf`'s TBS certificate without the SCT list (the precertificate's TBS).
fn precert_tbs(leaf: &Cert) -> Option<Vec<u8>> {
    let mut tbs = leaf.cert.tbs_certificate.clone();
    if let Some(exts) = tbs.extensions.as_mut() {
        exts.retain(|e| e.extn_id.to_string() != OID_SCT_LIST);
    }
    tbs.to_der().ok()
}

/// What an SCT of a precertificate signs (RFC 6962 §3.2, `digitally-signed struct`).
fn signed_data(sct: &Sct<'_>, issuer_key_hash: &[u8; 32], tbs: &[u8]) -> Option<Vec<u8>> {
    let tbs_len = u32::try_from(tbs.len()).ok().filter(|n| *n < 1 << 24)?;
    let ext_len = u16::try_from(sct.extensions.len()).ok()?;
    let mut m = Vec::with_capacity(tbs.len() + sct.extensions.len() + 50);
    m.push(0); // version v1
    m.push(0); // signature_type certificate_timestamp
    m.extend_from_slice(&sct.timestamp.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    m.extend_from_slice(issuer_key_hash);
    m.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
    m.extend_from_slice(tbs);
    m.extend_from_slice(&ext_len.to_be_bytes());
    m.extend_from_slice(sct.extensions);
    Some(m)
}

/// The TLS `(HashAlgorithm, SignatureAlgorithm)` of a log key's signatures.
fn tls_algorithms(alg: LogKeyAlg) -> (u8, u8) {
    match alg {
        LogKeyAlg::P256 => (4, 3),
        LogKeyAlg::RsaSha256 => (4, 1),
        LogKeyAlg::Ed25519 => (8, 7),
    }
}

/// Checks that at least one SCT of `leaf` (issued by `issuer`) verifies with a CT log of
/// the trust root.
pub(crate) fn check_scts(
    leaf: &Cert,
    issuer: &Cert,
    ct_logs: &[LogKey],
) -> Result<(), SigstoreError> {
    let scts = scts(leaf).ok_or(SigstoreError::NoVerifiedSct { found: 0 })?;
    let tbs = precert_tbs(leaf).ok_or(SigstoreError::NoVerifiedSct { found: 0 })?;
    let issuer_spki = issuer
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| SigstoreError::NoVerifiedSct { found: 0 })?;
    let issuer_key_hash: [u8; 32] = Sha256::digest(&issuer_spki).into();
    let verified = scts.iter().any(|sct| {
        let Some(msg) = signed_data(sct, &issuer_key_hash, &tbs) else {
            return false;
        };
        let secs = i64::try_from(sct.timestamp / 1000).unwrap_or(i64::MAX);
        ct_logs.iter().any(|log| {
            log.log_id == sct.log_id
                && (sct.hash_alg, sct.sig_alg) == tls_algorithms(log.alg)
                && log.valid_for.is_none_or(|v| v.contains(secs))
                && log.verify(&msg, sct.signature)
        })
    });
    if verified {
        Ok(())
    } else {
        Err(SigstoreError::NoVerifiedSct { found: scts.len() })
    }
}
