// `npm run bench`: the cost of a JS call through the addon.
//
//   featureFlags.get(key)           budget ≤ 1 µs median
//   analytics.track(name[, props])  budget ≤ 3 µs median
//
// Each figure is the median over BATCHES batches of the mean time per call in a batch of
// CALLS calls (process.hrtime.bigint around the batch), printed beside a pure-JS baseline
// timed the same way in the same run (a `bench-row:` line for scripts/bench.sh): for `get`,
// a `Map` lookup of the same key (what a call costs without crossing into the addon); for
// `track`, the same event stamped and JSON-encoded onto an array (the least a JS SDK's
// in-memory queue does). Build with `npm run build` (release) first. Exits 1 when a median
// is over its budget (BENCH_NO_FAIL=1 only reports).

import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addon = createRequire(import.meta.url)(join(ROOT, 'index.js'));

const BATCHES = Number(process.env.BENCH_BATCHES || 401);
const CALLS = Number(process.env.BENCH_CALLS || 1000);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function bench(name, budgetNs, fn) {
  for (let i = 0; i < CALLS; i++) fn(i); // warm up
  const perCall = [];
  for (let b = 0; b < BATCHES; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) fn(i);
    perCall.push(Number(process.hrtime.bigint() - t0) / CALLS);
  }
  const med = median(perCall);
  const ok = med <= budgetNs;
  console.log(`${name.padEnd(44)} median ${med.toFixed(0).padStart(6)} ns/call  (min ${Math.min(...perCall).toFixed(0)}, max ${Math.max(...perCall).toFixed(0)})  budget ${budgetNs} ns  ${ok ? 'ok' : 'OVER BUDGET'}`);
  return { ok, med };
}

// One table row: the addon's median beside the baseline's, and the ratio.
function row(figure, goal, ours, baseline, what) {
  console.log(`bench-row: ${figure} | ${goal} | ${ours.med.toFixed(0)} ns | ${what} ${baseline.med.toFixed(0)} ns | ${(ours.med / baseline.med).toFixed(1)}× the baseline`);
}

const config = JSON.stringify({
  version: 1,
  flags: Array.from({ length: 50 }, (_, i) => ({ key: `flag-${i}`, enabled: i % 2 === 0, rolloutPercentage: 50 }))
    .concat([{ key: 'new-composer', enabled: true, rolloutPercentage: 100 }]),
});
const server = createServer((_, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(config);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/config.json`;

const state = mkdtempSync(join(tmpdir(), 'railgun-bench-'));
let allOk = true;
try {
  const flags = new addon.FeatureFlags({ url, app: 'bench-app', appVersion: '1.0.0', stateDir: state, userId: 'bench-user' });
  await flags.refresh();
  if (!flags.get('new-composer')) throw new Error('config not loaded');
  let sink = 0;
  const get = bench('featureFlags.get(key)', 1000, () => { if (flags.get('new-composer')) sink++; });
  const unknown = bench('featureFlags.get(unknown key)', 1000, () => { if (flags.get('missing-flag')) sink++; });
  allOk = get.ok && unknown.ok && allOk;
  flags.close();
  const map = new Map(JSON.parse(config).flags.map((f) => [f.key, f.enabled]));
  const mapGet = bench('baseline: Map.get(key)', Infinity, () => { if (map.get('new-composer')) sink++; });
  row('JS `featureFlags.get` median', '≤ 1 µs', get, mapGet, 'JS `Map.get` of the same key');

  const analytics = new addon.Analytics({
    url: 'http://127.0.0.1:1', app: 'bench-app', appVersion: '1.0.0', stateDir: state,
    consent: 'granted', sampleRate: 1, dryRun: true, userId: 'bench-user',
  });
  allOk = bench('analytics.track(name)', 3000, () => analytics.track('message_sent')).ok && allOk;
  const props = { kind: 'text', length: 42 };
  const track = bench('analytics.track(name, {kind, length})', 3000, () => analytics.track('message_sent', props));
  allOk = track.ok && allOk;
  await analytics.shutdown();
  let queue = [];
  let seq = 0;
  const jsTrack = bench('baseline: JSON-encode onto an array', Infinity, () => {
    queue.push(JSON.stringify({ name: 'message_sent', properties: props, timestamp: Date.now(), sequence: seq++ }));
    if (queue.length >= 10000) queue = [];
  });
  row('JS `track(name, {kind, length})` median', '≤ 3 µs', track, jsTrack, 'JS event JSON-encoded onto an array');
  if (sink < 0) console.log(sink);
} finally {
  server.close();
  rmSync(state, { recursive: true, force: true });
}
console.log(`node ${process.version}, ${BATCHES} batches x ${CALLS} calls`);
if (!allOk && process.env.BENCH_NO_FAIL !== '1') process.exit(1);
