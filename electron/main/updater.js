'use strict';
/**
 * The auto-updater: electron-updater's events and methods over the addon's `Updater`, and
 * `initAutoUpdater` (URL, channel and trusted keys from the options or `RAILGUN_UPDATE_URL`,
 * `RAILGUN_UPDATE_CHANNEL`, `RAILGUN_UPDATE_PUBLIC_KEY`). Checking, verifying and installing
 * are the core's; this translates and shares concurrent calls.
 */

const { EventEmitter } = require('events');
const path = require('path');

const { loadAddon } = require('./addon');
const { UPDATER_EVENTS } = require('./channels');
const { appInfo, env, positiveMs } = require('./config');
const { RailgunError, errorData, invalid } = require('./errors');
const { current, setCurrent } = require('./services');
const { describe, isPlainObject } = require('./validate');

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

/**
 * Creates the auto-updater. Options not given come from `RAILGUN_UPDATE_URL`,
 * `RAILGUN_UPDATE_CHANNEL` (default `stable`), `RAILGUN_UPDATE_PUBLIC_KEY` (several separated
 * by commas) and Electron's `app`. With `autoCheck` (default `true`) it checks now and every
 * `checkInterval` ms (default 1 hour).
 * @param {import('../main').AutoUpdaterOptions} [options]
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

module.exports = { RailgunAutoUpdater, initAutoUpdater };
