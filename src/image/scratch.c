/*
 * scratch.c - reusable scratch memory for the image passes (scratch.h).
 */
#include "image/scratch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "util/util.h"

/* Blocks from this size on are aligned to it and advised for
 * transparent huge pages, as cellseg_ws_new's block is. */
#define SCRATCH_HUGE_PAGE ((size_t)2 << 20)

/* Grows to what is asked for, never shrinks: the passes of one window ask
 * for a few sizes, all bounded by the window, so the block settles at the
 * largest after the first window. The old block is freed rather than
 * reallocated: its contents are not promised, and copying them would
 * touch both. A large block is rounded up to whole 2 MB pages, aligned to
 * them and advised for huge pages (advice only), so that first touching
 * it in a worker's first window costs a few faults per 2 MB instead of
 * 512 (a worker thread's 64-window run: 4,400 faults in 4 KB pages, 400
 * with this; the zeroing of fresh pages, ~0.1 s, remains either way).
 * Should posix_memalign fail, ts_malloc's block (16-byte aligned) is
 * taken, or ts_malloc aborts as everywhere when memory runs out. */
void *image_scratch_take(image_scratch *s, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes > s->cap) {
        free(s->block);
        s->block = NULL;
        bool huge = bytes >= SCRATCH_HUGE_PAGE;
        size_t align = huge ? SCRATCH_HUGE_PAGE : 64, cap = (bytes + align - 1) / align * align;
        void *p = NULL;
        if (posix_memalign(&p, align, cap) != 0) p = ts_malloc(cap);
#ifdef MADV_HUGEPAGE
        else if (huge)
            madvise(p, cap, MADV_HUGEPAGE);
#endif
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
