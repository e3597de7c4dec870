// torture.mjs - the kill -9 torture run of issue 12 ("Proof"): under mixed
// load from several users (submits, cancels, retries, WebSocket followers)
// it kills a random process of the service - the master, the scheduler, an
// HTTP worker, a job's runner, a tool's grandchild - N times at random
// moments, starts the service again whenever the master died, and then
// checks the invariants:
//   1. every acknowledged (201) workflow is present and final at the end;
//   2. no job succeeded twice (attempt history and events);
//   3. no process outlived its attempt: never two attempts of one job alive
//      at once (sampled from /proc all along), nothing of a killed master
//      left alive, no job process left once everything is final;
//   4. the admission line never stuck, and it is empty at the end, and new
//      work still runs;
//   5. every WebSocket follower saw every event of its user exactly once,
//      in seq order, reconnecting with since= after every drop.
// Prints its figures and one "ok"/"not ok" line per invariant, ending with
// "torture: N passed, N failed"; exits non-zero on any violation.
//
// usage: node tests/torture/torture.mjs [--kills N] [--seed S] [--users N] [--keep]
//   (TESSERA_BIN names the binary; `make torture KILLS=N` runs it.)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, httpRequest, listAll, wfId, WF_FINAL } from '../service/harness.mjs';
import { Service } from './service.mjs';
import { User, allEvents, rng } from './load.mjs';
import { alive, attemptOverlaps, byKind, descendants, kill9, marked, snapshot } from './procs.mjs';

const KINDS = ['master', 'scheduler', 'worker', 'job', 'tool_grandchild'];
const STUCK_LINE_S = 45;    /* a line with room that does not move this long is stuck */
const ORPHAN_LIMIT_S = 30;  /* what a killed master leaves must be gone by then */
const FINAL_LIMIT_S = 300;  /* every acknowledged workflow must end by then */

function parseArgs(argv) {
  const o = { kills: Number(process.env.TESSERA_TORTURE_KILLS || 20), seed: Date.now() % 1000000, users: 4, keep: false };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === '--kills') o.kills = Number(argv[++i]);
    else if (argv[i] === '--seed') o.seed = Number(argv[++i]);
    else if (argv[i] === '--users') o.users = Number(argv[++i]);
    else if (argv[i] === '--keep') o.keep = true;
    else throw new Error(`unknown argument ${argv[i]} (usage: torture.mjs [--kills N] [--seed S] [--users N] [--keep])`);
  }
  if (!(o.kills >= 0) || !(o.users >= 1)) throw new Error('--kills must be >= 0 and --users >= 1');
  return o;
}

/** The admin-defined tool the jobs run: it starts two grandchildren (one
 *  in its own session), works for a while, and writes its result. */
function writeTool(dir) {
  const script = path.join(dir, 'torture-tool');
  fs.writeFileSync(script, [
    '#!/bin/sh',
    'out=$1; secs=$2',
    'sleep 60 &',
    'setsid sleep 61 &',
    'echo "PROGRESS 1 3 started"',
    'sleep "$secs"',
    'echo "PROGRESS 2 3 worked"',
    'printf \'{"type": "FeatureCollection", "features": []}\' > "$out/r.geojson"',
    'echo "PROGRESS 3 3 done"', ''].join('\n'), { mode: 0o755 });
  const tools = path.join(dir, 'tools.json');
  fs.writeFileSync(tools, JSON.stringify({ tools: [{
    name: 'torture_tool', argv: [script, '{out_dir}', '{seconds}'],
    params: { seconds: { type: 'number', min: 0.1, max: 30, default: 1 } },
    needs_image: false, result: 'r.geojson' }] }));
  return tools;
}

class Run {
  constructor(opts) {
    this.opts = opts;
    this.rand = rng(opts.seed);
    this.violations = { final: [], twice: [], leftover: [], line: [], events: [] };
    this.figures = { kills: Object.fromEntries(KINDS.map((k) => [k, 0])), restartS: [], started: Date.now() };
    this.stats = { requestErrors: 0, cancels: 0, retries: 0, unexpected: [] };
    this.acked = new Map();
    this.orphanChecks = [];
    this.lineSince = 0;
  }

  async setUp() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-torture-'));
    const tools = writeTool(this.dir);
    this.service = new Service({ dir: this.dir, port: await freePort(), workers: 3, concurrencyLimit: 4,
      maxActiveUsers: 3, tools });
    await this.service.start();
    this.users = [];
    for (let i = 0; i < this.opts.users; i++) {
      this.users.push(new User(this.service, `tort-u${i}`, rng(this.opts.seed + i + 1), this.acked, this.stats));
    }
    this.loads = this.users.map((u) => u.run());
    this.sampler = setInterval(() => this.sample(), 400);
    this.lineWatch = setInterval(() => this.watchLine(), 1000);
  }

  /** Two attempts of one job alive at once is a violation (procs.mjs). */
  sample() {
    for (const o of attemptOverlaps(this.service.stateDir)) {
      const key = `${o.job} ${o.attempts.join(',')}`;
      if (!this.violations.leftover.some((v) => v.startsWith(key))) {
        this.violations.leftover.push(`${key}: earlier attempt still alive: ${o.pids.join('; ')}`);
      }
    }
  }

  /** The line is stuck when users wait while there is room, for long. */
  async watchLine() {
    let q;
    try {
      q = (await httpRequest(`${this.service.url}/api/queue`, { headers: { 'X-User-ID': 'tort-watch' }, timeoutMs: 3000 })).json;
    } catch { this.lineSince = 0; return; }
    const room = q && q.waiting_users > 0 && q.active_users < q.max_active_users;
    if (!room) { this.lineSince = 0; return; }
    if (!this.lineSince) this.lineSince = Date.now();
    if (Date.now() - this.lineSince > STUCK_LINE_S * 1000) {
      this.violations.line.push(`users waited with room in the line for ${STUCK_LINE_S} s: ${JSON.stringify(q)}`);
      this.lineSince = 0;
    }
  }

  /** kill -9 of the master; a new one on the same port at once; what the
   *  old one had started must go by itself. */
  async killMaster() {
    const before = descendants(snapshot(), this.service.pid);
    await this.service.kill9();
    this.figures.restartS.push(await this.service.start());
    this.orphanChecks.push(this.checkGone(before));
  }

  async checkGone(procs) {
    const end = Date.now() + ORPHAN_LIMIT_S * 1000;
    let left = procs;
    while (Date.now() < end) {
      left = left.filter((p) => alive(p.pid));
      if (!left.length) return;
      await sleep(200);
    }
    this.violations.leftover.push(`${left.length} process(es) of a killed master alive after ${ORPHAN_LIMIT_S} s: ` +
      left.map((p) => `${p.pid} ${p.comm} ${p.cmd.slice(0, 80)}`).join('; '));
    for (const p of left) kill9(p.pid);
  }

  /** A kind drawn at random and a process of it. When none of that kind
   *  runs (no job at this moment), waits up to 3 s for one, then takes
   *  another kind that has one (the master last: it always has one). */
  async pickTarget() {
    const want = KINDS[Math.floor(this.rand() * KINDS.length)];
    let procs = byKind(this.service.pid);
    for (let i = 0; i < 30 && !procs[want].length; i++) {
      await sleep(100);
      procs = byKind(this.service.pid);
    }
    const others = KINDS.filter((k) => k !== 'master' && procs[k].length > 0);
    const kind = procs[want].length ? want : others.length ? others[Math.floor(this.rand() * others.length)] : 'master';
    return [kind, procs[kind][Math.floor(this.rand() * procs[kind].length)]];
  }

  async killLoop() {
    for (let k = 0; k < this.opts.kills; k++) {
      /* Mostly 0.5-2.5 s apart; one time in five right after the last kill,
       * while the service is still recovering from it. */
      await sleep(this.rand() < 0.2 ? this.rand() * 200 : 500 + this.rand() * 2000);
      const [kind, target] = await this.pickTarget();
      this.figures.kills[kind]++;
      if (kind === 'master') await this.killMaster();
      else kill9(target.pid);
      if ((k + 1) % 10 === 0) console.log(`# ${k + 1} kills (${JSON.stringify(this.figures.kills)}), ${this.acked.size} acknowledged`);
    }
  }

  /** Waits until every acknowledged workflow is final; returns them. */
  async waitFinal() {
    const end = Date.now() + FINAL_LIMIT_S * 1000;
    let open = [...this.acked.keys()];
    const seen = new Map();
    while (open.length && Date.now() < end) {
      const still = [];
      for (const id of open) {
        try {
          const r = await httpRequest(`${this.service.url}/api/workflows/${id}`, { headers: { 'X-User-ID': this.acked.get(id) }, timeoutMs: 15000 });
          if (r.status === 200 && WF_FINAL.has(r.json.state)) seen.set(id, r.json);
          else still.push(id);
          if (r.status !== 200) seen.delete(id);
        } catch { still.push(id); }
      }
      open = still;
      if (open.length) await sleep(1000);
    }
    return { final: seen, open };
  }

  checkFinal(final, open) {
    for (const id of open) this.violations.final.push(`workflow ${id} of ${this.acked.get(id)} not found or not final after ${FINAL_LIMIT_S} s`);
  }

  /** No job has two succeeded attempts, in its history or in the events. */
  checkTwice(final, eventsByUser) {
    for (const [id, w] of final) {
      for (const j of w.jobs || []) {
        const ok = (j.attempts || []).filter((a) => a.outcome === 'succeeded').length;
        if (ok > 1) this.violations.twice.push(`workflow ${id} job ${j.job_id}: ${ok} succeeded attempts`);
        if (j.state === 'succeeded' && ok !== 1) this.violations.twice.push(`workflow ${id} job ${j.job_id}: succeeded with ${ok} succeeded attempts`);
      }
    }
    for (const evs of eventsByUser.values()) {
      const n = new Map();
      for (const e of evs) {
        if (e.type !== 'job.finished' || e.state !== 'succeeded') continue;
        const k = `${e.workflow_id}/${e.job_id}`;
        n.set(k, (n.get(k) || 0) + 1);
      }
      for (const [k, c] of n) if (c > 1) this.violations.twice.push(`job ${k}: job.finished succeeded ${c} times`);
    }
  }

  /** Each follower's events are exactly the user's events, in order. */
  async checkFollowers(eventsByUser) {
    for (const u of this.users) {
      const all = eventsByUser.get(u.name);
      const last = all.length ? all[all.length - 1].seq : 0;
      const end = Date.now() + 30000;
      while (u.follower.lastSeq < last && Date.now() < end) await sleep(100);
      this.violations.events.push(...u.follower.violations);
      const got = u.follower.events.map((e) => e.seq);
      const want = all.map((e) => e.seq);
      if (got.length !== want.length || got.some((s, i) => s !== want[i])) {
        const missing = want.filter((s) => !got.includes(s));
        const extra = got.filter((s) => !want.includes(s));
        this.violations.events.push(`${u.name}: follower saw ${got.length} events, the user has ${want.length}; ` +
          `missing seqs ${missing.slice(0, 10)}, extra ${extra.slice(0, 10)}`);
      }
      for (let i = 0; i < Math.min(got.length, want.length); i++) {
        if (u.follower.events[i].type !== all[i].type) {
          this.violations.events.push(`${u.name}: event seq ${all[i].seq} is ${all[i].type}, the follower got ${u.follower.events[i].type}`);
          break;
        }
      }
    }
  }

  /** The line is empty at the end, and a new workflow of each user runs. */
  async checkLine() {
    const q = (await httpRequest(`${this.service.url}/api/queue`, { headers: { 'X-User-ID': 'tort-watch' } })).json;
    if (q.active_users !== 0 || q.waiting_users !== 0 || q.queued_workflows !== 0 || q.running_cpus !== 0) {
      this.violations.line.push(`the line is not empty once everything is final: ${JSON.stringify(q)}`);
    }
    const probes = [];
    for (const u of this.users) {
      const r = await u.api('POST', '/api/workflows', { name: 'probe', jobs: [{ job_id: 'p', job_type: 'noop' }] });
      if (r.status !== 201) { this.violations.line.push(`probe of ${u.name}: ${r.status} ${r.text.slice(0, 200)}`); continue; }
      probes.push([u, String(wfId(r.json))]);
    }
    const end = Date.now() + 60000;
    for (const [u, id] of probes) {
      let state = '';
      while (Date.now() < end) {
        state = (await u.api('GET', `/api/workflows/${id}`)).json?.state;
        if (state === 'succeeded') break;
        await sleep(200);
      }
      if (state !== 'succeeded') this.violations.line.push(`a probe workflow of ${u.name} did not succeed within 60 s after the run (${state})`);
    }
  }

  /** Nothing of any job is alive once all is final, nor after the stop. */
  checkNoJobProcesses(when) {
    for (const p of marked(this.service.stateDir)) {
      this.violations.leftover.push(`${when}: job process ${p.pid} ${p.comm} (${p.job} attempt ${p.attempt}) still alive`);
      kill9(p.pid);
    }
  }

  async finish() {
    for (const u of this.users) u.stopping = true;
    await Promise.all(this.loads);
    const { final, open } = await this.waitFinal();
    this.checkFinal(final, open);
    for (const u of this.users) {
      for (const w of await listAll({ api: (who, m, p) => u.api(m, p) }, u.name, {}, { limit: 100 })) {
        if (!WF_FINAL.has(w.state)) this.violations.final.push(`${u.name}'s workflow ${wfId(w)} (not acknowledged) is ${w.state}`);
      }
    }
    clearInterval(this.sampler);
    clearInterval(this.lineWatch);
    await Promise.all(this.orphanChecks);
    await sleep(2000);
    this.checkNoJobProcesses('everything final');
    const eventsByUser = new Map();
    for (const u of this.users) eventsByUser.set(u.name, await allEvents(this.service, u.name));
    this.checkTwice(final, eventsByUser);
    await this.checkFollowers(eventsByUser);
    await this.checkLine();
    this.final = final;
    this.eventsByUser = eventsByUser;
    for (const u of this.users) u.follower.stop();
    const before = descendants(snapshot(), this.service.pid);
    const exit = await this.service.stop();
    if (!exit || exit.code !== 0) this.violations.leftover.push(`the service did not stop cleanly on SIGTERM: ${JSON.stringify(exit)}`);
    await this.checkGone(before);
    this.checkNoJobProcesses('after the stop');
  }

  report() {
    const f = this.figures;
    const states = {};
    let rerun = 0;
    for (const w of this.final.values()) {
      states[w.state] = (states[w.state] || 0) + 1;
      for (const j of w.jobs || []) if ((j.attempts || []).length > 1) rerun++;
    }
    const events = [...this.eventsByUser.values()].reduce((n, e) => n + e.length, 0);
    const connects = this.users.reduce((n, u) => n + u.follower.connects, 0);
    console.log(`# seed ${this.opts.seed}, ${this.opts.users} users, ${((Date.now() - f.started) / 1000).toFixed(0)} s`);
    console.log(`# kills: ${Object.values(f.kills).reduce((a, b) => a + b, 0)} (${KINDS.map((k) => `${k} ${f.kills[k]}`).join(', ')})`);
    console.log(`# master restarts: ${f.restartS.length}, port free and healthy again after ` +
      `${f.restartS.length ? `max ${Math.max(...f.restartS).toFixed(2)} s` : '-'}`);
    console.log(`# acknowledged workflows: ${this.acked.size} (final: ${JSON.stringify(states)}); jobs run more than once: ${rerun}`);
    console.log(`# cancels ${this.stats.cancels}, user retries ${this.stats.retries}, requests failed while killing ${this.stats.requestErrors}`);
    console.log(`# WebSocket followers: ${this.users.length}, connections ${connects}, events checked ${events}`);
    const stalled = this.service.logLines(/child stalled/).length;
    if (stalled) console.log(`# the master replaced ${stalled} stalled child(ren)`);
    const checks = [
      ['every acknowledged workflow is present and final', this.violations.final],
      ['no job succeeded twice', this.violations.twice],
      ['no process outlived its attempt or its master', this.violations.leftover],
      ['the admission line never stuck and is empty at the end', this.violations.line],
      ['every follower saw every event of its user once, in order', this.violations.events],
      ['no request was refused unexpectedly', this.stats.unexpected],
    ];
    let passed = 0;
    let failed = 0;
    for (const [what, v] of checks) {
      if (v.length === 0) { passed++; console.log(`ok - ${what}`); continue; }
      failed++;
      console.log(`not ok - ${what}: ${v.length} violation(s)`);
      for (const line of v.slice(0, 10)) console.log(`#   ${line}`);
    }
    console.log(`# violations: ${checks.reduce((n, [, v]) => n + v.length, 0)}`);
    console.log(`torture: ${passed} passed, ${failed} failed`);
    return failed === 0;
  }

  cleanUp(ok) {
    for (const p of marked(this.service?.stateDir || '/nonexistent')) kill9(p.pid);
    if (this.service?.pid) for (const p of descendants(snapshot(), this.service.pid)) kill9(p.pid);
    if (this.service?.pid) kill9(this.service.pid);
    if (ok && !this.opts.keep) fs.rmSync(this.dir, { recursive: true, force: true });
    else console.log(`# kept ${this.dir}`);
  }
}

const run = new Run(parseArgs(process.argv));
let ok = false;
try {
  console.log(`# torture: ${run.opts.kills} kills, seed ${run.opts.seed}`);
  await run.setUp();
  await run.killLoop();
  await run.finish();
  ok = run.report();
} catch (e) {
  console.log(`not ok - the torture run itself failed: ${e.stack || e}`);
  console.log('torture: 0 passed, 1 failed');
} finally {
  run.cleanUp(ok);
}
process.exit(ok ? 0 : 1);
