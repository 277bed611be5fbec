//! A DSSE envelope as the update and flags clients receive it: verified with the trusted
//! keys (threshold 1) for each payload type, and, when it verifies, its payload parsed as
//! the client would. Seeds: real signed manifest and channel-state envelopes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgun_core::flags::RemoteConfig;
use railgun_core::trust::{SignedDocument, PAYLOAD_CHANNEL, PAYLOAD_CONFIG, PAYLOAD_RELEASE};
use railgun_core::update::{ChannelState, ReleaseManifest};

fuzz_target!(|data: &[u8]| {
    let keys = railgun_fuzz::seed_keys();
    if let Ok(v) = keys.verify(data, PAYLOAD_RELEASE) {
        let _ = ReleaseManifest::from_verified_payload(&v.payload);
    }
    if let Ok(v) = keys.verify(data, PAYLOAD_CHANNEL) {
        let _ = ChannelState::from_verified_payload(&v.payload);
    }
    if let Ok(v) = keys.verify(data, PAYLOAD_CONFIG) {
        let _ = RemoteConfig::parse(&v.payload);
    }
});
