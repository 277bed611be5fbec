//! Sigstore bundle verification (to be built).
