// A SPY over the real `@railgun/core` addon (not a stand-in): every constructor and method
// call goes through to the native addon unchanged, and is recorded, so a test can say both
// what the Electron layer handed the addon (options, calls, nothing at all for a refused
// argument) and, from the real server, what came of it.

import { addon as nativeAddon } from './railgun.mjs';

const CLASSES = ['Updater', 'Analytics', 'FeatureFlags', 'Health'];

/**
 * `{...addon, Updater, Analytics, FeatureFlags, Health, calls, made}`: pass it as the `addon`
 * option of `init…()` (or to `setAddon`). `calls` lists `[method, ...args]` in order (a
 * constructor as `new Updater`); `made.updaters|analytics|flags|health` hold
 * `{opts, instance, calls}` per object built (the per-object `calls` without the class prefix).
 */
export function spyOnAddon(real = nativeAddon) {
  const calls = [];
  const made = { updaters: [], analytics: [], flags: [], health: [] };
  const lists = { Updater: made.updaters, Analytics: made.analytics, FeatureFlags: made.flags, Health: made.health };
  const spy = { ...real, calls, made };
  for (const name of CLASSES) {
    const Real = real[name];
    spy[name] = function Spied(opts) {
      if (!new.target) throw new TypeError(`${name} must be called with new`);
      const instance = new Real(opts);
      const own = [];
      const entry = { opts, instance: null, calls: own };
      const proxy = new Proxy(instance, {
        get(target, prop) {
          const v = Reflect.get(target, prop, target);
          if (typeof v !== 'function' || typeof prop !== 'string') return v;
          return (...args) => {
            calls.push([prop, ...args]);
            own.push([prop, ...args]);
            return v.apply(target, args);
          };
        },
      });
      entry.instance = proxy;
      lists[name].push(entry);
      calls.push([`new ${name}`, opts]);
      return proxy;
    };
  }
  /** The calls named `method` so far (all objects). */
  spy.callsOf = (method) => calls.filter((c) => c[0] === method);
  return spy;
}
