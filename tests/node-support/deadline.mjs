// Deadlines for every wait in the Node tests: a regression must fail with what was awaited,
// never hang. `node --test --test-timeout` (package.json) is the outer bound; these give each
// wait its own, shorter one and a message that names it.

/** How long a test waits for one thing that should happen at once (a server, an event). */
export const WAIT_MS = 30_000;

/**
 * Settles as `promise` does, or rejects after `ms` with an Error naming `what`.
 * The timer never keeps Node alive.
 */
export function within(promise, what, ms = WAIT_MS) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    timer.unref();
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** The arguments of `emitter`'s next `name` event, within `ms`. */
export function nextEmit(emitter, name, ms = WAIT_MS) {
  return within(new Promise((resolve) => emitter.once(name, (...args) => resolve(args))), `the '${name}' event`, ms);
}

/**
 * A condition to wait for: `check()` re-evaluates `pred` (call it whenever something that
 * could make it true happened); `until(what)` resolves with `pred`'s truthy value, or rejects
 * after `ms`. Any number of waiters may wait at once.
 */
export function condition(pred) {
  const waiters = new Set();
  const check = () => {
    for (const w of [...waiters]) {
      const v = pred(w.arg);
      if (v) {
        waiters.delete(w);
        w.resolve(v);
      }
    }
  };
  const until = (what, arg, ms = WAIT_MS) => {
    const now = pred(arg);
    if (now) return Promise.resolve(now);
    let w;
    const p = new Promise((resolve) => {
      w = { arg, resolve };
      waiters.add(w);
    });
    return within(p, what, ms).finally(() => waiters.delete(w));
  };
  return { check, until };
}
