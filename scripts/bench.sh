#!/usr/bin/env bash
# Every benchmark the issues ask for, in one run, printed as one table.
#
#   bash scripts/bench.sh            # full run (about 10-15 minutes on 2 cores)
#   BENCH_QUICK=1 bash scripts/bench.sh   # shorter criterion runs, smaller download
#
# Raw logs go to target/bench-logs/; the table is also written to target/bench-logs/table.md.
#
# Adding a row: a benchmark prints, on stdout or stderr, one line per row of the table:
#
#   bench-row: FIGURE | GOAL | RAILGUN | PEER OR CEILING (same run) | RATIO
#
# and its step below tees its output into "$LOGS/NAME.log". Every `bench-row:` line of every
# log is a row, in the order the steps ran (a ratio is railgun over the peer's figure, written
# as the bench computes it, e.g. "1.08×" or "0.74 of the ceiling"; "—" when there is none).
# The benchmark itself computes the ratio from the two figures it measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGS=target/bench-logs
rm -rf "$LOGS" # a row comes from this run's logs only
mkdir -p "$LOGS"

CRIT_ARGS=()
if [ -n "${BENCH_QUICK:-}" ]; then
  CRIT_ARGS=(--warm-up-time 1 --measurement-time 2)
  export RAILGUN_BENCH_MIB="${RAILGUN_BENCH_MIB:-64}" RAILGUN_BENCH_RUNS="${RAILGUN_BENCH_RUNS:-2}"
fi

step() { printf '\n== %s\n' "$*" >&2; }
# A step that fails (a missing tool, an addon not built) leaves its rows empty ("—") and the
# run goes on, so the table is always printed.
failed() { printf 'bench.sh: step failed: %s\n' "$*" >&2; }

for b in update flags analytics sigstore download health; do
  if [ -f "benches/$b.rs" ]; then
    step "cargo bench --bench $b"
    cargo bench --bench "$b" -- "${CRIT_ARGS[@]}" 2>&1 | tee "$LOGS/$b.log" >&2 || failed "$b"
  fi
done

# Ingest: `railgun serve`'s application fed by loadgen's workload at 16 connections, beside
# the same rows written by the store's insert with no HTTP (the database's ceiling), on
# SQLite and, when RAILGUN_BENCH_DATABASE_URL or RAILGUN_TEST_DATABASE_URL is set, PostgreSQL;
# on PostgreSQL also one, two and three `railgun serve` processes sharing the database (the
# same ingest as a share of that ceiling, and update checks beside one server's).
step "cargo bench -p railgun-server --bench ingest"
[ -n "${BENCH_QUICK:-}" ] && export RAILGUN_BENCH_INGEST_USERS="${RAILGUN_BENCH_INGEST_USERS:-1000}"
cargo bench -p railgun-server --bench ingest 2>&1 | tee "$LOGS/ingest.log" >&2 || failed ingest

# Delta updates: a seeded app of about 100 MiB (32 MiB with BENCH_QUICK) and its next
# version; the publisher's patch beside the full tar.gz and plain zstd, and applying it
# (alone, and as the Updater's whole delta update) beside the full download from the same
# `railgun serve` application on loopback.
step "cargo bench -p railgun-server --bench delta"
cargo bench -p railgun-server --bench delta 2>&1 | tee "$LOGS/delta.log" >&2 || failed delta

# Queries at scale: DAU … retention over 10 M events (1 M with BENCH_QUICK) written through
# the ingest path, over HTTP on SQLite and PostgreSQL, beside DuckDB on the same rows. The
# data sets are cached under target/bench-queries/ (and as a PostgreSQL database).
step "cargo bench -p railgun-server --bench queries"
cargo bench -p railgun-server --bench queries 2>&1 | tee "$LOGS/queries.log" >&2 || failed queries

step "cargo build --release -p railgun-server"
cargo build --release -p railgun-server 2>&1 | tail -1 >&2
BIN=target/release/railgun

# Update: `railgun update` of a 512 MiB AppImage (128 MiB with BENCH_QUICK) from `railgun
# serve` on loopback, beside `curl -o` of the same file from the same server followed by an
# fsync of it (`sync FILE`), alternating under hyperfine; each run starts with nothing dirty.
step "railgun update vs curl -o + fsync, same file, same server"
UPD_MIB=512 UPD_RUNS=5
[ -n "${BENCH_QUICK:-}" ] && UPD_MIB=128 UPD_RUNS=3
U=$(mktemp -d)
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$U"' EXIT
"$BIN" keygen --out "$U/keys" --name release >/dev/null
mkdir -p "$U/dist"
head -c "$((UPD_MIB << 20))" /dev/urandom >"$U/dist/bench_2.0.0_linux_x86_64.AppImage"
"$BIN" release sign --key "$U/keys/release.key" --app bench --version 2.0.0 \
  --artifacts "$U/dist" --out "$U/manifest.json" >/dev/null
"$BIN" release publish --root "$U/tree" --manifest "$U/manifest.json" --artifacts "$U/dist" \
  --key "$U/keys/release.key" --percentage 100 >/dev/null
rm -rf "$U/dist"
exec 4< <(RAILGUN_READ_TOKEN=bench-read RAILGUN_ADMIN_TOKEN=bench-admin exec "$BIN" serve --root "$U/tree" --data-dir "$U/srv" --addr 127.0.0.1:0 2>"$LOGS/serve-update.log")
SERVER_PID=$!
read -r line <&4
UURL=$(grep -o 'http://127.0.0.1:[0-9]*' <<<"$line")
ART=$(cd "$U/tree" && find . -name '*.AppImage' | head -1)
hyperfine --runs "$UPD_RUNS" --export-json "$LOGS/update-vs-curl.json" \
  --prepare "rm -rf '$U/install' '$U/state' '$U/curl.bin'; sync" \
  -n "railgun update" "'$BIN' update --url '$UURL' --app bench --channel stable \
     --public-key '$U/keys/release.pub' --install-id bench --current-version 1.0.0 \
     --install-root '$U/install' --state '$U/state'" \
  -n "curl -o + fsync" "curl -sSf -o '$U/curl.bin' '$UURL/updates/${ART#./}' && sync '$U/curl.bin'" \
  2>&1 | tee "$LOGS/update-install.log" >&2 || failed "railgun update vs curl"
python3 - "$LOGS/update-vs-curl.json" "$UPD_MIB" <<'PY' | tee -a "$LOGS/update-install.log" >&2 || failed "update row"
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ours, curl = r["railgun update"]["median"], r["curl -o + fsync"]["median"]
print(f"bench-row: `railgun update` of a {sys.argv[2]} MiB AppImage from `railgun serve`, loopback"
      f" | ≤ 1.15× curl | {ours:.2f} s | `curl -o` + fsync {curl:.2f} s | {ours / curl:.2f}×")
PY
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
rm -rf "$U"

# Config push: N SSE subscribers on loopback, revisions published one after the other,
# publish→receipt delay and the server's RSS (10 000 subscribers; 2 000 with BENCH_QUICK).
step "railgun loadgen --config-subscribers against railgun serve"
SUBS=10000
[ -n "${BENCH_QUICK:-}" ] && SUBS=2000
C=$(mktemp -d)
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$C"' EXIT
"$BIN" keygen --out "$C/keys" --name config >/dev/null
# Each subscriber is one socket on both sides: raise the open-file limit to the hard one.
exec 4< <(ulimit -n "$(ulimit -Hn)"; RAILGUN_READ_TOKEN=bench-read RAILGUN_ADMIN_TOKEN=bench-admin \
  exec "$BIN" serve --root "$C/updates" --data-dir "$C/data" --addr 127.0.0.1:0 \
  --config-key "$C/keys/config.key" 2>"$LOGS/serve-config.log")
SERVER_PID=$!
read -r line <&4
CURL_BASE=$(grep -o 'http://127.0.0.1:[0-9]*' <<<"$line")
(ulimit -n "$(ulimit -Hn)"; RAILGUN_ADMIN_TOKEN=bench-admin "$BIN" loadgen --url "$CURL_BASE" \
  --config-subscribers "$SUBS" --config-revisions 5 --server-pid "$SERVER_PID") 2>&1 | tee "$LOGS/config.log" >&2 \
  || failed "config push"
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
rm -rf "$C"

# The demo: 2000 installs, wall time.
if "$BIN" demo --help >/dev/null 2>&1; then
  step "railgun demo --installs 2000"
  start=$(date +%s.%N)
  "$BIN" demo --installs 2000 --json >"$LOGS/demo.json" 2>"$LOGS/demo.log" || failed demo
  end=$(date +%s.%N)
  python3 -c "print(f'demo wall time: {float($end) - float($start):.1f} s')" | tee -a "$LOGS/demo.log" >&2
  # What the fleet's updates downloaded (0.2.0 through its patch from 0.1.0) against full downloads.
  python3 - "$LOGS/demo.json" <<'PY' | tee -a "$LOGS/demo.log" >&2 || true
import json, sys
d = json.load(open(sys.argv[1]))["downloads"]
mib = lambda b: f"{b / 2**20:.1f} MiB"
print(f"bench-row: `railgun demo --installs 2000`: bytes the fleet downloaded ({d['updates']} updates, "
      f"{d['deltaUpdates']} by delta patch) | — | {mib(d['downloadedBytes'])} | full downloads "
      f"{mib(d['fullBytes'])} | {d['downloadedBytes'] / d['fullBytes']:.2f} of full ({d['savedPercent']:.0f} % saved)")
PY
fi

# Warehouse export: 10 M events (2 M with BENCH_QUICK) exported as Parquet, beside reading
# the same rows without writing (ceiling) and DuckDB writing them as Parquet (peer).
step "cargo bench -p railgun-server --bench export"
EXPORT_EVENTS=${RAILGUN_BENCH_EXPORT_EVENTS:-10000000}
[ -n "${BENCH_QUICK:-}" ] && EXPORT_EVENTS=${RAILGUN_BENCH_EXPORT_EVENTS:-2000000}
RAILGUN_BENCH_EXPORT_EVENTS="$EXPORT_EVENTS" cargo bench -p railgun-server --bench export 2>&1 |
  tee "$LOGS/export.log" >&2 || failed export

# Node addon: featureFlags.get and track from JS, through the release addon built here
# (`npm ci` when @napi-rs/cli is missing, then `npm run build`), each beside a pure-JS baseline.
if [ -f package.json ] && grep -q '"bench"' package.json; then
  step "npm run build (release addon) + npm run bench"
  if { [ -d node_modules/@napi-rs/cli ] || ELECTRON_SKIP_BINARY_DOWNLOAD=1 npm ci --no-audit --no-fund; } \
    >"$LOGS/node-build.txt" 2>&1 && npm run --silent build >>"$LOGS/node-build.txt" 2>&1; then
    BENCH_NO_FAIL=1 npm run --silent bench 2>&1 | tee "$LOGS/node.log" >&2 || failed "npm run bench"
  else
    failed "the addon's build (see $LOGS/node-build.txt)"
  fi
fi

python3 - "$LOGS" <<'PY' | tee "$LOGS/table.md"
import os, re, sys
logs = sys.argv[1]

def read(name):
    p = os.path.join(logs, name)
    return open(p, errors="replace").read() if os.path.exists(p) else ""

UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}

def criterion(log, bench):
    """Median of a criterion benchmark: the middle value of `time: [lo mid hi]`."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "time:" in line:
            name = line.split("time:")[0].strip() or lines[i - 1].strip()
            if name == bench:
                m = re.search(r"time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", line)
                if m:
                    return m.group(1)
    return "—"

def ns(t):
    """A criterion time ("42.1 ns", "1.3 µs") in nanoseconds, or None."""
    try:
        v, u = t.split()
        return float(v) * UNITS[u]
    except (ValueError, KeyError):
        return None

def grab(log, pattern, group=1):
    m = re.search(pattern, log)
    return m.group(group) if m else "—"

def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None

def faster(ours, peer):
    """Time ratio: how many times faster railgun is than the peer (same run)."""
    a, b = ns(ours), ns(peer)
    if not (a and b):
        return "—"
    return f"{b / a:.2f}× faster" if b >= a else f"{a / b:.2f}× slower"

def over(ours, ceiling):
    """Time ratio: railgun's time over the ceiling's (same run)."""
    a, b = ns(ours), ns(ceiling)
    return f"{a / b:.2f}× the ceiling" if a and b else "—"

def share(ours, ceiling):
    """Throughput ratio: railgun as a share of the ceiling or peer (same run)."""
    a, b = num(ours), num(ceiling)
    return f"{a / b:.2f}" if a is not None and b else "—"

def mrows(v):
    v = num(v)
    return f"{v / 1e6:.2f} M rows/s" if v is not None else "—"

def mib(v):
    v = num(v)
    return f"{v / 2**20:.1f} MiB" if v is not None else "—"

up, fl, sg, dl = (read(f + ".log") for f in ["update", "flags", "sigstore", "download"])
demo, ex = read("demo.log"), read("export.log")

def flag_rows():
    cold = criterion(fl, "flags/new user each call/railgun")
    cold_peer = criterion(fl, "flags/new user each call/yggdrasil")
    warm = criterion(fl, "flags/this install/railgun")
    warm_peer = criterion(fl, "flags/this install/yggdrasil")
    return [
        ("flags: `voice_messages` (50 % + minVersion), a new user each call", "≥ 2× Yggdrasil",
         cold, f"Yggdrasil `is_enabled` {cold_peer}", faster(cold, cold_peer)),
        ("flags: the same, this install's user (`FeatureFlags::get`)", "≥ 10× Yggdrasil",
         warm, f"Yggdrasil `is_enabled` {warm_peer}", faster(warm, warm_peer)),
    ]

def export_rows():
    """Export throughput and size, each with its ceiling / peer and the ratio."""
    rate = grab(ex, r"railgun export: \d+ rows in \d+ files, [\d.]+ s, (\d+) rows/s")
    ceil = grab(ex, r"read only \(ceiling\): [\d.]+ s, (\d+) rows/s")
    peer = grab(ex, r"duckdb COPY to parquet \(peer\): [\d.]+ s, (\d+) rows/s")
    size = grab(ex, r"railgun export: .*?, (\d+) bytes per million events")
    psize = grab(ex, r"duckdb COPY to parquet \(peer\): .*?, (\d+) bytes per million events")
    n = grab(ex, r"inserted (\d+) events")
    return [
        (f"export {n} events to Parquet", "≥ 1 M rows/s", mrows(rate),
         f"read only (ceiling) {mrows(ceil)}", share(rate, ceil)),
        (f"export {n} events to Parquet", "≥ 1 M rows/s", mrows(rate),
         f"DuckDB `COPY` {mrows(peer)}", share(rate, peer)),
        ("export size per million events", "—", mib(size), f"DuckDB zstd {mib(psize)}", share(size, psize)),
    ]

NONE = "—"

def download_rows():
    """Downloader (hash while streaming) beside a plain download of the same file, same run."""
    ours = grab(dl, r"download \+ SHA-256\s+:\s+([\d.]+) s")
    plain = grab(dl, r"plain download to disk\s+:\s+([\d.]+) s")
    ratio = f"{num(ours) / num(plain):.2f}×" if num(ours) and num(plain) else NONE
    mib = grab(dl, r"artifact: (\d+) MiB")
    sha2 = grab(dl, r"SHA-256 sha2 crate\s+:\s+(\S+) GB/s")
    ring = grab(dl, r"SHA-256 ring::digest\s+:\s+(\S+) GB/s")
    return [
        (f"download + SHA-256 of {mib} MiB, loopback", "≤ 1.15× plain",
         f"{ours} s", f"plain download, no hash: {plain} s", ratio),
        ("download peak RSS", "< 64 MiB", grab(dl, r"([\d.]+) MiB after") + " MiB", NONE, NONE),
        ("SHA-256 throughput (sha2)", "≥ 1 GB/s", f"{sha2} GB/s", f"ring {ring} GB/s",
         (lambda r: f"{r} of ring" if r != NONE else NONE)(share(sha2, ring))),
    ]

def update_rows():
    """bucket() and the verify + parse, each beside its ceiling (and bucket() its peer)."""
    b = criterion(up, "bucket")
    b_ceil = criterion(up, "bucket ceiling: bare SHA-256 of the same bytes")
    b_peer = criterion(up, "bucket peer: Yggdrasil normalized_hash")
    v = criterion(up, "verify+parse channel state and 50-artifact manifest")
    v_ceil = criterion(up, "verify+parse ceiling: 2 bare ed25519 verifies, SHA-256, serde_json of the 2 payloads")
    s = criterion(sg, "sigstore/verify_digest hashedrekord v0.2")
    s_ceil = criterion(sg, "sigstore/ceiling: 4 bare ECDSA P-256 + 1 P-384 verifies (ring)")
    return [
        ("`bucket()`", "≤ 200 ns", b, f"bare SHA-256 of the same bytes (ceiling) {b_ceil}", over(b, b_ceil)),
        ("`bucket()`", "≤ 200 ns", b, f"Yggdrasil `normalized_hash` {b_peer}", faster(b, b_peer)),
        ("verify + parse channel state + 50-artifact manifest", "≤ 100 µs", v,
         f"2 bare ed25519 verifies + SHA-256 + serde_json of the payloads (ceiling) {v_ceil}", over(v, v_ceil)),
        ("Sigstore bundle verify (hashedrekord, v0.2)", "—", s,
         f"its signature checks bare, ring: 4 × P-256 + 1 × P-384 (ceiling) {s_ceil}", over(s, s_ceil)),
    ]

rows = flag_rows() + update_rows() + download_rows() + [
    ("`railgun demo --installs 2000` wall time", "< 2 min", grab(demo, r"demo wall time: (\S+ s)"), NONE, NONE),
] + export_rows()
def bench_rows():
    """Every `bench-row: a | b | c | d | e` line of every log, logs in the order they ran."""
    out = []
    paths = [os.path.join(logs, f) for f in os.listdir(logs) if f.endswith(".log")]
    for p in sorted(paths, key=os.path.getmtime):
        for line in open(p, errors="replace"):
            m = re.search(r"bench-row:\s*(.*\S)", line)
            if m:
                cells = [c.strip() for c in m.group(1).split("|")]
                out.append(tuple((cells + ["—"] * 5)[:5]))
    return out

rows += bench_rows()
print("| figure | goal | railgun | peer or ceiling (same run) | ratio |")
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
