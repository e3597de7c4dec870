/*
 * liveness.h - how the master of `tessera serve` knows that a child still
 * makes progress, not merely that it exists (issue 12: a worker hung in a
 * request was never replaced, because only dead children were).
 *
 * The master maps one board of shared memory before it forks and gives each
 * child a slot of it. The child shows progress in two ways:
 *   - its loops tick: each loop has a lane (the scheduler's loop; an HTTP
 *     worker's main loop and its WebSocket loop), written with the time of
 *     the loop's last turn;
 *   - every call into a request handler is bracketed by
 *     liveness_request_begin() and liveness_request_end(), which record when
 *     it began. Only time inside tessera's own code counts: a client that
 *     sends its body slowly, or a WebSocket held open for hours, is not a
 *     request in a handler and never makes its worker look stuck.
 * The master calls a child stalled when one of its lanes has not ticked for
 * the loop limit, or a handler call has lasted longer than the request
 * limit, and says which in words.
 *
 * Times are CLOCK_MONOTONIC microseconds (one clock for every process of
 * the machine). Every shared field is a lock-free atomic: nobody takes a
 * lock, and a child killed in the middle of an update leaves nothing the
 * master can trip on. A child with more than LIVENESS_REQUESTS handler
 * calls at once leaves the extra ones untracked (counted, not watched).
 */
#ifndef TESSERA_UTIL_LIVENESS_H
#define TESSERA_UTIL_LIVENESS_H

#include <stdbool.h>
#include <stddef.h>

#define LIVENESS_REQUESTS 64 /* handler calls watched at once per child */
#define LIVENESS_WHAT 96     /* bytes of "METHOD /path" kept per call */

typedef enum liveness_lane {
    LIVENESS_MAIN,      /* the process's main loop (scheduler loop, worker's signal loop) */
    LIVENESS_WEBSOCKET, /* an HTTP worker's WebSocket hub loop */
    LIVENESS_LANES
} liveness_lane;

typedef struct liveness_board liveness_board;
typedef struct liveness_slot liveness_slot;

/* Maps a board of n_slots slots shared with every process forked later.
 * NULL with err when the system refuses the mapping. */
liveness_board *liveness_board_create(size_t n_slots, char *err, size_t errlen);
void liveness_board_destroy(liveness_board *b);

/* The master, before fork: a free slot, cleared, its main lane ticked now
 * (so a child that hangs before its first turn is still caught). NULL when
 * every slot is in use. */
liveness_slot *liveness_slot_take(liveness_board *b);

/* The master, once the child is reaped: the slot may be taken again. */
void liveness_slot_release(liveness_slot *s);

/* The child: its loop of this lane made a turn. NULL s does nothing (the
 * same code runs without a master, e.g. under `tessera run`). */
void liveness_tick(liveness_slot *s, liveness_lane lane);

/* The child: a handler call begins; what says which ("GET /api/x"), cut to
 * LIVENESS_WHAT - 1 bytes. Returns a handle for liveness_request_end, or -1
 * when it is not watched (s NULL, or every entry busy). */
int liveness_request_begin(liveness_slot *s, const char *what);
void liveness_request_end(liveness_slot *s, int handle);

/* The master: true when a lane has been silent for more than loop_limit_s
 * seconds or a handler call has lasted more than request_limit_s, with the
 * reason in words in why ("its WebSocket loop has not turned for 31.0 s
 * (limit 30 s)", "a request has been in its handler for 61.2 s (limit 60
 * s): GET /api/slides/thumbnail?path=a.tiff"). */
bool liveness_stalled(const liveness_slot *s, double loop_limit_s, double request_limit_s,
                      char *why, size_t whylen);

#endif
