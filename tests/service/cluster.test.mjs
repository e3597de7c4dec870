// cluster.test.mjs - two `tessera serve` instances on one PostgreSQL database
// behind nginx (deploy/nginx.conf via tests/lib/nginx.sh; DESIGN §3, §6;
// docs/architecture.md): a workflow submitted through one instance is read,
// followed over WebSocket through nginx and cancelled through the other;
// 200 workflows from 10 users spread over both instances never exceed the
// concurrency limit or the active-user limit (checked from the events), and
// the queue positions users see are the same through either instance and
// form one line. Runs when TESSERA_TEST_PG_URL names a server
// (tests/run-tests.sh starts one); otherwise it is skipped and says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, createPgDatabase, dropPgDatabase, submit, getWf, waitFinal, waitWf,
  sleepJob, noop, workflow, assertIncreasing, EventClient, REPO_ROOT, listAll, waitFor,
} from './harness.mjs';

const PG = process.env.TESSERA_TEST_PG_URL;
const skip = PG ? false : 'TESSERA_TEST_PG_URL is not set (tests/lib/pgserver.sh run ...)';

const NGINX = path.join(REPO_ROOT, 'tests/lib/nginx.sh');

/** Two instances on one fresh database, and nginx in front of both. */
async function cluster(opts) {
  const db = createPgDatabase();
  const a = await startServer({ ...opts, db });
  const b = await startServer({ ...opts, db });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-nginx-'));
  let front;
  try {
    front = execFileSync(NGINX, ['start', `${dir}/n`, `127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
      { encoding: 'utf8' }).trim();
  } catch (e) {
    await a.cleanup(); await b.cleanup(); dropPgDatabase(db);
    throw e;
  }
  const cleanup = async () => {
    try { execFileSync(NGINX, ['stop', `${dir}/n`]); } catch { /* gone */ }
    fs.rmSync(dir, { recursive: true, force: true });
    await a.cleanup();
    await b.cleanup();
    dropPgDatabase(db);
  };
  return { a, b, db, front, cleanup };
}

test('a workflow submitted on one instance is followed through nginx and cancelled on the other', { skip, timeout: 120000 }, async () => {
  const c = await cluster({ concurrencyLimit: 2, pollSeconds: 1 });
  try {
    const ws = new EventClient(`${c.front.replace('http', 'ws')}/api/events?since=0`, { 'X-User-ID': 'alice' });
    await ws.opened;
    const viaB = await c.b.ws('alice', { since: 0 });
    const quick = await submit(c.a, 'alice', workflow('quick', [noop('a'), noop('b', { depends_on: ['a'] })]));
    const done = await waitFinal(c.b, 'alice', quick.id, 30000);
    assert.equal(done.state, 'succeeded');
    await ws.waitFor((evs) => evs.some((e) => e.workflow_id === quick.id && e.type === 'workflow.finished'), 15000);
    await viaB.waitFor((evs) => evs.some((e) => e.workflow_id === quick.id && e.type === 'workflow.finished'), 15000);
    assertIncreasing(ws.events, 'the stream through nginx');
    const types = ws.events.filter((e) => e.workflow_id === quick.id).map((e) => e.type);
    assert.deepEqual(types.slice(0, 2), ['workflow.submitted', 'workflow.queued']);
    assert.deepEqual(viaB.events.map((e) => e.seq), ws.events.map((e) => e.seq).slice(0, viaB.events.length));
    // a long one, cancelled through the other instance
    const slow = await submit(c.a, 'alice', workflow('slow', [sleepJob('s', 30)]));
    await waitWf(c.b, 'alice', slow.id, (w) => w.jobs?.[0]?.state === 'running', 20000, 'running');
    const r = await fetch(`${c.front}/api/workflows/${slow.id}/cancel`, { method: 'POST', headers: { 'X-User-ID': 'alice' } })
      .then(async (res) => ({ status: res.status, text: await res.text() }));
    assert.ok(r.status === 200 || r.status === 202, `cancel: ${r.status} ${r.text}`);
    const cancelled = await waitFinal(c.a, 'alice', slow.id, 30000);
    assert.equal(cancelled.state, 'cancelled');
    // another user sees neither, on either instance
    assert.equal((await c.b.api('bob', 'GET', `/api/workflows/${quick.id}`)).status, 404);
    await ws.waitFor((evs) => evs.some((e) => e.workflow_id === slow.id && e.type === 'workflow.finished'), 15000);
    ws.close();
    // what a site watches across instances, on either instance's /metrics
    const m = (await c.b.api(null, 'GET', '/metrics')).text;
    assert.match(m, /^tessera_leader_term [1-9]\d*$/m);
    assert.match(m, /^tessera_leader_info\{owner="[^"]+"\} 1$/m);
    assert.match(m, /^tessera_event_wakeups_total\{by="notify"\} [1-9]\d*$/m, 'B was woken by NOTIFY of A\'s commits');
    assert.match(m, /^tessera_store_call_seconds_count\{call="events_since"\} [1-9]\d*$/m);
    assert.match(m, /^tessera_event_delivery_seconds_count [1-9]\d*$/m);
    // ... and only there: the proxy does not publish it
    for (const p of ['/metrics', '/metrics?x=1']) {
      const res = await fetch(`${c.front}${p}`);
      assert.equal(res.status, 404, `${p} through nginx`);
      assert.doesNotMatch(await res.text(), /tessera_/, `${p} through nginx`);
    }
  } finally {
    await c.cleanup();
  }
});

test('200 workflows from 10 users over both instances keep both limits and one line', { skip, timeout: 600000 }, async () => {
  const limit = 3;
  const maxUsers = 2;
  const c = await cluster({ concurrencyLimit: limit, maxActiveUsers: maxUsers, pollSeconds: 0.5 });
  try {
    const users = Array.from({ length: 10 }, (_, i) => `u${i}`);
    const owner = new Map();
    // two users become active with long workflows: the line stands still
    for (const [i, user] of ['u0', 'u1'].entries()) {
      const w = await submit(i ? c.b : c.a, user, workflow('long', [sleepJob('s', 25)]));
      owner.set(w.id, user);
      await waitWf(c.a, user, w.id, (x) => x.state === 'running', 30000, 'admitted');
    }
    for (let i = 0; i < 198; i++) {
      const user = users[2 + (i % 8)];
      const w = await submit(i % 2 ? c.b : c.a, user,
        workflow(`w${i}`, [noop('x', { branch: 'p' }), noop('y', { branch: 'q' })]));
      owner.set(w.id, user);
    }
    // the line as each user sees it, through either instance: the same, and one line 1..N
    const lines = [];
    for (const inst of [c.a, c.b]) {
      const seen = [];
      for (const user of users) {
        for (const w of await listAll(inst, user, { state: 'queued' })) seen.push([w.id, w.queue_position]);
      }
      seen.sort((x, y) => x[0] - y[0]);
      lines.push(seen);
    }
    const still = await c.a.api('u0', 'GET', `/api/workflows/${[...owner.keys()][0]}`);
    if (still.json.state === 'running') { // the line did not move while it was read
      assert.deepEqual(lines[1], lines[0], 'both instances show the same positions');
      assert.deepEqual(lines[0].map(([, p]) => p), lines[0].map((_, k) => k + 1), 'positions 1..N in submission order');
    }
    for (const [id, user] of owner) {
      const w = await waitFinal(c.b, user, id, 480000);
      assert.equal(w.state, 'succeeded', `workflow ${id} of ${user}: ${JSON.stringify(w.jobs.map((j) => [j.job_id, j.state, j.reason, j.attempts]))}`);
    }
    // every user's events, merged into one seq order
    const all = [];
    for (const user of users) {
      for (let since = 0; ;) { // page by page (the service caps a page)
        const r = await c.b.api(user, 'GET', `/api/events?since=${since}`);
        assert.equal(r.status, 200);
        const page = r.json.events || r.json;
        if (!page.length) break;
        all.push(...page);
        since = page[page.length - 1].seq;
      }
    }
    all.sort((x, y) => x.seq - y.seq);
    const running = new Set();
    const active = new Map();
    let maxRunning = 0;
    let maxActive = 0;
    for (const e of all) {
      const key = `${e.workflow_id}/${e.job_id}`;
      if (e.type === 'job.started') running.add(key);
      if (e.type === 'job.finished' || e.type === 'job.retrying') running.delete(key);
      if (e.type === 'workflow.admitted') active.set(e.workflow_id, owner.get(e.workflow_id));
      if (e.type === 'workflow.finished') active.delete(e.workflow_id);
      maxRunning = Math.max(maxRunning, running.size);
      maxActive = Math.max(maxActive, new Set(active.values()).size);
    }
    assert.equal(all.filter((e) => e.type === 'workflow.finished').length, 200);
    assert.ok(maxRunning <= limit, `at most ${limit} jobs ran at once, saw ${maxRunning}`);
    assert.ok(maxActive <= maxUsers, `at most ${maxUsers} users active at once, saw ${maxActive}`);
    assert.ok(maxRunning >= 2, `the limit was pressed (saw ${maxRunning} at once)`);
  } finally {
    await c.cleanup();
  }
});

/** Does the instance's log say its scheduler took the lead (since `from` bytes)? */
function tookLead(server, from = 0) {
  try {
    return fs.readFileSync(server.logPath, 'utf8').slice(from).includes('took the scheduler lease');
  } catch {
    return false;
  }
}

test('kill -9 of the leading instance: the other leads within the lease, jobs re-run as new attempts, none succeeds twice', { skip, timeout: 240000 }, async () => {
  const c = await cluster({ concurrencyLimit: 4, pollSeconds: 0.5 });
  try {
    await waitFor(() => tookLead(c.a) || tookLead(c.b), 30000, { what: 'a leader' });
    const [leader, other] = tookLead(c.a) ? [c.a, c.b] : [c.b, c.a];
    const mark = fs.readFileSync(other.logPath, 'utf8').length;
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const w = await submit(other, 'fo', workflow(`fo${i}`, [sleepJob('s', 6), noop('after', { depends_on: ['s'] })]));
      ids.push(w.id);
    }
    for (const id of ids) await waitWf(other, 'fo', id, (w) => w.jobs?.[0]?.state === 'running', 30000, 'running');
    const killedAt = Date.now();
    await leader.kill9();
    await waitFor(() => tookLead(other, mark), 5000 + 15000, { what: 'the other instance to lead', interval: 100 });
    const tookOver = Date.now() - killedAt;
    console.log(`# failover: the other instance led ${tookOver} ms after kill -9 (lease 5 s)`);
    for (const id of ids) {
      const w = await waitFinal(other, 'fo', id, 120000);
      assert.equal(w.state, 'succeeded', `workflow ${id} after failover`);
      for (const j of w.jobs) {
        const won = (j.attempts || []).filter((a) => a.outcome === 'succeeded');
        assert.equal(won.length, 1, `job ${j.job_id} of ${id} succeeded once: ${JSON.stringify(j.attempts)}`);
      }
      const s = w.jobs.find((j) => j.job_id === 's');
      assert.ok(s.attempts.length >= 2, `the interrupted job ran again as a new attempt: ${JSON.stringify(s.attempts)}`);
      assert.equal(s.attempts[0].outcome, 'interrupted');
      assert.match(s.attempts[0].reason, /interrupted/);
    }
  } finally {
    await c.cleanup();
  }
});
