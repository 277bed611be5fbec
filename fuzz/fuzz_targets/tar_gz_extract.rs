//! `.tar.gz` extraction into an empty folder: whatever the archive holds, nothing may be
//! written outside that folder (checked after every run) and nothing may panic. The first
//! byte chooses: odd, the rest is the `.tar.gz` as is; even, the rest is a tar archive that
//! the target gzips first, so that mutations reach the tar headers past the gzip checksum.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use railgun_core::update::extract_tar_gz;
use railgun_fuzz::Sandbox;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if gz.write_all(rest).is_err() {
            return;
        }
        match gz.finish() {
            Ok(b) => b,
            Err(_) => return,
        }
    };
    let sandbox = Sandbox::new(&bytes, "archive.tar.gz");
    let _ = extract_tar_gz(&sandbox.archive, &sandbox.dest);
    sandbox.check();
});
