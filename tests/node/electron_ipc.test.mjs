// The IPC layer through the Electron stand-in (support/electron-standin.mjs, NOT Electron):
// page → window.electronAPI (contextBridge copy) → preload → ipcRenderer → ipcMain → main.js →
// addon (scripted stand-in here; the real addon in electron_e2e.test.mjs) and back.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createElectronStandIn, settle } from './support/electron-standin.mjs';
import { createFakeAddon, fakeElectronApp } from './support/electron-fake-addon.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');
const { exposeRailgunApi } = require('../../electron/preload.js');
const { errorCode } = require('../../electron/renderer.js');

const ENV = { RAILGUN_UPDATE_URL: 'http://127.0.0.1:9/updates', RAILGUN_UPDATE_PUBLIC_KEY: 'a2V5' };

function world({ registerFirst = false, validateSender } = {}) {
  main.reset();
  const addon = createFakeAddon();
  const electronApp = fakeElectronApp();
  const electron = createElectronStandIn();
  let unregister;
  if (registerFirst) unregister = main.registerIpcHandlers(electron.ipcMain, { validateSender });
  const updater = main.initAutoUpdater({ addon, electronApp, env: ENV, autoCheck: false, autoDownload: false });
  const analytics = main.initAnalytics({ addon, electronApp, url: 'http://127.0.0.1:9', consent: 'granted' });
  const flags = main.initFeatureFlags({ addon, electronApp, url: 'http://127.0.0.1:9/config.json' });
  if (!registerFirst) unregister = main.registerIpcHandlers(electron.ipcMain, { validateSender });
  const renderer = electron.createRenderer();
  exposeRailgunApi(renderer.contextBridge, renderer.ipcRenderer);
  return { addon, electron, renderer, api: renderer.window.electronAPI, updater, analytics, flags, unregister };
}

const refused = (code = 'ERR_INVALID_ARGUMENT') => (e) => {
  assert.equal(errorCode(e), code, e.message);
  return true;
};

test('every call goes renderer → preload → main → addon and back as plain data', async () => {
  const { api, addon } = world();
  assert.deepEqual(await api.featureFlags.getAll(), { new_composer: true, dark_mode: false });
  assert.equal(await api.featureFlags.get('new_composer'), true);
  assert.equal(await api.featureFlags.get('missing'), false);
  assert.equal((await api.featureFlags.getAnnouncements())[0].id, 'a1');
  assert.deepEqual(await api.featureFlags.getMaintenance(), { active: false, allowReadOnly: true });
  assert.deepEqual(await api.featureFlags.isKillSwitchActive(), { active: false, message: null });

  assert.equal(await api.analytics.track('message_sent', { count: 1, draft: false, kind: 'text' }), null);
  assert.equal(await api.analytics.track('session_start'), null);
  await api.analytics.screen('settings');
  await api.analytics.setConsent('denied');
  assert.equal(await api.analytics.getConsent(), 'denied');
  const a = addon.made.analytics[0];
  assert.deepEqual(a.events.slice(0, 3), [
    { name: 'message_sent', properties: { count: 1, draft: false, kind: 'text' } },
    { name: 'session_start', properties: undefined },
    { name: 'screen_view', properties: { screen_name: 'settings' } },
  ]);

  assert.equal((await api.updater.check()).version, '0.2.0');
  assert.equal((await api.updater.download()).version, '0.2.0');
  assert.deepEqual(await api.updater.install(), { version: '0.2.0', previous: '0.1.0' });
});

test('the renderer gets only frozen plain objects and functions: no ipcRenderer, no Node objects', async () => {
  const { api, renderer } = world();
  const shape = {};
  const walk = (v, at) => {
    if (typeof v === 'function') return 'function';
    assert.equal(typeof v, 'object', at);
    assert.equal(Object.getPrototypeOf(v), Object.prototype, `${at} is a plain object`);
    assert.ok(Object.isFrozen(v), `${at} is frozen`);
    const out = {};
    for (const k of Object.keys(v)) out[k] = walk(v[k], `${at}.${k}`);
    return out;
  };
  Object.assign(shape, walk(api, 'electronAPI'));
  assert.deepEqual(shape, {
    featureFlags: { get: 'function', getAll: 'function', getAnnouncements: 'function', getMaintenance: 'function', isKillSwitchActive: 'function', onChange: 'function' },
    analytics: { track: 'function', screen: 'function', setConsent: 'function', getConsent: 'function' },
    updater: { check: 'function', download: 'function', install: 'function', onEvent: 'function' },
    health: { reportError: 'function' },
  });
  assert.deepEqual(Object.keys(renderer.window), ['electronAPI']);
  // Answers are data, not live objects of the main process.
  const all = await api.featureFlags.getAll();
  assert.equal(Object.getPrototypeOf(all), Object.prototype);
});

test('updater events reach onEvent as (name, payload) only; unsubscribe stops them', async () => {
  const { api, addon, electron } = world();
  const got = [];
  const off = api.updater.onEvent((...args) => got.push(args));
  assert.equal(typeof off, 'function');
  await settle(); // the subscription reached main
  await api.updater.check();
  await settle();
  assert.deepEqual(got.map((a) => a[0]), ['checking-for-update', 'update-available']);
  for (const args of got) assert.equal(args.length, 2, 'no IPC event object');
  assert.equal(got[1][1].version, '0.2.0');

  const u = addon.made.updaters[0];
  u.emit('download-progress', { percent: 50, transferred: 5, total: 10, bytesPerSecond: 1 });
  u.emit('error', { message: 'bad signature', code: 'ERR_SIGNATURE_INVALID', coreCode: 'ERR_SIGNATURE_INVALID' });
  await settle();
  assert.deepEqual(got.at(-2), ['download-progress', { percent: 50, transferred: 5, total: 10, bytesPerSecond: 1 }]);
  assert.deepEqual(got.at(-1), ['error', { code: 'ERR_SIGNATURE_INVALID', message: 'bad signature' }]);

  off();
  off(); // twice is harmless
  await settle();
  const before = got.length;
  u.emit('checking-for-update', null);
  await settle();
  assert.equal(got.length, before);
  const wc = [...electron.ipcMain.listeners('railgun:events:subscribe')];
  assert.equal(wc.length, 1);
});

test('flag changes are pushed and onChange listeners are told', async () => {
  const { api, addon } = world({ registerFirst: true });
  let told = 0;
  const off = api.featureFlags.onChange(() => {
    told += 1;
  });
  await settle();
  addon.made.flags[0].set({ dark_mode: true });
  await settle();
  assert.equal(told, 1);
  assert.equal(await api.featureFlags.get('dark_mode'), true);
  off();
});

test('hostile arguments are refused with ERR_INVALID_ARGUMENT before the addon', async () => {
  const { api, addon } = world();
  const before = addon.calls.length;
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
  assert.equal(addon.calls.length, before, 'nothing reached the addon');
  assert.equal({}.polluted, undefined);
  // The limits themselves are allowed.
  await api.analytics.track('a'.repeat(64), Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 's'.repeat(256)])));
  await api.featureFlags.get('k'.repeat(128));
});

test('extra arguments on a no-argument channel are refused', async () => {
  const { renderer, addon } = world();
  const answer = await renderer.ipcRenderer.invoke('railgun:updater:install', { force: true });
  assert.deepEqual(answer, { ok: false, error: { code: 'ERR_INVALID_ARGUMENT', message: 'railgun:updater:install takes no arguments, got 1' } });
  assert.equal(addon.calls.filter((c) => c[0] === 'installUpdate').length, 0);
  const track = await renderer.ipcRenderer.invoke('railgun:analytics:track', 'ok', null, 'extra');
  assert.equal(track.error.code, 'ERR_INVALID_ARGUMENT');
  assert.equal(addon.calls.filter((c) => c[0] === 'track').length, 0);
});

test('unknown channels are refused with ERR_INVALID_ARGUMENT', async () => {
  world();
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
});

test('a page cannot send functions, and gets typed errors for an uninitialized service', async () => {
  main.reset();
  const electron = createElectronStandIn();
  main.registerIpcHandlers(electron.ipcMain);
  const r = electron.createRenderer();
  exposeRailgunApi(r.contextBridge, r.ipcRenderer);
  await assert.rejects(r.window.electronAPI.featureFlags.getAll(), refused('ERR_NOT_INITIALIZED'));
  await assert.rejects(r.window.electronAPI.analytics.track('ok', { f: () => 1 }), /could not be cloned/);
});

test('validateSender refuses calls and subscriptions from other origins', async () => {
  const { electron, addon } = world({
    validateSender: (event) => new URL(event.senderFrame.url).origin === 'app://railgun',
  });
  const evil = electron.createRenderer('https://evil.example/');
  exposeRailgunApi(evil.contextBridge, evil.ipcRenderer);
  await assert.rejects(evil.window.electronAPI.featureFlags.getAll(), refused('ERR_UNTRUSTED_SENDER'));
  const got = [];
  evil.window.electronAPI.updater.onEvent((n) => got.push(n));
  await settle();
  addon.made.updaters[0].emit('checking-for-update', null);
  await settle();
  assert.deepEqual(got, []);
  assert.equal(evil.webContents.sent.length, 0);
});

test('a destroyed window is dropped from the pushes; others keep getting them', async () => {
  const { electron, renderer, api, addon } = world();
  const other = electron.createRenderer();
  exposeRailgunApi(other.contextBridge, other.ipcRenderer);
  const a = [];
  const b = [];
  api.updater.onEvent((n) => a.push(n));
  other.window.electronAPI.updater.onEvent((n) => b.push(n));
  await settle();
  renderer.webContents.destroy();
  addon.made.updaters[0].emit('update-not-available', { version: '0.1.0' });
  await settle();
  assert.deepEqual(a, []);
  assert.deepEqual(b, ['update-not-available']);
});

test('handlers are registered once per channel and unregister removes them all', async () => {
  const { electron, unregister } = world();
  assert.equal(electron.ipcMain.handlers.size, Object.keys(main.CHANNELS).length);
  assert.throws(() => main.registerIpcHandlers(electron.ipcMain), /second handler/);
  unregister();
  assert.equal(electron.ipcMain.handlers.size, 0);
  assert.equal(electron.ipcMain.listenerCount('railgun:events:subscribe'), 0);
});

test('a listener that throws does not stop the others', async () => {
  const { api, addon } = world();
  const original = console.error;
  console.error = () => {};
  try {
    const got = [];
    api.updater.onEvent(() => {
      throw new Error('boom');
    });
    api.updater.onEvent((n) => got.push(n));
    await settle();
    addon.made.updaters[0].emit('checking-for-update', null);
    await settle();
    assert.deepEqual(got, ['checking-for-update']);
  } finally {
    console.error = original;
  }
});
