/*
 * forkserver.c - one exec'd process per local executor that forks job
 * runners (see forkserver.h for the contract and why).
 *
 * The executor's side (forkserver_start/spawn/stop) runs in the scheduler;
 * forkserver_main runs in the `SELF fork-server` process. A request is
 * answered only after the child exists, so the executor knows the pid
 * before it polls for exits; the child's exit reaches the executor's
 * SIGCHLD signalfd like any child's because CLONE_PARENT makes the executor
 * its parent.
 */
#include "exec/forkserver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#define REQUEST_MAX 16384    /* spec path + mark, both bounded by PATH_MAX-ish sizes */

typedef struct forkserver_reply {
    int32_t pid;   /* > 0: the runner; else -1 */
    int32_t error; /* errno of the failed clone or of a refused request */
} forkserver_reply;

struct forkserver {
    pid_t pid;
    int sock; /* -1 once dead */
};

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
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ---- the executor's side ---- */

/* envp plus the reserved mark entry, for the server's exec. */
static char **server_env(char *const envp[]) {
    size_t n = 0;
    while (envp && envp[n]) n++;
    char **env = ts_calloc(n + 2, sizeof(char *));
    memcpy(env, envp, n * sizeof(char *));
    size_t name = strlen(PROCTREE_MARK) + 1;
    char *slot = ts_malloc(name + FORKSERVER_MARK_MAX + 1);
    memcpy(slot, PROCTREE_MARK "=", name);
    memset(slot + name, '.', FORKSERVER_MARK_MAX); /* no real mark starts with '.' */
    slot[name + FORKSERVER_MARK_MAX] = '\0';
    env[n] = slot;
    return env;
}

forkserver *forkserver_start(const char *self_exe, char *const envp[], char *err, size_t errlen) {
    int sv[2] = {-1, -1}, devnull = -1;
    char **env = NULL;
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
    char *argv[] = {(char *)self_exe, FORKSERVER_ARG, NULL};
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
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (devnull >= 0) close(devnull);
    return fs;
}

/* The server is unusable: kill it (it may hang) and reap it. */
static void server_gone(forkserver *fs) {
    if (fs->sock < 0) return;
    close(fs->sock);
    fs->sock = -1;
    kill(fs->pid, SIGKILL);
    while (waitpid(fs->pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/* Sends one request with its three fds. */
static int send_request(int sock, const char *spec_path, const char *mark, const int fds[3]) {
    size_t spec_len = strlen(spec_path) + 1, mark_len = strlen(mark) + 1;
    char *buf = ts_malloc(spec_len + mark_len);
    memcpy(buf, spec_path, spec_len);
    memcpy(buf + spec_len, mark, mark_len);
    struct iovec iov = {.iov_base = buf, .iov_len = spec_len + mark_len};
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

/* Waits for the reply, at most REPLY_TIMEOUT_MS. */
static int read_reply(int sock, forkserver_reply *r) {
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int rc;
    do rc = poll(&p, 1, REPLY_TIMEOUT_MS);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0) return TS_ERR;
    ssize_t n;
    do n = recv(sock, r, sizeof(*r), 0);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(*r) ? TS_OK : TS_ERR;
}

pid_t forkserver_spawn(forkserver *fs, const char *spec_path, const char *mark, int stdin_fd,
                       int log_fd, int progress_fd, char *err, size_t errlen) {
    size_t name = strlen(PROCTREE_MARK) + 1;
    if (fs == NULL || fs->sock < 0) {
        ts_errf(err, errlen, "the fork server is not running");
        return -1;
    }
    if (strncmp(mark, PROCTREE_MARK "=", name) != 0 || strlen(mark) - name > FORKSERVER_MARK_MAX ||
        strlen(spec_path) + strlen(mark) + 2 > REQUEST_MAX) {
        ts_errf(err, errlen, "fork server: the work directory's path is too long for it");
        return -1;
    }
    int fds[3] = {stdin_fd, log_fd, progress_fd};
    forkserver_reply r;
    errno = 0;
    if (send_request(fs->sock, spec_path, mark, fds) != TS_OK || read_reply(fs->sock, &r) != TS_OK) {
        ts_errf(err, errlen, "the fork server (pid %ld) stopped answering: %s", (long)fs->pid,
                errno ? strerror(errno) : "no reply");
        server_gone(fs);
        return -1;
    }
    if (r.pid <= 0) {
        ts_errf(err, errlen, "fork server: %s", strerror(r.error));
        return -1;
    }
    return (pid_t)r.pid;
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
        close(fs->sock); /* EOF: the server exits by itself */
        fs->sock = -1;
        while (waitpid(fs->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    free(fs);
}

/* ---- the server ---- */

/* The reserved mark in our own environment block: the memory that
 * /proc/PID/environ shows. It came from server_env via execve, untouched
 * since (nothing here calls setenv). */
static char *mark_slot(size_t *cap) {
    size_t name = strlen(PROCTREE_MARK) + 1;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, PROCTREE_MARK "=", name) == 0) {
            *cap = strlen(*e + name);
            return *e + name;
        }
    *cap = 0;
    return NULL;
}

typedef struct request {
    const char *spec_path;
    const char *mark_value;
    int fds[3];
    int n_fds;
} request;

/* Receives one request into buf. Returns 1 with a request, 0 at EOF,
 * -1 on a socket error, -2 for a malformed request (fds closed). */
static int recv_request(char *buf, size_t cap, request *rq) {
    union {
        char bytes[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
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
    char *nul = memchr(buf, '\0', (size_t)n);
    char *nul2 = nul ? memchr(nul + 1, '\0', (size_t)(buf + n - nul - 1)) : NULL;
    size_t name = strlen(PROCTREE_MARK) + 1;
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || rq->n_fds != 3 || nul2 == NULL ||
        strncmp(nul + 1, PROCTREE_MARK "=", name) != 0) {
        for (int i = 0; i < rq->n_fds; i++) close(rq->fds[i]);
        return -2;
    }
    rq->spec_path = buf;
    rq->mark_value = nul + 1 + name;
    return 1;
}

/* The runner child: becomes what an exec'd runner is (forkserver.h), then
 * runs the attempt. Never returns. */
__attribute__((noreturn)) static void runner_child(const request *rq, pid_t executor,
                                                   char *slot, size_t cap,
                                                   forkserver_run_fn run) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != executor) _exit(127); /* the executor died before the prctl */
    setpgid(0, 0);
    size_t len = strlen(rq->mark_value);
    memcpy(slot, rq->mark_value, len);
    memset(slot + len, '\0', cap - len);
    forkserver_child_stdio(rq->fds[0], rq->fds[1], rq->fds[2]);
    prctl(PR_SET_NAME, "tessera-job");
    int status = run(rq->spec_path, 3);
    fflush(NULL);
    _exit(status);
}

int forkserver_main(forkserver_run_fn run) {
    pid_t executor = getppid();
    size_t cap = 0;
    char *slot = mark_slot(&cap);
    if (slot == NULL || cap < FORKSERVER_MARK_MAX || fcntl(SERVER_FD, F_GETFD) < 0) {
        fprintf(stderr, "tessera fork-server: started without the executor's socket and mark\n");
        return 2;
    }
    prctl(PR_SET_NAME, "tessera-forksrv");
    static char buf[REQUEST_MAX];
    for (;;) {
        request rq;
        int got = recv_request(buf, sizeof(buf), &rq);
        if (got == 0) return 0;   /* the executor closed its end */
        if (got == -1) return 1;
        forkserver_reply r = {.pid = -1, .error = EINVAL};
        if (got == 1 && strlen(rq.mark_value) > cap) r.error = ENAMETOOLONG;
        else if (got == 1) {
            if (getppid() != executor) return 0; /* our parent-death signal is on its way */
            fflush(NULL);
            /* A raw clone: glibc's fork() has no CLONE_PARENT. We are
             * single-threaded, so no lock can be held across it. */
            long pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), NULL, NULL,
                               NULL, 0UL);
            if (pid == 0) runner_child(&rq, executor, slot, cap, run);
            r.pid = pid > 0 ? (int32_t)pid : -1;
            r.error = pid > 0 ? 0 : errno;
        }
        if (got == 1)
            for (int i = 0; i < 3; i++) close(rq.fds[i]);
        ssize_t n;
        do n = send(SERVER_FD, &r, sizeof(r), MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) return 1;
    }
}
