/*
 * ws_client.h - a small blocking WebSocket client (RFC 6455) over plain TCP,
 * for `tessera submit --follow` and the tests: the handshake is checked
 * (status 101, Sec-WebSocket-Accept), framing is wslay's, client frames are
 * masked with random keys.
 */
#ifndef TESSERA_HTTP_WS_CLIENT_H
#define TESSERA_HTTP_WS_CLIENT_H

#include <stddef.h>

typedef struct ws_client ws_client;

/* Connects to url ("http://HOST:PORT/path?query" or "ws://..."), sending
 * extra_headers (each "Name: value\r\n", may be NULL) with the upgrade
 * request. On a non-101 answer, err holds the status and the body's error
 * message. NULL on failure. */
ws_client *ws_client_connect(const char *url, const char *extra_headers, double timeout_s,
                             char *err, size_t errlen);

/* Waits up to timeout_s for the next text message. Returns 1 and sets *msg
 * (malloc'd, NUL-terminated, caller frees) and *len; 0 on timeout; -1 when
 * the connection closed or failed (*close_code set if a close frame came,
 * else 0). Pings are answered inside. */
int ws_client_recv(ws_client *c, double timeout_s, char **msg, size_t *len, int *close_code);

/* Sends a text message (masked). TS_OK or TS_ERR. */
int ws_client_send_text(ws_client *c, const char *msg, size_t len);

/* Sends a close frame with code and closes the socket; frees c. */
void ws_client_close(ws_client *c, int code);

#endif
