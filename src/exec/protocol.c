/*
 * protocol.c - see protocol.h.
 */
#include "exec/protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/layout.h"
#include "util/util.h"

#define POLL_MAX_BYTES (64 * 1024) /* a progress file read per poll, at most */

void proto_copy_utf8(char *dst, const char *src, size_t n) {
    size_t len = strnlen(src, n - 1);
    if (src[len] != '\0')
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80) len--;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

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

/* The directory part of path (mkdir -p'd), nothing when it has none. */
static int mkdir_parent(const char *path, char *err, size_t errlen) {
    char *p = ts_strdup(path);
    char *slash = strrchr(p, '/');
    int rc = TS_OK;
    if (slash && slash != p) {
        *slash = '\0';
        rc = ts_mkdir_p(p, err, errlen);
    }
    free(p);
    return rc;
}

static void fsync_parent(const char *path) {
    char *p = ts_strdup(path);
    char *slash = strrchr(p, '/');
    if (slash) {
        *slash = '\0';
        int fd = open(slash == p ? "/" : p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    free(p);
}

/* Writes text to path through a temp file and a rename, so readers see the
 * old file or the whole new one. durable: fsync the file and the directory
 * (the exit marker must survive a crash once an executor may have acted on
 * it); no_replace: fail with EEXIST if path exists. */
static int write_atomic(const char *path, const char *text, size_t len, bool durable,
                        bool no_replace, char *err, size_t errlen) {
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    /* host and pid: two writers on different nodes never share a temp file. */
    char *tmp = ts_asprintf("%s.tmp-%s-%ld", path, host, (long)getpid());
    int rc = TS_ERR;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ts_errf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    int werr = write_all(fd, text, len) == TS_OK ? 0 : errno;
    if (werr == 0 && durable && fsync(fd) != 0) werr = errno;
    if (close(fd) != 0 && werr == 0) werr = errno;
    if (werr != 0) {
        ts_errf(err, errlen, "%s: %s", tmp, strerror(werr));
        unlink(tmp);
        goto cleanup;
    }
    /* link() fails on an existing target where rename() would replace it. */
    int moved = no_replace ? link(tmp, path) : rename(tmp, path);
    if (moved != 0 && no_replace && errno != EEXIST) {
        /* A filesystem without hard links: check, then rename (the race left
         * is two writers of one attempt's marker within microseconds). */
        struct stat st;
        moved = lstat(path, &st) == 0 ? (errno = EEXIST, -1) : rename(tmp, path);
        no_replace = moved != 0;
    }
    if (moved != 0) {
        ts_errf(err, errlen, "%s %s: %s", no_replace ? "link" : "rename", path, strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    if (no_replace) unlink(tmp);
    if (durable) fsync_parent(path);
    rc = TS_OK;
cleanup:
    free(tmp);
    return rc;
}

static char *dump_line(json_t *doc) {
    size_t len = json_dumpb(doc, NULL, 0, JSON_COMPACT);
    char *text = ts_malloc(len + 2);
    json_dumpb(doc, text, len, JSON_COMPACT);
    text[len] = '\n';
    text[len + 1] = '\0';
    return text;
}

/* ---- spec ---- */

char *proto_spec_text(const exec_job *job, char *err, size_t errlen) {
    json_t *spec = json_pack(
        "{s:I, s:i, s:s, s:s, s:s?, s:s?, s:s?, s:o, s:i, s:f, s:i, s:s, s:s, s:o}",
        "workflow_id", (json_int_t)job->workflow_id, "job_index", (int)job->job_index, "job_id",
        job->job_id, "job_type", job->job_type, "image_path", job->image_path, "data_roots",
        job->data_roots, "user", job->user, "params",
        job->params ? json_incref(job->params) : json_object(), "cpus", job->cpus, "timeout_s",
        job->timeout_s, "attempt", job->attempt, "work_dir", job->work_dir, "result_dir",
        job->result_dir, "inputs", job->inputs ? json_incref(job->inputs) : json_array());
    if (spec == NULL) {
        ts_errf(err, errlen, "job %s: cannot encode the job spec (missing field or invalid UTF-8)",
                job->job_id ? job->job_id : "?");
        return NULL;
    }
    /* Only the exception is written: specs of batch jobs stay as they were. */
    if (job->exit_marker_volatile) json_object_set_new(spec, "exit_marker_sync", json_false());
    if (job->progress_pipe_only) json_object_set_new(spec, "progress_file", json_false());
    if (job->exit_on_pipe) json_object_set_new(spec, "exit_on_pipe", json_true());
    char *text = dump_line(spec);
    json_decref(spec);
    return text;
}

int proto_spec_dirs(const exec_job *job, char *err, size_t errlen) {
    if (ts_mkdir_p(job->work_dir, err, errlen) != TS_OK ||
        mkdir_parent(job->result_dir, err, errlen) != TS_OK)
        return TS_ERR;
    return TS_OK;
}

int proto_spec_save(const exec_job *job, const char *text, char *err, size_t errlen) {
    char *path = layout_attempt_path(job->work_dir, job->attempt, LAYOUT_SPEC);
    /* No fsync: if the machine dies before the runner starts, the attempt
     * dies with it and the next one writes a new spec. */
    int rc = write_atomic(path, text, strlen(text), false, false, err, errlen);
    free(path);
    return rc;
}

int proto_spec_write(const exec_job *job, char *err, size_t errlen) {
    char *text = proto_spec_text(job, err, errlen);
    int rc = text && proto_spec_dirs(job, err, errlen) == TS_OK
                 ? proto_spec_save(job, text, err, errlen)
                 : TS_ERR;
    free(text);
    return rc;
}

/* A string field; required ones must be non-empty. */
static int spec_string(json_t *o, const char *key, bool required, const char **out, char *err,
                       size_t errlen) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!required && (v == NULL || json_is_null(v))) return TS_OK;
    if (json_is_string(v) && json_string_length(v) > 0) {
        *out = json_string_value(v);
        return TS_OK;
    }
    ts_errf(err, errlen, "field \"%s\": must be a non-empty string%s", key,
            required ? "" : " or null");
    return TS_ERR;
}

static int spec_int(json_t *o, const char *key, json_int_t min, json_int_t max, json_int_t *out,
                    char *err, size_t errlen) {
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max) {
        *out = json_integer_value(v);
        return TS_OK;
    }
    ts_errf(err, errlen, "field \"%s\": must be an integer from %lld to %lld", key, (long long)min,
            (long long)max);
    return TS_ERR;
}

/* "inputs": an array of objects with job_id, job_type, result_dir and
 * optionally image_path. */
static int spec_inputs(json_t *arr, char *err, size_t errlen) {
    if (!json_is_array(arr)) {
        ts_errf(err, errlen, "field \"inputs\": must be an array");
        return TS_ERR;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        const char *s;
        if (!json_is_object(o)) {
            ts_errf(err, errlen, "field \"inputs\": element %zu is not an object", i);
            return TS_ERR;
        }
        if (spec_string(o, "job_id", true, &s, err, errlen) ||
            spec_string(o, "job_type", true, &s, err, errlen) ||
            spec_string(o, "image_path", false, &s, err, errlen) ||
            spec_string(o, "result_dir", true, &s, err, errlen))
            return TS_ERR;
    }
    return TS_OK;
}

/* The fields the runner needs to leave an exit marker come first, so that
 * a spec bad in a later field still gets its marker. */
static int spec_fields(proto_spec *s, char *err, size_t errlen) {
    json_t *r = s->root;
    json_int_t wf = 0, idx = 0, cpus = 0, attempt = 0;
    if (spec_string(r, "work_dir", true, &s->work_dir, err, errlen) ||
        spec_int(r, "attempt", 1, INT32_MAX, &attempt, err, errlen))
        return TS_ERR;
    s->attempt = (int)attempt;
    if (spec_int(r, "workflow_id", 0, INT64_MAX, &wf, err, errlen) ||
        spec_int(r, "job_index", 0, INT32_MAX, &idx, err, errlen) ||
        spec_int(r, "cpus", 1, 1 << 20, &cpus, err, errlen) ||
        spec_string(r, "job_id", true, &s->job_id, err, errlen) ||
        spec_string(r, "job_type", true, &s->job_type, err, errlen) ||
        spec_string(r, "image_path", false, &s->image_path, err, errlen) ||
        spec_string(r, "data_roots", false, &s->data_roots, err, errlen) ||
        spec_string(r, "user", false, &s->user, err, errlen) ||
        spec_string(r, "result_dir", true, &s->result_dir, err, errlen))
        return TS_ERR;
    s->workflow_id = wf;
    s->job_index = (int32_t)idx;
    s->cpus = (int)cpus;
    json_t *t = json_object_get(r, "timeout_s");
    if (t != NULL && !(json_is_number(t) && json_number_value(t) >= 0)) {
        ts_errf(err, errlen, "field \"timeout_s\": must be a number >= 0");
        return TS_ERR;
    }
    s->timeout_s = t ? json_number_value(t) : 0;
    s->params = json_object_get(r, "params");
    if (json_is_null(s->params)) s->params = NULL;
    if (s->params && !json_is_object(s->params)) {
        ts_errf(err, errlen, "field \"params\": must be an object");
        return TS_ERR;
    }
    json_t *inputs = json_object_get(r, "inputs");
    if (inputs == NULL) {
        json_object_set_new(r, "inputs", json_array());
        inputs = json_object_get(r, "inputs");
    }
    if (spec_inputs(inputs, err, errlen) != TS_OK) return TS_ERR;
    s->inputs = inputs;
    json_t *sync = json_object_get(r, "exit_marker_sync");
    if (sync != NULL && !json_is_boolean(sync)) {
        ts_errf(err, errlen, "field \"exit_marker_sync\": must be true or false");
        return TS_ERR;
    }
    s->exit_marker_sync = sync == NULL || json_is_true(sync);
    json_t *file = json_object_get(r, "progress_file");
    if (file != NULL && !json_is_boolean(file)) {
        ts_errf(err, errlen, "field \"progress_file\": must be true or false");
        return TS_ERR;
    }
    s->progress_file = file == NULL || json_is_true(file);
    json_t *pipe = json_object_get(r, "exit_on_pipe");
    if (pipe != NULL && !json_is_boolean(pipe)) {
        ts_errf(err, errlen, "field \"exit_on_pipe\": must be true or false");
        return TS_ERR;
    }
    s->exit_on_pipe = json_is_true(pipe);
    return TS_OK;
}

int proto_spec_load(const char *path, proto_spec *s, char *err, size_t errlen) {
    return proto_spec_parse(path, NULL, s, err, errlen);
}

int proto_spec_parse(const char *path, const char *text, proto_spec *s, char *err,
                     size_t errlen) {
    memset(s, 0, sizeof(*s));
    json_error_t jerr;
    s->root = text ? json_loads(text, 0, &jerr) : json_load_file(path, 0, &jerr);
    if (s->root == NULL || !json_is_object(s->root)) {
        /* The caller names the file; jansson's text says where in it. */
        ts_errf(err, errlen, "cannot read spec: %s", s->root ? "not a JSON object" : jerr.text);
        return TS_ERR;
    }
    return spec_fields(s, err, errlen);
}

void proto_spec_free(proto_spec *s) {
    if (s == NULL) return;
    json_decref(s->root);
    memset(s, 0, sizeof(*s));
}

/* ---- progress ---- */

size_t proto_progress_format(char *line, size_t n, double done, double total,
                             const char *message) {
    int head = snprintf(line, n, "progress %.15g %.15g ", done, total);
    if (head < 0 || (size_t)head >= n - 1) head = 0;
    size_t len = (size_t)head, room = n - 1 - len; /* one byte kept for the newline */
    char *msg = line + len;
    size_t m = 0;
    for (; message && message[m] && m + 1 < room; m++)
        msg[m] = (unsigned char)message[m] < 0x20 ? ' ' : message[m];
    if (message && message[m]) /* cut: message[m], not msg[m] (not written) */
        while (m > 0 && ((unsigned char)message[m] & 0xC0) == 0x80) m--;
    len += m;
    line[len++] = '\n';
    line[len] = '\0';
    return len;
}

bool proto_progress_parse(const char *line, proto_progress *out) {
    if (strncmp(line, "progress ", 9) != 0) return false;
    char *end;
    double done = strtod(line + 9, &end);
    if (end == line + 9 || *end != ' ') return false;
    const char *tp = end + 1;
    double total = strtod(tp, &end);
    if (end == tp || (*end != ' ' && *end != '\0')) return false;
    if (!isfinite(done) || !isfinite(total) || total <= 0) return false;
    double frac = done / total;
    out->fraction = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    proto_copy_utf8(out->message, *end == ' ' ? end + 1 : "", sizeof(out->message));
    return true;
}

/* whole: the line ended with its newline. An exit line counts only then:
 * one cut by its writer's end (no newline) is not one, or a success cut
 * inside its times would stand (protocol.h: all of the line or none). */
static void take_line(proto_lines *pl, proto_progress *latest, bool *changed, bool whole) {
    pl->line[pl->len] = '\0';
    if (!pl->overflow) {
        if (proto_progress_parse(pl->line, latest))
            *changed = true;
        else if (whole && !pl->exit_said && proto_exit_parse(pl->line, &pl->said))
            pl->exit_said = true;
    }
    pl->len = 0;
    pl->overflow = false;
}

void proto_lines_feed(proto_lines *pl, const char *buf, size_t len, proto_progress *latest,
                      bool *changed) {
    while (len > 0) {
        const char *nl = memchr(buf, '\n', len);
        size_t take = nl ? (size_t)(nl - buf) : len;
        if (pl->len + take >= sizeof(pl->line)) pl->overflow = true;
        if (!pl->overflow) {
            memcpy(pl->line + pl->len, buf, take);
            pl->len += take;
        }
        if (nl == NULL) return;
        take_line(pl, latest, changed, true);
        buf = nl + 1;
        len -= take + 1;
    }
}

void proto_lines_finish(proto_lines *pl, proto_progress *latest, bool *changed) {
    if (pl->len > 0 || pl->overflow) take_line(pl, latest, changed, false);
}

int proto_progress_poll(const char *path, off_t *offset, proto_lines *pl, proto_progress *latest,
                        bool *changed) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? TS_OK : TS_ERR;
    struct stat st;
    int rc = TS_OK;
    if (fstat(fd, &st) != 0) {
        rc = TS_ERR;
        goto cleanup;
    }
    if (st.st_size < *offset) *offset = 0; /* replaced: read it again */
    if (st.st_size - *offset > POLL_MAX_BYTES) {
        /* Only the newest line matters: skip to the last chunk, dropping the
         * partial line we land in. */
        *offset = st.st_size - POLL_MAX_BYTES;
        pl->len = 0;
        pl->overflow = true;
    }
    char buf[8192];
    while (*offset < st.st_size) {
        ssize_t n = pread(fd, buf, sizeof(buf), *offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        proto_lines_feed(pl, buf, (size_t)n, latest, changed);
        *offset += n;
    }
cleanup:
    close(fd);
    return rc;
}

/* ---- exit marker ---- */

/* Copies src into dst (size n) with control characters as spaces, cut on
 * a UTF-8 boundary; returns the length. One line, whatever the reason. */
static size_t copy_one_line(char *dst, const char *src, size_t n) {
    size_t m = 0;
    for (; src[m] && m + 1 < n; m++) dst[m] = (unsigned char)src[m] < 0x20 ? ' ' : src[m];
    if (src[m]) /* cut: drop a character src[m] continues (dst[m] is not written) */
        while (m > 0 && ((unsigned char)src[m] & 0xC0) == 0x80) m--;
    dst[m] = '\0';
    return m;
}

size_t proto_exit_format(char *line, size_t n, const proto_exit *e) {
    char outcome[sizeof(e->outcome)];
    copy_one_line(outcome, e->outcome[0] ? e->outcome : "failed", sizeof(outcome));
    for (char *c = outcome; *c; c++)
        if (*c == ' ') *c = '_'; /* one word */
    int head = snprintf(line, n, "exit %s %d %.6f %.6f ", outcome, e->exit_code, e->started_at,
                        e->finished_at > 0 ? e->finished_at : ts_now());
    /* Times too long for the line (never from a real clock): without them,
     * rather than a line that is no exit line, or the reason alone. */
    if (head < 0 || (size_t)head >= n - 1)
        head = snprintf(line, n, "exit %s %d 0 0 ", outcome, e->exit_code);
    size_t len = (size_t)head;
    len += copy_one_line(line + len, e->reason, n - 1 - len); /* room for the newline */
    line[len++] = '\n';
    line[len] = '\0';
    return len;
}

bool proto_exit_parse(const char *line, proto_exit *out) {
    if (strncmp(line, "exit ", 5) != 0) return false;
    const char *p = line + 5, *sp = strchr(p, ' ');
    if (sp == NULL || sp == p || (size_t)(sp - p) >= sizeof(out->outcome)) return false;
    proto_exit e;
    memset(&e, 0, sizeof(e));
    memcpy(e.outcome, p, (size_t)(sp - p));
    char *end;
    errno = 0;
    long code = strtol(sp + 1, &end, 10);
    if (end == sp + 1 || *end != ' ' || errno || code < INT_MIN || code > INT_MAX) return false;
    e.exit_code = (int)code;
    p = end + 1;
    e.started_at = strtod(p, &end);
    if (end == p || *end != ' ' || !isfinite(e.started_at)) return false;
    p = end + 1;
    e.finished_at = strtod(p, &end);
    if (end == p || (*end != ' ' && *end != '\0') || !isfinite(e.finished_at)) return false;
    proto_copy_utf8(e.reason, *end == ' ' ? end + 1 : "", sizeof(e.reason));
    *out = e;
    return true;
}

int proto_exit_write(const char *work_dir, int attempt, const proto_exit *e, bool durable,
                     char *err, size_t errlen) {
    char host[64] = "";
    if (e->host[0])
        ts_strlcpy(host, e->host, sizeof(host));
    else
        gethostname(host, sizeof(host) - 1);
    json_t *doc = json_pack("{s:s, s:i, s:s, s:f, s:s}", "outcome", e->outcome, "exit_code",
                            e->exit_code, "reason", e->reason, "finished_at",
                            e->finished_at > 0 ? e->finished_at : ts_now(), "host", host);
    if (doc && e->started_at > 0)
        json_object_set_new(doc, "started_at", json_real(e->started_at));
    char *path = layout_attempt_path(work_dir, attempt, LAYOUT_EXIT);
    int rc = TS_ERR;
    if (doc == NULL) {
        ts_errf(err, errlen, "%s: cannot encode the exit marker (invalid UTF-8?)", path);
    } else {
        char *text = dump_line(doc);
        rc = write_atomic(path, text, strlen(text), durable, true, err, errlen);
        free(text);
    }
    json_decref(doc);
    free(path);
    return rc;
}

int proto_exit_read(const char *work_dir, int attempt, proto_exit *out, char *err,
                    size_t errlen) {
    memset(out, 0, sizeof(*out));
    char *path = layout_attempt_path(work_dir, attempt, LAYOUT_EXIT);
    int rc = TS_ERR;
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) {
        if (access(path, F_OK) != 0 && errno == ENOENT)
            rc = PROTO_MISSING;
        else
            ts_errf(err, errlen, "exit marker %s: %s", path, jerr.text);
        goto cleanup;
    }
    const char *outcome = json_string_value(json_object_get(doc, "outcome"));
    json_t *code = json_object_get(doc, "exit_code");
    if (outcome == NULL || !json_is_integer(code)) {
        ts_errf(err, errlen, "exit marker %s: no \"outcome\" string or \"exit_code\" integer",
                path);
        goto cleanup;
    }
    ts_strlcpy(out->outcome, outcome, sizeof(out->outcome));
    out->exit_code = (int)json_integer_value(code);
    const char *reason = json_string_value(json_object_get(doc, "reason"));
    proto_copy_utf8(out->reason, reason ? reason : "", sizeof(out->reason));
    out->finished_at = json_number_value(json_object_get(doc, "finished_at"));
    out->started_at = json_number_value(json_object_get(doc, "started_at")); /* 0 if absent */
    const char *host = json_string_value(json_object_get(doc, "host"));
    proto_copy_utf8(out->host, host ? host : "", sizeof(out->host));
    rc = TS_OK;
cleanup:
    json_decref(doc);
    free(path);
    return rc;
}
