/*
 * tools.c - loading admin-defined tools and their registration (see
 * tools.h, docs/tools.md).
 *
 * The file is checked completely at start-up, so a mistake in it stops the
 * service with a message naming the tool and field, instead of failing
 * tenants' jobs hours later on a cluster. Loading is all or nothing.
 */
#include "jobs/tools.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

#define TOOLS_MAX 256
#define TOOL_NAME_MAX 32
#define PARAM_NAME_MAX 64
#define PARAMS_MAX 64
#define ARGV_MAX 256
#define ARG_MAX_BYTES 4096
#define CHOICES_MAX 64
#define STRING_MAX_LIMIT 4096
#define RESULT_NAME_MAX 128
#define TIMEOUT_MAX_S (30.0 * 86400)
#define INT_LIMIT 9007199254740992.0 /* 2^53: integers exact as doubles */

/* The registered tools: configuration read once at start-up, never changed
 * after (jobs_load_tools refuses a second load). */
static tool_set *registered;

/* Built-in job types a tool may not shadow, even before the registry lists
 * them all (the image types arrive in registry.c separately). */
static const char *const reserved_names[] = {"noop", "sleep", "tissue_mask", "cell_segmentation",
                                             NULL};

/* Where an error is: "<file>: tools[<i>] (\"<name>\"): " is the prefix of
 * every message about a tool. */
typedef struct where {
    const char *path;
    size_t index;
    const char *name; /* NULL until the name is known to be valid */
} where;

/* Formats "<file>: tools[i] (\"name\"): <field>: <message>". */
__attribute__((format(printf, 5, 6))) static int fail(const where *w, char *err, size_t errlen,
                                                       const char *field, const char *fmt, ...) {
    char msg[TS_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char tool[96];
    if (w->name)
        snprintf(tool, sizeof(tool), "tools[%zu] (\"%s\")", w->index, w->name);
    else
        snprintf(tool, sizeof(tool), "tools[%zu]", w->index);
    ts_errf(err, errlen, "%s: %s: %s%s%s", w->path, tool, field, field[0] ? ": " : "", msg);
    return TS_ERR;
}

/* True when every byte of s is in [a-z0-9_] (plus the first-char rule the
 * caller adds) and 1 <= len <= max. */
static bool ident_ok(const char *s, size_t max, bool letter_first) {
    size_t n = strlen(s);
    if (n < 1 || n > max || (letter_first && !islower((unsigned char)s[0]))) return false;
    for (const char *p = s; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_') return false;
    return true;
}

/* A JSON string without embedded NUL (C would cut it short), or NULL. */
static const char *plain_string(json_t *v) {
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) return NULL;
    return json_string_value(v);
}

/* Rejects keys of obj outside known (NULL-terminated): a misspelt key
 * ("defualt") would otherwise be ignored and the admin would never know. */
static int check_keys(const where *w, json_t *obj, const char *const *known, const char *field,
                      char *err, size_t errlen) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (size_t i = 0; known[i] && !ok; i++) ok = strcmp(key, known[i]) == 0;
        if (!ok) {
            char list[256] = "";
            for (size_t i = 0; known[i]; i++) {
                size_t used = strlen(list);
                snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", known[i]);
            }
            char f[160];
            snprintf(f, sizeof(f), "%s%s%s", field, field[0] ? "." : "", key);
            return fail(w, err, errlen, f, "unknown key (known: %s)", list);
        }
    }
    return TS_OK;
}

/* ---- params ---- */

/* Reads min/max of a number or integer param, defaulting to the widest
 * range; integers must be JSON integers within +-2^53. */
static int param_range(const where *w, json_t *spec, job_param *p, const char *field, char *err,
                       size_t errlen) {
    bool is_int = p->type == PARAM_INT;
    double lim = is_int ? INT_LIMIT : INFINITY;
    p->min = -lim;
    p->max = lim;
    const char *keys[2] = {"min", "max"};
    double *dst[2] = {&p->min, &p->max};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(spec, keys[i]);
        if (v == NULL) continue;
        if (is_int ? !json_is_integer(v) : !json_is_number(v))
            return fail(w, err, errlen, field, "%s: must be %s", keys[i],
                        is_int ? "an integer" : "a number");
        double d = json_number_value(v);
        if (!isfinite(d) || fabs(d) > (is_int ? INT_LIMIT : 1e300))
            return fail(w, err, errlen, field, "%s: out of range", keys[i]);
        *dst[i] = d;
    }
    if (p->min > p->max) return fail(w, err, errlen, field, "min is greater than max");
    return TS_OK;
}

/* Compiles the admin's pattern anchored at both ends, so "[a-z]+" means the
 * whole value and not "contains a letter". */
static int param_pattern(const where *w, json_t *spec, tool_param_rule *r, const char *field,
                         char *err, size_t errlen) {
    json_t *v = json_object_get(spec, "pattern");
    if (v == NULL) return TS_OK;
    const char *text = plain_string(v);
    if (text == NULL || text[0] == '\0')
        return fail(w, err, errlen, field, "pattern: must be a non-empty string");
    char *anchored = ts_asprintf("^(%s)$", text);
    int rc = regcomp(&r->pattern, anchored, REG_EXTENDED | REG_NOSUB);
    free(anchored);
    if (rc != 0) {
        char why[128];
        regerror(rc, NULL, why, sizeof(why));
        return fail(w, err, errlen, field, "pattern: not a POSIX extended regex: %s", why);
    }
    r->has_pattern = true;
    r->pattern_text = ts_strdup(text);
    return TS_OK;
}

/* max_length (1..4096, default 256) and pattern of a string param. */
static int param_string_rules(const where *w, json_t *spec, tool_param_rule *r, const char *field,
                              char *err, size_t errlen) {
    json_t *v = json_object_get(spec, "max_length");
    r->max_length = TOOLS_STRING_MAX_DEFAULT;
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > STRING_MAX_LIMIT)
            return fail(w, err, errlen, field, "max_length: must be an integer from 1 to %d",
                        STRING_MAX_LIMIT);
        r->max_length = (size_t)json_integer_value(v);
    }
    return param_pattern(w, spec, r, field, err, errlen);
}

/* choices of an enum: 1..64 distinct non-empty strings, NULL-terminated. */
static int param_choices(const where *w, json_t *spec, job_param *p, const char *field, char *err,
                         size_t errlen) {
    json_t *arr = json_object_get(spec, "choices");
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n < 1 || n > CHOICES_MAX)
        return fail(w, err, errlen, field, "choices: must be an array of 1 to %d strings",
                    CHOICES_MAX);
    const char **choices = ts_calloc(n + 1, sizeof(char *));
    p->choices = choices;
    for (size_t i = 0; i < n; i++) {
        const char *s = plain_string(json_array_get(arr, i));
        if (s == NULL || s[0] == '\0' || strlen(s) > ARG_MAX_BYTES)
            return fail(w, err, errlen, field, "choices[%zu]: must be a non-empty string", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(choices[j], s) == 0)
                return fail(w, err, errlen, field, "choices[%zu]: \"%s\" is listed twice", i, s);
        choices[i] = ts_strdup(s);
    }
    return TS_OK;
}

/* The keys each param type accepts. */
static const char *const *param_keys(param_type type) {
    static const char *const num[] = {"type", "description", "default", "required", "min", "max",
                                      NULL};
    static const char *const boolean[] = {"type", "description", "default", "required", NULL};
    static const char *const str[] = {"type", "description", "default", "required",
                                      "max_length", "pattern", NULL};
    static const char *const choice[] = {"type", "description", "default", "required", "choices",
                                         NULL};
    switch (type) {
    case PARAM_INT:
    case PARAM_NUMBER: return num;
    case PARAM_BOOL: return boolean;
    case PARAM_STRING: return str;
    case PARAM_ENUM: return choice;
    case PARAM_NUMBER_AUTO: /* not offered to tools (param_type_parse never yields them) */
    case PARAM_VECTORS: return num;
    }
    return boolean;
}

/* Maps "number" etc. to a param_type; false for anything else. */
static bool param_type_parse(const char *s, param_type *out) {
    static const struct {
        const char *name;
        param_type type;
    } types[] = {{"number", PARAM_NUMBER}, {"integer", PARAM_INT}, {"boolean", PARAM_BOOL},
                 {"string", PARAM_STRING}, {"enum", PARAM_ENUM}};
    for (size_t i = 0; s && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(s, types[i].name) == 0) {
            *out = types[i].type;
            return true;
        }
    return false;
}

/* Checks the default against the param's own rules (the same as a
 * tenant's value, so a default can never be something a tenant could not
 * send) and stores it. Exactly one of default / "required": true. */
static int param_default(const where *w, json_t *spec, job_param *p, tool_param_rule *r,
                         const char *field, char *err, size_t errlen) {
    json_t *def = json_object_get(spec, "default");
    json_t *req = json_object_get(spec, "required");
    if (req != NULL && !json_is_boolean(req))
        return fail(w, err, errlen, field, "required: must be true or false");
    r->required = json_is_true(req);
    if (r->required == (def != NULL))
        return fail(w, err, errlen, field, "needs either a \"default\" or \"required\": true%s",
                    r->required ? ", not both" : "");
    if (def == NULL) return TS_OK;
    json_t *wrap = json_object();
    json_object_set(wrap, p->name, def);
    char why[TS_ERRLEN];
    int rc = params_validate(p, 1, wrap, why, sizeof(why));
    if (rc == TS_OK && p->type == PARAM_STRING)
        rc = tools_check_string(p, r, json_string_value(def), why, sizeof(why));
    json_decref(wrap);
    if (rc != TS_OK) return fail(w, err, errlen, field, "default: %s", why);
    if (p->type == PARAM_STRING || p->type == PARAM_ENUM)
        p->def_string = ts_strdup(json_string_value(def));
    else
        p->def_number = json_is_boolean(def) ? (json_is_true(def) ? 1 : 0) : json_number_value(def);
    return TS_OK;
}

/* One entry of "params". */
static int parse_param(const where *w, const char *name, json_t *spec, job_param *p,
                       tool_param_rule *r, char *err, size_t errlen) {
    char field[96];
    snprintf(field, sizeof(field), "params.%s", name);
    bool builtin = false;
    for (int i = 0; i < TOOLS_N_BUILTINS; i++) builtin |= strcmp(name, tools_builtin_names[i]) == 0;
    if (!ident_ok(name, PARAM_NAME_MAX, true) || builtin)
        return fail(w, err, errlen, field,
                    builtin ? "the name of a built-in placeholder; choose another"
                            : "a parameter name must be 1-64 characters of a-z 0-9 _, "
                              "starting with a letter");
    p->name = ts_strdup(name);
    if (!json_is_object(spec)) return fail(w, err, errlen, field, "must be an object");
    const char *type = plain_string(json_object_get(spec, "type"));
    if (!param_type_parse(type, &p->type))
        return fail(w, err, errlen, field,
                    "type: must be one of \"number\", \"integer\", \"boolean\", \"string\", "
                    "\"enum\"");
    if (check_keys(w, spec, param_keys(p->type), field, err, errlen) != TS_OK) return TS_ERR;
    json_t *d = json_object_get(spec, "description");
    if (d != NULL && plain_string(d) == NULL)
        return fail(w, err, errlen, field, "description: must be a string");
    p->description = ts_strdup(d ? json_string_value(d) : "");
    int rc = TS_OK;
    if (p->type == PARAM_INT || p->type == PARAM_NUMBER)
        rc = param_range(w, spec, p, field, err, errlen);
    else if (p->type == PARAM_STRING)
        rc = param_string_rules(w, spec, r, field, err, errlen);
    else if (p->type == PARAM_ENUM)
        rc = param_choices(w, spec, p, field, err, errlen);
    if (rc != TS_OK) return TS_ERR;
    return param_default(w, spec, p, r, field, err, errlen);
}

/* "params": an object of name -> spec, at most 64. */
static int parse_params(const where *w, json_t *obj, tool_def *t, char *err, size_t errlen) {
    if (obj == NULL) return TS_OK;
    if (!json_is_object(obj) || json_object_size(obj) > PARAMS_MAX)
        return fail(w, err, errlen, "params", "must be an object of at most %d parameters",
                    PARAMS_MAX);
    size_t n = json_object_size(obj);
    t->params = ts_calloc(n ? n : 1, sizeof(job_param));
    t->rules = ts_calloc(n ? n : 1, sizeof(tool_param_rule));
    const char *name;
    json_t *spec;
    json_object_foreach(obj, name, spec) {
        size_t i = t->n_params++;
        if (parse_param(w, name, spec, &t->params[i], &t->rules[i], err, errlen) != TS_OK)
            return TS_ERR;
    }
    return TS_OK;
}

/* ---- argv, env, result ---- */

/* argv[0] must be an absolute path to an executable file that exists now:
 * no PATH search, no placeholder, so what runs is exactly what the admin
 * named. */
static int check_program(const where *w, const char *prog, char *err, size_t errlen) {
    struct stat st;
    if (prog[0] != '/')
        return fail(w, err, errlen, "argv[0]", "must be an absolute path, not \"%s\"", prog);
    if (strchr(prog, '{') || strchr(prog, '}'))
        return fail(w, err, errlen, "argv[0]", "must not contain a placeholder");
    if (stat(prog, &st) != 0 || !S_ISREG(st.st_mode) || access(prog, X_OK) != 0)
        return fail(w, err, errlen, "argv[0]", "%s is not an executable file", prog);
    return TS_OK;
}

/* Copies "argv" and checks every template in it. */
static int parse_argv(const where *w, json_t *arr, tool_def *t, bool *used, char *err,
                      size_t errlen) {
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n < 1 || n > ARGV_MAX)
        return fail(w, err, errlen, "argv", "must be an array of 1 to %d strings", ARGV_MAX);
    t->argv = ts_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        char field[32];
        snprintf(field, sizeof(field), "argv[%zu]", i);
        const char *s = plain_string(json_array_get(arr, i));
        if (s == NULL || strlen(s) > ARG_MAX_BYTES)
            return fail(w, err, errlen, field, "must be a string of at most %d bytes",
                        ARG_MAX_BYTES);
        t->argv[t->argc++] = ts_strdup(s);
        if (i == 0 && check_program(w, s, err, errlen) != TS_OK) return TS_ERR;
        char why[TS_ERRLEN];
        if (i > 0 && tools_expand(t, s, NULL, NULL, used, why, sizeof(why)) != TS_OK)
            return fail(w, err, errlen, field, "%s", why);
    }
    return TS_OK;
}

/* True for a portable environment variable name. */
static bool env_name_ok(const char *s) {
    if (!isalpha((unsigned char)s[0]) && s[0] != '_') return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') return false;
    return strncmp(s, "TESSERA_", 8) != 0;
}

/* "env": name -> template; the values may use placeholders too
 * ("OMP_NUM_THREADS": "{cpus}"). */
static int parse_env(const where *w, json_t *obj, tool_def *t, bool *used, char *err,
                     size_t errlen) {
    if (obj == NULL) return TS_OK;
    if (!json_is_object(obj) || json_object_size(obj) > ARGV_MAX)
        return fail(w, err, errlen, "env", "must be an object of name -> string");
    size_t n = json_object_size(obj);
    t->env_names = ts_calloc(n + 1, sizeof(char *));
    t->env_values = ts_calloc(n + 1, sizeof(char *));
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v) {
        char field[96];
        snprintf(field, sizeof(field), "env.%.64s", name);
        const char *s = plain_string(v);
        if (!env_name_ok(name))
            return fail(w, err, errlen, field,
                        "must be a variable name ([A-Za-z_][A-Za-z0-9_]*, not TESSERA_*)");
        if (s == NULL || strlen(s) > ARG_MAX_BYTES)
            return fail(w, err, errlen, field, "must be a string");
        t->env_names[t->n_env] = ts_strdup(name);
        t->env_values[t->n_env++] = ts_strdup(s);
        char why[TS_ERRLEN];
        if (tools_expand(t, s, NULL, NULL, used, why, sizeof(why)) != TS_OK)
            return fail(w, err, errlen, field, "%s", why);
    }
    return TS_OK;
}

/* "result": a plain file name in {out_dir}; summary.json is tessera's. */
static int parse_result(const where *w, json_t *v, tool_def *t, char *err, size_t errlen) {
    const char *s = plain_string(v);
    bool ok = s && s[0] && strlen(s) <= RESULT_NAME_MAX && strcmp(s, ".") != 0 &&
              strcmp(s, "..") != 0 && strcmp(s, "summary.json") != 0;
    for (const char *p = s; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || strchr("._-", *p);
    if (!ok)
        return fail(w, err, errlen, "result",
                    "must be a file name of 1-%d characters of A-Z a-z 0-9 . _ - (not "
                    "summary.json, which tessera writes)",
                    RESULT_NAME_MAX);
    t->result = ts_strdup(s);
    return TS_OK;
}

/* ---- one tool ---- */

/* name, description, needs_image, timeout_s. */
static int parse_header(where *w, json_t *obj, const tool_set *set, tool_def *t, char *err,
                        size_t errlen) {
    const char *name = plain_string(json_object_get(obj, "name"));
    if (name == NULL || !ident_ok(name, TOOL_NAME_MAX, false))
        return fail(w, err, errlen, "name", "must be 1-%d characters of a-z 0-9 _",
                    TOOL_NAME_MAX);
    bool builtin = jobs_find(name) != NULL;
    for (size_t i = 0; reserved_names[i]; i++) builtin |= strcmp(name, reserved_names[i]) == 0;
    if (builtin) return fail(w, err, errlen, "name", "\"%s\" is a built-in job type", name);
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->tools[i].name, name) == 0)
            return fail(w, err, errlen, "name", "\"%s\" is defined twice", name);
    t->name = ts_strdup(name);
    w->name = t->name;
    json_t *v = json_object_get(obj, "description");
    if (v != NULL && plain_string(v) == NULL)
        return fail(w, err, errlen, "description", "must be a string");
    t->description = ts_strdup(v ? json_string_value(v) : "");
    v = json_object_get(obj, "needs_image");
    if (v != NULL && !json_is_boolean(v))
        return fail(w, err, errlen, "needs_image", "must be true or false");
    t->needs_image = v == NULL || json_is_true(v);
    v = json_object_get(obj, "timeout_s");
    if (v != NULL && (!json_is_number(v) || !(json_number_value(v) > 0) ||
                      json_number_value(v) > TIMEOUT_MAX_S))
        return fail(w, err, errlen, "timeout_s", "must be a number of seconds from 0 to %.0f",
                    TIMEOUT_MAX_S);
    t->timeout_s = v ? json_number_value(v) : 0;
    return TS_OK;
}

/* Cross-field rules once everything is read: each param is used somewhere
 * (an unused one would be accepted from tenants and silently ignored), and
 * {image_path} only when the tool needs an image. */
static int check_usage(const where *w, const tool_def *t, const bool *used, char *err,
                       size_t errlen) {
    if (used[TOOLS_IMAGE_PATH] && !t->needs_image)
        return fail(w, err, errlen, "needs_image",
                    "is false, but argv or env uses {image_path}");
    for (size_t i = 0; i < t->n_params; i++)
        if (!used[TOOLS_N_BUILTINS + i]) {
            char field[96];
            snprintf(field, sizeof(field), "params.%s", t->params[i].name);
            return fail(w, err, errlen, field, "not used in argv or env (add {%s} somewhere)",
                        t->params[i].name);
        }
    return TS_OK;
}

/* Parses tools[index] into t (a zeroed slot of set, not yet counted). */
static int parse_tool(const char *path, size_t index, json_t *obj, const tool_set *set,
                      tool_def *t, char *err, size_t errlen) {
    static const char *const keys[] = {"name", "description", "argv", "params", "result",
                                       "needs_image", "timeout_s", "env", NULL};
    where w = {path, index, NULL};
    if (!json_is_object(obj)) return fail(&w, err, errlen, "", "must be an object");
    if (parse_header(&w, obj, set, t, err, errlen) != TS_OK ||
        check_keys(&w, obj, keys, "", err, errlen) != TS_OK ||
        parse_params(&w, json_object_get(obj, "params"), t, err, errlen) != TS_OK)
        return TS_ERR;
    bool *used = ts_calloc(TOOLS_N_BUILTINS + t->n_params, sizeof(bool));
    int rc = TS_ERR;
    if (parse_argv(&w, json_object_get(obj, "argv"), t, used, err, errlen) != TS_OK ||
        parse_env(&w, json_object_get(obj, "env"), t, used, err, errlen) != TS_OK ||
        parse_result(&w, json_object_get(obj, "result"), t, err, errlen) != TS_OK ||
        check_usage(&w, t, used, err, errlen) != TS_OK)
        goto cleanup;
    t->type = (job_type){.name = t->name, .description = t->description, .params = t->params,
                         .n_params = t->n_params, .validate = NULL, .run = tools_run,
                         .data = t, .needs_image = t->needs_image};
    rc = TS_OK;
cleanup:
    free(used);
    return rc;
}

/* ---- the file ---- */

/* See tools.h. Reads the whole file with jansson (duplicate keys refused:
 * the second would silently win) and parses each tool in turn; the first
 * error ends it and everything parsed so far is freed. */
int tools_parse_file(const char *path, tool_set **out, char *err, size_t errlen) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        ts_errf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return TS_ERR;
    }
    tool_set *set = ts_calloc(1, sizeof(*set));
    json_t *arr = json_object_get(root, "tools");
    size_t n = json_array_size(arr);
    int rc = TS_ERR;
    if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_array(arr) ||
        n > TOOLS_MAX) {
        ts_errf(err, errlen, "%s: must be an object {\"tools\": [...]} with at most %d tools",
                path, TOOLS_MAX);
        goto cleanup;
    }
    set->tools = ts_calloc(n ? n : 1, sizeof(tool_def));
    for (size_t i = 0; i < n; i++) {
        int prc = parse_tool(path, i, json_array_get(arr, i), set, &set->tools[i], err, errlen);
        set->n++; /* counted even when half-parsed, so tools_free frees it */
        if (prc != TS_OK) goto cleanup;
    }
    *out = set;
    set = NULL;
    rc = TS_OK;
cleanup:
    tools_free(set);
    json_decref(root);
    return rc;
}

/* Frees what parse_tool allocated; safe on a half-parsed tool. */
static void free_def(tool_def *t) {
    free(t->name);
    free(t->description);
    tools_strv_free(t->argv);
    tools_strv_free(t->env_names);
    tools_strv_free(t->env_values);
    for (size_t i = 0; i < t->n_params; i++) {
        free((char *)t->params[i].name);
        free((char *)t->params[i].description);
        free((char *)t->params[i].def_string);
        tools_strv_free((char **)t->params[i].choices);
        if (t->rules[i].has_pattern) regfree(&t->rules[i].pattern);
        free(t->rules[i].pattern_text);
    }
    free(t->params);
    free(t->rules);
    free(t->result);
}

/* Frees a set from tools_parse_file; NULL is fine. */
void tools_free(tool_set *set) {
    if (set == NULL) return;
    for (size_t i = 0; i < set->n; i++) free_def(&set->tools[i]);
    free(set->tools);
    free(set);
}

/* ---- registration ---- */

/* See jobs.h. A second successful load is refused: the registry is
 * configuration, read once, and job types must not change under running
 * workers. A failed load registers nothing and may be retried. */
int jobs_load_tools(const char *path, char *err, size_t errlen) {
    if (path == NULL || path[0] == '\0') return TS_OK;
    if (registered != NULL) {
        ts_errf(err, errlen, "%s: tools are already loaded (from one file, once per process)",
                path);
        return TS_ERR;
    }
    return tools_parse_file(path, &registered, err, errlen);
}

/* How many tools are registered (0 before jobs_load_tools). */
size_t tools_count(void) {
    return registered ? registered->n : 0;
}

/* The i-th registered tool's job type, NULL past the end. */
const job_type *tools_at(size_t i) {
    return i < tools_count() ? &registered->tools[i].type : NULL;
}

/* A registered tool's job type by name, or NULL. */
const job_type *tools_find(const char *name) {
    for (size_t i = 0; name && i < tools_count(); i++)
        if (strcmp(registered->tools[i].name, name) == 0) return &registered->tools[i].type;
    return NULL;
}

/* ---- validation of a job's params ---- */

/* See tools.h. Runs after params_validate, so types and ranges are known
 * good; this adds what job_param cannot say: required values and the
 * string rules that keep a value from acting as an option. */
int tools_validate(const job_type *type, const char *job_id, json_t *params,
                   const char *image_path, char *err, size_t errlen) {
    const tool_def *t = type->data;
    if (t->needs_image && (image_path == NULL || image_path[0] == '\0')) {
        ts_errf(err, errlen, "image_path: required by tool \"%s\"", t->name);
        return TS_ERR;
    }
    for (size_t i = 0; i < t->n_params; i++) {
        const job_param *p = &t->params[i];
        json_t *v = json_is_object(params) ? json_object_get(params, p->name) : NULL;
        if (v == NULL && t->rules[i].required) {
            ts_errf(err, errlen, "params.%s: required by tool \"%s\"", p->name, t->name);
            return TS_ERR;
        }
        if (v != NULL && p->type == PARAM_STRING &&
            tools_check_string(p, &t->rules[i], json_string_value(v), err, errlen) != TS_OK)
            return TS_ERR;
    }
    /* The argv as it will be built, for the values a tenant chooses (job_id,
     * params). The paths are the service's and always absolute when the job
     * runs ("/" stands for them here); tools_build_argv checks them all. */
    tools_vars vars = {.image_path = "/", .out_dir = "/", .work_dir = "/",
                       .job_id = job_id ? job_id : "job", .cpus = 1, .params = params};
    return tools_check_argv(t, &vars, err, errlen);
}
