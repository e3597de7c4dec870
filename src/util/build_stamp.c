/*
 * build_stamp.c - ts_build_stamp (util.h): which build a binary comes from.
 *
 * The Makefile recompiles this file whenever any other object of the build
 * changed, with TS_BUILD_STAMP set to the time of that compile, so tessera
 * and tessera-runner linked from the same objects carry the same stamp and
 * a runner binary left from another build does not.
 */
#include "util/util.h"

#ifndef TS_BUILD_STAMP
#define TS_BUILD_STAMP "unstamped"
#endif

const char *ts_build_stamp(void) {
    return TS_BUILD_STAMP;
}
