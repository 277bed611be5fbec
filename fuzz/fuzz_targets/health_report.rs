//! The body of `POST /analytics/health`: the JSON a client sends, then `validate_report`
//! (what the server checks before storing it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgun_core::health::{validate_report, HealthReport};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<HealthReport>(data) {
        if validate_report(&r).is_ok() {
            // The server stores both instants as milliseconds.
            let _ = (
                r.period_start.timestamp_millis(),
                r.period_end.timestamp_millis(),
            );
        }
    }
});
