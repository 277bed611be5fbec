//! A remote config (feature flags, announcements, maintenance): parse and validate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgun_core::flags::RemoteConfig;

fuzz_target!(|data: &[u8]| {
    let _ = RemoteConfig::parse(data);
});
