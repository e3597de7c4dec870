/*
 * rows.c - see rows.h.
 */
#include "store/rows.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/config.h"
#include "util/util.h"

json_t *rows_json_string(const char *v) {
    json_t *j = json_string(v);
    if (j != NULL) return j;
    char *copy = ts_strdup(v);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* Composed on read from the columns, so the seq in the JSON is always the
 * row's real seq. */
char *rows_event_json(const rows_event *ev) {
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer(ev->seq));
    char when[40];
    ts_iso8601(ev->ts, when, sizeof(when));
    json_object_set_new(o, "ts", json_string(when));
    json_object_set_new(o, "type", rows_json_string(ev->type));
    json_object_set_new(o, "workflow_id", json_integer(ev->workflow_id));
    if (ev->job_id) json_object_set_new(o, "job_id", rows_json_string(ev->job_id));
    if (ev->state) json_object_set_new(o, "state", rows_json_string(ev->state));
    if (ev->has_progress) json_object_set_new(o, "progress", json_real(ev->progress));
    if (ev->message) json_object_set_new(o, "message", rows_json_string(ev->message));
    if (ev->has_attempt) json_object_set_new(o, "attempt", json_integer(ev->attempt));
    if (ev->has_queue_position)
        json_object_set_new(o, "queue_position", json_integer(ev->queue_position));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* Limits for reloading a stored spec (see rows.h). */
static void generous_limits(spec_limits *lim) {
    spec_limits_default(lim);
    lim->max_jobs = 1000000;
    lim->max_string = 64u << 20;
    lim->max_depth = 1000;
    lim->max_name = 64u << 20;
    lim->max_cpus = 0;
}

int rows_load_spec(store_workflow *wf, const char *text, size_t len, char *err, size_t errlen) {
    json_error_t jerr;
    spec_error serr;
    spec_limits lim;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (root == NULL) {
        ts_errf(err, errlen, "the stored spec of workflow %lld is not JSON: %s",
                (long long)wf->id, jerr.text);
        return TS_ERR;
    }
    generous_limits(&lim);
    int rc = spec_from_json(root, &lim, NULL, NULL, &wf->spec, &serr);
    json_decref(root);
    if (rc != 0) {
        wf->spec = NULL;
        ts_errf(err, errlen, "the stored spec of workflow %lld does not load: %s",
                (long long)wf->id, serr.message);
        return TS_ERR;
    }
    return TS_OK;
}

/* ---- the parsed-spec cache --------------------------------------------------- */

static rows_spec_entry *cache_find(rows_spec_cache *c, const store_workflow *wf, size_t len) {
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].id == wf->id && c->e[i].len == len && c->e[i].submitted_at == wf->submitted_at)
            return &c->e[i];
    return NULL;
}

/* Drops the least recently used entry. */
static void cache_evict(rows_spec_cache *c) {
    size_t lru = 0;
    for (size_t i = 1; i < c->n; i++)
        if (c->e[i].used < c->e[lru].used) lru = i;
    c->jobs -= c->e[lru].spec->n_jobs;
    spec_free(c->e[lru].spec);
    c->e[lru] = c->e[--c->n];
}

/* The parse happens outside the mutex: another thread's lookups of other
 * specs do not wait for it. */
int rows_load_spec_cached(rows_spec_cache *c, store_workflow *wf, const char *text, size_t len,
                          char *err, size_t errlen) {
    pthread_mutex_lock(&c->mu);
    rows_spec_entry *hit = cache_find(c, wf, len);
    if (hit) {
        hit->used = ++c->clock;
        wf->spec = spec_retain(hit->spec);
    }
    pthread_mutex_unlock(&c->mu);
    if (hit) return TS_OK;
    if (rows_load_spec(wf, text, len, err, errlen) != TS_OK) return TS_ERR;
    rows_spec_cache_put(c, wf->id, wf->submitted_at, len, wf->spec);
    return TS_OK;
}

void rows_spec_cache_put(rows_spec_cache *c, int64_t id, double submitted_at, size_t len,
                         const spec_workflow *spec) {
    size_t n_jobs = spec->n_jobs;
    if (n_jobs > ROWS_SPEC_CACHE_JOBS) return; /* bigger than the whole cache */
    store_workflow key = {.id = id, .submitted_at = submitted_at};
    pthread_mutex_lock(&c->mu);
    if (!cache_find(c, &key, len)) {
        while (c->n > 0 &&
               (c->n == ROWS_SPEC_CACHE_SLOTS || c->jobs + n_jobs > ROWS_SPEC_CACHE_JOBS))
            cache_evict(c);
        /* The reference is the cache's: counting it changes no field of
         * the workflow the caller sees. */
        c->e[c->n++] = (rows_spec_entry){id, submitted_at, len,
                                         spec_retain((spec_workflow *)spec), ++c->clock};
        c->jobs += n_jobs;
    }
    pthread_mutex_unlock(&c->mu);
}

rows_spec_cache *rows_spec_cache_new(void) {
    rows_spec_cache *c = ts_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->refs, 1);
    return c;
}

rows_spec_cache *rows_spec_cache_retain(rows_spec_cache *c) {
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void rows_spec_cache_release(rows_spec_cache *c) {
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1) return;
    for (size_t i = 0; i < c->n; i++) spec_free(c->e[i].spec);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- changes ---------------------------------------------------------------- */

/* Changes that concern one job (job_index, job states). */
bool rows_is_job_change(change_kind k) {
    return k == CHANGE_JOB || k == CHANGE_JOB_PROGRESS;
}

/* Rejects a malformed change before any SQL runs: the engine promises legal
 * transitions (state.h), and a broken promise must not reach the file. */
int rows_change_check(const core_change *ch, char *err, size_t errlen) {
    if (rows_is_job_change(ch->kind)) {
        if (ch->job_index < 0 || ch->from < 0 || ch->from >= JOB_STATE_COUNT || ch->to < 0 ||
            ch->to >= JOB_STATE_COUNT)
            goto bad;
        if (ch->kind == CHANGE_JOB && !job_transition_legal(ch->from, ch->to)) {
            ts_errf(err, errlen, "illegal job transition %s -> %s for job %s of workflow %lld",
                    job_state_name(ch->from), job_state_name(ch->to),
                    ch->job_id ? ch->job_id : "?", (long long)ch->workflow_id);
            return TS_ERR;
        }
        return TS_OK;
    }
    if (ch->kind != CHANGE_WORKFLOW && ch->kind != CHANGE_QUEUE_POSITION) goto bad;
    if (ch->from < 0 || ch->from >= WF_STATE_COUNT || ch->to < 0 || ch->to >= WF_STATE_COUNT)
        goto bad;
    if (ch->kind == CHANGE_WORKFLOW && !wf_transition_legal(ch->from, ch->to)) {
        ts_errf(err, errlen, "illegal workflow transition %s -> %s for workflow %lld",
                wf_state_name(ch->from), wf_state_name(ch->to), (long long)ch->workflow_id);
        return TS_ERR;
    }
    return TS_OK;

bad:
    ts_errf(err, errlen, "malformed change (kind %d, workflow %lld, job %d, %d -> %d)",
            (int)ch->kind, (long long)ch->workflow_id, (int)ch->job_index, ch->from, ch->to);
    return TS_ERR;
}

/* How an attempt ended when the engine did not say: from the new state. */
const char *rows_default_outcome(job_state to) {
    switch (to) {
    case JOB_SUCCEEDED: return "succeeded";
    case JOB_FAILED: return "failed";
    case JOB_CANCELLED: return "cancelled";
    default: return "retrying"; /* back to ready: another attempt follows */
    }
}

/* The event type when the engine left it NULL (it normally sets it). */
const char *rows_default_event_type(const core_change *ch) {
    switch (ch->kind) {
    case CHANGE_JOB:
        if (ch->to == JOB_READY) return ch->from == JOB_RUNNING ? "job.retrying" : "job.ready";
        if (ch->to == JOB_RUNNING) return "job.started";
        if (ch->to == JOB_PENDING) return "job.retrying";
        return "job.finished";
    case CHANGE_WORKFLOW: return ch->to == WF_RUNNING ? "workflow.admitted" : "workflow.finished";
    case CHANGE_JOB_PROGRESS: return "job.progress";
    default: return "queue.position";
    }
}


/* ---- arguments --------------------------------------------------------------- */

int rows_submit_check(const char *user, const spec_workflow *spec, bool in_txn, char *err,
                      size_t errlen) {
    if (user == NULL || user[0] == '\0' || strlen(user) > 128) {
        ts_errf(err, errlen, "store_submit: the user id must be 1-128 characters");
        return TS_ERR;
    }
    if (spec == NULL || spec->n_jobs == 0) {
        ts_errf(err, errlen, "store_submit: a workflow without jobs cannot be stored");
        return TS_ERR;
    }
    if (in_txn) {
        ts_errf(err, errlen, "store_submit runs in a transaction of its own, not inside store_begin");
        return TS_ERR;
    }
    return TS_OK;
}

bool rows_token_hash_valid(const char *s) {
    return s != NULL && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* A row with a bad name or a hash of the wrong shape would be a user
 * nobody can ever authenticate as. */
int rows_user_put_check(const char *name, const char *token_hash, char *err, size_t errlen) {
    if (name == NULL || !config_user_valid(name)) {
        ts_errf(err, errlen, "invalid user name: a user id is 1-128 characters of "
                             "A-Z a-z 0-9 . _ @ -");
        return TS_ERR;
    }
    if (!rows_token_hash_valid(token_hash)) {
        ts_errf(err, errlen, "store_user_put: token_hash must be a SHA-256 in lower-case hex "
                             "(auth_token_hash), never the token itself");
        return TS_ERR;
    }
    return TS_OK;
}

int rows_command_check(const char *kind, int32_t job_index, char *err, size_t errlen) {
    if (kind == NULL || (strcmp(kind, "cancel") != 0 && strcmp(kind, "retry") != 0)) {
        ts_errf(err, errlen, "unknown command \"%s\" (expected cancel or retry)",
                kind ? kind : "(null)");
        return TS_ERR;
    }
    if (job_index < -1) {
        ts_errf(err, errlen, "invalid job index %d", (int)job_index);
        return TS_ERR;
    }
    return TS_OK;
}

/* Printable ASCII without spaces, within [min, max] bytes: a batch job's
 * name and id, which tools print and parse as single words. */
static bool word_ok(const char *s, size_t min, size_t max) {
    size_t n = s ? strlen(s) : 0;
    if (!s || n < min || n > max) return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~') return false;
    return true;
}

int rows_check_external(const char *token, const char *external_id, char *err, size_t errlen) {
    if (!word_ok(token, 1, 95)) {
        ts_errf(err, errlen, "token: must be 1-95 printable characters without spaces");
        return TS_ERR;
    }
    if (!word_ok(external_id, 0, 63)) {
        ts_errf(err, errlen, "external_id: must be 0-63 printable characters without spaces");
        return TS_ERR;
    }
    return TS_OK;
}
