//! `.zip` extraction into an empty folder: whatever the archive holds, nothing may be
//! written outside that folder (checked after every run) and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgun_core::update::extract_zip;
use railgun_fuzz::Sandbox;

fuzz_target!(|data: &[u8]| {
    let sandbox = Sandbox::new(data, "archive.zip");
    let _ = extract_zip(&sandbox.archive, &sandbox.dest);
    sandbox.check();
});
