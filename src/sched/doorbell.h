/*
 * doorbell.h - a wake-up call for the scheduler (DESIGN §8): a Unix datagram
 * socket in the state directory. Writers (HTTP workers after a submit or a
 * cancel) send one empty datagram; the scheduler wakes and looks at the
 * store. Rings may be lost (full buffer, scheduler restarting): the
 * scheduler also polls every TESSERA_QUEUE_POLL_SECONDS, so a lost ring
 * costs latency, never correctness.
 */
#ifndef TESSERA_SCHED_DOORBELL_H
#define TESSERA_SCHED_DOORBELL_H

#include <stddef.h>

/* Binds the socket at path (replacing a stale one); returns a non-blocking
 * fd, or -1 with err. */
int doorbell_bind(const char *path, char *err, size_t errlen);

/* Sends one ring; never blocks, never fails loudly. */
void doorbell_ring(const char *path);

/* Reads every pending ring so the fd stops being readable. */
void doorbell_drain(int fd);

#endif
