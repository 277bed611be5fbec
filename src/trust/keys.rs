//! Public and private signing keys: Ed25519 (default) and ECDSA P-256/SHA-256.
//!
//! Owns reading keys in every form railgun accepts (SPKI PEM, base64 of that PEM as in
//! `RAILGUN_UPDATE_PUBLIC_KEY`, raw 32-byte Ed25519 in base64, base64 SPKI DER; PKCS#8 PEM
//! private keys: Ed25519 v1 and v2, ECDSA P-256), writing them (Ed25519 as PKCS#8 v1, what
//! OpenSSL and Python's `cryptography` read), the `keyid` (lowercase hex SHA-256 of the SPKI DER), signing and
//! verification through `ring`. It refuses encrypted or SEC1 private keys with a message
//! that says how to convert them, and any other algorithm.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410 §7: `OneAsymmetricKey` version 0,
/// no public key), followed by the 32-byte seed: the form OpenSSL and Python's
/// `cryptography` read (they refuse `ring`'s v2 with the public key attached).
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER prefix of an ECDSA P-256 SubjectPublicKeyInfo (RFC 5480), followed by the
/// 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Errors reading, using or writing keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Text that is none of the accepted key forms.
    #[error("not a public key: expected SPKI PEM, base64 of a PEM, or a base64 Ed25519 key ({0})")]
    UnrecognizedPublicKey(String),
    /// A key of an algorithm railgun does not use.
    #[error("unsupported key algorithm: only Ed25519 and ECDSA P-256 keys are accepted")]
    UnsupportedAlgorithm,
    /// PEM with the wrong label or broken armour.
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// A private key railgun cannot read.
    #[error("unreadable private key: {0}")]
    PrivateKey(String),
    /// A signature that does not verify.
    #[error("signature does not verify with key {keyid}")]
    BadSignature {
        /// The key that was tried.
        keyid: String,
    },
    /// Signing failed (only for ECDSA when the system random source fails).
    #[error("signing failed")]
    Signing,
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A signature algorithm railgun accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// Ed25519 (the default).
    Ed25519,
    /// ECDSA over P-256 with SHA-256, ASN.1 DER signatures (cosign's keys).
    EcdsaP256,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::EcdsaP256 => "p256",
        })
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            "p256" | "p-256" | "ecdsa-p256" | "ecdsa" => Ok(KeyAlgorithm::EcdsaP256),
            _ => Err(KeyError::UnsupportedAlgorithm),
        }
    }
}

/// A public key able to verify signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
    keyid: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .field("keyid", &self.keyid)
            .finish()
    }
}

impl PublicKey {
    /// Reads a key from SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let algorithm = if der.len() == ED25519_SPKI_PREFIX.len() + 32
            && der.starts_with(&ED25519_SPKI_PREFIX)
        {
            KeyAlgorithm::Ed25519
        } else if der.len() == P256_SPKI_PREFIX.len() + 65
            && der.starts_with(&P256_SPKI_PREFIX)
            && der[P256_SPKI_PREFIX.len()] == 0x04
        {
            KeyAlgorithm::EcdsaP256
        } else {
            return Err(KeyError::UnsupportedAlgorithm);
        };
        Ok(Self {
            algorithm,
            keyid: hex::encode(Sha256::digest(der)),
            spki_der: der.to_vec(),
        })
    }

    /// Reads a raw 32-byte Ed25519 public key.
    pub fn from_ed25519_raw(raw: &[u8]) -> Result<Self, KeyError> {
        if raw.len() != 32 {
            return Err(KeyError::UnrecognizedPublicKey(format!(
                "a raw Ed25519 key has 32 bytes, got {}",
                raw.len()
            )));
        }
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(raw);
        Self::from_spki_der(&der)
    }

    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM block.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = decode_pem(pem)?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::Pem(format!(
                "expected a PUBLIC KEY block, found {label}"
            )));
        }
        Self::from_spki_der(&der)
    }

    /// Reads a public key in any accepted form: SPKI PEM, base64 of a PEM
    /// (`RAILGUN_UPDATE_PUBLIC_KEY`), raw 32-byte Ed25519 in base64, or base64 SPKI DER.
    ///
    /// ```
    /// use railgun_core::trust::{PrivateKey, PublicKey, KeyAlgorithm};
    /// let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
    /// let pem = key.public_key().to_pem();
    /// let parsed = PublicKey::parse(&pem).unwrap();
    /// assert_eq!(parsed.keyid(), key.public_key().keyid());
    /// ```
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return Self::from_pem(text);
        }
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = decode_base64_any(&compact).ok_or_else(|| {
            KeyError::UnrecognizedPublicKey("neither PEM nor valid base64".into())
        })?;
        if bytes.starts_with(b"-----BEGIN") {
            let inner = std::str::from_utf8(&bytes)
                .map_err(|_| KeyError::Pem("base64-encoded PEM is not UTF-8".into()))?;
            return Self::from_pem(inner);
        }
        if bytes.len() == 32 {
            return Self::from_ed25519_raw(&bytes);
        }
        Self::from_spki_der(&bytes)
    }

    /// Reads a public key file (any accepted form).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Lowercase hex SHA-256 of the SPKI DER.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> String {
        encode_pem("PUBLIC KEY", &self.spki_der)
    }

    /// Base64 of the PEM: the `RAILGUN_UPDATE_PUBLIC_KEY` form.
    pub fn to_base64_pem(&self) -> String {
        STANDARD.encode(self.to_pem())
    }

    fn raw(&self) -> &[u8] {
        match self.algorithm {
            KeyAlgorithm::Ed25519 => &self.spki_der[ED25519_SPKI_PREFIX.len()..],
            KeyAlgorithm::EcdsaP256 => &self.spki_der[P256_SPKI_PREFIX.len()..],
        }
    }

    /// Verifies `sig` over `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        let alg: &dyn signature::VerificationAlgorithm = match self.algorithm {
            KeyAlgorithm::Ed25519 => &signature::ED25519,
            KeyAlgorithm::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
        };
        UnparsedPublicKey::new(alg, self.raw())
            .verify(message, sig)
            .map_err(|_| KeyError::BadSignature {
                keyid: self.keyid.clone(),
            })
    }
}

enum Signer {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

/// A private signing key (PKCS#8).
pub struct PrivateKey {
    pkcs8: Vec<u8>,
    signer: Signer,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("PrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a new key. Ed25519 keys are PKCS#8 v1 (RFC 8410: the seed only), ECDSA
    /// P-256 keys PKCS#8 with the SEC1 key inside: both forms OpenSSL
    /// (`openssl pkey -in release.key -noout`) and Python's `cryptography` read.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let failed = |_| KeyError::PrivateKey("key generation failed".into());
        match algorithm {
            KeyAlgorithm::Ed25519 => {
                let seed: [u8; 32] = ring::rand::generate(&rng).map_err(failed)?.expose();
                let mut der = ED25519_PKCS8_V1_PREFIX.to_vec();
                der.extend_from_slice(&seed);
                Self::from_pkcs8_der(&der)
            }
            KeyAlgorithm::EcdsaP256 => {
                let doc =
                    EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                        .map_err(failed)?;
                Self::from_pkcs8_der(doc.as_ref())
            }
        }
    }

    /// Reads a PKCS#8 DER private key (Ed25519 v1 or v2, or ECDSA P-256).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let public = PublicKey::from_ed25519_raw(kp.public_key().as_ref())?;
            return Ok(Self {
                pkcs8: der.to_vec(),
                signer: Signer::Ed25519(kp),
                public,
            });
        }
        let rng = SystemRandom::new();
        match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng) {
            Ok(kp) => {
                let mut spki = P256_SPKI_PREFIX.to_vec();
                spki.extend_from_slice(kp.public_key().as_ref());
                let public = PublicKey::from_spki_der(&spki)?;
                Ok(Self {
                    pkcs8: der.to_vec(),
                    signer: Signer::EcdsaP256(kp),
                    public,
                })
            }
            Err(_) => Err(KeyError::PrivateKey(
                "not an Ed25519 or ECDSA P-256 PKCS#8 key".into(),
            )),
        }
    }

    /// Reads a `-----BEGIN PRIVATE KEY-----` (PKCS#8) PEM block.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = decode_pem(pem)?;
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                Err(KeyError::PrivateKey(
                    "encrypted cosign keys are not read directly; export it first \
                     (cosign export ... or openssl pkcs8 -topk8 -nocrypt)"
                        .into(),
                ))
            }
            "EC PRIVATE KEY" => Err(KeyError::PrivateKey(
                "SEC1 EC key: convert it with `openssl pkcs8 -topk8 -nocrypt`".into(),
            )),
            other => Err(KeyError::Pem(format!(
                "expected a PRIVATE KEY block, found {other}"
            ))),
        }
    }

    /// Reads a PKCS#8 PEM key file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&text)
    }

    /// PKCS#8 PEM. Handle with care: this is the secret.
    pub fn to_pem(&self) -> String {
        encode_pem("PRIVATE KEY", &self.pkcs8)
    }

    /// Writes the PKCS#8 PEM to `path` with mode 0600 (refusing to overwrite a file).
    pub fn write_pem_file(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        use std::io::Write;
        let path = path.as_ref();
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(self.to_pem().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public.algorithm
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.signer {
            Signer::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Signer::EcdsaP256(kp) => kp
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
        }
    }
}

/// Decodes standard or URL-safe base64, padded or not.
pub(crate) fn decode_base64_any(s: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
        .ok()
}

fn decode_pem(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let pem = pem.trim();
    let first = pem.lines().next().unwrap_or_default().trim();
    let label = first
        .strip_prefix("-----BEGIN ")
        .and_then(|s| s.strip_suffix("-----"))
        .ok_or_else(|| KeyError::Pem("missing -----BEGIN line".into()))?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in pem.lines().skip(1) {
        let line = line.trim();
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err(KeyError::Pem(
                "PEM headers (encrypted keys) are not supported".into(),
            ));
        }
        body.push_str(line);
    }
    if !ended {
        return Err(KeyError::Pem(format!("missing {end}")));
    }
    let der = STANDARD
        .decode(body)
        .map_err(|e| KeyError::Pem(format!("bad base64 in PEM body: {e}")))?;
    Ok((label, der))
}

fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl genpkey -algorithm ed25519` / `openssl ecparam -genkey -name prime256v1 | openssl pkcs8 -topk8 -nocrypt`
    const OPENSSL_ED25519_PRIV: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIOHH7r5XgKWALNUuxVVYdwVcgKrCkELoizK64QenxBxk
-----END PRIVATE KEY-----";

    #[test]
    fn round_trips_every_public_form() {
        for alg in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
            let key = PrivateKey::generate(alg).expect("generate");
            let public = key.public_key();
            assert_eq!(public.keyid().len(), 64);
            assert_eq!(PublicKey::parse(&public.to_pem()).expect("pem"), *public);
            assert_eq!(
                PublicKey::parse(&public.to_base64_pem()).expect("b64 pem"),
                *public
            );
            assert_eq!(
                PublicKey::parse(&STANDARD.encode(public.spki_der())).expect("der"),
                *public
            );
            let again = PrivateKey::from_pem(&key.to_pem()).expect("private pem");
            assert_eq!(again.public_key(), public);
            let sig = key.sign(b"hello").expect("sign");
            public.verify(b"hello", &sig).expect("verify");
            assert!(public.verify(b"hullo", &sig).is_err());
        }
    }

    #[test]
    fn reads_raw_ed25519_and_openssl_pkcs8_v1() {
        let key = PrivateKey::from_pem(OPENSSL_ED25519_PRIV).expect("openssl key");
        let raw = &key.public_key().spki_der()[12..];
        let parsed = PublicKey::parse(&STANDARD.encode(raw)).expect("raw");
        assert_eq!(&parsed, key.public_key());
        assert_eq!(parsed.algorithm(), KeyAlgorithm::Ed25519);
    }

    #[test]
    fn generated_ed25519_keys_are_pkcs8_v1_and_v2_keys_are_still_read() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("generate");
        let (label, der) = decode_pem(&key.to_pem()).expect("pem");
        assert_eq!(label, "PRIVATE KEY");
        assert_eq!(der.len(), 48, "version 0, the seed only");
        assert!(der.starts_with(&ED25519_PKCS8_V1_PREFIX));
        // What `railgun keygen` wrote before (ring's v2, public key attached) still signs.
        let v2 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("v2");
        assert_eq!(v2.as_ref()[4], 0x01, "version 1 (PKCS#8 v2)");
        let old = PrivateKey::from_pkcs8_der(v2.as_ref()).expect("v2 is read");
        let again = PrivateKey::from_pem(&old.to_pem()).expect("and written back as it was");
        let sig = again.sign(b"release").expect("sign");
        old.public_key().verify(b"release", &sig).expect("verify");
    }

    #[test]
    fn refuses_garbage_and_other_algorithms() {
        assert!(PublicKey::parse("not a key at all!").is_err());
        assert!(PublicKey::parse("").is_err());
        assert!(PublicKey::parse(&STANDARD.encode([1u8; 31])).is_err());
        assert!(matches!(
            PublicKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(KeyError::UnsupportedAlgorithm)
        ));
        assert!(
            PublicKey::parse("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----").is_err()
        );
        assert!(PublicKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA").is_err());
        assert!(PrivateKey::from_pem(
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----"
        )
        .is_err());
    }

    #[test]
    fn writes_private_keys_with_mode_0600_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("release.key");
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).expect("gen");
        key.write_pem_file(&path).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(key.write_pem_file(&path).is_err());
        let back = PrivateKey::from_file(&path).expect("read");
        assert_eq!(back.public_key(), key.public_key());
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }
}
