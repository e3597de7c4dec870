/*
 * ratelimit.c - GCRA per user in shared memory (see ratelimit.h).
 *
 * Each slot holds a user's key (a 64-bit hash of the name, never 0) and its
 * theoretical arrival time TAT, in microseconds of CLOCK_MONOTONIC: the time
 * at which the user's bucket would be full again. A request at now is
 * allowed when max(TAT, now) + interval - now <= burst * interval, and then
 * TAT becomes max(TAT, now) + interval. A slot whose TAT has passed holds a
 * full bucket, exactly as an empty slot does, so it may be handed to
 * another user when the table is crowded.
 */
#include "http/ratelimit.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "util/util.h"

#define PROBES 32 /* slots looked at per user before giving up */

typedef struct rl_slot {
    _Atomic uint64_t key; /* 0 = free */
    _Atomic int64_t tat_us;
} rl_slot;

struct ratelimit {
    int64_t interval_us; /* 1 / rate */
    int64_t window_us;   /* burst * interval: how far TAT may run ahead of now */
    double rate, burst;
    rl_slot slots[RATELIMIT_SLOTS];
};

ratelimit *ratelimit_create_shared(double rate, double burst, char *err, size_t errlen) {
    if (!(rate > 0)) {
        ts_errf(err, errlen, "rate limit must be above 0 requests per second");
        return NULL;
    }
    if (!(burst > 0)) burst = fmax(1.0, 2 * rate);
    ratelimit *rl = mmap(NULL, sizeof(*rl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                         -1, 0);
    if (rl == MAP_FAILED) {
        ts_errf(err, errlen, "cannot map the rate limit table: %s", strerror(errno));
        return NULL;
    }
    memset(rl, 0, sizeof(*rl));
    rl->rate = rate;
    rl->burst = burst;
    rl->interval_us = (int64_t)llround(1e6 / rate);
    if (rl->interval_us < 1) rl->interval_us = 1;
    rl->window_us = (int64_t)llround(burst * (double)rl->interval_us);
    return rl;
}

void ratelimit_destroy(ratelimit *rl) {
    if (rl) munmap(rl, sizeof(*rl));
}

double ratelimit_rate(const ratelimit *rl) {
    return rl->rate;
}

double ratelimit_burst(const ratelimit *rl) {
    return rl->burst;
}

/* The slot of key, claiming a free one or one whose bucket is full again;
 * NULL when none of PROBES slots will do. */
static rl_slot *slot_for(ratelimit *rl, uint64_t key, int64_t now_us) {
    size_t start = (size_t)(key % RATELIMIT_SLOTS);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < PROBES; i++) {
            rl_slot *s = &rl->slots[(start + i) % RATELIMIT_SLOTS];
            uint64_t k = atomic_load(&s->key);
            if (k == key) return s;
            if (pass == 0 && k == 0) {
                uint64_t expected = 0;
                if (atomic_compare_exchange_strong(&s->key, &expected, key) || expected == key)
                    return s;
            }
            /* Second pass: take over an idle slot (its TAT has passed: its
             * bucket is as full as a fresh one). */
            if (pass == 1 && k != 0 && atomic_load(&s->tat_us) <= now_us &&
                atomic_compare_exchange_strong(&s->key, &k, key))
                return s;
        }
    }
    return NULL;
}

bool ratelimit_take(ratelimit *rl, const char *user, double now, double *retry_after_s) {
    uint64_t key = ts_hash_str(user);
    if (key == 0) key = 1;
    int64_t now_us = (int64_t)(now * 1e6);
    rl_slot *s = slot_for(rl, key, now_us);
    if (s == NULL) return true;
    int64_t tat = atomic_load(&s->tat_us);
    for (;;) {
        int64_t next = (tat > now_us ? tat : now_us) + rl->interval_us;
        if (next - now_us > rl->window_us) {
            *retry_after_s = (double)(next - now_us - rl->window_us) / 1e6;
            return false;
        }
        if (atomic_compare_exchange_weak(&s->tat_us, &tat, next)) return true;
    }
}
