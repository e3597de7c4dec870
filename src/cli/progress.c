/*
 * progress.c - see progress.h.
 */
#include "cli/progress.h"

#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"
#include "view/view.h"

#define BAR_WIDTH 30
#define MAX_JOB_LINES 12

void progress_init(progress_view *pv, FILE *out, bool quiet) {
    memset(pv, 0, sizeof(*pv));
    pv->out = out;
    pv->quiet = quiet;
    pv->tty = isatty(fileno(out)) != 0;
}

static void bar(char *buf, double fraction) {
    if (!(fraction >= 0)) fraction = 0; /* also NaN */
    if (fraction > 1) fraction = 1;
    int full = (int)(fraction * BAR_WIDTH + 0.5);
    for (int i = 0; i < BAR_WIDTH; i++) buf[i] = i < full ? '#' : '.';
    buf[BAR_WIDTH] = '\0';
}

void progress_event(progress_view *pv, const store_event *ev) {
    if (pv->tty || pv->quiet) return;
    json_t *o = json_loads(ev->json, 0, NULL);
    if (!o) return;
    const char *state = json_string_value(json_object_get(o, "state"));
    const char *msg = json_string_value(json_object_get(o, "message"));
    double progress = json_number_value(json_object_get(o, "progress"));
    json_int_t attempt = json_integer_value(json_object_get(o, "attempt"));
    json_int_t pos = json_integer_value(json_object_get(o, "queue_position"));
    if (strcmp(ev->type, "job.progress") == 0) {
        /* Quarter steps only: plain logs should stay short. */
        double q = progress * 4;
        if (q - (double)(int)q > 0.02 && progress < 1) goto done;
    }
    char when[40];
    view_time(ev->ts, when, sizeof(when));
    fprintf(pv->out, "%s workflow %lld", when + 11, (long long)ev->workflow_id);
    if (ev->job_id) fprintf(pv->out, " %s", ev->job_id);
    fprintf(pv->out, " %s", ev->type);
    if (state) fprintf(pv->out, " %s", state);
    if (strcmp(ev->type, "job.started") == 0) fprintf(pv->out, " (attempt %lld)", (long long)attempt);
    if (strcmp(ev->type, "job.progress") == 0) fprintf(pv->out, " %.0f%%", progress * 100);
    if (pos > 0) fprintf(pv->out, " position %lld", (long long)pos);
    if (msg && msg[0]) fprintf(pv->out, ": %s", msg);
    fputc('\n', pv->out);
    fflush(pv->out);
done:
    json_decref(o);
}

/* Counts a view's jobs: finished (any final state), running, failed. */
static void count_jobs(json_t *jobs, size_t *done, size_t *running, size_t *failed) {
    size_t i;
    json_t *job;
    *done = *running = *failed = 0;
    json_array_foreach(jobs, i, job) {
        const char *name = json_string_value(json_object_get(job, "state"));
        job_state s;
        if (!name || job_state_parse(name, &s) != TS_OK) continue;
        *done += job_state_final(s);
        *running += s == JOB_RUNNING;
        *failed += s == JOB_FAILED;
    }
}

/* A string member, or fallback when absent (a remote view may lack one). */
static const char *str_or(json_t *o, const char *key, const char *fallback) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : fallback;
}

/* The bars of the running jobs of a view (at most MAX_JOB_LINES, then a
 * count of the rest); returns the lines written. */
static int draw_jobs(progress_view *pv, json_t *jobs, size_t running) {
    char b[BAR_WIDTH + 1];
    size_t shown = 0, i;
    json_t *job;
    json_array_foreach(jobs, i, job) {
        if (shown >= MAX_JOB_LINES) break;
        if (strcmp(str_or(job, "state", ""), "running") != 0) continue;
        double p = json_number_value(json_object_get(job, "progress"));
        bar(b, p);
        fprintf(pv->out, "\033[2K  %-24.24s [%s] %3.0f%% attempt %lld\n",
                str_or(job, "job_id", "?"), b, p * 100,
                (long long)json_integer_value(json_object_get(job, "attempt")));
        shown++;
    }
    if (running > shown) fprintf(pv->out, "\033[2K  ... and %zu more running\n", running - shown);
    return (int)shown + (running > shown);
}

/* One workflow view: a header with an overall bar, then a bar per running
 * job. Returns the lines written. */
static int draw_workflow(progress_view *pv, json_t *v) {
    char b[BAR_WIDTH + 1];
    json_t *jobs = json_object_get(v, "jobs"), *pos = json_object_get(v, "queue_position");
    size_t n_jobs = jobs ? json_array_size(jobs)
                         : (size_t)json_integer_value(json_object_get(v, "n_jobs"));
    size_t done, running, failed;
    count_jobs(jobs, &done, &running, &failed);
    double progress = json_number_value(json_object_get(v, "progress"));
    bar(b, progress);
    fprintf(pv->out, "\033[2Kworkflow %lld %-20.20s [%s] %3.0f%% %-9s %zu/%zu done",
            (long long)json_integer_value(json_object_get(v, "id")), str_or(v, "name", ""), b,
            progress * 100, str_or(v, "state", "?"), done, n_jobs);
    if (failed) fprintf(pv->out, ", %zu failed", failed);
    if (json_is_integer(pos))
        fprintf(pv->out, ", position %lld in line", (long long)json_integer_value(pos));
    fputc('\n', pv->out);
    return 1 + draw_jobs(pv, jobs, running);
}

bool progress_due(const progress_view *pv) {
    return pv->tty && !pv->quiet && ts_monotonic() - pv->last_draw >= 0.1;
}

void progress_draw(progress_view *pv, json_t *const *views, size_t n, bool force) {
    if (!pv->tty || pv->quiet) return;
    double now = ts_monotonic();
    if (!force && now - pv->last_draw < 0.1) return;
    pv->last_draw = now;
    if (pv->lines_drawn > 0) fprintf(pv->out, "\033[%dA", pv->lines_drawn);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += draw_workflow(pv, views[i]);
    fprintf(pv->out, "\033[J");
    pv->lines_drawn = lines;
    fflush(pv->out);
}
