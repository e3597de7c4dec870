/*
 * setup.h - the one start-up path of a scheduler process, shared by
 * `tessera serve` (its scheduler process) and `tessera run`: the executor
 * chosen by configuration (TESSERA_EXECUTOR: local or slurm, with the
 * TESSERA_SLURM_* settings, docs/slurm.md) and the scheduler's settings.
 * Values were checked when the configuration was read (config.c); what can
 * only be checked here (Slurm's commands on PATH, the state directory's
 * instance id) fails with a message naming the variable.
 */
#ifndef TESSERA_SCHED_SETUP_H
#define TESSERA_SCHED_SETUP_H

#include <stddef.h>

#include "exec/executor.h"
#include "sched/scheduler.h"
#include "util/config.h"

/* Builds the executor cfg->executor names. self_exe: the tessera binary
 * jobs run (`self_exe run-job SPEC`). NULL with the reason in err. */
executor *sched_setup_executor(const ts_config *cfg, const char *self_exe, char *err,
                               size_t errlen);

/* What sched_setup_executor would refuse, without side effects on this
 * process (serve's master checks before it starts the scheduler). */
int sched_setup_check(const ts_config *cfg, char *err, size_t errlen);

/* The scheduler's settings from the configuration (callbacks left NULL). */
void sched_setup_config(const ts_config *cfg, sched_config *out);

/* This installation's id (STATE_DIR/instance_id, created once with random
 * letters and digits): Slurm job names carry it, so installations sharing
 * a cluster account never take each other's jobs. buf: at least 17 bytes. */
int sched_instance_id(const char *state_dir, char *buf, size_t n, char *err, size_t errlen);

#endif
