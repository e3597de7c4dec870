// bad_input.test.mjs - DESIGN §4 limits: every bad request gets a clear 4xx
// JSON error {"error": {"code", "message"}} (or a WebSocket close code),
// changes nothing (the caller's workflow count is unchanged), and the
// service keeps serving (/healthz 200, and no process died and was quietly
// restarted by the master).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, submit, waitFinal, listAll, assertError, errorText, wfId, noop, sleepJob, workflow,
  rawRequest, healthy, sleep,
} from './harness.mjs';

const U = 'bad-user';
const MiB = 1024 * 1024;
let server;
let dataRoot;
let realId; // a finished workflow of U, for path tests

before(async () => {
  dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-data-'));
  fs.symlinkSync('/etc', path.join(dataRoot, 'etc-link'));
  fs.writeFileSync(path.join(dataRoot, 'inside.txt'), 'x');
  server = await startServer({ workers: 2, concurrencyLimit: 2, maxActiveUsers: 3, extraArgs: ['--data-root', dataRoot] });
  realId = wfId(await submit(server, U, workflow('real', [noop('a')])));
  await waitFinal(server, U, realId, 30000);
}, { timeout: 60000 });

after(async () => {
  if (server) await server.cleanup();
  if (dataRoot) fs.rmSync(dataRoot, { recursive: true, force: true });
}, { timeout: 30000 });

const count = async (user = U) => (await listAll(server, user)).length;

/**
 * Sends a bad request and checks: the status and error shape, nothing
 * stored, /healthz 200, the master's children unchanged (no crash hidden by
 * a restart). check(res, text) may assert more (e.g. the field named).
 */
async function rejected(what, send, status, { user = U, check } = {}) {
  const before = await count(user);
  const kids = server.children();
  const res = await send();
  assertError(res, status, what);
  if (check) check(res, errorText(res));
  assert.ok(await healthy(server), `${what}: /healthz 200 afterwards`);
  assert.equal(await count(user), before, `${what}: nothing was stored`);
  assert.deepEqual(server.children(), kids, `${what}: no service process died`);
  return res;
}

const post = (body, headers = {}) => () => server.api(U, 'POST', '/api/workflows', body,
  { 'Content-Type': 'application/json', ...headers });
const names = (...words) => (res, text) => {
  assert.ok(words.some((w) => text.includes(w.toLowerCase())), `the error names ${words.join(' or ')}: ${res.text.slice(0, 400)}`);
};
const good = (extra = {}) => ({ name: 'ok', jobs: [{ job_id: 'a', job_type: 'noop' }], ...extra });

describe('malformed JSON', () => {
  test('syntax errors, non-UTF-8, wrong shapes', { timeout: 60000 }, async () => {
    const cases = [
      ['truncated JSON', '{"name": "x", "jobs": [', 400],
      ['trailing garbage', `${JSON.stringify(good())} xyz`, 400],
      ['a single quote', "{'name': 'x'}", 400],
      ['empty body', '', [400, 422]],
      ['not an object: array', '[]', [400, 422]],
      ['not an object: string', '"workflow"', [400, 422]],
      ['not an object: null', 'null', [400, 422]],
      ['non-UTF-8 bytes in a string', Buffer.concat([Buffer.from('{"name": "'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('", "jobs": [{"job_id": "a", "job_type": "noop"}]}')]), [400, 422]],
      ['overlong UTF-8', Buffer.concat([Buffer.from('{"name": "'), Buffer.from([0xc0, 0xaf]), Buffer.from('", "jobs": [{"job_id": "a", "job_type": "noop"}]}')]), [400, 422]],
      ['a lone surrogate escape', '{"name": "\\ud800", "jobs": [{"job_id": "a", "job_type": "noop"}]}', [400, 422]],
      ['a NUL escape in a string', '{"name": "a\\u0000b", "jobs": [{"job_id": "a", "job_type": "noop"}]}', [400, 422]],
      ['a number out of range', '{"name": "x", "jobs": [{"job_id": "a", "job_type": "sleep", "params": {"seconds": 1e999}}]}', [400, 422]],
    ];
    for (const [what, body, status] of cases) await rejected(what, post(body), status);
  });

  test('deep nesting', { timeout: 60000 }, async () => {
    const deepParams = `{"name": "x", "jobs": [{"job_id": "a", "job_type": "sleep", "params": {"seconds": 1, "x": ${'['.repeat(5000)}${']'.repeat(5000)}}}]}`;
    await rejected('params nested 5000 deep', post(deepParams), [400, 413, 422]);
    await rejected('an array nested 200000 deep', post('['.repeat(200000) + ']'.repeat(200000)), [400, 413, 422]);
    await rejected('an object nested 100000 deep (unterminated)', post('{"a":'.repeat(100000)), [400, 413, 422]);
  });
});

describe('oversized bodies', () => {
  const head = (len, extra = '') => `POST /api/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User-ID: ${U}\r\n` +
    `Content-Type: application/json\r\n${len === null ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${len}\r\n`}${extra}Connection: close\r\n\r\n`;
  /** A valid workflow padded to exactly n bytes. */
  const padded = (n) => {
    const base = JSON.stringify({ name: '', jobs: [{ job_id: 'a', job_type: 'noop' }] });
    return Buffer.from(base.replace('"name":""', `"name":"${'x'.repeat(n - base.length)}"`));
  };

  test('a body over 1 MiB gets 413', { timeout: 90000 }, async () => {
    for (const n of [MiB + 1, 5 * MiB]) {
      const body = padded(n);
      assert.equal(body.length, n);
      await rejected(`a ${n}-byte body`, () => rawRequest(server.port, head(n), body), 413);
    }
  });

  test('a chunked body over 1 MiB gets 413', { timeout: 60000 }, async () => {
    const body = padded(2 * MiB);
    const chunks = [];
    for (let off = 0; off < body.length; off += 65536) {
      const c = body.subarray(off, off + 65536);
      chunks.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
    }
    chunks.push(Buffer.from('0\r\n\r\n'));
    await rejected('a 2 MiB chunked body', () => rawRequest(server.port, head(null), Buffer.concat(chunks)), 413);
  });

  test('a declared Content-Length of 10 GiB gets 413 without sending the body', { timeout: 30000 }, async () => {
    await rejected('Content-Length: 10 GiB', () => rawRequest(server.port, head(10 * 1024 * MiB), Buffer.alloc(0), { timeoutMs: 10000 }), 413);
  });
});

describe('content types', () => {
  test('a body that is not application/json gets 415', { timeout: 60000 }, async () => {
    const body = JSON.stringify(good());
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', 'text/json; charset=utf-8']) {
      await rejected(`Content-Type: ${ct}`, post(body, { 'Content-Type': ct }), 415);
    }
    await rejected('no Content-Type', post(body, { 'Content-Type': null }), [400, 415]);
    await rejected('POST /api/session as text/plain', () => server.api(null, 'POST', '/api/session', JSON.stringify({ user: U }), { 'Content-Type': 'text/plain' }), 415);
  });

  test('application/json with a charset is accepted', async () => {
    const before = await count();
    const r = await server.api(U, 'POST', '/api/workflows', JSON.stringify(good({ name: 'charset' })), { 'Content-Type': 'application/json; charset=utf-8' });
    assert.equal(r.status, 201, r.text);
    assert.equal(await count(), before + 1);
    await waitFinal(server, U, wfId(r.json), 30000);
  });
});

describe('invalid workflows name the offending field or job', () => {
  test('fields, job ids, types, params, graph, limits', { timeout: 120000 }, async () => {
    const cases = [
      ['missing name', { jobs: [noop('a')] }, 'name'],
      ['name not a string', { name: 123, jobs: [noop('a')] }, 'name'],
      ['jobs not an array', { name: 'x', jobs: {} }, 'jobs'],
      ['priority not a number', { name: 'x', priority: 'high', jobs: [noop('a')] }, 'priority'],
      ['job_id too long', { name: 'x', jobs: [noop('a'.repeat(65))] }, 'job_id'],
      ['job_id with bad characters', { name: 'x', jobs: [noop('bad id!')] }, 'job_id', 'bad id!'],
      ['empty job_id', { name: 'x', jobs: [noop('')] }, 'job_id'],
      ['duplicate job_id', { name: 'x', jobs: [noop('a'), noop('a')] }, 'duplicate', '"a"', 'job_id'],
      ['unknown job type', { name: 'x', jobs: [{ job_id: 'a', job_type: 'no-such-type' }] }, 'no-such-type'],
      ['unknown dependency', { name: 'x', jobs: [noop('a', { depends_on: ['ghost'] })] }, 'ghost'],
      ['sleep seconds not a number', { name: 'x', jobs: [{ job_id: 'a', job_type: 'sleep', params: { seconds: 'x' } }] }, 'seconds'],
      ['sleep seconds negative', { name: 'x', jobs: [{ job_id: 'a', job_type: 'sleep', params: { seconds: -1 } }] }, 'seconds'],
      ['cpus zero', { name: 'x', jobs: [noop('a', { cpus: 0 })] }, 'cpus'],
      ['cpus negative', { name: 'x', jobs: [noop('a', { cpus: -2 })] }, 'cpus'],
      ['timeout_s negative', { name: 'x', jobs: [noop('a', { timeout_s: -5 })] }, 'timeout_s'],
      ['max_retries negative', { name: 'x', jobs: [noop('a', { max_retries: -1 })] }, 'max_retries'],
      ['a very long name', { name: 'n'.repeat(100000), jobs: [noop('a')] }, 'name'],
    ];
    for (const [what, body, ...words] of cases) {
      await rejected(what, post(body), [400, 422], { check: names(...words) });
    }
    // A cycle is rejected with the cycle named (explicit edges, and an explicit edge against a branch edge).
    await rejected('an explicit cycle', post({ name: 'x', jobs: [noop('a', { branch: 'p', depends_on: ['b'] }), noop('b', { branch: 'q', depends_on: ['a'] })] }), [400, 422],
      { check: (res, text) => assert.match(text, /a -> b -> a|b -> a -> b/, `the cycle is named: ${res.text}`) });
    await rejected('a cycle through a branch', post({ name: 'x', jobs: [noop('a', { branch: 'p', depends_on: ['b'] }), noop('b', { branch: 'p' })] }), [400, 422],
      { check: (res, text) => assert.match(text, /a -> b -> a|b -> a -> b/, `the cycle is named: ${res.text}`) });
    // More jobs than the limit (10,000) in well under 1 MiB.
    const many = { name: 'x', jobs: Array.from({ length: 10001 }, (_, i) => ({ job_id: `j${i}`, job_type: 'noop', branch: `b${i}` })) };
    assert.ok(Buffer.byteLength(JSON.stringify(many)) < MiB);
    await rejected('10,001 jobs', post(many), [400, 413, 422], { check: names('jobs', '10000', '10,000', '10001') });
  });
});

describe('image paths', () => {
  // DESIGN §4 lists "image_path outside the data roots (after resolving
  // symlinks)" among the limits. It matters for the image job types; noop
  // and sleep do not read images, so the check uses tissue_mask and is
  // skipped when this build does not have that job type yet.
  test('image_path outside the data roots is a 4xx naming image_path', { timeout: 60000 }, async (t) => {
    const probe = await server.api(U, 'POST', '/api/workflows', { name: 'x', jobs: [{ job_id: 'a', job_type: 'tissue_mask', image_path: '/etc/passwd' }] });
    if (probe.status === 201) assert.fail(`image_path /etc/passwd outside the data root was accepted: ${probe.text.slice(0, 300)}`);
    assertError(probe, [400, 422], 'image_path outside the data roots');
    const txt = errorText(probe);
    if (/tissue_mask/.test(txt) && /unknown|job.?type/.test(txt) && !/image_path/.test(txt)) {
      t.skip(`job type tissue_mask is not in this build: ${probe.text.slice(0, 200)}`);
      return;
    }
    const cases = [
      ['image_path outside the data roots', '/etc/passwd'],
      ['image_path escaping through a symlink', path.join(dataRoot, 'etc-link', 'passwd')],
      ['image_path with ..', `${dataRoot}/../../etc/passwd`],
      ['image_path relative', 'etc/passwd'],
    ];
    for (const [what, p] of cases) {
      await rejected(what, post({ name: 'x', jobs: [{ job_id: 'a', job_type: 'tissue_mask', image_path: p }] }), [400, 422], { check: names('image_path') });
    }
  });
});

describe('ids, paths and queries', () => {
  test('bad workflow ids get 404 or 400 with the error shape', { timeout: 60000 }, async () => {
    const bad = ['abc', '0', '-1', '1.5', '1e3', '0x10', '12abc', '99999999999999999999999', '%20', '%00', '1%2F2'];
    for (const id of bad) {
      for (const [m, p] of [['GET', `/api/workflows/${id}`], ['DELETE', `/api/workflows/${id}`], ['POST', `/api/workflows/${id}/cancel`],
        ['GET', `/api/workflows/${id}/progress`], ['GET', `/api/workflows/${id}/jobs/a/log`]]) {
        await rejected(`${m} ${p}`, () => server.api(U, m, p), [400, 404]);
      }
    }
  });

  test('traversal in job ids and result names gets 404 or 400', { timeout: 60000 }, async () => {
    const secretPath = path.join(server.stateDir, 'session_secret');
    const secret = fs.existsSync(secretPath) ? fs.readFileSync(secretPath, 'utf8').trim() : null;
    const paths = [
      `/api/workflows/${realId}/jobs/..%2F..%2F..%2Fsession_secret/log`,
      `/api/workflows/${realId}/jobs/../log`,
      `/api/workflows/${realId}/jobs/a/results/..%2F..%2F..%2F..%2Fsession_secret`,
      `/api/workflows/${realId}/jobs/a/results/%2Fetc%2Fpasswd`,
      `/api/workflows/${realId}/jobs/a/results/..`,
      `/api/workflows/${realId}/jobs/a/results/.`,
    ];
    for (const p of paths) {
      const r = await rejected(`GET ${p}`, () => server.api(U, 'GET', p), [400, 404]);
      if (secret) assert.ok(!r.text.includes(secret), 'the session secret never leaks');
      assert.ok(!r.text.includes('root:x:0:0'), '/etc/passwd never leaks');
    }
  });

  test('unknown paths and methods, bad queries', { timeout: 60000 }, async () => {
    await rejected('GET /api/nope', () => server.api(U, 'GET', '/api/nope'), 404);
    await rejected('PUT /api/workflows', () => server.api(U, 'PUT', '/api/workflows', good()), [404, 405]);
    await rejected('PATCH /api/workflows/1', () => server.api(U, 'PATCH', `/api/workflows/${realId}`, good()), [404, 405]);
    for (const q of ['since=abc', 'since=-1', `since=0&workflow=abc`]) {
      await rejected(`GET /api/events?${q}`, () => server.api(U, 'GET', `/api/events?${q}`), [400, 404]);
      const c = server.wsClient(U, Object.fromEntries(new URLSearchParams(q)));
      await assert.rejects(c.opened, `the WebSocket ?${q} is refused`);
      assert.ok([400, 404].includes(c.rejected?.status), `WebSocket ?${q}: ${JSON.stringify(c.rejected)}`);
      assertError(c.rejected, [400, 404], `WebSocket ?${q}`);
    }
    await rejected('a WebSocket upgrade without Sec-WebSocket-Key', () => rawRequest(server.port,
      `GET /api/events?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User-ID: ${U}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n`), '4xx');
  });
});

describe('identity', () => {
  test('missing or forged identity gets 401 and stores nothing', { timeout: 60000 }, async () => {
    const body = JSON.stringify(good({ name: 'forged' }));
    const j = { 'Content-Type': 'application/json' };
    await rejected('no identity', () => server.api(null, 'POST', '/api/workflows', body, j), 401);
    await rejected('a forged cookie', () => server.api({ cookie: `tessera_session=v1.${U}.9999999999.${'0'.repeat(64)}` }, 'POST', '/api/workflows', body, j), 401);
    await rejected('an unknown bearer token', () => server.api({ token: 'a'.repeat(64) }, 'POST', '/api/workflows', body, j), 401);
    await rejected('an invalid X-User-ID', () => server.api(null, 'POST', '/api/workflows', body, { ...j, 'X-User-ID': `${U} ` + '!' }), 401);
    await rejected('an X-User-ID of 129 characters', () => server.api(null, 'POST', '/api/workflows', body, { ...j, 'X-User-ID': 'u'.repeat(129) }), 401);
  });
});

describe('WebSocket', () => {
  test('an oversized frame closes the connection with 1009', { timeout: 60000 }, async () => {
    const before = await count();
    const kids = server.children();
    const c = await server.ws(U, { since: 0 });
    await c.send('x'.repeat(2 * MiB));
    const closed = await c.waitClosed(15000);
    assert.equal(closed.code, 1009, `close code: ${JSON.stringify(closed)}`);
    assert.ok(await healthy(server));
    assert.equal(await count(), before);
    assert.deepEqual(server.children(), kids, 'no service process died');
    // Another connection works.
    const d = await server.ws(U, { since: 0 });
    await d.waitFor((evs) => evs.some((e) => String(e.workflow_id) === String(realId)), 10000, 'the replay');
    d.close();
  });

  test('the service still serves after all of the above', async () => {
    assert.ok(await healthy(server));
    const id = wfId(await submit(server, U, workflow('after-all', [sleepJob('s', 0.2)])));
    assert.equal((await waitFinal(server, U, id, 30000)).state, 'succeeded');
    await sleep(10);
  });
});
