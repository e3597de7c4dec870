// noisy_neighbour.mjs - one tenant's heavy but legal reads must not stall
// another tenant (issue 12, defect 13). Against a real `tessera serve`:
// tenant "noisy" owns a 10,000-job workflow (a GET of it is about 3 MB of
// JSON) and four clients read it in a loop; tenant "quiet" GETs its own
// one-job workflow. The quiet tenant's latency is measured twice in the
// same run: alone (the baseline) and with the four noisy clients reading.
//
//   node bench/noisy_neighbour.mjs BUILD/tessera [QUIET_REQUESTS] [-- serve args...]
//
// Prints p50/p99/max of the quiet GET in both phases and their ratios, and
// what the noisy clients got done meanwhile. The big workflow's jobs are
// long sleeps: one runs (and reports its progress a few times a second, so
// the big GET changes and is rendered again), the rest wait for the slot.
// The noisy clients run in a worker thread, an event loop of their own, as
// another tenant's clients would: the quiet tenant's latency is then the
// service's, not that of this process busy reading megabytes for the
// noisy ones.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startTessera } from './serve.mjs';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const extra = dash >= 0 ? argv.slice(dash + 1) : [];
const pos = dash >= 0 ? argv.slice(0, dash) : argv;
const bin = pos[0] || 'build/tessera';
const QUIET_REQUESTS = Number(pos[1] || 300);
const NOISY_CLIENTS = 4;
const BIG_JOBS = 10000;

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

/** One request on a keep-alive agent: {status, bytes, ms}. */
function request(agent, url, method, user, body) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const payload = body ? Buffer.from(JSON.stringify(body)) : null;
    const req = http.request(url, {
      method, agent,
      headers: { 'X-User-ID': user, ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}) },
    }, (res) => {
      let bytes = 0;
      const chunks = [];
      res.on('data', (d) => { bytes += d.length; if (payload) chunks.push(d); });
      res.on('end', () => resolve({ status: res.statusCode, bytes, ms: performance.now() - t0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

async function quietPhase(url, id) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ms = [];
  for (let i = 0; i < QUIET_REQUESTS; i++) {
    const r = await request(agent, `${url}/api/workflows/${id}`, 'GET', 'quiet');
    if (r.status !== 200) throw new Error(`quiet GET: ${r.status}`);
    ms.push(r.ms);
  }
  agent.destroy();
  return ms.sort((a, b) => a - b);
}

/** In the worker thread: four clients reading the big workflow until the
 * main thread says stop, then their figures back to it. */
async function noisyThread({ url, id }) {
  let running = true;
  parentPort.on('message', () => { running = false; });
  const stats = { requests: 0, bytes: 0, ms: [] };
  const loops = [];
  for (let c = 0; c < NOISY_CLIENTS; c++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    loops.push((async () => {
      while (running) {
        const r = await request(agent, `${url}/api/workflows/${id}`, 'GET', 'noisy');
        if (r.status !== 200) throw new Error(`noisy GET: ${r.status}`);
        stats.requests++;
        stats.bytes += r.bytes;
        stats.ms.push(r.ms);
      }
      agent.destroy();
    })());
  }
  await Promise.all(loops);
  parentPort.postMessage(stats);
}

/** Starts the noisy clients (a worker thread); stop() resolves to their figures. */
function noise(url, id) {
  const w = new Worker(new URL(import.meta.url), { workerData: { url, id } });
  const done = new Promise((resolve, reject) => { w.on('message', resolve); w.on('error', reject); });
  return { stop: async () => { w.postMessage('stop'); const stats = await done; await w.terminate(); return stats; } };
}

if (!isMainThread) {
  await noisyThread(workerData);
} else {

const fmt = (s) => `p50 ${percentile(s, 0.5).toFixed(2)} ms, p99 ${percentile(s, 0.99).toFixed(2)} ms, max ${s[s.length - 1].toFixed(2)} ms`;

const srv = await startTessera(bin, 'noisy', ['--concurrency-limit', '1', ...extra]);
try {
  const agent = new http.Agent({ keepAlive: true });
  const big = { name: 'big', jobs: Array.from({ length: BIG_JOBS }, (_, i) => ({ job_id: `j${i}`, job_type: 'sleep', params: { seconds: 3600 } })) };
  const bigRes = await request(agent, `${srv.url}/api/workflows`, 'POST', 'noisy', big);
  if (bigRes.status !== 201) throw new Error(`submit big: ${bigRes.status} ${bigRes.text.slice(0, 300)}`);
  const bigId = JSON.parse(bigRes.text).id;
  const small = await request(agent, `${srv.url}/api/workflows`, 'POST', 'quiet', { name: 'small', jobs: [{ job_id: 'a', job_type: 'noop' }] });
  if (small.status !== 201) throw new Error(`submit small: ${small.status}`);
  const smallId = JSON.parse(small.text).id;
  agent.destroy();
  const probe = await request(undefined, `${srv.url}/api/workflows/${bigId}`, 'GET', 'noisy');
  console.log(`noisy_neighbour: ${bin} ${extra.join(' ')}`.trim());
  console.log(`  big workflow: ${BIG_JOBS} jobs, GET = ${(probe.bytes / 1e6).toFixed(2)} MB in ${probe.ms.toFixed(0)} ms alone`);
  await quietPhase(srv.url, smallId); // warm-up, not counted
  const alone = await quietPhase(srv.url, smallId);
  const n = noise(srv.url, bigId);
  await new Promise((r) => setTimeout(r, 500)); // the noise is under way
  const t0 = performance.now();
  const noisy = await quietPhase(srv.url, smallId);
  const seconds = (performance.now() - t0) / 1000;
  const stats = await n.stop();
  const heavy = stats.ms.sort((a, b) => a - b);
  console.log(`  quiet tenant GET /api/workflows/{id}, ${QUIET_REQUESTS} sequential requests`);
  console.log(`    alone (baseline):          ${fmt(alone)}`);
  console.log(`    with ${NOISY_CLIENTS} noisy readers:     ${fmt(noisy)}`);
  console.log(`    ratio noisy/alone:         p50 ${(percentile(noisy, 0.5) / percentile(alone, 0.5)).toFixed(2)}x, p99 ${(percentile(noisy, 0.99) / percentile(alone, 0.99)).toFixed(2)}x`);
  console.log(`  noisy tenant meanwhile: ${stats.requests} GETs of the big workflow (${(stats.requests / seconds).toFixed(1)}/s, ${(stats.bytes / 1e6 / seconds).toFixed(1)} MB/s), p50 ${percentile(heavy, 0.5).toFixed(0)} ms each`);
} finally {
  await srv.stop();
}
}
