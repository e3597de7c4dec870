// web.mjs - loads the web UI's ES modules (web/app/...) into Node for the
// unit tests in this directory. The modules under test are pure (dom.js
// touches `document` only inside its element builders), so they import in
// Node without a browser; main.js is the exception (it boots the app at import)
// and is not tested here.
//
// Environment:
//   TESSERA_WEB_DIR  the web/ directory to test (default: the repo's web/);
//                    point it at a scratch copy to check that a test fails
//                    when the code is broken.

import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

export const WEB_DIR = path.resolve(process.env.TESSERA_WEB_DIR
  || path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web'));

/** import() of web/<rel>, e.g. importWeb('app/views/dag.js'). */
export function importWeb(rel) {
  return import(pathToFileURL(path.join(WEB_DIR, rel)).href);
}

/** A small seeded PRNG (mulberry32), so a failing random case can be replayed. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int(lo, hi) { return lo + Math.floor(next() * (hi - lo + 1)); }, // inclusive
    pick(xs) { return xs[Math.floor(next() * xs.length)]; },
    chance(p) { return next() < p; },
  };
}

/** The seed of the random tests: TESSERA_TEST_SEED or a fixed default. */
export const SEED = Number(process.env.TESSERA_TEST_SEED || 20240611);
