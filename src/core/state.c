/*
 * state.c - see state.h. The transition tables are the single place where the
 * lifecycle is written down.
 */
#include "core/state.h"

#include <string.h>

#include "util/util.h"

static const char *const job_names[JOB_STATE_COUNT] = {
    "pending", "ready", "running", "succeeded", "failed", "cancelled", "skipped",
};

static const char *const wf_names[WF_STATE_COUNT] = {
    "queued", "running", "succeeded", "failed", "cancelled",
};

/* job_legal[from][to] */
static const bool job_legal[JOB_STATE_COUNT][JOB_STATE_COUNT] = {
    [JOB_PENDING] = {[JOB_READY] = true, [JOB_SKIPPED] = true, [JOB_CANCELLED] = true},
    /* ready -> failed: a job that can never start (more cpus than the limit). */
    [JOB_READY] = {[JOB_RUNNING] = true, [JOB_CANCELLED] = true, [JOB_SKIPPED] = true,
                   [JOB_FAILED] = true},
    [JOB_RUNNING] = {[JOB_SUCCEEDED] = true, [JOB_FAILED] = true, [JOB_CANCELLED] = true,
                     [JOB_READY] = true},
    [JOB_FAILED] = {[JOB_PENDING] = true},
    [JOB_CANCELLED] = {[JOB_PENDING] = true},
    [JOB_SKIPPED] = {[JOB_PENDING] = true},
};

static const bool wf_legal[WF_STATE_COUNT][WF_STATE_COUNT] = {
    [WF_QUEUED] = {[WF_RUNNING] = true, [WF_CANCELLED] = true},
    [WF_RUNNING] = {[WF_SUCCEEDED] = true, [WF_FAILED] = true, [WF_CANCELLED] = true},
    /* A user's retry of a job brings a finished workflow back to the line. */
    [WF_FAILED] = {[WF_QUEUED] = true},
    [WF_CANCELLED] = {[WF_QUEUED] = true},
};

const char *job_state_name(job_state s) {
    return (s >= 0 && s < JOB_STATE_COUNT) ? job_names[s] : "invalid";
}

const char *wf_state_name(wf_state s) {
    return (s >= 0 && s < WF_STATE_COUNT) ? wf_names[s] : "invalid";
}

int job_state_parse(const char *name, job_state *out) {
    for (int i = 0; i < JOB_STATE_COUNT; i++)
        if (strcmp(name, job_names[i]) == 0) {
            *out = (job_state)i;
            return TS_OK;
        }
    return TS_ERR;
}

int wf_state_parse(const char *name, wf_state *out) {
    for (int i = 0; i < WF_STATE_COUNT; i++)
        if (strcmp(name, wf_names[i]) == 0) {
            *out = (wf_state)i;
            return TS_OK;
        }
    return TS_ERR;
}

bool job_state_final(job_state s) {
    return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED || s == JOB_SKIPPED;
}

bool wf_state_final(wf_state s) {
    return s == WF_SUCCEEDED || s == WF_FAILED || s == WF_CANCELLED;
}

bool job_transition_legal(job_state from, job_state to) {
    if (from < 0 || from >= JOB_STATE_COUNT || to < 0 || to >= JOB_STATE_COUNT) return false;
    return job_legal[from][to];
}

bool wf_transition_legal(wf_state from, wf_state to) {
    if (from < 0 || from >= WF_STATE_COUNT || to < 0 || to >= WF_STATE_COUNT) return false;
    return wf_legal[from][to];
}
