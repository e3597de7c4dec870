/*
 * slurm_parse.c - the Slurm executor's pure helpers (see slurm.h): tokens,
 * squeue lines, what an end state means. No I/O, so all of it is unit-tested.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "exec/slurm.h"
#include "util/util.h"

void slurm_token_format(char *buf, size_t n, const char *instance, int64_t workflow_id,
                        int32_t job_index, int attempt) {
    snprintf(buf, n, "ts.%s.%lld.%d.%d", instance, (long long)workflow_id, (int)job_index,
             attempt);
}

/* Copies the field [p, end) into dst (size n), cut if longer. */
static void copy_field(char *dst, size_t n, const char *p, const char *end) {
    size_t len = (size_t)(end - p);
    if (len >= n) len = n - 1;
    memcpy(dst, p, len);
    dst[len] = '\0';
}

/* "ID|STATE|REASON|NAME": the name comes last because it is the only
 * field another user's job may fill with '|'. The id must be a number
 * (array and het jobs are never ours). */
bool slurm_row_parse(const char *line, slurm_row *out) {
    const char *bar1 = strchr(line, '|');
    const char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
    const char *bar3 = bar2 ? strchr(bar2 + 1, '|') : NULL;
    if (!bar3 || bar1 == line) return false;
    for (const char *p = line; p < bar1; p++)
        if (!isdigit((unsigned char)*p)) return false;
    memset(out, 0, sizeof(*out));
    copy_field(out->id, sizeof(out->id), line, bar1);
    copy_field(out->state, sizeof(out->state), bar1 + 1, bar2);
    copy_field(out->reason, sizeof(out->reason), bar2 + 1, bar3);
    const char *end = bar3 + 1 + strcspn(bar3 + 1, "\r\n");
    copy_field(out->name, sizeof(out->name), bar3 + 1, end);
    return out->state[0] != '\0';
}

static const char *const final_states[] = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
    "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT", NULL};

bool slurm_state_final(const char *state) {
    /* sacct writes "CANCELLED by 0": compare the first word. */
    size_t len = strcspn(state, " +");
    for (size_t i = 0; final_states[i]; i++)
        if (strlen(final_states[i]) == len && strncmp(state, final_states[i], len) == 0)
            return true;
    return false;
}

static bool state_is(const char *state, const char *name) {
    size_t len = strlen(name);
    return strncmp(state, name, len) == 0 && (state[len] == '\0' || state[len] == ' ' ||
                                              state[len] == '+');
}

const char *slurm_state_outcome(const char *state, int exit_code, char *msg, size_t n) {
    if (state_is(state, "TIMEOUT")) {
        snprintf(msg, n, "Slurm TIMEOUT: the job exceeded its Slurm time limit");
        return "timeout";
    }
    if (state_is(state, "NODE_FAIL") || state_is(state, "BOOT_FAIL")) {
        snprintf(msg, n, "Slurm %s: the node failed under the job; run again", state);
        return "interrupted";
    }
    if (state_is(state, "PREEMPTED")) {
        snprintf(msg, n, "Slurm PREEMPTED: the job was preempted; run again");
        return "interrupted";
    }
    if (state_is(state, "OUT_OF_MEMORY")) {
        snprintf(msg, n, "Slurm OUT_OF_MEMORY: the job ran out of memory");
        return "failed";
    }
    if (state_is(state, "CANCELLED")) {
        snprintf(msg, n, "Slurm CANCELLED: the job was cancelled outside tessera");
        return "failed";
    }
    if (state_is(state, "FAILED")) {
        if (exit_code >= 0)
            snprintf(msg, n, "Slurm FAILED with exit code %d and no exit marker", exit_code);
        else
            snprintf(msg, n, "Slurm FAILED and the runner left no exit marker");
        return "failed";
    }
    if (state_is(state, "COMPLETED")) {
        snprintf(msg, n, "Slurm COMPLETED but the runner left no exit marker");
        return "failed";
    }
    if (state[0] == '\0') {
        snprintf(msg, n, "the job left Slurm without an exit marker (state unknown)");
        return "failed";
    }
    snprintf(msg, n, "Slurm %s without an exit marker", state);
    return "failed";
}

/* What Slurm's clients print when the controller cannot be reached or is
 * busy, as opposed to refusing the request. */
static const char *const transient_words[] = {
    "Unable to contact slurm controller", "Socket timed out", "temporarily unavailable",
    "Connection refused", "Connection timed out", "try again", "Slurm temporarily unable",
    "Zero Bytes were transmitted", "Communication connection failure", "timed out after",
    "slurm_load_jobs error", NULL};

bool slurm_error_transient(const char *stderr_text) {
    for (size_t i = 0; transient_words[i]; i++)
        if (strcasestr(stderr_text, transient_words[i])) return true;
    return false;
}

/* timeout_s plus two minutes (tessera's own enforcement and the USR1
 * warning come first), in whole minutes as --time takes them. */
long slurm_time_minutes(double timeout_s) {
    if (!(timeout_s > 0)) return 0;
    double minutes = ceil((timeout_s + 120.0) / 60.0);
    return minutes > 525600 ? 525600 : (long)minutes;
}

char *slurm_shell_quote(const char *s) {
    size_t n = 3;
    for (const char *p = s; *p; p++) n += *p == '\'' ? 4 : 1;
    char *out = ts_malloc(n), *o = out;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}

char *slurm_filename_escape(const char *s) {
    size_t n = 1;
    for (const char *p = s; *p; p++) n += *p == '%' ? 2 : 1;
    char *out = ts_malloc(n), *o = out;
    for (const char *p = s; *p; p++) {
        *o++ = *p;
        if (*p == '%') *o++ = '%';
    }
    *o = '\0';
    return out;
}
