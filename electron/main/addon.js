'use strict';
/**
 * Loading the native addon: the root package's `index.js` on first use, unless an `addon`
 * option or `setAddon()` gives another one (tests, custom builds). A missing build is a
 * `RailgunError` `ERR_ADDON_NOT_FOUND` that says what to run.
 */

const { RailgunError } = require('./errors');

let addonOverride = null;

/** The addon: the root package (`index.js`), loaded on first use. */
function loadAddon(opts) {
  if (opts && opts.addon) return opts.addon;
  if (addonOverride) return addonOverride;
  try {
    // eslint-disable-next-line global-require
    return require('../..');
  } catch (e) {
    throw new RailgunError(
      'ERR_ADDON_NOT_FOUND',
      `the @railgun/core native addon could not be loaded (${e && e.message}); run \`npm run build\``,
    );
  }
}

/**
 * Uses `addon` instead of the root package's native addon (tests, custom builds).
 * `null` goes back to the default.
 * @param {object|null} addon
 */
function setAddon(addon) {
  addonOverride = addon || null;
}

module.exports = { loadAddon, setAddon };
