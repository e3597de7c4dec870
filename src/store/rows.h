/*
 * rows.h - what both store backends build from database rows the same way
 * (internal to src/store/): an event's JSON text and a workflow's stored
 * spec. Keeping them here means an event or a workflow reads alike whichever
 * backend stored it.
 */
#ifndef TESSERA_STORE_ROWS_H
#define TESSERA_STORE_ROWS_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* One event row's columns; NULL / has_* false = the column is NULL. */
typedef struct rows_event {
    int64_t seq;
    double ts;
    const char *type;
    int64_t workflow_id;
    const char *job_id, *state, *message;
    bool has_progress, has_attempt, has_queue_position;
    double progress;
    int64_t attempt, queue_position;
} rows_event;

/* The event as compact JSON, keys in the documented order, absent fields
 * left out (not null). malloc'd; NULL only when out of memory. */
char *rows_event_json(const rows_event *ev);

/* A JSON string for v; bytes that are not valid UTF-8 (a message quoting a
 * process's output) become '?' rather than the field being lost. */
json_t *rows_json_string(const char *v);

/* Parses the stored spec text of wf into wf->spec with generous limits (it
 * was validated under the service's limits when submitted, and must reload
 * even if those were lowered since). */
int rows_load_spec(store_workflow *wf, const char *text, size_t len, char *err, size_t errlen);

/* Parsed stored specs kept by a store handle, so that reading a workflow
 * again neither parses its spec nor rebuilds its DAG (issue 16: GET
 * /api/workflows/{id} did both on every request). A stored spec never
 * changes, so an entry is valid as long as its row is the same row: the
 * key is (workflow id, submitted_at, text length), which a database
 * deleted and created again cannot repeat in practice. Bounded by
 * ROWS_SPEC_CACHE_JOBS jobs in all (least recently used out first). Each
 * handle has one; the handles of one process may share one
 * (store_share_spec_cache: a worker's request threads parse a spec once
 * between them), so it is guarded by a mutex, held only to look up or
 * insert, never while parsing; two threads that miss at once both parse,
 * and the second insert is dropped. The specs it hands out are shared
 * (spec_retain) and freed by whoever frees the last reference. */
#define ROWS_SPEC_CACHE_SLOTS 64
#define ROWS_SPEC_CACHE_JOBS 200000

typedef struct rows_spec_entry {
    int64_t id;
    double submitted_at;
    size_t len;
    spec_workflow *spec;
    uint64_t used; /* the cache's clock at the last hit */
} rows_spec_entry;

typedef struct rows_spec_cache {
    pthread_mutex_t mu;
    _Atomic int refs; /* the handles using it */
    rows_spec_entry e[ROWS_SPEC_CACHE_SLOTS];
    size_t n, jobs;
    uint64_t clock;
} rows_spec_cache;

/* rows_load_spec through the cache: wf->id and wf->submitted_at must be
 * set. wf->spec is then shared with the cache (store_workflow_free frees
 * only its own reference). */
int rows_load_spec_cached(rows_spec_cache *c, store_workflow *wf, const char *text, size_t len,
                          char *err, size_t errlen);
/* A new, empty cache with one reference; retain and release count the
 * handles that use it (the last release frees it and its specs). */
rows_spec_cache *rows_spec_cache_new(void);
rows_spec_cache *rows_spec_cache_retain(rows_spec_cache *c);
void rows_spec_cache_release(rows_spec_cache *c);
/* Keeps spec (a reference to it) as the parsed form of the stored text of
 * len bytes of workflow id: what a submit just stored, so that the read
 * that answers the POST parses nothing. */
void rows_spec_cache_put(rows_spec_cache *c, int64_t id, double submitted_at, size_t len,
                         const spec_workflow *spec);

/* ---- arguments both backends check before anything is written ---- */

/* store_submit's: a user id of 1-128 characters and a spec with jobs;
 * in_txn: the caller's transaction is open (submit runs in its own). */
int rows_submit_check(const char *user, const spec_workflow *spec, bool in_txn, char *err,
                      size_t errlen);

/* True if s is 64 lower-case hex digits: a SHA-256 as auth_token_hash
 * writes it (one spelling, so that a lookup matches what was stored). */
bool rows_token_hash_valid(const char *s);

/* store_user_put's: a valid user name and a token hash (never a token). */
int rows_user_put_check(const char *name, const char *token_hash, char *err, size_t errlen);

/* store_command_add's: kind "cancel" or "retry", job_index -1 or more. */
int rows_command_check(const char *kind, int32_t job_index, char *err, size_t errlen);

/* store_attempt_external's: a token of 1-95 printable ASCII characters
 * without spaces, an external id of 0-63 of them. */
int rows_check_external(const char *token, const char *external_id, char *err, size_t errlen);

/* True for changes that concern one job (job_index, job states). */
bool rows_is_job_change(change_kind k);

/* Rejects a malformed change before any SQL runs: the engine promises legal
 * transitions (state.h), and a broken promise must not reach the database. */
int rows_change_check(const core_change *ch, char *err, size_t errlen);

/* How an attempt ended when the engine did not say: from the new state. */
const char *rows_default_outcome(job_state to);

/* The event type of a change when the engine left it NULL. */
const char *rows_default_event_type(const core_change *ch);

#endif
