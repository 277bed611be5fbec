// The specification's environment variables (§5) drive the Electron layer: each test sets one
// in process.env, as an app's environment would, calls init…() without the option it replaces,
// and reads what came of it from the real server (`railgun serve`, over the real addon).
// Electron's `app` is the STAND-IN of support/electron-standin.mjs, answered for
// `require('electron')`, so no `electronApp` option is passed either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { createElectronStandIn, provideElectronModule } from './support/electron-standin.mjs';
import { nextEmit } from '../node-support/deadline.mjs';
import {
  APP, RELEASES, RUNNING, baseConfig, fixtureForFile, newUserId,
} from '../node-support/electron-fixture.mjs';
import { withEnv } from '../node-support/railgun.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');

const file = fixtureForFile({ onAfter: () => main.reset() });

/** Every variable of §5 unset: each test sets only its own. */
const NONE = {
  RAILGUN_UPDATE_URL: undefined,
  RAILGUN_UPDATE_CHANNEL: undefined,
  RAILGUN_UPDATE_PUBLIC_KEY: undefined,
  RAILGUN_ANALYTICS_URL: undefined,
  RAILGUN_CONFIG_URL: undefined,
};

/** A fresh main process whose `require('electron').app` is a stand-in; shut down after `t`. */
function electronMain(t) {
  main.reset();
  const electron = createElectronStandIn({ name: APP, version: RUNNING, userData: file.fx.userData(t) });
  t.after(provideElectronModule({ app: electron.app, ipcMain: electron.ipcMain }));
  t.after(async () => {
    await main.shutdown();
    main.reset();
  });
  return electron;
}

test('RAILGUN_UPDATE_URL: the updater checks the server it names', async (t) => {
  const { fx, dead } = file;
  electronMain(t);
  const updater = await withEnv({ ...NONE, RAILGUN_UPDATE_URL: fx.updatesUrl }, () =>
    main.initAutoUpdater({ publicKeys: [fx.keys.pem], autoCheck: false, autoDownload: false }));
  assert.equal(updater.config.url, fx.updatesUrl);
  assert.equal((await updater.checkForUpdates()).version, RELEASES.stable);

  const elsewhere = await withEnv({ ...NONE, RAILGUN_UPDATE_URL: dead }, () =>
    main.initAutoUpdater({ publicKeys: [fx.keys.pem], autoCheck: false, autoDownload: false }));
  elsewhere.on('error', () => {});
  await assert.rejects(elsewhere.checkForUpdates(), { code: 'ERR_NETWORK' });
});

test('RAILGUN_UPDATE_CHANNEL: the updater, analytics and health all use the channel it names', async (t) => {
  const { fx } = file;
  electronMain(t);
  const userId = newUserId();
  const { updater, analytics, health } = await withEnv({ ...NONE, RAILGUN_UPDATE_CHANNEL: 'canary' }, () => ({
    updater: main.initAutoUpdater({ url: fx.updatesUrl, publicKeys: [fx.keys.pem], autoCheck: false, autoDownload: false }),
    analytics: main.initAnalytics({ url: fx.url, consent: 'granted', sampleRate: 1, userId }),
    health: main.initHealth({ url: fx.url, consent: 'granted' }),
  }));
  assert.equal((await updater.checkForUpdates()).version, RELEASES.canary, "the canary channel's release");
  analytics.track('message_sent');
  await analytics.flush();
  assert.deepEqual([...new Set(fx.events(userId).map((e) => e.channel))], ['canary'], 'events carry it');
  health.recordError();
  assert.equal((await health.flush()).pending, 0);
  assert.deepEqual([...new Set(fx.healthReports(APP).map((r) => r.channel))], ['canary'], 'health reports carry it');
});

test('RAILGUN_UPDATE_PUBLIC_KEY (base64 of a PEM): the release verifies with it, and only with it', async (t) => {
  const { fx } = file;
  electronMain(t);
  const updater = await withEnv({ ...NONE, RAILGUN_UPDATE_PUBLIC_KEY: fx.publicKeyBase64 }, () =>
    main.initAutoUpdater({ url: fx.updatesUrl, autoCheck: false, autoDownload: false }));
  assert.equal((await updater.checkForUpdates()).version, RELEASES.stable);

  const strangerB64 = Buffer.from(fx.stranger.pem).toString('base64');
  const wrong = await withEnv({ ...NONE, RAILGUN_UPDATE_PUBLIC_KEY: strangerB64 }, () =>
    main.initAutoUpdater({ url: fx.updatesUrl, autoCheck: false, autoDownload: false }));
  wrong.on('error', () => {});
  await assert.rejects(wrong.checkForUpdates(), { code: 'ERR_SIGNATURE_INVALID' });
});

test('RAILGUN_ANALYTICS_URL: events and health reports go to the server it names', async (t) => {
  const { fx } = file;
  electronMain(t);
  const userId = newUserId();
  const { analytics, health } = await withEnv({ ...NONE, RAILGUN_ANALYTICS_URL: fx.url }, () => ({
    analytics: main.initAnalytics({ consent: 'granted', sampleRate: 1, userId }),
    health: main.initHealth({ consent: 'granted' }),
  }));
  analytics.screen('home');
  assert.equal((await analytics.flush()).pending, 0);
  assert.deepEqual(fx.names(userId), [['session_start', null], ['screen_view', { screen_name: 'home' }]]);
  assert.equal(health.config.url, fx.url);
  const before = fx.healthReports(APP).length;
  health.recordCrash();
  assert.equal((await health.flush()).pending, 0);
  assert.ok(fx.healthReports(APP).length > before, 'the report reached the server');
});

test('RAILGUN_CONFIG_URL: the flags come from the document it names', async (t) => {
  const { fx } = file;
  electronMain(t);
  const config = fx.newConfig(baseConfig({ flags: { from_the_environment: { enabled: true, rolloutPercentage: 100 } } }));
  const flags = await withEnv({ ...NONE, RAILGUN_CONFIG_URL: config.url }, () => main.initFeatureFlags());
  await nextEmit(flags, 'change'); // the addon's first fetch
  assert.deepEqual(flags.getAll(), { from_the_environment: true });
});
