// analysis.test.mjs - the image analyses through the service (issue 5):
// a demo slide in the data root, the example workflow tissue_mask ->
// cell_segmentation submitted over HTTP, live progress over the WebSocket,
// outputs listed and downloaded through the results endpoint; and the
// compatibility request of DESIGN §4 on a real slide.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startServer, submit, waitFinal, assertError, errorText, wfId, jobOf, jobsOf, runCli,
} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const example = JSON.parse(fs.readFileSync(path.join(here, '../../examples/demo-analysis.json'), 'utf8'));
let server;
let dataRoot;
let slide;

before(async () => {
  dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-slides-'));
  slide = path.join(dataRoot, 'demo.tiff');
  const r = runCli(['demo-slide', slide, '--size', '4096x3072', '--seed', '11'], { timeoutMs: 120000 });
  assert.equal(r.status, 0, `demo-slide: ${r.stderr}`);
  server = await startServer({ workers: 2, concurrencyLimit: 2, extraArgs: ['--data-root', dataRoot] });
}, { timeout: 180000 });

after(async () => {
  if (server) await server.cleanup();
  if (dataRoot) fs.rmSync(dataRoot, { recursive: true, force: true });
}, { timeout: 30000 });

describe('analyses through the service', () => {
  test('tissue_mask -> cell_segmentation: live progress, results listed and downloadable', { timeout: 180000 }, async () => {
    const user = 'pathologist';
    const ws = await server.ws(user, { since: 0 });
    try {
      const r = await submit(server, user, example);
      assert.equal(r.status ?? 201, 201);
      const id = wfId(r.json ?? r);
      const fin = await waitFinal(server, user, id, 150000);
      assert.equal(fin.state, 'succeeded', JSON.stringify(fin).slice(0, 600));
      assert.equal(jobOf(fin, 'tissue').image_path, slide, 'a path relative to the data root is stored absolute');
      await ws.waitFor((evs) => evs.some((e) => e.type === 'workflow.finished' && String(e.workflow_id) === String(id)), 10000);
      const progress = ws.events.filter((e) => e.type === 'job.progress' && e.job_id === 'cells' && String(e.workflow_id) === String(id));
      assert.ok(progress.length >= 2, `several progress events for the cells job: ${JSON.stringify(progress)}`);
      const values = progress.map((e) => e.progress);
      for (let i = 1; i < values.length; i++) assert.ok(values[i] >= values[i - 1], `progress never goes back: ${values}`);
      assert.ok(progress.some((e) => /tiles/.test(e.message || '')), `progress says tiles done of total: ${JSON.stringify(progress)}`);

      const list = await server.api(user, 'GET', `/api/workflows/${id}/jobs/cells/results`);
      assert.equal(list.status, 200, list.text);
      const names = JSON.stringify(list.json);
      for (const f of ['cells.geojson', 'cells.csv', 'summary.json']) assert.ok(names.includes(f), `${f} listed: ${names}`);
      const sum = await server.api(user, 'GET', `/api/workflows/${id}/jobs/cells/results/summary.json`);
      assert.equal(sum.status, 200);
      const summary = JSON.parse(sum.text);
      assert.ok(summary.count > 50, `cells counted: ${summary.count}`);
      assert.equal(summary.area_source, 'tissue_mask');
      const gj = await server.api(user, 'GET', `/api/workflows/${id}/jobs/cells/results/cells.geojson`);
      const fc = JSON.parse(gj.text);
      assert.equal(fc.type, 'FeatureCollection');
      assert.equal(fc.features.length, summary.count);
      assert.equal(fc.features[0].properties.objectType, 'cell');
      const tl = await server.api(user, 'GET', `/api/workflows/${id}/jobs/tissue/results`);
      for (const f of ['mask.png', 'tissue.geojson', 'summary.json']) assert.ok(JSON.stringify(tl.json).includes(f), `${f} listed`);
      // Another user sees none of it.
      const other = await server.api('someone-else', 'GET', `/api/workflows/${id}/jobs/cells/results/summary.json`);
      assert.equal(other.status, 404);
    } finally {
      ws.close();
    }
  });

  test('the compatibility request of DESIGN §4 runs on a real slide; a missing image is named', { timeout: 180000 }, async () => {
    // Verbatim from DESIGN §4 but for the path: /path/to/image.svs does not
    // exist, and images are checked at submission (issue 5).
    const verbatim = '{"name": "Cell Segmentation Workflow", "jobs": [\n' +
      '  {"job_id": "job-1", "job_type": "cell_segmentation", "image_path": "/path/to/image.svs", "branch":\n' +
      '  "branch-1"}, {"job_id": "job-2", "job_type": "tissue_mask", "image_path": "/path/to/image.svs",\n' +
      '  "branch": "branch-1", "depends_on": ["job-1"]}]}';
    const user = 'user-123';
    const missing = await server.api(user, 'POST', '/api/workflows', verbatim, { 'Content-Type': 'application/json' });
    assertError(missing, [422], 'a missing image');
    assert.match(errorText(missing), /image_path/);
    assert.match(errorText(missing), /\/path\/to\/image\.svs/);
    const r = await server.api(user, 'POST', '/api/workflows', verbatim.replaceAll('/path/to/image.svs', slide), { 'Content-Type': 'application/json' });
    assert.equal(r.status, 201, r.text.slice(0, 400));
    const id = wfId(r.json);
    assert.equal(jobOf(r.json, 'job-1').branch, 'branch-1');
    const fin = await waitFinal(server, user, id, 150000);
    assert.equal(fin.state, 'succeeded', JSON.stringify(fin).slice(0, 600));
    const j1 = jobOf(fin, 'job-1');
    const j2 = jobOf(fin, 'job-2');
    assert.ok(j2.started_at >= j1.finished_at, 'job-2 starts after job-1 (same branch, depends_on)');
    for (const j of jobsOf(fin)) assert.equal(j.state, 'succeeded');
  });
});
