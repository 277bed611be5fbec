//! Update install (to be built).
