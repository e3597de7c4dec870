/*
 * api_jobs.c - one job's endpoints: cancel, retry, its log, its results.
 * Logs and results are files under the state directory, reached only
 * through the caller's own workflow, so tenancy holds for them too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/api.h"
#include "util/layout.h"
#include "util/util.h"

/* Loads the caller's workflow and finds the job of the second path
 * parameter in it. */
static bool load_job(http_request *req, store_workflow **wf, int *idx, http_reply *fail) {
    if (!api_load_workflow(req, wf, fail)) return false;
    *idx = spec_find_job((*wf)->spec, req->params[1]);
    if (*idx < 0) {
        store_workflow_free(*wf);
        *fail = api_not_found("job", req->params[1]);
        return false;
    }
    return true;
}

static http_reply job_command(http_request *req, const char *kind) {
    store_workflow *wf = NULL;
    int idx;
    http_reply fail;
    if (!load_job(req, &wf, &idx, &fail)) return fail;
    store_workflow_free(wf);
    return api_command(req, idx, kind);
}

http_reply api_job_cancel(http_request *req) {
    return job_command(req, "cancel");
}

http_reply api_job_retry(http_request *req) {
    store_workflow *wf = NULL;
    int idx;
    http_reply fail;
    if (!load_job(req, &wf, &idx, &fail)) return fail;
    job_state s = wf->jobs[idx].state;
    wf_state ws = wf->state;
    store_workflow_free(wf);
    if (s != JOB_FAILED && s != JOB_CANCELLED && s != JOB_SKIPPED)
        return http_error(409, "not_retryable",
                          "only a failed, cancelled or skipped job can be retried",
                          json_pack("{ss}", "state", job_state_name(s)));
    if (ws != WF_RUNNING && ws != WF_FAILED && ws != WF_CANCELLED)
        return http_error(409, "not_retryable",
                          "only jobs of a running, failed or cancelled workflow can be retried",
                          json_pack("{ss}", "workflow_state", wf_state_name(ws)));
    /* A finished workflow goes back to the admission line with this job. */
    return api_command(req, idx, "retry");
}

static http_reply open_file(const char *path, const char *content_type) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return api_not_found("file", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    }
    http_reply r = {.status = 200, .kind = REPLY_FILE, .fd = fd,
                    .file_size = (uint64_t)st.st_size, .content_type = content_type};
    return r;
}

http_reply api_job_log(http_request *req) {
    store_workflow *wf = NULL;
    int idx;
    http_reply fail;
    if (!load_job(req, &wf, &idx, &fail)) return fail;
    char *path = layout_job_log(req->ctx->cfg->state_dir, wf->id, wf->spec->jobs[idx].job_id);
    store_workflow_free(wf);
    http_reply r;
    if (access(path, F_OK) != 0)
        r = http_text(200, "text/plain; charset=utf-8", "", 0); /* not started yet */
    else
        r = open_file(path, "text/plain; charset=utf-8");
    free(path);
    return r;
}

/* A result name is one plain file name: no path, no dot files. */
static bool result_name_ok(const char *name) {
    size_t len = strlen(name);
    return len > 0 && len <= 255 && name[0] != '.' && !strchr(name, '/') && !strchr(name, '\\');
}

http_reply api_job_results(http_request *req) {
    store_workflow *wf = NULL;
    int idx;
    http_reply fail;
    if (!load_job(req, &wf, &idx, &fail)) return fail;
    char *dir = layout_result_dir(req->ctx->cfg->state_dir, wf->id, wf->spec->jobs[idx].job_id);
    json_t *files = json_array();
    DIR *d = opendir(dir);
    for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        if (!result_name_ok(e->d_name)) continue;
        char *p = ts_asprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            char *url = ts_asprintf("/api/workflows/%lld/jobs/%s/results/%s", (long long)wf->id,
                                    wf->spec->jobs[idx].job_id, e->d_name);
            json_array_append_new(files, json_pack("{ss sI ss}", "name", e->d_name, "size",
                                                   (json_int_t)st.st_size, "url", url));
            free(url);
        }
        free(p);
    }
    if (d) closedir(d);
    json_t *o = json_pack("{sI ss ss so}", "workflow_id", (json_int_t)wf->id, "job_id",
                          wf->spec->jobs[idx].job_id, "state",
                          job_state_name(wf->jobs[idx].state), "files", files);
    store_workflow_free(wf);
    free(dir);
    return http_json(200, o);
}

static const char *content_type_for(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return "application/octet-stream";
    if (strcmp(dot, ".geojson") == 0) return "application/geo+json";
    if (strcmp(dot, ".json") == 0) return "application/json";
    if (strcmp(dot, ".csv") == 0) return "text/csv; charset=utf-8";
    if (strcmp(dot, ".png") == 0) return "image/png";
    if (strcmp(dot, ".txt") == 0 || strcmp(dot, ".log") == 0) return "text/plain; charset=utf-8";
    return "application/octet-stream";
}

http_reply api_job_result_file(http_request *req) {
    store_workflow *wf = NULL;
    int idx;
    http_reply fail;
    if (!load_job(req, &wf, &idx, &fail)) return fail;
    const char *name = req->params[2];
    if (!result_name_ok(name)) {
        store_workflow_free(wf);
        return api_not_found("result", name);
    }
    char *dir = layout_result_dir(req->ctx->cfg->state_dir, wf->id, wf->spec->jobs[idx].job_id);
    char *path = ts_asprintf("%s/%s", dir, name);
    free(dir);
    store_workflow_free(wf);
    http_reply r = open_file(path, content_type_for(name));
    free(path);
    return r;
}
