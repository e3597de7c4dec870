/*
 * scratch.h - reusable scratch memory for the image passes (issue 15).
 *
 * A pass that needs temporary arrays takes them from an image_scratch
 * instead of malloc and free: the block is kept between calls (grown when
 * a call needs more), so a worker that segments window after window
 * touches fresh pages only on its first window. With glibc, a worker
 * thread's large frees go back to the kernel (its arena's heaps are
 * unmapped or trimmed), and every window then page-faulted its temporary
 * arrays afresh: ~144,000 faults per 64 windows, the pipeline 3x slower
 * than on the main thread.
 */
#ifndef TS_IMAGE_SCRATCH_H
#define TS_IMAGE_SCRATCH_H

#include <stddef.h>

typedef struct image_scratch {
    void *block;
    size_t cap;
} image_scratch;

/* At least bytes bytes (64-byte aligned; from 2 MB on, whole 2 MB pages
 * aligned to them and advised for transparent huge pages; only malloc's
 * 16 bytes should posix_memalign fail), valid until the next take or
 * release on s; the contents are not kept (callers must not rely on
 * them). Aborts like ts_malloc when memory runs out. */
void *image_scratch_take(image_scratch *s, size_t bytes);

/* Frees the block; s is empty (and reusable) afterwards. */
void image_scratch_release(image_scratch *s);

#endif
