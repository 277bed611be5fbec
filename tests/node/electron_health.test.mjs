// Rollout health in an Electron app: `initHealth` (electron/main.js) over the real addon, with
// the counts read back from the real server (`railgun serve`: GET /analytics/rollout-status,
// or the health reports it stored).
//
// Electron is the in-process STAND-IN of tests/node/support/electron-standin.mjs, NOT Electron:
// its `app` quits as Electron's Browser::Quit does (before-quit, will-quit, each cancellable,
// then quit) and the tests emit `render-process-gone` / `child-process-gone` on it. A "killed"
// run is a real child process killed with SIGKILL. A shutdown that hangs is a real one whose
// reports a loopback relay holds on their way to the server; one that fails is a real one
// whose client store another process keeps locked. The addon is spied on
// (../node-support/addon-spy.mjs) where a test says what reached it.
//
// Every app name below is its own release on the server (signed, published, registered with
// `POST /admin/releases`, which starts its rollout), so each test reads its own counts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { ROOT, buildTarball, getJson, keygen, signAndPublish, startServer, tempDir } from '../node-support/railgun.mjs';
import { WAIT_MS, nextEmit, within } from '../node-support/deadline.mjs';
import { AppStandIn, createElectronStandIn } from './support/electron-standin.mjs';
import { spyOnAddon } from '../node-support/addon-spy.mjs';
import { holdingRelay } from '../node-support/electron-fixture.mjs';
import { storedHealthReports, storedHealthTotals } from '../node-support/server-store.mjs';

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');
const { exposeRailgunApi } = require('../../electron/preload.js');
const { errorCode } = require('../../electron/renderer.js');

const VERSION = '1.0.0';
const READ = 'health-read-token';
const ADMIN = 'health-admin-token';
const APPS = ['eh-quit', 'eh-killed', 'eh-crash', 'eh-clean', 'eh-error', 'eh-consent', 'eh-spied'];

// --- one server for the file ------------------------------------------------------------------

const cleanups = [];
const fileScope = { after: (fn) => cleanups.push(fn) };
let server;
let dataDir;
let keys;

before(async () => {
  const work = tempDir(fileScope, 'railgun-electron-health-');
  keys = keygen(join(work, 'keys'), 'release');
  const rollout = keygen(join(work, 'keys'), 'rollout');
  const tree = join(work, 'tree');
  const manifests = {};
  for (const app of APPS) {
    const build = buildTarball(join(work, app), app, VERSION);
    manifests[app] = signAndPublish({ keys, tree, app, version: VERSION, build });
  }
  dataDir = join(work, 'data');
  server = await startServer(fileScope, {
    root: tree,
    dataDir,
    env: { RAILGUN_READ_TOKEN: READ, RAILGUN_ADMIN_TOKEN: ADMIN },
    args: ['--rollout-key', rollout.key, '--release-public-key', keys.pub],
  });
  for (const app of APPS) {
    const res = await fetch(`${server.url}/admin/releases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ manifest: readFileSync(manifests[app], 'utf8'), percentage: 100 }),
    });
    const body = await res.json();
    assert.equal(res.status, 201, JSON.stringify(body));
    assert.ok(body.rollout, `the rollout of ${app} started: ${JSON.stringify(body)}`);
  }
});

after(() => {
  main.reset();
  for (const fn of cleanups.reverse()) fn();
});

/** The sums of the health reports the server stored for `app`: `{sessions, errors, crashes}`. */
const stored = (app) => {
  const { sessions, errors, crashes } = storedHealthTotals(dataDir, app);
  return { sessions, errors, crashes };
};

/** The server's health view of `app` 1.0.0. */
function rolloutStatus(app) {
  return getJson(`${server.url}/analytics/rollout-status?version=${VERSION}&app=${app}`, READ);
}

// --- helpers --------------------------------------------------------------------------------

/** A fresh stand-in main process for `name` with its user-data folder `userData`. */
function standIn(name, userData) {
  return createElectronStandIn({ name, version: VERSION, userData });
}

/** `initHealth` in the stand-in `app`, consent granted; shut down and forgotten after `t`. */
function startHealth(t, app, extra = {}) {
  main.reset();
  const health = main.initHealth({ electronApp: app, url: server.url, consent: 'granted', ...extra });
  t.after(async () => {
    main.reset();
    await health.shutdown().catch(() => {});
  });
  return health;
}

/** The `recorded` events of `health`, as `[kind, info]`. */
function recordedBy(health) {
  const got = [];
  health.on('recorded', (kind, info) => got.push([kind, info]));
  return got;
}

const monitors = () => process.listenerCount('uncaughtExceptionMonitor');

// --- quitting ---------------------------------------------------------------------------------

test('a quit through app is held until health shut down cleanly: the next start counts no crash', { timeout: 20_000 }, async (t) => {
  const userData = tempDir(t);
  const first = standIn('eh-quit', userData);
  const health = startHealth(t, first.app);
  assert.deepEqual(health.startup(), { uncleanShutdown: null, revertedFrom: null, recorded: true });
  assert.equal(health.config.stateDir, join(userData, 'railgun'));
  assert.equal(health.config.installRoot, join(userData, 'railgun', 'install'));

  const result = nextEmit(health, 'quit-shutdown');
  first.app.quit();
  assert.equal(first.app.hasQuit, false, 'the first will-quit is held');
  assert.equal(await within(first.app.whenQuit(), 'the app to quit'), 0);
  assert.deepEqual(await result, [{ ok: true, timedOut: false }]);
  // The user's quit, held; railgun's own quit, let through. No third round.
  assert.deepEqual(first.app.quitEvents, ['before-quit', 'will-quit', 'before-quit', 'will-quit', 'quit']);
  assert.equal(first.app.quitCalls, 2);
  assert.equal(first.app.listenerCount('will-quit'), 0, 'the quit hook is gone');
  assert.equal(first.app.listenerCount('render-process-gone'), 0);

  // The next run of the app, same user-data folder.
  const second = standIn('eh-quit', userData);
  const again = main.initHealth({ electronApp: second.app, url: server.url, consent: 'granted' });
  t.after(() => again.shutdown());
  assert.equal(again.startup().uncleanShutdown, null);
  assert.equal(again.startup().recorded, true);
});

test('the same quit without the hold (shutdownOnQuit: false) is counted as a crash by the next start', async (t) => {
  const userData = tempDir(t);
  const first = standIn('eh-quit', userData);
  const health = startHealth(t, first.app, { shutdownOnQuit: false });
  first.app.quit();
  assert.equal(first.app.hasQuit, true);
  assert.deepEqual(first.app.quitEvents, ['before-quit', 'will-quit', 'quit']);

  // Next start while the first monitor never shut down: exactly what a quit without
  // `health.shutdown()` leaves behind.
  main.reset();
  const second = standIn('eh-quit', userData);
  const again = main.initHealth({ electronApp: second.app, url: server.url, consent: 'granted' });
  t.after(async () => {
    await again.shutdown();
    await health.shutdown();
  });
  assert.equal(again.startup().uncleanShutdown, VERSION);
});

test('a killed run (SIGKILL, no quit) is counted as a crash of its version at the next start, and the server sees it', async (t) => {
  const userData = tempDir(t);
  const script = `
    import { createRequire } from 'node:module';
    const { createElectronStandIn } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'tests/node/support/electron-standin.mjs')).href)});
    const main = createRequire(import.meta.url)(${JSON.stringify(join(ROOT, 'electron/main.js'))});
    const { app } = createElectronStandIn({ name: 'eh-killed', version: ${JSON.stringify(VERSION)}, userData: ${JSON.stringify(userData)} });
    main.initHealth({ electronApp: app, url: 'http://127.0.0.1:9', consent: 'granted' });
    process.kill(process.pid, 'SIGKILL');
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: WAIT_MS });
  assert.equal(run.signal, 'SIGKILL', `the child was killed: ${run.stderr}`);

  assert.equal((await rolloutStatus('eh-killed')).totalInstalls, 0, 'nothing reported before the next start');
  const next = standIn('eh-killed', userData);
  const health = startHealth(t, next.app);
  assert.equal(health.startup().uncleanShutdown, VERSION);
  const flushed = await health.flush();
  assert.equal(flushed.pending, 0);
  const st = await rolloutStatus('eh-killed');
  assert.equal(st.totalInstalls, 1);
  assert.equal(st.installsWithCrashes, 1);
  assert.ok(st.crashRate > 0, `crash rate ${st.crashRate}`);
});

// --- processes gone -------------------------------------------------------------------------

test("render-process-gone 'crashed' and child-process-gone 'oom' count crashes that reach the server", async (t) => {
  const electron = standIn('eh-crash', tempDir(t));
  const health = startHealth(t, electron.app);
  const got = recordedBy(health);
  const { webContents } = electron.createRenderer();
  electron.app.emit('render-process-gone', {}, webContents, { reason: 'crashed', exitCode: 139 });
  electron.app.emit('child-process-gone', {}, { type: 'GPU', reason: 'oom', exitCode: -1 });
  assert.deepEqual(got, [
    ['crash', { source: 'renderer', reason: 'crashed' }],
    ['crash', { source: 'child', reason: 'oom', processType: 'GPU' }],
  ]);
  assert.equal((await health.flush()).pending, 0);
  const st = await rolloutStatus('eh-crash');
  assert.equal(st.totalInstalls, 1);
  assert.equal(st.installsWithCrashes, 1);
  assert.ok(st.crashRate > 0, `crash rate ${st.crashRate}`);
});

test("'clean-exit' and 'killed' are not crashes: the session reaches the server, no crash", async (t) => {
  const electron = standIn('eh-clean', tempDir(t));
  const health = startHealth(t, electron.app);
  const got = recordedBy(health);
  const { webContents } = electron.createRenderer();
  electron.app.emit('render-process-gone', {}, webContents, { reason: 'clean-exit', exitCode: 0 });
  electron.app.emit('render-process-gone', {}, webContents, { reason: 'killed', exitCode: 15 });
  electron.app.emit('child-process-gone', {}, { type: 'Utility', reason: 'clean-exit', exitCode: 0 });
  electron.app.emit('child-process-gone', {}, { type: 'Utility', reason: 'killed', exitCode: 9 });
  assert.deepEqual(got, []);
  assert.equal((await health.flush()).pending, 0);
  const st = await rolloutStatus('eh-clean');
  assert.equal(st.totalInstalls, 1, 'the report arrived');
  assert.equal(st.installsWithCrashes, 0);
  assert.equal(st.crashRate, 0);
});

test('a process-gone event without details, or with a hostile one, counts one crash and throws nothing', async (t) => {
  const spy = spyOnAddon();
  const electron = standIn('eh-hostile', tempDir(t));
  const health = startHealth(t, electron.app, { addon: spy });
  const got = recordedBy(health);
  electron.app.emit('render-process-gone', {}, null, undefined);
  electron.app.emit('child-process-gone', {}, { reason: 42, type: { toString: () => 'x' } });
  assert.deepEqual(got.map(([, i]) => i), [{ source: 'renderer', reason: 'unknown' }, { source: 'child', reason: 'unknown' }]);
  assert.equal(spy.callsOf('recordCrash').length, 2);
  // A failing listener of ours does not escape into Electron's emit.
  health.on('recorded', () => {
    throw new Error('listener bug');
  });
  const error = console.error;
  t.after(() => {
    console.error = error;
  });
  const logged = [];
  console.error = (m) => logged.push(m);
  electron.app.emit('render-process-gone', {}, null, { reason: 'crashed' });
  assert.equal(spy.callsOf('recordCrash').length, 3);
  assert.match(logged[0], /listener failed/);
  assert.equal((await health.flush()).pending, 0);
  assert.deepEqual(stored('eh-hostile'), { sessions: 1, errors: 0, crashes: 3 }, 'the server has all three');
});

// --- errors -----------------------------------------------------------------------------------

test('an uncaught exception in main is observed by uncaughtExceptionMonitor only and counted as an error', async (t) => {
  const handlers = process.listenerCount('uncaughtException');
  const before = monitors();
  const electron = standIn('eh-error', tempDir(t));
  const health = startHealth(t, electron.app);
  assert.equal(monitors(), before + 1);
  assert.equal(process.listenerCount('uncaughtException'), handlers, "no 'uncaughtException' listener: Node's crash behaviour is unchanged");
  const got = recordedBy(health);
  // What Node does just before it reports an uncaught exception (simulated: the test must live).
  process.emit('uncaughtExceptionMonitor', new Error('boom'), 'uncaughtException');
  process.emit('uncaughtExceptionMonitor', new Error('rejected'), 'unhandledRejection');
  assert.deepEqual(got, [
    ['error', { source: 'main', origin: 'uncaughtException' }],
    ['error', { source: 'main', origin: 'unhandledRejection' }],
  ]);
  assert.equal((await health.flush()).pending, 0);
  const st = await rolloutStatus('eh-error');
  assert.equal(st.installsWithErrors, 1);
  assert.ok(st.errorRate > 0, `error rate ${st.errorRate}`);
  assert.equal(st.installsWithCrashes, 0);

  await health.shutdown();
  assert.equal(monitors(), before, 'the monitor is removed by shutdown()');
  process.emit('uncaughtExceptionMonitor', new Error('late'), 'uncaughtException');
  assert.equal(got.length, 2, 'nothing counted after shutdown()');
});

test('captureExceptions / captureProcessCrashes: false add no listener', async (t) => {
  const before = monitors();
  const electron = standIn('eh-spied', tempDir(t));
  const health = startHealth(t, electron.app, { captureExceptions: false, captureProcessCrashes: false });
  assert.equal(monitors(), before);
  assert.equal(electron.app.listenerCount('render-process-gone'), 0);
  assert.equal(electron.app.listenerCount('child-process-gone'), 0);
  assert.equal(electron.app.listenerCount('will-quit'), 1);
  assert.equal(health.startup().recorded, true, 'the monitor itself runs');
});

test('the page reports an uncaught error over railgun:health:error (a count, no arguments)', async (t) => {
  const spy = spyOnAddon();
  const electron = standIn('eh-page', tempDir(t));
  main.reset();
  const unregister = main.registerIpcHandlers(electron.ipcMain);
  t.after(unregister);
  const renderer = electron.createRenderer();
  exposeRailgunApi(renderer.contextBridge, renderer.ipcRenderer);
  const api = renderer.window.electronAPI;

  await assert.rejects(api.health.reportError(), (e) => errorCode(e) === 'ERR_NOT_INITIALIZED');
  const health = startHealth(t, electron.app, { addon: spy });
  const got = recordedBy(health);
  assert.equal(await api.health.reportError(), null);
  assert.deepEqual(got, [['error', { source: 'renderer' }]]);
  assert.deepEqual(spy.callsOf('recordError'), [['recordError']]);

  // Hostile: arguments (a message, a stack, an object) are refused, nothing is counted.
  for (const args of [['boom'], [{ stack: 'x'.repeat(10_000) }], [null], [undefined, 1]]) {
    const answer = await renderer.ipcRenderer.invoke(main.CHANNELS.HEALTH_REPORT_ERROR, ...args);
    assert.equal(answer.ok, false, JSON.stringify(args));
    assert.equal(answer.error.code, 'ERR_INVALID_ARGUMENT');
  }
  assert.equal(spy.callsOf('recordError').length, 1);
  assert.equal((await health.flush()).pending, 0);
  assert.deepEqual(stored('eh-page'), { sessions: 1, errors: 1, crashes: 0 }, 'one error reached the server');

  main.reset();
  await assert.rejects(api.health.reportError(), (e) => errorCode(e) === 'ERR_NOT_INITIALIZED', 'reset() forgets it');
});

// --- shutdown that fails or hangs -------------------------------------------------------------

/**
 * A stand-in app whose health (consent granted, spied) reports through a relay to the real
 * server: `relay.hold()` keeps the shutdown's report in flight until `relay.release()`.
 */
async function relayed(t, app, extra = {}) {
  const spy = spyOnAddon();
  const relay = await holdingRelay(t, server.url);
  const electron = standIn(app, tempDir(t));
  const health = startHealth(t, electron.app, { addon: spy, url: relay.url, ...extra });
  return { spy, relay, app: electron.app, health, stateDir: health.config.stateDir };
}

/** Another process holding the write lock of `<stateDir>/railgun.db` until `unlock()`. */
async function lockStore(t, stateDir) {
  const child = spawn('python3', ['-c', `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=20)
db.execute('BEGIN EXCLUSIVE')
print('locked', flush=True)
sys.stdin.read()
`, join(stateDir, 'railgun.db')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const unlock = () => child.stdin.end();
  t.after(unlock);
  const [line] = await nextEmit(child.stdout.setEncoding('utf8'), 'data');
  assert.equal(line.trim(), 'locked');
  return unlock;
}

test('a hanging health shutdown does not keep the app from quitting: the quit goes on after shutdownTimeout', { timeout: 30_000 }, async (t) => {
  const { spy, relay, app, health } = await relayed(t, 'eh-hang', { shutdownTimeout: 50 });
  const warn = console.warn;
  t.after(() => {
    console.warn = warn;
  });
  const warned = [];
  console.warn = (m) => warned.push(m);
  relay.hold();
  const result = nextEmit(health, 'quit-shutdown');
  app.quit();
  assert.equal(await within(app.whenQuit(), 'the app to quit'), 0);
  assert.deepEqual(await result, [{ ok: false, timedOut: true }]);
  assert.deepEqual(spy.callsOf('shutdown'), [['shutdown']]);
  assert.match(warned.join('\n'), /took longer than 50 ms; quitting anyway/);
  // It really was in flight: its report waits in the relay, and arrives once let through.
  await relay.arrived(1);
  assert.equal(storedHealthTotals(dataDir, 'eh-hang').reports, 0);
  relay.release();
  await within(health.shutdown(), 'the held shutdown to end');
  assert.deepEqual(stored('eh-hang'), { sessions: 1, errors: 0, crashes: 0 });
});

test('a failing health shutdown still lets the app quit, once, and says why', { timeout: 30_000 }, async (t) => {
  // Another process holds the client store's write lock: the shutdown cannot commit its counts.
  const { app, health, stateDir } = await relayed(t, 'eh-fail', { shutdownTimeout: 20_000 });
  health.recordError();
  const unlock = await lockStore(t, stateDir);
  const warn = console.warn;
  t.after(() => {
    console.warn = warn;
  });
  const warned = [];
  console.warn = (m) => warned.push(m);
  const result = nextEmit(health, 'quit-shutdown', 20_000);
  app.quit();
  assert.equal(await within(app.whenQuit(), 'the app to quit', 20_000), 0);
  const [r] = await result;
  unlock();
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, false);
  assert.equal(r.error.code, 'ERR_IO', r.error.message);
  assert.match(r.error.message, /locked|busy/i);
  assert.equal(app.quitCalls, 2);
  assert.match(warned.join('\n'), /the health shutdown failed \(ERR_IO\); quitting anyway/);
});

test('quitting again while the shutdown runs waits for the same shutdown; a cancelled re-quit is not retried', { timeout: 30_000 }, async (t) => {
  const { spy, relay, app, health } = await relayed(t, 'eh-requit');
  relay.hold();
  // The app cancels the quit railgun starts again (e.g. a late "save changes?").
  let cancelNext = 0;
  app.on('will-quit', (e) => {
    if (cancelNext > 0) {
      cancelNext -= 1;
      e.preventDefault();
    }
  });
  app.quit();
  await relay.arrived(1); // the shutdown is sending its report
  await new Promise((r) => setImmediate(r)); // Electron's quitting state ends after the turn
  app.quit(); // the impatient user
  assert.equal(app.hasQuit, false);
  assert.deepEqual(spy.callsOf('shutdown'), [['shutdown']], 'one shutdown for both quits');

  cancelNext = 1;
  const result = nextEmit(health, 'quit-shutdown');
  relay.release();
  assert.deepEqual(await result, [{ ok: true, timedOut: false }]);
  // railgun's own quit() runs a macrotask later and is cancelled by the app; it is not retried.
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.equal(app.quitCalls, 3);
  assert.equal(app.hasQuit, false);
  assert.equal(app.listenerCount('will-quit'), 1, "only the app's listener is left");

  app.quit(); // the next quit goes straight through
  assert.equal(app.hasQuit, true);
  assert.deepEqual(app.quitEvents.slice(-3), ['before-quit', 'will-quit', 'quit']);
  assert.equal(spy.callsOf('shutdown').length, 1);
  assert.deepEqual(stored('eh-requit'), { sessions: 1, errors: 0, crashes: 0 }, 'the clean shutdown reported');
});

test('a quit cancelled in before-quit (unsaved work) is left alone: no shutdown, no quit of ours', async (t) => {
  const { spy, app } = await relayed(t, 'eh-cancel');
  app.once('before-quit', (e) => e.preventDefault());
  app.quit();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(spy.callsOf('shutdown'), []);
  assert.equal(app.quitCalls, 1);
  assert.equal(app.hasQuit, false);
});

// --- the module's shutdown(), reset(), consent ----------------------------------------------------

test('shutdown() also shuts health down; reset() removes its listeners without shutting it down', async (t) => {
  const before = monitors();
  const { spy, app, health } = await relayed(t, 'eh-shutdown');
  const analytics = main.initAnalytics({ addon: spy, electronApp: app, url: server.url });
  await main.shutdown();
  assert.equal(spy.made.health[0].calls.filter(([c]) => c === 'shutdown').length, 1);
  assert.equal(spy.made.analytics[0].calls.filter(([c]) => c === 'shutdown').length, 1, 'analytics too');
  assert.equal(monitors(), before);
  health.recordError();
  assert.deepEqual(spy.callsOf('recordError'), [], 'nothing counted after shutdown');
  await main.shutdown(); // again: the same shutdown
  assert.equal(spy.made.health[0].calls.filter(([c]) => c === 'shutdown').length, 1);
  assert.ok(analytics);
  assert.deepEqual(stored('eh-shutdown'), { sessions: 1, errors: 0, crashes: 0 }, 'a clean shutdown, reported');

  const second = await relayed(t, 'eh-reset');
  assert.equal(monitors(), before + 1);
  main.reset();
  assert.equal(monitors(), before);
  assert.equal(second.app.listenerCount('will-quit'), 0);
  assert.equal(second.app.listenerCount('render-process-gone'), 0);
  assert.deepEqual(second.spy.callsOf('shutdown'), []);
});

test('consent is one decision: health.setConsent reaches analytics, analytics.setConsent (over IPC) reaches health', async (t) => {
  const electron = standIn('eh-consent', tempDir(t));
  main.reset();
  const analytics = main.initAnalytics({ electronApp: electron.app, url: server.url, consent: 'unknown' });
  const health = main.initHealth({ electronApp: electron.app, url: server.url });
  t.after(async () => {
    await main.shutdown();
    main.reset();
  });
  assert.equal(health.startup().recorded, false, "health starts with analytics' consent (unknown)");

  health.setConsent('granted');
  assert.equal(analytics.getConsent(), 'granted');

  const unregister = main.registerIpcHandlers(electron.ipcMain);
  t.after(unregister);
  const renderer = electron.createRenderer();
  exposeRailgunApi(renderer.contextBridge, renderer.ipcRenderer);
  await renderer.window.electronAPI.analytics.setConsent('denied');
  assert.equal(analytics.getConsent(), 'denied');

  // Health follows: a crash now is neither counted nor sent.
  health.recordCrash();
  await health.flush();
  const st = await rolloutStatus('eh-consent');
  assert.equal(st.installsWithCrashes, 0, JSON.stringify(st));
});

// --- configuration ----------------------------------------------------------------------------

test('initHealth refuses bad options with stable codes, builds nothing and leaves no listener behind', async (t) => {
  const spy = spyOnAddon();
  const addon = spy;
  const before = monitors();
  const userData = tempDir(t);
  const app = new AppStandIn({ name: 'eh-options', userData });
  const base = { addon, electronApp: app, url: server.url };
  const outside = { addon, url: server.url, app: 'x', appVersion: '1.0.0', stateDir: join(userData, 'outside') };
  const bad = [
    'x',
    [],
    { addon, electronApp: app, env: {} }, // no URL
    { ...base, url: '' },
    { ...base, channel: 'Stable Channel' },
    { ...base, channel: 7 },
    { ...base, consent: 'yes' },
    { ...base, reportInterval: 999 },
    { ...base, reportInterval: Number.NaN },
    { ...base, reportInterval: '5000' },
    { ...base, shutdownTimeout: 0 },
    { ...base, shutdownTimeout: Number.POSITIVE_INFINITY },
    { ...base, captureExceptions: 'yes' },
    { ...base, shutdownOnQuit: 1 },
    { ...base, installRoot: '' },
    { ...base, installRoot: 5 },
    { addon, url: server.url }, // outside Electron: app, appVersion, stateDir needed
    { ...outside, shutdownOnQuit: true }, // no app to quit
    { ...outside, captureProcessCrashes: true }, // no app to listen to
  ];
  const shown = (o) => JSON.stringify(o, (k, v) => (k === 'addon' || k === 'electronApp' ? undefined : v));
  main.reset();
  for (const opts of bad) {
    assert.throws(() => main.initHealth(opts), (e) => e.code === 'ERR_INVALID_ARGUMENT' && e.name === 'RailgunError', shown(opts));
  }
  assert.throws(() => main.initHealth({ addon, electronApp: app, env: {} }), /pass `url` or set RAILGUN_ANALYTICS_URL/);
  assert.equal(spy.made.health.length, 0, 'the addon was never asked');
  assert.equal(existsSync(join(userData, 'railgun')), false, 'nothing written');

  // The real addon's own refusals keep their code.
  for (const opts of [{ appVersion: 'one' }, { app: 'bad app!' }, { url: 'not a url' }]) {
    assert.throws(
      () => main.initHealth({ electronApp: app, url: server.url, stateDir: tempDir(t), ...opts }),
      (e) => e.code === 'ERR_INVALID_ARGUMENT',
      JSON.stringify(opts),
    );
  }
  assert.equal(monitors(), before);
  assert.equal(app.listenerCount('will-quit'), 0);

  // One monitor at a time: a second one on the same state folder would count the first as a crash.
  const health = startHealth(t, app, { addon });
  assert.throws(() => main.initHealth(base), (e) => e.code === 'ERR_ALREADY_INITIALIZED');
  assert.equal(spy.made.health.length, 1);
  await health.shutdown();
  const next = main.initHealth({ ...base, consent: 'granted' });
  t.after(() => next.shutdown());
  assert.equal(next.startup().uncleanShutdown, null, 'the first one ended cleanly');
});

test('configuration: options, then RAILGUN_* variables, then the app; installRoot follows the updater', async (t) => {
  const spy = spyOnAddon();
  const userData = tempDir(t);
  const app = new AppStandIn({ name: 'eh-config', version: '2.3.4', userData });
  main.reset();
  const installRoot = join(userData, 'opt-eh');
  const env = { RAILGUN_ANALYTICS_URL: server.url, RAILGUN_UPDATE_CHANNEL: 'beta', RAILGUN_INSTALL_ROOT: installRoot };
  const h1 = main.initHealth({ addon: spy, electronApp: app, env, reportInterval: 60_000, consent: 'granted' });
  assert.deepEqual(h1.config, {
    url: server.url, channel: 'beta', app: 'eh-config', version: '2.3.4',
    stateDir: join(userData, 'railgun'), installRoot, reportInterval: 60_000, shutdownTimeout: 3000,
  });
  assert.deepEqual(spy.made.health[0].opts, {
    url: server.url, app: 'eh-config', version: '2.3.4', channel: 'beta', consent: 'granted',
    stateDir: join(userData, 'railgun'), installRoot, reportIntervalMs: 60_000,
  });
  // What the addon made of it: a report of eh-config 2.3.4 on beta, at the server of the variable.
  h1.recordError();
  assert.equal((await h1.flush()).pending, 0);
  await h1.shutdown();
  const reports = storedHealthReports(dataDir, 'eh-config');
  assert.ok(reports.length >= 1);
  assert.deepEqual([...new Set(reports.map((r) => `${r.version} ${r.channel}`))], ['2.3.4 beta']);
  assert.equal(reports.reduce((n, r) => n + r.errors, 0), 1);

  // With an updater: its install root (the boot guard's folder); analytics' consent as default.
  const appRoot = join(userData, 'srv-app');
  main.initAutoUpdater({ addon: spy, electronApp: app, url: `${server.url}/updates`, publicKeys: [keys.pem], installRoot: appRoot, autoCheck: false });
  main.initAnalytics({ addon: spy, electronApp: app, url: server.url, consent: 'granted' });
  const h2 = main.initHealth({ addon: spy, electronApp: app, url: server.url, env: {} });
  t.after(async () => {
    await main.shutdown();
    main.reset();
  });
  assert.equal(h2.config.installRoot, appRoot);
  assert.equal(h2.config.channel, 'stable');
  assert.equal(spy.made.health[1].opts.installRoot, appRoot);
  assert.equal(spy.made.health[1].opts.consent, 'granted');
  assert.equal(h2.startup().recorded, true, "analytics' consent took effect");
  assert.equal(h2.config.reportInterval, null);
  assert.equal('reportIntervalMs' in spy.made.health[1].opts, false);
});
