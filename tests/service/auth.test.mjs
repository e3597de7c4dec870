// auth.test.mjs - tenant identity (DESIGN §3, §4): the signed session cookie
// works on every worker and across restarts, forgeries get 401, invalid or
// missing identities get 401, token mode, and header mode refused off
// loopback.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, submit, wfId, listAll, assertError, workflow, noop, runCli, freePort, BIN, sleep,
  healthy, httpRequest,
} from './harness.mjs';

let server;
let cookieValue = null; // "tessera_session=<value>"
let aliceWf = null;

before(async () => {
  server = await startServer({ workers: 4, concurrencyLimit: 4, maxActiveUsers: 3 });
}, { timeout: 30000 });

after(async () => {
  if (server) await server.cleanup();
}, { timeout: 30000 });

function setCookies(res) {
  const h = res.headers['set-cookie'];
  return Array.isArray(h) ? h : h ? [h] : [];
}

function sessionCookie(res) {
  return setCookies(res).find((c) => /^tessera_session=/.test(c));
}

/** A copy of value with one character of its tail changed. */
function flipLast(value) {
  const last = value[value.length - 1];
  const repl = last === 'a' ? 'b' : 'a';
  return value.slice(0, -1) + repl;
}

async function signIn(user) {
  const r = await server.api(null, 'POST', '/api/session', { user });
  assert.ok(r.status === 200 || r.status === 201, `POST /api/session: ${r.status} ${r.text}`);
  const c = sessionCookie(r);
  assert.ok(c, `Set-Cookie tessera_session=... in ${JSON.stringify(r.headers['set-cookie'])}`);
  return c;
}

describe('session cookie', () => {
  test('POST /api/session in header mode issues a signed HttpOnly SameSite=Strict cookie', { timeout: 90000 }, async () => {
    const c = await signIn('alice');
    const [pair, ...attrs] = c.split(';').map((s) => s.trim());
    assert.match(pair, /^tessera_session=.+/, 'a non-empty value');
    assert.ok(attrs.some((a) => /^httponly$/i.test(a)), `HttpOnly: ${c}`);
    assert.ok(attrs.some((a) => /^samesite=strict$/i.test(a)), `SameSite=Strict: ${c}`);
    assert.ok(!pair.endsWith('=alice'), 'the value is signed, not the bare user name');
    cookieValue = pair;
  });

  test('the cookie alone is accepted by every worker (new connection per request)', { timeout: 90000 }, async () => {
    assert.ok(cookieValue, 'a cookie from the previous test');
    const who = { cookie: cookieValue };
    aliceWf = wfId(await submit(server, who, workflow('by-cookie', [noop('a')])));
    const fails = [];
    for (let i = 0; i < 80; i++) {
      const p = i % 4 === 0 ? '/api/queue' : i % 4 === 1 ? `/api/workflows/${aliceWf}` : '/api/workflows';
      const r = await server.api(who, 'GET', p);
      if (r.status !== 200) fails.push(`${p}: ${r.status} ${r.text.slice(0, 100)}`);
    }
    assert.deepEqual(fails, [], 'every request with the cookie succeeds');
    // The workflow is alice's: visible as alice, invisible to bob.
    assert.equal((await server.api('alice', 'GET', `/api/workflows/${aliceWf}`)).status, 200);
    assertError(await server.api('bob', 'GET', `/api/workflows/${aliceWf}`), 404, 'bob reading alice\'s workflow');
    // The WebSocket accepts the cookie too.
    const ws = await server.ws(who, { since: 0 });
    try {
      await ws.waitFor((evs) => evs.some((e) => String(e.workflow_id) === String(aliceWf)), 10000, 'alice\'s events');
    } finally {
      ws.close();
    }
  });

  test('a tampered or forged cookie gets 401 and changes nothing', { timeout: 90000 }, async () => {
    assert.ok(cookieValue);
    const value = cookieValue.slice('tessera_session='.length);
    const forgeries = {
      'last character changed': flipLast(value),
      'user name replaced': value.includes('alice') ? value.replace('alice', 'mallo') : `x${value}`,
      'user name replaced, same length': value.includes('alice') ? value.replace('alice', 'bobby') : value.slice(1),
      'truncated': value.slice(0, Math.max(1, value.length - 8)),
      'extended': `${value}00`,
      'garbage': 'not-a-session',
      'unsigned': 'v1.alice.99999999999',
    };
    const before = (await listAll(server, 'alice')).length;
    for (const [what, v] of Object.entries(forgeries)) {
      if (v === value) continue;
      const who = { cookie: `tessera_session=${v}` };
      assertError(await server.api(who, 'GET', '/api/workflows'), 401, `cookie ${what}`);
      assertError(await server.api(who, 'POST', '/api/workflows', workflow('forged', [noop('a')])), 401, `POST with cookie ${what}`);
      const c = server.wsClient(who, { since: 0 });
      await assert.rejects(c.opened, `WebSocket with cookie ${what} is refused`);
      assert.equal(c.rejected?.status, 401, `WebSocket with cookie ${what}: ${JSON.stringify(c.rejected)}`);
    }
    assert.equal((await listAll(server, 'alice')).length, before, 'nothing was submitted');
    assert.ok(await healthy(server));
  });

  test('the cookie still works after a restart (same state dir)', { timeout: 90000 }, async () => {
    assert.ok(cookieValue && aliceWf);
    const oldPid = server.pid;
    await server.restart();
    assert.notEqual(server.pid, oldPid, 'a new master');
    const who = { cookie: cookieValue };
    for (let i = 0; i < 20; i++) {
      const r = await server.api(who, 'GET', `/api/workflows/${aliceWf}`);
      assert.equal(r.status, 200, `after restart, request ${i}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    const tampered = { cookie: `tessera_session=${flipLast(cookieValue.slice('tessera_session='.length))}` };
    assertError(await server.api(tampered, 'GET', '/api/workflows'), 401, 'tampered cookie after restart');
    // The secret was created once in the state dir, mode 0600 (DESIGN §3).
    const secret = path.join(server.stateDir, 'session_secret');
    if (fs.existsSync(secret)) {
      assert.equal(fs.statSync(secret).mode & 0o777, 0o600, 'session_secret is mode 0600');
    }
  });

  test('DELETE /api/session clears the cookie', { timeout: 90000 }, async () => {
    const r = await server.api({ cookie: cookieValue }, 'DELETE', '/api/session');
    assert.ok(r.status >= 200 && r.status < 300, `DELETE /api/session: ${r.status} ${r.text}`);
    const c = sessionCookie(r);
    assert.ok(c, 'Set-Cookie clears tessera_session');
    assert.ok(/max-age=0/i.test(c) || /expires=[^;]*19[67]\d/i.test(c) || /^tessera_session=;/.test(c) || /^tessera_session=(deleted)?(;|$)/.test(c),
      `the cookie is expired or emptied: ${c}`);
  });

  test('POST /api/session with a bad request is a 4xx JSON error', { timeout: 90000 }, async () => {
    assertError(await server.api(null, 'POST', '/api/session', { user: 'bad user!' }), [400, 401, 422], 'invalid user name');
    assertError(await server.api(null, 'POST', '/api/session', {}), [400, 401, 422], 'no user');
    assertError(await server.api(null, 'POST', '/api/session', '{"user": ', { 'Content-Type': 'application/json' }), 400, 'malformed JSON');
  });
});

describe('identity', () => {
  test('a request without identity gets 401 on every tenant endpoint', { timeout: 90000 }, async () => {
    const cases = [
      ['GET', '/api/workflows'], ['POST', '/api/workflows'], ['GET', '/api/workflows/1'],
      ['DELETE', '/api/workflows/1'], ['POST', '/api/workflows/1/cancel'], ['GET', '/api/workflows/1/progress'],
      ['POST', '/api/workflows/1/jobs/a/cancel'], ['POST', '/api/workflows/1/jobs/a/retry'],
      ['GET', '/api/workflows/1/jobs/a/log'], ['GET', '/api/workflows/1/jobs/a/results'],
      ['GET', '/api/workflows/1/jobs/a/results/x.json'], ['GET', '/api/queue'], ['GET', '/api/events?since=0'],
    ];
    for (const [m, p] of cases) {
      const body = m === 'POST' && p === '/api/workflows' ? workflow('anon', [noop('a')]) : undefined;
      assertError(await server.api(null, m, p, body), 401, `${m} ${p} without identity`);
    }
    const c = server.wsClient(null, { since: 0 });
    await assert.rejects(c.opened);
    assert.equal(c.rejected?.status, 401, `WebSocket without identity: ${JSON.stringify(c.rejected)}`);
    for (const p of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
      assert.equal((await server.api(null, 'GET', p)).status, 200, `${p} is public`);
    }
  });

  test('an invalid X-User-ID gets 401; valid edge cases are accepted', { timeout: 90000 }, async () => {
    const bad = ['bad user', 'a/b', 'x'.repeat(129), 'semi;colon', '<script>', 'tab\there', 'comma,user', 'quote"d'];
    for (const u of bad) {
      const r = await server.api(null, 'GET', '/api/workflows', undefined, { 'X-User-ID': u });
      assertError(r, 401, `X-User-ID ${JSON.stringify(u)}`);
    }
    // Non-ASCII bytes in the header.
    const r8 = await httpRequest(`${server.url}/api/workflows`, { headers: { 'X-User-ID': Buffer.from('j\xfcrgen', 'latin1').toString('latin1') } });
    assertError(r8, 401, 'X-User-ID with a non-ASCII byte');
    const good = ['a', 'A-z.0_9@example.org', 'u'.repeat(128)];
    for (const u of good) {
      const r = await server.api(u, 'GET', '/api/workflows');
      assert.equal(r.status, 200, `X-User-ID ${u}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    assert.ok(await healthy(server));
  });

  test('an unknown bearer token gets 401', { timeout: 90000 }, async () => {
    const tok = 'f'.repeat(64);
    assertError(await server.api({ token: tok }, 'GET', '/api/workflows'), 401, 'unknown bearer token');
    assertError(await server.api({ token: tok }, 'POST', '/api/workflows', workflow('t', [noop('a')])), 401, 'unknown bearer token (POST)');
  });
});

describe('token mode and listen address', () => {
  test('--auth token: `tessera user add` tokens work, X-User-ID alone does not', { timeout: 90000 }, async () => {
    const ts = await startServer({ workers: 2, concurrencyLimit: 2, maxActiveUsers: 3, auth: 'token' });
    try {
      const add = (name) => {
        const r = runCli(['user', 'add', name], { env: ts.cliEnv(), cwd: ts.tmpDir });
        assert.equal(r.status, 0, `tessera user add ${name}: ${r.status} ${r.stdout} ${r.stderr}`);
        const toks = (r.stdout.match(/[A-Za-z0-9_\-.~+/=]{20,}/g) || []).filter((t) => !t.includes('/'));
        assert.ok(toks.length, `user add prints a token: ${r.stdout}`);
        return toks[toks.length - 1];
      };
      const carol = add('carol');
      const dave = add('dave');
      assert.notEqual(carol, dave);
      const r = await ts.api({ token: carol }, 'GET', '/api/workflows');
      assert.equal(r.status, 200, `bearer token: ${r.status} ${r.text}`);
      const id = wfId(await submit(ts, { token: carol }, workflow('tok', [noop('a')])));
      assert.equal((await ts.api({ token: carol }, 'GET', `/api/workflows/${id}`)).status, 200);
      assertError(await ts.api({ token: dave }, 'GET', `/api/workflows/${id}`), 404, 'another token\'s workflow');
      assertError(await ts.api('carol', 'GET', '/api/workflows'), 401, 'X-User-ID is not trusted in token mode');
      assertError(await ts.api({ token: 'f'.repeat(64) }, 'GET', '/api/workflows'), 401, 'unknown token');
      assertError(await ts.api({ token: flipLast(carol) }, 'GET', '/api/workflows'), 401, 'altered token');
      // Tokens are stored only as a hash: the token text is nowhere in the state dir's database.
      for (const f of fs.readdirSync(ts.stateDir)) {
        const p = path.join(ts.stateDir, f);
        if (fs.statSync(p).isFile() && fs.statSync(p).size < 64 * 1024 * 1024) {
          assert.ok(!fs.readFileSync(p).includes(Buffer.from(carol)), `the token is not stored in clear in ${f}`);
        }
      }
    } finally {
      await ts.cleanup();
    }
  });

  test('header mode is refused on a non-loopback address', { timeout: 90000 }, async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-listen-'));
    const port = await freePort();
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TESSERA_')) env[k] = v;
    const p = spawn(BIN, ['serve', '--listen', `0.0.0.0:${port}`, '--auth', 'header', '--state-dir', path.join(tmp, 'state'),
      '--workers', '1', '--log', path.join(tmp, 'log')], { cwd: tmp, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      const res = await Promise.race([exited, sleep(10000).then(() => null)]);
      assert.ok(res, `tessera serve --auth header --listen 0.0.0.0 must refuse to start; it kept running: ${out}`);
      assert.notEqual(res.code, 0, `it exits with a failure status: ${JSON.stringify(res)} ${out}`);
      assert.ok(out.trim().length > 0, 'it says why');
    } finally {
      try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
