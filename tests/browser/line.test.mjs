// line.test.mjs - the waiting line as a user sees it: with 3 of 3 users
// active, dave's workflow is 2nd in line behind erin's; his list says so, moves
// him to 1st in line without a reload when the first active user finishes, and
// lets him abort while waiting (his workflow is cancelled, never admitted).
import assert from 'node:assert/strict';
import { submit, sleepJob, workflow, getWf, waitWf, wfId, waitFor } from '../service/harness.mjs';
import {
  browserTest, fileServer, signIn, noReload, shot, waitForAttr, waitForText, textOf, stopwatch, softChecks, junkText, visibleAlerts,
} from './browser.mjs';

// Sleep lengths (s): u1 must outlast dave's sign-in and the first check
// (slow under ASan: generous); u2 and u3 must outlast the abort.
const U1_S = Number(process.env.TESSERA_BROWSER_U1_S || 10);
const U2_S = 90;
const U3_S = 100;
const fixture = fileServer({ workers: 2, concurrencyLimit: 4, maxActiveUsers: 3 });

browserTest('the line: 2nd in line, then 1st without a reload, then abort while waiting', { timeout: 300000 }, async (b, t) => {
  const sw = stopwatch();
  const soft = softChecks(t);
  const ids = {};
  ids.u1 = wfId(await submit(fixture.server, 'u1', workflow('u1-short', [sleepJob('s', U1_S)])));
  ids.u2 = wfId(await submit(fixture.server, 'u2', workflow('u2-long', [sleepJob('s', U2_S)])));
  ids.u3 = wfId(await submit(fixture.server, 'u3', workflow('u3-long', [sleepJob('s', U3_S)])));
  for (const u of ['u1', 'u2', 'u3']) await waitWf(fixture.server, u, ids[u], (w) => w.state === 'running', 30000, 'admitted');
  ids.erin = wfId(await submit(fixture.server, 'erin', workflow('erin-waits', [sleepJob('s', 1)])));
  ids.dave = wfId(await submit(fixture.server, 'dave', workflow('dave-waits', [sleepJob('s', 1)])));
  const d0 = await getWf(fixture.server, 'dave', ids.dave);
  assert.equal(d0.state, 'queued');
  assert.equal(d0.queue_position, 2, `dave is 2nd in line: ${JSON.stringify(d0).slice(0, 400)}`);
  sw.mark('submitted');

  const { page } = await b.newUser('dave', fixture.server);
  let dialogs = 0;
  page.on('dialog', (d) => { dialogs++; d.accept().catch(() => {}); });
  await page.goto('/');
  await signIn(page, 'dave');
  const nr = await noReload(page);
  sw.mark('signed in');
  const rowSel = `tr.wf-row[data-wf-id="${ids.dave}"]`;
  await page.waitForSelector(`table#wf-list ${rowSel}`, { timeout: 30000 });
  assert.equal(await page.locator('tr.wf-row').count(), 1, 'dave sees only his own workflow');
  await waitForAttr(page, `${rowSel} .wf-position`, 'data-position', (v) => v === '2', 15000, '.wf-position[data-position="2"]');
  const waiting2 = await waitForText(page, `${rowSel} .wf-waiting`, (s) => s.includes('3 of 3 users active') && s.includes('2nd in line'), 15000,
    '.wf-waiting to say "3 of 3 users active" and "2nd in line"');
  assert.equal(await page.locator(`${rowSel} .wf-state`).getAttribute('data-state'), 'queued');
  const u1Now = await getWf(fixture.server, 'u1', ids.u1);
  assert.equal(u1Now.state, 'running', `u1 was still running when the page showed 2nd in line (raise TESSERA_BROWSER_U1_S if this machine is slower): ${u1Now.state}`);
  t.diagnostic(`2nd in line: ${JSON.stringify(waiting2)}`);
  await shot(page, 'line-before');
  const junk = await junkText(page);
  soft.ok(junk.length === 0, `the list with a queued workflow shows programming leftovers: ${junk.join(' | ')}`);
  sw.mark('2nd in line shown');

  // u1's workflow ends; erin is admitted; dave moves up - live.
  await waitForAttr(page, `${rowSel} .wf-position`, 'data-position', (v) => v === '1', U1_S * 1000 + 60000, '.wf-position[data-position="1"]');
  const waiting1 = await waitForText(page, `${rowSel} .wf-waiting`, (s) => s.includes('1st in line'), 15000, '.wf-waiting to say "1st in line"');
  t.diagnostic(`1st in line: ${JSON.stringify(waiting1)}`);
  assert.equal((await getWf(fixture.server, 'u1', ids.u1)).state, 'succeeded', 'u1 finished');
  assert.equal((await getWf(fixture.server, 'erin', ids.erin)).state, 'running', 'erin was admitted');
  await nr.check('the list while dave waited');
  await shot(page, 'line-first');
  sw.mark('1st in line shown');

  // Abort while waiting.
  const abort = page.locator(`${rowSel} button.wf-abort`);
  assert.equal(await abort.count(), 1, `${rowSel} has a button.wf-abort`);
  await abort.click();
  await waitForAttr(page, `${rowSel} .wf-state`, 'data-state', (v) => v === 'cancelled', 30000, '.wf-state[data-state="cancelled"]');
  const fin = await waitWf(fixture.server, 'dave', ids.dave, (w) => w.state === 'cancelled', 10000, 'cancelled');
  assert.equal(fin.admitted_at, null, `dave's workflow was never admitted: ${JSON.stringify(fin).slice(0, 400)}`);
  await waitFor(async () => (await page.locator(`${rowSel} button.wf-abort`).count()) === 0 ||
    !(await page.locator(`${rowSel} button.wf-abort`).isVisible()), 10000, { what: 'the abort button to go once cancelled' });
  assert.doesNotMatch(await textOf(page, `${rowSel} .wf-waiting`), /in line/, 'a cancelled workflow no longer says it is in line');
  assert.equal((await getWf(fixture.server, 'erin', ids.erin)).state === 'cancelled', false, 'erin is untouched by dave\'s abort');
  await nr.check('the list after the abort');
  await shot(page, 'line-after');
  t.diagnostic(`confirm dialogs accepted: ${dialogs}; timings: ${sw}`);
  const junk2 = await junkText(page);
  soft.ok(junk2.length === 0, `the list after the abort shows programming leftovers: ${junk2.join(' | ')}`);
  const alerts = await visibleAlerts(page);
  soft.ok(alerts.length === 0, `the list after the abort shows an error: ${JSON.stringify(alerts)}`);

  // Free the line quickly for cleanup.
  for (const u of ['u2', 'u3']) await fixture.server.api(u, 'POST', `/api/workflows/${ids[u]}/cancel`);
  soft.done();
});

