//! A release manifest payload (after its signature verified): parse and every rule of
//! `validate`, then the client's artifact choice and rollout policy on what passed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgun_core::trust::SignedDocument;
use railgun_core::update::ReleaseManifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ReleaseManifest::from_verified_payload(data) {
        let _ = m.rollout_policy();
        for a in &m.artifacts {
            let _ = m.select_artifact(a.platform, a.arch, &[a.format]);
        }
    }
});
