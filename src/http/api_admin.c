/*
 * api_admin.c - GET /api/admin/overview, the figures behind the web UI's
 * operations page (issue 18): the admission line, cpus, job throughput and
 * latency by type, HTTP and store errors and latency, WebSocket clients, the
 * leader and this instance, as JSON (metrics_json), read by the page every
 * few seconds. Counters are this instance's since it started (the scheduler's
 * job figures are on the leading instance); the page takes differences.
 *
 * Only administrators (an admin token, or a session made from one) see it.
 * Anyone else signed in is answered exactly as for a path that does not
 * exist, the project's rule for what a caller may not see (http.h): the
 * answer does not tell that the page exists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/api.h"
#include "util/log.h"
#include "util/util.h"

/* Does this instance lead? The lease's owner is "host:pid:start" of a
 * scheduler (sched/service.c); ours is a child of our master, as this
 * worker is: same host name, and that pid's parent is our parent. */
static bool instance_leads(const store_leader_info *leader) {
    char host[128] = "localhost", want[160];
    gethostname(host, sizeof(host) - 1);
    int n = snprintf(want, sizeof(want), "%s:", host);
    if (!leader || leader->expires_in <= 0 || strncmp(leader->owner, want, (size_t)n) != 0)
        return false;
    long pid = strtol(leader->owner + n, NULL, 10);
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    if (!f) return false;
    size_t len = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[len] = '\0';
    const char *close = strrchr(stat, ')'); /* the command name may hold spaces */
    char state;
    long ppid;
    return close && sscanf(close + 1, " %c %ld", &state, &ppid) == 2 && ppid == (long)getppid();
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
                                  "leads", instance_leads(sc.leader)));
    json_object_set_new(o, "time", json_real(sc.now));
    return http_json(200, o);
}
