#!/usr/bin/env bash
# Every test: Rust (core + server, SQLite always; PostgreSQL when it can be started).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RAILGUN_TEST_DATABASE_URL:-}" ]; then
  if line=$(bash scripts/start-postgres.sh 2>/dev/null | tail -1) && [[ "$line" == RAILGUN_TEST_DATABASE_URL=* ]]; then
    export "$line"
  else
    echo "PostgreSQL could not be started: the PostgreSQL variants of the analytics suite will be skipped" >&2
  fi
fi
cargo test --workspace
