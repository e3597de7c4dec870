/*
 * ws_outq.c - shared event frames and per-connection frame queues; see
 * ws_outq.h for the contract.
 */
#include "http/ws_outq.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define FIRST_CAP 8

/* The header of a final, unmasked text frame for a payload of len bytes:
 * 2, 4 or 10 bytes (RFC 6455 §5.2: 7-bit length, or 126 and 16 bits, or
 * 127 and 64 bits, in network order). */
static size_t text_header(uint8_t *h, uint64_t len) {
    h[0] = 0x81; /* FIN + opcode 1 (text) */
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

ws_frame *ws_frame_text(const char *payload, size_t len) {
    uint8_t header[10];
    size_t hlen = text_header(header, len);
    ws_frame *f = ts_malloc(sizeof(*f) + hlen + len);
    f->refs = 1;
    f->len = hlen + len;
    memcpy(f->bytes, header, hlen);
    if (len > 0) memcpy(f->bytes + hlen, payload, len);
    return f;
}

ws_frame *ws_frame_ref(ws_frame *f) {
    f->refs++;
    return f;
}

void ws_frame_unref(ws_frame *f) {
    if (f != NULL && --f->refs == 0) free(f);
}

void ws_outq_init(ws_outq *q) {
    memset(q, 0, sizeof(*q));
}

static ws_frame *at(const ws_outq *q, size_t i) {
    return q->ring[(q->head + i) % q->cap];
}

/* An empty queue that grew for a burst (a long replay) gives the ring back:
 * ten thousand idle connections must not each keep the memory of their
 * largest burst. */
static void shrink_if_idle(ws_outq *q) {
    if (q->count > 0) return;
    q->head = q->head_off = 0;
    if (q->cap <= WS_OUTQ_KEEP) return;
    free(q->ring);
    q->ring = NULL;
    q->cap = 0;
}

void ws_outq_free(ws_outq *q) {
    for (size_t i = 0; i < q->count; i++) ws_frame_unref(at(q, i));
    free(q->ring);
    ws_outq_init(q);
}

/* Doubles the ring, unrolling it so that the first frame is at index 0. */
static void grow(ws_outq *q) {
    size_t cap = q->cap ? q->cap * 2 : FIRST_CAP;
    ws_frame **ring = ts_malloc(cap * sizeof(*ring));
    for (size_t i = 0; i < q->count; i++) ring[i] = at(q, i);
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

void ws_outq_push(ws_outq *q, ws_frame *f) {
    if (q->count == q->cap) grow(q);
    q->ring[(q->head + q->count) % q->cap] = ws_frame_ref(f);
    q->count++;
    q->bytes += f->len;
}

size_t ws_outq_iov(const ws_outq *q, struct iovec *iov, size_t max) {
    size_t n = q->count < max ? q->count : max;
    for (size_t i = 0; i < n; i++) {
        ws_frame *f = at(q, i);
        size_t off = i == 0 ? q->head_off : 0;
        iov[i].iov_base = f->bytes + off;
        iov[i].iov_len = f->len - off;
    }
    return n;
}

/* Takes the first frame off the queue (it was written, or is dropped). */
static void pop_front(ws_outq *q) {
    ws_frame *f = q->ring[q->head];
    q->bytes -= f->len - q->head_off;
    ws_frame_unref(f);
    q->head = (q->head + 1) % q->cap;
    q->head_off = 0;
    q->count--;
}

void ws_outq_consume(ws_outq *q, size_t n) {
    while (n > 0 && q->count > 0) {
        size_t left = q->ring[q->head]->len - q->head_off;
        if (n < left) {
            q->head_off += n;
            q->bytes -= n;
            return;
        }
        n -= left;
        pop_front(q);
    }
    shrink_if_idle(q);
}

void ws_outq_drop_unstarted(ws_outq *q) {
    size_t keep = ws_outq_partial(q) ? 1 : 0;
    while (q->count > keep) {
        size_t last = (q->head + q->count - 1) % q->cap;
        q->bytes -= q->ring[last]->len;
        ws_frame_unref(q->ring[last]);
        q->count--;
    }
    shrink_if_idle(q);
}
