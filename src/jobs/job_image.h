/*
 * job_image.h - what the image job types (tissue_mask, cell_segmentation)
 * share: opening the job's slide with a known resolution, writing JSON
 * outputs, finding an upstream job's results.
 */
#ifndef TESSERA_JOBS_JOB_IMAGE_H
#define TESSERA_JOBS_JOB_IMAGE_H

#include <jansson.h>

#include "image/slide.h"
#include "jobs/jobs.h"

/* Opens ctx->image_path with the submission's check (slide_open_checked
 * against ctx->data_roots). A slide without a known resolution is an error:
 * every parameter is in microns and would otherwise mean nothing. */
int jobimg_open(const job_ctx *ctx, slide **out, char *err, size_t errlen);

/* Writes doc (borrowed) as indented JSON to dir/name, flushed and fsynced. */
int jobimg_write_json(const char *dir, const char *name, json_t *doc, char *err, size_t errlen);

/* The nearest upstream job of type `type` on the same image, or NULL. */
const job_input *jobimg_upstream(const job_ctx *ctx, const char *type);

/* dir/name, freshly allocated. */
char *jobimg_path(const char *dir, const char *name);

#endif
