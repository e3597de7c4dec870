/*
 * scratch.c - reusable scratch memory for the image passes (scratch.h).
 */
#include "image/scratch.h"

#include <stdlib.h>

#include "util/util.h"

/* Grows to what is asked for (rounded up to 64 bytes), never shrinks:
 * the passes of one window ask for a few sizes, all bounded by the
 * window, so the block settles at the largest after the first window.
 * The old block is freed rather than reallocated: its contents are not
 * promised, and copying them would touch both. */
void *image_scratch_take(image_scratch *s, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes > s->cap) {
        free(s->block);
        size_t cap = (bytes + 63) / 64 * 64;
        void *p = NULL;
        if (posix_memalign(&p, 64, cap) != 0) p = NULL;
        if (p == NULL) p = ts_malloc(cap); /* aborts with ts_malloc's message */
        s->block = p;
        s->cap = cap;
    }
    return s->block;
}

/* Frees the block; a released scratch may be taken from again. */
void image_scratch_release(image_scratch *s) {
    free(s->block);
    s->block = NULL;
    s->cap = 0;
}
