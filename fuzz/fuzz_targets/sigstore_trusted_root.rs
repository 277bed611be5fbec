//! A `trusted_root.json`: loaded, then used to verify a real bundle (so that whatever it
//! let through is exercised: logs, CT logs, certificate and timestamp authorities).
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgun_core::trust::sigstore::{IdentityMatcher, IdentityPolicy, SigstoreVerifier};
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let policy = IdentityPolicy {
        identity: IdentityMatcher::Exact(
            "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
                .into(),
        ),
        issuer: "https://token.actions.githubusercontent.com".into(),
    };
    if let Ok(v) = SigstoreVerifier::with_trusted_root_json(data, policy) {
        let digest: [u8; 32] = Sha256::digest(data).into();
        let _ = v.verify_digest(&digest, railgun_fuzz::WHEEL_BUNDLE);
    }
});
