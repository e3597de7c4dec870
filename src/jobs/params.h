/*
 * params.h - typed, validated job parameters.
 *
 * A schema is an array of job_param. params_validate() accepts a JSON object
 * whose keys are all in the schema and whose values have the declared type
 * and range; anything else is an error naming the key: "params.seconds: must
 * be a number from 0 to 86400", "params.foo: unknown parameter (known:
 * seconds)". The getters return the value or the schema's default.
 */
#ifndef TESSERA_JOBS_PARAMS_H
#define TESSERA_JOBS_PARAMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* PARAM_NUMBER_AUTO: the string "auto" (the default when def_string is
 * "auto") or a number in [min, max]. PARAM_VECTORS: 2 or 3 vectors of 3
 * non-negative numbers, each of positive length (stain OD vectors); no
 * default (absent). */
typedef enum param_type {
    PARAM_INT,
    PARAM_NUMBER,
    PARAM_BOOL,
    PARAM_STRING,
    PARAM_ENUM,
    PARAM_NUMBER_AUTO,
    PARAM_VECTORS,
} param_type;

typedef struct job_param {
    const char *name;
    param_type type;
    double min, max;          /* PARAM_INT / PARAM_NUMBER: inclusive range */
    double def_number;        /* default for INT / NUMBER / BOOL (0 or 1) */
    const char *def_string;   /* default for STRING / ENUM (may be NULL) */
    const char *const *choices; /* PARAM_ENUM: NULL-terminated */
    const char *description;
} job_param;

int params_validate(const job_param *schema, size_t n, json_t *params, char *err, size_t errlen);

/* The schema as JSON for clients (GET /api/job-types): an array of
 * {name, type, default, min?, max?, choices?, description}, so that a form
 * can show defaults and ranges without knowing the job types. */
json_t *params_describe(const job_param *schema, size_t n);

double params_number(const job_param *schema, size_t n, json_t *params, const char *name);
bool params_bool(const job_param *schema, size_t n, json_t *params, const char *name);
const char *params_string(const job_param *schema, size_t n, json_t *params, const char *name);

/* PARAM_NUMBER_AUTO: true when the value (or the default) is "auto"; else
 * params_number gives the number. */
bool params_is_auto(const job_param *schema, size_t n, json_t *params, const char *name);

/* PARAM_VECTORS: copies the vectors into out and returns how many (0 when
 * the parameter is absent). */
int params_vectors(json_t *params, const char *name, double out[3][3]);

#endif
