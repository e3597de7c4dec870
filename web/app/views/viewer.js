// views/viewer.js - results on the slide: OpenSeadragon shows the slide
// from the service's Deep Zoom endpoint (tenant-checked through the
// workflow), and a canvas above it draws the tissue polygons and the cell
// outlines of the workflow's analyses of that image, each toggled. Beside
// it: the summary figures and every result file to download.

import { api } from '../api.js';
import { h, clear, number, bytes } from '../dom.js';
import { indexFeatures, drawIndex } from './overlay.js';

const OSD_BASE = '/vendor/openseadragon/build/openseadragon/';
const MAX_OVERLAY_BYTES = 150 * 1024 * 1024; // bigger files are offered as downloads only
let osdLoading = null;

function loadOsd() {
  if (window.OpenSeadragon) return Promise.resolve(window.OpenSeadragon);
  if (!osdLoading) {
    osdLoading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = `${OSD_BASE}openseadragon.min.js`;
      script.onload = () => resolve(window.OpenSeadragon);
      script.onerror = () => { osdLoading = null; reject(new Error('the OpenSeadragon script did not load (is node_modules installed? `make deps`)')); };
      document.head.append(script);
    });
  }
  return osdLoading;
}

const STYLES = {
  tissue: { stroke: '#1b9e3e', width: 2, fill: 'rgba(27, 158, 62, 0.08)' },
  cells: { stroke: 'rgba(230, 120, 20, 0.9)', width: 1, nucleus: 'rgba(40, 40, 200, 0.35)', dot: 'rgba(230, 80, 0, 0.9)', dotsBelowPx: 4 },
};

export function mount(root, params) {
  const { id, job } = params;
  let alive = true;
  let viewer = null;
  let frame = 0;
  const layers = { tissue: null, cells: null };

  const osd = h('div', { id: 'osd', 'data-tiles-loaded': 0, role: 'region', 'aria-label': 'slide viewer: arrow keys pan, + and − zoom, 0 resets' });
  const overlay = h('canvas', { id: 'overlay', 'data-cells-drawn': 0, 'data-tissue-drawn': 0, 'aria-hidden': 'true' });
  const scale = h('div', { class: 'scalebar', hidden: true });
  const status = h('p', { class: 'muted', id: 'viewer-status', role: 'status' }, 'Loading the slide…');
  const toggleCells = h('input', { type: 'checkbox', id: 'toggle-cells', checked: true, disabled: true });
  const toggleTissue = h('input', { type: 'checkbox', id: 'toggle-tissue', checked: true, disabled: true });
  const summary = h('div', { id: 'summary' });
  const downloads = h('div', { class: 'downloads', id: 'downloads' });
  const title = h('h1', {}, `Results of ${job}`);
  const page = h('div', { id: 'viewer-page', 'data-wf-id': id, 'data-job-id': job },
    h('div', { class: 'page-head' }, title, h('span', { class: 'spacer' }), h('a', { class: 'btn', href: `#/workflows/${id}` }, '← Workflow')),
    status,
    h('div', { class: 'viewer-layout' },
      h('div', { class: 'osd-wrap' }, osd, overlay, scale),
      h('aside', { class: 'side' },
        h('section', { class: 'panel toggles' }, h('h2', {}, 'Overlays'),
          h('label', {}, toggleTissue, h('span', { class: 'swatch', style: `background:${STYLES.tissue.stroke}` }), 'Tissue'),
          h('label', {}, toggleCells, h('span', { class: 'swatch', style: `background:${STYLES.cells.stroke}` }), 'Cells (outline) and nuclei')),
        h('section', { class: 'panel' }, h('h2', {}, 'Summary'), summary),
        h('section', { class: 'panel' }, h('h2', {}, 'Downloads'), downloads))));
  root.append(page);
  toggleCells.addEventListener('change', redraw);
  toggleTissue.addEventListener('change', redraw);

  function notFound(what) {
    alive = false;
    if (viewer) viewer.destroy();
    clear(root).append(h('div', { class: 'panel', id: 'wf-notfound' }, h('h1', {}, `${what} not found`),
      h('p', {}, 'There is no such workflow or job among yours. ', h('a', { href: '#/' }, 'Back to my workflows'), '.')));
  }

  // ---- drawing ----

  function redraw() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function draw() {
    frame = 0;
    if (!viewer || !alive) return;
    const w = osd.clientWidth, hgt = osd.clientHeight, dpr = window.devicePixelRatio || 1;
    if (overlay.width !== Math.round(w * dpr) || overlay.height !== Math.round(hgt * dpr)) {
      overlay.width = Math.round(w * dpr);
      overlay.height = Math.round(hgt * dpr);
      overlay.style.width = `${w}px`;
      overlay.style.height = `${hgt}px`;
    }
    const ctx = overlay.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const item = viewer.world.getItemAt(0);
    if (!item) return;
    const OSD = window.OpenSeadragon;
    const p0 = item.imageToViewerElementCoordinates(new OSD.Point(0, 0));
    const p1 = item.imageToViewerElementCoordinates(new OSD.Point(1000, 0));
    const sx = (p1.x - p0.x) / 1000;
    const a = item.viewerElementToImageCoordinates(new OSD.Point(0, 0));
    const b = item.viewerElementToImageCoordinates(new OSD.Point(w, hgt));
    const view = { sx, ox: p0.x, oy: p0.y, x0: a.x, y0: a.y, x1: b.x, y1: b.y };
    let t = 0, c = 0;
    if (layers.tissue && toggleTissue.checked) t = drawIndex(ctx, layers.tissue, view, STYLES.tissue);
    if (layers.cells && toggleCells.checked) c = drawIndex(ctx, layers.cells, view, STYLES.cells);
    overlay.dataset.tissueDrawn = String(t);
    overlay.dataset.cellsDrawn = String(c);
    drawScale(sx);
  }

  let mpp = 0;
  function drawScale(sx) {
    if (!mpp || !sx) { scale.hidden = true; return; }
    const umPerScreenPx = mpp / sx;
    const target = umPerScreenPx * 120;
    const nice = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000].find((v) => v >= target * 0.5) || 10000;
    scale.hidden = false;
    scale.replaceChildren(nice >= 1000 ? `${nice / 1000} mm` : `${nice} µm`, h('span', { style: `width:${nice / umPerScreenPx}px` }));
  }

  // ---- loading ----

  async function openSlide(info) {
    const OSD = await loadOsd();
    if (!alive) return;
    mpp = info.mpp || 0;
    let tiles = 0;
    viewer = OSD({
      element: osd, prefixUrl: `${OSD_BASE}images/`, tileSources: info.dzi,
      showNavigator: true, navigatorPosition: 'TOP_RIGHT', maxZoomPixelRatio: 2, visibilityRatio: 0.5,
      gestureSettingsMouse: { clickToZoom: false }, loadTilesWithAjax: true, ajaxWithCredentials: true,
    });
    // Inside OpenSeadragon's drawing layer: below its buttons and navigator.
    viewer.canvas.append(overlay);
    viewer.addHandler('tile-loaded', () => { osd.dataset.tilesLoaded = String(++tiles); });
    viewer.addHandler('open-failed', (e) => { status.textContent = `The slide could not be shown: ${e.message}`; });
    for (const ev of ['open', 'animation', 'update-viewport', 'resize']) viewer.addHandler(ev, redraw);
  }

  async function loadLayer(kind, jobId, file) {
    if (file.size > MAX_OVERLAY_BYTES) {
      return `${file.name} of ${jobId} is ${bytes(file.size)}: too large to draw in the browser; download it for QuPath.`;
    }
    const res = await fetch(file.url, { credentials: 'same-origin' });
    if (!res.ok) throw new Error(`${file.name}: ${res.status}`);
    const geo = await res.json();
    layers[kind] = indexFeatures(geo, { nuclei: kind === 'cells' });
    (kind === 'cells' ? toggleCells : toggleTissue).disabled = false;
    redraw();
    return null;
  }

  async function showResults(j) {
    const res = await api.results(id, j.job_id);
    const files = res.files || [];
    downloads.append(h('h3', { class: 'muted' }, j.job_id),
      ...files.map((f) => h('a', { class: 'download', href: f.url, download: f.name }, `${f.name} (${bytes(f.size)})`)));
    const sumFile = files.find((f) => f.name === 'summary.json');
    if (sumFile) {
      const s = await (await fetch(sumFile.url, { credentials: 'same-origin' })).json();
      summary.append(figures(j, s));
    }
    const kind = j.job_type === 'cell_segmentation' ? 'cells' : 'tissue';
    const geo = files.find((f) => f.name === (kind === 'cells' ? 'cells.geojson' : 'tissue.geojson'));
    return geo ? loadLayer(kind, j.job_id, geo) : null;
  }

  (async () => {
    let wf;
    try {
      wf = await api.workflow(id);
    } catch (err) {
      if (err.status === 404) return notFound(`Workflow ${id}`);
      status.textContent = err.message;
      return;
    }
    const target = (wf.jobs || []).find((x) => x.job_id === job);
    if (!target || !target.image_path) return notFound(`Job ${job} of workflow ${id}`);
    title.textContent = `${target.image_path.split('/').pop()} — ${wf.name}`;
    try {
      const info = await api.slideInfo(id, job);
      if (!alive) return;
      await openSlide(info);
      status.textContent = `${info.width} × ${info.height} px${info.mpp ? ` at ${number(info.mpp, 3)} µm/px` : ''}. Drag to pan, scroll to zoom.`;
    } catch (err) {
      status.textContent = `The slide could not be shown: ${err.message}`;
    }
    const related = wf.jobs.filter((x) => x.image_path === target.image_path && x.state === 'succeeded' &&
      (x.job_type === 'tissue_mask' || x.job_type === 'cell_segmentation'));
    const notes = [];
    for (const j of related) {
      try {
        const note = await showResults(j);
        if (note) notes.push(note);
      } catch (err) {
        notes.push(`Results of ${j.job_id}: ${err.message}`);
      }
    }
    if (!related.length) summary.append(h('p', { class: 'muted' }, 'No finished analyses of this slide in this workflow yet.'));
    if (notes.length) status.textContent += ` ${notes.join(' ')}`;
  })();

  return {
    onEvent() {},
    onResync() {},
    unmount() {
      alive = false;
      if (frame) cancelAnimationFrame(frame);
      if (viewer) viewer.destroy();
    },
  };
}

function figures(j, s) {
  const rows = j.job_type === 'cell_segmentation' ? [
    ['Cells', number(s.count)],
    ['Density', s.density_per_mm2 !== undefined ? `${number(s.density_per_mm2)} /mm²` : '—'],
    ['Mean nucleus area', s.mean_nucleus_area_um2 !== undefined ? `${number(s.mean_nucleus_area_um2, 1)} µm²` : '—'],
    ['Area analysed', s.area_mm2 !== undefined ? `${number(s.area_mm2, 2)} mm² (${s.area_source || ''})` : '—'],
    ['Tiles read', s.tiles !== undefined ? `${number(s.tiles_read ?? s.tiles)} of ${number(s.tiles)}` : '—'],
    ['Time', s.seconds !== undefined ? `${number(s.seconds, 1)} s on ${s.threads} threads` : '—'],
  ] : [
    ['Tissue area', s.tissue_area_mm2 !== undefined ? `${number(s.tissue_area_mm2, 2)} mm²` : '—'],
    ['Tissue fraction', s.tissue_fraction !== undefined ? `${number(s.tissue_fraction * 100, 1)} %` : '—'],
    ['Regions', s.regions !== undefined ? number(s.regions) : '—'],
    ['Method', s.method ? `${s.method}${s.threshold !== undefined ? `, threshold ${number(s.threshold, 1)}` : ''}` : '—'],
    ['Resolution', s.analysis_mpp ? `${number(s.analysis_mpp, 2)} µm/px` : '—'],
  ];
  return h('div', { class: 'figure-block', 'data-job-id': j.job_id },
    h('h3', { class: 'muted' }, `${j.job_id} (${j.job_type})`),
    h('dl', { class: 'figures' }, rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
}
