/*
 * progress.h - live progress of workflows in a terminal: bars redrawn in
 * place on a TTY, plain lines (one per event) otherwise, so that logs and
 * pipes get something readable and terminals get something alive.
 */
#ifndef TESSERA_CLI_PROGRESS_H
#define TESSERA_CLI_PROGRESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "store/store.h"

typedef struct progress_view {
    FILE *out;
    bool tty;
    bool quiet;
    int lines_drawn;
    double last_draw;
} progress_view;

void progress_init(progress_view *pv, FILE *out, bool quiet);

/* Plain mode: prints one line for an event (progress events at most at
 * each quarter). TTY mode: ignored (progress_draw shows the state). */
void progress_event(progress_view *pv, const store_event *ev);

/* True when a TTY redraw is due (about 10 times a second). */
bool progress_due(const progress_view *pv);

/* TTY mode: redraws the bars of these workflows (at most ~10 times a second
 * unless force). Each is a workflow view as view_workflow() builds it and
 * GET /api/workflows/{id} returns it (id, name, state, progress,
 * queue_position, jobs[] with job_id, state, progress, attempt), so local
 * (`tessera run`) and remote (`tessera submit --follow`) draw alike. */
void progress_draw(progress_view *pv, json_t *const *views, size_t n, bool force);

#endif
