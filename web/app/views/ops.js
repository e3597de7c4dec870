// views/ops.js - "Operations" (#/ops), for administrators only (issue 18):
// the admission line, cpus, job throughput and latency, errors, the leader
// and the instances using the store, read from GET /api/admin/overview every POLL_MS and
// drawn as figures and small SVG charts of the last few minutes. Nothing but
// the service's own figures: no dashboard server, nothing fetched from
// elsewhere. The arithmetic (rates, quantiles, chart paths) is ops_model.js.
//
// A signed-in user who is not an administrator never gets here: main.js
// shows the page-not-found panel for #/ops, and the API answers 404 (as for
// a missing path) if asked anyway; this view shows the same panel then.

import { request } from '../api.js';
import { h, s, clear } from '../dom.js';
import { History, interval, sparkPath, seconds, rate } from '../ops_model.js';

const POLL_MS = 2000;
const CHART_W = 240;
const CHART_H = 48;

/** A figure as the chart's caption shows it: seconds, a whole count, a rate. */
function show1(unit, v) {
  if (unit === 's') return seconds(v);
  if (unit === 'n') return v === null || v === undefined ? '–' : String(Math.round(v));
  return rate(v);
}

const CHARTS = [
  { key: 'queued', title: 'Workflows waiting', unit: 'n' },
  { key: 'runningCpus', title: 'Cpus running', unit: 'n' },
  { key: 'jobsPerMin', title: 'Jobs finished / min', unit: '' },
  { key: 'httpP99', title: 'HTTP p99 latency', unit: 's' },
  { key: 'serverErrorsPerMin', title: 'HTTP 5xx / min', unit: '' },
  { key: 'jobWaitP90', title: 'Job wait p90', unit: 's' },
];

function figure(id, label) {
  const value = h('div', { class: 'ops-value', id });
  return { el: h('div', { class: 'ops-figure' }, h('div', { class: 'ops-label' }, label), value), value };
}

function chart(c) {
  const path = s('path', { class: 'ops-line', d: '' });
  const svg = s('svg', { viewBox: `0 0 ${CHART_W} ${CHART_H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': c.title },
    s('line', { class: 'ops-axis', x1: 0, y1: CHART_H - 0.5, x2: CHART_W, y2: CHART_H - 0.5 }), path);
  const now = h('span', { class: 'ops-now' });
  const top = h('span', { class: 'muted ops-top' });
  const el = h('figure', { class: 'ops-chart', 'data-chart': c.key },
    h('figcaption', {}, c.title, ' ', now), svg, top);
  return { el, path, now, top, c };
}

export function mount(root) {
  const error = h('p', { class: 'error', role: 'alert' });
  const stamp = h('span', { class: 'muted', id: 'ops-updated' });
  const instance = h('p', { class: 'muted', id: 'ops-instance' });
  const f = {
    queued: figure('ops-queued', 'Waiting workflows'),
    oldest: figure('ops-oldest', 'Oldest waiting'),
    users: figure('ops-users', 'Active users'),
    cpus: figure('ops-cpus', 'Cpus running / limit'),
    free: figure('ops-free', 'Cpus free'),
    throughput: figure('ops-throughput', 'Jobs finished / min'),
    failures: figure('ops-failures', 'Job failures / min'),
    p99: figure('ops-p99', 'HTTP p99'),
    errors: figure('ops-errors', 'HTTP 5xx / min'),
    store: figure('ops-store', 'Store'),
    leader: figure('ops-leader', 'Leader'),
    clients: figure('ops-clients', 'WebSocket clients'),
    disk: figure('ops-disk', 'State dir free'),
    slurm: figure('ops-slurm', 'Slurm'),
  };
  const charts = CHARTS.map(chart);
  const instancesBody = h('tbody');
  const typesBody = h('tbody');
  const routesBody = h('tbody');
  const page = h('div', { id: 'ops-page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Operations'), h('span', { class: 'spacer' }), stamp),
    instance, error,
    h('section', { class: 'ops-figures', 'aria-label': 'Now' }, Object.values(f).map((x) => x.el)),
    h('section', { class: 'ops-charts', 'aria-label': 'The last minutes' }, charts.map((c) => c.el)),
    h('h2', {}, 'Instances'),
    h('table', { class: 'grid', id: 'ops-instances' },
      h('thead', {}, h('tr', {}, ['Instance', 'Role', 'Store connections', 'Up since'].map((t) => h('th', { scope: 'col' }, t)))),
      instancesBody),
    h('h2', {}, 'Jobs by type'),
    h('table', { class: 'grid', id: 'ops-types' },
      h('thead', {}, h('tr', {}, ['Type', 'Succeeded', 'Failed', 'Timed out', 'Cancelled', 'Failures by reason', 'Wait (mean)', 'Run (mean)'].map((t) => h('th', { scope: 'col' }, t)))),
      typesBody),
    h('h2', {}, 'HTTP by route'),
    h('table', { class: 'grid', id: 'ops-routes' },
      h('thead', {}, h('tr', {}, ['Route', 'Requests', '4xx', '5xx', 'Mean latency'].map((t) => h('th', { scope: 'col' }, t)))),
      routesBody));
  root.append(page);

  const history = new History(90);
  let prev = null;
  let timer = null;
  let alive = true;

  function notFound() {
    clear(root).append(h('div', { class: 'panel', id: 'page-notfound' }, h('h1', {}, 'Page not found'),
      h('p', {}, 'There is nothing at ', h('code', {}, location.hash), '. ', h('a', { href: '#/' }, 'Back to my workflows'), '.')));
  }

  function show(o) {
    const i = interval(prev, o);
    prev = o;
    history.push(i);
    const line = o.line;
    f.queued.value.textContent = line ? String(line.queued_workflows) : '–';
    f.oldest.value.textContent = line ? (line.oldest_wait_s > 0 ? seconds(line.oldest_wait_s) : 'nobody waits') : '–';
    f.users.value.textContent = line ? `${line.active_users} of ${line.max_active_users}` + (line.waiting_users ? ` · ${line.waiting_users} waiting` : '') : '–';
    f.cpus.value.textContent = o.cpus ? `${o.cpus.running} / ${o.cpus.limit}` : '–';
    f.free.value.textContent = o.cpus ? String(o.cpus.free) : '–';
    f.throughput.value.textContent = rate(i.jobsPerMin);
    f.failures.value.textContent = rate(i.failuresPerMin);
    f.p99.value.textContent = seconds(i.httpP99);
    f.errors.value.textContent = rate(i.serverErrorsPerMin);
    f.store.value.textContent = o.store.up ? `up · ${o.store.errors} errors` : 'UNAVAILABLE';
    f.store.el.dataset.bad = String(!o.store.up);
    const l = o.leader;
    f.leader.value.textContent = l && l.up ? `term ${l.term} · lease ${l.lease_s.toFixed(1)} s` : 'none';
    f.leader.el.dataset.bad = String(!(l && l.up));
    f.clients.value.textContent = String(o.websocket.clients);
    const sd = o.state_dir;
    const freePct = sd && sd.size_bytes > 0 ? (100 * sd.free_bytes) / sd.size_bytes : null;
    f.disk.value.textContent = freePct === null ? '–' : `${freePct.toFixed(1)} %`;
    f.disk.el.dataset.bad = String(freePct !== null && freePct < 10);
    // Only while the leading scheduler runs jobs on Slurm (and this
    // instance leads): squeue's state, jobs in Slurm, refused submissions.
    const sl = o.slurm;
    f.slurm.el.hidden = !sl;
    if (sl) {
      f.slurm.value.textContent = `${sl.up ? 'up' : 'UNREACHABLE'} · ${sl.pending} pending · ${sl.running} running` +
        (sl.submit_failures ? ` · ${sl.submit_failures} refused` : '');
      f.slurm.el.dataset.bad = String(!sl.up);
    }
    instance.textContent = `Instance ${o.instance.name}${o.instance.leads ? ' (leads the scheduler)' : ''}` +
      (l && l.owner ? ` · leader ${l.owner}` : '') +
      ' · counters are this instance\'s since it started; job figures come from the leading instance.';
    stamp.textContent = `Updated ${new Date(o.time * 1000).toLocaleTimeString()}`;
    for (const c of charts) {
      const values = history.values(c.c.key);
      const { d, top } = sparkPath(values, CHART_W, CHART_H);
      c.path.setAttribute('d', d);
      const last = values[values.length - 1];
      c.now.textContent = show1(c.c.unit, last);
      c.top.textContent = `top ${show1(c.c.unit, top)}`;
    }
    const list = o.instances || [];
    clear(instancesBody).append(...list.map((x) => h('tr', { 'data-instance': x.name },
      h('td', {}, h('code', {}, x.name), x.self ? ' (this page\'s)' : ''),
      h('td', {}, x.leads ? 'leads the scheduler' : 'serves'),
      h('td', {}, x.connections >= 0 ? String(x.connections) : '–'),
      h('td', {}, x.since > 0 ? new Date(x.since * 1000).toLocaleString() : '–'))));
    if (!list.length) instancesBody.append(h('tr', {}, h('td', { colspan: 4 }, o.instances ? 'none named' : 'the store cannot say now')));
    clear(typesBody).append(...o.jobs.map((t) => h('tr', { 'data-type': t.job_type },
      h('td', {}, t.job_type), h('td', {}, t.finished.succeeded), h('td', {}, t.finished.failed),
      h('td', {}, t.finished.timeout), h('td', {}, t.finished.cancelled),
      h('td', {}, Object.entries(t.failures).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`).join(', ') || '–'),
      h('td', {}, t.wait.count ? seconds(t.wait.sum / t.wait.count) : '–'),
      h('td', {}, t.run.count ? seconds(t.run.sum / t.run.count) : '–'))));
    const routes = [...o.http.routes].sort((a, b) => b.requests - a.requests).slice(0, 12);
    clear(routesBody).append(...routes.map((r) => h('tr', {},
      h('td', {}, h('code', {}, `${r.method} ${r.route}`)), h('td', {}, r.requests), h('td', {}, r.client_errors),
      h('td', { class: r.server_errors ? 'bad' : '' }, r.server_errors),
      h('td', {}, r.latency.count ? seconds(r.latency.sum / r.latency.count) : '–'))));
  }

  async function poll() {
    timer = null;
    try {
      const o = await request('GET', '/api/admin/overview');
      if (!alive) return;
      error.textContent = '';
      show(o);
    } catch (err) {
      if (!alive) return;
      if (err.status === 404) { alive = false; notFound(); return; }
      error.textContent = `Could not read the figures: ${err.message}`;
    }
    if (alive) timer = setTimeout(poll, POLL_MS);
  }
  poll();

  return {
    onEvent() {},
    onResync() {},
    unmount() { alive = false; if (timer) clearTimeout(timer); },
  };
}
