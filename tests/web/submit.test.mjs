// submit.test.mjs - safeId of web/app/views/submit.js: a slide's file name
// made into a branch name the spec accepts (A-Z a-z 0-9 . _ -), without the
// extension, 1-40 characters, not starting with . _ or -.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importWeb, rng, SEED } from './web.mjs';

const { safeId } = await importWeb('app/views/submit.js');

const VALID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/;

test('submit: safeId examples', () => {
  const want = {
    'CMU-1.svs': 'CMU-1',
    'slide_01.ndpi': 'slide_01',
    'plain': 'plain',
    'a.b.tiff': 'a.b',
    'case 12 (HE).svs': 'case_12_HE_',
    'Gewebe-ä-ü.svs': 'Gewebe-_-_',
    '__init__.tif': 'init__',
    '.hidden': 'slide',
    '...': 'slide',
    '': 'slide',
    '-._-.svs': 'slide',
    '---abc.tif': 'abc',
    'ümlaut.svs': 'mlaut',
    'ok.svs.': 'ok.svs.',
  };
  for (const [input, out] of Object.entries(want)) assert.equal(safeId(input), out, `safeId(${JSON.stringify(input)})`);
  assert.equal(safeId(`${'a'.repeat(60)}.svs`), 'a'.repeat(40));
  assert.equal(safeId(`${'é'.repeat(30)}x${'y'.repeat(60)}`), `x${'y'.repeat(39)}`);
  assert.equal(safeId(123), '123');
});

test('submit: safeId of random names is always a valid id', () => {
  const r = rng(SEED);
  const chars = 'abcXYZ019._- /\\()äé😀\t'.split('').concat(['😀']);
  for (let i = 0; i < 3000; i++) {
    let name = '';
    const n = r.int(0, 70);
    for (let k = 0; k < n; k++) name += r.pick(chars);
    if (r.chance(0.5)) name += r.pick(['.svs', '.ome.tiff', '.', '.x', '..', '.ndpi']);
    const id = safeId(name);
    assert.match(id, VALID, `safeId(${JSON.stringify(name)}) = ${JSON.stringify(id)} (seed ${SEED})`);
    // Nothing but the allowed characters of the name survive, in order.
    const kept = id === 'slide' ? '' : id.replace(/_/g, '');
    const allowed = name.replace(/[^A-Za-z0-9.-]/g, '');
    let p = 0;
    for (const c of kept) { p = allowed.indexOf(c, p); assert.ok(p >= 0, `${JSON.stringify(id)} comes from ${JSON.stringify(name)}`); p++; }
  }
});
