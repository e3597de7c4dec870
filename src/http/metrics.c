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

/* Outcomes of an attempt that left running, and failure reasons: fixed
 * lists, so the label sets are bounded by construction. */
static const char *const outcomes[] = {"succeeded", "failed", "timeout", "cancelled",
                                       "interrupted"};
#define M_OUTCOMES (int)(sizeof(outcomes) / sizeof(outcomes[0]))
static const char *const reasons[] = {"exit_status", "signal", "start_failed", "timeout",
                                      "interrupted"};
#define M_REASONS (int)(sizeof(reasons) / sizeof(reasons[0]))

/* Requests that match no route: the web UI's files (answered from disk,
 * any status below 400) and everything else (404s of unknown paths). */
#define ROW_UNMATCHED M_ROUTES
#define ROW_STATIC (M_ROUTES + 1)
#define M_ROWS (M_ROUTES + 2)

#define M_CALLS 48
#define M_CALL_NAME 32
#define M_FAST_BUCKETS 12

/* Seconds, for store calls and event delivery: sub-millisecond up. */
static const double fast_le[M_FAST_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,   0.1,   0.25,   0.5,   1,    5};

typedef struct histogram {
    _Atomic uint64_t count[M_BUCKETS + 1]; /* last = +Inf */
    _Atomic uint64_t sum_us;
} histogram;

struct metrics {
    _Atomic uint64_t http[M_ROWS][M_STATUS];       /* rows: routes, then ROW_UNMATCHED
                                                      and ROW_STATIC */
    histogram http_latency[M_ROWS];                /* fast_le buckets */
    _Atomic int64_t ws_connections;
    _Atomic uint64_t events_delivered;
    _Atomic uint64_t view_reads[2]; /* [0] rendered, [1] from the view cache */
    _Atomic uint64_t submit_commits;
    _Atomic int64_t submits_waiting;
    _Atomic int type_claimed[M_JOB_TYPES];
    char type_name[M_JOB_TYPES][M_TYPE_NAME];
    _Atomic int type_ready[M_JOB_TYPES];
    histogram wait[M_JOB_TYPES];
    histogram run[M_JOB_TYPES];
    _Atomic uint64_t finished[M_JOB_TYPES][8];     /* by outcomes[] index */
    _Atomic uint64_t failures[M_JOB_TYPES][8];     /* by reasons[] index */
    _Atomic int call_claimed[M_CALLS];
    _Atomic int call_ready[M_CALLS];
    char call_name[M_CALLS][M_CALL_NAME];
    histogram calls[M_CALLS];      /* fast_le buckets */
    _Atomic uint64_t call_errors[M_CALLS];
    _Atomic uint64_t wakeups[2];   /* [0] poll timer, [1] notification */
    histogram event_delay;         /* fast_le buckets */
    histogram event_fanout;        /* fast_le buckets */
    /* The Slurm executor's, copied from the scheduler (metrics_slurm). */
    _Atomic int slurm_set;
    _Atomic uint64_t slurm_counters[6]; /* slurm_counter_names[] */
    _Atomic int64_t slurm_jobs[3];      /* waiting, pending, running */
    _Atomic int slurm_up;
    _Atomic uint64_t slurm_squeue_us_sum, slurm_squeue_us_last;
};

static void observe_in(struct histogram *h, const double *le, double seconds);

_Static_assert(M_OUTCOMES <= 8 && M_REASONS <= 8, "outcome and reason tables fit their rows");

metrics *metrics_create_shared(void) {
    void *p = mmap(NULL, sizeof(metrics), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                   0);
    return p == MAP_FAILED ? NULL : p; /* anonymous maps are zero-filled */
}

void metrics_destroy(metrics *m) {
    if (m) munmap(m, sizeof(metrics));
}

void metrics_http(metrics *m, int route, int status, double seconds) {
    if (!m || status < 0 || status >= M_STATUS) return;
    int row = route >= 0 && route < M_ROUTES ? route : status < 400 ? ROW_STATIC : ROW_UNMATCHED;
    atomic_fetch_add(&m->http[row][status], 1);
    observe_in(&m->http_latency[row], fast_le, seconds);
}

void metrics_ws_connections(metrics *m, int delta) {
    if (m) atomic_fetch_add(&m->ws_connections, delta);
}

void metrics_view_read(metrics *m, bool hit) {
    if (m) atomic_fetch_add(&m->view_reads[hit ? 1 : 0], 1);
}

void metrics_submit_commit(metrics *m) {
    if (m) atomic_fetch_add(&m->submit_commits, 1);
}

void metrics_submit_waiting(metrics *m, int delta) {
    if (m) atomic_fetch_add(&m->submits_waiting, delta);
}

void metrics_events_delivered(metrics *m, uint64_t n) {
    if (m) atomic_fetch_add(&m->events_delivered, n);
}

/* The slot of a name in a table of n named slots, claiming a free one for
 * a new name. Claiming is a compare-and-swap; the name is visible once
 * ready is set. */
static int name_slot(_Atomic int *claimed, _Atomic int *ready, char *names, size_t name_len,
                     int n, const char *name) {
    for (int i = 0; i < n; i++) {
        char *slot = names + (size_t)i * name_len;
        if (atomic_load(&ready[i]) && strcmp(slot, name) == 0) return i;
        int expected = 0;
        if (atomic_compare_exchange_strong(&claimed[i], &expected, 1)) {
            ts_strlcpy(slot, name, name_len);
            atomic_store(&ready[i], 1);
            return i;
        }
        while (!atomic_load(&ready[i])) {
        } /* another process is writing this name */
        if (strcmp(slot, name) == 0) return i;
    }
    return -1;
}

static int type_slot(metrics *m, const char *name) {
    return name_slot(m->type_claimed, m->type_ready, &m->type_name[0][0], M_TYPE_NAME,
                     M_JOB_TYPES, name);
}

static void observe_in(histogram *h, const double *le, double seconds) {
    int b = 0;
    while (b < M_BUCKETS && seconds > le[b]) b++;
    atomic_fetch_add(&h->count[b], 1);
    atomic_fetch_add(&h->sum_us, (uint64_t)(seconds > 0 ? seconds * 1e6 : 0));
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

const char *metrics_failure_reason(const char *outcome, int exit_code) {
    if (outcome == NULL) return NULL;
    if (strcmp(outcome, "timeout") == 0) return "timeout";
    if (strcmp(outcome, "interrupted") == 0) return "interrupted";
    if (strcmp(outcome, "failed") != 0) return NULL; /* succeeded, cancelled */
    if (exit_code < 0) return "start_failed";
    return exit_code >= 128 ? "signal" : "exit_status";
}

static int index_of(const char *const *names, int n, const char *name) {
    for (int i = 0; name && i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

void metrics_job_end(metrics *m, const char *job_type, const char *outcome, int exit_code) {
    int slot = m ? type_slot(m, job_type) : -1;
    if (slot < 0) return;
    int o = index_of(outcomes, M_OUTCOMES, outcome);
    if (o >= 0) atomic_fetch_add(&m->finished[slot][o], 1);
    int r = index_of(reasons, M_REASONS, metrics_failure_reason(outcome, exit_code));
    if (r >= 0) atomic_fetch_add(&m->failures[slot][r], 1);
}

void metrics_store_call(void *ctx, const char *call, double seconds, int rc) {
    metrics *m = ctx;
    int slot = m ? name_slot(m->call_claimed, m->call_ready, &m->call_name[0][0], M_CALL_NAME,
                             M_CALLS, call)
                 : -1;
    if (slot < 0) return;
    observe_in(&m->calls[slot], fast_le, seconds);
    if (rc == STORE_UNAVAILABLE || rc == TS_ERR) atomic_fetch_add(&m->call_errors[slot], 1);
}

void metrics_events_wakeup(metrics *m, bool notified) {
    if (m) atomic_fetch_add(&m->wakeups[notified ? 1 : 0], 1);
}

void metrics_event_delay(metrics *m, double seconds) {
    if (m) observe_in(&m->event_delay, fast_le, seconds);
}

void metrics_event_fanout(metrics *m, double seconds) {
    if (m) observe_in(&m->event_fanout, fast_le, seconds);
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

/* One histogram line set; label is "" or `key="value"`. */
static void render_one(buf *b, const char *name, const char *label, histogram *h,
                       const double *le) {
    uint64_t cum = 0;
    const char *sep = label[0] ? "," : "";
    for (int k = 0; k <= M_BUCKETS; k++) {
        cum += atomic_load(&h->count[k]);
        if (k < M_BUCKETS)
            bprintf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, sep, le[k],
                    (unsigned long long)cum);
        else
            bprintf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, sep,
                    (unsigned long long)cum);
    }
    char set[256] = "";
    if (label[0]) snprintf(set, sizeof(set), "{%s}", label);
    bprintf(b, "%s_sum%s %.6f\n%s_count%s %llu\n", name, set,
            (double)atomic_load(&h->sum_us) / 1e6, name, set, (unsigned long long)cum);
}

/* Store latency by call, wake-ups, event delivery delay, the leader. */
static void render_cluster(buf *b, metrics *m, const store_leader_info *leader) {
    bprintf(b, "# HELP tessera_store_call_seconds Store calls by call (every process).\n"
               "# TYPE tessera_store_call_seconds histogram\n");
    for (int i = 0; i < M_CALLS; i++) {
        if (!atomic_load(&m->call_ready[i])) continue;
        char label[64];
        snprintf(label, sizeof(label), "call=\"%s\"", m->call_name[i]);
        render_one(b, "tessera_store_call_seconds", label, &m->calls[i], fast_le);
    }
    bprintf(b, "# HELP tessera_store_call_errors_total Store calls that failed (store error or unavailable).\n"
               "# TYPE tessera_store_call_errors_total counter\n");
    for (int i = 0; i < M_CALLS; i++)
        if (atomic_load(&m->call_ready[i]))
            bprintf(b, "tessera_store_call_errors_total{call=\"%s\"} %llu\n", m->call_name[i],
                    (unsigned long long)atomic_load(&m->call_errors[i]));
    bprintf(b, "# HELP tessera_event_wakeups_total WebSocket hub reads of new events, by cause.\n"
               "# TYPE tessera_event_wakeups_total counter\n"
               "tessera_event_wakeups_total{by=\"poll\"} %llu\n"
               "tessera_event_wakeups_total{by=\"notify\"} %llu\n",
            (unsigned long long)atomic_load(&m->wakeups[0]),
            (unsigned long long)atomic_load(&m->wakeups[1]));
    bprintf(b, "# HELP tessera_event_delivery_seconds From an event to a WebSocket hub's read of it (events lag).\n"
               "# TYPE tessera_event_delivery_seconds histogram\n");
    render_one(b, "tessera_event_delivery_seconds", "", &m->event_delay, fast_le);
    bprintf(b, "# HELP tessera_event_fanout_seconds From an event to its frames written to every WebSocket connection that receives it.\n"
               "# TYPE tessera_event_fanout_seconds histogram\n");
    render_one(b, "tessera_event_fanout_seconds", "", &m->event_fanout, fast_le);
    if (leader == NULL) return;
    bprintf(b, "# HELP tessera_leader_up Whether a scheduler holds an unexpired lease (1) or none does (0).\n"
               "# TYPE tessera_leader_up gauge\ntessera_leader_up %d\n",
            leader->owner[0] && leader->expires_in > 0 ? 1 : 0);
    if (leader->owner[0] == '\0') return; /* nobody ever led: no term, no owner */
    bprintf(b, "# HELP tessera_leader_term The scheduler lease's term (grows at every election).\n"
               "# TYPE tessera_leader_term gauge\ntessera_leader_term %lld\n"
               "# HELP tessera_leader_lease_seconds Seconds left on the leader's lease (negative: lapsed).\n"
               "# TYPE tessera_leader_lease_seconds gauge\ntessera_leader_lease_seconds %.3f\n"
               "# HELP tessera_leader_info The scheduler that holds the lease.\n"
               "# TYPE tessera_leader_info gauge\ntessera_leader_info{owner=\"%s\"} 1\n",
            (long long)leader->term, leader->expires_in, leader->owner);
}

/* The method and route template labels of a route row. */
static bool route_labels(int r, char *out, size_t n) {
    if (r == ROW_UNMATCHED || r == ROW_STATIC) {
        snprintf(out, n, "method=\"other\",route=\"%s\"", r == ROW_STATIC ? "static" : "unmatched");
        return true;
    }
    if (r >= (int)http_routes_count) return false;
    snprintf(out, n, "method=\"%s\",route=\"%s\"", http_routes[r].method, http_routes[r].pattern);
    return true;
}

/* Requests by route and status, and their latency by route (rows that
 * served nothing yet are left out: a route appears with its first call). */
static void render_http(buf *b, metrics *m) {
    bprintf(b, "# HELP tessera_http_requests_total HTTP requests answered, by route template and status.\n"
               "# TYPE tessera_http_requests_total counter\n");
    char labels[192];
    for (int r = 0; r < M_ROWS; r++) {
        if (!route_labels(r, labels, sizeof(labels))) continue;
        for (int s = 100; s < M_STATUS; s++) {
            uint64_t n = atomic_load(&m->http[r][s]);
            if (n)
                bprintf(b, "tessera_http_requests_total{%s,status=\"%d\"} %llu\n", labels, s,
                        (unsigned long long)n);
        }
    }
    bprintf(b, "# HELP tessera_http_request_duration_seconds From a request's arrival to its reply, by route template.\n"
               "# TYPE tessera_http_request_duration_seconds histogram\n");
    for (int r = 0; r < M_ROWS; r++) {
        uint64_t seen = 0;
        for (int k = 0; k <= M_BUCKETS; k++) seen += atomic_load(&m->http_latency[r].count[k]);
        if (seen && route_labels(r, labels, sizeof(labels)))
            render_one(b, "tessera_http_request_duration_seconds", labels, &m->http_latency[r],
                       fast_le);
    }
}

/* Attempts finished by type and outcome (throughput) and failures by type
 * and reason. */
static void render_outcomes(buf *b, metrics *m) {
    bprintf(b, "# HELP tessera_jobs_finished_total Job attempts that left running, by job type and outcome.\n"
               "# TYPE tessera_jobs_finished_total counter\n");
    for (int t = 0; t < M_JOB_TYPES; t++)
        for (int o = 0; atomic_load(&m->type_ready[t]) && o < M_OUTCOMES; o++)
            bprintf(b, "tessera_jobs_finished_total{job_type=\"%s\",outcome=\"%s\"} %llu\n",
                    m->type_name[t], outcomes[o], (unsigned long long)atomic_load(&m->finished[t][o]));
    bprintf(b, "# HELP tessera_job_failures_total Job attempts that failed, by job type and reason.\n"
               "# TYPE tessera_job_failures_total counter\n");
    for (int t = 0; t < M_JOB_TYPES; t++)
        for (int r = 0; atomic_load(&m->type_ready[t]) && r < M_REASONS; r++)
            bprintf(b, "tessera_job_failures_total{job_type=\"%s\",reason=\"%s\"} %llu\n",
                    m->type_name[t], reasons[r], (unsigned long long)atomic_load(&m->failures[t][r]));
}

/* The admission line and cpus, read from the store at scrape time. */
static void render_line(buf *b, const metrics_scrape *sc) {
    const store_queue_stats *st = sc->stats;
    double oldest = st->oldest_queued_at > 0 && sc->now > st->oldest_queued_at
                        ? sc->now - st->oldest_queued_at
                        : 0;
    int free_cpus = sc->concurrency_limit - st->running_cpus;
    bprintf(b,
            "# HELP tessera_admission_queue_depth Workflows waiting in the admission line.\n"
            "# TYPE tessera_admission_queue_depth gauge\ntessera_admission_queue_depth %d\n"
            "# HELP tessera_admission_oldest_wait_seconds How long the longest-waiting workflow has waited (0: none waits).\n"
            "# TYPE tessera_admission_oldest_wait_seconds gauge\n"
            "tessera_admission_oldest_wait_seconds %.3f\n"
            "# HELP tessera_waiting_users Users with a waiting workflow and none running.\n"
            "# TYPE tessera_waiting_users gauge\ntessera_waiting_users %d\n"
            "# HELP tessera_active_users Users with a running workflow.\n"
            "# TYPE tessera_active_users gauge\ntessera_active_users %d\n"
            "# HELP tessera_max_active_users The active-user limit (TESSERA_MAX_ACTIVE_USERS).\n"
            "# TYPE tessera_max_active_users gauge\ntessera_max_active_users %d\n"
            "# HELP tessera_running_cpus Cpus held by running jobs.\n"
            "# TYPE tessera_running_cpus gauge\ntessera_running_cpus %d\n"
            "# HELP tessera_free_cpus Cpus not held by running jobs (concurrency limit minus running).\n"
            "# TYPE tessera_free_cpus gauge\ntessera_free_cpus %d\n"
            "# HELP tessera_running_jobs Jobs running.\n"
            "# TYPE tessera_running_jobs gauge\ntessera_running_jobs %d\n"
            "# HELP tessera_concurrency_limit Cpus the scheduler may hand out (TESSERA_CONCURRENCY_LIMIT).\n"
            "# TYPE tessera_concurrency_limit gauge\ntessera_concurrency_limit %d\n",
            st->queued_workflows, oldest, st->waiting_users, st->active_users,
            sc->max_active_users, st->running_cpus, free_cpus > 0 ? free_cpus : 0,
            st->running_jobs, sc->concurrency_limit);
}

/* ---- Slurm ------------------------------------------------------------------------ */

static const char *const slurm_counter_names[6][2] = {
    {"tessera_slurm_submissions_total", "sbatch calls that returned a Slurm job id."},
    {"tessera_slurm_submit_failures_total", "sbatch calls that failed (refused, or Slurm unreachable)."},
    {"tessera_slurm_squeue_calls_total", "squeue calls (one per poll for all of tessera's jobs)."},
    {"tessera_slurm_squeue_failures_total", "squeue calls that failed (Slurm unreachable)."},
    {"tessera_slurm_sacct_calls_total", "sacct calls (explicit job ids, for jobs that left squeue)."},
    {"tessera_slurm_scancel_calls_total", "scancel calls (cancels and timeouts)."},
};

void metrics_slurm(void *mp, const exec_slurm_stats *st) {
    metrics *m = mp;
    if (!m) return;
    if (!st) {
        atomic_store(&m->slurm_set, 0);
        return;
    }
    uint64_t c[6] = {st->submitted, st->submit_failures, st->squeue_calls, st->squeue_failures,
                     st->sacct_calls, st->scancel_calls};
    for (int i = 0; i < 6; i++) atomic_store(&m->slurm_counters[i], c[i]);
    atomic_store(&m->slurm_jobs[0], st->waiting);
    atomic_store(&m->slurm_jobs[1], st->pending);
    atomic_store(&m->slurm_jobs[2], st->running);
    atomic_store(&m->slurm_up, st->reachable ? 1 : 0);
    atomic_store(&m->slurm_squeue_us_sum, (uint64_t)(st->squeue_seconds_sum * 1e6));
    atomic_store(&m->slurm_squeue_us_last, (uint64_t)(st->squeue_seconds_last * 1e6));
    atomic_store(&m->slurm_set, 1);
}

static void render_slurm(buf *b, metrics *m) {
    if (!atomic_load(&m->slurm_set)) return;
    for (int i = 0; i < 6; i++)
        bprintf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", slurm_counter_names[i][0],
                slurm_counter_names[i][1], slurm_counter_names[i][0], slurm_counter_names[i][0],
                (unsigned long long)atomic_load(&m->slurm_counters[i]));
    bprintf(b, "# HELP tessera_slurm_squeue_seconds_total Time spent in squeue calls.\n"
               "# TYPE tessera_slurm_squeue_seconds_total counter\n"
               "tessera_slurm_squeue_seconds_total %.6f\n"
               "# HELP tessera_slurm_squeue_last_seconds How long the last squeue call took.\n"
               "# TYPE tessera_slurm_squeue_last_seconds gauge\n"
               "tessera_slurm_squeue_last_seconds %.6f\n"
               "# HELP tessera_slurm_up Whether the last squeue call succeeded (1) or Slurm was unreachable (0).\n"
               "# TYPE tessera_slurm_up gauge\ntessera_slurm_up %d\n"
               "# HELP tessera_slurm_jobs Attempts by where they are: waiting in tessera to be submitted, pending or running in Slurm.\n"
               "# TYPE tessera_slurm_jobs gauge\n"
               "tessera_slurm_jobs{state=\"waiting\"} %lld\n"
               "tessera_slurm_jobs{state=\"pending\"} %lld\n"
               "tessera_slurm_jobs{state=\"running\"} %lld\n",
            (double)atomic_load(&m->slurm_squeue_us_sum) / 1e6,
            (double)atomic_load(&m->slurm_squeue_us_last) / 1e6, atomic_load(&m->slurm_up),
            (long long)atomic_load(&m->slurm_jobs[0]), (long long)atomic_load(&m->slurm_jobs[1]),
            (long long)atomic_load(&m->slurm_jobs[2]));
}

char *metrics_render(metrics *m, const metrics_scrape *sc, size_t *len) {
    buf b = {ts_malloc(16384), 0, 16384};
    bprintf(&b, "# HELP tessera_store_up Whether this scrape could read the store (1) or not (0).\n"
                "# TYPE tessera_store_up gauge\ntessera_store_up %d\n",
            sc->stats ? 1 : 0);
    if (sc->stats) render_line(&b, sc);
    if (sc->state_free_bytes >= 0)
        bprintf(&b, "# HELP tessera_state_dir_free_bytes Bytes free for the service in the state directory's file system.\n"
                    "# TYPE tessera_state_dir_free_bytes gauge\ntessera_state_dir_free_bytes %.0f\n"
                    "# HELP tessera_state_dir_size_bytes Size of the state directory's file system.\n"
                    "# TYPE tessera_state_dir_size_bytes gauge\ntessera_state_dir_size_bytes %.0f\n",
                sc->state_free_bytes, sc->state_size_bytes);
    bprintf(&b, "# HELP tessera_websocket_connections Open WebSocket connections.\n"
                "# TYPE tessera_websocket_connections gauge\ntessera_websocket_connections %lld\n"
                "# HELP tessera_events_delivered_total Events sent to WebSocket clients.\n"
                "# TYPE tessera_events_delivered_total counter\n"
                "tessera_events_delivered_total %llu\n",
            (long long)atomic_load(&m->ws_connections),
            (unsigned long long)atomic_load(&m->events_delivered));
    bprintf(&b, "# HELP tessera_workflow_reads_total GETs of a workflow, served from a worker's view cache (hit) or rendered from the store (miss).\n"
                "# TYPE tessera_workflow_reads_total counter\n"
                "tessera_workflow_reads_total{result=\"hit\"} %llu\n"
                "tessera_workflow_reads_total{result=\"miss\"} %llu\n",
            (unsigned long long)atomic_load(&m->view_reads[1]),
            (unsigned long long)atomic_load(&m->view_reads[0]));
    bprintf(&b, "# HELP tessera_submit_commits_total Commits that stored submitted workflows; concurrent submissions share one (group commit), so the POSTs answered 201 over this is the submissions per commit.\n"
                "# TYPE tessera_submit_commits_total counter\n"
                "tessera_submit_commits_total %llu\n",
            (unsigned long long)atomic_load(&m->submit_commits));
    bprintf(&b, "# HELP tessera_submissions_waiting Submissions checked and queued for their commit, not yet answered.\n"
                "# TYPE tessera_submissions_waiting gauge\n"
                "tessera_submissions_waiting %lld\n",
            (long long)atomic_load(&m->submits_waiting));
    render_http(&b, m);
    bprintf(&b, "# HELP tessera_job_wait_seconds From a job being ready to its start, by job type.\n");
    render_histogram(&b, "tessera_job_wait_seconds", m->wait, m);
    bprintf(&b, "# HELP tessera_job_run_seconds From a job's start to the end of its attempt, by job type.\n");
    render_histogram(&b, "tessera_job_run_seconds", m->run, m);
    render_outcomes(&b, m);
    render_cluster(&b, m, sc->leader);
    render_slurm(&b, m);
    *len = b.len;
    return b.p;
}

/* ---- JSON for the operator's page ------------------------------------------------ */

/* Adds b's counts into into (bucket by bucket): sums histograms of one
 * bucket layout. */
static void hist_add(histogram *into, histogram *b) {
    for (int k = 0; k <= M_BUCKETS; k++)
        atomic_fetch_add(&into->count[k], atomic_load(&b->count[k]));
    atomic_fetch_add(&into->sum_us, atomic_load(&b->sum_us));
}

static json_t *hist_json(histogram *h, const double *le) {
    json_t *bounds = json_array(), *counts = json_array();
    uint64_t cum = 0;
    for (int k = 0; k <= M_BUCKETS; k++) {
        cum += atomic_load(&h->count[k]);
        if (k == M_BUCKETS) break;
        json_array_append_new(bounds, json_real(le[k]));
        json_array_append_new(counts, json_integer((json_int_t)cum));
    }
    return json_pack("{so so sI sf}", "le", bounds, "counts", counts, "count", (json_int_t)cum,
                     "sum", (double)atomic_load(&h->sum_us) / 1e6);
}

static uint64_t hist_count(histogram *h) {
    uint64_t n = 0;
    for (int k = 0; k <= M_BUCKETS; k++) n += atomic_load(&h->count[k]);
    return n;
}

/* HTTP totals, latency over every route but the event stream (a WebSocket's
 * upgrade says nothing about request latency), and each route with traffic. */
static json_t *http_part_json(metrics *m) {
    histogram all = {0};
    uint64_t requests = 0, server_errors = 0, client_errors = 0;
    json_t *routes = json_array();
    for (int r = 0; r < M_ROWS; r++) {
        if (r < M_ROUTES && r >= (int)http_routes_count) continue;
        uint64_t n = 0, e5 = 0, e4 = 0;
        for (int s = 100; s < M_STATUS; s++) {
            uint64_t c = atomic_load(&m->http[r][s]);
            n += c;
            if (s >= 500) e5 += c;
            else if (s >= 400) e4 += c;
        }
        if (n == 0) continue;
        requests += n;
        server_errors += e5;
        client_errors += e4;
        bool events = r < M_ROUTES && strcmp(http_routes[r].pattern, "/api/events") == 0;
        if (!events) hist_add(&all, &m->http_latency[r]);
        json_array_append_new(
            routes, json_pack("{ss ss sI sI sI so}", "method", r < M_ROUTES ? http_routes[r].method : "other",
                              "route", r < M_ROUTES    ? http_routes[r].pattern
                                       : r == ROW_STATIC ? "static"
                                                         : "unmatched",
                              "requests", (json_int_t)n, "server_errors", (json_int_t)e5,
                              "client_errors", (json_int_t)e4, "latency",
                              hist_json(&m->http_latency[r], fast_le)));
    }
    return json_pack("{sI sI sI so so}", "requests", (json_int_t)requests, "server_errors",
                     (json_int_t)server_errors, "client_errors", (json_int_t)client_errors,
                     "latency", hist_json(&all, fast_le), "routes", routes);
}

static json_t *jobs_json(metrics *m) {
    json_t *types = json_array();
    for (int t = 0; t < M_JOB_TYPES; t++) {
        if (!atomic_load(&m->type_ready[t])) continue;
        json_t *finished = json_object(), *failures = json_object();
        for (int o = 0; o < M_OUTCOMES; o++)
            json_object_set_new(finished, outcomes[o],
                                json_integer((json_int_t)atomic_load(&m->finished[t][o])));
        for (int r = 0; r < M_REASONS; r++)
            json_object_set_new(failures, reasons[r],
                                json_integer((json_int_t)atomic_load(&m->failures[t][r])));
        json_array_append_new(types, json_pack("{ss so so so so}", "job_type", m->type_name[t],
                                               "finished", finished, "failures", failures, "wait",
                                               hist_json(&m->wait[t], bucket_le), "run",
                                               hist_json(&m->run[t], bucket_le)));
    }
    return types;
}

/* Store calls of every process of this instance, all calls together. */
static json_t *store_json(metrics *m, bool up) {
    histogram all = {0};
    uint64_t errors = 0;
    for (int i = 0; i < M_CALLS; i++) {
        if (!atomic_load(&m->call_ready[i])) continue;
        hist_add(&all, &m->calls[i]);
        errors += atomic_load(&m->call_errors[i]);
    }
    return json_pack("{sb sI sI so}", "up", up, "calls", (json_int_t)hist_count(&all), "errors",
                     (json_int_t)errors, "latency", hist_json(&all, fast_le));
}

json_t *metrics_json(metrics *m, const metrics_scrape *sc) {
    json_t *o = json_object();
    const store_queue_stats *st = sc->stats;
    if (st) {
        double oldest = st->oldest_queued_at > 0 && sc->now > st->oldest_queued_at
                            ? sc->now - st->oldest_queued_at
                            : 0;
        int free_cpus = sc->concurrency_limit - st->running_cpus;
        json_object_set_new(o, "line",
                            json_pack("{si sf si si si}", "queued_workflows", st->queued_workflows,
                                      "oldest_wait_s", oldest, "waiting_users", st->waiting_users,
                                      "active_users", st->active_users, "max_active_users",
                                      sc->max_active_users));
        json_object_set_new(o, "cpus", json_pack("{si si si si}", "running", st->running_cpus,
                                                 "free", free_cpus > 0 ? free_cpus : 0, "limit",
                                                 sc->concurrency_limit, "running_jobs",
                                                 st->running_jobs));
    } else {
        json_object_set_new(o, "line", json_null());
        json_object_set_new(o, "cpus", json_null());
    }
    const store_leader_info *l = sc->leader;
    json_object_set_new(o, "leader",
                        l ? json_pack("{ss sI sf sb}", "owner", l->owner, "term", (json_int_t)l->term,
                                      "lease_s", l->expires_in, "up",
                                      l->owner[0] && l->expires_in > 0)
                          : json_null());
    json_object_set_new(o, "state_dir",
                        sc->state_free_bytes >= 0
                            ? json_pack("{sf sf}", "free_bytes", sc->state_free_bytes, "size_bytes",
                                        sc->state_size_bytes)
                            : json_null());
    json_object_set_new(o, "http", http_part_json(m));
    json_object_set_new(o, "jobs", jobs_json(m));
    json_object_set_new(o, "store", store_json(m, st != NULL));
    json_object_set_new(
        o, "slurm",
        atomic_load(&m->slurm_set)
            ? json_pack("{sb sI sI sI si si si sI}", "up", atomic_load(&m->slurm_up) != 0,
                        "submissions", (json_int_t)atomic_load(&m->slurm_counters[0]),
                        "submit_failures", (json_int_t)atomic_load(&m->slurm_counters[1]),
                        "squeue_failures", (json_int_t)atomic_load(&m->slurm_counters[3]),
                        "waiting", (int)atomic_load(&m->slurm_jobs[0]), "pending",
                        (int)atomic_load(&m->slurm_jobs[1]), "running",
                        (int)atomic_load(&m->slurm_jobs[2]), "squeue_calls",
                        (json_int_t)atomic_load(&m->slurm_counters[2]))
            : json_null());
    json_object_set_new(o, "websocket",
                        json_pack("{sI sI so}", "clients",
                                  (json_int_t)atomic_load(&m->ws_connections), "events_delivered",
                                  (json_int_t)atomic_load(&m->events_delivered), "delivery",
                                  hist_json(&m->event_delay, fast_le)));
    return o;
}
