/*
 * layout.c - see layout.h.
 */
#include "util/layout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

static const char *const top_names[] = {
    [LAYOUT_DB] = "tessera.db",
    [LAYOUT_LOG] = "tessera.log",
    [LAYOUT_SESSION_SECRET] = "session_secret",
    [LAYOUT_DOORBELL] = "scheduler.sock",
    [LAYOUT_INSTANCE_ID] = "instance_id",
    [LAYOUT_DATA] = "data",
};

static const char *const attempt_suffix[] = {
    [LAYOUT_SPEC] = "json",
    [LAYOUT_PROGRESS] = "progress",
    [LAYOUT_EXIT] = "exit",
    [LAYOUT_BATCH_SCRIPT] = "sbatch",
};

char *layout_file_path(const char *state_dir, layout_file which) {
    return ts_asprintf("%s/%s", state_dir, top_names[which]);
}

/* "." and ".." would name a directory of their own in a path. core/spec
 * refuses them as job ids, so no stored job has one; should one reach here
 * anyway it gets a leading '_' and stays inside its tree. Only these two:
 * "..." is an ordinary name, and prefixing it would make it collide with a
 * job really called "_..." ('_' is a job_id character). */
static const char *job_dir_prefix(const char *job_id) {
    return strcmp(job_id, ".") == 0 || strcmp(job_id, "..") == 0 ? "_" : "";
}

static char *job_path(const char *state_dir, const char *tree, int64_t workflow_id,
                      const char *job_id) {
    return ts_asprintf("%s/%s/%lld/%s%s", state_dir, tree, (long long)workflow_id,
                       job_dir_prefix(job_id), job_id);
}

char *layout_work_dir(const char *state_dir, int64_t workflow_id, const char *job_id) {
    return job_path(state_dir, "work", workflow_id, job_id);
}

char *layout_result_dir(const char *state_dir, int64_t workflow_id, const char *job_id) {
    return job_path(state_dir, "results", workflow_id, job_id);
}

char *layout_job_log_in(const char *work_dir) {
    return ts_asprintf("%s/job.log", work_dir);
}

char *layout_job_log(const char *state_dir, int64_t workflow_id, const char *job_id) {
    char *dir = layout_work_dir(state_dir, workflow_id, job_id);
    char *path = layout_job_log_in(dir);
    free(dir);
    return path;
}

char *layout_attempt_path(const char *work_dir, int attempt, layout_attempt_file which) {
    return ts_asprintf("%s/attempt-%d.%s", work_dir, attempt, attempt_suffix[which]);
}

char *layout_result_tmp(const char *result_dir, int attempt, long pid) {
    return ts_asprintf("%s.tmp-%d-%ld", result_dir, attempt, pid);
}

char *layout_result_aside(const char *result_dir, int attempt, long pid) {
    return ts_asprintf("%s.old-%d-%ld", result_dir, attempt, pid);
}

void layout_remove_workflow(const char *state_dir, int64_t workflow_id) {
    const char *trees[] = {"work", "results"};
    for (size_t i = 0; i < sizeof(trees) / sizeof(trees[0]); i++) {
        char *dir = ts_asprintf("%s/%s/%lld", state_dir, trees[i], (long long)workflow_id);
        ts_rmtree(dir);
        free(dir);
    }
}

/* See layout.h. chmod, not only mkdir's mode: a state directory made by an
 * older version (0755) or by hand is tightened too. */
int layout_state_dir_make(const char *state_dir, int *tightened, char *err, size_t errlen) {
    struct stat sb;
    *tightened = 0;
    if (ts_mkdir_p(state_dir, err, errlen) != TS_OK) return TS_ERR;
    if (stat(state_dir, &sb) != 0) {
        ts_errf(err, errlen, "state directory %s: %s", state_dir, strerror(errno));
        return TS_ERR;
    }
    if ((sb.st_mode & 077) == 0) return TS_OK;
    if (chmod(state_dir, 0700) != 0) {
        ts_errf(err, errlen, "state directory %s is readable by other accounts (mode %04o) and "
                "cannot be made private: %s", state_dir, (unsigned)(sb.st_mode & 07777),
                strerror(errno));
        return TS_ERR;
    }
    *tightened = 1;
    return TS_OK;
}
