// electron/react.js in a DOM (jsdom via global-jsdom) with React 18 and Testing Library, over
// the whole bridge: the page's window.electronAPI comes from the preload through the Electron
// stand-in, main.js answers, the addon is the scripted stand-in.
import 'global-jsdom/register';
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createElectronStandIn, settle } from './support/electron-standin.mjs';
import { createFakeAddon, fakeElectronApp } from './support/electron-fake-addon.mjs';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

const require = createRequire(import.meta.url);
const React = require('react');
const { render, act, cleanup } = require('@testing-library/react');
const main = require('../../electron/main.js');
const { exposeRailgunApi } = require('../../electron/preload.js');
const renderer = require('../../electron/renderer.js');
const { useScreenTracking, useFeatureTracking, useFeatureFlag } = require('../../electron/react.js');

const h = React.createElement;

function world() {
  cleanup();
  main.reset();
  renderer.setElectronApi(null);
  const addon = createFakeAddon();
  const electronApp = fakeElectronApp();
  const electron = createElectronStandIn();
  main.initAnalytics({ addon, electronApp, url: 'http://127.0.0.1:9', consent: 'granted' });
  main.initFeatureFlags({ addon, electronApp, url: 'http://127.0.0.1:9/config.json' });
  main.registerIpcHandlers(electron.ipcMain);
  const r = electron.createRenderer();
  exposeRailgunApi(r.contextBridge, r.ipcRenderer);
  // The page's window (jsdom's) gets what contextBridge exposed.
  window.electronAPI = r.window.electronAPI;
  return { addon, electron, r };
}

/** Lets IPC deliveries and the React updates they cause run. */
async function flushAll() {
  for (let i = 0; i < 3; i += 1) {
    await act(async () => {
      await settle();
    });
  }
}

test('useScreenTracking records a screen_view on mount and when the screen changes', async () => {
  const { addon } = world();
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
  assert.deepEqual(
    addon.made.analytics[0].events.map((e) => e.properties.screen_name),
    ['inbox', 'settings'],
  );
});

test('useScreenTracking records once per screen under StrictMode too', async () => {
  const { addon } = world();
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
  assert.deepEqual(
    addon.made.analytics[0].events.map((e) => e.properties.screen_name),
    ['inbox', 'settings', 'settings'],
  );
});

test('useFeatureTracking gives a stable trackUsage that records feature_used', async () => {
  const { addon } = world();
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
  assert.deepEqual(addon.made.analytics[0].events, [
    { name: 'feature_used', properties: { length_bucket: 'short', feature: 'composer', action: 'send' } },
  ]);
});

test('useFeatureFlag shows the default, then the value, and re-renders when flags change', async () => {
  const { addon } = world();
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
    addon.made.flags[0].set({ dark_mode: true }); // main pushes railgun:flags:changed
  });
  await flushAll();
  assert.equal(view.getByTestId('flag').textContent, 'dark');
  await act(async () => {
    addon.made.flags[0].set({ dark_mode: false });
  });
  await flushAll();
  assert.equal(view.getByTestId('flag').textContent, 'light');
  assert.deepEqual([...new Set(renders)], [false, true]);
});

test('useFeatureFlag unsubscribes on unmount and keeps the default when the key is refused', async () => {
  const { addon, r } = world();
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
    addon.made.flags[0].set({ dark_mode: true });
  });
  await flushAll();
  assert.equal(r.webContents.sent.length, sentBefore, 'no subscriber left: nothing pushed');
});
