#!/usr/bin/env bash
# Every test: Rust (core + server + addon crate; SQLite always, PostgreSQL when it can be
# started; the dashboard in headless Chromium), then Node (the addon and the Electron layer).
set -euo pipefail
cd "$(dirname "$0")/.."
# Under RAILGUN_REQUIRE_ALL=1 (set by .ci/run) a dependency that cannot be provided stops the
# run here, and the tests that need it fail instead of skipping; otherwise they say SKIP.
missing() {
  if [ "${RAILGUN_REQUIRE_ALL:-}" = 1 ]; then
    echo "test.sh: $1, and RAILGUN_REQUIRE_ALL=1: stopping" >&2
    exit 1
  fi
  echo "$1: $2 will be skipped" >&2
}
if [ -z "${RAILGUN_TEST_DATABASE_URL:-}" ]; then
  if line=$(bash scripts/start-postgres.sh 2>/dev/null | tail -1) && [[ "$line" == RAILGUN_TEST_DATABASE_URL=* ]]; then
    export "$line"
  else
    missing "PostgreSQL could not be started (scripts/start-postgres.sh)" "the PostgreSQL variants of the server suites"
  fi
fi
# Headless Chromium (Debian's package) for the dashboard tests, which skip without it.
have_chromium() {
  [ -n "${RAILGUN_CHROMIUM:-}" ] && [ -x "${RAILGUN_CHROMIUM}" ] && return 0
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || command -v google-chrome >/dev/null 2>&1 || command -v google-chrome-stable >/dev/null 2>&1
}
if ! have_chromium && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium; } >&2 || true
fi
have_chromium || missing "Chromium could not be installed (apt-get install chromium, as root)" "the dashboard browser tests"
# promtool (Debian's prometheus package) checks and unit-tests deploy/prometheus/alerts.yml.
if ! command -v promtool >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } >&2 || true
fi
command -v promtool >/dev/null 2>&1 || missing "promtool could not be installed (apt-get install prometheus, as root)" "the Prometheus rule tests"
# DuckDB's Python package reads the exported Parquet back (an independent reader), and
# nginx (Debian's nginx-light) balances three servers with deploy/nginx/railgun.conf (scale_tree).
if ! { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light; } >&2 || true
fi
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || missing "nginx could not be installed (apt-get install nginx-light, as root)" "the balancer test"
# moto's S3-compatible server receives an export over HTTP on loopback (server/tests/it/export.rs).
python3 -m pip install -q --disable-pip-version-check duckdb 'moto[server]' >&2 \
  || missing "duckdb / moto could not be installed (pip)" "the export tests that need them"
# OpenSSL 3 (Debian's openssl) and Python's cryptography read the keys `railgun keygen` writes
# (server/tests/it/keygen.rs): two independent readers of PKCS#8.
if ! command -v openssl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq openssl; } >&2 || true
fi
command -v openssl >/dev/null 2>&1 || missing "openssl could not be installed (apt-get install openssl, as root)" "the keygen interoperability tests"
python3 -c 'import cryptography' 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check cryptography >&2 \
  || missing "cryptography could not be installed (pip)" "the keygen interoperability tests"
cargo test --workspace
bash scripts/test-node.sh
bash scripts/fuzz.sh "${RAILGUN_FUZZ_SECONDS:-10}"
