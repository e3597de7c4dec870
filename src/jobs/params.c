/*
 * params.c - see params.h.
 *
 * Validation is strict on purpose: a misspelt key or a value of the wrong
 * type would otherwise fall back to a default silently and produce results
 * the user did not ask for, hours later on a cluster.
 */
#include "jobs/params.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

/* Returns the schema entry called name, or NULL. */
static const job_param *param_find(const job_param *schema, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(schema[i].name, name) == 0) return &schema[i];
    return NULL;
}

/* Formats a range bound for a message: integral values without a fraction
 * or exponent ("86400", not "8.64e+04"), so the limit reads as written. */
static void fmt_bound(char *buf, size_t len, double v) {
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, len, "%.0f", v);
    else
        snprintf(buf, len, "%g", v);
}

/* Writes "params.<name>: must be <kind> from MIN to MAX" (or the one-sided
 * form when a bound is infinite), the wording every range error shares. */
static void range_error(const job_param *p, const char *kind, char *err, size_t errlen) {
    char lo[64], hi[64];
    fmt_bound(lo, sizeof(lo), p->min);
    fmt_bound(hi, sizeof(hi), p->max);
    if (isinf(p->min) && isinf(p->max))
        ts_errf(err, errlen, "params.%s: must be %s", p->name, kind);
    else if (isinf(p->max))
        ts_errf(err, errlen, "params.%s: must be %s >= %s", p->name, kind, lo);
    else if (isinf(p->min))
        ts_errf(err, errlen, "params.%s: must be %s <= %s", p->name, kind, hi);
    else
        ts_errf(err, errlen, "params.%s: must be %s from %s to %s", p->name, kind, lo, hi);
}

/* Appends s to buf (of size len, holding a NUL-terminated string),
 * truncating; used to build the lists of known names and choices. */
static void append(char *buf, size_t len, const char *s) {
    size_t used = strlen(buf);
    if (used + 1 < len) ts_strlcpy(buf + used, s, len - used);
}

/* "params.x: must be one of \"a\", \"b\"": listing the choices saves the
 * user a trip to the documentation. */
static void enum_error(const job_param *p, char *err, size_t errlen) {
    char list[384] = "";
    for (size_t i = 0; p->choices && p->choices[i]; i++) {
        if (i > 0) append(list, sizeof(list), ", ");
        append(list, sizeof(list), "\"");
        append(list, sizeof(list), p->choices[i]);
        append(list, sizeof(list), "\"");
    }
    ts_errf(err, errlen, "params.%s: must be one of %s", p->name, list);
}

/* 2 or 3 arrays of 3 finite non-negative numbers, none all zero: the
 * message says which vector and why. */
static int check_vectors(const job_param *p, json_t *v, char *err, size_t errlen) {
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n < 2 || n > 3) {
        ts_errf(err, errlen, "params.%s: must be 2 or 3 vectors [r, g, b] of optical density, "
                "e.g. [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]", p->name);
        return TS_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *vec = json_array_get(v, i);
        double len = 0;
        bool ok = json_is_array(vec) && json_array_size(vec) == 3;
        for (size_t k = 0; ok && k < 3; k++) {
            json_t *c = json_array_get(vec, k);
            ok = json_is_number(c) && isfinite(json_number_value(c)) && json_number_value(c) >= 0 &&
                 json_number_value(c) <= 10;
            if (ok) len += json_number_value(c) * json_number_value(c);
        }
        if (!ok || len <= 0) {
            ts_errf(err, errlen, "params.%s[%zu]: must be 3 numbers from 0 to 10, not all 0", p->name,
                    i);
            return TS_ERR;
        }
    }
    return TS_OK;
}

/* Checks one value against its schema entry. Integers must be JSON integers
 * (5.0 is refused) so a count is never silently rounded. */
static int check_value(const job_param *p, json_t *v, char *err, size_t errlen) {
    switch (p->type) {
    case PARAM_INT:
        if (!json_is_integer(v) || (double)json_integer_value(v) < p->min ||
            (double)json_integer_value(v) > p->max)
            goto range;
        return TS_OK;
    case PARAM_NUMBER:
        if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < p->min ||
            json_number_value(v) > p->max)
            goto range;
        return TS_OK;
    case PARAM_BOOL:
        if (json_is_boolean(v)) return TS_OK;
        ts_errf(err, errlen, "params.%s: must be true or false", p->name);
        return TS_ERR;
    case PARAM_STRING:
        /* An embedded NUL would be cut off by every C consumer of the value. */
        if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
            return TS_OK;
        ts_errf(err, errlen, "params.%s: must be a string", p->name);
        return TS_ERR;
    case PARAM_NUMBER_AUTO:
        if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0) return TS_OK;
        if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < p->min ||
            json_number_value(v) > p->max)
            goto range;
        return TS_OK;
    case PARAM_VECTORS:
        return check_vectors(p, v, err, errlen);
    case PARAM_ENUM:
        for (size_t i = 0; json_is_string(v) && p->choices && p->choices[i]; i++)
            if (strcmp(json_string_value(v), p->choices[i]) == 0) return TS_OK;
        enum_error(p, err, errlen);
        return TS_ERR;
    }
    ts_errf(err, errlen, "params.%s: unsupported parameter type", p->name);
    return TS_ERR;
range:
    range_error(p, p->type == PARAM_INT ? "an integer" : p->type == PARAM_NUMBER_AUTO ? "\"auto\" or a number" : "a number", err, errlen);
    return TS_ERR;
}

/* "params.foo: unknown parameter (known: a, b)". */
static void unknown_error(const job_param *schema, size_t n, const char *key, char *err,
                          size_t errlen) {
    char list[384] = "";
    for (size_t i = 0; i < n; i++) {
        if (i > 0) append(list, sizeof(list), ", ");
        append(list, sizeof(list), schema[i].name);
    }
    ts_errf(err, errlen, "params.%s: unknown parameter (known: %s)", key, n ? list : "none");
}

/* Accepts NULL, JSON null and any object whose members all pass the
 * schema; the first offending key is reported. */
int params_validate(const job_param *schema, size_t n, json_t *params, char *err, size_t errlen) {
    if (params == NULL || json_is_null(params)) return TS_OK;
    if (!json_is_object(params)) {
        ts_errf(err, errlen, "params: must be an object");
        return TS_ERR;
    }
    const char *key;
    json_t *value;
    json_object_foreach(params, key, value) {
        const job_param *p = param_find(schema, n, key);
        if (p == NULL) {
            unknown_error(schema, n, key, err, errlen);
            return TS_ERR;
        }
        if (check_value(p, value, err, errlen) != TS_OK) return TS_ERR;
    }
    return TS_OK;
}

/* Returns the member name of params when it is present (and params is an
 * object), else NULL so the caller falls back to the default. */
static json_t *param_get(json_t *params, const char *name) {
    return json_is_object(params) ? json_object_get(params, name) : NULL;
}

/* Value of a validated INT/NUMBER parameter, or its default. A name missing
 * from the schema is a programming error; it yields 0. */
double params_number(const job_param *schema, size_t n, json_t *params, const char *name) {
    json_t *v = param_get(params, name);
    if (json_is_number(v)) return json_number_value(v);
    const job_param *p = param_find(schema, n, name);
    return p ? p->def_number : 0.0;
}

/* Value of a validated BOOL parameter, or its default (def_number != 0). */
bool params_bool(const job_param *schema, size_t n, json_t *params, const char *name) {
    json_t *v = param_get(params, name);
    if (json_is_boolean(v)) return json_is_true(v);
    const job_param *p = param_find(schema, n, name);
    return p ? p->def_number != 0.0 : false;
}

/* Value of a validated STRING/ENUM parameter, or its default (may be NULL).
 * The pointer lives as long as params (or the schema). */
const char *params_string(const job_param *schema, size_t n, json_t *params, const char *name) {
    json_t *v = param_get(params, name);
    if (json_is_string(v)) return json_string_value(v);
    const job_param *p = param_find(schema, n, name);
    return p ? p->def_string : NULL;
}

bool params_is_auto(const job_param *schema, size_t n, json_t *params, const char *name) {
    json_t *v = param_get(params, name);
    if (json_is_number(v)) return false;
    if (json_is_string(v)) return strcmp(json_string_value(v), "auto") == 0;
    const job_param *p = param_find(schema, n, name);
    return p && p->def_string && strcmp(p->def_string, "auto") == 0;
}

int params_vectors(json_t *params, const char *name, double out[3][3]) {
    json_t *v = param_get(params, name);
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n > 3) n = 3;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < 3; k++)
            out[i][k] = json_number_value(json_array_get(json_array_get(v, i), k));
    return (int)n;
}

static const char *param_type_name(param_type t) {
    switch (t) {
    case PARAM_NUMBER_AUTO: return "number_or_auto";
    case PARAM_VECTORS: return "vectors";
    case PARAM_INT: return "integer";
    case PARAM_NUMBER: return "number";
    case PARAM_BOOL: return "boolean";
    case PARAM_STRING: return "string";
    case PARAM_ENUM: return "enum";
    }
    return "string";
}

static json_t *param_default(const job_param *p) {
    switch (p->type) {
    case PARAM_INT: return json_integer((json_int_t)p->def_number);
    case PARAM_NUMBER: return json_real(p->def_number);
    case PARAM_BOOL: return json_boolean(p->def_number != 0);
    case PARAM_NUMBER_AUTO:
        return p->def_string ? json_string(p->def_string) : json_real(p->def_number);
    case PARAM_VECTORS: return json_null();
    case PARAM_STRING:
    case PARAM_ENUM: return p->def_string ? json_string(p->def_string) : json_null();
    }
    return json_null();
}

json_t *params_describe(const job_param *schema, size_t n) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const job_param *p = &schema[i];
        json_t *o = json_pack("{ss ss so ss}", "name", p->name, "type", param_type_name(p->type),
                              "default", param_default(p), "description",
                              p->description ? p->description : "");
        if (p->type == PARAM_INT || p->type == PARAM_NUMBER || p->type == PARAM_NUMBER_AUTO) {
            json_object_set_new(o, "min", p->type == PARAM_INT ? json_integer((json_int_t)p->min)
                                                               : json_real(p->min));
            json_object_set_new(o, "max", p->type == PARAM_INT ? json_integer((json_int_t)p->max)
                                                               : json_real(p->max));
        }
        if (p->type == PARAM_ENUM && p->choices) {
            json_t *c = json_array();
            for (size_t k = 0; p->choices[k]; k++) json_array_append_new(c, json_string(p->choices[k]));
            json_object_set_new(o, "choices", c);
        }
        json_array_append_new(arr, o);
    }
    return arr;
}
