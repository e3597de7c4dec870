/*
 * forkserver.c - one exec'd process per local executor that forks job
 * runners (see forkserver.h for the contract and why).
 *
 * The executor's side (forkserver_start/spawn/stop) runs in the scheduler;
 * forkserver_main runs in the `SELF fork-server` process. A request is
 * answered only after the child exists; the executor does not wait for the
 * answer (forkserver_request, forkserver_answer), and reaps a runner whose
 * pid came after its exit as soon as the pid comes. The child's exit
 * reaches the executor's SIGCHLD signalfd like any child's because
 * CLONE_PARENT makes the executor its parent.
 *
 * Spares: the server keeps SPARES children forked ahead of the requests
 * that will use them (forkserver.h). A spare itself reads a request from
 * the socket, answers it with its own pid and becomes the runner; closing
 * its end of a pipe tells the server to fork a replacement, which happens
 * while the executor goes on. The fork - most of a start's cost, for a
 * binary with ~77 libraries mapped - is thus off the scheduler's path.
 */
#include "exec/forkserver.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/proctree.h"
#include "util/util.h"

#define SERVER_FD 3          /* the request socket inside the fork server */
#define REPLY_TIMEOUT_MS 10000 /* a fork takes well under a millisecond; a hung server is dead */
#define REQUEST_MAX 32768    /* spec path + mark (PATH_MAX-ish) + id + spec text */
#define SLOT_NAME "TESSERA_FORK_SLOT" /* the environment entry a runner child overwrites */
#define ARGV_ROOM 4200       /* bytes of argv a runner child rewrites to "run-job SPEC" */
#define QUIT_TIMEOUT_MS 1000 /* how long stop waits for a spare's goodbye */
#define SPARES 2             /* children forked ahead: a loop often starts two jobs in a row */
#define QUITS_MAX 16         /* quit requests stop sends at most (one per spare, and one more) */
#define SPARE_NAME "tessera-spare" /* the spare's name until it becomes a runner */
#define BIND_NOW_ENTRY "LD_BIND_NOW=1" /* the server's only, never its runners' (bind_now_drop) */

typedef struct forkserver_reply {
    int32_t pid;   /* > 0: the runner; else -1 */
    int32_t error; /* errno of the failed clone or of a refused request */
    uint64_t id;   /* the request's (0 for the quit request) */
} forkserver_reply;

struct forkserver {
    pid_t pid;
    int sock; /* -1 once dead */
};

/* The quit request: one NUL byte, no fds. Whoever reads it (a spare, or
 * the server once it has none) answers with its pid if it is a spare (for
 * the executor to reap) or -1, and exits; after the first, the server
 * forks no more spares. */
static const char QUIT_REQUEST[1] = {'\0'};

/* ---- shared child setup ---- */

void forkserver_child_stdio(int in, int out, int progress) {
    /* Copies go above fd 9 first so no source is overwritten by another's
     * target, whatever numbers the fds had. */
    int i = fcntl(in, F_DUPFD_CLOEXEC, 10);
    int o = fcntl(out, F_DUPFD_CLOEXEC, 10);
    int p = fcntl(progress, F_DUPFD_CLOEXEC, 10);
    if (i < 0 || o < 0 || p < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0 ||
        dup2(p, 3) < 0)
        _exit(127);
    if (close_range(4, ~0U, 0) != 0) {
        struct rlimit rl;
        rlim_t max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
        for (rlim_t fd = 4; fd < max && fd < 65536; fd++) close((int)fd);
    }
}

void forkserver_child_nice(int job_nice) {
    if (job_nice > 0 && nice(job_nice) == -1) {
        /* -1 may also be the new value; either way there is nothing to undo */
    }
}

/* ---- the executor's side ---- */

/* A string of n spaces (freshly allocated): room reserved in the server's
 * exec'd argv and environment for what a runner child writes there. */
static char *room(const char *prefix, size_t n) {
    size_t plen = strlen(prefix);
    char *r = ts_malloc(plen + n + 1);
    memcpy(r, prefix, plen);
    memset(r + plen, ' ', n);
    r[plen + n] = '\0';
    return r;
}

/* envp plus the slot where a runner child writes its mark, for the
 * server's exec. The slot has a name of its own, so the server itself
 * carries no attempt's mark. LD_BIND_NOW comes first: the dynamic linker
 * then resolves every symbol of the ~77 libraries once, in the server,
 * instead of each runner resolving (and copying on write the GOT pages
 * of) every function it calls first - a third of a spare's CPU, perf. The
 * server drops it again before any child exists (bind_now_drop). */
static char **server_env(char *const envp[]) {
    size_t n = 0;
    while (envp && envp[n]) n++;
    char **env = ts_calloc(n + 3, sizeof(char *));
    env[0] = (char *)BIND_NOW_ENTRY;
    size_t k = 1;
    for (size_t i = 0; i < n; i++)
        if (strncmp(envp[i], "LD_BIND_NOW=", strlen("LD_BIND_NOW=")) != 0) env[k++] = envp[i];
    env[k] = room(SLOT_NAME "=", strlen(PROCTREE_MARK) + 1 + FORKSERVER_MARK_MAX);
    return env;
}

forkserver *forkserver_start(const char *self_exe, char *const envp[], int job_nice, char *err,
                             size_t errlen) {
    int sv[2] = {-1, -1}, devnull = -1;
    char **env = NULL, *args_room = NULL;
    forkserver *fs = NULL;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        ts_errf(err, errlen, "fork server: socketpair: %s", strerror(errno));
        goto cleanup;
    }
    if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        ts_errf(err, errlen, "fork server: /dev/null: %s", strerror(errno));
        goto cleanup;
    }
    env = server_env(envp);
    args_room = room("", ARGV_ROOM);
    char *argv[] = {(char *)self_exe, FORKSERVER_ARG, args_room, NULL};
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        ts_errf(err, errlen, "fork server: fork: %s", strerror(errno));
        goto cleanup;
    }
    if (pid == 0) {
        setpgid(0, 0); /* a terminal's ^C reaches the scheduler, which decides */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        forkserver_child_stdio(devnull, STDERR_FILENO, sv[1]);
        ts_signals_default();
        forkserver_child_nice(job_nice);
        execve(argv[0], argv, env);
        _exit(127);
    }
    setpgid(pid, pid);
    fs = ts_calloc(1, sizeof(*fs));
    fs->pid = pid;
    fs->sock = sv[0];
    sv[0] = -1;
cleanup:
    if (env) {
        size_t n = 0;
        while (env[n + 1]) n++;
        free(env[n]); /* the slot; the rest is borrowed */
        free(env);
    }
    free(args_room);
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (devnull >= 0) close(devnull);
    return fs;
}

static int read_reply(int sock, forkserver_reply *r, int timeout_ms);

/* Asks the spares to exit, one quit request each, and reaps them: they
 * are our children (CLONE_PARENT), and only we can. Stops at the first
 * answer without a pid (the server itself, which then exits), a socket
 * that broke, or QUIT_TIMEOUT_MS without an answer; a spare that died
 * unasked stays a zombie until we exit. */
static void quit_spares(forkserver *fs) {
    bool send_quit = true;
    for (int i = 0; i < QUITS_MAX; i++) {
        if (send_quit) {
            ssize_t n;
            do n = send(fs->sock, QUIT_REQUEST, sizeof(QUIT_REQUEST), MSG_NOSIGNAL);
            while (n < 0 && errno == EINTR);
            if (n != (ssize_t)sizeof(QUIT_REQUEST)) return;
        }
        forkserver_reply r;
        if (read_reply(fs->sock, &r, QUIT_TIMEOUT_MS) != TS_OK || r.pid <= 0) return;
        /* The answer to a start whose caller gave it up (the server died
         * meanwhile; the caller execs it instead): that runner must not run
         * too. The quit's own answer is still to come. */
        send_quit = r.id == 0;
        if (r.id != 0) {
            kill(-r.pid, SIGKILL);
            kill(r.pid, SIGKILL);
        }
        while (waitpid(r.pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
}

/* The server is unusable: kill it (it may hang) and reap it, and its
 * spares that still answer. */
static void server_gone(forkserver *fs) {
    if (fs->sock < 0) return;
    kill(fs->pid, SIGKILL);
    while (waitpid(fs->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    quit_spares(fs);
    close(fs->sock);
    fs->sock = -1;
}

/* True once the server has exited (it is not reaped here): the spares it
 * left would answer a few more requests, and the next would wait for a
 * spare that never comes. */
static bool server_exited(const forkserver *fs) {
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    return waitid(P_PID, (id_t)fs->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0;
}

/* Sends one request with its three fds. */
static int send_request(int sock, const char *spec_path, const char *mark, uint64_t id,
                        const char *spec_text, const int fds[3]) {
    size_t spec_len = strlen(spec_path) + 1, mark_len = strlen(mark) + 1;
    size_t text_len = spec_text ? strlen(spec_text) : 0;
    char *buf = ts_malloc(spec_len + mark_len + sizeof(id) + text_len);
    memcpy(buf, spec_path, spec_len);
    memcpy(buf + spec_len, mark, mark_len);
    memcpy(buf + spec_len + mark_len, &id, sizeof(id));
    if (text_len) memcpy(buf + spec_len + mark_len + sizeof(id), spec_text, text_len);
    struct iovec iov = {.iov_base = buf, .iov_len = spec_len + mark_len + sizeof(id) + text_len};
    union {
        char bytes[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                         .msg_controllen = sizeof(control.bytes)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
    ssize_t n;
    do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    free(buf);
    return n == (ssize_t)iov.iov_len ? TS_OK : TS_ERR;
}

/* Waits for the reply, at most timeout_ms. */
static int read_reply(int sock, forkserver_reply *r, int timeout_ms) {
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int rc;
    do rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0) return TS_ERR;
    ssize_t n;
    do n = recv(sock, r, sizeof(*r), 0);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(*r) ? TS_OK : TS_ERR;
}

int forkserver_request(forkserver *fs, const char *spec_path, const char *mark, uint64_t id,
                       const char *spec_text, int stdin_fd, int log_fd, int progress_fd,
                       char *err, size_t errlen) {
    size_t name = strlen(PROCTREE_MARK) + 1;
    if (fs == NULL || fs->sock < 0) {
        ts_errf(err, errlen, "the fork server is not running");
        return TS_ERR;
    }
    if (strncmp(mark, PROCTREE_MARK "=", name) != 0 || strlen(mark) - name > FORKSERVER_MARK_MAX ||
        strlen(spec_path) + strlen(mark) + 2 + sizeof(id) > REQUEST_MAX - FORKSERVER_SPEC_MAX - 1) {
        ts_errf(err, errlen, "fork server: the work directory's path is too long for it");
        return TS_ERR;
    }
    if (spec_text && (spec_text[0] == '\0' || strlen(spec_text) > FORKSERVER_SPEC_MAX)) {
        ts_errf(err, errlen, "fork server: a spec text of 1 to %d bytes only", FORKSERVER_SPEC_MAX);
        return TS_ERR;
    }
    if (server_exited(fs)) {
        ts_errf(err, errlen, "the fork server (pid %ld) exited", (long)fs->pid);
        server_gone(fs);
        return TS_ERR;
    }
    int fds[3] = {stdin_fd, log_fd, progress_fd};
    errno = 0;
    if (send_request(fs->sock, spec_path, mark, id, spec_text, fds) != TS_OK) {
        ts_errf(err, errlen, "the fork server (pid %ld) stopped taking requests: %s",
                (long)fs->pid, errno ? strerror(errno) : "short write");
        server_gone(fs);
        return TS_ERR;
    }
    return TS_OK;
}

int forkserver_reply_fd(const forkserver *fs) {
    return fs != NULL ? fs->sock : -1;
}

int forkserver_answer(forkserver *fs, int timeout_ms, uint64_t *id, pid_t *pid, char *err,
                      size_t errlen) {
    if (fs == NULL || fs->sock < 0) {
        ts_errf(err, errlen, "the fork server is not running");
        return -1;
    }
    struct pollfd p = {.fd = fs->sock, .events = POLLIN};
    int rc;
    do rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc == 0 && timeout_ms == 0) return 0;
    forkserver_reply r;
    errno = 0;
    if (rc <= 0 || read_reply(fs->sock, &r, 0) != TS_OK) {
        ts_errf(err, errlen, "the fork server (pid %ld) stopped answering: %s", (long)fs->pid,
                errno ? strerror(errno) : "no reply");
        server_gone(fs);
        return -1;
    }
    *id = r.id;
    *pid = r.pid > 0 ? (pid_t)r.pid : -1;
    if (r.pid <= 0) ts_errf(err, errlen, "fork server: %s", strerror(r.error));
    return 1;
}

bool forkserver_alive(const forkserver *fs) {
    return fs != NULL && fs->sock >= 0;
}

pid_t forkserver_pid(const forkserver *fs) {
    return fs ? fs->pid : -1;
}

void forkserver_stop(forkserver *fs) {
    if (fs == NULL) return;
    if (fs->sock >= 0) {
        quit_spares(fs);
        close(fs->sock); /* EOF: the server exits by itself (if the quits did not end it) */
        fs->sock = -1;
        while (waitpid(fs->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    free(fs);
}

/* ---- the server ---- */

/* Memory of ours that /proc/PID/environ or /proc/PID/cmdline shows, which
 * a runner child overwrites so that it looks like an exec'd runner there:
 * the environment entry SLOT_NAME (from server_env via execve, untouched
 * since: nothing here calls setenv) and argv[1..2] ("fork-server" and the
 * room after it, contiguous as execve laid them out). */
typedef struct shown {
    char *env;
    size_t env_cap;
    char *args;
    size_t args_cap;
    char comm[16]; /* our name before we took our own: an exec'd runner's */
} shown;

static int find_shown(int argc, char **argv, shown *sh) {
    size_t name = strlen(SLOT_NAME) + 1;
    memset(sh, 0, sizeof(*sh));
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, SLOT_NAME "=", name) == 0) {
            sh->env = *e;
            sh->env_cap = strlen(*e);
        }
    if (argc != 3 || strcmp(argv[1], FORKSERVER_ARG) != 0 || argv[2] != argv[1] + strlen(argv[1]) + 1)
        return TS_ERR;
    sh->args = argv[1];
    sh->args_cap = strlen(argv[1]) + 1 + strlen(argv[2]);
    return sh->env && sh->env_cap >= strlen(PROCTREE_MARK) + 1 + FORKSERVER_MARK_MAX &&
                   sh->args_cap >= ARGV_ROOM
               ? TS_OK
               : TS_ERR;
}

/* Writes the NUL-separated strings a and b at dst, zeroing the rest of
 * cap bytes (b may be NULL); false when they do not fit. */
static bool overwrite(char *dst, size_t cap, const char *a, const char *b) {
    size_t la = strlen(a) + 1, lb = b ? strlen(b) + 1 : 0;
    if (la + lb > cap + 1) return false; /* cap excludes the final NUL already there */
    memcpy(dst, a, la);
    if (b) memcpy(dst + la, b, lb);
    memset(dst + la + lb, '\0', cap + 1 - la - lb);
    return true;
}

typedef struct request {
    const char *spec_path;
    const char *spec_text; /* NULL: the runner reads the spec file */
    const char *mark; /* the whole entry */
    uint64_t id;      /* echoed in the reply */
    int fds[3];
    int n_fds;
} request;

/* Receives one request into buf. Returns 1 with a request, 2 for the quit
 * request, 0 at EOF, -1 on a socket error, -2 for a malformed request (fds
 * closed). */
static int recv_request(char *buf, size_t cap, request *rq) {
    union {
        char bytes[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = cap - 1}; /* room for a NUL after the text */
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                         .msg_controllen = sizeof(control.bytes)};
    ssize_t n;
    do n = recvmsg(SERVER_FD, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return n == 0 ? 0 : -1;
    rq->n_fds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (rq->n_fds < 3) rq->fds[rq->n_fds++] = fd;
                else close(fd);
            }
        }
    if (n == (ssize_t)sizeof(QUIT_REQUEST) && buf[0] == '\0' && rq->n_fds == 0) return 2;
    char *nul = memchr(buf, '\0', (size_t)n);
    char *nul2 = nul ? memchr(nul + 1, '\0', (size_t)(buf + n - nul - 1)) : NULL;
    size_t name = strlen(PROCTREE_MARK) + 1;
    rq->id = 0;
    rq->spec_text = NULL;
    ptrdiff_t after = nul2 ? buf + n - (nul2 + 1) : 0;
    if (nul2 != NULL && after >= (ptrdiff_t)sizeof(rq->id)) {
        memcpy(&rq->id, nul2 + 1, sizeof(rq->id));
        if (after > (ptrdiff_t)sizeof(rq->id)) { /* the spec's text follows the id */
            buf[n] = '\0';
            rq->spec_text = nul2 + 1 + sizeof(rq->id);
        }
    } else {
        nul2 = NULL; /* no id: malformed */
    }
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || rq->n_fds != 3 || nul2 == NULL ||
        strncmp(nul + 1, PROCTREE_MARK "=", name) != 0) {
        for (int i = 0; i < rq->n_fds; i++) close(rq->fds[i]);
        return -2;
    }
    rq->spec_path = buf;
    rq->mark = nul + 1;
    return 1;
}

/* Sends one reply to the executor; false if the socket is gone. */
static bool send_reply(forkserver_reply r) {
    ssize_t n;
    do n = send(SERVER_FD, &r, sizeof(r), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(r);
}

/* The refusal for a request that cannot be served, 0 if it can: a mark or
 * spec path longer than the room the runner overwrites. */
static int request_refusal(const request *rq, const shown *sh) {
    if (strlen(rq->mark) > sh->env_cap ||
        strlen("run-job") + 1 + strlen(rq->spec_path) > sh->args_cap)
        return ENAMETOOLONG;
    return 0;
}

/* The runner child: becomes what an exec'd runner is (forkserver.h), then
 * runs the attempt. Never returns. */
__attribute__((noreturn)) static void runner_child(const request *rq, pid_t executor,
                                                   const shown *sh, forkserver_run_fn run) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != executor) _exit(127); /* the executor died before the prctl */
    setpgid(0, 0);
    /* Checked by the server before the clone: both fit. */
    overwrite(sh->env, sh->env_cap, rq->mark, NULL);
    overwrite(sh->args, sh->args_cap, "run-job", rq->spec_path);
    prctl(PR_SET_NAME, sh->comm);
    forkserver_child_stdio(rq->fds[0], rq->fds[1], rq->fds[2]);
    /* Every disposition is default and the mask empty in the server (set
     * once at its start, forkserver_main) but SIGPIPE, which a spare
     * ignores: that one alone is put back, instead of a sigaction per
     * signal (64 calls, ~70 us a runner). The mask is emptied again all
     * the same (one call): a runtime that wraps fork - AddressSanitizer's
     * does - may leave the child with signals blocked that the server had
     * not (seen: 32 and 33 under ASan), and a runner must start as after
     * an exec with defaults. */
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* What the job starts must not hold the progress pipe open past the
     * runner's end (its hang-up tells the executor the attempt is over),
     * as an exec'd runner's inherited_progress_fd makes sure. dup2 left
     * fd 3 inheritable: it was for an exec, which a forked runner skips. */
    fcntl(3, F_SETFD, FD_CLOEXEC);
    int status = run(rq->spec_path, rq->spec_text, 3);
    fflush(NULL);
    _exit(status);
}

typedef struct server {
    pid_t executor;
    shown sh;
    forkserver_run_fn run;
} server;

/* A raw clone: glibc's fork() has no CLONE_PARENT. The server is
 * single-threaded, so no lock can be held across it. */
static long clone_for_executor(void) {
    fflush(NULL);
    return syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), NULL, NULL, NULL, 0UL);
}

/* A spare's life: it reads requests until one can be served, answers it
 * with its own pid, tells the server it was taken (closing taken_fd) and
 * becomes the runner. At the quit request it writes "q" to taken_fd (the
 * server then forks no more spares), answers with its pid so the executor
 * reaps it, and exits; at EOF it exits. Never returns. */
__attribute__((noreturn)) static void spare_main(const server *sv, int taken_fd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != sv->executor) _exit(127); /* the executor died before the prctl */
    prctl(PR_SET_NAME, SPARE_NAME);
    /* The "q" below must not kill us when the server is gone (the runner
     * gets every disposition back to default). */
    signal(SIGPIPE, SIG_IGN);
    static char buf[REQUEST_MAX];
    for (;;) {
        request rq;
        int got = recv_request(buf, sizeof(buf), &rq);
        if (got == 2) { /* the executor is stopping: no replacement */
            ssize_t w = write(taken_fd, "q", 1);
            (void)w;
            send_reply((forkserver_reply){.pid = (int32_t)getpid(), .error = 0});
            _exit(0);
        }
        if (got == 0 || got == -1) _exit(0);
        forkserver_reply r = {.pid = -1, .error = got == -2 ? EINVAL : request_refusal(&rq, &sv->sh),
                              .id = got == 1 ? rq.id : 0};
        if (r.error == 0) {
            r.pid = (int32_t)getpid();
            if (!send_reply(r)) _exit(0);
            close(taken_fd);
            runner_child(&rq, sv->executor, &sv->sh, sv->run);
        }
        if (got == 1)
            for (int i = 0; i < 3; i++) close(rq.fds[i]);
        if (!send_reply(r)) _exit(0);
    }
}

/* Forks the next spare. Returns the read end of its pipe (readable or
 * hung up once the spare is taken or gone), or -1 if it could not. */
static int spare_fork(const server *sv) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    long pid = clone_for_executor();
    if (pid == 0) {
        close(p[0]);
        spare_main(sv, p[1]);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    return p[0];
}

/* Serves one request here, forking after it: only while no spare can be
 * forked ahead (the spare's fork failed). Returns -1 to go on, else the
 * server's exit status. */
static int serve_directly(const server *sv) {
    static char buf[REQUEST_MAX];
    request rq;
    int got = recv_request(buf, sizeof(buf), &rq);
    if (got == 0) return 0; /* the executor closed its end */
    if (got == -1) return 1;
    if (got == 2) return send_reply((forkserver_reply){.pid = -1, .error = 0}) ? 0 : 1;
    forkserver_reply r = {.pid = -1, .error = got == -2 ? EINVAL : request_refusal(&rq, &sv->sh),
                          .id = got == 1 ? rq.id : 0};
    if (r.error == 0) {
        if (getppid() != sv->executor) return 0; /* our parent-death signal is on its way */
        long pid = clone_for_executor();
        if (pid == 0) runner_child(&rq, sv->executor, &sv->sh, sv->run);
        r.pid = pid > 0 ? (int32_t)pid : -1;
        r.error = pid > 0 ? 0 : errno;
    }
    if (got == 1)
        for (int i = 0; i < 3; i++) close(rq.fds[i]);
    return send_reply(r) ? -1 : 1;
}

/* The server's spares: the read end of each one's pipe. */
typedef struct spares {
    int taken[SPARES];
    int n;
    bool quitting; /* a spare got the quit request: fork no more */
} spares;

/* Handles what the spares' pipes say: EOF (taken, or gone) frees the slot;
 * "q" also means the executor is stopping. */
static void spares_update(spares *sp, const struct pollfd *p) {
    int kept = 0;
    int taken[SPARES];
    for (int i = 0; i < sp->n; i++) {
        if (!p[i].revents) {
            taken[kept++] = sp->taken[i];
            continue;
        }
        char q = 0;
        if (read(sp->taken[i], &q, 1) == 1 && q == 'q') sp->quitting = true;
        close(sp->taken[i]);
    }
    memcpy(sp->taken, taken, sizeof(taken));
    sp->n = kept;
}

/* Takes out the LD_BIND_NOW entry server_env put first (its work is done:
 * the libraries are bound), so that runners and the tools they exec get
 * the executor's environment as it was: gone from environ, and its bytes
 * zeroed where /proc/PID/environ shows them. An executor that had set
 * LD_BIND_NOW itself loses it for its jobs; tessera never sets it. */
static void bind_now_drop(void) {
    for (char **e = environ; e && *e; e++)
        if (strcmp(*e, BIND_NOW_ENTRY) == 0) {
            char *bytes = *e;
            for (char **m = e; *m; m++) m[0] = m[1]; /* in place, as unsetenv would */
            memset(bytes, '\0', strlen(bytes));
            return;
        }
}

int forkserver_main(forkserver_run_fn run, int argc, char **argv) {
    server sv = {.executor = getppid(), .run = run};
    /* Dispositions and mask known from here on (exec kept any ignored
     * signal): the server changes none, a spare only SIGPIPE, which is
     * all a runner child has to put back (runner_child). */
    ts_signals_default();
    bind_now_drop();
    /* jansson's hash seed made once, here, and inherited: otherwise every
     * runner opens and reads /dev/urandom for it as it parses its spec.
     * The seed guards a process's hash tables against crafted keys; a
     * runner parses only what its executor sent. */
    json_object_seed(0);
    /* Heap left as a runner will find it: fastbins merged and free memory
     * returned now, once, instead of a runner's first malloc walking the
     * whole heap (malloc_consolidate) and copying every page it touches. */
    malloc_trim(0);
    if (find_shown(argc, argv, &sv.sh) != TS_OK || fcntl(SERVER_FD, F_GETFD) < 0) {
        fprintf(stderr, "tessera fork-server: started without the executor's socket, argv room "
                        "and environment slot\n");
        return 2;
    }
    prctl(PR_GET_NAME, sv.sh.comm);
    prctl(PR_SET_NAME, "tessera-forksrv");
    spares sp = {.n = 0};
    for (;;) {
        if (getppid() != sv.executor) return 0; /* our parent-death signal is on its way */
        while (!sp.quitting && sp.n < SPARES) {
            int fd = spare_fork(&sv);
            if (fd < 0) break;
            sp.taken[sp.n++] = fd;
        }
        if (sp.n == 0) { /* no spare could be forked, or all quit: serve here */
            int rc = serve_directly(&sv);
            if (rc < 0) continue;
            return rc;
        }
        /* The server does not read the socket while spares do; it only
         * watches for the executor hanging up (POLLHUP needs no events). */
        struct pollfd p[SPARES + 1];
        for (int i = 0; i < sp.n; i++) p[i] = (struct pollfd){.fd = sp.taken[i], .events = POLLIN};
        p[sp.n] = (struct pollfd){.fd = SERVER_FD, .events = 0};
        if (poll(p, (nfds_t)sp.n + 1, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (p[sp.n].revents & (POLLHUP | POLLERR | POLLNVAL)) return 0;
        spares_update(&sp, p);
    }
}
