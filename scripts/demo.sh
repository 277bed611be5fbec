#!/usr/bin/env bash
# The main job, on the embedded SQLite default: builds `railgun`, makes fresh keys, signs and
# publishes 0.1.0 (100 %) and 0.2.0 (stable, 10 %) with real tar.gz artifacts, starts the
# server on a free loopback port, then plays a handful of installs through the real client
# (check -> download -> verify -> apply), records analytics through the durable queue and
# asks the server for DAU. Everything lives in a temporary folder (kept with KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p railgun-server
B="$PWD/target/debug/railgun"
W="$(mktemp -d)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; [ "${KEEP:-0}" = 1 ] || rm -rf "$W"; }
trap cleanup EXIT
APP=rail-gun
echo "== keys"; "$B" keygen --out "$W/keys" --name release | grep -E 'key id'
for v in 0.1.0 0.2.0; do
  mkdir -p "$W/build-$v/pkg"
  echo "Rail Gun $v" > "$W/build-$v/pkg/VERSION"
  tar -czf "$W/build-$v/$APP-$v-linux-x64.tar.gz" -C "$W/build-$v/pkg" .
  rm -r "$W/build-$v/pkg"
  "$B" release sign --key "$W/keys/release.key" --app $APP --version $v --channel stable \
    --artifacts "$W/build-$v" --out "$W/build-$v/manifest.json"
done
"$B" release publish --root "$W/tree" --manifest "$W/build-0.1.0/manifest.json" --key "$W/keys/release.key" --percentage 100
"$B" release publish --root "$W/tree" --manifest "$W/build-0.2.0/manifest.json" --key "$W/keys/release.key" \
  --percentage 10 --fallback "$W/build-0.1.0/manifest.json"

export RAILGUN_READ_TOKEN=demo-read-token RAILGUN_ADMIN_TOKEN=demo-admin-token
"$B" serve --root "$W/tree" --data-dir "$W/data" --addr 127.0.0.1:0 > "$W/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do grep -q 'http://' "$W/server.log" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -o 'http://[0-9.:]*' "$W/server.log" | head -1)
echo "== server on $URL (SQLite in $W/data)"

echo "== 20 installs at 0.0.9 check the stable channel (0.2.0 at 10 %, fallback 0.1.0)"
for i in $(seq 1 20); do
  out=$("$B" update --url "$URL/updates" --app $APP --channel stable --public-key "$W/keys/release.pub" \
        --install-root "$W/installs/$i" --current-version 0.0.9 --state "$W/state/$i" --install-id "demo-install-$i" --json 2>&1 || true)
  echo "install $i: $out" | cut -c1-160
done
echo "== analytics: 3 installs record a session and a feature event, then upload"
for i in 1 2 3; do
  "$B" track --url "$URL" --app $APP --state "$W/state/$i" --name message_sent --count 5 --consent granted --sample-rate 1 >/dev/null
  "$B" flush --url "$URL" --state "$W/state/$i"
done
DAY=$(date -u +%F)
python3 - "$URL" "$DAY" <<'PY'
import sys, urllib.request, json
url, day = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"{url}/analytics/dau?date={day}", headers={"Authorization": "Bearer demo-read-token"})
print("== DAU", day, json.dumps(json.load(urllib.request.urlopen(req))))
PY
echo "== done (KEEP=1 keeps $W)"
