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
