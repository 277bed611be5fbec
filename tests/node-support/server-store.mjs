// What a real `railgun serve` stored, read straight from its SQLite database
// (`<dataDir>/analytics.db`, the default store), read-only. The HTTP read API answers counts
// only (event properties, versions and channels never leave the server), so a test that must
// know exactly which events and properties arrived reads the store itself. Python's built-in
// sqlite3 module does the reading: Node 20 has no SQLite of its own, and Python 3 is one of
// the tools the project needs anyway (README).

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { WAIT_MS } from './deadline.mjs';

const READER = `
import json, sqlite3, sys
db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)
db.row_factory = sqlite3.Row
rows = db.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()
print(json.dumps([dict(r) for r in rows]))
`;

/** Runs one read-only `sql` with `params` against the server's database; the rows as objects. */
export function queryStore(dataDir, sql, params = []) {
  const db = join(dataDir, 'analytics.db');
  let out;
  try {
    out = execFileSync('python3', ['-c', READER, db, sql, JSON.stringify(params)], { encoding: 'utf8', timeout: WAIT_MS });
  } catch (e) {
    throw new Error(`reading ${db} with python3 failed (Python 3 is required by the tests): ${e.stderr || e.message}`);
  }
  return JSON.parse(out);
}

/**
 * The analytics events the server stored for `userId`, in the order they happened:
 * `{name, category, properties (object or null), appVersion, channel, platform, arch,
 * sampleRate, sequence, duration}`.
 */
export function storedEvents(dataDir, userId) {
  const rows = queryStore(
    dataDir,
    `SELECT name, category, properties, app_version, channel, platform, arch, sample_rate, sequence, duration
       FROM events WHERE user_id = ? ORDER BY ts, sequence`,
    [userId],
  );
  return rows.map((r) => ({
    name: r.name,
    category: r.category,
    properties: r.properties === null ? null : JSON.parse(r.properties),
    appVersion: r.app_version,
    channel: r.channel,
    platform: r.platform,
    arch: r.arch,
    sampleRate: r.sample_rate,
    sequence: r.sequence,
    duration: r.duration,
  }));
}

/** `[name, properties]` of the events the server stored for `userId`, in order. */
export function storedNames(dataDir, userId) {
  return storedEvents(dataDir, userId).map((e) => [e.name, e.properties]);
}

/**
 * The health reports the server stored for `app`, oldest period first:
 * `{version, channel, sessions, errors, crashes, bootReverts}`.
 */
export function storedHealthReports(dataDir, app) {
  return queryStore(
    dataDir,
    `SELECT version, channel, sessions, errors, crashes, boot_reverts AS bootReverts
       FROM health_reports WHERE app = ? ORDER BY period_start, received`,
    [app],
  );
}

/** The sums of `storedHealthReports`: `{reports, sessions, errors, crashes}`. */
export function storedHealthTotals(dataDir, app) {
  const rs = storedHealthReports(dataDir, app);
  const sum = (k) => rs.reduce((n, r) => n + r[k], 0);
  return { reports: rs.length, sessions: sum('sessions'), errors: sum('errors'), crashes: sum('crashes') };
}
