/*
 * fuzz_params.c - job parameters of every job type (src/jobs/params.c,
 * tools.c) and the argv and environment an admin tool gets from them
 * (tools_template.c), the way they arrive: a one-job workflow through
 * spec_from_json with jobs_check, then, for a tool, tools_build_argv and
 * tools_build_env as the runner calls them.
 *
 * Input: byte 0 picks the job type (built-in ones, then the tools of
 * fuzz_lib.h), byte 1 the job_id from a list of ids the spec rule may or
 * may not accept (".", "-x", "--help", ...), the rest is the params JSON.
 *
 * Oracles beyond the sanitizers, for accepted jobs:
 *   - each parameter read through the getters is within its schema: a
 *     number in [min, max], an enum one of its choices;
 *   - a tool's argv has one element per template; an element that is just
 *     "{x}" for a string or enum parameter or {job_id} never starts with
 *     '-' (docs/tools.md: no option injection; issue 12 item 6); no element
 *     or env value holds a control character; the environment has no
 *     TESSERA_* variable.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "fuzz_lib.h"
#include "jobs/jobs.h"
#include "jobs/tools.h"

static const char *const job_ids[] = {"a", "job-1", "x.y_z", ".", "..", "-x", "--help", "-", "_a"};
#define N_IDS (sizeof(job_ids) / sizeof(job_ids[0]))

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    fuzz_load_tools();
    /* A secret the tools' environment must never carry. */
    setenv("TESSERA_SESSION_SECRET", "fuzz-secret-fuzz-secret-fuzz-secret", 1);
    return 0;
}

/* Every parameter, read as the job would, lies within its schema. */
static void check_getters(const job_type *t, json_t *params) {
    for (size_t i = 0; i < t->n_params; i++) {
        const job_param *p = &t->params[i];
        if (p->type == PARAM_INT || p->type == PARAM_NUMBER) {
            double v = params_number(t->params, t->n_params, params, p->name);
            FUZZ_CHECK(isfinite(v) && v >= p->min && v <= p->max, "%s.%s = %g outside [%g, %g]",
                       t->name, p->name, v, p->min, p->max);
        } else if (p->type == PARAM_ENUM) {
            const char *v = params_string(t->params, t->n_params, params, p->name);
            bool known = v == NULL && p->def_string == NULL;
            for (size_t k = 0; v && p->choices && p->choices[k]; k++)
                if (strcmp(v, p->choices[k]) == 0) known = true;
            FUZZ_CHECK(known, "%s.%s = \"%s\" not a choice", t->name, p->name, v ? v : "(null)");
        } else if (p->type == PARAM_BOOL) {
            (void)params_bool(t->params, t->n_params, params, p->name);
        } else {
            (void)params_string(t->params, t->n_params, params, p->name);
        }
    }
}

/* The parameter a template consists of entirely ("{name}"), or NULL. */
static const job_param *whole_param(const tool_def *t, const char *tmpl, bool *is_job_id) {
    size_t n = strlen(tmpl);
    *is_job_id = strcmp(tmpl, "{job_id}") == 0;
    if (n < 3 || tmpl[0] != '{' || tmpl[n - 1] != '}' || strchr(tmpl + 1, '{')) return NULL;
    for (size_t i = 0; i < t->n_params; i++)
        if (strlen(t->params[i].name) == n - 2 && strncmp(t->params[i].name, tmpl + 1, n - 2) == 0)
            return &t->params[i];
    return NULL;
}

static bool has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

static void check_tool(const tool_def *t, const spec_job *j) {
    tools_vars vars = {"/data/slide.tiff", "/state/out", "/state/work", j->job_id, j->cpus,
                       j->params};
    char **argv = NULL, **envp = NULL, err[TS_ERRLEN];
    FUZZ_CHECK(tools_build_argv(t, &vars, &argv, err, sizeof(err)) == TS_OK,
               "argv of an accepted job: %s", err);
    size_t n = 0;
    while (argv[n]) n++;
    FUZZ_CHECK(n == t->argc, "%zu argv elements for %zu templates", n, t->argc);
    for (size_t i = 1; i < n; i++) {
        bool is_job_id;
        const job_param *p = whole_param(t, t->argv[i], &is_job_id);
        bool tenant_text = is_job_id || (p && (p->type == PARAM_STRING || p->type == PARAM_ENUM));
        FUZZ_CHECK(!(tenant_text && argv[i][0] == '-'), "argv[%zu] = \"%s\" (template %s) reads "
                   "as an option", i, argv[i], t->argv[i]);
        FUZZ_CHECK(!has_control(argv[i]), "control character in argv[%zu]", i);
    }
    FUZZ_CHECK(tools_build_env(t, &vars, &envp, err, sizeof(err)) == TS_OK, "env: %s", err);
    for (size_t i = 0; envp[i]; i++) {
        FUZZ_CHECK(strncmp(envp[i], "TESSERA_", 8) != 0, "tool env carries %.20s", envp[i]);
        FUZZ_CHECK(!has_control(envp[i]), "control character in env %.20s", envp[i]);
    }
    tools_strv_free(argv);
    tools_strv_free(envp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const job_type *type = jobs_at(data[0] % jobs_count());
    const char *job_id = job_ids[data[1] % N_IDS];
    json_t *params = json_loadb((const char *)data + 2, size - 2, JSON_REJECT_DUPLICATES, NULL);
    if (params == NULL) return 0;
    json_t *job = json_pack("{ss ss ss sO}", "job_id", job_id, "job_type", type->name,
                            "image_path", "/data/slide.tiff", "params", params);
    json_t *doc = json_pack("{ss s[o]}", "name", "params", "jobs", job);
    spec_limits lim;
    spec_limits_default(&lim);
    spec_workflow *wf = NULL;
    spec_error se;
    if (spec_from_json(doc, &lim, jobs_check, NULL, &wf, &se) == 0) {
        const spec_job *j = &wf->jobs[0];
        check_getters(type, j->params);
        if (type->data) check_tool(type->data, j);
        spec_free(wf);
    } else {
        FUZZ_CHECK(se.http_status == 422, "status %d for a JSON document", se.http_status);
    }
    json_decref(doc);
    json_decref(params);
    return 0;
}
