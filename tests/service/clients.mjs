// clients.mjs - the service tests' clients of a running `tessera serve`:
// one HTTP request per connection (httpRequest, with identityHeaders for
// whoever makes it), raw HTTP/1.1 exchanges for requests node's client
// would refuse to send (rawRequest), a WebSocket client of GET /api/events
// that collects every event (EventClient), and waitFor, the condition poll
// the clients and the tests wait with. harness.mjs re-exports all of them,
// so tests import them from there as before.

import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

// ---------------------------------------------------------------- HTTP

/**
 * One HTTP request on a new connection (so that, with several HTTP workers,
 * requests spread over them and cross-worker consistency is exercised).
 * Returns {status, headers, text, json, body}. json is undefined when the
 * body is not JSON.
 */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const hdrs = {};
    for (const [k, v] of Object.entries(headers)) if (v !== undefined && v !== null) hdrs[k] = v;
    let payload = null;
    if (body !== undefined && body !== null) {
      payload = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
      hdrs['Content-Length'] = String(payload.length);
    }
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: hdrs,
      agent: false, setHost: true,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        let json;
        try { json = text.length ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json, body: buf });
      });
      res.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    if (payload) req.write(payload);
    req.end();
  });
}

/** Headers that carry an identity: a user name (X-User-ID, header mode),
 *  {cookie}, {token}, {headers}, or null for none. */
export function identityHeaders(who) {
  if (who === null || who === undefined) return {};
  if (typeof who === 'string') return { 'X-User-ID': who };
  const h = {};
  if (who.user) h['X-User-ID'] = who.user;
  if (who.cookie) h.Cookie = who.cookie.includes('=') ? who.cookie : `tessera_session=${who.cookie}`;
  if (who.token) h.Authorization = `Bearer ${who.token}`;
  Object.assign(h, who.headers || {});
  return h;
}

/**
 * A raw HTTP/1.1 exchange over one TCP connection: writes head and body
 * (errors while writing, e.g. EPIPE after an early 413, are ignored) and
 * parses whatever answer comes back. For oversized and malformed requests
 * that node's http client would refuse to send or abort on.
 */
export function rawRequest(port, head, body = Buffer.alloc(0), { timeoutMs = 20000, chunkSize = 16384 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const chunks = [];
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const buf = Buffer.concat(chunks);
      const parsed = parseRawResponse(buf);
      if (parsed) resolve(parsed);
      else reject(err || new Error(`no HTTP answer (got ${buf.length} bytes: ${JSON.stringify(buf.toString('latin1').slice(0, 200))})`));
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    sock.on('data', (c) => {
      chunks.push(c);
      const p = parseRawResponse(Buffer.concat(chunks));
      if (p && p.complete) finish();
    });
    sock.on('error', () => { /* EPIPE/ECONNRESET: keep what was read */ setTimeout(() => finish(), 200); });
    sock.on('close', () => finish());
    sock.on('connect', async () => {
      // The body goes in small pieces, each after the previous one was taken
      // by the kernel and after pending input was read: a server that answers
      // early (413) and closes would otherwise make node destroy the socket
      // on EPIPE before its answer was read.
      try {
        await new Promise((r) => sock.write(Buffer.isBuffer(head) ? head : Buffer.from(head, 'latin1'), r));
        for (let off = 0; off < body.length && !done && !sock.destroyed && !chunks.length; off += chunkSize) {
          await new Promise((r) => sock.write(body.subarray(off, off + chunkSize), r));
          await sleep(1);
        }
      } catch { /* the server may close early */ }
    });
  });
}

function parseRawResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const headText = buf.subarray(0, end).toString('latin1');
  const lines = headText.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return null;
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let bodyBuf = buf.subarray(end + 4);
  let complete = false;
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    complete = bodyBuf.length >= n;
    bodyBuf = bodyBuf.subarray(0, n);
  } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const dec = decodeChunked(bodyBuf);
    if (dec) { bodyBuf = dec; complete = true; }
  }
  const text = bodyBuf.toString('utf8');
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: Number(m[1]), headers, text, json, complete };
}

function decodeChunked(buf) {
  const out = [];
  let off = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', off);
    if (eol < 0) return null;
    const n = parseInt(buf.subarray(off, eol).toString('latin1'), 16);
    if (Number.isNaN(n)) return null;
    if (n === 0) return Buffer.concat(out);
    if (buf.length < eol + 2 + n + 2) return null;
    out.push(buf.subarray(eol + 2, eol + 2 + n));
    off = eol + 2 + n + 2;
  }
}

// ---------------------------------------------------------------- WebSocket

/**
 * A WebSocket client of GET /api/events that collects every event.
 *   events     parsed event objects, in arrival order
 *   arrivals   performance.now() of each event's arrival
 *   closed     {code, reason} once closed
 *   rejected   {status, json, text} when the upgrade was refused
 */
export class EventClient {
  constructor(url, headers = {}, { maxPayload = 64 * 1024 * 1024 } = {}) {
    this.url = url;
    this.events = [];
    this.arrivals = [];
    this.nonJson = [];
    this.closed = null;
    this.rejected = null;
    this.error = null;
    this.listeners = new Set();
    this.ws = new WebSocket(url, { headers, maxPayload, handshakeTimeout: 10000 });
    this.opened = new Promise((resolve, reject) => {
      this.ws.on('open', () => resolve(this));
      this.ws.on('unexpected-response', (req, res) => {
        const sock = res.socket || req.socket;
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try { json = JSON.parse(text); } catch { json = undefined; }
          this.rejected = { status: res.statusCode, headers: res.headers, text, json };
          this.closed = this.closed || { code: -1, reason: 'upgrade refused' };
          // Close the connection itself: after a complete answer node would
          // otherwise keep it open (idle keep-alive).
          sock?.destroy();
          req.destroy();
          reject(Object.assign(new Error(`WebSocket upgrade refused: ${res.statusCode} ${text.slice(0, 200)}`), { rejected: this.rejected }));
        });
      });
      this.ws.on('error', (e) => { this.error = e; reject(e); });
      this.ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString() };
        reject(new Error(`WebSocket closed before opening: ${code}`));
      });
    });
    this.opened.catch(() => {});
    this.ws.on('message', (data, isBinary) => {
      const t = performance.now();
      const text = isBinary ? null : data.toString('utf8');
      let ev;
      try { ev = JSON.parse(text); } catch { this.nonJson.push(text); return; }
      this.events.push(ev);
      this.arrivals.push(t);
      for (const l of this.listeners) l(ev, t);
    });
  }

  get lastSeq() {
    return this.events.length ? this.events[this.events.length - 1].seq : 0;
  }

  onEvent(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  /** Resolves when fn(events) is truthy. */
  waitFor(fn, timeoutMs = 10000, what = 'events') {
    return waitFor(() => fn(this.events), timeoutMs, { what: `${what} on ${this.url}`, interval: 20 });
  }

  /** Resolves {code, reason} once the connection is closed. */
  async waitClosed(timeoutMs = 10000) {
    await waitFor(() => this.closed, timeoutMs, { what: `close of ${this.url}`, interval: 20 });
    return this.closed;
  }

  send(data) { return new Promise((resolve) => this.ws.send(data, (err) => resolve(err || null))); }
  pause() { this.ws.pause(); }
  resume() { this.ws.resume(); }
  close(code = 1000) { try { this.ws.close(code); } catch { /* already */ } }
  terminate() { try { this.ws.terminate(); } catch { /* already */ } }
}

// ---------------------------------------------------------------- waiting

/** Polls predicate (may be async) until it returns a truthy value, which is
 *  returned; throws after timeoutMs. */
export async function waitFor(predicate, timeoutMs = 10000, { interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await predicate();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (lastErr ? ` (last error: ${lastErr.message})` : ''));
    }
    await sleep(interval);
  }
}
