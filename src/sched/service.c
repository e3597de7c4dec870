/*
 * service.c - see service.h.
 */
#include "sched/service.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "sched/doorbell.h"
#include "sched/scheduler.h"
#include "sched/setup.h"
#include "util/log.h"
#include "util/util.h"

#define SHUTDOWN_BACKSTOP_SECONDS 30 /* SIGALRM ends a hand-over that hangs */

static volatile sig_atomic_t stop_requested;

/* Asks the loop to stop, and makes sure the process ends even if the
 * hand-over hangs (a store that does not answer): a scheduler that outlived
 * its master would keep running jobs nobody supervises. */
static void on_stop(int sig) {
    if (!stop_requested) alarm(SHUTDOWN_BACKSTOP_SECONDS);
    stop_requested = sig;
}

static void make_owner(char *buf, size_t n) {
    /* Under `tessera serve` the instance's name (host:port) comes first, so
     * that the lease says which instance leads (the operations page,
     * tessera_leader_info); the pid and start time make it unique. */
    char host[128] = "localhost";
    const char *instance = log_instance_name();
    if (instance[0] == '\0') gethostname(host, sizeof(host) - 1);
    snprintf(buf, n, "%s:%d:%.0f", instance[0] ? instance : host, (int)getpid(), ts_now() * 1000);
}

/* Sleeps seconds in slices, ticking the liveness slot (the master replaces
 * a scheduler that stops ticking) and ending early on SIGTERM. */
static void wait_ticking(double seconds, liveness_slot *live) {
    for (double end = ts_monotonic() + seconds; !stop_requested && ts_monotonic() < end;) {
        liveness_tick(live, LIVENESS_MAIN);
        usleep(50000);
    }
}

/* The backoff after the n-th failure in a row: 0.1 s doubling to 2 s. */
static double backoff(int n) {
    double b = 0.1;
    for (int i = 1; i < n && b < 2.0; i++) b *= 2;
    return b < 2.0 ? b : 2.0;
}

/* Opens the store, waiting while the database cannot be reached (a
 * PostgreSQL server restarting): exiting would only make the master
 * restart us in a loop until its crash-loop guard stops the service. */
static int open_waiting(const char *db, store **st, liveness_slot *live, char *err,
                        size_t errlen) {
    int rc, n = 0;
    while ((rc = store_open_existing(db, st, err, errlen)) == STORE_UNAVAILABLE &&
           !stop_requested) {
        if (n++ % 20 == 0)
            log_emit(LOG_WARN, NULL, NULL, "scheduler waiting for the store",
                     json_pack("{ss}", "error", err));
        wait_ticking(backoff(n), live);
    }
    return rc;
}

int sched_service_main(const ts_config *cfg, const char *doorbell_path, const sched_observers *obs,
                       liveness_slot *live) {
    static const sched_observers none = {0};
    if (obs == NULL) obs = &none;
    prctl(PR_SET_NAME, "tessera-sched");
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    char err[TS_ERRLEN], owner[256], self[4096];
    store *st = NULL;
    executor *ex = NULL;
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0 || open_waiting(cfg->db, &st, live, err, sizeof(err)) != TS_OK) {
        log_emit(LOG_ERROR, NULL, NULL, "scheduler cannot start",
                 json_pack("{ss}", "error", len <= 0 ? strerror(errno) : err));
        return 1;
    }
    self[len] = '\0';
    if (obs->store_call) store_set_observer(st, obs->store_call, obs->ctx);
    if (!(ex = sched_setup_executor(cfg, self, err, sizeof(err)))) {
        log_emit(LOG_ERROR, NULL, NULL, "scheduler cannot start", json_pack("{ss}", "error", err));
        store_close(st);
        return 1;
    }
    int bell = doorbell_bind(doorbell_path, err, sizeof(err));
    if (bell < 0)
        log_emit(LOG_WARN, NULL, NULL, "no doorbell; polling only", json_pack("{ss}", "error", err));
    /* Work submitted on another instance (PostgreSQL) wakes us by NOTIFY;
     * the doorbell and the listener are watched through one epoll set. */
    store_listener *listener = NULL;
    if (store_listener_open(cfg->db, STORE_WAKE_WORK, &listener, err, sizeof(err)) != TS_OK)
        log_emit(LOG_WARN, NULL, NULL, "no notifications; polling", json_pack("{ss}", "error", err));
    int wake = bell;
    if (listener) {
        wake = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event e = {.events = EPOLLIN};
        if (bell >= 0) epoll_ctl(wake, EPOLL_CTL_ADD, bell, &e);
        epoll_ctl(wake, EPOLL_CTL_ADD, store_listener_fd(listener), &e);
    }
    make_owner(owner, sizeof(owner));
    sched_config sc;
    sched_setup_config(cfg, &sc);
    sc.on_job_timing = obs->job_timing;
    sc.on_job_end = obs->job_end;
    sc.timing_ctx = obs->ctx;
    scheduler *s = sched_new(&sc, owner, st, ex);
    log_emit(LOG_INFO, NULL, NULL, "scheduler started", json_pack("{ss}", "owner", owner));
    int rc = 0, failures = 0;
    while (!stop_requested) {
        liveness_tick(live, LIVENESS_MAIN);
        int64_t newest = 0;
        if (bell >= 0) doorbell_drain(bell);
        if (listener) store_listener_drain(listener, &newest);
        int step = sched_step(s, cfg->queue_poll_seconds, wake, err, sizeof(err));
        if (obs && obs->slurm_stats && strcmp(cfg->executor, "slurm") == 0) {
            /* Only the leader's executor talks to Slurm: a standby's would
             * report an idle, "reachable" Slurm (metrics_slurm). */
            exec_slurm_stats figures;
            if (sched_is_leader(s)) exec_slurm_stats_get(ex, &figures);
            obs->slurm_stats(obs->ctx, sched_is_leader(s) ? &figures : NULL);
        }
        if (step == STORE_UNAVAILABLE) { /* sched_step waited its backoff, reaping jobs */
            if (failures++ % 20 == 0)
                log_emit(LOG_WARN, NULL, NULL, "store unavailable; the scheduler waits",
                         json_pack("{ss}", "error", err));
            continue;
        }
        if (step != TS_OK) {
            log_emit(LOG_ERROR, NULL, NULL, "scheduler step failed", json_pack("{ss}", "error", err));
            rc = 1;
            break;
        }
        if (failures > 0) log_emit(LOG_INFO, NULL, NULL, "store available again", NULL);
        failures = 0;
    }
    if (sched_shutdown(s, "interrupted: the service stopped while it ran", err, sizeof(err)) !=
        TS_OK)
        log_emit(LOG_WARN, NULL, NULL, "scheduler shutdown", json_pack("{ss}", "error", err));
    log_emit(LOG_INFO, NULL, NULL, "scheduler stopped", NULL);
    sched_free(s);
    ex->ops->destroy(ex);
    if (bell >= 0) close(bell);
    if (listener) close(wake);
    store_listener_close(listener);
    store_close(st);
    return rc;
}
