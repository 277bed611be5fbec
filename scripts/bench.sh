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
mkdir -p "$LOGS"

CRIT_ARGS=()
if [ -n "${BENCH_QUICK:-}" ]; then
  CRIT_ARGS=(--warm-up-time 1 --measurement-time 2)
  export RAILGUN_BENCH_MIB="${RAILGUN_BENCH_MIB:-64}" RAILGUN_BENCH_RUNS="${RAILGUN_BENCH_RUNS:-2}"
fi

step() { printf '\n== %s\n' "$*" >&2; }

for b in update flags analytics sigstore download health; do
  if [ -f "benches/$b.rs" ]; then
    step "cargo bench --bench $b"
    cargo bench --bench "$b" -- "${CRIT_ARGS[@]}" 2>&1 | tee "$LOGS/$b.log" >&2
  fi
done

# Ingest throughput: the real server (release build) on a fresh SQLite store, and loadgen.
step "railgun loadgen against railgun serve (SQLite)"
cargo build --release -p railgun-server 2>&1 | tail -1 >&2
BIN=target/release/railgun
DATA=$(mktemp -d)
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$DATA"' EXIT
# The server prints "railgun server listening on URL" once it is bound: read that line.
exec 3< <(RAILGUN_READ_TOKEN=bench-read RAILGUN_ADMIN_TOKEN=bench-admin \
  exec "$BIN" serve --root "$DATA/updates" --data-dir "$DATA" --addr 127.0.0.1:0 2>"$LOGS/serve.log")
SERVER_PID=$!
read -r line <&3
URL=$(grep -o 'http://127.0.0.1:[0-9]*' <<<"$line")
USERS=3000 EPU=100
[ -n "${BENCH_QUICK:-}" ] && USERS=1000
"$BIN" loadgen --url "$URL" --users "$USERS" --events-per-user "$EPU" --concurrency 16 2>&1 | tee "$LOGS/loadgen.log" >&2
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true

# The demo: 2000 installs, wall time.
if "$BIN" demo --help >/dev/null 2>&1; then
  step "railgun demo --installs 2000"
  start=$(date +%s.%N)
  "$BIN" demo --installs 2000 --json >"$LOGS/demo.json" 2>"$LOGS/demo.log"
  end=$(date +%s.%N)
  python3 -c "print(f'demo wall time: {float($end) - float($start):.1f} s')" | tee -a "$LOGS/demo.log" >&2
fi

# Warehouse export: 10 M events (2 M with BENCH_QUICK) exported as Parquet, beside reading
# the same rows without writing (ceiling) and DuckDB writing them as Parquet (peer).
step "cargo bench -p railgun-server --bench export"
EXPORT_EVENTS=10000000
[ -n "${BENCH_QUICK:-}" ] && EXPORT_EVENTS=2000000
RAILGUN_BENCH_EXPORT_EVENTS="$EXPORT_EVENTS" cargo bench -p railgun-server --bench export 2>&1 | tee "$LOGS/export.log" >&2

# Node addon: featureFlags.get and track from JS.
if [ -f package.json ] && grep -q '"bench"' package.json; then
  step "npm run bench"
  npm run --silent bench 2>&1 | tee "$LOGS/node.log" >&2
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
    return f"{b / a:.2f}× faster" if a and b else "—"

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

up, fl, an, sg, dl = (read(f + ".log") for f in ["update", "flags", "analytics", "sigstore", "download"])
lg, demo, node, ex = read("loadgen.log"), read("demo.log"), read("node.log"), read("export.log")

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
rows = flag_rows() + [
    ("`bucket()`", "≤ 200 ns", criterion(up, "bucket"), NONE, NONE),
    ("verify + parse channel state + 50-artifact manifest", "≤ 100 µs",
     criterion(up, "verify+parse channel state and 50-artifact manifest"), NONE, NONE),
    ("analytics `track()` median / p99", "≤ 2 µs / ≤ 20 µs",
     (lambda m: f"{m.group(1)} / {m.group(2)}" if m else "—")(re.search(r"track\(\): median (\S+), p99 (\S+),", an)),
     NONE, NONE),
    ("durable enqueue", "≥ 100 000/s", grab(an, r"durable enqueue \(bound 200000\): (\d+) events/s") + "/s", NONE, NONE),
    ("Sigstore bundle verify (v0.2)", "—", criterion(sg, "sigstore/verify_digest hashedrekord v0.2"), NONE, NONE),
    ("download + SHA-256 overhead vs plain", "within 15 %", grab(dl, r"overhead\s+:\s+(\S+ %)"), "plain download", NONE),
    ("download peak RSS", "< 64 MiB", grab(dl, r"(\d+\.\d) MiB after"), NONE, NONE),
    ("SHA-256 throughput", "≥ 1 GB/s", grab(dl, r"SHA-256 throughput\s+:\s+(\S+ GB/s)"), NONE, NONE),
    ("ingest, SQLite, 16 connections, batches of 100", "≥ 150 000/s", grab(lg, r"throughput: (\d+) events/s") + "/s", NONE, NONE),
    ("ingest p99 latency", "≤ 50 ms", grab(lg, r"p99 ([\d.]+)") + " ms", NONE, NONE),
    ("`railgun demo --installs 2000` wall time", "< 2 min", grab(demo, r"demo wall time: (\S+ s)"), NONE, NONE),
    ("JS `featureFlags.get` median", "≤ 1 µs", grab(node, r"featureFlags\.get[^\n]*?median[^\d]*([\d.]+ ?[nµu]s)"), NONE, NONE),
    ("JS `track` median", "≤ 3 µs", grab(node, r"track[^\n]*?median[^\d]*([\d.]+ ?[nµu]s)"), NONE, NONE),
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
