/*
 * proctree.c - see proctree.h.
 *
 * The /proc walk is written with raw system calls (open, getdents64, read,
 * close) and fixed buffers so that proctree_kill_children() stays
 * async-signal-safe; opendir() and stdio may allocate or take locks.
 */
#include "util/proctree.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define MARKED_MAX 256 /* processes of one attempt handled per round */

/* The record getdents64 fills (not in glibc's headers). */
typedef struct dirent64_raw {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
} dirent64_raw;

/* Monotonic seconds without anything beyond clock_gettime (AS-safe). */
static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A /proc entry name as a pid; 0 when it is not all digits. */
static pid_t name_pid(const char *s) {
    long v = 0;
    if (*s == '\0') return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return 0;
        v = v * 10 + (*s - '0');
    }
    return (pid_t)v;
}

/* "/proc/<pid>/<leaf>" into buf (at least 64 bytes) without snprintf. */
static void proc_path(char *buf, pid_t pid, const char *leaf) {
    char digits[16];
    int n = 0;
    unsigned long v = (unsigned long)pid;
    do digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0 && n < 15);
    char *p = buf;
    memcpy(p, "/proc/", 6);
    p += 6;
    while (n > 0) *p++ = digits[--n];
    *p++ = '/';
    size_t len = strlen(leaf);
    memcpy(p, leaf, len + 1);
}

/* The parent of pid from /proc/<pid>/stat, or -1 (gone, or a zombie, which
 * needs no killing). The command name may hold spaces and parentheses, so
 * the fields are found after the last ')'. */
static pid_t stat_ppid(pid_t pid) {
    char path[64], buf[512];
    proc_path(path, pid, "stat");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    if (!close_paren || close_paren[1] != ' ' || close_paren[2] == '\0' ||
        close_paren[2] == 'Z' || close_paren[3] != ' ')
        return -1;
    long ppid = 0;
    for (char *p = close_paren + 4; *p >= '0' && *p <= '9'; p++) ppid = ppid * 10 + (*p - '0');
    return (pid_t)ppid;
}

/* Calls fn(pid, arg) for every process in /proc. AS-safe if fn is. */
static void for_each_pid(void (*fn)(pid_t pid, void *arg), void *arg) {
    int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            const dirent64_raw *d = (const dirent64_raw *)(buf + off);
            pid_t pid = name_pid(d->d_name);
            if (pid > 0) fn(pid, arg);
            off += d->d_reclen;
        }
    }
    close(fd);
}

typedef struct kill_children_ctx {
    pid_t self;
    int killed;
} kill_children_ctx;

static void kill_if_child(pid_t pid, void *arg) {
    kill_children_ctx *c = arg;
    if (stat_ppid(pid) == c->self && kill(pid, SIGKILL) == 0) c->killed++;
}

/* Reaps every child that has ended; true when no child is left at all. */
static bool reap_ended(void) {
    for (;;) {
        pid_t w = waitpid(-1, NULL, WNOHANG | __WALL);
        if (w > 0) continue;
        return w < 0 && errno == ECHILD;
    }
}

int proctree_kill_children(double timeout_s) {
    int saved = errno;
    kill_children_ctx c = {getpid(), 0};
    double end = mono_now() + timeout_s;
    int rc;
    for (;;) {
        for_each_pid(kill_if_child, &c);
        if (reap_ended()) {
            rc = c.killed;
            break;
        }
        if (mono_now() >= end) {
            rc = -1;
            break;
        }
        sleep_ms(2);
    }
    errno = saved;
    return rc;
}

/* ---- marks ---- */

/* True when /proc/<pid>/environ has an entry starting with prefix. The
 * file is read whole (environments can be large, and a shell may have
 * moved the entry to the end). */
static bool has_mark(pid_t pid, const char *prefix, size_t plen) {
    char path[64];
    proc_path(path, pid, "environ");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t cap = 16384, len = 0;
    char *buf = ts_malloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap >= (8u << 20)) break;
            cap *= 2;
            buf = ts_realloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    bool found = false;
    for (size_t i = 0; i < len && !found; i += strlen(buf + i) + 1)
        found = len - i >= plen && memcmp(buf + i, prefix, plen) == 0;
    free(buf);
    return found;
}

typedef struct find_ctx {
    const char *prefix;
    size_t plen;
    pid_t self;
    pid_t *out;
    size_t n, max;
} find_ctx;

static void collect_marked(pid_t pid, void *arg) {
    find_ctx *c = arg;
    if (pid == c->self || c->n >= c->max) return;
    if (has_mark(pid, c->prefix, c->plen) && stat_ppid(pid) >= 0) c->out[c->n++] = pid;
}

size_t proctree_find_marked(const char *mark_prefix, pid_t *out, size_t max) {
    find_ctx c = {mark_prefix, strlen(mark_prefix), getpid(), out, 0, max};
    if (c.plen == 0 || max == 0) return 0;
    for_each_pid(collect_marked, &c);
    return c.n;
}

int proctree_kill_marked(const char *mark_prefix, double timeout_s, int *killed, char *err,
                         size_t errlen) {
    pid_t pids[MARKED_MAX], signalled[MARKED_MAX];
    size_t n_signalled = 0;
    double end = ts_monotonic() + timeout_s;
    *killed = 0;
    for (;;) {
        size_t n = proctree_find_marked(mark_prefix, pids, MARKED_MAX);
        if (n == 0) return TS_OK;
        for (size_t i = 0; i < n; i++) {
            kill(pids[i], SIGKILL);
            bool seen = false;
            for (size_t k = 0; k < n_signalled && !seen; k++) seen = signalled[k] == pids[i];
            if (!seen && n_signalled < MARKED_MAX) signalled[n_signalled++] = pids[i];
        }
        *killed = (int)n_signalled;
        if (ts_monotonic() >= end) {
            ts_errf(err, errlen, "process %ld (%s) did not stop within %g s of SIGKILL",
                    (long)pids[0], mark_prefix, timeout_s);
            return TS_ERR;
        }
        sleep_ms(5);
    }
}
