#!/usr/bin/env bash
# The main job: builds `railgun` (release) and runs `railgun demo`: an in-process server on a
# free loopback port with a fresh SQLite store and fresh keys, releases 0.1.0 (100 %) and
# 0.2.0 (10 % first stage) with real tar.gz artifacts, and simulated installs that check,
# download, verify and apply through the real client, send analytics and health reports,
# while the rollout engine advances 10 → 25 → 50 → 100 % (or halts with --bad-release).
# Arguments go to `railgun demo`, e.g. `scripts/demo.sh --installs 200 --bad-release --keep`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p railgun-server
exec "${CARGO_TARGET_DIR:-$PWD/target}/release/railgun" demo "$@"
