/*
 * slurm_track.c - following the Slurm executor's jobs (see slurm.h): one
 * squeue per poll for all of them, sacct with explicit ids for those that
 * left squeue, and what each answer means for a run's phase
 * (slurm_internal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/slurm_internal.h"
#include "util/log.h"
#include "util/util.h"

#define SACCT_RETRY_S 600.0 /* after sacct failed (no accounting), try again this late */

/* Finds the row of r in the squeue output (by id, or by token when the id
 * is unknown). */
static const slurm_row *row_of(const srun *r, const slurm_row *rows, size_t n) {
    for (size_t k = 0; k < n; k++) {
        if (r->slurm_id[0] ? strcmp(rows[k].id, r->slurm_id) == 0
                           : strcmp(rows[k].name, r->token) == 0)
            return &rows[k];
    }
    return NULL;
}

/* What squeue says of one submitted job. */
static void track_seen(slurm_exec *ex, srun *r, const slurm_row *row, double now) {
    bool changed = strcmp(r->state, row->state) != 0 || strcmp(r->reason, row->reason) != 0;
    ts_strlcpy(r->state, row->state, sizeof(r->state));
    ts_strlcpy(r->reason, row->reason, sizeof(r->reason));
    if (strcmp(row->state, "RUNNING") == 0 && r->deadline == 0 && r->timeout_s > 0)
        r->deadline = now + r->timeout_s;
    if (slurm_state_final(row->state)) {
        r->ph = PH_ENDED;
        r->ended_at = now;
        return;
    }
    if (changed && strcmp(row->state, "RUNNING") != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "Slurm job %s %s%s%s%s", r->slurm_id, row->state,
                 row->reason[0] && strcmp(row->reason, "None") ? " (" : "",
                 row->reason[0] && strcmp(row->reason, "None") ? row->reason : "",
                 row->reason[0] && strcmp(row->reason, "None") ? ")" : "");
        slurm_emit_status(ex, r, msg);
    }
}

/* squeue's answer applied to every tracked job. */
static void apply_rows(slurm_exec *ex, const slurm_row *rows, size_t n, double now) {
    int pending = 0, running = 0;
    for (size_t i = 0; i < ex->n_runs;) {
        srun *r = ex->runs[i];
        const slurm_row *row = r->ph == PH_SUBMITTED || r->ph == PH_LOOKUP ? row_of(r, rows, n)
                                                                           : NULL;
        if (r->ph == PH_LOOKUP) {
            if (row) { /* it was submitted after all: adopt its id */
                ts_strlcpy(r->slurm_id, row->id, sizeof(r->slurm_id));
                r->ph = PH_SUBMITTED;
                char err[TS_ERRLEN];
                r->id_recorded = slurm_journal(ex, r, r->slurm_id, err, sizeof(err)) == TS_OK;
                slurm_log_line(r, "found in Slurm as job %s%s", r->slurm_id, "");
            } else {
                proto_exit m;
                char merr[TS_ERRLEN];
                if (proto_exit_read(r->work_dir, r->attempt, &m, merr, sizeof(merr)) == TS_OK) {
                    r->ph = PH_ENDED; /* it ran and ended long ago: the marker decides */
                    r->ended_at = now - ex->cfg.marker_wait_s;
                } else if (r->why == WHY_CANCEL) {
                    slurm_finish(ex, i, "cancelled", -1, "cancelled");
                    continue;
                } else if (r->adopted) {
                    slurm_finish(ex, i, "interrupted", -1,
                           "not found in Slurm after the scheduler restarted (never submitted)");
                    continue;
                } else {
                    r->ph = PH_WAITING; /* sbatch did not reach Slurm: submit again */
                }
            }
        }
        if (r->ph == PH_SUBMITTED) {
            if (row) {
                track_seen(ex, r, row, now);
            } else { /* left squeue (MinJobAge passed, or a lost job) */
                r->state[0] = '\0';
                r->ph = PH_ENDED;
                r->ended_at = now;
            }
        }
        if (r->ph == PH_SUBMITTED && strcmp(r->state, "PENDING") == 0) pending++;
        if (r->ph == PH_SUBMITTED && strcmp(r->state, "PENDING") != 0) running++;
        i++;
    }
    ex->stats.pending = pending;
    ex->stats.running = running;
}

/* One squeue for all of our jobs; on failure every job keeps its state and
 * says why. */
void slurm_poll(slurm_exec *ex, double now) {
    char *argv[] = {"squeue", "--me", "--noheader", "--states=all", "--format=%i|%T|%r|%j", NULL};
    slurm_cmd_result res;
    slurm_cmd_run(argv, ex->cfg.command_timeout_s, &res);
    ex->stats.squeue_calls++;
    ex->stats.squeue_seconds_last = res.seconds;
    ex->stats.squeue_seconds_sum += res.seconds;
    if (res.status != 0) {
        ex->stats.squeue_failures++;
        char line[140];
        slurm_first_line(res.errtext, line, sizeof(line));
        if (!ex->unreachable)
            log_emit(LOG_WARN, NULL, NULL, "slurm: unreachable; jobs keep their state",
                     json_pack("{ss}", "error", line));
        ex->unreachable = true;
        ex->stats.reachable = false;
        snprintf(ex->unreachable_why, sizeof(ex->unreachable_why), "Slurm unreachable: %s",
                 line[0] ? line : "squeue failed");
        for (size_t i = 0; i < ex->n_runs; i++) slurm_emit_status(ex, ex->runs[i], ex->unreachable_why);
        slurm_cmd_free(&res);
        return;
    }
    if (ex->unreachable) log_emit(LOG_INFO, NULL, NULL, "slurm: reachable again", NULL);
    ex->unreachable = false;
    ex->stats.reachable = true;
    slurm_row *rows = NULL;
    size_t n = 0, cap = 0;
    size_t plen = strlen(ex->prefix);
    for (char *line = res.out; *line;) {
        char *end = line + strcspn(line, "\n");
        char saved = *end;
        *end = '\0';
        slurm_row row;
        if (slurm_row_parse(line, &row) && strncmp(row.name, ex->prefix, plen) == 0) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                rows = ts_realloc(rows, cap * sizeof(slurm_row));
            }
            rows[n++] = row;
        }
        *end = saved;
        line = *end ? end + 1 : end;
    }
    apply_rows(ex, rows, n, now);
    free(rows);
    slurm_cmd_free(&res);
}

/* sacct with explicit ids for jobs that left squeue without a state, where
 * the cluster keeps accounting; without it (here) once per SACCT_RETRY_S. */
void slurm_ask_sacct(slurm_exec *ex, double now) {
    if (now < ex->sacct_after) return;
    char *ids = NULL;
    for (size_t i = 0; i < ex->n_runs; i++) {
        srun *r = ex->runs[i];
        if (r->ph != PH_ENDED || r->state[0] || !r->slurm_id[0]) continue;
        char *more = ts_asprintf("%s%s%s", ids ? ids : "", ids ? "," : "", r->slurm_id);
        free(ids);
        ids = more;
    }
    if (!ids) return;
    char *argv[] = {"sacct", "--noheader", "--parsable2", "--allocations", "--jobs", ids,
                    "--format=JobID,State,ExitCode", NULL};
    slurm_cmd_result res;
    ex->stats.sacct_calls++;
    slurm_cmd_run(argv, ex->cfg.command_timeout_s, &res);
    if (res.status != 0) {
        char line[160];
        slurm_first_line(res.errtext, line, sizeof(line));
        log_emit(LOG_INFO, NULL, NULL, "slurm: sacct unavailable; relying on exit markers",
                 json_pack("{ss}", "error", line));
        ex->sacct_after = now + SACCT_RETRY_S;
    }
    for (char *line = res.status == 0 ? res.out : ""; *line;) {
        char id[32] = "", state[32] = "";
        int code = -1, sig = 0;
        if (sscanf(line, "%31[^|]|%31[^|]|%d:%d", id, state, &code, &sig) >= 2)
            for (size_t i = 0; i < ex->n_runs; i++)
                if (strcmp(ex->runs[i]->slurm_id, id) == 0 && ex->runs[i]->ph == PH_ENDED) {
                    ts_strlcpy(ex->runs[i]->state, state, sizeof(ex->runs[i]->state));
                    ex->runs[i]->slurm_exit = code;
                }
        line += strcspn(line, "\n");
        if (*line) line++;
    }
    slurm_cmd_free(&res);
    free(ids);
}
