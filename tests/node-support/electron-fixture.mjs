// The real back end the Electron-layer tests run against: one `railgun serve` per test file on
// a tree published with `railgun release sign/publish` (a release on stable, beta and canary,
// signed by a fresh release key), remote-config documents written into that tree, and the
// loopback helpers for failures (a server that drops every connection, a relay that holds
// requests on cue). Together with the addon spy (addon-spy.mjs) and the Electron stand-in
// (tests/node/support/electron-standin.mjs, for Electron's own objects only), the tests drive
// electron/*.js over the real addon and read back what the real server stored
// (server-store.mjs).

import { createServer, request as httpRequest } from 'node:http';
import { after, before } from 'node:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { createElectronStandIn } from '../node/support/electron-standin.mjs';
import { condition, nextEmit } from './deadline.mjs';
import { buildTarball, droppingServer, keygen, signAndPublish, startServer, tempDir } from './railgun.mjs';
import { storedEvents, storedHealthReports, storedHealthTotals, storedNames } from './server-store.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');
const { exposeRailgunApi } = require('../../electron/preload.js');

/** The app every fixture publishes. */
export const APP = 'rail-gun';
/** The version the tests run as. */
export const RUNNING = '0.1.0';
/** The release of each channel. */
export const RELEASES = Object.freeze({ stable: '0.2.0', beta: '0.3.0', canary: '0.4.0' });
export const READ_TOKEN = 'electron-read-token';
export const ADMIN_TOKEN = 'electron-admin-token';

/** The remote config the tests start from (the list form; flags keyed by name work too). */
export function baseConfig(overrides = {}) {
  return {
    version: '1',
    lastUpdated: '2026-11-29T00:00:00Z',
    emergencyKillSwitch: false,
    flags: [
      { key: 'new_composer', enabled: true, rolloutPercentage: 100 },
      { key: 'dark_mode', enabled: false, rolloutPercentage: 100 },
    ],
    announcements: [{ id: 'a1', type: 'info', title: 'Hello', message: 'New release', dismissible: true, showOnce: false }],
    maintenance: { active: false, allowReadOnly: true },
    ...overrides,
  };
}

/**
 * Publishes the releases, starts the server and returns what the tests use. `scope` is a test
 * context or `{after(fn)}` for a file-wide fixture (cleaned up by the caller).
 */
export async function startFixture(scope, { serverArgs = [], serverEnv = {}, extraApps = [] } = {}) {
  const work = tempDir(scope, 'railgun-electron-');
  const keys = keygen(join(work, 'keys'), 'release');
  const stranger = keygen(join(work, 'keys'), 'stranger');
  const tree = join(work, 'tree');
  const manifests = {};
  for (const [channel, version] of Object.entries(RELEASES)) {
    const build = buildTarball(join(work, channel), APP, version);
    manifests[`${APP}/${channel}`] = signAndPublish({ keys, tree, app: APP, version, build, channel });
  }
  for (const app of extraApps) {
    const build = buildTarball(join(work, app), app, RELEASES.stable);
    manifests[`${app}/stable`] = signAndPublish({ keys, tree, app, version: RELEASES.stable, build });
  }
  mkdirSync(join(tree, 'config'), { recursive: true });
  const dataDir = join(work, 'data');
  const server = await startServer(scope, {
    root: tree,
    dataDir,
    env: { RAILGUN_READ_TOKEN: READ_TOKEN, RAILGUN_ADMIN_TOKEN: ADMIN_TOKEN, ...serverEnv },
    args: serverArgs,
  });
  const { url } = server;
  let configs = 0;
  return {
    work,
    tree,
    dataDir,
    url,
    /** The update tree's base URL (`RAILGUN_UPDATE_URL`). */
    updatesUrl: `${url}/updates`,
    keys,
    stranger,
    manifests,
    /** The release public key as the specification's `RAILGUN_UPDATE_PUBLIC_KEY`: base64 of its PEM. */
    publicKeyBase64: Buffer.from(keys.pem).toString('base64'),
    /** A new folder for one app's state (its user-data folder). */
    userData: (t) => tempDir(t, 'railgun-user-data-'),
    /** Writes a remote-config document into the tree; its URL (`RAILGUN_CONFIG_URL`). */
    writeConfig(name, doc) {
      writeFileSync(join(tree, 'config', `${name}.json`), JSON.stringify(doc));
      return `${url}/updates/config/${name}.json`;
    },
    /** A config URL nobody else uses, with `doc` in it. */
    newConfig(doc = baseConfig()) {
      configs += 1;
      const name = `c${configs}`;
      return { name, url: this.writeConfig(name, doc) };
    },
    events: (userId) => storedEvents(dataDir, userId),
    names: (userId) => storedNames(dataDir, userId),
    healthReports: (app) => storedHealthReports(dataDir, app),
    healthTotals: (app) => storedHealthTotals(dataDir, app),
    /** GET a read route with the read token; the JSON body. */
    async read(path) {
      const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
      if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
      return res.json();
    },
  };
}

/**
 * One fixture for the whole test file (call at its top level): `{fx, dead}` filled in by a
 * `before` hook (`dead`: a `droppingServer` URL), everything stopped and removed by `after`,
 * which first runs `onAfter` (e.g. the Electron layer's `reset()`).
 */
export function fixtureForFile({ onAfter = () => {}, ...options } = {}) {
  const cleanups = [];
  const scope = { after: (fn) => cleanups.push(fn) };
  const holder = { fx: null, dead: null };
  before(async () => {
    holder.fx = await startFixture(scope, options);
    holder.dead = await droppingServer(scope);
  });
  after(() => {
    onAfter();
    for (const fn of cleanups.reverse()) fn();
  });
  return holder;
}

/**
 * One app of `fx`'s over the real addon (or `addon`, e.g. a spy of it): Electron's objects
 * (the stand-in), analytics (consent granted, a user of its own), with `updater` the updater
 * (0.1.0; stable offers 0.2.0; no automatic check or download), with `flags` feature flags
 * (`true`: a config document of its own; or the `initFeatureFlags` options; the first fetch
 * done), the IPC handlers (registered before the services with `registerFirst`), and one page
 * with `window.electronAPI`. Shut down and forgotten after `t`.
 */
export async function openApp(t, fx, { addon, updater = false, flags = false, registerFirst = false, validateSender } = {}) {
  main.reset();
  const electron = createElectronStandIn({ name: APP, version: RUNNING, userData: fx.userData(t) });
  const common = { electronApp: electron.app, ...(addon ? { addon } : {}) };
  const app = { electron, userId: newUserId() };
  let unregister = registerFirst ? main.registerIpcHandlers(electron.ipcMain, { validateSender }) : null;
  if (updater) {
    app.updater = main.initAutoUpdater({
      ...common, url: fx.updatesUrl, publicKeys: [fx.keys.pem], autoCheck: false, autoDownload: false,
    });
  }
  app.analytics = main.initAnalytics({ ...common, url: fx.url, consent: 'granted', sampleRate: 1, userId: app.userId });
  if (flags) {
    if (flags === true) app.config = fx.newConfig();
    app.flags = main.initFeatureFlags({ ...common, ...(flags === true ? { url: app.config.url } : flags) });
    await nextEmit(app.flags, 'change'); // the addon's first fetch
  }
  if (!registerFirst) unregister = main.registerIpcHandlers(electron.ipcMain, { validateSender });
  app.unregister = unregister;
  t.after(async () => {
    unregister();
    await main.shutdown();
    main.reset();
  });
  app.page = electron.createRenderer();
  exposeRailgunApi(app.page.contextBridge, app.page.ipcRenderer);
  app.api = app.page.window.electronAPI;
  return app;
}

/** A user id nobody else in this run uses, so each test reads only its own events. */
let users = 0;
export function newUserId(prefix = 'user') {
  users += 1;
  return `${prefix}-${process.pid}-${users}`;
}

/**
 * A loopback relay to `target` (the real server). `hold()` makes it keep every request that
 * arrives from then on until `release()` (then they go through to `target`); `arrived(n)` waits
 * until `n` requests were held. A request to a held relay never fails by itself: the client's
 * own deadline decides.
 */
export async function holdingRelay(scope, target) {
  const held = [];
  let holding = false;
  let count = 0;
  const heldCount = condition((n) => count >= n);
  const forward = (req, res, body) => {
    const out = httpRequest(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    out.end(body);
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (holding) {
        held.push(() => forward(req, res, body));
        count += 1;
        heldCount.check();
      } else {
        forward(req, res, body);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const release = () => {
    holding = false;
    for (const go of held.splice(0)) go();
  };
  scope.after(() => {
    release();
    server.closeAllConnections();
    server.close();
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    hold: () => {
      holding = true;
    },
    release,
    arrived: (n = 1) => heldCount.until(`${n} request(s) held by the relay`, n),
  };
}
