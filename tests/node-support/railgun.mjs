// Test support for the addon tests: the real `railgun` binary (keygen, release sign/publish,
// serve), temporary folders, and DSSE re-signing of published documents for the hostile
// cases. Kept outside tests/node/ because `node --test DIR` runs every file in DIR.

import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { WAIT_MS, within } from './deadline.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const addon = createRequire(import.meta.url)(join(ROOT, 'index.js'));

/** The `railgun` binary: $RAILGUN_BIN, else `<target>/debug/railgun` (cargo build -p railgun-server). */
export function railgunBin() {
  if (process.env.RAILGUN_BIN) return process.env.RAILGUN_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(ROOT, 'target');
  return join(target, 'debug', process.platform === 'win32' ? 'railgun.exe' : 'railgun');
}

export function railgun(...args) {
  return execFileSync(railgunBin(), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: WAIT_MS });
}

/** A temporary folder removed by `t.after`. */
export function tempDir(t, prefix = 'railgun-node-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Generates a signing key pair; returns its paths and the public key PEM. */
export function keygen(dir, name = 'release') {
  railgun('keygen', '--out', dir, '--name', name);
  return {
    key: join(dir, `${name}.key`),
    pub: join(dir, `${name}.pub`),
    pem: readFileSync(join(dir, `${name}.pub`), 'utf8'),
  };
}

/** Writes `<app>-<version>-linux-x64.tar.gz` holding VERSION into `dir/build-<version>`. */
export function buildTarball(work, app, version) {
  const build = join(work, `build-${version}`);
  const pkg = join(build, 'pkg');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'VERSION'), `${app} ${version}\n`);
  execFileSync('tar', ['-czf', join(build, `${app}-${version}-linux-x64.tar.gz`), '-C', pkg, '.']);
  rmSync(pkg, { recursive: true });
  return build;
}

/**
 * Signs the artifacts in `build` into `build/manifest.json` (with delta patches from the
 * release in the folder `deltaFrom`, when given) and publishes them into `tree`.
 */
export function signAndPublish({ keys, tree, app, version, build, channel = 'stable', percentage = 100, expires, deltaFrom }) {
  const manifest = join(build, 'manifest.json');
  railgun('release', 'sign', '--key', keys.key, '--app', app, '--version', version, '--channel', channel,
    '--artifacts', build, '--out', manifest, ...(deltaFrom ? ['--delta-from', deltaFrom] : []));
  const args = ['release', 'publish', '--root', tree, '--manifest', manifest, '--key', keys.key,
    '--percentage', String(percentage)];
  if (expires) args.push('--expires', expires);
  railgun(...args);
  return manifest;
}

/**
 * Starts `railgun serve` on a free loopback port (plus `args`) and resolves once it printed its
 * URL (waits on the output, not on a timer; fails after a deadline). `stop()` ends that
 * process only.
 */
export function startServer(t, { root, dataDir, env = {}, args = [] }) {
  return within(new Promise((resolveUrl, reject) => {
    const child = spawn(railgunBin(), ['serve', '--root', root, '--data-dir', dataDir, '--addr', '127.0.0.1:0', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const onData = (chunk) => {
      out += chunk;
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+/);
      if (m) {
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolveUrl({ url: m[0], stop: () => child.kill() });
      }
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c) => { out += c; });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`railgun serve exited (${code}): ${out}`)));
    t.after(() => child.kill());
  }), 'railgun serve to print its URL');
}

// --- DSSE, for forging documents in hostile tests -------------------------------------------

/** The raw 32-byte Ed25519 seed of a key written by `railgun keygen` (PKCS#8 v2, which
 * OpenSSL does not read), wrapped as PKCS#8 v1 for node:crypto. */
export function nodePrivateKey(keyPath) {
  const pem = readFileSync(keyPath, 'utf8');
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const at = der.indexOf(Buffer.from([0x04, 0x22, 0x04, 0x20]));
  if (at < 0) throw new Error('not an Ed25519 PKCS#8 key');
  const seed = der.subarray(at + 4, at + 36);
  const v1 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return createPrivateKey({ key: v1, format: 'der', type: 'pkcs8' });
}

function pae(type, payload) {
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `),
    payload,
  ]);
}

/** Decodes a DSSE envelope file: `{ envelope, payloadType, payload (object) }`. */
export function readEnvelope(path) {
  const envelope = JSON.parse(readFileSync(path, 'utf8'));
  return {
    envelope,
    payloadType: envelope.payloadType,
    payload: JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')),
  };
}

/** Writes `payload` (an object) as a DSSE envelope of `payloadType` signed with `keyPath`. */
export function writeEnvelope(path, payloadType, payload, keyPath) {
  const body = Buffer.from(JSON.stringify(payload));
  const sig = sign(null, pae(payloadType, body), nodePrivateKey(keyPath));
  writeFileSync(path, JSON.stringify({
    payloadType,
    payload: body.toString('base64'),
    signatures: [{ keyid: '', sig: sig.toString('base64') }],
  }));
}

export function sha256Hex(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

/** The channel state path of `app`/`channel` in a published tree. */
export function channelPath(tree, app, channel = 'stable') {
  return join(tree, app, channel, 'channel.json');
}

/** The published artifact files of `app` `version` in `tree`. */
export function publishedArtifacts(tree, app, version) {
  const dir = join(tree, app, 'releases', version);
  return readdirSync(dir).filter((f) => f !== 'manifest.json').map((f) => join(dir, f));
}

/** GET `url` with the read token; resolves the JSON body. */
export async function getJson(url, token) {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

/** Rejects unless `promise` rejects with an Error whose `code` is `code`; returns the error. */
export async function rejectsWithCode(promise, code) {
  try {
    await promise;
  } catch (e) {
    if (!(e instanceof Error)) throw new Error(`rejected with a non-Error: ${e}`);
    if (e.code !== code) throw new Error(`expected code ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  throw new Error(`expected a rejection with ${code}, but it resolved`);
}

/** `RAILGUN_REQUIRE_ALL=1` (set by CI): a missing dependency fails the test instead of skipping it. */
export const REQUIRE_ALL = process.env.RAILGUN_REQUIRE_ALL === '1';

/**
 * A test that cannot run because `missing` is not there: skipped on a developer's partial run,
 * a failure under `RAILGUN_REQUIRE_ALL=1`. Returns true when the caller must stop.
 */
export function missingDependency(t, missing) {
  if (REQUIRE_ALL) throw new Error(`${missing} (RAILGUN_REQUIRE_ALL=1: every dependency must be there)`);
  t.skip(missing);
  return true;
}

/** Runs `fn` with `vars` in process.env (`undefined` removes one), then restores it; its result. */
export async function withEnv(vars, fn) {
  const saved = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** A loopback server that accepts every connection and drops it at once: `ERR_NETWORK`. */
export async function droppingServer(scope) {
  const server = createServer();
  server.on('connection', (socket) => socket.destroy());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  scope.after(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}
