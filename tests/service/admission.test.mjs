// admission.test.mjs - DESIGN §2: at most max_active_users users active, at
// most concurrency_limit cpus running across every worker, one FIFO line
// with visible positions and reasons, no starvation, and abort while waiting.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, submit, getWf, waitFinal, waitWf, wfId, jobOf, jobsOf, noop, sleepJob, workflow,
  assertIncreasing, mergeBySeq, listItems, waitFor, sleep, WF_FINAL,
} from './harness.mjs';

const LIMIT = 4;
const MAX_USERS = 3;
let server;

before(async () => {
  server = await startServer({ workers: 4, concurrencyLimit: LIMIT, maxActiveUsers: MAX_USERS, pollSeconds: 0.1 });
}, { timeout: 30000 });

after(async () => {
  if (server) await server.cleanup();
}, { timeout: 30000 });

const same = (a, b) => String(a) === String(b);
const ok2xx = (r, what) => assert.ok(r.status >= 200 && r.status < 300, `${what}: ${r.status} ${r.text.slice(0, 300)}`);

/** The queue position an event carries (queue_position assumed; position accepted). */
const eventPosition = (e) => e.queue_position ?? e.position;

/**
 * Replays merged events (every user's stream, merged by seq) and checks the
 * global limits at every step. Returns what it saw.
 */
function replay(events, ownerOf) {
  const runningJobs = new Set();
  const runningWfs = new Map(); // workflow id -> owner
  const admitted = new Set();
  const finished = new Map(); // workflow id -> final state
  const startedJobs = new Map(); // "wf/job" -> count of job.started
  const violations = [];
  let maxRunning = 0;
  let maxActive = 0;
  const activeUsers = () => new Set(runningWfs.values()).size;
  for (const e of events) {
    const wf = String(e.workflow_id);
    if (e.type === 'workflow.admitted') {
      if (admitted.has(wf)) violations.push(`seq ${e.seq}: workflow ${wf} admitted twice`);
      admitted.add(wf);
      runningWfs.set(wf, ownerOf.get(wf) ?? `?${wf}`);
    } else if (e.type === 'workflow.finished') {
      if (finished.has(wf)) violations.push(`seq ${e.seq}: workflow ${wf} finished twice`);
      finished.set(wf, e.state);
      runningWfs.delete(wf);
      for (const k of [...runningJobs]) if (k.startsWith(`${wf}/`)) violations.push(`seq ${e.seq}: workflow ${wf} finished with job ${k} running`);
    } else if (e.type && e.type.startsWith('job.') && e.type !== 'job.progress') {
      const key = `${wf}/${e.job_id}`;
      if (e.type === 'job.started') {
        if (!runningWfs.has(wf)) violations.push(`seq ${e.seq}: job ${key} started but its workflow is not admitted/running`);
        runningJobs.add(key);
        startedJobs.set(key, (startedJobs.get(key) || 0) + 1);
      } else if (e.state !== 'running') {
        runningJobs.delete(key);
      }
    }
    if (runningJobs.size > LIMIT) violations.push(`seq ${e.seq}: ${runningJobs.size} jobs running > limit ${LIMIT}`);
    if (activeUsers() > MAX_USERS) violations.push(`seq ${e.seq}: ${activeUsers()} users active > ${MAX_USERS}: ${[...new Set(runningWfs.values())]}`);
    maxRunning = Math.max(maxRunning, runningJobs.size);
    maxActive = Math.max(maxActive, activeUsers());
  }
  return { violations, maxRunning, maxActive, admitted, finished, startedJobs };
}

describe('admission', () => {
  test('waiting reasons, no starvation, abort while waiting, cancel while running', { timeout: 120000 }, async () => {
    const [h1, h2, h3, w] = ['ab-h1', 'ab-h2', 'ab-h3', 'ab-w'];
    const wsW = await server.ws(w, { since: 0 });
    const wsH1 = await server.ws(h1, { since: 0 });
    const ids = {};
    try {
      ids.h1 = wfId(await submit(server, h1, workflow('hold-1', [
        sleepJob('s1', 30, { branch: 'b1' }), sleepJob('s2', 30, { branch: 'b2' }), sleepJob('s3', 30, { branch: 'b3' }),
        noop('after', { branch: 'b1' }), noop('dep', { branch: 'b4', depends_on: ['s2'] }),
      ])));
      await waitWf(server, h1, ids.h1, (v) => v.state === 'running', 15000, 'hold-1 running');
      ids.h2 = wfId(await submit(server, h2, workflow('hold-2', [sleepJob('s', 30)])));
      await waitWf(server, h2, ids.h2, (v) => v.state === 'running', 15000, 'hold-2 running');
      ids.h3 = wfId(await submit(server, h3, workflow('hold-3', [sleepJob('s', 30)])));
      await waitWf(server, h3, ids.h3, (v) => v.state === 'running', 15000, 'hold-3 running');

      // Five one-cpu sleep jobs want four slots: all four busy, one job waits for a slot.
      await waitFor(async () => (await server.api(w, 'GET', '/api/queue')).json?.running_cpus === LIMIT, 15000, { what: 'all cpus busy' });
      await sleep(500);
      const views = [await getWf(server, h1, ids.h1), await getWf(server, h2, ids.h2), await getWf(server, h3, ids.h3)];
      const sleeps = views.flatMap((v) => jobsOf(v).filter((j) => j.job_id.startsWith('s')));
      assert.equal(sleeps.filter((j) => j.state === 'running').length, LIMIT, `4 running: ${JSON.stringify(sleeps)}`);
      const waiting = sleeps.filter((j) => j.state === 'ready');
      assert.equal(waiting.length, 1, `one ready job waits: ${JSON.stringify(sleeps)}`);
      assert.match(JSON.stringify(waiting[0]), /waiting for a free slot/, 'a ready job says why it waits');
      assert.match(JSON.stringify(waiting[0]), /4 of 4/, 'with the cpus busy of the limit');
      const after1 = jobOf(views[0], 'after');
      assert.equal(after1.state, 'pending');
      assert.match(JSON.stringify(after1), /waiting for s1 \(branch b1\)/, 'a pending job names its branch predecessor');
      const dep = jobOf(views[0], 'dep');
      assert.equal(dep.state, 'pending');
      assert.match(JSON.stringify(dep), /waiting for dependency s2/, 'a pending job names its dependency');

      // A fourth user waits in line, with a position and a reason.
      ids.w = wfId(await submit(server, w, workflow('waiter', [noop('a')])));
      let vw = await waitWf(server, w, ids.w, (v) => v.state === 'queued' && v.queue_position === 1, 5000, 'queued at position 1');
      await sleep(1000);
      vw = await getWf(server, w, ids.w);
      assert.equal(vw.state, 'queued', 'it stays queued while 3 of 3 users are active');
      assert.equal(vw.queue_position, 1);
      assert.equal(typeof vw.waiting_reason, 'string');
      assert.match(vw.waiting_reason, /active user limit/);
      assert.match(vw.waiting_reason, /3 of 3/);

      // No starvation: an active user's new workflow joins the line behind the waiting user.
      ids.h2b = wfId(await submit(server, h2, workflow('h2-more', [noop('a')])));
      await sleep(1500);
      const vb = await getWf(server, h2, ids.h2b);
      assert.equal(vb.state, 'queued', `an active user's new workflow is not admitted while another user waits: ${JSON.stringify(vb).slice(0, 400)}`);
      assert.equal(vb.queue_position, 2, 'it is behind the waiting user');

      const q = await server.api(w, 'GET', '/api/queue');
      assert.equal(q.status, 200);
      assert.equal(q.json.active_users, 3);
      assert.equal(q.json.max_active_users, 3);
      assert.equal(q.json.running_cpus, 4);
      assert.equal(q.json.concurrency_limit, 4);
      assert.ok(q.json.waiting_users >= 1, `waiting_users: ${q.text}`);
      for (const u of [h1, h2, h3]) assert.ok(!q.text.includes(u), `GET /api/queue never names other users (${u})`);
      assert.ok(q.text.includes(String(ids.w)) || /"queue_position"\s*:\s*1\b/.test(q.text), `the caller's position is shown: ${q.text}`);

      // Abort while waiting.
      ok2xx(await server.api(w, 'POST', `/api/workflows/${ids.w}/cancel`), 'cancel a queued workflow');
      const cw = await waitFinal(server, w, ids.w, 5000);
      assert.equal(cw.state, 'cancelled');
      ok2xx(await server.api(w, 'POST', `/api/workflows/${ids.w}/cancel`), 'cancel is idempotent');
      assert.equal((await getWf(server, w, ids.w)).state, 'cancelled');
      // The line moves up: position 2 -> 1 (or admitted at once, since h2 is active).
      await waitWf(server, h2, ids.h2b, (v) => v.state !== 'queued' || v.queue_position === 1, 5000, 'h2-more moves up');

      // Cancel a running workflow: its sleep jobs end long before 30 s.
      const t0 = Date.now();
      ok2xx(await server.api(h1, 'POST', `/api/workflows/${ids.h1}/cancel`), 'cancel a running workflow');
      const c1 = await waitFinal(server, h1, ids.h1, 10000);
      const took = Date.now() - t0;
      assert.ok(took < 10000, `cancelled in ${took} ms`);
      assert.equal(c1.state, 'cancelled');
      for (const j of ['s1', 's2', 's3']) assert.equal(jobOf(c1, j).state, 'cancelled', `${j} cancelled`);
      for (const j of ['after', 'dep']) assert.ok(['cancelled', 'skipped'].includes(jobOf(c1, j).state), `${j}: ${jobOf(c1, j).state}`);
      await wsH1.waitFor((evs) => evs.some((e) => e.type === 'workflow.finished' && same(e.workflow_id, ids.h1)), 5000);
      for (const j of ['s1', 's2', 's3']) {
        const fin = wsH1.events.find((e) => e.type === 'job.finished' && e.job_id === j && same(e.workflow_id, ids.h1));
        assert.equal(fin?.state, 'cancelled', `job.finished ${j}: ${JSON.stringify(fin)}`);
      }
      assert.ok(!wsH1.events.some((e) => e.type === 'job.started' && ['after', 'dep'].includes(e.job_id)), 'jobs after a cancel never start');

      // Freed slots let h2's queued workflow run.
      const vb2 = await waitFinal(server, h2, ids.h2b, 15000);
      assert.equal(vb2.state, 'succeeded');

      // The cancelled waiter never started anything.
      await sleep(500);
      const wEvents = wsW.events.filter((e) => same(e.workflow_id, ids.w));
      assert.ok(!wEvents.some((e) => e.type === 'job.started'), `no job.started for a workflow cancelled while waiting: ${JSON.stringify(wEvents)}`);
      assert.ok(!wEvents.some((e) => e.type === 'workflow.admitted'), 'never admitted');
      const lastW = wEvents.filter((e) => e.type.startsWith('workflow.')).pop();
      assert.equal(lastW?.type, 'workflow.finished');
      assert.equal(lastW?.state, 'cancelled');
      const wv = await getWf(server, w, ids.w);
      for (const j of jobsOf(wv)) assert.ok(['cancelled', 'skipped'].includes(j.state), `job of the cancelled waiter: ${j.state}`);
    } finally {
      for (const [k, u] of [['h1', h1], ['h2', h2], ['h3', h3], ['w', w], ['h2b', h2]]) {
        if (ids[k]) await server.api(u, 'POST', `/api/workflows/${ids[k]}/cancel`).catch(() => {});
      }
      for (const [k, u] of [['h2', h2], ['h3', h3]]) if (ids[k]) await waitFinal(server, u, ids[k], 15000).catch(() => {});
      wsW.close();
      wsH1.close();
    }
  });

  test('a free slot goes to the active user with the fewest running cpus', { timeout: 90000 }, async () => {
    const [x, y] = ['fair-x', 'fair-y'];
    const wsX = await server.ws(x, { since: 0 });
    const wsY = await server.ws(y, { since: 0 });
    let big;
    try {
      const jobs = [];
      for (let i = 0; i < 60; i++) jobs.push(sleepJob(`s${i}`, 0.5, { branch: `b${i}` }));
      big = wfId(await submit(server, x, workflow('big', jobs)));
      await waitFor(async () => (await server.api(x, 'GET', '/api/queue')).json?.running_cpus === LIMIT, 15000, { what: 'x fills every slot' });
      const small = wfId(await submit(server, y, workflow('small', [noop('only')])));
      const t0 = Date.now();
      const fin = await waitFinal(server, y, small, 15000);
      assert.equal(fin.state, 'succeeded');
      await wsY.waitFor((evs) => evs.some((e) => e.type === 'job.started' && same(e.workflow_id, small)), 5000);
      const sub = wsY.events.find((e) => e.type === 'workflow.submitted' && same(e.workflow_id, small));
      const st = wsY.events.find((e) => e.type === 'job.started' && same(e.workflow_id, small));
      assert.ok(sub && st, 'y\'s events');
      const xStartsBetween = wsX.events.filter((e) => e.type === 'job.started' && same(e.workflow_id, big) && e.seq > sub.seq && e.seq < st.seq).length;
      assert.ok(xStartsBetween <= LIMIT, `y's single job got one of the next free slots: x started ${xStartsBetween} jobs in between (took ${Date.now() - t0} ms)`);
      const bigNow = await getWf(server, x, big);
      const bigDone = jobsOf(bigNow).filter((j) => j.state === 'succeeded').length;
      assert.ok(bigDone < 50, `y did not wait for x's backlog (${bigDone} of 60 of x's jobs done)`);
    } finally {
      if (big) await server.api(x, 'POST', `/api/workflows/${big}/cancel`).catch(() => {});
      if (big) await waitFinal(server, x, big, 15000).catch(() => {});
      wsX.close();
      wsY.close();
    }
  });

  test('inside one user: higher priority first, then submission order, then job order', { timeout: 90000 }, async () => {
    const u = 'prio-user';
    const ws = await server.ws(u, { since: 0 });
    let blocker;
    try {
      // Three slots held for long, one freed after 3 s: the freed slot then serves one job at a time.
      blocker = wfId(await submit(server, u, workflow('blocker', [
        sleepJob('h1', 30, { branch: 'a' }), sleepJob('h2', 30, { branch: 'b' }), sleepJob('h3', 30, { branch: 'c' }),
        sleepJob('short', 3, { branch: 'd' }),
      ])));
      await waitWf(server, u, blocker, (v) => jobsOf(v).every((j) => j.state === 'running'), 15000, 'all four running');
      const low = wfId(await submit(server, u, workflow('low', [noop('a')], { priority: 0 })));
      const low2 = wfId(await submit(server, u, workflow('low2', [noop('k1', { branch: 'k1' }), noop('k2', { branch: 'k2' })], { priority: 0 })));
      const high = wfId(await submit(server, u, workflow('high', [noop('a')], { priority: 10 })));
      for (const [id, name] of [[low, 'low'], [low2, 'low2'], [high, 'high']]) await waitFinal(server, u, id, 20000).then((w) => assert.equal(w.state, 'succeeded', name));
      await ws.waitFor((evs) => [low, low2, high].every((id) => evs.some((e) => e.type === 'workflow.finished' && same(e.workflow_id, id))), 10000);
      const startSeq = (id, job) => ws.events.find((e) => e.type === 'job.started' && same(e.workflow_id, id) && e.job_id === job)?.seq;
      const order = [[high, 'a', 'high'], [low, 'a', 'low'], [low2, 'k1', 'low2/k1'], [low2, 'k2', 'low2/k2']]
        .map(([id, job, name]) => [name, startSeq(id, job)]).sort((p, q) => p[1] - q[1]).map(([name]) => name);
      assert.deepEqual(order, ['high', 'low', 'low2/k1', 'low2/k2'], 'start order: priority, then submission, then job order');
    } finally {
      if (blocker) await server.api(u, 'POST', `/api/workflows/${blocker}/cancel`).catch(() => {});
      if (blocker) await waitFinal(server, u, blocker, 15000).catch(() => {});
      ws.close();
    }
  });

  test('200 workflows by 10 users: limits hold, every workflow ends, positions move towards 1', { timeout: 300000 }, async (t) => {
    const users = Array.from({ length: 10 }, (_, i) => `adm-u${i}`);
    const sockets = new Map();
    for (const u of users) sockets.set(u, await server.ws(u, { since: 0 }));
    const ownerOf = new Map();
    const idsOf = new Map(users.map((u) => [u, []]));

    // Poll the queue and each user's waiting workflows while everything runs.
    let stop = false;
    const queueViolations = [];
    const positions = new Map(); // workflow id -> [{t, pos}]
    const badWaiting = [];
    let queueSamples = 0;
    let maxQueueActive = 0;
    let maxQueueCpus = 0;
    const poller = (async () => {
      while (!stop) {
        const q = await server.api(users[0], 'GET', '/api/queue').catch(() => null);
        if (q && q.status === 200) {
          queueSamples++;
          const j = q.json;
          if (j.active_users > j.max_active_users || j.active_users > MAX_USERS) queueViolations.push(`active_users ${j.active_users}`);
          if (j.running_cpus > j.concurrency_limit || j.running_cpus > LIMIT) queueViolations.push(`running_cpus ${j.running_cpus}`);
          maxQueueActive = Math.max(maxQueueActive, j.active_users);
          maxQueueCpus = Math.max(maxQueueCpus, j.running_cpus);
        }
        await Promise.all(users.map(async (u) => {
          const r = await server.api(u, 'GET', '/api/workflows?state=queued&limit=100').catch(() => null);
          if (!r || r.status !== 200) return;
          const t = performance.now();
          const items = listItems(r.json).filter((it) => it && it.state === 'queued');
          // The first waiting workflow in full: GET /api/workflows/{id} shows
          // queue_position and waiting_reason (DESIGN §2, §4).
          const full = [];
          if (items.length) {
            const g = await server.api(u, 'GET', `/api/workflows/${wfId(items[0])}`).catch(() => null);
            if (g && g.status === 200 && g.json.state === 'queued') {
              full.push(g.json);
              if (!Number.isInteger(g.json.queue_position) || g.json.queue_position < 1 ||
                  typeof g.json.waiting_reason !== 'string' || !g.json.waiting_reason) {
                badWaiting.push(JSON.stringify(g.json).slice(0, 300));
              }
            }
          }
          const record = (it, when) => {
            if (it.queue_position === undefined) return; // the list may leave it to the full view
            const id = String(wfId(it));
            if (!Number.isInteger(it.queue_position) || it.queue_position < 1) badWaiting.push(JSON.stringify(it).slice(0, 300));
            if (!positions.has(id)) positions.set(id, []);
            positions.get(id).push({ t: when, pos: it.queue_position });
          };
          for (const it of items) record(it, t);
          for (const it of full) record(it, performance.now());
        }));
        await sleep(150);
      }
    })();

    try {
      // 10 users submit 20 workflows each, in parallel.
      await Promise.all(users.map(async (u, ui) => {
        for (let i = 0; i < 20; i++) {
          const jobs = (i + ui) % 2 === 0
            ? [sleepJob('a', 0.2), noop('b', { branch: 'side' })]
            : [noop('a')];
          const id = String(wfId(await submit(server, u, workflow(`${u}-${i}`, jobs))));
          ownerOf.set(id, u);
          idsOf.get(u).push(id);
        }
      }));
      assert.equal(ownerOf.size, 200);

      // Every workflow ends.
      await waitFor(async () => {
        let done = 0;
        for (const u of users) {
          const r = await server.api(u, 'GET', '/api/workflows?limit=100');
          done += listItems(r.json).filter((w) => WF_FINAL.has(w.state)).length;
        }
        return done === 200;
      }, 240000, { what: 'all 200 workflows to end', interval: 500 });
      stop = true;
      await poller;

      for (const u of users) {
        const s = sockets.get(u);
        const mine = new Set(idsOf.get(u));
        await s.waitFor((evs) => [...mine].every((id) => evs.some((e) => e.type === 'workflow.finished' && same(e.workflow_id, id))), 20000, `${u}'s workflow.finished events`);
        assertIncreasing(s.events, `${u}'s stream`);
        const foreign = s.events.filter((e) => !mine.has(String(e.workflow_id)));
        assert.deepEqual(foreign.slice(0, 3), [], `${u} receives only its own events`);
      }

      const merged = mergeBySeq([...sockets.values()].map((s) => s.events));
      const seqs = new Set();
      for (const s of sockets.values()) for (const e of s.events) {
        assert.ok(!seqs.has(e.seq), `seq ${e.seq} is delivered to one user only`);
        seqs.add(e.seq);
      }
      const r = replay(merged, ownerOf);
      assert.deepEqual(r.violations.slice(0, 10), [], `limits hold at every event (${r.violations.length} violations)`);
      assert.equal(r.finished.size, 200, 'every workflow has one workflow.finished');
      for (const [id, st] of r.finished) assert.equal(st, 'succeeded', `workflow ${id} (${ownerOf.get(id)}) ended ${st}`);
      assert.equal(r.admitted.size, 200, 'every workflow was admitted once');
      assert.ok(r.maxRunning >= 2, `jobs ran concurrently (max ${r.maxRunning})`);
      assert.ok(r.maxActive >= 2, `several users were active at once (max ${r.maxActive})`);
      for (const [k, n] of r.startedJobs) assert.equal(n, 1, `job ${k} started once`);

      // Queue positions in events: >= 1 and only moving towards 1.
      let evPositions = 0;
      const evPos = new Map();
      for (const e of merged) {
        const p = eventPosition(e);
        if (p === undefined || p === null) continue;
        if (e.type !== 'queue.position' && e.type !== 'workflow.queued' && e.type !== 'workflow.submitted') continue;
        if (e.type === 'workflow.submitted' && e.state !== 'queued') continue;
        const id = String(e.workflow_id);
        assert.ok(Number.isInteger(p) && p >= 1, `queue position ${p} >= 1: ${JSON.stringify(e)}`);
        const prev = evPos.get(id);
        assert.ok(prev === undefined || p <= prev, `workflow ${id}: position went from ${prev} up to ${p} (seq ${e.seq})`);
        evPos.set(id, p);
        evPositions++;
      }
      // Positions seen by polling.
      for (const [id, samples] of positions) {
        for (let i = 1; i < samples.length; i++) {
          assert.ok(samples[i].pos <= samples[i - 1].pos, `workflow ${id} (${ownerOf.get(id)}): position went from ${samples[i - 1].pos} up to ${samples[i].pos}`);
        }
      }
      t.diagnostic(`events ${merged.length}; max jobs running ${r.maxRunning}/${LIMIT}; max users active ${r.maxActive}/${MAX_USERS}; ` +
        `queue positions: ${evPositions} in events, ${positions.size} workflows polled; /api/queue samples ${queueSamples}`);
      assert.deepEqual(badWaiting.slice(0, 3), [], 'every waiting workflow shows queue_position >= 1 and a waiting_reason');
      assert.ok(evPositions + positions.size > 0, 'some workflows waited in line and their positions were seen');
      assert.ok(queueSamples > 5, `GET /api/queue was sampled (${queueSamples})`);
      assert.deepEqual(queueViolations.slice(0, 5), [], 'GET /api/queue never shows more than the limits');
      assert.ok(maxQueueActive <= MAX_USERS && maxQueueCpus <= LIMIT);
    } finally {
      stop = true;
      await poller.catch(() => {});
      for (const s of sockets.values()) s.close();
    }
  });
});
