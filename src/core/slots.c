/*
 * slots.c - which ready jobs start now (DESIGN §2, global concurrency).
 *
 * At most concurrency_limit cpus of jobs run at once. Free cpus go to active
 * users in turn: the user with the fewest running cpus first (ties: the one
 * served least recently), so one user's 10,000-job workflow cannot starve
 * another user's single job. Inside a user: higher workflow priority, then
 * the older workflow, then job order.
 *
 * No backfill inside a user: if a user's next job needs more cpus than are
 * free, that user gets nothing this round (their smaller, later jobs do not
 * overtake it), but other users may still use the free cpus. This keeps a
 * wide job from starving behind a stream of narrow ones of the same user.
 */
#include <stdio.h>

#include "core/engine_internal.h"
#include "util/util.h"

typedef struct candidate {
    ewf *wf;
    uint32_t idx;
} candidate;

/* The user's next job by the in-user order, skipping jobs still in their
 * retry delay. Returns false if the user has nothing startable now. */
static bool user_next(const euser *u, double now, candidate *out) {
    for (size_t w = 0; w < u->n_running; w++) {
        ewf *wf = u->running[w];
        for (size_t k = 0; k < wf->n_ready; k++) {
            uint32_t idx = wf->ready[k];
            if (wf->jobs[idx].not_before > now) continue;
            *out = (candidate){wf, idx};
            return true;
        }
    }
    return false;
}

/* Fails a job that can never fit, so it does not block its user forever. */
static void fail_oversized(engine *e, candidate c, double now, change_list *out) {
    const spec_job *sj = &c.wf->spec->jobs[c.idx];
    core_change *ch = ejob_set_state(e, c.wf, c.idx, JOB_FAILED, now, out);
    snprintf(ch->reason, sizeof(ch->reason), "needs %d cpus but the concurrency limit is %d",
             sj->cpus, e->lim.concurrency_limit);
    char cause[128];
    snprintf(cause, sizeof(cause), "%s failed", sj->job_id);
    wf_skip_dependents(e, c.wf, c.idx, cause, now, out);
    wf_finish_if_done(e, c.wf, now, out);
}

/* Picks the user who should get the next slot, among those whose next job
 * fits in `free_cpus`. */
static bool pick_user(engine *e, double now, int free_cpus, candidate *out, change_list *changes) {
    bool found = false;
    const euser *best = NULL;
    for (size_t i = 0; i < e->users.cap; i++) {
        const map_slot *s = &e->users.slots[i];
        if (s->hash <= 1) continue;
        const euser *u = s->value;
        candidate c;
        bool has = u->n_running > 0 && user_next(u, now, &c);
        while (has && c.wf->spec->jobs[c.idx].cpus > e->lim.concurrency_limit) {
            fail_oversized(e, c, now, changes);
            has = u->n_running > 0 && user_next(u, now, &c);
        }
        if (!has || c.wf->spec->jobs[c.idx].cpus > free_cpus) continue;
        if (!best || u->running_cpus < best->running_cpus ||
            (u->running_cpus == best->running_cpus && u->last_served < best->last_served)) {
            best = u;
            *out = c;
            found = true;
        }
    }
    return found;
}

void engine_schedule(engine *e, double now, change_list *out) {
    for (;;) {
        int free_cpus = e->lim.concurrency_limit - e->running_cpus;
        if (free_cpus <= 0) return;
        candidate c;
        if (!pick_user(e, now, free_cpus, &c, out)) return;
        c.wf->user->last_served = ++e->serve_clock;
        ejob_set_state(e, c.wf, c.idx, JOB_RUNNING, now, out);
    }
}
