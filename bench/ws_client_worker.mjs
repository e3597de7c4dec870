// ws_client_worker.mjs - a thread of WebSocket clients for ws_latency.mjs
// (its CLIENT_THREADS): one ClientSet (ws_clients.mjs) per phase, driven by
// requests {open: {url, users, lastSeq}}, {measure: lastOld} and {close},
// each answered with {ok, ...}; workflow.finished events are passed on at
// once as {finished: id}, for the bench's wait.
import { parentPort } from 'node:worker_threads';
import { ClientSet } from './ws_clients.mjs';

let set = null;
parentPort.on('message', async (m) => {
  try {
    if (m.open) {
      set = new ClientSet(m.open.url, (id) => parentPort.postMessage({ finished: id }));
      await set.open(m.open.users, m.open.lastSeq);
      parentPort.postMessage({ ok: true });
    } else if (m.measure !== undefined) {
      set.measure(m.measure);
      parentPort.postMessage({ ok: true });
    } else if (m.close) {
      const r = await set.close();
      set = null;
      parentPort.postMessage({ ok: true, ...r });
    }
  } catch (e) {
    parentPort.postMessage({ error: String(e) });
  }
});
