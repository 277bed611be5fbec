// electron/react.js in a DOM (jsdom via global-jsdom) with React 18 and Testing Library, over
// the whole bridge: the page's window.electronAPI comes from the preload through the Electron
// STAND-IN (support/electron-standin.mjs, for Electron's own objects), main.js answers over
// the real addon, and what the hooks record is read back from the real server's store; flags
// come from a config document the real server serves.
import 'global-jsdom/register';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { settle } from './support/electron-standin.mjs';
import { spyOnAddon } from '../node-support/addon-spy.mjs';
import { nextEmit } from '../node-support/deadline.mjs';
import { baseConfig, fixtureForFile, openApp } from '../node-support/electron-fixture.mjs';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

const require = createRequire(import.meta.url);
const React = require('react');
const { render, act, cleanup } = require('@testing-library/react');
const main = require('../../electron/main.js');
const renderer = require('../../electron/renderer.js');
const { useScreenTracking, useFeatureTracking, useFeatureFlag } = require('../../electron/react.js');

const h = React.createElement;

const file = fixtureForFile({
  onAfter: () => {
    cleanup();
    main.reset();
  },
});

async function world(t) {
  cleanup();
  renderer.setElectronApi(null);
  const { analytics, flags, config, userId, page: r } = await openApp(t, file.fx, { addon: spyOnAddon(), flags: true });
  t.after(cleanup);
  // The page's window (jsdom's) gets what contextBridge exposed.
  window.electronAPI = r.window.electronAPI;
  /** The events the server stored for this app's user, after a flush. */
  const stored = async () => {
    await analytics.flush();
    return file.fx.names(userId).filter(([n]) => n !== 'session_start');
  };
  /** Publishes a new config with `dark_mode` and waits until main applied it. */
  const setDarkMode = async (on, version) => {
    file.fx.writeConfig(config.name, baseConfig({ version, flags: [{ key: 'dark_mode', enabled: on, rolloutPercentage: 100 }] }));
    const changed = nextEmit(flags, 'change');
    assert.equal(await flags.refresh(), 'updated');
    await changed;
  };
  return { r, stored, setDarkMode };
}

/** Lets IPC deliveries and the React updates they cause run. */
async function flushAll() {
  for (let i = 0; i < 3; i += 1) {
    await act(async () => {
      await settle();
    });
  }
}

test('useScreenTracking records a screen_view on mount and when the screen changes', async (t) => {
  const { stored } = await world(t);
  function Screen({ name }) {
    useScreenTracking(name);
    return h('p', null, name);
  }
  const view = render(h(Screen, { name: 'inbox' }));
  await flushAll();
  view.rerender(h(Screen, { name: 'inbox' })); // same screen: no second event
  await flushAll();
  view.rerender(h(Screen, { name: 'settings' }));
  await flushAll();
  assert.deepEqual(await stored(), [['screen_view', { screen_name: 'inbox' }], ['screen_view', { screen_name: 'settings' }]]);
});

test('useScreenTracking records once per screen under StrictMode too', async (t) => {
  const { stored } = await world(t);
  function Screen({ name }) {
    useScreenTracking(name);
    return h('p', null, name);
  }
  const view = render(h(React.StrictMode, null, h(Screen, { name: 'inbox' })));
  await flushAll();
  view.rerender(h(React.StrictMode, null, h(Screen, { name: 'settings' })));
  await flushAll();
  view.unmount();
  render(h(Screen, { name: 'settings' })); // a new mount is a new view
  await flushAll();
  assert.deepEqual((await stored()).map(([, p]) => p.screen_name), ['inbox', 'settings', 'settings']);
});

test('useFeatureTracking gives a stable trackUsage that records feature_used', async (t) => {
  const { stored } = await world(t);
  const seen = new Set();
  function Composer() {
    const { trackUsage } = useFeatureTracking('composer');
    seen.add(trackUsage);
    return h('button', { onClick: () => trackUsage('send', { length_bucket: 'short' }) }, 'Send');
  }
  const view = render(h(Composer));
  view.rerender(h(Composer));
  assert.equal(seen.size, 1, 'trackUsage is the same function across renders');
  await act(async () => {
    view.getByText('Send').click();
  });
  await flushAll();
  assert.deepEqual(await stored(), [
    ['feature_used', { length_bucket: 'short', feature: 'composer', action: 'send' }],
  ]);
});

test('useFeatureFlag shows the default, then the value, and re-renders when flags change', async (t) => {
  const { setDarkMode } = await world(t);
  const renders = [];
  function Gate() {
    const on = useFeatureFlag('dark_mode');
    renders.push(on);
    return h('span', { 'data-testid': 'flag' }, on ? 'dark' : 'light');
  }
  const view = render(h(Gate));
  assert.equal(view.getByTestId('flag').textContent, 'light');
  await flushAll();
  assert.equal(view.getByTestId('flag').textContent, 'light');
  await act(async () => {
    await setDarkMode(true, '2'); // main pushes railgun:flags:changed
  });
  await flushAll();
  assert.equal(view.getByTestId('flag').textContent, 'dark');
  await act(async () => {
    await setDarkMode(false, '3');
  });
  await flushAll();
  assert.equal(view.getByTestId('flag').textContent, 'light');
  assert.deepEqual([...new Set(renders)], [false, true]);
});

test('useFeatureFlag unsubscribes on unmount and keeps the default when the key is refused', async (t) => {
  const { r, setDarkMode } = await world(t);
  function Gate({ k }) {
    const on = useFeatureFlag(k, true);
    return h('span', { 'data-testid': 'flag' }, String(on));
  }
  const bad = render(h(Gate, { k: 'has space' }));
  await flushAll();
  assert.equal(bad.getByTestId('flag').textContent, 'true', 'refused key: default kept');
  bad.unmount();
  await flushAll();
  const sentBefore = r.webContents.sent.length;
  await act(async () => {
    await setDarkMode(true, '2'); // main saw the change
  });
  await flushAll();
  assert.equal(r.webContents.sent.length, sentBefore, 'no subscriber left: nothing pushed');
});
