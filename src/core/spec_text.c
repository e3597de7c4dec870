/*
 * spec_text.c - the normalised spec as compact JSON text, written straight
 * into a buffer (spec.h, spec_to_text).
 *
 * Why not json_dumps(spec_to_json(wf)): that builds an object per job (ten
 * members, a deep copy of its params), then walks it to text and frees it;
 * every submission is stored this way, and on POST /api/workflows it was
 * about a tenth of a request thread's CPU (issue 16). The text is the same
 * byte for byte (test_spec checks it against jansson): the members in
 * spec_to_json's order, strings escaped as jansson escapes them, and what
 * has more than one spelling - params, a number that is not whole - still
 * written by jansson.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "util/util.h"

typedef struct out {
    char *p;
    size_t len, cap;
    bool failed; /* jansson could not write a part */
} out;

static void put(out *o, const char *s, size_t n) {
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->p = ts_realloc(o->p, o->cap);
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void put_lit(out *o, const char *s) {
    put(o, s, strlen(s));
}

/* A JSON string as jansson writes it without flags: '"' and '\' escaped,
 * control characters as \b \f \n \r \t or \u00XX, everything else (UTF-8
 * included; the parser checked it) as it is. */
static void put_str(out *o, const char *s) {
    put(o, "\"", 1);
    const char *run = s;
    for (const char *c = s; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (u >= 0x20 && u != '"' && u != '\\') continue;
        put(o, run, (size_t)(c - run));
        run = c + 1;
        char esc[8];
        switch (u) {
        case '"': put_lit(o, "\\\""); break;
        case '\\': put_lit(o, "\\\\"); break;
        case '\b': put_lit(o, "\\b"); break;
        case '\f': put_lit(o, "\\f"); break;
        case '\n': put_lit(o, "\\n"); break;
        case '\r': put_lit(o, "\\r"); break;
        case '\t': put_lit(o, "\\t"); break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04X", u);
            put_lit(o, esc);
        }
    }
    put(o, run, strlen(run));
    put(o, "\"", 1);
}

static void put_int(out *o, long long v) {
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%lld", v);
    put(o, buf, (size_t)n);
}

/* A JSON value as jansson writes it (compact). */
static void put_json(out *o, const json_t *v) {
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0) {
        o->failed = true;
        return;
    }
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->p = ts_realloc(o->p, o->cap);
    }
    if (json_dumpb(v, o->p + o->len, n, JSON_COMPACT | JSON_ENCODE_ANY) != n) {
        o->failed = true;
        return;
    }
    o->len += n;
    o->p[o->len] = '\0';
}

/* As spec_to_json's number_json: a whole number as an integer, any other
 * through jansson (its shortest spelling that reads back the same). */
static void put_number(out *o, double x) {
    if (x == floor(x) && fabs(x) < 9007199254740992.0) {
        put_int(o, (long long)x);
        return;
    }
    json_t *r = json_real(x);
    if (r == NULL) o->failed = true;
    else put_json(o, r);
    json_decref(r);
}

static void put_job(out *o, const spec_job *job) {
    put_lit(o, "{\"job_id\":");
    put_str(o, job->job_id);
    put_lit(o, ",\"job_type\":");
    put_str(o, job->job_type);
    if (job->image_path) {
        put_lit(o, ",\"image_path\":");
        put_str(o, job->image_path);
    }
    put_lit(o, ",\"branch\":");
    put_str(o, job->branch);
    put_lit(o, ",\"depends_on\":[");
    for (size_t k = 0; k < job->n_depends_on; k++) {
        if (k) put(o, ",", 1);
        put_str(o, job->depends_on[k]);
    }
    put_lit(o, "],\"params\":");
    /* Most jobs have none: "{}" is what jansson writes of an empty object. */
    if (json_is_object(job->params) && json_object_size(job->params) == 0) put_lit(o, "{}");
    else put_json(o, job->params);
    put_lit(o, ",\"cpus\":");
    put_int(o, job->cpus);
    put_lit(o, ",\"timeout_s\":");
    put_number(o, job->timeout_s);
    put_lit(o, ",\"max_retries\":");
    put_int(o, job->max_retries);
    put_lit(o, ",\"retry_delay_s\":");
    put_number(o, job->retry_delay_s);
    put(o, "}", 1);
}

/* See spec.h. */
char *spec_to_text(const spec_workflow *wf, size_t *len) {
    out o = {.cap = 256 + wf->n_jobs * 160};
    o.p = ts_malloc(o.cap);
    o.p[0] = '\0';
    put_lit(&o, "{\"name\":");
    put_str(&o, wf->name);
    put_lit(&o, ",\"priority\":");
    put_int(&o, wf->priority);
    put_lit(&o, ",\"jobs\":[");
    for (size_t i = 0; i < wf->n_jobs; i++) {
        if (i) put(&o, ",", 1);
        put_job(&o, &wf->jobs[i]);
    }
    put_lit(&o, "]}");
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    if (len) *len = o.len;
    return o.p;
}
