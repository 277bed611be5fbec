#!/usr/bin/env node
// Regenerates index.js and index.d.ts with @napi-rs/cli into a temporary folder and fails
// when they differ from the committed ones (run in CI, and by scripts/test-node.sh).
// Usage: node scripts/check-bindings.mjs [--release]

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = mkdtempSync(join(tmpdir(), 'railgun-bindings-'));
try {
  const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
  execFileSync(process.execPath, [napi, 'build', '--platform',
    ...(process.argv.includes('--release') ? ['--release'] : []),
    '--manifest-path', 'bindings/node/Cargo.toml', '--package-json-path', 'package.json',
    '--output-dir', out, '--js', 'index.js', '--dts', 'index.d.ts'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  let stale = [];
  for (const f of ['index.js', 'index.d.ts']) {
    if (readFileSync(join(out, f), 'utf8') !== readFileSync(join(root, f), 'utf8')) stale.push(f);
  }
  if (stale.length) {
    console.error(`${stale.join(' and ')} differ from what @napi-rs/cli generates: run \`npm run build\` and commit them.`);
    for (const f of stale) {
      try {
        execFileSync('diff', ['-u', join(root, f), join(out, f)], { stdio: 'inherit' });
      } catch { /* diff exits 1 on differences */ }
    }
    process.exitCode = 1;
  } else {
    console.log('index.js and index.d.ts are up to date');
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
