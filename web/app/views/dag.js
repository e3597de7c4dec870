// views/dag.js - draws a workflow's DAG as SVG: one horizontal lane per
// branch (jobs of a branch run in order, left to right), columns by depth
// (the longest chain of prerequisites before a job), solid edges for the
// order inside a branch and dashed ones for depends_on across branches.
// Boxes are keyboard-focusable buttons that select the job.

import { s } from '../dom.js';

const BOX_W = 200, BOX_H = 56, COL_W = 236, LANE_H = 78, LABEL_W = 120, PAD = 12;
export const DAG_MAX_JOBS = 400;

/** The layout: lanes (branch names in first-seen order), each job's lane,
 * depth, and edges {from, to, kind} between job indexes. Pure, so tests and
 * the drawing agree. */
export function layout(jobs) {
  const index = new Map(jobs.map((j, i) => [j.job_id, i]));
  const lanes = [];
  const laneOf = [];
  const lastInLane = new Map();
  const edges = [];
  jobs.forEach((j, i) => {
    const branch = j.branch || 'default'; // the spec's branch when none is named
    if (!lastInLane.has(branch)) { lanes.push(branch); lastInLane.set(branch, -1); }
    laneOf[i] = lanes.indexOf(branch);
    const prev = lastInLane.get(branch);
    if (prev >= 0) edges.push({ from: prev, to: i, kind: 'branch' });
    lastInLane.set(branch, i);
    for (const d of new Set(j.depends_on || [])) {
      const k = index.get(d);
      if (k !== undefined && !(prev === k)) edges.push({ from: k, to: i, kind: 'dep' });
    }
  });
  // Depth by longest path; the spec is a DAG and predecessors may come
  // later in the list, so relax until nothing changes (bounded by n rounds).
  const depth = new Array(jobs.length).fill(0);
  for (let round = 0, changed = true; changed && round <= jobs.length; round++) {
    changed = false;
    for (const e of edges) {
      if (depth[e.to] < depth[e.from] + 1) { depth[e.to] = depth[e.from] + 1; changed = true; }
    }
  }
  return { lanes, laneOf, depth, edges };
}

function boxPos(l, i) {
  return { x: LABEL_W + PAD + l.depth[i] * COL_W, y: PAD + l.laneOf[i] * LANE_H + (LANE_H - BOX_H) / 2 };
}

/** Builds the SVG; onSelect(job_id) when a box is clicked or activated. */
export function drawDag(jobs, selected, onSelect) {
  const shown = jobs.slice(0, DAG_MAX_JOBS);
  const l = layout(shown);
  const cols = Math.max(1, ...l.depth.map((d) => d + 1));
  const width = LABEL_W + PAD * 2 + cols * COL_W;
  const height = PAD * 2 + l.lanes.length * LANE_H;
  const svg = s('svg', { id: 'dag', class: 'dag', width, height, viewBox: `0 0 ${width} ${height}`, role: 'group',
    'aria-label': `workflow graph: ${shown.length} jobs in ${l.lanes.length} branches` });
  l.lanes.forEach((name, k) => {
    svg.append(s('rect', { class: 'lane', x: 0, y: PAD + k * LANE_H + 3, width, height: LANE_H - 6, rx: 6 }));
    svg.append(s('text', { class: 'lane-label', x: 8, y: PAD + k * LANE_H + LANE_H / 2 + 4 }, truncate(name, 16)));
  });
  for (const e of l.edges) {
    const a = boxPos(l, e.from), b = boxPos(l, e.to);
    const x1 = a.x + BOX_W, y1 = a.y + BOX_H / 2, x2 = b.x, y2 = b.y + BOX_H / 2;
    const mx = (x1 + x2) / 2;
    svg.append(s('path', { class: `dag-edge ${e.kind}`, 'data-from': shown[e.from].job_id, 'data-to': shown[e.to].job_id,
      d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 6},${y2}`, 'marker-end': 'url(#arrow)' }));
  }
  svg.prepend(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 8, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    s('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8b8fa0' }))));
  shown.forEach((j, i) => svg.append(jobBox(j, boxPos(l, i), j.job_id === selected, onSelect)));
  return svg;
}

function jobBox(j, p, isSelected, onSelect) {
  const pct = Math.round((j.state === 'succeeded' ? 1 : j.progress || 0) * 100);
  const g = s('g', { class: `dag-job${isSelected ? ' selected' : ''}`, 'data-job-id': j.job_id, 'data-state': j.state,
    transform: `translate(${p.x},${p.y})`, tabindex: 0, role: 'button',
    'aria-label': `job ${j.job_id} (${j.job_type}): ${j.state}, ${pct}%` },
  s('title', {}, `${j.job_id} — ${j.job_type}: ${j.state}${j.waiting_reason ? ` (${j.waiting_reason})` : ''}`),
  s('rect', { class: 'box', width: BOX_W, height: BOX_H, rx: 6 }),
  s('text', { class: 'job-title', x: 10, y: 19 }, truncate(j.job_id, 22)),
  s('text', { class: 'job-sub', x: 10, y: 35 }, `${truncate(j.job_type, 18)} · ${j.state}`),
  s('rect', { class: 'job-bar-bg', x: 10, y: 43, width: BOX_W - 20, height: 5, rx: 2 }),
  s('rect', { class: 'job-bar', x: 10, y: 43, width: ((BOX_W - 20) * pct) / 100, height: 5, rx: 2 }));
  g.addEventListener('click', () => onSelect(j.job_id));
  g.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onSelect(j.job_id); }
  });
  return g;
}

/** Updates one box's progress in place (a job.progress event). */
export function setDagProgress(svg, jobId, fraction) {
  const g = svg && [...svg.querySelectorAll('g.dag-job')].find((x) => x.dataset.jobId === jobId);
  if (!g) return;
  g.querySelector('.job-bar').setAttribute('width', String(((BOX_W - 20) * Math.max(0, Math.min(1, fraction)))));
}

function truncate(text, n) {
  const t = String(text);
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}
