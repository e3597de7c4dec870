// ws_burst.mjs - event latency when one round of the scheduler starts many
// jobs at once: a workflow of JOBS independent noop jobs (a branch each) on
// a real `tessera serve` (SQLite, local executor) with --concurrency-limit
// JOBS, so that one round claims them all; one WebSocket client of the
// owner times each job.started event from its record ("ts") to its
// arrival. Before sched/syncer.h the round's events were rung only after
// all its jobs had started (work directories, logs, fork server requests);
// now the round's fsync runs beside the starts and rings when it is done.
//
//   node bench/ws_burst.mjs BUILD/tessera [BASELINE_BINARY] [JOBS] [ROUNDS]
//
// JOBS defaults to 32, ROUNDS (workflows per binary) to 8; with a baseline
// both servers run side by side and take turns workflow by workflow (who
// goes first alternating), and the ratios are printed.
import { startTessera } from './serve.mjs';
import WebSocket from 'ws';

const bin = process.argv[2] || 'build/tessera';
const baselineBin = process.argv[3] || '';
const JOBS = Number(process.argv[4] || 32);
const ROUNDS = Number(process.argv[5] || 8);

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

/* One workflow of JOBS jobs on srv, watched by one client: the latencies
 * of its job.started events. Events are kept from the moment the client is
 * connected, so those rung before the POST's answer count too. */
async function round(srv) {
  const ws = new WebSocket(srv.url.replace('http', 'ws') + '/api/events?since=0', { headers: { 'X-User-ID': 'burst' } });
  await new Promise((ok, fail) => { ws.on('open', ok); ws.on('error', fail); });
  const seen = [];
  let wfId = -1, done;
  const finished = new Promise((ok) => { done = ok; });
  ws.on('message', (data) => {
    const now = Date.now();
    const ev = JSON.parse(data);
    seen.push([ev, now]);
    if (ev.type === 'workflow.finished' && ev.workflow_id === wfId) done();
  });
  const jobs = Array.from({ length: JOBS }, (_, i) => ({ job_id: `j${i}`, job_type: 'noop', branch: `b${i}` }));
  const r = await fetch(srv.url + '/api/workflows', { method: 'POST', headers: { 'X-User-ID': 'burst', 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'burst', jobs }) });
  if (r.status !== 201) throw new Error('submit: ' + r.status);
  wfId = (await r.json()).id;
  if (seen.some(([ev]) => ev.type === 'workflow.finished' && ev.workflow_id === wfId)) done();
  const timeout = new Promise((_, fail) => setTimeout(() => fail(new Error('the workflow did not finish in 60 s')), 60000));
  await Promise.race([finished, timeout]);
  ws.close();
  const lat = seen.filter(([ev]) => ev.workflow_id === wfId && ev.type === 'job.started').map(([ev, now]) => now - Date.parse(ev.ts));
  if (lat.length !== JOBS) throw new Error(`${lat.length} job.started events for ${JOBS} jobs`);
  return lat;
}

const bins = baselineBin ? [bin, baselineBin] : [bin];
const servers = [];
try {
  for (const b of bins) servers.push(await startTessera(b, 'burst', ['--workers', '2', '--concurrency-limit', String(JOBS)]));
  for (const srv of servers) await round(srv); // warm-up, not counted
  const lat = bins.map(() => []);
  for (let i = 0; i < ROUNDS; i++) {
    const order = bins.map((_, k) => k);
    if (i % 2 === 1) order.reverse();
    for (const k of order) lat[k].push(...(await round(servers[k])));
  }
  console.log(`job.started latency (recorded -> client received), ${ROUNDS} workflows of ${JOBS} independent noop jobs per binary, --concurrency-limit ${JOBS}, SQLite:`);
  const figures = lat.map((l) => {
    l.sort((a, b) => a - b);
    return { p50: percentile(l, 0.5), p90: percentile(l, 0.9), p99: percentile(l, 0.99), max: l[l.length - 1], n: l.length };
  });
  bins.forEach((b, k) => {
    const f = figures[k];
    console.log(`  ${b}${k ? ' (baseline)' : ''}: p50 ${f.p50} ms, p90 ${f.p90} ms, p99 ${f.p99} ms, max ${f.max} ms (${f.n} events)`);
  });
  if (baselineBin) {
    const [m, b] = figures;
    console.log(`  p50 ${(b.p50 / Math.max(1, m.p50)).toFixed(1)}x, p99 ${(b.p99 / Math.max(1, m.p99)).toFixed(1)}x lower than the baseline`);
  }
} finally {
  for (const s of servers) await s.stop();
}
