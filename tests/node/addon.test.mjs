// The addon against the real `railgun` server: updates end to end into a temp folder,
// analytics counted by the server, flags from a served config, the shared bucket vectors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { format } from 'node:util';

import {
  ROOT, addon, buildTarball, droppingServer, getJson, keygen, publishedArtifacts, rejectsWithCode, sha256Hex,
  signAndPublish, startServer, tempDir, writeEnvelope,
} from '../node-support/railgun.mjs';
import { WAIT_MS, condition, within } from '../node-support/deadline.mjs';

const APP = 'node-app';
const READ_TOKEN = 'node-test-read-token';
const PAYLOAD_CONFIG = 'application/vnd.railgun.config+json';

function findFile(dir, name) {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (e === name) return p;
    if (statSync(p).isDirectory()) {
      const f = findFile(p, name);
      if (f) return f;
    }
  }
  return null;
}

/**
 * Records an updater's events; `next(name)` resolves with the payload of the first `name`
 * event after the call (call it before the action), or fails after a deadline.
 */
function recordEvents(updater) {
  const seen = [];
  const arrival = condition(({ name, from }) => seen.slice(from).find((e) => e.name === name));
  updater.onEvent((name, payload) => {
    seen.push({ name, payload });
    arrival.check();
  });
  const next = (name) => arrival.until(`the updater's '${name}' event`, { name, from: seen.length }).then((e) => e.payload);
  return { seen, next };
}

test('bucket() gives the shared vectors', () => {
  const { vectors } = JSON.parse(readFileSync(join(ROOT, 'tests', 'vectors', 'bucket.json'), 'utf8'));
  assert.ok(vectors.length > 10);
  for (const v of vectors) {
    assert.equal(addon.bucket(v.seed, v.id), v.bucket, `bucket(${JSON.stringify(v.seed)}, ${JSON.stringify(v.id)})`);
  }
});

test('installId() is stable for a state folder and never the raw machine id', (t) => {
  const dir = tempDir(t);
  const a = addon.installId(APP, dir);
  assert.match(a, /^[0-9a-f]{64}$|^[0-9a-zA-Z-]{16,}$/);
  assert.equal(addon.installId(APP, dir), a);
  assert.notEqual(addon.installId('other-app', dir), a, 'per app');
  if (existsSync('/etc/machine-id')) {
    assert.ok(!a.includes(readFileSync('/etc/machine-id', 'utf8').trim()));
  }
});

test('update: check, download, verify and apply into a temp folder', async (t) => {
  const work = tempDir(t);
  const keys = keygen(join(work, 'keys'));
  const tree = join(work, 'tree');
  signAndPublish({ keys, tree, app: APP, version: '0.2.0', build: buildTarball(work, APP, '0.2.0') });
  const [artifact] = publishedArtifacts(tree, APP, '0.2.0');
  const server = await startServer(t, { root: tree, dataDir: join(work, 'data') });

  const installRoot = join(work, 'install');
  const updater = new addon.Updater({
    url: `${server.url}/updates`, app: APP, channel: 'stable', publicKeys: [keys.pem],
    currentVersion: '0.1.0', installRoot, stateDir: join(work, 'state'), installId: 'node-install-1',
    platform: 'linux', arch: 'x64',
  });
  const events = recordEvents(updater);
  assert.equal(updater.state, 'idle');

  const available = events.next('update-available');
  const info = await updater.checkForUpdates();
  assert.equal(info.version, '0.2.0');
  assert.equal(info.kind, 'rollout');
  assert.equal(info.files.length, 1);
  assert.equal(info.files[0].sha256, sha256Hex(readFileSync(artifact)));
  assert.equal(info.files[0].size, statSync(artifact).size);
  assert.ok(info.files[0].url.startsWith(server.url));
  assert.ok(!Number.isNaN(Date.parse(info.releaseDate)));
  assert.equal((await available).version, '0.2.0');
  assert.equal(updater.state, 'update-available');

  const downloadedEvent = events.next('update-downloaded');
  const d = await updater.downloadUpdate();
  assert.equal(d.version, '0.2.0');
  assert.equal(d.sha256, info.files[0].sha256);
  assert.equal(d.size, info.files[0].size);
  // No patch from 0.1.0 in this release: the full artifact, said so in the result.
  assert.equal(d.delta, false);
  assert.equal(d.downloadedBytes, d.fullBytes);
  assert.equal(d.fullBytes, info.files[0].size);
  assert.ok(d.deltaFallback == null);
  assert.equal(sha256Hex(readFileSync(d.path)), d.sha256, 'the staged file is the verified one');
  assert.equal((await downloadedEvent).version, '0.2.0');

  const installed = await updater.installUpdate();
  assert.equal(installed.version, '0.2.0');
  const versionFile = findFile(installRoot, 'VERSION');
  assert.ok(versionFile, 'the archive was applied under installRoot');
  assert.equal(readFileSync(versionFile, 'utf8'), `${APP} 0.2.0\n`);
  assert.equal(updater.currentVersion, '0.2.0');
  assert.equal(updater.state, 'installed');
  updater.markBootSuccessful();

  const none = events.next('update-not-available');
  assert.equal(await updater.checkForUpdates(), null, 'nothing newer than the installed 0.2.0');
  assert.equal((await none).version, '0.2.0');
  const names = events.seen.map((e) => e.name);
  assert.ok(names.includes('checking-for-update'));
  assert.ok(!names.includes('error'), JSON.stringify(events.seen.filter((e) => e.name === 'error')));
  await updater.stop();
});

test('update: a delta patch from the installed version, and a reported fallback', async (t) => {
  const work = tempDir(t);
  const keys = keygen(join(work, 'keys'));
  const tree = join(work, 'tree');
  const builds = ['0.1.0', '0.2.0', '0.3.0'].map((v) => buildTarball(work, APP, v));
  signAndPublish({ keys, tree, app: APP, version: '0.1.0', build: builds[0] });
  const server = await startServer(t, { root: tree, dataDir: join(work, 'data') });
  const installRoot = join(work, 'install');
  const stateDir = join(work, 'state');
  const update = async (currentVersion) => {
    const updater = new addon.Updater({
      url: `${server.url}/updates`, app: APP, channel: 'stable', publicKeys: [keys.pem], currentVersion,
      installRoot, stateDir, installId: 'node-delta-1', platform: 'linux', arch: 'x64', deltaMaxShare: 1,
    });
    const events = recordEvents(updater);
    await updater.checkForUpdates();
    const d = await updater.downloadUpdate();
    await updater.installUpdate();
    return { d, events: events.seen };
  };
  // 0.0.0 -> 0.1.0: no patch; the installed artifact is kept as the next base.
  assert.equal((await update('0.0.0')).d.delta, false);

  signAndPublish({ keys, tree, app: APP, version: '0.2.0', build: builds[1], deltaFrom: builds[0] });
  const { d, events } = await update('0.1.0');
  assert.equal(d.delta, true, JSON.stringify(d));
  assert.ok(d.deltaFallback == null);
  assert.ok(d.downloadedBytes > 0 && d.downloadedBytes < d.fullBytes, JSON.stringify(d));
  const progress = events.filter((e) => e.name === 'download-progress').map((e) => e.payload);
  assert.ok(progress.length >= 1 && progress.every((p) => p.delta === true), JSON.stringify(progress));
  assert.equal(progress.at(-1).fullBytes, d.fullBytes);
  assert.equal(readFileSync(join(installRoot, 'current', 'VERSION'), 'utf8'), `${APP} 0.2.0\n`);

  // A modified kept base: the fallback is an event and part of the result.
  const baseDir = join(stateDir, 'delta-base');
  const kept = readdirSync(baseDir).find((f) => f !== 'base.json' && !f.startsWith('.'));
  writeFileSync(join(baseDir, kept), 'not the installed artifact');
  signAndPublish({ keys, tree, app: APP, version: '0.3.0', build: builds[2], deltaFrom: builds[1] });
  const after = await update('0.2.0');
  assert.equal(after.d.delta, false);
  assert.equal(after.d.deltaFallback.reason, 'base-modified', JSON.stringify(after.d));
  const fallback = after.events.find((e) => e.name === 'update-delta-fallback');
  assert.ok(fallback, JSON.stringify(after.events.map((e) => e.name)));
  assert.equal(fallback.payload.reason, 'base-modified');
  assert.equal(fallback.payload.from, '0.2.0');
  assert.equal(readFileSync(join(installRoot, 'current', 'VERSION'), 'utf8'), `${APP} 0.3.0\n`);
});

test('update: startAutoCheck finds, downloads and announces the update by itself', async (t) => {
  const work = tempDir(t);
  const keys = keygen(join(work, 'keys'));
  const tree = join(work, 'tree');
  signAndPublish({ keys, tree, app: APP, version: '0.3.0', build: buildTarball(work, APP, '0.3.0') });
  const server = await startServer(t, { root: tree, dataDir: join(work, 'data') });
  const updater = new addon.Updater({
    url: `${server.url}/updates`, app: APP, channel: 'stable', publicKeys: [keys.pem],
    currentVersion: '0.1.0', installRoot: join(work, 'install'), stateDir: join(work, 'state'),
    installId: 'node-auto-1', platform: 'linux', arch: 'x64',
  });
  const events = recordEvents(updater);
  const downloaded = events.next('update-downloaded');
  updater.startAutoCheck(1000);
  assert.equal((await downloaded).version, '0.3.0');
  await updater.stop();
  assert.equal(updater.state, 'update-downloaded');
  assert.deepEqual(events.seen.map((e) => e.name).filter((n) => n !== 'download-progress'),
    ['checking-for-update', 'update-available', 'update-downloaded']);
  assert.equal((await updater.installUpdate()).version, '0.3.0');
});

test('analytics: track -> flush -> the server counted it', async (t) => {
  const work = tempDir(t);
  mkdirSync(join(work, 'tree'), { recursive: true });
  const server = await startServer(t, {
    root: join(work, 'tree'), dataDir: join(work, 'data'), env: { RAILGUN_READ_TOKEN: READ_TOKEN },
  });
  const day = new Date().toISOString().slice(0, 10);
  const before = await getJson(`${server.url}/analytics/dau?date=${day}`, READ_TOKEN);
  assert.equal(before.users, 0);

  const a = new addon.Analytics({
    url: server.url, app: APP, appVersion: '0.2.0', stateDir: join(work, 'state'),
    consent: 'granted', sampleRate: 1, userId: 'node-user-1',
  });
  assert.equal(a.userId(), 'node-user-1');
  assert.equal(a.getConsent(), 'granted');
  a.track('message_sent', { kind: 'text', length: 42, edited: false });
  a.track('message_sent');
  a.screen('settings');
  a.startTimer('export_done');
  assert.equal(typeof a.stopTimer('export_done', { rows: 3 }), 'number');
  assert.equal(a.stopTimer('never_started'), null);
  const r = await a.flush();
  assert.ok(r.sent >= 5, `sent ${r.sent}`); // session_start + 2 message_sent + screen_view + export_done
  assert.equal(r.pending, 0);

  // Every day from the first event to now (one day, unless UTC midnight passed meanwhile).
  const range = `from=${day}&to=${new Date().toISOString().slice(0, 10)}`;
  const active = await getJson(`${server.url}/analytics/dau-series?${range}`, READ_TOKEN);
  assert.ok(active.days.some((d) => d.users === 1) && active.days.every((d) => d.users <= 1), JSON.stringify(active));
  const feature = await getJson(`${server.url}/analytics/features?name=message_sent&${range}`, READ_TOKEN);
  assert.equal(feature.events, 2);

  // Denied consent records nothing more and erases the user on the server (the client's
  // POST /analytics/erasure, acknowledged within this flush).
  a.setConsent('denied');
  assert.equal(a.getConsent(), 'denied');
  a.track('message_sent');
  const r2 = await a.flush();
  assert.equal(r2.pending, 0);
  assert.equal(r2.erasuresPending, 0, 'the server acknowledged the erasure');
  const feature2 = await getJson(`${server.url}/analytics/features?name=message_sent&${range}`, READ_TOKEN);
  assert.equal(feature2.events, 0, 'the user is erased');
  const gone = await getJson(`${server.url}/analytics/dau-series?${range}`, READ_TOKEN);
  assert.ok(gone.days.every((d) => d.users === 0), JSON.stringify(gone));
  await a.shutdown();
  await a.shutdown(); // later calls do nothing
});

test('analytics: bad names, properties and consent throw ERR_INVALID_ARGUMENT', (t) => {
  const work = tempDir(t);
  const a = new addon.Analytics({
    url: 'http://127.0.0.1:1', app: APP, appVersion: '0.2.0', stateDir: work, consent: 'granted', sampleRate: 1,
  });
  for (const bad of [() => a.track('Bad Name'), () => a.track('ok_name', { 'bad key!': 1 }),
    () => a.track('ok_name', { long: 'x'.repeat(300) }), () => a.setConsent('maybe'),
    () => a.track('ok_name', { nested: { a: 1 } }), () => a.track('ok_name', { n: Number.NaN }),
    () => a.track('ok_name', [1, 2]), () => a.track('ok_name', 'text'), () => a.stopTimer('x', { l: [1] }),
    () => { const c = {}; c.self = c; a.track('ok_name', c); }, () => a.track('ok_name', { big: 10n })]) {
    assert.throws(bad, (e) => e instanceof Error && e.code === 'ERR_INVALID_ARGUMENT', String(bad));
  }
  assert.throws(() => new addon.Analytics({ url: 'http://x', app: APP, appVersion: '1', stateDir: work, sampleRate: 2 }),
    { code: 'ERR_INVALID_ARGUMENT' });
  return a.shutdown();
});

test('analytics: the environment decides the default rate: everyone while developing, a tenth in production', async (t) => {
  // A user outside the production tenth: bucket('sample:{app}', id) >= 1000 of 10 000.
  const userId = Array.from({ length: 100 }, (_, i) => `env-user-${i}`).find((id) => addon.bucket(`sample:${APP}`, id) >= 1000);
  const queued = async (environment) => {
    const a = new addon.Analytics({
      url: 'http://127.0.0.1:1', app: APP, appVersion: '0.2.0', stateDir: tempDir(t), consent: 'granted', dryRun: true, userId, environment,
    });
    a.track('message_sent');
    const { pending } = await a.flush();
    await a.shutdown();
    return pending;
  };
  assert.equal(await queued('production'), 0, 'outside the tenth: nothing recorded');
  assert.ok(await queued('development') >= 1, 'while developing: recorded');
  assert.throws(() => new addon.Analytics({ url: 'http://x', app: APP, appVersion: '1', stateDir: tempDir(t), environment: 'staging' }),
    { code: 'ERR_INVALID_ARGUMENT', message: /unknown environment "staging"/ });
});

test('flags: a served config is fetched, evaluated and kept when a later one is refused', async (t) => {
  const work = tempDir(t);
  const tree = join(work, 'tree');
  mkdirSync(join(tree, 'config'), { recursive: true });
  const keys = keygen(join(work, 'keys'), 'config');
  const doc = {
    version: '7',
    lastUpdated: '2026-11-29T00:00:00Z',
    emergencyKillSwitch: false,
    flags: [
      { key: 'composer', enabled: true, rolloutPercentage: 100 },
      { key: 'dark-mode', enabled: false },
      { key: 'new-editor', enabled: true, minVersion: '9.0.0' },
    ],
    announcements: [
      { id: 'welcome', type: 'info', title: 'Hello', message: 'Welcome', dismissible: true },
      { id: 'pinned', type: 'warning', title: 'Pinned', message: 'Stays', dismissible: false },
    ],
    maintenance: { active: true, message: 'Upgrading', allowReadOnly: true },
  };
  const configPath = join(tree, 'config', `${APP}.json`);
  writeEnvelope(configPath, PAYLOAD_CONFIG, doc, keys.key);
  const server = await startServer(t, { root: tree, dataDir: join(work, 'data') });
  const url = `${server.url}/config/${APP}.json`;

  const flags = new addon.FeatureFlags({
    url, app: APP, appVersion: '1.0.0', stateDir: join(work, 'state'), userId: 'node-user-1',
    configPublicKeys: [keys.pem],
  });
  let changes = 0;
  let changed;
  const firstChange = new Promise((r) => { changed = r; });
  flags.onChange(() => { changes += 1; changed(); });
  assert.equal(flags.get('composer'), false, 'nothing before the first fetch');
  assert.equal(await flags.refresh(), 'updated');
  await firstChange;
  assert.ok(changes >= 1);
  assert.equal(flags.get('composer'), true);
  assert.equal(flags.get('dark-mode'), false);
  assert.equal(flags.get('missing'), false);
  assert.deepEqual(flags.details('composer'), { value: true, reason: 'STATIC' });
  assert.equal(flags.details('new-editor').reason, 'VERSION_MISMATCH');
  assert.equal(flags.details('missing').reason, 'FLAG_NOT_FOUND');
  assert.deepEqual(flags.getAll(), { composer: true, 'dark-mode': false, 'new-editor': false });
  assert.deepEqual(flags.getAnnouncements().map((a) => a.id).sort(), ['pinned', 'welcome']);
  flags.dismiss('welcome');
  assert.deepEqual(flags.getAnnouncements().map((a) => a.id), ['pinned']);
  assert.throws(() => flags.dismiss('pinned'), { code: 'ERR_NOT_DISMISSIBLE' });
  const m = flags.getMaintenance();
  assert.equal(m.active, true);
  assert.equal(m.message, 'Upgrading');
  assert.equal(m.allowReadOnly, true);
  assert.deepEqual(flags.isKillSwitchActive(), { active: false, message: null });

  // A document signed by another key is refused; the last good config stays.
  const other = keygen(join(work, 'keys'), 'intruder');
  writeEnvelope(configPath, PAYLOAD_CONFIG, { ...doc, emergencyKillSwitch: true }, other.key);
  assert.equal(await flags.refresh(), 'kept-last-good');
  assert.deepEqual(flags.isKillSwitchActive(), { active: false, message: null });
  assert.equal(flags.get('composer'), true);

  // The kill switch, correctly signed, turns every flag off and carries its message.
  const killed = { ...doc, version: '8', emergencyKillSwitch: true, emergencyMessage: 'Sending is paused' };
  writeEnvelope(configPath, PAYLOAD_CONFIG, killed, keys.key);
  assert.equal(await flags.refresh(), 'updated');
  assert.deepEqual(flags.isKillSwitchActive(), { active: true, message: 'Sending is paused' });
  assert.equal(flags.get('composer'), false);

  // A restart uses the cached config offline.
  flags.close();
  const offline = new addon.FeatureFlags({
    url: 'http://127.0.0.1:1/config.json', app: APP, appVersion: '1.0.0', stateDir: join(work, 'state'),
    userId: 'node-user-1', configPublicKeys: [keys.pem],
  });
  assert.deepEqual(offline.isKillSwitchActive(), { active: true, message: 'Sending is paused' });
  assert.deepEqual(offline.getAnnouncements().map((a) => a.id), ['pinned'], 'the dismissal was kept');
  offline.close();
});

test('flags: an unsigned plain config is used when no keys are configured', async (t) => {
  const work = tempDir(t);
  const tree = join(work, 'tree');
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(tree, 'flags.json'), JSON.stringify({
    version: 1, flags: [{ key: 'composer', enabled: true, rolloutPercentage: 100 }],
  }));
  const server = await startServer(t, { root: tree, dataDir: join(work, 'data') });
  const flags = new addon.FeatureFlags({
    url: `${server.url}/flags.json`, app: APP, appVersion: '1.0.0', stateDir: join(work, 'state'),
  });
  assert.equal(await flags.refresh(), 'updated');
  assert.equal(flags.get('composer'), true);
  flags.close();
});

test('the same state folder serves Updater, Analytics and FeatureFlags together', async (t) => {
  const state = tempDir(t);
  const dead = await droppingServer(t);
  const a = new addon.Analytics({ url: dead, app: APP, appVersion: '1.0.0', stateDir: state, dryRun: true });
  const f = new addon.FeatureFlags({ url: `${dead}/c.json`, app: APP, appVersion: '1.0.0', stateDir: state });
  const u = new addon.Updater({
    url: 'http://127.0.0.1:1', app: APP, channel: 'stable', publicKeys: [keygen(join(state, 'k')).pem],
    currentVersion: '1.0.0', installRoot: join(state, 'install'), stateDir: state,
  });
  assert.equal(f.get('composer'), false);
  assert.equal(u.state, 'idle');
  await a.shutdown();
  f.close();
  await rejectsWithCode(f.refresh(), 'ERR_NETWORK');
});

test('listeners and background tasks do not keep Node alive', (t) => {
  const state = tempDir(t);
  // The child sets everything up, says so, and must then exit by itself: only if neither the
  // event listeners nor the addon's runtime hold the loop. A child still alive at the deadline
  // is killed and the test fails.
  const r = spawnSync(process.execPath, ['-e', `
    const r = require(${JSON.stringify(join(ROOT, 'index.js'))});
    const u = new r.Updater({ url: 'http://127.0.0.1:1', app: 'a', channel: 'stable',
      publicKeys: [${JSON.stringify(keygen(join(state, 'k')).pem)}], currentVersion: '1.0.0',
      installRoot: ${JSON.stringify(join(state, 'i'))}, stateDir: ${JSON.stringify(state)} });
    u.onEvent(() => {});
    const f = new r.FeatureFlags({ url: 'http://127.0.0.1:1/c.json', app: 'a', appVersion: '1.0.0',
      stateDir: ${JSON.stringify(state)}, refreshIntervalMs: 60000 });
    f.onChange(() => {});
    process.stdout.write('set up');
  `], { encoding: 'utf8', timeout: WAIT_MS, killSignal: 'SIGKILL' });
  assert.equal(r.stdout, 'set up', `the child ran to its end: ${r.stderr}`);
  assert.equal(r.error?.code, undefined, `the child did not exit within ${WAIT_MS} ms: something keeps Node alive`);
  assert.equal(r.signal, null);
  assert.equal(r.status, 0, r.stderr);
});

test('flags: the first onChange listener hears of a background fetch that finished before it was registered', async (t) => {
  const work = tempDir(t);
  const tree = join(work, 'tree');
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(tree, 'early.json'), JSON.stringify({
    version: 1, flags: [{ key: 'composer', enabled: true, rolloutPercentage: 100 }],
  }));
  const server = await startServer(t, { root: tree, dataDir: join(work, 'data') });
  const flags = new addon.FeatureFlags({
    url: `${server.url}/early.json`, app: APP, appVersion: '1.0.0', stateDir: join(work, 'state'), refreshIntervalMs: 60_000,
  });
  t.after(() => flags.close());
  // Let the background fetch finish first (nothing else can tell: no listener yet).
  await within((async () => {
    while (!flags.get('composer')) await new Promise((r) => setImmediate(r));
  })(), 'the background fetch to apply the config');
  let told;
  const heard = new Promise((resolve) => { told = resolve; });
  flags.onChange(() => told());
  await within(heard, 'the listener to hear of the change that came before it');
});

test('the analytics debug vectors are what Node prints for console.log(\'[Analytics]\', name, properties), on one line', () => {
  const file = join(ROOT, 'tests', 'vectors', 'analytics_debug.json');
  const { vectors } = JSON.parse(readFileSync(file, 'utf8'));
  assert.ok(vectors.length >= 10);
  for (const { name, properties, line } of vectors) {
    const printed = properties === null ? format('[Analytics] %s', name) : format('[Analytics]', name, properties);
    // console.log breaks a long object over lines; the debug line keeps it on one.
    assert.equal(printed.replace(/\n\s*/g, ' '), line, name);
  }
  const generated = spawnSync(process.execPath, [join(ROOT, 'tests', 'vectors', 'analytics_debug_gen.mjs')], { encoding: 'utf8', timeout: WAIT_MS });
  assert.equal(generated.stdout, readFileSync(file, 'utf8'), 'the file is what analytics_debug_gen.mjs writes');
});
