// electron/main.js without IPC: configuration (options, environment, Electron's app), the
// updater's electron-updater events, analytics and flags wrappers. The addon is a scripted
// stand-in (support/electron-fake-addon.mjs); the real one is used by electron_e2e.test.mjs.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createFakeAddon, fakeElectronApp } from './support/electron-fake-addon.mjs';
import { within } from '../node-support/deadline.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');

const KEY = 'LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K';
const ENV = { RAILGUN_UPDATE_URL: 'http://127.0.0.1:9/updates', RAILGUN_UPDATE_CHANNEL: 'beta', RAILGUN_UPDATE_PUBLIC_KEY: KEY };

function setup() {
  main.reset();
  const addon = createFakeAddon();
  const electronApp = fakeElectronApp('/tmp/ud');
  return { addon, electronApp };
}

test('initAutoUpdater is configured from RAILGUN_UPDATE_* and Electron app', () => {
  const { addon, electronApp } = setup();
  const updater = main.initAutoUpdater({ addon, electronApp, env: ENV, autoCheck: false });
  const opts = addon.made.updaters[0].opts;
  assert.equal(opts.url, 'http://127.0.0.1:9/updates');
  assert.equal(opts.channel, 'beta');
  assert.deepEqual(opts.publicKeys, [KEY]);
  assert.equal(opts.app, 'rail-gun');
  assert.equal(opts.currentVersion, '0.1.0');
  assert.equal(opts.stateDir, path.join('/tmp/ud', 'railgun'));
  assert.equal(opts.installRoot, path.join('/tmp/ud', 'railgun', 'install'));
  assert.equal(updater.config.checkInterval, 60 * 60 * 1000);
  assert.ok(!JSON.stringify(updater.config).includes(KEY), 'config never shows key material');
  assert.deepEqual(addon.calls, [], 'autoCheck: false starts nothing');
});

test('options win over the environment; several keys separated by commas', () => {
  const { addon, electronApp } = setup();
  main.initAutoUpdater({
    addon,
    electronApp,
    env: { ...ENV, RAILGUN_UPDATE_PUBLIC_KEY: 'k1, k2' },
    url: 'http://other/updates',
    channel: 'canary',
    autoCheck: false,
  });
  const opts = addon.made.updaters[0].opts;
  assert.equal(opts.url, 'http://other/updates');
  assert.equal(opts.channel, 'canary');
  assert.deepEqual(opts.publicKeys, ['k1', 'k2']);
});

test('initAutoUpdater refuses a missing URL, a missing key, a bad channel or interval', () => {
  const { addon, electronApp } = setup();
  const cases = [
    [{ env: { RAILGUN_UPDATE_PUBLIC_KEY: KEY } }, /RAILGUN_UPDATE_URL/],
    [{ env: { RAILGUN_UPDATE_URL: 'http://x' } }, /RAILGUN_UPDATE_PUBLIC_KEY/],
    [{ env: ENV, channel: '../etc' }, /channel/],
    [{ env: ENV, checkInterval: 5 }, /checkInterval/],
    [{ env: ENV, checkInterval: Number.NaN }, /checkInterval/],
  ];
  for (const [opts, message] of cases) {
    assert.throws(
      () => main.initAutoUpdater({ addon, electronApp, autoCheck: false, ...opts }),
      (e) => e.code === 'ERR_INVALID_ARGUMENT' && message.test(e.message),
      JSON.stringify(opts),
    );
  }
  assert.equal(addon.made.updaters.length, 0);
});

test('outside Electron the app name, version and folder are required', () => {
  const { addon } = setup();
  assert.throws(
    () => main.initAutoUpdater({ addon, env: ENV, autoCheck: false }),
    (e) => e.code === 'ERR_INVALID_ARGUMENT' && /`app` is required outside Electron/.test(e.message),
  );
  const u = main.initAutoUpdater({ addon, env: ENV, autoCheck: false, app: 'a', appVersion: '1.0.0', stateDir: '/tmp/s' });
  assert.equal(u.config.stateDir, '/tmp/s');
});

test('autoCheck checks now and schedules the interval; the seed usage runs as written', async () => {
  const { addon, electronApp } = setup();
  main.setAddon(addon);
  try {
    // The usage example, with the test's app stand-in and environment.
    const updater = main.initAutoUpdater({ channel: 'stable', autoCheck: true, checkInterval: 4 * 60 * 60 * 1000, electronApp, env: ENV });
    const seen = [];
    const downloaded = new Promise((resolve) => {
      updater.on('checking-for-update', () => seen.push('checking-for-update'));
      updater.on('update-available', (info) => seen.push(`update-available ${info.version}`));
      updater.on('download-progress', (p) => seen.push(`download-progress ${p.percent}`));
      updater.on('update-downloaded', (info) => {
        seen.push(`update-downloaded ${info.version}`);
        resolve(info);
      });
    });
    await within(downloaded, 'update-downloaded');
    assert.deepEqual(addon.calls.slice(0, 3), [['startAutoCheck', 4 * 60 * 60 * 1000], ['checkForUpdates'], ['downloadUpdate']]);
    assert.deepEqual(seen, ['checking-for-update', 'update-available 0.2.0', 'download-progress 100', 'update-downloaded 0.2.0']);
    assert.deepEqual(await updater.installUpdate(), { version: '0.2.0', previous: '0.1.0' });
  } finally {
    main.setAddon(null);
  }
});

test('concurrent checks share one call; autoDownload false does not download', async () => {
  const { addon, electronApp } = setup();
  const updater = main.initAutoUpdater({ addon, electronApp, env: ENV, autoCheck: false, autoDownload: false });
  let open;
  addon.made.updaters[0].checkGate = new Promise((r) => {
    open = r;
  });
  const a = updater.checkForUpdates();
  const b = updater.checkForUpdates();
  assert.equal(a, b);
  open();
  assert.equal((await a).version, '0.2.0');
  assert.deepEqual(addon.calls, [['checkForUpdates']]);
});

test('an updater error reaches error listeners with its code, and crashes nothing without one', async () => {
  const { addon, electronApp } = setup();
  const updater = main.initAutoUpdater({ addon, electronApp, env: ENV, autoCheck: false });
  addon.made.updaters[0].failCheck = true;
  const original = console.error;
  const logged = [];
  console.error = (...a) => logged.push(a.join(' '));
  try {
    await assert.rejects(updater.checkForUpdates(), (e) => e.code === 'ERR_NETWORK');
  } finally {
    console.error = original;
  }
  assert.match(logged.join('\n'), /ERR_NETWORK/);
  const got = new Promise((resolve) => updater.once('error', resolve));
  await assert.rejects(updater.checkForUpdates());
  assert.equal((await within(got, "the 'error' event")).code, 'ERR_NETWORK');
});

test('quitAndInstall installs, then relaunches through Electron app', async () => {
  const { addon, electronApp } = setup();
  const updater = main.initAutoUpdater({ addon, electronApp, env: ENV, autoCheck: false });
  await updater.checkForUpdates();
  const r = await updater.quitAndInstall();
  assert.equal(r.version, '0.2.0');
  assert.deepEqual(electronApp.calls, ['relaunch', 'quit']);
});

test('initAnalytics passes debug, sampleRate, consent and refuses bad ones', () => {
  const { addon, electronApp } = setup();
  const a = main.initAnalytics({ addon, electronApp, env: { RAILGUN_ANALYTICS_URL: 'http://127.0.0.1:9' }, debug: true, sampleRate: 0.5, consent: 'granted' });
  const opts = addon.made.analytics[0].opts;
  assert.deepEqual(
    { url: opts.url, app: opts.app, appVersion: opts.appVersion, debug: opts.debug, sampleRate: opts.sampleRate, consent: opts.consent },
    { url: 'http://127.0.0.1:9', app: 'rail-gun', appVersion: '0.1.0', debug: true, sampleRate: 0.5, consent: 'granted' },
  );
  a.track('message_sent', { count: 2 });
  assert.deepEqual(addon.calls.at(-1), ['track', 'message_sent', { count: 2 }]);
  for (const bad of [{ sampleRate: 0 }, { sampleRate: 1.5 }, { sampleRate: '1' }, { consent: 'yes' }, { url: undefined }]) {
    assert.throws(
      () => main.initAnalytics({ addon, electronApp, env: {}, url: 'http://x', ...bad }),
      (e) => e.code === 'ERR_INVALID_ARGUMENT',
      JSON.stringify(bad),
    );
  }
});

test('main-process track validates like the server before reaching the addon', () => {
  const { addon, electronApp } = setup();
  const a = main.initAnalytics({ addon, electronApp, url: 'http://x' });
  const bad = [
    ['Bad-Name', undefined],
    ['x'.repeat(65), undefined],
    ['ok', { s: 'y'.repeat(257) }],
    ['ok', { nested: { a: 1 } }],
    ['ok', JSON.parse('{"__proto__": 1}')],
    ['ok', { n: Infinity }],
    ['ok', Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i]))],
  ];
  for (const [name, props] of bad) {
    assert.throws(() => a.track(name, props), (e) => e.code === 'ERR_INVALID_ARGUMENT', name);
  }
  assert.equal(addon.calls.filter((c) => c[0] === 'track').length, 0);
  a.track('ok', { s: 'é'.repeat(256) }); // 256 characters, more bytes: allowed
  assert.equal(addon.calls.filter((c) => c[0] === 'track').length, 1);
});

test('initFeatureFlags leaves the refresh schedule to the addon and emits change when the addon reports one', async () => {
  const { addon, electronApp } = setup();
  const flags = main.initFeatureFlags({ addon, electronApp, env: { RAILGUN_CONFIG_URL: 'http://127.0.0.1:9/config.json' }, refreshInterval: 60_000 });
  const opts = addon.made.flags[0].opts;
  assert.equal(opts.url, 'http://127.0.0.1:9/config.json');
  assert.equal(opts.refreshIntervalMs, 60_000);
  assert.deepEqual(addon.calls, [], 'the addon fetches now and every interval itself');
  const changed = new Promise((resolve) => flags.once('change', resolve));
  addon.made.flags[0].set({ dark_mode: true });
  await within(changed, "the 'change' event");
  assert.equal(flags.get('dark_mode'), true);
  assert.throws(() => flags.get('k'.repeat(129)), (e) => e.code === 'ERR_INVALID_ARGUMENT');
  assert.throws(() => main.initFeatureFlags({ addon, electronApp, env: {} }), /RAILGUN_CONFIG_URL/);
});

test('a second initAutoUpdater stops the first one’s schedule', async () => {
  const { addon, electronApp } = setup();
  main.initAutoUpdater({ addon, electronApp, env: ENV, autoCheck: false });
  main.initAutoUpdater({ addon, electronApp, env: ENV, autoCheck: false });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(addon.calls, [['stop']]);
});

test('huge strings are refused without walking them', () => {
  const { addon, electronApp } = setup();
  const a = main.initAnalytics({ addon, electronApp, url: 'http://x' });
  const huge = 'x'.repeat(10 * 1024 * 1024);
  assert.throws(() => a.track('ok', { s: huge }), (e) => e.code === 'ERR_INVALID_ARGUMENT' && /longer than 256/.test(e.message));
  assert.throws(() => a.screen(huge), (e) => e.code === 'ERR_INVALID_ARGUMENT');
  assert.throws(() => a.track(huge), (e) => e.code === 'ERR_INVALID_ARGUMENT' && e.message.length < 200);
  // 256 astral characters are 512 UTF-16 units and still allowed.
  a.track('ok', { s: '😀'.repeat(256) });
  assert.throws(() => a.track('ok', { s: '😀'.repeat(257) }), /longer than 256 characters/);
  assert.throws(() => a.track('ok', { s: 'é'.repeat(257) }), /longer than 256 characters/);
});
