//! Update download (to be built).
