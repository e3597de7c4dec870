// sessions.test.mjs - browser sessions outlive nothing they were made from
// (issue 12, defect 4): a cookie made in header mode dies when the service
// switches to token mode, a cookie made from a token dies when the token is
// replaced (`tessera user add`) or revoked (`tessera user revoke`), and a
// session secret shorter than 32 bytes is refused before the port is bound.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startServer, assertError, runCli, freePort, sleep, BIN } from './harness.mjs';

/** The tessera_session cookie of a POST /api/session answer, as "name=value". */
function sessionCookie(res) {
  assert.equal(res.status, 200, `sign-in: ${res.status} ${res.text}`);
  const raw = [].concat(res.headers['set-cookie'] || []);
  const c = raw.map((h) => h.split(';')[0]).find((h) => h.startsWith('tessera_session='));
  assert.ok(c && c.length > 'tessera_session='.length, `a session cookie: ${raw}`);
  return c;
}

const signIn = async (server, body) => sessionCookie(await server.api(null, 'POST', '/api/session', body));

/** `tessera user ACTION NAME` on the server's state dir: {status, stdout, stderr}. */
function user(server, action, name) {
  return runCli(['user', action, name], { env: { TESSERA_STATE_DIR: server.stateDir }, cwd: server.tmpDir });
}

function addUser(server, name) {
  const r = user(server, 'add', name);
  assert.equal(r.status, 0, `user add ${name}: ${r.stderr}`);
  return r.stdout.trim();
}

describe('session cookies are bound to the credential they came from', () => {
  test('a header-mode cookie is refused once the service runs in token mode', { timeout: 120000 }, async () => {
    const server = await startServer({ workers: 1 });
    try {
      const c = await signIn(server, { user: 'mallory' }); // a name never registered
      assert.equal((await server.api({ cookie: c }, 'GET', '/api/workflows')).status, 200);
      await server.restart({ auth: 'token' });
      const res = await server.api({ cookie: c }, 'GET', '/api/workflows');
      const err = assertError(res, 401, 'header-mode cookie in token mode');
      assert.match(err.message, /header mode/);
      const me = await server.api({ cookie: c }, 'GET', '/api/session');
      assert.equal(me.status, 200);
      assert.equal(me.json.user, null, 'the session page sees nobody signed in');
    } finally {
      await server.cleanup();
    }
  });

  test('a token cookie dies with its token: replaced by user add, or revoked', { timeout: 120000 }, async () => {
    const server = await startServer({ workers: 2, auth: 'token' });
    try {
      const t1 = addUser(server, 'alice');
      const c1 = await signIn(server, { token: t1 });
      assert.equal((await server.api({ cookie: c1 }, 'GET', '/api/workflows')).status, 200);
      const t2 = addUser(server, 'alice'); // rotation
      for (let i = 0; i < 2; i++) { // both workers
        const err = assertError(await server.api({ cookie: c1 }, 'GET', '/api/workflows'), 401, 'cookie of a replaced token');
        assert.match(err.message, /revoked or replaced/);
      }
      assertError(await server.api({ token: t1 }, 'GET', '/api/workflows'), 401, 'the replaced token');
      const c2 = await signIn(server, { token: t2.toUpperCase() });
      assert.equal((await server.api({ cookie: c2 }, 'GET', '/api/workflows')).status, 200);
      const r = user(server, 'revoke', 'alice');
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /every session/);
      assertError(await server.api({ cookie: c2 }, 'GET', '/api/workflows'), 401, 'cookie of a revoked token');
      assertError(await server.api({ token: t2 }, 'GET', '/api/workflows'), 401, 'the revoked token');
      const bob = addUser(server, 'bob'); // others are untouched
      assert.equal((await server.api({ token: bob }, 'GET', '/api/workflows')).status, 200);
      const t3 = addUser(server, 'alice'); // and alice may come back
      assert.equal((await server.api({ token: t3 }, 'GET', '/api/workflows')).status, 200);
    } finally {
      await server.cleanup();
    }
  });

  test('tessera user revoke: an unknown name fails, --help documents it', { timeout: 60000 }, async () => {
    const server = await startServer({ workers: 1, auth: 'token' });
    try {
      const r = user(server, 'revoke', 'nobody');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /no user "nobody"/);
      const help = runCli(['user', '--help']);
      assert.equal(help.status, 0);
      assert.match(help.stdout, /tessera user revoke NAME/);
    } finally {
      await server.cleanup();
    }
  });
});

/** Holds host:port with a listener of our own for the duration of fn, so
 *  that a serve which tried to bind first would say "address in use". */
async function holdingPort(host, fn) {
  const srv = net.createServer();
  await new Promise((resolve, reject) => { srv.once('error', reject); srv.listen(0, host, resolve); });
  try {
    return await fn(srv.address().port);
  } finally {
    await new Promise((resolve) => srv.close(resolve));
  }
}

/** Runs `tessera serve ARGS` with env in a fresh directory until it exits
 *  (or 15 s): {code, out}. */
async function serveOnce(args, extraEnv) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-secret-'));
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TESSERA_')) env[k] = v;
  Object.assign(env, extraEnv);
  const p = spawn(BIN, ['serve', ...args, '--state-dir', path.join(tmp, 'state'), '--workers', '1',
    '--log', path.join(tmp, 'log')], { cwd: tmp, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
  try {
    const code = await Promise.race([exited, sleep(15000).then(() => 'running')]);
    return { code, out };
  } finally {
    try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

describe('the session secret', () => {
  for (const [what, secret] of [['one byte', 'a'], ['31 bytes', 'x'.repeat(31)]]) {
    test(`TESSERA_SESSION_SECRET of ${what} is refused, before the port is bound`, { timeout: 60000 }, async () => {
      const { code, out } = await holdingPort('127.0.0.1', (port) =>
        serveOnce(['--listen', `127.0.0.1:${port}`], { TESSERA_SESSION_SECRET: secret }));
      assert.notEqual(code, 'running', `serve must refuse the secret; it kept running: ${out}`);
      assert.notEqual(code, 0);
      assert.match(out, /TESSERA_SESSION_SECRET is \d+ bytes long; it must be at least 32/);
      assert.doesNotMatch(out, /cannot listen|in use/i, 'checked before binding');
      assert.ok(!out.includes(`: ${secret}`), 'the secret is not echoed');
    });
  }

  test('a secret of 32 bytes starts', { timeout: 60000 }, async () => {
    const server = await startServer({ workers: 1, env: { TESSERA_SESSION_SECRET: 's'.repeat(32) } });
    try {
      assert.ok((await signIn(server, { user: 'ok' })).startsWith('tessera_session=v2.h.'));
    } finally {
      await server.cleanup();
    }
  });
});
