/*
 * images.c - where a job's image_path points (see jobs.h).
 *
 * Users name slides as absolute paths or relative to a data root
 * ("demo.tiff" for <state>/data/demo.tiff), the way a lab shares a slide
 * folder. A relative path is resolved once, at submission, and the
 * workflow is stored with the absolute, resolved path, so the scheduler
 * and the runner never depend on a working directory; the runner checks
 * it against the data roots again when the job starts.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/spec.h"
#include "image/slide.h"
#include "jobs/jobs.h"
#include "util/util.h"

void jobs_resolve_image(const char *path, const char *data_roots, char *out, size_t outlen) {
    if (path[0] == '/' || data_roots == NULL || data_roots[0] == '\0') {
        ts_strlcpy(out, path, outlen);
        return;
    }
    char *roots = ts_strdup(data_roots);
    char *save = NULL;
    out[0] = '\0';
    for (char *r = strtok_r(roots, ":", &save); r; r = strtok_r(NULL, ":", &save)) {
        /* A relative root (the default ./var/data) is taken from the
         * working directory: what is stored must not depend on it. */
        char cwd[4096] = "";
        if (r[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL) cwd[0] = '\0';
        char *candidate = cwd[0] ? ts_asprintf("%s/%s/%s", cwd, r, path) : ts_asprintf("%s/%s", r, path);
        bool exists = access(candidate, F_OK) == 0;
        /* The first root is where a missing file "would be": the error then
         * names a real place. */
        if (exists || out[0] == '\0') ts_strlcpy(out, candidate, outlen);
        free(candidate);
        if (exists) break;
    }
    free(roots);
}

/* The resolved path (symlinks followed) is what is stored when it lies in
 * the roots: a link swapped after submission then cannot redirect the job
 * (issue 12, defect 3), and the runner checks the stored path once more
 * when the job starts. A path that does not resolve inside the roots (a
 * job type that reads no image) is kept as given, made absolute. */
void jobs_resolve_spec_images(spec_workflow *wf, const char *data_roots) {
    char absolute[4096], real[PATH_MAX], err[TS_ERRLEN];
    for (size_t i = 0; i < wf->n_jobs; i++) {
        spec_job *j = &wf->jobs[i];
        if (j->image_path == NULL) continue;
        jobs_resolve_image(j->image_path, data_roots, absolute, sizeof(absolute));
        bool inside = slide_resolve_path(absolute, data_roots, real, err, sizeof(err)) == TS_OK;
        free(j->image_path);
        j->image_path = ts_strdup(inside ? real : absolute);
    }
}

/* See jobs.h: each root made absolute (resolved when it exists), so that
 * a runner started in another directory, or on another machine sharing the
 * filesystem, checks against the same places. */
char *jobs_absolute_roots(const char *data_roots) {
    char *roots = ts_strdup(data_roots ? data_roots : ""), *save = NULL;
    char *out = ts_strdup(""), real[PATH_MAX], cwd[4096];
    for (char *r = strtok_r(roots, ":", &save); r; r = strtok_r(NULL, ":", &save)) {
        char *one;
        if (realpath(r, real) != NULL)
            one = ts_strdup(real);
        else if (r[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
            one = ts_asprintf("%s/%s", cwd, r);
        else
            one = ts_strdup(r);
        char *joined = ts_asprintf("%s%s%s", out, out[0] ? ":" : "", one);
        free(one);
        free(out);
        out = joined;
    }
    free(roots);
    return out;
}

/* The image of a job type that reads one: a slide inside the data roots.
 * The last path found good is remembered in the context, since a workflow
 * usually runs many jobs on a few slides and opening a slide costs
 * milliseconds. */
static int check_image(jobs_check_ctx *jc, const char *image_path, char *err, size_t errlen) {
    if (strcmp(jc->last_ok_path, image_path) == 0) return TS_OK;
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
 * type's own cross-field checks (jobs_check_type), then the image. Here
 * and not in registry.c: the image check opens the slide, and the runner,
 * which checks only the type (the image's location was checked before),
 * must not need the image libraries (tessera-runner). */
int jobs_check(void *ctx, const char *job_id, const char *type_name, json_t *params,
               const char *image_path, char *err, size_t errlen) {
    if (jobs_check_type(job_id, type_name, params, image_path, err, errlen) != TS_OK)
        return TS_ERR;
    const job_type *t = jobs_find(type_name);
    if (ctx == NULL || !t->needs_image) return TS_OK;
    return check_image(ctx, image_path, err, errlen);
}
