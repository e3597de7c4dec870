/*
 * fuzz_path.c - the data-root check of image paths at submission
 * (jobs_check with data roots: jobs_resolve_image in src/jobs/images.c,
 * slide_resolve_path and slide_check_path in src/image/slide.c) against a
 * fixture made at start-up in a private directory T:
 *
 *   T/root1/             data root: good.tiff (a 64 x 64 slide), sub/good2.tiff,
 *                        notslide.tiff (text), empty.tiff, "with space.tiff",
 *                        sub/up -> .. , out.tiff -> T/outside/secret.tiff,
 *                        outdir -> T/outside, loop -> loop, abs-in -> T/root1/good.tiff,
 *                        dangling-out -> T/outside/missing.tiff, outdir-rel -> ../outside,
 *                        dangling-in -> missing.tiff, fifo.tiff (a FIFO)
 *   T/realroot2/         inside.tiff; the second data root is T/root2 -> realroot2
 *   T/root1-evil/        evil.tiff (a sibling whose name starts like a root)
 *   T/outside/           secret.tiff (a slide outside every root)
 *
 * The input is an image_path (up to its first NUL or newline); a leading
 * '@' stands for T, so that absolute paths into the fixture are reachable.
 *
 * Oracles beyond the sanitizers:
 *   - slide_resolve_path accepts exactly the paths that exist and whose
 *     canonical form lies inside a root, decided independently by walking
 *     up the canonical path and comparing device and inode with the roots';
 *     what it returns is that canonical path, the same file as the input;
 *   - a refusal more specific than "not found in the data roots" is decided
 *     by a place inside the roots (following symlinks, dangling ones too, in
 *     an independent model): outside them existing and missing paths get
 *     one answer (issue 12, defect 11);
 *   - a FIFO never blocks the check (libFuzzer's timeout would say so);
 *   - jobs_check accepts exactly the paths that resolve to one of the
 *     fixture's slides inside the roots (good, good2, inside), by inode.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_lib.h"
#include "image/slide.h"
#include "jobs/jobs.h"

#define MAX_PATH_INPUT 1024

static char top[512], roots[1200];
static struct stat root_st[2], slide_st[3];
static char real_root[2][PATH_MAX];

/* Makes one fixture entry; aborts if the fixture cannot be built. */
static void must(bool ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_path: fixture: %s: %s\n", what, strerror(errno));
        abort();
    }
}

static char *at(const char *rel) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", top, rel);
    return buf[k];
}

static void build_fixture(void) {
    snprintf(top, sizeof(top), "%s/t", fuzz_dir());
    must(mkdir(top, 0700) == 0, top);
    const char *dirs[] = {"root1", "root1/sub", "realroot2", "root1-evil", "outside"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) must(mkdir(at(dirs[i]), 0700) == 0, dirs[i]);
    fuzz_demo_slide(at("root1/good.tiff"));
    fuzz_demo_slide(at("root1/sub/good2.tiff"));
    fuzz_demo_slide(at("realroot2/inside.tiff"));
    fuzz_demo_slide(at("outside/secret.tiff"));
    fuzz_demo_slide(at("root1-evil/evil.tiff"));
    fuzz_write_file(at("root1/notslide.tiff"), "not a slide\n", 12);
    fuzz_write_file(at("root1/empty.tiff"), "", 0);
    fuzz_write_file(at("root1/with space.tiff"), "II*\0", 4);
    must(symlink("..", at("root1/sub/up")) == 0, "sub/up");
    must(symlink(at("outside/secret.tiff"), at("root1/out.tiff")) == 0, "out.tiff");
    must(symlink(at("outside"), at("root1/outdir")) == 0, "outdir");
    must(symlink("loop", at("root1/loop")) == 0, "loop");
    must(symlink(at("root1/good.tiff"), at("root1/abs-in")) == 0, "abs-in");
    must(symlink("realroot2", at("root2")) == 0, "root2");
    must(symlink(at("outside/missing.tiff"), at("root1/dangling-out")) == 0, "dangling-out");
    must(symlink("../outside", at("root1/outdir-rel")) == 0, "outdir-rel");
    must(symlink("missing.tiff", at("root1/dangling-in")) == 0, "dangling-in");
    must(mkfifo(at("root1/fifo.tiff"), 0600) == 0, "fifo.tiff");
    must(realpath(at("root1"), real_root[0]) != NULL, "realpath root1");
    must(realpath(at("root2"), real_root[1]) != NULL, "realpath root2");
    snprintf(roots, sizeof(roots), "%s:%s", at("root1"), at("root2"));
    must(stat(at("root1"), &root_st[0]) == 0, "stat root1");
    must(stat(at("root2"), &root_st[1]) == 0, "stat root2");
    must(stat(at("root1/good.tiff"), &slide_st[0]) == 0, "stat good");
    must(stat(at("root1/sub/good2.tiff"), &slide_st[1]) == 0, "stat good2");
    must(stat(at("realroot2/inside.tiff"), &slide_st[2]) == 0, "stat inside");
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    build_fixture();
    return 0;
}

static bool same_file(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Is the canonical path real a root or below one? Decided by walking up
 * its directories, without comparing strings with the roots. */
static bool inside_roots(const char *real) {
    char p[PATH_MAX];
    ts_strlcpy(p, real, sizeof(p));
    for (;;) {
        struct stat st;
        if (stat(p, &st) == 0 && (same_file(&st, &root_st[0]) || same_file(&st, &root_st[1])))
            return true;
        char *slash = strrchr(p, '/');
        if (slash == NULL || slash == p) return false;
        *slash = '\0';
    }
}

static bool is_fixture_slide(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return false;
    for (size_t i = 0; i < 3; i++)
        if (same_file(&st, &slide_st[i])) return true;
    return false;
}

/* The input as a path: up to the first NUL or newline, '@' -> T. */
static void input_path(const uint8_t *data, size_t size, char *out, size_t outlen) {
    size_t n = 0;
    while (n < size && n < MAX_PATH_INPUT && data[n] != '\0' && data[n] != '\n') n++;
    char *raw = fuzz_cstr(data, n);
    if (raw[0] == '@')
        snprintf(out, outlen, "%s%s", top, raw + 1);
    else
        ts_strlcpy(out, raw, outlen);
    free(raw);
}

/* The place whose contents decide what resolving path answers: the path
 * is followed component by component, symlinks through readlink (dangling
 * ones too), up to the first component that does not exist; the directory
 * it was looked up in is that place (the resolved path itself when nothing
 * is missing). false on a symlink loop. An independent model of what a
 * refusal can reveal, for the message oracle below. */
static bool verdict_place(const char *path, char out[PATH_MAX]) {
    char pending[3 * PATH_MAX], cur[PATH_MAX] = "";
    int links = 0;
    ts_strlcpy(pending, path, sizeof(pending));
    while (pending[0]) {
        char *p = pending;
        while (*p == '/') p++;
        size_t n = strcspn(p, "/");
        char comp[NAME_MAX + 2];
        if (n > NAME_MAX) break; /* ENAMETOOLONG: decided here */
        memcpy(comp, p, n);
        comp[n] = '\0';
        memmove(pending, p + n, strlen(p + n) + 1);
        if (n == 0 || strcmp(comp, ".") == 0) continue;
        if (strcmp(comp, "..") == 0) {
            char *slash = strrchr(cur, '/');
            if (slash) *slash = '\0';
            continue;
        }
        char cand[PATH_MAX];
        if ((size_t)snprintf(cand, sizeof(cand), "%s/%s", cur, comp) >= sizeof(cand)) break;
        struct stat st;
        if (lstat(cand, &st) != 0) break; /* missing (or under a file): decided in cur */
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX], rest[3 * PATH_MAX];
            ssize_t k = readlink(cand, target, sizeof(target) - 1);
            if (k < 0 || ++links > 40) return false;
            target[k] = '\0';
            snprintf(rest, sizeof(rest), "%s%s", target, pending);
            ts_strlcpy(pending, rest, sizeof(pending));
            if (target[0] == '/') cur[0] = '\0';
            continue;
        }
        ts_strlcpy(cur, cand, sizeof(cur));
        /* Anything after a component that is not a directory - even "/."
         * or "/.." - is ENOTDIR, decided at that component: the kernel
         * never walks back out of a file with "..". */
        if (!S_ISDIR(st.st_mode) && pending[0] != '\0') break;
    }
    ts_strlcpy(out, cur[0] ? cur : "/", PATH_MAX);
    return true;
}

static bool under(const char *p, const char *root) {
    size_t n = strlen(root);
    return strncmp(p, root, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

/* A refusal that says more than "not found in the data roots" (no such
 * file, unreadable, not a directory...) must be about a place inside the
 * roots: outside them one answer for what exists and what does not (issue
 * 12, defect 11), also through symlinks. */
static void check_message(const char *resolved, const char *err) {
    char place[PATH_MAX];
    if (strncmp(err, "not found in the data roots", 27) == 0 || resolved[0] != '/' ||
        !verdict_place(resolved, place))
        return;
    FUZZ_CHECK(under(place, real_root[0]) || under(place, real_root[1]),
               "\"%s\" is decided in %s, outside the roots, and the refusal says \"%s\"", resolved,
               place, err);
}

static void check_resolve(const char *resolved) {
    char real[PATH_MAX], err[TS_ERRLEN], canon[PATH_MAX];
    int rc = slide_resolve_path(resolved, roots, real, err, sizeof(err));
    bool exists = resolved[0] == '/' && realpath(resolved, canon) != NULL;
    bool want = exists && inside_roots(canon);
    FUZZ_CHECK((rc == TS_OK) == want, "slide_resolve_path(\"%s\") = %d (%s), expected %s", resolved,
               rc, rc == TS_OK ? real : err, want ? "inside" : "refused");
    if (rc != TS_OK) {
        check_message(resolved, err);
        return;
    }
    FUZZ_CHECK(strcmp(real, canon) == 0, "resolved to %s, canonical is %s", real, canon);
    struct stat a, b;
    FUZZ_CHECK(stat(resolved, &a) == 0 && stat(real, &b) == 0 && same_file(&a, &b),
               "%s and %s are not the same file", resolved, real);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[MAX_PATH_INPUT + 600], resolved[4096], err[TS_ERRLEN];
    input_path(data, size, path, sizeof(path));
    if (path[0] == '\0') return 0;
    jobs_resolve_image(path, roots, resolved, sizeof(resolved));
    check_resolve(resolved);
    jobs_check_ctx ctx = {.data_roots = roots};
    int rc = jobs_check(&ctx, "job", "tissue_mask", NULL, path, err, sizeof(err));
    bool slide = is_fixture_slide(resolved);
    FUZZ_CHECK(rc != TS_OK || slide,
               "image_path \"%s\" (%s) accepted, not a slide inside the roots", path, resolved);
    FUZZ_CHECK(rc == TS_OK || !slide, "image_path \"%s\" (%s), a slide inside the roots, refused: %s",
               path, resolved, err);
    FUZZ_CHECK(rc == TS_OK || err[0] != '\0', "refused without a message");
    return 0;
}
