//! The body of `POST /analytics/events`: the server's parse and validation of a batch
//! (`prepare_batch`, exactly what the handler runs before the queue), at a fixed instant.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use railgun_server::analytics::ingest::prepare_batch;

fuzz_target!(|data: &[u8]| {
    let now: DateTime<Utc> = DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
    if let Ok(batch) = prepare_batch(data, now) {
        // Every row kept is inside the accepted window.
        for row in &batch.rows {
            assert!(row.ts_ms <= now.timestamp_millis() + 8 * 86_400_000);
        }
    }
});
