// cluster_bench.mjs - the store backends and several instances compared in
// one run (docs/architecture.md): SQLite with one instance (the baseline),
// PostgreSQL with one instance, PostgreSQL with two instances sharing one
// database. For each: submissions/s and workflow reads/s from 16 concurrent
// clients (spread over the instances), engine throughput (a 300-job
// workflow of noop jobs, submitted to finished), and event latency to a
// WebSocket client on the *other* instance (the same one when there is only
// one): from sending the submission to receiving its workflow.submitted
// event. Starts its own PostgreSQL (tests/lib/pgserver.sh) and removes it.
//
//   node bench/cluster_bench.mjs BUILD/tessera [SECONDS]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startTessera } from './serve.mjs';

const bin = process.argv[2] || 'build/tessera';
const SECONDS = Number(process.argv[3] || 5);
const CLIENTS = 16;
const LATENCY_SAMPLES = 200;
const ENGINE_JOBS = 300;
const PGSERVER = 'tests/lib/pgserver.sh';

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))] : NaN; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const H = (user) => ({ 'X-User-ID': user, 'Content-Type': 'application/json' });

async function submit(url, user, body) {
  const r = await fetch(`${url}/api/workflows`, { method: 'POST', headers: H(user), body: JSON.stringify(body) });
  if (r.status !== 201) throw new Error(`submit: ${r.status} ${await r.text()}`);
  return (await r.json()).id;
}

/** Requests/s of op(url, i) from CLIENTS loops over the instances for SECONDS. */
async function throughput(urls, op) {
  let n = 0;
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    for (let i = 0; Date.now() < end; i++) {
      await op(urls[(c + i) % urls.length], c);
      n++;
    }
  }));
  return n / SECONDS;
}

async function engine(urls) {
  const jobs = Array.from({ length: ENGINE_JOBS }, (_, i) => ({ job_id: `j${i}`, job_type: 'noop', branch: `b${i}` }));
  const t0 = Date.now();
  const id = await submit(urls[0], 'engine', { name: 'engine', jobs });
  for (;;) {
    const r = await (await fetch(`${urls[urls.length - 1]}/api/workflows/${id}/progress`, { headers: H('engine') })).json();
    if (['succeeded', 'failed', 'cancelled'].includes(r.state)) break;
    await sleep(50);
  }
  return ENGINE_JOBS / ((Date.now() - t0) / 1000);
}

/** Submit on urls[0], receive on the last instance's WebSocket (since=0: the
 *  user "lat" has no events before this). */
async function latency(urls) {
  const ws = new WebSocket(`${urls[urls.length - 1].replace('http', 'ws')}/api/events?since=0`, { headers: { 'X-User-ID': 'lat' } });
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  // The event may arrive before the 201 does (pushed events): arrival times
  // are kept by workflow id and looked up once the id is known.
  const arrived = new Map();
  const waiting = new Map();
  ws.on('message', (d) => {
    const ev = JSON.parse(d);
    if (ev.type !== 'workflow.submitted') return;
    const now = performance.now();
    arrived.set(ev.workflow_id, now);
    if (waiting.has(ev.workflow_id)) waiting.get(ev.workflow_id)(now);
  });
  const samples = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const t0 = performance.now();
    let early = null;
    const got = new Promise((res) => { early = res; });
    const id = await submit(urls[0], 'lat', { name: 'lat', jobs: [{ job_id: 'a', job_type: 'noop' }] });
    if (arrived.has(id)) early(arrived.get(id));
    else waiting.set(id, early);
    const t1 = await Promise.race([got, sleep(5000).then(() => NaN)]);
    samples.push(t1 - t0);
    await sleep(10);
  }
  ws.close();
  return samples.filter((x) => !Number.isNaN(x));
}

async function measure(name, urls) {
  const body = { name: 'b', jobs: [{ job_id: 'a', job_type: 'noop' }, { job_id: 'b', job_type: 'noop', depends_on: ['a'] }] };
  const readId = await submit(urls[0], 'reader', { name: 'read me', jobs: Array.from({ length: 20 }, (_, i) => ({ job_id: `j${i}`, job_type: 'noop', branch: `b${i % 4}` })) });
  const post = await throughput(urls, (u, c) => submit(u, `user${c % 10}`, body));
  const get = await throughput(urls, async (u) => { const r = await fetch(`${u}/api/workflows/${readId}`, { headers: H('reader') }); await r.arrayBuffer(); });
  const lat = await latency(urls);
  const eng = await engine(urls);
  return { name, post, get, eng, p50: pct(lat, 0.5), p99: pct(lat, 0.99), n: lat.length };
}

const serveArgs = ['--workers', '2', '--concurrency-limit', '4', '--max-active-users', '100', '--poll-seconds', '1'];
const pgdir = mkdtempSync(join(tmpdir(), 'tessera-clusterbench-'));
const pgUrl = execFileSync(PGSERVER, ['start', `${pgdir}/pg`], { encoding: 'utf8' }).trim();
const dbUrl = (name) => {
  const u = new URL(pgUrl);
  u.pathname = '/postgres';
  execFileSync('psql', [u.toString(), '-qAtXc', `CREATE DATABASE ${name}`]);
  u.pathname = `/${name}`;
  return u.toString();
};
const results = [];
const live = new Set(); // servers running now, stopped by the signal handler too
// Interrupted (Ctrl-C, a timeout's SIGTERM): the finally blocks below do not
// run, so stop the servers and PostgreSQL here rather than leave them behind.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, async () => {
    for (const s of live) await s.stop().catch(() => {});
    try { execFileSync(PGSERVER, ['stop', `${pgdir}/pg`]); } catch { /* gone */ }
    rmSync(pgdir, { recursive: true, force: true });
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}
try {
  for (const [name, count, db] of [['SQLite, 1 instance', 1, null], ['PostgreSQL, 1 instance', 1, dbUrl('one')],
    ['PostgreSQL, 2 instances', 2, dbUrl('two')]]) {
    const servers = [];
    try {
      for (let i = 0; i < count; i++) {
        servers.push(await startTessera(bin, `cluster${i}`, db ? [...serveArgs, '--db', db] : serveArgs));
        live.add(servers[servers.length - 1]);
      }
      results.push(await measure(name, servers.map((s) => s.url)));
    } finally {
      for (const s of servers) { await s.stop(); live.delete(s); }
    }
  }
} finally {
  try { execFileSync(PGSERVER, ['stop', `${pgdir}/pg`]); } catch { /* gone */ }
  rmSync(pgdir, { recursive: true, force: true });
}
const base = results[0];
console.log(`cluster benchmark: ${CLIENTS} clients x ${SECONDS} s per figure, 2 HTTP workers per instance, loopback`);
console.log('  setup                     submit/s (ratio)   GET wf/s (ratio)   engine jobs/s (ratio)   submit->event on the other instance p50 / p99');
for (const r of results) {
  console.log(`  ${r.name.padEnd(25)} ${r.post.toFixed(0).padStart(7)} (${(r.post / base.post).toFixed(2)})   ${r.get.toFixed(0).padStart(7)} (${(r.get / base.get).toFixed(2)})   ${r.eng.toFixed(0).padStart(7)} (${(r.eng / base.eng).toFixed(2)})          ${r.p50.toFixed(1)} ms / ${r.p99.toFixed(1)} ms (${r.n} samples)`);
}
