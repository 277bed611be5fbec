'use strict';
/**
 * Where the configuration comes from: options first, then the `RAILGUN_*` environment
 * variables (an `env` option replaces `process.env`), then Electron's `app` for the name,
 * version and user-data folder. Outside Electron, `app`, `appVersion` and `stateDir` are
 * required and their absence is an `ERR_INVALID_ARGUMENT` naming the option.
 */

const path = require('path');

const { invalid } = require('./errors');
const { describe } = require('./validate');

/** Electron's `app`: the `electronApp` option, else `require('electron').app`, else `null`. */
function electronApp(opts) {
  if (opts && opts.electronApp) return opts.electronApp;
  try {
    // eslint-disable-next-line global-require
    const electron = require('electron');
    if (electron && typeof electron === 'object' && electron.app) return electron.app;
  } catch {
    // not running inside Electron
  }
  return null;
}

function env(opts, name) {
  const source = (opts && opts.env) || process.env;
  const v = source[name];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/** App name, version and state folder: options first, then Electron's `app`. */
function appInfo(opts, what) {
  const app = electronApp(opts);
  const need = (value, getter, option) => {
    if (value !== undefined) return value;
    if (app) return getter(app);
    throw invalid(`${what}: \`${option}\` is required outside Electron (no \`app\` to ask)`);
  };
  const name = need(opts.app, (a) => a.getName(), 'app');
  const version = need(opts.appVersion ?? opts.currentVersion, (a) => a.getVersion(), 'appVersion');
  const stateDir = need(opts.stateDir, (a) => path.join(a.getPath('userData'), 'railgun'), 'stateDir');
  return { app, name, version, stateDir };
}

function positiveMs(value, name, fallback, min) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw invalid(`${name} must be a number of milliseconds ≥ ${min}, got ${describe(value)}`);
  }
  return Math.round(value);
}

module.exports = { electronApp, env, appInfo, positiveMs };
