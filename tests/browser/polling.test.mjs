// polling.test.mjs - the UI behind a proxy that does not pass WebSocket
// upgrades: WebSockets never open, HTTP works. The page must say so
// (#conn "Polling"), fetch GET /api/events?since= every few seconds instead,
// and still show a workflow's progress live - on the list and on the
// workflow page - without a reload; now and then it tries the WebSocket
// again without leaving "polling".
//
// Two ways a browser reports a WebSocket that cannot connect, each made
// before any page script runs (page.addInitScript):
//   throws  the constructor throws (a blocked or unsupported WebSocket)
//   closes  the socket is created but closes asynchronously without ever
//           opening (error then close, code 1006: what an upgrade refused
//           by a proxy looks like)
import assert from 'node:assert/strict';
import { submit, sleepJob, workflow, getWf, wfId, jobsOf } from '../service/harness.mjs';
import {
  browserTest, fileServer, signIn, noReload, shot, gotoHash, waitForAttr, attrOf, textOf, sleep, waitFor, stopwatch,
  softChecks, junkText, visibleAlerts,
} from './browser.mjs';

const JOB_S = Number(process.env.TESSERA_BROWSER_POLL_JOB_S || 2);
const POLLING_WITHIN_MS = 10000;
// events.js tries the WebSocket again after 30 s of polling; the test stays
// that long to see it do so without leaving "polling".
const WS_RETRY_MS = 30000;

// Both run in the page before its scripts; they must be self-contained.
const STUBS = {
  throws: () => {
    window.__wsAttempts = [];
    window.WebSocket = class {
      constructor(url) {
        window.__wsAttempts.push({ url: String(url), at: Date.now() });
        throw new Error('WebSocket blocked by the test (a proxy without upgrades)');
      }
    };
  },
  closes: () => {
    window.__wsAttempts = [];
    class RefusedSocket extends EventTarget {
      constructor(url) {
        super();
        window.__wsAttempts.push({ url: String(url), at: Date.now() });
        this.url = String(url);
        this.readyState = 0; // CONNECTING
        this.protocol = '';
        this.extensions = '';
        this.bufferedAmount = 0;
        this.binaryType = 'blob';
        this.onopen = null; this.onmessage = null; this.onerror = null; this.onclose = null;
        setTimeout(() => {
          this.readyState = 3; // CLOSED, never OPEN
          const err = new Event('error');
          if (typeof this.onerror === 'function') this.onerror(err);
          this.dispatchEvent(err);
          const ev = new CloseEvent('close', { code: 1006, reason: '', wasClean: false });
          if (typeof this.onclose === 'function') this.onclose(ev);
          this.dispatchEvent(ev);
        }, 30);
      }
      send() { throw new DOMException('Still in CONNECTING state.', 'InvalidStateError'); }
      close() { if (this.readyState < 2) this.readyState = 2; } // the pending close event still fires
    }
    Object.assign(RefusedSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
    window.WebSocket = RefusedSocket;
  },
};

const fixture = fileServer({ workers: 2, concurrencyLimit: 2 });

for (const [variant, stub] of Object.entries(STUBS)) {
  browserTest(`polling fallback (WebSocket ${variant}): live list and workflow page over GET /api/events?since=`,
    { timeout: 240000 }, async (b, t) => {
      const sw = stopwatch();
      const soft = softChecks(t);
      const shotName = variant === 'throws' ? 'polling-live' : `polling-live-${variant}`;
      const { page } = await b.newUser('alice', fixture.server);
      await page.addInitScript(stub);

      // Every GET /api/events of the page, with its since and time.
      const polls = [];
      const wsRequests = [];
      page.on('request', (req) => {
        const u = new URL(req.url());
        if (u.pathname !== '/api/events') return;
        if (u.protocol.startsWith('ws')) { wsRequests.push(req.url()); return; }
        polls.push({ since: u.searchParams.has('since') ? Number(u.searchParams.get('since')) : null, at: Date.now(), url: req.url() });
      });
      page.on('websocket', (ws) => wsRequests.push(ws.url()));

      await page.goto('/');
      const nr = await noReload(page);
      // #conn's states from the first script on, sampled by the page itself.
      await page.evaluate(() => {
        window.__connLog = [];
        const el = document.querySelector('#conn');
        const read = () => {
          const s = el.getAttribute('data-state');
          const log = window.__connLog;
          if (!log.length || log[log.length - 1].s !== s) log.push({ s, at: Date.now() });
        };
        read();
        new MutationObserver(read).observe(el, { attributes: true, attributeFilter: ['data-state'] });
      });
      await signIn(page, 'alice');
      sw.mark('signed in');
      const signedInAt = Date.now();

      // --- "Polling" within ~10 s.
      await waitForAttr(page, '#conn', 'data-state', (v) => v === 'polling', POLLING_WITHIN_MS,
        `#conn[data-state="polling"] within ${POLLING_WITHIN_MS / 1000} s of signing in`);
      const pollingAt = Date.now();
      sw.mark(`polling after ${((pollingAt - signedInAt) / 1000).toFixed(1)}s`);
      const conn = page.locator('#conn');
      assert.ok(await conn.isVisible(), '#conn is visible');
      const connText = (await conn.innerText()).trim();
      assert.match(connText, /Polling/, `#conn's visible text says Polling: ${JSON.stringify(connText)}`);
      const attemptsBefore = await page.evaluate(() => window.__wsAttempts.length);
      assert.ok(attemptsBefore >= 1, `the page tried the WebSocket before polling (${attemptsBefore} attempts)`);
      assert.ok(polls.length >= 1, `the page fetched GET /api/events?since= before showing "Polling": ${polls.length}`);

      // --- the list: a workflow submitted elsewhere appears, moves, succeeds.
      await page.waitForSelector('table#wf-list, #wf-empty', { state: 'attached', timeout: 30000 });
      assert.equal(await page.evaluate(() => location.hash || '#/'), '#/', 'signed in on the list');
      await page.evaluate(() => {
        window.__rowLog = [];
        const read = () => {
          for (const tr of document.querySelectorAll('tr.wf-row')) {
            const v = tr.querySelector('.wf-progress')?.getAttribute('aria-valuenow') ?? null;
            const s = tr.querySelector('.wf-state')?.getAttribute('data-state') ?? null;
            const id = tr.getAttribute('data-wf-id');
            const last = window.__rowLog.filter((x) => x.id === id).pop();
            if (!last || last.v !== v || last.s !== s) window.__rowLog.push({ id, v, s, at: Date.now() });
          }
        };
        new MutationObserver(read).observe(document.querySelector('#main'),
          { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow', 'data-state'] });
      });
      const wf = await submit(fixture.server, 'alice', workflow(`polling-${variant}`, [sleepJob('one', JOB_S), sleepJob('two', JOB_S)]));
      const id = String(wfId(wf));
      const submittedAt = Date.now();
      sw.mark(`submitted ${id}`);
      const rowSel = `tr.wf-row[data-wf-id="${id}"]`;
      await page.waitForSelector(rowSel, { timeout: 15000 });
      const rowAfterMs = Date.now() - submittedAt;
      sw.mark(`row shown after ${(rowAfterMs / 1000).toFixed(1)}s`);
      await waitForAttr(page, `${rowSel} .wf-state`, 'data-state', (v) => v === 'succeeded', JOB_S * 2000 + 60000,
        `${rowSel} .wf-state[data-state="succeeded"]`);
      sw.mark('list: succeeded');
      await sleep(300);
      const rowLog = (await page.evaluate(() => window.__rowLog)).filter((x) => x.id === id);
      const values = rowLog.map((x) => Number(x.v)).filter((v) => Number.isFinite(v));
      const states = rowLog.map((x) => x.s).filter((s, i, a) => i === 0 || a[i - 1] !== s);
      t.diagnostic(`list row ${id}: progress ${rowLog.map((x) => `${x.v}@${((x.at - submittedAt) / 1000).toFixed(1)}s`).join(' ')}; states ${states.join(' -> ')}`);
      assert.equal(Number(await attrOf(page, `${rowSel} .wf-progress`, 'aria-valuenow')), 100, 'the row ends at 100%');
      assert.ok(values.some((v) => v > 0 && v < 100), `the row's .wf-progress moved through a value between 0 and 100: ${values}`);
      assert.ok(values.every((v, i) => i === 0 || v >= values[i - 1]), `the row's progress never went back: ${values}`);
      await nr.check('the list while polling');
      const api = await getWf(fixture.server, 'alice', id);
      assert.equal(api.state, 'succeeded');
      const [one, two] = ['one', 'two'].map((j) => jobsOf(api).find((x) => x.job_id === j));
      assert.ok(Date.parse(two.started_at) >= Date.parse(one.finished_at) - 1000,
        `the two jobs ran one after the other: ${JSON.stringify([one, two]).slice(0, 600)}`);
      await shot(page, shotName);
      const junk = await junkText(page);
      soft.ok(junk.length === 0, `the list shows programming leftovers: ${junk.join(' | ')}`);
      const alerts = await visibleAlerts(page);
      soft.ok(alerts.length === 0, `the list shows an error while polling: ${JSON.stringify(alerts)}`);

      // --- the workflow page, still without a reload.
      await gotoHash(page, `#/workflows/${id}`);
      await page.waitForSelector(`#wf-view[data-wf-id="${id}"]`, { timeout: 30000 });
      await waitForAttr(page, '#wf-view', 'data-state', (v) => v === 'succeeded', 30000, '#wf-view[data-state="succeeded"]');
      const rows = await page.locator('tr.job-row').evaluateAll((trs) => trs.map((tr) => ({
        id: tr.getAttribute('data-job-id'),
        state: tr.querySelector('.job-state')?.getAttribute('data-state') ?? null,
      })));
      assert.deepEqual(rows.map((r) => r.id).sort(), ['one', 'two'], `one tr.job-row per job: ${JSON.stringify(rows)}`);
      for (const r of rows) assert.equal(r.state, 'succeeded', `tr.job-row[data-job-id=${r.id}] .job-state is succeeded`);
      assert.equal(Number(await attrOf(page, '#wf-progress', 'aria-valuenow')), 100);
      assert.equal(await attrOf(page, '#conn', 'data-state'), 'polling', '#conn still says polling on the workflow page');
      await shot(page, `${shotName}-workflow`);
      sw.mark('workflow page');

      // --- it keeps polling, and tries the WebSocket again after a while
      // without leaving "polling".
      const retryBy = pollingAt + WS_RETRY_MS + 8000;
      await waitFor(async () => (await page.evaluate(() => window.__wsAttempts.length)) > attemptsBefore,
        Math.max(1000, retryBy - Date.now()), { what: `another WebSocket attempt ~${WS_RETRY_MS / 1000} s after polling began`, interval: 250 });
      const retriedAt = (await page.evaluate(() => window.__wsAttempts)).slice(attemptsBefore)[0].at;
      sw.mark(`WebSocket retried ${((retriedAt - pollingAt) / 1000).toFixed(1)}s after polling began`);
      await waitFor(() => polls.some((p) => p.at > retriedAt + 500), 20000, { what: 'a poll after the WebSocket retry', interval: 250 });
      await sleep(1000);
      const connLog = await page.evaluate(() => window.__connLog);
      const afterPolling = connLog.slice(connLog.findIndex((x) => x.s === 'polling'));
      t.diagnostic(`#conn: ${connLog.map((x) => `${x.s}@${((x.at - signedInAt) / 1000).toFixed(1)}s`).join(' -> ')}`);
      assert.deepEqual(afterPolling.map((x) => x.s), ['polling'],
        `#conn stays "polling" once polling (also while the WebSocket is tried again): ${JSON.stringify(afterPolling)}`);
      assert.ok(!connLog.some((x) => x.s === 'live'), '#conn never says live');
      assert.equal(await attrOf(page, '#conn', 'data-state'), 'polling');
      assert.match((await textOf(page, '#conn .conn-text')).trim(), /^Polling$/);

      // --- the polling requests themselves.
      const sinces = polls.map((p) => p.since);
      t.diagnostic(`${polls.length} GET /api/events: since ${sinces.join(' ')}; WebSocket attempts ${(await page.evaluate(() => window.__wsAttempts.length))}; intervals ${polls.slice(1).map((p, i) => ((p.at - polls[i].at) / 1000).toFixed(1)).join(' ')} s`);
      assert.ok(polls.length >= 5, `the page polled GET /api/events?since= repeatedly: ${polls.length}`);
      assert.ok(sinces.every((s) => Number.isInteger(s) && s >= 0), `every poll names since=<integer>: ${sinces}`);
      assert.ok(sinces.every((s, i) => i === 0 || s >= sinces[i - 1]), `since never decreases: ${sinces}`);
      const all = await fixture.server.api('alice', 'GET', '/api/events?since=0');
      assert.equal(all.status, 200);
      const mine = (all.json.events || []).filter((e) => String(e.workflow_id) === id);
      const lastSeq = Math.max(...mine.map((e) => e.seq));
      assert.ok(sinces[sinces.length - 1] >= lastSeq,
        `the last poll asks for events after the workflow's last one (seq ${lastSeq}): since ${sinces[sinces.length - 1]}`);
      assert.ok(sinces[0] < Math.min(...mine.map((e) => e.seq)), 'the first polls predate the workflow');
      assert.equal(wsRequests.length, 0, `no WebSocket reached the network: ${wsRequests}`);
      await nr.check('the page across the whole test');
      soft.ok((await visibleAlerts(page)).length === 0, 'no error shown at the end');
      t.diagnostic(`timings: ${sw}`);
      soft.done();
    });
}
