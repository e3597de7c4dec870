/*
 * test_ws_outq.c - shared event frames and per-connection frame queues
 * (src/http/ws_outq.h): the frame header in its three length forms (RFC
 * 6455 §5.2), reference counting across queues, iovecs in order with a
 * partly written first frame, consuming across frame boundaries, dropping
 * what a closing connection has not started, and the ring growing, wrapping
 * and giving its memory back once drained.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/ws_outq.h"

/* The bytes the iovecs describe, concatenated (malloc'd). */
static uint8_t *flatten(const ws_outq *q, size_t max, size_t *len) {
    struct iovec iov[256];
    size_t n = ws_outq_iov(q, iov, max < 256 ? max : 256);
    *len = 0;
    for (size_t i = 0; i < n; i++) *len += iov[i].iov_len;
    uint8_t *out = malloc(*len + 1), *p = out;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    return out;
}

static void test_header_forms(void **state) {
    (void)state;
    const struct {
        size_t len, hlen;
        uint8_t b1;
    } cases[] = {{0, 2, 0}, {125, 2, 125}, {126, 4, 126}, {65535, 4, 126}, {65536, 10, 127}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char *payload = malloc(cases[k].len + 1);
        memset(payload, 'p', cases[k].len);
        ws_frame *f = ws_frame_text(payload, cases[k].len);
        assert_int_equal(f->len, cases[k].hlen + cases[k].len);
        assert_int_equal(f->bytes[0], 0x81); /* FIN, text, no RSV bits */
        assert_int_equal(f->bytes[1], cases[k].b1); /* no mask bit: server frame */
        uint64_t declared = cases[k].b1;
        if (cases[k].hlen == 4) declared = ((uint64_t)f->bytes[2] << 8) | f->bytes[3];
        if (cases[k].hlen == 10) {
            declared = 0;
            for (int i = 0; i < 8; i++) declared = (declared << 8) | f->bytes[2 + i];
        }
        assert_int_equal(declared, cases[k].len);
        assert_memory_equal(f->bytes + cases[k].hlen, payload, cases[k].len);
        ws_frame_unref(f);
        free(payload);
    }
}

/* One frame in two queues: each holds a reference, the caller's goes, and
 * the bytes stay valid until the last queue lets go (ASan checks). */
static void test_shared_between_queues(void **state) {
    (void)state;
    ws_outq a, b;
    ws_outq_init(&a);
    ws_outq_init(&b);
    ws_frame *f = ws_frame_text("{\"seq\":1}", 9);
    ws_outq_push(&a, f);
    ws_outq_push(&b, f);
    assert_int_equal(f->refs, 3);
    ws_frame_unref(f);
    assert_int_equal(ws_outq_bytes(&a), 11);
    ws_outq_consume(&a, 11);
    assert_true(ws_outq_empty(&a));
    assert_int_equal(f->refs, 1);
    size_t len = 0;
    uint8_t *got = flatten(&b, 8, &len);
    assert_int_equal(len, 11);
    assert_memory_equal(got + 2, "{\"seq\":1}", 9);
    free(got);
    ws_outq_free(&b);
    ws_outq_free(&a);
}

/* Partial writes: iovecs start inside the first frame, byte counts follow. */
static void test_partial_consume(void **state) {
    (void)state;
    ws_outq q;
    ws_outq_init(&q);
    const char *texts[] = {"alpha", "bravo!", "charlie"};
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        ws_frame *f = ws_frame_text(texts[i], strlen(texts[i]));
        total += f->len;
        ws_outq_push(&q, f);
        ws_frame_unref(f);
    }
    size_t len = 0;
    uint8_t *all = flatten(&q, 8, &len);
    assert_int_equal(len, total);
    assert_false(ws_outq_partial(&q));

    ws_outq_consume(&q, 3); /* into "alpha" (2-byte header) */
    assert_true(ws_outq_partial(&q));
    assert_int_equal(ws_outq_bytes(&q), total - 3);
    uint8_t *rest = flatten(&q, 8, &len);
    assert_int_equal(len, total - 3);
    assert_memory_equal(rest, all + 3, len);
    free(rest);

    ws_outq_consume(&q, 7 - 3 + 2); /* the rest of "alpha" and bravo's header */
    assert_true(ws_outq_partial(&q));
    rest = flatten(&q, 1, &len); /* max 1 entry: only the first frame */
    assert_int_equal(len, 6);
    assert_memory_equal(rest, "bravo!", 6);
    free(rest);

    ws_outq_consume(&q, ws_outq_bytes(&q));
    assert_true(ws_outq_empty(&q));
    assert_false(ws_outq_partial(&q));
    assert_int_equal(ws_outq_bytes(&q), 0);
    free(all);
    ws_outq_free(&q);
}

/* A closing connection finishes the frame it started and nothing else. */
static void test_drop_unstarted(void **state) {
    (void)state;
    ws_outq q;
    ws_outq_init(&q);
    for (int i = 0; i < 5; i++) {
        ws_frame *f = ws_frame_text("0123456789", 10);
        ws_outq_push(&q, f);
        ws_frame_unref(f);
    }
    ws_outq_drop_unstarted(&q); /* nothing started: all go */
    assert_true(ws_outq_empty(&q));
    assert_int_equal(ws_outq_bytes(&q), 0);

    for (int i = 0; i < 5; i++) {
        ws_frame *f = ws_frame_text("0123456789", 10);
        ws_outq_push(&q, f);
        ws_frame_unref(f);
    }
    ws_outq_consume(&q, 4);
    ws_outq_drop_unstarted(&q);
    assert_false(ws_outq_empty(&q));
    assert_int_equal(ws_outq_bytes(&q), 8); /* 12 - 4 of the first frame */
    size_t len = 0;
    uint8_t *rest = flatten(&q, 8, &len);
    assert_int_equal(len, 8);
    assert_memory_equal(rest, "23456789", 8);
    free(rest);
    ws_outq_consume(&q, 8);
    assert_true(ws_outq_empty(&q));
    ws_outq_free(&q);
}

/* Many frames pushed while the front is consumed: the ring wraps and
 * grows with the order kept; once drained after a burst larger than
 * WS_OUTQ_KEEP it gives its memory back, a small one keeps it. */
static void test_ring_wraps_grows_shrinks(void **state) {
    (void)state;
    ws_outq q;
    ws_outq_init(&q);
    char text[32];
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 7; i++) {
            int n = snprintf(text, sizeof(text), "event %d", next_in++);
            ws_frame *f = ws_frame_text(text, (size_t)n);
            ws_outq_push(&q, f);
            ws_frame_unref(f);
        }
        for (int i = 0; i < 5; i++) { /* one frame at a time, checked */
            struct iovec iov[1];
            assert_int_equal(ws_outq_iov(&q, iov, 1), 1);
            int n = snprintf(text, sizeof(text), "event %d", next_out++);
            assert_int_equal(iov[0].iov_len, (size_t)n + 2);
            assert_memory_equal((uint8_t *)iov[0].iov_base + 2, text, (size_t)n);
            ws_outq_consume(&q, iov[0].iov_len);
        }
    }
    assert_int_equal(q.count, 100);
    assert_true(q.cap > WS_OUTQ_KEEP);
    ws_outq_consume(&q, ws_outq_bytes(&q));
    assert_true(ws_outq_empty(&q));
    assert_null(q.ring);
    assert_int_equal(q.cap, 0);

    ws_frame *f = ws_frame_text("x", 1);
    ws_outq_push(&q, f);
    ws_outq_consume(&q, f->len);
    assert_non_null(q.ring); /* a small ring is kept for the next event */
    ws_frame_unref(f);
    ws_outq_free(&q);
    assert_null(q.ring);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_forms),
        cmocka_unit_test(test_shared_between_queues),
        cmocka_unit_test(test_partial_consume),
        cmocka_unit_test(test_drop_unstarted),
        cmocka_unit_test(test_ring_wraps_grows_shrinks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
