// ws_latency.mjs - event delivery latency over WebSocket: from the moment the
// scheduler records an event (its "ts") to the moment a client receives it,
// with 1 connected client (baseline) and then with 1,000 clients spread over 10
// users, against a real `tessera serve` on loopback.
//
//   node bench/ws_latency.mjs BUILD/tessera [CLIENTS]
//
// Prints p50/p99/max for both and the ratio. Bounded: a fixed number of small
// workflows per phase, and a time limit.
import { startTessera } from './serve.mjs';
import WebSocket from 'ws';

const bin = process.argv[2] || 'build/tessera';
const CLIENTS = Number(process.argv[3] || 1000);
const USERS = 10;
const WORKFLOWS = 40;

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

function connect(url, user, latencies) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace('http', 'ws') + '/api/events?since=0', { headers: { 'X-User-ID': user } });
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
    ws.on('message', (data) => {
      const ev = JSON.parse(data);
      if (ws.measuring) latencies.push(Date.now() - Date.parse(ev.ts));
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

async function phase(url, nClients) {
  const latencies = [];
  const sockets = [];
  for (let i = 0; i < nClients; i++) sockets.push(await connect(url, `user${i % USERS}`, latencies));
  await new Promise((r) => setTimeout(r, 500)); // let replays drain
  for (const ws of sockets) ws.measuring = true;
  const ids = [];
  for (let i = 0; i < WORKFLOWS; i++) {
    const user = `user${i % USERS}`;
    ids.push([user, await submit(url, user, i)]);
  }
  await waitDone(url, ids, Date.now() + 120000);
  await new Promise((r) => setTimeout(r, 500)); // the last events
  for (const ws of sockets) ws.close();
  latencies.sort((a, b) => a - b);
  return latencies;
}

const { url, stop } = await startTessera(bin, 'ws', ['--workers', '2', '--concurrency-limit', '2',
  '--max-active-users', String(USERS), '--poll-seconds', '0.1']);
try {
  const base = await phase(url, 1);
  const many = await phase(url, CLIENTS);
  const fmt = (l) => `p50 ${percentile(l, 0.5)} ms, p99 ${percentile(l, 0.99)} ms, max ${l[l.length - 1]} ms (${l.length} deliveries)`;
  console.log(`websocket event latency (event recorded -> client received), ${WORKFLOWS} workflows per phase:`);
  console.log(`  1 client (baseline):  ${fmt(base)}`);
  console.log(`  ${CLIENTS} clients, ${USERS} users: ${fmt(many)}`);
  console.log(`  p99 ratio ${CLIENTS} clients / 1 client: ${(percentile(many, 0.99) / Math.max(1, percentile(base, 0.99))).toFixed(2)}`);
} finally {
  await stop();
}
