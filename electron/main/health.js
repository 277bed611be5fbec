'use strict';
/**
 * Rollout health in the main process: the addon's `Health` wired into the app (uncaught
 * exceptions observed, never handled; renderer and child processes that die; the first quit
 * held until everything shut down cleanly, within a deadline), and `initHealth`. Counting and
 * reporting are the core's.
 */

const { EventEmitter } = require('events');
const path = require('path');

const { loadAddon } = require('./addon');
const { appInfo, env, positiveMs } = require('./config');
const { RailgunError, errorData, invalid } = require('./errors');
const { current, setCurrent } = require('./services');
const { shutdownServices } = require('./shutdown');
const { describe, isPlainObject, validateConsent } = require('./validate');

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
 * @param {import('../main').HealthOptions} [options]
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

module.exports = { RailgunHealth, initHealth };
