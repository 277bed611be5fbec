'use strict';
/**
 * Analytics in the main process: the addon's `Analytics` with every name and property checked
 * first, and `initAnalytics` (server URL from the options or `RAILGUN_ANALYTICS_URL`).
 * Consent, sampling, the queue and uploads are the core's.
 */

const { loadAddon } = require('./addon');
const { appInfo, env } = require('./config');
const { invalid } = require('./errors');
const { setCurrent } = require('./services');
const {
  describe, isPlainObject, validateConsent, validateEventName, validateProperties, validateScreenName,
} = require('./validate');

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
 * @param {import('../main').AnalyticsOptions} [options]
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

module.exports = { RailgunAnalytics, initAnalytics };
