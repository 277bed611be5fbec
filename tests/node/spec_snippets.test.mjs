// The specification's TypeScript snippets as a user copies them: each file of tests/node/spec/
// named below is a code block of ../shared/spec/specification.md, verbatim. They are
// type-checked with `tsc --strict` against the package's .d.ts, then run where they run: the
// updater usage in the main process, the React component and the feature-flag calls in a page,
// the debug-mode line in a main process of its own, all over the real addon and a real
// `railgun serve`. Only the imports are mapped to the package (tests/node/spec/tsconfig.json,
// auto-updater.ts, lib/analytics.ts; app-context.d.ts declares what the snippets use without
// importing it). To run them, each snippet is transpiled to an ES module (the mapped
// specifiers rewritten the same way, plus an `export` of what the test reads back).
//
// Electron's objects are the STAND-IN of support/electron-standin.mjs; `require('electron')`
// answers with it (provideElectronModule), so the snippets need no option they do not show.
import 'global-jsdom/register';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { createElectronStandIn, provideElectronModule, settle } from './support/electron-standin.mjs';
import { WAIT_MS, within } from '../node-support/deadline.mjs';
import { APP, RELEASES, RUNNING, fixtureForFile, newUserId, openApp } from '../node-support/electron-fixture.mjs';
import { ROOT, addon, missingDependency, withEnv } from '../node-support/railgun.mjs';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

const require = createRequire(import.meta.url);
const main = require('../../electron/main.js');
const renderer = require('../../electron/renderer.js');

const SPEC_DIR = join(ROOT, 'tests', 'node', 'spec');
const SPECIFICATION = join(ROOT, '..', 'shared', 'spec', 'specification.md');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** The snippets, each a verbatim code block of the specification. */
const SNIPPETS = ['auto-updater-usage.ts', 'chat-screen.tsx', 'feature-flags.ts', 'init-analytics.ts'];

const file = fixtureForFile({
  onAfter: () => {
    main.reset();
    renderer.setElectronApi(null);
  },
});

/** Every fenced code block of a Markdown text, without the indentation of its fence. */
function codeBlocks(markdown) {
  const blocks = [];
  for (const m of markdown.matchAll(/^( *)```[\w-]*\n([\s\S]*?)^\1```/gm)) {
    const indent = m[1].length;
    blocks.push(m[2].split('\n').map((l) => (l.startsWith(' '.repeat(indent)) ? l.slice(indent) : l)).join('\n'));
  }
  return blocks;
}

/** A folder inside the package (so `@railgun/core/...` resolves to it), removed after `t`. */
function runDir(t) {
  mkdirSync(join(ROOT, 'target'), { recursive: true });
  const dir = mkdtempSync(join(ROOT, 'target', 'node-spec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The import mapping of tsconfig.json, for the transpiled modules. */
const SPECIFIERS = { './auto-updater': './auto-updater.mjs', '@/lib/analytics': './lib/analytics.mjs' };

/** The TypeScript compiler, or null (the test is then skipped, or fails under REQUIRE_ALL). */
function typescript(t) {
  if (existsSync(TSC)) return require('typescript');
  missingDependency(t, 'typescript is not installed (npm ci)');
  return null;
}

/** Transpiles `name` (and what it imports of ours) into `dir` as ES modules; the file URL. */
function transpile(ts, dir, name, append = '') {
  const emit = (from, to, extra = '') => {
    const out = ts.transpileModule(readFileSync(join(SPEC_DIR, from), 'utf8'), {
      fileName: from,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, jsx: ts.JsxEmit.ReactJSX },
    }).outputText;
    let code = out;
    for (const [spec, mapped] of Object.entries(SPECIFIERS)) code = code.replaceAll(`'${spec}'`, `'${mapped}'`).replaceAll(`"${spec}"`, `"${mapped}"`);
    mkdirSync(dirname(join(dir, to)), { recursive: true });
    writeFileSync(join(dir, to), `${code}\n${extra}\n`);
  };
  emit('auto-updater.ts', 'auto-updater.mjs');
  emit(join('lib', 'analytics.ts'), join('lib', 'analytics.mjs'));
  const target = name.replace(/\.tsx?$/, '.mjs');
  emit(name, target, append);
  return pathToFileURL(join(dir, target)).href;
}

test('each snippet is a verbatim code block of the specification', (t) => {
  if (!existsSync(SPECIFICATION) && missingDependency(t, `${SPECIFICATION} is not beside the clone`)) return;
  const blocks = codeBlocks(readFileSync(SPECIFICATION, 'utf8'));
  for (const name of SNIPPETS) {
    const text = readFileSync(join(SPEC_DIR, name), 'utf8');
    assert.ok(text.length > 40, `${name} is too short to be a snippet`);
    assert.ok(blocks.includes(text), `${name} is not a verbatim code block of the specification`);
  }
});

test('the snippets type-check with tsc --strict against the package .d.ts', (t) => {
  if (!existsSync(TSC) && missingDependency(t, 'typescript is not installed (npm ci)')) return;
  const r = spawnSync(process.execPath, [TSC, '--strict', '-p', join(SPEC_DIR, 'tsconfig.json')], {
    cwd: SPEC_DIR, encoding: 'utf8', timeout: WAIT_MS * 2,
  });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, `tsc --strict:\n${r.stdout}${r.stderr}`);
});

test('the updater usage runs as written in the main process: checks, downloads and installs the stable release', async (t) => {
  const { fx } = file;
  main.reset();
  const userData = fx.userData(t);
  const electron = createElectronStandIn({ name: APP, version: RUNNING, userData });
  t.after(provideElectronModule({ app: electron.app, ipcMain: electron.ipcMain }));
  t.after(async () => {
    await main.shutdown();
    main.reset();
  });
  const ts = typescript(t);
  if (!ts) return;
  const url = transpile(ts, runDir(t), 'auto-updater-usage.ts');
  // Configured as the specification's §5 says: RAILGUN_UPDATE_URL and RAILGUN_UPDATE_PUBLIC_KEY.
  const errors = [];
  const error = console.error;
  t.after(() => {
    console.error = error;
  });
  console.error = (...a) => errors.push(a.join(' '));
  await withEnv(
    { RAILGUN_UPDATE_URL: fx.updatesUrl, RAILGUN_UPDATE_PUBLIC_KEY: fx.publicKeyBase64, RAILGUN_UPDATE_CHANNEL: undefined },
    () => within(import(url), 'the updater usage to run to its end'),
  );
  const installed = join(userData, 'railgun', 'install', 'current', 'VERSION');
  assert.equal(readFileSync(installed, 'utf8'), `${APP} ${RELEASES.stable}\n`, 'installed under <userData>/railgun/install');
  assert.deepEqual(errors, [], 'no updater error along the way');
});

/** A page over the real addon (analytics, with `flags` feature flags); its `window.electronAPI`. */
async function page(t, flags = false) {
  const app = await openApp(t, file.fx, { flags });
  window.electronAPI = app.api;
  renderer.setElectronApi(null);
  return app;
}

test("the React component renders as written: its screen_view reaches the server", async (t) => {
  const ts = typescript(t);
  if (!ts) return;
  const { render, act, cleanup } = require('@testing-library/react');
  const React = require('react');
  const { analytics, userId } = await page(t);
  // What the snippet uses without importing it (app-context.d.ts): the package's getAnalytics.
  globalThis.getAnalytics = renderer.getAnalytics;
  t.after(() => {
    cleanup();
    delete globalThis.getAnalytics;
  });
  const { ChatScreen } = await import(transpile(ts, runDir(t), 'chat-screen.tsx', 'export { ChatScreen };'));
  const view = render(React.createElement(ChatScreen));
  assert.equal(view.container.innerHTML, '<div>...</div>');
  await act(async () => {
    await settle();
  });
  await analytics.flush();
  assert.deepEqual(file.fx.names(userId), [['session_start', null], ['screen_view', { screen_name: 'chat' }]]);
});

test("the feature-flag calls run as written in a page, against the specification's config document", async (t) => {
  const ts = typescript(t);
  if (!ts) return;
  const { fx } = file;
  const doc = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'spec', 'remote-config.json'), 'utf8'));
  const config = fx.newConfig(doc);
  // voice_messages: 50 % from 0.2.0 on; this user is inside the 50 %.
  let userId;
  do userId = newUserId('flags'); while (addon.bucket('flag:voice_messages', userId) >= 5000);
  await page(t, { url: config.url, userId, appVersion: '0.2.0' });
  const values = await import(transpile(ts, runDir(t), 'feature-flags.ts',
    'export { isEnabled, flags, announcements, maintenance, active, message };'));
  assert.equal(values.isEnabled, true);
  assert.deepEqual(values.flags, { voice_messages: true, reactions: false });
  assert.deepEqual(values.announcements.map((a) => [a.id, a.type, a.title, a.dismissible, a.showOnce]),
    [['maintenance-2024-12-28', 'warning', 'Scheduled Maintenance', true, true]]);
  assert.deepEqual(values.maintenance, {
    active: false,
    message: "We're performing maintenance",
    allowReadOnly: true,
    startTime: '2024-12-28T02:00:00+00:00',
    endTime: '2024-12-28T04:00:00+00:00',
  });
  assert.deepEqual({ active: values.active, message: values.message }, { active: false, message: null });
});

test('the debug-mode line runs as written in a main process: its events reach the server, each logged', { timeout: 60_000 }, (t) => {
  const ts = typescript(t);
  if (!ts) return;
  const { fx } = file;
  const dir = runDir(t);
  const snippet = transpile(ts, dir, 'init-analytics.ts');
  const userData = fx.userData(t);
  const child = join(dir, 'main-process.mjs');
  // The app around the snippet: Electron's app (stand-in), the package's initAnalytics, and a
  // page whose user grants consent, opens `home` and sends a message.
  writeFileSync(child, `
    import { createRequire } from 'node:module';
    const { createElectronStandIn, provideElectronModule } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'tests/node/support/electron-standin.mjs')).href)});
    const require = createRequire(${JSON.stringify(join(ROOT, 'package.json'))});
    const electron = createElectronStandIn({ name: ${JSON.stringify(APP)}, version: ${JSON.stringify(RUNNING)}, userData: ${JSON.stringify(userData)} });
    provideElectronModule({ app: electron.app, ipcMain: electron.ipcMain });
    const main = require('./electron/main.js');
    globalThis.initAnalytics = main.initAnalytics;
    await import(${JSON.stringify(snippet)});
    main.registerIpcHandlers(electron.ipcMain);
    const page = electron.createRenderer();
    require('./electron/preload.js').exposeRailgunApi(page.contextBridge, page.ipcRenderer);
    const api = page.window.electronAPI;
    await api.analytics.setConsent('granted');
    await api.analytics.screen('home');
    await api.analytics.track('message_sent', { conversation_type: 'direct' });
    await main.shutdown();
    process.stdout.write(require('./index.js').installId(${JSON.stringify(APP)}, ${JSON.stringify(join(userData, 'railgun'))}));
  `);
  const r = spawnSync(process.execPath, [child], {
    encoding: 'utf8',
    timeout: WAIT_MS,
    env: { ...process.env, RAILGUN_ANALYTICS_URL: fx.url },
  });
  assert.equal(r.status, 0, `${r.error ?? ''}${r.stderr}`);
  const userId = r.stdout.trim();
  const stored = fx.names(userId).filter(([n]) => n !== 'session_end');
  assert.deepEqual(stored, [
    ['session_start', null],
    ['screen_view', { screen_name: 'home' }],
    ['message_sent', { conversation_type: 'direct' }],
  ]);
  const logged = r.stderr.split('\n').filter((l) => l.startsWith('[Analytics] '));
  assert.deepEqual(logged.slice(0, 3).map((l) => l.split(' ')[1]), ['session_start', 'screen_view', 'message_sent'], r.stderr);
});
