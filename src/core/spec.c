/*
 * spec.c - parsing and validating a workflow document; see spec.h.
 *
 * Validation runs in three passes so every message can name the job at
 * fault: the shape of the whole document (depth, string lengths), then each
 * job's own fields in listed order, then (in spec_dag.c) the dependencies,
 * which may point forward and so need every job id first, and the graph.
 *
 * Choices the header leaves open:
 *   - duplicate keys in one JSON object are 422: the body is JSON, but it
 *     breaks the rule that a field is given once (jansson cannot say which
 *     object, so the message gives the line and column instead of a path);
 *   - an integer too large for jansson is 422 for the same reason;
 *   - null for an optional field means "absent" (clients serialising an
 *     unset optional value send null); required fields may not be null;
 *   - integer fields reject reals, even 2.0: a real there is a sign the
 *     client meant something else, and "must be an integer" says how to fix it.
 */
#include "core/spec.h"
#include "core/spec_internal.h"
#include "util/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_DEFAULT_BRANCH "default"
#define SPEC_CPUS_MAX 1024
#define SPEC_TIMEOUT_MAX (30.0 * 86400.0)
#define SPEC_RETRIES_MAX 100
#define SPEC_RETRY_DELAY_MAX 86400.0
#define SPEC_RETRY_DELAY_DEFAULT 10.0
#define SPEC_PRIORITY_LIMIT 1000
#define SPEC_ID_RULE "must be 1-64 characters of A-Z a-z 0-9 . _ -"
#define SPEC_JOB_ID_RULE                                                                         \
    "must be 1-64 characters of A-Z a-z 0-9 . _ -, and not \".\" or \"..\" (a job id names " \
    "the job's own directory)"

static const char *const workflow_keys[] = {"name", "priority", "jobs", NULL};
static const char *const job_keys[] = {"job_id",      "job_type",      "image_path", "branch",
                                       "depends_on",  "params",        "cpus",       "timeout_s",
                                       "max_retries", "retry_delay_s", NULL};

/* Where a value lives: a job (index, and id once known to be valid) or the
 * document itself (job < 0). Every helper below reports through it. */
typedef struct spec_where {
    spec_error *err;
    long job;
    const char *job_id;
} spec_where;

void spec_limits_default(spec_limits *lim) {
    lim->max_jobs = 10000;
    lim->max_string = 4096;
    lim->max_depth = 32;
    lim->max_name = 256;
    lim->max_cpus = 0;
}

/* ---------------------------------------------------------------- messages */

/* How many continuation bytes follow lead, or SIZE_MAX if it cannot start a
 * character. */
static size_t utf8_continuations(unsigned char lead) {
    if (lead < 0x80) return 0;
    if (lead >= 0xC2 && lead < 0xE0) return 1;
    if (lead >= 0xE0 && lead < 0xF0) return 2;
    if (lead >= 0xF0 && lead < 0xF5) return 3;
    return SIZE_MAX;
}

/* Makes s safe to put in a one-line JSON message: invalid UTF-8 (jansson's
 * own error text may be cut mid-character) and control characters become
 * '?', and an incomplete character at the end (from truncation) is dropped. */
static void utf8_sanitize(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p != '\0') {
        size_t need = utf8_continuations(*p), k = 0;
        while (need != SIZE_MAX && k < need && (p[k + 1] & 0xC0) == 0x80) k++;
        if (need != SIZE_MAX && k < need && p[k + 1] == '\0') {
            *p = '\0';
            return;
        }
        if (need == SIZE_MAX || k < need || *p < 0x20 || *p == 0x7F) {
            *p++ = '?';
            continue;
        }
        p += need + 1;
    }
}

/* The message layout shared with spec_dag.c; shown is the field as the
 * message spells it (it may carry the offending value), field as err->field
 * records it. */
static void spec_error_fill(spec_error *err, int http_status, long job, const char *job_id,
                            const char *field, const char *shown, const char *text) {
    if (err == NULL) return;
    bool has_id = job_id != NULL && job_id[0] != '\0';
    err->http_status = http_status;
    ts_strlcpy(err->job_id, has_id ? job_id : "", sizeof err->job_id);

    char where[128] = "";
    if (job >= 0 && has_id)
        ts_errf(where, sizeof where, "jobs[%ld] (job \"%s\")", job, job_id);
    else if (job >= 0)
        ts_errf(where, sizeof where, "jobs[%ld]", job);
    if (job >= 0)
        ts_errf(err->field, sizeof err->field, "jobs[%ld]%s%s", job,
                field[0] != '\0' && field[0] != '[' ? "." : "", field);
    else
        ts_strlcpy(err->field, field, sizeof err->field);

    ts_errf(err->message, sizeof err->message, "%s%s%s%s%s", where, where[0] != '\0' ? ": " : "",
            shown, shown[0] != '\0' ? ": " : "", text);
    utf8_sanitize(err->field);
    utf8_sanitize(err->message);
}

void spec_error_set(spec_error *err, int http_status, long job, const char *job_id,
                    const char *field, const char *fmt, ...) {
    char text[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    spec_error_fill(err, http_status, job, job_id, field, field, text);
}

/* A 422 about a field of w's job (or of the document). */
static int fail(const spec_where *w, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const spec_where *w, const char *field, const char *fmt, ...) {
    char text[sizeof w->err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    spec_error_fill(w->err, 422, w->job, w->job_id, field, field, text);
    return TS_ERR;
}

/* See spec_internal.h. Escaping keeps a hostile value from breaking the
 * sentence or forging log lines; the cut keeps messages short. */
const char *spec_quote(const char *s, char *buf, size_t cap) {
    size_t used = 0, i = 0;
    for (; s[i] != '\0' && i < SPEC_QUOTE_MAX && used + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[used++] = '\\';
            buf[used++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            used += (size_t)snprintf(buf + used, cap - used, "\\u%04x", c);
        } else {
            buf[used++] = (char)c;
        }
    }
    buf[used] = '\0';
    if (s[i] != '\0') {
        utf8_sanitize(buf);
        used = strlen(buf);
        if (used + 4 <= cap) memcpy(buf + used, "...", 4);
    }
    return buf;
}

/* Appends a JSON-path step for key: ".name" when it reads as a name, else
 * ["quoted key"]; the first step of a path has no dot. */
static void path_append_key(char *path, size_t cap, const char *key) {
    bool plain = key[0] != '\0';
    for (const char *p = key; *p != '\0'; p++)
        if (!(*p == '_' || *p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            plain = false;
    size_t used = strlen(path);
    char quoted[SPEC_QUOTE_BUF];
    if (plain)
        ts_errf(path + used, cap - used, "%s%s", used > 0 ? "." : "", key);
    else
        ts_errf(path + used, cap - used, "[\"%s\"]", spec_quote(key, quoted, sizeof quoted));
}

/* Rejects a job_id or branch that breaks the id rule, spelling the field
 * with its value as users look for it: `job_id "a b": must be ...`. */
static int fail_id_rule(const spec_where *w, const char *field, const char *value,
                        const char *rule) {
    char quoted[SPEC_QUOTE_BUF], shown[SPEC_QUOTE_BUF + 32];
    ts_errf(shown, sizeof shown, "%s \"%s\"", field, spec_quote(value, quoted, sizeof quoted));
    spec_error_fill(w->err, 422, w->job, w->job_id, field, shown, rule);
    return TS_ERR;
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value of unknown type";
}

static bool valid_id(const char *s) {
    size_t len = strlen(s);
    if (len == 0 || len > SPEC_ID_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* A job id is also one path component: the scheduler, the runner and the
 * API put it into <state>/work/<workflow>/<job_id> and results/..., so "."
 * and ".." (the workflow's directory and the shared one above it) are
 * refused here, where every spec_workflow is made (spec_from_json): no
 * spec in memory, stored or reloaded, can hold one. */
static bool valid_job_id(const char *s) {
    return valid_id(s) && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* ----------------------------------------------------------------- shape */

typedef struct walk_frame {
    json_t *container;
    void *iter;      /* objects: the next member to visit */
    const char *key; /* objects: the member being visited */
    size_t next;     /* arrays: the next index to visit */
} walk_frame;

/* Reports a limit broken at the current step of frames[0..n_steps): finds the
 * job the path runs through, if any, so the message names it like any other. */
static int walk_fail(spec_error *err, int status, json_t *root, const walk_frame *frames,
                     size_t n_steps, const char *text) {
    long job = -1;
    const char *job_id = NULL;
    size_t from = 0;
    if (n_steps >= 2 && strcmp(frames[0].key, "jobs") == 0 && json_is_array(frames[1].container)) {
        job = (long)frames[1].next - 1;
        json_t *id =
            json_object_get(json_array_get(json_object_get(root, "jobs"), (size_t)job), "job_id");
        if (json_is_string(id) && valid_job_id(json_string_value(id))) job_id = json_string_value(id);
        from = 2;
    }
    char path[sizeof err->field] = "";
    for (size_t k = from; k < n_steps; k++) {
        if (json_is_object(frames[k].container)) {
            path_append_key(path, sizeof path, frames[k].key);
        } else {
            size_t used = strlen(path);
            ts_errf(path + used, sizeof path - used, "[%zu]", frames[k].next - 1);
        }
    }
    spec_error_set(err, status, job, job_id, path, "%s", text);
    return TS_ERR;
}

/* Checks the limits no field rule sees: nesting depth and the length of every
 * string and key, params included. Walks with an explicit stack (a hostile
 * document must not exhaust the C stack); O(size of the document). */
static int check_shape(json_t *root, const spec_limits *lim, spec_error *err) {
    size_t cap = 16, depth = 0;
    walk_frame *frames = ts_malloc(cap * sizeof *frames);
    char text[200];
    int rc = TS_OK;

    frames[depth++] = (walk_frame){root, json_object_iter(root), NULL, 0};
    if (lim->max_depth < 1) {
        ts_errf(text, sizeof text, "the document may not be nested at all (limit %zu)",
                lim->max_depth);
        rc = walk_fail(err, 400, root, frames, 0, text);
        goto cleanup;
    }
    while (depth > 0) {
        walk_frame *f = &frames[depth - 1];
        json_t *child;
        if (json_is_object(f->container)) {
            if (f->iter == NULL) {
                depth--;
                continue;
            }
            f->key = json_object_iter_key(f->iter);
            child = json_object_iter_value(f->iter);
            f->iter = json_object_iter_next(f->container, f->iter);
            size_t key_len = strlen(f->key);
            if (key_len > lim->max_string) {
                ts_errf(text, sizeof text, "a key is %zu bytes long; keys may be at most %zu bytes",
                        key_len, lim->max_string);
                rc = walk_fail(err, 422, root, frames, depth - 1, text);
                goto cleanup;
            }
        } else {
            if (f->next >= json_array_size(f->container)) {
                depth--;
                continue;
            }
            child = json_array_get(f->container, f->next++);
        }
        if (json_is_string(child) && json_string_length(child) > lim->max_string) {
            ts_errf(text, sizeof text, "the string is %zu bytes long; at most %zu are allowed",
                    json_string_length(child), lim->max_string);
            rc = walk_fail(err, 422, root, frames, depth, text);
            goto cleanup;
        }
        if (json_is_object(child) || json_is_array(child)) {
            if (depth + 1 > lim->max_depth) {
                ts_errf(text, sizeof text,
                        "the document is nested more than %zu levels deep; flatten this value",
                        lim->max_depth);
                rc = walk_fail(err, 400, root, frames, depth, text);
                goto cleanup;
            }
            if (depth == cap) {
                cap *= 2;
                frames = ts_realloc(frames, cap * sizeof *frames);
            }
            frames[depth++] = (walk_frame){child, json_object_iter(child), NULL, 0};
        }
    }

cleanup:
    free(frames);
    return rc;
}

/* Rejects any key of obj not in allowed: a typo must not silently fall back
 * to a default. what names the object in the message ("a job"). */
static int check_keys(const spec_where *w, json_t *obj, const char *const *allowed,
                      const char *what) {
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        size_t k = 0;
        while (allowed[k] != NULL && strcmp(allowed[k], key) != 0) k++;
        if (allowed[k] != NULL) continue;
        char list[256] = "", path[sizeof w->err->field] = "";
        for (k = 0; allowed[k] != NULL; k++) {
            size_t used = strlen(list);
            ts_errf(list + used, sizeof list - used, "%s%s", k > 0 ? ", " : "", allowed[k]);
        }
        path_append_key(path, sizeof path, key);
        return fail(w, path, "unknown key; %s has only the keys %s", what, list);
    }
    return TS_OK;
}

/* ----------------------------------------------------------- field values */

static int get_int(const spec_where *w, json_t *v, const char *field, long long min, long long max,
                   int *out) {
    if (json_is_real(v)) {
        /* %g would print 2.0 as "2", hiding why it was refused. */
        double x = json_real_value(v);
        return fail(w, field,
                    x == floor(x) ? "must be an integer from %lld to %lld, not %.1f"
                                  : "must be an integer from %lld to %lld, not %g",
                    min, max, x);
    }
    if (!json_is_integer(v))
        return fail(w, field, "must be an integer from %lld to %lld, not %s", min, max,
                    json_kind(v));
    long long x = json_integer_value(v);
    if (x < min || x > max)
        return fail(w, field, "%lld is out of range; must be an integer from %lld to %lld", x, min,
                    max);
    *out = (int)x;
    return TS_OK;
}

static int get_number(const spec_where *w, json_t *v, const char *field, double max,
                      const char *meaning, double *out) {
    if (!json_is_number(v))
        return fail(w, field, "must be a number of seconds from 0 to %.0f%s, not %s", max, meaning,
                    json_kind(v));
    double x = json_number_value(v);
    if (!(x >= 0 && x <= max))
        return fail(w, field, "%g is out of range; must be a number of seconds from 0 to %.0f%s", x,
                    max, meaning);
    *out = x;
    return TS_OK;
}

/* The string at v (not NULL, not null), or NULL after reporting. */
static const char *get_string(const spec_where *w, json_t *v, const char *field) {
    if (!json_is_string(v)) {
        fail(w, field, "must be a string, not %s", json_kind(v));
        return NULL;
    }
    if (json_string_value(v)[0] == '\0') {
        fail(w, field, "must not be empty");
        return NULL;
    }
    return json_string_value(v);
}

/* Optional fields: absent and null both mean "use the default". */
static json_t *get_optional(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* Turns a check function's refusal into a spec_error. The function names the
 * field inside the job when the reason starts with one ("params.seconds: must
 * be ..."); "unknown job type ..." is about job_type; anything else is about
 * the job as a whole. */
static int report_check_failure(const spec_where *w, const char *reason) {
    static const char *const fields[] = {"params", "image_path", "job_type", "job_id", NULL};
    if (reason[0] == '\0') reason = "was rejected by the job type's checks";
    for (size_t k = 0; fields[k] != NULL; k++) {
        size_t len = strlen(fields[k]);
        const char *colon = strstr(reason, ": ");
        if (strncmp(reason, fields[k], len) != 0 || colon == NULL) continue;
        if (reason[len] != '.' && reason[len] != '[' && reason[len] != ':') continue;
        char field[128];
        size_t field_len = (size_t)(colon - reason);
        if (field_len >= sizeof field) field_len = sizeof field - 1;
        memcpy(field, reason, field_len);
        field[field_len] = '\0';
        return fail(w, field, "%s", colon + 2);
    }
    if (strncmp(reason, "unknown job type", 16) == 0) return fail(w, "job_type", "%s", reason);
    return fail(w, "", "%s", reason);
}

/* ------------------------------------------------------------------- ids */

/* The slot holding id, or the empty slot where it belongs (linear probing;
 * the table is at most half full, so probes stay short). */
static size_t id_slot(const spec_workflow_impl *impl, const char *id) {
    size_t mask = impl->id_cap - 1, at = (size_t)ts_hash_str(id) & mask;
    while (impl->id_slots[at] != 0 && strcmp(impl->wf.jobs[impl->id_slots[at] - 1].job_id, id) != 0)
        at = (at + 1) & mask;
    return at;
}

int spec_find_job(const spec_workflow *wf, const char *job_id) {
    if (wf == NULL || job_id == NULL) return -1;
    const spec_workflow_impl *impl = (const spec_workflow_impl *)wf;
    if (impl->id_cap == 0) return -1;
    uint32_t slot = impl->id_slots[id_slot(impl, job_id)];
    return slot != 0 ? (int)slot - 1 : -1;
}

/* ------------------------------------------------------------------- jobs */

/* Reads job_id, checks it is well formed and unused, and records it in the
 * index. Done first so later messages about this job can name it. */
static int parse_job_id(spec_workflow_impl *impl, const spec_where *w, json_t *obj, size_t i) {
    json_t *v = json_object_get(obj, "job_id");
    if (v == NULL || json_is_null(v))
        return fail(w, "job_id",
                    "missing; every job needs a job_id (1-64 characters of "
                    "A-Z a-z 0-9 . _ -)");
    if (!json_is_string(v)) return fail(w, "job_id", "must be a string, not %s", json_kind(v));
    const char *id = json_string_value(v);
    if (!valid_job_id(id)) return fail_id_rule(w, "job_id", id, SPEC_JOB_ID_RULE);
    size_t at = id_slot(impl, id);
    if (impl->id_slots[at] != 0)
        return fail(w, "job_id",
                    "duplicate job_id \"%s\", already used by jobs[%u]; job ids "
                    "must be unique in a workflow",
                    id, (unsigned)impl->id_slots[at] - 1);
    impl->wf.jobs[i].job_id = ts_strdup(id);
    impl->id_slots[at] = (uint32_t)i + 1;
    return TS_OK;
}

/* Reads depends_on's shape; the ids themselves are resolved once every job is
 * known (spec_dag_build), since a job may name one listed after it. */
static int parse_depends_on(const spec_where *w, json_t *v, json_t **raw) {
    if (v == NULL) return TS_OK;
    if (!json_is_array(v))
        return fail(w, "depends_on", "must be an array of job ids, not %s", json_kind(v));
    for (size_t k = 0; k < json_array_size(v); k++) {
        json_t *el = json_array_get(v, k);
        if (!json_is_string(el)) {
            char field[48];
            ts_errf(field, sizeof field, "depends_on[%zu]", k);
            return fail(w, field, "must be a job id (a string), not %s", json_kind(el));
        }
    }
    *raw = v;
    return TS_OK;
}

static int parse_strings(spec_job *job, const spec_where *w, json_t *obj) {
    const char *s;
    json_t *v = json_object_get(obj, "job_type");
    if (v == NULL || json_is_null(v))
        return fail(w, "job_type", "missing; every job needs a job_type (e.g. \"noop\")");
    if ((s = get_string(w, v, "job_type")) == NULL) return TS_ERR;
    job->job_type = ts_strdup(s);

    if ((v = get_optional(obj, "image_path")) != NULL) {
        if ((s = get_string(w, v, "image_path")) == NULL) return TS_ERR;
        job->image_path = ts_strdup(s);
    }

    s = SPEC_DEFAULT_BRANCH;
    if ((v = get_optional(obj, "branch")) != NULL) {
        if (!json_is_string(v)) return fail(w, "branch", "must be a string, not %s", json_kind(v));
        s = json_string_value(v);
        if (!valid_id(s)) return fail_id_rule(w, "branch", s, SPEC_ID_RULE);
    }
    job->branch = ts_strdup(s);
    return TS_OK;
}

static int parse_numbers(spec_job *job, const spec_where *w, json_t *obj, const spec_limits *lim) {
    json_t *v;
    job->cpus = 1;
    job->timeout_s = 0;
    job->max_retries = 0;
    job->retry_delay_s = SPEC_RETRY_DELAY_DEFAULT;
    if ((v = get_optional(obj, "cpus")) != NULL) {
        if (get_int(w, v, "cpus", 1, SPEC_CPUS_MAX, &job->cpus) != TS_OK) return TS_ERR;
        if (lim->max_cpus > 0 && job->cpus > lim->max_cpus)
            return fail(w, "cpus",
                        "%d is more than this server allows per job; ask for at most "
                        "%d",
                        job->cpus, lim->max_cpus);
    }
    if ((v = get_optional(obj, "timeout_s")) != NULL &&
        get_number(w, v, "timeout_s", SPEC_TIMEOUT_MAX, " (30 days; 0 means no timeout)",
                   &job->timeout_s) != TS_OK)
        return TS_ERR;
    if ((v = get_optional(obj, "max_retries")) != NULL &&
        get_int(w, v, "max_retries", 0, SPEC_RETRIES_MAX, &job->max_retries) != TS_OK)
        return TS_ERR;
    if ((v = get_optional(obj, "retry_delay_s")) != NULL &&
        get_number(w, v, "retry_delay_s", SPEC_RETRY_DELAY_MAX, " (1 day)", &job->retry_delay_s) !=
            TS_OK)
        return TS_ERR;
    return TS_OK;
}

/* Validates jobs[i] on its own (everything but whether its dependencies
 * exist) and fills impl->wf.jobs[i]; *raw_deps receives its depends_on array
 * (borrowed) for the second pass. */
static int parse_job(spec_workflow_impl *impl, size_t i, json_t *obj, const spec_limits *lim,
                     spec_check_job_fn check, void *check_ctx, json_t **raw_deps, spec_error *err) {
    spec_job *job = &impl->wf.jobs[i];
    spec_where w = {err, (long)i, NULL};
    if (!json_is_object(obj))
        return fail(&w, "", "must be an object with at least job_id and job_type, not %s",
                    json_kind(obj));
    json_t *id = json_object_get(obj, "job_id");
    if (json_is_string(id) && valid_job_id(json_string_value(id))) w.job_id = json_string_value(id);

    if (check_keys(&w, obj, job_keys, "a job") != TS_OK) return TS_ERR;
    if (parse_job_id(impl, &w, obj, i) != TS_OK) return TS_ERR;
    if (parse_strings(job, &w, obj) != TS_OK) return TS_ERR;
    if (parse_depends_on(&w, get_optional(obj, "depends_on"), raw_deps) != TS_OK) return TS_ERR;

    json_t *params = get_optional(obj, "params");
    if (params != NULL && !json_is_object(params))
        return fail(&w, "params", "must be an object, not %s", json_kind(params));
    /* A copy: the caller keeps the document, the spec must stay immutable. */
    job->params = params != NULL ? json_deep_copy(params) : json_object();
    if (job->params == NULL) return fail(&w, "params", "could not be copied (out of memory)");

    if (parse_numbers(job, &w, obj, lim) != TS_OK) return TS_ERR;

    if (check != NULL) {
        char reason[400] = "";
        if (check(check_ctx, job->job_id, job->job_type, job->params, job->image_path, reason,
                  sizeof reason) != 0)
            return report_check_failure(&w, reason);
    }
    return TS_OK;
}

/* -------------------------------------------------------------- workflow */

/* The document-level fields; *jobs receives the jobs array (borrowed). */
static int parse_header(json_t *root, const spec_limits *lim, spec_workflow *wf, json_t **jobs,
                        spec_error *err) {
    spec_where w = {err, -1, NULL};
    if (check_keys(&w, root, workflow_keys, "a workflow") != TS_OK) return TS_ERR;

    json_t *v = json_object_get(root, "name");
    const char *name;
    if (v == NULL || json_is_null(v))
        return fail(&w, "name", "missing; a workflow needs a name (a string of 1-%zu bytes)",
                    lim->max_name);
    if ((name = get_string(&w, v, "name")) == NULL) return TS_ERR;
    if (strlen(name) > lim->max_name)
        return fail(&w, "name", "is %zu bytes long; at most %zu are allowed", strlen(name),
                    lim->max_name);
    wf->name = ts_strdup(name);

    if ((v = get_optional(root, "priority")) != NULL &&
        get_int(&w, v, "priority", -SPEC_PRIORITY_LIMIT, SPEC_PRIORITY_LIMIT, &wf->priority) !=
            TS_OK)
        return TS_ERR;

    *jobs = v = json_object_get(root, "jobs");
    if (v == NULL || json_is_null(v))
        return fail(&w, "jobs", "missing; a workflow needs a list of jobs");
    if (!json_is_array(v))
        return fail(&w, "jobs", "must be an array of jobs, not %s", json_kind(v));
    if (json_array_size(v) == 0) return fail(&w, "jobs", "must list at least one job");
    if (json_array_size(v) > lim->max_jobs)
        return fail(&w, "jobs",
                    "%zu jobs is more than the limit of %zu per workflow; split the workflow",
                    json_array_size(v), lim->max_jobs);
    return TS_OK;
}

int spec_from_json(json_t *root, const spec_limits *lim, spec_check_job_fn check, void *check_ctx,
                   spec_workflow **out, spec_error *err) {
    spec_limits defaults;
    spec_workflow_impl *impl = NULL;
    json_t **raw_deps = NULL;
    spec_where doc = {err, -1, NULL};

    *out = NULL;
    if (lim == NULL) {
        spec_limits_default(&defaults);
        lim = &defaults;
    }
    if (!json_is_object(root)) {
        fail(&doc, "",
             "the workflow must be a JSON object such as {\"name\": ..., \"jobs\": "
             "[...]}, not %s",
             root ? json_kind(root) : "nothing");
        goto fail;
    }
    if (check_shape(root, lim, err) != TS_OK) goto fail;

    impl = ts_calloc(1, sizeof *impl);
    json_t *jobs = NULL;
    if (parse_header(root, lim, &impl->wf, &jobs, err) != TS_OK) goto fail;

    size_t n = json_array_size(jobs);
    impl->wf.jobs = ts_calloc(n, sizeof *impl->wf.jobs);
    impl->wf.n_jobs = n;
    for (impl->id_cap = 4; impl->id_cap < 2 * n;) impl->id_cap *= 2;
    impl->id_slots = ts_calloc(impl->id_cap, sizeof *impl->id_slots);
    raw_deps = ts_calloc(n, sizeof *raw_deps);
    for (size_t i = 0; i < n; i++)
        if (parse_job(impl, i, json_array_get(jobs, i), lim, check, check_ctx, &raw_deps[i], err) !=
            TS_OK)
            goto fail;

    if (spec_dag_build(&impl->wf, raw_deps, err) != TS_OK) goto fail;

    free(raw_deps);
    *out = &impl->wf;
    return TS_OK;

fail:
    free(raw_deps);
    if (impl != NULL) spec_free(&impl->wf);
    return TS_ERR;
}

/* Rejects text nested deeper than max_depth before jansson builds it: each
 * level costs jansson a node and a stack frame, so counting brackets outside
 * strings first keeps a hostile body cheap. Malformed text is left to
 * jansson, which names the syntax error. */
static int prescan_depth(const char *text, size_t len, size_t max_depth, spec_error *err) {
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                spec_error_set(err, 400, -1, NULL, "",
                               "the document is nested more than %zu levels deep (at byte %zu); "
                               "at most %zu levels of arrays and objects are allowed",
                               max_depth, i, max_depth);
                return TS_ERR;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return TS_OK;
}

int spec_parse(const char *text, size_t len, const spec_limits *lim, spec_check_job_fn check,
               void *check_ctx, spec_workflow **out, spec_error *err) {
    spec_limits defaults;
    json_error_t jerr;

    *out = NULL;
    if (lim == NULL) {
        spec_limits_default(&defaults);
        lim = &defaults;
    }
    if (text == NULL) text = "", len = 0;
    if (prescan_depth(text, len, lim->max_depth, err) != TS_OK) return TS_ERR;

    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        switch (json_error_code(&jerr)) {
        case json_error_invalid_utf8:
            spec_error_set(err, 400, -1, NULL, "",
                           "the document is not valid UTF-8 (line %d, column %d); send JSON "
                           "encoded as UTF-8",
                           jerr.line, jerr.column);
            break;
        case json_error_duplicate_key:
        case json_error_numeric_overflow:
            spec_error_set(err, 422, -1, NULL, "", "%s (line %d, column %d); %s", jerr.text,
                           jerr.line, jerr.column,
                           json_error_code(&jerr) == json_error_duplicate_key
                               ? "a key may appear only once in an object"
                               : "use a smaller number");
            break;
        default:
            spec_error_set(err, 400, -1, NULL, "",
                           "the document is not valid JSON: %s (line %d, column %d)", jerr.text,
                           jerr.line, jerr.column);
            break;
        }
        return TS_ERR;
    }
    int rc = spec_from_json(root, lim, check, check_ctx, out, err);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------ to JSON */

/* Whole numbers print as integers ("timeout_s": 60, not 60.0), which is what
 * a user wrote; both read back the same. */
static json_t *number_json(double x) {
    if (x == floor(x) && fabs(x) < 9007199254740992.0) return json_integer((json_int_t)x);
    return json_real(x);
}

json_t *spec_to_json(const spec_workflow *wf) {
    json_t *jobs = json_array();
    for (size_t i = 0; i < wf->n_jobs; i++) {
        const spec_job *job = &wf->jobs[i];
        json_t *deps = json_array();
        for (size_t k = 0; k < job->n_depends_on; k++)
            json_array_append_new(deps, json_string(job->depends_on[k]));
        /* "s*": image_path is left out when the job has none. */
        json_array_append_new(
            jobs,
            json_pack("{s:s, s:s, s:s*, s:s, s:o, s:o, s:i, s:o, s:i, s:o}", "job_id", job->job_id,
                      "job_type", job->job_type, "image_path", job->image_path, "branch",
                      job->branch, "depends_on", deps, "params", json_deep_copy(job->params),
                      "cpus", job->cpus, "timeout_s", number_json(job->timeout_s), "max_retries",
                      job->max_retries, "retry_delay_s", number_json(job->retry_delay_s)));
    }
    return json_pack("{s:s, s:i, s:o}", "name", wf->name, "priority", wf->priority, "jobs", jobs);
}

/* Frees a workflow from spec_from_json(), including one that failed half
 * way (its unset fields are NULL). */
spec_workflow *spec_retain(spec_workflow *wf) {
    if (wf != NULL) ((spec_workflow_impl *)wf)->extra_refs++;
    return wf;
}

void spec_free(spec_workflow *wf) {
    if (wf == NULL) return;
    spec_workflow_impl *impl = (spec_workflow_impl *)wf;
    /* Atomic: a reference held by one thread may be dropped while another
     * drops its own. */
    if (atomic_fetch_sub(&impl->extra_refs, 1) > 0) return;
    for (size_t i = 0; i < wf->n_jobs; i++) {
        spec_job *job = &wf->jobs[i];
        free(job->job_id);
        free(job->job_type);
        free(job->image_path);
        free(job->branch);
        for (size_t k = 0; k < job->n_depends_on; k++) free(job->depends_on[k]);
        free(job->depends_on);
        json_decref(job->params);
    }
    free(wf->jobs);
    free(wf->name);
    spec_dag_free(&wf->dag);
    free(impl->id_slots);
    free(impl);
}
