// electron/main.js without IPC, over the real addon and a real `railgun serve`: configuration
// (options, environment, Electron's app) and what the addon did with it (the right channel's
// release, verified with the key from the environment; events stored by the server with the
// app's version and channel), the updater's electron-updater events, analytics and flags.
//
// Electron's `app` is the STAND-IN of support/electron-standin.mjs (Electron cannot run here).
// The addon is the real one behind a spy (../node-support/addon-spy.mjs) that records what
// the Electron layer handed it; every call goes through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { AppStandIn } from './support/electron-standin.mjs';
import { spyOnAddon } from '../node-support/addon-spy.mjs';
import { condition, nextEmit } from '../node-support/deadline.mjs';
import {
  APP, RELEASES, RUNNING, baseConfig, fixtureForFile, newUserId,
} from '../node-support/electron-fixture.mjs';
import { addon } from '../node-support/railgun.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');

const file = fixtureForFile({
  onAfter: () => {
    main.reset();
  },
});

/** The variables of the specification's §5, pointing at the fixture. */
const updateEnv = () => ({
  RAILGUN_UPDATE_URL: file.fx.updatesUrl,
  RAILGUN_UPDATE_CHANNEL: 'beta',
  RAILGUN_UPDATE_PUBLIC_KEY: file.fx.publicKeyBase64,
});

/** A fresh main process: the spy, the app stand-in and its user-data folder; shut down after `t`. */
function setup(t) {
  main.reset();
  const spy = spyOnAddon();
  const userData = file.fx.userData(t);
  const electronApp = new AppStandIn({ name: APP, version: RUNNING, userData });
  t.after(async () => {
    await main.shutdown();
    main.reset();
  });
  return { spy, electronApp, userData, stateDir: path.join(userData, 'railgun') };
}

/** A user id inside the sample of `rate` (sampling is per user: bucket("sample:{app}", id)). */
function sampledUser(rate) {
  for (let i = 0; ; i += 1) {
    const id = newUserId('sampled');
    if (addon.bucket(`sample:${APP}`, id) < Math.round(rate * 10_000)) return id;
    assert.ok(i < 1000, 'no user inside the sample');
  }
}

test('initAutoUpdater is configured from RAILGUN_UPDATE_* and Electron app', async (t) => {
  const { spy, electronApp, userData, stateDir } = setup(t);
  const env = updateEnv();
  const updater = main.initAutoUpdater({ addon: spy, electronApp, env, autoCheck: false, autoDownload: false });
  const opts = spy.made.updaters[0].opts;
  assert.equal(opts.url, file.fx.updatesUrl);
  assert.equal(opts.channel, 'beta');
  assert.deepEqual(opts.publicKeys, [file.fx.publicKeyBase64]);
  assert.equal(opts.app, APP);
  assert.equal(opts.currentVersion, RUNNING);
  assert.equal(opts.stateDir, path.join(userData, 'railgun'));
  assert.equal(opts.installRoot, path.join(userData, 'railgun', 'install'));
  assert.equal(updater.config.checkInterval, 60 * 60 * 1000);
  assert.ok(!JSON.stringify(updater.config).includes(file.fx.publicKeyBase64), 'config never shows key material');
  assert.deepEqual(spy.calls.map(([c]) => c), ['new Updater', 'onEvent'], 'autoCheck: false starts nothing');
  assert.equal(updater.state, 'idle');

  // What the addon made of it: the beta channel's release, verified with the key from the
  // environment (base64 of its PEM), its store in the app's user-data folder.
  const info = await updater.checkForUpdates();
  assert.equal(info.version, RELEASES.beta);
  assert.ok(info.files[0].url.startsWith(`${file.fx.updatesUrl}/${APP}/releases/${RELEASES.beta}/`));
  assert.ok(existsSync(path.join(stateDir, 'railgun.db')), 'the client store is in <userData>/railgun');
});

test('options win over the environment; several keys separated by commas', async (t) => {
  const { spy, electronApp } = setup(t);
  const strangerB64 = Buffer.from(file.fx.stranger.pem).toString('base64');
  const updater = main.initAutoUpdater({
    addon: spy,
    electronApp,
    env: { RAILGUN_UPDATE_URL: `${file.dead}/updates`, RAILGUN_UPDATE_CHANNEL: 'beta', RAILGUN_UPDATE_PUBLIC_KEY: ` ${strangerB64}, ${file.fx.publicKeyBase64} ` },
    url: file.fx.updatesUrl,
    channel: 'canary',
    autoCheck: false,
    autoDownload: false,
  });
  const opts = spy.made.updaters[0].opts;
  assert.equal(opts.url, file.fx.updatesUrl);
  assert.equal(opts.channel, 'canary');
  assert.deepEqual(opts.publicKeys, [strangerB64, file.fx.publicKeyBase64]);
  // The option's URL and channel, and the second key of the list: the canary release verifies.
  const info = await updater.checkForUpdates();
  assert.equal(info.version, RELEASES.canary);
});

test('initAutoUpdater refuses a missing URL, a missing key, a bad channel or interval, and builds nothing', (t) => {
  const { spy, electronApp, stateDir } = setup(t);
  const env = updateEnv();
  const cases = [
    [{ env: { RAILGUN_UPDATE_PUBLIC_KEY: env.RAILGUN_UPDATE_PUBLIC_KEY } }, /RAILGUN_UPDATE_URL/],
    [{ env: { RAILGUN_UPDATE_URL: env.RAILGUN_UPDATE_URL } }, /RAILGUN_UPDATE_PUBLIC_KEY/],
    [{ env, channel: '../etc' }, /channel/],
    [{ env, checkInterval: 5 }, /checkInterval/],
    [{ env, checkInterval: Number.NaN }, /checkInterval/],
  ];
  for (const [opts, message] of cases) {
    assert.throws(
      () => main.initAutoUpdater({ addon: spy, electronApp, autoCheck: false, ...opts }),
      (e) => e.code === 'ERR_INVALID_ARGUMENT' && message.test(e.message),
      JSON.stringify(opts),
    );
  }
  assert.equal(spy.made.updaters.length, 0, 'the addon was never asked');
  assert.equal(existsSync(stateDir), false, 'nothing written');
});

test('outside Electron the app name, version and folder are required', (t) => {
  const { spy, stateDir } = setup(t);
  assert.throws(
    () => main.initAutoUpdater({ addon: spy, env: updateEnv(), autoCheck: false }),
    (e) => e.code === 'ERR_INVALID_ARGUMENT' && /`app` is required outside Electron/.test(e.message),
  );
  assert.equal(spy.made.updaters.length, 0);
  const u = main.initAutoUpdater({ addon: spy, env: updateEnv(), autoCheck: false, app: APP, appVersion: '1.0.0', stateDir });
  assert.equal(u.config.stateDir, stateDir);
  assert.equal(u.currentVersion, '1.0.0');
  assert.ok(existsSync(path.join(stateDir, 'railgun.db')), 'the addon opened its store there');
});

test('autoCheck checks now and schedules the interval; the seed usage runs as written', async (t) => {
  const { spy, electronApp, stateDir } = setup(t);
  main.setAddon(spy);
  t.after(() => main.setAddon(null));
  // The usage example, with the test's app stand-in and environment.
  const updater = main.initAutoUpdater({ channel: 'stable', autoCheck: true, checkInterval: 4 * 60 * 60 * 1000, electronApp, env: updateEnv() });
  const seen = [];
  updater.on('checking-for-update', () => seen.push('checking-for-update'));
  updater.on('update-available', (info) => seen.push(`update-available ${info.version}`));
  updater.on('download-progress', (p) => seen.push(`download-progress ${p.percent}`));
  updater.on('update-downloaded', (info) => seen.push(`update-downloaded ${info.version}`));
  const [downloaded] = await nextEmit(updater, 'update-downloaded');
  assert.equal(downloaded.version, RELEASES.stable);
  assert.deepEqual(
    spy.calls.map(([c, ...a]) => (c === 'startAutoCheck' ? `${c} ${a[0]}` : c)),
    ['new Updater', 'onEvent', `startAutoCheck ${4 * 60 * 60 * 1000}`, 'checkForUpdates', 'downloadUpdate'],
  );
  const progress = seen.filter((s) => s.startsWith('download-progress'));
  assert.deepEqual(seen.filter((s) => !s.startsWith('download-progress')),
    ['checking-for-update', `update-available ${RELEASES.stable}`, `update-downloaded ${RELEASES.stable}`]);
  assert.equal(progress.at(-1), 'download-progress 100', seen.join(', '));
  assert.deepEqual(await updater.installUpdate(), { version: RELEASES.stable });
  assert.equal(readFileSync(path.join(stateDir, 'install', 'current', 'VERSION'), 'utf8'), `${APP} ${RELEASES.stable}\n`);
  assert.equal(updater.currentVersion, RELEASES.stable);
});

test('concurrent checks share one call; autoDownload false does not download', async (t) => {
  const { spy, electronApp } = setup(t);
  const updater = main.initAutoUpdater({ addon: spy, electronApp, env: updateEnv(), channel: 'stable', autoCheck: false, autoDownload: false });
  const checking = [];
  updater.on('checking-for-update', () => checking.push(1));
  const a = updater.checkForUpdates();
  const b = updater.checkForUpdates();
  assert.equal(a, b);
  assert.equal((await a).version, RELEASES.stable);
  assert.deepEqual(spy.callsOf('checkForUpdates'), [['checkForUpdates']]);
  assert.deepEqual(spy.callsOf('downloadUpdate'), [], 'no download');
  assert.equal(updater.state, 'update-available');
});

test('an updater error reaches error listeners with its code, and crashes nothing without one', async (t) => {
  const { spy, electronApp } = setup(t);
  const updater = main.initAutoUpdater({ addon: spy, electronApp, env: { ...updateEnv(), RAILGUN_UPDATE_URL: file.dead }, autoCheck: false });
  const original = console.error;
  const logged = [];
  const logging = condition(() => logged.some((l) => l.includes('ERR_NETWORK')));
  console.error = (...a) => {
    logged.push(a.join(' '));
    logging.check();
  };
  t.after(() => {
    console.error = original;
  });
  await assert.rejects(updater.checkForUpdates(), (e) => e.code === 'ERR_NETWORK');
  // The addon's error event crosses threads on its own schedule: wait until it was logged.
  await logging.until('the unhandled updater error to be logged');
  assert.match(logged.join('\n'), /\[railgun\] updater error ERR_NETWORK/);
  const got = nextEmit(updater, 'error');
  await assert.rejects(updater.checkForUpdates());
  const [err, message] = await got;
  assert.equal(err.code, 'ERR_NETWORK');
  assert.equal(err.name, 'RailgunError');
  assert.equal(typeof message, 'string');
});

test('quitAndInstall installs, then relaunches through Electron app', async (t) => {
  const { spy, electronApp, stateDir } = setup(t);
  const updater = main.initAutoUpdater({ addon: spy, electronApp, env: updateEnv(), channel: 'stable', autoCheck: false, autoDownload: false });
  await updater.checkForUpdates();
  await updater.downloadUpdate();
  const r = await updater.quitAndInstall();
  assert.equal(r.version, RELEASES.stable);
  assert.equal(readFileSync(path.join(stateDir, 'install', 'current', 'VERSION'), 'utf8'), `${APP} ${RELEASES.stable}\n`);
  assert.equal(electronApp.relaunchCalls, 1);
  assert.equal(electronApp.hasQuit, true);
  assert.deepEqual(electronApp.quitEvents, ['before-quit', 'will-quit', 'quit']);
});

test('initAnalytics passes sampleRate, consent and the app; the server stores its events', async (t) => {
  const { spy, electronApp } = setup(t);
  const userId = sampledUser(0.5);
  const a = main.initAnalytics({
    addon: spy, electronApp, env: { RAILGUN_ANALYTICS_URL: file.fx.url, RAILGUN_UPDATE_CHANNEL: 'beta' }, sampleRate: 0.5, consent: 'granted', userId,
  });
  const opts = spy.made.analytics[0].opts;
  assert.deepEqual(
    { url: opts.url, app: opts.app, appVersion: opts.appVersion, sampleRate: opts.sampleRate, consent: opts.consent, channel: opts.channel },
    { url: file.fx.url, app: APP, appVersion: RUNNING, sampleRate: 0.5, consent: 'granted', channel: 'beta' },
  );
  assert.equal(a.getConsent(), 'granted');
  a.track('message_sent', { count: 2 });
  assert.deepEqual(spy.calls.at(-1), ['track', 'message_sent', { count: 2 }]);
  assert.equal((await a.flush()).pending, 0);
  const stored = file.fx.events(userId);
  assert.deepEqual(stored.map((e) => [e.name, e.properties]), [['session_start', null], ['message_sent', { count: 2 }]]);
  for (const e of stored) {
    assert.deepEqual([e.appVersion, e.channel, e.sampleRate], [RUNNING, 'beta', 0.5], JSON.stringify(e));
  }
  for (const bad of [{ sampleRate: 0 }, { sampleRate: 1.5 }, { sampleRate: '1' }, { consent: 'yes' }, { url: undefined }]) {
    assert.throws(
      () => main.initAnalytics({ addon: spy, electronApp, env: {}, url: file.fx.url, ...bad }),
      (e) => e.code === 'ERR_INVALID_ARGUMENT',
      JSON.stringify(bad),
    );
  }
  assert.equal(spy.made.analytics.length, 1);
});

test('main-process track validates like the server before reaching the addon', async (t) => {
  const { spy, electronApp } = setup(t);
  const userId = newUserId();
  const a = main.initAnalytics({ addon: spy, electronApp, url: file.fx.url, consent: 'granted', sampleRate: 1, userId });
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
  assert.equal(spy.callsOf('track').length, 0);
  a.track('ok', { s: 'é'.repeat(256) }); // 256 characters, more bytes: allowed
  assert.equal(spy.callsOf('track').length, 1);
  await a.flush();
  assert.deepEqual(file.fx.names(userId), [['session_start', null], ['ok', { s: 'é'.repeat(256) }]], 'only the valid event arrived');
});

test('initFeatureFlags leaves the refresh schedule to the addon and emits change when the addon reports one', async (t) => {
  const { spy, electronApp } = setup(t);
  const config = file.fx.newConfig();
  const flags = main.initFeatureFlags({ addon: spy, electronApp, env: { RAILGUN_CONFIG_URL: config.url }, refreshInterval: 60_000 });
  const opts = spy.made.flags[0].opts;
  assert.equal(opts.url, config.url);
  assert.equal(opts.refreshIntervalMs, 60_000);
  // The addon fetches now (and every interval) by itself: the first document arrives with no
  // refresh() from here.
  await nextEmit(flags, 'change');
  assert.deepEqual(spy.callsOf('refresh'), [], 'the addon fetched by itself');
  assert.deepEqual(flags.getAll(), { new_composer: true, dark_mode: false });

  file.fx.writeConfig(config.name, baseConfig({ version: '2', flags: [{ key: 'dark_mode', enabled: true, rolloutPercentage: 100 }] }));
  const changed = nextEmit(flags, 'change');
  assert.equal(await flags.refresh(), 'updated');
  await changed;
  assert.equal(flags.get('dark_mode'), true);
  assert.throws(() => flags.get('k'.repeat(129)), (e) => e.code === 'ERR_INVALID_ARGUMENT');
  assert.throws(() => main.initFeatureFlags({ addon: spy, electronApp, env: {} }), /RAILGUN_CONFIG_URL/);
  assert.equal(spy.made.flags.length, 1);
});

test('a second initAutoUpdater stops the first one’s schedule', async (t) => {
  const { spy, electronApp } = setup(t);
  main.initAutoUpdater({ addon: spy, electronApp, env: updateEnv(), autoCheck: false });
  main.initAutoUpdater({ addon: spy, electronApp, env: updateEnv(), autoCheck: false });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(spy.made.updaters[0].calls.map(([c]) => c), ['onEvent', 'stop']);
  assert.deepEqual(spy.made.updaters[1].calls.map(([c]) => c), ['onEvent']);
});

test('huge strings are refused without walking them', async (t) => {
  const { spy, electronApp } = setup(t);
  const userId = newUserId();
  const a = main.initAnalytics({ addon: spy, electronApp, url: file.fx.url, consent: 'granted', sampleRate: 1, userId });
  const huge = 'x'.repeat(10 * 1024 * 1024);
  assert.throws(() => a.track('ok', { s: huge }), (e) => e.code === 'ERR_INVALID_ARGUMENT' && /longer than 256/.test(e.message));
  assert.throws(() => a.screen(huge), (e) => e.code === 'ERR_INVALID_ARGUMENT');
  assert.throws(() => a.track(huge), (e) => e.code === 'ERR_INVALID_ARGUMENT' && e.message.length < 200);
  // 256 astral characters are 512 UTF-16 units and still allowed.
  a.track('ok', { s: '😀'.repeat(256) });
  assert.throws(() => a.track('ok', { s: '😀'.repeat(257) }), /longer than 256 characters/);
  assert.throws(() => a.track('ok', { s: 'é'.repeat(257) }), /longer than 256 characters/);
  assert.equal(spy.callsOf('track').length + spy.callsOf('screen').length, 1);
  await a.flush();
  assert.deepEqual(file.fx.names(userId), [['session_start', null], ['ok', { s: '😀'.repeat(256) }]]);
});
