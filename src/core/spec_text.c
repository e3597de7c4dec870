/*
 * spec_text.c - the normalised spec as compact JSON text, written straight
 * into a buffer (spec.h, spec_to_text).
 *
 * Why not json_dumps(spec_to_json(wf)): that builds an object per job (ten
 * members, a deep copy of its params), then walks it to text and frees it;
 * every submission is stored this way, and on POST /api/workflows it was
 * about a tenth of a request thread's CPU (issue 16). The text is the same
 * byte for byte (test_spec checks it against jansson): the members in
 * spec_to_json's order, strings and integers as jansson writes them
 * (util/jsontext.h, shared with view_text.c), and what has more than one
 * spelling - params, a number that is not whole - still written by jansson.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/spec.h"
#include "util/jsontext.h"

/* The text and whether a part of it could not be written: the parts that
 * have more than one spelling are written by jansson, which can fail. */
typedef struct out {
    jtext t;
    bool failed;
} out;

/* A JSON value as jansson writes it (compact). */
static void put_json(out *o, const json_t *v) {
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0) {
        o->failed = true;
        return;
    }
    jtext_reserve(&o->t, n);
    if (json_dumpb(v, o->t.p + o->t.len, n, JSON_COMPACT | JSON_ENCODE_ANY) != n) {
        o->failed = true;
        return;
    }
    o->t.len += n;
    o->t.p[o->t.len] = '\0';
}

/* As spec_to_json's number_json: a whole number as an integer, any other
 * through jansson (its shortest spelling that reads back the same). */
static void put_number(out *o, double x) {
    if (x == floor(x) && fabs(x) < 9007199254740992.0) {
        jtext_int(&o->t, (long long)x);
        return;
    }
    json_t *r = json_real(x);
    if (r == NULL) o->failed = true;
    else put_json(o, r);
    json_decref(r);
}

static void put_job(out *o, const spec_job *job) {
    jtext *t = &o->t;
    jtext_lit(t, "{\"job_id\":");
    jtext_str(t, job->job_id);
    jtext_lit(t, ",\"job_type\":");
    jtext_str(t, job->job_type);
    if (job->image_path) {
        jtext_lit(t, ",\"image_path\":");
        jtext_str(t, job->image_path);
    }
    jtext_lit(t, ",\"branch\":");
    jtext_str(t, job->branch);
    jtext_lit(t, ",\"depends_on\":[");
    for (size_t k = 0; k < job->n_depends_on; k++) {
        if (k) jtext_put(t, ",", 1);
        jtext_str(t, job->depends_on[k]);
    }
    jtext_lit(t, "],\"params\":");
    /* Most jobs have none: "{}" is what jansson writes of an empty object. */
    if (json_is_object(job->params) && json_object_size(job->params) == 0) jtext_lit(t, "{}");
    else put_json(o, job->params);
    jtext_lit(t, ",\"cpus\":");
    jtext_int(t, job->cpus);
    jtext_lit(t, ",\"timeout_s\":");
    put_number(o, job->timeout_s);
    jtext_lit(t, ",\"max_retries\":");
    jtext_int(t, job->max_retries);
    jtext_lit(t, ",\"retry_delay_s\":");
    put_number(o, job->retry_delay_s);
    jtext_put(t, "}", 1);
}

/* See spec.h. */
char *spec_to_text(const spec_workflow *wf, size_t *len) {
    out o = {0};
    jtext_reserve(&o.t, 256 + wf->n_jobs * 160);
    jtext_lit(&o.t, "{\"name\":");
    jtext_str(&o.t, wf->name);
    jtext_lit(&o.t, ",\"priority\":");
    jtext_int(&o.t, wf->priority);
    jtext_lit(&o.t, ",\"jobs\":[");
    for (size_t i = 0; i < wf->n_jobs; i++) {
        if (i) jtext_put(&o.t, ",", 1);
        put_job(&o, &wf->jobs[i]);
    }
    jtext_lit(&o.t, "]}");
    if (o.failed) {
        free(o.t.p);
        return NULL;
    }
    if (len) *len = o.t.len;
    return o.t.p;
}
