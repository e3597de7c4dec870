/*
 * api_routes.c - every endpoint of DESIGN §4 in one table: the place to
 * read what the service answers. Order matters only for 405's Allow list.
 */
#include "http/api.h"

const http_route http_routes[] = {
    {"POST", "/api/workflows", api_submit, false},
    {"GET", "/api/workflows", api_list, false},
    {"GET", "/api/workflows/{id}", api_get, false},
    {"DELETE", "/api/workflows/{id}", api_delete, false},
    {"POST", "/api/workflows/{id}/cancel", api_cancel, false},
    {"GET", "/api/workflows/{id}/progress", api_progress, false},
    {"POST", "/api/workflows/{id}/jobs/{job_id}/cancel", api_job_cancel, false},
    {"POST", "/api/workflows/{id}/jobs/{job_id}/retry", api_job_retry, false},
    {"GET", "/api/workflows/{id}/jobs/{job_id}/log", api_job_log, false},
    {"GET", "/api/workflows/{id}/jobs/{job_id}/results", api_job_results, false},
    {"GET", "/api/workflows/{id}/jobs/{job_id}/results/{name}", api_job_result_file, false},
    {"GET", "/api/workflows/{id}/jobs/{job_id}/slide", api_job_slide, false},
    {"GET", "/api/workflows/{id}/jobs/{job_id}/slide.dzi", api_job_slide_dzi, false},
    {"GET", "/api/workflows/{id}/jobs/{job_id}/slide_files/{level}/{tile}", api_job_slide_tile, false},
    {"GET", "/api/slides", api_slides_list, false},
    {"GET", "/api/slides/thumbnail", api_slide_thumbnail, false},
    {"GET", "/api/queue", api_queue, false},
    {"GET", "/api/events", api_events, false},
    {"GET", "/api/job-types", api_job_types, false},
    {"GET", "/api/admin/overview", api_admin_overview, false},
    {"GET", "/api/session", api_session_get, true},
    {"POST", "/api/session", api_session_create, true},
    {"DELETE", "/api/session", api_session_delete, true},
    {"GET", "/metrics", api_metrics, true},
    {"GET", "/healthz", api_healthz, true},
    {"GET", "/readyz", api_readyz, true},
    {"GET", "/openapi.json", api_openapi, true},
    {"GET", "/docs", api_docs, true},
    {"GET", "/", api_index, true},
};

const size_t http_routes_count = sizeof(http_routes) / sizeof(http_routes[0]);
