#!/usr/bin/env bash
# The Node package: install (no Electron binary; the devDependencies include TypeScript, which
# the tests need for the specification's snippets), build the addon for this machine, check
# that the committed index.js / index.d.ts are what @napi-rs/cli generates, then run the
# node --test suites against the real `railgun` server binary.
# Honours CARGO_TARGET_DIR (the tests find `railgun` there) and RAILGUN_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
export ELECTRON_SKIP_BINARY_DOWNLOAD=1
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
cargo build -q -p railgun-server
# The typed example app (tsc --noEmit over it runs in tests/node/electron_types.test.mjs).
(cd examples/electron-app && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi)
npm run build
node scripts/check-bindings.mjs --release
npm test
