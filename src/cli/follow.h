/*
 * follow.h - `tessera submit --follow`: live progress of one workflow from
 * the service's event stream (GET /api/events over WebSocket, DESIGN §4).
 */
#ifndef TESSERA_CLI_FOLLOW_H
#define TESSERA_CLI_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/client.h"

/* Streams the workflow's events from the start (since=0) until its
 * workflow.finished event, drawing bars on a TTY and plain lines otherwise
 * (nothing if quiet), reconnecting from the last seen event when the
 * connection drops (a few tries with backoff). Prints the final state.
 * Returns CLI_OK if it succeeded, CLI_FAILED if it failed or was cancelled
 * or the stream could not be kept. */
int follow_workflow(client *c, int64_t id, bool quiet);

#endif
