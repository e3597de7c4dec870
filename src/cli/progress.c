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

/* One workflow: a header with an overall bar, then a bar per running job. */
static int draw_workflow(progress_view *pv, const store_workflow *wf) {
    char b[BAR_WIDTH + 1];
    size_t done = 0, running = 0, failed = 0;
    for (size_t i = 0; i < wf->n_jobs; i++) {
        job_state s = wf->jobs[i].state;
        done += job_state_final(s);
        running += s == JOB_RUNNING;
        failed += s == JOB_FAILED;
    }
    bar(b, view_workflow_progress(wf));
    int lines = 1;
    fprintf(pv->out, "\033[2Kworkflow %lld %-20.20s [%s] %3.0f%% %-9s %zu/%zu done",
            (long long)wf->id, wf->name, b, view_workflow_progress(wf) * 100,
            wf_state_name(wf->state), done, wf->n_jobs);
    if (failed) fprintf(pv->out, ", %zu failed", failed);
    if (wf->state == WF_QUEUED) fprintf(pv->out, ", position %d in line", wf->queue_position);
    fputc('\n', pv->out);
    size_t shown = 0;
    for (size_t i = 0; i < wf->n_jobs && shown < MAX_JOB_LINES; i++) {
        const store_job *j = &wf->jobs[i];
        if (j->state != JOB_RUNNING) continue;
        bar(b, j->progress);
        fprintf(pv->out, "\033[2K  %-24.24s [%s] %3.0f%% attempt %d\n", j->job_id, b,
                j->progress * 100, j->attempt);
        shown++;
        lines++;
    }
    if (running > shown) {
        fprintf(pv->out, "\033[2K  ... and %zu more running\n", running - shown);
        lines++;
    }
    return lines;
}

bool progress_due(const progress_view *pv) {
    return pv->tty && !pv->quiet && ts_monotonic() - pv->last_draw >= 0.1;
}

void progress_draw(progress_view *pv, store_workflow *const *wfs, size_t n, bool force) {
    if (!pv->tty || pv->quiet) return;
    double now = ts_monotonic();
    if (!force && now - pv->last_draw < 0.1) return;
    pv->last_draw = now;
    if (pv->lines_drawn > 0) fprintf(pv->out, "\033[%dA", pv->lines_drawn);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += draw_workflow(pv, wfs[i]);
    fprintf(pv->out, "\033[J");
    pv->lines_drawn = lines;
    fflush(pv->out);
}
