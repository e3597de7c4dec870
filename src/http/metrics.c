/*
 * metrics.c - see metrics.h. Fixed-size tables so the shared region never
 * needs allocation after fork: routes by index, HTTP statuses by code,
 * job types by name in a small table claimed first come, first served.
 */
#include "http/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "http/http.h"
#include "util/util.h"

#define M_ROUTES 48
#define M_STATUS 600
#define M_JOB_TYPES 16
#define M_TYPE_NAME 48
#define M_BUCKETS 12

/* Seconds: from dispatch latency to long image jobs. */
static const double bucket_le[M_BUCKETS] = {0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                            5,     10,   60,   300, 1800, 7200};

typedef struct histogram {
    _Atomic uint64_t count[M_BUCKETS + 1]; /* last = +Inf */
    _Atomic uint64_t sum_us;
} histogram;

struct metrics {
    _Atomic uint64_t http[M_ROUTES + 1][M_STATUS]; /* last route row = unmatched */
    _Atomic int64_t ws_connections;
    _Atomic uint64_t events_delivered;
    _Atomic int type_claimed[M_JOB_TYPES];
    char type_name[M_JOB_TYPES][M_TYPE_NAME];
    _Atomic int type_ready[M_JOB_TYPES];
    histogram wait[M_JOB_TYPES];
    histogram run[M_JOB_TYPES];
};

metrics *metrics_create_shared(void) {
    void *p = mmap(NULL, sizeof(metrics), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                   0);
    return p == MAP_FAILED ? NULL : p; /* anonymous maps are zero-filled */
}

void metrics_destroy(metrics *m) {
    if (m) munmap(m, sizeof(metrics));
}

void metrics_http(metrics *m, int route, int status) {
    if (!m || status < 0 || status >= M_STATUS) return;
    int row = route < 0 || route >= M_ROUTES ? M_ROUTES : route;
    atomic_fetch_add(&m->http[row][status], 1);
}

void metrics_ws_connections(metrics *m, int delta) {
    if (m) atomic_fetch_add(&m->ws_connections, delta);
}

void metrics_events_delivered(metrics *m, uint64_t n) {
    if (m) atomic_fetch_add(&m->events_delivered, n);
}

/* The slot of a job type, claiming a free one for a new name. Claiming is
 * a compare-and-swap; the name is visible once type_ready is set. */
static int type_slot(metrics *m, const char *name) {
    for (int i = 0; i < M_JOB_TYPES; i++) {
        if (atomic_load(&m->type_ready[i]) && strcmp(m->type_name[i], name) == 0) return i;
        int expected = 0;
        if (atomic_compare_exchange_strong(&m->type_claimed[i], &expected, 1)) {
            ts_strlcpy(m->type_name[i], name, M_TYPE_NAME);
            atomic_store(&m->type_ready[i], 1);
            return i;
        }
        while (!atomic_load(&m->type_ready[i])) {
        } /* another process is writing this name */
        if (strcmp(m->type_name[i], name) == 0) return i;
    }
    return -1;
}

static void observe(histogram *h, double seconds) {
    int b = 0;
    while (b < M_BUCKETS && seconds > bucket_le[b]) b++;
    atomic_fetch_add(&h->count[b], 1);
    atomic_fetch_add(&h->sum_us, (uint64_t)(seconds > 0 ? seconds * 1e6 : 0));
}

void metrics_job_wait(metrics *m, const char *job_type, double seconds) {
    int slot = m ? type_slot(m, job_type) : -1;
    if (slot >= 0) observe(&m->wait[slot], seconds);
}

void metrics_job_run(metrics *m, const char *job_type, double seconds) {
    int slot = m ? type_slot(m, job_type) : -1;
    if (slot >= 0) observe(&m->run[slot], seconds);
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        b->p = ts_realloc(b->p, b->cap);
    }
}

static void render_histogram(buf *b, const char *name, histogram *hs, metrics *m) {
    bprintf(b, "# TYPE %s histogram\n", name);
    for (int t = 0; t < M_JOB_TYPES; t++) {
        if (!atomic_load(&m->type_ready[t])) continue;
        uint64_t cum = 0;
        for (int k = 0; k <= M_BUCKETS; k++) {
            cum += atomic_load(&hs[t].count[k]);
            if (k < M_BUCKETS)
                bprintf(b, "%s_bucket{job_type=\"%s\",le=\"%g\"} %llu\n", name, m->type_name[t],
                        bucket_le[k], (unsigned long long)cum);
            else
                bprintf(b, "%s_bucket{job_type=\"%s\",le=\"+Inf\"} %llu\n", name,
                        m->type_name[t], (unsigned long long)cum);
        }
        bprintf(b, "%s_sum{job_type=\"%s\"} %.6f\n", name, m->type_name[t],
                (double)atomic_load(&hs[t].sum_us) / 1e6);
        bprintf(b, "%s_count{job_type=\"%s\"} %llu\n", name, m->type_name[t],
                (unsigned long long)cum);
    }
}

static void render_http(buf *b, metrics *m) {
    bprintf(b, "# HELP tessera_http_requests_total HTTP requests answered, by route and status.\n"
               "# TYPE tessera_http_requests_total counter\n");
    for (int r = 0; r <= M_ROUTES; r++) {
        char route[160];
        if (r < (int)http_routes_count && r < M_ROUTES)
            snprintf(route, sizeof(route), "%s %s", http_routes[r].method, http_routes[r].pattern);
        else if (r == M_ROUTES)
            snprintf(route, sizeof(route), "unmatched");
        else
            continue;
        for (int s = 100; s < M_STATUS; s++) {
            uint64_t n = atomic_load(&m->http[r][s]);
            if (n)
                bprintf(b, "tessera_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route,
                        s, (unsigned long long)n);
        }
    }
}

char *metrics_render(metrics *m, const store_queue_stats *stats, int max_active_users,
                     int concurrency_limit, size_t *len) {
    buf b = {ts_malloc(8192), 0, 8192};
    if (stats) {
        bprintf(&b,
                "# HELP tessera_admission_queue_depth Workflows waiting in the admission line.\n"
                "# TYPE tessera_admission_queue_depth gauge\ntessera_admission_queue_depth %d\n"
                "# HELP tessera_waiting_users Users with a waiting workflow and none running.\n"
                "# TYPE tessera_waiting_users gauge\ntessera_waiting_users %d\n"
                "# HELP tessera_active_users Users with a running workflow.\n"
                "# TYPE tessera_active_users gauge\ntessera_active_users %d\n"
                "# TYPE tessera_max_active_users gauge\ntessera_max_active_users %d\n"
                "# HELP tessera_running_cpus Cpus held by running jobs.\n"
                "# TYPE tessera_running_cpus gauge\ntessera_running_cpus %d\n"
                "# TYPE tessera_running_jobs gauge\ntessera_running_jobs %d\n"
                "# TYPE tessera_concurrency_limit gauge\ntessera_concurrency_limit %d\n",
                stats->queued_workflows, stats->waiting_users, stats->active_users,
                max_active_users, stats->running_cpus, stats->running_jobs, concurrency_limit);
    }
    bprintf(&b, "# HELP tessera_websocket_connections Open WebSocket connections.\n"
                "# TYPE tessera_websocket_connections gauge\ntessera_websocket_connections %lld\n"
                "# HELP tessera_events_delivered_total Events sent to WebSocket clients.\n"
                "# TYPE tessera_events_delivered_total counter\n"
                "tessera_events_delivered_total %llu\n",
            (long long)atomic_load(&m->ws_connections),
            (unsigned long long)atomic_load(&m->events_delivered));
    render_http(&b, m);
    render_histogram(&b, "tessera_job_wait_seconds", m->wait, m);
    render_histogram(&b, "tessera_job_run_seconds", m->run, m);
    *len = b.len;
    return b.p;
}
