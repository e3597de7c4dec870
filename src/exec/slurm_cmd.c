/*
 * slurm_cmd.c - runs sbatch, squeue, scancel and sacct for the Slurm
 * executor (see slurm.h). posix_spawnp rather than fork: the scheduler
 * process may have threads, and the child needs no code of ours. Each
 * command is bounded in time, because a controller that does not answer
 * must not stall the scheduler's loop (the master replaces a loop that
 * stops turning).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec/slurm.h"
#include "util/util.h"

#define OUTPUT_MAX (16 * 1024 * 1024) /* squeue of a big cluster; more is dropped */

extern char **environ;

typedef struct sink {
    char *buf;
    size_t len, cap;
} sink;

static void sink_add(sink *s, const char *data, size_t n) {
    if (s->len + n > OUTPUT_MAX) n = OUTPUT_MAX - s->len;
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->buf = ts_realloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

static char *sink_take(sink *s) {
    if (!s->buf) return ts_strdup("");
    return s->buf;
}

/* What the service holds but a batch job must never carry: sbatch exports
 * its whole environment into the job (and slurmctld keeps it in its state
 * files), and the runner needs none of these. The session secret signs
 * every tenant's cookies; the database URL and libpq's variables may hold
 * a password; a token is a tenant's credential. */
static bool secret_variable(const char *entry) {
    static const char *const names[] = {"TESSERA_SESSION_SECRET=", "TESSERA_DB=", "TESSERA_TOKEN=",
                                        "PGPASSWORD=", "PGPASSFILE="};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strncmp(entry, names[i], strlen(names[i])) == 0) return true;
    return false;
}

/* The environment for the Slurm commands: ours without the secrets
 * (borrowed strings; the caller frees the array). */
static char **command_environment(void) {
    size_t n = 0, k = 0;
    while (environ[n]) n++;
    char **env = ts_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        if (!secret_variable(environ[i])) env[k++] = environ[i];
    return env;
}

/* Spawns argv with stdout and stderr on pipes; *pid, fds[0..1] set. */
static int spawn(char *const argv[], pid_t *pid, int fds[2], char *why, size_t whylen) {
    int out[2] = {-1, -1}, err[2] = {-1, -1}, rc = -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        ts_errf(why, whylen, "pipe: %s", strerror(errno));
        goto cleanup;
    }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    /* The child gets default signals and an empty mask (the scheduler
     * blocks SIGCHLD and catches SIGTERM). */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char **env = command_environment();
    int e = posix_spawnp(pid, argv[0], &fa, &attr, argv, env);
    free(env);
    if (e != 0) {
        ts_errf(why, whylen, "cannot run %s: %s", argv[0], strerror(e));
        goto cleanup;
    }
    fds[0] = out[0];
    fds[1] = err[0];
    out[0] = err[0] = -1;
    rc = 0;
cleanup:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0) close(out[i]);
        if (err[i] >= 0) close(err[i]);
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

/* Reads both pipes until EOF or the deadline. True if the deadline came. */
static bool collect(int fds[2], double deadline, sink *out, sink *err) {
    struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
    sink *dst[2] = {out, err};
    char buf[8192];
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        double left = deadline - ts_monotonic();
        if (left <= 0) return true;
        int n = poll(p, 2, (int)ceil(left * 1000));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents) continue;
            ssize_t got = read(p[i].fd, buf, sizeof(buf));
            if (got > 0) {
                sink_add(dst[i], buf, (size_t)got);
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(p[i].fd);
                fds[i] = p[i].fd = -1;
            }
        }
    }
    return false;
}

void slurm_cmd_run(char *const argv[], double timeout_s, slurm_cmd_result *res) {
    memset(res, 0, sizeof(*res));
    res->status = -1;
    double start = ts_monotonic();
    char why[256];
    pid_t pid;
    int fds[2] = {-1, -1};
    sink out = {0}, err = {0};
    if (spawn(argv, &pid, fds, why, sizeof(why)) != 0) {
        res->out = ts_strdup("");
        res->errtext = ts_strdup(why);
        return;
    }
    res->timed_out = collect(fds, start + timeout_s, &out, &err);
    if (res->timed_out) kill(pid, SIGKILL);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0) close(fds[i]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!res->timed_out && WIFEXITED(status)) res->status = WEXITSTATUS(status);
    res->out = sink_take(&out);
    if (res->timed_out) {
        free(err.buf);
        res->errtext = ts_asprintf("%s timed out after %g s", argv[0], timeout_s);
    } else if (res->status < 0) {
        free(err.buf);
        res->errtext = ts_asprintf("%s was killed by signal %d", argv[0],
                                   WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    } else {
        res->errtext = sink_take(&err);
    }
    res->seconds = ts_monotonic() - start;
}

void slurm_cmd_free(slurm_cmd_result *res) {
    free(res->out);
    free(res->errtext);
    res->out = res->errtext = NULL;
}

void slurm_first_line(const char *text, char *buf, size_t n) {
    text += strspn(text, " \t\r\n");
    size_t len = strcspn(text, "\r\n");
    if (len >= n) len = n - 1;
    memcpy(buf, text, len);
    buf[len] = '\0';
}
