// The .d.ts files of electron/ declare exactly what the modules export, and the typed example
// app (examples/electron-app) type-checks against them (its devDependencies:
// `cd examples/electron-app && ELECTRON_SKIP_BINARY_DOWNLOAD=1 npm ci`, as scripts/test-node.sh
// does; without them the test is skipped, and fails under RAILGUN_REQUIRE_ALL=1). The
// specification's snippets are type-checked by spec_snippets.test.mjs.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { missingDependency } from '../node-support/railgun.mjs';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('../..', import.meta.url));

function declaredValues(dts) {
  const text = readFileSync(`${root}/electron/${dts}`, 'utf8').replace(/declare global \{[\s\S]*$/, '');
  const names = new Set();
  for (const m of text.matchAll(/^export (?:declare )?(?:function|const|class) ([A-Za-z_$][\w$]*)/gm)) names.add(m[1]);
  return [...names].sort();
}

test('each .d.ts declares exactly the runtime exports of its module', () => {
  globalThis.IS_REACT_ACT_ENVIRONMENT = false;
  for (const mod of ['main', 'preload', 'renderer', 'react']) {
    const exported = Object.keys(require(`../../electron/${mod}.js`)).sort();
    assert.deepEqual(declaredValues(`${mod}.d.ts`), exported, mod);
  }
});

const example = `${root}/examples/electron-app`;
const tsc = `${example}/node_modules/typescript/bin/tsc`;

test('the example app type-checks (tsc --noEmit)', (t) => {
  if (!existsSync(tsc) && missingDependency(t, 'the example app\'s devDependencies are not installed (scripts/test-node.sh installs them)')) return;
  for (const project of ['tsconfig.json', 'tsconfig.decls.json']) {
    try {
      execFileSync(process.execPath, [tsc, '--noEmit', '-p', project], { cwd: example, encoding: 'utf8', stdio: 'pipe', timeout: 120_000 });
    } catch (e) {
      assert.fail(`tsc -p ${project}:\n${e.stdout}${e.stderr}`);
    }
  }
});

test('AnalyticsEvent in main.d.ts has the camelCase fields of src/analytics/event.rs', () => {
  const rust = readFileSync(`${root}/src/analytics/event.rs`, 'utf8');
  const body = /pub struct AnalyticsEvent \{([\s\S]*?)\n\}/.exec(rust)[1];
  const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
  const rustFields = [...body.matchAll(/pub ([a-z_]+): (Option<)?/g)].map((m) => [camel(m[1]), Boolean(m[2])]);
  const dts = readFileSync(`${root}/electron/main.d.ts`, 'utf8');
  const iface = /export interface AnalyticsEvent \{([\s\S]*?)\n\}/.exec(dts)[1];
  const tsFields = [...iface.matchAll(/^ {2}([a-zA-Z]+)(\?)?:/gm)].map((m) => [m[1], Boolean(m[2])]);
  assert.ok(rustFields.length >= 13);
  assert.deepEqual(tsFields, rustFields, 'same fields, same order, optional where Option<>');
});
