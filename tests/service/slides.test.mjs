// slides.test.mjs - the slides behind the web UI: GET /api/slides over the
// data roots, thumbnails, and a job's image as Deep Zoom (slide, slide.dzi,
// slide_files/{level}/{col}_{row}.jpeg) reached through the caller's own
// workflow. JPEGs are checked without npm packages: sizes from the SOF
// marker, brightness from the DC coefficients of a small baseline decoder.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, submit, waitFinal, assertError, errorText, wfId, runCli,
} from './harness.mjs';

let server;
let dataRoot;
let outside;
let slide;
let tissue; // the demo's ground-truth tissue polygons (level-0 pixels)

// ---------------------------------------------------------------- JPEG

/** {width, height} from the first SOF marker, or null. */
function jpegSize(buf) {
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== 0xd8) return null;
  let i = 2;
  while (i + 9 < buf.length) {
    if (buf[i] !== 0xff) return null;
    const m = buf[i + 1];
    const len = buf.readUInt16BE(i + 2);
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      return { height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7) };
    }
    i += 2 + len;
  }
  return null;
}

/**
 * The mean luminance (0..255) of every 8x8 luma block of a baseline JPEG,
 * from its DC coefficients: Huffman-decodes the scan (AC coefficients are
 * decoded and dropped), no IDCT. Enough to tell a white tile from tissue.
 */
function jpegLumaBlocks(buf) {
  const qt = {};
  const huff = {};
  let frame;
  let i = 2;
  for (;;) {
    assert.equal(buf[i], 0xff, `JPEG marker expected at ${i}`);
    const m = buf[i + 1];
    const len = buf.readUInt16BE(i + 2);
    const seg = buf.subarray(i + 4, i + 2 + len);
    if (m === 0xdb) { // DQT
      for (let p = 0; p < seg.length;) {
        const pq = seg[p] >> 4;
        const tq = seg[p] & 15;
        qt[tq] = pq ? seg.readUInt16BE(p + 1) : seg[p + 1]; // only the DC entry is needed
        p += 1 + 64 * (pq ? 2 : 1);
      }
    } else if (m === 0xc0 || m === 0xc1) { // baseline / extended sequential
      const comps = [];
      for (let c = 0; c < seg[5]; c++) {
        comps.push({ id: seg[6 + 3 * c], h: seg[7 + 3 * c] >> 4, v: seg[7 + 3 * c] & 15, tq: seg[8 + 3 * c] });
      }
      frame = { height: seg.readUInt16BE(1), width: seg.readUInt16BE(3), comps };
    } else if (m === 0xc4) { // DHT: canonical codes -> symbols
      for (let p = 0; p < seg.length;) {
        const cls = seg[p] >> 4;
        const id = seg[p] & 15;
        const counts = seg.subarray(p + 1, p + 17);
        const table = new Map();
        let code = 0;
        let k = p + 17;
        for (let l = 1; l <= 16; l++) {
          for (let n = 0; n < counts[l - 1]; n++) table.set(`${l}:${code++}`, seg[k++]);
          code <<= 1;
        }
        huff[`${cls}${id}`] = table;
        p = k;
      }
    } else if (m === 0xda) { // SOS, then the entropy-coded data
      assert.ok(frame, 'SOF before SOS');
      const scan = [];
      for (let c = 0; c < seg[0]; c++) {
        const comp = frame.comps.find((x) => x.id === seg[1 + 2 * c]);
        scan.push({ ...comp, dc: huff[`0${seg[2 + 2 * c] >> 4}`], ac: huff[`1${seg[2 + 2 * c] & 15}`], pred: 0 });
      }
      return decodeScan(buf, i + 2 + len, frame, scan, qt);
    } else if (m === 0xd9) {
      throw new Error('EOI before a scan');
    }
    i += 2 + len;
  }
}

function decodeScan(buf, start, frame, scan, qt) {
  let pos = start;
  let acc = 0;
  let nbits = 0;
  const bit = () => {
    if (nbits === 0) {
      let b = buf[pos++];
      if (b === 0xff) {
        const next = buf[pos++];
        if (next !== 0) throw new Error(`marker ${next.toString(16)} inside the scan`);
        b = 0xff;
      }
      acc = b;
      nbits = 8;
    }
    nbits--;
    return (acc >> nbits) & 1;
  };
  const receive = (s) => {
    let v = 0;
    for (let k = 0; k < s; k++) v = (v << 1) | bit();
    return v < (1 << (s - 1)) ? v - (1 << s) + 1 : v; // EXTEND
  };
  const decode = (table) => {
    let code = 0;
    for (let l = 1; l <= 16; l++) {
      code = (code << 1) | bit();
      const sym = table.get(`${l}:${code}`);
      if (sym !== undefined) return sym;
    }
    throw new Error('bad Huffman code');
  };
  const hmax = Math.max(...frame.comps.map((c) => c.h));
  const vmax = Math.max(...frame.comps.map((c) => c.v));
  const single = scan.length === 1;
  const mcusX = single ? Math.ceil(frame.width * scan[0].h / hmax / 8) : Math.ceil(frame.width / (8 * hmax));
  const mcusY = single ? Math.ceil(frame.height * scan[0].v / vmax / 8) : Math.ceil(frame.height / (8 * vmax));
  const luma = scan[0];
  const blocks = [];
  for (let my = 0; my < mcusY; my++) {
    for (let mx = 0; mx < mcusX; mx++) {
      for (const c of scan) {
        const nv = single ? 1 : c.v;
        const nh = single ? 1 : c.h;
        for (let v = 0; v < nv; v++) {
          for (let h = 0; h < nh; h++) {
            const t = decode(c.dc);
            c.pred += t ? receive(t) : 0;
            for (let k = 1; k < 64;) {
              const rs = decode(c.ac);
              const r = rs >> 4;
              const s = rs & 15;
              if (s === 0) {
                if (r !== 15) break;
                k += 16;
                continue;
              }
              k += r;
              receive(s);
              k++;
            }
            if (c === luma) {
              const bx = single ? mx : mx * c.h + h;
              const by = single ? my : my * c.v + v;
              // Only blocks inside the image: padding blocks repeat the edge.
              if (bx * 8 < frame.width && by * 8 < frame.height) {
                blocks.push({ x: bx, y: by, mean: (c.pred * qt[c.tq]) / 8 + 128 });
              }
            }
          }
        }
      }
    }
  }
  return blocks;
}

// ---------------------------------------------------------------- geometry

function inRing(x, y, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Is the level-0 point inside tissue (inside an outer ring, not in a hole)? */
function inTissue(x, y) {
  return tissue.some((rings) => inRing(x, y, rings[0]) && !rings.slice(1).some((h) => inRing(x, y, h)));
}

function inAnyOuterRing(x, y) {
  return tissue.some((rings) => inRing(x, y, rings[0]));
}

/** The first full-resolution tile (254 px grid) whose corners and centre all
 *  pass pred. */
function findTile(pred, cols, rows) {
  for (let row = 1; row < rows - 1; row++) {
    for (let col = 1; col < cols - 1; col++) {
      const x0 = col * 254 - 1;
      const y0 = row * 254 - 1;
      const pts = [[x0, y0], [x0 + 255, y0], [x0, y0 + 255], [x0 + 255, y0 + 255], [x0 + 128, y0 + 128]];
      if (pts.every(([x, y]) => pred(x, y))) return { col, row };
    }
  }
  return null;
}

// ---------------------------------------------------------------- setup

before(async () => {
  dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-dz-'));
  outside = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-svc-dz-outside-'));
  slide = path.join(dataRoot, 'demo.tiff');
  const r = runCli(['demo-slide', slide, '--size', '4096x3072', '--seed', '11'], { timeoutMs: 120000 });
  assert.equal(r.status, 0, `demo-slide: ${r.stderr}`);
  tissue = JSON.parse(fs.readFileSync(path.join(dataRoot, 'demo.tissue.geojson'), 'utf8'))
    .features.map((f) => f.geometry.coordinates);
  // A text file named like a slide; a nested copy; hidden files; a symlink
  // to a directory outside the roots (never followed).
  fs.writeFileSync(path.join(dataRoot, 'notes.svs'), 'this is not a slide\n');
  fs.mkdirSync(path.join(dataRoot, 'cases', 'b'), { recursive: true });
  fs.copyFileSync(slide, path.join(dataRoot, 'cases', 'b', 'Copy.TIF'));
  fs.copyFileSync(slide, path.join(dataRoot, '.hidden.tiff'));
  fs.copyFileSync(slide, path.join(outside, 'secret.tiff'));
  fs.symlinkSync(outside, path.join(dataRoot, 'elsewhere'));
  server = await startServer({ workers: 2, concurrencyLimit: 2, extraArgs: ['--data-root', dataRoot] });
}, { timeout: 180000 });

after(async () => {
  if (server) await server.cleanup();
  for (const d of [dataRoot, outside]) if (d) fs.rmSync(d, { recursive: true, force: true });
}, { timeout: 30000 });

// ---------------------------------------------------------------- the list

describe('GET /api/slides', () => {
  test('lists the slides of the data roots with their facts; skips what OpenSlide cannot read', async () => {
    const r = await server.api('alice', 'GET', '/api/slides');
    assert.equal(r.status, 200, r.text);
    const { slides, skipped } = r.json;
    assert.equal(r.json.truncated, false);
    const demo = slides.find((s) => s.image_path === slide);
    assert.ok(demo, `the demo slide is listed: ${r.text.slice(0, 800)}`);
    assert.equal(demo.name, 'demo.tiff');
    assert.equal(demo.root, dataRoot);
    assert.equal(demo.width, 4096);
    assert.equal(demo.height, 3072);
    assert.ok(Math.abs(demo.mpp - 0.25) < 1e-6, `mpp ${demo.mpp} is what demo-slide wrote (0.25)`);
    assert.ok(demo.levels >= 2, `a pyramid: ${demo.levels} levels`);
    assert.equal(demo.vendor, 'generic-tiff');
    const st = fs.statSync(slide);
    assert.equal(demo.size_bytes, st.size);
    assert.ok(Math.abs(Date.parse(demo.modified_at) - st.mtimeMs) < 1000, `modified_at ${demo.modified_at}`);
    assert.equal(demo.thumbnail, `/api/slides/thumbnail?path=${encodeURIComponent(slide)}`);

    const paths = slides.map((s) => s.image_path);
    assert.ok(paths.includes(path.join(dataRoot, 'cases', 'b', 'Copy.TIF')), `nested, upper-case extension: ${paths}`);
    assert.deepEqual(paths, [...paths].sort(), 'sorted by image_path');
    const all = JSON.stringify(r.json);
    assert.ok(!all.includes('.hidden'), 'dot files are skipped');
    assert.ok(!all.includes('secret.tiff'), 'a symlinked directory outside the roots is not followed');
    assert.ok(!all.includes('geojson'), 'sidecars are not candidates');

    const notes = skipped.find((s) => s.image_path === path.join(dataRoot, 'notes.svs'));
    assert.ok(notes, `the text file is skipped: ${JSON.stringify(skipped)}`);
    assert.match(notes.reason, /not a slide format OpenSlide reads/);
    assert.ok(!slides.some((s) => s.name === 'notes.svs'));

    // Cached per worker, and the same for every user: the data roots are service-wide.
    const again = await server.api('bob', 'GET', '/api/slides');
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, r.json);
  });

  test('thumbnails: JPEG of the right aspect, cache headers, 304, sizes checked, nothing outside the roots', async () => {
    const list = await server.api('alice', 'GET', '/api/slides');
    const demo = list.json.slides.find((s) => s.image_path === slide);
    const t = await server.api('alice', 'GET', demo.thumbnail);
    assert.equal(t.status, 200, t.text.slice(0, 300));
    assert.match(t.headers['content-type'], /^image\/(jpeg|png)/);
    assert.deepEqual(jpegSize(t.body), { width: 256, height: 192 });
    assert.equal(t.headers['cache-control'], 'private, max-age=300');
    assert.match(t.headers.etag, /^"[^"]+"$/);
    const blocks = jpegLumaBlocks(t.body);
    assert.ok(blocks.some((b) => b.mean < 200), 'the thumbnail shows tissue');
    assert.ok(blocks.some((b) => b.mean > 230), 'and background (white)');
    const again = await server.api('alice', 'GET', demo.thumbnail, null, { 'If-None-Match': t.headers.etag });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    const small = await server.api('alice', 'GET', `${demo.thumbnail}&size=64`);
    assert.equal(small.status, 200);
    assert.deepEqual(jpegSize(small.body), { width: 64, height: 48 });
    assert.notEqual(small.headers.etag, t.headers.etag);

    for (const bad of ['5', '2000', 'abc', '']) {
      const r = await server.api('alice', 'GET', `${demo.thumbnail}&size=${bad}`);
      assertError(r, 400, `size=${bad}`);
      assert.match(errorText(r), /size/);
    }
    const missing = await server.api('alice', 'GET', '/api/slides/thumbnail');
    assertError(missing, 400, 'no path');
    assert.match(errorText(missing), /path/);
    const q = (p) => `/api/slides/thumbnail?path=${encodeURIComponent(p)}`;
    const out = await server.api('alice', 'GET', q(path.join(outside, 'secret.tiff')));
    assertError(out, 404, 'a slide outside the roots');
    assert.equal(out.json.error.code, 'not_found');
    const via = await server.api('alice', 'GET', q(path.join(dataRoot, 'elsewhere', 'secret.tiff')));
    assertError(via, 404, 'a symlink out of the roots');
    const nothing = await server.api('alice', 'GET', q(path.join(outside, 'no-such.tiff')));
    assertError(nothing, 404, 'a missing file outside the roots');
    assert.equal(nothing.json.error.message, out.json.error.message, 'existence outside the roots is not revealed');
    assertError(await server.api('alice', 'GET', q('/etc/passwd')), 404, '/etc/passwd');
    assertError(await server.api('alice', 'GET', q('relative/demo.tiff')), 404, 'a relative path');
    assertError(await server.api('alice', 'GET', q(path.join(dataRoot, 'notes.svs'))), 404, 'not a slide');
    assertError(await server.api(null, 'GET', demo.thumbnail), 401, 'no identity');
    assertError(await server.api(null, 'GET', '/api/slides'), 401, 'no identity');
  });
});

// ---------------------------------------------------------------- Deep Zoom

describe('Deep Zoom through the workflow', () => {
  let id;
  const base = () => `/api/workflows/${id}/jobs/tissue`;

  before(async () => {
    const w = await submit(server, 'alice', {
      name: 'viewer',
      jobs: [
        { job_id: 'tissue', job_type: 'tissue_mask', image_path: slide },
        { job_id: 'plain', job_type: 'noop' },
      ],
    });
    id = wfId(w);
    const fin = await waitFinal(server, 'alice', id, 120000);
    assert.equal(fin.state, 'succeeded', JSON.stringify(fin).slice(0, 500));
  }, { timeout: 150000 });

  test('slide facts, DZI descriptor, tile sizes at every corner of the pyramid', async () => {
    const info = await server.api('alice', 'GET', `${base()}/slide`);
    assert.equal(info.status, 200, info.text);
    assert.equal(info.json.width, 4096);
    assert.equal(info.json.height, 3072);
    assert.ok(Math.abs(info.json.mpp - 0.25) < 1e-6);
    assert.equal(info.json.tile_size, 254);
    assert.equal(info.json.overlap, 1);
    assert.equal(info.json.levels, 13); // ceil(log2(4096)) + 1
    assert.equal(info.json.image_path, slide);
    assert.equal(info.json.dzi, `${base()}/slide.dzi`);

    const dzi = await server.api('alice', 'GET', info.json.dzi);
    assert.equal(dzi.status, 200, dzi.text);
    assert.match(dzi.headers['content-type'], /^application\/xml/);
    assert.match(dzi.text, /<Image [^>]*xmlns="http:\/\/schemas\.microsoft\.com\/deepzoom\/2008"/);
    const attr = (name) => new RegExp(`${name}="([^"]*)"`).exec(dzi.text)?.[1];
    assert.equal(attr('Format'), 'jpeg');
    assert.equal(attr('Overlap'), '1');
    assert.equal(attr('TileSize'), '254');
    assert.equal(attr('Width'), '4096');
    assert.equal(attr('Height'), '3072');
    assert.equal(dzi.headers['cache-control'], 'private, max-age=3600');
    const dzi304 = await server.api('alice', 'GET', info.json.dzi, null, { 'If-None-Match': dzi.headers.etag });
    assert.equal(dzi304.status, 304);

    // OpenSeadragon's layout: the .dzi URL with ".dzi" -> "_files/".
    const files = info.json.dzi.replace(/\.dzi$/, '_files');
    const size = async (p) => {
      const r = await server.api('alice', 'GET', `${files}/${p}`);
      assert.equal(r.status, 200, `${p}: ${r.text.slice(0, 300)}`);
      assert.equal(r.headers['content-type'], 'image/jpeg');
      return jpegSize(r.body);
    };
    assert.deepEqual(await size('0/0_0.jpeg'), { width: 1, height: 1 });
    assert.deepEqual(await size('12/0_0.jpeg'), { width: 255, height: 255 });
    assert.deepEqual(await size('12/1_1.jpeg'), { width: 256, height: 256 });
    assert.deepEqual(await size('12/16_12.jpeg'), { width: 33, height: 25 }); // 4096-4063, 3072-3047
    assert.deepEqual(await size('11/8_6.jpeg'), { width: 17, height: 13 });   // 2048x1536
    assert.deepEqual(await size('8/1_0.jpeg'), { width: 3, height: 192 });    // 256x192
  });

  test('tissue looks like tissue, background like background', async () => {
    const files = `${base()}/slide_files/12`;
    const inside = findTile(inTissue, 17, 13);
    const bg = findTile((x, y) => !inAnyOuterRing(x, y), 17, 13);
    assert.ok(inside && bg, 'the demo slide has a tile of tissue and one of background');
    const t = await server.api('alice', 'GET', `${files}/${inside.col}_${inside.row}.jpeg`);
    const b = await server.api('alice', 'GET', `${files}/${bg.col}_${bg.row}.jpeg`);
    const mean = (blocks) => blocks.reduce((s, x) => s + x.mean, 0) / blocks.length;
    const tb = jpegLumaBlocks(t.body);
    const bb = jpegLumaBlocks(b.body);
    assert.equal(tb.length, 32 * 32, 'a 256 x 256 tile has 32 x 32 luma blocks');
    assert.ok(tb.every((x) => x.mean < 240), `no white block in the tissue tile (mean ${mean(tb).toFixed(1)})`);
    assert.ok(mean(tb) < 215, `tissue is coloured: mean luma ${mean(tb).toFixed(1)}`);
    assert.ok(mean(bb) > mean(tb) + 15, `background (${mean(bb).toFixed(1)}) is lighter than tissue (${mean(tb).toFixed(1)})`);

    // Four times reduced (level 10, drawn from another slide level): the
    // same tissue lands where the geometry says.
    const x0 = inside.col * 254;
    const y0 = inside.row * 254;
    const c10 = Math.floor(x0 / 4 / 254);
    const r10 = Math.floor(y0 / 4 / 254);
    const ox = x0 / 4 - (c10 * 254 - (c10 > 0 ? 1 : 0)); // offset inside the level-10 tile
    const oy = y0 / 4 - (r10 * 254 - (r10 > 0 ? 1 : 0));
    const t10 = await server.api('alice', 'GET', `${base()}/slide_files/10/${c10}_${r10}.jpeg`);
    assert.equal(t10.status, 200);
    const sub = jpegLumaBlocks(t10.body).filter((k) => k.x * 8 >= ox && (k.x + 1) * 8 <= ox + 63 &&
      k.y * 8 >= oy && (k.y + 1) * 8 <= oy + 63);
    assert.ok(sub.length >= 36, `blocks of the level-10 tile over the tissue tile: ${sub.length}`);
    assert.ok(sub.every((k) => k.mean < 240) && mean(sub) < 215,
      `tissue at level 10 too: mean ${mean(sub).toFixed(1)}`);
  });

  test('caching: strong ETag, If-None-Match answers 304 without a body', async () => {
    const p = `${base()}/slide_files/10/1_1.jpeg`;
    const first = await server.api('alice', 'GET', p);
    assert.equal(first.status, 200);
    assert.equal(first.headers['cache-control'], 'private, max-age=3600');
    assert.match(first.headers.etag, /^"[0-9a-f]+"$/, 'a strong ETag');
    assert.match(first.headers.vary || '', /Cookie/, 'browsers keep one identity\'s tiles from another');
    // Any worker gives the same ETag and bytes (a pure function of file and tile).
    for (let i = 0; i < 4; i++) {
      const r = await server.api('alice', 'GET', p);
      assert.equal(r.headers.etag, first.headers.etag);
      assert.ok(r.body.equals(first.body));
    }
    const cond = await server.api('alice', 'GET', p, null, { 'If-None-Match': first.headers.etag });
    assert.equal(cond.status, 304);
    assert.equal(cond.body.length, 0);
    assert.equal(cond.headers.etag, first.headers.etag);
    const list = await server.api('alice', 'GET', p, null, { 'If-None-Match': `"nope", W/${first.headers.etag}` });
    assert.equal(list.status, 304, 'a list with a weak match');
    const other = await server.api('alice', 'GET', p, null, { 'If-None-Match': '"other"' });
    assert.equal(other.status, 200);
    const neighbour = await server.api('alice', 'GET', `${base()}/slide_files/10/2_1.jpeg`);
    assert.notEqual(neighbour.headers.etag, first.headers.etag);
  });

  test('tenancy and bad tile names: 404 as for a missing object; 401 without identity', async () => {
    const missingWf = await server.api('alice', 'GET', '/api/workflows/987654/jobs/tissue/slide.dzi');
    assertError(missingWf, 404, 'a missing workflow');
    for (const p of ['slide.dzi', 'slide', 'slide_files/12/0_0.jpeg', 'slide_files/0/0_0.jpeg']) {
      const r = await server.api('mallory', 'GET', `${base()}/${p}`);
      assertError(r, 404, `another user's ${p}`);
      assert.equal(r.json.error.code, missingWf.json.error.code);
      assert.equal(r.text.replace(String(id), 'ID'), missingWf.text.replace('987654', 'ID'),
        'answered exactly like a missing workflow');
      assertError(await server.api(null, 'GET', `${base()}/${p}`), 401, `${p} without identity`);
    }
    const job = await server.api('alice', 'GET', `/api/workflows/${id}/jobs/nope/slide.dzi`);
    assertError(job, 404, 'an unknown job');
    assert.match(errorText(job), /nope/);
    const plain = await server.api('alice', 'GET', `/api/workflows/${id}/jobs/plain/slide.dzi`);
    assertError(plain, 404, 'a job without image_path');
    assert.match(errorText(plain), /plain/);
    for (const t of ['99/0_0.jpeg', '13/0_0.jpeg', '12/17_0.jpeg', '12/0_13.jpeg', '0/1_0.jpeg',
      '12/abc.jpeg', '12/0_0.png', '12/0_0.jpg', '12/-1_0.jpeg', '12/+1_0.jpeg', '12/1_0_0.jpeg',
      '12/_0.jpeg', 'x/0_0.jpeg', '-1/0_0.jpeg', '12/0_0.jpeg.jpeg', '12/99999999999999999999_0.jpeg']) {
      const r = await server.api('alice', 'GET', `${base()}/slide_files/${t}`);
      assertError(r, 404, `tile ${t}`);
    }
  });
});
