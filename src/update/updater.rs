//! Update updater (to be built).
