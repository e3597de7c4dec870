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

/* The first 64 KiB of a file as a string ("" if it cannot be read);
 * the caller frees it. */
static inline char *test_slurp(const char *path) {
    FILE *fp = fopen(path, "r");
    char *buf = calloc(1, 65536);
    if (fp == NULL || buf == NULL) {
        if (fp) fclose(fp);
        return buf;
    }
    size_t n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

#endif
