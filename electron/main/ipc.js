'use strict';
/**
 * The IPC boundary: one `ipcMain.handle` channel per call, every renderer argument validated
 * before it reaches a service, answers and errors sent back as plain data (`{ok, value}` /
 * `{ok: false, error: {code, message}}`), the senders the app's `validateSender` accepts
 * only, and the main → renderer pushes (updater events, flags changed, flags provider events)
 * to the pages that
 * subscribed.
 *
 * Refuses: unknown channels, extra arguments, arguments of the wrong type or size (all with
 * `code: 'ERR_INVALID_ARGUMENT'`), untrusted senders (`ERR_UNTRUSTED_SENDER`), calls before the
 * matching `init…()` (`ERR_NOT_INITIALIZED`).
 */

const {
  CHANNELS, EVENT_CHANNELS, FLAGS_EVENTS, UPDATER_EVENTS,
} = require('./channels');
const { RailgunError, errorData, invalid } = require('./errors');
const { bridges, current } = require('./services');
const {
  expectArgs, validateConsent, validateEventName, validateFlagKey, validateProperties, validateScreenName,
} = require('./validate');

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
 * @param {import('../main').IpcOptions} [options]
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
      for (const name of FLAGS_EVENTS) {
        const onEvent = (event) => send(EVENT_CHANNELS.FLAGS_EVENT, plain(event));
        flags.on(name, onEvent);
        detach.push(() => flags.removeListener(name, onEvent));
      }
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

module.exports = { handleInvoke, registerIpcHandlers };
