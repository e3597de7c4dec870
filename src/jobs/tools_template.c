/*
 * tools_template.c - placeholders in a tool's argv and env templates, and
 * the string rule for tenants' values (see tools.h, docs/tools.md).
 *
 * Syntax: "{name}" is replaced by a value; "{{" and "}}" are literal
 * braces; a placeholder may sit inside a larger argument ("--size={n}").
 * Each template becomes exactly one argv element whatever the values hold:
 * nothing is ever split or interpreted by a shell, and no value may begin
 * an element with '-' (it would be an option to the tool).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/tools.h"
#include "util/proctree.h"
#include "util/util.h"

extern char **environ;

const char *const tools_builtin_names[TOOLS_N_BUILTINS] = {"image_path", "out_dir", "work_dir",
                                                            "cpus", "job_id"};

/* A growing string. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

/* Appends n bytes of s, keeping the buffer NUL-terminated. */
static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = ts_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* A number as the shortest of %.15g/%.16g/%.17g that reads back exactly:
 * 0.5 -> "0.5", 0.1 -> "0.1", never "0.10000000000000001". */
static void format_number(char *buf, size_t len, double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* The text of param p for one run: the tenant's value or the default.
 * Integers plain, booleans "true"/"false", numbers as above. */
static void format_param(const job_param *p, json_t *params, char *buf, size_t len,
                         const char **str) {
    json_t *v = json_is_object(params) ? json_object_get(params, p->name) : NULL;
    *str = NULL;
    switch (p->type) {
    case PARAM_INT:
        snprintf(buf, len, "%lld",
                 v ? (long long)json_integer_value(v) : (long long)llround(p->def_number));
        return;
    case PARAM_NUMBER:
        format_number(buf, len, v ? json_number_value(v) : p->def_number);
        return;
    case PARAM_BOOL:
        snprintf(buf, len, "%s", (v ? json_is_true(v) : p->def_number != 0) ? "true" : "false");
        return;
    case PARAM_STRING:
    case PARAM_ENUM:
        *str = v ? json_string_value(v) : p->def_string;
        return;
    case PARAM_NUMBER_AUTO: /* built-in job types only: never in a tool's schema */
    case PARAM_VECTORS:
        snprintf(buf, len, "%s", "");
        return;
    }
}

/* Index of a placeholder name: builtins first, then params; -1 if unknown. */
static long lookup(const tool_def *t, const char *name, size_t n) {
    for (int i = 0; i < TOOLS_N_BUILTINS; i++)
        if (strlen(tools_builtin_names[i]) == n && memcmp(tools_builtin_names[i], name, n) == 0)
            return i;
    for (size_t i = 0; i < t->n_params; i++)
        if (strlen(t->params[i].name) == n && memcmp(t->params[i].name, name, n) == 0)
            return TOOLS_N_BUILTINS + (long)i;
    return -1;
}

/* "unknown placeholder {x} (known: image_path, ..., model)". */
static void unknown_error(const tool_def *t, const char *name, size_t n, char *err,
                          size_t errlen) {
    char list[384] = "";
    for (size_t i = 0; i < TOOLS_N_BUILTINS + t->n_params; i++) {
        const char *s = i < TOOLS_N_BUILTINS ? tools_builtin_names[i]
                                             : t->params[i - TOOLS_N_BUILTINS].name;
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", s);
    }
    ts_errf(err, errlen, "unknown placeholder {%.*s} (known: %s)", (int)(n > 64 ? 64 : n), name,
            list);
}

/* The name of placeholder idx ("job_id", a param's name). */
static const char *placeholder_name(const tool_def *t, long idx) {
    return idx < TOOLS_N_BUILTINS ? tools_builtin_names[idx]
                                  : t->params[idx - TOOLS_N_BUILTINS].name;
}

/* Appends the value of placeholder idx for vars to b; *lead (when not
 * NULL) becomes idx if this value puts the first byte into b. */
static int add_value(const tool_def *t, long idx, const tools_vars *vars, sbuf *b, long *lead,
                     char *err, size_t errlen) {
    char num[64];
    const char *s = num;
    switch (idx) {
    case TOOLS_IMAGE_PATH: s = vars->image_path; break;
    case TOOLS_OUT_DIR: s = vars->out_dir; break;
    case TOOLS_WORK_DIR: s = vars->work_dir; break;
    case TOOLS_JOB_ID: s = vars->job_id; break;
    case TOOLS_CPUS: snprintf(num, sizeof(num), "%d", vars->cpus); break;
    default: {
        const job_param *p = &t->params[idx - TOOLS_N_BUILTINS];
        const char *str;
        format_param(p, vars->params, num, sizeof(num), &str);
        if (p->type == PARAM_STRING || p->type == PARAM_ENUM) s = str;
    }
    }
    if (s == NULL) {
        ts_errf(err, errlen, "no value for {%s}", placeholder_name(t, idx));
        return TS_ERR;
    }
    if (lead && b->len == 0 && s[0] != '\0') *lead = idx;
    sb_add(b, s, strlen(s));
    return TS_OK;
}

/* tools_expand, also telling in *lead (when not NULL) which placeholder's
 * value begins the result (-1: the template's own text does, or nothing). */
static int expand(const tool_def *t, const char *tmpl, const tools_vars *vars, char **out,
                  bool *used, long *lead, char *err, size_t errlen) {
    sbuf b = {0};
    if (lead) *lead = -1;
    sb_add(&b, "", 0);
    for (const char *p = tmpl; *p;) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            sb_add(&b, p, 1);
            p += 2;
            continue;
        }
        if (*p == '}') {
            ts_errf(err, errlen, "a single '}' (write '}}' for a literal brace)");
            goto fail;
        }
        if (*p != '{') {
            sb_add(&b, p++, 1);
            continue;
        }
        const char *end = strchr(p + 1, '}');
        if (end == NULL) {
            ts_errf(err, errlen, "'{' without '}' (write '{{' for a literal brace)");
            goto fail;
        }
        long idx = lookup(t, p + 1, (size_t)(end - p - 1));
        if (idx < 0) {
            unknown_error(t, p + 1, (size_t)(end - p - 1), err, errlen);
            goto fail;
        }
        if (used) used[idx] = true;
        if (vars && add_value(t, idx, vars, &b, lead, err, errlen) != TS_OK) goto fail;
        p = end + 1;
    }
    if (out) *out = b.s;
    else free(b.s);
    return TS_OK;
fail:
    free(b.s);
    return TS_ERR;
}

/* See tools.h. One pass over the template: literal text is copied, "{{"
 * and "}}" become braces, "{name}" is looked up (and, with vars,
 * replaced by its value). The same code checks at load time and expands at
 * run time, so a template that loaded can always be expanded. */
int tools_expand(const tool_def *t, const char *tmpl, const tools_vars *vars, char **out,
                 bool *used, char *err, size_t errlen) {
    return expand(t, tmpl, vars, out, used, NULL, err, errlen);
}

/* The field a placeholder's value comes from, as submissions name it:
 * "job_id", "image_path", "params.label"; the service's own values
 * (out_dir, work_dir, cpus) by their placeholder. */
static void value_field(const tool_def *t, long idx, char *out, size_t n) {
    if (idx >= TOOLS_N_BUILTINS)
        snprintf(out, n, "params.%s", placeholder_name(t, idx));
    else
        snprintf(out, n, "%s", placeholder_name(t, idx));
}

/* Expands argv template i for vars into *out, refusing a value that would
 * begin the element with '-': whatever the value, the tool would read the
 * element as an option (issue 12, defect 6). Every placeholder is held to
 * it, not only tenants' strings: {job_id} "-h", a negative number, a path. */
static int expand_argv_element(const tool_def *t, size_t i, const tools_vars *vars, char **out,
                               char *err, size_t errlen) {
    long lead = -1;
    char why[TS_ERRLEN], field[96];
    *out = NULL;
    if (expand(t, t->argv[i], vars, out, NULL, &lead, why, sizeof(why)) != TS_OK) {
        ts_errf(err, errlen, "tool %s: argv[%zu]: %s", t->name, i, why);
        return TS_ERR;
    }
    if (lead < 0 || (*out)[0] != '-') return TS_OK;
    value_field(t, lead, field, sizeof(field));
    ts_errf(err, errlen,
            "%s: \"%.40s\" would begin argv[%zu] of tool %s with '-', which the tool would "
            "read as an option; values never start with '-'",
            field, *out, i, t->name);
    free(*out);
    *out = NULL;
    return TS_ERR;
}

/* See tools.h. */
int tools_check_argv(const tool_def *t, const tools_vars *vars, char *err, size_t errlen) {
    for (size_t i = 0; i < t->argc; i++) {
        char *element = NULL;
        if (expand_argv_element(t, i, vars, &element, err, errlen) != TS_OK) return TS_ERR;
        free(element);
    }
    return TS_OK;
}

/* Frees a NULL-terminated array of strings and the array; NULL is fine. */
void tools_strv_free(char **v) {
    for (size_t i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

/* See tools.h: each template becomes exactly one element. */
int tools_build_argv(const tool_def *t, const tools_vars *vars, char ***argv, char *err,
                     size_t errlen) {
    char **v = ts_calloc(t->argc + 1, sizeof(char *));
    for (size_t i = 0; i < t->argc; i++) {
        if (expand_argv_element(t, i, vars, &v[i], err, errlen) != TS_OK) {
            tools_strv_free(v);
            *argv = NULL;
            return TS_ERR;
        }
    }
    *argv = v;
    return TS_OK;
}

/* True when "NAME=..." entry e sets a TESSERA_* variable or one the tool
 * overrides. The attempt's mark (proctree.h) stays: it is how the
 * executor finds what the tool started, and it holds no secret. */
static bool env_dropped(const tool_def *t, const char *e) {
    size_t mark_len = strlen(PROCTREE_MARK);
    if (strncmp(e, PROCTREE_MARK, mark_len) == 0 && e[mark_len] == '=') return false;
    if (strncmp(e, "TESSERA_", 8) == 0) return true;
    for (size_t i = 0; i < t->n_env; i++) {
        size_t n = strlen(t->env_names[i]);
        if (strncmp(e, t->env_names[i], n) == 0 && e[n] == '=') return true;
    }
    return false;
}

/* See tools.h. Built in the runner before fork, since the child may only
 * make async-signal-safe calls. */
int tools_build_env(const tool_def *t, const tools_vars *vars, char ***envp, char *err,
                    size_t errlen) {
    size_t n = 0, k = 0;
    while (environ && environ[n]) n++;
    char **v = ts_calloc(n + t->n_env + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        if (!env_dropped(t, environ[i])) v[k++] = ts_strdup(environ[i]);
    for (size_t i = 0; i < t->n_env; i++) {
        char *value, why[TS_ERRLEN];
        if (tools_expand(t, t->env_values[i], vars, &value, NULL, why, sizeof(why)) != TS_OK) {
            ts_errf(err, errlen, "tool %s: env.%s: %s", t->name, t->env_names[i], why);
            tools_strv_free(v);
            *envp = NULL;
            return TS_ERR;
        }
        v[k++] = ts_asprintf("%s=%s", t->env_names[i], value);
        free(value);
    }
    *envp = v;
    return TS_OK;
}

/* The default charset: letters, digits, '.', '_', '-'. */
static bool safe_char(unsigned char c) {
    return isalnum(c) || c == '.' || c == '_' || c == '-';
}

/* Length 1..max_length, never a leading '-' (the value would read as an
 * option to the tool), no control characters, and either the safe charset
 * or the admin's pattern. */
int tools_check_string(const job_param *p, const tool_param_rule *r, const char *value,
                       char *err, size_t errlen) {
    size_t n = strlen(value);
    bool ok = n >= 1 && n <= r->max_length && value[0] != '-';
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        ok = r->has_pattern ? (c >= 0x20 && c != 0x7f) : safe_char(c);
    }
    if (ok && r->has_pattern) ok = regexec(&r->pattern, value, 0, NULL, 0) == 0;
    if (ok) return TS_OK;
    if (r->has_pattern)
        ts_errf(err, errlen, "params.%s: must be 1-%zu characters matching %s, not starting with '-'",
                p->name, r->max_length, r->pattern_text);
    else
        ts_errf(err, errlen,
                "params.%s: must be 1-%zu characters of A-Z a-z 0-9 . _ -, not starting with '-'",
                p->name, r->max_length);
    return TS_ERR;
}
