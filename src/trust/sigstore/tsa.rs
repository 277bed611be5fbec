//! RFC 3161 signed timestamps from a timestamp authority (TSA) of the trust root: the time
//! source of Rekor v2 entries, which carry no signed entry timestamp.
//!
//! A timestamp is accepted when it is a CMS SignedData over a `TSTInfo` whose message
//! imprint is the SHA-256 of the artifact signature, signed (through the `messageDigest`
//! signed attribute) by the leaf certificate of a TSA of the trust root that is for time
//! stamping, chains to that TSA's root, and was valid, like the TSA itself, at the
//! timestamp's `genTime`. Anything else is [`SigstoreError::TimestampInvalid`].

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::cert::Authority;
use super::SigstoreError;

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_SHA384: &str = "2.16.840.1.101.3.4.2.2";
const OID_SHA512: &str = "2.16.840.1.101.3.4.2.3";
/// id-kp-timeStamping.
pub(crate) const OID_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";

/// `TimeStampResp` (RFC 3161 §2.4.2): Sigstore clients store either it or the bare token.
#[derive(Sequence)]
struct TimeStampResp {
    status: Any,
    time_stamp_token: Option<ContentInfo>,
}

#[derive(Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

/// The leading fields of `TSTInfo` (the rest is not needed).
#[derive(Sequence)]
struct TstInfoHead {
    version: u8,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: der::asn1::Int,
    gen_time: GeneralizedTime,
}

fn digest(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    match alg {
        OID_SHA256 => Some(Sha256::digest(data).to_vec()),
        OID_SHA384 => Some(Sha384::digest(data).to_vec()),
        OID_SHA512 => Some(Sha512::digest(data).to_vec()),
        _ => None,
    }
}

/// Verifies timestamp number `index` of the bundle over `signature` (the artifact signature
/// bytes); returns its time (Unix seconds).
pub(crate) fn verify_timestamp(
    index: usize,
    der_bytes: &[u8],
    signature: &[u8],
    authorities: &[Authority],
) -> Result<i64, SigstoreError> {
    let bad = |reason: &'static str| SigstoreError::TimestampInvalid {
        index,
        reason,
        authority: None,
        source: None,
    };
    let unreadable = |reason: &'static str| {
        move |e: der::Error| SigstoreError::TimestampInvalid {
            index,
            reason,
            authority: None,
            source: Some(e.into()),
        }
    };
    let of_tsa = |tsa: &Authority, reason: &'static str| SigstoreError::TimestampInvalid {
        index,
        reason,
        authority: Some(tsa.uri.clone()),
        source: None,
    };
    let token = match ContentInfo::from_der(der_bytes) {
        Ok(ci) => ci,
        Err(_) => TimeStampResp::from_der(der_bytes)
            .map_err(unreadable("not a DER timestamp token or response"))?
            .time_stamp_token
            .ok_or_else(|| bad("the response carries no token"))?,
    };
    if token.content_type.to_string() != OID_SIGNED_DATA {
        return Err(bad("the token is not CMS signed data"));
    }
    let sd: SignedData = token
        .content
        .decode_as()
        .map_err(unreadable("its signed data is not DER"))?;
    if sd.encap_content_info.econtent_type.to_string() != OID_TST_INFO {
        return Err(bad("the signed content is not a TSTInfo"));
    }
    let tst_der = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| bad("no TSTInfo"))?
        .decode_as::<OctetString>()
        .map_err(unreadable("its TSTInfo is not an OCTET STRING"))?
        .as_bytes()
        .to_vec();
    let tst = decode_tst_head(&tst_der).map_err(unreadable("its TSTInfo is not DER"))?;
    let imprint_alg = tst.message_imprint.hash_algorithm.oid.to_string();
    let expected = digest(&imprint_alg, signature)
        .ok_or_else(|| bad("the message imprint's hash is not SHA-256, SHA-384 or SHA-512"))?;
    if tst.message_imprint.hashed_message.as_bytes() != expected.as_slice() {
        return Err(bad("the timestamp is for another signature"));
    }
    let time = i64::try_from(tst.gen_time.to_unix_duration().as_secs())
        .map_err(|_| bad("genTime is out of range"))?;

    let [si] = sd.signer_infos.0.as_slice() else {
        return Err(bad("expected exactly one signer"));
    };
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| bad("no signed attributes"))?;
    let attr = |oid: &str| {
        attrs
            .iter()
            .find(|a| a.oid.to_string() == oid)
            .and_then(|a| a.values.iter().next())
    };
    let content_type_ok = attr(OID_CONTENT_TYPE)
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
        .is_some_and(|o| o.to_string() == OID_TST_INFO);
    if !content_type_ok {
        return Err(bad("the signed content type is not TSTInfo"));
    }
    let content_digest = digest(&si.digest_alg.oid.to_string(), &tst_der)
        .ok_or_else(|| bad("the signer's digest is not SHA-256, SHA-384 or SHA-512"))?;
    let digest_ok = attr(OID_MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .is_some_and(|d| d.as_bytes() == content_digest.as_slice());
    if !digest_ok {
        return Err(bad("the signed message digest does not match the TSTInfo"));
    }
    let signed_bytes = attrs
        .to_der()
        .map_err(unreadable("its signed attributes cannot be encoded"))?;
    let sig_alg = si.signature_algorithm.oid.to_string();
    let sig = si.signature.as_bytes();

    for tsa in authorities {
        let Some(leaf) = tsa.chain.first() else {
            continue;
        };
        if !leaf.verifies(&sig_alg, &signed_bytes, sig) {
            continue;
        }
        if !tsa.valid_for.contains(time) || !leaf.valid_at(time) {
            return Err(of_tsa(
                tsa,
                "the authority was not valid at the timestamp's time",
            ));
        }
        if !leaf.has_eku(OID_TIME_STAMPING) {
            return Err(of_tsa(tsa, "the certificate is not for time stamping"));
        }
        if !tsa.chain_signed || !tsa.chain.iter().all(|c| c.valid_at(time)) {
            return Err(of_tsa(tsa, "the certificate chain is broken or expired"));
        }
        return Ok(time);
    }
    Err(bad("not signed by a timestamp authority of the trust root"))
}

/// Decodes the head of a TSTInfo, ignoring the optional trailing fields.
fn decode_tst_head(der_bytes: &[u8]) -> der::Result<TstInfoHead> {
    use der::{Reader, SliceReader};
    let mut r = SliceReader::new(der_bytes)?;
    r.sequence(|r| {
        let head = TstInfoHead {
            version: r.decode()?,
            policy: r.decode()?,
            message_imprint: r.decode()?,
            serial_number: r.decode()?,
            gen_time: r.decode()?,
        };
        // accuracy, ordering, nonce, tsa, extensions: not needed.
        while !r.is_finished() {
            let _: Any = r.decode()?;
        }
        Ok(head)
    })
}
