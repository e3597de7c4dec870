// admin.test.mjs - issue 18, item 5: GET /api/admin/overview, the figures
// of the web UI's operations page. Administrators (`tessera user add NAME
// --admin`: their token, or a browser session made from it) read it; any
// other caller signed in gets exactly the 404 of a path that does not exist,
// a header-mode identity never counts as an administrator, and nobody
// signed in gets 401 as on every other API route.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, runCli, submit, wfId, waitFinal, waitFor, noop, workflow, createPgDatabase, dropPgDatabase,
} from './harness.mjs';

const PG = process.env.TESSERA_TEST_PG_URL;

let server;
let rootToken;
let aliceToken;

function addUser(name, admin) {
  const r = runCli(['user', 'add', name, ...(admin ? ['--admin'] : [])], { env: server.cliEnv(), cwd: server.tmpDir });
  assert.equal(r.status, 0, `user add ${name}: ${r.stderr}`);
  const token = r.stdout.match(/\b[0-9a-f]{64}\b/);
  assert.ok(token, `a token in: ${r.stdout}`);
  return token[0];
}

/** The session cookie made from a token ("tessera_session=..."). */
async function signIn(token) {
  const r = await server.api(null, 'POST', '/api/session', { token });
  assert.equal(r.status, 200, `sign-in: ${r.status} ${r.text}`);
  const c = [].concat(r.headers['set-cookie'] || []).map((h) => h.split(';')[0]).find((h) => h.startsWith('tessera_session='));
  assert.ok(c, 'a session cookie');
  return { cookie: c, json: r.json };
}

before(async () => {
  server = await startServer({ workers: 2, auth: 'token', concurrencyLimit: 3, maxActiveUsers: 2 });
  rootToken = addUser('root', true);
  aliceToken = addUser('alice', false);
}, { timeout: 60000 });

after(async () => {
  if (server) await server.cleanup();
}, { timeout: 30000 });

describe('/api/admin/overview', () => {
  test('an administrator reads the line, cpus, jobs, HTTP, store, leader and instance', { timeout: 90000 }, async () => {
    const id = wfId(await submit(server, { token: aliceToken }, workflow('seen', [noop('a')])));
    assert.equal((await waitFinal(server, { token: aliceToken }, id, 60000)).state, 'succeeded');
    let o;
    await waitFor(async () => {
      const r = await server.api({ token: rootToken }, 'GET', '/api/admin/overview');
      assert.equal(r.status, 200, r.text);
      o = r.json;
      return o.jobs.some((t) => t.job_type === 'noop' && t.finished.succeeded >= 1) && o.leader && o.leader.up;
    }, 30000, { what: 'the noop counted on the leading instance' });
    assert.deepEqual(Object.keys(o.line).sort(), ['active_users', 'max_active_users', 'oldest_wait_s', 'queued_workflows', 'waiting_users']);
    assert.equal(o.line.max_active_users, 2);
    assert.deepEqual(o.cpus, { running: 0, free: 3, limit: 3, running_jobs: 0 });
    assert.ok(o.instance.name.endsWith(`:${server.port}`), o.instance.name);
    assert.equal(o.instance.leads, true, 'the only instance leads');
    assert.equal(o.instances.length, 1, JSON.stringify(o.instances));
    assert.equal(o.instances[0].name, o.instance.name);
    assert.equal(o.instances[0].self, true);
    assert.equal(o.instances[0].leads, true);
    assert.ok(o.leader.owner.startsWith(`${o.instance.name}:`), `the lease names the instance: ${o.leader.owner}`);
    assert.ok(o.leader.term >= 1);
    assert.equal(o.store.up, true);
    assert.ok(o.store.calls > 0);
    assert.ok(o.state_dir.free_bytes > 0 && o.state_dir.size_bytes >= o.state_dir.free_bytes);
    assert.ok(o.http.requests >= 2);
    const submitRoute = o.http.routes.find((r) => r.method === 'POST' && r.route === '/api/workflows');
    assert.ok(submitRoute && submitRoute.requests >= 1, 'the submit, by route template');
    const lat = o.http.latency;
    assert.equal(lat.le.length, lat.counts.length);
    assert.ok(lat.counts.every((c, i) => i === 0 || c >= lat.counts[i - 1]), 'cumulative buckets');
    assert.ok(lat.count >= lat.counts[lat.counts.length - 1]);
    const noopType = o.jobs.find((t) => t.job_type === 'noop');
    assert.equal(noopType.wait.count, 1);
    assert.equal(noopType.failures.exit_status, 0);
    assert.ok(!JSON.stringify(o).includes('alice'), 'no user in the figures');
    assert.ok(!JSON.stringify(o).includes(`/api/workflows/${id}`), 'no workflow id in the figures');
  });

  test('a session made from an admin token is an administrator\'s; the session says so', { timeout: 60000 }, async () => {
    const root = await signIn(rootToken);
    assert.equal(root.json.admin, true);
    assert.equal((await server.api({ cookie: root.cookie }, 'GET', '/api/admin/overview')).status, 200);
    const me = await server.api({ cookie: root.cookie }, 'GET', '/api/session');
    assert.equal(me.json.user, 'root');
    assert.equal(me.json.admin, true);
    const alice = await signIn(aliceToken);
    assert.equal(alice.json.admin, false);
    const meA = await server.api({ cookie: alice.cookie }, 'GET', '/api/session');
    assert.equal(meA.json.admin, false);
  });

  test('anyone else gets the 404 of a missing path; nobody signed in gets 401', { timeout: 60000 }, async () => {
    const missing = await server.api({ token: aliceToken }, 'GET', '/api/admin/nothing-here');
    const asAlice = await server.api({ token: aliceToken }, 'GET', '/api/admin/overview');
    assert.equal(missing.status, 404);
    assert.equal(asAlice.status, 404);
    assert.equal(asAlice.json.error.code, missing.json.error.code);
    assert.equal(asAlice.json.error.message, missing.json.error.message);
    const alice = await signIn(aliceToken);
    assert.equal((await server.api({ cookie: alice.cookie }, 'GET', '/api/admin/overview')).status, 404);
    assert.equal((await server.api(null, 'GET', '/api/admin/overview')).status, 401);
    // An admin's token replaced by a plain one: its sessions end, and the new
    // token is no administrator's.
    const root = await signIn(rootToken);
    const plain = addUser('root', false);
    assert.equal((await server.api({ cookie: root.cookie }, 'GET', '/api/admin/overview')).status, 401);
    assert.equal((await server.api({ token: plain }, 'GET', '/api/admin/overview')).status, 404);
    rootToken = addUser('root', true);
    assert.equal((await server.api({ token: rootToken }, 'GET', '/api/admin/overview')).status, 200);
  });
});

describe('header mode', () => {
  test('an asserted X-User-ID is never an administrator, whatever the users table says', { timeout: 60000 }, async () => {
    const h = await startServer({ workers: 1 });
    try {
      const r = runCli(['user', 'add', 'root', '--admin'], { env: h.cliEnv(), cwd: h.tmpDir });
      assert.equal(r.status, 0, r.stderr);
      assert.equal((await h.api('root', 'GET', '/api/admin/overview')).status, 404);
      const s = await h.api(null, 'POST', '/api/session', { user: 'root' });
      assert.equal(s.json.admin, false);
      const c = [].concat(s.headers['set-cookie']).map((x) => x.split(';')[0]).find((x) => x.startsWith('tessera_session='));
      assert.equal((await h.api({ cookie: c }, 'GET', '/api/admin/overview')).status, 404);
    } finally {
      await h.cleanup();
    }
  });
});

describe('several instances on PostgreSQL', () => {
  test('every instance using the database is listed, the leader marked; a stopped one drops out', { skip: PG ? false : 'TESSERA_TEST_PG_URL is not set', timeout: 120000 }, async () => {
    const db = createPgDatabase();
    const a = await startServer({ workers: 1, auth: 'token', db });
    const b = await startServer({ workers: 1, auth: 'token', db });
    try {
      const r = runCli(['user', 'add', 'root', '--admin'], { env: a.cliEnv(), cwd: a.tmpDir });
      assert.equal(r.status, 0, r.stderr);
      const token = r.stdout.match(/\b[0-9a-f]{64}\b/)[0];
      const read = async (s) => {
        const res = await s.api({ token }, 'GET', '/api/admin/overview');
        assert.equal(res.status, 200, res.text);
        return res.json;
      };
      let o;
      await waitFor(async () => {
        o = await read(b);
        return o.instances.length === 2 && o.instances.some((x) => x.leads);
      }, 30000, { what: 'both instances listed, one leading' });
      const names = o.instances.map((x) => x.name).sort();
      assert.ok(names.some((n) => n.endsWith(`:${a.port}`)) && names.some((n) => n.endsWith(`:${b.port}`)), names.join(' '));
      assert.equal(o.instances.filter((x) => x.self).length, 1);
      assert.ok(o.instances.find((x) => x.self).name.endsWith(`:${b.port}`), 'B marks itself');
      assert.equal(o.instances.filter((x) => x.leads).length, 1, 'one leader');
      assert.ok(o.instances.every((x) => x.connections >= 1 && x.since > 0));
      // Both answer the same list.
      const fromA = (await read(a)).instances.map((x) => x.name).sort();
      assert.deepEqual(fromA, names);
      await b.stop();
      await waitFor(async () => (await read(a)).instances.length === 1, 30000, { what: 'B gone from the list' });
      o = await read(a);
      assert.ok(o.instances[0].name.endsWith(`:${a.port}`));
    } finally {
      await a.cleanup();
      await b.cleanup();
      dropPgDatabase(db);
    }
  });
});
