/*
 * registry.c - the table of job types (see jobs.h).
 *
 * Adding a job type: define a `const job_type job_type_<name>` in its own
 * file and list it below. Nothing else in tessera changes.
 */
#include <stdio.h>
#include <string.h>

#include "jobs/jobs.h"
#include "util/util.h"

/* Defined in job_basic.c. Declared here rather than in a header because
 * the registry is their only user. */
extern const job_type job_type_noop;
extern const job_type job_type_sleep;

static const job_type *const registry[] = {
    &job_type_noop,
    &job_type_sleep,
};
#define N_TYPES (sizeof(registry) / sizeof(registry[0]))

/* Linear search: the table has a handful of entries and is read per job
 * submission, far from any hot path. */
const job_type *jobs_find(const char *name) {
    for (size_t i = 0; name && i < N_TYPES; i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}

size_t jobs_count(void) {
    return N_TYPES;
}

/* NULL past the end, so callers can iterate without knowing the count. */
const job_type *jobs_at(size_t i) {
    return i < N_TYPES ? registry[i] : NULL;
}

/* Writes "unknown job type \"x\" (known: noop, sleep)": listing the known
 * types turns a typo into a one-look fix. */
static void unknown_type_error(const char *name, char *err, size_t errlen) {
    char list[512] = "";
    for (size_t i = 0; i < N_TYPES; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", registry[i]->name);
    }
    ts_errf(err, errlen, "unknown job type \"%s\" (known: %s)", name ? name : "", list);
}

/* The spec_check_job_fn used at submission: type, then schema, then the
 * type's own cross-field checks. ctx is unused (the table is static).
 * (The parameter is not called job_type here: that would shadow the type.) */
int jobs_check(void *ctx, const char *type_name, json_t *params, const char *image_path, char *err,
               size_t errlen) {
    (void)ctx;
    const job_type *t = jobs_find(type_name);
    if (t == NULL) {
        unknown_type_error(type_name, err, errlen);
        return TS_ERR;
    }
    if (params_validate(t->params, t->n_params, params, err, errlen) != TS_OK) return TS_ERR;
    if (t->validate && t->validate(params, image_path, err, errlen) != TS_OK) return TS_ERR;
    return TS_OK;
}
