// End to end through the IPC layer, with the real native addon and the real server:
// page → window.electronAPI (Electron stand-in's contextBridge) → preload → ipcRenderer →
// ipcMain → electron/main.js → @railgun/core addon → `railgun serve` over loopback HTTP, and back.
//
// The server is started by the test (`railgun serve --addr 127.0.0.1:0`) on a tree published
// with `railgun release sign/publish` (as scripts/demo.sh does) and a remote config file. Needs
// the `railgun` binary (RAILGUN_BIN, else $CARGO_TARGET_DIR/debug/railgun, else target/debug/railgun)
// and the built addon (`npm run build:debug`); without them it fails and says what to build.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createElectronStandIn, settle } from './support/electron-standin.mjs';
import { within } from '../node-support/deadline.mjs';
import {
  buildTarball, keygen, railgunBin, signAndPublish, startServer, tempDir,
} from '../node-support/railgun.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');
const { exposeRailgunApi } = require('../../electron/preload.js');
const { errorCode } = require('../../electron/renderer.js');

const BIN = railgunBin();

const APP = 'rail-gun';
const READ_TOKEN = 'e2e-read-token';

/** Publishes 0.1.0 and 0.2.0 on stable into `w/tree`; the release public key (PEM). */
function publish(w) {
  const keys = keygen(path.join(w, 'keys'), 'release');
  for (const v of ['0.1.0', '0.2.0']) {
    signAndPublish({ keys, tree: path.join(w, 'tree'), app: APP, version: v, build: buildTarball(w, APP, v) });
  }
  return keys.pem;
}

/** `railgun serve` on `tree` with the read token. */
function serve(t, w) {
  return startServer(t, {
    root: path.join(w, 'tree'), dataDir: path.join(w, 'data'),
    env: { RAILGUN_READ_TOKEN: READ_TOKEN, RAILGUN_ADMIN_TOKEN: 'e2e-admin-token' },
  });
}

function writeConfig(tree, darkMode, killSwitch = null) {
  const config = {
    version: killSwitch ? '3' : darkMode ? '2' : '1',
    lastUpdated: '2026-11-29T00:00:00Z',
    emergencyKillSwitch: killSwitch !== null,
    emergencyMessage: killSwitch,
    flags: [
      { key: 'new_composer', enabled: true, rolloutPercentage: 100, description: 'The new composer' },
      { key: 'dark_mode', enabled: darkMode, rolloutPercentage: 100 },
    ],
    announcements: [{ id: 'welcome', type: 'info', title: 'Welcome', message: 'Rail Gun 0.2.0 is out', dismissible: true, showOnce: false }],
    maintenance: { active: false, message: '', allowReadOnly: true },
  };
  writeFileSync(path.join(tree, 'config.json'), JSON.stringify(config));
}

test('renderer → preload → main → addon → real server and back', { timeout: 120_000 }, async (t) => {
  assert.ok(existsSync(BIN), `railgun binary not found at ${BIN}: cargo build -p railgun-server (or set RAILGUN_BIN)`);
  assert.doesNotThrow(() => require('../../index.js'), 'the addon must be built: npm run build:debug');
  const w = tempDir(t, 'railgun-electron-e2e-');
  const publicKey = publish(w);
  const tree = path.join(w, 'tree');
  writeConfig(tree, false);
  const { url } = await serve(t, w);

  main.reset();
  const day = new Date().toISOString().slice(0, 10); // before the first event
  const common = { app: APP, appVersion: '0.1.0', stateDir: path.join(w, 'state'), env: {} };
  const updater = main.initAutoUpdater({
    ...common,
    url: `${url}/updates`,
    channel: 'stable',
    publicKeys: [publicKey],
    installRoot: path.join(w, 'install'),
    installId: 'e2e-install-1',
    autoCheck: false,
    autoDownload: false,
  });
  const analytics = main.initAnalytics({ ...common, url, consent: 'granted', sampleRate: 1 });
  const flags = main.initFeatureFlags({ ...common, url: `${url}/config.json`, refreshInterval: 60 * 60 * 1000 });
  t.after(() => main.shutdown());

  const electron = createElectronStandIn();
  const unregister = main.registerIpcHandlers(electron.ipcMain);
  t.after(unregister);
  const page = electron.createRenderer();
  exposeRailgunApi(page.contextBridge, page.ipcRenderer);
  const api = page.window.electronAPI;

  // --- updates: check → download (verified) → install, events pushed to the page
  const events = [];
  api.updater.onEvent((name, payload) => events.push([name, payload]));
  await settle();
  const info = await api.updater.check();
  assert.equal(info.version, '0.2.0');
  assert.equal(info.files.length, 1);
  assert.match(info.files[0].sha256, /^[0-9a-f]{64}$/);
  const downloaded = await api.updater.download();
  assert.equal(downloaded.version, '0.2.0');
  assert.equal(downloaded.sha256, info.files[0].sha256);
  const installed = await api.updater.install();
  assert.equal(installed.version, '0.2.0');
  assert.equal(readFileSync(path.join(w, 'install', 'current', 'VERSION'), 'utf8'), `${APP} 0.2.0\n`);
  assert.equal(updater.currentVersion, '0.2.0');
  await settle();
  const names = events.map(([n]) => n);
  for (const n of ['checking-for-update', 'update-available', 'update-downloaded']) assert.ok(names.includes(n), `${n} in ${names}`);
  assert.equal(events.find(([n]) => n === 'update-available')[1].version, '0.2.0');

  // --- analytics: the page tracks, main flushes, the server counted it
  await api.analytics.track('message_sent', { kind: 'text', length_bucket: 'short' });
  await api.analytics.screen('conversation');
  assert.equal(await api.analytics.getConsent(), 'granted');
  await assert.rejects(api.analytics.track('message_sent', { body: 'x'.repeat(257) }), (e) => errorCode(e) === 'ERR_INVALID_ARGUMENT');
  const flushed = await analytics.flush();
  assert.ok(flushed.sent >= 2, `server acknowledged ${JSON.stringify(flushed)}`);
  // Every day from the first event to now (one day, unless UTC midnight passed meanwhile).
  const range = `from=${day}&to=${new Date().toISOString().slice(0, 10)}`;
  const ask = async (q) => {
    const r = await fetch(`${url}/analytics/${q}`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
    assert.equal(r.status, 200, q);
    return r.json();
  };
  const dau = (await ask(`dau-series?${range}`)).days;
  assert.ok(dau.some((d) => d.users === 1) && dau.every((d) => d.users <= 1), `DAU counts this install: ${JSON.stringify(dau)}`);
  const feature = await ask(`features?name=message_sent&${range}`);
  assert.equal(feature.events, 1, 'one message_sent stored (the oversize one was refused in main)');
  assert.deepEqual(feature.days.map((d) => d.users), [1]);

  // --- flags from the served config, and a change pushed to the page
  // The addon fetched at start (refreshInterval given); this refresh finds it or fetches it.
  assert.ok(['updated', 'not-modified'].includes(await flags.refresh()));
  assert.equal(await api.featureFlags.get('new_composer'), true);
  assert.equal(await api.featureFlags.get('dark_mode'), false);
  assert.deepEqual(await api.featureFlags.getAll(), { new_composer: true, dark_mode: false });
  assert.equal((await api.featureFlags.getAnnouncements())[0].id, 'welcome');
  assert.equal((await api.featureFlags.getMaintenance()).active, false);
  // The specification's call, as written.
  const { active, message } = await api.featureFlags.isKillSwitchActive();
  assert.deepEqual({ active, message }, { active: false, message: null });
  let changed;
  const told = new Promise((resolve) => {
    changed = resolve;
  });
  api.featureFlags.onChange(() => changed());
  await settle();
  writeConfig(tree, true);
  assert.equal(await flags.refresh(), 'updated');
  await within(told, 'the page to be told the flags changed');
  assert.equal(await api.featureFlags.get('dark_mode'), true);

  // The kill switch, with its message, reaches the page as the specification destructures it.
  writeConfig(tree, true, 'Sending is paused for maintenance');
  assert.equal(await flags.refresh(), 'updated');
  const killed = await api.featureFlags.isKillSwitchActive();
  assert.deepEqual(killed, { active: true, message: 'Sending is paused for maintenance' });
  assert.deepEqual(await api.featureFlags.getAll(), { new_composer: false, dark_mode: false }, 'every flag off');
});

test('a release signed by a key the app does not trust is refused, and the page gets the code', { timeout: 120_000 }, async (t) => {
  assert.ok(existsSync(BIN), `railgun binary not found at ${BIN}`);
  const w = tempDir(t, 'railgun-electron-e2e-');
  publish(w);
  const strangerKey = keygen(path.join(w, 'stranger'), 'stranger').pem;
  const { url } = await serve(t, w);

  main.reset();
  const electron = createElectronStandIn();
  const unregister = main.registerIpcHandlers(electron.ipcMain); // before init: attached later
  t.after(unregister);
  const updater = main.initAutoUpdater({
    app: APP,
    appVersion: '0.1.0',
    stateDir: path.join(w, 'state'),
    env: {},
    url: `${url}/updates`,
    publicKeys: [strangerKey],
    installRoot: path.join(w, 'install'),
    autoCheck: false,
  });
  t.after(() => main.shutdown());
  const mainErrors = [];
  updater.on('error', (e) => mainErrors.push(e.code));
  const page = electron.createRenderer();
  exposeRailgunApi(page.contextBridge, page.ipcRenderer);
  const api = page.window.electronAPI;
  const events = [];
  // The error event crosses a thread-safe function and IPC on its own schedule, possibly
  // after the rejected promise: wait for it (the test's timeout bounds the wait).
  let errorSeen;
  const errorReached = new Promise((resolve) => { errorSeen = resolve; });
  api.updater.onEvent((name, payload) => {
    events.push([name, payload]);
    if (name === 'error') errorSeen();
  });
  await settle();

  await assert.rejects(api.updater.check(), (e) => {
    assert.equal(errorCode(e), 'ERR_SIGNATURE_INVALID', e.message);
    return true;
  });
  await within(errorReached, "the updater's error event to reach the page");
  await settle();
  const error = events.find(([n]) => n === 'error');
  assert.ok(error, `an error event reached the page: ${JSON.stringify(events)}`);
  assert.match(error[1].code, /^ERR_/);
  assert.equal(Object.keys(error[1]).sort().join(), 'code,message', 'plain {code, message} only');
  assert.equal(mainErrors.length, 1);
  assert.equal(existsSync(path.join(w, 'install', 'current')), false, 'nothing installed');
  await assert.rejects(api.updater.download(), (e) => /^ERR_/.test(errorCode(e) ?? ''));
});
