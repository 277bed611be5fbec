'use strict';
/**
 * The services the `init…()` functions created in this process (one of each kind), and the
 * IPC bridges that follow them: a bridge registered by `registerIpcHandlers` is told each time
 * a service is set, so one initialized after it is still served and its events pushed.
 */

/** The current services by kind; the same object for the life of the process. */
const current = { updater: null, analytics: null, featureFlags: null, health: null };
/** The IPC bridges' re-attach functions, told when a service is set. */
const bridges = new Set();

function notify() {
  for (const attach of bridges) attach();
}

/** Makes `service` the current one of its `kind` and tells the bridges. */
function setCurrent(kind, service) {
  current[kind] = service;
  notify();
}

/** Forgets every service (nothing is shut down) and tells the bridges. */
function forgetAll() {
  for (const kind of Object.keys(current)) current[kind] = null;
  notify();
}

module.exports = { current, bridges, setCurrent, forgetAll };
