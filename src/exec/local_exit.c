/*
 * local_exit.c - the outcome of an ended local attempt: the exit marker is
 * the truth of success (protocol.h); otherwise the executor's own reason
 * (timeout, cancel), then the runner's marker or the runner's last line in
 * job.log, so the user reads why a job failed without opening the log;
 * the processes an earlier attempt left (local_kill_leftovers); and the
 * runners whose attempt was reported over before their process had exited,
 * reaped here afterwards (local_exiting).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec/local_internal.h"
#include "util/proctree.h"
#include "util/util.h"

#define TAIL_BYTES 2048 /* how much of job.log to search for the failure reason */
#define LEFTOVER_WAIT_S 10.0 /* how long a leftover of an attempt may take to die */

/* Finds the runner's own failure line ("tessera run-job: <job_id>: why")
 * in this attempt's part of job.log, so the EXITED message says why the
 * job failed without the user opening the log. */
static void runner_reason(const lrun *r, char *out, size_t len) {
    out[0] = '\0';
    int fd = open(r->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[TAIL_BYTES + 1];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size - TAIL_BYTES > r->log_start ? size - TAIL_BYTES : r->log_start;
    ssize_t n = from < size ? pread(fd, buf, (size_t)(size - from), from) : 0;
    close(fd);
    if (n <= 0) return;
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n') buf[--n] = '\0';
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    if (strncmp(line, RUNNER_PREFIX, strlen(RUNNER_PREFIX)) != 0) return;
    line += strlen(RUNNER_PREFIX);
    size_t id_len = strlen(r->job_id);
    if (strncmp(line, r->job_id, id_len) == 0 && strncmp(line + id_len, ": ", 2) == 0)
        line += id_len + 2;
    proto_copy_utf8(out, line, len);
}

/* The exit line the runner said on the pipe, which the spec asked for,
 * else its file: a runner that could not write the line, or did not know
 * to (a spec it could not read, an older or a test's runner), leaves the
 * file, and it costs a lookup only then. */
int local_exit_said(const lrun *r, proto_exit *out, char *err, size_t errlen) {
    if (r->lines.exit_said) {
        *out = r->lines.said;
        return TS_OK;
    }
    char spare[TS_ERRLEN];
    if (err == NULL) err = spare, errlen = sizeof(spare);
    return proto_exit_read(r->work_dir, r->attempt, out, err, errlen);
}

/* Fills outcome, exit code and message from the attempt's exit marker
 * and the wait status. The marker is the truth of success (protocol.h): a
 * marker that says "succeeded" wins, with its exit code, even if we had
 * just signalled the job (its result is complete and already published),
 * and an exit status of 0 without a marker is a failure. Otherwise our
 * own reason (timeout, cancel) comes first, then the runner's. */
void local_describe_exit(const lrun *r, int status, exec_event *e) {
    e->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    proto_exit marker;
    char merr[TS_ERRLEN] = "";
    int mrc = local_exit_said(r, &marker, merr, sizeof(merr));
    if (mrc == TS_OK && strcmp(marker.outcome, "succeeded") == 0) {
        /* The marker's exit code, not the wait status's: a runner killed
         * after its marker reports the same attempt whether its hung-up
         * pipe (finish_said) or its exit (reap) was seen first. */
        e->outcome = "succeeded";
        if (WIFSIGNALED(status))
            snprintf(e->message, sizeof(e->message),
                     "exited with status %d (its runner was killed by signal %d after its result was complete)",
                     marker.exit_code, WTERMSIG(status));
        else
            snprintf(e->message, sizeof(e->message), "exited with status %d", marker.exit_code);
        e->exit_code = marker.exit_code;
    } else if (r->reason == END_TIMEOUT) {
        e->outcome = "timeout";
        snprintf(e->message, sizeof(e->message), "timed out after %g s", r->timeout_s);
    } else if (r->reason == END_CANCEL) {
        e->outcome = "cancelled";
        snprintf(e->message, sizeof(e->message), "cancelled");
    } else if (mrc == TS_OK) {
        e->outcome = "failed";
        char why[200];
        proto_copy_utf8(why, marker.reason, sizeof(why));
        snprintf(e->message, sizeof(e->message), "exited with status %d: %s", e->exit_code, why);
    } else if (WIFEXITED(status)) {
        e->outcome = "failed";
        char why[200];
        runner_reason(r, why, sizeof(why));
        if (mrc == TS_ERR)
            proto_copy_utf8(why, merr, sizeof(why));
        else if (!why[0] && e->exit_code == 0)
            snprintf(why, sizeof(why), "the runner left no exit marker");
        snprintf(e->message, sizeof(e->message), "exited with status %d%s%s", e->exit_code,
                 why[0] ? ": " : "", why);
    } else {
        e->outcome = "failed";
        snprintf(e->message, sizeof(e->message), "killed by signal %d", WTERMSIG(status));
    }
}

/* ---- leftovers ---- */

/* See local_internal.h. */
int local_kill_leftovers(const char *mark, const char *job_id, char *err, size_t errlen) {
    int killed = 0;
    char why[TS_ERRLEN];
    if (proctree_kill_marked(mark, LEFTOVER_WAIT_S, &killed, why, sizeof(why)) != TS_OK) {
        ts_errf(err, errlen, "job %s: a process of an earlier attempt is still running: %s",
                job_id, why);
        return TS_ERR;
    }
    return TS_OK;
}

/* ---- runners reported ended before their exit ---- */

struct exiting_run {
    pid_t pid;
    double kill_at; /* 0 once SIGKILL was sent */
};

void local_exiting_add(local_exiting *xs, pid_t pid, double kill_at) {
    if (xs->n == xs->cap) {
        xs->cap = xs->cap ? xs->cap * 2 : 8;
        xs->v = ts_realloc(xs->v, xs->cap * sizeof(*xs->v));
    }
    xs->v[xs->n++] = (struct exiting_run){pid, kill_at};
}

void local_exiting_reap(local_exiting *xs, double now) {
    for (size_t i = 0; i < xs->n;) {
        struct exiting_run *x = &xs->v[i];
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)x->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 && errno == ECHILD) {
            *x = xs->v[--xs->n]; /* not ours any more */
            continue;
        }
        if (si.si_pid == 0) { /* still running */
            if (x->kill_at > 0 && now >= x->kill_at) {
                kill(-x->pid, SIGKILL);
                x->kill_at = 0;
            }
            i++;
            continue;
        }
        kill(-x->pid, SIGKILL);
        while (waitpid(x->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        *x = xs->v[--xs->n];
    }
}

double local_exiting_due(const local_exiting *xs, double due) {
    for (size_t i = 0; i < xs->n; i++)
        if (xs->v[i].kill_at > 0 && xs->v[i].kill_at < due) due = xs->v[i].kill_at;
    return due;
}

void local_exiting_kill_all(local_exiting *xs) {
    for (size_t i = 0; i < xs->n; i++) {
        kill(-xs->v[i].pid, SIGKILL);
        while (waitpid(xs->v[i].pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    free(xs->v);
    *xs = (local_exiting){0};
}
