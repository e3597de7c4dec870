/*
 * local.c - the local executor: each attempt is a child process
 * `self_exe run-job SPEC` in its own process group (see executor.h).
 *
 * The scheduler drives it from one thread: start() asks the fork server for
 * the runner (or forks and execs it), wait() polls the children's progress
 * pipes, a SIGCHLD signalfd, the fork server's answers (a runner's pid) and
 * the caller's wake_fd, and turns what it sees into events. Nothing here
 * blocks except poll(), and cancel()/destroy() for the pids still due.
 *
 * SIGCHLD: exec_local_new() blocks SIGCHLD in the calling thread (threads
 * it creates later inherit the mask) so that child exits arrive on the
 * signalfd instead of interrupting the process. It stays blocked after
 * destroy(): another executor may still rely on it, and a blocked SIGCHLD
 * whose disposition is the default (ignore) costs nothing. Children get an
 * empty signal mask back before exec.
 *
 * Reaping is per known pid (waitpid(pid)), not waitpid(-1): other code in
 * the scheduler process (popen of squeue/sbatch) must keep its children.
 *
 * What a job leaves behind. Every process of an attempt carries the
 * environment entry TESSERA_ATTEMPT=<work_dir>/attempt-<n> (proctree.h), the
 * runner is a child subreaper, and the runner's parent-death signal makes it
 * kill everything below it (runner.c). Guarantees, on one machine:
 *   - when a runner ends by itself, nothing it or its tool started is left
 *     (the runner kills its subreaped descendants before it exits);
 *   - when the scheduler dies (even by SIGKILL), each runner kills its
 *     descendants and exits, also those that called setsid() or
 *     double-forked;
 *   - when a runner is killed or fails, its process group is killed at once
 *     and every process carrying the attempt's mark after it;
 *   - before attempt n > 1 starts, every process carrying the mark of an
 *     earlier attempt of the job is killed and waited for (start fails if
 *     one will not die within LEFTOVER_WAIT_S).
 * Not guaranteed: a process that left the runner's subtree, its process
 * group and its environment (setsid + double fork + exec with an emptied
 * environment) in the same moment as the runner was SIGKILLed; nor
 * anything running as another user. A cgroup per attempt would close that
 * gap; it needs a delegated cgroup v2 tree and is not done here.
 */
#include "exec/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec/forkserver.h"
#include "exec/local_internal.h"
#include "exec/protocol.h"
#include "util/layout.h"
#include "util/log.h"
#include "util/proctree.h"
#include "util/util.h"

#define PROGRESS_INTERVAL_S 0.25 /* at most ~4 progress events per job per second */
#define ANSWER_WAIT_MS 10000     /* a fork server's answer takes well under a millisecond */

typedef struct local_exec {
    executor base;
    char *self_exe;
    double grace_s;
    int job_nice; /* runners run this much nicer than we do (exec_local_new) */
    bool exit_files; /* TESSERA_EXIT_MARKER_FILES=1: runners leave exit files, not lines */
    int sigfd;
    forkserver *fs; /* NULL: every runner is exec'd */
    forkserver *fs_small; /* tessera-runner's, for small_runner jobs; NULL: fs runs them */
    uint64_t last_spawn_id;
    size_t n_pending; /* runs whose pid a fork server has yet to answer */
    lrun **runs; /* a small array: a machine runs tens of jobs, not thousands */
    size_t n_runs, cap_runs;
    local_exiting exiting; /* runners reported ended by their own word (finish_said) */
    exec_event *queue; /* events not yet handed out (beyond `max`) */
    size_t q_len, q_cap;
    struct pollfd *pfds;
    lrun **pfd_runs; /* pfds[i + first] belongs to pfd_runs[i] */
    size_t pfd_cap;
} local_exec;

/* ---- small helpers ---- */

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) errno = EIO;
        if (n <= 0) return TS_ERR;
        buf += n;
        len -= (size_t)n;
    }
    return TS_OK;
}

static lrun *find_run(local_exec *ex, int64_t workflow_id, int32_t job_index) {
    for (size_t i = 0; i < ex->n_runs; i++)
        if (ex->runs[i]->workflow_id == workflow_id && ex->runs[i]->job_index == job_index)
            return ex->runs[i];
    return NULL;
}

/* Appends an event to the queue wait() hands out. */
static exec_event *enqueue(local_exec *ex, exec_event_kind kind, const lrun *r) {
    if (ex->q_len == ex->q_cap) {
        ex->q_cap = ex->q_cap ? ex->q_cap * 2 : 16;
        ex->queue = ts_realloc(ex->queue, ex->q_cap * sizeof(exec_event));
    }
    exec_event *e = &ex->queue[ex->q_len++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->workflow_id = r->workflow_id;
    e->job_index = r->job_index;
    e->attempt = r->attempt;
    e->progress = r->progress.fraction;
    return e;
}

/* Signals the whole process group, so processes the job started go too.
 * Nothing before the pid is known (never kill(0) or kill(-0)). */
static void signal_group(const lrun *r, int sig) {
    if (r->pid <= 0) return;
    if (kill(-r->pid, sig) != 0 && errno == ESRCH) kill(r->pid, sig);
}

/* ---- start ---- */

/* Opens job.log for appending and writes the attempt's header, so a log
 * with several attempts reads as a history. *start gets the offset after
 * the header. Returns the fd or -1. */
static int open_log(const exec_job *job, const char *path, off_t *start, char *err,
                    size_t errlen) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    time_t now = time(NULL);
    struct tm tm;
    char when[32];
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *header = ts_asprintf("=== attempt %d of job %s started %s ===\n", job->attempt,
                               job->job_id, when);
    int rc = write_all(fd, header, strlen(header));
    free(header);
    if (rc != TS_OK) {
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    *start = lseek(fd, 0, SEEK_END);
    return fd;
}

/* The fds and strings the child needs, prepared before fork() because the
 * child may only make async-signal-safe calls. */
typedef struct child_args {
    pid_t parent;
    int devnull, log_fd, pipe_w, job_nice;
    char *argv[4];
    char **envp; /* ours with the attempt's mark first */
} child_args;

/* Our environment with PROCTREE_MARK=<mark value> in front (any inherited
 * mark dropped), for the runner; without a mark when mark_prefix is NULL
 * (the fork server's). Freshly allocated, free with free_env(). */
static char **attempt_env(const char *mark_prefix, int attempt) {
    size_t n = 0;
    while (environ && environ[n]) n++;
    char **env = ts_calloc(n + 2, sizeof(char *));
    size_t k = 0;
    if (mark_prefix) env[k++] = ts_asprintf("%s%d", mark_prefix, attempt);
    size_t name_len = strlen(PROCTREE_MARK);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], PROCTREE_MARK, name_len) != 0 || environ[i][name_len] != '=')
            env[k++] = ts_strdup(environ[i]);
    return env;
}

static void free_env(char **env) {
    for (size_t i = 0; env && env[i]; i++) free(env[i]);
    free(env);
}

/* The child after fork(): own process group (so a kill reaches the whole
 * job), killed if the scheduler dies (jobs do not outlive it; the restarted
 * scheduler re-runs them), then exec. Never returns. */
__attribute__((noreturn)) static void child_exec(const child_args *a) {
    setpgid(0, 0);
    /* PDEATHSIG fires when the forking *thread* exits: fork from the
     * scheduler's main thread. The getppid() check closes the race with a
     * parent that died before prctl(). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != a->parent) _exit(127);
    forkserver_child_stdio(a->devnull, a->log_fd, a->pipe_w);
    ts_signals_default();
    forkserver_child_nice(a->job_nice);
    execve(a->argv[0], a->argv, a->envp);
    int e = errno;
    const char *parts[] = {RUNNER_PREFIX, "cannot execute ", a->argv[0], ": ",
                           strerrordesc_np(e) ? strerrordesc_np(e) : "error", "\n"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if (write(2, parts[i], strlen(parts[i])) < 0) break;
    _exit(127);
}

/* Records a started child. */
static void add_run(local_exec *ex, const exec_job *job, pid_t pid, int pipe_r, char *log_path,
                    off_t log_start, char *mark) {
    lrun *r = ts_calloc(1, sizeof(*r));
    r->mark = mark;
    r->workflow_id = job->workflow_id;
    r->job_index = job->job_index;
    r->attempt = job->attempt;
    r->job_id = ts_strdup(job->job_id);
    r->work_dir = ts_strdup(job->work_dir);
    r->log_path = log_path;
    r->log_start = log_start;
    r->pid = pid;
    r->spawn_fds[0] = r->spawn_fds[1] = r->spawn_fds[2] = -1;
    r->pipe_fd = pipe_r;
    r->timeout_s = job->timeout_s;
    r->deadline = job->timeout_s > 0 ? ts_monotonic() + job->timeout_s : 0;
    r->last_emit = -1e9;
    if (ex->n_runs == ex->cap_runs) {
        ex->cap_runs = ex->cap_runs ? ex->cap_runs * 2 : 8;
        ex->runs = ts_realloc(ex->runs, ex->cap_runs * sizeof(lrun *));
    }
    ex->runs[ex->n_runs++] = r;
}

/* Forks and execs `self_exe run-job SPEC` with the attempt's mark. Returns
 * its pid, or -1 with the reason. */
static pid_t exec_runner(local_exec *ex, const char *spec_path, const char *mark, int attempt,
                         const int fds[3], char *err, size_t errlen) {
    char **envp = attempt_env(mark, attempt);
    child_args a = {.parent = getpid(), .devnull = fds[0], .log_fd = fds[1], .pipe_w = fds[2],
                    .job_nice = ex->job_nice,
                    .argv = {ex->self_exe, "run-job", (char *)spec_path, NULL}, .envp = envp};
    pid_t pid = fork();
    if (pid == 0) child_exec(&a);
    if (pid < 0) ts_errf(err, errlen, "fork: %s", strerror(errno));
    free_env(envp);
    return pid;
}

/* The fork server for job: tessera-runner's when the job's type reads no
 * slides and that server runs (a small runner: its fork, faults and exit
 * cost about half as much CPU), else the full binary's; NULL when neither
 * runs (the runner is exec'd). */
static forkserver *server_for(const local_exec *ex, const exec_job *job) {
    if (job->small_runner && forkserver_alive(ex->fs_small)) return ex->fs_small;
    return forkserver_alive(ex->fs) ? ex->fs : NULL;
}

static bool settle_server(local_exec *ex, forkserver *fs, bool block);

/* What a server's death means for the runners it would have started. */
static const char *gone_message(const local_exec *ex, const forkserver *fs) {
    return fs == ex->fs_small && forkserver_alive(ex->fs)
               ? "tessera-runner's fork server gone; its job types are forked from tessera"
               : "fork server gone; runners are exec'd from now on";
}

/* Asks fs (server_for), if there is one, for the runner: true when the
 * request went out (its pid comes with the answer, settle_spawns); false
 * when the caller must start it otherwise (no server, or it is gone: said
 * once). A server found gone here has its requests still due taken in at
 * once (each one exec'd, settle_server): nothing polls a dead server's
 * answers, and they would wait until a cancel or the executor's end. */
static bool request_forked(local_exec *ex, forkserver *fs, const exec_job *job,
                           const char *spec_path, const char *spec_text, const char *mark,
                           const int fds[3]) {
    if (!forkserver_alive(fs)) return false;
    char why[TS_ERRLEN];
    char *entry = ts_asprintf("%s%d", mark, job->attempt);
    int rc = forkserver_request(fs, spec_path, entry, ex->last_spawn_id + 1, spec_text, fds[0],
                                fds[1], fds[2], why, sizeof(why));
    free(entry);
    if (rc == TS_OK) {
        ex->last_spawn_id++;
        return true;
    }
    bool alive = forkserver_alive(fs);
    log_emit(LOG_WARN, NULL, job->job_id,
             alive ? "runner exec'd: the fork server refused it" : gone_message(ex, fs),
             json_pack("{ss}", "error", why));
    if (!alive) settle_server(ex, fs, false);
    return false;
}

/* Prepares the files (work dir, log header; the spec file only for a
 * runner that will read it) and starts the runner: through the fork
 * server without waiting for its answer (the pid is set when it comes,
 * settle_spawns), the spec's text in the request, else forked and exec'd
 * here. Fails without starting anything, with the path and the system's
 * reason. */
static int lx_start(executor *base, const exec_job *job, char *err, size_t errlen) {
    local_exec *ex = (local_exec *)base;
    if (find_run(ex, job->workflow_id, job->job_index)) {
        ts_errf(err, errlen, "job %s (workflow %lld, index %d) is already running", job->job_id,
                (long long)job->workflow_id, (int)job->job_index);
        return TS_ERR;
    }
    char *spec_path = layout_attempt_path(job->work_dir, job->attempt, LAYOUT_SPEC);
    char *log_path = layout_job_log_in(job->work_dir);
    char *mark = ts_asprintf("%s=%s/attempt-", PROCTREE_MARK, job->work_dir);
    int log_fd = -1, devnull = -1, p[2] = {-1, -1}, rc = TS_ERR;
    char *spec_text = NULL;
    off_t log_start = 0;
    /* An earlier attempt may have left processes in the same work dir (its
     * scheduler was killed with it): they go before this one starts. */
    if (job->attempt > 1 && local_kill_leftovers(mark, job->job_id, err, errlen) != TS_OK)
        goto cleanup;
    /* We read the marker as soon as the runner exits and record the outcome
     * in the store; after a crash running jobs are re-run, markers unread:
     * it need not be durable, nor a file (protocol.h). */
    exec_job spec_job = *job;
    spec_job.exit_marker_volatile = true;
    spec_job.exit_on_pipe = !ex->exit_files;
    spec_job.progress_pipe_only = true; /* read on the pipe only (protocol.h) */
    if ((spec_text = proto_spec_text(&spec_job, err, errlen)) == NULL ||
        proto_spec_dirs(&spec_job, err, errlen) != TS_OK)
        goto cleanup;
    /* A forked runner gets the text in its request: no file (one inode,
     * a rename and a read less per job). Written for an exec'd one, or
     * later if the fork server refuses (spawn_answered). */
    forkserver *fs = server_for(ex, job);
    bool text_only = fs != NULL && strlen(spec_text) <= FORKSERVER_SPEC_MAX;
    if (!text_only && proto_spec_save(&spec_job, spec_text, err, errlen) != TS_OK) goto cleanup;
    if ((log_fd = open_log(job, log_path, &log_start, err, errlen)) < 0) goto cleanup;
    if (pipe2(p, O_CLOEXEC) != 0) {
        ts_errf(err, errlen, "pipe: %s", strerror(errno));
        goto cleanup;
    }
    if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        ts_errf(err, errlen, "/dev/null: %s", strerror(errno));
        goto cleanup;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    int fds[3] = {devnull, log_fd, p[1]};
    pid_t pid = 0;
    bool forked = request_forked(ex, fs, job, spec_path, text_only ? spec_text : NULL, mark, fds);
    if (!forked && fs != NULL && fs == ex->fs_small && forkserver_alive(ex->fs)) {
        fs = ex->fs; /* tessera-runner's is gone: tessera's runs every type */
        forked = request_forked(ex, fs, job, spec_path, text_only ? spec_text : NULL, mark, fds);
    }
    if (!forked && text_only && proto_spec_save(&spec_job, spec_text, err, errlen) != TS_OK)
        goto cleanup;
    if (!forked && (pid = exec_runner(ex, spec_path, mark, job->attempt, fds, err, errlen)) < 0)
        goto cleanup;
    if (!forked) setpgid(pid, pid); /* both sides call it: no window without the group */
    add_run(ex, job, pid, p[0], log_path, log_start, mark);
    if (forked) {
        lrun *r = ex->runs[ex->n_runs - 1];
        r->spawn_id = ex->last_spawn_id;
        r->server = fs;
        memcpy(r->spawn_fds, fds, sizeof(fds));
        if (text_only) r->spec_text = spec_text;
        if (text_only) spec_text = NULL;
        ex->n_pending++;
        devnull = log_fd = p[1] = -1;
    }
    p[0] = -1;
    log_path = NULL;
    mark = NULL;
    rc = TS_OK;
cleanup:
    free(mark);
    free(spec_text);
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
    if (devnull >= 0) close(devnull);
    if (log_fd >= 0) close(log_fd);
    free(spec_path);
    free(log_path);
    return rc;
}

/* Frees a run that is over or never started (its fds closed). */
static void free_run(lrun *r) {
    if (r->pipe_fd >= 0) close(r->pipe_fd);
    for (int i = 0; i < 3; i++)
        if (r->spawn_fds[i] >= 0) close(r->spawn_fds[i]);
    free(r->spec_text);
    free(r->job_id);
    free(r->work_dir);
    free(r->log_path);
    free(r->mark);
    free(r);
}

/* The fork server's answer for run i: its pid, or (refused, or the server
 * gone) an exec of the runner here; a run whose runner cannot be started
 * at all is reported failed. */
static void spawn_answered(local_exec *ex, size_t i, pid_t pid, const char *why) {
    lrun *r = ex->runs[i];
    ex->n_pending--;
    r->spawn_id = 0;
    if (pid <= 0) {
        log_emit(LOG_WARN, NULL, r->job_id,
                 forkserver_alive(r->server) ? "runner exec'd: the fork server refused it"
                                             : gone_message(ex, r->server),
                 json_pack("{ss}", "error", why));
        /* The exec'd runner reads the spec file the request did without. */
        char *spec_path = layout_attempt_path(r->work_dir, r->attempt, LAYOUT_SPEC);
        char err[TS_ERRLEN];
        exec_job where = {.work_dir = r->work_dir, .attempt = r->attempt};
        pid = r->spec_text && proto_spec_save(&where, r->spec_text, err, sizeof(err)) != TS_OK
                  ? -1
                  : exec_runner(ex, spec_path, r->mark, r->attempt, r->spawn_fds, err,
                                sizeof(err));
        free(spec_path);
        if (pid < 0) {
            exec_event *e = enqueue(ex, EXEC_EXITED, r);
            e->outcome = "failed";
            e->exit_code = -1;
            char why_short[200];
            proto_copy_utf8(why_short, err, sizeof(why_short));
            snprintf(e->message, sizeof(e->message), "cannot start the runner: %s", why_short);
            free_run(r);
            ex->runs[i] = ex->runs[--ex->n_runs];
            return;
        }
    }
    r->server = NULL;
    setpgid(pid, pid);
    r->pid = pid;
    free(r->spec_text); /* the runner has it */
    r->spec_text = NULL;
    for (int k = 0; k < 3; k++) {
        close(r->spawn_fds[k]);
        r->spawn_fds[k] = -1;
    }
}

/* How many runs wait for fs's answer. */
static size_t pending_on(const local_exec *ex, const forkserver *fs) {
    size_t n = 0;
    for (size_t i = 0; i < ex->n_runs; i++)
        if (ex->runs[i]->spawn_id != 0 && ex->runs[i]->server == fs) n++;
    return n;
}

/* Takes in fs's answers: those already there, or (block) every one still
 * due. Returns true if a pid became known. */
static bool settle_server(local_exec *ex, forkserver *fs, bool block) {
    bool settled = false;
    while (pending_on(ex, fs) > 0) {
        uint64_t id = 0;
        pid_t pid = -1;
        char why[TS_ERRLEN] = "";
        int got = forkserver_answer(fs, block ? ANSWER_WAIT_MS : 0, &id, &pid, why, sizeof(why));
        if (got == 0) break;
        bool known = false;
        for (size_t i = ex->n_runs; i-- > 0;) { /* backwards: a run may leave slot i */
            lrun *r = ex->runs[i];
            if (r->spawn_id == 0 || r->server != fs || (got > 0 && r->spawn_id != id)) continue;
            spawn_answered(ex, i, got > 0 ? pid : -1, why); /* gone: each one due is exec'd */
            settled = known = true;
            if (got > 0) break;
        }
        if (got > 0 && !known && pid > 0) { /* for no run of ours: it must not run */
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            }
        }
    }
    return settled;
}

/* Takes in both fork servers' answers (settle_server). Returns true if a
 * pid became known (the caller reaps: the runner may have exited already). */
static bool settle_spawns(local_exec *ex, bool block) {
    bool settled = ex->n_pending > 0 && settle_server(ex, ex->fs, block);
    if (ex->n_pending > 0 && settle_server(ex, ex->fs_small, block)) settled = true;
    return settled;
}

/* ---- progress ---- */

/* Reads what the pipe holds now; closes it at EOF. */
static void read_pipe(lrun *r) {
    char buf[4096];
    while (r->pipe_fd >= 0) {
        ssize_t n = read(r->pipe_fd, buf, sizeof(buf));
        if (n > 0) {
            bool changed = false;
            proto_lines_feed(&r->lines, buf, (size_t)n, &r->progress, &changed);
            r->progress_pending |= changed;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        close(r->pipe_fd); /* EOF or a broken pipe: nothing more will come */
        r->pipe_fd = -1;
        r->hung_up = true;
    }
}

/* Emits coalesced progress that is due; `force` emits whatever is pending
 * (used right before a run's EXITED event). */
static void flush_progress(local_exec *ex, lrun *r, double now, bool force) {
    if (!r->progress_pending || (!force && now - r->last_emit < PROGRESS_INTERVAL_S)) return;
    exec_event *e = enqueue(ex, EXEC_PROGRESS, r);
    proto_copy_utf8(e->message, r->progress.message, sizeof(e->message));
    r->progress_pending = false;
    r->last_emit = now;
}

/* ---- exit ---- */

/* Reports an exited child: its remaining progress first, then EXITED. */
static void finish_run(local_exec *ex, size_t i, int status) {
    lrun *r = ex->runs[i];
    read_pipe(r);
    bool changed = false;
    proto_lines_finish(&r->lines, &r->progress, &changed); /* a last line without '\n' */
    r->progress_pending |= changed;
    flush_progress(ex, r, ts_monotonic(), true);
    local_describe_exit(r, status, enqueue(ex, EXEC_EXITED, r));
    free_run(r);
    ex->runs[i] = ex->runs[--ex->n_runs];
}

/*
 * Ends the runs whose runner has said its attempt succeeded: it closes its
 * progress pipe right after leaving the exit marker (jobs_run_attempt), so
 * a hung-up pipe with a success marker there is an attempt that is over.
 * It is reported now instead of once the runner's process has finished
 * exiting: unmapping a process with ~420 mappings put a median 1.1-1.4 ms
 * between a runner's exit_group and this executor's wake-up (perf, a
 * 200-job chain), on the way from one job's end to the next one's start.
 * The process is left to exit by itself (a sanitizer's leak check runs
 * then) and reaped later, its group killed as reap() would kill it
 * (local_exiting); one still there after grace_s is killed. A failure, or a
 * hung-up pipe without a marker (a crash, a pipe closed early), waits for
 * the process's exit as before, which also kills a failed job's leftovers.
 */
static void finish_said(local_exec *ex) {
    for (size_t i = 0; i < ex->n_runs;) {
        lrun *r = ex->runs[i];
        if (!r->hung_up || r->pid <= 0) { /* no pid yet: looked at once it comes */
            i++;
            continue;
        }
        r->hung_up = false;
        proto_exit m;
        if (local_exit_said(r, &m, NULL, 0) != TS_OK || strcmp(m.outcome, "succeeded") != 0 ||
            m.exit_code != 0) {
            i++;
            continue;
        }
        local_exiting_add(&ex->exiting, r->pid, ts_monotonic() + ex->grace_s);
        finish_run(ex, i, 0); /* moves the last run into slot i */
    }
}

/* Reaps every child of ours that has exited. WNOWAIT first: while the
 * zombie holds its pid, the group id cannot be reused, so killing the
 * group then is safe, and it takes down anything the job left running. */
static void reap(local_exec *ex) {
    for (size_t i = 0; i < ex->n_runs;) {
        lrun *r = ex->runs[i];
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (r->pid <= 0 || /* its pid is not known yet */
            waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0) {
            i++;
            continue;
        }
        kill(-r->pid, SIGKILL);
        int status = 0;
        while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR) {
        }
        /* A runner that was killed or failed may not have cleaned up after
         * its tool; what left the group still carries the mark. */
        char err[TS_ERRLEN];
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) &&
            local_kill_leftovers(r->mark, r->job_id, err, sizeof(err)) != TS_OK)
            log_emit(LOG_ERROR, NULL, r->job_id, "leftover processes", json_pack("{ss}", "error", err));
        finish_run(ex, i, status); /* moves the last run into slot i */
    }
    local_exiting_reap(&ex->exiting, ts_monotonic());
}

/* ---- wait ---- */

/* Sends SIGTERM at a deadline and SIGKILL when a grace period ends. */
static void enforce_deadlines(local_exec *ex, double now) {
    for (size_t i = 0; i < ex->n_runs; i++) {
        lrun *r = ex->runs[i];
        if (r->reason == END_NONE && r->deadline > 0 && now >= r->deadline) {
            r->reason = END_TIMEOUT;
            signal_group(r, SIGTERM);
            r->kill_at = now + ex->grace_s;
        }
        if (r->kill_at > 0 && now >= r->kill_at) {
            signal_group(r, SIGKILL);
            r->kill_at = 0;
        }
    }
    local_exiting_reap(&ex->exiting, now);
}

/* The earliest moment something is due (a deadline, a SIGKILL, coalesced
 * progress), capped by `end`: wait() must not sleep past it. */
static double next_due(const local_exec *ex, double end) {
    double due = end;
    for (size_t i = 0; i < ex->n_runs; i++) {
        const lrun *r = ex->runs[i];
        if (r->reason == END_NONE && r->deadline > 0 && r->deadline < due) due = r->deadline;
        if (r->kill_at > 0 && r->kill_at < due) due = r->kill_at;
        if (r->progress_pending && r->last_emit + PROGRESS_INTERVAL_S < due)
            due = r->last_emit + PROGRESS_INTERVAL_S;
    }
    return local_exiting_due(&ex->exiting, due);
}

/* Makes room for n pollfds. */
static void reserve_pfds(local_exec *ex, size_t n) {
    if (n <= ex->pfd_cap) return;
    ex->pfd_cap = n * 2;
    ex->pfds = ts_realloc(ex->pfds, ex->pfd_cap * sizeof(struct pollfd));
    ex->pfd_runs = ts_realloc(ex->pfd_runs, ex->pfd_cap * sizeof(lrun *));
}

/* One poll() of up to wait_s seconds over the signalfd, wake_fd and the
 * pipes; handles what became ready. Returns true if wake_fd is readable
 * (it is the caller's to drain). */
static bool poll_once(local_exec *ex, double wait_s, int wake_fd) {
    enum { FIRST_RUN = 4 }; /* signals, wake-ups, the two fork servers' answers */
    reserve_pfds(ex, ex->n_runs + FIRST_RUN);
    size_t n = 0;
    ex->pfds[n++] = (struct pollfd){.fd = ex->sigfd, .events = POLLIN};
    ex->pfds[n++] = (struct pollfd){.fd = wake_fd, .events = POLLIN}; /* fd < 0 is skipped */
    /* The fork servers' answers, while some are due (fd < 0: none). */
    forkserver *servers[2] = {ex->fs, ex->fs_small};
    for (int k = 0; k < 2; k++) /* a dead server's answers cannot be polled: exec its runs */
        if (!forkserver_alive(servers[k]) && pending_on(ex, servers[k]) > 0)
            settle_server(ex, servers[k], false);
    for (int k = 0; k < 2; k++) {
        int fd = pending_on(ex, servers[k]) > 0 ? forkserver_reply_fd(servers[k]) : -1;
        ex->pfds[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    for (size_t i = 0; i < ex->n_runs; i++) {
        if (ex->runs[i]->pipe_fd < 0) continue;
        ex->pfd_runs[n - FIRST_RUN] = ex->runs[i];
        ex->pfds[n++] = (struct pollfd){.fd = ex->runs[i]->pipe_fd, .events = POLLIN};
    }
    int ms = wait_s <= 0 ? 0 : (int)ceil(fmin(wait_s, 86400.0) * 1000.0);
    if (poll(ex->pfds, (nfds_t)n, ms) <= 0) return false; /* timeout or EINTR */
    for (size_t i = FIRST_RUN; i < n; i++)
        if (ex->pfds[i].revents) read_pipe(ex->pfd_runs[i - FIRST_RUN]);
    bool settled = false;
    for (int k = 0; k < 2; k++)
        if (ex->pfds[2 + k].revents && settle_server(ex, servers[k], false)) settled = true;
    finish_said(ex); /* before reap(): a runner that said its end need not have exited */
    if (ex->pfds[0].revents || settled) {
        struct signalfd_siginfo si[16];
        while (read(ex->sigfd, si, sizeof(si)) > 0) {
        }
        reap(ex); /* a runner whose pid just came may have ended already */
    }
    return wake_fd >= 0 && ex->pfds[1].revents != 0;
}

/* Hands out up to max queued events; the rest wait for the next call. */
static int dequeue(local_exec *ex, exec_event *events, size_t max) {
    size_t n = ex->q_len < max ? ex->q_len : max;
    if (n == 0) return 0;
    memcpy(events, ex->queue, n * sizeof(exec_event));
    memmove(ex->queue, ex->queue + n, (ex->q_len - n) * sizeof(exec_event));
    ex->q_len -= n;
    return (int)n;
}

/* Loops until there is an event, wake_fd is readable or timeout_s passes;
 * it always polls at least once, so a zero timeout still collects what is
 * ready. Each poll is cut short at the next deadline or due progress. */
static int lx_wait(executor *base, double timeout_s, int wake_fd, exec_event *events,
                   size_t max) {
    local_exec *ex = (local_exec *)base;
    double end = ts_monotonic() + (timeout_s > 0 ? timeout_s : 0);
    bool woken = false;
    for (bool polled = false;; polled = true) {
        double now = ts_monotonic();
        enforce_deadlines(ex, now);
        for (size_t i = 0; i < ex->n_runs; i++) flush_progress(ex, ex->runs[i], now, false);
        if (ex->q_len > 0 || woken || (polled && now >= end)) break;
        woken = poll_once(ex, next_due(ex, end) - now, wake_fd);
    }
    return dequeue(ex, events, max);
}

/* ---- cancel, running, destroy ---- */

/* SIGTERM now, SIGKILL after grace_s. A second cancel (or a cancel during
 * a timeout's grace period) changes nothing. */
static void lx_cancel(executor *base, int64_t workflow_id, int32_t job_index, double grace_s) {
    local_exec *ex = (local_exec *)base;
    settle_spawns(ex, true); /* a pid to signal */
    lrun *r = find_run(ex, workflow_id, job_index);
    if (r == NULL || r->reason != END_NONE) return;
    r->reason = END_CANCEL;
    signal_group(r, SIGTERM);
    r->kill_at = ts_monotonic() + (grace_s > 0 ? grace_s : 0);
}

static size_t lx_running(executor *base) {
    return ((local_exec *)base)->n_runs;
}

/* Kills and reaps every job: they must not outlive the scheduler. */
static void lx_destroy(executor *base) {
    local_exec *ex = (local_exec *)base;
    if (ex == NULL) return;
    settle_spawns(ex, true); /* every runner's pid, to kill it */
    for (size_t i = 0; i < ex->n_runs; i++) {
        lrun *r = ex->runs[i];
        signal_group(r, SIGKILL);
        while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        char err[TS_ERRLEN];
        if (local_kill_leftovers(r->mark, r->job_id, err, sizeof(err)) != TS_OK)
            log_emit(LOG_ERROR, NULL, r->job_id, "leftover processes", json_pack("{ss}", "error", err));
        free_run(r);
    }
    local_exiting_kill_all(&ex->exiting);
    forkserver_stop(ex->fs);
    forkserver_stop(ex->fs_small);
    if (ex->sigfd >= 0) close(ex->sigfd);
    free(ex->runs);
    free(ex->queue);
    free(ex->pfds);
    free(ex->pfd_runs);
    free(ex->self_exe);
    free(ex);
}

static const executor_ops local_ops = {
    .start = lx_start,
    .cancel = lx_cancel,
    .wait = lx_wait,
    .running = lx_running,
    .destroy = lx_destroy,
};

/* Creates the executor; blocks SIGCHLD (see the top of this file) and
 * opens the signalfd that reports child exits. */
executor *exec_local_new(const char *self_exe, double grace_s, int job_nice, char *err,
                         size_t errlen) {
    if (self_exe == NULL || self_exe[0] == '\0') {
        ts_errf(err, errlen, "local executor: no tessera binary to run jobs with");
        return NULL;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    int rc = pthread_sigmask(SIG_BLOCK, &mask, NULL);
    if (rc != 0) {
        ts_errf(err, errlen, "block SIGCHLD: %s", strerror(rc));
        return NULL;
    }
    int sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd < 0) {
        ts_errf(err, errlen, "signalfd: %s", strerror(errno));
        return NULL;
    }
    local_exec *ex = ts_calloc(1, sizeof(*ex));
    ex->base.ops = &local_ops;
    ex->self_exe = ts_strdup(self_exe);
    ex->grace_s = grace_s > 0 ? grace_s : 0;
    ex->job_nice = job_nice > 0 ? job_nice : 0;
    const char *files = getenv("TESSERA_EXIT_MARKER_FILES"); /* for inspection, and sched_bench */
    ex->exit_files = files && strcmp(files, "1") == 0;
    ex->sigfd = sigfd;
    char **env = attempt_env(NULL, 0);
    local_start_servers(self_exe, env, ex->job_nice, &ex->fs, &ex->fs_small);
    free_env(env);
    return &ex->base;
}
