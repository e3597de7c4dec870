// restart.test.mjs - the service dies (SIGKILL of every process) under an open
// workflow page and comes back on the same address with the same state: the
// page shows it is disconnected, reconnects by itself (no reload), and ends
// showing what the API says (succeeded; the interrupted job re-run).
import assert from 'node:assert/strict';
import { submit, sleepJob, workflow, getWf, wfId, jobsOf, healthy } from '../service/harness.mjs';
import {
  browserTest, fileServer, signIn, noReload, shot, allowErrors, NETWORK_ERROR, startOnSamePort,
  waitForAttr, attrOf, textOf, sleep, stopwatch, softChecks, junkText, visibleAlerts,
} from './browser.mjs';

const JOB_S = 3;
const fixture = fileServer({ workers: 2, concurrencyLimit: 2 });

browserTest('the service is killed and restarted under an open workflow page', { timeout: 300000 }, async (b, t) => {
  const sw = stopwatch();
  const soft = softChecks(t);
  const clean = async (where) => {
    const junk = await junkText(page);
    soft.ok(junk.length === 0, `${where}: the page text shows programming leftovers: ${junk.join(' | ')}`);
  };
  const { page } = await b.newUser('alice', fixture.server);
  const wf = await submit(fixture.server, 'alice', workflow('three-in-a-row',
    [sleepJob('first', JOB_S), sleepJob('second', JOB_S), sleepJob('third', JOB_S)]));
  const id = String(wfId(wf));
  // A link to the workflow opened before signing in: the sign-in form, then
  // the workflow page itself.
  await page.goto(`/#/workflows/${id}`);
  await signIn(page, 'alice');
  await page.waitForSelector(`#wf-view[data-wf-id="${id}"]`, { timeout: 30000 });
  assert.equal(await page.evaluate(() => location.hash), `#/workflows/${id}`, 'sign-in continues to the route asked for');
  const nr = await noReload(page);
  await waitForAttr(page, '#conn', 'data-state', (v) => v === 'live', 30000, '#conn live before the kill');
  await waitForAttr(page, 'tr.job-row[data-job-id="first"] .job-state', 'data-state', (v) => v === 'running', 30000,
    'the first job shown running');
  const before = await getWf(fixture.server, 'alice', id);
  assert.equal(before.jobs.find((j) => j.job_id === 'first').state, 'running', 'the first job runs at the kill');
  sw.mark('first job running');
  await clean('the workflow page while the first job runs');

  // --- kill -9 of the master, the scheduler, the HTTP workers and the job.
  const port = fixture.server.port;
  const stopAllowing = allowErrors(page, NETWORK_ERROR, 'the service is down');
  const connSeen = [];
  const sampler = setInterval(async () => {
    const v = await attrOf(page, '#conn', 'data-state').catch(() => null);
    if (v && connSeen[connSeen.length - 1] !== v) connSeen.push(v);
  }, 100);
  try {
    await fixture.server.kill9();
    sw.mark('killed');
    const down = await waitForAttr(page, '#conn', 'data-state', (v) => v && v !== 'live', 30000,
      '#conn to leave "live" while the service is down');
    assert.ok(['connecting', 'offline', 'polling'].includes(down), `#conn[data-state] is one of connecting|offline|polling: ${down}`);
    const text = (await textOf(page, '#conn')).trim();
    assert.ok(text.length > 0, '#conn has visible text while down');
    t.diagnostic(`while down: #conn data-state=${down} text=${JSON.stringify(text)}`);
    sw.mark(`conn ${down}`);
    await sleep(3000); // stay down a while: the page must keep retrying
    assert.notEqual(await attrOf(page, '#conn', 'data-state'), 'live', '#conn is not "live" while the service is down');
    await shot(page, 'restart-disconnected');
    await clean('the workflow page while disconnected');

    // --- the same service again: same port, same state directory.
    await startOnSamePort(fixture.server, port);
    assert.equal(fixture.server.port, port, 'the service is back on the same port');
    assert.ok(await healthy(fixture.server));
    sw.mark('restarted');
    await waitForAttr(page, '#conn', 'data-state', (v) => v === 'live', 90000, '#conn to return to "live" after the restart');
    sw.mark('conn live again');
    await sleep(2000); // requests that were in flight when the service came back
  } finally {
    clearInterval(sampler);
    stopAllowing();
  }
  t.diagnostic(`#conn states seen: ${connSeen.join(' -> ')}`);
  await nr.check('the workflow page across the restart');

  // --- the page catches up with what happened meanwhile and after.
  await waitForAttr(page, '#wf-view', 'data-state', (v) => v === 'succeeded', 120000, '#wf-view[data-state=succeeded]');
  sw.mark('succeeded');
  await sleep(500);
  const fin = await getWf(fixture.server, 'alice', id);
  assert.equal(fin.state, 'succeeded');
  const apiJobs = jobsOf(fin);
  const rows = await page.locator('tr.job-row').evaluateAll((trs) => trs.map((tr) => ({
    id: tr.getAttribute('data-job-id'),
    state: tr.querySelector('.job-state')?.getAttribute('data-state') ?? null,
    attempt: tr.querySelector('.job-attempt')?.textContent.trim() ?? null,
  })));
  assert.deepEqual(rows.map((r) => r.id).sort(), apiJobs.map((j) => j.job_id).sort(), 'one tr.job-row per job');
  for (const j of apiJobs) {
    const r = rows.find((x) => x.id === j.job_id);
    assert.equal(r.state, j.state, `tr.job-row[data-job-id=${j.job_id}] .job-state matches the API`);
    assert.ok(r.attempt !== null && new RegExp(`\\b${j.attempt}\\b`).test(r.attempt),
      `tr.job-row[data-job-id=${j.job_id}] .job-attempt shows attempt ${j.attempt}: ${JSON.stringify(r.attempt)}`);
  }
  const first = apiJobs.find((j) => j.job_id === 'first');
  t.diagnostic(`after the restart: ${apiJobs.map((j) => `${j.job_id}=${j.state}#${j.attempt}`).join(' ')}; page rows ${JSON.stringify(rows)}`);
  assert.ok(first.attempt >= 2, `the interrupted job was re-run as a new attempt: ${first.attempt}`);
  assert.equal(Number(await attrOf(page, '#wf-progress', 'aria-valuenow')), 100);
  assert.equal(await attrOf(page, '#conn', 'data-state'), 'live');
  await nr.check('the workflow page at the end');
  await shot(page, 'restart-after');
  const alerts = await visibleAlerts(page);
  soft.ok(alerts.length === 0, `after the restart, with #conn live and the workflow up to date, the page still shows an error: ${JSON.stringify(alerts)}`);
  await clean('the workflow page after the restart');
  t.diagnostic(`timings: ${sw}; allowed errors while down: ${page.__tesseraWatch.allowed.length}`);
  soft.done();
});
