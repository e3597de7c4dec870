/*
 * util.h - small helpers shared by every module: return codes, error buffers,
 * clocks and allocation that never returns NULL.
 *
 * Contract: functions across tessera return TS_OK (0) on success and TS_ERR (-1)
 * on failure, writing a message a user can act on into a caller-supplied
 * buffer (char *err, size_t errlen). Some add positive codes of their own
 * (e.g. STORE_NOTFOUND); those are documented in the module's header.
 */
#ifndef TESSERA_UTIL_H
#define TESSERA_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define TS_OK 0
#define TS_ERR (-1)

#define TS_ERRLEN 512 /* a comfortable size for error buffers */

/* Formats into err (if err != NULL and errlen > 0); always NUL-terminates. */
void ts_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Wall-clock time as seconds since the epoch, with sub-microsecond precision.
 * Stored timestamps use this clock. */
double ts_now(void);

/* t (epoch seconds) as ISO-8601 UTC with milliseconds,
 * "2026-11-23T09:40:00.123Z", into buf (at least 32 bytes). */
void ts_iso8601(double t, char *buf, size_t n);

/* Monotonic seconds, for timeouts and intervals (never jumps). */
double ts_monotonic(void);

/* Which build this binary comes from (build_stamp.c): the same in tessera
 * and tessera-runner linked from the same objects, different otherwise. */
const char *ts_build_stamp(void);

/* Allocation that aborts the process with a message on out-of-memory: the
 * callers cannot do anything sensible without memory, and checking every
 * small allocation would bury the logic. */
void *ts_malloc(size_t n);
void *ts_calloc(size_t count, size_t size);
void *ts_realloc(void *p, size_t n);
char *ts_strdup(const char *s);
char *ts_strndup(const char *s, size_t n);

/* printf into a freshly allocated string. */
char *ts_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies src into dst of size n, truncating; always NUL-terminates. */
void ts_strlcpy(char *dst, const char *src, size_t n);

/* 64-bit FNV-1a of a NUL-terminated string: the one string hash of the
 * code base (hash tables, cache keys, ETags). Stable across processes and
 * runs; not for anything an attacker must not be able to collide. */
uint64_t ts_hash_str(const char *s);

/* Parses a whole string as a decimal integer / number within [min, max].
 * Returns TS_OK or TS_ERR (no partial parses, no overflow). */
int ts_parse_int(const char *s, long min, long max, long *out);
int ts_parse_double(const char *s, double min, double max, double *out);

/* mkdir -p: creates path and its missing parents (mode 0755). The error
 * names the directory that could not be made. TS_OK or TS_ERR. */
int ts_mkdir_p(const char *path, char *err, size_t errlen);

/* rm -rf path: removes it and everything below it without following
 * symlinks out of the tree. A missing path is success. TS_OK or TS_ERR
 * (errno says why). */
int ts_rmtree(const char *path);

/* Every signal back to its default action and none blocked: what a fresh
 * child (a runner, a tool) starts with, whatever its parent caught or
 * blocked. Only sigaction and sigprocmask, so it may run between fork and
 * exec. */
void ts_signals_default(void);

#endif
