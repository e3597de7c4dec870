// dag.test.mjs - layout(jobs) of web/app/views/dag.js: the lanes, edges and
// columns the workflow graph is drawn with.
//   lanes   branch names in first-seen order
//   edges   {from, to, kind} between job indexes: 'branch' from each job of a
//           branch to the next one in the list, 'dep' for depends_on (none
//           when depends_on names the branch predecessor, which already has
//           the 'branch' edge; unknown ids ignored)
//   depth   the longest chain of prerequisites before a job (the column)
// Every job here has a branch, as every job the API returns has (the
// service fills in "default"); layout() would give a job without one a lane
// of its own, which is not what the service does with it, so that is not
// asserted here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importWeb, rng, SEED } from './web.mjs';

const { layout } = await importWeb('app/views/dag.js');

const job = (job_id, branch, depends_on) => ({ job_id, job_type: 'noop', branch, ...(depends_on ? { depends_on } : {}) });
const edgeSet = (l) => l.edges.map((e) => `${e.from}->${e.to}:${e.kind}`).sort();
const byId = (jobs, l) => Object.fromEntries(jobs.map((j, i) => [j.job_id, l.depth[i]]));

test('dag: no jobs, one job', () => {
  assert.deepEqual(layout([]), { lanes: [], laneOf: [], depth: [], edges: [] });
  const l = layout([job('only', 'main')]);
  assert.deepEqual(l, { lanes: ['main'], laneOf: [0], depth: [0], edges: [] });
});

test('dag: lanes in first-seen order', () => {
  const jobs = [job('a', 'zeta'), job('b', 'alpha'), job('c', 'zeta'), job('d', 'default'), job('e', 'mid'), job('f', 'alpha')];
  const l = layout(jobs);
  assert.deepEqual(l.lanes, ['zeta', 'alpha', 'default', 'mid'], 'in the order the branches first appear, not sorted');
  assert.deepEqual(l.laneOf, [0, 1, 0, 2, 3, 1]);
});

test('dag: branch edges join consecutive jobs of a branch, in list order', () => {
  const jobs = [job('a1', 'A'), job('b1', 'B'), job('a2', 'A'), job('a3', 'A'), job('b2', 'B')];
  const l = layout(jobs);
  assert.deepEqual(edgeSet(l), ['0->2:branch', '1->4:branch', '2->3:branch'].sort(),
    'a1->a2, a2->a3 (not a1->a3), b1->b2');
  assert.deepEqual(byId(jobs, l), { a1: 0, b1: 0, a2: 1, a3: 2, b2: 1 });
});

test('dag: depends_on makes dep edges across branches; unknown ids are ignored', () => {
  const jobs = [job('mask', 'S1'), job('seg', 'S2', ['mask', 'no-such-job']), job('stats', 'S3', ['seg'])];
  const l = layout(jobs);
  assert.deepEqual(edgeSet(l), ['0->1:dep', '1->2:dep']);
  assert.deepEqual(l.depth, [0, 1, 2]);
  assert.deepEqual(l.laneOf, [0, 1, 2]);
});

test('dag: depends_on naming the branch predecessor adds no second edge', () => {
  const jobs = [job('a', 'X'), job('b', 'X', ['a']), job('c', 'X', ['b', 'a'])];
  const l = layout(jobs);
  // b: only the branch edge a->b. c: the branch edge b->c, and a dep edge
  // a->c (a is in c's branch but not its predecessor).
  assert.deepEqual(edgeSet(l), ['0->1:branch', '0->2:dep', '1->2:branch']);
  const pairs = l.edges.map((e) => `${e.from}->${e.to}`);
  assert.equal(new Set(pairs).size, pairs.length, `no two edges between the same jobs: ${pairs}`);
  assert.deepEqual(l.depth, [0, 1, 2]);
});

test('dag: depth is the longest path, not the shortest or the first found', () => {
  // z depends on a (depth 0) and on c at the end of a chain a->b->c: depth 3.
  const jobs = [job('a', 'main'), job('b', 'main'), job('c', 'main'), job('z', 'side', ['a', 'c'])];
  const l = layout(jobs);
  assert.deepEqual(byId(jobs, l), { a: 0, b: 1, c: 2, z: 3 });
});

test('dag: depth when predecessors come later in the list', () => {
  // Listed sinks first: x needs y, y needs w; each in its own branch.
  const jobs = [job('x', 'X', ['y']), job('y', 'Y', ['w']), job('w', 'W')];
  const l = layout(jobs);
  assert.deepEqual(byId(jobs, l), { x: 2, y: 1, w: 0 });
  // The worst case for relaxation in list order: a chain of 30 listed
  // backwards, each job needing the next one in the list.
  const n = 30;
  const rev = Array.from({ length: n }, (_, i) => job(`j${i}`, `b${i}`, i + 1 < n ? [`j${i + 1}`] : undefined));
  const lr = layout(rev);
  assert.deepEqual(lr.depth, Array.from({ length: n }, (_, i) => n - 1 - i));
});

test('dag: a diamond over three branches', () => {
  //            top:   start ---------------------> end
  //            left:        \-> l1 -> l2 --------/
  //            right:       \-> r1 -------------/
  const jobs = [
    job('start', 'top'),
    job('l1', 'left', ['start']), job('r1', 'right', ['start']), job('l2', 'left'),
    job('end', 'top', ['l2', 'r1']),
  ];
  const l = layout(jobs);
  assert.deepEqual(l.lanes, ['top', 'left', 'right']);
  assert.deepEqual(l.laneOf, [0, 1, 2, 1, 0]);
  assert.deepEqual(edgeSet(l), ['0->1:dep', '0->2:dep', '0->4:branch', '1->3:branch', '2->4:dep', '3->4:dep'].sort());
  assert.deepEqual(byId(jobs, l), { start: 0, l1: 1, r1: 1, l2: 2, end: 3 });
});

// ---------------------------------------------------------------- random DAGs

/** A random valid workflow: jobs in a random topological order, each in one
 * of a few branches, depends_on naming earlier jobs (in that
 * order); then listed in a random interleaving that keeps each branch's
 * order (branch order is list order) but puts many dependencies after
 * their dependents. */
function randomWorkflow(r, maxJobs = 30) {
  const n = r.int(1, maxJobs);
  const nBranches = r.int(1, Math.max(1, Math.ceil(n / 3)));
  const topo = [];
  for (let i = 0; i < n; i++) {
    const branch = `br${r.int(0, nBranches - 1)}`;
    const deps = [];
    if (i > 0) {
      const k = r.int(0, Math.min(4, i));
      const pool = [...Array(i).keys()];
      for (let d = 0; d < k && pool.length; d++) deps.push(pool.splice(r.int(0, pool.length - 1), 1)[0]);
    }
    topo.push({ job_id: `j${i}`, job_type: 'noop', branch, deps });
  }
  for (const j of topo) {
    if (j.deps.length) j.depends_on = j.deps.map((d) => topo[d].job_id);
    delete j.deps;
  }
  // Interleave: one queue per branch.
  const queues = new Map();
  for (const j of topo) {
    const key = j.branch;
    if (!queues.has(key)) queues.set(key, []);
    queues.get(key).push(j);
  }
  const list = [];
  const keys = [...queues.keys()];
  while (keys.length) {
    const ki = r.int(0, keys.length - 1);
    const q = queues.get(keys[ki]);
    list.push(q.shift());
    if (!q.length) keys.splice(ki, 1);
  }
  return list;
}

/** What layout should find, computed another way: edges from the rules
 * above, depth by memoised longest path over predecessors. */
function reference(jobs) {
  const idx = new Map(jobs.map((j, i) => [j.job_id, i]));
  const lanes = [...new Set(jobs.map((j) => j.branch))];
  const preds = jobs.map(() => []);
  const edges = [];
  jobs.forEach((j, i) => {
    const b = j.branch;
    let prev = -1;
    for (let k = i - 1; k >= 0; k--) if (jobs[k].branch === b) { prev = k; break; }
    if (prev >= 0) { edges.push(`${prev}->${i}:branch`); preds[i].push(prev); }
    for (const d of j.depends_on || []) {
      const k = idx.get(d);
      if (k === undefined || k === prev) continue;
      edges.push(`${k}->${i}:dep`);
      preds[i].push(k);
    }
  });
  const memo = new Array(jobs.length).fill(-1);
  const depthOf = (i) => {
    if (memo[i] < 0) memo[i] = preds[i].reduce((m, p) => Math.max(m, depthOf(p) + 1), 0);
    return memo[i];
  };
  return {
    lanes,
    laneOf: jobs.map((j) => lanes.indexOf(j.branch)),
    depth: jobs.map((_, i) => depthOf(i)),
    edges: edges.sort(),
  };
}

test('dag: 200 random workflows of up to 30 jobs agree with a reference longest path', () => {
  const r = rng(SEED);
  let later = 0;
  for (let w = 0; w < 200; w++) {
    const jobs = randomWorkflow(r);
    const got = layout(jobs);
    const want = reference(jobs);
    const ctx = `workflow #${w} (seed ${SEED}): ${JSON.stringify(jobs)}`;
    assert.deepEqual(got.lanes, want.lanes, `lanes of ${ctx}`);
    assert.deepEqual(got.laneOf, want.laneOf, `laneOf of ${ctx}`);
    assert.deepEqual(edgeSet(got), want.edges, `edges of ${ctx}`);
    const pairs = got.edges.map((e) => `${e.from}->${e.to}`);
    assert.equal(new Set(pairs).size, pairs.length, `duplicate edges in ${ctx}`);
    assert.deepEqual(got.depth, want.depth, `depth of ${ctx}`);
    for (const e of got.edges) {
      assert.ok(got.depth[e.to] > got.depth[e.from], `edge ${e.from}->${e.to} points to a later column in ${ctx}`);
      if (e.from > e.to) later++;
    }
  }
  assert.ok(later > 100, `the random workflows list many predecessors after their dependents (${later} edges)`);
});
