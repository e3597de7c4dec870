/*
 * reasons.c - see reasons.h.
 */
#include "core/reasons.h"

#include <stdio.h>
#include <time.h>

void reason_workflow_waiting(bool user_active, int active_users, int max_active_users, char *buf,
                             size_t n) {
    if (user_active)
        snprintf(buf, n,
                 "waiting behind other users' workflows (fair admission): %d of %d users active",
                 active_users, max_active_users);
    else if (active_users >= max_active_users)
        snprintf(buf, n, "active user limit reached: %d of %d users active", active_users,
                 max_active_users);
    else
        snprintf(buf, n, "waiting to be admitted: %d of %d users active", active_users,
                 max_active_users);
}

static void pending_reason(const spec_workflow *spec, const job_state *states, size_t idx,
                           char *buf, size_t n) {
    const spec_dag *d = &spec->dag;
    for (uint32_t k = d->pred_start[idx]; k < d->pred_start[idx + 1]; k++) {
        uint32_t p = d->pred[k];
        if (states[p] == JOB_SUCCEEDED) continue;
        if (d->branch_prev[idx] == (int32_t)p)
            snprintf(buf, n, "waiting for %s (branch %s)", spec->jobs[p].job_id,
                     spec->jobs[idx].branch);
        else
            snprintf(buf, n, "waiting for dependency %s", spec->jobs[p].job_id);
        return;
    }
    snprintf(buf, n, "waiting to become ready");
}

void reason_job_waiting(const spec_workflow *spec, const job_state *states, size_t idx,
                        double not_before, double now, int running_cpus, int concurrency_limit,
                        char *buf, size_t n) {
    buf[0] = '\0';
    if (states[idx] == JOB_PENDING) {
        pending_reason(spec, states, idx, buf, n);
    } else if (states[idx] == JOB_READY) {
        if (not_before > now) {
            time_t t = (time_t)not_before;
            struct tm tm;
            gmtime_r(&t, &tm);
            snprintf(buf, n, "retrying after %02d:%02d:%02d UTC", tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
        } else if (running_cpus + spec->jobs[idx].cpus > concurrency_limit) {
            snprintf(buf, n, "waiting for a free slot: %d of %d cpus busy", running_cpus,
                     concurrency_limit);
        } else {
            snprintf(buf, n, "waiting for its turn: %d of %d cpus busy", running_cpus,
                     concurrency_limit);
        }
    }
}
