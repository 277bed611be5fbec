//! Usage analytics: the event wire types, and (client side) consent, sampling, sessions,
//! the durable SQLite queue and the uploader.
//!
//! * [`event`]: `AnalyticsEvent`, upload batches, the server's answer, shared validation.

pub mod event;

pub use event::{AnalyticsEvent, EventBatch, EventCategory, IngestResponse, PropertyValue};
