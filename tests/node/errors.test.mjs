// Every failure reaches JS as an Error with its stable `code`: hostile servers and documents
// (forged, replayed, expired, tampered), an unreachable server, misuse of the API.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  ROOT, addon, buildTarball, channelPath, droppingServer, keygen, publishedArtifacts, readEnvelope, rejectsWithCode,
  signAndPublish, startServer, tempDir, writeEnvelope,
} from '../node-support/railgun.mjs';
import { condition } from '../node-support/deadline.mjs';

const APP = 'err-app';
const PAYLOAD_CHANNEL = 'application/vnd.railgun.channel+json';

/** A published 0.2.0 on a running server, and a factory of updaters at 0.1.0. */
async function fixture(t) {
  const work = tempDir(t);
  const keys = keygen(join(work, 'keys'));
  const tree = join(work, 'tree');
  signAndPublish({ keys, tree, app: APP, version: '0.2.0', build: buildTarball(work, APP, '0.2.0') });
  const server = await startServer(t, { root: tree, dataDir: join(work, 'data') });
  let n = 0;
  const updater = (extra = {}) => {
    n += 1;
    return new addon.Updater({
      url: `${server.url}/updates`, app: APP, channel: 'stable', publicKeys: [keys.pem],
      currentVersion: '0.1.0', installRoot: join(work, `install-${n}`), stateDir: join(work, `state-${n}`),
      installId: `err-install-${n}`, platform: 'linux', arch: 'x64', ...extra,
    });
  };
  return { work, keys, tree, server, updater };
}

/** The updater's `error` events; `next()` waits (with a deadline) until one arrived. */
function errorEvents(updater) {
  const seen = [];
  const arrival = condition(() => seen.length > 0);
  updater.onEvent((name, payload) => {
    if (name === 'error') {
      seen.push(payload);
      arrival.check();
    }
  });
  return { seen, next: () => arrival.until("the updater's 'error' event") };
}

test('ERR_SIGNATURE_INVALID: metadata signed by a key the app does not trust', async (t) => {
  const f = await fixture(t);
  const stranger = keygen(join(f.work, 'stranger'), 'stranger');
  const u = f.updater({ publicKeys: [stranger.pem] });
  const errors = errorEvents(u);
  const e = await rejectsWithCode(u.checkForUpdates(), 'ERR_SIGNATURE_INVALID');
  assert.match(e.message, /signature/);
  await errors.next();
  assert.equal(errors.seen[0].code, 'ERR_SIGNATURE_INVALID', 'the event carries the same code as the Promise');
  assert.equal(errors.seen[0].coreCode, 'ERR_UPDATER_SIGNATURE');
  assert.equal(u.state, 'idle');
});

test('ERR_SIGNATURE_INVALID: a channel state re-signed by an intruder', async (t) => {
  const f = await fixture(t);
  const intruder = keygen(join(f.work, 'intruder'), 'intruder');
  const ch = readEnvelope(channelPath(f.tree, APP));
  writeEnvelope(channelPath(f.tree, APP), PAYLOAD_CHANNEL, { ...ch.payload, sequence: ch.payload.sequence + 1 }, intruder.key);
  await rejectsWithCode(f.updater().checkForUpdates(), 'ERR_SIGNATURE_INVALID');
});

test('ERR_CHECKSUM_MISMATCH: an artifact swapped on the server after signing', async (t) => {
  const f = await fixture(t);
  const [artifact] = publishedArtifacts(f.tree, APP, '0.2.0');
  const bytes = readFileSync(artifact);
  bytes[bytes.length >> 1] ^= 0xff; // same size, other content
  writeFileSync(artifact, bytes);
  const u = f.updater();
  const errors = errorEvents(u);
  assert.equal((await u.checkForUpdates()).version, '0.2.0');
  await rejectsWithCode(u.downloadUpdate(), 'ERR_CHECKSUM_MISMATCH');
  await errors.next();
  assert.equal(errors.seen.at(-1).code, 'ERR_CHECKSUM_MISMATCH');
  assert.equal(errors.seen.at(-1).coreCode, 'ERR_UPDATER_CHECKSUM_MISMATCH');
  assert.equal(u.state, 'update-available', 'nothing was staged');
  await rejectsWithCode(u.installUpdate(), 'ERR_INVALID_STATE');
});

test('ERR_ROLLBACK_REFUSED: a replayed older channel state', async (t) => {
  const f = await fixture(t);
  const path = channelPath(f.tree, APP);
  const ch = readEnvelope(path);
  copyFileSync(path, join(f.work, 'channel-old.json'));
  writeEnvelope(path, PAYLOAD_CHANNEL, { ...ch.payload, sequence: ch.payload.sequence + 5 }, f.keys.key);
  const u = f.updater();
  assert.equal((await u.checkForUpdates()).version, '0.2.0');
  copyFileSync(join(f.work, 'channel-old.json'), path); // the server replays the old state
  await rejectsWithCode(u.checkForUpdates(), 'ERR_ROLLBACK_REFUSED');
});

test('ERR_EXPIRED: a channel state past its expiry (freeze attack)', async (t) => {
  const f = await fixture(t);
  const path = channelPath(f.tree, APP);
  const ch = readEnvelope(path);
  const day = 24 * 3600 * 1000;
  writeEnvelope(path, PAYLOAD_CHANNEL, {
    ...ch.payload,
    sequence: ch.payload.sequence + 1,
    issuedAt: new Date(Date.now() - 3 * day).toISOString(),
    expiresAt: new Date(Date.now() - day).toISOString(),
  }, f.keys.key);
  const e = await rejectsWithCode(f.updater().checkForUpdates(), 'ERR_EXPIRED');
  assert.match(e.message, /expired/);
});

test('ERR_NETWORK: the server at the update URL drops every connection', async (t) => {
  const work = tempDir(t);
  const dead = await droppingServer(t);
  const u = new addon.Updater({
    url: `${dead}/updates`, app: APP, channel: 'stable', publicKeys: [keygen(join(work, 'k')).pem],
    currentVersion: '0.1.0', installRoot: join(work, 'install'), stateDir: join(work, 'state'),
  });
  await rejectsWithCode(u.checkForUpdates(), 'ERR_NETWORK');
  const flags = new addon.FeatureFlags({ url: `${dead}/c.json`, app: APP, appVersion: '1.0.0', stateDir: join(work, 'state') });
  await rejectsWithCode(flags.refresh(), 'ERR_NETWORK');
  flags.close();
});

test('ERR_HTTP_STATUS and ERR_SIGNATURE_INVALID from the flags client', async (t) => {
  const work = tempDir(t);
  const tree = join(work, 'tree');
  mkdirSync(tree, { recursive: true });
  const keys = keygen(join(work, 'keys'));
  writeFileSync(join(tree, 'plain.json'), JSON.stringify({ version: 1, flags: [] }));
  const server = await startServer(t, { root: tree, dataDir: join(work, 'data') });
  const flags = (url, extra = {}) => new addon.FeatureFlags({
    url, app: APP, appVersion: '1.0.0', stateDir: join(work, 'state'), ...extra,
  });
  const missing = flags(`${server.url}/missing.json`);
  await rejectsWithCode(missing.refresh(), 'ERR_HTTP_STATUS');
  missing.close();
  const unsigned = flags(`${server.url}/plain.json`, { configPublicKeys: [keys.pem] });
  await rejectsWithCode(unsigned.refresh(), 'ERR_SIGNATURE_INVALID');
  unsigned.close();
});

test('ERR_INVALID_ARGUMENT and ERR_INVALID_STATE: misuse is refused with its code', async (t) => {
  const work = tempDir(t);
  const pem = keygen(join(work, 'k')).pem;
  const base = {
    url: 'http://127.0.0.1:1/updates', app: APP, channel: 'stable', publicKeys: [pem],
    currentVersion: '0.1.0', installRoot: join(work, 'install'), stateDir: join(work, 'state'),
  };
  for (const bad of [
    { currentVersion: 'one' }, { publicKeys: [] }, { publicKeys: ['not a key'] }, { channel: 'Stable!' },
    { platform: 'beos' }, { sigstore: 'maybe' }, { sigstore: 'required' }, { url: 'ftp://x' }, { app: 5 },
  ]) {
    assert.throws(() => new addon.Updater({ ...base, ...bad }), (e) => e instanceof Error && e.code === 'ERR_INVALID_ARGUMENT',
      JSON.stringify(bad));
  }
  assert.throws(() => new addon.Updater(null), { code: 'ERR_INVALID_ARGUMENT' });
  assert.throws(() => new addon.FeatureFlags({ url: 'x', app: APP, appVersion: 'v1', stateDir: work }), { code: 'ERR_INVALID_ARGUMENT' });
  assert.throws(() => addon.installId(APP, ''), { code: 'ERR_INVALID_ARGUMENT' });
  const u = new addon.Updater(base);
  assert.throws(() => u.startAutoCheck(5), { code: 'ERR_INVALID_ARGUMENT' });
  await rejectsWithCode(u.downloadUpdate(), 'ERR_INVALID_STATE');
  await rejectsWithCode(u.installUpdate(), 'ERR_INVALID_STATE');
});

test('ERR_SIGSTORE_REFUSED: sigstore "required" and the release has no bundle', async (t) => {
  const f = await fixture(t);
  const u = f.updater({ sigstore: 'required', sigstoreIdentity: 'https://github\\.com/railgun/.*' });
  assert.equal((await u.checkForUpdates()).version, '0.2.0');
  const e = await rejectsWithCode(u.downloadUpdate(), 'ERR_SIGSTORE_REFUSED');
  assert.match(e.message, /bundle/);
  await rejectsWithCode(u.installUpdate(), 'ERR_INVALID_STATE');
  // "if-present" accepts the same release.
  const lenient = f.updater({ sigstore: 'if-present', sigstoreIdentity: 'https://github\\.com/railgun/.*' });
  await lenient.checkForUpdates();
  assert.equal((await lenient.downloadUpdate()).version, '0.2.0');
});

test('the stable codes of bindings/node/src/error.rs are exactly RailgunErrorCode of index.d.ts', () => {
  const rust = readFileSync(join(ROOT, 'bindings', 'node', 'src', 'error.rs'), 'utf8');
  const codes = [...rust.matchAll(/^pub const [A-Z_]+: Code = Code\("(ERR_[A-Z_]+)"\);/gm)].map((m) => m[1]);
  const dts = readFileSync(join(ROOT, 'index.d.ts'), 'utf8');
  const union = /export type RailgunErrorCode =([^]*?)\n\n/.exec(dts)[1];
  const declared = [...union.matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1]);
  assert.ok(codes.length >= 20, `found ${codes.length} codes in error.rs`);
  assert.deepEqual([...declared].sort(), [...codes].sort());
  const table = /\| code {2,}\| when[^]*?\n \*\n/.exec(dts)[0];
  for (const c of codes) assert.match(table, new RegExp(`\\| ${c} `), `${c} in the table of index.d.ts`);
});
