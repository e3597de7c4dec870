/*
 * slide_path.h - where a slide may be, and that it is a regular file:
 * the part of the slide checks that needs no image library (slide.h has
 * the rest and includes this header).
 *
 * Kept apart from OpenSlide so that tessera-runner, the small runner
 * binary for the job types that never read pixels (Makefile, local.c),
 * can check a job's image again when the job starts without linking the
 * image libraries.
 */
#ifndef TESSERA_IMAGE_SLIDE_PATH_H
#define TESSERA_IMAGE_SLIDE_PATH_H

#include <fcntl.h>
#include <stddef.h>
#include <sys/stat.h>

/* How a slide's file is opened: a FIFO or a device cannot block the open,
 * and the fd does not leak into children. */
#define SLIDE_OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)

/* The location check plus the file check, without OpenSlide: path
 * resolves inside data_roots (into real, PATH_MAX bytes) to a regular file,
 * opened as slide_open_checked opens it. For the job runner, which checks
 * again when a job starts what was checked at submission, and for tools,
 * which open the image themselves by the real path. TS_OK / TS_ERR with
 * the messages of slide_check_path. */
int slide_check_file(const char *path, const char *data_roots, char *real, char *err,
                     size_t errlen);

/* Only the location part of the check: path absolute, resolved (symlinks
 * followed) into real (PATH_MAX bytes), inside one of data_roots. Opens
 * nothing; cheap enough to run on every request. Outside the roots, an
 * existing and a missing path get the same message, "not found in the data
 * roots (...)", so that nothing is learnt about files elsewhere; a missing
 * file inside them is "no such file". TS_OK / TS_ERR. */
int slide_resolve_path(const char *path, const char *data_roots, char *real, char *err,
                       size_t errlen);

/* For slide.c, which opens what these functions checked. */

/* Writes why open() of a slide failed (errno e) in the user's terms: "no
 * such file", "unreadable: ...", "not a regular file (...)". */
void slide_path_explain(int e, char *err, size_t errlen);

/* Opens the resolved path real (SLIDE_OPEN_FLAGS) without following a
 * symlink at its end, and makes sure the fd is still that path (a
 * directory on the way swapped for a symlink shows in /proc/self/fd).
 * *fd >= 0 on TS_OK; TS_ERR with the reason ("changed while it was being
 * opened: try again", ...). */
int slide_path_open(const char *real, int *fd, char *err, size_t errlen);

/* fstat of fd into *st; TS_ERR unless it is a regular file, with the kind
 * of file it is ("not a regular file (a FIFO)"). Does not close fd. */
int slide_path_regular(int fd, struct stat *st, char *err, size_t errlen);

#endif
