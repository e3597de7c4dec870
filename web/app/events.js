// events.js - the live event stream (GET /api/events over WebSocket).
//
// The page shows a snapshot read over HTTP, then applies events with a
// higher seq. Reconnects resume with ?since=<last seq seen>, so nothing is
// missed across a dropped connection or a restarted server; after each
// reconnect the views also re-read their snapshot (onResync), which covers
// anything the event log no longer holds. When WebSockets fail but HTTP
// works (a proxy that does not pass upgrades), the page polls
// GET /api/events?since= every few seconds instead and keeps trying the
// WebSocket now and then. A since the service refuses as beyond its newest
// event (its database was restored or replaced) starts over from the newest
// seq it names, with a resync. The connection state drives the indicator:
//   live        WebSocket open
//   connecting  trying to (re)connect
//   polling     WebSocket unavailable, events fetched over HTTP
//   offline     neither answers; still retrying

import { api } from './api.js';

const POLL_MS = 2000;
const WS_RETRY_WHILE_POLLING_MS = 30000;
const MAX_BACKOFF_MS = 8000;

export class LiveEvents {
  constructor({ onEvent, onResync, onState }) {
    this.onEvent = onEvent;
    this.onResync = onResync;
    this.onState = onState;
    this.since = 0;
    this.ws = null;
    this.failures = 0;
    this.timer = null;
    this.stopped = true;
    this.state = null;
    this.everOpened = false;
  }

  start(since) {
    this.stop();
    this.stopped = false;
    this.since = Math.max(this.since, since || 0);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.failures = 0;
    this.state = null; // the next start() begins at "connecting"
    this.everOpened = false;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
  }

  /** A snapshot read at seq: later events are still wanted, earlier ones not. */
  advance(seq) { if (seq > this.since) this.since = seq; }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  connect() {
    if (this.stopped) return;
    if (this.state !== 'polling') this.setState('connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/api/events?since=${this.since}`);
    } catch {
      this.failed();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      const wasBroken = this.everOpened || this.failures > 0 || this.state === 'polling';
      this.everOpened = true;
      this.failures = 0;
      clearTimeout(this.timer);
      this.setState('live');
      if (wasBroken) this.onResync();
    };
    ws.onmessage = (msg) => {
      let ev;
      try { ev = JSON.parse(msg.data); } catch { return; }
      this.deliver(ev);
    };
    ws.onclose = () => {
      this.ws = null;
      if (this.stopped) return;
      if (opened) this.failures = 0;
      this.failed();
    };
  }

  deliver(ev) {
    if (typeof ev.seq !== 'number' || ev.seq <= this.since) return;
    this.since = ev.seq;
    this.onEvent(ev);
  }

  // The WebSocket closed or never opened: retry with backoff; after three
  // failures in a row find out whether HTTP still works (then poll).
  async failed() {
    this.failures++;
    if (this.failures >= 3) {
      const httpWorks = await this.pollOnce();
      if (this.stopped) return;
      if (httpWorks === 'reset') {
        this.failures = 0;
        this.connect();
        return;
      }
      if (httpWorks) {
        this.setState('polling');
        this.schedule(() => this.pollLoop(Date.now()), POLL_MS);
        return;
      }
      this.setState('offline');
    } else if (this.state !== 'polling') {
      this.setState('connecting');
    }
    const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** (this.failures - 1));
    this.schedule(() => this.connect(), backoff * (0.75 + Math.random() * 0.5));
  }

  // One round of polling: true when HTTP works, false when it does not,
  // 'reset' when the service refused since as beyond its newest event (the
  // WebSocket is refused the same way): since becomes that newest seq and
  // the views re-read their snapshot.
  async pollOnce() {
    try {
      for (let page = 0; page < 20; page++) {
        const res = await api.eventsSince(this.since);
        for (const ev of res.events || []) this.deliver(ev);
        if (!res.events || res.events.length < 1000) break;
      }
      return true;
    } catch (e) {
      const newest = e.status === 400 && e.field === 'since' ? e.details?.last_seq : undefined;
      if (!Number.isInteger(newest) || newest >= this.since) return false;
      this.since = newest;
      this.onResync();
      return 'reset';
    }
  }

  async pollLoop(startedAt) {
    if (this.stopped) return;
    if (Date.now() - startedAt > WS_RETRY_WHILE_POLLING_MS) {
      this.failures = 0;
      this.connect(); // try the WebSocket again; failed() comes back here
      return;
    }
    const ok = await this.pollOnce();
    if (this.stopped) return;
    if (ok === 'reset') {
      this.failures = 0;
      this.connect();
      return;
    }
    if (!ok) {
      this.failed();
      return;
    }
    this.setState('polling');
    this.schedule(() => this.pollLoop(startedAt), POLL_MS);
  }

  schedule(fn, ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(fn, ms);
  }
}
