/*
 * test_liveness.c - the master's view of its children's progress
 * (src/util/liveness.c): lanes that stop turning, handler calls that last
 * too long, a board shared across fork, slots taken and given back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/liveness.h"
#include "util/util.h"

static liveness_board *new_board(size_t n) {
    char err[TS_ERRLEN];
    liveness_board *b = liveness_board_create(n, err, sizeof(err));
    if (!b) fail_msg("%s", err);
    return b;
}

/* A fresh slot counts as having just turned its main loop; silence past
 * the limit is a stall, named by lane. */
static void test_liveness_silent_lane_is_a_stall(void **state) {
    (void)state;
    liveness_board *b = new_board(2);
    liveness_slot *s = liveness_slot_take(b);
    assert_non_null(s);
    char why[300];
    assert_false(liveness_stalled(s, 0.2, 60, why, sizeof(why)));
    usleep(300000);
    assert_true(liveness_stalled(s, 0.2, 60, why, sizeof(why)));
    assert_non_null(strstr(why, "its main loop has not turned for"));
    liveness_tick(s, LIVENESS_MAIN);
    assert_false(liveness_stalled(s, 0.2, 60, why, sizeof(why)));
    liveness_tick(s, LIVENESS_WEBSOCKET);
    usleep(300000);
    liveness_tick(s, LIVENESS_MAIN);
    assert_true(liveness_stalled(s, 0.2, 60, why, sizeof(why)));
    assert_non_null(strstr(why, "its WebSocket loop has not turned"));
    liveness_board_destroy(b);
}

/* A handler call older than the limit is a stall that names it; ended
 * calls and younger ones are not. */
static void test_liveness_old_request_is_a_stall(void **state) {
    (void)state;
    liveness_board *b = new_board(1);
    liveness_slot *s = liveness_slot_take(b);
    char why[300];
    int quick = liveness_request_begin(s, "GET /api/queue");
    int stuck = liveness_request_begin(s, "GET /api/slides/thumbnail\n\x01");
    assert_true(quick >= 0 && stuck >= 0 && quick != stuck);
    liveness_request_end(s, quick);
    usleep(250000);
    liveness_tick(s, LIVENESS_MAIN);
    int young = liveness_request_begin(s, "POST /api/workflows");
    assert_true(liveness_stalled(s, 60, 0.2, why, sizeof(why)));
    assert_non_null(strstr(why, "a request has been in its handler for"));
    assert_non_null(strstr(why, "GET /api/slides/thumbnail??"));
    liveness_request_end(s, stuck);
    assert_false(liveness_stalled(s, 60, 0.2, why, sizeof(why)));
    liveness_request_end(s, young);
    liveness_board_destroy(b);
}

/* More calls at once than entries: the extra ones are not watched, and
 * every entry is free again after they end. */
static void test_liveness_requests_beyond_entries(void **state) {
    (void)state;
    liveness_board *b = new_board(1);
    liveness_slot *s = liveness_slot_take(b);
    int h[LIVENESS_REQUESTS + 1];
    for (int i = 0; i < LIVENESS_REQUESTS; i++) assert_true((h[i] = liveness_request_begin(s, "x")) >= 0);
    assert_int_equal(liveness_request_begin(s, "one too many"), -1);
    for (int i = 0; i < LIVENESS_REQUESTS; i++) liveness_request_end(s, h[i]);
    assert_true(liveness_request_begin(s, "again") >= 0);
    assert_int_equal(liveness_request_begin(NULL, "no slot"), -1);
    liveness_request_end(NULL, 3);
    liveness_tick(NULL, LIVENESS_MAIN);
    liveness_board_destroy(b);
}

/* Slots run out, come back when released, and come back cleared. */
static void test_liveness_slots_taken_and_released(void **state) {
    (void)state;
    liveness_board *b = new_board(2);
    liveness_slot *a = liveness_slot_take(b), *c = liveness_slot_take(b);
    assert_non_null(a);
    assert_non_null(c);
    assert_ptr_not_equal(a, c);
    assert_null(liveness_slot_take(b));
    liveness_request_begin(a, "left over");
    liveness_slot_release(a);
    liveness_slot *again = liveness_slot_take(b);
    assert_ptr_equal(again, a);
    char why[300];
    usleep(50000);
    assert_false(liveness_stalled(again, 60, 0.01, why, sizeof(why)));
    liveness_board_destroy(b);
}

/* What a forked child writes, the parent sees. */
static void test_liveness_shared_across_fork(void **state) {
    (void)state;
    liveness_board *b = new_board(1);
    liveness_slot *s = liveness_slot_take(b);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        liveness_request_begin(s, "GET /from/the/child");
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    usleep(50000);
    char why[300];
    assert_true(liveness_stalled(s, 60, 0.01, why, sizeof(why)));
    assert_non_null(strstr(why, "GET /from/the/child"));
    liveness_board_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_liveness_silent_lane_is_a_stall),
        cmocka_unit_test(test_liveness_old_request_is_a_stall),
        cmocka_unit_test(test_liveness_requests_beyond_entries),
        cmocka_unit_test(test_liveness_slots_taken_and_released),
        cmocka_unit_test(test_liveness_shared_across_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
