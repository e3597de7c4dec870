// ws_submit_worker.mjs - the submitting side of ws_latency.mjs, on a thread
// of its own (worker_threads), started once per bench run: for each
// request {url, users, workflows} it POSTs the workflows one after the
// other and reports each {id, user}, then {done}. Apart, so that the thread
// whose WebSocket clients time the events is not also building, sending and
// parsing HTTP requests when an event arrives: a listener (a browser tab)
// does not submit, and on 2 cores the submit loop in the same event loop
// added its own milliseconds to the measured tail.
import { parentPort } from 'node:worker_threads';

parentPort.on('message', async ({ url, users, workflows }) => {
  try {
    for (let i = 0; i < workflows; i++) {
      const user = `user${i % users}`;
      const body = { name: `bench ${i}`, jobs: [{ job_id: 'a', job_type: 'noop' }, { job_id: 'b', job_type: 'noop', depends_on: ['a'] }] };
      const r = await fetch(url + '/api/workflows', { method: 'POST', headers: { 'X-User-ID': user, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      if (r.status !== 201) throw new Error(`submit: HTTP ${r.status}`);
      parentPort.postMessage({ user, id: (await r.json()).id });
    }
    parentPort.postMessage({ done: true });
  } catch (e) {
    parentPort.postMessage({ error: String(e) });
  }
});
