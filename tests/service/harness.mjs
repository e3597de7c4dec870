// harness.mjs - starts the real `tessera serve` on a free loopback port and
// gives the integration tests small clients for it (HTTP, WebSocket), plus
// helpers shared by every *.test.mjs file in this directory.
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
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

export { sleep };

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

// ---------------------------------------------------------------- HTTP

/**
 * One HTTP request on a new connection (so that, with several HTTP workers,
 * requests spread over them and cross-worker consistency is exercised).
 * Returns {status, headers, text, json, body}. json is undefined when the
 * body is not JSON.
 */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const hdrs = {};
    for (const [k, v] of Object.entries(headers)) if (v !== undefined && v !== null) hdrs[k] = v;
    let payload = null;
    if (body !== undefined && body !== null) {
      payload = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
      hdrs['Content-Length'] = String(payload.length);
    }
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: hdrs,
      agent: false, setHost: true,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        let json;
        try { json = text.length ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json, body: buf });
      });
      res.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    if (payload) req.write(payload);
    req.end();
  });
}

/** Headers that carry an identity: a user name (X-User-ID, header mode),
 *  {cookie}, {token}, {headers}, or null for none. */
export function identityHeaders(who) {
  if (who === null || who === undefined) return {};
  if (typeof who === 'string') return { 'X-User-ID': who };
  const h = {};
  if (who.user) h['X-User-ID'] = who.user;
  if (who.cookie) h.Cookie = who.cookie.includes('=') ? who.cookie : `tessera_session=${who.cookie}`;
  if (who.token) h.Authorization = `Bearer ${who.token}`;
  Object.assign(h, who.headers || {});
  return h;
}

/**
 * A raw HTTP/1.1 exchange over one TCP connection: writes head and body
 * (errors while writing, e.g. EPIPE after an early 413, are ignored) and
 * parses whatever answer comes back. For oversized and malformed requests
 * that node's http client would refuse to send or abort on.
 */
export function rawRequest(port, head, body = Buffer.alloc(0), { timeoutMs = 20000, chunkSize = 16384 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const chunks = [];
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const buf = Buffer.concat(chunks);
      const parsed = parseRawResponse(buf);
      if (parsed) resolve(parsed);
      else reject(err || new Error(`no HTTP answer (got ${buf.length} bytes: ${JSON.stringify(buf.toString('latin1').slice(0, 200))})`));
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    sock.on('data', (c) => {
      chunks.push(c);
      const p = parseRawResponse(Buffer.concat(chunks));
      if (p && p.complete) finish();
    });
    sock.on('error', () => { /* EPIPE/ECONNRESET: keep what was read */ setTimeout(() => finish(), 200); });
    sock.on('close', () => finish());
    sock.on('connect', async () => {
      // The body goes in small pieces, each after the previous one was taken
      // by the kernel and after pending input was read: a server that answers
      // early (413) and closes would otherwise make node destroy the socket
      // on EPIPE before its answer was read.
      try {
        await new Promise((r) => sock.write(Buffer.isBuffer(head) ? head : Buffer.from(head, 'latin1'), r));
        for (let off = 0; off < body.length && !done && !sock.destroyed && !chunks.length; off += chunkSize) {
          await new Promise((r) => sock.write(body.subarray(off, off + chunkSize), r));
          await sleep(1);
        }
      } catch { /* the server may close early */ }
    });
  });
}

function parseRawResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const headText = buf.subarray(0, end).toString('latin1');
  const lines = headText.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return null;
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let bodyBuf = buf.subarray(end + 4);
  let complete = false;
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    complete = bodyBuf.length >= n;
    bodyBuf = bodyBuf.subarray(0, n);
  } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const dec = decodeChunked(bodyBuf);
    if (dec) { bodyBuf = dec; complete = true; }
  }
  const text = bodyBuf.toString('utf8');
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: Number(m[1]), headers, text, json, complete };
}

function decodeChunked(buf) {
  const out = [];
  let off = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', off);
    if (eol < 0) return null;
    const n = parseInt(buf.subarray(off, eol).toString('latin1'), 16);
    if (Number.isNaN(n)) return null;
    if (n === 0) return Buffer.concat(out);
    if (buf.length < eol + 2 + n + 2) return null;
    out.push(buf.subarray(eol + 2, eol + 2 + n));
    off = eol + 2 + n + 2;
  }
}

// ---------------------------------------------------------------- WebSocket

/**
 * A WebSocket client of GET /api/events that collects every event.
 *   events     parsed event objects, in arrival order
 *   arrivals   performance.now() of each event's arrival
 *   closed     {code, reason} once closed
 *   rejected   {status, json, text} when the upgrade was refused
 */
export class EventClient {
  constructor(url, headers = {}, { maxPayload = 64 * 1024 * 1024 } = {}) {
    this.url = url;
    this.events = [];
    this.arrivals = [];
    this.nonJson = [];
    this.closed = null;
    this.rejected = null;
    this.error = null;
    this.listeners = new Set();
    this.ws = new WebSocket(url, { headers, maxPayload, handshakeTimeout: 10000 });
    this.opened = new Promise((resolve, reject) => {
      this.ws.on('open', () => resolve(this));
      this.ws.on('unexpected-response', (req, res) => {
        const sock = res.socket || req.socket;
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try { json = JSON.parse(text); } catch { json = undefined; }
          this.rejected = { status: res.statusCode, headers: res.headers, text, json };
          this.closed = this.closed || { code: -1, reason: 'upgrade refused' };
          // Close the connection itself: after a complete answer node would
          // otherwise keep it open (idle keep-alive).
          sock?.destroy();
          req.destroy();
          reject(Object.assign(new Error(`WebSocket upgrade refused: ${res.statusCode} ${text.slice(0, 200)}`), { rejected: this.rejected }));
        });
      });
      this.ws.on('error', (e) => { this.error = e; reject(e); });
      this.ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString() };
        reject(new Error(`WebSocket closed before opening: ${code}`));
      });
    });
    this.opened.catch(() => {});
    this.ws.on('message', (data, isBinary) => {
      const t = performance.now();
      const text = isBinary ? null : data.toString('utf8');
      let ev;
      try { ev = JSON.parse(text); } catch { this.nonJson.push(text); return; }
      this.events.push(ev);
      this.arrivals.push(t);
      for (const l of this.listeners) l(ev, t);
    });
  }

  get lastSeq() {
    return this.events.length ? this.events[this.events.length - 1].seq : 0;
  }

  onEvent(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  /** Resolves when fn(events) is truthy. */
  waitFor(fn, timeoutMs = 10000, what = 'events') {
    return waitFor(() => fn(this.events), timeoutMs, { what: `${what} on ${this.url}`, interval: 20 });
  }

  /** Resolves {code, reason} once the connection is closed. */
  async waitClosed(timeoutMs = 10000) {
    await waitFor(() => this.closed, timeoutMs, { what: `close of ${this.url}`, interval: 20 });
    return this.closed;
  }

  send(data) { return new Promise((resolve) => this.ws.send(data, (err) => resolve(err || null))); }
  pause() { this.ws.pause(); }
  resume() { this.ws.resume(); }
  close(code = 1000) { try { this.ws.close(code); } catch { /* already */ } }
  terminate() { try { this.ws.terminate(); } catch { /* already */ } }
}

// ---------------------------------------------------------------- waiting

/** Polls predicate (may be async) until it returns a truthy value, which is
 *  returned; throws after timeoutMs. */
export async function waitFor(predicate, timeoutMs = 10000, { interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await predicate();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (lastErr ? ` (last error: ${lastErr.message})` : ''));
    }
    await sleep(interval);
  }
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
