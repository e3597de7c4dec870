/*
 * liveness.c - see liveness.h.
 *
 * A request entry is claimed by moving its start time from 0 (free) to -1
 * (being filled) with a compare-and-swap, so two threads never share one;
 * its text is written while it is -1 and the start time is published last,
 * so the master only reads text whose start time it has seen. The text of
 * an entry that ends and is reused while the master copies it may come out
 * mixed; the master only reads it for a call that is stuck, whose entry
 * does not change.
 */
#include "util/liveness.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util/util.h"

struct liveness_slot {
    atomic_bool taken;                                 /* the master's bookkeeping */
    _Atomic int64_t lane_us[LIVENESS_LANES];           /* last turn; 0 = lane unused */
    _Atomic int64_t started_us[LIVENESS_REQUESTS];     /* 0 = free, -1 = being filled */
    _Atomic uint64_t untracked;                        /* calls that found no free entry */
    char what[LIVENESS_REQUESTS][LIVENESS_WHAT];
};

struct liveness_board {
    size_t n_slots;
    size_t bytes; /* of the whole mapping, this header included */
    liveness_slot slots[];
};

static const char *const lane_names[LIVENESS_LANES] = {"main loop", "WebSocket loop"};

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

liveness_board *liveness_board_create(size_t n_slots, char *err, size_t errlen) {
    size_t bytes = sizeof(liveness_board) + n_slots * sizeof(liveness_slot);
    void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        ts_errf(err, errlen, "cannot map the liveness board (%zu bytes): %s", bytes,
                strerror(errno));
        return NULL;
    }
    liveness_board *b = map; /* zero-filled by mmap: every slot free */
    b->n_slots = n_slots;
    b->bytes = bytes;
    return b;
}

void liveness_board_destroy(liveness_board *b) {
    if (b) munmap(b, b->bytes);
}

liveness_slot *liveness_slot_take(liveness_board *b) {
    for (size_t i = 0; b && i < b->n_slots; i++) {
        liveness_slot *s = &b->slots[i];
        bool expected = false;
        if (!atomic_compare_exchange_strong(&s->taken, &expected, true)) continue;
        for (int l = 0; l < LIVENESS_LANES; l++) atomic_store(&s->lane_us[l], 0);
        for (int r = 0; r < LIVENESS_REQUESTS; r++) atomic_store(&s->started_us[r], 0);
        atomic_store(&s->untracked, 0);
        atomic_store(&s->lane_us[LIVENESS_MAIN], now_us());
        return s;
    }
    return NULL;
}

void liveness_slot_release(liveness_slot *s) {
    if (s) atomic_store(&s->taken, false);
}

void liveness_tick(liveness_slot *s, liveness_lane lane) {
    if (s && lane >= 0 && lane < LIVENESS_LANES)
        atomic_store_explicit(&s->lane_us[lane], now_us(), memory_order_relaxed);
}

/* Copies what into an entry as printable ASCII (the master's log is JSON,
 * and a path may hold any bytes). */
static void copy_what(char *dst, const char *what) {
    size_t n = 0;
    for (; what && what[n] && n < LIVENESS_WHAT - 1; n++) {
        unsigned char c = (unsigned char)what[n];
        dst[n] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    dst[n] = '\0';
}

int liveness_request_begin(liveness_slot *s, const char *what) {
    if (s == NULL) return -1;
    for (int i = 0; i < LIVENESS_REQUESTS; i++) {
        int64_t expected = 0;
        if (!atomic_compare_exchange_strong(&s->started_us[i], &expected, -1)) continue;
        copy_what(s->what[i], what);
        atomic_store(&s->started_us[i], now_us());
        return i;
    }
    atomic_fetch_add(&s->untracked, 1);
    return -1;
}

void liveness_request_end(liveness_slot *s, int handle) {
    if (s && handle >= 0 && handle < LIVENESS_REQUESTS) atomic_store(&s->started_us[handle], 0);
}

bool liveness_stalled(const liveness_slot *s, double loop_limit_s, double request_limit_s,
                      char *why, size_t whylen) {
    if (s == NULL) return false;
    int64_t now = now_us(), oldest = 0;
    int oldest_i = -1;
    for (int i = 0; i < LIVENESS_REQUESTS; i++) {
        int64_t t = atomic_load(&s->started_us[i]);
        if (t > 0 && (oldest == 0 || t < oldest)) {
            oldest = t;
            oldest_i = i;
        }
    }
    if (oldest_i >= 0 && (double)(now - oldest) / 1e6 > request_limit_s) {
        char what[LIVENESS_WHAT];
        memcpy(what, s->what[oldest_i], sizeof(what));
        what[sizeof(what) - 1] = '\0';
        ts_errf(why, whylen, "a request has been in its handler for %.1f s (limit %g s): %s",
                (double)(now - oldest) / 1e6, request_limit_s, what);
        return true;
    }
    for (int l = 0; l < LIVENESS_LANES; l++) {
        int64_t t = atomic_load(&s->lane_us[l]);
        if (t > 0 && (double)(now - t) / 1e6 > loop_limit_s) {
            ts_errf(why, whylen, "its %s has not turned for %.1f s (limit %g s)", lane_names[l],
                    (double)(now - t) / 1e6, loop_limit_s);
            return true;
        }
    }
    return false;
}
