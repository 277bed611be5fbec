'use strict';
/**
 * Railgun for Electron's main process: the auto-updater, analytics, feature flags and the
 * rollout-health monitor over the `@railgun/core` addon, and the IPC handlers the preload bridge
 * (`electron/preload.js`) talks to.
 *
 * Owns: reading the configuration (options, then `RAILGUN_*` environment variables, then
 * Electron's `app` for the name, version and user-data folder), translating the addon's events
 * into an EventEmitter with electron-updater's event names, and the IPC boundary: one
 * namespaced channel per call, every renderer argument validated (type and size) before it
 * reaches the addon, results and errors sent back as plain data (`{ok, value}` /
 * `{ok: false, error: {code, message}}`, because Electron drops an Error's `code` over IPC),
 * and the health monitor's wiring into the process: uncaught exceptions (observed, never
 * handled), renderer and child processes that die, and a clean shutdown on quit (Electron's
 * `will-quit` held until the monitor has shut down, within a deadline).
 *
 * Refuses: renderer arguments of the wrong type or size, extra arguments, property keys that
 * could pollute prototypes (`__proto__`, `constructor`, `prototype`), unknown channels (all with
 * `code: 'ERR_INVALID_ARGUMENT'`), and senders the app's `validateSender` rejects.
 * It holds no update, analytics or flag logic of its own: that is the core's.
 */

const { EventEmitter } = require('events');
const path = require('path');

// ---------------------------------------------------------------------------------------------
// Errors

/** An Error with a stable `code`, like the addon's. */
class RailgunError extends Error {
  /**
   * @param {string} code stable code (`ERR_INVALID_ARGUMENT`, …)
   * @param {string} message what happened and what to do
   */
  constructor(code, message) {
    super(message);
    this.name = 'RailgunError';
    this.code = code;
  }
}

function invalid(message) {
  return new RailgunError('ERR_INVALID_ARGUMENT', message);
}

// ---------------------------------------------------------------------------------------------
// Channels and limits

/** The IPC channels, one per call (renderer → main, `ipcRenderer.invoke`). */
const CHANNELS = Object.freeze({
  UPDATER_CHECK: 'railgun:updater:check',
  UPDATER_DOWNLOAD: 'railgun:updater:download',
  UPDATER_INSTALL: 'railgun:updater:install',
  ANALYTICS_TRACK: 'railgun:analytics:track',
  ANALYTICS_SCREEN: 'railgun:analytics:screen',
  ANALYTICS_SET_CONSENT: 'railgun:analytics:set-consent',
  ANALYTICS_GET_CONSENT: 'railgun:analytics:get-consent',
  FLAGS_GET: 'railgun:flags:get',
  FLAGS_GET_ALL: 'railgun:flags:get-all',
  FLAGS_GET_ANNOUNCEMENTS: 'railgun:flags:get-announcements',
  FLAGS_GET_MAINTENANCE: 'railgun:flags:get-maintenance',
  FLAGS_IS_KILL_SWITCH_ACTIVE: 'railgun:flags:is-kill-switch-active',
  HEALTH_REPORT_ERROR: 'railgun:health:error',
});

/** Main → renderer pushes, and the renderer's subscription (`ipcRenderer.send`). */
const EVENT_CHANNELS = Object.freeze({
  /** `(name, payload)`: an updater event, electron-updater's name. */
  UPDATER_EVENT: 'railgun:updater:event',
  /** `()`: the flags changed; ask again. */
  FLAGS_CHANGED: 'railgun:flags:changed',
  /** renderer → main: send me the pushes above. */
  SUBSCRIBE: 'railgun:events:subscribe',
  /** renderer → main: stop sending them. */
  UNSUBSCRIBE: 'railgun:events:unsubscribe',
});

/** electron-updater's event names, as the updater emits them. */
const UPDATER_EVENTS = Object.freeze([
  'checking-for-update',
  'update-available',
  'update-not-available',
  'download-progress',
  'update-downloaded',
  'error',
]);

/** The shared analytics limits (`src/analytics/event.rs`) and the bridge's own. */
const LIMITS = Object.freeze({
  EVENT_NAME: /^[a-z][a-z0-9_]{0,63}$/,
  MAX_PROPERTIES: 32,
  PROPERTY_KEY: /^[A-Za-z0-9_.-]{1,64}$/,
  MAX_STRING_LEN: 256,
  MAX_SCREEN_LEN: 256,
  FLAG_KEY: /^[A-Za-z0-9_.:-]{1,128}$/,
});

const CONSENTS = Object.freeze(['granted', 'denied', 'unknown']);
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

// ---------------------------------------------------------------------------------------------
// Validation of what arrives from a renderer

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `a string of ${v.length} UTF-16 units` : `a ${typeof v}`;
}

/**
 * Whether `s` has more than `max` characters (code points, as the core counts them), without
 * walking a string that is surely too long or surely short enough.
 */
function longerThan(s, max) {
  if (s.length <= max) return false; // code points ≤ UTF-16 units
  if (s.length > 2 * max) return true; // a code point is at most two units
  let n = 0;
  // eslint-disable-next-line no-unused-vars
  for (const _ of s) {
    n += 1;
    if (n > max) return true;
  }
  return false;
}

function isPlainObject(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Checks an event name: `^[a-z][a-z0-9_]{0,63}$`.
 * @param {unknown} name
 * @returns {string}
 */
function validateEventName(name) {
  if (typeof name !== 'string' || !LIMITS.EVENT_NAME.test(name)) {
    throw invalid(
      `event name must be a string matching ^[a-z][a-z0-9_]{0,63}$, got ${describe(name)}` +
        (typeof name === 'string' && name.length <= 64 ? ` ${JSON.stringify(name)}` : ''),
    );
  }
  return name;
}

/**
 * Checks event properties and returns a fresh copy holding only validated own keys:
 * at most 32, keys `[A-Za-z0-9_.-]{1,64}` (not `__proto__`, `constructor`, `prototype`),
 * values strings ≤ 256 characters, finite numbers or booleans.
 * @param {unknown} props
 * @returns {Record<string, string|number|boolean>|undefined}
 */
function validateProperties(props) {
  if (props === undefined || props === null) return undefined;
  if (!isPlainObject(props)) {
    throw invalid(`properties must be a plain object, got ${describe(props)}`);
  }
  // Own enumerable string keys only: what structured clone carries over IPC.
  const keys = Object.keys(props);
  if (keys.length > LIMITS.MAX_PROPERTIES) {
    throw invalid(`${keys.length} properties, at most ${LIMITS.MAX_PROPERTIES}`);
  }
  const out = {};
  for (let i = 0; i < keys.length; i += 1) {
    const key = keys[i];
    if (!LIMITS.PROPERTY_KEY.test(key) || FORBIDDEN_KEYS.has(key)) {
      throw invalid(
        `property key ${JSON.stringify(key.slice(0, 80))} must be 1-64 characters of [A-Za-z0-9_.-] ` +
          'and not __proto__/constructor/prototype',
      );
    }
    const v = props[key];
    if (typeof v === 'string') {
      if (longerThan(v, LIMITS.MAX_STRING_LEN)) {
        throw invalid(`property ${JSON.stringify(key)} is longer than ${LIMITS.MAX_STRING_LEN} characters`);
      }
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw invalid(`property ${JSON.stringify(key)} is not a finite number`);
    } else if (typeof v !== 'boolean') {
      throw invalid(`property ${JSON.stringify(key)} must be a string, number or boolean, got ${describe(v)}`);
    }
    out[key] = v; // safe: `__proto__` was refused above
  }
  return out;
}

/**
 * Checks a screen name: a string of 1-256 characters without control characters.
 * @param {unknown} screen
 * @returns {string}
 */
function validateScreenName(screen) {
  if (typeof screen === 'string' && longerThan(screen, LIMITS.MAX_SCREEN_LEN)) {
    throw invalid(`screen name is longer than ${LIMITS.MAX_SCREEN_LEN} characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (typeof screen !== 'string' || screen.length === 0 || /[\u0000-\u001f\u007f]/.test(screen)) {
    throw invalid(`screen name must be a non-empty string without control characters, got ${describe(screen)}`);
  }
  return screen;
}

/**
 * Checks a consent value: `granted`, `denied` or `unknown`.
 * @param {unknown} consent
 * @returns {'granted'|'denied'|'unknown'}
 */
function validateConsent(consent) {
  if (typeof consent !== 'string' || !CONSENTS.includes(consent)) {
    throw invalid(`consent must be one of granted, denied, unknown, got ${describe(consent)}`);
  }
  return consent;
}

/**
 * Checks a flag key: 1-128 characters of `[A-Za-z0-9_.:-]`.
 * @param {unknown} key
 * @returns {string}
 */
function validateFlagKey(key) {
  if (typeof key !== 'string' || !LIMITS.FLAG_KEY.test(key) || FORBIDDEN_KEYS.has(key)) {
    throw invalid(`flag key must be 1-128 characters of [A-Za-z0-9_.:-], got ${describe(key)}`);
  }
  return key;
}

function expectArgs(channel, args, max) {
  if (args.length > max) {
    throw invalid(`${channel} takes ${max === 0 ? 'no arguments' : `at most ${max}`}, got ${args.length}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration

let addonOverride = null;

/** The addon: the root package (`index.js`), loaded on first use. */
function loadAddon(opts) {
  if (opts && opts.addon) return opts.addon;
  if (addonOverride) return addonOverride;
  try {
    // eslint-disable-next-line global-require
    return require('..');
  } catch (e) {
    throw new RailgunError(
      'ERR_ADDON_NOT_FOUND',
      `the @railgun/core native addon could not be loaded (${e && e.message}); run \`npm run build\``,
    );
  }
}

/**
 * Uses `addon` instead of the root package's native addon (tests, custom builds).
 * `null` goes back to the default.
 * @param {object|null} addon
 */
function setAddon(addon) {
  addonOverride = addon || null;
}

function electronApp(opts) {
  if (opts && opts.electronApp) return opts.electronApp;
  try {
    // eslint-disable-next-line global-require
    const electron = require('electron');
    if (electron && typeof electron === 'object' && electron.app) return electron.app;
  } catch {
    // not running inside Electron
  }
  return null;
}

function env(opts, name) {
  const source = (opts && opts.env) || process.env;
  const v = source[name];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/** App name, version and state folder: options first, then Electron's `app`. */
function appInfo(opts, what) {
  const app = electronApp(opts);
  const need = (value, getter, option) => {
    if (value !== undefined) return value;
    if (app) return getter(app);
    throw invalid(`${what}: \`${option}\` is required outside Electron (no \`app\` to ask)`);
  };
  const name = need(opts.app, (a) => a.getName(), 'app');
  const version = need(opts.appVersion ?? opts.currentVersion, (a) => a.getVersion(), 'appVersion');
  const stateDir = need(opts.stateDir, (a) => path.join(a.getPath('userData'), 'railgun'), 'stateDir');
  return { app, name, version, stateDir };
}

function positiveMs(value, name, fallback, min) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw invalid(`${name} must be a number of milliseconds ≥ ${min}, got ${describe(value)}`);
  }
  return Math.round(value);
}

function errorData(err) {
  const code = err && typeof err.code === 'string' ? err.code : 'ERR_INTERNAL';
  const message = err && typeof err.message === 'string' ? err.message : String(err);
  return { code, message };
}

// ---------------------------------------------------------------------------------------------
// Updater

/** Default time between automatic checks: 1 hour. */
const DEFAULT_CHECK_INTERVAL_MS = 60 * 60 * 1000;

/**
 * The auto-updater: electron-updater's events over the addon's `Updater`.
 * Concurrent `checkForUpdates()` / `downloadUpdate()` calls share the one in flight.
 */
class RailgunAutoUpdater extends EventEmitter {
  constructor(updater, config) {
    super();
    this._updater = updater;
    this._config = config;
    this._checking = null;
    this._downloading = null;
    updater.onEvent((name, payload) => this._forward(name, payload));
  }

  /** Whether a found update is downloaded at once (set by `initAutoUpdater`). */
  get autoDownload() {
    return this._config.autoDownload;
  }

  /** The resolved configuration (URL, channel, folders; never key material). */
  get config() {
    const { url, channel, app, currentVersion, installRoot, stateDir, checkInterval } = this._config;
    return { url, channel, app, currentVersion, installRoot, stateDir, checkInterval };
  }

  _forward(name, payload) {
    if (!UPDATER_EVENTS.includes(name)) return;
    if (name === 'error') {
      const data = errorData(payload);
      const err = payload instanceof Error ? payload : new RailgunError(data.code, data.message);
      if (this.listenerCount('error') > 0) this.emit('error', err, data.message);
      else console.error(`[railgun] updater error ${data.code}: ${data.message}`);
      return;
    }
    this.emit(name, payload);
  }

  /** Checks now; resolves with the update's info or `null`. Downloads it when `autoDownload`. */
  checkForUpdates() {
    if (!this._checking) {
      this._checking = Promise.resolve()
        .then(() => this._updater.checkForUpdates())
        .finally(() => {
          this._checking = null;
        });
      if (this.autoDownload) {
        this._checking.then(
          (info) => {
            if (info) this.downloadUpdate().catch(() => {}); // reported by the 'error' event
          },
          () => {},
        );
      }
    }
    return this._checking;
  }

  /** Downloads and verifies the available update. */
  downloadUpdate() {
    if (!this._downloading) {
      this._downloading = Promise.resolve()
        .then(() => this._updater.downloadUpdate())
        .finally(() => {
          this._downloading = null;
        });
    }
    return this._downloading;
  }

  /** Applies the downloaded update (the previous version is kept). */
  installUpdate() {
    return Promise.resolve().then(() => this._updater.installUpdate());
  }

  /** Applies the downloaded update, then relaunches the app (Electron's `app`). */
  async quitAndInstall() {
    const result = await this.installUpdate();
    const app = this._config.electronApp;
    if (app && typeof app.relaunch === 'function' && typeof app.quit === 'function') {
      app.relaunch();
      app.quit();
    }
    return result;
  }

  /** Checks now, then every `checkInterval` ms (±10 % jitter, in the core). */
  startAutoCheck() {
    this._updater.startAutoCheck(this._config.checkInterval);
    this.checkForUpdates().catch(() => {}); // reported by the 'error' event
  }

  /** `idle`, `checking`, `update-available`, `downloading`, `update-downloaded`, `installing`, `installed`. */
  get state() {
    return this._updater.state;
  }

  /** The installed version as the updater sees it (moves after an install). */
  get currentVersion() {
    return this._updater.currentVersion ?? this._config.currentVersion;
  }

  /** Tells the boot guard this version started well. */
  markBootSuccessful() {
    this._updater.markBootSuccessful();
  }

  /** Stops automatic checks. */
  async stop() {
    await this._updater.stop();
  }
}

let current = { updater: null, analytics: null, featureFlags: null, health: null };
/** The IPC bridges' re-attach functions, told when a service is initialized. */
const bridges = new Set();

function setCurrent(kind, service) {
  current[kind] = service;
  for (const attach of bridges) attach();
}

/**
 * Creates the auto-updater. Options not given come from `RAILGUN_UPDATE_URL`,
 * `RAILGUN_UPDATE_CHANNEL` (default `stable`), `RAILGUN_UPDATE_PUBLIC_KEY` (several separated
 * by commas) and Electron's `app`. With `autoCheck` (default `true`) it checks now and every
 * `checkInterval` ms (default 1 hour).
 * @param {import('./main').AutoUpdaterOptions} [options]
 * @returns {RailgunAutoUpdater}
 */
function initAutoUpdater(options = {}) {
  if (!isPlainObject(options)) throw invalid('initAutoUpdater takes an options object');
  const opts = options;
  const info = appInfo(opts, 'initAutoUpdater');
  const url = opts.url ?? env(opts, 'RAILGUN_UPDATE_URL');
  if (typeof url !== 'string' || url === '') {
    throw invalid('initAutoUpdater: no update URL; pass `url` or set RAILGUN_UPDATE_URL');
  }
  const channel = opts.channel ?? env(opts, 'RAILGUN_UPDATE_CHANNEL') ?? 'stable';
  if (typeof channel !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(channel)) {
    throw invalid(`initAutoUpdater: channel must be like "stable", got ${describe(channel)}`);
  }
  let publicKeys = opts.publicKeys;
  if (publicKeys === undefined) {
    const fromEnv = env(opts, 'RAILGUN_UPDATE_PUBLIC_KEY');
    publicKeys = fromEnv ? fromEnv.split(',').map((k) => k.trim()).filter(Boolean) : [];
  }
  if (
    !Array.isArray(publicKeys) ||
    publicKeys.length === 0 ||
    publicKeys.length > 16 ||
    !publicKeys.every((k) => typeof k === 'string' && k.length > 0 && k.length <= 16384)
  ) {
    throw invalid('initAutoUpdater: no trusted key; pass `publicKeys` or set RAILGUN_UPDATE_PUBLIC_KEY');
  }
  const installRoot =
    opts.installRoot ?? env(opts, 'RAILGUN_INSTALL_ROOT') ?? path.join(info.stateDir, 'install');
  const checkInterval = positiveMs(opts.checkInterval, 'checkInterval', DEFAULT_CHECK_INTERVAL_MS, 1000);
  const addon = loadAddon(opts);
  const addonOpts = {
    url,
    app: info.name,
    channel,
    publicKeys,
    currentVersion: info.version,
    installRoot,
    stateDir: info.stateDir,
  };
  for (const k of ['rolloutPublicKeys', 'platform', 'arch', 'installId', 'sigstore', 'sigstoreIdentity', 'sigstoreIssuer']) {
    if (opts[k] !== undefined) addonOpts[k] = opts[k];
  }
  addonOpts.autoDownload = opts.autoDownload !== false;
  const updater = new RailgunAutoUpdater(new addon.Updater(addonOpts), {
    url,
    channel,
    app: info.name,
    currentVersion: info.version,
    installRoot,
    stateDir: info.stateDir,
    checkInterval,
    autoDownload: opts.autoDownload !== false,
    electronApp: info.app,
  });
  const previous = current.updater;
  setCurrent('updater', updater);
  if (previous) previous.stop().catch(() => {}); // one updater schedule at a time
  if (opts.autoCheck !== false) updater.startAutoCheck();
  return updater;
}

// ---------------------------------------------------------------------------------------------
// Analytics

/** Analytics over the addon's `Analytics`: the same calls, names and properties validated. */
class RailgunAnalytics {
  constructor(analytics) {
    this._a = analytics;
  }

  /** Records an event (never blocks; nothing is recorded without consent). */
  track(name, properties) {
    const props = validateProperties(properties);
    this._a.track(validateEventName(name), props);
  }

  /** Records a `screen_view`. */
  screen(name) {
    this._a.screen(validateScreenName(name));
  }

  /** Starts timing `name`. */
  startTimer(name) {
    this._a.startTimer(validateEventName(name));
  }

  /** Records `name` with the time since `startTimer(name)`; the duration, or `null`. */
  stopTimer(name, properties) {
    const props = validateProperties(properties);
    const d = this._a.stopTimer(validateEventName(name), props);
    return d === undefined ? null : d;
  }

  /**
   * Sets consent: `denied` purges the queue. The decision is stored once for the app and
   * covers rollout health too: the core tells the running health monitor (`initHealth`).
   */
  setConsent(consent) {
    this._a.setConsent(validateConsent(consent));
  }

  /** The consent in force. */
  getConsent() {
    return this._a.getConsent();
  }

  /** Uploads what is queued. */
  flush() {
    return this._a.flush();
  }

  /** Flushes and stops the writer. */
  shutdown() {
    return this._a.shutdown();
  }

  /** The hashed id events carry. */
  userId() {
    return this._a.userId();
  }
}

/**
 * Starts analytics. The server URL comes from `url` or `RAILGUN_ANALYTICS_URL`; the app's
 * name, version and folder from Electron's `app` unless given.
 * @param {import('./main').AnalyticsOptions} [options]
 * @returns {RailgunAnalytics}
 */
function initAnalytics(options = {}) {
  if (!isPlainObject(options)) throw invalid('initAnalytics takes an options object');
  const opts = options;
  const info = appInfo(opts, 'initAnalytics');
  const url = opts.url ?? env(opts, 'RAILGUN_ANALYTICS_URL');
  if (typeof url !== 'string' || url === '') {
    throw invalid('initAnalytics: no server URL; pass `url` or set RAILGUN_ANALYTICS_URL');
  }
  if (opts.sampleRate !== undefined) {
    const r = opts.sampleRate;
    if (typeof r !== 'number' || !(r > 0 && r <= 1)) {
      throw invalid(`initAnalytics: sampleRate must be in (0, 1], got ${describe(r)}`);
    }
  }
  if (opts.consent !== undefined) validateConsent(opts.consent);
  const addon = loadAddon(opts);
  const addonOpts = { url, app: info.name, appVersion: info.version, stateDir: info.stateDir };
  const channel = opts.channel ?? env(opts, 'RAILGUN_UPDATE_CHANNEL');
  if (channel !== undefined) addonOpts.channel = channel;
  for (const k of ['sampleRate', 'consent', 'debug', 'dryRun', 'userId']) {
    if (opts[k] !== undefined) addonOpts[k] = opts[k];
  }
  const analytics = new RailgunAnalytics(new addon.Analytics(addonOpts));
  setCurrent('analytics', analytics);
  return analytics;
}

// ---------------------------------------------------------------------------------------------
// Feature flags

/** Default time between config refreshes: 5 minutes (the core's default). */
const DEFAULT_REFRESH_INTERVAL_MS = 5 * 60 * 1000;

/** Feature flags over the addon's `FeatureFlags`; emits `change` when the flags change. */
class RailgunFeatureFlags extends EventEmitter {
  constructor(flags) {
    super();
    this._f = flags;
    flags.onChange(() => this.emit('change'));
  }

  /** Fetches the config now (a failure keeps the last good copy). */
  refresh() {
    return this._f.refresh();
  }

  /** Whether a flag is on for this user. */
  get(key) {
    return this._f.get(validateFlagKey(key));
  }

  /** A flag's value with its variant and reason. */
  details(key) {
    return this._f.details(validateFlagKey(key));
  }

  /** Every flag's value. */
  getAll() {
    return this._f.getAll();
  }

  /** The announcements in force. */
  getAnnouncements() {
    return this._f.getAnnouncements();
  }

  /** Dismisses an announcement. */
  dismiss(id) {
    if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw invalid('announcement id must be a string of 1-256 characters');
    this._f.dismiss(id);
  }

  /** The maintenance window. */
  getMaintenance() {
    return this._f.getMaintenance();
  }

  /**
   * The emergency kill switch: `{active, message}`; `message` is the config's
   * `emergencyMessage` while it is on, else `null`.
   */
  isKillSwitchActive() {
    const k = this._f.isKillSwitchActive();
    return { active: k.active === true, message: typeof k.message === 'string' ? k.message : null };
  }

  /** Stops the background refresh and the change listeners. */
  close() {
    if (typeof this._f.close === 'function') this._f.close();
  }
}

/**
 * Starts feature flags: the config from `url` or `RAILGUN_CONFIG_URL`, fetched now and every
 * `refreshInterval` ms (default 5 minutes) by the addon; until then the last good copy.
 * @param {import('./main').FeatureFlagsOptions} [options]
 * @returns {RailgunFeatureFlags}
 */
function initFeatureFlags(options = {}) {
  if (!isPlainObject(options)) throw invalid('initFeatureFlags takes an options object');
  const opts = options;
  const info = appInfo(opts, 'initFeatureFlags');
  const url = opts.url ?? env(opts, 'RAILGUN_CONFIG_URL');
  if (typeof url !== 'string' || url === '') {
    throw invalid('initFeatureFlags: no config URL; pass `url` or set RAILGUN_CONFIG_URL');
  }
  const refreshIntervalMs = positiveMs(opts.refreshInterval, 'refreshInterval', DEFAULT_REFRESH_INTERVAL_MS, 1000);
  const addon = loadAddon(opts);
  const addonOpts = { url, app: info.name, appVersion: info.version, stateDir: info.stateDir, refreshIntervalMs };
  const channel = opts.channel ?? env(opts, 'RAILGUN_UPDATE_CHANNEL');
  if (channel !== undefined) addonOpts.channel = channel;
  for (const k of ['userId', 'configPublicKeys']) {
    if (opts[k] !== undefined) addonOpts[k] = opts[k];
  }
  const flags = new RailgunFeatureFlags(new addon.FeatureFlags(addonOpts));
  setCurrent('featureFlags', flags);
  return flags;
}

// ---------------------------------------------------------------------------------------------
// Rollout health

/** Default time a quit waits for the clean shutdown before quitting anyway: 3 seconds. */
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 3000;

/**
 * `details.reason`s of `render-process-gone` / `child-process-gone` that are not crashes:
 * `clean-exit` (the process ended normally) and `killed` (something outside the process ended
 * it: the app itself, e.g. `utilityProcess.kill()`, the user in a task manager, the system at
 * quit or logoff). A kill is not the running version's fault, and counting it would make a
 * quit count as a crash again. Every other reason (`crashed`, `abnormal-exit`, `oom`,
 * `launch-failed`, `integrity-failure`, …) is one crash.
 */
const NOT_CRASHES = Object.freeze(['clean-exit', 'killed']);

const TIMED_OUT = Symbol('timed out');

function off(emitter, name, listener) {
  if (typeof emitter.removeListener === 'function') emitter.removeListener(name, listener);
  else if (typeof emitter.off === 'function') emitter.off(name, listener);
}

/**
 * Rollout health over the addon's `Health`: counts errors and crashes of the running version.
 * Emits `recorded` `(kind: 'error' | 'crash', info)` for every count handed to the core (which
 * drops it without consent) and `quit-shutdown` `({ok, timedOut, error?})` when the quit it
 * held (see `initHealth`) goes on. After `shutdown()` nothing more is counted.
 */
class RailgunHealth extends EventEmitter {
  constructor(health, config) {
    super();
    this._h = health;
    this._config = config;
    const s = health.startup();
    this._startup = Object.freeze({
      uncleanShutdown: s && typeof s.uncleanShutdown === 'string' ? s.uncleanShutdown : null,
      revertedFrom: s && typeof s.revertedFrom === 'string' ? s.revertedFrom : null,
      recorded: Boolean(s && s.recorded),
    });
    this._shutdown = null; // the one shutdown's promise
    this._closed = false; // it settled
    this._watchers = []; // removes the exception and process listeners
    this._quitHook = null; // removes the will-quit listener
    this._quit = 'idle'; // 'idle' → 'holding' (quit held, shutting down) → 'done'
  }

  /** The resolved configuration. */
  get config() {
    const { url, channel, app, version, stateDir, installRoot, reportInterval, shutdownTimeout } = this._config;
    return { url, channel, app, version, stateDir, installRoot, reportInterval, shutdownTimeout };
  }

  /**
   * What this start found and counted: the version whose previous run ended without a clean
   * shutdown, the version the boot guard reverted from (each `null` when none), and whether
   * anything was recorded (consent `granted`).
   */
  startup() {
    return { ...this._startup };
  }

  /** Counts one error of the running version (never blocks). */
  recordError() {
    this._record('error', { source: 'app' });
  }

  /** Counts one crash the app detected itself (never blocks). */
  recordCrash() {
    this._record('crash', { source: 'app' });
  }

  _record(kind, info) {
    if (this._shutdown) return;
    if (kind === 'crash') this._h.recordCrash();
    else this._h.recordError();
    this.emit('recorded', kind, info);
  }

  /** A count from the automatic wiring: a listener's failure must not escape into Electron. */
  _auto(kind, info) {
    try {
      this._record(kind, info);
    } catch (err) {
      console.error(`[railgun] health: a 'recorded' listener failed: ${err && err.message}`);
    }
  }

  /**
   * Sets and stores the consent; the decision is shared with analytics (the core tells the
   * running analytics client of `initAnalytics`). `denied` purges unsent reports.
   */
  setConsent(consent) {
    this._h.setConsent(validateConsent(consent));
  }

  /** Commits the counts, closes the open periods and sends what the server takes now. */
  flush() {
    return Promise.resolve().then(() => this._h.flush());
  }

  /**
   * Clean shutdown: the next start counts no crash. Stops the automatic counting. Later calls
   * return the same promise.
   */
  shutdown() {
    if (!this._shutdown) {
      this._unwatch();
      this._shutdown = Promise.resolve()
        .then(() => this._h.shutdown())
        .finally(() => {
          this._closed = true;
        });
    }
    return this._shutdown;
  }

  _watch(app, { exceptions, processes }) {
    if (exceptions) {
      // A monitor observes without handling: Node's and Electron's own reaction is unchanged.
      const onException = (_err, origin) =>
        this._auto('error', { source: 'main', origin: typeof origin === 'string' ? origin : 'uncaughtException' });
      process.on('uncaughtExceptionMonitor', onException);
      this._watchers.push(() => process.removeListener('uncaughtExceptionMonitor', onException));
    }
    if (processes && app) {
      const onRenderer = (_event, _webContents, details) => this._processGone('renderer', details);
      const onChild = (_event, details) => this._processGone('child', details);
      app.on('render-process-gone', onRenderer);
      app.on('child-process-gone', onChild);
      this._watchers.push(() => {
        off(app, 'render-process-gone', onRenderer);
        off(app, 'child-process-gone', onChild);
      });
    }
  }

  _processGone(source, details) {
    const reason = details && typeof details.reason === 'string' ? details.reason : 'unknown';
    if (NOT_CRASHES.includes(reason)) return;
    const info = { source, reason };
    if (source === 'child' && typeof details.type === 'string') info.processType = details.type;
    this._auto('crash', info);
  }

  _unwatch() {
    const watchers = this._watchers;
    this._watchers = [];
    for (const w of watchers) w();
  }

  /**
   * Holds Electron's quit once: the first `will-quit` is prevented, the services shut down
   * (at most `timeoutMs`), then `app.quit()` runs again and is let through. `will-quit`, not
   * `before-quit`: it comes after every window agreed to close, so an app that cancels a quit
   * in `before-quit` (an unsaved document) is never quit by us.
   */
  _holdQuit(app, timeoutMs) {
    const onWillQuit = (event) => {
      if (this._quit === 'done') return;
      if (event && typeof event.preventDefault === 'function') event.preventDefault();
      if (this._quit === 'holding') return; // a second quit while we shut down: we quit when done
      this._quit = 'holding';
      this._shutdownForQuit(timeoutMs)
        .catch((err) => ({ ok: false, timedOut: false, error: errorData(err) }))
        .then((result) => this._quitAgain(app, result));
    };
    app.on('will-quit', onWillQuit);
    this._quitHook = () => {
      off(app, 'will-quit', onWillQuit);
      this._quitHook = null;
    };
  }

  /** After the held quit's shutdown: unhooks, tells the listeners, quits again (let through). */
  _quitAgain(app, result) {
    this._quit = 'done';
    if (this._quitHook) this._quitHook();
    try {
      this.emit('quit-shutdown', result);
    } catch (err) {
      console.error(`[railgun] health: a 'quit-shutdown' listener failed: ${err && err.message}`);
    }
    // A macrotask later, never in the turn of the will-quit handler: Electron ignores
    // app.quit() while it still counts itself as quitting, which lasts until the will-quit
    // listeners returned (and microtasks may run before that).
    setImmediate(() => {
      try {
        app.quit();
      } catch (err) {
        console.error(`[railgun] app.quit() failed after the health shutdown: ${err && err.message}`);
      }
    });
  }

  /** Shuts every service down for the quit; resolves (never rejects) within `timeoutMs`. */
  async _shutdownForQuit(timeoutMs) {
    let timer;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(resolve, timeoutMs, TIMED_OUT);
    });
    const work = shutdownServices({ ...current, health: this }).catch((err) => ({ status: 'rejected', reason: err }));
    const r = await Promise.race([work, deadline]);
    clearTimeout(timer);
    if (r === TIMED_OUT) {
      console.warn(`[railgun] the shutdown took longer than ${timeoutMs} ms; quitting anyway`);
      return { ok: false, timedOut: true };
    }
    if (r && r.status === 'rejected') {
      const error = errorData(r.reason);
      console.warn(`[railgun] the health shutdown failed (${error.code}); quitting anyway`);
      return { ok: false, timedOut: false, error };
    }
    return { ok: true, timedOut: false };
  }

  /** Removes every listener this monitor added (`reset()`), without shutting it down. */
  _detach() {
    this._unwatch();
    if (this._quitHook) this._quitHook();
  }
}

/**
 * Starts rollout health for the running version and wires it into the app: uncaught
 * exceptions in the main process count as errors (`uncaughtExceptionMonitor`, observing only),
 * renderer and child processes that die count as crashes (not `clean-exit` or `killed`), and
 * the first quit is held until the monitor shut down cleanly (at most `shutdownTimeout` ms),
 * so a quit is never counted as a crash. Reports go to `url` or `RAILGUN_ANALYTICS_URL`.
 * @param {import('./main').HealthOptions} [options]
 * @returns {RailgunHealth}
 */
function initHealth(options = {}) {
  if (!isPlainObject(options)) throw invalid('initHealth takes an options object');
  const opts = options;
  const live = current.health;
  if (live && !live._closed) {
    throw new RailgunError(
      'ERR_ALREADY_INITIALIZED',
      'initHealth: a health monitor is already running in this process; await its shutdown() first ' +
        '(two monitors on one state folder would count each other as crashes)',
    );
  }
  const info = appInfo(opts, 'initHealth');
  const url = opts.url ?? env(opts, 'RAILGUN_ANALYTICS_URL');
  if (typeof url !== 'string' || url === '') {
    throw invalid('initHealth: no server URL; pass `url` or set RAILGUN_ANALYTICS_URL');
  }
  const channel = opts.channel ?? env(opts, 'RAILGUN_UPDATE_CHANNEL') ?? 'stable';
  if (typeof channel !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(channel)) {
    throw invalid(`initHealth: channel must be like "stable", got ${describe(channel)}`);
  }
  const installRoot =
    opts.installRoot ??
    (current.updater ? current.updater.config.installRoot : undefined) ??
    env(opts, 'RAILGUN_INSTALL_ROOT') ??
    path.join(info.stateDir, 'install');
  if (typeof installRoot !== 'string' || installRoot === '') {
    throw invalid(`initHealth: installRoot must be a folder path, got ${describe(installRoot)}`);
  }
  const reportInterval = positiveMs(opts.reportInterval, 'reportInterval', undefined, 1000);
  const shutdownTimeout = positiveMs(opts.shutdownTimeout, 'shutdownTimeout', DEFAULT_SHUTDOWN_TIMEOUT_MS, 1);
  if (opts.consent !== undefined) validateConsent(opts.consent);
  const flags = {};
  for (const k of ['captureExceptions', 'captureProcessCrashes', 'shutdownOnQuit']) {
    const v = opts[k];
    if (v !== undefined && typeof v !== 'boolean') {
      throw invalid(`initHealth: ${k} must be a boolean, got ${describe(v)}`);
    }
    flags[k] = v !== false;
  }
  const app = info.app;
  const canListen = Boolean(app && typeof app.on === 'function');
  if (opts.shutdownOnQuit === true && !(canListen && typeof app.quit === 'function')) {
    throw invalid(
      "initHealth: shutdownOnQuit needs Electron's app (with on() and quit()); outside Electron call health.shutdown() yourself",
    );
  }
  if (opts.captureProcessCrashes === true && !canListen) {
    throw invalid("initHealth: captureProcessCrashes needs Electron's app (with on())");
  }
  const addon = loadAddon(opts);
  // Until the user decides, the consent analytics runs with (one decision covers both).
  const consent = opts.consent ?? (current.analytics ? current.analytics.getConsent() : undefined);
  const addonOpts = { url, app: info.name, version: info.version, channel, stateDir: info.stateDir, installRoot };
  if (consent !== undefined) addonOpts.consent = consent;
  if (reportInterval !== undefined) addonOpts.reportIntervalMs = reportInterval;
  const health = new RailgunHealth(new addon.Health(addonOpts), {
    url,
    channel,
    app: info.name,
    version: info.version,
    stateDir: info.stateDir,
    installRoot,
    reportInterval: reportInterval ?? null,
    shutdownTimeout,
  });
  health._watch(canListen ? app : null, { exceptions: flags.captureExceptions, processes: flags.captureProcessCrashes });
  if (flags.shutdownOnQuit && canListen && typeof app.quit === 'function') health._holdQuit(app, shutdownTimeout);
  setCurrent('health', health);
  return health;
}

// ---------------------------------------------------------------------------------------------
// IPC

function need(service, what) {
  if (!service) {
    throw new RailgunError('ERR_NOT_INITIALIZED', `${what} is not initialized in the main process (call init${what}() first)`);
  }
  return service;
}

/** One handler per channel: `(services, args) => value`. */
const HANDLERS = Object.freeze({
  [CHANNELS.UPDATER_CHECK]: (s, args) => {
    expectArgs(CHANNELS.UPDATER_CHECK, args, 0);
    return need(s.updater, 'AutoUpdater').checkForUpdates();
  },
  [CHANNELS.UPDATER_DOWNLOAD]: (s, args) => {
    expectArgs(CHANNELS.UPDATER_DOWNLOAD, args, 0);
    return need(s.updater, 'AutoUpdater').downloadUpdate();
  },
  [CHANNELS.UPDATER_INSTALL]: (s, args) => {
    expectArgs(CHANNELS.UPDATER_INSTALL, args, 0);
    return need(s.updater, 'AutoUpdater').installUpdate();
  },
  [CHANNELS.ANALYTICS_TRACK]: (s, args) => {
    expectArgs(CHANNELS.ANALYTICS_TRACK, args, 2);
    const name = validateEventName(args[0]);
    const props = validateProperties(args[1]);
    need(s.analytics, 'Analytics').track(name, props);
    return null;
  },
  [CHANNELS.ANALYTICS_SCREEN]: (s, args) => {
    expectArgs(CHANNELS.ANALYTICS_SCREEN, args, 1);
    need(s.analytics, 'Analytics').screen(validateScreenName(args[0]));
    return null;
  },
  [CHANNELS.ANALYTICS_SET_CONSENT]: (s, args) => {
    expectArgs(CHANNELS.ANALYTICS_SET_CONSENT, args, 1);
    need(s.analytics, 'Analytics').setConsent(validateConsent(args[0]));
    return null;
  },
  [CHANNELS.ANALYTICS_GET_CONSENT]: (s, args) => {
    expectArgs(CHANNELS.ANALYTICS_GET_CONSENT, args, 0);
    return need(s.analytics, 'Analytics').getConsent();
  },
  [CHANNELS.FLAGS_GET]: (s, args) => {
    expectArgs(CHANNELS.FLAGS_GET, args, 1);
    return need(s.featureFlags, 'FeatureFlags').get(validateFlagKey(args[0]));
  },
  [CHANNELS.FLAGS_GET_ALL]: (s, args) => {
    expectArgs(CHANNELS.FLAGS_GET_ALL, args, 0);
    return need(s.featureFlags, 'FeatureFlags').getAll();
  },
  [CHANNELS.FLAGS_GET_ANNOUNCEMENTS]: (s, args) => {
    expectArgs(CHANNELS.FLAGS_GET_ANNOUNCEMENTS, args, 0);
    return need(s.featureFlags, 'FeatureFlags').getAnnouncements();
  },
  [CHANNELS.FLAGS_GET_MAINTENANCE]: (s, args) => {
    expectArgs(CHANNELS.FLAGS_GET_MAINTENANCE, args, 0);
    return need(s.featureFlags, 'FeatureFlags').getMaintenance();
  },
  [CHANNELS.FLAGS_IS_KILL_SWITCH_ACTIVE]: (s, args) => {
    expectArgs(CHANNELS.FLAGS_IS_KILL_SWITCH_ACTIVE, args, 0);
    return need(s.featureFlags, 'FeatureFlags').isKillSwitchActive();
  },
  // A count only: no message or stack crosses (health reports carry counts, nothing else).
  [CHANNELS.HEALTH_REPORT_ERROR]: (s, args) => {
    expectArgs(CHANNELS.HEALTH_REPORT_ERROR, args, 0);
    need(s.health, 'Health')._auto('error', { source: 'renderer' });
    return null;
  },
});

/** Makes a value plain data (drops functions and class prototypes) so it crosses IPC. */
function plain(value) {
  if (value === undefined || value === null) return null;
  return JSON.parse(JSON.stringify(value));
}

/**
 * Runs one call as it arrives from a renderer and answers with plain data:
 * `{ok: true, value}` or `{ok: false, error: {code, message}}`. Unknown channels are refused.
 * @param {string} channel
 * @param {unknown[]} args
 * @param {{updater?: object, analytics?: object, featureFlags?: object, health?: object}} [services]
 */
async function handleInvoke(channel, args, services = current) {
  try {
    if (typeof channel !== 'string' || !Object.prototype.hasOwnProperty.call(HANDLERS, channel)) {
      throw invalid(`unknown railgun channel ${JSON.stringify(String(channel).slice(0, 80))}`);
    }
    if (!Array.isArray(args)) throw invalid('arguments must be an array');
    const value = await HANDLERS[channel](services, args);
    return { ok: true, value: plain(value) };
  } catch (err) {
    return { ok: false, error: errorData(err) };
  }
}

/**
 * Registers one `ipcMain.handle` channel per call, and the event subscription, for the
 * services initialized with `initAutoUpdater` / `initAnalytics` / `initFeatureFlags` /
 * `initHealth` (or those given). Returns a function that removes them all.
 * @param {import('electron').IpcMain} ipcMain
 * @param {import('./main').IpcOptions} [options]
 */
function registerIpcHandlers(ipcMain, options = {}) {
  if (!ipcMain || typeof ipcMain.handle !== 'function' || typeof ipcMain.on !== 'function') {
    throw invalid('registerIpcHandlers needs ipcMain');
  }
  const services = {
    get updater() {
      return options.updater || current.updater;
    },
    get analytics() {
      return options.analytics || current.analytics;
    },
    get featureFlags() {
      return options.featureFlags || current.featureFlags;
    },
    get health() {
      return options.health || current.health;
    },
  };
  const validateSender = typeof options.validateSender === 'function' ? options.validateSender : null;
  const trusted = (event) => {
    if (!validateSender) return true;
    try {
      return validateSender(event) === true;
    } catch {
      return false;
    }
  };

  for (const channel of Object.values(CHANNELS)) {
    ipcMain.handle(channel, (event, ...args) => {
      if (!trusted(event)) {
        return { ok: false, error: { code: 'ERR_UNTRUSTED_SENDER', message: `${channel}: sender refused` } };
      }
      return handleInvoke(channel, args, services);
    });
  }

  // Pushes to the renderers that asked for them.
  const subscribers = new Set();
  const send = (channel, ...args) => {
    for (const wc of subscribers) {
      if (typeof wc.isDestroyed === 'function' && wc.isDestroyed()) {
        subscribers.delete(wc);
        continue;
      }
      try {
        wc.send(channel, ...args);
      } catch {
        subscribers.delete(wc);
      }
    }
  };
  const onSubscribe = (event) => {
    if (!trusted(event) || !event || !event.sender || subscribers.has(event.sender)) return;
    const wc = event.sender;
    subscribers.add(wc);
    if (typeof wc.once === 'function') wc.once('destroyed', () => subscribers.delete(wc));
  };
  const onUnsubscribe = (event) => {
    if (event && event.sender) subscribers.delete(event.sender);
  };
  ipcMain.on(EVENT_CHANNELS.SUBSCRIBE, onSubscribe);
  ipcMain.on(EVENT_CHANNELS.UNSUBSCRIBE, onUnsubscribe);

  // Follows the services: one initialized after this call is attached when it appears.
  let attached = { updater: null, featureFlags: null, detach: [] };
  const attach = () => {
    const updater = services.updater || null;
    const flags = services.featureFlags || null;
    if (updater === attached.updater && flags === attached.featureFlags) return;
    for (const d of attached.detach) d();
    const detach = [];
    if (updater) {
      for (const name of UPDATER_EVENTS) {
        const listener = (payload) => {
          const data = name === 'error' ? errorData(payload) : plain(payload);
          send(EVENT_CHANNELS.UPDATER_EVENT, name, data);
        };
        updater.on(name, listener);
        detach.push(() => updater.removeListener(name, listener));
      }
    }
    if (flags) {
      const listener = () => send(EVENT_CHANNELS.FLAGS_CHANGED);
      flags.on('change', listener);
      detach.push(() => flags.removeListener('change', listener));
    }
    attached = { updater, featureFlags: flags, detach };
  };
  attach();
  bridges.add(attach);

  return function unregister() {
    for (const channel of Object.values(CHANNELS)) ipcMain.removeHandler(channel);
    ipcMain.removeListener(EVENT_CHANNELS.SUBSCRIBE, onSubscribe);
    ipcMain.removeListener(EVENT_CHANNELS.UNSUBSCRIBE, onUnsubscribe);
    bridges.delete(attach);
    for (const d of attached.detach) d();
    attached = { updater: null, featureFlags: null, detach: [] };
    subscribers.clear();
  };
}

/**
 * Stops the updater's checks and the flags' refresh, flushes and stops analytics, and shuts
 * the health monitor down cleanly (the next start counts no crash). Never rejects.
 */
async function shutdown() {
  await shutdownServices(current);
}

/** `shutdown()` over `services`; resolves with the health monitor's outcome. */
async function shutdownServices(services) {
  const { updater, analytics, featureFlags, health } = services;
  if (featureFlags) {
    try {
      featureFlags.close();
    } catch {
      // closing is best effort
    }
  }
  const call = (fn) => Promise.resolve().then(fn);
  const [, , h] = await Promise.allSettled([
    updater && call(() => updater.stop()),
    analytics && call(() => analytics.shutdown()),
    health && call(() => health.shutdown()),
  ]);
  return h;
}

/**
 * Forgets the services initialized so far and removes the health monitor's listeners, without
 * shutting anything down (tests).
 */
function reset() {
  if (current.health) current.health._detach();
  current = { updater: null, analytics: null, featureFlags: null, health: null };
  for (const attach of bridges) attach();
}

module.exports = {
  initAutoUpdater,
  initAnalytics,
  initFeatureFlags,
  initHealth,
  registerIpcHandlers,
  handleInvoke,
  shutdown,
  reset,
  setAddon,
  RailgunError,
  RailgunAutoUpdater,
  RailgunAnalytics,
  RailgunFeatureFlags,
  RailgunHealth,
  CHANNELS,
  EVENT_CHANNELS,
  UPDATER_EVENTS,
  LIMITS,
  validate: Object.freeze({
    eventName: validateEventName,
    properties: validateProperties,
    screenName: validateScreenName,
    consent: validateConsent,
    flagKey: validateFlagKey,
  }),
};
