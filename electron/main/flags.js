'use strict';
/**
 * Feature flags in the main process: the addon's `FeatureFlags` as an EventEmitter (`change`,
 * and the provider events `READY`, `CONFIGURATION_CHANGED`, `STALE`, `ERROR` with their
 * `{type, revision, reason}`), and `initFeatureFlags` (config URL from the options or `RAILGUN_CONFIG_URL`, the refresh
 * schedule left to the addon). Evaluation and verification are the core's.
 */

const { EventEmitter } = require('events');

const { loadAddon } = require('./addon');
const { FLAGS_EVENTS } = require('./channels');
const { appInfo, env, positiveMs } = require('./config');
const { invalid } = require('./errors');
const { setCurrent } = require('./services');
const { isPlainObject, validateFlagKey } = require('./validate');

/** Default time between config refreshes: 5 minutes (the core's default). */
const DEFAULT_REFRESH_INTERVAL_MS = 5 * 60 * 1000;

/**
 * Feature flags over the addon's `FeatureFlags`; emits `change` when the flags change and each
 * provider event under its OpenFeature name.
 */
class RailgunFeatureFlags extends EventEmitter {
  constructor(flags) {
    super();
    this._f = flags;
    flags.onChange(() => this.emit('change'));
    if (typeof flags.onEvent === 'function') {
      flags.onEvent((event) => {
        if (!event || !FLAGS_EVENTS.includes(event.type)) return;
        this.emit(event.type, {
          type: event.type,
          revision: typeof event.revision === 'number' ? event.revision : null,
          reason: typeof event.reason === 'string' ? event.reason : null,
        });
      });
    }
  }

  /** Calls `listener()` whenever the flags change; returns the function that removes it. */
  onChange(listener) {
    if (typeof listener !== 'function') throw invalid('onChange takes a function');
    this.on('change', listener);
    return () => this.removeListener('change', listener);
  }

  /** The highest config revision accepted (a lower one is refused as a replay), or `null`. */
  revision() {
    const r = typeof this._f.revision === 'function' ? this._f.revision() : null;
    return typeof r === 'number' ? r : null;
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
 * @param {import('../main').FeatureFlagsOptions} [options]
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

module.exports = { RailgunFeatureFlags, initFeatureFlags };
