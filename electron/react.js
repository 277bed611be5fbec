'use strict';
/**
 * React hooks over the renderer helpers (`electron/renderer.js`): screen tracking, feature
 * usage tracking, and feature flags that re-render when the main process reports a change.
 *
 * Owns: the hooks' lifecycles (subscribe on mount, unsubscribe on unmount, ignore answers
 * that arrive after unmount or after a newer request).
 * Refuses: to throw into rendering — a failed flag lookup keeps the default value.
 * React is a peer dependency (≥ 16.8).
 */

const React = require('react');
const { getAnalytics, getFeatureFlags, FEATURE_USED } = require('./renderer');

const { useCallback, useEffect, useRef, useState } = React;

/**
 * Records a `screen_view` for `screen` when the component mounts and whenever `screen` changes
 * (once per change, also under React.StrictMode's double effects).
 * @param {string} screen
 */
function useScreenTracking(screen) {
  const last = useRef(null);
  useEffect(() => {
    if (typeof screen !== 'string' || screen === '' || last.current === screen) return;
    last.current = screen;
    getAnalytics().screen(screen);
  }, [screen]);
}

/**
 * Tracks the use of a feature: `trackUsage(action?, properties?)` records
 * `feature_used {feature, action?, ...properties}`. `trackUsage` is stable per `feature`.
 * @param {string} feature
 * @returns {{trackUsage: (action?: string, properties?: Record<string, string|number|boolean>) => void}}
 */
function useFeatureTracking(feature) {
  const trackUsage = useCallback(
    (action, properties) => {
      const props = Object.assign({}, properties || {}, { feature });
      if (action !== undefined) props.action = action;
      getAnalytics().track(FEATURE_USED, props);
    },
    [feature],
  );
  return { trackUsage };
}

/**
 * Whether flag `key` is on; `defaultValue` (default `false`) until the main process answers or
 * when it cannot. Re-renders when the flags change.
 * @param {string} key
 * @param {boolean} [defaultValue]
 * @returns {boolean}
 */
function useFeatureFlag(key, defaultValue = false) {
  const [value, setValue] = useState(defaultValue);
  const latest = useRef(0);
  useEffect(() => {
    let alive = true;
    let flags;
    try {
      flags = getFeatureFlags();
    } catch {
      return undefined;
    }
    const load = () => {
      latest.current += 1;
      const ticket = latest.current;
      Promise.resolve()
        .then(() => flags.get(key))
        .then(
          (v) => {
            if (alive && ticket === latest.current) setValue(v === true);
          },
          () => {
            if (alive && ticket === latest.current) setValue(defaultValue);
          },
        );
    };
    load();
    const unsubscribe = typeof flags.onChange === 'function' ? flags.onChange(load) : null;
    return () => {
      alive = false;
      if (typeof unsubscribe === 'function') unsubscribe();
    };
  }, [key, defaultValue]);
  return value;
}

module.exports = { useScreenTracking, useFeatureTracking, useFeatureFlag };
