//! The `Range` request header of the update tree (`parse_range`): the first 8 bytes are
//! the representation's length (little-endian), the rest the header value. A partial
//! answer must lie inside the representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgun_server::serve::range::{parse_range, RangeAnswer};

fuzz_target!(|data: &[u8]| {
    let Some((len, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_le_bytes(*len);
    if let RangeAnswer::Partial { start, end } = parse_range(header, len) {
        assert!(start <= end && end < len, "{start}-{end} of {len}");
    }
});
