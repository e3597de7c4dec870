// durability.test.mjs - DESIGN §2 "Nothing is lost": kill -9 of any HTTP
// worker or of the scheduler under load loses no acknowledged (201)
// workflow, the master brings the process back and the service keeps
// answering; kill -9 of every process and a restart lose nothing either,
// and no job is recorded as succeeded twice.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, wfId, listAll, noop, sleepJob, workflow, childrenOf, processTitle, waitFor, sleep,
  httpRequest, WF_FINAL, assertIncreasing,
} from './harness.mjs';

let server;

before(async () => {
  server = await startServer({ workers: 4, concurrencyLimit: 4, maxActiveUsers: 3, pollSeconds: 0.1 });
}, { timeout: 30000 });

after(async () => {
  if (server) await server.cleanup();
}, { timeout: 30000 });

const same = (a, b) => String(a) === String(b);

async function readyz() {
  try {
    return (await httpRequest(`${server.url}/readyz`, { timeoutMs: 3000 })).status === 200;
  } catch {
    return false;
  }
}

/** Waits until every id of acked (id -> user) is listed by its user in a final state. */
async function waitAllFinal(acked, timeoutMs) {
  const byUser = new Map();
  for (const [id, u] of acked) {
    if (!byUser.has(u)) byUser.set(u, new Set());
    byUser.get(u).add(id);
  }
  let missing = [];
  let unfinished = [];
  let states = new Map();
  try {
    await waitFor(async () => {
      missing = [];
      unfinished = [];
      states = new Map();
      for (const [u, ids] of byUser) {
        const listed = new Map((await listAll(server, u, {}, { limit: 100 })).map((w) => [String(wfId(w)), w.state]));
        for (const id of ids) {
          if (!listed.has(id)) missing.push(id);
          else if (!WF_FINAL.has(listed.get(id))) unfinished.push(id);
          states.set(id, listed.get(id));
        }
      }
      return missing.length === 0 && unfinished.length === 0;
    }, timeoutMs, { what: 'every acknowledged workflow to be found and to end', interval: 1000 });
  } catch (e) {
    e.message += `; missing ${missing.length} (${missing.slice(0, 10)}), unfinished ${unfinished.length} (${unfinished.slice(0, 10)})`;
    throw e;
  }
  // GET each one directly too (a workflow may be missing from a list but not from GET, or vice versa).
  for (const [id, u] of acked) {
    const r = await server.api(u, 'GET', `/api/workflows/${id}`);
    assert.equal(r.status, 200, `acknowledged workflow ${id} of ${u} is found: ${r.status}`);
  }
  return states;
}

/** Replays each user's events and checks: one workflow.finished per
 *  workflow, no job recorded as succeeded twice. */
async function checkEvents(acked) {
  const users = [...new Set(acked.values())];
  const starts = new Map(); // "wf/job" -> number of job.started (attempts)
  for (const u of users) {
    const ids = [...acked].filter(([, v]) => v === u).map(([id]) => id);
    const ws = await server.ws(u, { since: 0 });
    try {
      await ws.waitFor((evs) => ids.every((id) => evs.some((e) => e.type === 'workflow.finished' && same(e.workflow_id, id))), 30000,
        `${u}'s workflow.finished events`);
      assertIncreasing(ws.events, `${u}'s replay`);
      const finishedWf = new Map();
      const succeededJob = new Map();
      for (const e of ws.events) {
        if (e.type === 'workflow.finished') finishedWf.set(String(e.workflow_id), (finishedWf.get(String(e.workflow_id)) || 0) + 1);
        if (e.type === 'job.started') {
          const k = `${e.workflow_id}/${e.job_id}`;
          starts.set(k, (starts.get(k) || 0) + 1);
        }
        if (e.type === 'job.finished' && e.state === 'succeeded') {
          const k = `${e.workflow_id}/${e.job_id}`;
          succeededJob.set(k, (succeededJob.get(k) || 0) + 1);
        }
      }
      for (const id of ids) assert.equal(finishedWf.get(id), 1, `workflow ${id}: one workflow.finished`);
      for (const [k, n] of succeededJob) assert.equal(n, 1, `job ${k} recorded as succeeded ${n} times`);
    } finally {
      ws.close();
    }
  }
  return starts;
}

describe('durability', () => {
  test('kill -9 of each worker and of the scheduler under load loses no acknowledged workflow', { timeout: 300000 }, async (t) => {
    const master = server.pid;
    const original = server.children();
    assert.ok(original.length >= 2, `the master has children (scheduler + workers): ${original}`);
    const titles = new Map(original.map((p) => [p, processTitle(p)]));
    // The scheduler first when its title tells it apart, then every other child in turn.
    const order = [...original].sort((a, b) => Number(/sched/i.test(titles.get(b))) - Number(/sched/i.test(titles.get(a))));

    const users = ['dur-u0', 'dur-u1', 'dur-u2'];
    const acked = new Map();
    const failures = [];
    let stopLoad = false;
    const load = users.map(async (u) => {
      for (let i = 0; i < 400 && !stopLoad; i++) {
        try {
          const r = await server.api(u, 'POST', '/api/workflows',
            workflow(`${u}-${i}`, [sleepJob('a', 0.2), noop('b')]), {}, { timeoutMs: 15000 });
          if (r.status === 201) acked.set(String(wfId(r.json)), u);
          else failures.push(`${r.status} ${r.text.slice(0, 100)}`);
        } catch (e) {
          failures.push(e.code || e.message);
        }
        await sleep(150);
      }
    });

    const killed = [];
    try {
      await sleep(1500);
      for (const pid of order) {
        const kids = childrenOf(master);
        if (!kids.includes(pid)) continue;
        process.kill(pid, 'SIGKILL');
        killed.push(`${pid} ${titles.get(pid)}`);
        await waitFor(() => {
          const now = childrenOf(master);
          return !now.includes(pid) && now.length >= original.length;
        }, 15000, { what: `the master to replace ${pid} (${titles.get(pid)})` });
        await waitFor(readyz, 10000, { what: '/readyz 200 after the kill' });
        await sleep(1500);
      }
    } finally {
      stopLoad = true;
      await Promise.all(load);
    }
    assert.equal(server.exit, null, `the master survives: ${JSON.stringify(server.exit)} ${server.output.slice(-500)}`);
    assert.ok(killed.length >= original.length, `every child was killed once: ${killed.join('; ')}`);
    assert.ok(acked.size >= 20, `enough workflows were acknowledged under load (${acked.size}; failures: ${failures.slice(0, 5)})`);
    // The service kept answering: most submissions got through.
    assert.ok(failures.length <= Math.max(10, acked.size / 5), `few requests failed during the kills: ${failures.length} (${failures.slice(0, 5)})`);

    t.diagnostic(`killed ${killed.length} children (${killed.map((k) => k.replace(/ \/.*\[/, ' [')).join('; ')}); ${acked.size} workflows acknowledged, ${failures.length} requests failed`);
    const states = await waitAllFinal(acked, 180000);
    const notOk = [...states].filter(([, s]) => s !== 'succeeded');
    assert.deepEqual(notOk.slice(0, 10), [], `every acknowledged workflow succeeded (${notOk.length} did not)`);
    await checkEvents(acked);
    assert.ok(await readyz());
  });

  test('kill -9 of every process: a restart loses no acknowledged workflow', { timeout: 240000 }, async () => {
    const u = 'dur-all';
    const acked = new Map();
    for (let i = 0; i < 20; i++) {
      const r = await server.api(u, 'POST', '/api/workflows', workflow(`all-${i}`, [sleepJob('a', 1), noop('b')]));
      assert.equal(r.status, 201, r.text);
      acked.set(String(wfId(r.json)), u);
    }
    await waitFor(async () => (await server.api(u, 'GET', '/api/queue')).json?.running_cpus > 0, 15000, { what: 'jobs running' });
    await sleep(300);
    await server.restart({ hard: true });
    assert.ok(await readyz(), '/readyz after the restart');
    const states = await waitAllFinal(acked, 180000);
    const notOk = [...states].filter(([, s]) => s !== 'succeeded');
    assert.deepEqual(notOk, [], 'every acknowledged workflow succeeded after the restart');
    const starts = await checkEvents(acked);
    const rerun = [...starts].filter(([, n]) => n >= 2);
    assert.ok(rerun.length >= 1, 'the jobs that were running at the kill were run again as new attempts');
  });

  test('kill -9 of every process during a POST flood: every acknowledged submission is there after the restart', { timeout: 180000 }, async (t) => {
    // Many submissions in flight at once are group commits (one fsync for
    // several, store.h): each 201 must still mean "on stable storage". A
    // server of its own: the flood's thousands of jobs would still be
    // running in the shared one when the other tests kill it.
    const server = await startServer({ workers: 2, concurrencyLimit: 4, pollSeconds: 0.1 });
    const users = ['flood-u0', 'flood-u1', 'flood-u2'];
    const acked = new Map(); // id -> {user, name}
    const failed = [];
    let stop = false;
    let n = 0;
    const jobs = Array.from({ length: 10 }, (_, i) => (i ? { ...noop(`j${i}`), depends_on: [`j${i - 1}`] } : noop('j0')));
    const loops = Array.from({ length: 24 }, async (_, k) => {
      const u = users[k % users.length];
      while (!stop) {
        const name = `flood-${k}-${n++}`;
        try {
          const r = await server.api(u, 'POST', '/api/workflows', workflow(name, jobs), {}, { timeoutMs: 15000 });
          if (r.status === 201) {
            assert.equal(r.json.name, name);
            assert.ok(!acked.has(String(wfId(r.json))), `id ${wfId(r.json)} acknowledged twice`);
            acked.set(String(wfId(r.json)), { user: u, name });
          } else failed.push(r.status);
        } catch (e) {
          failed.push(e.code || e.message);
          await sleep(50);
        }
      }
    });
    try {
      await waitFor(() => acked.size >= 150, 60000, { what: '150 submissions acknowledged under the flood' });
      await server.restart({ hard: true });
      const before = acked.size;
      await waitFor(() => acked.size >= before + 50, 60000, { what: 'submissions acknowledged after the restart' });
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    t.diagnostic(`${acked.size} submissions acknowledged around a kill -9 of every process; ${failed.length} requests failed (in flight at the kill, or refused while it restarted)`);
    const missing = [];
    try {
      for (const [id, { user, name }] of acked) {
        const r = await server.api(user, 'GET', `/api/workflows/${id}?jobs=none`);
        if (r.status !== 200 || r.json.name !== name) missing.push(`${id}: ${r.status} ${r.json?.name}`);
      }
    } finally {
      await server.cleanup();
    }
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged submissions lost`);
  });
});
