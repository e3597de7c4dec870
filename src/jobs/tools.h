/*
 * tools.h - admin-defined tools (DESIGN §5): job types read from the JSON
 * file named by TESSERA_TOOLS, each an argv template with typed parameters.
 * See docs/tools.md for the file format.
 *
 * Internal to src/jobs: the rest of tessera sees tools only as job types
 * (jobs_find, jobs_check, jobs_load_tools in jobs.h). The parse and argv
 * functions are declared here so the unit tests can use them without
 * registering anything.
 *
 * Safety rules, enforced here and nowhere else:
 *   - a tool runs by fork + execve of its absolute argv[0]; no shell, no PATH;
 *   - tenants choose parameter values only, each validated against the
 *     admin's schema and passed as (part of) one argv element;
 *   - string values are [A-Za-z0-9._-] by default (or the admin's pattern),
 *     never empty, never starting with '-' (no option injection);
 *   - no value of any placeholder (job_id, numbers, paths, strings) may
 *     begin an argv element with '-': checked at submission and again when
 *     the argv is built.
 */
#ifndef TESSERA_JOBS_TOOLS_H
#define TESSERA_JOBS_TOOLS_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "jobs/jobs.h"

/* The placeholders every tool may use, besides its parameters' names. */
typedef enum tools_builtin {
    TOOLS_IMAGE_PATH,
    TOOLS_OUT_DIR,
    TOOLS_WORK_DIR,
    TOOLS_CPUS,
    TOOLS_JOB_ID,
    TOOLS_N_BUILTINS
} tools_builtin;

/* Their names, in tools_builtin order ("image_path", ...). */
extern const char *const tools_builtin_names[TOOLS_N_BUILTINS];

#define TOOLS_STRING_MAX_DEFAULT 256 /* max_length of a string param unless set */
#define TOOLS_KILL_GRACE_S 10.0      /* SIGTERM, then SIGKILL this much later */

/* What a parameter needs beyond job_param (parallel to tool_def.params). */
typedef struct tool_param_rule {
    bool required;       /* no default: the workflow must give a value */
    size_t max_length;   /* PARAM_STRING */
    bool has_pattern;    /* PARAM_STRING: the admin's regex replaces the safe charset */
    regex_t pattern;     /* compiled "^(...)$", REG_EXTENDED | REG_NOSUB */
    char *pattern_text;  /* as written, for messages */
} tool_param_rule;

typedef struct tool_def {
    job_type type; /* what the registry hands out; type.data points back here */
    char *name;
    char *description;
    char **argv; /* templates, NULL-terminated; argv[0] is an absolute path */
    size_t argc;
    char **env_names, **env_values; /* extra environment; values are templates */
    size_t n_env;
    job_param *params;
    tool_param_rule *rules;
    size_t n_params;
    char *result;     /* file name the tool writes into {out_dir} */
    bool needs_image;
    double timeout_s; /* 0 = no limit of the tool's own */
} tool_def;

typedef struct tool_set {
    tool_def *tools;
    size_t n;
} tool_set;

/* The values placeholders expand to for one run. */
typedef struct tools_vars {
    const char *image_path; /* may be NULL when the tool does not need an image */
    const char *out_dir;
    const char *work_dir;
    const char *job_id;
    int cpus;
    json_t *params; /* validated; absent keys take the schema default */
} tools_vars;

/* ---- tools.c: loading and the registry's view ---- */

/* Parses and validates a tools file without registering it. Errors name the
 * file, the tool and the field: "tools.json: tools[0] (\"instanseg\"):
 * argv[3]: unknown placeholder {foo} (known: ...)". *out is NULL on error. */
int tools_parse_file(const char *path, tool_set **out, char *err, size_t errlen);
void tools_free(tool_set *set);

/* The registered tools (those of jobs_load_tools), for registry.c. */
size_t tools_count(void);
const job_type *tools_at(size_t i);
const job_type *tools_find(const char *name);

/* The checks of a tool's job type beyond params_validate: required params,
 * string rules, an image when the tool needs one, and no value of job_id
 * or params beginning an argv element with '-' (tools_check_argv). type->data
 * must be a tool_def (registry.c calls this for types whose data is set). */
int tools_validate(const job_type *type, const char *job_id, json_t *params,
                   const char *image_path, char *err, size_t errlen);

/* ---- tools_template.c: placeholders ---- */

/* Expands one template. With vars == NULL it only checks the template
 * (syntax and names). used (may be NULL) has TOOLS_N_BUILTINS + n_params
 * entries and gets true for each placeholder seen: builtins first, then
 * params in schema order. *out (when vars != NULL) is freshly allocated. */
int tools_expand(const tool_def *t, const char *tmpl, const tools_vars *vars, char **out,
                 bool *used, char *err, size_t errlen);

/* The whole argv, NULL-terminated, freshly allocated (tools_strv_free).
 * Refused (nothing built) when a placeholder's value would begin an
 * element with '-', as tools_check_argv says. */
int tools_build_argv(const tool_def *t, const tools_vars *vars, char ***argv, char *err,
                     size_t errlen);

/* Expands every argv template with vars and refuses a value that begins an
 * element with '-': the message starts with the field the value came from
 * ("job_id: ...", "params.offset: ...", "image_path: ...", or the service's
 * own placeholder), so a submission's 422 names it. */
int tools_check_argv(const tool_def *t, const tools_vars *vars, char *err, size_t errlen);

/* The tool's environment: ours without TESSERA_* variables (the service's
 * secrets are none of the tool's business) except the attempt's mark
 * TESSERA_ATTEMPT (util/proctree.h), plus the tool's env entries. */
int tools_build_env(const tool_def *t, const tools_vars *vars, char ***envp, char *err,
                    size_t errlen);

void tools_strv_free(char **v);

/* Checks a string value against a param's rule; the message names the
 * param: "params.label: must be ...". */
int tools_check_string(const job_param *p, const tool_param_rule *r, const char *value,
                       char *err, size_t errlen);

/* ---- tools_run.c ---- */

/* The run function of every tool's job type (see jobs.h). */
int tools_run(job_ctx *ctx, char *err, size_t errlen);

#endif
