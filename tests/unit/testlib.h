/*
 * testlib.h - helpers shared by the unit tests: a fresh temporary directory
 * per test and its removal. Header-only so each test stays one binary.
 */
#ifndef TESSERA_TESTS_TESTLIB_H
#define TESSERA_TESTS_TESTLIB_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int testlib_remove_entry(const char *path, const struct stat *sb, int type,
                                struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* rm -rf dir (never follows symlinks). */
static inline void test_rm_rf(const char *dir) {
    nftw(dir, testlib_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
