//! Feature flags and remote config (to be built: schema, fetching, evaluation, cache).
