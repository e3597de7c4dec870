// views/params_form.js - a job type's parameters as form inputs, built from
// the schema GET /api/job-types gives (type, default, range, choices,
// description; number_or_auto takes "auto" or a number, vectors takes JSON
// such as [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]). An empty input means "the default", so only what the user
// changed is sent; the service's validation messages name the field
// (jobs[1].params.threshold), which markField maps back to its input.

import { h } from '../dom.js';

const inputName = (type, param) => `param:${type}:${param}`;

/** The inputs of one job type, each with its label and hint. */
export function paramInputs(type) {
  return type.params.map((p) => {
    const id = `p-${type.name}-${p.name}`;
    let input;
    if (p.type === 'boolean') {
      input = h('select', { id, name: inputName(type.name, p.name) },
        h('option', { value: '' }, `default (${p.default ? 'yes' : 'no'})`),
        h('option', { value: 'true' }, 'yes'), h('option', { value: 'false' }, 'no'));
    } else if (p.type === 'enum') {
      input = h('select', { id, name: inputName(type.name, p.name) },
        h('option', { value: '' }, `default (${p.default})`), (p.choices || []).map((c) => h('option', { value: c }, c)));
    } else if (p.type === 'integer' || p.type === 'number' || p.type === 'number_or_auto') {
      input = h('input', { id, name: inputName(type.name, p.name), type: 'text',
        inputmode: p.type === 'number_or_auto' ? 'text' : 'decimal',
        placeholder: String(p.default), 'data-kind': p.type, autocomplete: 'off' });
    } else if (p.type === 'vectors') {
      input = h('input', { id, name: inputName(type.name, p.name), type: 'text', autocomplete: 'off',
        placeholder: '[[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]', 'data-kind': p.type });
    } else {
      input = h('input', { id, name: inputName(type.name, p.name), placeholder: p.default ?? '' });
    }
    const range = p.min !== undefined ? ` Range ${p.min} to ${p.max}.` : '';
    return h('div', { class: 'param' }, h('label', { for: id }, p.name), input,
      h('p', { class: 'hint', id: `${id}-hint` }, `${p.description}${range}`));
  });
}

/** JSON text as its value, or the text itself when it is not JSON (the
 * service's message then says what the field wants). */
function parseJson(v) {
  try { return JSON.parse(v); } catch { return v; }
}

/** The parameters the user set for a type: typed values; text that is not
 * a number is sent as it is, so the service's message explains it. */
export function readParams(form, type) {
  const out = {};
  for (const p of type.params) {
    const el = form.querySelector(`[name="${inputName(type.name, p.name)}"]`);
    if (!el || el.value.trim() === '') continue;
    const v = el.value.trim();
    if (p.type === 'boolean') out[p.name] = v === 'true';
    else if (p.type === 'integer' || p.type === 'number' || p.type === 'number_or_auto') out[p.name] = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v) ? Number(v) : v;
    else if (p.type === 'vectors') out[p.name] = parseJson(v);
    else out[p.name] = v;
  }
  return out;
}

export function clearMarks(form) {
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
    el.removeAttribute('aria-errormessage');
  }
}

/** Marks the input a service error names (jobs[N].params.X), opening its
 * parameters so the user sees it. */
export function markField(form, wf, field) {
  const m = field && /^jobs\[(\d+)\]\.params\.([A-Za-z0-9_]+)/.exec(field);
  if (!m || !wf.jobs || !wf.jobs[Number(m[1])]) return;
  const el = form.querySelector(`[name="${inputName(wf.jobs[Number(m[1])].job_type, m[2])}"]`);
  if (!el) return;
  el.setAttribute('aria-invalid', 'true');
  el.setAttribute('aria-errormessage', 'submit-error');
  const details = el.closest('details');
  if (details) details.open = true;
}
