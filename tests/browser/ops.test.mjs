// ops.test.mjs - issue 18, item 5: the operations page (#/ops) in Chromium.
// An administrator (`tessera user add root --admin`, signed in with the
// token) sees the line, cpus, throughput, latency, errors, the leader and
// the instance update by themselves while work runs, with charts drawn in
// SVG from the service's own figures and nothing loaded from anywhere else;
// a user who is not an administrator has no Operations link and gets "page
// not found" at #/ops, and the API behind it answers 404.
import assert from 'node:assert/strict';
import { runCli, submit, wfId, waitFinal, noop, sleepJob, workflow } from '../service/harness.mjs';
import {
  browserTest, fileServer, noReload, shot, gotoHash, allowErrors, statusError, sleep,
} from './browser.mjs';

const fixture = fileServer({ workers: 2, auth: 'token', concurrencyLimit: 2, maxActiveUsers: 1, pollSeconds: 0.1 });

function addUser(name, admin) {
  const s = fixture.server;
  const r = runCli(['user', 'add', name, ...(admin ? ['--admin'] : [])], { env: s.cliEnv(), cwd: s.tmpDir });
  assert.equal(r.status, 0, `user add ${name}: ${r.stderr}`);
  return r.stdout.match(/\b[0-9a-f]{64}\b/)[0];
}

async function signInWithToken(page, user, token) {
  await page.goto('/');
  await page.locator('#signin-token').waitFor({ state: 'visible' });
  await page.locator('#signin-token').fill(token);
  await page.locator('#signin-submit').click();
  await page.waitForFunction((u) => document.querySelector('#whoami')?.textContent.trim() === u, user);
}

/** Waits until fn(text of selector) holds; returns the text. */
async function waitText(page, selector, fn, what, timeout = 60000) {
  const end = Date.now() + timeout;
  let text = '';
  while (Date.now() < end) {
    text = (await page.locator(selector).textContent().catch(() => '')) || '';
    if (fn(text)) return text;
    await sleep(200);
  }
  throw new Error(`${what}: ${selector} shows ${JSON.stringify(text)}`);
}

/** Waits until fn(attribute) holds; returns it. */
async function waitAttr(page, selector, name, fn, what, timeout = 30000) {
  const end = Date.now() + timeout;
  let value = null;
  while (Date.now() < end) {
    value = await page.locator(selector).getAttribute(name).catch(() => null);
    if (value !== null && fn(value)) return value;
    await sleep(200);
  }
  throw new Error(`${what}: ${selector} has ${name}=${JSON.stringify(value)}`);
}

browserTest('an administrator watches the line, cpus, throughput and errors live', { timeout: 240000 }, async (b) => {
  const rootToken = addUser('root', true);
  const aliceToken = addUser('alice', false);
  const bobToken = addUser('bob', false);
  const { page } = await b.newUser('root', fixture.server);
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(fixture.server.url)) foreign.push(r.url()); });
  await signInWithToken(page, 'root', rootToken);
  assert.equal(await page.locator('#nav-ops').isVisible(), true, 'an administrator has the Operations link');
  await page.locator('#nav-ops').click();
  await page.locator('#ops-page').waitFor({ state: 'visible' });
  const nr = await noReload(page);

  // Work arrives after the page is open: alice holds the one active place
  // with sleeps (one times out), bob waits behind her.
  const a = wfId(await submit(fixture.server, { token: aliceToken }, workflow('long', [
    sleepJob('s1', 6, { branch: 'x' }), sleepJob('s2', 30, { branch: 'y', timeout_s: 3 }),
  ])));
  const bWf = wfId(await submit(fixture.server, { token: bobToken }, workflow('after', [noop('n')])));
  await waitText(page, '#ops-cpus', (t) => t.trim() === '2 / 2', 'both cpus running');
  await waitText(page, '#ops-queued', (t) => t.trim() === '1', 'bob waiting');
  await waitText(page, '#ops-oldest', (t) => /\d+(\.\d)? s|ms/.test(t), 'the oldest waiter\'s age');
  await shot(page, 'ops-busy');
  assert.equal((await waitFinal(fixture.server, { token: aliceToken }, a, 90000)).state, 'failed');
  assert.equal((await waitFinal(fixture.server, { token: bobToken }, bWf, 90000)).state, 'succeeded');
  await waitText(page, '#ops-queued', (t) => t.trim() === '0', 'the line empty again');
  await page.locator('#ops-types tr[data-type="sleep"]').waitFor();
  await waitText(page, '#ops-types tr[data-type="sleep"]', (t) => /timeout 1/.test(t), 'the timeout counted by reason');
  await waitText(page, '#ops-types tr[data-type="noop"]', (t) => t.includes('noop'), 'bob\'s noop counted');
  await waitText(page, '#ops-leader', (t) => /term \d+/.test(t), 'the leader and its term');
  await waitText(page, '#ops-instance', (t) => t.includes(`:${fixture.server.port}`) && t.includes('leads'), 'this instance, leading');
  await waitText(page, '#ops-store', (t) => t.startsWith('up'), 'the store up');
  await waitText(page, '#ops-instances tbody', (t) => t.includes(`:${fixture.server.port}`) && t.includes('leads the scheduler'),
    'the instance listed, leading');
  // The charts have drawn lines from several reads, in SVG. The page reads
  // every 2 s and a rate needs two reads, so on a slow run the line may
  // still be growing here: wait for it (the line is what is checked).
  for (const key of ['queued', 'runningCpus', 'jobsPerMin']) {
    await waitAttr(page, `figure[data-chart="${key}"] path.ops-line`, 'd',
      (d) => (d.match(/L/g) || []).length >= 3, `chart ${key} has a line`);
  }
  const cpuPath = await page.locator('figure[data-chart="runningCpus"] path.ops-line').getAttribute('d');
  const ys = [...cpuPath.matchAll(/[ML][\d.]+ ([\d.]+)/g)].map((m) => Number(m[1]));
  assert.ok(Math.min(...ys) < Math.max(...ys), `the cpus chart went up and down: ${cpuPath}`);
  await waitText(page, '#ops-routes', (t) => t.includes('POST /api/workflows'), 'the submits by route template');
  await shot(page, 'ops');
  await nr.check('the operations page updated itself');
  assert.deepEqual(foreign, [], 'nothing loaded from anywhere but the service');
});

browserTest('anyone else finds no operations page and no API behind it', { timeout: 120000 }, async (b) => {
  const carolToken = addUser('carol', false);
  const { page } = await b.newUser('carol', fixture.server);
  allowErrors(page, statusError(404, '/api/admin/'), 'carol asks the admin API (and a missing path beside it) directly');
  await signInWithToken(page, 'carol', carolToken);
  assert.equal(await page.locator('#nav-ops').isVisible(), false, 'no Operations link');
  await gotoHash(page, '#/ops');
  await page.locator('#page-notfound').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#ops-page').count(), 0);
  const missing = await page.evaluate(async () => {
    const a = await fetch('/api/admin/overview');
    const m = await fetch('/api/admin/nothing');
    return { a: a.status, m: m.status, at: await a.text(), mt: await m.text() };
  });
  assert.equal(missing.a, 404);
  assert.equal(JSON.parse(missing.at).error.message, JSON.parse(missing.mt).error.message, 'the same answer as a missing path');
  await shot(page, 'ops-not-admin');
});
