/*
 * view_text.c - a workflow's view written straight to JSON text (view.h,
 * view_workflow_text): the bytes json_dumps(JSON_COMPACT) gives for
 * view_workflow_page with view_add_attempts, without the hundreds of
 * thousands of jansson values a 10,000-job view builds and frees (issue 16:
 * building them was most of a large GET's time).
 *
 * The same bytes, not just the same JSON: tests/unit/test_view_text.c
 * compares the two for workflows in every state. So this file follows
 * jansson's output rules: keys in insertion order; strings with '"', '\\'
 * and control characters escaped (\b \f \n \r \t, else \u00XX), other
 * bytes as they are; a string that is not valid UTF-8 is one jansson
 * refuses, so its key (or, inside json_pack, its whole object) is left out;
 * reals as "%.17g" with ".0" added when neither '.' nor 'e' appears and
 * the exponent without '+' or leading zeros.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reasons.h"
#include "util/util.h"
#include "view/view.h"

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void grow(text *t, size_t more) {
    if (t->len + more + 1 <= t->cap) return;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + more + 1) cap *= 2;
    t->p = ts_realloc(t->p, cap);
    t->cap = cap;
}

static void put(text *t, const char *s, size_t n) {
    grow(t, n);
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void put_lit(text *t, const char *s) {
    put(t, s, strlen(s));
}

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

/* A JSON string, quoted and escaped as jansson does (flags 0). */
static void put_str(text *t, const char *s) {
    grow(t, strlen(s) + 2);
    t->p[t->len++] = '"';
    const char *run = s;
    for (const char *q = s;; q++) {
        unsigned char c = (unsigned char)*q;
        if (c != '\0' && c != '"' && c != '\\' && c >= 0x20) continue;
        put(t, run, (size_t)(q - run));
        if (c == '\0') break;
        char esc[8];
        switch (c) {
        case '"': put_lit(t, "\\\""); break;
        case '\\': put_lit(t, "\\\\"); break;
        case '\b': put_lit(t, "\\b"); break;
        case '\f': put_lit(t, "\\f"); break;
        case '\n': put_lit(t, "\\n"); break;
        case '\r': put_lit(t, "\\r"); break;
        case '\t': put_lit(t, "\\t"); break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04X", c);
            put_lit(t, esc);
        }
        run = q + 1;
    }
    put(t, "\"", 1);
}

/* ,"key":"value" - left out, as jansson leaves out a value it refuses,
 * when value is NULL or not UTF-8. */
static void put_key_str(text *t, const char *key, const char *value) {
    if (!value || !utf8_valid((const unsigned char *)value)) return;
    put_lit(t, key);
    put_str(t, value);
}

/* As "%lld", without printf's machinery (a 10,000-job view writes 40,000
 * numbers). */
static void put_int(text *t, long long v) {
    char buf[24];
    char *p = buf + sizeof(buf);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    put(t, p, (size_t)(buf + sizeof(buf) - p));
}

/* jansson's real: "%.17g", a ".0" when it would read as an integer, the
 * exponent without '+' and leading zeros. */
static void put_real(text *t, double v) {
    if (v == 0 && !signbit(v)) { /* most jobs' progress: not started, or done */
        put_lit(t, "0.0");
        return;
    }
    if (v == 1) {
        put_lit(t, "1.0");
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
    put(t, buf, len);
}

/* ,"key":<real> - left out for a value jansson refuses (not finite). */
static void put_key_real(text *t, const char *key, double v) {
    if (!isfinite(v)) return;
    put_lit(t, key);
    put_real(t, v);
}

static void put_time(text *t, double v) {
    if (v <= 0) {
        put_lit(t, "null");
        return;
    }
    char buf[40];
    view_time(v, buf, sizeof(buf));
    put_str(t, buf);
}

/* The attempts of job i: a[*k..] while their job index is i (the store
 * gives them ordered by job, then attempt). */
static void put_attempts(text *t, const store_attempt *a, size_t n, size_t *k, size_t i) {
    put_lit(t, ",\"attempts\":[");
    bool first = true;
    while (*k < n && a[*k].job_index < (int32_t)i) (*k)++;
    for (; *k < n && a[*k].job_index == (int32_t)i; (*k)++) {
        const store_attempt *x = &a[*k];
        /* json_pack refuses the whole attempt when a string is not UTF-8 */
        if (!utf8_valid((const unsigned char *)x->outcome) ||
            !utf8_valid((const unsigned char *)x->reason))
            continue;
        put_lit(t, first ? "{\"attempt\":" : ",{\"attempt\":");
        first = false;
        put_int(t, x->attempt);
        put_key_str(t, ",\"outcome\":", x->outcome);
        put_key_str(t, ",\"reason\":", x->reason);
        put_lit(t, ",\"started_at\":");
        put_time(t, x->started_at);
        put_lit(t, ",\"finished_at\":");
        put_time(t, x->finished_at);
        put_lit(t, ",\"exit_code\":");
        if (x->exit_code >= 0) put_int(t, x->exit_code);
        else put_lit(t, "null");
        if (x->external_id[0]) put_key_str(t, ",\"external_id\":", x->external_id);
        put(t, "}", 1);
    }
    put(t, "]", 1);
}

/* One job, as view.c's view_job with its attempts. */
static void put_job(text *t, const store_workflow *wf, size_t i, const job_state *states,
                    const store_queue_stats *stats, const view_limits *lim, double now) {
    const store_job *j = &wf->jobs[i];
    const spec_job *sj = &wf->spec->jobs[i];
    put_lit(t, "{\"job_id\":");
    put_str(t, sj->job_id);
    put_lit(t, ",\"job_type\":");
    put_str(t, sj->job_type);
    put_lit(t, ",\"branch\":");
    put_str(t, sj->branch);
    put_lit(t, ",\"depends_on\":[");
    bool first = true;
    for (size_t k = 0; k < sj->n_depends_on; k++) {
        if (!utf8_valid((const unsigned char *)sj->depends_on[k])) continue;
        if (!first) put(t, ",", 1);
        first = false;
        put_str(t, sj->depends_on[k]);
    }
    put_lit(t, "],\"state\":");
    put_str(t, job_state_name(j->state));
    put_lit(t, ",\"attempt\":");
    put_int(t, j->attempt);
    put_lit(t, ",\"cpus\":");
    put_int(t, sj->cpus);
    put_lit(t, ",\"progress\":");
    put_real(t, j->progress);
    put_lit(t, ",\"failures\":");
    put_int(t, j->failures);
    if (sj->image_path) put_key_str(t, ",\"image_path\":", sj->image_path);
    else put_lit(t, ",\"image_path\":null");
    put_lit(t, ",\"ready_at\":");
    put_time(t, j->ready_at);
    put_lit(t, ",\"started_at\":");
    put_time(t, j->started_at);
    put_lit(t, ",\"finished_at\":");
    put_time(t, j->finished_at);
    put_lit(t, ",\"exit_code\":");
    if (j->exit_code >= 0) put_int(t, j->exit_code);
    else put_lit(t, "null");
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
static void put_head(text *t, const store_workflow *wf, const store_queue_stats *stats,
                     const view_limits *lim) {
    put_lit(t, "{\"id\":");
    put_int(t, wf->id);
    put_lit(t, ",\"name\":");
    put_str(t, wf->name);
    put_lit(t, ",\"user\":");
    put_str(t, wf->user);
    put_lit(t, ",\"priority\":");
    put_int(t, wf->priority);
    put_lit(t, ",\"state\":");
    put_str(t, wf_state_name(wf->state));
    put_lit(t, ",\"n_jobs\":");
    put_int(t, (int)wf->n_jobs);
    put_lit(t, ",\"submitted_at\":");
    put_time(t, wf->submitted_at);
    put_lit(t, ",\"admitted_at\":");
    put_time(t, wf->admitted_at);
    put_lit(t, ",\"finished_at\":");
    put_time(t, wf->finished_at);
    put_key_str(t, ",\"reason\":", wf->reason ? wf->reason : "");
    if (wf->state == WF_QUEUED) {
        put_lit(t, ",\"queue_position\":");
        put_int(t, wf->queue_position);
        if (stats) {
            char why[256];
            view_waiting_reason(wf, stats, lim, why, sizeof(why));
            put_key_str(t, ",\"waiting_reason\":", why);
        }
    }
    put_key_real(t, ",\"progress\":", view_workflow_progress(wf));
}

static void put_counts(text *t, const store_workflow *wf) {
    size_t count[JOB_STATE_COUNT] = {0};
    for (size_t i = 0; i < wf->n_jobs; i++) count[wf->jobs[i].state]++;
    put_lit(t, ",\"counts\":{");
    for (int s = 0; s < JOB_STATE_COUNT; s++) {
        put_lit(t, s ? ",\"" : "\"");
        put_lit(t, job_state_name((job_state)s));
        put_lit(t, "\":");
        put_int(t, (long long)count[s]);
    }
    put(t, "}", 1);
}

char *view_workflow_text(const store_workflow *wf, const store_attempt *attempts,
                         size_t n_attempts, const store_queue_stats *stats,
                         const view_limits *lim, double now, view_page page, size_t *len) {
    text t = {0};
    grow(&t, 512 + (wf->jobs && !page.none ? wf->n_jobs * 400 : 0));
    put_head(&t, wf, stats, lim);
    if (wf->jobs) {
        put_counts(&t, wf);
        if (!page.none) {
            size_t first = page.offset < wf->n_jobs ? page.offset : wf->n_jobs;
            size_t end = page.limit < wf->n_jobs - first ? first + page.limit : wf->n_jobs;
            job_state *states = ts_malloc((wf->n_jobs ? wf->n_jobs : 1) * sizeof(job_state));
            for (size_t i = 0; i < wf->n_jobs; i++) states[i] = wf->jobs[i].state;
            put_lit(&t, ",\"jobs\":[");
            size_t k = 0;
            for (size_t i = first; i < end; i++) {
                if (i > first) put(&t, ",", 1);
                put_job(&t, wf, i, states, stats, lim, now);
                put_attempts(&t, attempts, n_attempts, &k, i);
                put(&t, "}", 1);
            }
            put(&t, "]", 1);
            free(states);
            if (first > 0 || end < wf->n_jobs || page.limit != SIZE_MAX) {
                put_lit(&t, ",\"jobs_page\":{\"offset\":");
                put_int(&t, (long long)page.offset);
                put_lit(&t, ",\"limit\":");
                put_int(&t, (long long)page.limit);
                put_lit(&t, ",\"total\":");
                put_int(&t, (long long)wf->n_jobs);
                put_lit(&t, ",\"next_offset\":");
                if (end < wf->n_jobs) put_int(&t, (long long)end);
                else put_lit(&t, "null");
                put(&t, "}", 1);
            }
        }
    }
    put(&t, "}", 1);
    *len = t.len;
    return t.p;
}
