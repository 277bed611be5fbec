// The hosted remote config, live, through the real addon: `railgun serve` (a child process,
// holding a config key) streams each revision published with `railgun config publish`; the
// addon's FeatureFlags follows the stream (its poll interval is an hour, so nothing else can
// carry a change within the test) and reports the provider events (READY,
// CONFIGURATION_CHANGED, ERROR). A replayed older revision, validly signed and served by a
// man in the middle, is refused. The Electron layer (Electron's own objects are the stand-in
// of support/electron-standin.mjs) delivers the same events to `window.electronAPI`.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { createElectronStandIn, settle } from './support/electron-standin.mjs';
import { WAIT_MS, condition } from '../node-support/deadline.mjs';
import { addon, keygen, railgunBin, startServer, tempDir } from '../node-support/railgun.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');
const { exposeRailgunApi } = require('../../electron/preload.js');

const APP = 'rail-gun';
const ADMIN = 'flags-stream-admin-token';
/** Longer than any test: only the stream can deliver a change in time. */
const POLL_MS = 60 * 60 * 1000;

function configDoc(kill) {
  return {
    version: '1.0.0',
    emergencyKillSwitch: kill,
    emergencyMessage: kill ? 'Sending is paused' : '',
    flags: { new_composer: { enabled: true, rolloutPercentage: 100 } },
  };
}

/** `railgun serve` holding a fresh config key; its URL, the key's public PEM and a publisher. */
async function serveWithConfigKey(t) {
  const w = tempDir(t, 'railgun-flags-stream-');
  const keys = keygen(path.join(w, 'keys'), 'config');
  mkdirSync(path.join(w, 'tree'));
  const { url } = await startServer(t, {
    root: path.join(w, 'tree'),
    dataDir: path.join(w, 'data'),
    env: { RAILGUN_READ_TOKEN: 'flags-stream-read-token', RAILGUN_ADMIN_TOKEN: ADMIN },
    args: ['--config-key', keys.key],
  });
  let n = 0;
  /** `railgun config publish` of `doc` (the server stamps the revision and signs it). */
  const publish = (doc) => {
    const file = path.join(w, `config-${(n += 1)}.json`);
    writeFileSync(file, JSON.stringify(doc));
    return execFileSync(railgunBin(), ['config', 'publish', '--server', url, '--app', APP, '--file', file], {
      encoding: 'utf8',
      env: { ...process.env, RAILGUN_ADMIN_TOKEN: ADMIN },
      timeout: WAIT_MS,
    });
  };
  return { w, url, pem: keys.pem, publish };
}

/** The addon's FeatureFlags on `url`, trusting the server's config key, closed after `t`. */
function following(t, s, url) {
  const flags = new addon.FeatureFlags({
    url, app: APP, appVersion: '1.0.0', stateDir: path.join(s.w, 'state'), configPublicKeys: [s.pem], refreshIntervalMs: POLL_MS,
  });
  t.after(() => flags.close());
  return flags;
}

/** Records events; `until(what, pred)` waits (with a deadline) for one matching `pred`. */
function recorder() {
  const seen = [];
  const { check, until } = condition((pred) => seen.find(pred));
  return {
    seen,
    push: (e) => {
      seen.push(e);
      check();
    },
    until: (what, pred) => until(what, pred),
  };
}

test('a kill switch published with `railgun config publish` reaches a running addon client through the stream', { timeout: 120_000 }, async (t) => {
  const s = await serveWithConfigKey(t);
  assert.match(s.publish(configDoc(false)), /revision 1/);
  const flags = following(t, s, `${s.url}/config/${APP}.json`);
  const events = recorder();
  flags.onEvent(events.push);
  let changes = 0;
  const changed2 = condition(() => changes >= 2);
  flags.onChange(() => { changes += 1; changed2.check(); });

  const ready = await events.until('READY', (e) => e.type === 'READY');
  assert.deepEqual(ready, { type: 'READY', revision: 1, reason: null });
  assert.equal(flags.revision(), 1);
  assert.deepEqual(flags.isKillSwitchActive(), { active: false, message: null });
  assert.equal(flags.get('new_composer'), true);

  assert.match(s.publish(configDoc(true)), /revision 2/);
  const changed = await events.until('CONFIGURATION_CHANGED', (e) => e.type === 'CONFIGURATION_CHANGED');
  assert.deepEqual(changed, { type: 'CONFIGURATION_CHANGED', revision: 2, reason: null });
  assert.deepEqual(flags.isKillSwitchActive(), { active: true, message: 'Sending is paused' });
  assert.equal(flags.get('new_composer'), false, 'every flag is off under the kill switch');
  assert.equal(flags.revision(), 2);
  await changed2.until('onChange to hear both configs');
  assert.deepEqual(events.seen.filter((e) => e.type === 'ERROR' || e.type === 'STALE'), []);
});

/**
 * A man in the middle in front of the client: it answers the config stream itself with the
 * events given to `send` (documents the real server signed). `url` is the client's config URL.
 */
async function interposer(t) {
  const streams = new Set();
  const server = createServer((req, res) => {
    if (req.url !== `/config/${APP}/stream`) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    streams.add(res);
    res.on('close', () => streams.delete(res));
    opened.check();
  });
  const opened = condition(() => streams.size > 0);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const res of streams) res.destroy();
    server.close();
  });
  return {
    url: `http://127.0.0.1:${server.address().port}/config/${APP}.json`,
    opened: () => opened.until('the client to open the stream'),
    send: (revision, body) => {
      for (const res of streams) res.write(`event: config\nid: ${revision}\ndata: ${body}\n\n`);
    },
  };
}

test('a replayed older revision is refused: ERROR, and the newer config stays in force', { timeout: 120_000 }, async (t) => {
  const s = await serveWithConfigKey(t);
  const signed = async () => {
    const res = await fetch(`${s.url}/config/${APP}.json`);
    assert.equal(res.status, 200);
    return JSON.stringify(await res.json()); // one line, as the stream carries it
  };
  s.publish(configDoc(true));
  const rev1 = await signed();
  s.publish(configDoc(false));
  const rev2 = await signed();

  const mitm = await interposer(t);
  const flags = following(t, s, mitm.url);
  const events = recorder();
  flags.onEvent(events.push);
  await mitm.opened();
  mitm.send(2, rev2);
  assert.equal((await events.until('READY', (e) => e.type === 'READY')).revision, 2);
  assert.deepEqual(flags.isKillSwitchActive(), { active: false, message: null });

  // Revision 1 is signed by the same key, but older: a replay (it would turn the kill switch on).
  mitm.send(1, rev1);
  const refused = await events.until('ERROR', (e) => e.type === 'ERROR');
  assert.match(refused.reason, /revision 1 refused: revision 2 was already accepted \(replay\)/);
  assert.equal(refused.revision, null);
  assert.deepEqual(flags.isKillSwitchActive(), { active: false, message: null });
  assert.equal(flags.get('new_composer'), true);
  assert.equal(flags.revision(), 2);
  assert.deepEqual(events.seen.filter((e) => e.type === 'CONFIGURATION_CHANGED'), []);
});

test('Electron: the provider events reach the renderer through window.electronAPI.featureFlags', { timeout: 120_000 }, async (t) => {
  const s = await serveWithConfigKey(t);
  s.publish(configDoc(false));
  main.reset();
  t.after(() => main.shutdown());
  const flags = main.initFeatureFlags({
    app: APP,
    appVersion: '1.0.0',
    stateDir: path.join(s.w, 'state'),
    env: {},
    url: `${s.url}/config/${APP}.json`,
    configPublicKeys: [s.pem],
    refreshInterval: POLL_MS,
  });
  const inMain = recorder();
  flags.on('CONFIGURATION_CHANGED', inMain.push);

  const electron = createElectronStandIn();
  t.after(main.registerIpcHandlers(electron.ipcMain));
  const page = electron.createRenderer();
  exposeRailgunApi(page.contextBridge, page.ipcRenderer);
  const api = page.window.electronAPI;
  const inPage = recorder();
  const unsubscribe = api.featureFlags.onEvent(inPage.push);
  let pageChanges = 0;
  const pageChanged = condition(() => pageChanges >= 1);
  api.featureFlags.onChange(() => { pageChanges += 1; pageChanged.check(); });
  await settle();

  await inPage.until('READY in the page', (e) => e.type === 'READY');
  assert.deepEqual(await api.featureFlags.isKillSwitchActive(), { active: false, message: null });

  s.publish(configDoc(true));
  const changed = await inPage.until('CONFIGURATION_CHANGED in the page', (e) => e.type === 'CONFIGURATION_CHANGED');
  assert.deepEqual(changed, { type: 'CONFIGURATION_CHANGED', revision: 2, reason: null });
  assert.deepEqual((await inMain.until('CONFIGURATION_CHANGED in main', () => true)).revision, 2);
  assert.equal(flags.revision(), 2);
  assert.deepEqual(await api.featureFlags.isKillSwitchActive(), { active: true, message: 'Sending is paused' });
  assert.equal(await api.featureFlags.get('new_composer'), false);
  await pageChanged.until('onChange to reach the page too');

  // Unsubscribed: the next revision's event no longer reaches this listener.
  unsubscribe();
  const count = inPage.seen.length;
  s.publish(configDoc(false));
  await inMain.until('revision 3 in main', (e) => e.revision === 3);
  await settle();
  assert.equal(inPage.seen.length, count);
});
