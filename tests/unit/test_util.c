/*
 * test_util.c - util/util.h helpers that touch the file system.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"
#include "testlib.h"

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p: missing parents are made, an existing directory is fine, and a
 * file in the way is an error naming the directory that could not be
 * made. */
static void test_mkdir_p(void **state) {
    (void)state;
    char dir[] = "/tmp/test_util.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[TS_ERRLEN];
    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    assert_int_equal(ts_mkdir_p(path, err, sizeof(err)), TS_OK);
    assert_true(is_dir(path));
    assert_int_equal(ts_mkdir_p(path, err, sizeof(err)), TS_OK); /* exists: fine */
    snprintf(path, sizeof(path), "%s/a/b/d", dir); /* parents exist, leaf new */
    assert_int_equal(ts_mkdir_p(path, err, sizeof(err)), TS_OK);
    assert_true(is_dir(path));
    char file[256];
    snprintf(file, sizeof(file), "%s/a/f", dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/a/f/g/h", dir);
    assert_int_equal(ts_mkdir_p(path, err, sizeof(err)), TS_ERR);
    char want[300];
    snprintf(want, sizeof(want), "cannot create directory %s/a/f/g:", dir);
    assert_non_null(strstr(err, want));
    test_rm_rf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkdir_p),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
