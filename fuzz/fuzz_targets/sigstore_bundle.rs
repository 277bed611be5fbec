//! A Sigstore bundle, verified offline against the public-good and the staging trust
//! roots, for an artifact given by digest (the input's own SHA-256 half the time, a fixed
//! digest otherwise). Seeds: the real bundles of tests/data and the sigstore-conformance
//! cases.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let own: [u8; 32] = Sha256::digest(data).into();
    for v in railgun_fuzz::sigstore_verifiers() {
        let _ = v.verify_digest(&own, data);
        let _ = v.verify_digest(&[0x5a; 32], data);
    }
});
