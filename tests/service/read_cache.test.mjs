// read_cache.test.mjs - GET /api/workflows/{id} served from the worker's
// cache of rendered views (issue 16, src/http/view_cache.h): a repeated
// read gives the same bytes and ETag, If-None-Match naming it is a 304
// without a body, another tenant gets the same 404 as for a missing
// workflow (also when it sends the owner's ETag), and a cached view changes
// as soon as the workflow does: a job's state, a cancel, the line's figures
// a waiting reason quotes. One worker, so every read goes through one cache.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, submit, wfId, assertError, workflow, noop, sleepJob, waitWf, jobOf,
} from './harness.mjs';

const U = 'cache-u';
const OTHER = 'cache-other';
let server;

before(async () => {
  // One slot: a long sleep holds it, so what is read below waits, unchanged,
  // until the test frees the slot.
  server = await startServer({ workers: 1, concurrencyLimit: 1, maxActiveUsers: 3 });
}, { timeout: 30000 });

after(async () => {
  if (server) await server.cleanup();
}, { timeout: 30000 });

const get = (user, id, query = '', headers = {}) =>
  server.api(user, 'GET', `/api/workflows/${id}${query}`, undefined, headers);

describe('cached workflow reads', () => {
  test('same bytes, 304 on If-None-Match, 404 for another tenant, fresh after every change', { timeout: 120000 }, async () => {
    const hold = wfId(await submit(server, U, workflow('hold', [sleepJob('s', 120)])));
    await waitWf(server, U, hold, (w) => jobOf(w, 's')?.state === 'running', 30000, 'the slot taken');
    const id = wfId(await submit(server, U, workflow('waits', [noop('a'), noop('b', { depends_on: ['a'] })])));
    const w = await waitWf(server, U, id, (x) => jobOf(x, 'a')?.state === 'ready', 30000, 'a ready');
    assert.match(jobOf(w, 'a').waiting_reason, /1 of 1 cpus busy/);

    const first = await get(U, id);
    const second = await get(U, id);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.match(first.headers['content-type'], /^application\/json/);
    assert.equal(first.headers['cache-control'], 'no-store');
    const etag = first.headers.etag;
    assert.match(etag, /^"[0-9a-f]+"$/);
    assert.equal(second.headers.etag, etag);
    assert.equal(second.text, first.text, 'a repeated read is the same bytes');

    const revalidated = await get(U, id, '', { 'If-None-Match': etag });
    assert.equal(revalidated.status, 304);
    assert.equal(revalidated.text, '');
    assert.equal(revalidated.headers.etag, etag);
    assert.equal((await get(U, id, '', { 'If-None-Match': `"x", W/${etag}` })).status, 304);
    assert.equal((await get(U, id, '', { 'If-None-Match': '"other"' })).status, 200);

    // Another tenant: exactly the 404 of a workflow that does not exist,
    // with or without the owner's ETag, in every form of the read.
    const missing = await get(OTHER, 999999);
    assertError(missing, 404, 'a missing workflow');
    for (const q of ['', '?jobs=none', '?jobs_offset=0&jobs_limit=1']) {
      for (const h of [{}, { 'If-None-Match': etag }, { 'If-None-Match': '*' }]) {
        const r = await get(OTHER, id, q, h);
        assertError(r, 404, `another tenant's ${q || 'read'}`);
        assert.equal(r.json.error.message, missing.json.error.message.replace('999999', String(id)));
        assert.equal(r.headers.etag, undefined);
      }
    }

    // The compact form and a page are cached replies of their own.
    const compact = await get(U, id, '?jobs=none');
    assert.equal(compact.status, 200);
    assert.equal(compact.json.jobs, undefined);
    assert.deepEqual(compact.json.counts, first.json.counts);
    assert.notEqual(compact.headers.etag, etag);
    assert.equal((await get(U, id, '?jobs=none', { 'If-None-Match': compact.headers.etag })).status, 304);
    const page = await get(U, id, '?jobs_offset=1&jobs_limit=1');
    assert.deepEqual(page.json.jobs.map((j) => j.job_id), ['b']);

    // The slot frees: a's state, its waiting reason (which quoted the busy
    // cpus) and then b's all show in the reads that follow, cached or not.
    const cancelHold = await server.api(U, 'POST', `/api/workflows/${hold}/cancel`);
    assert.equal(cancelHold.status, 202);
    const done = await waitWf(server, U, id, (x) => x.state === 'succeeded', 60000, 'waits succeeded');
    assert.equal(jobOf(done, 'a').state, 'succeeded');
    assert.equal(jobOf(done, 'b').state, 'succeeded');
    const after = await get(U, id, '', { 'If-None-Match': etag });
    assert.equal(after.status, 200, 'the old ETag no longer matches');
    assert.notEqual(after.headers.etag, etag);
    assert.equal(after.json.state, 'succeeded');
    const compactAfter = await get(U, id, '?jobs=none', { 'If-None-Match': compact.headers.etag });
    assert.equal(compactAfter.status, 200);
    assert.equal(compactAfter.json.counts.succeeded, 2);
    assert.equal(compactAfter.json.progress, 1);
  });

  test('a cancel shows at once in a workflow read just before', { timeout: 60000 }, async () => {
    const id = wfId(await submit(server, U, workflow('long', [sleepJob('s', 120)])));
    const running = await waitWf(server, U, id, (x) => jobOf(x, 's')?.state === 'running', 30000, 's running');
    assert.equal(running.state, 'running');
    const before = await get(U, id, '?jobs=none');
    assert.equal(before.json.state, 'running');
    const c = await server.api(U, 'POST', `/api/workflows/${id}/cancel`);
    assert.equal(c.status, 202);
    const cancelled = await waitWf(server, U, id, (x) => x.state === 'cancelled', 30000, 'cancelled');
    assert.equal(jobOf(cancelled, 's').state, 'cancelled');
    const compact = await get(U, id, '?jobs=none', { 'If-None-Match': before.headers.etag });
    assert.equal(compact.status, 200);
    assert.equal(compact.json.state, 'cancelled');
    assert.equal(compact.json.counts.cancelled, 1);
  });
});
