/*
 * api_admin.c - GET /api/admin/overview, the figures behind the web UI's
 * operations page (issue 18): the admission line, cpus, job throughput and
 * latency by type, HTTP and store errors and latency, WebSocket clients, the
 * leader, this instance and every instance using the store, as JSON
 * (metrics_json, store_instances), read by the page every
 * few seconds. Counters are this instance's since it started (the scheduler's
 * job figures are on the leading instance); the page takes differences.
 *
 * Only administrators (an admin token, or a session made from one) see it.
 * Anyone else signed in is answered exactly as for a path that does not
 * exist, the project's rule for what a caller may not see (http.h): the
 * answer does not tell that the page exists.
 */
#include <string.h>
#include <unistd.h>

#include "http/api.h"
#include "util/log.h"
#include "util/util.h"

/* Does the named instance hold the lease? Under `tessera serve` the lease's
 * owner is "<instance>:<pid>:<start>" (sched/service.c). */
static bool leads(const store_leader_info *leader, const char *instance) {
    size_t n = strlen(instance);
    return leader && n && leader->expires_in > 0 && strncmp(leader->owner, instance, n) == 0 &&
           leader->owner[n] == ':';
}

#define MAX_INSTANCES 64

/* The instances using the store (store_instances), this one marked; null
 * when the store cannot say. */
static json_t *instances_json(http_request *req, const store_leader_info *leader, const char *me) {
    store_instance in[MAX_INSTANCES];
    size_t n = 0;
    char err[TS_ERRLEN];
    if (store_instances(req->st, in, MAX_INSTANCES, &n, err, sizeof(err)) != TS_OK)
        return json_null();
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{ss si sf sb sb}", "name", in[i].name,
                                              "connections", in[i].connections, "since",
                                              in[i].since, "self", strcmp(in[i].name, me) == 0,
                                              "leads", leads(leader, in[i].name)));
    return list;
}

http_reply api_admin_overview(http_request *req) {
    if (!req->admin)
        return http_error(404, "not_found", "no such endpoint",
                          json_pack("{ss}", "path", req->path ? req->path : ""));
    store_queue_stats qs;
    store_leader_info leader;
    metrics_scrape sc;
    api_scrape_gather(req, &sc, &qs, &leader);
    json_t *o = metrics_json(req->ctx->m, &sc);
    const char *me = log_instance_name();
    json_object_set_new(o, "instance",
                        json_pack("{ss sI sb}", "name", me, "pid", (json_int_t)getppid(),
                                  "leads", leads(sc.leader, me)));
    json_object_set_new(o, "instances", sc.stats ? instances_json(req, sc.leader, me) : json_null());
    json_object_set_new(o, "time", json_real(sc.now));
    return http_json(200, o);
}
