/*
 * registry.c - finding job types (see jobs.h): the built-in ones of
 * builtin.c, then the admin-defined tools of tools.c; and the check of a
 * job against its type.
 */
#include <stdio.h>
#include <string.h>

#include "jobs/jobs.h"
#include "jobs/tools.h"
#include "util/util.h"

/* Linear search: the table has a handful of entries and is read per job
 * submission, far from any hot path. Admin-defined tools (tools.c) come
 * after the built-in types. */
const job_type *jobs_find(const char *name) {
    for (size_t i = 0; name && i < jobs_n_builtin; i++)
        if (strcmp(jobs_builtin[i]->name, name) == 0) return jobs_builtin[i];
    return tools_find(name); /* admin-defined tools */
}

size_t jobs_count(void) {
    return jobs_n_builtin + tools_count(); /* + admin-defined tools */
}

/* NULL past the end, so callers can iterate without knowing the count.
 * The built-in types come first, then admin-defined tools. */
const job_type *jobs_at(size_t i) {
    return i < jobs_n_builtin ? jobs_builtin[i] : tools_at(i - jobs_n_builtin);
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

/* See jobs.h: everything of jobs_check but where the image is. */
int jobs_check_type(const char *job_id, const char *type_name, json_t *params,
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
    if (t->needs_image && image_path == NULL) {
        ts_errf(err, errlen, "image_path: required by %s", t->name);
        return TS_ERR;
    }
    return TS_OK;
}
