// hardening.test.mjs - issue 12's HTTP-side defects, each reproduced as the
// attack that found it, against the real `tessera serve`: special files in a
// data root, path-trick job ids, what submission errors reveal about paths
// outside the data roots. Every case also checks that the service keeps
// serving (/healthz) and that nothing was stored.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import {
  startServer, submit, waitFinal, listAll, assertError, wfId, noop, workflow, healthy,
  runCli, rawRequest, freePort, sleep, BIN,
} from './harness.mjs';

const U = 'hard-user';
let server;
let dataRoot;
let outside;
let slide;

before(async () => {
  dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-hard-'));
  outside = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-outside-'));
  slide = path.join(dataRoot, 'demo.tiff');
  const r = runCli(['demo-slide', slide, '--size', '1024x768', '--seed', '5'], { timeoutMs: 120000 });
  assert.equal(r.status, 0, `demo-slide: ${r.stderr}`);
  fs.copyFileSync(slide, path.join(outside, 'secret.tiff'));
  server = await startServer({
    workers: 1, concurrencyLimit: 2, extraArgs: ['--data-root', dataRoot],
    env: { TESSERA_ALLOWED_ORIGINS: 'https://ui.example.org, http://localhost:9999' },
  });
}, { timeout: 180000 });

after(async () => {
  if (server) await server.cleanup();
  for (const d of [dataRoot, outside]) if (d) fs.rmSync(d, { recursive: true, force: true });
}, { timeout: 30000 });

const count = async (user = U) => (await listAll(server, user)).length;
const post = (body, query = '') => server.api(U, 'POST', `/api/workflows${query}`, body,
  { 'Content-Type': 'application/json' });

describe('job ids are one safe path component (issue 12, defect 5)', () => {
  for (const id of ['.', '..']) {
    test(`job_id ${JSON.stringify(id)} is refused with 422 naming jobs[i].job_id`, async () => {
      const before = await count();
      const res = await post({ name: 'dots', jobs: [noop('a'), noop(id)] });
      const err = assertError(res, 422, `job_id ${id}`);
      assert.equal(err.details?.field, 'jobs[1].job_id', res.text);
      assert.match(err.message, /not "\." or "\.\."/);
      assert.equal(await count(), before, 'nothing was stored');
    });
  }

  test('ids with dots that are not path tricks still run', async () => {
    const w = await submit(server, U, workflow('dots-ok', [noop('...'), noop('a..b'), noop('.x')]));
    const done = await waitFinal(server, U, wfId(w), 30000);
    assert.equal(done.state, 'succeeded');
    const log = await server.api(U, 'GET', `/api/workflows/${wfId(w)}/jobs/.../log`);
    assert.equal(log.status, 200);
  });
});

describe('special files in a data root never reach OpenSlide (issue 12, defect 1)', () => {
  const thumb = (p) => `/api/slides/thumbnail?path=${encodeURIComponent(p)}`;

  test('two thumbnails of a FIFO, then /healthz still answers', { timeout: 60000 }, async () => {
    const fifo = path.join(dataRoot, 'fifo.tiff');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    try {
      for (let i = 0; i < 2; i++) {
        const res = await server.api(U, 'GET', thumb(fifo), undefined, {}, { timeoutMs: 10000 });
        assertError(res, 404, `thumbnail of a FIFO (${i + 1})`);
      }
      assert.ok(await healthy(server), '/healthz 200 after two thumbnails of a FIFO');
      const dry = await post({ name: 'fifo', jobs: [{ job_id: 't', job_type: 'tissue_mask', image_path: fifo }] },
        '?dry_run=true');
      const err = assertError(dry, 422, 'dry-run naming a FIFO');
      assert.equal(err.details?.field, 'jobs[0].image_path');
      assert.match(err.message, /not a regular file \(a FIFO\)/);
      const list = await server.api(U, 'GET', '/api/slides', undefined, {}, { timeoutMs: 20000 });
      assert.equal(list.status, 200);
      const names = [...list.json.slides, ...list.json.skipped].map((s) => s.name);
      assert.ok(!names.includes('fifo.tiff'), `the listing skips the FIFO: ${names}`);
      assert.ok(names.includes('demo.tiff'), `the listing still lists the slide: ${names}`);
      assert.ok(await healthy(server), '/healthz 200 at the end');
    } finally {
      fs.rmSync(fifo, { force: true });
    }
  });

  test('a directory, a socket and a device named like slides are refused', { timeout: 60000 }, async () => {
    const dir = path.join(dataRoot, 'folder.svs');
    const dev = path.join(dataRoot, 'zero.tiff');
    fs.mkdirSync(dir);
    fs.symlinkSync('/dev/zero', dev); // resolves outside the roots: refused as not found
    try {
      for (const p of [dir, dev]) {
        const res = await server.api(U, 'GET', thumb(p), undefined, {}, { timeoutMs: 10000 });
        assertError(res, 404, `thumbnail of ${p}`);
      }
      const res = await post({ name: 'dir', jobs: [{ job_id: 't', job_type: 'tissue_mask', image_path: dir }] });
      assert.match(assertError(res, 422, 'a directory').message, /not a regular file \(a directory\)/);
      assert.ok(await healthy(server));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(dev, { force: true });
    }
  });

  test('a job\'s slide replaced by a FIFO: its Deep Zoom answers 404 at once', { timeout: 90000 }, async () => {
    const copy = path.join(dataRoot, 'tiles.tiff');
    fs.copyFileSync(slide, copy);
    const w = await submit(server, U, workflow('tiles', [{ job_id: 't', job_type: 'tissue_mask', image_path: copy }]));
    await waitFinal(server, U, wfId(w), 60000);
    const dzi = `/api/workflows/${wfId(w)}/jobs/t/slide.dzi`;
    assert.equal((await server.api(U, 'GET', dzi)).status, 200);
    fs.rmSync(copy);
    assert.equal(spawnSync('mkfifo', [copy]).status, 0);
    try {
      for (const p of [dzi, `/api/workflows/${wfId(w)}/jobs/t/slide_files/9/0_0.jpeg`]) {
        const res = await server.api(U, 'GET', p, undefined, {}, { timeoutMs: 10000 });
        assertError(res, 404, p);
      }
      assert.ok(await healthy(server));
    } finally {
      fs.rmSync(copy, { force: true });
    }
  });
});

describe('submission errors tell nothing about paths outside the data roots (issue 12, defect 11)', () => {
  test('an existing and a missing file outside the roots get the same answer', async () => {
    const exists = path.join(outside, 'secret.tiff');
    const missing = path.join(outside, 'no-such.tiff');
    const answers = [];
    for (const p of [exists, missing, '/etc/passwd', `${dataRoot}/../${path.basename(outside)}/secret.tiff`]) {
      const res = await post({ name: 'probe', jobs: [{ job_id: 't', job_type: 'tissue_mask', image_path: p }] });
      const err = assertError(res, 422, p);
      assert.equal(err.details?.field, 'jobs[0].image_path');
      answers.push(err.message.replace(p, 'PATH'));
    }
    assert.match(answers[0], /not found in the data roots/);
    for (const a of answers) assert.equal(a, answers[0]);
    const thumbs = [];
    for (const p of [exists, missing]) {
      const res = await server.api(U, 'GET', `/api/slides/thumbnail?path=${encodeURIComponent(p)}`);
      thumbs.push(assertError(res, 404, p).message);
    }
    assert.equal(thumbs[0], thumbs[1]);
  });

  test('inside the roots a missing file is named missing', async () => {
    const res = await post({ name: 'typo', jobs: [{ job_id: 't', job_type: 'tissue_mask', image_path: 'demo-typo.tiff' }] });
    assert.match(assertError(res, 422, 'typo').message, /no such file/);
  });
});

describe('a slide swapped after submission is not read (issue 12, defect 3)', () => {
  test('sleep 3 then tissue_mask swap.tiff; swap.tiff becomes a link outside: the job fails, publishes nothing', { timeout: 120000 }, async () => {
    const swap = path.join(dataRoot, 'swap.tiff');
    fs.copyFileSync(slide, swap);
    const w = await submit(server, U, workflow('swap', [
      { job_id: 'wait', job_type: 'sleep', params: { seconds: 3 } },
      { job_id: 'mask', job_type: 'tissue_mask', image_path: 'swap.tiff' },
    ]));
    assert.equal(w.jobs.find((j) => j.job_id === 'mask').image_path, fs.realpathSync(swap), 'stored resolved');
    fs.rmSync(swap);
    fs.symlinkSync(path.join(outside, 'secret.tiff'), swap);
    try {
      const done = await waitFinal(server, U, wfId(w), 60000);
      const mask = done.jobs.find((j) => j.job_id === 'mask');
      assert.equal(mask.state, 'failed', JSON.stringify(mask));
      const log = await server.api(U, 'GET', `/api/workflows/${wfId(w)}/jobs/mask/log`);
      assert.match(`${mask.reason}\n${log.text}`, /not found in the data roots/);
      const results = await server.api(U, 'GET', `/api/workflows/${wfId(w)}/jobs/mask/results`);
      assert.equal(results.status, 200);
      assert.deepEqual(results.json.files, [], 'nothing published');
    } finally {
      fs.rmSync(swap, { force: true });
    }
  });
});

describe('requests that two parsers could read differently are refused (issue 12, defect 14)', () => {
  const raw = (head, body = '') => rawRequest(server.port, head, Buffer.from(body), { timeoutMs: 5000 });
  const host = () => `Host: 127.0.0.1:${server.port}\r\n`;
  const wf = JSON.stringify({ name: 'smuggled', jobs: [{ job_id: 'a', job_type: 'noop' }] });

  test('Content-Length with Transfer-Encoding is 400, and nothing is stored', async () => {
    const before = await count();
    const chunked = `${wf.length.toString(16)}\r\n${wf}\r\n0\r\n\r\n`;
    const res = await raw(`POST /api/workflows HTTP/1.1\r\n${host()}X-User-ID: ${U}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${wf.length}\r\nTransfer-Encoding: chunked\r\n\r\n`, chunked);
    assert.match(assertError(res, 400, 'CL + TE').message, /both Content-Length and Transfer-Encoding/);
    const gzip = await raw(`POST /api/workflows HTTP/1.1\r\n${host()}X-User-ID: ${U}\r\n` +
      'Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', '0\r\n\r\n');
    assertError(gzip, 400, 'TE other than chunked');
    const twoCl = await raw(`POST /api/workflows HTTP/1.1\r\n${host()}X-User-ID: ${U}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${wf.length}\r\nContent-Length: 2\r\n\r\n`, wf);
    assert.match(assertError(twoCl, 400, 'two Content-Length').message, /Content-Length given more than once/);
    assert.equal(await count(), before, 'nothing was stored');
    assert.ok(await healthy(server));
  });

  test('HTTP/1.1 without Host, or with two, is 400; HTTP/1.0 without Host is served', async () => {
    assert.match(assertError(await raw('GET /healthz HTTP/1.1\r\n\r\n'), 400, 'no Host').message, /Host/);
    assertError(await raw(`GET /healthz HTTP/1.1\r\n${host()}Host: evil.example\r\n\r\n`), 400, 'two Host');
    const old = await raw('GET /healthz HTTP/1.0\r\n\r\n');
    assert.equal(old.status, 200);
  });

  test('X-User-ID twice (or two Authorization headers) is 400, not "the first wins"', async () => {
    const res = await raw(`GET /api/workflows HTTP/1.1\r\n${host()}X-User-ID: ${U}\r\nX-User-ID: someone-else\r\n\r\n`);
    const err = assertError(res, 400, 'two X-User-ID');
    assert.match(err.message, /X-User-ID given more than once/);
    const tok = 'a'.repeat(64);
    assertError(await raw(`GET /api/workflows HTTP/1.1\r\n${host()}Authorization: Bearer ${tok}\r\n` +
      `Authorization: Bearer ${tok}\r\n\r\n`), 400, 'two Authorization');
    const one = await raw(`GET /api/workflows HTTP/1.1\r\n${host()}X-User-ID: ${U}\r\n\r\n`);
    assert.equal(one.status, 200);
  });
});

describe('the WebSocket upgrade checks Origin (issue 12, defect 14)', () => {
  const upgrade = (origin, hostHeader) => rawRequest(server.port,
    `GET /api/events HTTP/1.1\r\nHost: ${hostHeader ?? `127.0.0.1:${server.port}`}\r\nUpgrade: websocket\r\n` +
    'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
    `X-User-ID: ${U}\r\n${origin ? `Origin: ${origin}\r\n` : ''}\r\n`, Buffer.alloc(0), { timeoutMs: 2000 });

  test('another site\'s page is refused with 403', async () => {
    for (const o of ['https://evil.example', 'null', `http://127.0.0.1:${server.port}.evil.example`,
      `ftp://127.0.0.1:${server.port}`, 'https://ui.example.org.evil']) {
      const err = assertError(await upgrade(o), 403, `Origin ${o}`);
      assert.equal(err.code, 'origin_not_allowed');
    }
  });

  test('the service\'s own origin, a configured one, and no Origin at all are let in', async () => {
    for (const o of [`http://127.0.0.1:${server.port}`, `https://127.0.0.1:${server.port}`,
      'https://ui.example.org', 'HTTPS://UI.EXAMPLE.ORG', 'http://localhost:9999', null]) {
      const res = await upgrade(o);
      assert.equal(res.status, 101, `Origin ${o}: ${res.status} ${res.text}`);
    }
    const proxied = await upgrade('https://tessera.example.org', 'tessera.example.org');
    assert.equal(proxied.status, 101, 'Origin equal to the Host a proxy passed on');
  });
});

describe('serve checks before it binds (issue 12, defect 14)', () => {
  test('header mode on 0.0.0.0 is refused before the port is taken', { timeout: 30000 }, async () => {
    const holder = net.createServer();
    await new Promise((resolve) => holder.listen(0, '0.0.0.0', resolve));
    const port = holder.address().port;
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-bind-'));
    try {
      const env = {};
      for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TESSERA_')) env[k] = v;
      const r = spawnSync(BIN, ['serve', '--listen', `0.0.0.0:${port}`, '--auth', 'header', '--state-dir',
        path.join(tmp, 'state'), '--log', path.join(tmp, 'log')], { cwd: tmp, env, encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 2, `${r.status} ${r.stderr}`);
      assert.match(r.stderr, /--auth header trusts X-User-ID, so it is refused/);
      assert.doesNotMatch(r.stderr, /cannot listen|in use/i);
      assert.ok(!fs.existsSync(path.join(tmp, 'state')), 'nothing was created either');
    } finally {
      await new Promise((resolve) => holder.close(resolve));
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
