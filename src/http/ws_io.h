/*
 * ws_io.h - socket reads and writes for wslay's callbacks, shared by the
 * server side (the hub) and the client: bytes read before the hand-over are
 * served first, EINTR is retried, EAGAIN becomes WSLAY_ERR_WOULDBLOCK, and
 * writes never raise SIGPIPE.
 */
#ifndef TESSERA_HTTP_WS_IO_H
#define TESSERA_HTTP_WS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <wslay/wslay.h>

/* Reads up to len bytes: first from pre[*pre_off .. pre_len), then from fd.
 * Sets *eof when the peer closed. Returns bytes read or -1 with wslay's
 * error set. */
ssize_t ws_io_recv(wslay_event_context_ptr ctx, int fd, const char *pre, size_t pre_len,
                   size_t *pre_off, uint8_t *buf, size_t len, bool *eof);

/* Writes up to len bytes; -1 with wslay's error set. */
ssize_t ws_io_send(wslay_event_context_ptr ctx, int fd, const uint8_t *data, size_t len);

#endif
