// views/overlay.js - GeoJSON outlines (QuPath's export: cells with
// geometry and nucleusGeometry, tissue annotations with holes) drawn on a
// canvas over the slide viewer. Features are flattened into typed arrays
// and bucketed in a grid by bounding box, so a frame touches only what is
// in view; when outlines would be a few pixels wide, cells are drawn as
// dots instead, which keeps a frame cheap at any zoom.

const GRID = 512; // image pixels per bucket side

/** Flattens features into {rings: Float64Array[], bbox per feature, ...}. */
export function indexFeatures(geojson, { nuclei = false } = {}) {
  const feats = [];
  for (const f of (geojson && geojson.features) || []) {
    const rings = [];
    addGeometry(f.geometry, rings);
    const nucRings = [];
    if (nuclei && f.nucleusGeometry) addGeometry(f.nucleusGeometry, nucRings);
    if (!rings.length) continue;
    let minx = Infinity, miny = Infinity, maxx = -Infinity, maxy = -Infinity;
    for (const r of rings) for (let k = 0; k < r.length; k += 2) {
      if (r[k] < minx) minx = r[k]; if (r[k] > maxx) maxx = r[k];
      if (r[k + 1] < miny) miny = r[k + 1]; if (r[k + 1] > maxy) maxy = r[k + 1];
    }
    feats.push({ rings, nucRings, minx, miny, maxx, maxy, cx: (minx + maxx) / 2, cy: (miny + maxy) / 2 });
  }
  const grid = new Map();
  feats.forEach((f, i) => {
    for (let gx = Math.floor(f.minx / GRID); gx <= Math.floor(f.maxx / GRID); gx++)
      for (let gy = Math.floor(f.miny / GRID); gy <= Math.floor(f.maxy / GRID); gy++) {
        const key = `${gx},${gy}`;
        if (!grid.has(key)) grid.set(key, []);
        grid.get(key).push(i);
      }
  });
  const sizes = feats.map((f) => Math.max(f.maxx - f.minx, f.maxy - f.miny)).sort((a, b) => a - b);
  return { feats, grid, typicalSize: sizes.length ? sizes[sizes.length >> 1] : 0 };
}

function addGeometry(g, rings) {
  if (!g) return;
  const polys = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
  for (const poly of polys) for (const ring of poly || []) {
    const flat = new Float64Array(ring.length * 2);
    ring.forEach((p, k) => { flat[2 * k] = p[0]; flat[2 * k + 1] = p[1]; });
    rings.push(flat);
  }
}

/** Indexes of the features whose bbox meets [x0,x1]×[y0,y1] (image pixels). */
export function visible(index, x0, y0, x1, y1) {
  const out = new Set();
  for (let gx = Math.floor(x0 / GRID); gx <= Math.floor(x1 / GRID); gx++)
    for (let gy = Math.floor(y0 / GRID); gy <= Math.floor(y1 / GRID); gy++) {
      for (const i of index.grid.get(`${gx},${gy}`) || []) {
        const f = index.feats[i];
        if (f.maxx >= x0 && f.minx <= x1 && f.maxy >= y0 && f.miny <= y1) out.add(i);
      }
    }
  return out;
}

/** Draws an index on ctx with the image→screen map (sx, ox, oy), returning
 * how many features were drawn. */
export function drawIndex(ctx, index, view, style) {
  const { sx, ox, oy, x0, y0, x1, y1 } = view;
  const dots = style.dotsBelowPx !== undefined && index.typicalSize * sx < style.dotsBelowPx;
  if (dots) return drawDots(ctx, index, view, style);
  const ids = visible(index, x0, y0, x1, y1);
  if (!ids.size) return 0;
  const path = (rings) => {
    for (const r of rings) {
      ctx.moveTo(r[0] * sx + ox, r[1] * sx + oy);
      for (let k = 2; k < r.length; k += 2) ctx.lineTo(r[k] * sx + ox, r[k + 1] * sx + oy);
      ctx.closePath();
    }
  };
  ctx.beginPath();
  for (const i of ids) path(index.feats[i].rings);
  if (style.fill) { ctx.fillStyle = style.fill; ctx.fill('evenodd'); }
  ctx.strokeStyle = style.stroke;
  ctx.lineWidth = style.width;
  ctx.stroke();
  if (style.nucleus) {
    ctx.beginPath();
    for (const i of ids) path(index.feats[i].nucRings);
    ctx.fillStyle = style.nucleus;
    ctx.fill('evenodd');
  }
  return ids.size;
}

// Zoomed out, most cells are in view and each is a pixel or two: a linear
// scan beats the grid, and one path of squares (one per screen pixel at
// most) beats a fillRect per cell.
function drawDots(ctx, index, view, style) {
  const { sx, ox, oy, x0, y0, x1, y1 } = view;
  const w = Math.ceil((x1 - x0) * sx) + 2;
  const seen = new Uint8Array(w * (Math.ceil((y1 - y0) * sx) + 2));
  let n = 0;
  ctx.beginPath();
  for (const f of index.feats) {
    if (f.cx < x0 || f.cx > x1 || f.cy < y0 || f.cy > y1) continue;
    n++;
    const px = Math.floor((f.cx - x0) * sx), py = Math.floor((f.cy - y0) * sx);
    if (seen[py * w + px]) continue;
    seen[py * w + px] = 1;
    ctx.rect(f.cx * sx + ox - 1, f.cy * sx + oy - 1, 2, 2);
  }
  ctx.fillStyle = style.dot;
  ctx.fill();
  return n;
}
