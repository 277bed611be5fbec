'use strict';
/**
 * The IPC channel names, the updater's and the flags' event names and the limits of what a renderer may
 * send. The preload bridge (`electron/preload.js`) keeps its own copy of the names, on
 * purpose (it requires nothing); `tests/node/electron_ipc.test.mjs` checks they agree.
 */

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
  /** `(event)`: a flags provider event `{type, revision, reason}` (OpenFeature's names). */
  FLAGS_EVENT: 'railgun:flags:event',
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
  'update-delta-fallback',
  'error',
]);

/** The feature flags' provider events, named as in OpenFeature. */
const FLAGS_EVENTS = Object.freeze(['READY', 'CONFIGURATION_CHANGED', 'STALE', 'ERROR']);

/** The shared analytics limits (`src/analytics/event.rs`) and the bridge's own. */
const LIMITS = Object.freeze({
  EVENT_NAME: /^[a-z][a-z0-9_]{0,63}$/,
  MAX_PROPERTIES: 32,
  PROPERTY_KEY: /^[A-Za-z0-9_.-]{1,64}$/,
  MAX_STRING_LEN: 256,
  MAX_SCREEN_LEN: 256,
  FLAG_KEY: /^[A-Za-z0-9_.:-]{1,128}$/,
});

module.exports = { CHANNELS, EVENT_CHANNELS, UPDATER_EVENTS, FLAGS_EVENTS, LIMITS };
