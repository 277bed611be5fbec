'use strict';
/**
 * The Electron layer's errors: `RailgunError` (an Error with a stable `code`, like the addon's)
 * and the plain `{code, message}` form that crosses IPC (Electron drops an Error's own
 * properties there). Owns nothing else.
 */

/** An Error with a stable `code`, like the addon's. */
class RailgunError extends Error {
  /**
   * @param {string} code stable code (`ERR_INVALID_ARGUMENT`, …)
   * @param {string} message what happened and what to do
   */
  constructor(code, message) {
    super(message);
    this.name = 'RailgunError';
    this.code = code;
  }
}

function invalid(message) {
  return new RailgunError('ERR_INVALID_ARGUMENT', message);
}

/** `{code, message}` of any thrown value (`ERR_INTERNAL` when it has no code). */
function errorData(err) {
  const code = err && typeof err.code === 'string' ? err.code : 'ERR_INTERNAL';
  const message = err && typeof err.message === 'string' ? err.message : String(err);
  return { code, message };
}

module.exports = { RailgunError, invalid, errorData };
