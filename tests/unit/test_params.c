/*
 * test_params.c - params_validate and the getters (src/jobs/params.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "jobs/params.h"
#include "util/util.h"

static const char *const methods[] = {"otsu", "threshold", NULL};

static const job_param schema[] = {
    {.name = "seconds", .type = PARAM_NUMBER, .min = 0, .max = 86400, .def_number = 1},
    {.name = "tile_size", .type = PARAM_INT, .min = 256, .max = 8192, .def_number = 1024},
    {.name = "split", .type = PARAM_BOOL, .def_number = 1},
    {.name = "label", .type = PARAM_STRING, .def_string = "cells"},
    {.name = "method", .type = PARAM_ENUM, .choices = methods, .def_string = "otsu"},
    {.name = "threshold", .type = PARAM_NUMBER, .min = 0, .max = INFINITY},
};
#define N_SCHEMA (sizeof(schema) / sizeof(schema[0]))

/* Validates the JSON text against the schema; returns the result and leaves
 * the message in err. */
static int validate_text(const char *text, char *err) {
    json_error_t jerr;
    json_t *params = json_loads(text, 0, &jerr);
    assert_non_null(params);
    err[0] = '\0';
    int rc = params_validate(schema, N_SCHEMA, params, err, TS_ERRLEN);
    json_decref(params);
    return rc;
}

static void test_params_null_and_empty_are_accepted(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(params_validate(schema, N_SCHEMA, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(validate_text("{}", err), TS_OK);
    assert_int_equal(params_validate(NULL, 0, NULL, err, sizeof(err)), TS_OK);
}

static void test_params_valid_values_are_accepted(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(validate_text("{\"seconds\": 2.5, \"tile_size\": 512, \"split\": false,"
                                   " \"label\": \"x\", \"method\": \"threshold\","
                                   " \"threshold\": 1e9}",
                                   err),
                     TS_OK);
    assert_int_equal(validate_text("{\"seconds\": 0}", err), TS_OK);
    assert_int_equal(validate_text("{\"seconds\": 86400}", err), TS_OK);
}

static void test_params_not_an_object_is_rejected(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(validate_text("[1]", err), TS_ERR);
    assert_string_equal(err, "params: must be an object");
}

static void test_params_unknown_key_lists_known_ones(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(validate_text("{\"secs\": 1}", err), TS_ERR);
    assert_string_equal(err, "params.secs: unknown parameter (known: seconds, tile_size, split, "
                             "label, method, threshold)");
    json_t *p = json_pack("{s:i}", "x", 1);
    assert_int_equal(params_validate(NULL, 0, p, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "params.x: unknown parameter (known: none)");
    json_decref(p);
}

static void test_params_number_range_message(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(validate_text("{\"seconds\": -1}", err), TS_ERR);
    assert_string_equal(err, "params.seconds: must be a number from 0 to 86400");
    assert_int_equal(validate_text("{\"seconds\": 86400.5}", err), TS_ERR);
    assert_string_equal(err, "params.seconds: must be a number from 0 to 86400");
    assert_int_equal(validate_text("{\"seconds\": \"5\"}", err), TS_ERR);
    assert_string_equal(err, "params.seconds: must be a number from 0 to 86400");
    assert_int_equal(validate_text("{\"threshold\": -0.5}", err), TS_ERR);
    assert_string_equal(err, "params.threshold: must be a number >= 0");
}

static void test_params_int_must_be_json_integer(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(validate_text("{\"tile_size\": 512.0}", err), TS_ERR);
    assert_string_equal(err, "params.tile_size: must be an integer from 256 to 8192");
    assert_int_equal(validate_text("{\"tile_size\": 100}", err), TS_ERR);
    assert_string_equal(err, "params.tile_size: must be an integer from 256 to 8192");
    assert_int_equal(validate_text("{\"tile_size\": true}", err), TS_ERR);
}

static void test_params_bool_and_string_types(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(validate_text("{\"split\": 1}", err), TS_ERR);
    assert_string_equal(err, "params.split: must be true or false");
    assert_int_equal(validate_text("{\"label\": 3}", err), TS_ERR);
    assert_string_equal(err, "params.label: must be a string");
    json_t *p = json_pack("{s:o}", "label", json_stringn("a\0b", 3));
    assert_int_equal(params_validate(schema, N_SCHEMA, p, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "params.label: must be a string");
    json_decref(p);
}

static void test_params_enum_lists_choices(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(validate_text("{\"method\": \"kmeans\"}", err), TS_ERR);
    assert_string_equal(err, "params.method: must be one of \"otsu\", \"threshold\"");
    assert_int_equal(validate_text("{\"method\": 1}", err), TS_ERR);
    assert_string_equal(err, "params.method: must be one of \"otsu\", \"threshold\"");
}

static void test_params_getters_return_value_or_default(void **state) {
    (void)state;
    json_t *p = json_pack("{s:f, s:i, s:b, s:s}", "seconds", 2.5, "tile_size", 512, "split", 0,
                          "method", "threshold");
    assert_true(params_number(schema, N_SCHEMA, p, "seconds") == 2.5);
    assert_true(params_number(schema, N_SCHEMA, p, "tile_size") == 512);
    assert_false(params_bool(schema, N_SCHEMA, p, "split"));
    assert_string_equal(params_string(schema, N_SCHEMA, p, "method"), "threshold");
    assert_string_equal(params_string(schema, N_SCHEMA, p, "label"), "cells");
    json_decref(p);

    assert_true(params_number(schema, N_SCHEMA, NULL, "seconds") == 1);
    assert_true(params_number(schema, N_SCHEMA, NULL, "tile_size") == 1024);
    assert_true(params_bool(schema, N_SCHEMA, NULL, "split"));
    assert_string_equal(params_string(schema, N_SCHEMA, NULL, "method"), "otsu");
    assert_null(params_string(schema, N_SCHEMA, NULL, "nothing"));
    assert_true(params_number(schema, N_SCHEMA, NULL, "nothing") == 0);
}

static const job_param auto_schema[] = {
    {.name = "threshold", .type = PARAM_NUMBER_AUTO, .min = 0, .max = 5, .def_string = "auto"},
    {.name = "stain_vectors", .type = PARAM_VECTORS},
};

static int validate_auto(const char *text, char *err) {
    json_t *params = json_loads(text, 0, NULL);
    assert_non_null(params);
    err[0] = '\0';
    int rc = params_validate(auto_schema, 2, params, err, TS_ERRLEN);
    json_decref(params);
    return rc;
}

/* "auto" or a number in range; anything else names the field and both forms. */
static void test_params_number_or_auto(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(validate_auto("{\"threshold\": \"auto\"}", err), TS_OK);
    assert_int_equal(validate_auto("{\"threshold\": 0.2}", err), TS_OK);
    assert_int_equal(validate_auto("{\"threshold\": \"Auto\"}", err), TS_ERR);
    assert_string_equal(err, "params.threshold: must be \"auto\" or a number from 0 to 5");
    assert_int_equal(validate_auto("{\"threshold\": 7}", err), TS_ERR);
    json_t *p = json_loads("{\"threshold\": 0.25}", 0, NULL);
    assert_false(params_is_auto(auto_schema, 2, p, "threshold"));
    assert_true(params_number(auto_schema, 2, p, "threshold") == 0.25);
    assert_true(params_is_auto(auto_schema, 2, NULL, "threshold"));
    json_decref(p);
    json_t *d = params_describe(auto_schema, 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "type")), "number_or_auto");
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "default")), "auto");
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 1), "type")), "vectors");
    json_decref(d);
}

/* 2 or 3 vectors of 3 non-negative numbers, not all zero. */
static void test_params_vectors(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(validate_auto("{\"stain_vectors\": [[0.65,0.7,0.29],[0.07,0.99,0.11]]}", err), TS_OK);
    assert_int_equal(validate_auto("{\"stain_vectors\": [[1,0,0],[0,1,0],[0,0,1]]}", err), TS_OK);
    assert_int_equal(validate_auto("{\"stain_vectors\": [[1,0,0]]}", err), TS_ERR);
    assert_non_null(strstr(err, "params.stain_vectors: must be 2 or 3 vectors"));
    assert_int_equal(validate_auto("{\"stain_vectors\": [[1,0,0],[0,-1,0]]}", err), TS_ERR);
    assert_string_equal(err, "params.stain_vectors[1]: must be 3 numbers from 0 to 10, not all 0");
    assert_int_equal(validate_auto("{\"stain_vectors\": [[0,0,0],[0,1,0]]}", err), TS_ERR);
    assert_int_equal(validate_auto("{\"stain_vectors\": [[1,0],[0,1,0]]}", err), TS_ERR);
    assert_int_equal(validate_auto("{\"stain_vectors\": \"he\"}", err), TS_ERR);
    json_t *p = json_loads("{\"stain_vectors\": [[0.65,0.7,0.29],[0.07,0.99,0.11]]}", 0, NULL);
    double v[3][3];
    assert_int_equal(params_vectors(p, "stain_vectors", v), 2);
    assert_true(v[1][1] == 0.99);
    assert_int_equal(params_vectors(NULL, "stain_vectors", v), 0);
    json_decref(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_null_and_empty_are_accepted),
        cmocka_unit_test(test_params_valid_values_are_accepted),
        cmocka_unit_test(test_params_not_an_object_is_rejected),
        cmocka_unit_test(test_params_unknown_key_lists_known_ones),
        cmocka_unit_test(test_params_number_range_message),
        cmocka_unit_test(test_params_int_must_be_json_integer),
        cmocka_unit_test(test_params_bool_and_string_types),
        cmocka_unit_test(test_params_enum_lists_choices),
        cmocka_unit_test(test_params_getters_return_value_or_default),
        cmocka_unit_test(test_params_number_or_auto),
        cmocka_unit_test(test_params_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
