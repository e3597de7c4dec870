// ui_api.test.mjs - the endpoints the web UI relies on beyond DESIGN §4:
// GET /api/job-types (forms built from the schema), GET /api/session (who
// is signed in, and how to sign in), POST /api/workflows?dry_run=true
// (checks without storing), and list rows with progress, waiting reason and
// the event seq to stream from.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, submit, waitFinal, waitFor, sleepJob, noop, workflow, assertError, listItems } from './harness.mjs';

let server;
before(async () => { server = await startServer({ workers: 2, concurrencyLimit: 1, maxActiveUsers: 1 }); });
after(async () => { if (server) await server.stop(); });

test('GET /api/job-types lists every type with typed params, defaults and ranges', async () => {
  const r = await server.api('alice', 'GET', '/api/job-types');
  assert.equal(r.status, 200, r.text);
  const types = new Map(r.json.job_types.map((t) => [t.name, t]));
  for (const name of ['noop', 'sleep', 'tissue_mask', 'cell_segmentation']) assert.ok(types.has(name), name);
  assert.equal(types.get('tissue_mask').needs_image, true);
  assert.equal(types.get('sleep').needs_image, false);
  const cells = new Map(types.get('cell_segmentation').params.map((p) => [p.name, p]));
  assert.deepEqual([cells.get('tile_size').type, cells.get('tile_size').default, cells.get('tile_size').min, cells.get('tile_size').max], ['integer', 1024, 128, 8192]);
  assert.equal(cells.get('split').type, 'boolean');
  assert.equal(cells.get('split').default, true);
  assert.deepEqual([cells.get('threshold').type, cells.get('threshold').default], ['number_or_auto', 'auto']);
  assert.deepEqual([cells.get('stain').type, cells.get('stain').default, cells.get('stain').choices], ['enum', 'auto', ['auto', 'he', 'hdab']]);
  assert.deepEqual([cells.get('stain_vectors').type, cells.get('stain_vectors').default], ['vectors', null]);
  const method = types.get('tissue_mask').params.find((p) => p.name === 'method');
  assert.equal(method.type, 'enum');
  assert.ok(method.choices.includes('otsu') && method.default === 'otsu');
  for (const t of r.json.job_types) for (const p of t.params) assert.ok(p.description.length > 0, `${t.name}.${p.name} has a description`);
  assertError(await server.api(null, 'GET', '/api/job-types'), 401, 'job types need a caller');
});

test('GET /api/session says how to sign in, and who is signed in', async () => {
  const anon = await server.api(null, 'GET', '/api/session');
  assert.equal(anon.status, 200);
  assert.deepEqual(anon.json, { auth_mode: 'header', user: null, admin: false });
  const signed = await server.api(null, 'POST', '/api/session', { user: 'carol' });
  assert.equal(signed.status, 200, signed.text);
  const cookie = String(signed.headers['set-cookie']).split(';')[0];
  const me = await server.api(null, 'GET', '/api/session', undefined, { Cookie: cookie });
  assert.equal(me.json.user, 'carol');
  assert.equal(me.json.admin, false, 'a header-mode user is no administrator');
});

test('dry_run checks a workflow with every rule and stores nothing', async () => {
  const before = listItems((await server.api('dora', 'GET', '/api/workflows')).json).length;
  const ok = await server.api('dora', 'POST', '/api/workflows?dry_run=true', workflow('dry', [noop('a'), noop('b', { depends_on: ['a'] })]));
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.json, { valid: true, n_jobs: 2 });
  const bad = await server.api('dora', 'POST', '/api/workflows?dry_run=true', workflow('dry', [sleepJob('a', -1)]));
  const e = assertError(bad, 422, 'a negative sleep');
  assert.equal(e.details.field, 'jobs[0].params.seconds');
  const missing = await server.api('dora', 'POST', '/api/workflows?dry_run=true', workflow('dry', [{ job_id: 't', job_type: 'tissue_mask', image_path: 'nope.svs' }]));
  assert.equal(assertError(missing, 422, 'a missing slide').details.field, 'jobs[0].image_path');
  const after = listItems((await server.api('dora', 'GET', '/api/workflows')).json).length;
  assert.equal(after, before, 'nothing was stored');
});

test('list rows carry progress, queue position with the waiting reason, and event_seq', async () => {
  // One active user at a time: erin runs, frank waits 1st in line.
  const a = await submit(server, 'erin', workflow('runs', [sleepJob('s1', 0.2), sleepJob('s2', 2.5)]));
  await waitFor(async () => (await server.api('erin', 'GET', `/api/workflows/${a.id}`)).json.jobs[0].state === 'succeeded', 15000, { what: 'first job done' });
  const b = await submit(server, 'frank', workflow('waits', [noop('x')]));
  const erin = await server.api('erin', 'GET', '/api/workflows');
  const row = erin.json.workflows.find((w) => w.id === a.id);
  assert.ok(row.progress >= 0.5 && row.progress < 1, `half done or more while running: ${row.progress}`);
  assert.equal(row.jobs, undefined, 'list rows do not carry jobs');
  assert.ok(Number.isInteger(erin.json.event_seq) && erin.json.event_seq > 0, 'event_seq');
  const frank = (await server.api('frank', 'GET', '/api/workflows')).json.workflows.find((w) => w.id === b.id);
  assert.equal(frank.state, 'queued');
  assert.equal(frank.queue_position, 1);
  assert.match(frank.waiting_reason, /1 of 1 users active/);
  assert.equal(frank.progress, 0);
  const done = await waitFinal(server, 'erin', a.id, 20000);
  assert.equal(done.state, 'succeeded');
  const fin = (await server.api('erin', 'GET', '/api/workflows')).json.workflows.find((w) => w.id === a.id);
  assert.equal(fin.progress, 1);
  // Events after event_seq are exactly what happened since the page was read.
  const seq = erin.json.event_seq;
  const page = await server.api('erin', 'GET', `/api/events?since=${seq}`);
  assert.ok(page.json.events.every((ev) => ev.seq > seq && ev.workflow_id === a.id), 'only later events of erin');
  assert.ok(page.json.events.some((ev) => ev.type === 'workflow.finished'), 'the finish is among them');
  await waitFinal(server, 'frank', b.id, 20000);
});
