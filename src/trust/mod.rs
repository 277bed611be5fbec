//! Trust: the keys railgun believes and the signed envelopes they make.
//!
//! * [`keys`]: Ed25519 / ECDSA P-256 public and private keys in every accepted form.
//! * [`dsse`]: DSSE v1 envelopes, verification with an expected payload type and a
//!   threshold over distinct trusted keys (rotation = several trusted keys).
//! * [`SignedDocument`]: what the release manifest, the channel state and the remote config
//!   share (name, payload type, rules, verify-then-parse).
//!
//! Nothing outside this module checks a signature by hand.

mod document;
mod dsse;
mod keys;
pub mod sigstore;

pub use document::{SignedDocument, VerifyError};
pub use dsse::{
    pae, DsseError, Envelope, Signature, TrustedKeys, Verified, MAX_ENVELOPE_BYTES, MAX_SIGNATURES,
    PAYLOAD_CHANNEL, PAYLOAD_CONFIG, PAYLOAD_RELEASE,
};
pub use keys::{KeyAlgorithm, KeyError, PrivateKey, PublicKey};
