'use strict';
/**
 * Railgun in the renderer: `getAnalytics()` over `window.electronAPI` (exposed by
 * `electron/preload.js`), the `Events` name constants and their categories, and the helpers the
 * React hooks share.
 *
 * Owns: fire-and-forget tracking (a failed or refused call never throws into the UI: it goes
 * to `onError`, by default `console.warn`), an early check of event names (the main process
 * checks everything again), and reading an error's stable code back from the bridge.
 *
 * Refuses: nothing silently — a bad event name is reported to `onError` before any IPC.
 * It has no Node access and needs none.
 */

/** The seed's event names (`src/analytics/event.rs`, `names`). */
const Events = Object.freeze({
  SESSION_START: 'session_start',
  SESSION_HEARTBEAT: 'session_heartbeat',
  SESSION_END: 'session_end',
  SCREEN_VIEW: 'screen_view',
  MESSAGE_SENT: 'message_sent',
  CONVERSATION_OPENED: 'conversation_opened',
  CONTACT_ADDED: 'contact_added',
  UPDATE_CHECKED: 'update_checked',
  UPDATE_AVAILABLE: 'update_available',
  UPDATE_DOWNLOADED: 'update_downloaded',
  UPDATE_INSTALLED: 'update_installed',
  ERROR: 'error',
  EXPERIMENT_EXPOSURE: 'experiment_exposure',
});

/** The event of `useFeatureTracking`'s `trackUsage`. */
const FEATURE_USED = 'feature_used';

/** What an event is about: the core's category of a name (`custom` for others). */
function categoryOf(name) {
  switch (name) {
    case Events.SESSION_START:
    case Events.SESSION_HEARTBEAT:
    case Events.SESSION_END:
      return 'session';
    case Events.SCREEN_VIEW:
    case Events.CONVERSATION_OPENED:
      return 'navigation';
    case Events.MESSAGE_SENT:
    case Events.CONTACT_ADDED:
    case Events.EXPERIMENT_EXPOSURE:
      return 'feature';
    case Events.UPDATE_CHECKED:
    case Events.UPDATE_AVAILABLE:
    case Events.UPDATE_DOWNLOADED:
    case Events.UPDATE_INSTALLED:
      return 'update';
    case Events.ERROR:
      return 'error';
    default:
      return 'custom';
  }
}

const EVENT_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * The stable code of an error from the bridge (`ERR_INVALID_ARGUMENT`, …), or `undefined`.
 * contextBridge keeps only an Error's message, so the code is read from its prefix too.
 * @param {unknown} err
 * @returns {string|undefined}
 */
function errorCode(err) {
  if (!err || typeof err !== 'object') return undefined;
  if (typeof err.code === 'string') return err.code;
  const m = typeof err.message === 'string' ? /(?:^|\s)(ERR_[A-Z0-9_]+):/.exec(err.message) : null;
  return m ? m[1] : undefined;
}

let apiOverride = null;

/**
 * Uses `api` instead of `window.electronAPI` (tests, another exposure key); `null` resets.
 * @param {object|null} api
 */
function setElectronApi(api) {
  apiOverride = api || null;
  analyticsSingleton = null;
}

/** `window.electronAPI`, or a clear error when the preload did not expose it. */
function electronApi() {
  if (apiOverride) return apiOverride;
  const w = typeof window !== 'undefined' ? window : globalThis;
  const api = w && w.electronAPI;
  if (!api) {
    const err = new Error(
      'ERR_NOT_INITIALIZED: window.electronAPI is missing; call exposeRailgunApi(contextBridge, ipcRenderer) in the preload',
    );
    err.code = 'ERR_NOT_INITIALIZED';
    throw err;
  }
  return api;
}

function defaultOnError(err) {
  console.warn('[railgun] analytics:', err && err.message ? err.message : err);
}

let analyticsSingleton = null;

/**
 * The renderer's analytics. Every call returns at once; failures go to `onError`.
 * @param {{onError?: (err: Error) => void}} [options]
 * @returns {import('./renderer').RendererAnalytics}
 */
function getAnalytics(options = {}) {
  if (analyticsSingleton && options.onError === undefined) return analyticsSingleton;
  const onError = typeof options.onError === 'function' ? options.onError : defaultOnError;
  const report = (err) => {
    try {
      onError(err);
    } catch {
      // the error handler itself failed; nothing more to do
    }
  };
  const call = (fn) => {
    try {
      const p = fn(electronApi().analytics);
      if (p && typeof p.then === 'function') p.then(undefined, report);
    } catch (err) {
      report(err);
    }
  };
  const analytics = Object.freeze({
    track(name, properties) {
      if (typeof name !== 'string' || !EVENT_NAME.test(name)) {
        const err = new Error(
          `ERR_INVALID_ARGUMENT: event name must match ^[a-z][a-z0-9_]{0,63}$, got ${JSON.stringify(String(name).slice(0, 80))}`,
        );
        err.code = 'ERR_INVALID_ARGUMENT';
        report(err);
        return;
      }
      call((a) => (properties === undefined ? a.track(name) : a.track(name, properties)));
    },
    screen(name) {
      call((a) => a.screen(name));
    },
    setConsent(consent) {
      call((a) => a.setConsent(consent));
    },
    getConsent() {
      return Promise.resolve().then(() => electronApi().analytics.getConsent());
    },
  });
  if (options.onError === undefined) analyticsSingleton = analytics;
  return analytics;
}

/**
 * The renderer's feature flags (`window.electronAPI.featureFlags`).
 * @returns {import('./preload').FeatureFlagsApi}
 */
function getFeatureFlags() {
  return electronApi().featureFlags;
}

/**
 * The renderer's updater (`window.electronAPI.updater`).
 * @returns {import('./preload').UpdaterApi}
 */
function getUpdater() {
  return electronApi().updater;
}

module.exports = {
  Events,
  FEATURE_USED,
  categoryOf,
  errorCode,
  getAnalytics,
  getFeatureFlags,
  getUpdater,
  setElectronApi,
};
