// first_run.test.mjs - a new user's first analysis, all through the web UI:
// keyboard-only sign-in, "New analysis" with the demo slide (dimensions and
// thumbnail shown, preselected), tissue_mask + cell_segmentation submitted,
// live progress on the workflow page without a reload, the DAG drawn, the
// cell job opened in the slide viewer (tiles loaded, cells drawn, overlay
// toggled), its summary and downloads; and the list and workflow pages at a
// phone's width with no horizontal scroll.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jobsOf, getWf } from '../service/harness.mjs';
import {
  browserTest, fileServer, signIn, noReload, shot, waitFor, sleep, attrOf, textOf, waitForAttr,
  assertNoHorizontalScroll, currentHash, stopwatch, softChecks, junkText, visibleAlerts,
} from './browser.mjs';

const SLIDE_W = 8192;
const SLIDE_H = 6144;
const fixture = fileServer({ workers: 2, concurrencyLimit: 2 }, { demoSlide: { size: `${SLIDE_W}x${SLIDE_H}`, seed: 11 } });

const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));

browserTest('first run: sign in, analyse the demo slide, follow it live, view the cells', { timeout: 600000 }, async (b, t) => {
  const sw = stopwatch();
  const soft = softChecks(t); // contract details that need not stop the flow
  const { page } = await b.newUser('alice', fixture.server);
  await page.goto('/');
  // --- keyboard-only sign-in
  await signIn(page, 'alice', { keyboard: true });
  sw.mark('signed in');
  const nr = await noReload(page);
  for (const sel of ['a[href="#/"]', 'a[href="#/submit"]', 'a[href="/docs"]', 'button#signout', '#conn']) {
    assert.ok(await page.locator(sel).first().isVisible(), `${sel} is visible after sign-in`);
  }
  assert.match(await textOf(page, '#whoami'), /alice/);

  // --- New analysis
  await page.locator('a[href="#/submit"]').first().click();
  await page.waitForSelector('form#submit-form', { timeout: 30000 });
  const card = page.locator('.slide-card').filter({ has: page.locator('input[name="slide"][value$="demo.tiff"]') });
  await card.first().waitFor({ state: 'visible', timeout: 30000 }).catch(async (e) => {
    const cards = await page.locator('.slide-card').allTextContents();
    throw new Error(`no .slide-card with input[name=slide][value$="demo.tiff"] (cards: ${JSON.stringify(cards)}): ${e.message}`);
  });
  assert.equal(await card.count(), 1, 'one card for demo.tiff');
  const dims = (await card.locator('.slide-dims').textContent().catch(() => '')) || '';
  const cardText = await card.textContent();
  soft.ok(cardText.includes(`${SLIDE_W} × ${SLIDE_H}`),
    `the card shows the slide's dimensions "${SLIDE_W} × ${SLIDE_H}": .slide-dims=${JSON.stringify(dims)}, card text=${JSON.stringify(cardText)}`);
  const thumb = card.locator('img.slide-thumb');
  assert.equal(await thumb.count(), 1, 'the card has an img.slide-thumb');
  await waitFor(() => thumb.evaluate((img) => img.complete && img.naturalWidth > 0), 60000,
    { what: 'the slide thumbnail to load (naturalWidth > 0)', interval: 200 });
  const slideBox = card.locator('input[name="slide"]');
  assert.ok(await slideBox.isChecked(), 'the only slide is preselected');
  for (const a of ['tissue_mask', 'cell_segmentation']) {
    const box = page.locator(`input[name="analysis"][value="${a}"]`);
    assert.equal(await box.count(), 1, `input[name=analysis][value=${a}] exists`);
    assert.ok(await box.isChecked(), `${a} is preselected`);
  }
  sw.mark('submit page');
  await shot(page, 'first-run-submit');
  const clean = async (where) => {
    const junk = await junkText(page);
    soft.ok(junk.length === 0, `${where}: the page text shows programming leftovers: ${junk.join(' | ')}`);
    const alerts = await visibleAlerts(page);
    soft.ok(alerts.length === 0, `${where}: an error is shown: ${JSON.stringify(alerts)}`);
  };
  await clean('the submit page');

  // --- submit; record every value the progress bar shows (MutationObserver)
  // besides the 200 ms samples the test asserts on.
  await page.evaluate(() => {
    window.__progressLog = [];
    const read = () => {
      const el = document.querySelector('#wf-progress');
      if (!el) return;
      const v = el.getAttribute('aria-valuenow');
      const log = window.__progressLog;
      if (!log.length || log[log.length - 1] !== v) log.push(v);
    };
    new MutationObserver(read).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'] });
  });
  await page.locator('#submit-run').click();
  await waitFor(async () => /^#\/workflows\/[^/]+$/.test(await currentHash(page)), 30000,
    { what: 'the URL to become #/workflows/<id> after submitting', interval: 50 });
  const id = decodeURIComponent((await currentHash(page)).split('/')[2]);
  sw.mark(`submitted (workflow ${id})`);
  assert.match(id, /^\d+$/, `a workflow id in the URL: ${id}`);

  const samples = [];
  const states = [];
  const t0 = Date.now();
  let checkedRunning = false;
  for (;;) {
    const [v, st] = await page.evaluate(() => [
      document.querySelector('#wf-progress')?.getAttribute('aria-valuenow') ?? null,
      document.querySelector('#wf-view')?.getAttribute('data-state') ?? null,
    ]);
    if (v !== null) samples.push(num(v));
    if (st && states[states.length - 1] !== st) states.push(st);
    if (st === 'running' && !checkedRunning) {
      checkedRunning = true;
      await clean('the workflow page while running');
    }
    if (st === 'succeeded') break;
    if (st === 'failed' || st === 'cancelled') {
      const w = await getWf(fixture.server, 'alice', id);
      assert.fail(`the workflow ended ${st}: ${JSON.stringify(w).slice(0, 1500)}`);
    }
    if (Date.now() - t0 > 400000) assert.fail(`#wf-view never reached data-state=succeeded (states ${states}, progress ${samples.slice(-20)})`);
    await sleep(200);
  }
  // A last sample after the state changed, so "ends at 100" is not a race with the attribute update.
  await sleep(300);
  samples.push(num(await attrOf(page, '#wf-progress', 'aria-valuenow')));
  const observed = await page.evaluate(() => window.__progressLog);
  const distinct = [...new Set(samples)];
  t.diagnostic(`progress samples (200 ms): ${distinct.join(' ')}; every value shown: ${observed.join(' ')}; states: ${states.join(' -> ')}`);
  sw.mark('succeeded');
  assert.ok(samples.every((v) => Number.isFinite(v) && v >= 0 && v <= 100), `aria-valuenow is 0..100: ${samples}`);
  assert.ok(distinct.length >= 2, `#wf-progress showed at least 2 distinct values while running: ${distinct}`);
  assert.equal(samples[samples.length - 1], 100, `#wf-progress ends at 100: ${samples.slice(-5)}`);
  const shown = observed.map(num).filter(Number.isFinite);
  for (let i = 1; i < shown.length; i++) {
    assert.ok(shown[i] >= shown[i - 1], `#wf-progress never goes back: ${shown.join(' ')}`);
  }
  assert.equal(await attrOf(page, '#wf-view', 'data-wf-id'), id, '#wf-view[data-wf-id] is the workflow');
  await nr.check('the workflow page while the analysis ran');

  // --- DAG
  await page.waitForSelector('svg#dag', { timeout: 10000 });
  assert.equal(await page.locator('svg#dag g.dag-job').count(), 2, 'svg#dag has 2 g.dag-job');
  assert.ok(await page.locator('svg#dag path.dag-edge').count() >= 1, 'svg#dag has at least one path.dag-edge');
  const wf = await getWf(fixture.server, 'alice', id);
  const jobs = jobsOf(wf);
  assert.equal(jobs.length, 2, `2 jobs: ${JSON.stringify(jobs.map((j) => j.job_type))}`);
  const cell = jobs.find((j) => j.job_type === 'cell_segmentation');
  const tissue = jobs.find((j) => j.job_type === 'tissue_mask');
  assert.ok(cell && tissue, 'one tissue_mask and one cell_segmentation job');
  for (const j of jobs) {
    assert.equal(await attrOf(page, `svg#dag g.dag-job[data-job-id="${j.job_id}"]`, 'data-state'), 'succeeded',
      `g.dag-job[data-job-id=${j.job_id}] is drawn succeeded`);
    assert.equal(await attrOf(page, `tr.job-row[data-job-id="${j.job_id}"] .job-state`, 'data-state'), 'succeeded',
      `tr.job-row[data-job-id=${j.job_id}] .job-state is succeeded`);
  }
  await shot(page, 'first-run-workflow');
  await clean('the workflow page when succeeded');

  // --- the viewer of the cell job
  const viewLink = page.locator(`tr.job-row[data-job-id="${cell.job_id}"] a.job-view`);
  assert.equal(await viewLink.count(), 1, `tr.job-row[data-job-id=${cell.job_id}] has an a.job-view link`);
  await viewLink.click();
  await page.waitForSelector('#viewer-page', { timeout: 30000 });
  assert.equal(await attrOf(page, '#viewer-page', 'data-wf-id'), id);
  assert.equal(await attrOf(page, '#viewer-page', 'data-job-id'), cell.job_id);
  assert.equal(await currentHash(page), `#/workflows/${id}/view/${cell.job_id}`);
  await waitForAttr(page, '#osd', 'data-tiles-loaded', (v) => num(v) > 0, 90000, 'the viewer to load tiles (#osd[data-tiles-loaded] > 0)');
  await waitForAttr(page, 'canvas#overlay', 'data-cells-drawn', (v) => num(v) > 0, 90000, 'cells drawn (canvas#overlay[data-cells-drawn] > 0)');
  sw.mark('viewer drawn');
  await sleep(500); // let the tiles paint for the screenshot
  await shot(page, 'first-run-viewer');
  await clean('the viewer');
  const drawn = num(await attrOf(page, 'canvas#overlay', 'data-cells-drawn'));
  t.diagnostic(`viewer: tiles loaded ${await attrOf(page, '#osd', 'data-tiles-loaded')}, cells drawn ${drawn}, tissue drawn ${await attrOf(page, 'canvas#overlay', 'data-tissue-drawn')}`);

  const toggle = page.locator('input#toggle-cells');
  assert.ok(await toggle.isChecked(), '#toggle-cells starts on');
  await toggle.click();
  await waitForAttr(page, 'canvas#overlay', 'data-cells-drawn', (v) => num(v) === 0, 10000, 'no cells drawn with #toggle-cells off');
  await toggle.click();
  await waitForAttr(page, 'canvas#overlay', 'data-cells-drawn', (v) => num(v) > 0, 10000, 'cells drawn again with #toggle-cells on');

  // --- summary: the count of the job's summary.json
  const sumRes = await fixture.server.api('alice', 'GET', `/api/workflows/${id}/jobs/${cell.job_id}/results/summary.json`);
  assert.equal(sumRes.status, 200, sumRes.text);
  const summary = JSON.parse(sumRes.text);
  assert.ok(Number.isInteger(summary.count) && summary.count > 0, `summary.json has a cell count: ${sumRes.text.slice(0, 300)}`);
  const summaryText = await textOf(page, '#summary');
  const spellings = [String(summary.count), summary.count.toLocaleString('en-US'), summary.count.toLocaleString('en-US').replace(/,/g, '\u202f'),
    summary.count.toLocaleString('en-US').replace(/,/g, '\u2009'), summary.count.toLocaleString('en-US').replace(/,/g, ' ')];
  assert.ok(spellings.some((s) => summaryText.includes(s)),
    `#summary mentions the cell count ${summary.count}: ${JSON.stringify(summaryText.slice(0, 400))}`);

  // --- downloads
  const hrefs = await page.locator('a.download').evaluateAll((as) => as.map((a) => a.href));
  for (const f of ['cells.geojson', 'cells.csv']) {
    const href = hrefs.find((h) => new URL(h).pathname.endsWith(`/${f}`));
    assert.ok(href, `an a.download for ${f}: ${JSON.stringify(hrefs)}`);
    const r = await page.request.get(href);
    assert.equal(r.status(), 200, `GET ${href} (with the page's session) answers 200`);
    const body = await r.body();
    assert.ok(body.length > 0, `${f} is not empty`);
    if (f === 'cells.geojson') assert.equal(JSON.parse(body.toString('utf8')).features.length, summary.count, 'cells.geojson holds every cell');
  }
  await nr.check('the viewer');

  // --- list
  await page.locator('a[href="#/"]').first().click();
  const row = page.locator(`tr.wf-row[data-wf-id="${id}"]`);
  await row.waitFor({ state: 'visible', timeout: 30000 });
  assert.equal(await row.locator('.wf-state').getAttribute('data-state'), 'succeeded', 'the list shows the workflow succeeded');
  assert.equal(num(await row.locator('[role="progressbar"]').getAttribute('aria-valuenow')), 100, 'the list shows 100 %');
  assert.equal(await row.locator('a.wf-open').count(), 1, 'the row has an a.wf-open link');
  assert.equal(await row.locator('button.wf-abort:visible').count(), 0, 'no visible abort button on a finished workflow');
  await shot(page, 'first-run-list');
  await clean('the list');
  await nr.check('the list');
  sw.mark('list');

  // --- phone width: no horizontal scroll on the list and the workflow page
  await page.setViewportSize({ width: 390, height: 844 });
  await sleep(300);
  await assertNoHorizontalScroll(page, 'the list at 390x844');
  await shot(page, 'first-run-list-390');
  await row.locator('a.wf-open').click();
  await page.waitForSelector(`#wf-view[data-wf-id="${id}"][data-state="succeeded"]`, { timeout: 30000 });
  await page.waitForSelector('svg#dag g.dag-job', { timeout: 10000 });
  await sleep(300);
  await assertNoHorizontalScroll(page, 'the workflow page at 390x844');
  await shot(page, 'first-run-workflow-390');
  await page.locator('a[href="#/submit"]').first().click();
  await page.waitForSelector('.slide-card img.slide-thumb', { timeout: 15000 });
  await sleep(300);
  await assertNoHorizontalScroll(page, 'the submit page at 390x844');
  await shot(page, 'first-run-submit-390');
  await nr.check('the pages after resizing');
  sw.mark('phone width');
  t.diagnostic(`timings: ${sw}`);
  soft.done();
});
