// ws_latency.mjs - event delivery latency over WebSocket: from the moment the
// scheduler records an event (its "ts") to the moment a client receives it,
// for 1, 1,000 and 10,000 connected clients spread over 100 users (each
// receiving only its own users' events, which the bench checks), against a
// real `tessera serve` on loopback with SQLite; and the memory each
// connected client costs the service (RSS of the serve process tree with the
// clients connected minus without, per client).
//
//   node bench/ws_latency.mjs BUILD/tessera [CLIENTS,CLIENTS,...] [BASELINE_BINARY]
//
// CLIENTS defaults to 1,1000,10000 (raise `ulimit -n` to 25000 or more for
// 10,000: both this process and the workers hold one fd per client).
// BASELINE_BINARY: another tessera build measured the same way in the same
// run (e.g. one whose hubs poll SQLite instead of being woken), with ratios.
// Bounded: a fixed number of small workflows per phase, and a time limit.
// The workflows of a phase belong to the users that have clients (user0
// alone with one client), so every event is measured: with one client of
// user0 among 100 users' workflows, a phase had 12 deliveries and its "p99"
// was their maximum. Each server first gets an unmeasured warm-up round (one
// client, a few workflows): without it the first phase of the first binary
// also measured the bench's own cold start, which added 10-30 ms to the
// first events of whichever binary came first.
import { readFileSync, readdirSync } from 'node:fs';
import { startTessera } from './serve.mjs';
import WebSocket from 'ws';

const bin = process.argv[2] || 'build/tessera';
const COUNTS = (process.argv[3] || '1,1000,10000').split(',').map(Number);
const baselineBin = process.argv[4] || '';
const USERS = 100;
const WORKFLOWS = 40;

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

/** RSS in KiB of pid and all its descendants. */
function treeRssKiB(root) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch { /* gone */ }
  }
  let total = 0;
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    try {
      const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
      if (m) total += Number(m[1]);
    } catch { /* gone */ }
    for (const c of children.get(pid) || []) todo.push(c);
  }
  return total;
}

function connect(url, user, ctx) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace('http', 'ws') + '/api/events?since=0', { headers: { 'X-User-ID': user } });
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
    ws.on('message', (data) => {
      if (!ws.measuring) return;
      const ev = JSON.parse(data);
      ctx.latencies.push(Date.now() - Date.parse(ev.ts));
      ctx.seen.push([user, ev.workflow_id]);
    });
  });
}

async function submit(url, user, i) {
  const body = { name: `bench ${i}`, jobs: [{ job_id: 'a', job_type: 'noop' }, { job_id: 'b', job_type: 'noop', depends_on: ['a'] }] };
  const r = await fetch(url + '/api/workflows', { method: 'POST', headers: { 'X-User-ID': user, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status !== 201) throw new Error('submit: ' + r.status);
  return (await r.json()).id;
}

async function waitDone(url, ids, deadline) {
  for (const [user, id] of ids) {
    for (;;) {
      const r = await fetch(`${url}/api/workflows/${id}/progress`, { headers: { 'X-User-ID': user } });
      const j = await r.json();
      if (['succeeded', 'failed', 'cancelled'].includes(j.state)) break;
      if (Date.now() > deadline) throw new Error('workflows did not finish in time');
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

async function phase(srv, nClients, owner, workflows = WORKFLOWS) {
  const ctx = { latencies: [], seen: [] };
  const sockets = [];
  const rssBefore = treeRssKiB(srv.proc.pid);
  for (let i = 0; i < nClients; i += 200) {
    const batch = [];
    for (let k = i; k < Math.min(nClients, i + 200); k++) batch.push(connect(srv.url, `user${k % USERS}`, ctx));
    sockets.push(...(await Promise.all(batch)));
  }
  await new Promise((r) => setTimeout(r, 1000)); // let replays drain
  const rssAfter = treeRssKiB(srv.proc.pid);
  for (const ws of sockets) ws.measuring = true;
  const ids = [];
  for (let i = 0; i < workflows; i++) {
    const user = `user${i % Math.min(USERS, nClients)}`;
    const id = await submit(srv.url, user, i);
    owner.set(id, user);
    ids.push([user, id]);
  }
  await waitDone(srv.url, ids, Date.now() + 300000);
  await new Promise((r) => setTimeout(r, 1000)); // the last events
  for (const ws of sockets) ws.close();
  ctx.latencies.sort((a, b) => a - b);
  const foreign = ctx.seen.filter(([user, wf]) => owner.has(wf) && owner.get(wf) !== user).length;
  return { lat: ctx.latencies, foreign, kibPerClient: (rssAfter - rssBefore) / nClients };
}

async function measure(binary) {
  const srv = await startTessera(binary, 'ws', ['--workers', '2', '--concurrency-limit', '2',
    '--max-active-users', String(USERS), '--poll-seconds', '1']);
  const out = [];
  try {
    const owner = new Map();
    await phase(srv, 1, owner, 10); // warm-up, not reported
    for (const n of COUNTS) out.push([n, await phase(srv, n, owner)]);
  } finally {
    await srv.stop();
  }
  return out;
}

const fmt = (r) => `p50 ${percentile(r.lat, 0.5)} ms, p99 ${percentile(r.lat, 0.99)} ms, max ${r.lat[r.lat.length - 1]} ms` +
  ` (${r.lat.length} deliveries, ${r.foreign} of another user's), ${r.kibPerClient.toFixed(1)} KiB RSS per client`;
console.log(`websocket event latency (event recorded -> client received), ${WORKFLOWS} two-job workflows per phase, ${USERS} users, SQLite, --poll-seconds 1:`);
const mine = await measure(bin);
for (const [n, r] of mine) console.log(`  ${bin}: ${n} client(s): ${fmt(r)}`);
if (baselineBin) {
  const base = await measure(baselineBin);
  for (const [n, r] of base) console.log(`  ${baselineBin} (baseline): ${n} client(s): ${fmt(r)}`);
  for (let i = 0; i < mine.length; i++) {
    const [n, r] = mine[i];
    const b = base[i][1];
    console.log(`  ${n} client(s): p50 ${(percentile(b.lat, 0.5) / Math.max(1, percentile(r.lat, 0.5))).toFixed(1)}x, ` +
      `p99 ${(percentile(b.lat, 0.99) / Math.max(1, percentile(r.lat, 0.99))).toFixed(1)}x lower than the baseline`);
  }
}
for (const [, r] of mine) if (r.foreign) { console.log('FAIL: a client received another user\'s events'); process.exitCode = 1; }
