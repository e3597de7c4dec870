// prom.mjs - reads the Prometheus text format (0.0.4) that GET /metrics
// serves, strictly enough to be a format check: every line is a HELP, a
// TYPE or a sample; a family is typed once, before its samples; counters end
// in _total; label values are quoted. Used by the metrics and scrape tests.

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([-+]?[0-9.]+(?:[eE][-+]?\d+)?|NaN|[+-]Inf)$/;
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/;

/** Parses labels 'a="x",b="y"' into an object; throws on bad syntax. */
function parseLabels(text, line) {
  const out = {};
  let rest = text || '';
  while (rest.length) {
    const m = LABEL.exec(rest);
    if (!m) throw new Error(`bad labels in: ${line}`);
    out[m[1]] = m[2];
    rest = rest.slice(m[0].length);
  }
  return out;
}

/**
 * Parses an exposition. Returns { types: Map family -> type, samples:
 * [{name, labels, value}] } and throws with the offending line on anything
 * outside the format's rules.
 */
export function parseMetrics(text) {
  const types = new Map();
  const helps = new Set();
  const samples = [];
  const familyOf = (name) => {
    for (const suffix of ['_bucket', '_sum', '_count']) {
      if (name.endsWith(suffix)) {
        const base = name.slice(0, -suffix.length);
        if (types.get(base) === 'histogram') return base;
      }
    }
    return name;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const t = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      const h = /^# HELP (\S+) .+$/.exec(line);
      if (t) {
        if (types.has(t[1])) throw new Error(`${t[1]} typed twice`);
        if (t[2] === 'counter' && !t[1].endsWith('_total')) throw new Error(`counter ${t[1]} does not end in _total`);
        types.set(t[1], t[2]);
      } else if (h) {
        if (helps.has(h[1])) throw new Error(`${h[1]} has two HELP lines`);
        helps.add(h[1]);
      } else {
        throw new Error(`a comment that is neither HELP nor TYPE: ${line}`);
      }
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const family = familyOf(m[1]);
    if (!types.has(family)) throw new Error(`sample before (or without) its TYPE: ${line}`);
    samples.push({ name: m[1], labels: parseLabels(m[2], line), value: Number(m[3]) });
  }
  return { types, samples };
}

/** The samples of name whose labels include every pair of match. */
export function select(parsed, name, match = {}) {
  return parsed.samples.filter((s) => s.name === name &&
    Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The sum of the values of select(...) (0 when none). */
export function total(parsed, name, match = {}) {
  return select(parsed, name, match).reduce((a, s) => a + s.value, 0);
}

/** The one value of a series without further labels; undefined when absent. */
export function value(parsed, name, match = {}) {
  const s = select(parsed, name, match);
  return s.length ? s[0].value : undefined;
}
