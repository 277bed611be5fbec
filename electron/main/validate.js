'use strict';
/**
 * Validation of what arrives from a renderer (and of the main process's own calls): event
 * names, properties, screen names, consent, flag keys, argument counts. Each check throws a
 * `RailgunError` with `code: 'ERR_INVALID_ARGUMENT'` naming what is wrong, and returns a value
 * safe to hand to the addon (properties are copied: only validated own keys).
 *
 * Refuses: wrong types, sizes over the shared limits (`src/analytics/event.rs`), keys that
 * could pollute prototypes (`__proto__`, `constructor`, `prototype`), strings it would have
 * to walk far to measure (a string longer than twice the limit is refused at once).
 */

const { LIMITS } = require('./channels');
const { invalid } = require('./errors');

const CONSENTS = Object.freeze(['granted', 'denied', 'unknown']);
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `a string of ${v.length} UTF-16 units` : `a ${typeof v}`;
}

/**
 * Whether `s` has more than `max` characters (code points, as the core counts them), without
 * walking a string that is surely too long or surely short enough.
 */
function longerThan(s, max) {
  if (s.length <= max) return false; // code points ≤ UTF-16 units
  if (s.length > 2 * max) return true; // a code point is at most two units
  let n = 0;
  // eslint-disable-next-line no-unused-vars
  for (const _ of s) {
    n += 1;
    if (n > max) return true;
  }
  return false;
}

function isPlainObject(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Checks an event name: `^[a-z][a-z0-9_]{0,63}$`.
 * @param {unknown} name
 * @returns {string}
 */
function validateEventName(name) {
  if (typeof name !== 'string' || !LIMITS.EVENT_NAME.test(name)) {
    throw invalid(
      `event name must be a string matching ^[a-z][a-z0-9_]{0,63}$, got ${describe(name)}` +
        (typeof name === 'string' && name.length <= 64 ? ` ${JSON.stringify(name)}` : ''),
    );
  }
  return name;
}

/**
 * Checks event properties and returns a fresh copy holding only validated own keys:
 * at most 32, keys `[A-Za-z0-9_.-]{1,64}` (not `__proto__`, `constructor`, `prototype`),
 * values strings ≤ 256 characters, finite numbers or booleans.
 * @param {unknown} props
 * @returns {Record<string, string|number|boolean>|undefined}
 */
function validateProperties(props) {
  if (props === undefined || props === null) return undefined;
  if (!isPlainObject(props)) {
    throw invalid(`properties must be a plain object, got ${describe(props)}`);
  }
  // Own enumerable string keys only: what structured clone carries over IPC.
  const keys = Object.keys(props);
  if (keys.length > LIMITS.MAX_PROPERTIES) {
    throw invalid(`${keys.length} properties, at most ${LIMITS.MAX_PROPERTIES}`);
  }
  const out = {};
  for (let i = 0; i < keys.length; i += 1) {
    const key = keys[i];
    if (!LIMITS.PROPERTY_KEY.test(key) || FORBIDDEN_KEYS.has(key)) {
      throw invalid(
        `property key ${JSON.stringify(key.slice(0, 80))} must be 1-64 characters of [A-Za-z0-9_.-] ` +
          'and not __proto__/constructor/prototype',
      );
    }
    const v = props[key];
    if (typeof v === 'string') {
      if (longerThan(v, LIMITS.MAX_STRING_LEN)) {
        throw invalid(`property ${JSON.stringify(key)} is longer than ${LIMITS.MAX_STRING_LEN} characters`);
      }
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw invalid(`property ${JSON.stringify(key)} is not a finite number`);
    } else if (typeof v !== 'boolean') {
      throw invalid(`property ${JSON.stringify(key)} must be a string, number or boolean, got ${describe(v)}`);
    }
    out[key] = v; // safe: `__proto__` was refused above
  }
  return out;
}

/**
 * Checks a screen name: a string of 1-256 characters without control characters.
 * @param {unknown} screen
 * @returns {string}
 */
function validateScreenName(screen) {
  if (typeof screen === 'string' && longerThan(screen, LIMITS.MAX_SCREEN_LEN)) {
    throw invalid(`screen name is longer than ${LIMITS.MAX_SCREEN_LEN} characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (typeof screen !== 'string' || screen.length === 0 || /[\u0000-\u001f\u007f]/.test(screen)) {
    throw invalid(`screen name must be a non-empty string without control characters, got ${describe(screen)}`);
  }
  return screen;
}

/**
 * Checks a consent value: `granted`, `denied` or `unknown`.
 * @param {unknown} consent
 * @returns {'granted'|'denied'|'unknown'}
 */
function validateConsent(consent) {
  if (typeof consent !== 'string' || !CONSENTS.includes(consent)) {
    throw invalid(`consent must be one of granted, denied, unknown, got ${describe(consent)}`);
  }
  return consent;
}

/**
 * Checks a flag key: 1-128 characters of `[A-Za-z0-9_.:-]`.
 * @param {unknown} key
 * @returns {string}
 */
function validateFlagKey(key) {
  if (typeof key !== 'string' || !LIMITS.FLAG_KEY.test(key) || FORBIDDEN_KEYS.has(key)) {
    throw invalid(`flag key must be 1-128 characters of [A-Za-z0-9_.:-], got ${describe(key)}`);
  }
  return key;
}

function expectArgs(channel, args, max) {
  if (args.length > max) {
    throw invalid(`${channel} takes ${max === 0 ? 'no arguments' : `at most ${max}`}, got ${args.length}`);
  }
}

module.exports = {
  CONSENTS,
  describe,
  isPlainObject,
  longerThan,
  validateEventName,
  validateProperties,
  validateScreenName,
  validateConsent,
  validateFlagKey,
  expectArgs,
};
