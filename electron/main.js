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
 *
 * The public entry (`@railgun/core/electron/main`, typed by `main.d.ts`); the code is split by
 * service under `electron/main/`: `updater.js`, `analytics.js`, `flags.js`, `health.js`,
 * `ipc.js` (registration and the IPC boundary), `validate.js`, `config.js` (options,
 * environment, Electron's `app`), `addon.js` (loading the native addon), `services.js` (the
 * services of this process), `shutdown.js`, `channels.js`, `errors.js`.
 */

const { setAddon } = require('./main/addon');
const { RailgunAnalytics, initAnalytics } = require('./main/analytics');
const {
  CHANNELS, EVENT_CHANNELS, FLAGS_EVENTS, LIMITS, UPDATER_EVENTS,
} = require('./main/channels');
const { RailgunError } = require('./main/errors');
const { RailgunFeatureFlags, initFeatureFlags } = require('./main/flags');
const { RailgunHealth, initHealth } = require('./main/health');
const { handleInvoke, registerIpcHandlers } = require('./main/ipc');
const { reset, shutdown } = require('./main/shutdown');
const { RailgunAutoUpdater, initAutoUpdater } = require('./main/updater');
const {
  validateConsent, validateEventName, validateFlagKey, validateProperties, validateScreenName,
} = require('./main/validate');

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
  FLAGS_EVENTS,
  LIMITS,
  validate: Object.freeze({
    eventName: validateEventName,
    properties: validateProperties,
    screenName: validateScreenName,
    consent: validateConsent,
    flagKey: validateFlagKey,
  }),
};
