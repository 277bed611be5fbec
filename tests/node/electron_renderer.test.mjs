// electron/renderer.js through the Electron stand-in: getAnalytics() never throws into the UI,
// Events match the core's names, error codes survive contextBridge in the message.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createElectronStandIn, settle } from './support/electron-standin.mjs';
import { createFakeAddon, fakeElectronApp } from './support/electron-fake-addon.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');
const { exposeRailgunApi } = require('../../electron/preload.js');
const renderer = require('../../electron/renderer.js');

function world() {
  main.reset();
  const addon = createFakeAddon();
  const electronApp = fakeElectronApp();
  const electron = createElectronStandIn();
  main.initAnalytics({ addon, electronApp, url: 'http://127.0.0.1:9', consent: 'granted' });
  main.registerIpcHandlers(electron.ipcMain);
  const r = electron.createRenderer();
  exposeRailgunApi(r.contextBridge, r.ipcRenderer);
  renderer.setElectronApi(r.window.electronAPI);
  return { addon, api: r.window.electronAPI };
}

test('Events are exactly the core names (src/analytics/event.rs)', () => {
  const rust = readFileSync(new URL('../../src/analytics/event.rs', import.meta.url), 'utf8');
  const names = [...rust.matchAll(/pub const ([A-Z_]+): &str = "([a-z_]+)";/g)].map((m) => [m[1], m[2]]);
  assert.ok(names.length >= 13);
  assert.deepEqual(Object.entries(renderer.Events), names);
  assert.equal(renderer.categoryOf('session_end'), 'session');
  assert.equal(renderer.categoryOf('update_checked'), 'update');
  assert.equal(renderer.categoryOf('my_event'), 'custom');
});

test('getAnalytics().track is fire-and-forget: recorded in main, failures go to onError', async () => {
  const { addon } = world();
  const errors = [];
  const analytics = renderer.getAnalytics({ onError: (e) => errors.push(e) });
  assert.equal(analytics.track(renderer.Events.MESSAGE_SENT, { length_bucket: 'short' }), undefined);
  analytics.screen('inbox');
  await settle();
  assert.deepEqual(addon.made.analytics[0].events, [
    { name: 'message_sent', properties: { length_bucket: 'short' } },
    { name: 'screen_view', properties: { screen_name: 'inbox' } },
  ]);
  analytics.track('Bad Name');
  analytics.track('ok', { s: 'x'.repeat(300) });
  await settle();
  assert.equal(errors.length, 2);
  assert.deepEqual(errors.map(renderer.errorCode), ['ERR_INVALID_ARGUMENT', 'ERR_INVALID_ARGUMENT']);
  assert.equal(addon.made.analytics[0].events.length, 2);
});

test('errorCode reads the code from the property or from the message prefix', () => {
  assert.equal(renderer.errorCode(Object.assign(new Error('x'), { code: 'ERR_X' })), 'ERR_X');
  assert.equal(renderer.errorCode(new Error('ERR_SIGNATURE_INVALID: bad')), 'ERR_SIGNATURE_INVALID');
  assert.equal(renderer.errorCode(new Error("Error invoking remote method 'c': Error: ERR_NETWORK: down")), 'ERR_NETWORK');
  assert.equal(renderer.errorCode(new Error('plain')), undefined);
  assert.equal(renderer.errorCode(null), undefined);
});

test('without the preload the renderer says what is missing instead of throwing into the UI', async () => {
  renderer.setElectronApi(null);
  const errors = [];
  renderer.getAnalytics({ onError: (e) => errors.push(e) }).track('ok');
  assert.equal(renderer.errorCode(errors[0]), 'ERR_NOT_INITIALIZED');
  assert.match(errors[0].message, /exposeRailgunApi/);
  assert.throws(() => renderer.getFeatureFlags(), /window\.electronAPI is missing/);
});
