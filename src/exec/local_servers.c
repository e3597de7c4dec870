/*
 * local_servers.c - the local executor's fork servers (local_internal.h,
 * local_start_servers): tessera's own, and tessera-runner's, the small
 * runner binary for the job types that read no slides
 * (src/tessera_runner.c says why it exists).
 *
 * tessera-runner is used only when it is the one built with this tessera: it must lie
 * in the same directory and answer `tessera-runner version` with this
 * binary's build stamp (util.h, ts_build_stamp). A runner from another
 * build could speak another protocol; without it, or with a stale one,
 * every job is forked from the full binary as before, which is slower,
 * never wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec/forkserver.h"
#include "exec/local_internal.h"
#include "util/log.h"
#include "util/util.h"

#define SMALL_RUNNER_NAME "tessera-runner"
#define VERSION_WAIT_MS 5000 /* the answer takes a millisecond; a hung binary is not used */

/* Reads up to n - 1 bytes of fd's output until EOF or the deadline. */
static void read_answer(int fd, char *buf, size_t n) {
    size_t used = 0;
    double end = ts_monotonic() + VERSION_WAIT_MS / 1000.0;
    while (used + 1 < n) {
        int ms = (int)((end - ts_monotonic()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (ms <= 0 || poll(&p, 1, ms) <= 0) break;
        ssize_t got = read(fd, buf + used, n - 1 - used);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        used += (size_t)got;
    }
    buf[used] = '\0';
}

/* Runs `path version` (with envp, as the server would run) and says
 * whether it printed this build's stamp. */
static bool same_build(const char *path, char *const envp[], char *err, size_t errlen) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        ts_errf(err, errlen, "pipe: %s", strerror(errno));
        return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    /* In a process group of its own, so that a hung one is killed with
     * whatever it started (a wrapper script's children). */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    char *argv[] = {(char *)path, "version", NULL};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, path, &fa, &at, argv, envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    char answer[128] = "";
    if (rc == 0) read_answer(out[0], answer, sizeof(answer));
    close(out[0]);
    if (rc != 0) {
        ts_errf(err, errlen, "cannot run %s: %s", path, strerror(rc));
        return false;
    }
    kill(-pid, SIGKILL); /* it has answered or had its time; the zombie holds the group id */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    char want[128];
    snprintf(want, sizeof(want), SMALL_RUNNER_NAME " %s\n", ts_build_stamp());
    if (strcmp(answer, want) == 0) return true;
    answer[strcspn(answer, "\n")] = '\0';
    if (answer[0] == '\0')
        ts_errf(err, errlen, "%s version answered nothing (%s)", path,
                WIFEXITED(status) ? "it exited" : "it did not exit in time or was killed");
    else
        ts_errf(err, errlen, "%s is from another build (\"%s\", this tessera is %s)", path,
                answer, ts_build_stamp());
    return false;
}

/* tessera-runner's fork server, found next to self_exe, or NULL (said in
 * the log): missing, from another build, or TESSERA_SMALL_RUNNER=0. */
static forkserver *small_server(const char *self_exe, char *const envp[], int job_nice) {
    const char *opt = getenv("TESSERA_SMALL_RUNNER");
    if (opt && strcmp(opt, "0") == 0) return NULL; /* for comparisons, and as an escape hatch */
    const char *slash = strrchr(self_exe, '/');
    char *path = slash ? ts_asprintf("%.*s/" SMALL_RUNNER_NAME, (int)(slash - self_exe), self_exe)
                       : ts_strdup(SMALL_RUNNER_NAME);
    char err[TS_ERRLEN];
    forkserver *fs = NULL;
    if (access(path, X_OK) != 0) {
        log_emit(LOG_INFO, NULL, NULL,
                 "no " SMALL_RUNNER_NAME "; every runner is forked from tessera",
                 json_pack("{ss}", "path", path));
    } else if (!same_build(path, envp, err, sizeof(err))) {
        log_emit(LOG_WARN, NULL, NULL, SMALL_RUNNER_NAME " not used",
                 json_pack("{ss}", "error", err));
    } else if ((fs = forkserver_start(path, envp, job_nice, err, sizeof(err))) == NULL) {
        log_emit(LOG_WARN, NULL, NULL, "no fork server for " SMALL_RUNNER_NAME,
                 json_pack("{ss}", "error", err));
    }
    free(path);
    return fs;
}

/* True when path is this very program: only then is running the runner's
 * entry point in a fork the same as exec'ing `path run-job` (a test's
 * fake runner script is not). */
static bool is_self(const char *path) {
    struct stat a, b;
    return stat(path, &a) == 0 && stat("/proc/self/exe", &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* See local_internal.h. No server when self_exe is another program,
 * TESSERA_FORK_SERVER=0 (for comparisons and as an escape hatch), or the
 * server did not start; tessera-runner's only beside tessera's. */
void local_start_servers(const char *self_exe, char *const envp[], int job_nice,
                         forkserver **fs, forkserver **small) {
    *fs = *small = NULL;
    const char *opt = getenv("TESSERA_FORK_SERVER");
    if ((opt && strcmp(opt, "0") == 0) || !is_self(self_exe)) return;
    char err[TS_ERRLEN];
    *fs = forkserver_start(self_exe, envp, job_nice, err, sizeof(err));
    if (*fs == NULL)
        log_emit(LOG_WARN, NULL, NULL, "no fork server; runners are exec'd",
                 json_pack("{ss}", "error", err));
    else
        *small = small_server(self_exe, envp, job_nice);
}
