/*
 * service.h - the scheduler as a process of `tessera serve`: the loop of
 * scheduler.h woken by the doorbell, until SIGTERM, then a clean hand-over
 * (running jobs stopped and recorded as interrupted, the lease released).
 * Each turn of the loop ticks the process's liveness slot, so the master
 * replaces a scheduler that stops turning (util/liveness.h); after SIGTERM
 * the hand-over must end within SHUTDOWN_BACKSTOP_SECONDS or SIGALRM ends
 * the process (its jobs then die with it).
 */
#ifndef TESSERA_SCHED_SERVICE_H
#define TESSERA_SCHED_SERVICE_H

#include <stdbool.h>

#include "store/store.h"
#include "util/config.h"
#include "util/liveness.h"

/* Runs until SIGTERM/SIGINT; returns the process exit status. timing_cb
 * (may be NULL) receives job wait/run times, store_cb (may be NULL) every
 * store call's latency, both with timing_ctx; live (may be NULL) is the
 * master's liveness slot for this process. */
int sched_service_main(const ts_config *cfg, const char *doorbell_path,
                       void (*timing_cb)(void *ctx, const char *job_type, bool is_wait,
                                         double seconds),
                       void *timing_ctx, liveness_slot *live, store_observer store_cb);

#endif
