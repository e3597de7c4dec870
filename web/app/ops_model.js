// ops_model.js - the arithmetic of the operations page (views/ops.js), pure
// so it is tested in Node (tests/web/ops_model.test.mjs): what happened
// between two reads of GET /api/admin/overview, quantiles of histograms as
// Prometheus's histogram_quantile computes them, a bounded history per
// figure, and the SVG path of a small chart.

/** Counter difference; a counter that went down was reset (the instance
 *  restarted): then everything since the reset is the current value. */
export function counterDelta(prev, cur) {
  if (prev === undefined || prev === null) return 0;
  return cur >= prev ? cur - prev : cur;
}

/** The observations between two snapshots of one histogram
 *  ({le, counts (cumulative), count, sum}); prev may be null (everything so
 *  far). A reset (count went down) gives cur itself. */
export function histDelta(prev, cur) {
  if (!cur) return null;
  if (!prev || cur.count < prev.count || prev.le.length !== cur.le.length) return cur;
  return {
    le: cur.le,
    counts: cur.counts.map((c, i) => c - prev.counts[i]),
    count: cur.count - prev.count,
    sum: cur.sum - prev.sum,
  };
}

/** Adds histograms of one bucket layout (e.g. every job type's wait). */
export function histSum(list) {
  const hs = list.filter(Boolean);
  if (!hs.length) return null;
  const out = { le: hs[0].le, counts: hs[0].le.map(() => 0), count: 0, sum: 0 };
  for (const h of hs) {
    if (h.le.length !== out.le.length) continue;
    h.counts.forEach((c, i) => { out.counts[i] += c; });
    out.count += h.count;
    out.sum += h.sum;
  }
  return out;
}

/**
 * The q-quantile (0..1) of a histogram, interpolating linearly inside the
 * bucket that holds it, from 0 for the first bucket; in the +Inf bucket the
 * highest finite bound. null when there are no observations.
 */
export function quantile(h, q) {
  if (!h || !(h.count > 0)) return null;
  const rank = q * h.count;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < h.le.length; i++) {
    if (h.counts[i] >= rank) {
      const inBucket = h.counts[i] - below;
      if (inBucket <= 0) return h.le[i];
      return lower + (h.le[i] - lower) * ((rank - below) / inBucket);
    }
    lower = h.le[i];
    below = h.counts[i];
  }
  return h.le.length ? h.le[h.le.length - 1] : null;
}

/** Sum of an object's numeric values ({succeeded: 3, failed: 1} -> 4). */
const sumValues = (o) => Object.values(o || {}).reduce((a, v) => a + (Number(v) || 0), 0);

/**
 * The figures of one interval between two snapshots (prev may be null: the
 * first read, then rates are null). Rates are per minute; latencies seconds.
 */
export function interval(prev, cur) {
  const dt = prev ? cur.time - prev.time : 0;
  const perMin = (d) => (dt > 0 ? (d * 60) / dt : null);
  const types = new Map((prev ? prev.jobs : []).map((t) => [t.job_type, t]));
  let finished = 0;
  let failures = 0;
  const waits = [];
  const runs = [];
  for (const t of cur.jobs) {
    const p = types.get(t.job_type);
    finished += counterDelta(p ? sumValues(p.finished) : (prev ? 0 : null), sumValues(t.finished));
    failures += counterDelta(p ? sumValues(p.failures) : (prev ? 0 : null), sumValues(t.failures));
    waits.push(histDelta(p ? p.wait : null, t.wait));
    runs.push(histDelta(p ? p.run : null, t.run));
  }
  const http = histDelta(prev ? prev.http.latency : null, cur.http.latency);
  return {
    time: cur.time,
    queued: cur.line ? cur.line.queued_workflows : null,
    oldestWait: cur.line ? cur.line.oldest_wait_s : null,
    runningCpus: cur.cpus ? cur.cpus.running : null,
    freeCpus: cur.cpus ? cur.cpus.free : null,
    jobsPerMin: perMin(finished),
    failuresPerMin: perMin(failures),
    requestsPerMin: perMin(counterDelta(prev ? prev.http.requests : null, cur.http.requests)),
    serverErrorsPerMin: perMin(counterDelta(prev ? prev.http.server_errors : null, cur.http.server_errors)),
    storeErrorsPerMin: perMin(counterDelta(prev ? prev.store.errors : null, cur.store.errors)),
    httpP99: prev ? quantile(http, 0.99) : null,
    jobWaitP90: prev ? quantile(histSum(waits), 0.9) : null,
    jobRunP90: prev ? quantile(histSum(runs), 0.9) : null,
  };
}

/** A bounded history of intervals: the newest `max` kept. */
export class History {
  constructor(max = 90) { this.max = max; this.points = []; }
  push(p) {
    this.points.push(p);
    if (this.points.length > this.max) this.points.splice(0, this.points.length - this.max);
  }
  /** The values of one figure, oldest first (null where unknown). */
  values(key) { return this.points.map((p) => (p[key] === undefined ? null : p[key])); }
}

/**
 * The SVG path ("M x y L x y ...") of values drawn left to right in a
 * width x height box, 0 at the bottom, the top at max(values, floor); gaps
 * (null) break the line. Returns { d, top } (top: the value at the top).
 */
export function sparkPath(values, width, height, floor = 1) {
  const known = values.filter((v) => v !== null && Number.isFinite(v));
  const top = Math.max(floor, ...known, 0);
  const n = values.length;
  const step = n > 1 ? width / (n - 1) : 0;
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) { pen = false; return; }
    const x = (n > 1 ? i * step : width).toFixed(1);
    const y = (height - (Math.max(0, v) / top) * height).toFixed(1);
    d += `${pen ? 'L' : 'M'}${x} ${y} `;
    pen = true;
  });
  return { d: d.trim(), top };
}

/** "850 ms", "2.4 s", "3 min 20 s", "1 h 5 min"; "–" for null. */
export function seconds(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v < 1) return `${Math.round(v * 1000)} ms`;
  if (v < 60) return `${v.toFixed(1)} s`;
  if (v < 3600) return `${Math.floor(v / 60)} min ${Math.round(v % 60)} s`;
  return `${Math.floor(v / 3600)} h ${Math.floor((v % 3600) / 60)} min`;
}

/** A rate with one decimal below 10; "–" for null. */
export function rate(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return v < 10 ? v.toFixed(1) : String(Math.round(v));
}
