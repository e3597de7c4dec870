// keyboard_docs.test.mjs - the UI without a mouse, and /docs.
//   - Keyboard only (Tab, Enter, Space; no clicks): sign in, open "New
//     analysis", run the preselected analyses on the demo slide, open a job's
//     log from its DAG box, open the results on the slide, switch the cell
//     overlay off. Every element focused along the way shows a focus ring.
//   - /docs renders /openapi.json with swagger-ui-dist, the UI's endpoints
//     included.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, runCli } from '../service/harness.mjs';
import { browserTest, signIn, shot, waitForAttr } from './browser.mjs';

let server;
let dataRoot;

before(async () => {
  dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-browser-kbd-'));
  const r = runCli(['demo-slide', path.join(dataRoot, 'demo.tiff'), '--size', '2048x1536', '--seed', '5'], { timeoutMs: 120000 });
  assert.equal(r.status, 0, `demo-slide: ${r.stderr}`);
  server = await startServer({ workers: 2, concurrencyLimit: 2, extraArgs: ['--data-root', dataRoot] });
}, { timeout: 180000 });

after(async () => {
  if (server) await server.cleanup();
  if (dataRoot) fs.rmSync(dataRoot, { recursive: true, force: true });
}, { timeout: 60000 });

/** Describes the focused element and whether it shows a focus indicator. */
function focusState(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { desc: 'body', ring: true };
    const cs = getComputedStyle(el);
    const child = el.querySelector && el.querySelector('rect.box');
    const ring = (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0) || cs.boxShadow !== 'none' ||
      (child && parseFloat(getComputedStyle(child).strokeWidth) >= 3);
    const desc = `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.getAttribute('class') ? `.${el.getAttribute('class').split(' ').join('.')}` : ''}` +
      `${el.getAttribute('href') ? `[href=${el.getAttribute('href')}]` : ''} "${(el.textContent || el.getAttribute('aria-label') || '').trim().slice(0, 40)}"`;
    return { desc, ring };
  });
}

/** Presses Tab until matches(document.activeElement) holds; fails with the path taken. */
async function tabTo(page, selector, what, max = 80) {
  const visited = [];
  for (let i = 0; i < max; i++) {
    const hit = await page.evaluate((sel) => !!document.activeElement && document.activeElement.matches(sel), selector);
    if (hit) return visited;
    await page.keyboard.press('Tab');
    visited.push(await focusState(page));
  }
  assert.fail(`${what} (${selector}) was not reached in ${max} Tabs; visited: ${visited.map((v) => v.desc).join(' → ')}`);
}

browserTest('keyboard only: sign in, run the demo analysis, read a log, see and toggle the cells', { timeout: 300000 }, async (b) => {
  const { page } = await b.newUser('kim', server);
  await page.goto('/');
  await signIn(page, 'kim', { keyboard: true });
  const seen = [];
  seen.push(...await tabTo(page, 'a[href="#/submit"]', 'the "New analysis" link'));
  await page.keyboard.press('Enter');
  await page.waitForSelector('.slide-card input[name=slide]:checked', { timeout: 30000 });
  await page.waitForSelector('input[name=analysis][value=cell_segmentation]:checked');
  seen.push(...await tabTo(page, '#submit-run', 'the Run button'));
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /^#\/workflows\/\d+$/.test(location.hash), null, { timeout: 30000 });
  await page.waitForSelector('#wf-view[data-state=succeeded]', { timeout: 180000 });
  seen.push(...await tabTo(page, 'g.dag-job', 'a job box of the DAG'));
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => (document.querySelector('pre#job-log')?.textContent || '').length > 20, null, { timeout: 30000 });
  assert.ok(await page.locator('pre#job-log').isVisible(), 'the log shows after Enter on a DAG box');
  seen.push(...await tabTo(page, '#wf-view-results', 'the "View results on the slide" link'));
  await page.keyboard.press('Enter');
  await page.waitForSelector('#viewer-page', { timeout: 30000 });
  await waitForAttr(page, '#overlay', 'data-cells-drawn', (v) => Number(v) > 0, 60000, 'cells drawn on the slide');
  seen.push(...await tabTo(page, '#toggle-cells', 'the cells overlay toggle'));
  await page.keyboard.press('Space');
  await waitForAttr(page, '#overlay', 'data-cells-drawn', (v) => Number(v) === 0, 10000, 'no cells drawn once toggled off');
  await shot(page, 'keyboard-viewer');
  // Focus indicators: OpenSeadragon's own controls are left out (its styles).
  const noRing = seen.filter((v) => !v.ring && !/openseadragon|navigator/i.test(v.desc));
  assert.deepEqual(noRing.map((v) => v.desc), [], 'every element reached with Tab shows where the focus is');
});

browserTest('/docs renders the API description with swagger-ui', { timeout: 120000 }, async (b) => {
  const { page } = await b.newUser('docs', server);
  await page.goto('/docs');
  await page.waitForSelector('.swagger-ui .opblock', { timeout: 60000 });
  const ops = await page.locator('.swagger-ui .opblock').count();
  assert.ok(ops >= 20, `at least 20 operations are listed: ${ops}`);
  assert.match(await page.locator('.swagger-ui .info .title').innerText(), /tessera/i);
  const text = await page.locator('.swagger-ui').innerText();
  for (const p of ['/api/workflows', '/api/job-types', '/api/slides', '/api/events', '/api/session'])
    assert.ok(text.includes(p), `${p} is described`);
  await shot(page, 'docs');
});
