/*
 * ratelimit.h - per-user request limits shared by every HTTP worker of one
 * `tessera serve` (issue 12, defect 13): TESSERA_RATE_LIMIT requests per
 * second per user, with bursts of TESSERA_RATE_BURST; beyond it, 429 with
 * Retry-After.
 *
 * Contract:
 *   - The limit holds per user across all workers: the table lives in
 *     shared memory mapped by the master before it forks, so a user whose
 *     connections the kernel spreads over the workers gets the same budget,
 *     not one per worker.
 *   - The algorithm is GCRA (the token bucket as one timestamp per user):
 *     a user may make `burst` requests at once, then one every 1/rate
 *     seconds; a refused request costs nothing.
 *   - Lock-free: each user's state is one 64-bit atomic updated by
 *     compare-and-swap, so a worker killed at any instant leaves nothing
 *     locked. The table has RATELIMIT_SLOTS slots; a user who finds no slot
 *     (more than that many users busy at once) is not limited rather than
 *     refused: the limit is about fairness, and authentication, not it,
 *     keeps strangers out.
 */
#ifndef TESSERA_HTTP_RATELIMIT_H
#define TESSERA_HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

#define RATELIMIT_SLOTS 4096

typedef struct ratelimit ratelimit;

/* A shared table for rate requests per second (> 0) and bursts of burst
 * (0: twice the rate, at least 1). NULL with err when the mapping fails. */
ratelimit *ratelimit_create_shared(double rate, double burst, char *err, size_t errlen);
void ratelimit_destroy(ratelimit *rl);

/* May user make a request at now (seconds, CLOCK_MONOTONIC: ts_monotonic)?
 * True and counted, or false with *retry_after_s (> 0) the wait until it
 * would be allowed. */
bool ratelimit_take(ratelimit *rl, const char *user, double now, double *retry_after_s);

/* The configured rate and burst (for messages). */
double ratelimit_rate(const ratelimit *rl);
double ratelimit_burst(const ratelimit *rl);

#endif
