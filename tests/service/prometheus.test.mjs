// prometheus.test.mjs - issue 18, item 4: Debian's Prometheus, started on
// loopback (a free port, a temporary directory, a one-second scrape
// interval) with deploy/prometheus's rule files, scrapes a running service;
// queries through Prometheus's HTTP API return the service's series with
// the values the service reports, and every recording and alert rule
// evaluates without error against real data; every query of the Grafana
// dashboard (deploy/grafana/tessera.json) is accepted by Prometheus and
// names only series the service exports. Both are stopped at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, freePort, httpRequest, submit, wfId, waitFinal, waitFor, noop, workflow, REPO_ROOT,
  createPgDatabase, dropPgDatabase,
} from './harness.mjs';

const PG = process.env.TESSERA_TEST_PG_URL;

const PROMETHEUS = process.env.TESSERA_PROMETHEUS || '/usr/bin/prometheus';
const DEPLOY = path.join(REPO_ROOT, 'deploy', 'prometheus');

let server;
let prom; // { proc, url, dir, output }

/** Starts Prometheus scraping targets (one or a list) every second;
 *  resolves once ready. */
async function startPrometheus(targets) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-prom-'));
  // The deploy rule files, with the recording group's 30 s interval made
  // 1 s so the test need not wait for it (nothing else changes).
  const rules = [];
  for (const f of ['tessera.rules.yml', 'tessera.alerts.yml']) {
    const text = fs.readFileSync(path.join(DEPLOY, f), 'utf8').replace(/^(\s+)interval: 30s$/m, '$1interval: 1s');
    fs.writeFileSync(path.join(dir, f), text);
    rules.push(path.join(dir, f));
  }
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    'rule_files:',
    ...rules.map((r) => `  - ${r}`),
    'scrape_configs:',
    '  - job_name: tessera',
    '    static_configs:',
    `      - targets: [${[].concat(targets).map((t) => `'${t}'`).join(', ')}]`,
    '',
  ].join('\n'));
  const port = await freePort();
  const proc = spawn(PROMETHEUS, [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { proc, url: `http://127.0.0.1:${port}`, dir, output: '', exited: null };
  proc.stdout.on('data', (d) => { p.output += d; });
  proc.stderr.on('data', (d) => { p.output += d; });
  proc.on('exit', (code, signal) => { p.exited = { code, signal }; });
  try {
    await waitFor(async () => {
      if (p.exited) throw new Error(`prometheus exited (${JSON.stringify(p.exited)}): ${p.output}`);
      try {
        return (await httpRequest(`${p.url}/-/ready`, { timeoutMs: 2000 })).status === 200;
      } catch { return false; }
    }, 60000, { interval: 200, what: 'prometheus ready' });
  } catch (e) {
    await stopPrometheus(p);
    throw e;
  }
  return p;
}

async function stopPrometheus(p) {
  if (!p) return;
  if (!p.exited) {
    p.proc.kill('SIGTERM');
    const deadline = Date.now() + 20000;
    while (!p.exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (!p.exited) p.proc.kill('SIGKILL');
  }
  fs.rmSync(p.dir, { recursive: true, force: true });
}

/** An instant query through Prometheus's HTTP API: the result vector. */
async function query(q, p = prom) {
  const r = await httpRequest(`${p.url}/api/v1/query?query=${encodeURIComponent(q)}`);
  assert.equal(r.status, 200, `query ${q}: ${r.status} ${r.text}`);
  const j = JSON.parse(r.text);
  assert.equal(j.status, 'success', r.text);
  return j.data.result;
}

before(async () => {
  assert.ok(fs.existsSync(PROMETHEUS), `${PROMETHEUS} missing: scripts/install-deps.sh installs Debian's prometheus`);
  server = await startServer({ workers: 2, concurrencyLimit: 3, maxActiveUsers: 2, pollSeconds: 0.1 });
  prom = await startPrometheus(`127.0.0.1:${server.port}`);
}, { timeout: 90000 });

after(async () => {
  await stopPrometheus(prom);
  if (server) await server.cleanup();
}, { timeout: 60000 });

test('Prometheus scrapes the service and answers queries with its series', { timeout: 180000 }, async () => {
  const instance = `127.0.0.1:${server.port}`;
  const id = wfId(await submit(server, 'erin', workflow('scraped', [noop('a'), noop('b', { depends_on: ['a'] })])));
  assert.equal((await waitFinal(server, 'erin', id, 60000)).state, 'succeeded');

  // The target is up and the service's own series arrive, labelled by instance.
  let up;
  await waitFor(async () => {
    up = await query('up{job="tessera"}');
    return up.length === 1 && up[0].value[1] === '1';
  }, 60000, { interval: 500, what: 'the target up' });
  assert.equal(up[0].metric.instance, instance);
  let finished;
  await waitFor(async () => {
    finished = await query('sum(tessera_jobs_finished_total{job="tessera",job_type="noop",outcome="succeeded"})');
    return finished.length === 1 && Number(finished[0].value[1]) >= 2;
  }, 60000, { interval: 500, what: 'the two noop jobs counted through Prometheus' });
  const limit = await query('tessera_concurrency_limit');
  assert.equal(limit.length, 1);
  assert.equal(limit[0].value[1], '3');
  assert.equal(limit[0].metric.instance, instance);
  const routes = await query('sum by (route) (tessera_http_requests_total{route="/api/workflows"})');
  assert.ok(routes.length === 1 && Number(routes[0].value[1]) >= 1, 'the submit, by route template');

  // Recording rules computed from the scraped series.
  let free;
  await waitFor(async () => {
    free = await query('tessera:free_cpus:max');
    return free.length === 1;
  }, 60000, { interval: 500, what: 'the recording rule tessera:free_cpus:max' });
  assert.equal(free[0].value[1], '3', 'nothing runs: every cpu free');

  // Every rule evaluated, none in error; the idle service fires no alert but
  // the ones about Slurm's absent figures stay quiet too.
  let groups;
  await waitFor(async () => {
    const r = JSON.parse((await httpRequest(`${prom.url}/api/v1/rules`)).text);
    groups = r.data.groups;
    return groups.length === 2 && groups.every((g) => g.rules.every((x) => x.lastEvaluation && !x.lastEvaluation.startsWith('0001')));
  }, 60000, { interval: 500, what: 'every rule evaluated' });
  for (const g of groups) {
    for (const r of g.rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError || r.health}`);
  }
  const alerts = groups.flatMap((g) => g.rules.filter((r) => r.type === 'alerting'));
  assert.ok(alerts.length >= 10, `the alert rules are loaded (${alerts.length})`);
  // A healthy service with an empty line raises none of these (the latency
  // alert is left out: on a loaded test machine one slow request can make a
  // p99 of a handful of requests exceed 2 s, and it would go pending).
  await waitFor(async () => {
    const r = JSON.parse((await httpRequest(`${prom.url}/api/v1/rules`)).text);
    const state = new Map(r.data.groups.flatMap((g) => g.rules).map((x) => [x.name, x.state]));
    const quiet = ['TesseraInstanceDown', 'TesseraNoLeader', 'TesseraStoreUnavailable', 'TesseraStoreErrors',
      'TesseraQueueNotDraining', 'TesseraOldestWaiterTooOld', 'TesseraHighErrorRate', 'TesseraSlurmUnreachable',
      'TesseraSlurmRejectingSubmissions'];
    const loud = quiet.filter((n) => state.get(n) !== 'inactive');
    if (loud.length) throw new Error(`raised on a healthy service: ${loud.map((n) => `${n}=${state.get(n)}`).join(', ')}`);
    return true;
  }, 30000, { interval: 500, what: 'no alert raised' });
});

test('every query of the Grafana dashboard runs and names the service\'s series', { timeout: 120000 }, async () => {
  const dash = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'grafana', 'tessera.json'), 'utf8'));
  const exprs = dash.panels.flatMap((p) => (p.targets || []).map((t) => ({ panel: p.title, expr: t.expr })));
  assert.ok(exprs.length >= 20, `the dashboard has queries (${exprs.length})`);
  const exported = new Set((await httpRequest(`${server.url}/metrics`)).text.split('\n')
    .map((l) => /^# TYPE (\S+)/.exec(l)).filter(Boolean).map((m) => m[1]));
  for (const { panel, expr } of exprs) {
    const q = expr.replaceAll('$job', 'tessera').replaceAll('$__rate_interval', '1m');
    await query(q); // asserts status success: the query parses and evaluates
    for (const m of q.matchAll(/\b(tessera_[a-z_]+)/g)) {
      const family = m[1].replace(/_(bucket|sum|count)$/, '');
      // The Slurm executor's figures exist only with --executor slurm.
      if (!family.startsWith('tessera_slurm_')) assert.ok(exported.has(family), `${panel}: ${family} is not exported by /metrics`);
    }
  }
});

test('two instances on one PostgreSQL database: both scraped, store figures not doubled', { skip: PG ? false : 'TESSERA_TEST_PG_URL is not set', timeout: 180000 }, async () => {
  const db = createPgDatabase();
  const a = await startServer({ workers: 1, concurrencyLimit: 5, db });
  const b = await startServer({ workers: 1, concurrencyLimit: 5, db });
  let p2 = null;
  try {
    const targets = [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`];
    p2 = await startPrometheus(targets);
    let up;
    await waitFor(async () => {
      up = await query('up{job="tessera"} == 1', p2);
      return up.length === 2;
    }, 60000, { interval: 500, what: 'both instances up' });
    assert.deepEqual(up.map((x) => x.metric.instance).sort(), [...targets].sort());
    // Each instance reports the store's figures; the recording rules take
    // max(), so the cluster's free cpus are 5, not 10.
    await waitFor(async () => (await query('tessera_free_cpus', p2)).length === 2, 60000,
      { interval: 500, what: 'both report free cpus' });
    let free;
    await waitFor(async () => {
      free = await query('tessera:free_cpus:max', p2);
      return free.length === 1;
    }, 60000, { interval: 500, what: 'the recording rule over both' });
    assert.equal(free[0].value[1], '5');
    // One leader, seen from both.
    let leaders;
    await waitFor(async () => {
      leaders = await query('tessera_leader_info', p2);
      return leaders.length === 2 && leaders[0].metric.owner === leaders[1].metric.owner;
    }, 60000, { interval: 500, what: 'both name the same leader' });
    // The owner is "<host>:<port>:<pid>:<start>": the port is one of ours.
    const port = leaders[0].metric.owner.split(':')[1];
    assert.ok([String(a.port), String(b.port)].includes(port), `the leader is one of the instances: ${leaders[0].metric.owner}`);
  } finally {
    await stopPrometheus(p2);
    await a.cleanup();
    await b.cleanup();
    dropPgDatabase(db);
  }
});
