// views/submit.js - a new analysis: slides from the data roots, analyses
// with their parameters (defaults, ranges and descriptions come from
// GET /api/job-types), one branch per slide or a custom DAG, and a JSON
// editor for power users. The service checks the workflow as it is edited
// (POST /api/workflows?dry_run=true), so its messages appear before Run.

import { api } from '../api.js';
import { h, clear, bytes, number } from '../dom.js';
import { drawDag } from './dag.js';
import { paramInputs, readParams, markField, clearMarks } from './params_form.js';

const PREFERRED = ['tissue_mask', 'cell_segmentation'];

/** A-Z a-z 0-9 . _ - only, 1-40 characters (the spec's id rule, with room for a suffix). */
export function safeId(text) {
  const t = String(text).replace(/\.[A-Za-z0-9]+$/, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._-]+/, '');
  return (t || 'slide').slice(0, 40);
}

export function mount(root, _params, app) {
  let alive = true;
  let types = [];
  let slides = [];
  let cpuLimit = 1;
  let custom = [];        // the custom DAG's rows {job_id, type, image_path, branch, depends_on[]}
  let validateTimer = null;

  const form = h('form', { id: 'submit-form', class: 'steps', novalidate: true });
  const slideBox = h('div', { class: 'slides', role: 'group', 'aria-label': 'slides' }, h('p', { class: 'muted' }, 'Looking for slides…'));
  const analysisBox = h('div', { class: 'analyses' });
  const nameInput = h('input', { id: 'wf-name', name: 'name', maxlength: 200 });
  const modeBox = h('div', { class: 'mode', role: 'radiogroup', 'aria-label': 'structure' },
    h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'per-slide', checked: true }), 'One branch per slide (analyses in order)'),
    h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'custom' }), 'Custom graph (edit branches and dependencies)'));
  const customBox = h('div', { id: 'custom-dag', hidden: true });
  const preview = h('div', { class: 'dag-wrap', id: 'dag-preview' });
  const previewNote = h('p', { class: 'preview', id: 'submit-check', role: 'status' });
  const error = h('p', { class: 'error', id: 'submit-error', role: 'alert' });
  const runBtn = h('button', { type: 'submit', id: 'submit-run', class: 'btn primary' }, 'Run analysis');
  const json = h('textarea', { id: 'json-editor', spellcheck: 'false', 'aria-label': 'workflow JSON' });
  const jsonError = h('p', { class: 'error', id: 'json-error', role: 'alert' });
  const jsonSubmit = h('button', { type: 'button', id: 'submit-json', class: 'btn' }, 'Submit JSON');
  const jsonFromForm = h('button', { type: 'button', class: 'btn' }, 'Copy from the form');

  form.append(
    h('section', { class: 'panel step' }, h('h2', {}, '1. Slides'), slideBox),
    h('section', { class: 'panel step' }, h('h2', {}, '2. Analyses'), analysisBox),
    h('section', { class: 'panel step' }, h('h2', {}, '3. Run'), h('label', { for: 'wf-name' }, 'Name'), nameInput,
      h('label', {}, 'Structure'), modeBox, customBox,
      h('label', {}, 'Preview'), preview, previewNote, error,
      h('div', { class: 'submit-bar' }, runBtn, h('span', { class: 'muted' }, 'You can follow it live, and abort it while it waits.'))),
    h('details', { class: 'panel step', id: 'json-panel' }, h('summary', {}, 'Edit as JSON (power users)'),
      h('p', { class: 'muted' }, 'The workflow exactly as POST /api/workflows takes it (see ', h('a', { href: '/docs' }, 'the API'), ').'),
      json, jsonError, h('div', { class: 'submit-bar' }, jsonSubmit, jsonFromForm)));
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'New analysis')), form);

  // ---- building the workflow from the form ----

  function chosenSlides() {
    return [...form.querySelectorAll('input[name=slide]:checked')].map((i) => i.value);
  }

  function chosenTypes() {
    return [...form.querySelectorAll('input[name=analysis]:checked')].map((i) => types.find((t) => t.name === i.value)).filter(Boolean);
  }

  function jobFor(type, imagePath, jobId, branch) {
    const job = { job_id: jobId, job_type: type.name, branch };
    if (type.needs_image) job.image_path = imagePath;
    const params = readParams(form, type);
    if (Object.keys(params).length) job.params = params;
    const cpus = Number(form.querySelector(`input[name="cpus:${type.name}"]`)?.value || 1);
    if (cpus > 1) job.cpus = cpus;
    return job;
  }

  function perSlideRows() {
    const rows = [];
    const used = new Set();
    for (const path of chosenSlides()) {
      let branch = safeId(path.split('/').pop());
      for (let k = 2; used.has(branch); k++) branch = `${safeId(path.split('/').pop())}-${k}`;
      used.add(branch);
      for (const t of chosenTypes()) rows.push({ job_id: `${branch}.${t.name}`.slice(0, 64), type: t.name, image_path: path, branch, depends_on: [] });
    }
    return rows;
  }

  function buildWorkflow() {
    const rows = mode() === 'custom' ? custom : perSlideRows();
    const jobs = rows.map((r) => {
      const t = types.find((x) => x.name === r.type);
      const job = jobFor(t, r.image_path, r.job_id, r.branch);
      if (r.depends_on.length) job.depends_on = [...r.depends_on];
      return job;
    });
    return { name: nameInput.value.trim() || defaultName(), jobs };
  }

  function defaultName() {
    const ts = chosenTypes().map((t) => t.name).join(' → ') || 'analysis';
    const ss = chosenSlides().map((p) => p.split('/').pop());
    return `${ts} on ${ss.length === 1 ? ss[0] : `${ss.length} slides`}`;
  }

  function mode() { return form.querySelector('input[name=mode]:checked').value; }

  // ---- rendering ----

  function renderSlides() {
    clear(slideBox);
    if (!slides.length) {
      slideBox.append(h('p', { class: 'muted' }, 'No slides were found in the service\'s data roots. Put slide files (.svs, .tiff, .ndpi, .mrxs, …) there, or name any path in the JSON editor below.'));
      return;
    }
    slides.forEach((sl, k) => {
      const idFor = `slide-${k}`;
      const box = h('input', { type: 'checkbox', name: 'slide', id: idFor, value: sl.image_path, checked: slides.length === 1 });
      box.addEventListener('change', changed);
      slideBox.append(h('div', { class: 'slide-card', 'data-image-path': sl.image_path },
        box,
        h('label', { for: idFor, title: sl.image_path }, sl.name),
        h('img', { class: 'slide-thumb', src: sl.thumbnail, alt: `thumbnail of ${sl.name}`, loading: 'lazy' }),
        h('div', { class: 'slide-dims' }, `${sl.width} × ${sl.height} px`,
          sl.mpp ? ` · ${number(sl.mpp, 3)} µm/px` : ' · resolution unknown', ` · ${bytes(sl.size_bytes || 0)}`)));
    });
  }

  function renderAnalyses() {
    clear(analysisBox);
    const imageTypes = types.filter((t) => t.needs_image);
    imageTypes.sort((a, b) => rank(a.name) - rank(b.name));
    for (const t of imageTypes) {
      const box = h('input', { type: 'checkbox', name: 'analysis', value: t.name, id: `an-${t.name}`, checked: PREFERRED.includes(t.name) });
      box.addEventListener('change', changed);
      const defCpus = t.name === 'cell_segmentation' ? Math.min(2, cpuLimit) : 1;
      const cpus = h('input', { type: 'number', name: `cpus:${t.name}`, id: `cpus-${t.name}`, min: 1, max: cpuLimit, step: 1, value: defCpus });
      analysisBox.append(h('div', { class: 'analysis', 'data-type': t.name },
        h('label', { for: `an-${t.name}` }, box, t.name),
        h('p', { class: 'desc' }, t.description),
        h('details', { class: 'params' }, h('summary', {}, `Parameters (${t.params.length}) and CPUs`),
          h('div', { class: 'param-grid' },
            h('div', {}, h('label', { for: `cpus-${t.name}` }, 'cpus'), cpus, h('p', { class: 'hint' }, `CPUs reserved for the job, 1 to ${cpuLimit} (the service's limit).`)),
            paramInputs(t)))));
    }
    analysisBox.addEventListener('input', changed);
  }

  function rank(name) { const i = PREFERRED.indexOf(name); return i < 0 ? PREFERRED.length : i; }

  function renderCustom() {
    clear(customBox);
    const ids = custom.map((r) => r.job_id);
    const table = h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, ['Job id', 'Analysis', 'Slide', 'Branch', 'Depends on'].map((t) => h('th', {}, t)))));
    const tb = h('tbody');
    custom.forEach((r, k) => {
      const branch = h('input', { value: r.branch, 'aria-label': `branch of ${r.job_id}` });
      branch.addEventListener('input', () => { r.branch = branch.value.trim(); changed(false); });
      const deps = h('select', { multiple: true, size: Math.min(4, Math.max(2, ids.length - 1)), 'aria-label': `dependencies of ${r.job_id}` },
        ids.filter((x) => x !== r.job_id).map((x) => h('option', { value: x, selected: r.depends_on.includes(x) }, x)));
      deps.addEventListener('change', () => { r.depends_on = [...deps.selectedOptions].map((o) => o.value); changed(false); });
      tb.append(h('tr', { class: 'custom-row', 'data-job-id': r.job_id },
        h('td', { 'data-label': 'Job id' }, r.job_id), h('td', { 'data-label': 'Analysis' }, r.type),
        h('td', { 'data-label': 'Slide' }, (r.image_path || '').split('/').pop()),
        h('td', { 'data-label': 'Branch' }, branch), h('td', { 'data-label': 'Depends on' }, deps)));
    });
    table.append(tb);
    customBox.append(h('p', { class: 'muted' }, 'Jobs with the same branch run in order; a job also waits for the jobs it depends on. Give each job its own branch to run them in parallel.'), table);
  }

  // Something in the form changed: redraw the preview, re-check with the service.
  function changed(rebuildCustom = true) {
    if (mode() === 'custom' && rebuildCustom !== false) {
      const old = new Map(custom.map((r) => [r.job_id, r]));
      custom = perSlideRows().map((r) => old.get(r.job_id) || r);
      renderCustom();
    }
    customBox.hidden = mode() !== 'custom';
    nameInput.placeholder = defaultName();
    const wf = buildWorkflow();
    preview.replaceChildren(wf.jobs.length ? drawDag(wf.jobs.map((j) => ({ ...j, state: 'pending', progress: 0 })), null, () => {})
      : h('p', { class: 'muted' }, 'Choose at least one slide and one analysis.'));
    preview.querySelector('svg')?.setAttribute('id', 'dag-preview-svg');
    runBtn.disabled = wf.jobs.length === 0;
    clearTimeout(validateTimer);
    validateTimer = setTimeout(() => validate(wf), 250);
  }

  async function validate(wf) {
    if (!wf.jobs.length) { previewNote.textContent = ''; return; }
    clearMarks(form);
    try {
      await api.validate(wf);
      if (!alive) return;
      previewNote.textContent = `${wf.jobs.length} job${wf.jobs.length === 1 ? '' : 's'}; the service accepts this workflow.`;
      error.textContent = '';
    } catch (err) {
      if (!alive) return;
      previewNote.textContent = '';
      error.textContent = err.message;
      markField(form, wf, err.field);
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const wf = buildWorkflow();
    if (!wf.jobs.length) { error.textContent = 'Choose at least one slide and one analysis.'; return; }
    await send(wf, error);
  });
  for (const r of form.querySelectorAll('input[name=mode]')) r.addEventListener('change', () => changed());
  nameInput.addEventListener('input', () => changed(false));

  jsonFromForm.addEventListener('click', () => { json.value = JSON.stringify(buildWorkflow(), null, 2); });
  form.querySelector('#json-panel').addEventListener('toggle', (e) => {
    if (e.target.open && !json.value) json.value = JSON.stringify(buildWorkflow(), null, 2);
  });
  jsonSubmit.addEventListener('click', async () => {
    let wf;
    try { wf = JSON.parse(json.value); } catch (err) {
      jsonError.textContent = `Not valid JSON: ${err.message}`;
      json.setAttribute('aria-invalid', 'true');
      return;
    }
    json.removeAttribute('aria-invalid');
    await send(wf, jsonError);
  });

  async function send(wf, errEl) {
    runBtn.disabled = jsonSubmit.disabled = true;
    errEl.textContent = '';
    try {
      const res = await api.submit(wf);
      app.navigate(`#/workflows/${res.id}`);
    } catch (err) {
      errEl.textContent = err.message;
      if (errEl === error) markField(form, wf, err.field);
    } finally {
      runBtn.disabled = jsonSubmit.disabled = false;
    }
  }

  (async () => {
    try {
      const [t, s, q] = await Promise.all([api.jobTypes(), api.slides(), api.queue().catch(() => null)]);
      if (!alive) return;
      types = t.job_types || [];
      slides = s.slides || [];
      cpuLimit = q ? q.concurrency_limit : 1;
      renderSlides();
      renderAnalyses();
      changed();
    } catch (err) {
      if (alive) error.textContent = `Could not load slides and analyses: ${err.message}`;
    }
  })();

  return { onEvent() {}, onResync() {}, unmount() { alive = false; clearTimeout(validateTimer); } };
}
