/*
 * syncer.h - a store's fsyncs on a thread of their own, pipelined with the
 * scheduler's rounds (issue 16: events pushed at once, a DAG as fast as
 * make).
 *
 * With deferred sync (store.h, store_set_deferred_sync) a scheduler round
 * commits without an fsync and starts the jobs it claimed; the fsync, and
 * after it the ring of the round's event listeners (the HTTP workers'
 * WebSocket hubs), may come later. The syncer runs them on its thread from
 * sync tickets (store.h, store_sync_take): a round hands its ticket over
 * and goes on - starts its jobs, waits for the next exits, commits the
 * next round - while the fsync runs. Why: a round that waited for its own
 * fsync put one fsync per job on the DAG's critical path when jobs are
 * shorter than an fsync (0.36 ms median on a journaled ext4 here). Now one
 * fsync serves every ticket taken before it began, and no round waits for
 * the device. Nothing is rung before its fsync, as before.
 *
 * Contract: one caller thread, the store handle's (tickets are taken
 * there; the syncer's thread only runs them, which needs no store handle).
 * Tickets run in the order handed over. A failed run is reported once, by
 * syncer_failure or syncer_drain, whichever asks first; tickets handed over
 * after it still run (those of the same connection fail at once, store.h).
 */
#ifndef TESSERA_SCHED_SYNCER_H
#define TESSERA_SCHED_SYNCER_H

#include <stddef.h>

#include "store/store.h"

typedef struct syncer syncer;

/* Starts the thread; NULL with err when it cannot be started (the caller
 * then syncs on its own thread, store_sync). */
syncer *syncer_new(char *err, size_t errlen);

/* Hands t over (the syncer runs and frees it) and returns at once. NULL:
 * nothing to do. */
void syncer_submit(syncer *sy, store_sync_ticket *t);

/* Without waiting: STORE_UNAVAILABLE, with the message in err, if a ticket
 * failed since the last report; TS_OK otherwise. */
int syncer_failure(syncer *sy, char *err, size_t errlen);

/* Waits until every ticket handed over has run; then as syncer_failure. */
int syncer_drain(syncer *sy, char *err, size_t errlen);

/* Runs what was handed over, then stops and joins the thread (a failure
 * not yet reported is lost: drain first to have it). NULL is fine. */
void syncer_free(syncer *sy);

#endif
