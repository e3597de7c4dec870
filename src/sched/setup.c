/*
 * setup.c - see setup.h.
 */
#include "sched/setup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "exec/slurm.h"
#include "util/layout.h"
#include "util/util.h"

#define KILL_GRACE_S 5.0
#define LEASE_TTL_S 5.0

/* 1-16 of [a-z0-9]: what a Slurm job name carries without quoting. */
static bool instance_valid(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 16) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9'))) return false;
    return true;
}

static int read_id(const char *path, char *buf, size_t n, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        return TS_ERR;
    }
    char line[64] = "";
    if (!fgets(line, sizeof(line), f)) line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (!instance_valid(line)) {
        ts_errf(err, errlen, "%s: must hold 1-16 of a-z 0-9 (the installation's id)", path);
        return TS_ERR;
    }
    ts_strlcpy(buf, line, n);
    return TS_OK;
}

/* Creates the file with O_EXCL (two processes starting at once agree on
 * the one that won), durably: a changed id would orphan every Slurm job. */
int sched_instance_id(const char *state_dir, char *buf, size_t n, char *err, size_t errlen) {
    char *path = layout_file_path(state_dir, LAYOUT_INSTANCE_ID);
    int rc = TS_ERR;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) {
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (fd >= 0) {
        unsigned char rnd[8];
        char id[17];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            ts_errf(err, errlen, "getrandom: %s", strerror(errno));
            close(fd);
            unlink(path);
            goto cleanup;
        }
        for (int i = 0; i < 8; i++) snprintf(id + 2 * i, 3, "%02x", rnd[i]);
        id[16] = '\n';
        bool ok = write(fd, id, 17) == 17 && fsync(fd) == 0;
        close(fd);
        if (!ok) {
            ts_errf(err, errlen, "%s: %s", path, strerror(errno));
            unlink(path);
            goto cleanup;
        }
    }
    rc = read_id(path, buf, n, err, errlen);
cleanup:
    free(path);
    return rc;
}

executor *sched_setup_executor(const ts_config *cfg, const char *self_exe, char *err,
                               size_t errlen) {
    if (strcmp(cfg->executor, "slurm") != 0)
        return exec_local_new(self_exe, KILL_GRACE_S, cfg->job_nice, err, errlen);
    char instance[32];
    if (sched_instance_id(cfg->state_dir, instance, sizeof(instance), err, errlen) != TS_OK)
        return NULL;
    exec_slurm_config sc = {.self_exe = self_exe, .instance = instance,
                            .partition = cfg->slurm_partition, .account = cfg->slurm_account,
                            .extra_args = cfg->slurm_extra_args,
                            .max_submitted = cfg->slurm_max_submitted,
                            .submit_rate = cfg->slurm_submit_rate,
                            .poll_s = cfg->slurm_poll_seconds,
                            .marker_wait_s = cfg->slurm_marker_wait_seconds,
                            .command_timeout_s = 30};
    return exec_slurm_new(&sc, err, errlen);
}

void sched_setup_config(const ts_config *cfg, sched_config *out) {
    memset(out, 0, sizeof(*out));
    out->state_dir = cfg->state_dir;
    out->data_roots = cfg->data_roots;
    out->max_active_users = cfg->max_active_users;
    out->concurrency_limit = cfg->concurrency_limit;
    out->poll_seconds = cfg->queue_poll_seconds;
    out->lease_ttl = LEASE_TTL_S;
    out->kill_grace_s = KILL_GRACE_S;
    out->wal_max_bytes = (int64_t)cfg->wal_max_mb << 20;
}

int sched_setup_check(const ts_config *cfg, char *err, size_t errlen) {
    if (strcmp(cfg->executor, "slurm") != 0) return TS_OK;
    executor *ex = sched_setup_executor(cfg, "/proc/self/exe", err, errlen);
    if (!ex) return TS_ERR;
    ex->ops->destroy(ex);
    return TS_OK;
}
