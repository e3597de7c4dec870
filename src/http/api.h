/*
 * api.h - the handlers of DESIGN §4 and the helpers they share. Handlers
 * live in api_workflows.c (workflows), api_jobs.c (one job, logs, results),
 * api_misc.c (queue, session, events, operations, static files); the route
 * table in api_routes.c ties paths to them.
 */
#ifndef TESSERA_HTTP_API_H
#define TESSERA_HTTP_API_H

#include "http/http.h"
#include "view/view.h"

/* Seconds a client is told to wait (Retry-After) while the store cannot be
 * used: long enough not to hammer a full disk, short enough to notice soon
 * that it is back. */
#define API_RETRY_AFTER_S 5

/* Shared helpers. */
bool api_is_json(http_request *req);
http_reply api_wrong_type(http_request *req);
http_reply api_not_found(const char *what, const char *id);
/* The reply to a failed store call: 503 store_unavailable with Retry-After
 * for STORE_UNAVAILABLE (a full disk, a missing or corrupt database...),
 * 500 store_error for anything else. Never 404: a store that cannot be
 * read must not look like a missing object. */
http_reply api_store_failed(int rc, const char *err);
bool api_load_workflow(http_request *req, store_workflow **wf, http_reply *fail);
/* The full view of a workflow; NULL with *fail set when the store fails. */
json_t *api_workflow_view(http_request *req, store_workflow *wf, http_reply *fail);
/* The same with only the jobs of page (view.h). */
json_t *api_workflow_view_page(http_request *req, store_workflow *wf, view_page page,
                               http_reply *fail);
http_reply api_command(http_request *req, int32_t job_index, const char *kind);
/* A static file under root for a request path; 404 reply if absent. */
http_reply api_static_file(const char *root, const char *rel_path);

/* Workflows. */
http_reply api_submit(http_request *req);
http_reply api_list(http_request *req);
http_reply api_get(http_request *req);
http_reply api_progress(http_request *req);
http_reply api_cancel(http_request *req);
http_reply api_delete(http_request *req);

/* The job types and their parameters (api_job_types.c). */
http_reply api_job_types(http_request *req);

/* One job. */
http_reply api_job_cancel(http_request *req);
http_reply api_job_retry(http_request *req);
http_reply api_job_log(http_request *req);
http_reply api_job_results(http_request *req);
http_reply api_job_result_file(http_request *req);

/* Slides: the data roots' list, thumbnails, a job's image as Deep Zoom
 * (api_slides.c). */
http_reply api_slides_list(http_request *req);
http_reply api_slide_thumbnail(http_request *req);
http_reply api_job_slide(http_request *req);
http_reply api_job_slide_dzi(http_request *req);
http_reply api_job_slide_tile(http_request *req);

/* What a scrape reads besides the shared counters: the line and the leader
 * from the request's store (left NULL in sc when it cannot be read), the
 * limits, the state directory's file system, the time. qs and leader hold
 * what sc points to. */
void api_scrape_gather(http_request *req, metrics_scrape *sc, store_queue_stats *qs,
                       store_leader_info *leader);

/* The operator's view (api_admin.c): administrators only; anyone else is
 * answered exactly as for a path that does not exist (404 not_found). */
http_reply api_admin_overview(http_request *req);

/* The rest. */
http_reply api_queue(http_request *req);
http_reply api_events(http_request *req);
http_reply api_session_get(http_request *req);
http_reply api_session_create(http_request *req);
http_reply api_session_delete(http_request *req);
http_reply api_metrics(http_request *req);
http_reply api_healthz(http_request *req);
http_reply api_readyz(http_request *req);
http_reply api_openapi(http_request *req);
http_reply api_docs(http_request *req);
http_reply api_index(http_request *req);

#endif
