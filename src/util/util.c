/*
 * util.c - see util.h.
 */
#include "util/util.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void ts_errf(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

double ts_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ts_iso8601(double t, char *buf, size_t n) {
    time_t secs = (time_t)t;
    int ms = (int)((t - (double)secs) * 1000.0);
    if (ms < 0) ms = 0;
    if (ms > 999) ms = 999;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

double ts_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *ts_oom(size_t n) {
    fprintf(stderr, "tessera: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *ts_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    return p ? p : ts_oom(n);
}

void *ts_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    return p ? p : ts_oom(count * size);
}

void *ts_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    return q ? q : ts_oom(n);
}

char *ts_strdup(const char *s) {
    return ts_strndup(s, strlen(s));
}

char *ts_strndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *p = ts_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *ts_asprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int len = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (len < 0) return ts_oom(strlen(fmt));
    return p;
}

void ts_strlcpy(char *dst, const char *src, size_t n) {
    if (n == 0) return;
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

int ts_parse_int(const char *s, long min, long max, long *out) {
    if (s == NULL || *s == '\0') return TS_ERR;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return TS_ERR;
    *out = v;
    return TS_OK;
}

int ts_parse_double(const char *s, double min, double max, double *out) {
    if (s == NULL || *s == '\0') return TS_ERR;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max) return TS_ERR;
    *out = v;
    return TS_OK;
}

/* The whole path first: a job's directory usually has every parent
 * already (one system call instead of one per component); only when a
 * parent is missing (or the call fails otherwise, for the error naming the
 * component) is it made component by component. */
int ts_mkdir_p(const char *path, char *err, size_t errlen) {
    if (path[0] != '\0' && (mkdir(path, 0755) == 0 || errno == EEXIST)) return TS_OK;
    char *p = ts_strdup(path);
    int rc = TS_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            ts_errf(err, errlen, "cannot create directory %s: %s", p, strerror(errno));
            rc = TS_ERR;
            break;
        }
        *s = saved;
        if (saved == '\0') break;
    }
    free(p);
    return rc;
}

static int rmtree_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

int ts_rmtree(const char *path) {
    if (nftw(path, rmtree_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 || errno == ENOENT) return TS_OK;
    return TS_ERR;
}

uint64_t ts_hash_str(const char *s) {
    uint64_t h = 14695981039346656037ULL; /* the FNV-1a 64-bit offset basis */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL; /* the FNV 64-bit prime */
    }
    return h;
}

void ts_signals_default(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}
