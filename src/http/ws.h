/*
 * ws.h - WebSocket on upgraded HTTP connections (RFC 6455), for the live
 * event stream GET /api/events (DESIGN §4).
 *
 * libmicrohttpd performs the HTTP part and hands over the socket after a 101
 * response; framing is wslay's; everything else is here: the handshake key,
 * an epoll loop (one thread per HTTP worker, "the hub") that owns every
 * upgraded socket, pings, idle timeouts, size limits, close codes, and the
 * fan-out of stored events to each tenant's connections.
 *
 * Contract of the hub:
 *   - Each connection belongs to one user and optionally one workflow. It
 *     receives, in seq order and exactly once, every event of that user (and
 *     workflow) with seq > since: first those already stored (replay), then
 *     live ones as they are committed. Never another user's.
 *   - The hub finds new events by polling the store every poll_interval_s
 *     while it has connections (one indexed query for all of them), using its
 *     own store handle opened in its own thread.
 *   - Frames are text frames holding one event JSON object each.
 *   - A connection whose unsent data exceeds max_queue_bytes is closed with
 *     1013 ("try again later"): a slow client never slows the others, and can
 *     reconnect with since = the last seq it saw.
 *   - A frame from the client larger than max_frame_bytes closes the
 *     connection with 1009; a binary frame closes it with 1003; text frames
 *     are otherwise ignored. Pings are answered (by wslay).
 *   - A ping is sent every ping_interval_s (heartbeats keep idle connections
 *     alive through proxies); a connection silent (no frame, no pong) for
 *     idle_timeout_s is closed with 1001 "idle timeout".
 *   - ws_hub_stop() closes every connection with 1001 ("going away") and
 *     waits for the close frames to be written (bounded), then ends the thread;
 *     ws_hub_free() frees it afterwards.
 *   - Sockets are released with MHD_upgrade_action(urh, CLOSE), never close().
 */
#ifndef TESSERA_HTTP_WS_H
#define TESSERA_HTTP_WS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key:
 * base64(SHA-1(key + WS_GUID)), 28 characters + NUL. TS_ERR if the key is
 * not 24 characters of base64 (16 bytes), as RFC 6455 requires. */
int ws_accept_key(const char *client_key, char out[29]);

typedef struct ws_hub_config {
    const char *db_url;      /* the hub opens its own store handle */
    double poll_interval_s;  /* default 0.02 */
    double ping_interval_s;  /* default 20 */
    double idle_timeout_s;   /* default 60 */
    size_t max_frame_bytes;  /* default 65536 */
    size_t max_queue_bytes;  /* default 4 MiB */
    size_t max_connections;  /* default 10000; beyond, new ones are closed with 1013 */
    /* Called from the hub thread for metrics; may be NULL. */
    void (*on_delivered)(void *ctx, uint64_t events);
    void (*on_connections)(void *ctx, int delta);
    /* A read of new events, woken by a notification or by the poll timer. */
    void (*on_wakeup)(void *ctx, bool notified);
    /* An event fanned out to at least one connection, read by the hub this
     * long after it happened (events lag, up to the read). */
    void (*on_event_delay)(void *ctx, double seconds);
    /* The same event's frames written to every connection of the fan-out
     * (or queued behind a socket the kernel would not take more on), this
     * long after it happened: the hub's part of the way to the clients,
     * the fan-out's writes included, which grow with the connections. */
    void (*on_event_fanout)(void *ctx, double seconds);
    /* Observes the hub's own store handle (store_set_observer). */
    store_observer on_store_call;
    void *metrics_ctx;
    /* Called from the hub thread at every turn of its loop (at least once a
     * second), so a supervisor can tell the loop still runs; may be NULL. */
    void (*on_turn)(void *ctx);
    void *turn_ctx;
} ws_hub_config;

void ws_hub_config_default(ws_hub_config *cfg);

typedef struct ws_hub ws_hub;

/* Starts the hub thread. NULL with err on failure. */
ws_hub *ws_hub_start(const ws_hub_config *cfg, char *err, size_t errlen);

/* Hands over one upgraded connection (thread-safe; called from MHD's
 * upgrade callback). extra/extra_len: bytes MHD already read past the
 * request (the start of the client's first frame), copied. */
int ws_hub_add(ws_hub *hub, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh,
               const char *extra, size_t extra_len, const char *user, int64_t workflow_id,
               int64_t since);

size_t ws_hub_connections(ws_hub *hub);

/* Closes every connection with 1001 and ends the thread. Later ws_hub_add
 * calls fail (their caller closes the socket), so the HTTP server may go on
 * draining; free the hub with ws_hub_free once the server has stopped. */
void ws_hub_stop(ws_hub *hub);
void ws_hub_free(ws_hub *hub);

#endif
