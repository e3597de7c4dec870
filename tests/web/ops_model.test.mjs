// ops_model.test.mjs - web/app/ops_model.js, the arithmetic of the
// operations page: counter differences across resets, histogram differences
// and sums, quantiles as Prometheus's histogram_quantile computes them (the
// values of deploy/prometheus's rule tests), one interval's figures from two
// reads of /api/admin/overview, the bounded history and the chart path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importWeb } from './web.mjs';

const M = await importWeb('app/ops_model.js');

const LE = [0.1, 1, 5];
const hist = (counts, count, sum = 0) => ({ le: LE, counts, count, sum });

test('ops: counter differences, a reset counts from zero', () => {
  assert.equal(M.counterDelta(null, 7), 0, 'no earlier read: no difference');
  assert.equal(M.counterDelta(3, 7), 4);
  assert.equal(M.counterDelta(10, 2), 2, 'the instance restarted: 2 since');
});

test('ops: histogram differences and sums', () => {
  const a = hist([1, 2, 2], 3, 1.5);
  const b = hist([1, 5, 9], 10, 20);
  assert.deepEqual(M.histDelta(a, b), { le: LE, counts: [0, 3, 7], count: 7, sum: 18.5 });
  assert.deepEqual(M.histDelta(null, b), b);
  assert.deepEqual(M.histDelta(b, a), a, 'a reset: the current histogram');
  assert.deepEqual(M.histSum([a, null, b]), { le: LE, counts: [2, 7, 11], count: 13, sum: 21.5 });
  assert.equal(M.histSum([null]), null);
});

test('ops: quantiles interpolate inside the bucket, like histogram_quantile', () => {
  // 100 observations all in (1, 5]: p99 = 1 + 4 * 0.99 = 4.96 (the value
  // promtool's test of TesseraHighLatencyP99 expects from the same data).
  assert.ok(Math.abs(M.quantile(hist([0, 0, 100], 100), 0.99) - 4.96) < 1e-9);
  // Half in the first bucket: the median is its upper bound.
  assert.equal(M.quantile(hist([50, 100, 100], 100), 0.5), 0.1);
  // From 0 within the first bucket.
  assert.ok(Math.abs(M.quantile(hist([100, 100, 100], 100), 0.25) - 0.025) < 1e-12);
  // Beyond every finite bound (+Inf bucket): the highest finite bound.
  assert.equal(M.quantile(hist([0, 0, 0], 10), 0.99), 5);
  assert.equal(M.quantile(hist([0, 0, 0], 0), 0.99), null, 'no observations');
  assert.equal(M.quantile(null, 0.5), null);
});

const snap = (time, { finished = {}, failures = {}, requests = 0, errors = 0, lat = hist([0, 0, 0], 0), store = 0, wait = hist([0, 0, 0], 0) } = {}) => ({
  time,
  line: { queued_workflows: 2, oldest_wait_s: 30, waiting_users: 1, active_users: 1, max_active_users: 1 },
  cpus: { running: 3, free: 1, limit: 4, running_jobs: 3 },
  http: { requests, server_errors: errors, client_errors: 0, latency: lat, routes: [] },
  store: { up: true, calls: 0, errors: store, latency: hist([0, 0, 0], 0) },
  jobs: [{ job_type: 'noop', finished, failures, wait, run: hist([0, 0, 0], 0) }],
});

test('ops: one interval between two reads', () => {
  const a = snap(100, { finished: { succeeded: 4, failed: 1 }, failures: { exit_status: 1 }, requests: 100, errors: 1, lat: hist([10, 10, 10], 10), store: 0 });
  const b = snap(130, {
    finished: { succeeded: 10, failed: 3 }, failures: { exit_status: 2, timeout: 1 }, requests: 160, errors: 4,
    lat: hist([10, 10, 110], 110), store: 3, wait: hist([5, 10, 10], 10),
  });
  const first = M.interval(null, a);
  assert.equal(first.jobsPerMin, null, 'the first read has no rates');
  assert.equal(first.httpP99, null);
  assert.equal(first.queued, 2);
  const i = M.interval(a, b);
  assert.equal(i.jobsPerMin, 16, '8 attempts in 30 s');
  assert.equal(i.failuresPerMin, 4, '2 failures in 30 s');
  assert.equal(i.requestsPerMin, 120);
  assert.equal(i.serverErrorsPerMin, 6);
  assert.equal(i.storeErrorsPerMin, 6);
  assert.ok(Math.abs(i.httpP99 - 4.96) < 1e-9, `p99 of the 100 new requests in (1, 5]: ${i.httpP99}`);
  assert.ok(Math.abs(i.jobWaitP90 - (0.1 + 0.9 * 0.8)) < 1e-9, `wait p90: ${i.jobWaitP90}`);
  assert.equal(i.runningCpus, 3);
  assert.equal(i.freeCpus, 1);
  // A job type seen for the first time counts from zero.
  const c = snap(160, { finished: { succeeded: 10, failed: 3 } });
  c.jobs.push({ job_type: 'sleep', finished: { succeeded: 2 }, failures: {}, wait: hist([0, 0, 0], 0), run: hist([0, 0, 0], 0) });
  assert.equal(M.interval(b, c).jobsPerMin, 4);
  // A store that cannot be read: no line, no cpus.
  const d = { ...snap(190), line: null, cpus: null };
  assert.equal(M.interval(c, d).queued, null);
  assert.equal(M.interval(c, d).runningCpus, null);
});

test('ops: the history keeps the newest points', () => {
  const h = new M.History(3);
  for (let t = 1; t <= 5; t++) h.push({ time: t, queued: t * 10 });
  assert.deepEqual(h.values('queued'), [30, 40, 50]);
  assert.deepEqual(h.values('missing'), [null, null, null]);
});

test('ops: chart paths', () => {
  const { d, top } = M.sparkPath([0, 5, 10], 100, 20);
  assert.equal(top, 10);
  assert.equal(d, 'M0.0 20.0 L50.0 10.0 L100.0 0.0');
  assert.equal(M.sparkPath([0, 0], 100, 20).top, 1, 'a floor keeps a flat zero line at the bottom');
  assert.equal(M.sparkPath([1, null, 1], 100, 20).d, 'M0.0 0.0 M100.0 0.0', 'a gap lifts the pen');
  assert.equal(M.sparkPath([], 100, 20).d, '');
  assert.equal(M.seconds(0.85), '850 ms');
  assert.equal(M.seconds(200), '3 min 20 s');
  assert.equal(M.seconds(null), '–');
  assert.equal(M.rate(2.345), '2.3');
  assert.equal(M.rate(120.4), '120');
});
