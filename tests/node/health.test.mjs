// Health through the addon: counts reach `POST /analytics/health` as one report per period;
// a process that exits without `shutdown()` is counted as a crash by the next start.
//
// The receiving end here is a small loopback receiver that records each request body, so the
// tests can check the exact wire format and the report ids across retries; the real server's
// `POST /analytics/health` is exercised by electron_health.test.mjs and the Rust suites.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';

import { ROOT, addon, tempDir } from '../node-support/railgun.mjs';
import { WAIT_MS, condition } from '../node-support/deadline.mjs';

const APP = 'health-app';

/** A loopback `POST /analytics/health` that records each report (deduplicated by id). */
async function healthServer(t) {
  const reports = new Map();
  const arrival = condition((pred) => pred([...reports.values()]) && [...reports.values()]);
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/analytics/health') {
        res.writeHead(404).end();
        return;
      }
      const r = JSON.parse(body);
      const duplicate = reports.has(r.id);
      reports.set(r.id, r);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ accepted: !duplicate, duplicate }));
      arrival.check();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    reports,
    /** The reports once `pred(reports)` holds; fails after a deadline. */
    waitFor: (pred) => arrival.until(`health reports matching ${pred}`, pred),
  };
}

function total(reports, field, version) {
  return reports.filter((r) => !version || r.version === version).reduce((n, r) => n + r[field], 0);
}

test('health: errors and crashes reach the server as a well-formed report', async (t) => {
  const server = await healthServer(t);
  const state = tempDir(t);
  const h = new addon.Health({
    url: server.url, app: APP, version: '1.2.0', channel: 'stable', stateDir: state, consent: 'granted',
  });
  assert.deepEqual(h.startup(), { recorded: true });
  h.recordError();
  h.recordError();
  h.recordCrash();
  const r = await h.flush();
  assert.equal(r.pending, 0);
  const reports = await server.waitFor((rs) => total(rs, 'errors') === 2);
  assert.equal(total(reports, 'crashes'), 1);
  assert.equal(total(reports, 'sessions'), 1);
  for (const rep of reports) {
    assert.equal(rep.app, APP);
    assert.equal(rep.version, '1.2.0');
    assert.equal(rep.channel, 'stable');
    assert.match(rep.machineId, /^[0-9a-f]{64}$/, 'a hashed install id, never the raw one');
    assert.match(rep.id, /^[0-9a-f-]{36}$/);
    assert.ok(Date.parse(rep.periodStart) <= Date.parse(rep.periodEnd));
  }
  await h.shutdown();
  await h.shutdown(); // later calls do nothing
});

test('health: nothing is recorded or sent without consent', async (t) => {
  const server = await healthServer(t);
  const state = tempDir(t);
  const h = new addon.Health({ url: server.url, app: APP, version: '1.2.0', channel: 'stable', stateDir: state });
  assert.equal(h.startup().recorded, false);
  h.recordError();
  h.recordCrash();
  await h.flush();
  await h.shutdown();
  assert.equal(server.reports.size, 0);
});

test('health: a process that exits without shutdown() is counted as a crash by the next start', async (t) => {
  const server = await healthServer(t);
  const state = tempDir(t);
  // A real process that starts health for 1.0.0 and exits without a clean shutdown.
  execFileSync(process.execPath, ['-e', `
    const { Health } = require(${JSON.stringify(join(ROOT, 'index.js'))});
    new Health({ url: 'http://127.0.0.1:1', app: ${JSON.stringify(APP)}, version: '1.0.0', channel: 'stable',
      stateDir: ${JSON.stringify(state)}, consent: 'granted' });
    process.exit(0);
  `], { stdio: 'inherit', timeout: WAIT_MS });

  const h = new addon.Health({ url: server.url, app: APP, version: '1.1.0', channel: 'stable', stateDir: state, consent: 'granted' });
  assert.equal(h.startup().uncleanShutdown, '1.0.0');
  await h.flush();
  const reports = await server.waitFor((rs) => total(rs, 'crashes', '1.0.0') === 1);
  assert.equal(total(reports, 'crashes', '1.1.0'), 0);
  await h.shutdown();

  // After a clean shutdown the next start counts nothing.
  const again = new addon.Health({ url: server.url, app: APP, version: '1.1.0', channel: 'stable', stateDir: state, consent: 'granted' });
  assert.equal(again.startup().uncleanShutdown, undefined);
  await again.shutdown();
});

test('health: bad options throw ERR_INVALID_ARGUMENT', (t) => {
  const state = tempDir(t);
  const base = { url: 'http://127.0.0.1:1', app: APP, version: '1.0.0', channel: 'stable', stateDir: state };
  for (const bad of [{ version: 'one' }, { app: 'bad app!' }, { url: 'not a url' }, { consent: 'yes' },
    { reportIntervalMs: 5 }, { extra: 1 }]) {
    assert.throws(() => new addon.Health({ ...base, ...bad }), (e) => e.code === 'ERR_INVALID_ARGUMENT', JSON.stringify(bad));
  }
});
