/*
 * api_job_types.c - GET /api/job-types: every registered job type (built-in
 * and admin-defined tools) with its parameters, defaults and ranges. The
 * web UI builds its analysis forms from this, so a new job type or tool
 * appears there without a change to the UI.
 */
#include "http/api.h"
#include "jobs/jobs.h"

http_reply api_job_types(http_request *req) {
    (void)req;
    json_t *arr = json_array();
    for (size_t i = 0; i < jobs_count(); i++) {
        const job_type *t = jobs_at(i);
        json_array_append_new(arr, json_pack("{ss ss sb so}", "name", t->name, "description",
                                             t->description ? t->description : "", "needs_image",
                                             t->needs_image, "params",
                                             params_describe(t->params, t->n_params)));
    }
    return http_json(200, json_pack("{so}", "job_types", arr));
}
