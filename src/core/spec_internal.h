/*
 * spec_internal.h - what spec.c and spec_dag.c share; not for other modules.
 *
 * spec.c validates the document and each job's own fields; spec_dag.c
 * resolves depends_on to jobs, adds the branch order, builds the CSR graph
 * and rejects cycles. Both report failures through spec_error_set() so
 * every message has the same shape:
 *     jobs[3] (job "job-4"): depends_on[0]: unknown job "job-9"
 */
#ifndef TESSERA_CORE_SPEC_INTERNAL_H
#define TESSERA_CORE_SPEC_INTERNAL_H

#include "core/spec.h"

#include <stddef.h>
#include <stdint.h>

/* A parsed workflow as allocated by spec_from_json(). The public struct comes
 * first so a spec_workflow * is also a spec_workflow_impl *; the index of job
 * ids lets spec_find_job() answer in O(1) without widening the public struct.
 * Every spec_workflow handed out by this module is one of these. */
typedef struct spec_workflow_impl {
    spec_workflow wf;
    uint32_t *id_slots; /* open addressing: job index + 1, 0 = empty */
    size_t id_cap;      /* power of two, at least twice n_jobs */
    _Atomic int extra_refs; /* spec_retain()s not yet matched by a spec_free() */
} spec_workflow_impl;

/* Fills err (which may be NULL). job is the index of the job at fault or -1
 * for the document itself; job_id its id when it is valid (NULL or "" when
 * not known yet); field the path inside that job ("depends_on[0]") or inside
 * the document ("name"), possibly "". The message becomes
 * "jobs[<job>] (job \"<job_id>\"): <field>: <text>", dropping the parts that
 * are unknown. */
void spec_error_set(spec_error *err, int http_status, long job, const char *job_id,
                    const char *field, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Copies s into buf as a message may repeat it: at most SPEC_QUOTE_MAX
 * bytes (then "..."), with quotes, backslashes and control characters
 * escaped. A buffer of SPEC_QUOTE_BUF bytes always suffices. Returns buf. */
#define SPEC_QUOTE_MAX 64
#define SPEC_QUOTE_BUF (SPEC_QUOTE_MAX * 6 + 8)
const char *spec_quote(const char *s, char *buf, size_t cap);

/* Second half of parsing, once every job's own fields are valid and its id
 * is in the index (so spec_find_job works): resolves each depends_on entry
 * (raw_deps[i] is job i's array, borrowed, its elements known to be strings,
 * or NULL) to a job, rejecting unknown ids and self-dependencies and folding
 * duplicates; stores the names in jobs[i].depends_on; builds wf->dag with the
 * branch edges added; rejects a cycle, naming it. Returns TS_OK, or TS_ERR
 * with err filled (the caller frees wf, whatever was set). */
int spec_dag_build(spec_workflow *wf, json_t *const *raw_deps, spec_error *err);

/* Frees what spec_dag_build() allocated; leaves dag zeroed. */
void spec_dag_free(spec_dag *dag);

#endif
