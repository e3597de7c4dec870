/*
 * job_image.c - helpers shared by the image job types (see job_image.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/job_image.h"
#include "util/util.h"

int jobimg_open(const job_ctx *ctx, slide **out, char *err, size_t errlen) {
    char why[TS_ERRLEN];
    *out = NULL;
    if (ctx->image_path == NULL) {
        ts_errf(err, errlen, "image_path: required by %s", ctx->type ? ctx->type->name : "this job");
        return TS_ERR;
    }
    /* The submission's check again, on the file as it is now: a link
     * swapped since then must not lead outside the data roots. */
    if (slide_open_checked(ctx->image_path, ctx->data_roots, out, why, sizeof(why)) != TS_OK) {
        ts_errf(err, errlen, "image_path %s: %s", ctx->image_path, why);
        return TS_ERR;
    }
    if (slide_get_info(*out)->mpp_x <= 0) {
        ts_errf(err, errlen,
                "image_path %s: the slide does not say its resolution (no openslide.mpp-x and no "
                "TIFF resolution), so parameters in microns cannot be applied",
                ctx->image_path);
        slide_close(*out);
        *out = NULL;
        return TS_ERR;
    }
    return TS_OK;
}

char *jobimg_path(const char *dir, const char *name) {
    return ts_asprintf("%s/%s", dir, name);
}

int jobimg_write_json(const char *dir, const char *name, json_t *doc, char *err, size_t errlen) {
    char *path = jobimg_path(dir, name);
    int rc = TS_ERR;
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    int bad = json_dumpf(doc, fp, JSON_INDENT(2) | JSON_SORT_KEYS) != 0;
    bad |= fputc('\n', fp) == EOF;
    bad |= fflush(fp) != 0 || fsync(fileno(fp)) != 0;
    bad |= fclose(fp) != 0;
    if (bad) {
        ts_errf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        goto cleanup;
    }
    rc = TS_OK;
cleanup:
    free(path);
    return rc;
}

const job_input *jobimg_upstream(const job_ctx *ctx, const char *type) {
    for (size_t i = 0; i < ctx->n_inputs; i++) {
        const job_input *in = &ctx->inputs[i];
        if (strcmp(in->job_type, type) == 0 && in->image_path && ctx->image_path &&
            strcmp(in->image_path, ctx->image_path) == 0)
            return in;
    }
    return NULL;
}
