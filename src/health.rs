//! Rollout health on the client (to be built: per-version error and crash counters and the
//! periodic health report).
