// serve.mjs - a real `tessera serve` for the node benchmarks: on a port the
// kernel picks (127.0.0.1:0), with its state and log in a fresh temporary
// directory, ready once /healthz answers. stop() ends it and removes the
// directory, so a benchmark leaves nothing behind.
//
//   const srv = await startTessera('build/tessera', 'overlay', ['--workers', '1']);
//   ... fetch(srv.url + '/api/...') ...
//   await srv.stop();
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function startTessera(bin, name, args = []) {
  const dir = mkdtempSync(join(tmpdir(), `tessera-${name}-bench-`));
  const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--state-dir', join(dir, 'var'),
    '--log', join(dir, 'log'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The service prints its address once it listens; the port is only known then.
    const url = await new Promise((resolve, reject) => {
      let out = '';
      proc.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/http:\/\/[0-9.]+:[0-9]+/);
        if (m) resolve(m[0]);
      });
      proc.on('exit', (code) => reject(new Error(`tessera serve exited (${code}): ${out}`)));
    });
    for (let i = 0; i < 100; i++) {
      try { if ((await fetch(url + '/healthz')).ok) return { url, proc, stop }; } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`tessera serve at ${url}: /healthz did not answer 200 in 10 s`);
  } catch (e) {
    await stop();
    throw e;
  }
}
