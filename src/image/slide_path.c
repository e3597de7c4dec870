/*
 * slide_path.c - see slide_path.h. Moved out of slide.c unchanged in
 * behaviour: the same rules and the same messages, without OpenSlide.
 */
#include "image/slide_path.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

/* See slide_path.h. */
void slide_path_explain(int e, char *err, size_t errlen) {
    if (e == ENOENT || e == ENOTDIR)
        ts_errf(err, errlen, "no such file");
    else if (e == EACCES || e == EPERM)
        ts_errf(err, errlen, "unreadable: %s", strerror(e));
    else if (e == ENXIO)
        ts_errf(err, errlen, "not a regular file (a socket or a device without a driver)");
    else
        ts_errf(err, errlen, "cannot open: %s", strerror(e));
}

/* What kind of special file st is, for the message refusing it. */
static const char *file_kind(const struct stat *st) {
    if (S_ISDIR(st->st_mode)) return "a directory";
    if (S_ISFIFO(st->st_mode)) return "a FIFO";
    if (S_ISSOCK(st->st_mode)) return "a socket";
    if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) return "a device";
    if (S_ISLNK(st->st_mode)) return "a symlink";
    return "a special file";
}

/* True when the resolved path lies inside the resolved root: equal to it
 * or below it (a prefix ending at a '/'). */
static bool path_under(const char *real, const char *root) {
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return true;
    return strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

/* Is the resolved path inside one of the colon-separated roots (each
 * resolved too)? */
static bool inside_roots(const char *real, const char *data_roots) {
    char *roots = ts_strdup(data_roots ? data_roots : "");
    bool inside = false;
    char *save = NULL;
    for (char *r = strtok_r(roots, ":", &save); r && !inside; r = strtok_r(NULL, ":", &save)) {
        char real_root[PATH_MAX];
        if (realpath(r, real_root) != NULL && path_under(real, real_root)) inside = true;
    }
    free(roots);
    return inside;
}

/* For a path that does not resolve: is it missing *inside* the roots? Its
 * nearest ancestor that does resolve must lie inside one, and the entry
 * below that ancestor must not exist at all, so that saying "no such file"
 * tells nothing about any place outside them. An entry that exists there
 * is a symlink that does not resolve (dangling, or a loop): where it leads
 * may be outside, and whether that place exists is none of the caller's
 * business (found by tests/fuzz/fuzz_path). */
static bool missing_inside_roots(const char *path, const char *data_roots) {
    char *dir = ts_strdup(path), *below = ts_strdup(path), real[PATH_MAX];
    bool inside = false;
    struct stat st;
    for (char *slash = strrchr(dir, '/'); slash != NULL; slash = strrchr(dir, '/')) {
        if (slash == dir) slash[1] = '\0';
        else *slash = '\0';
        if (realpath(dir, real) != NULL) {
            inside = inside_roots(real, data_roots) && lstat(below, &st) != 0;
            break;
        }
        if (slash == dir) break;
        ts_strlcpy(below, dir, strlen(path) + 1);
    }
    free(dir);
    free(below);
    return inside;
}

/*
 * See slide.h. Outside the roots one message answers both a file that
 * exists and one that does not (issue 12, defect 11): a tenant must not
 * learn what exists elsewhere on the machine by submitting paths. Inside
 * the roots the reason is given ("no such file", "unreadable: ...").
 */
int slide_resolve_path(const char *path, const char *data_roots, char *real, char *err,
                       size_t errlen) {
    if (path[0] != '/') {
        ts_errf(err, errlen, "must be an absolute path");
        return TS_ERR;
    }
    if (realpath(path, real) == NULL) {
        int e = errno;
        if (missing_inside_roots(path, data_roots)) {
            slide_path_explain(e, err, errlen);
            return TS_ERR;
        }
    } else if (inside_roots(real, data_roots)) {
        return TS_OK;
    }
    ts_errf(err, errlen, "not found in the data roots (%s)",
            data_roots && data_roots[0] ? data_roots : "none configured");
    return TS_ERR;
}

/* See slide_path.h: a directory on the way replaced by a symlink between
 * realpath() and open() shows as another name in /proc/self/fd. */
int slide_path_open(const char *real, int *fd, char *err, size_t errlen) {
    char link[64], now[PATH_MAX];
    *fd = open(real, SLIDE_OPEN_FLAGS | O_NOFOLLOW);
    if (*fd < 0) {
        if (errno == ELOOP)
            ts_errf(err, errlen, "changed while it was being opened (now a symlink): try again");
        else
            slide_path_explain(errno, err, errlen);
        return TS_ERR;
    }
    snprintf(link, sizeof(link), "/proc/self/fd/%d", *fd);
    ssize_t n = readlink(link, now, sizeof(now) - 1);
    if (n < 0) return TS_OK; /* no /proc: O_NOFOLLOW and the roots check stand */
    now[n] = '\0';
    if (strcmp(now, real) == 0) return TS_OK;
    close(*fd);
    *fd = -1;
    ts_errf(err, errlen, "changed while it was being opened: try again");
    return TS_ERR;
}

int slide_path_regular(int fd, struct stat *st, char *err, size_t errlen) {
    if (fstat(fd, st) != 0) {
        slide_path_explain(errno, err, errlen);
        return TS_ERR;
    }
    if (!S_ISREG(st->st_mode)) {
        ts_errf(err, errlen, "not a regular file (%s)", file_kind(st));
        return TS_ERR;
    }
    return TS_OK;
}

int slide_check_file(const char *path, const char *data_roots, char *real, char *err,
                     size_t errlen) {
    int fd;
    struct stat st;
    if (slide_resolve_path(path, data_roots, real, err, errlen) != TS_OK) return TS_ERR;
    if (slide_path_open(real, &fd, err, errlen) != TS_OK) return TS_ERR;
    int rc = slide_path_regular(fd, &st, err, errlen);
    close(fd);
    return rc;
}
