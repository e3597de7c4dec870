// browser.mjs - the browser side of tessera's UI tests: Chromium through
// playwright-core, one browser context (own cookies) per user, sign-in through
// the UI's form, screenshots under test-artifacts/browser/, and a watch on
// every page's console errors and uncaught exceptions (a test fails on any
// it did not expect). The service itself comes from ../service/harness.mjs.
//
// Environment:
//   TESSERA_CHROMIUM        the browser (default /usr/bin/chromium)
//   TESSERA_BROWSER_HEADED  =1 shows the window (needs a display)
//   TESSERA_BROWSER_SLOWMO  milliseconds between browser actions (debugging)
//
// The DOM contract these tests rely on is in the task brief of the web UI
// (form#signin, #whoami, #conn, table#wf-list, #wf-view, svg#dag, ...).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { REPO_ROOT, waitFor, sleep, startServer, runCli } from '../service/harness.mjs';

export const CHROMIUM = process.env.TESSERA_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts', 'browser');
export const DEFAULT_VIEWPORT = { width: 1280, height: 800 };
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// One server shared by every test of a file: started before the first test,
// cleaned up (killed, state removed) after the last. Its `server` is set once
// the before() hook has run, so tests read fixture.server, not a copy.
// With demoSlide { size: 'WxH', seed }, a demo slide is written first to
// fixture.slide in a fresh data root the server is given (--data-root).
export function fileServer(opts, { demoSlide = null } = {}) {
  const fixture = { server: null, dataRoot: null, slide: null };
  before(async () => {
    const serverOpts = { ...opts };
    if (demoSlide) {
      fixture.dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-browser-slides-'));
      fixture.slide = path.join(fixture.dataRoot, 'demo.tiff');
      const r = runCli(['demo-slide', fixture.slide, '--size', demoSlide.size, '--seed', String(demoSlide.seed)],
        { timeoutMs: 300000 });
      assert.equal(r.status, 0, `demo-slide ${demoSlide.size}: ${r.status} ${r.stderr}`);
      serverOpts.extraArgs = [...(opts.extraArgs || []), '--data-root', fixture.dataRoot];
    }
    fixture.server = await startServer(serverOpts);
  }, { timeout: 360000 });
  after(async () => {
    if (fixture.server) await fixture.server.cleanup();
    if (fixture.dataRoot) fs.rmSync(fixture.dataRoot, { recursive: true, force: true });
  }, { timeout: 60000 });
  return fixture;
}

let playwright = null;
async function loadPlaywright() {
  if (playwright) return playwright;
  try {
    playwright = await import('playwright-core');
  } catch (e) {
    throw new Error(`playwright-core is not installed (npm ci installs the devDependencies): ${e.message}`);
  }
  return playwright;
}

/** Launches Chromium (a fresh profile each time). */
export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install chromium, or set TESSERA_CHROMIUM)`);
  }
  const { chromium } = await loadPlaywright();
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: process.env.TESSERA_BROWSER_HEADED !== '1',
    slowMo: Number(process.env.TESSERA_BROWSER_SLOWMO || 0) || undefined,
    args: CHROMIUM_ARGS,
    timeout: 60000,
  });
}

// ---------------------------------------------------------------- errors

/**
 * Console errors and uncaught exceptions of a page, each
 * {kind: 'console'|'pageerror'|'crash', text, url, at}. A favicon 404 is never
 * an error; anything a test expects (e.g. connection refused while the
 * service is down) is allowed explicitly with allowErrors().
 */
class ErrorWatch {
  constructor(label) {
    this.label = label;
    this.errors = [];     // unexpected: fail the test
    this.allowed = [];    // expected: kept for the report
    this.allowances = new Set();
  }

  add(e) {
    e.at = new Date().toISOString();
    if (/favicon\.ico/.test(e.url || '') || /favicon\.ico/.test(e.text)) return;
    for (const a of this.allowances) {
      if (a.kinds.includes(e.kind) && a.match(e)) {
        this.allowed.push({ ...e, because: a.why });
        return;
      }
    }
    this.errors.push(e);
  }

  report(list = this.errors) {
    return list.map((e) => `  [${this.label} ${e.kind} ${e.at}] ${e.text}${e.url ? ` (${e.url})` : ''}`).join('\n');
  }
}

function watchPage(page, watch) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location() || {};
    watch.add({ kind: 'console', text: msg.text(), url: loc.url || '' });
  });
  page.on('pageerror', (err) => {
    watch.add({ kind: 'pageerror', text: `${err.name}: ${err.message}\n${err.stack || ''}`, url: '' });
  });
  page.on('crash', () => watch.add({ kind: 'crash', text: 'the page crashed', url: page.url() }));
}

/**
 * Allows console errors matching `match` (a RegExp tried on the text and the
 * URL, or a function of {kind, text, url}) on page until the returned
 * function is called. Uncaught exceptions are never allowed unless kinds
 * says so.
 */
export function allowErrors(page, match, why, { kinds = ['console'] } = {}) {
  const watch = page.__tesseraWatch;
  assert.ok(watch, 'allowErrors: the page was not opened by this harness');
  const fn = typeof match === 'function' ? match : (e) => match.test(e.text) || match.test(e.url || '');
  const a = { match: fn, why, kinds };
  watch.allowances.add(a);
  return () => watch.allowances.delete(a);
}

/** The unexpected errors of a page so far. */
export function pageErrors(page) {
  return page.__tesseraWatch ? [...page.__tesseraWatch.errors] : [];
}

/** Fails when the page had unexpected console errors or exceptions. */
export function assertNoPageErrors(page) {
  const w = page.__tesseraWatch;
  if (!w || !w.errors.length) return;
  assert.fail(`${w.errors.length} console error(s)/uncaught exception(s) on ${w.label}:\n${w.report()}`);
}

// A browser error of a fetch/XHR/WebSocket that could not connect, and the
// failed resource loads Chromium reports with a status: for allowErrors.
export const NETWORK_ERROR = /ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_CONNECTION_CLOSED|ERR_EMPTY_RESPONSE|ERR_SOCKET_NOT_CONNECTED|ERR_NETWORK_CHANGED|ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_ABORTED|WebSocket connection to .* failed|Failed to fetch|NetworkError/;
export const statusError = (status, urlPart) => (e) =>
  e.text.includes(`status of ${status}`) && (!urlPart || (e.url || '').includes(urlPart));

// ---------------------------------------------------------------- contexts

/**
 * The browser of one test: newUser() opens a context (own cookie jar) and a
 * page for a user; every page is watched for errors; close() ends it all.
 */
export class BrowserSession {
  constructor(browser) {
    this.browser = browser;
    this.pages = [];
    this.contexts = [];
  }

  static async launch() {
    return new BrowserSession(await launchBrowser());
  }

  /** A new context for `label` (e.g. the user's name) with baseURL server.url. */
  async newUser(label, server, { viewport = DEFAULT_VIEWPORT, ...ctxOpts } = {}) {
    const context = await this.browser.newContext({
      viewport, baseURL: server?.url, ignoreHTTPSErrors: true, ...ctxOpts,
    });
    context.setDefaultTimeout(30000);
    context.setDefaultNavigationTimeout(60000);
    this.contexts.push(context);
    const page = await this.newPage(context, label);
    return { context, page };
  }

  /** Another page in a context (same cookies), watched like the first. */
  async newPage(context, label) {
    const page = await context.newPage();
    const watch = new ErrorWatch(`${label}#${this.pages.length + 1}`);
    page.__tesseraWatch = watch;
    watchPage(page, watch);
    this.pages.push(page);
    return page;
  }

  /** Every unexpected error of every page, as one message ('' when none). */
  errorReport() {
    return this.pages.map((p) => p.__tesseraWatch).filter((w) => w.errors.length).map((w) => w.report()).join('\n');
  }

  assertNoErrors() {
    const r = this.errorReport();
    if (r) assert.fail(`console errors or uncaught exceptions in the browser:\n${r}`);
  }

  async shotAll(prefix) {
    for (const p of this.pages) {
      if (p.isClosed()) continue;
      await shot(p, `${prefix}-${p.__tesseraWatch.label.replace(/[^A-Za-z0-9_.-]/g, '_')}`).catch(() => {});
    }
  }

  async close() {
    await this.browser.close().catch(() => {});
  }
}

/**
 * test() with a browser: fn(b, t) gets a BrowserSession. On failure every
 * open page is screenshotted (FAIL-<name>-<page>.png); in any case the test
 * fails on unexpected console errors or uncaught exceptions, and the browser
 * is closed.
 */
export function browserTest(name, opts, fn) {
  return test(name, opts, async (t) => {
    const b = await BrowserSession.launch();
    const slug = name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
    let failed = true;
    try {
      await fn(b, t);
      failed = false;
    } catch (e) {
      await b.shotAll(`FAIL-${slug}`);
      const errs = b.errorReport();
      if (errs) e.message += `\nbrowser console errors/exceptions:\n${errs}`;
      throw e;
    } finally {
      try {
        if (!failed) {
          const errs = b.errorReport();
          if (errs) await b.shotAll(`FAIL-${slug}`);
          b.assertNoErrors();
        }
      } finally {
        await b.close();
      }
    }
  });
}

// ---------------------------------------------------------------- helpers

/** Saves a PNG of the page (full page) to test-artifacts/browser/<name>.png. */
export async function shot(page, name, { fullPage = true } = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage, timeout: 30000 });
  return file;
}

/**
 * Signs in through the UI's form (form#signin, #signin-user, #signin-submit)
 * and waits until #whoami shows the user. With {keyboard: true} only the
 * keyboard is used: Tab until the user field has focus (unless it already
 * has it), type the name, press Enter.
 */
export async function signIn(page, user, { keyboard = false, timeout = 30000 } = {}) {
  await page.waitForSelector('form#signin', { state: 'visible', timeout });
  const field = page.locator('#signin-user');
  await field.waitFor({ state: 'visible', timeout });
  if (keyboard) {
    let focused = false;
    for (let i = 0; i < 30 && !focused; i++) {
      focused = await page.evaluate(() => document.activeElement?.id === 'signin-user');
      if (!focused) await page.keyboard.press('Tab');
    }
    assert.ok(focused, 'the user field (#signin-user) can be reached with Tab');
    await page.keyboard.type(user);
    await page.keyboard.press('Enter');
  } else {
    await field.fill(user);
    await page.locator('#signin-submit').click();
  }
  await waitForText(page, '#whoami', (t) => t.trim() === user || t.includes(user), timeout,
    `#whoami to show ${user} after sign-in`);
  await page.waitForSelector('form#signin', { state: 'hidden', timeout });
}

/**
 * Marks the current document: returns {check()} that asserts the same
 * document is still loaded (window.__tesseraMarker unchanged, and no main-frame
 * load since), proving the page was updated without a reload.
 */
export async function noReload(page) {
  const marker = crypto.randomBytes(8).toString('hex');
  await page.evaluate((m) => { window.__tesseraMarker = m; }, marker);
  let loads = 0;
  const onLoad = () => { loads++; };
  page.on('load', onLoad);
  return {
    marker,
    async check(what = 'the page') {
      const now = await page.evaluate(() => window.__tesseraMarker);
      assert.equal(now, marker, `${what} was reloaded (window.__tesseraMarker changed from ${marker} to ${now})`);
      assert.equal(loads, 0, `${what}: the main frame fired 'load' ${loads} time(s) since the marker was set`);
    },
    stop() { page.off('load', onLoad); },
  };
}

/** Goes to a hash route of the already loaded UI (no reload). */
export async function gotoHash(page, hash) {
  await page.evaluate((h) => { window.location.hash = h; }, hash);
}

/** Text content of the first match ('' when none). */
export async function textOf(page, selector) {
  return page.evaluate((s) => document.querySelector(s)?.textContent ?? '', selector);
}

/** An attribute of the first match (null when no element or no attribute). */
export async function attrOf(page, selector, name) {
  return page.evaluate(([s, n]) => document.querySelector(s)?.getAttribute(n) ?? null, [selector, name]);
}

/** Waits until pred(text of selector) holds; returns the text. */
export async function waitForText(page, selector, pred, timeout = 30000, what = `text of ${selector}`) {
  let last = '';
  try {
    return await waitFor(async () => {
      last = await textOf(page, selector);
      return pred(last) ? last || true : null;
    }, timeout, { what, interval: 100 });
  } catch (e) {
    e.message += `; last text: ${JSON.stringify(last.slice(0, 500))}`;
    throw e;
  }
}

/** Waits until pred(attribute value) holds; returns the value. */
export async function waitForAttr(page, selector, name, pred, timeout = 30000, what = `${selector}[${name}]`) {
  let last = null;
  try {
    await waitFor(async () => {
      last = await attrOf(page, selector, name);
      return pred(last);
    }, timeout, { what, interval: 100 });
    return last;
  } catch (e) {
    e.message += `; last value: ${JSON.stringify(last)}`;
    throw e;
  }
}

/** document.documentElement.scrollWidth <= innerWidth + 1 (no horizontal scroll). */
export async function assertNoHorizontalScroll(page, what) {
  const m = await page.evaluate(() => {
    const wide = [];
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.right > window.innerWidth + 1 && r.width > 0) {
        wide.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : ''} right=${Math.round(r.right)}`);
      }
    }
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, wide: wide.slice(0, 8) };
  });
  assert.ok(m.scrollWidth <= m.innerWidth + 1,
    `${what}: horizontal scroll at ${m.innerWidth}px wide (scrollWidth ${m.scrollWidth}); elements past the right edge: ${m.wide.join(', ')}`);
}

/**
 * Starts a stopped harness Server again on its old port (the page in the
 * browser knows only that address). Server.start(port) would quietly take
 * another port when the old one is busy; this retries the same port instead.
 */
export async function startOnSamePort(server, port = server.port, { attempts = 20 } = {}) {
  let lastErr;
  for (let i = 0; i < attempts; i++) {
    try {
      await server.spawnOnce(port);
      return server;
    } catch (e) {
      lastErr = e;
      if (!e.addrInUse) throw e;
      await sleep(500);
    }
  }
  throw new Error(`could not start the service again on port ${port}: ${lastErr?.message}`);
}

/** The current location.hash. */
export async function currentHash(page) {
  return page.evaluate(() => window.location.hash);
}

/** Full visible text of the document plus its HTML (to look for leaks). */
export async function pageTextAndHtml(page) {
  return page.evaluate(() => ({ text: document.body?.innerText ?? '', html: document.documentElement.outerHTML }));
}

/**
 * Checks that do not stop a test: each failed one is recorded (and printed
 * as a diagnostic) and done() fails the test listing them all, so one run
 * reports every contract mismatch of a flow instead of only the first.
 */
export function softChecks(t) {
  const failed = [];
  return {
    failed,
    ok(cond, msg) {
      if (!cond) {
        failed.push(msg);
        t?.diagnostic?.(`CHECK FAILED: ${msg}`);
      }
      return !!cond;
    },
    done() {
      if (failed.length) assert.fail(`${failed.length} check(s) failed:\n- ${failed.join('\n- ')}`);
    },
  };
}

/**
 * Programming leftovers in the visible text ("null", "undefined", "NaN",
 * "[object Object]"), each with some context; [] when clean.
 */
export async function junkText(page) {
  const text = await page.evaluate(() => document.body?.innerText ?? '');
  const out = [];
  const re = /\b(null|undefined|NaN)\b|\[object Object\]/g;
  let m;
  while ((m = re.exec(text)) && out.length < 5) {
    out.push(JSON.stringify(text.slice(Math.max(0, m.index - 60), m.index + m[0].length + 20)));
  }
  return out;
}

/** Texts of the visible, non-empty error messages ([role=alert], .error). */
export async function visibleAlerts(page) {
  return page.evaluate(() => [...document.querySelectorAll('[role="alert"], .error')]
    .filter((el) => el.offsetParent !== null && el.textContent.trim())
    .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${[...el.classList].join('.')}: ${el.textContent.trim()}`));
}

/** Millisecond timer for per-step timings in the test output. */
export function stopwatch() {
  const t0 = performance.now();
  const marks = [];
  return {
    mark(what) { marks.push(`${what} ${((performance.now() - t0) / 1000).toFixed(1)}s`); },
    toString() { return marks.join(', '); },
  };
}

export { sleep, waitFor };
