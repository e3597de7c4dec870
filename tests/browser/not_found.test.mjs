// not_found.test.mjs - isolation in the UI: bob following a link to alice's
// workflow (or its viewer) sees "not found", exactly as for a workflow that
// does not exist, and nothing of alice's anywhere in the page.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { submit, sleepJob, workflow, wfId, waitFinal } from '../service/harness.mjs';
import {
  browserTest, fileServer, signIn, noReload, shot, gotoHash, allowErrors, statusError, pageTextAndHtml, sleep,
} from './browser.mjs';

const fixture = fileServer({ workers: 2, concurrencyLimit: 2 });

async function assertNotFound(page, what, secrets) {
  const nf = page.locator('#wf-notfound');
  await nf.waitFor({ state: 'visible', timeout: 30000 }).catch((e) => {
    throw new Error(`${what}: #wf-notfound never became visible (${e.message.split('\n')[0]})`);
  });
  const text = await nf.innerText();
  assert.match(text, /not found/i, `${what}: #wf-notfound says "not found": ${JSON.stringify(text)}`);
  await sleep(500); // anything still loading would show up now
  const { text: all, html } = await pageTextAndHtml(page);
  for (const s of secrets) {
    assert.ok(!all.includes(s), `${what}: the page text shows alice's ${JSON.stringify(s)}`);
    assert.ok(!html.includes(s), `${what}: the page's HTML holds alice's ${JSON.stringify(s)}`);
  }
  for (const sel of ['#wf-view', '#viewer-page', 'svg#dag', 'table#jobs']) {
    assert.equal(await page.locator(sel).count(), 0, `${what}: no ${sel} is shown`);
  }
}

browserTest('another user\'s workflow and viewer are "not found", like a missing one', { timeout: 180000 }, async (b, t) => {
  const secretName = `alice-private-${crypto.randomBytes(4).toString('hex')}`;
  const secretJob = `alicejob-${crypto.randomBytes(3).toString('hex')}`;
  const aliceWf = await submit(fixture.server, 'alice', workflow(secretName, [sleepJob(secretJob, 0.2)]));
  const id = String(wfId(aliceWf));
  await waitFinal(fixture.server, 'alice', id, 60000);
  const secrets = [secretName];

  const { context, page } = await b.newUser('bob', fixture.server);
  // The UI has to ask the API, which answers 404: Chromium logs that as a
  // failed resource load. Expected here, for the workflow API only.
  allowErrors(page, statusError(404, '/api/workflows/'), 'bob asks for a workflow that is not his');
  await page.goto('/');
  await signIn(page, 'bob');
  const nr = await noReload(page);
  // bob's list has nothing of alice's.
  await page.waitForSelector('table#wf-list', { state: 'attached', timeout: 10000 }).catch(() => {}); // may be hidden while empty
  await sleep(500);
  assert.equal(await page.locator(`tr.wf-row[data-wf-id="${id}"]`).count(), 0, 'alice\'s workflow is not in bob\'s list');

  await gotoHash(page, `#/workflows/${id}`);
  await assertNotFound(page, `bob at #/workflows/${id} (alice's)`, secrets);
  await shot(page, 'not-found-other-user');

  await gotoHash(page, '#/workflows/99999999');
  await assertNotFound(page, 'bob at #/workflows/99999999 (missing)', secrets);

  await gotoHash(page, `#/workflows/${id}/view/${secretJob}`);
  await assertNotFound(page, `bob at #/workflows/${id}/view/${secretJob} (alice's viewer)`, secrets);
  await shot(page, 'not-found-viewer');
  await nr.check('bob\'s page across the not-found routes');

  // A link opened fresh (a new tab, signed in by the session cookie).
  const fresh = await b.newPage(context, 'bob-fresh');
  allowErrors(fresh, statusError(404, '/api/workflows/'), 'bob asks for a workflow that is not his');
  await fresh.goto(`/#/workflows/${id}`);
  await assertNotFound(fresh, `a fresh tab of bob's at /#/workflows/${id}`, secrets);
  const allowed = [...page.__tesseraWatch.allowed, ...fresh.__tesseraWatch.allowed].map((e) => e.url);
  t.diagnostic(`expected 404 loads: ${allowed.join(' ')}`);
});
