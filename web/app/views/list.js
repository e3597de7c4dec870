// views/list.js - "My workflows": every workflow of the signed-in user with
// its state, progress, place in the line and why it waits, and times; an
// abort button while it is queued or running. Rows are updated in place
// (not rebuilt) so that bars animate and keyboard focus stays put.

import { api } from '../api.js';
import { h, clear, when, duration, stateBadge, progressBar, setProgress, waitingText, ordinal } from '../dom.js';

const REFRESH_MS = 300;

export function mount(root, _params, app) {
  const queueLine = h('p', { class: 'muted', id: 'queue-line' }, '');
  const error = h('p', { class: 'error', role: 'alert' });
  const tbody = h('tbody');
  const table = h('table', { class: 'grid', id: 'wf-list' },
    h('thead', {}, h('tr', {}, ['Workflow', 'State', 'Progress', 'Waiting', 'Submitted', 'Started', 'Finished', ''].map((t) => h('th', { scope: 'col' }, t)))),
    tbody);
  const empty = h('div', { class: 'panel empty', id: 'wf-empty', hidden: true },
    h('p', {}, 'No workflows yet.'),
    h('a', { class: 'btn primary', href: '#/submit' }, 'Start an analysis'));
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'My workflows'), h('span', { class: 'spacer' }),
      h('a', { class: 'btn primary', href: '#/submit' }, 'New analysis')),
    queueLine, error, table, empty);

  const rows = new Map();
  let timer = null;
  let alive = true;

  async function refresh() {
    timer = null;
    try {
      const [list, queue] = await Promise.all([api.workflows(100), api.queue().catch(() => null)]);
      if (!alive) return;
      error.textContent = '';
      show(list.workflows || []);
      if (queue) {
        queueLine.textContent = `${queue.active_users} of ${queue.max_active_users} users active` +
          ` · ${queue.waiting_users} waiting · ${queue.running_cpus} of ${queue.concurrency_limit} cpus busy`;
      }
    } catch (err) {
      if (alive) error.textContent = `Could not read your workflows: ${err.message}`;
    }
  }

  function later() {
    if (!timer) timer = setTimeout(refresh, REFRESH_MS);
  }

  function show(workflows) {
    const seen = new Set();
    let prev = null;
    for (const wf of workflows) {
      seen.add(wf.id);
      let row = rows.get(wf.id);
      if (!row) {
        row = makeRow(wf);
        rows.set(wf.id, row);
      }
      update(row, wf);
      // Newest first; move a row only when it is out of place.
      const want = prev ? prev.el.nextSibling : tbody.firstChild;
      if (want !== row.el) tbody.insertBefore(row.el, want);
      prev = row;
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) { row.el.remove(); rows.delete(id); }
    }
    table.hidden = workflows.length === 0;
    empty.hidden = workflows.length !== 0;
  }

  function makeRow(wf) {
    const r = {};
    r.link = h('a', { class: 'wf-open', href: `#/workflows/${wf.id}` });
    r.state = stateBadge(wf.state, 'wf-state');
    r.bar = progressBar(wf.progress, wf.state, 'wf-progress', `progress of workflow ${wf.id}`);
    r.pct = h('span', { class: 'pct' });
    r.position = h('span', { class: 'wf-position chip' });
    r.waiting = h('div', { class: 'wf-waiting' });
    r.submitted = h('td', { class: 'when', 'data-label': 'Submitted' });
    r.started = h('td', { class: 'when', 'data-label': 'Started' });
    r.finished = h('td', { class: 'when', 'data-label': 'Finished' });
    r.abort = h('button', { type: 'button', class: 'btn small danger wf-abort' });
    r.abort.addEventListener('click', () => abort(wf.id, r));
    r.el = h('tr', { class: 'wf-row', 'data-wf-id': wf.id },
      h('td', { 'data-label': 'Workflow' }, r.link, h('div', { class: 'muted' }, `#${wf.id} · ${wf.n_jobs} job${wf.n_jobs === 1 ? '' : 's'}`)),
      h('td', { 'data-label': 'State' }, r.state),
      h('td', { class: 'progress-cell', 'data-label': 'Progress' }, r.bar, r.pct),
      h('td', { 'data-label': 'Waiting' }, r.position, r.waiting),
      r.submitted, r.started, r.finished,
      h('td', { class: 'actions' }, h('div', {}, r.abort)));
    return r;
  }

  function update(r, wf) {
    r.wf = wf;
    r.el.dataset.state = wf.state;
    r.link.textContent = wf.name || `workflow ${wf.id}`;
    r.state.dataset.state = wf.state;
    r.state.textContent = wf.state;
    setProgress(r.bar, wf.progress, wf.state);
    // A cancelled workflow's jobs are all final, which the API counts as
    // done; a percentage would mislead, the grey bar and the state say it.
    r.pct.textContent = wf.state === 'cancelled' ? '' : `${Math.round((wf.progress || 0) * 100)}%`;
    if (wf.state === 'queued' && wf.queue_position) {
      r.position.dataset.position = String(wf.queue_position);
      r.position.textContent = `#${wf.queue_position}`;
      r.position.title = `${ordinal(wf.queue_position)} in the admission line`;
      r.position.hidden = false;
      r.waiting.textContent = waitingText(wf);
    } else {
      delete r.position.dataset.position;
      r.position.hidden = true;
      r.waiting.textContent = wf.state === 'failed' || wf.state === 'cancelled' ? wf.reason || '' : '';
    }
    r.submitted.textContent = when(wf.submitted_at);
    r.started.textContent = wf.admitted_at ? when(wf.admitted_at) : '—';
    r.finished.textContent = wf.finished_at ? `${when(wf.finished_at)} (${duration(wf.admitted_at || wf.submitted_at, wf.finished_at)})` : '—';
    const active = wf.state === 'queued' || wf.state === 'running';
    r.abort.hidden = !active;
    r.abort.textContent = wf.state === 'queued' ? 'Abort' : 'Cancel';
    r.abort.setAttribute('aria-label', `${r.abort.textContent} workflow ${wf.id} (${wf.name})`);
  }

  async function abort(id, r) {
    const what = r.wf.state === 'queued' ? 'Leave the line and abort' : 'Cancel';
    if (!confirm(`${what} workflow #${id} "${r.wf.name}"?`)) return;
    r.abort.disabled = true;
    try {
      await api.cancel(id);
      error.textContent = '';
    } catch (err) {
      error.textContent = `Could not cancel workflow ${id}: ${err.message}`;
    } finally {
      r.abort.disabled = false;
      refresh();
    }
  }

  refresh();
  // Elapsed times move even when nothing happens.
  const tick = setInterval(() => { for (const r of rows.values()) if (r.wf.state === 'running') update(r, r.wf); }, 1000);
  return {
    onEvent: () => later(),
    onResync: () => refresh(),
    unmount() { alive = false; clearTimeout(timer); clearInterval(tick); },
  };
}
