// restore.test.mjs - the service's database is restored from an earlier
// backup under an open page: the page held a since (the newest event it saw)
// that the restored event log never reached. It must notice (the service
// refuses such a since with the newest seq), start over from there with a
// fresh snapshot, and show what happens next live, without a reload.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { submit, noop, workflow, wfId, healthy } from '../service/harness.mjs';
import {
  browserTest, fileServer, signIn, noReload, shot, allowErrors, NETWORK_ERROR, startOnSamePort,
  waitForAttr, stopwatch,
} from './browser.mjs';

const fixture = fileServer({ workers: 2, concurrencyLimit: 2 });

/** The database files of a stopped service (tessera.db and its WAL). */
function dbFiles(server) {
  return fs.readdirSync(server.stateDir).filter((f) => /^tessera\.db(-wal|-shm)?$/.test(f));
}

browserTest('the database is restored from a backup under an open page', { timeout: 300000 }, async (b, t) => {
  const sw = stopwatch();
  const server = fixture.server;
  const port = server.port;
  const { page } = await b.newUser('alice', server);
  const first = await submit(server, 'alice', workflow('before-backup', [noop('a')]));

  // --- the backup: the database as it is now, taken while stopped.
  await server.stop();
  const backup = fs.mkdtempSync(path.join(server.tmpDir, 'backup-'));
  for (const f of dbFiles(server)) fs.copyFileSync(path.join(server.stateDir, f), path.join(backup, f));
  await startOnSamePort(server, port);
  await page.goto('/');
  await signIn(page, 'alice');
  await page.waitForSelector(`table#wf-list tr.wf-row[data-wf-id="${wfId(first)}"]`, { timeout: 30000 });
  const nr = await noReload(page);
  await waitForAttr(page, '#conn', 'data-state', (v) => v === 'live', 30000, '#conn live');

  // --- events the backup does not have, seen live by the page.
  const lost = [];
  for (let i = 0; i < 6; i++) lost.push(await submit(server, 'alice', workflow(`after-backup-${i}`, [noop('a'), noop('b')])));
  const lastLost = `table#wf-list tr.wf-row[data-wf-id="${wfId(lost[lost.length - 1])}"]`;
  await page.waitForSelector(lastLost, { timeout: 30000 });
  sw.mark('page saw the workflows the backup lacks');

  // --- the restore: kill, put the backup back, start on the same port.
  const stopAllowing = allowErrors(page, NETWORK_ERROR, 'the service is down and restored');
  const stopAllowing400 = allowErrors(page,
    (e) => /status of 400/.test(e.text) && /\/api\/events\?since=/.test(`${e.url || ''} ${e.text}`),
    'the old since, refused by the restored service');
  try {
    await server.kill9();
    for (const f of dbFiles(server)) fs.rmSync(path.join(server.stateDir, f));
    for (const f of fs.readdirSync(backup)) fs.copyFileSync(path.join(backup, f), path.join(server.stateDir, f));
    await startOnSamePort(server, port);
    assert.ok(await healthy(server));
    sw.mark('restored');
    // the snapshot the page reads again no longer has the lost workflows
    await page.waitForSelector(lastLost, { state: 'detached', timeout: 60000 });
    await waitForAttr(page, '#conn', 'data-state', (v) => v === 'live', 60000, '#conn live after the restore');
    sw.mark('resynced and live');
    // --- what happens now shows up live (its events' seqs are below the
    // page's old since: a page that kept it would drop them)
    const next = await submit(server, 'alice', workflow('after-restore', [noop('a')]));
    // (ids start over too: the row is found by id and name)
    await page.locator(`table#wf-list tr.wf-row[data-wf-id="${wfId(next)}"]`, { hasText: 'after-restore' })
      .waitFor({ timeout: 30000 });
    sw.mark('new workflow shown live');
  } finally {
    stopAllowing();
    stopAllowing400();
  }
  await nr.check('the list across the restore');
  await shot(page, 'restore-after');
  t.diagnostic(String(sw));
});
