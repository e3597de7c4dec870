/*
 * follow.c - see follow.h.
 *
 * The event stream says what happened (plain lines are drawn from it); on a
 * TTY the bars are drawn from the workflow's view, fetched with GET after
 * events arrive but at most FETCH_INTERVAL_S apart, so a busy workflow costs
 * the service a few small requests a second, not one per event.
 */
#include "cli/follow.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "http/ws_client.h"
#include "util/util.h"

#define CONNECT_TIMEOUT_S 5.0
#define RECV_SLICE_S 0.2     /* how long one wait for an event lasts */
#define FETCH_INTERVAL_S 0.2 /* at most ~5 view fetches a second */
#define MAX_TRIES 5          /* reconnects in a row that bring no new event */

typedef struct follower {
    client *c;
    progress_view pv;
    int64_t id;
    int64_t last_seq;      /* the newest event seen: reconnects resume after it */
    bool finished;         /* workflow.finished seen */
    char final_state[16];  /* its "state" */
    bool dirty;            /* events since the bars were last drawn */
    double last_fetch;     /* monotonic time of the last view fetch */
} follower;

/* Sleeps s seconds, resuming after signals. */
static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A string member of o, or fallback when absent or not a string. */
static const char *str_or(json_t *o, const char *key, const char *fallback) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : fallback;
}

/* GET /api/workflows/{id}: the view (caller decrefs), or NULL with err
 * holding the transport failure or the service's error line. */
static json_t *fetch_view(client *c, int64_t id, char *err, size_t errlen) {
    char path[64], *resp = NULL;
    size_t len = 0;
    long status = 0;
    snprintf(path, sizeof(path), "/api/workflows/%lld", (long long)id);
    if (client_request(c, "GET", path, NULL, 0, &status, &resp, &len, err, errlen) != TS_OK)
        return NULL;
    /* json_is_object() evaluates its argument twice: parse first. */
    json_t *v = status == 200 ? json_loadb(resp, len, 0, NULL) : NULL;
    if (status != 200) {
        client_error_line(status, resp, len, err, errlen);
    } else if (!json_is_object(v)) {
        ts_errf(err, errlen, "the service's answer to GET %s is not a JSON object", path);
        json_decref(v);
        v = NULL;
    }
    free(resp);
    return v;
}

/* One event from the stream: skipped if already seen (a reconnect may
 * repeat none, but a server is allowed to), else shown and noted. The
 * store_event borrows the parsed fields and the message text. */
static void handle_event(follower *f, const char *msg, size_t len) {
    json_t *o = json_loadb(msg, len, 0, NULL);
    json_int_t seq = json_integer_value(json_object_get(o, "seq"));
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type || seq <= f->last_seq) goto cleanup;
    f->last_seq = seq;
    json_t *ts = json_object_get(o, "ts");
    int64_t wf_id = json_integer_value(json_object_get(o, "workflow_id"));
    store_event ev = {.seq = seq, .ts = json_is_number(ts) ? json_number_value(ts) : ts_now(),
                      .type = type, .workflow_id = wf_id,
                      .job_id = json_string_value(json_object_get(o, "job_id")), .json = msg};
    progress_event(&f->pv, &ev);
    f->dirty = true;
    if (strcmp(type, "workflow.finished") == 0 && wf_id == f->id) {
        f->finished = true;
        ts_strlcpy(f->final_state, str_or(o, "state", ""), sizeof(f->final_state));
    }
cleanup:
    json_decref(o);
}

/* TTY only: redraws the bars from a fresh view when events came since the
 * last drawing (or force), at most every FETCH_INTERVAL_S. A failed fetch
 * is skipped: the next event tries again, and the stream is what counts. */
static void draw(follower *f, bool force) {
    if (!f->pv.tty || f->pv.quiet) return;
    double now = ts_monotonic();
    if (!force && (!f->dirty || now - f->last_fetch < FETCH_INTERVAL_S)) return;
    char err[TS_ERRLEN];
    f->last_fetch = now;
    json_t *v = fetch_view(f->c, f->id, err, sizeof(err));
    if (!v) return;
    f->dirty = false;
    progress_draw(&f->pv, &v, 1, true);
    json_decref(v);
}

/* Opens the stream of the workflow's events after last_seq. */
static ws_client *connect_events(follower *f, char *err, size_t errlen) {
    char *url = ts_asprintf("%s/api/events?workflow=%lld&since=%lld", client_base_url(f->c),
                            (long long)f->id, (long long)f->last_seq);
    ws_client *ws =
        ws_client_connect(url, client_identity_header(f->c), CONNECT_TIMEOUT_S, err, errlen);
    free(url);
    return ws;
}

/* Reads events until workflow.finished (TS_OK) or until the connection
 * drops (TS_ERR with the reason in err). */
static int stream(follower *f, ws_client *ws, char *err, size_t errlen) {
    while (!f->finished) {
        char *msg = NULL;
        size_t len = 0;
        int close_code = 0;
        int r = ws_client_recv(ws, RECV_SLICE_S, &msg, &len, &close_code);
        if (r < 0) {
            if (close_code)
                ts_errf(err, errlen, "closed by the service (code %d)", close_code);
            else
                ts_errf(err, errlen, "connection lost");
            return TS_ERR;
        }
        if (r > 0) handle_event(f, msg, len);
        free(msg);
        draw(f, false);
    }
    return TS_OK;
}

/* Prints "workflow ID "NAME": STATE[ - reason]" (only a non-success when
 * quiet) and returns the exit status. The state is the finished event's;
 * the view adds the name and reason. */
static int report_outcome(follower *f) {
    char err[TS_ERRLEN];
    json_t *v = fetch_view(f->c, f->id, err, sizeof(err));
    const char *state = f->final_state[0] ? f->final_state : str_or(v, "state", "unknown");
    const char *reason = str_or(v, "reason", "");
    int rc = strcmp(state, "succeeded") == 0 ? CLI_OK : CLI_FAILED;
    if (!f->pv.quiet || rc != CLI_OK)
        printf("workflow %lld \"%s\": %s%s%s\n", (long long)f->id, str_or(v, "name", ""), state,
               reason[0] ? " - " : "", reason);
    if (!v) fprintf(stderr, "tessera submit: could not read the workflow's final view: %s\n", err);
    fflush(stdout);
    json_decref(v);
    return rc;
}

/* The wait before reconnect number tries (1-based): 0.25 s doubling, at
 * most 4 s, so a restarting service is caught without hammering it. */
static double backoff(int tries) {
    double s = 0.25;
    for (int i = 1; i < tries && s < 4; i++) s *= 2;
    return s < 4 ? s : 4;
}

/*
 * Connects, streams, and on a drop reconnects from the last seen event;
 * MAX_TRIES reconnects in a row that bring nothing new end it (the
 * workflow goes on in the service either way, which the message says).
 */
int follow_workflow(client *c, int64_t id, bool quiet) {
    follower f = {.c = c, .id = id, .dirty = true};
    progress_init(&f.pv, stdout, quiet);
    char err[TS_ERRLEN] = "";
    int tries = 0;
    while (!f.finished) {
        int64_t before = f.last_seq;
        ws_client *ws = connect_events(&f, err, sizeof(err));
        if (ws) {
            draw(&f, true);
            stream(&f, ws, err, sizeof(err));
            ws_client_close(ws, 1000);
            if (f.finished) break;
        }
        if (f.last_seq > before) tries = 0;
        if (++tries > MAX_TRIES) {
            fprintf(stderr, "tessera submit: lost the event stream of workflow %lld: %s\n"
                            "tessera submit: the workflow goes on; see `tessera status %lld`\n",
                    (long long)id, err, (long long)id);
            return CLI_FAILED;
        }
        double wait = backoff(tries);
        fprintf(stderr,
                "tessera submit: event stream: %s; reconnecting from event %lld in %.2g s\n", err,
                (long long)f.last_seq, wait);
        f.pv.lines_drawn = 0; /* the message moved the cursor: draw anew below it */
        sleep_s(wait);
    }
    draw(&f, true);
    return report_outcome(&f);
}
