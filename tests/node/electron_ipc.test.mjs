// The IPC layer over the real addon and a real `railgun serve`:
// page → window.electronAPI (contextBridge copy) → preload → ipcRenderer → ipcMain → main.js →
// @railgun/core → the server, and back. What the page sent is read back from the server's
// store; what was refused never reached the addon (the spy, ../node-support/addon-spy.mjs,
// records every call that did).
//
// Electron's own objects (ipcMain, ipcRenderer, webContents, contextBridge, app) are the
// in-process STAND-IN of support/electron-standin.mjs, NOT Electron (it cannot run here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { createElectronStandIn, settle } from './support/electron-standin.mjs';
import { spyOnAddon } from '../node-support/addon-spy.mjs';
import { nextEmit } from '../node-support/deadline.mjs';
import { RELEASES, RUNNING, baseConfig, fixtureForFile, openApp } from '../node-support/electron-fixture.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');
const { exposeRailgunApi } = require('../../electron/preload.js');
const { errorCode } = require('../../electron/renderer.js');

const file = fixtureForFile({
  onAfter: () => {
    main.reset();
  },
});

/** One app (updater, analytics, flags) over the spied real addon, and its page. */
async function world(t, options = {}) {
  const spy = spyOnAddon();
  const app = await openApp(t, file.fx, { addon: spy, updater: true, flags: true, ...options });
  return { ...app, spy, renderer: app.page };
}

/** Runs `action` in main and waits until the updater emitted `name` there, then for IPC. */
async function inMain(updater, name, action) {
  const emitted = nextEmit(updater, name);
  await action().catch(() => {});
  await emitted;
  await settle();
}

const refused = (code = 'ERR_INVALID_ARGUMENT') => (e) => {
  assert.equal(errorCode(e), code, e.message);
  return true;
};

test('every call goes renderer → preload → main → addon → server and back as plain data', async (t) => {
  const { api, analytics, userId, electron } = await world(t);
  assert.deepEqual(await api.featureFlags.getAll(), { new_composer: true, dark_mode: false });
  assert.equal(await api.featureFlags.get('new_composer'), true);
  assert.equal(await api.featureFlags.get('missing'), false);
  assert.deepEqual(await api.featureFlags.getAnnouncements(),
    [{ id: 'a1', type: 'info', title: 'Hello', message: 'New release', dismissible: true, showOnce: false }]);
  assert.deepEqual(await api.featureFlags.getMaintenance(), { active: false, allowReadOnly: true });
  assert.deepEqual(await api.featureFlags.isKillSwitchActive(), { active: false, message: null });

  assert.equal(await api.analytics.track('message_sent', { count: 1, draft: false, kind: 'text' }), null);
  assert.equal(await api.analytics.track('session_start'), null);
  await api.analytics.screen('settings');
  assert.equal((await analytics.flush()).pending, 0);
  assert.deepEqual(file.fx.names(userId), [
    ['session_start', null], // the session the addon started
    ['message_sent', { count: 1, draft: false, kind: 'text' }],
    ['session_start', null],
    ['screen_view', { screen_name: 'settings' }],
  ]);
  await api.analytics.setConsent('denied');
  assert.equal(await api.analytics.getConsent(), 'denied');
  const erased = await analytics.flush();
  assert.equal(erased.erasuresPending, 0, 'the server acknowledged the erasure');
  assert.deepEqual(file.fx.names(userId), [], 'denied: the server erased this user');

  assert.equal((await api.updater.check()).version, RELEASES.stable);
  const downloaded = await api.updater.download();
  assert.equal(downloaded.version, RELEASES.stable);
  assert.match(downloaded.sha256, /^[0-9a-f]{64}$/);
  assert.deepEqual(await api.updater.install(), { version: RELEASES.stable });
  assert.equal(electron.app.getVersion(), RUNNING, 'the running app is unchanged until it restarts');
});

test('the renderer gets only frozen plain objects and functions: no ipcRenderer, no Node objects', async (t) => {
  const { api, renderer } = await world(t);
  const walk = (v, at) => {
    if (typeof v === 'function') return 'function';
    assert.equal(typeof v, 'object', at);
    assert.equal(Object.getPrototypeOf(v), Object.prototype, `${at} is a plain object`);
    assert.ok(Object.isFrozen(v), `${at} is frozen`);
    const out = {};
    for (const k of Object.keys(v)) out[k] = walk(v[k], `${at}.${k}`);
    return out;
  };
  assert.deepEqual(walk(api, 'electronAPI'), {
    featureFlags: { get: 'function', getAll: 'function', getAnnouncements: 'function', getMaintenance: 'function', isKillSwitchActive: 'function', onChange: 'function', onEvent: 'function' },
    analytics: { track: 'function', screen: 'function', setConsent: 'function', getConsent: 'function' },
    updater: { check: 'function', download: 'function', install: 'function', onEvent: 'function' },
    health: { reportError: 'function' },
  });
  assert.deepEqual(Object.keys(renderer.window), ['electronAPI']);
  // Answers are data, not live objects of the main process or the addon.
  const all = await api.featureFlags.getAll();
  assert.equal(Object.getPrototypeOf(all), Object.prototype);
  const info = await api.updater.check();
  assert.equal(Object.getPrototypeOf(info), Object.prototype);
  assert.equal(Object.getPrototypeOf(info.files[0]), Object.prototype);
});

test('updater events reach onEvent as (name, payload) only; unsubscribe stops them', async (t) => {
  const { api, updater, electron } = await world(t);
  const got = [];
  const off = api.updater.onEvent((...args) => got.push(args));
  assert.equal(typeof off, 'function');
  await settle(); // the subscription reached main
  await inMain(updater, 'update-available', () => api.updater.check());
  assert.deepEqual(got.map((a) => a[0]), ['checking-for-update', 'update-available']);
  for (const args of got) assert.equal(args.length, 2, 'no IPC event object');
  assert.equal(got[1][1].version, RELEASES.stable);

  await inMain(updater, 'update-downloaded', () => api.updater.download());
  const progress = got.filter(([n]) => n === 'download-progress').map(([, p]) => p);
  assert.ok(progress.length >= 1, 'progress reached the page');
  assert.deepEqual(Object.keys(progress.at(-1)).sort(),
    ['bytesPerSecond', 'delta', 'downloadedBytes', 'fullBytes', 'percent', 'total', 'transferred']);
  assert.equal(progress.at(-1).percent, 100);
  assert.equal(progress.at(-1).transferred, progress.at(-1).total);
  // No patch in this release: the full artifact, its bytes all downloaded.
  assert.equal(progress.at(-1).delta, false);
  assert.equal(progress.at(-1).downloadedBytes, progress.at(-1).fullBytes);
  assert.equal(got.at(-1)[0], 'update-downloaded');

  // A real failure: an updater whose server drops every connection. The bridge follows it.
  const broken = main.initAutoUpdater({
    addon: spyOnAddon(), electronApp: electron.app, url: file.dead, publicKeys: [file.fx.keys.pem], autoCheck: false,
  });
  await inMain(broken, 'error', () => broken.checkForUpdates());
  const [name, payload] = got.at(-1);
  assert.equal(name, 'error');
  assert.deepEqual(Object.keys(payload).sort(), ['code', 'message'], 'plain {code, message} only');
  assert.equal(payload.code, 'ERR_NETWORK');

  off();
  off(); // twice is harmless
  await settle();
  const before = got.length;
  await inMain(broken, 'error', () => broken.checkForUpdates());
  assert.equal(got.length, before, 'nothing after unsubscribing');
  assert.equal(electron.ipcMain.listenerCount('railgun:events:subscribe'), 1);
});

test('flag changes are pushed and onChange listeners are told', async (t) => {
  const { api, flags, config } = await world(t, { registerFirst: true });
  let told = 0;
  const off = api.featureFlags.onChange(() => {
    told += 1;
  });
  await settle();
  file.fx.writeConfig(config.name, baseConfig({ version: '2', flags: [{ key: 'dark_mode', enabled: true, rolloutPercentage: 100 }] }));
  const changed = nextEmit(flags, 'change');
  assert.equal(await flags.refresh(), 'updated');
  await changed;
  await settle();
  assert.equal(told, 1);
  assert.equal(await api.featureFlags.get('dark_mode'), true);
  assert.equal(await api.featureFlags.get('new_composer'), false, 'the new document replaced the old one');
  off();
});

test('hostile arguments are refused with ERR_INVALID_ARGUMENT before the addon', async (t) => {
  const { api, spy, analytics, userId } = await world(t);
  const before = spy.calls.length;
  const cases = [
    () => api.analytics.track(42),
    () => api.analytics.track('Has-Caps'),
    () => api.analytics.track('a'.repeat(65)),
    () => api.analytics.track('ok', 'not an object'),
    () => api.analytics.track('ok', ['array']),
    () => api.analytics.track('ok', { s: 'x'.repeat(257) }),
    () => api.analytics.track('ok', { nested: { deep: true } }),
    () => api.analytics.track('ok', { n: Number.POSITIVE_INFINITY }),
    () => api.analytics.track('ok', { n: Number.NaN }),
    () => api.analytics.track('ok', { 'bad key': 1 }),
    () => api.analytics.track('ok', { ['k'.repeat(65)]: 1 }),
    () => api.analytics.track('ok', JSON.parse('{"__proto__": {"polluted": true}}')),
    () => api.analytics.track('ok', { constructor: 'x' }),
    () => api.analytics.track('ok', { prototype: 'x' }),
    () => api.analytics.track('ok', Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, true]))),
    () => api.analytics.screen(''),
    () => api.analytics.screen('a\nb'),
    () => api.analytics.screen('s'.repeat(257)),
    () => api.analytics.screen({ toString: 'x' }),
    () => api.analytics.setConsent('yes'),
    () => api.analytics.setConsent(true),
    () => api.featureFlags.get(''),
    () => api.featureFlags.get('k'.repeat(129)),
    () => api.featureFlags.get('__proto__'),
    () => api.featureFlags.get(['dark_mode']),
    () => api.featureFlags.get('has space'),
  ];
  for (const [i, call] of cases.entries()) {
    await assert.rejects(call(), refused(), `case ${i}: ${call}`);
  }
  assert.equal(spy.calls.length, before, 'nothing reached the addon');
  assert.equal({}.polluted, undefined);
  // The limits themselves are allowed, and the server stores them.
  const widest = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 's'.repeat(256)]));
  await api.analytics.track('a'.repeat(64), widest);
  assert.equal(await api.featureFlags.get('k'.repeat(128)), false);
  await analytics.flush();
  assert.deepEqual(file.fx.names(userId), [['session_start', null], ['a'.repeat(64), widest]]);
  assert.equal(await analytics.getConsent(), 'granted', 'no refused setConsent took effect');
});

test('extra arguments on a no-argument channel are refused', async (t) => {
  const { renderer, spy } = await world(t);
  const answer = await renderer.ipcRenderer.invoke('railgun:updater:install', { force: true });
  assert.deepEqual(answer, { ok: false, error: { code: 'ERR_INVALID_ARGUMENT', message: 'railgun:updater:install takes no arguments, got 1' } });
  assert.deepEqual(spy.callsOf('installUpdate'), []);
  const track = await renderer.ipcRenderer.invoke('railgun:analytics:track', 'ok', null, 'extra');
  assert.equal(track.error.code, 'ERR_INVALID_ARGUMENT');
  assert.deepEqual(spy.callsOf('track'), []);
});

test('unknown channels are refused with ERR_INVALID_ARGUMENT', async (t) => {
  const { spy } = await world(t);
  const before = spy.calls.length;
  for (const channel of ['railgun:updater:evil', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 42, null]) {
    const answer = await main.handleInvoke(channel, []);
    assert.equal(answer.ok, false, String(channel));
    assert.equal(answer.error.code, 'ERR_INVALID_ARGUMENT');
  }
  // An own `__proto__` key straight at main (no bridge in between) is refused too.
  const raw = await main.handleInvoke('railgun:analytics:track', ['ok', JSON.parse('{"__proto__": {"polluted": true}}')]);
  assert.equal(raw.error.code, 'ERR_INVALID_ARGUMENT');
  assert.match(raw.error.message, /__proto__/);
  // Arguments that are not an array are refused too.
  assert.equal((await main.handleInvoke('railgun:flags:get-all', 'x')).error.code, 'ERR_INVALID_ARGUMENT');
  assert.equal(spy.calls.length, before);
});

test('a page cannot send functions, and gets typed errors for an uninitialized service', async () => {
  main.reset();
  const electron = createElectronStandIn();
  const unregister = main.registerIpcHandlers(electron.ipcMain);
  try {
    const r = electron.createRenderer();
    exposeRailgunApi(r.contextBridge, r.ipcRenderer);
    await assert.rejects(r.window.electronAPI.featureFlags.getAll(), refused('ERR_NOT_INITIALIZED'));
    await assert.rejects(r.window.electronAPI.analytics.track('ok', { f: () => 1 }), /could not be cloned/);
  } finally {
    unregister();
  }
});

test('validateSender refuses calls and subscriptions from other origins', async (t) => {
  const { electron, updater, spy } = await world(t, {
    validateSender: (event) => new URL(event.senderFrame.url).origin === 'app://railgun',
  });
  const evil = electron.createRenderer('https://evil.example/');
  exposeRailgunApi(evil.contextBridge, evil.ipcRenderer);
  const before = spy.calls.length;
  await assert.rejects(evil.window.electronAPI.featureFlags.getAll(), refused('ERR_UNTRUSTED_SENDER'));
  await assert.rejects(evil.window.electronAPI.updater.check(), refused('ERR_UNTRUSTED_SENDER'));
  assert.equal(spy.calls.length, before, 'nothing reached the addon');
  const got = [];
  evil.window.electronAPI.updater.onEvent((n) => got.push(n));
  await settle();
  await inMain(updater, 'update-available', () => updater.checkForUpdates());
  assert.deepEqual(got, []);
  assert.equal(evil.webContents.sent.length, 0);
});

test('a destroyed window is dropped from the pushes; others keep getting them', async (t) => {
  const { electron, renderer, api, updater } = await world(t);
  const other = electron.createRenderer();
  exposeRailgunApi(other.contextBridge, other.ipcRenderer);
  const a = [];
  const b = [];
  api.updater.onEvent((n) => a.push(n));
  other.window.electronAPI.updater.onEvent((n) => b.push(n));
  await settle();
  renderer.webContents.destroy();
  await inMain(updater, 'update-available', () => updater.checkForUpdates());
  assert.deepEqual(a, []);
  assert.deepEqual(b, ['checking-for-update', 'update-available']);
});

test('handlers are registered once per channel and unregister removes them all', async (t) => {
  const { electron, unregister } = await world(t);
  assert.equal(electron.ipcMain.handlers.size, Object.keys(main.CHANNELS).length);
  assert.throws(() => main.registerIpcHandlers(electron.ipcMain), /second handler/);
  unregister();
  assert.equal(electron.ipcMain.handlers.size, 0);
  assert.equal(electron.ipcMain.listenerCount('railgun:events:subscribe'), 0);
});

test('a listener that throws does not stop the others', async (t) => {
  const { api, updater } = await world(t);
  const original = console.error;
  console.error = () => {};
  t.after(() => {
    console.error = original;
  });
  const got = [];
  api.updater.onEvent(() => {
    throw new Error('boom');
  });
  api.updater.onEvent((n) => got.push(n));
  await settle();
  await inMain(updater, 'update-available', () => updater.checkForUpdates());
  assert.deepEqual(got, ['checking-for-update', 'update-available']);
});

test("the preload's own copy of the channel and event names is main's", () => {
  const preload = require('../../electron/preload.js');
  assert.deepEqual(preload.CHANNELS, main.CHANNELS);
  assert.deepEqual(preload.EVENT_CHANNELS, main.EVENT_CHANNELS);
  assert.deepEqual(preload.UPDATER_EVENTS, main.UPDATER_EVENTS);
  assert.deepEqual(preload.FLAGS_EVENTS, main.FLAGS_EVENTS);
});
