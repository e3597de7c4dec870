// load.mjs - the users of the torture run: each submits a mix of workflows
// (sleeps, the tool that starts grandchildren, wide ones, some with
// retries), cancels some, retries failed jobs of others, and follows its
// own events over a WebSocket that reconnects with since=<last seq> after
// every drop. Requests that fail while processes are being killed are
// counted and retried later; only 201s count as acknowledged.

import WebSocket from 'ws';
import { setTimeout as sleep } from 'node:timers/promises';
import { httpRequest, wfId } from '../service/harness.mjs';

const MAX_UNFINISHED = 4; /* per user: keeps the backlog (and the run) short */

/** A small seeded generator (mulberry32), so a run's choices repeat. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One of the workflow shapes, by a random draw. */
export function makeWorkflow(rand, name) {
  const r = rand();
  const retries = rand() < 0.5 ? 2 : 0;
  if (r < 0.35) {
    return { name, jobs: [
      { job_id: 'tool', job_type: 'torture_tool', params: { seconds: 1 + Math.round(rand() * 10) / 10 }, max_retries: retries, retry_delay_s: 0.2 },
      { job_id: 'after', job_type: 'noop', depends_on: ['tool'] }] };
  }
  if (r < 0.7) {
    return { name, jobs: [
      { job_id: 'a', job_type: 'sleep', params: { seconds: 0.5 + Math.round(rand() * 10) / 10 }, max_retries: retries, retry_delay_s: 0.2 },
      { job_id: 'b', job_type: 'noop' }] };
  }
  return { name, jobs: [
    { job_id: 'x', job_type: 'sleep', params: { seconds: 0.3 }, branch: 'x', max_retries: retries, retry_delay_s: 0.2 },
    { job_id: 'y', job_type: 'torture_tool', params: { seconds: 0.5 }, branch: 'y', max_retries: 1, retry_delay_s: 0.2 },
    { job_id: 'z', job_type: 'noop', branch: 'z' },
    { job_id: 'join', job_type: 'noop', depends_on: ['x', 'y', 'z'] }] };
}

/**
 * A WebSocket follower of one user's events. It checks, as events arrive,
 * that each seq is greater than the last one it saw (no repeat, no
 * reordering across reconnects), and keeps every event.
 */
export class Follower {
  constructor(service, user) {
    this.service = service;
    this.user = user;
    this.events = [];
    this.lastSeq = 0;
    this.violations = [];
    this.connects = 0;
    this.stopped = false;
    this.wfState = new Map(); /* workflow id -> its last workflow.* event type */
    this.onFinished = null;   /* (id, state) => void */
  }

  start() { this.connect(); }

  connect() {
    if (this.stopped) return;
    const url = `ws://127.0.0.1:${this.service.port}/api/events?since=${this.lastSeq}`;
    const ws = new WebSocket(url, { headers: { 'X-User-ID': this.user }, handshakeTimeout: 5000 });
    this.ws = ws;
    let again = false;
    const retry = () => {
      if (again) return;
      again = true;
      try { ws.terminate(); } catch { /* closed */ }
      if (!this.stopped) setTimeout(() => this.connect(), 100 + Math.random() * 300);
    };
    ws.on('open', () => { this.connects++; });
    ws.on('message', (data) => this.take(data.toString('utf8')));
    ws.on('close', retry);
    ws.on('error', retry);
    ws.on('unexpected-response', retry);
  }

  take(text) {
    let ev;
    try { ev = JSON.parse(text); } catch { this.violations.push(`${this.user}: a frame that is not JSON: ${text.slice(0, 80)}`); return; }
    if (!(ev.seq > this.lastSeq)) {
      this.violations.push(`${this.user}: seq ${ev.seq} after ${this.lastSeq} (repeated or out of order)`);
      return;
    }
    this.lastSeq = ev.seq;
    this.events.push(ev);
    if (ev.type && ev.type.startsWith('workflow.') && ev.workflow_id !== undefined) {
      this.wfState.set(String(ev.workflow_id), ev.type === 'workflow.finished' ? ev.state || 'finished' : 'open');
      if (ev.type === 'workflow.finished' && this.onFinished) this.onFinished(String(ev.workflow_id), ev.state);
    }
  }

  stop() {
    this.stopped = true;
    try { this.ws?.terminate(); } catch { /* closed */ }
  }
}

/** Every event of user, read page by page over HTTP (the polling API). */
export async function allEvents(service, user) {
  const out = [];
  let since = 0;
  for (;;) {
    const r = await httpRequest(`${service.url}/api/events?since=${since}`, { headers: { 'X-User-ID': user }, timeoutMs: 30000 });
    if (r.status !== 200) throw new Error(`GET /api/events as ${user}: ${r.status} ${r.text.slice(0, 200)}`);
    if (!r.json.events.length) return out;
    out.push(...r.json.events);
    since = r.json.last_seq;
  }
}

/** One user's load: submits while fewer than MAX_UNFINISHED of its own
 *  are unfinished, cancels some, retries failed jobs of some. */
export class User {
  constructor(service, name, rand, acked, stats) {
    this.service = service;
    this.name = name;
    this.rand = rand;
    this.acked = acked; /* shared: id -> user */
    this.stats = stats;
    this.follower = new Follower(service, name);
    this.follower.onFinished = (id, state) => this.finished(id, state);
    this.retried = new Set();
    this.stopping = false;
  }

  api(method, pathname, body) {
    const headers = { 'X-User-ID': this.name };
    let payload;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    return httpRequest(this.service.url + pathname, { method, headers, body: payload, timeoutMs: 15000 });
  }

  /** Own acknowledged workflows not yet seen finished on the follower. */
  unfinished() {
    let n = 0;
    for (const [id, u] of this.acked) {
      const state = u === this.name ? this.follower.wfState.get(id) : null;
      if (state === undefined || state === 'open') n++;
    }
    return n;
  }

  async run() {
    this.follower.start();
    for (let i = 0; !this.stopping; i++) {
      if (this.unfinished() >= MAX_UNFINISHED) {
        await sleep(200);
        continue;
      }
      await this.submitOne(`${this.name}-${i}`);
      await sleep(200 + this.rand() * 1000);
    }
  }

  async submitOne(name) {
    let r;
    try {
      r = await this.api('POST', '/api/workflows', makeWorkflow(this.rand, name));
    } catch {
      this.stats.requestErrors++;
      await sleep(300);
      return;
    }
    if (r.status !== 201) {
      if (r.status >= 500) this.stats.requestErrors++;
      else this.stats.unexpected.push(`POST /api/workflows as ${this.name}: ${r.status} ${r.text.slice(0, 200)}`);
      return;
    }
    const id = String(wfId(r.json));
    this.acked.set(id, this.name);
    if (this.rand() < 0.15) setTimeout(() => this.cancel(id), this.rand() * 3000);
  }

  async cancel(id) {
    try {
      const r = await this.api('POST', `/api/workflows/${id}/cancel`);
      if (r.status < 300) this.stats.cancels++;
      else if (r.status < 500 && r.status !== 409) this.stats.unexpected.push(`cancel ${id}: ${r.status} ${r.text.slice(0, 200)}`);
    } catch { this.stats.requestErrors++; }
  }

  /** A failed workflow: retry one failed job, mostly, once. */
  async finished(id, state) {
    if (state !== 'failed' || this.stopping || this.retried.has(id) || this.rand() >= 0.7) return;
    this.retried.add(id);
    try {
      const w = await this.api('GET', `/api/workflows/${id}`);
      const job = (w.json?.jobs || []).find((j) => j.state === 'failed');
      if (!job) return;
      const r = await this.api('POST', `/api/workflows/${id}/jobs/${job.job_id}/retry`);
      if (r.status < 300) this.stats.retries++;
    } catch { this.stats.requestErrors++; }
  }
}
