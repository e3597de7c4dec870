// harness.test.mjs - checks the browser harness itself (browser.mjs) against a
// tiny local HTML fixture served from this process: keyboard sign-in, the
// no-reload marker, screenshots, and that console errors and uncaught
// exceptions are caught (a harness that missed them would let UI tests pass
// silently). No tessera server is involved.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import {
  BrowserSession, signIn, noReload, shot, gotoHash, allowErrors, pageErrors, assertNoPageErrors,
  NETWORK_ERROR, statusError, waitFor, sleep,
} from './browser.mjs';

const SIGNIN_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>fixture</title></head><body>
<header><span id="whoami"></span></header>
<a href="#/">home</a>
<form id="signin"><label>User <input id="signin-user" autocomplete="username"></label>
<button id="signin-submit">Sign in</button><p id="signin-error"></p></form>
<main id="main"></main>
<script>
document.getElementById('signin').addEventListener('submit', (e) => {
  e.preventDefault();
  const u = document.getElementById('signin-user').value;
  document.getElementById('whoami').textContent = u;
  document.getElementById('signin').hidden = true;
});
window.addEventListener('hashchange', () => { document.getElementById('main').textContent = location.hash; });
</script></body></html>`;

const PAGES = {
  '/': SIGNIN_PAGE,
  '/throws': '<!doctype html><body><p>throws</p><script>setTimeout(() => { null.boom(); }, 50);</script></body>',
  '/console': '<!doctype html><body><p>console</p><script>console.error("fixture says boom");</script></body>',
  '/missing-asset': '<!doctype html><body><p>asset</p><script src="/app/missing.js"></script></body>',
  '/fetch-404': '<!doctype html><body><p>api</p><script>fetch("/api/workflows/7").then(r => { document.body.dataset.status = r.status; });</script></body>',
  '/refused': '', // set in before(): fetches a closed port
};

let srv;
let base;
let closedPort;
let b;

before(async () => {
  // A port that refuses connections: bind, read it, close.
  closedPort = await new Promise((resolve) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  PAGES['/refused'] = `<!doctype html><body><p>refused</p><script>
    fetch("http://127.0.0.1:${closedPort}/api/x").catch(() => { document.body.dataset.done = "1"; });
  </script></body>`;
  srv = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const body = PAGES[url.pathname];
    if (url.pathname.startsWith('/api/')) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"error":{"code":"not_found","message":"workflow not found"}}');
    } else if (body === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
    } else {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(body);
    }
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  base = { url: `http://127.0.0.1:${srv.address().port}` };
  b = await BrowserSession.launch();
}, { timeout: 90000 });

after(async () => {
  if (b) await b.close();
  if (srv) await new Promise((r) => srv.close(r));
});

describe('browser harness (fixture)', () => {
  test('keyboard sign-in, no-reload marker across hash routes, screenshot', { timeout: 60000 }, async () => {
    const { page } = await b.newUser('fixture-user', base);
    await page.goto('/');
    await signIn(page, 'alice', { keyboard: true });
    const nr = await noReload(page);
    await gotoHash(page, '#/workflows/1');
    await waitFor(async () => (await page.textContent('#main')) === '#/workflows/1', 5000, { what: 'hash route' });
    await nr.check('fixture after a hash change');
    const file = await shot(page, 'harness-fixture');
    const png = fs.readFileSync(file);
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG', `${file} is a PNG`);
    await page.reload();
    await assert.rejects(nr.check('fixture after reload'), /reloaded/, 'a reload is detected');
    assertNoPageErrors(page);
  });

  test('uncaught exceptions, console.error and missing assets are caught; favicon 404 is not', { timeout: 60000 }, async () => {
    const { page } = await b.newUser('fixture-errors', base);
    await page.goto('/throws');
    await waitFor(() => pageErrors(page).some((e) => e.kind === 'pageerror'), 5000, { what: 'the page error' });
    await page.goto('/console');
    await waitFor(() => pageErrors(page).some((e) => /fixture says boom/.test(e.text)), 5000, { what: 'console.error' });
    await page.goto('/missing-asset');
    await waitFor(() => pageErrors(page).some((e) => /status of 404/.test(e.text) && /missing\.js/.test(e.url)), 5000,
      { what: 'the 404 of a missing script' });
    assert.ok(!pageErrors(page).some((e) => /favicon/.test(e.url) || /favicon/.test(e.text)), 'favicon 404s are ignored');
    assert.throws(() => assertNoPageErrors(page), /console error/);
    // The session's report names them too (what browserTest fails on).
    assert.match(b.errorReport(), /fixture says boom/);
    b.pages.splice(b.pages.indexOf(page), 1); // keep the session clean for the other tests
  });

  test('allowErrors: expected API 404s and refused connections pass only while allowed', { timeout: 60000 }, async () => {
    const { page } = await b.newUser('fixture-allowed', base);
    const stop404 = allowErrors(page, statusError(404, '/api/workflows/'), 'the fixture answers 404');
    const stopNet = allowErrors(page, NETWORK_ERROR, 'the fixture fetches a closed port');
    await page.goto('/fetch-404');
    await page.waitForSelector('body[data-status="404"]');
    await page.goto('/refused');
    await page.waitForSelector('body[data-done="1"]');
    await sleep(200);
    assert.deepEqual(pageErrors(page), [], 'nothing unexpected');
    assert.ok(page.__tesseraWatch.allowed.length >= 1, `the allowed errors are recorded: ${JSON.stringify(page.__tesseraWatch.allowed)}`);
    stop404();
    stopNet();
    await page.goto('/fetch-404');
    await page.waitForSelector('body[data-status="404"]');
    await waitFor(() => pageErrors(page).length > 0, 5000, { what: 'the 404 reported once no longer allowed' });
    b.pages.splice(b.pages.indexOf(page), 1);
  });
});
