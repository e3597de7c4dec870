// views/workflow.js - one workflow: its state and progress, the DAG, and
// every job with state, progress, attempt, why it waits, its log, and
// cancel / retry. Job progress events move the bars at once; everything
// else re-reads the workflow (coalesced) so the page always shows the
// server's truth.

import { api } from '../api.js';
import { h, clear, when, duration, stateBadge, progressBar, setProgress, waitingText } from '../dom.js';
import { drawDag, setDagProgress, DAG_MAX_JOBS } from './dag.js';

const ACTIVE_JOB = new Set(['pending', 'ready', 'running']);
const RETRYABLE = new Set(['failed', 'cancelled', 'skipped']);
const VIEWABLE_TYPES = new Set(['tissue_mask', 'cell_segmentation']);

export function mount(root, params, app) {
  const id = params.id;
  let wf = null;
  let selected = null;
  let timer = null;
  let logTimer = null;
  let alive = true;
  const rows = new Map();

  const title = h('h1', {}, `Workflow ${id}`);
  const badge = stateBadge('…', 'wf-state');
  const cancelBtn = h('button', { type: 'button', id: 'wf-cancel', class: 'btn danger', hidden: true }, 'Cancel workflow');
  const resultsLink = h('a', { id: 'wf-view-results', class: 'btn primary', hidden: true }, 'View results on the slide');
  const summary = h('div', { class: 'summary-line' });
  const waiting = h('div', { class: 'banner', id: 'wf-waiting', hidden: true });
  const bar = progressBar(0, '', 'big', 'workflow progress');
  bar.id = 'wf-progress';
  const pct = h('span', { class: 'pct' });
  const error = h('p', { class: 'error', role: 'alert' });
  const dagWrap = h('div', { class: 'dag-wrap' });
  const dagNote = h('p', { class: 'legend' }, 'Lanes are branches; solid arrows: order within a branch; dashed: depends_on. Select a job to see its log.');
  const tbody = h('tbody');
  const jobsTable = h('table', { class: 'grid', id: 'jobs' },
    h('thead', {}, h('tr', {}, ['Job', 'State', 'Progress', 'Attempt', 'Waiting / reason', 'Started', 'Finished', ''].map((t) => h('th', { scope: 'col' }, t)))),
    tbody);
  const logTitle = h('h2', { id: 'log-title' }, 'Log');
  const log = h('pre', { id: 'job-log', tabindex: 0, 'aria-labelledby': 'log-title' });
  const logPanel = h('section', { id: 'log-panel', hidden: true }, logTitle, log);
  const page = h('div', { id: 'wf-view', 'data-wf-id': id },
    h('div', { class: 'page-head' }, title, badge, h('span', { class: 'spacer' }), resultsLink, cancelBtn),
    summary, waiting, h('div', { style: 'display:flex;gap:.8rem;align-items:center' }, h('div', { style: 'flex:1' }, bar), pct),
    error, h('h2', {}, 'Graph'), dagWrap, dagNote, h('h2', {}, 'Jobs'), jobsTable, logPanel);
  root.append(page);

  cancelBtn.addEventListener('click', async () => {
    const what = wf.state === 'queued' ? 'Leave the line and abort' : 'Cancel';
    if (!confirm(`${what} workflow #${id} "${wf.name}"? Running jobs are stopped.`)) return;
    await act(() => api.cancel(id), `cancel workflow ${id}`);
  });

  async function act(fn, what) {
    try {
      await fn();
      error.textContent = '';
    } catch (err) {
      error.textContent = `Could not ${what}: ${err.message}`;
    }
    refresh();
  }

  function notFound() {
    clear(root).append(h('div', { class: 'panel', id: 'wf-notfound' },
      h('h1', {}, `Workflow ${id} not found`),
      h('p', {}, 'There is no workflow with this id among yours. ', h('a', { href: '#/' }, 'Back to my workflows'), '.')));
  }

  async function refresh() {
    timer = null;
    try {
      const w = await api.workflow(id);
      if (!alive) return;
      wf = w;
      error.textContent = '';
      show();
    } catch (err) {
      if (!alive) return;
      if (err.status === 404) { alive = false; notFound(); return; }
      error.textContent = `Could not read the workflow: ${err.message}`;
    }
  }

  function later(ms = 150) {
    if (!timer) timer = setTimeout(refresh, ms);
  }

  function show() {
    page.dataset.state = wf.state;
    title.textContent = wf.name || `Workflow ${id}`;
    document.title = `${wf.name} — tessera`;
    badge.dataset.state = wf.state;
    badge.textContent = wf.state;
    cancelBtn.hidden = !(wf.state === 'queued' || wf.state === 'running');
    cancelBtn.textContent = wf.state === 'queued' ? 'Abort (leave the line)' : 'Cancel workflow';
    setProgress(bar, wf.progress, wf.state);
    pct.textContent = `${Math.round((wf.progress || 0) * 100)}%`;
    const c = wf.counts || {};
    summary.replaceChildren(...[
      h('span', {}, `#${wf.id}`),
      h('span', {}, `${wf.n_jobs} jobs: ${['succeeded', 'running', 'ready', 'pending', 'failed', 'cancelled', 'skipped'].filter((k) => c[k]).map((k) => `${c[k]} ${k}`).join(', ')}`),
      h('span', {}, `submitted ${when(wf.submitted_at)}`),
      wf.admitted_at ? h('span', {}, `started ${when(wf.admitted_at)}`) : null,
      wf.finished_at ? h('span', {}, `finished ${when(wf.finished_at)} (${duration(wf.admitted_at || wf.submitted_at, wf.finished_at)})`) : null,
    ].filter(Boolean));
    waiting.hidden = wf.state !== 'queued';
    waiting.textContent = wf.state === 'queued' ? `Waiting: ${waitingText(wf)}` : '';
    if (wf.state === 'failed' || wf.state === 'cancelled') {
      waiting.hidden = !wf.reason;
      waiting.className = 'banner bad';
      waiting.textContent = wf.reason || '';
    } else {
      waiting.className = 'banner';
    }
    // The most detailed finished analysis (cells over tissue) is one click away.
    const viewable = (wf.jobs || []).filter((j) => j.state === 'succeeded' && j.image_path && VIEWABLE_TYPES.has(j.job_type));
    const best = viewable.find((j) => j.job_type === 'cell_segmentation') || viewable[0];
    resultsLink.hidden = !best;
    if (best) resultsLink.href = `#/workflows/${id}/view/${encodeURIComponent(best.job_id)}`;
    drawGraph();
    showJobs();
    if (selected) loadLog();
  }

  function drawGraph() {
    const keepFocus = document.activeElement && document.activeElement.closest && document.activeElement.closest('g.dag-job');
    const focusId = keepFocus ? keepFocus.dataset.jobId : null;
    const svg = drawDag(wf.jobs || [], selected, select);
    dagWrap.replaceChildren(svg);
    if ((wf.jobs || []).length > DAG_MAX_JOBS)
      dagWrap.append(h('p', { class: 'legend' }, `The graph shows the first ${DAG_MAX_JOBS} of ${wf.jobs.length} jobs; the table lists them all.`));
    if (focusId) {
      const g = [...svg.querySelectorAll('g.dag-job')].find((x) => x.dataset.jobId === focusId);
      if (g) g.focus({ preventScroll: true });
    }
  }

  function showJobs() {
    const seen = new Set();
    for (const j of wf.jobs || []) {
      seen.add(j.job_id);
      let r = rows.get(j.job_id);
      if (!r) { r = makeRow(j); rows.set(j.job_id, r); tbody.append(r.el); }
      updateRow(r, j);
    }
    for (const [k, r] of rows) if (!seen.has(k)) { r.el.remove(); rows.delete(k); }
  }

  function makeRow(j) {
    const r = { job: j };
    r.state = stateBadge(j.state, 'job-state');
    r.bar = progressBar(j.progress, j.state, 'job-progress', `progress of job ${j.job_id}`);
    r.pct = h('span', { class: 'pct' });
    r.message = h('div', { class: 'muted job-message' });
    r.attempt = h('td', { class: 'job-attempt', 'data-label': 'Attempt' });
    r.waiting = h('td', { class: 'job-waiting', 'data-label': 'Waiting / reason' });
    r.started = h('td', { class: 'when', 'data-label': 'Started' });
    r.finished = h('td', { class: 'when', 'data-label': 'Finished' });
    r.logBtn = h('button', { type: 'button', class: 'btn small job-log', 'aria-label': `log of job ${j.job_id}` }, 'Log');
    r.cancelBtn = h('button', { type: 'button', class: 'btn small danger job-cancel', 'aria-label': `cancel job ${j.job_id}` }, 'Cancel');
    r.retryBtn = h('button', { type: 'button', class: 'btn small job-retry', 'aria-label': `retry job ${j.job_id}` }, 'Retry');
    r.viewLink = h('a', { class: 'btn small primary job-view', href: `#/workflows/${id}/view/${encodeURIComponent(j.job_id)}` }, 'View on slide');
    r.logBtn.addEventListener('click', () => select(j.job_id));
    r.cancelBtn.addEventListener('click', () => {
      if (confirm(`Cancel job ${j.job_id}? Jobs after it in its branch, and those that depend on it, are skipped.`))
        act(() => api.cancelJob(id, j.job_id), `cancel job ${j.job_id}`);
    });
    r.retryBtn.addEventListener('click', () => act(() => api.retryJob(id, j.job_id), `retry job ${j.job_id}`));
    r.el = h('tr', { class: 'job-row', 'data-job-id': j.job_id },
      h('td', { 'data-label': 'Job' }, h('strong', {}, j.job_id), h('div', { class: 'muted' }, `${j.job_type} · branch ${j.branch}`),
        j.image_path ? h('div', { class: 'muted', title: j.image_path }, j.image_path.split('/').pop()) : null),
      h('td', { 'data-label': 'State' }, r.state),
      h('td', { class: 'progress-cell', 'data-label': 'Progress' }, r.bar, r.pct, r.message),
      r.attempt, r.waiting, r.started, r.finished,
      h('td', { class: 'actions' }, h('div', {}, r.logBtn, r.cancelBtn, r.retryBtn, r.viewLink)));
    return r;
  }

  function updateRow(r, j) {
    r.job = j;
    r.el.dataset.state = j.state;
    r.el.classList.toggle('selected', j.job_id === selected);
    r.state.dataset.state = j.state;
    r.state.textContent = j.state;
    const p = j.state === 'succeeded' ? 1 : j.progress || 0;
    setProgress(r.bar, p, j.state);
    r.pct.textContent = `${Math.round(p * 100)}%`;
    if (j.state !== 'running') r.message.textContent = '';
    r.attempt.textContent = j.attempt ? `${j.attempt}${j.failures ? ` (${j.failures} failed)` : ''}` : '—';
    r.waiting.textContent = j.waiting_reason || j.reason || '';
    r.started.textContent = j.started_at ? when(j.started_at) : '—';
    r.finished.textContent = j.finished_at ? `${when(j.finished_at)} (${duration(j.started_at, j.finished_at)})` : '—';
    const wfActive = wf.state === 'queued' || wf.state === 'running';
    r.cancelBtn.hidden = !(wfActive && ACTIVE_JOB.has(j.state));
    r.retryBtn.hidden = !(RETRYABLE.has(j.state) && wf.state !== 'queued' && wf.state !== 'succeeded');
    r.viewLink.hidden = !(j.state === 'succeeded' && j.image_path && VIEWABLE_TYPES.has(j.job_type));
  }

  function select(jobId) {
    selected = jobId;
    for (const [k, r] of rows) r.el.classList.toggle('selected', k === jobId);
    for (const g of dagWrap.querySelectorAll('g.dag-job')) g.classList.toggle('selected', g.dataset.jobId === jobId);
    logPanel.hidden = false;
    logTitle.textContent = `Log of job ${jobId}`;
    loadLog();
    logPanel.scrollIntoView({ block: 'nearest' });
  }

  async function loadLog() {
    clearTimeout(logTimer);
    const jobId = selected;
    try {
      const text = await api.jobLog(id, jobId);
      if (!alive || jobId !== selected) return;
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent = text || '(nothing logged yet: the job has not started)';
      if (atEnd) log.scrollTop = log.scrollHeight;
    } catch (err) {
      if (alive) log.textContent = err.message;
    }
    const j = wf && (wf.jobs || []).find((x) => x.job_id === jobId);
    if (alive && j && j.state === 'running') logTimer = setTimeout(loadLog, 2000);
  }

  function onEvent(ev) {
    if (String(ev.workflow_id) !== String(id)) return;
    if (ev.type === 'job.progress' && ev.job_id && rows.has(ev.job_id)) {
      const r = rows.get(ev.job_id);
      setProgress(r.bar, ev.progress, 'running');
      r.pct.textContent = `${Math.round((ev.progress || 0) * 100)}%`;
      if (ev.message) r.message.textContent = ev.message;
      setDagProgress(dagWrap.querySelector('svg'), ev.job_id, ev.progress || 0);
      later(600); // the workflow's bar and counts
      return;
    }
    later();
  }

  refresh();
  return {
    onEvent,
    onResync: () => refresh(),
    unmount() { alive = false; clearTimeout(timer); clearTimeout(logTimer); },
  };
}
