/*
 * job_basic.c - the job types for tests and benchmarks (DESIGN §5):
 * `noop` and `sleep {seconds}`.
 */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "jobs/jobs.h"
#include "util/util.h"

#define SLEEP_STEP_S 0.05 /* how long a stop request may go unnoticed */

/* Does nothing and says so, so the whole path (spec, runner, publish,
 * progress, exit) can be measured without any work in it. */
static int noop_run(job_ctx *ctx, char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    job_progress(ctx, 1, 1, "");
    return TS_OK;
}

const job_type job_type_noop = {
    .name = "noop",
    .description = "Does nothing; reports progress 1/1.",
    .params = NULL,
    .n_params = 0,
    .validate = NULL,
    .run = noop_run,
    .writes_nothing = true,
};

static const job_param sleep_params[] = {
    {.name = "seconds",
     .type = PARAM_NUMBER,
     .min = 0,
     .max = 86400,
     .def_number = 1,
     .description = "How long to sleep, in seconds."},
};

/* Sleeps for at most `s` seconds; a signal (SIGTERM) cuts it short, which is
 * what lets a stop request be seen at once rather than at the next step. */
static void nap(double s) {
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Sleeps in short steps so a stop request ends it promptly, reporting the
 * elapsed time as progress (job_progress throttles to ~5 lines/s). */
static int sleep_run(job_ctx *ctx, char *err, size_t errlen) {
    double seconds = params_number(sleep_params, 1, ctx->params, "seconds");
    double start = ts_monotonic();
    for (;;) {
        if (*ctx->stop) {
            ts_errf(err, errlen, "interrupted");
            return TS_ERR;
        }
        double elapsed = ts_monotonic() - start;
        if (elapsed >= seconds) break;
        elapsed = floor(elapsed * 1000.0) / 1000.0; /* "progress 0.2 1", not 0.200686553 */
        char msg[64];
        snprintf(msg, sizeof(msg), "%.1f of %g s", elapsed, seconds);
        job_progress(ctx, elapsed, seconds, msg);
        double left = seconds - elapsed;
        nap(left < SLEEP_STEP_S ? left : SLEEP_STEP_S);
    }
    /* A zero-second sleep still reports completion, as 1 of 1. */
    double total = seconds > 0 ? seconds : 1;
    char msg[64];
    snprintf(msg, sizeof(msg), "slept %g s", seconds);
    job_progress(ctx, total, total, msg);
    return TS_OK;
}

const job_type job_type_sleep = {
    .name = "sleep",
    .description = "Sleeps for params.seconds (0 to 86400, default 1), reporting progress.",
    .params = sleep_params,
    .n_params = sizeof(sleep_params) / sizeof(sleep_params[0]),
    .validate = NULL,
    .run = sleep_run,
    .writes_nothing = true,
};
