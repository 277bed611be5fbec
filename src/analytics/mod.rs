//! Usage analytics: the event wire types, and (client side) consent, sampling, sessions,
//! the durable SQLite queue and the uploader.
//!
//! * [`event`]: `AnalyticsEvent`, upload batches, the server's answer, shared validation;
//! * [`client`]: [`Analytics`] (builder, `track`, `flush`, `shutdown`), the process-wide
//!   handle [`init_analytics`] / [`analytics`], the [`EventSink`] hook;
//! * [`consent`]: `granted | denied | unknown`, stored;
//! * [`queue`]: the bounded durable queue and its writer thread;
//! * [`uploader`]: batches, acknowledgements, backoff, erasure requests;
//! * [`session`]: session ids, sequences, crashed-session recovery;
//! * [`scrub`]: removing emails, home paths and IPs from error messages;
//! * [`debug_line`]: the debug line of an event in the specification's form.
//!
//! ```
//! use railgun_core::analytics::{Analytics, Consent, Properties};
//! let dir = tempfile::tempdir().unwrap();
//! let a = Analytics::builder()
//!     .app("rail-gun")
//!     .state_dir(dir.path())
//!     .default_consent(Consent::Granted)
//!     .build()
//!     .unwrap();
//! a.track("message_sent", Properties::new()).unwrap();
//! let report = a.flush().unwrap(); // durable; nothing sent without a URL
//! assert_eq!(report.held, 2); // session_start + message_sent
//! ```
//!
//! The module refuses to record anything without consent, outside the sample, or with
//! properties that break the shared limits; it never stores IP addresses or raw machine ids.

mod client;
pub(crate) mod consent;
mod debug;
mod event;
mod queue;
pub mod scrub;
pub mod session;
mod uploader;

pub use client::{
    analytics, default_sample_rate, init_analytics, is_sampled, Analytics, AnalyticsBuilder,
    AnalyticsConfig, AnalyticsStats, EventSink, DEFAULT_CHANNEL_CAPACITY,
    DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_UPLOAD_INTERVAL,
};
pub use consent::{load as load_consent, Consent};
pub use debug::debug_line;
pub use event::names;
pub use event::{
    content_uuid, derived_event_id, is_valid_event_name, new_event_id, validate_batch,
    validate_event, validate_properties, AnalyticsEvent, BatchError, EventBatch, EventCategory,
    EventError, IngestResponse, Properties, PropertyValue, RejectedEvent, MAX_BATCH_EVENTS,
    MAX_DROPPED_PER_BATCH, MAX_DURATION_MS, MAX_KEY_LEN, MAX_NAME_LEN, MAX_PROPERTIES,
    MAX_QUEUED_REPORTED, MAX_SEQUENCE, MAX_STRING_LEN, MIN_SAMPLE_RATE,
};
pub use queue::{OpenSession, QueueError, DEFAULT_MAX_QUEUE};
pub use uploader::{
    FlushReport, UploadConfig, UploadError, Uploader, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_EVENTS,
};

/// Errors of the analytics client.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The event breaks the shared limits.
    #[error("invalid analytics event: {0}")]
    InvalidEvent(#[from] event::EventError),
    /// The client store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The uploader could not be set up.
    #[error(transparent)]
    UploadSetup(#[from] UploadError),
    /// The writer could not commit.
    #[error("analytics events could not be written: {0}")]
    Write(#[source] QueueError),
    /// An upload run failed (queue errors; HTTP failures only postpone).
    #[error("analytics upload failed: {0}")]
    Upload(#[source] UploadError),
    /// A configuration value is refused.
    #[error("analytics configuration: {0}")]
    Config(String),
    /// A background thread could not be started (or ended before it started).
    #[error("cannot start an analytics thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The client was shut down.
    #[error("the analytics client is shut down")]
    Closed,
    /// `init_analytics` was called twice.
    #[error("analytics already initialised in this process")]
    AlreadyInitialized,
}
