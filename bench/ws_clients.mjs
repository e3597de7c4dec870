// ws_clients.mjs - the WebSocket clients of bench/ws_latency.mjs, in a
// worker thread of their own: a client that shares its event loop with the
// bench's submissions and polls reads an event only when that loop comes
// round to it, and so measured the load generator as much as the service
// (a browser tab showing a workflow does nothing else). The main thread
// sends {connect: {url, users, since}} (one client per entry of users,
// resuming each from since[user]), then {measure: true}, then {stop: true};
// the worker answers {connected: n}, and at stop {events: [[user,
// workflow_id, seq, latency_ms], ...], live: [[user, workflow_id, seq], ...]}
// where events are those received while measuring and live every one
// received at all (for the owner check and the next phase's since).
// Latency: the worker's clock (sub-millisecond) minus the event's ts.
import { parentPort } from 'node:worker_threads';
import WebSocket from 'ws';

const sockets = [];
let measuring = false;
const events = [], seen = [];

function open(url, user, since) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace('http', 'ws') + `/api/events?since=${since}`, { headers: { 'X-User-ID': user } });
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
    ws.on('message', (data) => {
      const now = performance.timeOrigin + performance.now();
      const ev = JSON.parse(data);
      seen.push([user, ev.workflow_id, ev.seq]);
      if (measuring) events.push([user, ev.workflow_id, ev.seq, now - Date.parse(ev.ts)]);
    });
  });
}

parentPort.on('message', async (msg) => {
  if (msg.connect) {
    const { url, users, since } = msg.connect;
    for (let i = 0; i < users.length; i += 200) {
      const batch = users.slice(i, i + 200).map((u) => open(url, u, since[u] || 0));
      sockets.push(...(await Promise.all(batch)));
    }
    parentPort.postMessage({ connected: sockets.length });
  } else if (msg.measure) {
    measuring = true;
  } else if (msg.stop) {
    measuring = false;
    await Promise.all(sockets.map((ws) => new Promise((res) => {
      ws.on('close', res);
      ws.close();
      setTimeout(res, 5000);
    })));
    parentPort.postMessage({ events, live: seen });
  }
});
