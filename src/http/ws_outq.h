/*
 * ws_outq.h - event frames shared by every connection that receives them,
 * and the per-connection queue of frames still to be written (the hub's
 * fan-out, ws_hub.c; issue 16).
 *
 * A ws_frame is one complete server-to-client WebSocket text frame (RFC
 * 6455 §5.2: FIN, opcode 1, unmasked, the payload length in its shortest
 * form, then the payload), built once per event and reference-counted, so
 * that fanning an event out to N connections costs N pointer pushes instead
 * of N copies and N frame headers.
 *
 * A ws_outq is a growable ring of frame references plus how much of the
 * first one was already written. It hands out iovecs for one writev/sendmsg
 * covering as many queued frames as fit, and takes back the number of bytes
 * the kernel accepted; frames fully written are released. The ring keeps
 * its capacity between bursts (no allocation per event once it is warm) and
 * gives it back when it drains after a burst that grew it beyond
 * WS_OUTQ_KEEP entries (a replay), so an idle connection stays small.
 *
 * Pure memory handling, no I/O; single-threaded (the hub's thread): the
 * reference count is not atomic.
 */
#ifndef TESSERA_HTTP_WS_OUTQ_H
#define TESSERA_HTTP_WS_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define WS_OUTQ_KEEP 64 /* ring entries an empty queue may keep */

typedef struct ws_frame {
    size_t refs;
    size_t len;      /* header + payload */
    uint8_t bytes[]; /* the frame as it goes on the wire */
} ws_frame;

/* A text frame holding payload[0..len), one reference (the caller's). */
ws_frame *ws_frame_text(const char *payload, size_t len);
ws_frame *ws_frame_ref(ws_frame *f);
/* Drops one reference; frees the frame with the last. NULL is ignored. */
void ws_frame_unref(ws_frame *f);

typedef struct ws_outq {
    ws_frame **ring;
    size_t cap, head, count;
    size_t head_off; /* bytes of ring[head] already written */
    size_t bytes;    /* unwritten bytes of every queued frame */
} ws_outq;

/* An empty queue; a zeroed ws_outq is one too. */
void ws_outq_init(ws_outq *q);
/* Releases every queued frame and the ring. */
void ws_outq_free(ws_outq *q);

/* Appends f (takes a reference of its own). */
void ws_outq_push(ws_outq *q, ws_frame *f);

static inline bool ws_outq_empty(const ws_outq *q) {
    return q->count == 0;
}

/* Unwritten bytes of the queued frames. */
static inline size_t ws_outq_bytes(const ws_outq *q) {
    return q->bytes;
}

/* Is the first frame partly written? Nothing else may be written to the
 * socket before it is finished, or the client's parser would be lost. */
static inline bool ws_outq_partial(const ws_outq *q) {
    return q->count > 0 && q->head_off > 0;
}

/* Fills iov[0..max) with the unwritten bytes of the first frames, in order;
 * returns how many entries were filled (0 when empty). */
size_t ws_outq_iov(const ws_outq *q, struct iovec *iov, size_t max);

/* n bytes from the front were written: frames completely written leave the
 * queue (released); a partly written one stays with head_off set. n must
 * not exceed ws_outq_bytes(). */
void ws_outq_consume(ws_outq *q, size_t n);

/* Releases every frame not started yet and keeps a partly written first
 * frame (it must still be finished). For a connection that is closing: no
 * data frame may follow its close frame. */
void ws_outq_drop_unstarted(ws_outq *q);

#endif
