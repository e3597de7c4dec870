// isolation.test.mjs - DESIGN §4 "Isolation": another user's workflow, job,
// log, result or event is answered exactly as a missing one (404), and a
// user's WebSocket never carries another user's events.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, submit, waitFinal, waitWf, getWf, listAll, assertError, wfId, jobOf, noop, sleepJob,
  workflow, wideNoop, assertIncreasing, healthy, sleep,
} from './harness.mjs';

const A = 'iso-a';
const B = 'iso-b';
let server;
let wsA;
let wsB;
const idsOfA = new Set(); // every workflow A submitted
const idsOfB = new Set();

before(async () => {
  server = await startServer({ workers: 2, concurrencyLimit: 4, maxActiveUsers: 3 });
  wsA = await server.ws(A, { since: 0 });
  wsB = await server.ws(B, { since: 0 });
}, { timeout: 30000 });

after(async () => {
  wsA?.close();
  wsB?.close();
  if (server) await server.cleanup();
}, { timeout: 30000 });

/** The message with every id replaced, to compare "not found" answers. */
function normalise(res, ids) {
  let m = String(res.json?.error?.message ?? '');
  for (const id of [...ids].map(String).sort((a, b) => b.length - a.length)) {
    m = m.replace(new RegExp(`(?<![0-9])${id}(?![0-9])`, 'g'), '<ID>');
  }
  return m;
}

describe('isolation', () => {
  test('user B gets 404 on every endpoint for user A\'s objects, exactly as for missing ones', { timeout: 120000 }, async () => {
    const done = wfId(await submit(server, A, workflow('a-done', [noop('j1'), noop('j2', { branch: 'x' })])));
    await waitFinal(server, A, done, 30000);
    const running = wfId(await submit(server, A, workflow('a-running', [sleepJob('j1', 30), noop('j2')])));
    await waitWf(server, A, running, (w) => jobOf(w, 'j1')?.state === 'running', 15000, 'j1 running');
    const mine = wfId(await submit(server, B, workflow('b-own', [noop('j1')])));
    idsOfA.add(String(done));
    idsOfA.add(String(running));
    idsOfB.add(String(mine));
    const missing = Math.max(Number(done), Number(running), Number(mine)) + 1000000;

    const resList = await server.api(A, 'GET', `/api/workflows/${done}/jobs/j1/results`);
    assert.equal(resList.status, 200);
    const files = Array.isArray(resList.json) ? resList.json : (resList.json?.files || resList.json?.results || []);
    const fileName = (files[0] && (files[0].name || files[0])) || 'summary.json';

    const endpoints = [
      ['GET', (id) => `/api/workflows/${id}`],
      ['DELETE', (id) => `/api/workflows/${id}`],
      ['GET', (id) => `/api/workflows/${id}/progress`],
      ['POST', (id) => `/api/workflows/${id}/cancel`],
      ['POST', (id) => `/api/workflows/${id}/jobs/j1/cancel`],
      ['POST', (id) => `/api/workflows/${id}/jobs/j1/retry`],
      ['GET', (id) => `/api/workflows/${id}/jobs/j1/log`],
      ['GET', (id) => `/api/workflows/${id}/jobs/j1/results`],
      ['GET', (id) => `/api/workflows/${id}/jobs/j1/results/${encodeURIComponent(String(fileName))}`],
      ['GET', (id) => `/api/workflows/${id}/jobs/no-such-job/log`],
    ];
    for (const target of [done, running]) {
      for (const [method, p] of endpoints) {
        const theirs = await server.api(B, method, p(target));
        const none = await server.api(B, method, p(missing));
        const e1 = assertError(theirs, 404, `B: ${method} ${p(target)} (A's)`);
        const e2 = assertError(none, 404, `B: ${method} ${p(missing)} (missing)`);
        assert.equal(e1.code, e2.code, `${method} ${p(target)}: same error code as a missing workflow`);
        assert.equal(normalise(theirs, [target, missing]), normalise(none, [target, missing]),
          `${method} ${p(target)}: same message as a missing workflow`);
        assert.deepEqual(Object.keys(theirs.json.error).sort(), Object.keys(none.json.error).sort());
      }
      // The event stream, filtered on A's workflow: plain GET and WebSocket.
      const plainTheirs = await server.api(B, 'GET', `/api/events?since=0&workflow=${target}`);
      const plainNone = await server.api(B, 'GET', `/api/events?since=0&workflow=${missing}`);
      assert.equal(plainTheirs.status, plainNone.status, 'GET /api/events?workflow=<A\'s>: as for a missing one');
      assert.ok(plainTheirs.status >= 400 && plainTheirs.status < 500, `GET /api/events?workflow=<A's>: ${plainTheirs.status} ${plainTheirs.text}`);
      assert.equal(plainTheirs.json?.error?.code, plainNone.json?.error?.code);
      for (const wid of [target, missing]) {
        const c = server.wsClient(B, { since: 0, workflow: wid });
        await assert.rejects(c.opened, `B's WebSocket on workflow ${wid} is refused`);
        assert.equal(c.rejected?.status, 404, `WebSocket ?workflow=${wid} for B: ${JSON.stringify(c.rejected)}`);
        assertError(c.rejected, 404, 'WebSocket refusal');
      }
    }

    // B's lists and queue never show A.
    const listed = await listAll(server, B);
    assert.deepEqual(listed.map((w) => String(wfId(w))), [String(mine)], 'B lists only its own workflow');
    const q = await server.api(B, 'GET', '/api/queue');
    assert.equal(q.status, 200);
    assert.ok(!q.text.includes(A), 'the queue never names other users');
    assert.ok(!q.text.includes('a-running') && !q.text.includes('a-done'), 'nor their workflows');

    // Nothing B did changed A's workflows.
    await sleep(1000);
    const d = await getWf(server, A, done);
    assert.equal(d.state, 'succeeded', 'B\'s DELETE did not remove A\'s finished workflow');
    const r = await getWf(server, A, running);
    assert.equal(r.state, 'running', 'B\'s cancel did not cancel A\'s workflow');
    assert.equal(jobOf(r, 'j1').state, 'running', 'B\'s job cancel did not cancel A\'s job');

    const c = await server.api(A, 'POST', `/api/workflows/${running}/cancel`);
    assert.ok(c.status >= 200 && c.status < 300);
    await waitFinal(server, A, running, 15000);
    assert.ok(await healthy(server));
  });

  test('B\'s WebSocket receives none of A\'s events over thousands of events', { timeout: 240000 }, async () => {
    const aIds = [];
    aIds.push(wfId(await submit(server, A, wideNoop('a-wide-1', 500))));
    const filtered = await server.ws(A, { since: 0, workflow: aIds[0] });
    aIds.push(wfId(await submit(server, A, wideNoop('a-wide-2', 500))));
    const bIds = [];
    for (let i = 0; i < 3; i++) bIds.push(wfId(await submit(server, B, workflow(`b-${i}`, [noop('a'), noop('b', { branch: 'y' })]))));
    try {
      for (const id of aIds) await waitFinal(server, A, id, 150000);
      for (const id of bIds) await waitFinal(server, B, id, 30000);
      const finished = (ws, ids) => (evs) => ids.every((id) => evs.some((e) => e.type === 'workflow.finished' && String(e.workflow_id) === String(id)));
      await wsA.waitFor(finished(wsA, aIds), 15000, 'A\'s workflow.finished events');
      await wsB.waitFor(finished(wsB, bIds), 15000, 'B\'s workflow.finished events');
      await sleep(500);

      for (const id of aIds) idsOfA.add(String(id));
      for (const id of bIds) idsOfB.add(String(id));
      const aSet = new Set(aIds.map(String));
      const bSet = idsOfB;
      const aEvents = wsA.events.filter((e) => aSet.has(String(e.workflow_id)));
      assert.ok(aEvents.length >= 2000, `thousands of A's events (got ${aEvents.length})`);
      const leaked = wsB.events.filter((e) => !bSet.has(String(e.workflow_id)));
      assert.deepEqual(leaked.slice(0, 5), [], `B received ${leaked.length} events that are not B's`);
      assert.ok(wsB.events.length > 0, 'B received its own events');
      // A's stream carries only A's workflows (the earlier test's included).
      const leakedToA = wsA.events.filter((e) => !idsOfA.has(String(e.workflow_id)));
      assert.deepEqual(leakedToA.slice(0, 5), [], `A received ${leakedToA.length} events that are not A's`);
      assertIncreasing(wsA.events, 'A\'s stream');
      assertIncreasing(wsB.events, 'B\'s stream');
      // A filtered stream carries exactly that workflow's events.
      await filtered.waitFor((evs) => evs.some((e) => e.type === 'workflow.finished'), 10000);
      const want = wsA.events.filter((e) => String(e.workflow_id) === String(aIds[0])).map((e) => e.seq);
      assert.ok(filtered.events.every((e) => String(e.workflow_id) === String(aIds[0])), 'the filtered stream holds only its workflow');
      assert.deepEqual(filtered.events.map((e) => e.seq), want, 'the filtered stream misses nothing');
    } finally {
      filtered.close();
    }
  });
});
