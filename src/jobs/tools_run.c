/*
 * tools_run.c - running one admin-defined tool as a job (see tools.h).
 *
 * The runner forks the tool and execs its absolute argv[0] directly: no
 * shell and no PATH search, so a parameter value is only ever one argument.
 * The tool stays in the runner's process group (the executor's kill reaches
 * it); when it exits, whatever it left running below the runner (a child
 * subreaper, see runner.c) is killed before its result is looked at. It
 * reads /dev/null, writes stderr straight into job.log, and writes
 * stdout into a pipe the runner copies to job.log line by line, taking
 * "PROGRESS <done> <total> [message]" lines as progress reports. Once it has
 * exited 0, its declared result must be a GeoJSON FeatureCollection in
 * out_dir, and summary.json is written beside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/slide.h"
#include "jobs/tools.h"
#include "util/proctree.h"
#include "util/util.h"

#define LINE_BYTES 8192    /* longer stdout lines are copied in pieces */
#define POLL_MS 100        /* how long a stop request may go unnoticed */
#define LEFTOVER_KILL_S 10.0 /* how long killing what the tool left may take */

/* What the child needs, prepared before fork() so that the child makes
 * only async-signal-safe calls. */
typedef struct spawn_args {
    pid_t parent;
    int devnull, out_w, err_w;
    const char *work_dir;
    char **argv, **envp;
} spawn_args;

/* The state of one running tool. */
typedef struct tool_proc {
    pid_t pid;
    int out_fd;       /* read end of the tool's stdout; -1 once closed */
    double started;
    double term_at;   /* when SIGTERM went; 0 = not yet */
    bool stopped, timed_out, killed;
    char line[LINE_BYTES];
    size_t line_len;
} tool_proc;

/* ---- the child ---- */

/* Reports why the child could not exec ({stage, errno}) to the parent over
 * the close-on-exec pipe, then exits. */
__attribute__((noreturn)) static void child_fail(const spawn_args *a, int stage) {
    int msg[2] = {stage, errno};
    if (write(a->err_w, msg, sizeof(msg)) < 0) _exit(127);
    _exit(127);
}

/* stdin from /dev/null, stdout into the pipe, stderr unchanged (job.log);
 * every other fd closed at exec; default signals; killed if the runner dies. */
__attribute__((noreturn)) static void child_exec(const spawn_args *a) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != a->parent) _exit(127);
    if (dup2(a->devnull, 0) < 0 || dup2(a->out_w, 1) < 0) child_fail(a, 0);
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        for (int fd = 3; fd < 4096; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    ts_signals_default();
    if (chdir(a->work_dir) != 0) child_fail(a, 1);
    execve(a->argv[0], a->argv, a->envp);
    child_fail(a, 2);
}

/* ---- starting ---- */

/* Forks and execs the tool. On success p->pid and p->out_fd are set; an
 * exec failure (missing file, no permission) is reported as the job's
 * error rather than a bare exit status 127. */
static int spawn(const tool_def *t, char **argv, char **envp, const char *work_dir, tool_proc *p,
                 char *err, size_t errlen) {
    int out[2] = {-1, -1}, ep[2] = {-1, -1};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int rc = TS_ERR;
    if (devnull < 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(ep, O_CLOEXEC) != 0) {
        ts_errf(err, errlen, "tool %s: cannot set up its pipes: %s", t->name, strerror(errno));
        goto cleanup;
    }
    spawn_args a = {getpid(), devnull, out[1], ep[1], work_dir, argv, envp};
    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0) {
        ts_errf(err, errlen, "tool %s: fork: %s", t->name, strerror(errno));
        goto cleanup;
    }
    if (p->pid == 0) child_exec(&a);
    close(ep[1]);
    ep[1] = -1;
    int msg[2];
    ssize_t n;
    do n = read(ep[0], msg, sizeof(msg));
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(msg)) {
        static const char *const stages[] = {"set up stdio for", "chdir to the work dir of",
                                             "execute"};
        ts_errf(err, errlen, "tool %s: cannot %s %s: %s", t->name, stages[msg[0]], argv[0],
                strerror(msg[1]));
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        goto cleanup;
    }
    p->out_fd = out[0];
    out[0] = -1;
    p->started = ts_monotonic();
    rc = TS_OK;
cleanup:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0) close(out[i]);
        if (ep[i] >= 0) close(ep[i]);
    }
    if (devnull >= 0) close(devnull);
    return rc;
}

/* ---- stdout ---- */

/* Writes all of s to fd (job.log), retrying short writes; gives up
 * silently on an error, since a lost log line must not fail the job. */
static void write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* "PROGRESS <done> <total> [message]" with finite 0 <= done, 0 < total
 * becomes a progress report (done capped at total); true if it was one. */
static bool progress_line(job_ctx *ctx, const char *line) {
    if (strncmp(line, "PROGRESS ", 9) != 0) return false;
    char *end;
    double done = strtod(line + 9, &end);
    if (end == line + 9 || *end != ' ') return false;
    const char *rest = end;
    double total = strtod(rest, &end);
    if (end == rest || (*end != ' ' && *end != '\0')) return false;
    if (!isfinite(done) || !isfinite(total) || done < 0 || total <= 0) return false;
    while (*end == ' ') end++;
    job_progress(ctx, done < total ? done : total, total, end);
    return true;
}

/* Handles one complete line of the tool's stdout (without its '\n'):
 * progress is reported, anything else goes to job.log unchanged. */
static void handle_line(job_ctx *ctx, char *line, size_t len) {
    line[len] = '\0';
    if (progress_line(ctx, line)) return;
    line[len] = '\n';
    write_all(STDOUT_FILENO, line, len + 1);
}

/* Splits a chunk of stdout into lines; a line longer than the buffer is
 * copied out in pieces (it cannot be a progress line). */
static void feed(job_ctx *ctx, tool_proc *p, const char *buf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            handle_line(ctx, p->line, p->line_len);
            p->line_len = 0;
            continue;
        }
        if (p->line_len + 2 > sizeof(p->line)) {
            write_all(STDOUT_FILENO, p->line, p->line_len);
            p->line_len = 0;
        }
        p->line[p->line_len++] = buf[i];
    }
}

/* Reads what is available; closes the pipe at end of file. With nonblock,
 * reads until nothing is left (used after the tool exited: a grandchild
 * holding the pipe open must not keep us waiting). */
static void read_out(job_ctx *ctx, tool_proc *p, bool nonblock) {
    if (p->out_fd < 0) return;
    if (nonblock) fcntl(p->out_fd, F_SETFL, fcntl(p->out_fd, F_GETFL) | O_NONBLOCK);
    char buf[4096];
    for (;;) {
        ssize_t n = read(p->out_fd, buf, sizeof(buf));
        if (n > 0) {
            feed(ctx, p, buf, (size_t)n);
            if (nonblock) continue;
            return;
        }
        if (n < 0 && errno == EINTR) return;
        if (n < 0 && errno == EAGAIN) return;
        if (p->line_len > 0) handle_line(ctx, p->line, p->line_len); /* last line, no '\n' */
        p->line_len = 0;
        close(p->out_fd);
        p->out_fd = -1;
        return;
    }
}

/* ---- supervising ---- */

/* Forwards a stop request or the tool's own timeout as SIGTERM, and
 * SIGKILL after TOOLS_KILL_GRACE_S if the tool is still there. */
static void enforce_stop(job_ctx *ctx, const tool_def *t, tool_proc *p) {
    double now = ts_monotonic();
    if (p->term_at == 0) {
        if (*ctx->stop) p->stopped = true;
        else if (t->timeout_s > 0 && now - p->started >= t->timeout_s) p->timed_out = true;
        else return;
        kill(p->pid, SIGTERM);
        p->term_at = now;
    } else if (!p->killed && now - p->term_at >= TOOLS_KILL_GRACE_S) {
        kill(p->pid, SIGKILL);
        p->killed = true;
    }
}

/* Reaps every child that has ended: the tool (true, *status set) and
 * orphans of the tool's that were handed to us as the subreaper, which
 * would otherwise stay zombies until the job ends. */
static bool reap_tool(const tool_proc *p, int *status) {
    bool tool_ended = false;
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w == p->pid) {
            *status = st;
            tool_ended = true;
        }
        if (w > 0) continue;
        if (w < 0 && errno == ECHILD && !tool_ended) { /* reaped elsewhere: nothing to report */
            *status = 0;
            tool_ended = true;
        }
        return tool_ended;
    }
}

/* Waits for the tool to exit, copying its stdout and forwarding stops.
 * Returns its wait status. */
static int supervise(job_ctx *ctx, const tool_def *t, tool_proc *p) {
    for (;;) {
        if (p->out_fd >= 0) {
            struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
            if (poll(&pfd, 1, POLL_MS) > 0) read_out(ctx, p, false);
        } else {
            struct timespec ts = {0, POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        int status = 0;
        if (reap_tool(p, &status)) {
            read_out(ctx, p, true);
            if (p->out_fd >= 0) close(p->out_fd);
            p->out_fd = -1;
            return status;
        }
        enforce_stop(ctx, t, p);
    }
}

/* Kills what the tool left running (background children, daemons, anything
 * that setsid()'d or double-forked: as the subreaper we inherited them) and
 * says so in job.log. A result is only looked at after this, so nothing can
 * still be writing it. */
static void kill_leftovers(const tool_def *t) {
    int killed = proctree_kill_children(LEFTOVER_KILL_S);
    if (killed > 0)
        fprintf(stderr, "tool %s left %d process%s running after it exited; killed\n", t->name,
                killed, killed == 1 ? "" : "es");
    else if (killed < 0)
        fprintf(stderr, "tool %s left processes that did not die within %g s of SIGKILL\n",
                t->name, LEFTOVER_KILL_S);
}

/* The job's error for a tool that did not exit 0 (or was stopped). */
static int exit_error(const tool_def *t, const tool_proc *p, int status, char *err,
                      size_t errlen) {
    if (p->stopped)
        ts_errf(err, errlen, "interrupted: tool %s stopped", t->name);
    else if (p->timed_out)
        ts_errf(err, errlen, "tool %s timed out after %g s", t->name, t->timeout_s);
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return TS_OK;
    else if (WIFEXITED(status))
        ts_errf(err, errlen, "tool %s exited with status %d", t->name, WEXITSTATUS(status));
    else
        ts_errf(err, errlen, "tool %s was killed by signal %d (%s)", t->name,
                WTERMSIG(status), strsignal(WTERMSIG(status)));
    return TS_ERR;
}

/* ---- the result ---- */

/* Counts the features of a FeatureCollection, or of a bare array of
 * Feature objects (what QuPath exports and InstanSeg writes); -1 if the
 * document is neither. */
static long long count_features(json_t *doc) {
    json_t *arr = doc;
    if (json_is_object(doc)) {
        const char *type = json_string_value(json_object_get(doc, "type"));
        if (type == NULL || strcmp(type, "FeatureCollection") != 0) return -1;
        arr = json_object_get(doc, "features");
    }
    if (!json_is_array(arr)) return -1;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *type = json_string_value(json_object_get(json_array_get(arr, i), "type"));
        if (type == NULL || strcmp(type, "Feature") != 0) return -1;
    }
    return (long long)json_array_size(arr);
}

/* The declared result must be a regular file in out_dir holding GeoJSON
 * features; then summary.json records the tool, the count and the file. */
static int check_result(const tool_def *t, const char *out_dir, char *err, size_t errlen) {
    char *path = ts_asprintf("%s/%s", out_dir, t->result);
    char *summary = ts_asprintf("%s/summary.json", out_dir);
    json_t *doc = NULL, *sum = NULL;
    int rc = TS_ERR;
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        ts_errf(err, errlen, "tool %s did not write its result %s into {out_dir}", t->name,
                t->result);
        goto cleanup;
    }
    json_error_t jerr;
    long long n = -1;
    if ((doc = json_load_file(path, 0, &jerr)) == NULL) {
        ts_errf(err, errlen, "tool %s: result %s is not JSON: line %d: %s", t->name, t->result,
                jerr.line, jerr.text);
        goto cleanup;
    }
    if ((n = count_features(doc)) < 0) {
        ts_errf(err, errlen, "tool %s: result %s is not a GeoJSON FeatureCollection", t->name,
                t->result);
        goto cleanup;
    }
    sum = json_pack("{s:s, s:I, s:s}", "tool", t->name, "features", (json_int_t)n, "result",
                    t->result);
    if (json_dump_file(sum, summary, JSON_INDENT(2)) != 0) {
        ts_errf(err, errlen, "cannot write %s", summary);
        goto cleanup;
    }
    rc = TS_OK;
cleanup:
    json_decref(doc);
    json_decref(sum);
    free(path);
    free(summary);
    return rc;
}

/* ---- the job type's run ---- */

/* An absolute form of path (the tool runs in work_dir, so relative paths
 * would break), freshly allocated; path itself if it cannot be resolved. */
static char *absolute(const char *path) {
    char *abs = path ? realpath(path, NULL) : NULL;
    return abs ? abs : (path ? ts_strdup(path) : NULL);
}

/* The run function of every tool (see jobs.h): expand, start, supervise,
 * check the result. Paths are made absolute first because the tool runs in
 * work_dir. Progress: 0/1 at the start, the tool's own reports, 1/1 at
 * the end. */
int tools_run(job_ctx *ctx, char *err, size_t errlen) {
    const tool_def *t = ctx->type ? ctx->type->data : NULL;
    if (t == NULL) {
        ts_errf(err, errlen, "job type has no tool definition");
        return TS_ERR;
    }
    char *out_dir = absolute(ctx->out_dir), *work_dir = absolute(ctx->work_dir);
    char *image = NULL, real[PATH_MAX], why[TS_ERRLEN];
    if (t->needs_image) {
        /* The tool opens the image by name: it gets the resolved path, just
         * checked to be a regular file inside the data roots. */
        if (slide_check_file(ctx->image_path ? ctx->image_path : "", ctx->data_roots, real, why,
                             sizeof(why)) != TS_OK) {
            ts_errf(err, errlen, "image_path %s: %s", ctx->image_path ? ctx->image_path : "",
                    why);
            free(out_dir);
            free(work_dir);
            return TS_ERR;
        }
        image = ts_strdup(real);
    }
    tools_vars vars = {image, out_dir, work_dir, ctx->job_id, ctx->cpus, ctx->params};
    char **argv = NULL, **envp = NULL;
    tool_proc *p = ts_calloc(1, sizeof(*p));
    p->out_fd = -1;
    int rc = TS_ERR;
    if (tools_build_argv(t, &vars, &argv, err, errlen) != TS_OK ||
        tools_build_env(t, &vars, &envp, err, errlen) != TS_OK)
        goto cleanup;
    job_progress(ctx, 0, 1, "starting tool");
    if (spawn(t, argv, envp, work_dir, p, err, errlen) != TS_OK) goto cleanup;
    int status = supervise(ctx, t, p);
    kill_leftovers(t);
    if (exit_error(t, p, status, err, errlen) != TS_OK) goto cleanup;
    if (check_result(t, out_dir, err, errlen) != TS_OK) goto cleanup;
    job_progress(ctx, 1, 1, "done");
    rc = TS_OK;
cleanup:
    tools_strv_free(argv);
    tools_strv_free(envp);
    free(p);
    free(out_dir);
    free(work_dir);
    free(image);
    return rc;
}
