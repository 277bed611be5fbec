'use strict';
/**
 * Railgun's preload bridge: exposes `window.electronAPI.{featureFlags, analytics, updater, health}` to
 * the renderer through `contextBridge`, each call one `ipcRenderer.invoke` on its own
 * `railgun:*` channel (see `electron/main.js`).
 *
 * Owns: the shape of `window.electronAPI`, unwrapping the main process's `{ok, value}` /
 * `{ok: false, error}` answers (a refusal becomes an Error whose message starts with its code,
 * `ERR_INVALID_ARGUMENT: …`, because contextBridge drops custom Error properties), and the
 * listeners for main → renderer pushes (updater events, flags changed, flags provider events).
 *
 * Refuses: to hand the renderer anything but plain functions and data — never `ipcRenderer`,
 * an IPC event object or a Node object; to invoke any channel outside its fixed list.
 * It validates nothing of substance: the main process does (it is the trust boundary).
 *
 * Self-contained on purpose (requires nothing), so a sandboxed preload can bundle it as is.
 */

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
const EVENT_CHANNELS = Object.freeze({
  UPDATER_EVENT: 'railgun:updater:event',
  FLAGS_CHANGED: 'railgun:flags:changed',
  FLAGS_EVENT: 'railgun:flags:event',
  SUBSCRIBE: 'railgun:events:subscribe',
  UNSUBSCRIBE: 'railgun:events:unsubscribe',
});
const UPDATER_EVENTS = Object.freeze([
  'checking-for-update',
  'update-available',
  'update-not-available',
  'download-progress',
  'update-downloaded',
  'update-delta-fallback',
  'error',
]);
const FLAGS_EVENTS = Object.freeze(['READY', 'CONFIGURATION_CHANGED', 'STALE', 'ERROR']);
const KNOWN = new Set(Object.values(CHANNELS));

function railgunError(code, message) {
  const err = new Error(`${code}: ${message}`);
  err.code = code;
  return err;
}

/** A deep copy made of plain data only (the main process already sent plain data). */
function plain(value) {
  if (value === undefined || value === null) return value === undefined ? undefined : null;
  return JSON.parse(JSON.stringify(value));
}

/**
 * Builds the API object (plain functions over `ipcRenderer`), without exposing it.
 * @param {import('electron').IpcRenderer} ipcRenderer
 * @returns {import('./preload').ElectronAPI}
 */
function createRailgunApi(ipcRenderer) {
  if (!ipcRenderer || typeof ipcRenderer.invoke !== 'function' || typeof ipcRenderer.on !== 'function') {
    throw railgunError('ERR_INVALID_ARGUMENT', 'createRailgunApi needs ipcRenderer');
  }

  async function invoke(channel, ...args) {
    if (!KNOWN.has(channel)) {
      throw railgunError('ERR_INVALID_ARGUMENT', `unknown railgun channel ${JSON.stringify(String(channel))}`);
    }
    const answer = await ipcRenderer.invoke(channel, ...args);
    if (answer && answer.ok === true) return plain(answer.value);
    const e = answer && answer.error ? answer.error : { code: 'ERR_INTERNAL', message: 'malformed answer' };
    throw railgunError(String(e.code), String(e.message));
  }

  // Listeners for main → renderer pushes; the event object never reaches them.
  const updaterListeners = new Set();
  const flagListeners = new Set();
  const flagEventListeners = new Set();
  let subscribed = false;
  const syncSubscription = () => {
    const want = updaterListeners.size + flagListeners.size + flagEventListeners.size > 0;
    if (want && !subscribed) ipcRenderer.send(EVENT_CHANNELS.SUBSCRIBE);
    if (!want && subscribed) ipcRenderer.send(EVENT_CHANNELS.UNSUBSCRIBE);
    subscribed = want;
  };
  const callEach = (set, args) => {
    for (const cb of [...set]) {
      try {
        cb(...args);
      } catch (err) {
        console.error('[railgun] listener failed:', err);
      }
    }
  };
  ipcRenderer.on(EVENT_CHANNELS.UPDATER_EVENT, (_event, name, payload) => {
    if (typeof name !== 'string' || !UPDATER_EVENTS.includes(name)) return;
    callEach(updaterListeners, [name, plain(payload)]);
  });
  ipcRenderer.on(EVENT_CHANNELS.FLAGS_CHANGED, () => callEach(flagListeners, []));
  ipcRenderer.on(EVENT_CHANNELS.FLAGS_EVENT, (_event, payload) => {
    if (!payload || typeof payload !== 'object' || !FLAGS_EVENTS.includes(payload.type)) return;
    const e = {
      type: payload.type,
      revision: typeof payload.revision === 'number' ? payload.revision : null,
      reason: typeof payload.reason === 'string' ? payload.reason : null,
    };
    callEach(flagEventListeners, [e]);
  });

  const listen = (set, cb) => {
    if (typeof cb !== 'function') throw railgunError('ERR_INVALID_ARGUMENT', 'a listener must be a function');
    set.add(cb);
    syncSubscription();
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      set.delete(cb);
      syncSubscription();
    };
  };

  return {
    featureFlags: {
      get: (key) => invoke(CHANNELS.FLAGS_GET, key),
      getAll: () => invoke(CHANNELS.FLAGS_GET_ALL),
      getAnnouncements: () => invoke(CHANNELS.FLAGS_GET_ANNOUNCEMENTS),
      getMaintenance: () => invoke(CHANNELS.FLAGS_GET_MAINTENANCE),
      isKillSwitchActive: () => invoke(CHANNELS.FLAGS_IS_KILL_SWITCH_ACTIVE),
      onChange: (cb) => listen(flagListeners, cb),
      onEvent: (cb) => listen(flagEventListeners, cb),
    },
    analytics: {
      track: (name, properties) =>
        invoke(CHANNELS.ANALYTICS_TRACK, name, ...(properties === undefined ? [] : [properties])),
      screen: (name) => invoke(CHANNELS.ANALYTICS_SCREEN, name),
      setConsent: (consent) => invoke(CHANNELS.ANALYTICS_SET_CONSENT, consent),
      getConsent: () => invoke(CHANNELS.ANALYTICS_GET_CONSENT),
    },
    updater: {
      check: () => invoke(CHANNELS.UPDATER_CHECK),
      download: () => invoke(CHANNELS.UPDATER_DOWNLOAD),
      install: () => invoke(CHANNELS.UPDATER_INSTALL),
      onEvent: (cb) => listen(updaterListeners, cb),
    },
    health: {
      // Counts one error; nothing about it (message, stack) leaves the page.
      reportError: () => invoke(CHANNELS.HEALTH_REPORT_ERROR),
    },
  };
}

/**
 * Exposes the API as `window[key]` (default `electronAPI`) through `contextBridge`.
 * @param {import('electron').ContextBridge} contextBridge
 * @param {import('electron').IpcRenderer} ipcRenderer
 * @param {{key?: string}} [options]
 * @returns {import('./preload').ElectronAPI} the object handed to contextBridge
 */
function exposeRailgunApi(contextBridge, ipcRenderer, options = {}) {
  if (!contextBridge || typeof contextBridge.exposeInMainWorld !== 'function') {
    throw railgunError('ERR_INVALID_ARGUMENT', 'exposeRailgunApi needs contextBridge');
  }
  const key = options.key === undefined ? 'electronAPI' : options.key;
  if (typeof key !== 'string' || !/^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/.test(key)) {
    throw railgunError('ERR_INVALID_ARGUMENT', 'options.key must be an identifier');
  }
  const api = createRailgunApi(ipcRenderer);
  contextBridge.exposeInMainWorld(key, api);
  return api;
}

module.exports = {
  exposeRailgunApi, createRailgunApi, CHANNELS, EVENT_CHANNELS, UPDATER_EVENTS, FLAGS_EVENTS,
};
