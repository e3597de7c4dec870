// params_form.test.mjs - readParams of web/app/views/params_form.js: what the
// form sends for each parameter type of GET /api/job-types, including
// cell_segmentation's "auto"-or-number threshold and its stain vectors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importWeb } from './web.mjs';

const { readParams } = await importWeb('app/views/params_form.js');

/** A stand-in for the form: input values by name. */
function form(values) {
  return { querySelector: (sel) => {
    const name = /name="([^"]+)"/.exec(sel)[1];
    return name in values ? { value: values[name] } : null;
  } };
}

const type = { name: 'cell_segmentation', params: [
  { name: 'threshold', type: 'number_or_auto', default: 'auto' },
  { name: 'stain_vectors', type: 'vectors', default: null },
  { name: 'stain', type: 'enum', default: 'auto', choices: ['auto', 'he', 'hdab'] },
  { name: 'sigma_um', type: 'number', default: 1.5 },
  { name: 'split', type: 'boolean', default: true },
] };

test('params_form: number_or_auto sends a number, or the text as typed', () => {
  const f = (v) => readParams(form({ 'param:cell_segmentation:threshold': v }), type);
  assert.deepEqual(f('0.12'), { threshold: 0.12 });
  assert.deepEqual(f(' auto '), { threshold: 'auto' });
  assert.deepEqual(f('lots'), { threshold: 'lots' });
  assert.deepEqual(f(''), {});
});

test('params_form: vectors are parsed as JSON; text that is not JSON is sent for the service to explain', () => {
  const f = (v) => readParams(form({ 'param:cell_segmentation:stain_vectors': v }), type);
  assert.deepEqual(f('[[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]'), { stain_vectors: [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]] });
  assert.deepEqual(f('0.65 0.70'), { stain_vectors: '0.65 0.70' });
});

test('params_form: the other types are unchanged', () => {
  const got = readParams(form({ 'param:cell_segmentation:stain': 'hdab', 'param:cell_segmentation:sigma_um': '2',
    'param:cell_segmentation:split': 'false' }), type);
  assert.deepEqual(got, { stain: 'hdab', sigma_um: 2, split: false });
});
