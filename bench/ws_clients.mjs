// ws_clients.mjs - the WebSocket clients that time events for
// ws_latency.mjs: one ClientSet per thread, in the bench's main thread or in
// a worker thread of its own (ws_client_worker.mjs), so that the clients'
// own handling of the messages can be spread over threads.
//
// A client resumes from the newest seq a client of its user has seen (the
// stream's own reconnect rule), so that what it is sent is live: with
// since=0, rounds of thousands of clients replayed the growing history, and
// replayed events still in flight were timed as if they were late. Only the
// events of the phase's own workflows (ids above every earlier one) are
// timed; which user got which workflow's events is kept, so that the bench
// can check every message against its owner.
import WebSocket from 'ws';

export class ClientSet {
  /** onFinished(workflowId): a workflow.finished event arrived. */
  constructor(url, onFinished) {
    this.url = url.replace('http', 'ws');
    this.onFinished = onFinished;
    this.sockets = [];
    this.latencies = []; // ms, event recorded -> received, while measuring
    this.seen = [];      // [user, workflow_id] of each timed event
    this.pairs = new Map(); // "user\tworkflow_id" -> how many events not timed
    this.lastSeq = new Map();
    this.lastOld = Infinity; // nothing is timed until measure()
  }

  /** Opens one client per entry of users (200 at a time), each from its
   * user's newest seq in lastSeq (a Map). */
  async open(users, lastSeq) {
    this.lastSeq = new Map(lastSeq);
    for (let i = 0; i < users.length; i += 200) {
      this.sockets.push(...(await Promise.all(users.slice(i, i + 200).map((u) => this.connect(u)))));
    }
  }

  connect(user) {
    const since = this.lastSeq.get(user) || 0;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.url}/api/events?since=${since}`, { headers: { 'X-User-ID': user } });
      ws.on('open', () => resolve(ws));
      ws.on('error', reject);
      ws.on('message', (data) => {
        const now = Date.now();
        const ev = JSON.parse(data);
        if (ev.seq > (this.lastSeq.get(user) || 0)) this.lastSeq.set(user, ev.seq);
        if (ev.type === 'workflow.finished') this.onFinished(ev.workflow_id);
        if (ev.workflow_id <= this.lastOld) {
          const key = `${user}\t${ev.workflow_id}`;
          this.pairs.set(key, (this.pairs.get(key) || 0) + 1);
          return;
        }
        this.latencies.push(now - Date.parse(ev.ts));
        this.seen.push([user, ev.workflow_id]);
      });
    });
  }

  /** From now on, events of workflows above lastOld are timed. */
  measure(lastOld) {
    this.lastOld = lastOld;
  }

  /** Closes every client (at most 5 s each); resolves to what was seen. */
  async close() {
    await Promise.all(this.sockets.map((ws) => new Promise((res) => {
      ws.on('close', res);
      ws.close();
      setTimeout(res, 5000);
    })));
    this.sockets = [];
    return { latencies: this.latencies, seen: this.seen, pairs: [...this.pairs], lastSeq: [...this.lastSeq] };
  }
}
