/*
 * registry.c - the table of job types (see jobs.h).
 *
 * Adding a job type: define a `const job_type job_type_<name>` in its own
 * file and list it below. Nothing else in tessera changes.
 */
#include <stdio.h>
#include <string.h>

#include "image/slide.h"
#include "jobs/jobs.h"
#include "jobs/tools.h"
#include "util/util.h"

/* Defined in job_basic.c, job_tissue.c and job_cells.c. Declared here
 * rather than in a header because the registry is their only user. */
extern const job_type job_type_noop;
extern const job_type job_type_sleep;
extern const job_type job_type_tissue_mask;
extern const job_type job_type_cell_segmentation;

static const job_type *const registry[] = {
    &job_type_noop,
    &job_type_sleep,
    &job_type_tissue_mask,
    &job_type_cell_segmentation,
};
#define N_TYPES (sizeof(registry) / sizeof(registry[0]))

/* Linear search: the table has a handful of entries and is read per job
 * submission, far from any hot path. Admin-defined tools (tools.c) come
 * after the built-in types. */
const job_type *jobs_find(const char *name) {
    for (size_t i = 0; name && i < N_TYPES; i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return tools_find(name); /* admin-defined tools */
}

size_t jobs_count(void) {
    return N_TYPES + tools_count(); /* + admin-defined tools */
}

/* NULL past the end, so callers can iterate without knowing the count. */
const job_type *jobs_at(size_t i) {
    return i < N_TYPES ? registry[i] : tools_at(i - N_TYPES); /* then admin-defined tools */
}

/* Writes "unknown job type \"x\" (known: noop, sleep)": listing the known
 * types turns a typo into a one-look fix. */
static void unknown_type_error(const char *name, char *err, size_t errlen) {
    char list[512] = "";
    for (size_t i = 0; i < jobs_count(); i++) { /* built-in types and admin-defined tools */
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", jobs_at(i)->name);
    }
    ts_errf(err, errlen, "unknown job type \"%s\" (known: %s)", name ? name : "", list);
}

/* The image of a job type that reads one: present, and (with a context)
 * a slide inside the data roots. The last path found good is remembered in
 * the context, since a workflow usually runs many jobs on a few slides and
 * opening a slide costs milliseconds. */
static int check_image(jobs_check_ctx *jc, const job_type *t, const char *image_path, char *err,
                       size_t errlen) {
    if (image_path == NULL) {
        ts_errf(err, errlen, "image_path: required by %s", t->name);
        return TS_ERR;
    }
    if (jc == NULL || strcmp(jc->last_ok_path, image_path) == 0) return TS_OK;
    char why[TS_ERRLEN], resolved[4096];
    jobs_resolve_image(image_path, jc->data_roots, resolved, sizeof(resolved));
    if (slide_check_path(resolved, jc->data_roots, why, sizeof(why)) != TS_OK) {
        ts_errf(err, errlen, "image_path: %s: %s", image_path, why);
        return TS_ERR;
    }
    ts_strlcpy(jc->last_ok_path, image_path, sizeof(jc->last_ok_path));
    return TS_OK;
}

/* The spec_check_job_fn used at submission: type, then schema, then the
 * type's own cross-field checks, then the image. ctx is a jobs_check_ctx,
 * or NULL where the image's location was checked before (the runner).
 * (The parameter is not called job_type here: that would shadow the type.) */
int jobs_check(void *ctx, const char *job_id, const char *type_name, json_t *params,
               const char *image_path, char *err, size_t errlen) {
    const job_type *t = jobs_find(type_name);
    if (t == NULL) {
        unknown_type_error(type_name, err, errlen);
        return TS_ERR;
    }
    if (params_validate(t->params, t->n_params, params, err, errlen) != TS_OK) return TS_ERR;
    if (t->validate && t->validate(params, image_path, err, errlen) != TS_OK) return TS_ERR;
    /* Admin-defined tools: required params, string rules, the image. */
    if (t->run == tools_run && tools_validate(t, job_id, params, image_path, err, errlen) != TS_OK)
        return TS_ERR;
    if (t->needs_image && check_image(ctx, t, image_path, err, errlen) != TS_OK) return TS_ERR;
    return TS_OK;
}
