// tests/deploy/stack.mjs - the client side of the deployment test
// (tests/deploy/run.sh): everything a user does, through nginx only.
//
//   node tests/deploy/stack.mjs URL TOKEN EXAMPLES_DIR RESTART_CMD
//
// RESTART_CMD is a shell command run with the instance's host name as $1.
//
// Signs in with the token (POST /api/session: the cookie nginx passes
// through), follows GET /api/events over a WebSocket through nginx
// (reconnecting with ?since= whenever the connection is cut), submits the
// demo workflow (tissue_mask -> cell_segmentation on the demo slide) and two
// sleep workflows, and while the cell segmentation runs restarts the instance
// whose scheduler leads by running RESTART_CMD with HOSTNAME as $1 (from
// /metrics' tessera_leader_info). Then checks that nothing was lost: every
// workflow succeeded, the results are there, the WebSocket delivered every
// event once and in order (the same events as the polling fallback), and
// the events of the interrupted job show it was re-run.
//
// Prints one line per check, "ok DESCRIPTION" or "not ok DESCRIPTION", and
// "# ..." diagnostics; run.sh numbers them into its TAP summary. Exit status
// 0 iff every check passed. Waits are on conditions, with generous limits.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import WebSocket from 'ws';

const [url, token, examples, restartCmd] = process.argv.slice(2);
if (!url || !token || !examples || !restartCmd) {
  console.error('usage: stack.mjs URL TOKEN EXAMPLES_DIR RESTART_CMD');
  process.exit(2);
}
const wsUrl = url.replace(/^http/, 'ws');
let failed = 0;
const check = (cond, what, detail) => {
  console.log(`${cond ? 'ok' : 'not ok'} ${what}`);
  if (!cond) {
    failed++;
    if (detail !== undefined) console.log(`# ${String(detail).slice(0, 2000).replace(/\n/g, '\n# ')}`);
  }
  return cond;
};
const note = (s) => console.log(`# ${s}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(200);
  }
}

let cookie = '';
async function api(method, path, body) {
  const headers = { cookie };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

// The event stream: one WebSocket at a time through nginx; when it closes
// (the instance behind it restarts: 1001, or nginx cuts it) a new one
// resumes after the last seq seen.
class Follower {
  constructor(origin) {
    this.origin = origin;
    this.events = [];
    this.connections = 0;
    this.closes = [];
    this.stopped = false;
    this.open();
  }

  open() {
    if (this.stopped) return;
    const since = this.events.length ? this.events[this.events.length - 1].seq : 0;
    const headers = { cookie };
    if (this.origin) headers.origin = this.origin;
    const ws = new WebSocket(`${wsUrl}/api/events?since=${since}`, { headers, handshakeTimeout: 10000 });
    this.ws = ws;
    ws.on('open', () => { this.connections++; });
    ws.on('unexpected-response', (req, res) => { this.refused = res.statusCode; this.stopped = true; req.destroy(); });
    ws.on('message', (data) => {
      try { this.events.push(JSON.parse(data.toString('utf8'))); } catch { this.nonJson = (this.nonJson || 0) + 1; }
    });
    ws.on('error', () => {}); // 'close' follows
    ws.on('close', (code) => {
      if (this.stopped) return;
      this.closes.push(code);
      setTimeout(() => this.open(), 500);
    });
  }

  stop() { this.stopped = true; this.ws.terminate(); }
  finished(id) { return this.events.some((e) => e.type === 'workflow.finished' && String(e.workflow_id) === String(id)); }
}

// Every event of the caller through the polling fallback (the same URL
// without the upgrade), page after page.
async function pollAll() {
  const all = [];
  let since = 0;
  for (let page = 0; page < 1000; page++) {
    const r = await api('GET', `/api/events?since=${since}`);
    if (r.status !== 200) throw new Error(`GET /api/events: ${r.status} ${r.text.slice(0, 200)}`);
    const evs = Array.isArray(r.json) ? r.json : (r.json.events || []);
    if (!evs.length) break;
    all.push(...evs);
    since = evs[evs.length - 1].seq;
  }
  return all;
}

async function leaderHost() {
  const r = await api('GET', '/metrics');
  const m = /tessera_leader_info\{[^}]*owner="([^":]+):/.exec(r.text);
  return m ? m[1] : null;
}

async function main() {
  // Sign in: the token makes a session cookie (what the web UI does).
  const s = await api('POST', '/api/session', { token });
  const set = s.headers.getSetCookie ? s.headers.getSetCookie() : [s.headers.get('set-cookie') || ''];
  cookie = set.map((h) => h.split(';')[0]).find((h) => h.startsWith('tessera_session=')) || '';
  check(s.status === 200 && cookie, 'signed in through nginx with the token (session cookie)', `${s.status} ${s.text}`);
  const me = await api('GET', '/api/session');
  check(me.status === 200 && me.text.includes('alice'), 'the session names the user on the next request', me.text);

  // nginx must never pass a client's X-User-ID on (with header mode the
  // instances would trust it). In token mode an instance that sees one
  // refuses it (401 invalid_credentials: "X-User-ID is not accepted");
  // without it the request has no credentials (401 unauthenticated). Both
  // of nginx's locations: the API and the event stream.
  for (const path of ['/api/workflows', '/api/events?since=0']) {
    const r = await fetch(url + path, { headers: { 'x-user-id': 'alice' } });
    const text = await r.text();
    let code;
    try { code = JSON.parse(text).error.code; } catch { code = undefined; }
    check(r.status === 401 && code === 'unauthenticated',
      `nginx drops a client's X-User-ID (${path}: 401 unauthenticated, not invalid_credentials)`, `${r.status} ${text}`);
  }

  // Two streams: nginx balances them over both instances, so one of them
  // is likely on the instance that restarts and is cut. The second is the
  // web UI's: a browser sends its page's Origin, which the service compares
  // with the Host nginx passes on (port included).
  const follows = [new Follower(), new Follower(url)];
  await waitFor(() => follows.every((f) => f.connections > 0 || f.refused), 30000, 'the WebSockets through nginx');
  check(follows[0].connections > 0, 'a WebSocket to /api/events upgraded through nginx');
  check(follows[1].connections > 0, `a WebSocket with the page's Origin (${url}) upgraded through nginx`,
    `refused: ${follows[1].refused}`);
  const live = follows.filter((f) => f.connections > 0);
  const finished = (id) => live.every((f) => f.finished(id));

  const demo = JSON.parse(readFileSync(join(examples, 'demo-analysis.json'), 'utf8'));
  const sleeps = JSON.parse(readFileSync(join(examples, 'two-branches.json'), 'utf8'));
  const ids = [];
  for (const wf of [demo, sleeps, { ...sleeps, name: 'two branches, again' }]) {
    const r = await api('POST', '/api/workflows', wf);
    if (!check(r.status === 201, `submitted "${wf.name}" through nginx (201)`, `${r.status} ${r.text}`)) continue;
    ids.push(r.json.id ?? r.json.workflow_id);
  }
  const demoId = ids[0];

  // Mid-run: the cell segmentation has started (and reported progress).
  await waitFor(() => live[0].events.some((e) => String(e.workflow_id) === String(demoId) && e.job_id === 'cells' &&
    (e.type === 'job.progress' || e.type === 'job.started')), 600000, 'the cells job to start');
  const leader = await waitFor(leaderHost, 30000, 'a leader in /metrics');
  const beforeRestart = live[0].events.length;
  note(`restarting ${leader} (the leading instance) while cells runs; ${beforeRestart} events so far`);
  try {
    execFileSync('/bin/sh', ['-c', restartCmd, 'restart', leader], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120000 });
    check(!finished(demoId), `restarted the leading instance (${leader}) mid-run, before the demo finished`);
  } catch (e) {
    check(false, `restarted the leading instance (${leader})`, `${e.message} ${e.stderr ?? ''}`);
  }

  for (const id of ids) {
    await waitFor(() => finished(id), 900000, `workflow ${id} to finish`).catch((e) => note(e.message));
  }
  for (const [i, f] of live.entries()) {
    check(ids.every((id) => f.finished(id)), `WebSocket ${i + 1} followed every workflow to workflow.finished ` +
      `(${f.connections} connection(s), closed with ${JSON.stringify(f.closes)})`);
    f.stop();
  }

  for (const id of ids) {
    const w = await api('GET', `/api/workflows/${id}`);
    check(w.status === 200 && w.json.state === 'succeeded', `workflow ${id} "${w.json?.name}" succeeded`,
      `${w.status} ${JSON.stringify(w.json?.jobs?.map((j) => [j.job_id, j.state, j.reason, j.attempts]) ?? w.text)}`);
  }
  const dw = await api('GET', `/api/workflows/${demoId}`);
  for (const j of dw.json?.jobs ?? []) note(`demo job ${j.job_id}: ${j.state}, attempts ${JSON.stringify(j.attempts ?? j.attempt)}`);
  const list = await api('GET', `/api/workflows/${demoId}/jobs/cells/results`);
  const names = JSON.stringify(list.json);
  check(list.status === 200 && ['cells.geojson', 'cells.csv', 'summary.json'].every((f) => names.includes(f)),
    'the demo\'s cell results are listed', `${list.status} ${list.text}`);
  const sum = await api('GET', `/api/workflows/${demoId}/jobs/cells/results/summary.json`);
  const count = sum.json?.count;
  check(sum.status === 200 && count > 50, `the demo's summary counts cells (${count})`, sum.text);

  // Nothing lost, nothing twice, in order: the WebSocket's events (across
  // reconnections) are exactly the stored events.
  const polled = (await pollAll()).map((e) => e.seq);
  for (const [i, f] of live.entries()) {
    const seqs = f.events.map((e) => e.seq);
    const ordered = seqs.every((q, k) => k === 0 || q > seqs[k - 1]);
    check(ordered, `WebSocket ${i + 1}: seq strictly increasing across ${f.connections} connection(s)`, seqs.join(','));
    check(JSON.stringify(polled) === JSON.stringify(seqs),
      `WebSocket ${i + 1}: every stored event delivered once (${seqs.length} events)`,
      `ws ${seqs.length}: ${seqs.slice(-20)} / stored ${polled.length}: ${polled.slice(-20)}`);
  }
  const retried = live[0].events.filter((e) => String(e.workflow_id) === String(demoId) &&
    (e.type === 'job.retrying' || (e.type === 'job.started' && e.job_id === 'cells')));
  note(`cells job events after the restart: ${JSON.stringify(retried.map((e) => [e.type, e.job_id, e.attempt ?? '', e.message ?? '']))}`);
}

main().then(() => process.exit(failed ? 1 : 0), (e) => {
  console.log(`not ok ${e.message}`);
  process.exit(1);
});
