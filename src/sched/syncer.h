/*
 * syncer.h - a store's deferred fsync on a thread of its own, run while the
 * scheduler starts the round's jobs (issue 16: events pushed at once).
 *
 * With deferred sync (store.h, store_set_deferred_sync) a scheduler round
 * commits without an fsync, starts the jobs it claimed, and then calls
 * store_sync, which fsyncs the WAL and only then rings the event listeners
 * (the HTTP workers' WebSocket hubs). Done in that order on one thread, the
 * job starts - work directories, log files, requests to the fork server -
 * stood between every event of the round and its delivery. The syncer runs
 * that store_sync beside them: the fsync and the ring happen while the jobs
 * start, and a round costs the longer of the two instead of their sum.
 * Nothing is rung before its fsync, as before.
 *
 * Contract: between syncer_begin and syncer_end the caller does not use the
 * store (the syncer's thread does, through store_sync: a store handle is
 * used by one thread at a time), and every syncer_begin is followed by one
 * syncer_end, which returns what store_sync returned. One caller thread.
 */
#ifndef TESSERA_SCHED_SYNCER_H
#define TESSERA_SCHED_SYNCER_H

#include <stddef.h>

#include "store/store.h"

typedef struct syncer syncer;

/* Starts the thread; NULL with err when it cannot be started (the caller
 * then syncs on its own thread). */
syncer *syncer_new(store *st, char *err, size_t errlen);

/* Hands store_sync(st) to the thread and returns at once. */
void syncer_begin(syncer *sy);

/* Waits for the store_sync that syncer_begin handed over; its code, and
 * its message in err. */
int syncer_end(syncer *sy, char *err, size_t errlen);

/* Stops and joins the thread; a sync under way is finished first (its
 * result is lost: call syncer_end to have it). NULL is fine. */
void syncer_free(syncer *sy);

#endif
