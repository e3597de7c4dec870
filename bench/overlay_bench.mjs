// overlay_bench.mjs - the viewer's overlay in headless Chromium: how long it
// takes to index N cells (web/app/views/overlay.js) against JSON.parse of the
// same GeoJSON (the baseline: the browser must parse it anyway), and how long
// one frame takes to draw zoomed out (dots) and zoomed in (outlines) on a
// 1280x800 canvas, against clearing that canvas.
//
//   node bench/overlay_bench.mjs BUILD/tessera [CELLS]
//
// The module is served by a real `tessera serve`; cells are synthetic
// 24-vertex polygons with nuclei on a 100,000 x 80,000 pixel slide.
import { startTessera } from './serve.mjs';
import { chromium } from 'playwright-core';

const bin = process.argv[2] || 'build/tessera';
const CELLS = Number(process.argv[3] || 100000);

const { url, stop } = await startTessera(bin, 'overlay', ['--workers', '1']);
const browser = await chromium.launch({ executablePath: process.env.TESSERA_CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
try {
  const page = await browser.newPage();
  await page.goto(`${url}/favicon.svg`);
  const r = await page.evaluate(async (n) => {
    const { indexFeatures, drawIndex } = await import('/app/views/overlay.js');
    // Deterministic synthetic cells (a small LCG, no Math.random).
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const ring = (cx, cy, r, k) => {
      const pts = [];
      for (let i = 0; i < k; i++) {
        const a = (2 * Math.PI * i) / k, rr = r * (0.8 + 0.4 * rnd());
        pts.push([Math.round(cx + rr * Math.cos(a)), Math.round(cy + rr * Math.sin(a))]);
      }
      pts.push(pts[0]);
      return [pts];
    };
    const features = [];
    for (let i = 0; i < n; i++) {
      const cx = rnd() * 100000, cy = rnd() * 80000;
      features.push({ type: 'Feature', geometry: { type: 'Polygon', coordinates: ring(cx, cy, 20, 24) },
        nucleusGeometry: { type: 'Polygon', coordinates: ring(cx, cy, 9, 16) }, properties: { objectType: 'cell' } });
    }
    const text = JSON.stringify({ type: 'FeatureCollection', features });
    const time = (fn, reps = 1) => { const t = performance.now(); for (let i = 0; i < reps; i++) fn(); return (performance.now() - t) / reps; };
    let geo;
    const parseMs = time(() => { geo = JSON.parse(text); });
    let index;
    const indexMs = time(() => { index = indexFeatures(geo, { nuclei: true }); });
    const canvas = new OffscreenCanvas(1280, 800);
    const ctx = canvas.getContext('2d');
    const style = { stroke: '#e67814', width: 1, nucleus: 'rgba(40,40,200,.35)', dot: '#e65000', dotsBelowPx: 4 };
    const clearMs = time(() => { ctx.clearRect(0, 0, 1280, 800); ctx.getImageData(0, 0, 1, 1); }, 20);
    const out = (sx, x0, y0) => ({ sx, ox: -x0 * sx, oy: -y0 * sx, x0, y0, x1: x0 + 1280 / sx, y1: y0 + 800 / sx });
    let drawnOut = 0, drawnIn = 0;
    const whole = out(1280 / 100000, 0, 0);
    const zoomOutMs = time(() => { ctx.clearRect(0, 0, 1280, 800); drawnOut = drawIndex(ctx, index, whole, style); ctx.getImageData(0, 0, 1, 1); }, 5);
    const close = out(1, 50000, 40000); // 1 screen px per image px: 1280 x 800 image px in view
    const zoomInMs = time(() => { ctx.clearRect(0, 0, 1280, 800); drawnIn = drawIndex(ctx, index, close, style); ctx.getImageData(0, 0, 1, 1); }, 20);
    return { mb: text.length / 1e6, parseMs, indexMs, clearMs, zoomOutMs, drawnOut, zoomInMs, drawnIn };
  }, CELLS);
  const f = (x) => x.toFixed(1);
  console.log(`overlay_bench: ${CELLS} cells, ${r.mb.toFixed(1)} MB of GeoJSON`);
  console.log(`  JSON.parse (baseline)   ${f(r.parseMs)} ms`);
  console.log(`  indexFeatures           ${f(r.indexMs)} ms  (${(r.indexMs / r.parseMs).toFixed(2)}x the parse)`);
  console.log(`  clear a 1280x800 frame  ${r.clearMs.toFixed(2)} ms (baseline)`);
  console.log(`  frame, whole slide      ${f(r.zoomOutMs)} ms  (${r.drawnOut} cells as dots)`);
  console.log(`  frame, 1 px per pixel   ${f(r.zoomInMs)} ms  (${r.drawnIn} cells as outlines and nuclei)`);
} finally {
  await browser.close();
  await stop();
}
