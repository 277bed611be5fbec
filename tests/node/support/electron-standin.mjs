// A STAND-IN for Electron's `ipcMain`, `ipcRenderer`, `webContents`, `contextBridge` and `app`,
// in one process, for tests. Electron itself cannot be installed here (its package downloads a binary
// at install), so this models the parts of its behaviour the railgun bridge depends on:
//
// - `ipcRenderer.invoke`/`send` and `webContents.send` copy every argument and result with the
//   structured clone algorithm (functions cannot be sent: a DataCloneError, as in Electron;
//   class prototypes are lost);
// - `ipcMain.handle` allows one handler per channel; invoking a channel without one rejects
//   with "No handler registered for '…'"; a handler's thrown Error reaches the renderer as
//   `Error invoking remote method '…': Error: message` with its custom properties (`code`) lost;
// - deliveries are asynchronous (never inside the caller's stack);
// - `contextBridge.exposeInMainWorld` copies the API into the renderer's `window`: plain objects
//   and arrays are copied and frozen, functions are proxied both ways (arguments and results
//   copied, Promises re-made), a thrown or rejected Error keeps only its message.
//
// - `app` (see `AppStandIn`) quits the way Electron's Browser::Quit does: `before-quit`, then
//   `will-quit`, each cancellable with `preventDefault()`, then `quit`.
//
// It is not Electron: no processes, no sandbox, no serialization limits beyond structured clone.

import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';

import { within } from '../../node-support/deadline.mjs';

const pending = new Set();

/** Runs `fn` asynchronously and remembers it until done, so `settle()` can wait for it. */
function later(fn) {
  const p = new Promise((resolve) => setImmediate(resolve)).then(fn);
  pending.add(p);
  p.finally(() => pending.delete(p)).catch(() => {});
  return p;
}

/**
 * Waits until every delivery started so far (and those they start) has run; fails after a
 * deadline, or when deliveries keep starting new ones after 100 rounds.
 */
export async function settle() {
  for (let i = 0; pending.size > 0; i += 1) {
    if (i === 100) throw new Error('IPC deliveries keep starting new ones after 100 rounds');
    await within(Promise.allSettled([...pending]), 'the IPC deliveries in flight');
  }
}

function cloneArgs(args) {
  return args.map((a) => structuredClone(a));
}

class IpcMainStandIn extends EventEmitter {
  constructor() {
    super();
    this.handlers = new Map();
  }

  handle(channel, fn) {
    if (this.handlers.has(channel)) {
      throw new Error(`Attempted to register a second handler for '${channel}'`);
    }
    this.handlers.set(channel, fn);
  }

  handleOnce(channel, fn) {
    this.handle(channel, (...a) => {
      this.handlers.delete(channel);
      return fn(...a);
    });
  }

  removeHandler(channel) {
    this.handlers.delete(channel);
  }
}

class WebContentsStandIn extends EventEmitter {
  constructor(id, url) {
    super();
    this.id = id;
    this.url = url;
    this.destroyed = false;
    this.rendererEmitter = new EventEmitter();
    this.sent = [];
  }

  /** main → renderer. */
  send(channel, ...args) {
    if (this.destroyed) throw new Error('Object has been destroyed');
    const copy = cloneArgs(args);
    this.sent.push({ channel, args: copy });
    later(() => {
      if (!this.destroyed) this.rendererEmitter.emit(channel, { sender: this.ipcRendererFacade, senderId: 0 }, ...copy);
    });
  }

  isDestroyed() {
    return this.destroyed;
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('destroyed');
  }

  getURL() {
    return this.url;
  }
}

/** A renderer's `ipcRenderer`, bound to one `webContents`. */
class IpcRendererStandIn extends EventEmitter {
  constructor(ipcMain, webContents) {
    super();
    this._main = ipcMain;
    this._wc = webContents;
    webContents.ipcRendererFacade = this;
    // Deliveries to this renderer arrive on the webContents' emitter.
    this.on = (channel, listener) => {
      webContents.rendererEmitter.on(channel, listener);
      return this;
    };
    this.removeListener = (channel, listener) => {
      webContents.rendererEmitter.removeListener(channel, listener);
      return this;
    };
    this.removeAllListeners = (channel) => {
      webContents.rendererEmitter.removeAllListeners(channel);
      return this;
    };
  }

  _event() {
    return {
      sender: this._wc,
      senderFrame: { url: this._wc.url, origin: new URL(this._wc.url).origin },
      processId: 1,
      frameId: 1,
    };
  }

  invoke(channel, ...args) {
    let copy;
    try {
      copy = cloneArgs(args);
    } catch (err) {
      return Promise.reject(new Error(`An object could not be cloned. (${err.name})`));
    }
    return later(async () => {
      const handler = this._main.handlers.get(channel);
      if (!handler) {
        throw new Error(`Error invoking remote method '${channel}': Error: No handler registered for '${channel}'`);
      }
      let result;
      try {
        result = await handler(this._event(), ...copy);
      } catch (err) {
        // Electron keeps the message only.
        throw new Error(`Error invoking remote method '${channel}': ${err}`);
      }
      return structuredClone(result);
    });
  }

  send(channel, ...args) {
    const copy = cloneArgs(args);
    later(() => this._main.emit(channel, this._event(), ...copy));
  }
}

// --- contextBridge -----------------------------------------------------------------------

function isPlain(v) {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Copies `value` across the bridge, the way contextBridge does (in either direction). */
function bridgeCopy(value, seen = new Map()) {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return value;
  if (typeof value === 'function') {
    const fn = value;
    return function bridged(...args) {
      let out;
      try {
        out = fn(...args.map((a) => bridgeCopy(a)));
      } catch (err) {
        throw new Error(err && err.message !== undefined ? err.message : String(err));
      }
      return bridgeCopy(out);
    };
  }
  if (value instanceof Promise) {
    return new Promise((resolve, reject) => {
      value.then(
        (v) => resolve(bridgeCopy(v)),
        (err) => reject(new Error(err && err.message !== undefined ? err.message : String(err))),
      );
    });
  }
  if (value instanceof Error) return new Error(value.message);
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    const out = [];
    seen.set(value, out);
    for (const v of value) out.push(bridgeCopy(v, seen));
    return Object.freeze(out);
  }
  // Plain objects and anything else: own enumerable string keys, prototype dropped.
  const out = {};
  seen.set(value, out);
  for (const k of Object.keys(value)) {
    // A data property even for the key `__proto__` (as V8 copies it), never a prototype change.
    Object.defineProperty(out, k, { value: bridgeCopy(value[k], seen), enumerable: true, writable: true, configurable: true });
  }
  return Object.freeze(out);
}

class ContextBridgeStandIn {
  constructor(mainWorld) {
    this._world = mainWorld;
    this.exposed = new Map();
  }

  exposeInMainWorld(key, api) {
    if (Object.prototype.hasOwnProperty.call(this._world, key)) {
      throw new Error(`Cannot bind an API on top of an existing property on the window object`);
    }
    this.exposed.set(key, api);
    Object.defineProperty(this._world, key, { value: bridgeCopy(api), enumerable: true });
  }
}

// --- app --------------------------------------------------------------------------------

function quitEvent() {
  return {
    defaultPrevented: false,
    preventDefault() {
      this.defaultPrevented = true;
    },
  };
}

/**
 * A STAND-IN for Electron's `app`: name, version, `getPath('userData')`, events, `relaunch()`
 * (recorded only), and `quit()`
 * modelled on Electron's `Browser::Quit` / `NotifyAndShutdown` (shell/browser/browser.cc):
 *
 * - `quit()` while the app is quitting does nothing;
 * - it emits `before-quit`; a listener's `preventDefault()` cancels the quit;
 * - with no window open (there are none here) it emits `will-quit` in the same call; a
 *   `preventDefault()` cancels the quit, and a later `quit()` starts over with `before-quit`;
 * - otherwise it emits `quit` `(event, 0)` and the app has ended: `hasQuit`, `whenQuit()`.
 *
 * Stricter than Electron on one point: after a cancelled `will-quit` the app counts itself as
 * quitting until the next macrotask (Electron resets its flag only after the listeners
 * returned, and microtasks may run before that), so a `quit()` from a microtask is ignored.
 * `render-process-gone` / `child-process-gone` are emitted by the test (`app.emit`).
 * `exit()` ends the app at once without any event, as Electron's `app.exit()`.
 */
export class AppStandIn extends EventEmitter {
  constructor({ name = 'rail-gun', version = '0.1.0', userData = '/tmp/railgun-standin-user-data' } = {}) {
    super();
    this._name = name;
    this._version = version;
    this._userData = userData;
    this._quitting = false;
    this.hasQuit = false;
    this.exitCode = null;
    /** Every `quit()` call, honoured or not. */
    this.quitCalls = 0;
    /** Every `relaunch()` call (Electron restarts the app after it quits). */
    this.relaunchCalls = 0;
    /** The events `quit()` emitted, in order. */
    this.quitEvents = [];
    this._ended = new Promise((resolve) => {
      this._end = resolve;
    });
  }

  getName() {
    return this._name;
  }

  getVersion() {
    return this._version;
  }

  getPath(what) {
    if (what !== 'userData') throw new Error(`the app stand-in has no path ${what}`);
    return this._userData;
  }

  /** Records the call: Electron would start the app again once this instance has quit. */
  relaunch() {
    this.relaunchCalls += 1;
  }

  quit() {
    this.quitCalls += 1;
    if (this._quitting || this.hasQuit) return;
    this._quitting = true;
    const before = quitEvent();
    this.quitEvents.push('before-quit');
    this.emit('before-quit', before);
    if (before.defaultPrevented) {
      this._quitting = false;
      return;
    }
    const will = quitEvent();
    this.quitEvents.push('will-quit');
    this.emit('will-quit', will);
    if (will.defaultPrevented) {
      setImmediate(() => {
        this._quitting = false;
      });
      return;
    }
    this._finish(0, true);
  }

  exit(code = 0) {
    if (!this.hasQuit) this._finish(code, false);
  }

  _finish(code, events) {
    this.hasQuit = true;
    this.exitCode = code;
    if (events) {
      this.quitEvents.push('quit');
      this.emit('quit', quitEvent(), code);
    }
    this._end(code);
  }

  /** Resolves with the exit code once the app has ended. */
  whenQuit() {
    return this._ended;
  }
}

// --- require('electron') ----------------------------------------------------------------------

/**
 * Makes `require('electron')` (from any CommonJS module of this process, e.g. electron/main.js
 * asking for `app`) return `electron`, the parts of a stand-in the code under test needs
 * (`{app, ipcMain}`), so that the specification's snippets run as written, without an
 * `electronApp` option. Returns the function that undoes it.
 */
export function provideElectronModule(electron) {
  const Module = createRequire(import.meta.url)('node:module');
  const id = '\0railgun-electron-standin';
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function resolveElectron(request, ...rest) {
    return request === 'electron' ? id : resolve.call(this, request, ...rest);
  };
  const m = new Module(id);
  m.filename = id;
  m.loaded = true;
  m.exports = electron;
  Module._cache[id] = m;
  return () => {
    Module._resolveFilename = resolve;
    delete Module._cache[id];
  };
}

// --- wiring -------------------------------------------------------------------------------

/**
 * One main process: `ipcMain` and `app` (`appOptions`: `{name, version, userData}`).
 * `createRenderer()` makes a window: its `webContents`, its preload's `ipcRenderer` and
 * `contextBridge`, and the page's `window` (`mainWorld`).
 */
export function createElectronStandIn(appOptions = {}) {
  const ipcMain = new IpcMainStandIn();
  let nextId = 1;
  return {
    ipcMain,
    app: new AppStandIn(appOptions),
    isStandIn: true,
    createRenderer(url = 'app://railgun/index.html') {
      const webContents = new WebContentsStandIn(nextId++, url);
      const ipcRenderer = new IpcRendererStandIn(ipcMain, webContents);
      const mainWorld = {};
      const contextBridge = new ContextBridgeStandIn(mainWorld);
      return { webContents, ipcRenderer, contextBridge, window: mainWorld };
    },
  };
}

export { bridgeCopy };
