// electron/renderer.js over the whole bridge: getAnalytics() never throws into the UI and what
// it records reaches the real server (read back from its store), Events match the core's
// names, error codes survive contextBridge in the message. Electron's objects are the STAND-IN
// of support/electron-standin.mjs; the addon is the real one (spied) and the server
// `railgun serve`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

import { settle } from './support/electron-standin.mjs';
import { spyOnAddon } from '../node-support/addon-spy.mjs';
import { fixtureForFile, openApp } from '../node-support/electron-fixture.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');
const renderer = require('../../electron/renderer.js');

const file = fixtureForFile({
  onAfter: () => {
    main.reset();
    renderer.setElectronApi(null);
  },
});

async function world(t) {
  const spy = spyOnAddon();
  const app = await openApp(t, file.fx, { addon: spy });
  renderer.setElectronApi(app.api);
  return { ...app, spy };
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

test('getAnalytics().track is fire-and-forget: recorded in main and stored by the server, failures go to onError', async (t) => {
  const { spy, analytics: mainAnalytics, userId } = await world(t);
  const errors = [];
  const analytics = renderer.getAnalytics({ onError: (e) => errors.push(e) });
  assert.equal(analytics.track(renderer.Events.MESSAGE_SENT, { length_bucket: 'short' }), undefined);
  analytics.screen('inbox');
  await settle();
  analytics.track('Bad Name');
  analytics.track('ok', { s: 'x'.repeat(300) });
  await settle();
  assert.equal(errors.length, 2);
  assert.deepEqual(errors.map(renderer.errorCode), ['ERR_INVALID_ARGUMENT', 'ERR_INVALID_ARGUMENT']);
  assert.deepEqual(spy.calls.filter(([c]) => c === 'track' || c === 'screen'),
    [['track', 'message_sent', { length_bucket: 'short' }], ['screen', 'inbox']], 'the refused calls never reached the addon');
  await mainAnalytics.flush();
  assert.deepEqual(file.fx.names(userId), [
    ['session_start', null],
    ['message_sent', { length_bucket: 'short' }],
    ['screen_view', { screen_name: 'inbox' }],
  ]);
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
