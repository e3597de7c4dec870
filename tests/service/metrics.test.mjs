// metrics.test.mjs - issue 18: what an operator reads at /metrics, checked
// against a running service: the admission line (depth, the oldest waiter's
// age, active users), cpus running and free, job throughput and failures by
// reason, HTTP requests and latency by route template (never a raw path or
// an id), the state directory's free space, the leader; and the exposition
// format itself (tests/service/prom.mjs).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, submit, wfId, waitFinal, waitFor, noop, sleepJob, workflow } from './harness.mjs';
import { parseMetrics, select, total, value } from './prom.mjs';

/** How many events the hubs have read and fanned out, by their histograms. */
function scrapeCounts(m) {
  return { delivery: value(m, 'tessera_event_delivery_seconds_count') || 0,
           fanout: value(m, 'tessera_event_fanout_seconds_count') || 0 };
}

let server;

before(async () => {
  server = await startServer({ workers: 2, concurrencyLimit: 2, maxActiveUsers: 1, pollSeconds: 0.1 });
}, { timeout: 30000 });

after(async () => {
  if (server) await server.cleanup();
}, { timeout: 30000 });

async function scrape() {
  const r = await server.api(null, 'GET', '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'] || '', /^text\/plain; version=0\.0\.4/);
  return parseMetrics(r.text);
}

describe('/metrics for operators', () => {
  test('the line, its oldest waiter, cpus, throughput and failures by reason', { timeout: 120000 }, async () => {
    // alice holds the only active place with a job that times out; bob waits.
    const a = wfId(await submit(server, 'alice', workflow('blocker', [sleepJob('s', 60, { timeout_s: 4 })])));
    await waitFor(async () => value(await scrape(), 'tessera_running_cpus') === 1, 20000, { what: 'alice running' });
    const b = wfId(await submit(server, 'bob', workflow('waiter', [noop('n')])));
    let m;
    await waitFor(async () => {
      m = await scrape();
      return value(m, 'tessera_admission_queue_depth') === 1 && value(m, 'tessera_admission_oldest_wait_seconds') > 0.5;
    }, 20000, { what: 'bob waiting for more than half a second' });
    assert.equal(value(m, 'tessera_active_users'), 1);
    assert.equal(value(m, 'tessera_waiting_users'), 1);
    assert.equal(value(m, 'tessera_running_cpus'), 1);
    assert.equal(value(m, 'tessera_free_cpus'), 1, 'concurrency limit 2 minus 1 running');
    assert.equal(value(m, 'tessera_concurrency_limit'), 2);
    assert.equal(value(m, 'tessera_max_active_users'), 1);
    // The age grows while bob waits (condition-based: poll until it does).
    const age1 = value(m, 'tessera_admission_oldest_wait_seconds');
    await waitFor(async () => value(await scrape(), 'tessera_admission_oldest_wait_seconds') > age1, 20000,
      { what: 'the oldest waiter ages' });

    assert.equal((await waitFinal(server, 'alice', a, 60000)).state, 'failed');
    assert.equal((await waitFinal(server, 'bob', b, 60000)).state, 'succeeded');
    await waitFor(async () => {
      m = await scrape();
      return total(m, 'tessera_jobs_finished_total', { job_type: 'noop', outcome: 'succeeded' }) >= 1 &&
        total(m, 'tessera_job_failures_total', { job_type: 'sleep', reason: 'timeout' }) >= 1 &&
        value(m, 'tessera_admission_queue_depth') === 0;
    }, 30000, { what: 'the timeout and the success counted, the line empty' });
    assert.equal(value(m, 'tessera_admission_oldest_wait_seconds'), 0, 'nobody waits: age 0');
    assert.equal(total(m, 'tessera_job_failures_total', { job_type: 'noop' }), 0, 'a success is no failure');
    assert.equal(total(m, 'tessera_jobs_finished_total', { job_type: 'sleep', outcome: 'timeout' }), 1);
    // Job wait and run times by type, in seconds.
    assert.ok(total(m, 'tessera_job_run_seconds_sum', { job_type: 'sleep' }) >= 3, 'the sleep ran ~4 s before its timeout');
    assert.equal(total(m, 'tessera_job_wait_seconds_count', { job_type: 'noop' }), 1);
    for (const s of select(m, 'tessera_job_failures_total')) {
      assert.ok(['exit_status', 'signal', 'start_failed', 'timeout', 'interrupted'].includes(s.labels.reason), s.labels.reason);
    }
  });

  test('HTTP requests and latency by route template, never the raw path', { timeout: 60000 }, async () => {
    const id = wfId(await submit(server, 'carol', workflow('seen', [noop('n')])));
    assert.equal((await server.api('carol', 'GET', `/api/workflows/${id}`)).status, 200);
    assert.equal((await server.api('carol', 'GET', '/api/workflows/999999999')).status, 404);
    assert.equal((await server.api('carol', 'GET', '/no/such/path/carol-secret')).status, 404);
    const r = await server.api(null, 'GET', '/metrics');
    assert.ok(!r.text.includes(`/api/workflows/${id}`), 'no workflow id in a label');
    assert.ok(!r.text.includes('999999999') && !r.text.includes('carol'), 'no raw path, no user');
    const m = parseMetrics(r.text);
    const route = { method: 'GET', route: '/api/workflows/{id}' };
    assert.ok(total(m, 'tessera_http_requests_total', { ...route, status: '200' }) >= 1);
    assert.ok(total(m, 'tessera_http_requests_total', { ...route, status: '404' }) >= 1);
    assert.ok(total(m, 'tessera_http_requests_total', { route: 'unmatched', status: '404' }) >= 1);
    const count = value(m, 'tessera_http_request_duration_seconds_count', route);
    const inf = value(m, 'tessera_http_request_duration_seconds_bucket', { ...route, le: '+Inf' });
    assert.ok(count >= 2 && inf === count, `+Inf bucket (${inf}) = count (${count})`);
    assert.ok(value(m, 'tessera_http_request_duration_seconds_sum', route) > 0);
    // Every route label is a template of the route table.
    for (const s of select(m, 'tessera_http_requests_total')) {
      assert.ok(s.labels.route === 'unmatched' || s.labels.route.startsWith('/'), s.labels.route);
      assert.ok(!/\/\d+(\/|$)/.test(s.labels.route), `a template, not a path: ${s.labels.route}`);
    }
  });

  test('the state directory, the store, the leader and the WebSocket clients', { timeout: 60000 }, async () => {
    const c = await server.ws('dave', { since: 0 });
    try {
      let m;
      await waitFor(async () => {
        m = await scrape();
        return value(m, 'tessera_leader_up') === 1 && value(m, 'tessera_websocket_connections') >= 1;
      }, 20000, { what: 'a leader and a WebSocket client' });
      assert.equal(value(m, 'tessera_store_up'), 1);
      assert.ok(value(m, 'tessera_leader_term') >= 1);
      assert.ok(value(m, 'tessera_leader_lease_seconds') > 0);
      const free = value(m, 'tessera_state_dir_free_bytes');
      const size = value(m, 'tessera_state_dir_size_bytes');
      assert.ok(free > 0 && size >= free, `free ${free} of ${size}`);
      assert.ok(select(m, 'tessera_store_call_seconds_count').length > 0, 'store calls timed');
      assert.equal(m.types.get('tessera_event_delivery_seconds'), 'histogram', 'event lag is a histogram');
      // An event fanned out live to the client: the hub's read of it and its
      // writes to every connection are both timed, the writes no earlier.
      const before = scrapeCounts(m);
      const id = wfId(await submit(server, 'dave', workflow('watched', [noop('n')])));
      await c.waitFor((evs) => evs.some((e) => e.workflow_id === id && e.type === 'workflow.finished'),
        30000, 'the workflow\'s events');
      // Both are observed in the same turn of the hub's loop: wait for a
      // scrape between turns, where every event read is also written.
      await waitFor(async () => {
        m = await scrape();
        const now = scrapeCounts(m);
        return now.fanout > before.fanout && now.fanout === now.delivery;
      }, 10000, { what: 'the fan-out timed' });
      assert.equal(m.types.get('tessera_event_fanout_seconds'), 'histogram');
      assert.ok(value(m, 'tessera_event_fanout_seconds_sum') >= value(m, 'tessera_event_delivery_seconds_sum'),
        'each event written no earlier than it was read');
    } finally {
      c.close();
    }
  });
});
