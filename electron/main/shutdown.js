'use strict';
/**
 * Ending the services: `shutdown()` (the updater's checks and the flags' refresh stop,
 * analytics and health shut down cleanly; never rejects) and `reset()` (forget them without
 * shutting anything down, for tests).
 */

const { current, forgetAll } = require('./services');

/**
 * Stops the updater's checks and the flags' refresh, flushes and stops analytics, and shuts
 * the health monitor down cleanly (the next start counts no crash). Never rejects.
 */
async function shutdown() {
  await shutdownServices(current);
}

/** `shutdown()` over `services`; resolves with the health monitor's outcome. */
async function shutdownServices(services) {
  const { updater, analytics, featureFlags, health } = services;
  if (featureFlags) {
    try {
      featureFlags.close();
    } catch {
      // closing is best effort
    }
  }
  const call = (fn) => Promise.resolve().then(fn);
  const [, , h] = await Promise.allSettled([
    updater && call(() => updater.stop()),
    analytics && call(() => analytics.shutdown()),
    health && call(() => health.shutdown()),
  ]);
  return h;
}

/**
 * Forgets the services initialized so far and removes the health monitor's listeners, without
 * shutting anything down (tests).
 */
function reset() {
  if (current.health) current.health._detach();
  forgetAll();
}

module.exports = { shutdown, shutdownServices, reset };
