/*
 * test_jsontext.c - util/jsontext.h writes the very bytes jansson writes:
 * jtext_str against json_dumps(json_string(s), JSON_ENCODE_ANY) for every
 * control byte, the characters JSON or jansson treat specially ('"', '\\',
 * '/', DEL), multi-byte UTF-8, the empty string, and strings long enough to
 * make the buffer grow many times; jtext_int against "%lld" and jansson's
 * integers; and the buffer's own promises (NUL-terminated, appends keep what
 * was there).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsontext.h"
#include "util/util.h"

/* What jansson writes for the string s (valid UTF-8); the caller frees it. */
static char *jansson_str(const char *s) {
    json_t *j = json_string(s);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    assert_non_null(text);
    return text;
}

/* jtext_str(s), appended after a prefix, is the prefix followed by exactly
 * jansson's bytes for s, and the buffer stays NUL-terminated. */
static void check_str(const char *s) {
    char *want = jansson_str(s);
    jtext t = {0};
    jtext_lit(&t, "[");
    jtext_str(&t, s);
    assert_int_equal(t.len, 1 + strlen(want));
    assert_int_equal(t.p[t.len], '\0');
    assert_int_equal(t.p[0], '[');
    if (memcmp(t.p + 1, want, strlen(want)) != 0)
        fail_msg("jtext_str wrote %s, jansson %s", t.p + 1, want);
    free(t.p);
    free(want);
}

/* Each control byte 0x01-0x1f alone, between other characters, and next
 * to another escape: the named ones (\b \f \n \r \t) and the \u00XX ones. */
static void test_every_control_byte(void **state) {
    (void)state;
    for (int c = 0x01; c < 0x20; c++) {
        char alone[2] = {(char)c, '\0'};
        char inside[6] = {'a', (char)c, 'b', (char)c, '"', '\0'};
        check_str(alone);
        check_str(inside);
    }
    char all[0x20];
    for (int c = 0x01; c < 0x20; c++) all[c - 1] = (char)c;
    all[0x1f] = '\0';
    check_str(all);
}

/* '"' and '\\' are escaped; '/' and DEL are not (jansson escapes '/' only
 * with JSON_ESCAPE_SLASH, and DEL is not a JSON control character). */
static void test_quote_backslash_slash_del(void **state) {
    (void)state;
    check_str("\"");
    check_str("\\");
    check_str("/");
    check_str("\x7f");
    check_str("a\"b\\c/d\x7f" "e");
    check_str("\\\"\\\"\"\\");
    check_str("C:\\data\\slide \"1\".svs");
    check_str("</script>");
}

/* Multi-byte UTF-8 (2, 3 and 4 bytes, U+10FFFF included) is written as it
 * is, also next to escaped bytes; and the empty string is "". */
static void test_utf8_and_empty(void **state) {
    (void)state;
    check_str("");
    check_str("\xc3\xbc");                  /* U+00FC */
    check_str("\xe2\x82\xac");              /* U+20AC */
    check_str("\xf0\x9f\x98\x80");          /* U+1F600 */
    check_str("\xf4\x8f\xbf\xbf");          /* U+10FFFF */
    check_str("s\xc3\xa4mple\n\xe2\x82\xac\t\"\xf0\x9f\x98\x80\"");
    check_str("\xc2\x80\xc2\x9f"); /* C1 controls: not escaped by jansson */
}

/* A string of n bytes cycling through plain ASCII, escaped bytes and
 * UTF-8; the caller frees it. */
static char *mixed(size_t n) {
    static const char *const parts[] = {"abc", "\n",  "\"", "\\", "\x01", "\x1f", "/",
                                        "\t",  "\xc3\xbc", "\xe2\x82\xac", "\x7f", "xyz0123"};
    char *s = ts_malloc(n + 8);
    size_t len = 0;
    for (size_t i = 0; len < n; i++) {
        const char *p = parts[i % (sizeof(parts) / sizeof(parts[0]))];
        memcpy(s + len, p, strlen(p));
        len += strlen(p);
    }
    s[len] = '\0';
    return s;
}

/* Long strings: one much larger than the buffer's first allocation, which
 * must grow many times while it is written (the escapes make it longer
 * than the up-front reservation). */
static void test_long_strings_grow(void **state) {
    (void)state;
    size_t sizes[] = {63, 64, 65, 1000, 4096, 100000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *s = mixed(sizes[i]);
        check_str(s);
        free(s);
    }
    char *s = ts_malloc(50001);
    memset(s, '\n', 50000); /* every byte doubles: 100,002 bytes of text */
    s[50000] = '\0';
    check_str(s);
    free(s);
}

/* Many strings appended one by one into one buffer, as the views do:
 * the whole is the bytes jansson writes for the same array, compact. */
static void test_many_pieces_as_array(void **state) {
    (void)state;
    json_t *arr = json_array();
    jtext t = {0};
    jtext_lit(&t, "[");
    for (int i = 0; i < 2000; i++) {
        char *s = mixed((size_t)(i % 97));
        json_array_append_new(arr, json_string(s));
        if (i) jtext_put(&t, ",", 1);
        jtext_str(&t, s);
        free(s);
    }
    jtext_lit(&t, "]");
    char *want = json_dumps(arr, JSON_COMPACT);
    assert_non_null(want);
    assert_int_equal(t.len, strlen(want));
    assert_memory_equal(t.p, want, t.len);
    assert_int_equal(t.p[t.len], '\0');
    assert_true(t.cap > 64 * 1024); /* grew from 64 bytes many times */
    free(want);
    free(t.p);
    json_decref(arr);
}

/* jtext_int is "%lld" and jansson's integer, the extremes included. */
static void test_int(void **state) {
    (void)state;
    long long values[] = {0, 1, -1, 9, 10, -10, 123456789, -987654321, 9007199254740993LL,
                          LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%lld", values[i]);
        json_t *j = json_integer(values[i]);
        char *jansson = json_dumps(j, JSON_ENCODE_ANY);
        assert_string_equal(jansson, want);
        jtext t = {0};
        jtext_int(&t, values[i]);
        assert_string_equal(t.p, want);
        assert_int_equal(t.len, strlen(want));
        free(t.p);
        free(jansson);
        json_decref(j);
    }
}

/* A reservation on an empty buffer leaves an empty C string with room
 * for the bytes asked for, and does not move what was written. */
static void test_reserve(void **state) {
    (void)state;
    jtext t = {0};
    jtext_reserve(&t, 1000);
    assert_non_null(t.p);
    assert_int_equal(t.len, 0);
    assert_true(t.cap >= 1001);
    assert_string_equal(t.p, "");
    jtext_lit(&t, "{\"a\":");
    jtext_reserve(&t, 100000);
    assert_true(t.cap >= t.len + 100001);
    assert_string_equal(t.p, "{\"a\":");
    free(t.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_control_byte),
        cmocka_unit_test(test_quote_backslash_slash_del),
        cmocka_unit_test(test_utf8_and_empty),
        cmocka_unit_test(test_long_strings_grow),
        cmocka_unit_test(test_many_pieces_as_array),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
