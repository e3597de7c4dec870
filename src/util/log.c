/*
 * log.c - see log.h.
 */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

/* The only file-scope state in tessera: the log configuration. It is set
 * once at start-up by log_open() (before any thread or child exists) and
 * only read afterwards, so log_emit() can be called from anywhere without
 * passing a logger through every function. */
static int log_fd = STDERR_FILENO;
static bool log_fd_owned = false;
static log_level log_min = LOG_INFO;
static char log_component[64] = "tessera";
static char log_instance[128]; /* "" = none; set once at start-up */

/* Lines up to this long (with the newline) are formatted on the stack. */
#define LOG_LINE_STACK 1024

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Opens the destination; the previous one (if a file) is closed only after
 * the new one opened, so a failed reconfiguration keeps logging working. */
int log_open(const char *path, const char *component, log_level min_level, char *err,
             size_t errlen) {
    int fd = STDERR_FILENO;
    if (path && path[0] && strcmp(path, "-") != 0) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            ts_errf(err, errlen, "%s: %s", path, strerror(errno));
            return TS_ERR;
        }
    }
    if (log_fd_owned) close(log_fd);
    log_fd = fd;
    log_fd_owned = fd != STDERR_FILENO;
    log_min = min_level;
    ts_strlcpy(log_component, component && component[0] ? component : "tessera",
               sizeof(log_component));
    return TS_OK;
}

/* Back to the start-up state: stderr, level info. */
void log_close(void) {
    if (log_fd_owned) close(log_fd);
    log_fd = STDERR_FILENO;
    log_fd_owned = false;
    log_min = LOG_INFO;
    ts_strlcpy(log_component, "tessera", sizeof(log_component));
}

int log_level_parse(const char *name, log_level *out) {
    for (int i = LOG_DEBUG; name && i <= LOG_ERROR; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level)i;
            return TS_OK;
        }
    }
    return TS_ERR;
}

/* A JSON string for text that may not be valid UTF-8 (paths, tool output):
 * jansson refuses such strings, and dropping the whole line would hide the
 * very message that explains a failure, so bad bytes become '?'. */
static json_t *safe_string(const char *s) {
    json_t *v = json_string(s);
    if (v) return v;
    char *copy = ts_strdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

/* Writes all of buf; one write() in practice (O_APPEND files, short lines
 * on pipes), looping only on a partial write or EINTR. */
static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return; /* nowhere to report a failing log */
        buf += n;
        len -= (size_t)n;
    }
}

/* Builds the line object; the fixed fields go first and win over extra
 * fields of the same name, so "ts" or "level" can never be forged. */
static json_t *build_line(log_level level, const char *run_id, const char *job_id,
                          const char *msg, json_t *fields) {
    char ts[48];
    ts_iso8601(ts_now(), ts, sizeof(ts));
    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "pid", json_integer((json_int_t)getpid()));
    json_object_set_new(line, "component", safe_string(log_component));
    if (log_instance[0]) json_object_set_new(line, "instance", safe_string(log_instance));
    json_object_set_new(line, "msg", safe_string(msg ? msg : ""));
    if (run_id) json_object_set_new(line, "run_id", safe_string(run_id));
    if (job_id) json_object_set_new(line, "job_id", safe_string(job_id));
    if (json_is_object(fields)) json_object_update_missing(line, fields);
    return line;
}

/* Configuration, set once by the serve master before it forks. */
void log_set_instance(const char *instance) {
    ts_strlcpy(log_instance, instance ? instance : "", sizeof(log_instance));
}

const char *log_instance_name(void) {
    return log_instance;
}

/* Emits one line if level passes the threshold. errno is preserved so a
 * caller can log a failure and still report errno afterwards. */
void log_emit(log_level level, const char *run_id, const char *job_id, const char *msg,
              json_t *fields) {
    int saved_errno = errno;
    if (level < LOG_DEBUG || level > LOG_ERROR) level = LOG_ERROR;
    if (level >= log_min) {
        json_t *line = build_line(level, run_id, job_id, msg, fields);
        size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
        /* One pass into a stack buffer for the usual short line (an access
         * line is ~250 bytes, one per HTTP request); only a longer one is
         * measured and dumped again into the heap. */
        char small[LOG_LINE_STACK];
        size_t len = json_dumpb(line, small, sizeof(small) - 1, flags);
        if (len > 0 && len < sizeof(small)) {
            small[len] = '\n';
            write_all(log_fd, small, len + 1);
        } else if (len > 0) {
            char *text = ts_malloc(len + 1);
            json_dumpb(line, text, len, flags);
            text[len] = '\n';
            write_all(log_fd, text, len + 1);
            free(text);
        }
        json_decref(line);
    }
    json_decref(fields);
    errno = saved_errno;
}

/* ---- log_emit_fields: a line formatted without jansson ---------------------- */

/* A line being formatted into a fixed buffer; full once it would overflow. */
typedef struct line_buf {
    char *p;
    size_t len, cap;
    bool full;
} line_buf;

static void put(line_buf *b, const char *s, size_t n) {
    if (b->full || b->len + n > b->cap) {
        b->full = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_str(line_buf *b, const char *s) {
    put(b, s, strlen(s));
}

static void put_int(line_buf *b, long long v) {
    char digits[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0) digits[sizeof(digits) - 1 - n++] = '-';
    put(b, digits + sizeof(digits) - n, n);
}

/* Milliseconds with three decimals (whole microseconds), as a JSON number. */
static void put_ms(line_buf *b, double ms) {
    if (!(ms >= 0)) ms = 0; /* NaN or negative: a clock step */
    if (ms > 1e12) ms = 1e12;
    long long us = (long long)(ms * 1000.0 + 0.5);
    put_int(b, us / 1000);
    char frac[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                    (char)('0' + us % 10)};
    put(b, frac, sizeof(frac));
}

/* Length of the valid UTF-8 sequence at s, 0 if it is not one (the ranges
 * of RFC 3629: no overlongs, surrogates or code points past U+10FFFF). */
static size_t utf8_seq(const unsigned char *s) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return n;
}

static bool utf8_valid(const char *s) {
    for (const unsigned char *u = (const unsigned char *)s; *u;) {
        size_t n = utf8_seq(u);
        if (n == 0) return false;
        u += n;
    }
    return true;
}

/* A JSON string as jansson writes it (quotes, backslashes and control
 * characters escaped, other text as is); text that is not valid UTF-8 has
 * its bytes >= 0x80 written as '?', as safe_string does. */
static void put_json_str(line_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    bool valid = utf8_valid(s);
    put(b, "\"", 1);
    const char *run = s;
    for (const char *c = s;; c++) {
        unsigned char u = (unsigned char)*c;
        bool plain = u != 0 && u != '"' && u != '\\' && u >= 0x20 && (valid || u < 0x80);
        if (plain) continue;
        put(b, run, (size_t)(c - run));
        if (u == 0) break;
        run = c + 1;
        if (u >= 0x80) put(b, "?", 1);
        else if (u == '"') put(b, "\\\"", 2);
        else if (u == '\\') put(b, "\\\\", 2);
        else if (u == '\n') put(b, "\\n", 2);
        else if (u == '\t') put(b, "\\t", 2);
        else if (u == '\r') put(b, "\\r", 2);
        else if (u == '\b') put(b, "\\b", 2);
        else if (u == '\f') put(b, "\\f", 2);
        else {
            char esc[6] = {'\\', 'u', '0', '0', hex[u >> 4], hex[u & 15]};
            put(b, esc, sizeof(esc));
        }
    }
    put(b, "\"", 1);
}

static void put_member(line_buf *b, const char *key, const char *value) {
    put(b, ",", 1);
    put_json_str(b, key);
    put(b, ":", 1);
    put_json_str(b, value);
}

/* True if an extra field is not written: it has a fixed field's name (the
 * fixed one wins, as in log_emit; run_id, job_id and instance are reserved
 * even when absent) or an earlier field's. */
static bool field_taken(const log_field *f, size_t i) {
    static const char *const fixed[] = {"ts",       "level",  "pid",    "component",
                                        "instance", "msg",    "run_id", "job_id"};
    for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++)
        if (strcmp(f[i].key, fixed[k]) == 0) return true;
    for (size_t k = 0; k < i; k++)
        if (strcmp(f[i].key, f[k].key) == 0) return true;
    return false;
}

/* The same line through log_emit, for one too long for the buffer. */
static void emit_fields_slow(log_level level, const char *run_id, const char *msg,
                             const log_field *f, size_t n) {
    json_t *extra = json_object();
    for (size_t i = 0; i < n; i++) {
        if (field_taken(f, i)) continue;
        json_t *v = f[i].kind == LOG_FIELD_INT  ? json_integer((json_int_t)f[i].i)
                    : f[i].kind == LOG_FIELD_MS ? json_real(f[i].ms)
                    : f[i].str                  ? safe_string(f[i].str)
                                                : json_null();
        json_object_set_new(extra, f[i].key, v);
    }
    log_emit(level, run_id, NULL, msg, extra);
}

/* See log.h. */
void log_emit_fields(log_level level, const char *run_id, const char *msg,
                     const log_field *fields, size_t n) {
    if (level < LOG_DEBUG || level > LOG_ERROR) level = LOG_ERROR;
    if (level < log_min) return;
    int saved_errno = errno;
    char text[LOG_LINE_STACK];
    line_buf b = {text, 0, sizeof(text) - 1, false};
    char ts[48];
    ts_iso8601(ts_now(), ts, sizeof(ts));
    put_str(&b, "{\"ts\":");
    put_json_str(&b, ts);
    put_member(&b, "level", level_names[level]);
    put_str(&b, ",\"pid\":");
    put_int(&b, (long long)getpid());
    put_member(&b, "component", log_component);
    if (log_instance[0]) put_member(&b, "instance", log_instance);
    put_member(&b, "msg", msg ? msg : "");
    if (run_id) put_member(&b, "run_id", run_id);
    for (size_t i = 0; i < n; i++) {
        if (field_taken(fields, i)) continue;
        if (fields[i].kind == LOG_FIELD_STR && fields[i].str) {
            put_member(&b, fields[i].key, fields[i].str);
            continue;
        }
        put(&b, ",", 1);
        put_json_str(&b, fields[i].key);
        put(&b, ":", 1);
        if (fields[i].kind == LOG_FIELD_INT) put_int(&b, fields[i].i);
        else if (fields[i].kind == LOG_FIELD_MS) put_ms(&b, fields[i].ms);
        else put_str(&b, "null");
    }
    put_str(&b, "}\n");
    if (b.full) emit_fields_slow(level, run_id, msg, fields, n);
    else write_all(log_fd, text, b.len);
    errno = saved_errno;
}
