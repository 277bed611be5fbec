// A STAND-IN for Electron's `ipcMain`, `ipcRenderer`, `webContents` and `contextBridge`, in one
// process, for tests. Electron itself cannot be installed here (its package downloads a binary
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
// It is not Electron: no processes, no sandbox, no serialization limits beyond structured clone.

import { EventEmitter } from 'node:events';

const pending = new Set();

/** Runs `fn` asynchronously and remembers it until done, so `settle()` can wait for it. */
function later(fn) {
  const p = new Promise((resolve) => setImmediate(resolve)).then(fn);
  pending.add(p);
  p.finally(() => pending.delete(p)).catch(() => {});
  return p;
}

/** Waits until every delivery started so far (and those they start) has run. */
export async function settle() {
  for (let i = 0; i < 100 && pending.size > 0; i += 1) {
    await Promise.allSettled([...pending]);
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

// --- wiring -------------------------------------------------------------------------------

/**
 * One main process. `createRenderer()` makes a window: its `webContents`, its preload's
 * `ipcRenderer` and `contextBridge`, and the page's `window` (`mainWorld`).
 */
export function createElectronStandIn() {
  const ipcMain = new IpcMainStandIn();
  let nextId = 1;
  return {
    ipcMain,
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
