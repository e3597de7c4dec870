// ws_latency.mjs - event delivery latency over WebSocket: from the moment the
// scheduler records an event (its "ts") to the moment a client receives it,
// for 1, 1,000 and 10,000 connected clients spread over 100 users (each
// receiving only its own users' events, which the bench checks), against a
// real `tessera serve` on loopback with SQLite; and the memory each
// connected client costs the service (RSS of the serve process tree with the
// clients connected minus without, per client).
//
//   node bench/ws_latency.mjs BUILD/tessera [CLIENTS,CLIENTS,...] [BASELINE_BINARY] [ROUNDS] [CLIENT_THREADS]
//
// CLIENTS defaults to 1,1000,10000 (raise `ulimit -n` to 25000 or more for
// 10,000: both this process and the workers hold one fd per client).
// BASELINE_BINARY: another tessera build measured the same way in the same
// run (e.g. one whose hubs poll SQLite instead of being woken), with ratios.
// Beside the latencies it prints the service's own part of an event's way
// (its /metrics histograms from the event's record to a hub's read, and to
// its frames written to every client's socket, diffed over the measured
// phases) and, when BUILD/bench/wake_jitter is built, how
// late this machine woke a thread sleeping 5 ms over the same minutes: the
// way to a client is several such wake-ups, and on a shared 2-core machine
// their delays, not the service's work, decide the tail.
// ROUNDS (default 1): phases per size and binary; both servers run side by
// side and the binaries take turns phase by phase (the first alternating),
// so that a change in the machine's load during the run hits both alike;
// the rounds' latencies are pooled, memory is the first round's.
// CLIENT_THREADS (default 1): the clients of a phase of 100 or more are
// spread over this many worker threads (ws_clients.mjs), each user's
// clients over all of them. With one thread, 10,000 clients' messages are
// parsed and timed one after another by one event loop, and the last of an
// event's 100 copies waits for the 99 before it (and for every other
// event's): that thread's queue, not the service, made most of the
// 10,000-client tail on this 2-core machine (stop 29: every event was
// written to every socket within 25 ms, the clients' p99 was 90 ms).
// The phase's workflows are submitted by a thread of their own
// (ws_submit_worker.mjs): the clients that time the events have this thread's
// event loop to themselves, as a browser tab that only listens would (until
// stop 25 the submit loop shared it, and its HTTP work delayed the handlers).
// Bounded: a fixed number of small workflows per phase, and a time limit.
// The workflows of a phase belong to the users that have clients (user0
// alone with one client), so every event is measured: with one client of
// user0 among 100 users' workflows, a phase had 12 deliveries and its "p99"
// was their maximum. Each server first gets an unmeasured warm-up round (one
// client, a few workflows): without it the first phase of the first binary
// also measured the bench's own cold start, which added 10-30 ms to the
// first events of whichever binary came first.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { startTessera } from './serve.mjs';
import { ClientSet } from './ws_clients.mjs';

const bin = process.argv[2] || 'build/tessera';
const COUNTS = (process.argv[3] || '1,1000,10000').split(',').map(Number);
const baselineBin = process.argv[4] || '';
const ROUNDS = Number(process.argv[5] || 1);
const CLIENT_THREADS = Math.max(1, Number(process.argv[6] || 1));
const USERS = 100;
const WORKFLOWS = 40;

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

/** RSS in KiB, and CPU time (user + system, ms) of pid and all its live
 * descendants (USER_HZ is 100 on Linux); hubCpuMs: of the WebSocket hubs'
 * threads alone (named tessera-ws), the part the fan-out costs. */
function treeUsage(root) {
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
  let rssKiB = 0, cpuMs = 0, hubCpuMs = 0;
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    try {
      const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
      if (m) rssKiB += Number(m[1]);
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpuMs += (Number(f[11]) + Number(f[12])) * 10;
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        const ts = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
        if (!ts.includes('(tessera-ws)')) continue;
        const g = ts.slice(ts.lastIndexOf(')') + 2).split(' ');
        hubCpuMs += (Number(g[11]) + Number(g[12])) * 10;
      }
    } catch { /* gone */ }
    for (const c of children.get(pid) || []) todo.push(c);
  }
  return { rssKiB, cpuMs, hubCpuMs };
}

/** The phase's workflows, submitted one after the other by the submitting
 * thread (ws_submit_worker.mjs, one for the whole run: a new one per phase
 * would warm up its HTTP client while the events are timed) as this thread's
 * clients time the events; resolves to [user, id] of each, and owner learns
 * each id as it is made. */
let submitter = null;
function submitApart(url, users, workflows, owner) {
  if (!submitter) {
    submitter = new Worker(new URL('./ws_submit_worker.mjs', import.meta.url));
    submitter.unref();
  }
  return new Promise((resolve, reject) => {
    const ids = [];
    const onMessage = (m) => {
      if (m.id !== undefined) {
        owner.set(m.id, m.user);
        ids.push([m.user, m.id]);
        return;
      }
      submitter.off('message', onMessage);
      if (m.error) reject(new Error(m.error));
      else resolve(ids);
    };
    submitter.on('message', onMessage);
    submitter.postMessage({ url, users, workflows });
  });
}

/* Until every workflow of ids has ended: seen in its workflow.finished
 * event, which its owner's clients receive, or else (a lost event must not
 * hang the bench) in its progress, asked once a second. Polling every
 * workflow's progress every 50 ms, as this did before, kept this process
 * and the service's workers busy beside the deliveries being timed: on 2
 * cores it added its own milliseconds to the tail. */
async function waitDone(url, ids, deadline, finished) {
  for (let round = 1; ; round++) {
    const left = ids.filter(([, id]) => !finished.has(id));
    if (!left.length) return;
    if (Date.now() > deadline) throw new Error('workflows did not finish in time');
    if (round % 10 === 0) {
      for (const [user, id] of left) {
        const r = await fetch(`${url}/api/workflows/${id}/progress`, { headers: { 'X-User-ID': user } });
        if (['succeeded', 'failed', 'cancelled'].includes((await r.json()).state)) finished.add(id);
      }
    }
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** The service's own histograms of an event's way (/metrics): from being
 * recorded to a hub's read of it (tessera_event_delivery_seconds, `read`)
 * and to its frames written to every socket of the fan-out
 * (tessera_event_fanout_seconds, `written`; empty for a build without it):
 * cumulative counts by upper bound in seconds. */
async function deliveryHistograms(url) {
  const text = await (await fetch(url + '/metrics')).text();
  const hist = (name) => {
    const h = new Map();
    for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)$`, 'gm'))) h.set(m[1], Number(m[2]));
    return h;
  };
  return { read: hist('tessera_event_delivery_seconds'), written: hist('tessera_event_fanout_seconds') };
}

const histDiff = (after, before) => new Map([...after].map(([le, n]) => [le, n - (before.get(le) || 0)]));
const histAdd = (acc, h) => { for (const [le, n] of h) acc.set(le, (acc.get(le) || 0) + n); return acc; };

/** A ClientSet (ws_clients.mjs) in a worker thread of its own
 * (ws_client_worker.mjs), with the same calls, each answered in turn. */
class RemoteClientSet {
  constructor(url, onFinished) {
    this.url = url;
    this.worker = new Worker(new URL('./ws_client_worker.mjs', import.meta.url));
    this.waiting = [];
    this.worker.on('message', (m) => {
      if (m.finished !== undefined) return onFinished(m.finished);
      const w = this.waiting.shift();
      if (m.error) w.reject(new Error(m.error));
      else w.resolve(m);
    });
  }

  call(msg) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage(msg);
    });
  }

  open(users, lastSeq) { return this.call({ open: { url: this.url, users, lastSeq: [...lastSeq] } }); }
  measure(lastOld) { return this.call({ measure: lastOld }); }
  async close() {
    try {
      return await this.call({ close: true });
    } finally {
      await this.worker.terminate();
    }
  }
}

async function phase(srv, nClients, srvState, workflows = WORKFLOWS) {
  const finished = new Set();
  const onFinished = (id) => finished.add(id);
  // Client k is user (k % USERS)'s, in thread floor(k / USERS) % threads:
  // each user's clients spread over the threads.
  const threads = Math.min(CLIENT_THREADS, Math.ceil(nClients / USERS));
  const sets = [], users = [];
  for (let t = 0; t < threads; t++) {
    sets.push(threads > 1 ? new RemoteClientSet(srv.url, onFinished) : new ClientSet(srv.url, onFinished));
    users.push([]);
  }
  for (let k = 0; k < nClients; k++) users[Math.floor(k / USERS) % threads].push(`user${k % USERS}`);
  const rssBefore = treeUsage(srv.proc.pid).rssKiB;
  let closed = false;
  try {
    return await measured(srv, nClients, srvState, workflows, { sets, users, finished, rssBefore },
      () => { closed = true; });
  } finally {
    // a failed phase still closes its clients (and ends their threads)
    if (!closed) await Promise.allSettled(sets.map((s) => s.close()));
  }
}

/** phase() once its client sets exist: opens them, times the phase's
 * workflows, closes them (closed() says so). */
async function measured(srv, nClients, srvState, workflows, { sets, users, finished, rssBefore }, closed) {
  const owner = srvState.owner;
  const lastOld = Math.max(0, ...owner.keys());
  await Promise.all(sets.map((s, t) => s.open(users[t], srvState.lastSeq)));
  await new Promise((r) => setTimeout(r, 1000)); // let replays drain
  const after = treeUsage(srv.proc.pid);
  const rssAfter = after.rssKiB;
  const histBefore = await deliveryHistograms(srv.url);
  await Promise.all(sets.map((s) => s.measure(lastOld)));
  const ids = await submitApart(srv.url, Math.min(USERS, nClients), workflows, owner);
  await waitDone(srv.url, ids, Date.now() + 300000, finished);
  await new Promise((r) => setTimeout(r, 1000)); // the last events
  const end = treeUsage(srv.proc.pid);
  const histAfter = await deliveryHistograms(srv.url);
  const hist = histDiff(histAfter.read, histBefore.read), written = histDiff(histAfter.written, histBefore.written);
  const cpuMs = end.cpuMs - after.cpuMs, hubCpuMs = end.hubCpuMs - after.hubCpuMs;
  // closed before the next phase opens its own: both at once could pass the fd limit
  closed();
  const seenBy = await Promise.all(sets.map((s) => s.close()));
  const lat = seenBy.flatMap((r) => r.latencies).sort((a, b) => a - b);
  for (const r of seenBy) {
    for (const [user, seq] of r.lastSeq) if (seq > (srvState.lastSeq.get(user) || 0)) srvState.lastSeq.set(user, seq);
  }
  // every event checked against its workflow's owner: the timed ones one
  // by one, the others (before the phase's workflows) by user and workflow,
  // each message counted
  const foreignTo = (user, wf) => owner.has(wf) && owner.get(wf) !== user;
  const foreign = seenBy.reduce((n, r) => n + r.seen.filter(([user, wf]) => foreignTo(user, wf)).length +
    r.pairs.reduce((m, [p, count]) => m + (foreignTo(p.split('\t')[0], Number(p.split('\t')[1])) ? count : 0), 0), 0);
  return { lat, foreign, kibPerClient: (rssAfter - rssBefore) / nClients, cpuMs, hubCpuMs, hist, written };
}

/** A server with its warm-up round done (not reported). */
async function startServer(binary) {
  const srv = await startTessera(binary, 'ws', ['--workers', '2', '--concurrency-limit', '2',
    '--max-active-users', String(USERS), '--poll-seconds', '1']);
  const state = { owner: new Map(), lastSeq: new Map() };
  try {
    await phase(srv, 1, state, 10);
  } catch (e) {
    await srv.stop();
    throw e;
  }
  return { binary, srv, state };
}

/** The rounds of one phase size pooled: every latency; the memory of the
 * first round (later rounds reuse heap that earlier ones grew, and show less). */
function pooled(results) {
  const lat = results.flatMap((r) => r.lat).sort((a, b) => a - b);
  return { lat, foreign: results.reduce((n, r) => n + r.foreign, 0), kibPerClient: results[0].kibPerClient,
    cpuMs: results.reduce((n, r) => n + r.cpuMs, 0), hubCpuMs: results.reduce((n, r) => n + r.hubCpuMs, 0),
    p99s: results.map((r) => percentile(r.lat, 0.99)),
    hist: results.reduce((acc, r) => histAdd(acc, r.hist), new Map()),
    written: results.reduce((acc, r) => histAdd(acc, r.written), new Map()) };
}

/** What share of a histogram's events were within each bound. */
const shares = (h, les) => `${les.map((le) => `${(100 * h.get(le) / h.get('+Inf')).toFixed(1)}% <= ${le * 1000} ms`).join(', ')} of ${h.get('+Inf')}`;

const fmt = (r) => `p50 ${percentile(r.lat, 0.5)} ms, p99 ${percentile(r.lat, 0.99)} ms, max ${r.lat[r.lat.length - 1]} ms` +
  ` (${r.lat.length} deliveries, ${r.foreign} of another user's), ${r.kibPerClient.toFixed(1)} KiB RSS per client,` +
  ` service CPU ${r.cpuMs} ms, of which the hubs' ${r.hubCpuMs} ms (${(r.hubCpuMs / Math.max(1, r.lat.length) * 1000).toFixed(1)} µs per delivery)` +
  (r.p99s.length > 1 ? `; p99 of each round ${r.p99s.join(', ')} ms` : '') +
  // the service's part of the way (recorded -> a hub read it), every hub's reads
  (r.hist.get('+Inf') ? `; the service's part (recorded -> read by a hub): ${shares(r.hist, ['0.0025', '0.005', '0.01'])}` : '') +
  // and to the frames written to every socket of the fan-out: the rest is
  // the kernel's loopback and this process's own handling of the messages
  (r.written.get('+Inf') ? `; (recorded -> written to every client's socket): ${shares(r.written, ['0.01', '0.025', '0.05', '0.1'])}` : '');
console.log(`websocket event latency (event recorded -> client received), ${WORKFLOWS} two-job workflows per phase, ${USERS} users, SQLite, --poll-seconds 1` +
  `, the clients in ${CLIENT_THREADS} thread(s) of this process` +
  (ROUNDS > 1 ? `, ${ROUNDS} rounds per size, the binaries alternating:` : ':'));
const servers = [await startServer(bin)];
const results = [new Map()];
// The machine's own wake-up delays over the same minutes (bench/wake_jitter.c), if built.
const jitterBin = join(dirname(bin), 'bench', 'wake_jitter');
const jitter = existsSync(jitterBin) ? spawn(jitterBin, ['3600', '5'], { stdio: ['ignore', 'pipe', 'inherit'] }) : null;
let jitterOut = '';
if (jitter) jitter.stdout.on('data', (d) => { jitterOut += d; });
const jitterDone = jitter ? new Promise((res) => jitter.on('exit', res)) : Promise.resolve();
try {
  if (baselineBin) {
    servers.push(await startServer(baselineBin));
    results.push(new Map());
  }
  for (const n of COUNTS) {
    for (let round = 0; round < ROUNDS; round++) {
      // who goes first alternates, so that neither always runs right after the other's load
      const order = servers.map((_, i) => i);
      if (round % 2 === 1) order.reverse();
      for (const i of order) {
        if (!results[i].has(n)) results[i].set(n, []);
        results[i].get(n).push(await phase(servers[i].srv, n, servers[i].state));
      }
    }
  }
} finally {
  if (jitter) jitter.kill('SIGTERM');
  await jitterDone;
  for (const s of servers) await s.srv.stop();
}
if (jitter) console.log(`  this machine meanwhile (${jitterBin}): ${jitterOut.trim()}`);
const mine = COUNTS.map((n) => [n, pooled(results[0].get(n))]);
for (const [n, r] of mine) console.log(`  ${bin}: ${n} client(s): ${fmt(r)}`);
if (baselineBin) {
  const base = COUNTS.map((n) => [n, pooled(results[1].get(n))]);
  for (const [n, r] of base) console.log(`  ${baselineBin} (baseline): ${n} client(s): ${fmt(r)}`);
  for (let i = 0; i < mine.length; i++) {
    const [n, r] = mine[i];
    const b = base[i][1];
    console.log(`  ${n} client(s): p50 ${(percentile(b.lat, 0.5) / Math.max(1, percentile(r.lat, 0.5))).toFixed(1)}x, ` +
      `p99 ${(percentile(b.lat, 0.99) / Math.max(1, percentile(r.lat, 0.99))).toFixed(1)}x lower than the baseline`);
  }
}
for (const [, r] of mine) if (r.foreign) { console.log('FAIL: a client received another user\'s events'); process.exitCode = 1; }
