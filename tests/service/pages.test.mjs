// pages.test.mjs - GET /api/workflows/{id} in parts (issue 16, item 3): a
// 10,000-job workflow read page by page with ?jobs_offset and ?jobs_limit
// gives every job exactly once, in order, as the full view has them; the
// compact form (?jobs=none) has the state, progress and counts without the
// jobs; bad values are 400 invalid_query naming the field; another user's
// workflow stays a 404 whatever the query.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, submit, wfId, assertError, workflow, noop, sleepJob, waitWf, jobOf,
} from './harness.mjs';

const U = 'pages-u';
let server;

before(async () => {
  // One slot and a long first job: the 10,000 jobs stay queued behind it,
  // so the views compared below do not change between the reads.
  server = await startServer({ workers: 1, concurrencyLimit: 1, maxActiveUsers: 3 });
}, { timeout: 30000 });

after(async () => {
  if (server) await server.cleanup();
}, { timeout: 30000 });

/** n jobs in one chain after a 60 s sleep: nothing of them moves while the test reads. */
function bigChain(n) {
  const jobs = [sleepJob('first', 60)];
  for (let i = 0; i < n; i++) jobs.push(noop(`j${i}`, { depends_on: [i ? `j${i - 1}` : 'first'] }));
  return workflow('big', jobs);
}

describe('workflow pages', () => {
  test('a 10,000-job workflow read in pages is the full view, in parts', { timeout: 300000 }, async () => {
    const id = wfId(await submit(server, U, bigChain(9999)));
    await waitWf(server, U, id, (w) => jobOf(w, 'first')?.state === 'running', 60000, 'first running');
    const full = await server.api(U, 'GET', `/api/workflows/${id}`);
    assert.equal(full.status, 200);
    assert.equal(full.json.jobs.length, 10000);
    assert.equal(full.json.jobs_page, undefined, 'the full view is not a page');

    const seen = [];
    let offset = 0;
    let pages = 0;
    while (offset !== null) {
      const r = await server.api(U, 'GET', `/api/workflows/${id}?jobs_offset=${offset}&jobs_limit=1500`);
      assert.equal(r.status, 200, r.text.slice(0, 300));
      const p = r.json.jobs_page;
      assert.deepEqual({ offset: p.offset, limit: p.limit, total: p.total }, { offset, limit: 1500, total: 10000 });
      assert.ok(r.json.jobs.length <= 1500);
      assert.deepEqual(r.json.counts, full.json.counts, 'every page has the whole workflow\'s counts');
      seen.push(...r.json.jobs);
      offset = p.next_offset;
      pages++;
    }
    assert.equal(pages, 7);
    assert.equal(seen.length, 10000);
    assert.deepEqual(seen.map((j) => j.job_id), full.json.jobs.map((j) => j.job_id));
    // Attempts and waiting reasons are those of the full view (the running
    // sleep's progress moves between the reads).
    const still = ({ progress, ...rest }) => rest;
    assert.deepEqual(still(seen[0]), still(full.json.jobs[0]));
    assert.deepEqual(seen[9999], full.json.jobs[9999]);
    assert.ok(Array.isArray(seen[0].attempts) && seen[0].attempts.length === 1, 'the running job\'s attempt');

    const last = await server.api(U, 'GET', `/api/workflows/${id}?jobs_offset=10000`);
    assert.equal(last.status, 200);
    assert.deepEqual(last.json.jobs, []);
    assert.equal(last.json.jobs_page.next_offset, null);

    const compact = await server.api(U, 'GET', `/api/workflows/${id}?jobs=none`);
    assert.equal(compact.status, 200);
    assert.equal(compact.json.jobs, undefined);
    assert.equal(compact.json.jobs_page, undefined);
    for (const k of ['id', 'state', 'counts', 'n_jobs']) assert.deepEqual(compact.json[k], full.json[k], k);
    assert.equal(typeof compact.json.progress, 'number');
    assert.ok(compact.text.length < 1000, `compact: ${compact.text.length} bytes`);

    for (const [q, field] of [['jobs=some', 'jobs'], ['jobs_offset=-1', 'jobs_offset'], ['jobs_offset=x', 'jobs_offset'],
      ['jobs_limit=0', 'jobs_limit'], ['jobs_limit=100001', 'jobs_limit']]) {
      const r = await server.api(U, 'GET', `/api/workflows/${id}?${q}`);
      const e = assertError(r, 400, q);
      assert.equal(e.code, 'invalid_query', q);
      assert.equal(e.details?.field, field, q);
    }
    const other = await server.api('pages-other', 'GET', `/api/workflows/${id}?jobs=none`);
    assertError(other, 404, 'another user\'s workflow');
    await server.api(U, 'POST', `/api/workflows/${id}/cancel`);
  });
});
