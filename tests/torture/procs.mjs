// procs.mjs - the processes of one tessera service as the torture run sees
// them through /proc: which process is the master, the scheduler, an HTTP
// worker, a job (the runner, `tessera run-job`) or a tool's grandchild, and
// which job attempt a process belongs to (its TESSERA_ATTEMPT mark, see
// src/util/proctree.h).

import fs from 'node:fs';

/** Every live process: {pid, ppid, state, comm, cmd}. */
export function snapshot() {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const f = stat.slice(close + 2).split(' ');
      if (f[0] === 'Z') continue;
      let cmd = '';
      try { cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '); } catch { /* gone */ }
      out.push({ pid: Number(d), ppid: Number(f[1]), state: f[0], comm: stat.slice(stat.indexOf('(') + 1, close), cmd });
    } catch { /* gone */ }
  }
  return out;
}

/** True while pid exists and is not a zombie. */
export function alive(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The descendants of root in a snapshot. */
export function descendants(table, root) {
  const kids = new Map();
  for (const p of table) {
    if (!kids.has(p.ppid)) kids.set(p.ppid, []);
    kids.get(p.ppid).push(p);
  }
  const out = [];
  const todo = [root];
  while (todo.length) {
    for (const c of kids.get(todo.pop()) || []) {
      out.push(c);
      todo.push(c.pid);
    }
  }
  return out;
}

/**
 * The processes of the service under master, by kind:
 *   scheduler, worker: the master's children named tessera-sched / tessera-http;
 *   job: a runner (`tessera run-job`);
 *   tool_grandchild: what a tool started (the torture tool's `sleep`s).
 */
export function byKind(master) {
  const table = snapshot();
  const desc = descendants(table, master);
  return {
    master: table.filter((p) => p.pid === master),
    scheduler: desc.filter((p) => p.ppid === master && p.comm === 'tessera-sched'),
    worker: desc.filter((p) => p.ppid === master && p.comm === 'tessera-http'),
    job: desc.filter((p) => / run-job /.test(` ${p.cmd} `)),
    tool_grandchild: desc.filter((p) => p.comm === 'sleep'),
  };
}

/** The TESSERA_ATTEMPT mark of pid ("<work dir>/attempt-<n>"), or null. */
export function markOf(pid) {
  let env;
  try { env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8'); } catch { return null; }
  for (const e of env.split('\0')) if (e.startsWith('TESSERA_ATTEMPT=')) return e.slice(16);
  return null;
}

/**
 * Processes marked as belonging to a job attempt under stateDir, as
 * [{pid, comm, cmd, job (work dir), attempt}]. Reads every process's
 * environment: a leftover may have left the service's process tree.
 */
export function marked(stateDir) {
  const out = [];
  const prefix = `${stateDir}/`;
  for (const p of snapshot()) {
    const m = markOf(p.pid);
    if (!m || !m.startsWith(prefix)) continue;
    const i = m.lastIndexOf('/attempt-');
    if (i < 0) continue;
    out.push({ ...p, job: m.slice(0, i), attempt: Number(m.slice(i + 9)) });
  }
  return out;
}

/**
 * Jobs with processes of two attempts alive at once: the older attempt's
 * processes are checked again after the scan, so a process that merely
 * ended while /proc was being read is not counted. Returns
 * [{job, attempts, pids}] of confirmed overlaps.
 */
export function attemptOverlaps(stateDir) {
  const byJob = new Map();
  for (const p of marked(stateDir)) {
    if (!byJob.has(p.job)) byJob.set(p.job, []);
    byJob.get(p.job).push(p);
  }
  const out = [];
  for (const [job, procs] of byJob) {
    const attempts = [...new Set(procs.map((p) => p.attempt))].sort((a, b) => a - b);
    if (attempts.length < 2) continue;
    const newest = attempts[attempts.length - 1];
    const stale = procs.filter((p) => p.attempt < newest && alive(p.pid) && markOf(p.pid) !== null);
    if (stale.length) out.push({ job, attempts, pids: stale.map((p) => `${p.pid} ${p.comm} (attempt ${p.attempt})`) });
  }
  return out;
}

/** SIGKILL, ignoring a process that is already gone. */
export function kill9(pid) {
  try { process.kill(pid, 'SIGKILL'); return true; } catch { return false; }
}
