/*
 * reasons.h - why something waits, in words a user understands (DESIGN §2:
 * every waiting workflow and every ready-but-not-running job says why).
 * Pure functions of the recorded state, so the scheduler, the CLI and the
 * API all say the same thing.
 */
#ifndef TESSERA_CORE_REASONS_H
#define TESSERA_CORE_REASONS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/spec.h"
#include "core/state.h"

/* A queued workflow: "active user limit reached: 3 of 3 users active", or,
 * when its user is already active but other users wait ahead of it,
 * "waiting behind other users' workflows (fair admission): 3 of 3 users
 * active"; "waiting to be admitted: 1 of 3 users active" when a place is free
 * (the scheduler has not looked yet). */
void reason_workflow_waiting(bool user_active, int active_users, int max_active_users, char *buf,
                             size_t n);

/* A job that is pending or ready in a running workflow (buf = "" otherwise):
 *   pending: "waiting for job-1 (branch default)" when the first unfinished
 *            predecessor is the previous job of its branch, else
 *            "waiting for dependency job-3";
 *   ready:   "retrying after 12:00:05 UTC" during a retry delay,
 *            "waiting for a free slot: 8 of 8 cpus busy" when its cpus do
 *            not fit, else "waiting for its turn: 3 of 8 cpus busy" (fair
 *            share gives the free cpus to other users first).
 * states holds every job's state by index. */
void reason_job_waiting(const spec_workflow *spec, const job_state *states, size_t idx,
                        double not_before, double now, int running_cpus, int concurrency_limit,
                        char *buf, size_t n);

#endif
