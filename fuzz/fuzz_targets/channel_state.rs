//! A channel state payload (after its signature verified): parse and validate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgun_core::trust::SignedDocument;
use railgun_core::update::ChannelState;

fuzz_target!(|data: &[u8]| {
    let _ = ChannelState::from_verified_payload(data);
});
