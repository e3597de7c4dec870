/*
 * images.c - where a job's image_path points (see jobs.h).
 *
 * Users name slides as absolute paths or relative to a data root
 * ("demo.tiff" for <state>/data/demo.tiff), the way a lab shares a slide
 * folder. A relative path is resolved once, at submission, and the
 * workflow is stored with the absolute path, so the scheduler and the
 * runner never depend on a working directory or on the roots configured
 * later.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/spec.h"
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

void jobs_resolve_spec_images(spec_workflow *wf, const char *data_roots) {
    char resolved[4096];
    for (size_t i = 0; i < wf->n_jobs; i++) {
        spec_job *j = &wf->jobs[i];
        if (j->image_path == NULL || j->image_path[0] == '/') continue;
        jobs_resolve_image(j->image_path, data_roots, resolved, sizeof(resolved));
        free(j->image_path);
        j->image_path = ts_strdup(resolved);
    }
}
