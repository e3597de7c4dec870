/*
 * worker.c - one HTTP worker process of `tessera serve`: its request threads
 * (each with its own store handle, pool.h), its WebSocket hub, its slide
 * cache, libmicrohttpd on the shared listening socket, and the drain on
 * SIGTERM (stop accepting, close WebSockets with 1001, let requests in
 * flight finish, then stop).
 *
 * The master watches it through its liveness slot (util/liveness.h): the
 * main loop and the WebSocket loop turn at least once a second, and every
 * handler call is shown while it runs. A drain always ends: it gives up its
 * share of the listening socket first (so a restarted service can bind the
 * port), does not wait past DRAIN_SECONDS for a request stuck in a handler,
 * and an alarm ends the process if anything else hangs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/http.h"
#include "http/view_cache.h"
#include "sched/doorbell.h"
#include "util/log.h"
#include "util/util.h"

#define DRAIN_SECONDS 10.0
#define DRAIN_BACKSTOP_SECONDS 15 /* SIGALRM ends a drain that hangs anyway */

void http_ring_scheduler(http_request *req) {
    doorbell_ring(req->ctx->doorbell_path);
}

/* 1,000 WebSocket clients need more descriptors than the usual soft limit. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* web/ beside the working directory, else beside the binary (build/..). */
static void find_web_root(char *out, size_t n) {
    if (is_dir("web")) {
        ts_strlcpy(out, "web", n);
        return;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len > 0) {
        self[len] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) *slash = '\0';
        snprintf(out, n, "%s/../web", self);
        if (is_dir(out)) return;
    }
    ts_strlcpy(out, "web", n);
}

static void hub_delivered(void *ctx, uint64_t n) {
    metrics_events_delivered(ctx, n);
}

static void hub_connections(void *ctx, int delta) {
    metrics_ws_connections(ctx, delta);
}

static void hub_turned(void *live) {
    liveness_tick(live, LIVENESS_WEBSOCKET);
}

static void hub_wakeup(void *ctx, bool notified) {
    metrics_events_wakeup(ctx, notified);
}

static void hub_event_delay(void *ctx, double seconds) {
    metrics_event_delay(ctx, seconds);
}

static void hub_event_fanout(void *ctx, double seconds) {
    metrics_event_fanout(ctx, seconds);
}

/* Waits until the requests in flight are answered, or the drain time is
 * up; false if some are still in flight (stuck in a handler, or a client
 * that does not read). Idle keep-alive connections are not waited for:
 * stopping the daemon closes them, and their clients simply reconnect to
 * another worker. */
static bool drain(http_ctx *ctx) {
    double end = ts_monotonic() + DRAIN_SECONDS;
    while (atomic_load(&ctx->in_flight) > 0 && ts_monotonic() < end) usleep(10000);
    return atomic_load(&ctx->in_flight) == 0;
}

/* Waits for SIGTERM or SIGINT, turning the main lane once a second so the
 * master can tell a stopped or wedged process (util/liveness.h). */
static int wait_for_stop(const sigset_t *stop, liveness_slot *live) {
    struct timespec second = {1, 0};
    for (;;) {
        liveness_tick(live, LIVENESS_MAIN);
        int sig = sigtimedwait(stop, NULL, &second);
        if (sig > 0) return sig;
    }
}

/* Stops accepting and gives up this process's share of the listening
 * socket at once: while any process holds it the port stays bound, and a
 * service restarted after its master died must be able to bind it. The fd
 * number is pointed at /dev/null rather than closed, so that nothing else
 * opened later can take a number libmicrohttpd may still look at. */
static void stop_listening(struct MHD_Daemon *d) {
    MHD_socket fd = MHD_quiesce_daemon(d);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd != MHD_INVALID_SOCKET && devnull >= 0) dup2(devnull, fd);
    if (devnull >= 0) close(devnull);
}

int http_worker_main(const ts_config *cfg, const auth_config *auth, metrics *m,
                     ratelimit *limits, int listen_fd, const char *doorbell_path,
                     liveness_slot *live) {
    prctl(PR_SET_NAME, "tessera-http");
    raise_fd_limit();
    /* Signals go to this thread only: block them before any thread starts. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    char err[TS_ERRLEN], web_root[4200], vendor_root[4300];
    http_pool *pool = http_pool_start(cfg->db, cfg->http_threads, 0, err, sizeof(err));
    if (!pool) {
        log_emit(LOG_ERROR, NULL, NULL, "worker cannot start its request threads",
                 json_pack("{ss}", "error", err));
        return 1;
    }
    http_pool_observe(pool, metrics_store_call, m);
    http_pool_watch(pool, live);
    ws_hub_config hc;
    ws_hub_config_default(&hc);
    hc.db_url = cfg->db;
    /* PostgreSQL notifies the hub of every commit with events, from any
     * instance: polling is only the fallback, at the configured pace. */
    if (store_is_postgresql(cfg->db)) hc.poll_interval_s = cfg->queue_poll_seconds;
    hc.on_delivered = hub_delivered;
    hc.on_connections = hub_connections;
    hc.on_wakeup = hub_wakeup;
    hc.on_event_delay = hub_event_delay;
    hc.on_event_fanout = hub_event_fanout;
    hc.on_store_call = metrics_store_call;
    hc.metrics_ctx = m;
    hc.on_turn = hub_turned;
    hc.turn_ctx = live;
    ws_hub *hub = ws_hub_start(&hc, err, sizeof(err));
    if (!hub) {
        log_emit(LOG_ERROR, NULL, NULL, "worker cannot start WebSockets", json_pack("{ss}", "error", err));
        http_pool_stop(pool);
        return 1;
    }
    find_web_root(web_root, sizeof(web_root));
    snprintf(vendor_root, sizeof(vendor_root), "%s/../node_modules", web_root);
    http_ctx ctx = {.cfg = cfg, .auth = auth, .hub = hub, .m = m, .web_root = web_root,
                    .vendor_root = vendor_root, .doorbell_path = doorbell_path,
                    .slides = slide_cache_new(NULL), .live = live, .limits = limits,
                    .pool = pool, .views = view_cache_new(VIEW_CACHE_DEFAULT_BYTES)};
    struct MHD_Daemon *d = http_daemon_start(&ctx, listen_fd, err, sizeof(err));
    if (!d) {
        log_emit(LOG_ERROR, NULL, NULL, "worker cannot serve", json_pack("{ss}", "error", err));
        slide_cache_free(ctx.slides);
        view_cache_free(ctx.views);
        ws_hub_stop(hub);
        ws_hub_free(hub);
        http_pool_stop(pool);
        return 1;
    }
    log_emit(LOG_INFO, NULL, NULL, "worker serving", json_pack("{si}", "pid", (int)getpid()));
    int sig = wait_for_stop(&stop, live);
    alarm(DRAIN_BACKSTOP_SECONDS);
    log_emit(LOG_INFO, NULL, NULL, "worker draining", json_pack("{ss}", "signal", strsignal(sig)));
    stop_listening(d);      /* the other workers keep serving on the socket */
    ws_hub_stop(hub);       /* 1001 to every WebSocket; late upgrades are refused */
    if (!drain(&ctx)) {
        /* Stopping the daemon would join the thread stuck in a handler. */
        log_emit(LOG_WARN, NULL, NULL, "worker stopped with requests still in flight",
                 json_pack("{si}", "in_flight", atomic_load(&ctx.in_flight)));
        return 1;
    }
    MHD_stop_daemon(d);
    http_pool_stop(pool);   /* idle now: every request was answered */
    ws_hub_free(hub);       /* only now: no request can reach it any more */
    slide_cache_free(ctx.slides); /* likewise */
    view_cache_free(ctx.views);   /* likewise; replies still held release their bytes */
    log_emit(LOG_INFO, NULL, NULL, "worker stopped", NULL);
    return 0;
}
