/*
 * view_text.c - a workflow's view written straight to JSON text (view.h,
 * view_workflow_text): the bytes json_dumps(JSON_COMPACT) gives for
 * view_workflow_page with view_add_attempts, without the hundreds of
 * thousands of jansson values a 10,000-job view builds and frees (issue 16:
 * building them was most of a large GET's time).
 *
 * The same bytes, not just the same JSON: tests/unit/test_view_text.c
 * compares the two for workflows in every state. So this file follows
 * jansson's output rules: keys in insertion order; strings and integers
 * as util/jsontext.h writes them (jansson's escaping, shared with
 * spec_text.c); a string that is not valid UTF-8 is one jansson
 * refuses, so its key (or, inside json_pack, its whole object) is left out;
 * reals as "%.17g" with ".0" added when neither '.' nor 'e' appears and
 * the exponent without '+' or leading zeros.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reasons.h"
#include "util/jsontext.h"
#include "util/util.h"
#include "view/view.h"

/* Whether s is UTF-8 as jansson accepts it (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static bool utf8_valid(const unsigned char *s) {
    while (*s) {
        unsigned c = *s;
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            s++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        s += n + 1;
    }
    return true;
}

/* ,"key":"value" - left out, as jansson leaves out a value it refuses,
 * when value is NULL or not UTF-8. */
static void put_key_str(jtext *t, const char *key, const char *value) {
    if (!value || !utf8_valid((const unsigned char *)value)) return;
    jtext_lit(t, key);
    jtext_str(t, value);
}

/* jansson's real: "%.17g", a ".0" when it would read as an integer, the
 * exponent without '+' and leading zeros. */
static void put_real(jtext *t, double v) {
    if (v == 0 && !signbit(v)) { /* most jobs' progress: not started, or done */
        jtext_lit(t, "0.0");
        return;
    }
    if (v == 1) {
        jtext_lit(t, "1.0");
        return;
    }
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof(buf) - 3) return;
    size_t len = (size_t)n;
    if (!strchr(buf, '.') && !strchr(buf, 'e')) {
        memcpy(buf + len, ".0", 3);
        len += 2;
    }
    char *e = strchr(buf, 'e');
    if (e) {
        char *start = e + 1, *end = start + 1;
        if (*start == '-') start++;
        while (*end == '0') end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - buf) + 1);
            len -= (size_t)(end - start);
        }
    }
    jtext_put(t, buf, len);
}

/* ,"key":<real> - left out for a value jansson refuses (not finite). */
static void put_key_real(jtext *t, const char *key, double v) {
    if (!isfinite(v)) return;
    jtext_lit(t, key);
    put_real(t, v);
}

static void put_time(jtext *t, double v) {
    if (v <= 0) {
        jtext_lit(t, "null");
        return;
    }
    char buf[40];
    view_time(v, buf, sizeof(buf));
    jtext_str(t, buf);
}

/* The attempts of job i: a[*k..] while their job index is i (the store
 * gives them ordered by job, then attempt). */
static void put_attempts(jtext *t, const store_attempt *a, size_t n, size_t *k, size_t i) {
    jtext_lit(t, ",\"attempts\":[");
    bool first = true;
    while (*k < n && a[*k].job_index < (int32_t)i) (*k)++;
    for (; *k < n && a[*k].job_index == (int32_t)i; (*k)++) {
        const store_attempt *x = &a[*k];
        /* json_pack refuses the whole attempt when a string is not UTF-8 */
        if (!utf8_valid((const unsigned char *)x->outcome) ||
            !utf8_valid((const unsigned char *)x->reason))
            continue;
        jtext_lit(t, first ? "{\"attempt\":" : ",{\"attempt\":");
        first = false;
        jtext_int(t, x->attempt);
        put_key_str(t, ",\"outcome\":", x->outcome);
        put_key_str(t, ",\"reason\":", x->reason);
        jtext_lit(t, ",\"started_at\":");
        put_time(t, x->started_at);
        jtext_lit(t, ",\"finished_at\":");
        put_time(t, x->finished_at);
        jtext_lit(t, ",\"exit_code\":");
        if (x->exit_code >= 0) jtext_int(t, x->exit_code);
        else jtext_lit(t, "null");
        if (x->external_id[0]) put_key_str(t, ",\"external_id\":", x->external_id);
        jtext_put(t, "}", 1);
    }
    jtext_put(t, "]", 1);
}

/* One job, as view.c's view_job with its attempts. */
static void put_job(jtext *t, const store_workflow *wf, size_t i, const job_state *states,
                    const store_queue_stats *stats, const view_limits *lim, double now) {
    const store_job *j = &wf->jobs[i];
    const spec_job *sj = &wf->spec->jobs[i];
    jtext_lit(t, "{\"job_id\":");
    jtext_str(t, sj->job_id);
    jtext_lit(t, ",\"job_type\":");
    jtext_str(t, sj->job_type);
    jtext_lit(t, ",\"branch\":");
    jtext_str(t, sj->branch);
    jtext_lit(t, ",\"depends_on\":[");
    bool first = true;
    for (size_t k = 0; k < sj->n_depends_on; k++) {
        if (!utf8_valid((const unsigned char *)sj->depends_on[k])) continue;
        if (!first) jtext_put(t, ",", 1);
        first = false;
        jtext_str(t, sj->depends_on[k]);
    }
    jtext_lit(t, "],\"state\":");
    jtext_str(t, job_state_name(j->state));
    jtext_lit(t, ",\"attempt\":");
    jtext_int(t, j->attempt);
    jtext_lit(t, ",\"cpus\":");
    jtext_int(t, sj->cpus);
    jtext_lit(t, ",\"progress\":");
    put_real(t, j->progress);
    jtext_lit(t, ",\"failures\":");
    jtext_int(t, j->failures);
    if (sj->image_path) put_key_str(t, ",\"image_path\":", sj->image_path);
    else jtext_lit(t, ",\"image_path\":null");
    jtext_lit(t, ",\"ready_at\":");
    put_time(t, j->ready_at);
    jtext_lit(t, ",\"started_at\":");
    put_time(t, j->started_at);
    jtext_lit(t, ",\"finished_at\":");
    put_time(t, j->finished_at);
    jtext_lit(t, ",\"exit_code\":");
    if (j->exit_code >= 0) jtext_int(t, j->exit_code);
    else jtext_lit(t, "null");
    put_key_str(t, ",\"reason\":", j->reason ? j->reason : "");
    if (wf->state == WF_RUNNING && stats && (j->state == JOB_PENDING || j->state == JOB_READY)) {
        char why[256];
        reason_job_waiting(wf->spec, states, i, j->not_before, now, stats->running_cpus,
                           lim->concurrency_limit, why, sizeof(why));
        put_key_str(t, ",\"waiting_reason\":", why);
    }
}

/* The workflow's own fields, as view_workflow_page writes them, up to and
 * including "progress". */
static void put_head(jtext *t, const store_workflow *wf, const store_queue_stats *stats,
                     const view_limits *lim) {
    jtext_lit(t, "{\"id\":");
    jtext_int(t, wf->id);
    jtext_lit(t, ",\"name\":");
    jtext_str(t, wf->name);
    jtext_lit(t, ",\"user\":");
    jtext_str(t, wf->user);
    jtext_lit(t, ",\"priority\":");
    jtext_int(t, wf->priority);
    jtext_lit(t, ",\"state\":");
    jtext_str(t, wf_state_name(wf->state));
    jtext_lit(t, ",\"n_jobs\":");
    jtext_int(t, (int)wf->n_jobs);
    jtext_lit(t, ",\"submitted_at\":");
    put_time(t, wf->submitted_at);
    jtext_lit(t, ",\"admitted_at\":");
    put_time(t, wf->admitted_at);
    jtext_lit(t, ",\"finished_at\":");
    put_time(t, wf->finished_at);
    put_key_str(t, ",\"reason\":", wf->reason ? wf->reason : "");
    if (wf->state == WF_QUEUED) {
        jtext_lit(t, ",\"queue_position\":");
        jtext_int(t, wf->queue_position);
        if (stats) {
            char why[256];
            view_waiting_reason(wf, stats, lim, why, sizeof(why));
            put_key_str(t, ",\"waiting_reason\":", why);
        }
    }
    put_key_real(t, ",\"progress\":", view_workflow_progress(wf));
}

static void put_counts(jtext *t, const store_workflow *wf) {
    size_t count[JOB_STATE_COUNT] = {0};
    for (size_t i = 0; i < wf->n_jobs; i++) count[wf->jobs[i].state]++;
    jtext_lit(t, ",\"counts\":{");
    for (int s = 0; s < JOB_STATE_COUNT; s++) {
        jtext_lit(t, s ? ",\"" : "\"");
        jtext_lit(t, job_state_name((job_state)s));
        jtext_lit(t, "\":");
        jtext_int(t, (long long)count[s]);
    }
    jtext_put(t, "}", 1);
}

char *view_workflow_text(const store_workflow *wf, const store_attempt *attempts,
                         size_t n_attempts, const store_queue_stats *stats,
                         const view_limits *lim, double now, view_page page, size_t *len) {
    jtext t = {0};
    jtext_reserve(&t, 512 + (wf->jobs && !page.none ? wf->n_jobs * 400 : 0));
    put_head(&t, wf, stats, lim);
    if (wf->jobs) {
        put_counts(&t, wf);
        if (!page.none) {
            size_t first = page.offset < wf->n_jobs ? page.offset : wf->n_jobs;
            size_t end = page.limit < wf->n_jobs - first ? first + page.limit : wf->n_jobs;
            job_state *states = ts_malloc((wf->n_jobs ? wf->n_jobs : 1) * sizeof(job_state));
            for (size_t i = 0; i < wf->n_jobs; i++) states[i] = wf->jobs[i].state;
            jtext_lit(&t, ",\"jobs\":[");
            size_t k = 0;
            for (size_t i = first; i < end; i++) {
                if (i > first) jtext_put(&t, ",", 1);
                put_job(&t, wf, i, states, stats, lim, now);
                put_attempts(&t, attempts, n_attempts, &k, i);
                jtext_put(&t, "}", 1);
            }
            jtext_put(&t, "]", 1);
            free(states);
            if (first > 0 || end < wf->n_jobs || page.limit != SIZE_MAX) {
                jtext_lit(&t, ",\"jobs_page\":{\"offset\":");
                jtext_int(&t, (long long)page.offset);
                jtext_lit(&t, ",\"limit\":");
                jtext_int(&t, (long long)page.limit);
                jtext_lit(&t, ",\"total\":");
                jtext_int(&t, (long long)wf->n_jobs);
                jtext_lit(&t, ",\"next_offset\":");
                if (end < wf->n_jobs) jtext_int(&t, (long long)end);
                else jtext_lit(&t, "null");
                jtext_put(&t, "}", 1);
            }
        }
    }
    jtext_put(&t, "}", 1);
    *len = t.len;
    return t.p;
}
