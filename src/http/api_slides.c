/*
 * api_slides.c - the slides behind the web UI: the list of slides in the
 * data roots with thumbnails, and a job's image as Deep Zoom (descriptor,
 * tiles, and the facts a scale bar needs).
 *
 * Data roots are service-wide: every user sees the same list, as every user
 * may submit any slide in them (DESIGN §4). A slide is reached either by a
 * path that passes the submission's check (listing, thumbnails) or through
 * the caller's own workflow and job (Deep Zoom), so another user's job is
 * the same 404 as a missing one.
 *
 * Drawing is the expensive part, so a worker keeps open handles and encoded
 * images (slide_cache.h) under keys that carry the file's stamp (path,
 * mtime, size); the same key, hashed, is the strong ETag, and a matching
 * If-None-Match is answered 304 before anything is drawn.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "http/api.h"
#include "image/deepzoom.h"
#include "image/jpegio.h"
#include "image/slide_render.h"
#include "util/util.h"

#define LIST_MAX 500            /* slides + skipped in one listing */
#define LIST_DEPTH 4            /* directories below a root that are walked */
#define WALK_MAX_ENTRIES 200000 /* directory entries looked at per listing */
#define THUMB_DEFAULT 256
#define THUMB_MIN 32
#define THUMB_MAX 1024
#define JPEG_QUALITY 80
#define TILE_CACHE_CONTROL "private, max-age=3600"
#define THUMB_CACHE_CONTROL "private, max-age=300"

static const char *const slide_extensions[] = {".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu",
                                               ".scn", ".mrxs", ".svslide", ".bif"};

/* ---------------------------------------------------------------- helpers */

/* "path|mtime|size|what": a cache key for something made from this version
 * of the file. */
static char *stamp_key(const slide_stamp *st, const char *what) {
    return ts_asprintf("%s|%lld|%lld|%s", st->path, (long long)st->mtime_ns, (long long)st->size,
                       what);
}

/* A strong ETag for a cache key: the representation is a pure function of
 * the key (same file version, same tile or size, same encoder). */
static void etag_for(const char *key, char *out, size_t n) {
    snprintf(out, n, "\"%016llx\"", (unsigned long long)slide_cache_hash(key));
}

/* r with the caching headers: the validator and how long a browser may
 * keep it. */
static http_reply with_cache_headers(http_reply r, const char *etag, const char *cache_control) {
    ts_strlcpy(r.etag, etag, sizeof(r.etag));
    ts_strlcpy(r.cache_control, cache_control, sizeof(r.cache_control));
    return r;
}

/* A 304 without a body when If-None-Match names etag, so a client's repeat
 * costs no drawing and no cache lookup; false when the caller must produce
 * the body. Called after the checks of the request (tenancy, range), never
 * before: a 304 must not tell what a 404 would hide. */
static bool not_modified(http_request *req, const char *etag, const char *cache_control,
                         http_reply *out) {
    const char *inm = http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (!inm || !http_etag_matches(inm, etag)) return false;
    *out = with_cache_headers(http_bytes(304, NULL, NULL, 0), etag, cache_control);
    return true;
}

/* Draws the level-0 region (x, y, w, h) read at level into a dw x dh JPEG
 * and answers it, keeping a copy under key. A failed read drops the handle:
 * OpenSlide latches errors, and the next request should reopen the file. */
static http_reply draw_and_reply(http_request *req, slide *s, const slide_stamp *st, int level,
                                 const deepzoom_rect *region, int dw, int dh, const char *key,
                                 const char *etag, const char *cache_control) {
    char err[TS_ERRLEN];
    uint32_t *px = ts_malloc((size_t)dw * (size_t)dh * sizeof(uint32_t));
    unsigned char *jpeg = NULL;
    size_t len = 0;
    http_reply r;
    if (slide_render(s, level, region->x, region->y, region->w, region->h, px, dw, dh, err,
                     sizeof(err)) != TS_OK) {
        slide_cache_drop(req->ctx->slides, st->path);
        r = http_error(500, "slide_unreadable", "the slide could not be read here",
                       json_pack("{ss}", "reason", err));
        goto cleanup;
    }
    if (jpegio_encode(px, dw, dh, JPEG_QUALITY, &jpeg, &len, err, sizeof(err)) != TS_OK) {
        r = http_error(500, "encode_failed", "the image could not be encoded",
                       json_pack("{ss}", "reason", err));
        goto cleanup;
    }
    slide_cache_put(req->ctx->slides, SLIDE_CACHE_IMAGES, key, jpeg, len);
    r = with_cache_headers(http_bytes(200, "image/jpeg", jpeg, len), etag, cache_control);
cleanup:
    free(px);
    return r;
}

/* Percent-encodes text for a query value: everything but RFC 3986's
 * unreserved characters, so "/" becomes %2F (as encodeURIComponent). */
static char *url_encode(const char *text) {
    static const char hex[] = "0123456789ABCDEF";
    char *out = ts_malloc(strlen(text) * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ---------------------------------------------------------------- listing */

typedef struct candidate {
    char *path;       /* root + relative path, as found */
    const char *root; /* the resolved root it was found under */
} candidate;

typedef struct walk {
    const char *data_roots;
    candidate *found;
    size_t n, cap;
    struct stat *dirs; /* directories walked (dev, ino): no loop, no repeat */
    size_t ndirs, dirs_cap;
    size_t entries;
    bool truncated;
} walk;

static bool has_slide_extension(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    for (size_t i = 0; i < sizeof(slide_extensions) / sizeof(slide_extensions[0]); i++)
        if (strcasecmp(dot, slide_extensions[i]) == 0) return true;
    return false;
}

/* Records a directory as walked; false when it already was. */
static bool first_visit(walk *w, const struct stat *st) {
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].st_dev == st->st_dev && w->dirs[i].st_ino == st->st_ino) return false;
    if (w->ndirs == w->dirs_cap) {
        w->dirs_cap = w->dirs_cap ? w->dirs_cap * 2 : 32;
        w->dirs = ts_realloc(w->dirs, w->dirs_cap * sizeof(*w->dirs));
    }
    w->dirs[w->ndirs++] = *st;
    return true;
}

/* Walks dir (depth levels below root): files with a slide extension become
 * candidates; dot files are skipped; a symlinked directory is followed only
 * when it resolves inside a data root. */
static void walk_dir(walk *w, const char *dir, const char *root, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e = readdir(d); e && !w->truncated; e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        if (++w->entries > WALK_MAX_ENTRIES) {
            w->truncated = true;
            break;
        }
        char *path = ts_asprintf("%s/%s", dir, e->d_name);
        struct stat lst, st;
        bool ok = lstat(path, &lst) == 0 && stat(path, &st) == 0;
        if (ok && S_ISDIR(st.st_mode) && depth < LIST_DEPTH) {
            char real[PATH_MAX], err[TS_ERRLEN];
            bool inside = !S_ISLNK(lst.st_mode) ||
                          slide_resolve_path(path, w->data_roots, real, err, sizeof(err)) == TS_OK;
            if (inside && first_visit(w, &st)) walk_dir(w, path, root, depth + 1);
        } else if (ok && S_ISREG(st.st_mode) && has_slide_extension(e->d_name)) {
            if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 64;
                w->found = ts_realloc(w->found, w->cap * sizeof(*w->found));
            }
            w->found[w->n++] = (candidate){.path = path, .root = root};
            path = NULL;
        }
        free(path);
    }
    closedir(d);
}

static int candidate_cmp(const void *a, const void *b) {
    return strcmp(((const candidate *)a)->path, ((const candidate *)b)->path);
}

/* What the listing knows of one file: {"ok":true, width, height, mpp,
 * levels, vendor} or {"ok":false, reason}, from the cache when this
 * version of the file was described before. Opening is the submission's
 * check (slide_open_checked), so "listed" means "can be submitted". */
static json_t *describe(http_request *req, const char *path, const slide_stamp *st) {
    char *key = stamp_key(st, "meta");
    size_t len;
    char *hit = slide_cache_get(req->ctx->slides, SLIDE_CACHE_META, key, &len);
    json_t *meta = hit ? json_loadb(hit, len, 0, NULL) : NULL;
    free(hit);
    if (!meta) {
        char err[TS_ERRLEN];
        slide *s = NULL;
        if (slide_open_checked(path, req->ctx->cfg->data_roots, &s, err, sizeof(err)) == TS_OK) {
            const slide_info *in = slide_get_info(s);
            meta = json_pack("{sb sI sI so si ss}", "ok", 1, "width", (json_int_t)in->w, "height",
                             (json_int_t)in->h, "mpp",
                             in->mpp_x > 0 ? json_real(in->mpp_x) : json_null(), "levels",
                             in->levels, "vendor", in->vendor);
            slide_close(s);
        } else {
            meta = json_pack("{sb ss}", "ok", 0, "reason", err);
        }
        char *text = json_dumps(meta, JSON_COMPACT);
        if (text) slide_cache_put(req->ctx->slides, SLIDE_CACHE_META, key, text, strlen(text));
        free(text);
    }
    free(key);
    return meta;
}

/* Appends the listing's entry for one candidate to slides or skipped. */
static void list_one(http_request *req, const candidate *c, json_t *slides, json_t *skipped) {
    slide_stamp st;
    char err[TS_ERRLEN], when[40];
    if (slide_stamp_of(c->path, &st, err, sizeof(err)) != TS_OK) return; /* gone meanwhile */
    json_t *meta = describe(req, c->path, &st);
    const char *name = strrchr(c->path, '/') ? strrchr(c->path, '/') + 1 : c->path;
    if (!json_is_true(json_object_get(meta, "ok"))) {
        json_array_append_new(skipped, json_pack("{ss ss sO}", "name", name, "image_path",
                                                 c->path, "reason",
                                                 json_object_get(meta, "reason")));
        json_decref(meta);
        return;
    }
    ts_iso8601((double)st.mtime_ns / 1e9, when, sizeof(when));
    char *enc = url_encode(c->path);
    char *thumb = ts_asprintf("/api/slides/thumbnail?path=%s", enc);
    json_t *o = json_pack("{ss ss ss sI ss ss}", "name", name, "image_path", c->path, "root",
                          c->root, "size_bytes", (json_int_t)st.size, "modified_at", when,
                          "thumbnail", thumb);
    const char *copy[] = {"width", "height", "mpp", "levels", "vendor"};
    for (size_t i = 0; i < sizeof(copy) / sizeof(copy[0]); i++)
        json_object_set(o, copy[i], json_object_get(meta, copy[i]));
    json_array_append_new(slides, o);
    free(thumb);
    free(enc);
    json_decref(meta);
}

http_reply api_slides_list(http_request *req) {
    walk w = {.data_roots = req->ctx->cfg->data_roots};
    char *roots = ts_strdup(req->ctx->cfg->data_roots);
    char (*real_roots)[PATH_MAX] = ts_calloc(strlen(roots) / 2 + 1, PATH_MAX);
    size_t nroots = 0;
    char *save = NULL;
    for (char *r = strtok_r(roots, ":", &save); r; r = strtok_r(NULL, ":", &save)) {
        struct stat st;
        if (realpath(r, real_roots[nroots]) == NULL || stat(real_roots[nroots], &st) != 0 ||
            !S_ISDIR(st.st_mode) || !first_visit(&w, &st))
            continue; /* a missing root lists nothing; a repeated one lists once */
        walk_dir(&w, real_roots[nroots], real_roots[nroots], 0);
        nroots++;
    }
    qsort(w.found, w.n, sizeof(*w.found), candidate_cmp);
    json_t *slides = json_array(), *skipped = json_array();
    bool truncated = w.truncated || w.n > LIST_MAX;
    for (size_t i = 0; i < w.n && i < LIST_MAX; i++) list_one(req, &w.found[i], slides, skipped);
    for (size_t i = 0; i < w.n; i++) free(w.found[i].path);
    free(w.found);
    free(w.dirs);
    free(real_roots);
    free(roots);
    return http_json(200, json_pack("{so so sb}", "slides", slides, "skipped", skipped,
                                    "truncated", truncated));
}

/* ---------------------------------------------------------------- thumbnails */

http_reply api_slide_thumbnail(http_request *req) {
    const char *path = http_query(req, "path"), *size_q = http_query(req, "size");
    long size = THUMB_DEFAULT;
    char real[PATH_MAX], err[TS_ERRLEN];
    if (!path || !path[0])
        return http_error(400, "invalid_query",
                          "path: required, the image_path of a slide (GET /api/slides)",
                          json_pack("{ss}", "field", "path"));
    if (size_q && ts_parse_int(size_q, THUMB_MIN, THUMB_MAX, &size) != TS_OK)
        return http_error(400, "invalid_query", "size: must be an integer from 32 to 1024",
                          json_pack("{ss}", "field", "size"));
    /* Outside the roots, missing, or a directory: one answer, so the
     * endpoint tells nothing about files outside the data roots. */
    if (slide_resolve_path(path, req->ctx->cfg->data_roots, real, err, sizeof(err)) != TS_OK)
        return http_error(404, "not_found", "no slide at this path in the data roots",
                          json_pack("{ss}", "field", "path"));
    slide *s = NULL;
    slide_stamp st;
    if (slide_cache_open(req->ctx->slides, real, req->ctx->cfg->data_roots, &s, &st, err,
                         sizeof(err)) != TS_OK)
        return http_error(404, "not_found", "no slide at this path in the data roots",
                          json_pack("{ss ss}", "field", "path", "reason", err));
    char what[32], etag[40];
    snprintf(what, sizeof(what), "thumbnail|%ld", size);
    char *key = stamp_key(&st, what);
    etag_for(key, etag, sizeof(etag));
    http_reply r;
    size_t len;
    void *hit;
    if (not_modified(req, etag, THUMB_CACHE_CONTROL, &r)) goto done;
    if ((hit = slide_cache_get(req->ctx->slides, SLIDE_CACHE_IMAGES, key, &len)) != NULL) {
        r = with_cache_headers(http_bytes(200, "image/jpeg", hit, len), etag, THUMB_CACHE_CONTROL);
        goto done;
    }
    /* The long side becomes size pixels, the short one keeps the aspect. */
    const slide_info *in = slide_get_info(s);
    int64_t longest = in->w > in->h ? in->w : in->h;
    int tw = (int)((in->w * size + longest / 2) / longest);
    int th = (int)((in->h * size + longest / 2) / longest);
    if (tw < 1) tw = 1;
    if (th < 1) th = 1;
    deepzoom_rect all = {0, 0, in->w, in->h};
    int level = slide_best_level(s, (double)longest / (double)size);
    r = draw_and_reply(req, s, &st, level, &all, tw, th, key, etag, THUMB_CACHE_CONTROL);
done:
    free(key);
    slide_cache_release(req->ctx->slides, s);
    return r;
}

/* ---------------------------------------------------------------- Deep Zoom */

typedef struct job_slide {
    slide *s;
    slide_stamp stamp;
    deepzoom dz;
    int64_t workflow_id;
    char job_id[65];
    char *image_path;
} job_slide;

/* The caller's workflow (params[0]), its job (params[1]) and that job's
 * slide, open. 404 for someone else's or a missing workflow (the same
 * answer), an unknown job, a job without image_path, or an image that is no
 * longer readable inside the data roots. */
static bool load_job_slide(http_request *req, job_slide *js, http_reply *fail) {
    store_workflow *wf = NULL;
    char real[PATH_MAX], err[TS_ERRLEN], msg[256];
    *js = (job_slide){0};
    if (!api_load_workflow(req, &wf, fail)) return false;
    int idx = spec_find_job(wf->spec, req->params[1]);
    const char *image = idx >= 0 ? wf->spec->jobs[idx].image_path : NULL;
    js->workflow_id = wf->id;
    ts_strlcpy(js->job_id, req->params[1], sizeof(js->job_id));
    js->image_path = image ? ts_strdup(image) : NULL;
    store_workflow_free(wf);
    if (idx < 0) {
        *fail = api_not_found("job", req->params[1]);
        return false;
    }
    if (!js->image_path) {
        snprintf(msg, sizeof(msg), "job %s has no image_path", js->job_id);
        *fail = http_error(404, "not_found", msg, json_pack("{ss}", "job_id", js->job_id));
        return false;
    }
    const char *roots = req->ctx->cfg->data_roots;
    if (slide_resolve_path(js->image_path, roots, real, err, sizeof(err)) != TS_OK ||
        slide_cache_open(req->ctx->slides, real, roots, &js->s, &js->stamp, err,
                         sizeof(err)) != TS_OK ||
        deepzoom_init(&js->dz, slide_get_info(js->s)->w, slide_get_info(js->s)->h,
                      DEEPZOOM_TILE_SIZE, DEEPZOOM_OVERLAP, err, sizeof(err)) != TS_OK) {
        snprintf(msg, sizeof(msg), "the image of job %s cannot be shown", js->job_id);
        *fail = http_error(404, "not_found", msg,
                           json_pack("{ss ss ss}", "job_id", js->job_id, "image_path",
                                     js->image_path, "reason", err));
        return false;
    }
    return true;
}

static void job_slide_done(http_request *req, job_slide *js) {
    free(js->image_path);
    slide_cache_release(req->ctx->slides, js->s); /* the handle belongs to the cache */
}

http_reply api_job_slide(http_request *req) {
    job_slide js;
    http_reply r;
    if (!load_job_slide(req, &js, &r)) goto done;
    const slide_info *in = slide_get_info(js.s);
    char *dzi = ts_asprintf("/api/workflows/%lld/jobs/%s/slide.dzi", (long long)js.workflow_id,
                            js.job_id);
    r = http_json(200, json_pack("{sI sI so so si si si ss ss ss}", "width", (json_int_t)in->w,
                                 "height", (json_int_t)in->h, "mpp",
                                 in->mpp_x > 0 ? json_real(in->mpp_x) : json_null(), "mpp_y",
                                 in->mpp_y > 0 ? json_real(in->mpp_y) : json_null(), "tile_size",
                                 js.dz.tile_size, "overlap", js.dz.overlap, "levels",
                                 deepzoom_levels(&js.dz), "format", "jpeg", "dzi", dzi,
                                 "image_path", js.image_path));
    free(dzi);
done:
    job_slide_done(req, &js);
    return r;
}

http_reply api_job_slide_dzi(http_request *req) {
    job_slide js;
    http_reply r;
    if (!load_job_slide(req, &js, &r)) goto done;
    char *key = stamp_key(&js.stamp, "dzi");
    char etag[40];
    etag_for(key, etag, sizeof(etag));
    free(key);
    if (not_modified(req, etag, TILE_CACHE_CONTROL, &r)) goto done;
    char *xml = ts_asprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                            "<Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" "
                            "Format=\"jpeg\" Overlap=\"%d\" TileSize=\"%d\">"
                            "<Size Width=\"%lld\" Height=\"%lld\"/></Image>\n",
                            js.dz.overlap, js.dz.tile_size, (long long)js.dz.w,
                            (long long)js.dz.h);
    r = with_cache_headers(http_bytes(200, "application/xml", xml, strlen(xml)), etag,
                           TILE_CACHE_CONTROL);
done:
    job_slide_done(req, &js);
    return r;
}

/* A decimal number of at most 18 digits and nothing else (no sign, no
 * space: "+1" and " 1" name no tile). */
static bool parse_index(const char *text, size_t len, int64_t *out) {
    if (len == 0 || len > 18) return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') return false;
        v = v * 10 + (text[i] - '0');
    }
    *out = v;
    return true;
}

/* "COL_ROW.jpeg" into col and row. */
static bool parse_tile_name(const char *name, int64_t *col, int64_t *row) {
    const char *us = strchr(name, '_');
    size_t len = strlen(name), ext = strlen(".jpeg");
    if (!us || len <= ext || strcmp(name + len - ext, ".jpeg") != 0) return false;
    const char *row_start = us + 1;
    return parse_index(name, (size_t)(us - name), col) &&
           parse_index(row_start, (size_t)(name + len - ext - row_start), row);
}

http_reply api_job_slide_tile(http_request *req) {
    job_slide js;
    http_reply r;
    int64_t level, col, row;
    deepzoom_plan plan;
    slide_level *levels = NULL;
    char *key = NULL;
    if (!load_job_slide(req, &js, &r)) goto done;
    const char *level_text = req->params[2], *tile_name = req->params[3];
    int nlevels = slide_get_info(js.s)->levels;
    levels = ts_malloc((size_t)nlevels * sizeof(*levels));
    for (int i = 0; i < nlevels; i++) levels[i] = *slide_get_level(js.s, i);
    if (!parse_index(level_text, strlen(level_text), &level) || level > js.dz.max_level ||
        !parse_tile_name(tile_name, &col, &row) ||
        !deepzoom_plan_tile(&js.dz, (int)level, col, row, levels, nlevels, &plan)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "tile %.40s/%.80s not found: levels are 0 to %d", level_text,
                 tile_name, js.dz.max_level);
        r = http_error(404, "not_found", msg, NULL);
        goto done;
    }
    char what[96], etag[40];
    snprintf(what, sizeof(what), "dz|%d|%d|%d|%lld|%lld", js.dz.tile_size, js.dz.overlap,
             (int)level, (long long)col, (long long)row);
    key = stamp_key(&js.stamp, what);
    etag_for(key, etag, sizeof(etag));
    size_t len;
    void *hit;
    if (not_modified(req, etag, TILE_CACHE_CONTROL, &r)) goto done;
    if ((hit = slide_cache_get(req->ctx->slides, SLIDE_CACHE_IMAGES, key, &len)) != NULL) {
        r = with_cache_headers(http_bytes(200, "image/jpeg", hit, len), etag, TILE_CACHE_CONTROL);
        goto done;
    }
    r = draw_and_reply(req, js.s, &js.stamp, plan.slide_level, &plan.region, (int)plan.tile.w,
                       (int)plan.tile.h, key, etag, TILE_CACHE_CONTROL);
done:
    free(levels);
    free(key);
    job_slide_done(req, &js);
    return r;
}
