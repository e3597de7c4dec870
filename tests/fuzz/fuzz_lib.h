/*
 * fuzz_lib.h - what the libFuzzer targets share: a private temporary
 * directory (on tmpfs when there is one, removed at exit), writing an input
 * to a file for loaders that take paths, and FUZZ_CHECK, which turns a
 * broken invariant into a crash that libFuzzer records with its input.
 * Header-only so that each target stays one file and one binary.
 */
#ifndef TESSERA_TESTS_FUZZ_LIB_H
#define TESSERA_TESTS_FUZZ_LIB_H

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/demo.h"
#include "jobs/jobs.h"
#include "util/log.h"
#include "util/util.h"

/* An oracle failed: say which and why, then abort so that libFuzzer saves
 * the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s: ", __FILE__,      \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

static char fuzz_dir_path[256];

static inline int fuzz_remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (type == FTW_DP) return rmdir(path);
    chmod(path, 0700); /* fixtures may hold unreadable entries */
    return unlink(path);
}

static inline void fuzz_cleanup(void) {
    if (fuzz_dir_path[0]) nftw(fuzz_dir_path, fuzz_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* This process's scratch directory, made on first use (on /dev/shm when
 * it exists: inputs written per run must not cost a disk write) and removed
 * at exit. Aborts if it cannot be made: nothing can be fuzzed then. */
static inline const char *fuzz_dir(void) {
    if (fuzz_dir_path[0]) return fuzz_dir_path;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "%s/tessera-fuzz-XXXXXX", base);
    if (mkdtemp(fuzz_dir_path) == NULL) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_cleanup);
    return fuzz_dir_path;
}

/* Writes len bytes to path (created or truncated); aborts on failure. */
static inline void fuzz_write_file(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const char *p = data;
    while (fd >= 0 && len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0) break;
        p += n;
        len -= (size_t)n;
    }
    if (fd < 0 || len > 0) {
        perror(path);
        abort();
    }
    close(fd);
}

/* Logs go nowhere, but at debug level, so that every log line the code
 * under test would write is still formatted from the fuzzed data. */
static inline void fuzz_quiet_logs(void) {
    char err[256];
    if (log_open("/dev/null", "fuzz", LOG_DEBUG, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz: %s\n", err);
        abort();
    }
}

/* The admin-defined tools every target that checks job types registers
 * (jobs_load_tools), covering each parameter type, a pattern, a required
 * parameter, placeholders alone and inside larger elements, {job_id},
 * literal braces, env templates, and a tool without an image. */


/* Registers fuzz_tools_json as the process's admin-defined tools. */
static inline void fuzz_load_tools(void) {
    static const char fuzz_tools_json[] =
        "{\"tools\": ["
        "{\"name\": \"segment\", \"description\": \"every kind of parameter\","
        " \"argv\": [\"/bin/true\", \"--image\", \"{image_path}\", \"--out={out_dir}/cells.geojson\","
        "  \"{job_id}\", \"--model\", \"{model}\", \"--n\", \"{n}\", \"--x={x}\", \"{label}\","
        "  \"{flag}\", \"{{literal}}\", \"{cpus}\", \"{work_dir}\"],"
        " \"params\": {"
        "  \"model\": {\"type\": \"enum\", \"choices\": [\"nuclei\", \"cells\"], \"default\": \"nuclei\"},"
        "  \"n\": {\"type\": \"integer\", \"min\": -5, \"max\": 100, \"default\": 3},"
        "  \"x\": {\"type\": \"number\", \"min\": -1, \"max\": 1, \"default\": 0.5},"
        "  \"label\": {\"type\": \"string\", \"default\": \"abc\", \"max_length\": 16},"
        "  \"flag\": {\"type\": \"boolean\", \"default\": false},"
        "  \"words\": {\"type\": \"string\", \"pattern\": \"[a-z]+( [a-z]+)*\", \"required\": true,"
        "            \"max_length\": 40}},"
        " \"env\": {\"WORDS\": \"{words}\", \"SCRATCH\": \"{work_dir}/tmp\"},"
        " \"result\": \"cells.geojson\", \"needs_image\": true, \"timeout_s\": 60},"
        "{\"name\": \"plain\", \"argv\": [\"/bin/true\", \"{word}\", \"{job_id}\"],"
        " \"params\": {\"word\": {\"type\": \"string\", \"required\": true}},"
        " \"result\": \"out.geojson\", \"needs_image\": false}"
        "]}";
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/tools.json", fuzz_dir());
    fuzz_write_file(path, fuzz_tools_json, strlen(fuzz_tools_json));
    if (jobs_load_tools(path, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz: tools fixture: %s\n", err);
        abort();
    }
}

/* A 64 x 64 demo slide (OpenSlide reads it) at path, for fixtures. */
static inline void fuzz_demo_slide(const char *path) {
    demo_options o;
    demo_options_default(&o);
    o.width = o.height = 64;
    o.tile_size = 16;
    o.threads = 1;
    char err[TS_ERRLEN];
    if (demo_slide_write(path, &o, NULL, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "fuzz: demo slide %s: %s\n", path, err);
        abort();
    }
}

/* A NUL-terminated copy of the input (malloc'd; the caller frees it). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (s == NULL) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
