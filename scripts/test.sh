#!/usr/bin/env bash
# Every test: Rust (core + server + addon crate; SQLite always, PostgreSQL when it can be
# started; the dashboard in headless Chromium), then Node (the addon and the Electron layer).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RAILGUN_TEST_DATABASE_URL:-}" ]; then
  if line=$(bash scripts/start-postgres.sh 2>/dev/null | tail -1) && [[ "$line" == RAILGUN_TEST_DATABASE_URL=* ]]; then
    export "$line"
  else
    echo "PostgreSQL could not be started: the PostgreSQL variants of the analytics suite will be skipped" >&2
  fi
fi
# Headless Chromium (Debian's package) for the dashboard tests, which skip without it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium; } >&2 \
    || echo "chromium could not be installed: the dashboard browser tests will be skipped" >&2
fi
# DuckDB's Python package reads the exported Parquet back (an independent reader), and
# moto's S3-compatible server receives an export over HTTP on loopback (server/tests/it/export.rs).
python3 -m pip install -q --disable-pip-version-check duckdb 'moto[server]' >&2 \
  || echo "duckdb / moto could not be installed: the export tests that need them will be skipped" >&2
cargo test --workspace
bash scripts/test-node.sh
bash scripts/fuzz.sh "${RAILGUN_FUZZ_SECONDS:-10}"
