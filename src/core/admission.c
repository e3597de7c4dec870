/*
 * admission.c - who may run (DESIGN §2).
 *
 * A user is active while one of their workflows is running; at most
 * max_active_users users are active. Queued workflows wait in one line, FIFO
 * by submission (workflow id). The line is strictly FIFO: scanning from the
 * head, a workflow is admitted if its user is already active or a place is
 * free, and the scan stops at the first workflow that cannot be admitted.
 * That one rule gives both promises of the design:
 *   - an active user's new workflow is admitted at once only when nobody is
 *     waiting ahead of it; while another user waits, it queues behind them
 *     (no starvation of the waiting user);
 *   - a waiting workflow is never overtaken.
 */
#include <stdio.h>
#include <string.h>

#include "core/engine_internal.h"
#include "core/reasons.h"
#include "util/util.h"

/* Would admitting wf now keep the active-user limit? */
static bool admissible(const engine *e, const ewf *wf) {
    return wf->user->n_running > 0 || e->active_users < e->lim.max_active_users;
}

static void admit(engine *e, ewf *wf, double now, change_list *out) {
    core_change *ch = wf_set_state(e, wf, WF_RUNNING, now, out);
    snprintf(ch->reason, sizeof(ch->reason), "admitted: %d of %d users active",
             e->active_users, e->lim.max_active_users);
    wf->last_position = 0;
    wf_release_ready(e, wf, now, out);
}

/* Reloaded workflows may hold states that need follow-up the store could not
 * record before a crash: a requested cancel, ready jobs, completion. */
static void sweep_reloaded(engine *e, double now, change_list *out) {
    for (size_t i = 0; i < e->n_all && e->n_to_sweep > 0; i++) {
        ewf *wf = e->all[i];
        if (!wf->needs_sweep) continue;
        wf->needs_sweep = false;
        e->n_to_sweep--;
        if (wf->cancel_requested) {
            job_ref_list kill = {0};
            engine_cancel_workflow(e, wf->id, "cancelled by the user", now, out, &kill);
            job_ref_list_free(&kill);
        }
        if (wf->state == WF_RUNNING) {
            wf_release_ready(e, wf, now, out);
            wf_finish_if_done(e, wf, now, out);
        }
    }
}

void engine_admit(engine *e, double now, change_list *out) {
    sweep_reloaded(e, now, out);
    while (e->n_line > 0 && admissible(e, e->line[0])) {
        ewf *head = e->line[0];
        if (head->cancel_requested) {
            job_ref_list kill = {0};
            engine_cancel_workflow(e, head->id, "cancelled while queued", now, out, &kill);
            job_ref_list_free(&kill);
            continue;
        }
        admit(e, head, now, out);
    }
    /* Positions move only when the line does. */
    if (!e->line_changed) return;
    e->line_changed = false;
    for (size_t i = 0; i < e->n_line; i++) {
        ewf *wf = e->line[i];
        int pos = (int)(i + 1);
        if (wf->last_position == pos) continue;
        wf->last_position = pos;
        core_change *ch = change_push(out, CHANGE_QUEUE_POSITION, wf, -1, now);
        ch->event_type = "queue.position";
        ch->queue_position = pos;
        reason_workflow_waiting(wf->user->n_running > 0, e->active_users,
                                e->lim.max_active_users, ch->reason, sizeof(ch->reason));
    }
}
