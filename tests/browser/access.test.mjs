// access.test.mjs - ways into the service besides the mouse-driven main flow:
//   - /docs: the OpenAPI description rendered by swagger-ui-dist (the
//     operations the web UI itself calls among them).
//   - Keyboard only (Tab, Shift+Tab, Enter, Space; no clicks, no fill): sign
//     in, "New analysis", run the preselected analyses of the demo slide,
//     open a job's log from its DAG box, open the results on the slide,
//     switch the cell overlay off; every element focused on the way shows a
//     focus indicator.
//   - Token mode: the sign-in form asks for an API token (from `tessera user
//     add`), refuses a wrong one, accepts the right one, and signing out ends
//     the session on the server too.
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, runCli } from '../service/harness.mjs';
import {
  browserTest, fileServer, shot, waitForAttr, waitForText, textOf, currentHash, stopwatch, allowErrors, statusError,
} from './browser.mjs';

const fixture = fileServer({ workers: 2, concurrencyLimit: 2 }, { demoSlide: { size: '2048x1536', seed: 5 } });

const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));

// ---------------------------------------------------------------- /docs

browserTest('/docs renders the API with swagger-ui-dist', { timeout: 120000 }, async (b, t) => {
  const sw = stopwatch();
  const { page } = await b.newUser('docs', fixture.server);
  await page.goto('/docs');
  await page.waitForSelector('.swagger-ui .opblock', { timeout: 60000 });
  sw.mark('rendered');
  const ops = await page.evaluate(() => [...document.querySelectorAll('.swagger-ui .opblock')].map((op) => {
    const method = (op.querySelector('.opblock-summary-method')?.textContent || '').trim().toUpperCase();
    const p = op.querySelector('.opblock-summary-path');
    const route = (p?.getAttribute('data-path') || p?.textContent || '').replace(/\u200b/g, '').trim();
    return `${method} ${route}`;
  }));
  t.diagnostic(`${ops.length} operations: ${ops.join(', ')}`);
  assert.ok(ops.length >= 20, `at least 20 operations (.swagger-ui .opblock) are listed: ${ops.length}`);
  const docTitle = await page.title();
  const infoTitle = (await page.locator('.swagger-ui .info .title').first().innerText()).trim();
  assert.match(docTitle, /tessera/i, `document.title mentions tessera: ${JSON.stringify(docTitle)}`);
  assert.match(infoTitle, /tessera/i, `the API title (.swagger-ui .info .title) mentions tessera: ${JSON.stringify(infoTitle)}`);
  for (const op of ['GET /api/job-types', 'GET /api/slides', 'POST /api/workflows']) {
    assert.ok(ops.includes(op), `${op} is described; operations: ${ops.join(', ')}`);
  }
  await shot(page, 'docs');
  t.diagnostic(`timings: ${sw}`);
});

// ---------------------------------------------------------------- keyboard only

const OSD_INTERNAL = /openseadragon|navigator|^div(\.[^ ]*)? "" \(in #osd\)/i;

/**
 * The focused element: a description, whether it shows a focus indicator
 * (an outline, a box-shadow, or for an SVG job box its rect.box stroked with
 * the focus colour or at least 3 px wide), its size, and whether it lies
 * inside OpenSeadragon's container.
 */
function focusState(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body || el === document.documentElement) return { desc: 'body', ring: true, body: true };
    const cs = getComputedStyle(el);
    const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0 &&
      !/rgba\(\d+, \d+, \d+, 0\)|transparent/.test(cs.outlineColor);
    const shadow = cs.boxShadow && cs.boxShadow !== 'none';
    let svgRing = false;
    const box = el.querySelector && el.querySelector(':scope > rect.box');
    if (box) {
      const bs = getComputedStyle(box);
      const focusColour = getComputedStyle(document.documentElement).getPropertyValue('--focus').trim();
      const probe = document.createElement('span');
      probe.style.color = focusColour;
      document.body.append(probe);
      const focusRgb = getComputedStyle(probe).color;
      probe.remove();
      svgRing = parseFloat(bs.strokeWidth) >= 3 || (focusColour && bs.stroke === focusRgb);
    }
    const r = el.getBoundingClientRect();
    const cls = el.getAttribute('class');
    const inOsd = !!el.closest('#osd') && el.id !== 'osd';
    const label = (el.getAttribute('aria-label') || el.textContent || el.value || '').trim().replace(/\s+/g, ' ').slice(0, 40);
    const desc = `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${cls ? `.${cls.trim().split(/\s+/).join('.')}` : ''}` +
      `${el.getAttribute('href') ? `[href=${el.getAttribute('href')}]` : ''}${el.type && el.tagName === 'INPUT' ? `[type=${el.type}]` : ''}` +
      ` "${label}"${inOsd ? ' (in #osd)' : ''}`;
    return {
      desc, ring: outline || shadow || svgRing, inOsd,
      how: outline ? `outline ${cs.outlineStyle} ${cs.outlineWidth}` : shadow ? `box-shadow ${cs.boxShadow}` : svgRing ? 'rect.box stroke' : 'none',
      size: `${Math.round(r.width)}x${Math.round(r.height)}`, zero: r.width === 0 || r.height === 0,
    };
  });
}

/**
 * Presses Tab (Shift+Tab with back) until document.activeElement matches
 * selector; each element focused on the way is appended to seen. Fails with
 * the path taken when max presses do not get there.
 */
async function tabTo(page, selector, what, seen, { back = false, max = 60 } = {}) {
  const visited = [];
  for (let i = 0; i <= max; i++) {
    const hit = await page.evaluate((sel) => !!document.activeElement && document.activeElement !== document.body &&
      document.activeElement.matches(sel), selector);
    if (hit) {
      seen.push(...visited.map((v) => ({ ...v, on: what })));
      return visited.length;
    }
    if (i === max) break;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    visited.push(await focusState(page));
  }
  assert.fail(`${what} (${selector}) was not reached in ${max} ${back ? 'Shift+Tab' : 'Tab'} presses; ` +
    `focus went: ${visited.map((v) => v.desc).join(' → ')}`);
}

browserTest('keyboard only: sign in, run the demo analysis, read a log, view and toggle the cells', { timeout: 400000 }, async (b, t) => {
  const sw = stopwatch();
  const seen = [];
  const presses = [];
  const { page } = await b.newUser('kim', fixture.server);
  await page.goto('/');
  await page.waitForSelector('form#signin', { state: 'visible', timeout: 30000 });
  await page.locator('#signin-user').waitFor({ state: 'visible', timeout: 30000 });

  // --- sign in: the field (focused by the page, or reached with Tab), the name, Enter
  presses.push(`sign-in field ${await tabTo(page, '#signin-user', 'the user name field', seen)}`);
  await page.keyboard.type('kim');
  await page.keyboard.press('Enter');
  await waitForText(page, '#whoami', (s) => s.trim() === 'kim', 30000, '#whoami to show kim');
  await page.waitForSelector('form#signin', { state: 'hidden', timeout: 30000 });
  sw.mark('signed in');

  // --- "New analysis"
  presses.push(`New analysis ${await tabTo(page, 'nav a[href="#/submit"]', 'the nav link "New analysis"', seen)}`);
  assert.equal((await page.evaluate(() => document.activeElement.textContent)).trim(), 'New analysis',
    'the focused nav link reads "New analysis"');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.hash === '#/submit', null, { timeout: 10000 });
  const card = page.locator('.slide-card').filter({ has: page.locator('input[name="slide"][value$="demo.tiff"]') });
  await card.first().waitFor({ state: 'visible', timeout: 30000 });
  await page.waitForSelector('.slide-card input[name=slide]:checked', { timeout: 30000 });
  await page.waitForSelector('input[name=analysis][value=cell_segmentation]:checked', { timeout: 10000 });
  sw.mark('submit page');

  // --- Run
  presses.push(`Run ${await tabTo(page, '#submit-run', 'the Run button (#submit-run)', seen)}`);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /^#\/workflows\/\d+$/.test(location.hash), null, { timeout: 30000 });
  const id = (await currentHash(page)).split('/')[2];
  sw.mark(`submitted workflow ${id}`);
  await page.waitForSelector('#wf-view[data-state=succeeded]', { timeout: 240000 }).catch(async (e) => {
    throw new Error(`#wf-view never reached data-state=succeeded (now ${await page.evaluate(() => document.querySelector('#wf-view')?.dataset.state)}): ${e.message}`);
  });
  sw.mark('succeeded');

  // --- a job's log from its DAG box
  presses.push(`DAG box ${await tabTo(page, 'svg#dag g.dag-job', 'a job box of the DAG (g.dag-job)', seen)}`);
  const jobId = await page.evaluate(() => document.activeElement.getAttribute('data-job-id'));
  await page.keyboard.press('Enter');
  await page.locator('pre#job-log').waitFor({ state: 'visible', timeout: 30000 });
  const log = await waitForText(page, 'pre#job-log', (s) => s.trim().length > 0, 30000, `the log of job ${jobId} in pre#job-log`);
  t.diagnostic(`log of ${jobId}: ${JSON.stringify(String(log).trim().slice(0, 160))}`);
  assert.ok(await page.evaluate(() => !!document.activeElement?.closest?.('g.dag-job')),
    `focus stays on the DAG box after Enter (now on ${(await focusState(page)).desc})`);
  sw.mark('log shown');

  // --- "View results on the slide" is in the page head, before the graph: Shift+Tab
  await page.waitForSelector('#wf-view-results:not([hidden])', { timeout: 10000 });
  assert.equal((await textOf(page, '#wf-view-results')).trim(), 'View results on the slide');
  presses.push(`results link ${await tabTo(page, '#wf-view-results', 'the "View results on the slide" link (#wf-view-results)', seen, { back: true })}`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#viewer-page', { timeout: 30000 });
  await waitForAttr(page, '#overlay', 'data-cells-drawn', (v) => num(v) > 0, 90000, 'cells drawn on the slide (#overlay[data-cells-drawn] > 0)');
  const drawn = num(await page.getAttribute('#overlay', 'data-cells-drawn'));
  sw.mark(`viewer (${drawn} cells drawn)`);

  // --- cells off with Space
  await page.waitForSelector('#toggle-cells:not([disabled])', { timeout: 30000 });
  presses.push(`toggle ${await tabTo(page, '#toggle-cells', 'the cells overlay toggle (#toggle-cells)', seen)}`);
  await page.keyboard.press('Space');
  await waitForAttr(page, '#overlay', 'data-cells-drawn', (v) => num(v) === 0, 10000, 'no cells drawn once #toggle-cells is off');
  assert.equal(await page.locator('#toggle-cells').isChecked(), false, '#toggle-cells is unchecked after Space');
  sw.mark('cells off');
  await shot(page, 'access-keyboard-viewer');

  // --- focus indicators along the way
  const stops = seen.filter((v) => !v.body);
  t.diagnostic(`Tab presses: ${presses.join(', ')}; focus stops: ${stops.map((v) => `${v.desc} [${v.how}, ${v.size}]`).join(' → ')}`);
  const zero = stops.filter((v) => v.zero);
  if (zero.length) t.diagnostic(`focus stops of zero size (focus invisible there): ${zero.map((v) => `${v.desc} on the way to ${v.on}`).join('; ')}`);
  const osdNoRing = stops.filter((v) => !v.ring && (v.inOsd || OSD_INTERNAL.test(v.desc)));
  if (osdNoRing.length) t.diagnostic(`OpenSeadragon elements without a focus indicator (its own styles): ${[...new Set(osdNoRing.map((v) => v.desc))].join('; ')}`);
  const noRing = stops.filter((v) => !v.ring && !(v.inOsd || OSD_INTERNAL.test(v.desc)));
  assert.deepEqual([...new Set(noRing.map((v) => `${v.desc} (on the way to ${v.on})`))], [],
    'every element reached with Tab shows a focus indicator (outline or box-shadow)');
  t.diagnostic(`timings: ${sw}`);
});

// ---------------------------------------------------------------- token mode

browserTest('token mode: the sign-in form asks for a token, refuses a wrong one, signs in and out', { timeout: 120000 }, async (b, t) => {
  const sw = stopwatch();
  const ts = await startServer({ workers: 2, concurrencyLimit: 2, auth: 'token' });
  try {
    const r = runCli(['user', 'add', 'carol', '--state-dir', ts.stateDir, '--db', path.join(ts.stateDir, 'tessera.db')],
      { cwd: ts.tmpDir });
    assert.equal(r.status, 0, `tessera user add carol: ${r.status} ${r.stdout} ${r.stderr}`);
    const toks = (r.stdout.match(/[A-Za-z0-9_\-.~+=]{20,}/g) || []);
    assert.ok(toks.length, `user add prints a token: ${r.stdout}`);
    const token = toks[toks.length - 1];
    sw.mark('fixture.server and token');

    const { page } = await b.newUser('carol', ts);
    await page.goto('/');
    await page.waitForSelector('form#signin', { state: 'visible', timeout: 30000 });
    await page.locator('#signin-token').waitFor({ state: 'visible', timeout: 10000 });
    assert.equal(await page.locator('#signin-user').isVisible(), false, '#signin-user is hidden in token mode');
    assert.equal(await page.locator('#signin-token').getAttribute('type'), 'password', '#signin-token is a password field');
    assert.ok(await page.locator('#signin-token-label').isVisible(), 'the token field has a visible label');
    assert.equal(await page.locator('#signin-user-label').isVisible(), false, 'the user name label is hidden');
    assert.ok(await page.evaluate(() => document.activeElement?.id === 'signin-token'), '#signin-token has the focus');
    await shot(page, 'access-token-signin');

    // --- a wrong token
    const stop = allowErrors(page, statusError(401, '/api/session'), 'POST /api/session with a wrong token answers 401');
    const wrong = token.slice(0, -1) + (token.endsWith('a') ? 'b' : 'a');
    await page.locator('#signin-token').fill(wrong);
    await page.locator('#signin-submit').click();
    const err = await waitForText(page, '#signin-error', (s) => s.trim().length > 0, 15000, 'an error in #signin-error after a wrong token');
    t.diagnostic(`wrong token: #signin-error=${JSON.stringify(String(err).trim())}`);
    stop();
    assert.ok(await page.locator('#signin-error').isVisible(), '#signin-error is visible');
    assert.ok(await page.locator('form#signin').isVisible(), 'still on the sign-in form');
    assert.equal(await page.locator('.session').isVisible(), false, 'no session bar after a wrong token');
    assert.equal((await textOf(page, '#whoami')).trim(), '', '#whoami is empty');
    const s1 = await page.evaluate(async () => (await fetch('/api/session', { credentials: 'same-origin' })).json());
    assert.equal(s1.user ?? null, null, `GET /api/session after a wrong token: ${JSON.stringify(s1)}`);
    assert.equal(s1.auth_mode, 'token', `auth_mode is token: ${JSON.stringify(s1)}`);
    await shot(page, 'access-token-wrong');
    sw.mark('wrong token refused');

    // --- the right token
    await page.locator('#signin-token').fill(token);
    await page.locator('#signin-submit').click();
    await waitForText(page, '#whoami', (s) => s.trim() === 'carol', 15000, '#whoami to show carol');
    await page.waitForSelector('form#signin', { state: 'hidden', timeout: 10000 });
    assert.ok(await page.locator('#signout').isVisible(), '#signout is visible once signed in');
    assert.equal(await page.locator('#signin-token').inputValue(), '', 'the token is not left in the (hidden) field');
    const s2 = await page.evaluate(async () => (await fetch('/api/session', { credentials: 'same-origin' })).json());
    assert.equal(s2.user, 'carol', `GET /api/session when signed in: ${JSON.stringify(s2)}`);
    // carol has no workflows yet: her (empty) list is shown.
    await page.locator('#wf-empty').waitFor({ state: 'visible', timeout: 15000 });
    await shot(page, 'access-token-signed-in');
    sw.mark('signed in');

    // --- sign out
    await page.locator('#signout').click();
    await page.waitForSelector('form#signin', { state: 'visible', timeout: 10000 });
    await page.locator('#signin-token').waitFor({ state: 'visible', timeout: 10000 });
    assert.equal(await page.locator('#signin-user').isVisible(), false, '#signin-user stays hidden after signing out');
    assert.equal(await page.locator('.session').isVisible(), false, 'no session bar after signing out');
    const s3 = await page.evaluate(async () => {
      const res = await fetch('/api/session', { credentials: 'same-origin' });
      return { status: res.status, body: await res.json() };
    });
    assert.equal(s3.status, 200, `GET /api/session after signing out answers 200: ${JSON.stringify(s3)}`);
    assert.equal(s3.body.user, null, `GET /api/session after signing out: user null: ${JSON.stringify(s3.body)}`);
    // The page reloaded: still signed out (the cookie is gone, not just the view).
    await page.reload();
    await page.locator('#signin-token').waitFor({ state: 'visible', timeout: 30000 });
    assert.equal(await page.locator('.session').isVisible(), false, 'still signed out after a reload');
    await shot(page, 'access-token-signed-out');
    sw.mark('signed out');
    t.diagnostic(`timings: ${sw}`);
  } finally {
    await ts.cleanup();
  }
});
