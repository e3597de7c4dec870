// cluster.test.mjs - two `tessera serve` instances on one PostgreSQL database
// (DESIGN §3, §6; docs/architecture.md): a workflow submitted through one
// instance is read, followed over WebSocket and cancelled through the other;
// many workflows from several users spread over both never exceed the
// concurrency limit or the active-user limit (checked from the events). Runs
// when TESSERA_TEST_PG_URL names a server (tests/run-tests.sh starts one);
// otherwise it is skipped and says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, createPgDatabase, dropPgDatabase, submit, getWf, waitFinal, waitWf,
  sleepJob, noop, workflow, assertIncreasing,
} from './harness.mjs';

const PG = process.env.TESSERA_TEST_PG_URL;
const skip = PG ? false : 'TESSERA_TEST_PG_URL is not set (tests/lib/pgserver.sh run ...)';

async function cluster(opts) {
  const db = createPgDatabase();
  const a = await startServer({ ...opts, db });
  const b = await startServer({ ...opts, db });
  return { a, b, db, async cleanup() { await a.cleanup(); await b.cleanup(); dropPgDatabase(db); } };
}

test('a workflow submitted on one instance is followed and cancelled on the other', { skip, timeout: 120000 }, async () => {
  const c = await cluster({ concurrencyLimit: 2, pollSeconds: 1 });
  try {
    const ws = await c.b.ws('alice', { since: 0 });
    const quick = await submit(c.a, 'alice', workflow('quick', [noop('a'), noop('b', { depends_on: ['a'] })]));
    const done = await waitFinal(c.b, 'alice', quick.id, 30000);
    assert.equal(done.state, 'succeeded');
    await ws.waitFor((evs) => evs.some((e) => e.workflow_id === quick.id && e.type === 'workflow.finished'), 15000);
    assertIncreasing(ws.events, 'instance B stream');
    const types = ws.events.filter((e) => e.workflow_id === quick.id).map((e) => e.type);
    assert.deepEqual(types.slice(0, 2), ['workflow.submitted', 'workflow.queued']);
    // a long one, cancelled through the other instance
    const slow = await submit(c.a, 'alice', workflow('slow', [sleepJob('s', 30)]));
    await waitWf(c.b, 'alice', slow.id, (w) => w.jobs?.[0]?.state === 'running', 20000, 'running');
    const r = await c.b.api('alice', 'POST', `/api/workflows/${slow.id}/cancel`);
    assert.ok(r.status === 200 || r.status === 202, `cancel: ${r.status} ${r.text}`);
    const cancelled = await waitFinal(c.a, 'alice', slow.id, 30000);
    assert.equal(cancelled.state, 'cancelled');
    // another user sees neither, on either instance
    assert.equal((await c.b.api('bob', 'GET', `/api/workflows/${quick.id}`)).status, 404);
  } finally {
    await c.cleanup();
  }
});

test('many workflows from several users over both instances keep both limits', { skip, timeout: 300000 }, async () => {
  const limit = 3;
  const maxUsers = 2;
  const c = await cluster({ concurrencyLimit: limit, maxActiveUsers: maxUsers, pollSeconds: 0.5 });
  try {
    const users = ['u0', 'u1', 'u2', 'u3', 'u4'];
    const ids = [];
    for (let i = 0; i < 40; i++) {
      const user = users[i % users.length];
      const via = i % 2 ? c.b : c.a;
      const w = await submit(via, user, workflow(`w${i}`, [sleepJob('x', 0.2, { branch: 'p' }), noop('y', { branch: 'q' })]));
      ids.push([user, w.id]);
    }
    for (const [user, id] of ids) assert.equal((await waitFinal(c.a, user, id, 240000)).state, 'succeeded');
    // every user's events, in one seq order
    const all = [];
    for (const user of users) {
      const r = await c.b.api(user, 'GET', '/api/events?since=0&limit=100000');
      assert.equal(r.status, 200);
      all.push(...(r.json.events || r.json));
    }
    all.sort((x, y) => x.seq - y.seq);
    const running = new Map();
    const active = new Map();
    let maxRunning = 0;
    let maxActive = 0;
    for (const e of all) {
      const key = `${e.workflow_id}/${e.job_id}`;
      if (e.type === 'job.started') running.set(key, 1);
      if (e.type === 'job.finished' || e.type === 'job.retrying') running.delete(key);
      if (e.type === 'workflow.admitted') active.set(e.workflow_id, ids.find(([, id]) => id === e.workflow_id)[0]);
      if (e.type === 'workflow.finished') active.delete(e.workflow_id);
      maxRunning = Math.max(maxRunning, running.size);
      maxActive = Math.max(maxActive, new Set(active.values()).size);
    }
    assert.ok(maxRunning <= limit, `at most ${limit} jobs ran at once, saw ${maxRunning}`);
    assert.ok(maxActive <= maxUsers, `at most ${maxUsers} users active at once, saw ${maxActive}`);
    assert.ok(maxRunning >= 2, `the limit was pressed (saw ${maxRunning} at once)`);
  } finally {
    await c.cleanup();
  }
});
