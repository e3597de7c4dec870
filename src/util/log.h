/*
 * log.h - structured logs as JSON lines (DESIGN §3, issue 3 item 7).
 *
 * Each line is one JSON object: {"ts": ISO-8601 UTC with milliseconds,
 * "level": "debug"|"info"|"warn"|"error", "pid", "component", "msg",
 * "instance"? (host:port of the serve instance), "run_id"? (the workflow id,
 * e.g. "wf-12"), "job_id"?, ...extra fields}.
 * Lines are written with one write() each so processes sharing a file do
 * not interleave within a line.
 *
 * The destination and level are configuration, set once at start-up by
 * log_open(); before it, logs go to stderr at level info.
 */
#ifndef TESSERA_UTIL_LOG_H
#define TESSERA_UTIL_LOG_H

#include <jansson.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* path "-" = stderr; otherwise appended to (created 0644). component names
 * the process ("run", "scheduler", "http", ...). Returns TS_OK or TS_ERR. */
int log_open(const char *path, const char *component, log_level min_level, char *err,
             size_t errlen);
void log_close(void);

/* Names the service instance (host:port of `tessera serve`) on every line
 * from now on, so that the logs of several instances sharing one database
 * can be told apart and merged. Set once at start-up, before fork. */
void log_set_instance(const char *instance);
/* The instance's name as set by log_set_instance ("" when none). */
const char *log_instance_name(void);

/* Parses "debug", "info", "warn", "error". */
int log_level_parse(const char *name, log_level *out);

/* Emits one line. run_id / job_id may be NULL. fields (may be NULL) is a JSON
 * object whose members are added to the line; the reference is stolen. */
void log_emit(log_level level, const char *run_id, const char *job_id, const char *msg,
              json_t *fields);

/* An extra field of log_emit_fields: a string (NULL: null), an integer or
 * a duration in milliseconds (written with three decimals). */
typedef enum { LOG_FIELD_STR, LOG_FIELD_INT, LOG_FIELD_MS } log_field_kind;
typedef struct log_field {
    const char *key; /* plain ASCII */
    log_field_kind kind;
    const char *str;
    long long i;
    double ms;
} log_field;

/* The same line as log_emit with these fields, in this order (a name of a
 * fixed field or one given twice is dropped, as there), formatted straight
 * into a buffer without building a JSON object: for the line of every HTTP
 * request, written on the socket thread (issue 16). */
void log_emit_fields(log_level level, const char *run_id, const char *msg,
                     const log_field *fields, size_t n);

#endif
