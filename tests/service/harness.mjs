// harness.mjs - starts the real `tessera serve` on a free loopback port and
// gives the integration tests small clients for it (HTTP, WebSocket: in
// clients.mjs, re-exported here), plus helpers shared by every *.test.mjs
// file in this directory.
//
// The tests are written from docs/DESIGN.md §1-§4 (the contract), not
// from the implementation: where the contract does not name a field, the
// helpers below accept the obvious spellings (see wfId, listItems, ...).
//
// Environment:
//   TESSERA_BIN        the binary (default build/tessera, relative to the repo root)
//   TESSERA_TEST_KEEP  =1 keeps each server's temporary directory (state, log)
//   TESSERA_TEST_DEBUG =1 echoes the servers' stdout/stderr
//   TESSERA_TEST_SERVICE_DB=postgresql  runs every server on a fresh PostgreSQL
//                      database of the server at TESSERA_TEST_PG_URL (created
//                      for the server, dropped at its cleanup) instead of SQLite
//                      (tests/run-tests.sh BUILD service-pg does this)

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { httpRequest, identityHeaders, EventClient, waitFor } from './clients.mjs';

export { sleep };
// The clients (HTTP, raw HTTP, WebSocket) and waitFor live in clients.mjs;
// every test imports them from here.
export { httpRequest, identityHeaders, rawRequest, EventClient, waitFor } from './clients.mjs';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.resolve(REPO_ROOT, process.env.TESSERA_BIN || 'build/tessera');
const DEBUG = process.env.TESSERA_TEST_DEBUG === '1';
const KEEP = process.env.TESSERA_TEST_KEEP === '1';

export const WF_FINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const JOB_FINAL = new Set(['succeeded', 'failed', 'cancelled', 'skipped']);
export const WF_STATES = new Set(['queued', 'running', ...WF_FINAL]);
export const JOB_STATES = new Set(['pending', 'ready', 'running', ...JOB_FINAL]);
export const EVENT_TYPES = new Set([
  'workflow.submitted', 'workflow.queued', 'workflow.admitted', 'workflow.finished',
  'job.ready', 'job.started', 'job.progress', 'job.retrying', 'job.finished',
  'queue.position',
]);

// ---------------------------------------------------------------- processes

/** Every process as {pid, ppid, state, comm}, from /proc. */
export function procTable() {
  const out = [];
  let names = [];
  try { names = fs.readdirSync('/proc'); } catch { return out; }
  for (const d of names) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const f = stat.slice(close + 2).split(' ');
      out.push({ pid: Number(d), ppid: Number(f[1]), state: f[0], comm: stat.slice(open + 1, close) });
    } catch { /* gone */ }
  }
  return out;
}

/** Live (non-zombie) direct children of pid (what `pgrep -P pid` lists). */
export function childrenOf(pid) {
  return procTable().filter((p) => p.ppid === pid && p.state !== 'Z').map((p) => p.pid).sort((a, b) => a - b);
}

/** Every live descendant of pid. */
export function descendantsOf(pid) {
  const table = procTable();
  const out = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop();
    for (const c of table) {
      if (c.ppid === p && c.state !== 'Z' && !out.includes(c.pid)) {
        out.push(c.pid);
        todo.push(c.pid);
      }
    }
  }
  return out;
}

/** The command line (process title) and comm of pid, '' when gone. */
export function processTitle(pid) {
  let cmd = '';
  let comm = '';
  try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '); } catch { /* gone */ }
  try { comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { /* gone */ }
  return `${cmd} [${comm}]`;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function killQuietly(pid, sig) {
  try { process.kill(pid, sig); } catch { /* gone */ }
}

// Masters started by this process; killed (group and descendants) on exit,
// whatever happened to the tests.
const started = new Set();
process.on('exit', () => {
  for (const s of started) s.killAllSync();
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    for (const s of started) s.killAllSync();
    process.exit(130);
  });
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- PostgreSQL

const PG_SERVICE = process.env.TESSERA_TEST_SERVICE_DB === 'postgresql';
if (PG_SERVICE && !process.env.TESSERA_TEST_PG_URL) {
  throw new Error('TESSERA_TEST_SERVICE_DB=postgresql needs TESSERA_TEST_PG_URL (tests/lib/pgserver.sh run ...)');
}

/** psql against the test server's maintenance database; throws on failure. */
function psql(sql) {
  const u = new URL(process.env.TESSERA_TEST_PG_URL);
  u.pathname = '/postgres';
  const r = spawnSync('psql', [u.toString(), '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql ${sql}: ${r.stderr || r.error}`);
  return r.stdout;
}

/** A fresh database on the test server; its URL. */
export function createPgDatabase() {
  const name = `t_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
  psql(`CREATE DATABASE ${name}`);
  const u = new URL(process.env.TESSERA_TEST_PG_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Drops a database made by createPgDatabase (connections are ended). */
export function dropPgDatabase(url) {
  const name = new URL(url).pathname.slice(1);
  try { psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); } catch { /* the server may be gone */ }
}

// ---------------------------------------------------------------- the server

/**
 * Starts `tessera serve` on a free loopback port with a fresh state dir and
 * waits for GET /healthz == 200 (15 s). Options: workers, concurrencyLimit,
 * maxActiveUsers, pollSeconds, auth, listenHost, extraArgs, env, stateDir.
 */
export async function startServer(opts = {}) {
  const s = new Server(opts);
  try {
    await s.start();
  } catch (e) {
    await s.cleanup().catch(() => {});
    throw e;
  }
  return s;
}

export class Server {
  constructor({
    workers = 2, concurrencyLimit = 4, maxActiveUsers = 3, pollSeconds = 0.1, auth = null,
    listenHost = '127.0.0.1', extraArgs = [], env = {}, tmpDir = null, db = null,
  } = {}) {
    this.opts = { workers, concurrencyLimit, maxActiveUsers, pollSeconds, auth, listenHost, extraArgs, env };
    this.tmpDir = tmpDir || fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-'));
    this.stateDir = path.join(this.tmpDir, 'state');
    this.logPath = path.join(this.tmpDir, 'log');
    this.output = '';
    this.proc = null;
    this.pid = 0;
    this.port = 0;
    this.url = '';
    this.exit = null;
    this.knownPids = new Set();
    this.clients = new Set(); // WebSocket clients, terminated by cleanup()
    this.db = db || (PG_SERVICE ? createPgDatabase() : null);
    this.ownDb = !db && this.db !== null;
  }

  args(port) {
    const o = this.opts;
    const a = ['serve', '--listen', `${o.listenHost}:${port}`, '--state-dir', this.stateDir,
      '--workers', String(o.workers), '--concurrency-limit', String(o.concurrencyLimit),
      '--max-active-users', String(o.maxActiveUsers), '--poll-seconds', String(o.pollSeconds),
      '--log', this.logPath];
    if (this.db) a.push('--db', this.db);
    if (o.auth) a.push('--auth', o.auth);
    return a.concat(o.extraArgs);
  }

  env() {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!k.startsWith('TESSERA_')) env[k] = v; // a stray TESSERA_* would change what is tested
    }
    return { ...env, ...this.opts.env };
  }

  /** Spawns the master; resolves when /healthz answers 200. */
  async start(preferredPort = 0) {
    let lastErr;
    for (let attempt = 0; attempt < 6; attempt++) {
      const port = attempt === 0 && preferredPort ? preferredPort : await freePort();
      try {
        await this.spawnOnce(port);
        return this;
      } catch (e) {
        lastErr = e;
        if (!e.addrInUse) throw e;
      }
    }
    throw lastErr;
  }

  spawnOnce(port) {
    if (!fs.existsSync(BIN)) {
      return Promise.reject(new Error(`the tessera binary ${BIN} does not exist (build it, or set TESSERA_BIN)`));
    }
    fs.mkdirSync(this.tmpDir, { recursive: true });
    this.output = '';
    this.exit = null;
    const proc = spawn(BIN, this.args(port), {
      cwd: this.tmpDir, env: this.env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.pid = proc.pid;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    started.add(this);
    const onData = (d) => {
      const s = d.toString();
      this.output = (this.output + s).slice(-20000);
      if (DEBUG) process.stderr.write(`[tessera ${this.pid}] ${s}`);
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    const exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      proc.on('error', (e) => {
        this.exit = { code: -1, signal: null, error: e };
        resolve(this.exit);
      });
    });
    this.exited = exited;
    return (async () => {
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline) {
        if (this.exit) break;
        try {
          const r = await httpRequest(`${this.url}/healthz`, { timeoutMs: 2000 });
          if (r.status === 200) {
            this.knownPids.add(this.pid);
            return;
          }
        } catch { /* not yet */ }
        await sleep(100);
      }
      const addrInUse = /in use|EADDRINUSE/i.test(this.output);
      this.killAllSync();
      await Promise.race([exited, sleep(2000)]);
      const err = new Error(`tessera serve did not become healthy on ${this.url} within 15 s ` +
        `(exit ${JSON.stringify(this.exit)}); output:\n${this.output.slice(-3000)}\n${this.logTail()}`);
      err.addrInUse = addrInUse;
      throw err;
    })();
  }

  /** The last lines of the service's JSON log, for failure messages. */
  logTail(n = 30) {
    try {
      const lines = fs.readFileSync(this.logPath, 'utf8').trimEnd().split('\n');
      return `--- ${this.logPath} (last ${n} lines)\n${lines.slice(-n).join('\n')}`;
    } catch {
      return `(no log at ${this.logPath})`;
    }
  }

  /** The environment a CLI command needs to use this server's store
   *  (state directory and, on PostgreSQL, the database). */
  cliEnv() {
    return this.db ? { TESSERA_STATE_DIR: this.stateDir, TESSERA_DB: this.db } : { TESSERA_STATE_DIR: this.stateDir };
  }

  /** Master's children: the scheduler and the HTTP workers (pgrep -P). */
  children() { return this.pid ? childrenOf(this.pid) : []; }

  /** SIGKILL to the process group and to every descendant (jobs included). */
  killAllSync() {
    if (!this.pid) return;
    const desc = descendantsOf(this.pid);
    killQuietly(-this.pid, 'SIGKILL');
    killQuietly(this.pid, 'SIGKILL');
    for (const p of desc) killQuietly(p, 'SIGKILL');
  }

  /** Graceful stop: SIGTERM (drain), then SIGKILL after graceMs. */
  async stop(graceMs = 8000) {
    if (!this.pid || !this.proc) return;
    const desc = descendantsOf(this.pid);
    if (!this.exit) {
      killQuietly(this.pid, 'SIGTERM');
      await Promise.race([this.exited, sleep(graceMs)]);
    }
    this.killAllSync();
    for (const p of desc) killQuietly(p, 'SIGKILL');
    await Promise.race([this.exited, sleep(2000)]);
    started.delete(this);
    await waitFor(() => desc.every((p) => !alive(p)), 5000, { what: 'descendants to end' }).catch(() => {});
  }

  /** kill -9 of the master and of every process it started. */
  async kill9() {
    if (!this.pid) return;
    const desc = descendantsOf(this.pid);
    this.killAllSync();
    for (const p of desc) killQuietly(p, 'SIGKILL');
    await Promise.race([this.exited, sleep(3000)]);
    started.delete(this);
    await waitFor(() => desc.every((p) => !alive(p)), 5000, { what: 'descendants to die' }).catch(() => {});
  }

  /** Stops (gracefully unless {hard: true}) and starts again on the same
   *  state dir (and the same port when it is free). */
  async restart({ hard = false, ...newOpts } = {}) {
    const port = this.port;
    if (hard) await this.kill9(); else await this.stop();
    Object.assign(this.opts, newOpts);
    await this.start(port);
    return this;
  }

  /** Stops and removes the temporary directory (unless TESSERA_TEST_KEEP=1). */
  async cleanup() {
    for (const c of this.clients) c.terminate();
    this.clients.clear();
    await this.stop();
    if (this.ownDb && !KEEP) dropPgDatabase(this.db);
    if (!KEEP) fs.rmSync(this.tmpDir, { recursive: true, force: true });
    else process.stderr.write(`kept ${this.tmpDir}\n`);
  }

  /**
   * api(user, method, path, body, headers) -> {status, headers, json, text}.
   * user: a name (X-User-ID), {cookie}, {token}, {headers} or null.
   * body: an object (sent as application/json) or a string/Buffer sent as is
   * (application/json unless headers say otherwise; a null header value
   * drops the header).
   */
  async api(user, method, pathname, body, headers = {}, { timeoutMs = 30000 } = {}) {
    const h = { ...identityHeaders(user) };
    let payload;
    if (body !== undefined && body !== null) {
      payload = Buffer.isBuffer(body) || typeof body === 'string' ? body : JSON.stringify(body);
      h['Content-Type'] = 'application/json';
    }
    for (const [k, v] of Object.entries(headers)) {
      for (const hk of Object.keys(h)) if (hk.toLowerCase() === k.toLowerCase()) delete h[hk];
      if (v !== null && v !== undefined) h[k] = v;
    }
    return httpRequest(this.url + pathname, { method, headers: h, body: payload, timeoutMs });
  }

  /** Opens GET /api/events as a WebSocket; resolves once open (rejects if
   *  refused, with err.rejected = {status, json}). */
  async ws(user, query = {}, opts = {}) {
    const c = this.wsClient(user, query, opts);
    await c.opened;
    return c;
  }

  /** The same without waiting for the handshake. */
  wsClient(user, query = {}, opts = {}) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) qs.set(k, String(v));
    const q = qs.toString();
    const url = `ws://127.0.0.1:${this.port}/api/events${q ? `?${q}` : ''}`;
    const c = new EventClient(url, identityHeaders(user), opts);
    this.clients.add(c);
    return c;
  }
}

// ---------------------------------------------------------------- API helpers

/** The id of a workflow object (the contract names events' workflow_id;
 *  the workflow's own id is assumed to be "id"). */
export function wfId(w) {
  if (!w || typeof w !== 'object') return undefined;
  return w.id ?? w.workflow_id;
}

/** The items of a GET /api/workflows page ({workflows: [...]} assumed;
 *  a bare array or {items|data} also accepted). */
export function listItems(json) {
  if (Array.isArray(json)) return json;
  if (!json || typeof json !== 'object') return [];
  for (const k of ['workflows', 'items', 'data', 'results']) if (Array.isArray(json[k])) return json[k];
  return [];
}

/** The cursor of the next page, or null. */
export function nextCursor(json) {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return null;
  const c = json.next_cursor ?? json.cursor ?? json.next ?? null;
  return c === '' ? null : c;
}

/** Asserts {"error": {"code", "message"}} with a status satisfying
 *  `status` (a number, an array of numbers, or 'xx' ranges like '4xx'). */
export function assertError(res, status, what = '') {
  const ok = (s) => {
    if (typeof status === 'number') return s === status;
    if (Array.isArray(status)) return status.includes(s);
    if (status === '4xx') return s >= 400 && s < 500;
    if (status === '4xx5xx') return s >= 400 && s < 600;
    return false;
  };
  const ctx = `${what}: got ${res.status} ${String(res.text).slice(0, 300)}`;
  assert.ok(ok(res.status), `expected status ${JSON.stringify(status)} ${ctx}`);
  assert.ok(res.json && typeof res.json === 'object' && res.json.error && typeof res.json.error === 'object',
    `expected a JSON body {"error": {...}} ${ctx}`);
  assert.equal(typeof res.json.error.code, 'string', `error.code must be a string ${ctx}`);
  assert.ok(res.json.error.code.length > 0, `error.code must not be empty ${ctx}`);
  assert.equal(typeof res.json.error.message, 'string', `error.message must be a string ${ctx}`);
  assert.ok(res.json.error.message.length > 0, `error.message must not be empty ${ctx}`);
  return res.json.error;
}

/** The error's code, message and details as one lower-case string. */
export function errorText(res) {
  return JSON.stringify(res.json?.error ?? res.text ?? '').toLowerCase();
}

/** POST /api/workflows, asserting 201; returns the workflow. */
export async function submit(server, user, workflow, headers = {}) {
  const r = await server.api(user, 'POST', '/api/workflows', workflow, headers);
  assert.equal(r.status, 201, `submit ${workflow?.name} as ${JSON.stringify(user)}: ${r.status} ${r.text.slice(0, 500)}`);
  assert.ok(wfId(r.json) !== undefined, `the 201 answer names the workflow's id: ${r.text.slice(0, 300)}`);
  return r.json;
}

export async function getWf(server, user, id) {
  const r = await server.api(user, 'GET', `/api/workflows/${id}`);
  assert.equal(r.status, 200, `GET /api/workflows/${id} as ${JSON.stringify(user)}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

/** Polls the workflow until it is in a final state; returns it. */
export async function waitFinal(server, user, id, timeoutMs = 30000) {
  let last;
  try {
    return await waitFor(async () => {
      const r = await server.api(user, 'GET', `/api/workflows/${id}`);
      if (r.status !== 200) throw new Error(`GET ${id}: ${r.status} ${r.text.slice(0, 200)}`);
      last = r.json;
      return WF_FINAL.has(r.json.state) ? r.json : null;
    }, timeoutMs, { what: `workflow ${id} to finish`, interval: 100 });
  } catch (e) {
    e.message += `; last seen: ${JSON.stringify(last)?.slice(0, 1500)}`;
    throw e;
  }
}

/** Polls the workflow until pred(workflow) holds; returns it. */
export async function waitWf(server, user, id, pred, timeoutMs = 15000, what = 'a state') {
  let last;
  try {
    return await waitFor(async () => {
      const r = await server.api(user, 'GET', `/api/workflows/${id}`);
      if (r.status !== 200) throw new Error(`GET ${id}: ${r.status} ${r.text.slice(0, 200)}`);
      last = r.json;
      return pred(r.json) ? r.json : null;
    }, timeoutMs, { what: `workflow ${id}: ${what}`, interval: 50 });
  } catch (e) {
    e.message += `; last seen: ${JSON.stringify(last)?.slice(0, 1500)}`;
    throw e;
  }
}

/** Every workflow of user (following cursors; bounded). */
export async function listAll(server, user, query = {}, { limit = 100, maxPages = 200 } = {}) {
  const out = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page++) {
    const qs = new URLSearchParams({ ...query, limit: String(limit) });
    if (cursor !== null) qs.set('cursor', String(cursor));
    const r = await server.api(user, 'GET', `/api/workflows?${qs}`);
    assert.equal(r.status, 200, `GET /api/workflows?${qs} as ${JSON.stringify(user)}: ${r.status} ${r.text.slice(0, 300)}`);
    const items = listItems(r.json);
    out.push(...items);
    cursor = nextCursor(r.json);
    if (cursor === null || items.length === 0) return out;
  }
  throw new Error(`GET /api/workflows did not end after ${maxPages} pages`);
}

/** The job of a workflow object by job_id. */
export function jobOf(w, jobId) {
  const jobs = Array.isArray(w?.jobs) ? w.jobs : Object.entries(w?.jobs || {}).map(([k, v]) => ({ job_id: k, ...v }));
  return jobs.find((j) => j.job_id === jobId);
}

export function jobsOf(w) {
  return Array.isArray(w?.jobs) ? w.jobs : Object.entries(w?.jobs || {}).map(([k, v]) => ({ job_id: k, ...v }));
}

// Workflow builders (job types "noop" and "sleep {seconds}" exist in every build).
export const noop = (job_id, extra = {}) => ({ job_id, job_type: 'noop', ...extra });
export const sleepJob = (job_id, seconds, extra = {}) => ({ job_id, job_type: 'sleep', params: { seconds }, ...extra });
export const workflow = (name, jobs, extra = {}) => ({ name, jobs, ...extra });

/** n noop jobs on n separate branches (all runnable at once). */
export function wideNoop(name, n) {
  const jobs = [];
  for (let i = 0; i < n; i++) jobs.push(noop(`n${i}`, { branch: `b${i}` }));
  return workflow(name, jobs);
}

/** Merges the events of several clients (per-user streams) by seq, keeping one
 *  copy of each seq. */
export function mergeBySeq(lists) {
  const bySeq = new Map();
  for (const l of lists) for (const e of l) if (!bySeq.has(e.seq)) bySeq.set(e.seq, e);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** Asserts seqs strictly increasing within one stream. */
export function assertIncreasing(events, what = 'stream') {
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i].seq > events[i - 1].seq,
      `${what}: seq not strictly increasing at index ${i}: ${events[i - 1].seq} then ${events[i].seq}`);
  }
}

/** Runs `tessera ARGS` to completion; {status, stdout, stderr}. */
export function runCli(args, { env = {}, cwd, timeoutMs = 20000 } = {}) {
  const base = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TESSERA_')) base[k] = v;
  const r = spawnSync(BIN, args, { env: { ...base, ...env }, cwd, timeout: timeoutMs, encoding: 'utf8' });
  return { status: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

/** Is the service answering /healthz with 200? */
export async function healthy(server) {
  try {
    const r = await httpRequest(`${server.url}/healthz`, { timeoutMs: 5000 });
    return r.status === 200;
  } catch {
    return false;
  }
}

/** Quantile q (0..1) of numbers. */
export function quantile(xs, q) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
