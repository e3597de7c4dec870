/*
 * test_image_scratch.c - image_scratch (src/image/scratch.c): growth,
 * reuse, alignment and release.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "image/scratch.h"

/* Small takes: 64-byte aligned, grown to the largest asked for, the same
 * block handed back for anything not larger; zero bytes is one. */
static void test_scratch_grows_and_reuses(void **state) {
    (void)state;
    image_scratch s = {0};
    char *a = image_scratch_take(&s, 0);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 64, 0);
    assert_true(s.cap >= 1);
    char *b = image_scratch_take(&s, 1000);
    assert_int_equal((uintptr_t)b % 64, 0);
    assert_true(s.cap >= 1000);
    memset(b, 1, 1000);
    size_t cap = s.cap;
    assert_ptr_equal(image_scratch_take(&s, 10), b);
    assert_ptr_equal(image_scratch_take(&s, cap), b);
    assert_int_equal(s.cap, cap);
    image_scratch_release(&s);
    assert_null(s.block);
    assert_int_equal(s.cap, 0);
    image_scratch_release(&s); /* twice is harmless */
}

/* A large take (from 2 MB on) comes in whole 2 MB pages, aligned to them,
 * all of it writable; smaller takes afterwards reuse it. */
static void test_scratch_large_blocks_are_whole_huge_pages(void **state) {
    (void)state;
    image_scratch s = {0};
    size_t want = ((size_t)3 << 20) + 5, page = (size_t)2 << 20;
    char *p = image_scratch_take(&s, want);
    assert_int_equal((uintptr_t)p % page, 0);
    assert_int_equal(s.cap % page, 0);
    assert_true(s.cap >= want);
    memset(p, 0xab, s.cap);
    assert_ptr_equal(image_scratch_take(&s, 4096), p);
    image_scratch_release(&s);
    assert_null(s.block);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scratch_grows_and_reuses),
        cmocka_unit_test(test_scratch_large_blocks_are_whole_huge_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
