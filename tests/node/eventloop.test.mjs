// A 200 MiB download through the addon never blocks Node's event loop: a 5 ms interval keeps
// ticking the whole time, and progress events arrive on the JS thread while it runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';

import { addon, keygen, signAndPublish, startServer, tempDir } from '../node-support/railgun.mjs';

const APP = 'big-app';
const SIZE = 200 * 1024 * 1024;

/** Writes SIZE random bytes in 8 MiB chunks (incompressible, generated here, never in git). */
function writeRandom(path) {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(8 * 1024 * 1024);
  for (let done = 0; done < SIZE; done += chunk.length) {
    randomFillSync(chunk);
    writeSync(fd, chunk, 0, Math.min(chunk.length, SIZE - done));
  }
  closeSync(fd);
}

test('the event loop keeps running during a 200 MiB download', { timeout: 600_000 }, async (t) => {
  const work = tempDir(t);
  const keys = keygen(join(work, 'keys'));
  const build = join(work, 'build');
  mkdirSync(build);
  // Only the bytes matter here: the download verifies size and SHA-256; nothing is installed.
  writeRandom(join(build, `${APP}-3.0.0-linux-x64.tar.gz`));
  const tree = join(work, 'tree');
  signAndPublish({ keys, tree, app: APP, version: '3.0.0', build });
  const server = await startServer(t, { root: tree, dataDir: join(work, 'data') });

  const u = new addon.Updater({
    url: `${server.url}/updates`, app: APP, channel: 'stable', publicKeys: [keys.pem],
    currentVersion: '2.0.0', installRoot: join(work, 'install'), stateDir: join(work, 'state'),
    installId: 'big-install', platform: 'linux', arch: 'x64',
  });
  let progressEvents = 0;
  let lastPercent = 0;
  u.onEvent((name, p) => {
    if (name === 'download-progress') {
      progressEvents += 1;
      lastPercent = p.percent;
    }
  });
  const info = await u.checkForUpdates();
  assert.equal(info.files[0].size, SIZE);

  let ticks = 0;
  let maxGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks += 1;
  }, 5);
  const started = performance.now();
  const d = await u.downloadUpdate();
  const elapsed = performance.now() - started;
  clearInterval(timer);

  assert.equal(d.size, SIZE);
  assert.equal(d.sha256, info.files[0].sha256);
  t.diagnostic(`download ${elapsed.toFixed(0)} ms, ${ticks} ticks, max gap ${maxGap.toFixed(1)} ms, ${progressEvents} progress events`);
  // A blocked loop would tick about once; a free one about elapsed/5 times (timers are
  // coarse under load, so ask for a fifth of that, and at least 20).
  assert.ok(ticks >= Math.max(20, elapsed / 5 / 5), `only ${ticks} ticks in ${elapsed.toFixed(0)} ms`);
  assert.ok(maxGap < 1000, `the loop stalled for ${maxGap.toFixed(0)} ms`);
  assert.ok(progressEvents >= 2, `${progressEvents} progress events`);
  assert.ok(lastPercent > 0);
});
