#!/usr/bin/env bash
# Fuzzes every parser an attacker reaches (the targets of fuzz/, cargo fuzz + libFuzzer):
# builds all targets once, then runs each for SECONDS (default 30) from a corpus seeded with
# the committed seeds (fuzz/seeds) and, at run time, the real test data: the repository's
# Sigstore bundles, trust roots and flag vectors, the sigstore-conformance cases and the
# specification's config beside the clone (../shared, read, never copied into the repo).
# Any crash fails the script and prints its reproducer.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs on the stable toolchain: cargo fuzz passes nightly -Z flags, which RUSTC_BOOTSTRAP=1
# lets stable accept. RAILGUN_FUZZ_SANITIZER=none skips AddressSanitizer (default: address).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
shift || true
export RUSTC_BOOTSTRAP=1
sanitizer=${RAILGUN_FUZZ_SANITIZER:-address}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

start=$(date +%s)
cargo fuzz build -s "$sanitizer"
echo "fuzz: built every target in $(( $(date +%s) - start )) s" >&2

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

shared=../shared/testdata
conformance=$shared/sigstore-conformance/bundle-verify
# add TARGET FILE...: copies the files that exist into TARGET's corpus (named by content).
add() {
  local t=$1 f
  shift
  mkdir -p "fuzz/corpus/$t"
  for f in "$@"; do
    [ -f "$f" ] || continue
    cp "$f" "fuzz/corpus/$t/seed-$(sha256sum "$f" | cut -c1-16)"
  done
}
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  [ -d "fuzz/seeds/$t" ] && add "$t" fuzz/seeds/"$t"/*
done
add sigstore_bundle tests/data/sigstore/*.sigstore.json tests/data/sigstore/cosign_bundle_v03.json \
  "$conformance"/*/bundle.sigstore.json "$shared"/sigstore/*.sigstore.json "$shared"/sigstore/cosign_bundle_v03.json
add sigstore_trusted_root src/trust/sigstore/trusted_root.json tests/data/sigstore/trusted_root*.json \
  "$conformance"/*/trusted_root.json "$shared"/sigstore/trusted_root*.json
add key_readers "$conformance"/*/key.pub
add remote_config tests/vectors/flags.json
if [ -f ../shared/spec/specification.md ]; then
  mkdir -p fuzz/corpus/remote_config
  # The specification's JSON examples (its remote config).
  awk '/^```json/{f=1; n++; next} /^```/{f=0} f{print > ("fuzz/corpus/remote_config/spec-" n ".json")}' \
    ../shared/spec/specification.md
fi
[ -d "$conformance" ] || echo "fuzz: $conformance is missing: the Sigstore corpora have the repository's bundles only" >&2

failed=()
summary=()
for t in "${targets[@]}"; do
  log=fuzz/artifacts/$t.log
  mkdir -p "fuzz/artifacts/$t"
  if cargo fuzz run -s "$sanitizer" "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    :
  else
    failed+=("$t")
    echo "fuzz: $t FAILED; the end of its log ($log):" >&2
    tail -40 "$log" >&2
    grep -h "Test unit written to" "$log" | sed "s|.*Test unit written to |fuzz: reproduce with: cargo fuzz run $t |" >&2 || true
  fi
  execs=$(grep -h "stat::number_of_executed_units" "$log" | tail -1 | awk '{print $2}')
  rate=$(grep -h "stat::average_exec_per_sec" "$log" | tail -1 | awk '{print $2}')
  summary+=("$(printf '%-22s %10s execs %8s exec/s' "$t" "${execs:-?}" "${rate:-?}")")
done
printf 'fuzz: %s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (reproducers in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs} s each, no crash ($(( $(date +%s) - start )) s in all)" >&2
