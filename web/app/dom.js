// dom.js - building elements without a framework, and the formatting every
// view shares (times, ordinals, sizes, progress bars, state badges).

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** h('a', {href: '#/'}, 'text', child...) */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function ordinal(n) {
  const mod100 = n % 100;
  if (mod100 >= 11 && mod100 <= 13) return `${n}th`;
  return `${n}${['th', 'st', 'nd', 'rd'][n % 10] || 'th'}`;
}

/** "12:03:04" today, "23 Nov 12:03" otherwise; "" for null. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const now = new Date();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${time}`;
}

/** "4 s", "3 min 20 s", "2 h 5 min" between two ISO times (end = now if null). */
export function duration(startIso, endIso) {
  if (!startIso) return '';
  const ms = (endIso ? new Date(endIso) : new Date()) - new Date(startIso);
  const sec = Math.max(0, Math.round(ms / 1000));
  if (sec < 60) return `${sec} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${sec % 60} s`;
  return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

export function number(n, digits = 0) {
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function stateBadge(state, cls = '') {
  return h('span', { class: `state ${cls}`.trim(), 'data-state': state }, state);
}

/** A progress bar (role=progressbar, aria-valuenow 0..100). */
export function progressBar(fraction, state, cls = '', label = 'progress') {
  const pct = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
  const bar = h('div', { class: `bar ${cls}`.trim(), role: 'progressbar', 'aria-valuemin': 0,
    'aria-valuemax': 100, 'aria-valuenow': pct, 'aria-label': label, 'data-state': state || '' },
  h('span', { style: `width:${pct}%` }));
  return bar;
}

/** Updates a bar made by progressBar in place (keeps its CSS transition). */
export function setProgress(bar, fraction, state) {
  const pct = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
  bar.setAttribute('aria-valuenow', String(pct));
  if (state) bar.dataset.state = state;
  bar.firstElementChild.style.width = `${pct}%`;
}

/** Why a queued workflow waits, in the user's terms. */
export function waitingText(wf) {
  const parts = [];
  if (wf.waiting_reason) parts.push(wf.waiting_reason);
  if (wf.queue_position) parts.push(`you are ${ordinal(wf.queue_position)} in line`);
  return parts.join(' — ');
}

export function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }
