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

#include "exec/slurm.h"
#include "store/store.h"
#include "util/config.h"
#include "util/liveness.h"

/* What the scheduler reports for metrics, all with ctx; any may be NULL:
 * job wait/run times, how attempts ended, every store call's latency. */
typedef struct sched_observers {
    void (*job_timing)(void *ctx, const char *job_type, bool is_wait, double seconds);
    void (*job_end)(void *ctx, const char *job_type, const char *outcome, int exit_code);
    store_observer store_call;
    /* The Slurm executor's figures after each loop while this scheduler
     * leads, NULL while it does not (only with TESSERA_EXECUTOR=slurm). */
    void (*slurm_stats)(void *ctx, const exec_slurm_stats *st);
    void *ctx;
} sched_observers;

/* Runs until SIGTERM/SIGINT; returns the process exit status. obs (may be
 * NULL) receives what is measured; live (may be NULL) is the master's
 * liveness slot for this process. */
int sched_service_main(const ts_config *cfg, const char *doorbell_path, const sched_observers *obs,
                       liveness_slot *live);

#endif
