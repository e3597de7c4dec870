// service.mjs - one `tessera serve` for the torture run: started on a fixed
// loopback port in a temporary directory, killed with SIGKILL (the master
// only: its children must go by themselves), and started again on the same
// port and state directory.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, httpRequest } from '../service/harness.mjs';

export class Service {
  constructor({ dir, port, workers, concurrencyLimit, maxActiveUsers, tools, env = {} }) {
    this.dir = dir;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.stateDir = path.join(dir, 'state');
    this.logPath = path.join(dir, 'tessera.log');
    this.args = ['serve', '--listen', `127.0.0.1:${port}`, '--state-dir', this.stateDir,
      '--workers', String(workers), '--concurrency-limit', String(concurrencyLimit),
      '--max-active-users', String(maxActiveUsers), '--poll-seconds', '0.2', '--log', this.logPath,
      '--tools', tools];
    this.env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_'))), ...env };
    this.proc = null;
    this.pid = 0;
    this.output = '';
    this.starts = 0;
  }

  /** Starts the master and waits for /healthz; retries while the port is
   *  still held (returns the seconds that took), throws after limitS. */
  async start(limitS = 60) {
    const t0 = Date.now();
    for (;;) {
      const exit = await this.spawnOnce();
      if (!exit) {
        this.starts++;
        return (Date.now() - t0) / 1000;
      }
      if (Date.now() - t0 > limitS * 1000) {
        throw new Error(`tessera serve did not start within ${limitS} s: ${JSON.stringify(exit)}\n${this.output.slice(-2000)}`);
      }
      await sleep(200);
    }
  }

  /** One attempt: null once healthy, else how it ended. */
  async spawnOnce() {
    this.output = '';
    const proc = spawn(BIN, this.args, { cwd: this.dir, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.pid = proc.pid;
    let exit = null;
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => { exit = { code, signal }; resolve(exit); }));
    const keep = (d) => { this.output = (this.output + d.toString()).slice(-8000); };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const end = Date.now() + 30000;
    while (Date.now() < end && !exit) {
      try {
        const r = await httpRequest(`${this.url}/healthz`, { timeoutMs: 2000 });
        if (r.status === 200 && !exit) return null;
      } catch { /* not yet */ }
      await sleep(100);
    }
    if (!exit) {
      try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
      await this.exited;
    }
    return exit;
  }

  /** kill -9 of the master alone; resolves once it is gone. */
  async kill9() {
    try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
    await this.exited;
  }

  /** SIGTERM and wait (the drain); SIGKILL after graceMs. Returns the exit. */
  async stop(graceMs = 30000) {
    if (!this.proc) return null;
    try { process.kill(this.pid, 'SIGTERM'); } catch { /* gone */ }
    const r = await Promise.race([this.exited, sleep(graceMs).then(() => null)]);
    if (r) return r;
    try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
    return this.exited;
  }

  logLines(re) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').filter((l) => re.test(l));
    } catch {
      return [];
    }
  }
}
