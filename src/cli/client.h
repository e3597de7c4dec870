/*
 * client.h - a small blocking HTTP client for the command line's remote
 * commands (`tessera submit|status|cancel|logs` with --server), on libcurl.
 *
 * One client talks to one service (cfg->server) as one identity:
 * `Authorization: Bearer <cfg->token>` when a token is configured, else
 * `X-User-ID: <cfg->user>` (the service's header mode, DESIGN §4). Requests
 * and answers are JSON; the connection is kept alive between requests.
 * Timeouts: 5 s to connect, 60 s for a whole request.
 *
 * A request fails (TS_ERR) only when no HTTP answer came (refused, timed
 * out, unknown host...): the message names the server and hints at the fix.
 * Any HTTP answer, 4xx/5xx included, is TS_OK with its status; turn an
 * error answer into one line for stderr with client_error_line().
 */
#ifndef TESSERA_CLI_CLIENT_H
#define TESSERA_CLI_CLIENT_H

#include <stddef.h>
#include <stdio.h>

#include "util/config.h"

typedef struct client client;

/* A client for cfg->server (which must be an http:// or https:// URL; a
 * trailing slash is ignored). NULL with a message in err when no server is
 * configured or the identity cannot be sent in a header. */
client *client_new(const ts_config *cfg, char *err, size_t errlen);

void client_free(client *c);

/* The service's base URL without a trailing slash ("http://127.0.0.1:8080"). */
const char *client_base_url(const client *c);

/* The identity header as one "Name: value\r\n" line, for requests made
 * outside libcurl (the WebSocket of `submit --follow`). */
const char *client_identity_header(const client *c);

/* Sends method path (starting with "/") with body (len bytes, may be NULL
 * for none) as application/json. On TS_OK, *status is the HTTP status and
 * *resp the answer (malloc'd, NUL-terminated, caller frees; "" when empty)
 * of *resp_len bytes. resp_len may be NULL. TS_ERR on transport failure. */
int client_request(client *c, const char *method, const char *path, const char *body, size_t len,
                   long *status, char **resp, size_t *resp_len, char *err, size_t errlen);

/* GET path, writing a 2xx answer's body to out as it arrives (for logs and
 * other large bodies); a non-2xx answer is returned in *resp instead (caller
 * frees) so it can be reported. TS_ERR on transport or write failure. */
int client_download(client *c, const char *path, FILE *out, long *status, char **resp,
                    char *err, size_t errlen);

/* One line for stderr describing an error answer: the service's
 * `{"error": {"code", "message", "details"?}}` as
 * "MESSAGE (HTTP 422 invalid_workflow; field: jobs, job_id: job-2)", or,
 * when the body has no such shape, "HTTP 502: <start of the body>". */
void client_error_line(long status, const char *resp, size_t resp_len, char *out, size_t outlen);

#endif
