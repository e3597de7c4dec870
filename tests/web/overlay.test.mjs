// overlay.test.mjs - indexFeatures and visible of web/app/views/overlay.js:
// GeoJSON (QuPath's export) flattened into rings with a bounding box per
// feature, bucketed in a 512-px grid, and the query the viewer draws with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importWeb, rng, SEED } from './web.mjs';

const { indexFeatures, visible } = await importWeb('app/views/overlay.js');

const GRID = 512;
const square = (x, y, w, h = w) => [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]];
const poly = (...rings) => ({ type: 'Polygon', coordinates: rings });
const feature = (geometry, extra = {}) => ({ type: 'Feature', geometry, properties: {}, ...extra });
const fc = (...features) => ({ type: 'FeatureCollection', features });
const flat = (ring) => Array.from(ring.flat());
const sorted = (set) => [...set].sort((a, b) => a - b);

test('overlay: a Polygon with a hole keeps both rings, flattened, and its bbox', () => {
  const outer = square(100, 200, 300, 100);
  const hole = square(150, 220, 50, 20);
  const idx = indexFeatures(fc(feature(poly(outer, hole))));
  assert.equal(idx.feats.length, 1);
  const f = idx.feats[0];
  assert.equal(f.rings.length, 2, 'exterior and hole');
  assert.ok(f.rings[0] instanceof Float64Array);
  assert.deepEqual(Array.from(f.rings[0]), flat(outer));
  assert.deepEqual(Array.from(f.rings[1]), flat(hole));
  assert.deepEqual([f.minx, f.miny, f.maxx, f.maxy], [100, 200, 400, 300]);
  assert.deepEqual([f.cx, f.cy], [250, 250]);
  assert.deepEqual(f.nucRings, []);
  assert.equal(idx.typicalSize, 300);
});

test('overlay: a MultiPolygon with holes: every ring of every part, one bbox over all', () => {
  const g = {
    type: 'MultiPolygon',
    coordinates: [
      [square(0, 0, 100), square(10, 10, 20), square(60, 60, 20)], // two holes
      [square(1000, 2000, 50)],
    ],
  };
  const idx = indexFeatures(fc(feature(g)));
  assert.equal(idx.feats.length, 1);
  const f = idx.feats[0];
  assert.equal(f.rings.length, 4);
  assert.deepEqual(f.rings.map((r) => Array.from(r)), [square(0, 0, 100), square(10, 10, 20), square(60, 60, 20), square(1000, 2000, 50)].map(flat));
  assert.deepEqual([f.minx, f.miny, f.maxx, f.maxy], [0, 0, 1050, 2050]);
  // Buckets: x 0..2, y 0..4 - every bucket of the bbox, even those between the parts.
  const keys = [...idx.grid.keys()].sort();
  const want = [];
  for (let gx = 0; gx <= 2; gx++) for (let gy = 0; gy <= 4; gy++) want.push(`${gx},${gy}`);
  assert.deepEqual(keys, want.sort());
});

test('overlay: features without a usable geometry are skipped; indexes count the kept ones', () => {
  const idx = indexFeatures(fc(
    feature(null),
    { type: 'Feature', properties: { name: 'no geometry key' } },
    feature(poly(square(0, 0, 10))),
    feature({ type: 'Point', coordinates: [5, 5] }),
    feature({ type: 'LineString', coordinates: [[0, 0], [1, 1]] }),
    feature({ type: 'Polygon', coordinates: [] }),
    feature(poly(square(600, 600, 10))),
  ));
  assert.equal(idx.feats.length, 2);
  assert.deepEqual([idx.feats[0].minx, idx.feats[1].minx], [0, 600]);
  assert.deepEqual(sorted(visible(idx, 0, 0, 10, 10)), [0]);
  assert.deepEqual(sorted(visible(idx, 605, 605, 605, 605)), [1]);
  assert.deepEqual(sorted(visible(idx, -1e6, -1e6, 1e6, 1e6)), [0, 1]);
  for (const empty of [null, undefined, {}, fc()]) {
    const e = indexFeatures(empty);
    assert.equal(e.feats.length, 0);
    assert.equal(e.grid.size, 0);
    assert.equal(e.typicalSize, 0);
    assert.equal(visible(e, 0, 0, 1000, 1000).size, 0);
  }
});

test('overlay: nucleusGeometry is kept only when asked, and does not change the bbox', () => {
  const cell = feature(poly(square(0, 0, 40)), { nucleusGeometry: poly(square(10, 10, 10), square(12, 12, 2)) });
  const withN = indexFeatures(fc(cell), { nuclei: true });
  assert.equal(withN.feats[0].nucRings.length, 2);
  assert.deepEqual(Array.from(withN.feats[0].nucRings[0]), flat(square(10, 10, 10)));
  assert.deepEqual(Array.from(withN.feats[0].nucRings[1]), flat(square(12, 12, 2)));
  assert.deepEqual([withN.feats[0].minx, withN.feats[0].maxx], [0, 40]);
  const without = indexFeatures(fc(cell));
  assert.deepEqual(without.feats[0].nucRings, []);
  // A nucleus alone is no feature.
  const onlyNucleus = indexFeatures(fc(feature(null, { nucleusGeometry: poly(square(0, 0, 5)) })), { nuclei: true });
  assert.equal(onlyNucleus.feats.length, 0);
});

test('overlay: visible() uses closed intervals and finds features across bucket edges', () => {
  const idx = indexFeatures(fc(
    feature(poly(square(500, 500, 24))),      // crosses x = 512 and y = 512
    feature(poly(square(-700, -20, 1400, 40))), // spans buckets -2..1 in x, negative
    feature(poly(square(512, 0, 10))),        // starts exactly on a bucket edge
  ));
  assert.deepEqual(sorted(visible(idx, 524, 524, 600, 600)), [0], 'touching the corner counts');
  assert.deepEqual(sorted(visible(idx, 525, 525, 600, 600)), []);
  assert.deepEqual(sorted(visible(idx, 511, 0, 511, 0)), [1], 'a point query at x=511');
  assert.deepEqual(sorted(visible(idx, 512, 0, 512, 0)), [1, 2]);
  assert.deepEqual(sorted(visible(idx, -700, 20, -700, 20)), [1], 'the far corner in bucket (-2,0)');
  assert.deepEqual(sorted(visible(idx, -2000, -2000, -701, 2000)), []);
  assert.deepEqual(sorted(visible(idx, 600, -30, 700, -21)), []);
  // Each feature is in every bucket its bbox meets, once.
  for (const [key, list] of idx.grid) assert.equal(new Set(list).size, list.length, `bucket ${key} lists a feature twice`);
  const bucketsOf = (i) => [...idx.grid].filter(([, l]) => l.includes(i)).map(([k]) => k).sort();
  assert.deepEqual(bucketsOf(1), ['-1,-1', '-1,0', '-2,-1', '-2,0', '0,-1', '0,0', '1,-1', '1,0']);
  assert.deepEqual(bucketsOf(2), ['1,0']);
});

// ---------------------------------------------------------------- random

function randomFeature(r) {
  // Mostly cells (a few px to a few dozen), some tissue regions spanning
  // several buckets; integer or fractional coordinates, many negative ones.
  const big = r.chance(0.1);
  const w = big ? r.int(300, 3000) : r.int(0, 60);
  const h = big ? r.int(300, 3000) : r.int(0, 60);
  const frac = r.chance(0.5);
  const x = r.int(-3000, 3000) + (frac ? r.next() : 0);
  const y = r.int(-3000, 3000) + (frac ? r.next() : 0);
  const ring = [];
  const k = r.int(3, 8);
  for (let i = 0; i < k; i++) ring.push([x + r.next() * w, y + r.next() * h]);
  ring.push([x, y], [x + w, y + h]); // pins the bbox
  ring.push(ring[0]);
  const rings = [ring];
  if (big && r.chance(0.5)) rings.push(square(x + w / 4, y + h / 4, w / 4, h / 4));
  const geometry = r.chance(0.3)
    ? { type: 'MultiPolygon', coordinates: [rings, [square(x, y, w / 2, h / 2)]] }
    : { type: 'Polygon', coordinates: rings };
  return { f: feature(geometry), bbox: [x, y, x + w, y + h] };
}

test('overlay: visible() equals a brute-force bbox filter on random features and rectangles', () => {
  const r = rng(SEED);
  let hits = 0, multiBucket = 0;
  for (let round = 0; round < 40; round++) {
    const made = Array.from({ length: r.int(0, 300) }, () => randomFeature(r));
    if (r.chance(0.2)) made.splice(r.int(0, made.length), 0, { f: feature(null), bbox: null });
    const kept = made.filter((m) => m.bbox);
    const idx = indexFeatures(fc(...made.map((m) => m.f)));
    assert.equal(idx.feats.length, kept.length);
    kept.forEach((m, i) => {
      const f = idx.feats[i];
      assert.deepEqual([f.minx, f.miny, f.maxx, f.maxy], m.bbox, `bbox of feature ${i} (round ${round}, seed ${SEED})`);
      if (Math.floor(f.minx / GRID) !== Math.floor(f.maxx / GRID) || Math.floor(f.miny / GRID) !== Math.floor(f.maxy / GRID)) multiBucket++;
    });
    for (let q = 0; q < 50; q++) {
      let x0, y0, x1, y1;
      if (kept.length && r.chance(0.2)) {
        // A rectangle ending exactly on a feature's edge.
        const b = r.pick(kept).bbox;
        [x0, y0] = [b[2], b[3]];
        [x1, y1] = [x0 + r.int(0, 900), y0 + r.int(0, 900)];
      } else {
        x0 = r.int(-4000, 4000) + (r.chance(0.5) ? r.next() : 0);
        y0 = r.int(-4000, 4000) + (r.chance(0.5) ? r.next() : 0);
        x1 = x0 + (r.chance(0.1) ? 0 : r.int(0, 2500));
        y1 = y0 + (r.chance(0.1) ? 0 : r.int(0, 2500));
      }
      const got = visible(idx, x0, y0, x1, y1);
      assert.ok(got instanceof Set);
      const arr = [...got];
      assert.equal(new Set(arr).size, arr.length, 'no duplicates');
      const want = [];
      kept.forEach((m, i) => {
        const [a, b, c, d] = m.bbox;
        if (c >= x0 && a <= x1 && d >= y0 && b <= y1) want.push(i);
      });
      assert.deepEqual(sorted(got), want, `visible(${x0}, ${y0}, ${x1}, ${y1}) in round ${round} (seed ${SEED})`);
      hits += want.length;
    }
  }
  assert.ok(hits > 1000, `the random rectangles met many features (${hits})`);
  assert.ok(multiBucket > 100, `many features span several buckets (${multiBucket})`);
});
