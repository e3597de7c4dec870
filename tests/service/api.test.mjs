// api.test.mjs - the HTTP API of DESIGN §4 end to end: operations endpoints,
// request ids, OpenAPI, metrics, the workflow life cycle, job commands,
// pagination and the original design's compatibility request.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, submit, getWf, waitFinal, waitWf, listAll, listItems, nextCursor, assertError,
  errorText, wfId, jobOf, jobsOf, noop, sleepJob, workflow, assertIncreasing, WF_STATES, JOB_STATES,
  JOB_FINAL, waitFor, sleep,
} from './harness.mjs';

let server;

before(async () => {
  server = await startServer({ workers: 2, concurrencyLimit: 4, maxActiveUsers: 3, pollSeconds: 0.1 });
}, { timeout: 30000 });

after(async () => {
  if (server) await server.cleanup();
}, { timeout: 30000 });

/** Every number stored under a key "progress" or "fraction". */
function fractions(v, out = [], key = '') {
  if (typeof v === 'number' && /progress|fraction/i.test(key)) out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => fractions(x, out, key));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) fractions(x, out, k);
  return out;
}

describe('operations endpoints', () => {
  test('/healthz and /readyz answer 200', { timeout: 90000 }, async () => {
    for (const p of ['/healthz', '/readyz']) {
      const r = await server.api(null, 'GET', p);
      assert.equal(r.status, 200, `${p}: ${r.status} ${r.text}`);
    }
  });

  test('X-Request-ID is echoed when sent and generated when not', { timeout: 90000 }, async () => {
    const cases = [
      [null, 'GET', '/healthz'],
      ['rid-user', 'GET', '/api/workflows'],
      ['rid-user', 'GET', '/api/workflows/987654321'], // an error answer too
    ];
    for (const [user, method, p] of cases) {
      const sent = `test-${Math.random().toString(16).slice(2)}`;
      const r1 = await server.api(user, method, p, undefined, { 'X-Request-ID': sent });
      assert.equal(r1.headers['x-request-id'], sent, `${method} ${p} echoes X-Request-ID`);
      const r2 = await server.api(user, method, p);
      const gen = r2.headers['x-request-id'];
      assert.equal(typeof gen, 'string', `${method} ${p} generates an X-Request-ID`);
      assert.ok(gen.length >= 8, `generated X-Request-ID ${gen} is long enough to be unique`);
      const r3 = await server.api(user, method, p);
      assert.notEqual(r3.headers['x-request-id'], gen, 'generated request ids differ');
    }
  });

  test('/openapi.json is valid JSON describing every path of DESIGN §4', { timeout: 90000 }, async () => {
    const r = await server.api(null, 'GET', '/openapi.json');
    assert.equal(r.status, 200, r.text.slice(0, 200));
    assert.ok(r.json && typeof r.json === 'object', 'openapi.json parses as JSON');
    assert.equal(typeof r.json.openapi, 'string', 'has an "openapi" version');
    assert.ok(r.json.paths && typeof r.json.paths === 'object', 'has "paths"');
    const norm = (p) => p.replace(/\{[^}]*\}/g, '{}');
    const have = new Map(Object.entries(r.json.paths).map(([p, v]) => [norm(p), v]));
    const want = [
      ['/api/workflows', ['post', 'get']],
      ['/api/workflows/{}', ['get', 'delete']],
      ['/api/workflows/{}/cancel', ['post']],
      ['/api/workflows/{}/progress', ['get']],
      ['/api/workflows/{}/jobs/{}/cancel', ['post']],
      ['/api/workflows/{}/jobs/{}/retry', ['post']],
      ['/api/workflows/{}/jobs/{}/log', ['get']],
      ['/api/workflows/{}/jobs/{}/results', ['get']],
      ['/api/workflows/{}/jobs/{}/results/{}', ['get']],
      ['/api/queue', ['get']],
      ['/api/events', ['get']],
      ['/api/session', ['post', 'delete']],
      ['/metrics', ['get']],
      ['/healthz', ['get']],
      ['/readyz', ['get']],
      ['/openapi.json', ['get']],
      ['/docs', ['get']],
      ['/', ['get']],
    ];
    const missing = [];
    for (const [p, methods] of want) {
      const item = have.get(p);
      if (!item) { missing.push(p); continue; }
      for (const m of methods) if (!item[m]) missing.push(`${m.toUpperCase()} ${p}`);
    }
    assert.deepEqual(missing, [], `openapi.json lacks: ${missing.join(', ')}`);
  });

  test('/docs and / answer 200 with HTML', { timeout: 90000 }, async () => {
    for (const p of ['/docs', '/']) {
      const r = await server.api(null, 'GET', p);
      assert.equal(r.status, 200, `${p}: ${r.status}`);
      assert.match(r.headers['content-type'] || '', /text\/html/, `${p} is HTML`);
    }
  });

  test('/metrics has the Prometheus series of DESIGN §4', { timeout: 90000 }, async () => {
    /** name -> sum of its samples' values, and every metric name seen. */
    const scrape = async () => {
      const r = await server.api(null, 'GET', '/metrics');
      assert.equal(r.status, 200);
      const sums = new Map();
      const names = new Set();
      for (const line of r.text.split('\n')) {
        const m = /^# (?:TYPE|HELP) (\S+)/.exec(line);
        if (m) { names.add(m[1]); continue; }
        if (!line || line.startsWith('#')) continue;
        const m2 = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? ([-+]?[0-9.]+(?:[eE][-+]?\d+)?|NaN|[+-]Inf)( -?\d+)?$/.exec(line);
        assert.ok(m2, `a Prometheus sample line: ${line}`);
        names.add(m2[1]);
        sums.set(m2[1], (sums.get(m2[1]) || 0) + Number(m2[3]));
      }
      return { r, sums, names };
    };
    const user = 'metrics-user';
    const c1 = await server.ws(user, { since: 0 });
    const c2 = await server.ws(user, { since: 0 });
    try {
      const id = wfId(await submit(server, user, workflow('metrics', [noop('a')])));
      await c1.waitFor((evs) => evs.some((e) => e.type === 'workflow.finished' && String(e.workflow_id) === String(id)), 30000);
      await c2.waitFor((evs) => evs.some((e) => e.type === 'workflow.finished' && String(e.workflow_id) === String(id)), 30000);
      const { r, sums, names } = await scrape();
      assert.match(r.headers['content-type'] || '', /text\/plain/, 'Prometheus text format');
      assert.ok(r.text.includes('tessera_'), 'series are named tessera_*');
      const all = [...names].filter((n) => n.startsWith('tessera_'));
      const want = {
        'queue depth': /queue|queued|waiting/,
        'active users': /active_users/,
        'running cpus': /running_cpus|cpus_running|cpus/,
        'http requests': /http_requests/,
        'websocket connections': /(websocket|ws)\w*connections|connections\w*(websocket|ws)/,
        'events delivered': /events\w*delivered|delivered\w*events/,
      };
      const found = {};
      for (const [what, re] of Object.entries(want)) {
        found[what] = all.filter((n) => re.test(n));
        assert.ok(found[what].length, `/metrics has a series for ${what} (names: ${all.join(', ')})`);
      }
      const total = (what) => Math.max(...found[what].map((n) => sums.get(n) ?? 0));
      assert.ok(total('websocket connections') >= 2, `two WebSocket connections are counted (${found['websocket connections']}: ${total('websocket connections')})`);
      assert.ok(total('events delivered') >= c1.events.length + c2.events.length,
        `events delivered counts what the clients received (${total('events delivered')} >= ${c1.events.length + c2.events.length})`);
      assert.ok(total('http requests') >= 1, 'HTTP requests are counted');
    } finally {
      c1.close();
      c2.close();
    }
  });

  test('GET /api/queue has the fields of DESIGN §4', { timeout: 90000 }, async () => {
    const r = await server.api('queue-user', 'GET', '/api/queue');
    assert.equal(r.status, 200, r.text);
    for (const k of ['active_users', 'max_active_users', 'waiting_users', 'running_cpus', 'concurrency_limit']) {
      assert.ok(Number.isInteger(r.json[k]), `queue.${k} is an integer: ${r.text}`);
      assert.ok(r.json[k] >= 0, `queue.${k} >= 0`);
    }
    assert.equal(r.json.max_active_users, 3);
    assert.equal(r.json.concurrency_limit, 4);
  });
});

describe('workflows', () => {
  test('submit, get, progress, log and results of a simple workflow', { timeout: 90000 }, async () => {
    const user = 'life-user';
    const spec = workflow('life', [noop('j1'), sleepJob('j2', 0.3), noop('j3', { branch: 'other' })]);
    const created = await submit(server, user, spec);
    const id = wfId(created);
    assert.ok(Number.isInteger(Number(id)) && Number(id) > 0, `id is a positive integer: ${id}`);
    assert.equal(created.name, 'life');
    assert.ok(WF_STATES.has(created.state), `state ${created.state}`);
    assert.ok(['queued', 'running'].includes(created.state), `a new workflow is queued or running: ${created.state}`);
    assert.deepEqual(jobsOf(created).map((j) => j.job_id).sort(), ['j1', 'j2', 'j3']);
    for (const j of jobsOf(created)) assert.ok(JOB_STATES.has(j.state), `job state ${j.state}`);
    assert.equal(jobOf(created, 'j1').branch ?? 'default', 'default', 'branch defaults to "default"');

    const got = await getWf(server, user, id);
    assert.equal(String(wfId(got)), String(id));
    assert.equal(jobsOf(got).length, 3);

    const p0 = await server.api(user, 'GET', `/api/workflows/${id}/progress`);
    assert.equal(p0.status, 200, p0.text);
    for (const f of fractions(p0.json)) assert.ok(f >= 0 && f <= 1, `progress ${f} in 0..1`);

    const fin = await waitFinal(server, user, id, 30000);
    assert.equal(fin.state, 'succeeded', JSON.stringify(fin));
    for (const j of jobsOf(fin)) assert.equal(j.state, 'succeeded', `job ${j.job_id}`);

    const p1 = await server.api(user, 'GET', `/api/workflows/${id}/progress`);
    assert.equal(p1.status, 200);
    const fr = fractions(p1.json);
    assert.ok(fr.length >= 4, `progress has the workflow's and each job's fraction: ${p1.text}`);
    for (const f of fr) assert.equal(f, 1, `a finished workflow's progress is 1: ${p1.text}`);
    for (const j of ['j1', 'j2', 'j3']) assert.ok(p1.text.includes(j), `progress names job ${j}`);

    const log = await server.api(user, 'GET', `/api/workflows/${id}/jobs/j2/log`);
    assert.equal(log.status, 200, `log: ${log.status} ${log.text.slice(0, 200)}`);
    const res = await server.api(user, 'GET', `/api/workflows/${id}/jobs/j2/results`);
    assert.equal(res.status, 200, `results: ${res.status} ${res.text.slice(0, 200)}`);
    assert.ok(res.json !== undefined, 'the results list is JSON');
    const none = await server.api(user, 'GET', `/api/workflows/${id}/jobs/j2/results/no-such-file.json`);
    assertError(none, 404, 'a missing result file');
    for (const p of ['log', 'results', 'cancel', 'retry']) {
      const method = p === 'cancel' || p === 'retry' ? 'POST' : 'GET';
      const r = await server.api(user, method, `/api/workflows/${id}/jobs/no-such-job/${p}`);
      assertError(r, 404, `${method} ${p} of a missing job`);
    }
    const missing = await server.api(user, 'GET', '/api/workflows/987654321');
    assertError(missing, 404, 'a missing workflow');
  });

  test('branches run serially, depends_on waits, a failure skips its dependents only', { timeout: 90000 }, async () => {
    const user = 'dag-user';
    const ws = await server.ws(user, { since: 0 });
    try {
      const spec = workflow('dag', [
        sleepJob('a1', 0.3),
        noop('a2'), // branch default: after a1
        sleepJob('bad', 5, { branch: 'f', timeout_s: 1 }), // killed by its timeout: failed
        noop('bad-next', { branch: 'f' }), // later job of the failed branch: skipped
        noop('needs-bad', { branch: 'g', depends_on: ['bad'] }), // explicit dependent: skipped
        noop('needs-a2', { branch: 'h', depends_on: ['a2'] }),
      ]);
      const id = wfId(await submit(server, user, spec));
      const fin = await waitFinal(server, user, id, 30000);
      assert.equal(fin.state, 'failed', `a workflow with a failed job fails: ${JSON.stringify(fin).slice(0, 800)}`);
      const st = Object.fromEntries(jobsOf(fin).map((j) => [j.job_id, j.state]));
      assert.deepEqual(st, {
        a1: 'succeeded', a2: 'succeeded', bad: 'failed', 'bad-next': 'skipped', 'needs-bad': 'skipped', 'needs-a2': 'succeeded',
      });
      await ws.waitFor((evs) => evs.some((e) => e.type === 'workflow.finished' && String(e.workflow_id) === String(id)), 10000, 'workflow.finished');
      const evs = ws.events.filter((e) => String(e.workflow_id) === String(id));
      assertIncreasing(evs);
      const seqOf = (type, job) => evs.find((e) => e.type === type && e.job_id === job)?.seq;
      assert.ok(seqOf('job.started', 'a2') > seqOf('job.finished', 'a1'), 'a2 starts after a1 finished (same branch)');
      assert.ok(seqOf('job.started', 'needs-a2') > seqOf('job.finished', 'a2'), 'needs-a2 starts after a2 finished');
      for (const j of ['bad-next', 'needs-bad']) {
        assert.equal(seqOf('job.started', j), undefined, `${j} never starts`);
      }
    } finally {
      ws.close();
    }
  });

  test('a failed attempt is retried after retry_delay_s × 2^(attempt-1), then fails for good', { timeout: 60000 }, async () => {
    const user = 'retry-user';
    const ws = await server.ws(user, { since: 0 });
    try {
      // Each attempt is killed by its 1 s timeout; 2 retries, 1 s then 2 s apart.
      const id = wfId(await submit(server, user, workflow('retries', [
        sleepJob('r', 10, { timeout_s: 1, max_retries: 2, retry_delay_s: 1 }),
        noop('after'),
        noop('other', { branch: 'o' }),
      ])));
      const fin = await waitFinal(server, user, id, 40000);
      assert.equal(fin.state, 'failed');
      assert.equal(jobOf(fin, 'r').state, 'failed');
      assert.equal(jobOf(fin, 'after').state, 'skipped');
      assert.equal(jobOf(fin, 'other').state, 'succeeded');
      await ws.waitFor((evs) => evs.some((e) => e.type === 'workflow.finished' && String(e.workflow_id) === String(id)), 10000);
      const idx = [];
      ws.events.forEach((e, i) => { if (String(e.workflow_id) === String(id) && e.job_id === 'r') idx.push(i); });
      const evs = idx.map((i) => ws.events[i]);
      const starts = idx.filter((i) => ws.events[i].type === 'job.started').map((i) => ws.arrivals[i]);
      assert.equal(starts.length, 3, `three attempts: ${JSON.stringify(evs.map((e) => [e.type, e.state]))}`);
      assert.ok(evs.filter((e) => e.type === 'job.retrying').length >= 2, 'job.retrying for each retry');
      const g1 = (starts[1] - starts[0]) / 1000;
      const g2 = (starts[2] - starts[1]) / 1000;
      // attempt (1 s) + delay 1 s, then attempt (1 s) + delay 2 s.
      assert.ok(g1 >= 1.75 && g1 <= 5, `second attempt ${g1.toFixed(2)} s after the first (1 s run + 1 s delay)`);
      assert.ok(g2 >= 2.75 && g2 <= 7, `third attempt ${g2.toFixed(2)} s after the second (1 s run + 2 s delay)`);
      assert.ok(g2 - g1 >= 0.6, `the delay doubles (${g1.toFixed(2)} s, then ${g2.toFixed(2)} s)`);
      const last = evs[evs.length - 1];
      assert.equal(last.type, 'job.finished');
      assert.equal(last.state, 'failed');
    } finally {
      ws.close();
    }
  });

  // The compatibility request of DESIGN §4 runs in analysis.test.mjs, on a real slide.

  test('GET /api/workflows pages with limit and cursor, newest first, filtered by state', { timeout: 90000 }, async () => {
    const user = 'pager';
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push(wfId(await submit(server, user, workflow(`p${i}`, [noop('a')]))));
    for (const id of ids) await waitFinal(server, user, id, 30000);
    const newestFirst = [...ids].reverse().map(String);

    // Pages of 3: p6 p5 p4 | p3 p2 p1 | p0.
    const seen = [];
    let cursor = null;
    const sizes = [];
    for (let page = 0; page < 6; page++) {
      const q = new URLSearchParams({ limit: '3' });
      if (cursor !== null) q.set('cursor', String(cursor));
      const r = await server.api(user, 'GET', `/api/workflows?${q}`);
      assert.equal(r.status, 200, r.text);
      const items = listItems(r.json);
      assert.ok(items.length <= 3, `a page holds at most limit items: ${items.length}`);
      sizes.push(items.length);
      seen.push(...items.map((w) => String(wfId(w))));
      for (const w of items) {
        assert.equal(typeof w.name, 'string');
        assert.ok(WF_STATES.has(w.state), `listed state ${w.state}`);
      }
      cursor = nextCursor(r.json);
      if (cursor === null) break;
    }
    assert.equal(cursor, null, 'the last page has no next cursor');
    assert.deepEqual(seen, newestFirst, `pages list every workflow once, newest first (sizes ${sizes})`);
    assert.deepEqual(sizes.slice(0, 3), [3, 3, 1]);

    const all = await listAll(server, user);
    assert.deepEqual(all.map((w) => String(wfId(w))), newestFirst, 'without a cursor: newest first');

    const succ = await listAll(server, user, { state: 'succeeded' }, { limit: 5 });
    assert.deepEqual(succ.map((w) => String(wfId(w))), newestFirst, 'state=succeeded, pages of 5');
    const running0 = await listAll(server, user, { state: 'running' });
    assert.equal(running0.length, 0);

    const long = wfId(await submit(server, user, workflow('long', [sleepJob('s', 30)])));
    await waitWf(server, user, long, (w) => w.state === 'running', 15000, 'running');
    const running = await listAll(server, user, { state: 'running' });
    assert.deepEqual(running.map((w) => String(wfId(w))), [String(long)], 'state=running lists only the running one');
    const c = await server.api(user, 'POST', `/api/workflows/${long}/cancel`);
    assert.ok(c.status >= 200 && c.status < 300, `cancel: ${c.status} ${c.text}`);
    await waitWf(server, user, long, (w) => w.state === 'cancelled', 15000, 'cancelled');
    const cancelled = await listAll(server, user, { state: 'cancelled' });
    assert.deepEqual(cancelled.map((w) => String(wfId(w))), [String(long)]);
    const all2 = await listAll(server, user);
    assert.equal(String(wfId(all2[0])), String(long), 'the newest is first');

    for (const q of ['state=bogus', 'limit=abc', 'limit=-1', 'cursor=not-a-cursor']) {
      const r = await server.api(user, 'GET', `/api/workflows?${q}`);
      assertError(r, 400, `GET /api/workflows?${q}`);
    }
  });

  test('cancel a running workflow; DELETE removes only finished ones', { timeout: 90000 }, async () => {
    const user = 'del-user';
    const id = wfId(await submit(server, user, workflow('to-delete', [sleepJob('s', 30), noop('after')])));
    await waitWf(server, user, id, (w) => w.state === 'running', 15000, 'running');
    const d1 = await server.api(user, 'DELETE', `/api/workflows/${id}`);
    assertError(d1, '4xx', 'DELETE of a running workflow');
    assert.equal((await getWf(server, user, id)).state, 'running', 'the refused DELETE changed nothing');
    const c = await server.api(user, 'POST', `/api/workflows/${id}/cancel`);
    assert.ok(c.status >= 200 && c.status < 300, `cancel: ${c.status} ${c.text}`);
    const fin = await waitFinal(server, user, id, 10000);
    assert.equal(fin.state, 'cancelled');
    const c2 = await server.api(user, 'POST', `/api/workflows/${id}/cancel`);
    assert.ok(c2.status >= 200 && c2.status < 300, `cancel is idempotent: ${c2.status} ${c2.text}`);
    assert.equal((await getWf(server, user, id)).state, 'cancelled');
    const d2 = await server.api(user, 'DELETE', `/api/workflows/${id}`);
    assert.ok(d2.status >= 200 && d2.status < 300, `DELETE of a finished workflow: ${d2.status} ${d2.text}`);
    assertError(await server.api(user, 'GET', `/api/workflows/${id}`), 404, 'GET after DELETE');
    assertError(await server.api(user, 'GET', `/api/workflows/${id}/progress`), 404, 'progress after DELETE');
    const all = await listAll(server, user);
    assert.ok(!all.some((w) => String(wfId(w)) === String(id)), 'a deleted workflow is not listed');
    assertError(await server.api(user, 'DELETE', `/api/workflows/${id}`), 404, 'DELETE twice');
  });

  test('one job: cancel and retry', { timeout: 90000 }, async () => {
    const user = 'job-user';
    const id = wfId(await submit(server, user, workflow('jobs', [
      sleepJob('a', 30, { branch: 'A' }),
      sleepJob('b', 30, { branch: 'B' }),
      sleepJob('f', 5, { branch: 'F', timeout_s: 1 }), // fails by timeout after ~1 s
    ])));
    await waitWf(server, user, id, (w) => jobOf(w, 'a')?.state === 'running' && jobOf(w, 'b')?.state === 'running', 15000, 'a and b running');
    const t0 = Date.now();
    const c = await server.api(user, 'POST', `/api/workflows/${id}/jobs/a/cancel`);
    assert.ok(c.status >= 200 && c.status < 300, `job cancel: ${c.status} ${c.text}`);
    const w1 = await waitWf(server, user, id, (w) => jobOf(w, 'a')?.state === 'cancelled', 10000, 'job a cancelled');
    assert.ok(Date.now() - t0 < 10000, 'the job stopped long before its sleep would end');
    assert.equal(jobOf(w1, 'b').state, 'running', 'the other branch goes on');
    assert.equal(w1.state, 'running');

    const rr = await server.api(user, 'POST', `/api/workflows/${id}/jobs/b/retry`);
    assertError(rr, '4xx', 'retry of a running job');

    await waitWf(server, user, id, (w) => jobOf(w, 'f')?.state === 'failed', 20000, 'job f failed by its timeout');
    const r = await server.api(user, 'POST', `/api/workflows/${id}/jobs/f/retry`);
    assert.ok(r.status >= 200 && r.status < 300, `retry of a failed job: ${r.status} ${r.text}`);
    await waitWf(server, user, id, (w) => ['ready', 'running', 'pending'].includes(jobOf(w, 'f')?.state), 10000, 'job f runs again');

    const cw = await server.api(user, 'POST', `/api/workflows/${id}/cancel`);
    assert.ok(cw.status >= 200 && cw.status < 300);
    const fin = await waitFinal(server, user, id, 10000);
    assert.equal(fin.state, 'cancelled');
    assert.equal(jobOf(fin, 'a').state, 'cancelled');
    assert.equal(jobOf(fin, 'b').state, 'cancelled');
    assert.ok(['cancelled', 'failed'].includes(jobOf(fin, 'f').state), `f: ${jobOf(fin, 'f').state}`);
  });

  test('a workflow submitted with a session of one worker is read by the others', { timeout: 90000 }, async () => {
    // Requests go on new connections, so with 2 workers they land on both.
    const user = 'xworker';
    for (let i = 0; i < 10; i++) {
      const id = wfId(await submit(server, user, workflow(`x${i}`, [noop('a')])));
      for (let k = 0; k < 3; k++) {
        const r = await server.api(user, 'GET', `/api/workflows/${id}`);
        assert.equal(r.status, 200, 'read-your-writes on any worker');
      }
    }
    const all = await listAll(server, user);
    assert.equal(all.length, 10);
    await waitFor(async () => (await listAll(server, user, { state: 'succeeded' })).length === 10, 30000, { what: 'all succeeded' });
    await sleep(10);
  });
});
