/*
 * serve.c - `tessera serve`: the master process (DESIGN §8). It reads the
 * configuration once, runs the store's migrations, creates the session
 * secret, binds the listening socket, then forks one scheduler and N HTTP
 * workers (which open their own database handles after fork) and restarts
 * any that dies. SIGTERM drains: the children stop accepting, finish what is
 * in flight, close WebSockets with 1001, and the master exits last.
 *
 * A child that lives but no longer makes progress is replaced too: each
 * child has a slot of a shared liveness board (util/liveness.h) where its
 * loops tick and its request handler calls show while they run. Once a
 * second the master looks; a child whose loop has been silent for
 * TESSERA_STALL_SECONDS, or with a handler call older than
 * TESSERA_REQUEST_TIMEOUT_SECONDS, is replaced and the log says why. A
 * stalled HTTP worker gets SIGTERM (it drains what it can) and SIGKILL
 * STALL_KILL_GRACE_S later, and its replacement starts at once; a stalled
 * scheduler is killed outright and restarted when reaped, so two never
 * hold jobs at once (its jobs die with it, see src/exec/local.c).
 *
 * No child outlives the master: each has a parent-death signal (SIGTERM,
 * set with the getppid() check for a master that died before prctl), on
 * which workers drain within a bound and free the port at once, and the
 * scheduler hands over within a bound (see worker.c, service.c). A child
 * stopped with SIGSTOP when the master dies only acts on it once continued.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "http/http.h"
#include "sched/service.h"
#include "sched/setup.h"
#include "util/layout.h"
#include "util/liveness.h"
#include "util/log.h"
#include "util/util.h"

#define MAX_CHILDREN 65
#define STOP_SECONDS 20.0
#define STALL_KILL_GRACE_S 15.0 /* a stalled worker's drain, then SIGKILL */

static const char *const serve_config_flags[] = {
    "--listen", "--workers", "--db", "--state-dir", "--data-root", "--max-active-users",
    "--concurrency-limit", "--poll-seconds", "--auth", "--log", "--log-level", "--tools",
    "--executor", NULL};

static const cli_spec serve_spec = {
    .name = "serve",
    .usage =
        "usage: tessera serve [options]\n"
        "\n"
        "Runs the service: an HTTP API and web UI on --listen, N HTTP worker processes,\n"
        "one scheduler, all sharing one store; a master restarts any that dies.\n"
        "SIGTERM drains and stops.\n"
        "\n"
        "options (each also read from the TESSERA_* variable and ./.env):\n"
        "  --listen HOST:PORT       address to serve on (TESSERA_LISTEN; 127.0.0.1:8080)\n"
        "  --workers N              HTTP worker processes (TESSERA_WORKERS; 2)\n"
        "  --db PATH|URL            SQLite database, or a postgresql:// URL shared by several\n"
        "                           instances (TESSERA_DB; STATE_DIR/tessera.db)\n"
        "  --state-dir DIR          database, logs, job work and results (TESSERA_STATE_DIR; ./var)\n"
        "  --data-root DIR[:DIR]    where images may be read from (TESSERA_DATA_ROOTS)\n"
        "  --max-active-users N     users admitted at once (TESSERA_MAX_ACTIVE_USERS; 3)\n"
        "  --concurrency-limit N    cpus of jobs running at once (TESSERA_CONCURRENCY_LIMIT)\n"
        "  --poll-seconds S         re-check waiting work this often (TESSERA_QUEUE_POLL_SECONDS)\n"
        "  --auth header|token      identity by X-User-ID (loopback or trusted proxy) or tokens\n"
        "                           (TESSERA_AUTH; header); TESSERA_TRUSTED_PROXIES lists proxies\n"
        "  --log FILE|-             JSON-lines log (TESSERA_LOG; STATE_DIR/tessera.log)\n"
        "  --log-level LEVEL        debug, info, warn, error (TESSERA_LOG_LEVEL)\n"
        "  --tools FILE             admin-defined tools, docs/tools.md (TESSERA_TOOLS; none)\n"
        "  --executor local|slurm   where jobs run (TESSERA_EXECUTOR; local); slurm: sbatch\n"
        "                           with TESSERA_SLURM_* settings, docs/slurm.md\n"
        "\n"
        "A scheduler or worker whose loop has not turned for TESSERA_STALL_SECONDS (60), or a\n"
        "worker with a request in its handler for TESSERA_REQUEST_TIMEOUT_SECONDS (60), is\n"
        "replaced; the log says why.\n"
        "Each worker runs handlers on TESSERA_HTTP_THREADS threads (8). TESSERA_RATE_LIMIT\n"
        "requests per second per user (off), with bursts of TESSERA_RATE_BURST, are allowed\n"
        "before 429; TESSERA_ALLOWED_ORIGINS lists other sites whose pages may open the\n"
        "event WebSocket.\n",
    .config_flags = serve_config_flags,
    .bool_flags = NULL,
    .min_positional = 0,
    .max_positional = 0,
};

typedef enum child_kind { CHILD_SCHEDULER, CHILD_WORKER } child_kind;

typedef struct child {
    pid_t pid;
    child_kind kind;
    liveness_slot *live; /* its slot of the liveness board (NULL if none was free) */
    double kill_at;      /* a replaced worker still draining: SIGKILL at this time */
    bool killed;         /* a stalled scheduler, SIGKILLed: restarted when reaped */
} child;

typedef struct master {
    cli_args a;
    auth_config auth;
    metrics *m;
    ratelimit *limits; /* per-user request limits shared by the workers; NULL = none */
    liveness_board *board;
    int listen_fd;
    char doorbell[1100];
    char instance[128]; /* host:port: this instance's name in logs and metrics */
    child kids[MAX_CHILDREN];
    int n_kids;
    child replaced[MAX_CHILDREN]; /* stalled workers draining after their replacement started */
    double restarts[16]; /* times of the last 16 restarts, a ring, to stop a crash loop */
    unsigned long n_restarts; /* restarts ever (the ring's write position) */
} master;

static bool addr_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* The addresses of --listen HOST:PORT (freeaddrinfo them), or TS_ERR. */
static int resolve_listen(const master *ms, struct addrinfo **res, char *err, size_t errlen) {
    char host[256];
    ts_strlcpy(host, ms->a.cfg.listen, sizeof(host));
    char *colon = strrchr(host, ':');
    *colon = '\0';
    const char *service = colon + 1;
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    int gai = getaddrinfo(h, service, &hints, res);
    if (gai != 0) {
        ts_errf(err, errlen, "--listen %s: %s", ms->a.cfg.listen, gai_strerror(gai));
        return TS_ERR;
    }
    return TS_OK;
}

/* What can be refused before anything is created or bound (issue 12: serve
 * used to bind 0.0.0.0 before it refused header mode there): header mode on
 * a non-loopback address without a trusted proxy, where anyone could claim
 * any identity. CLI_OK, or the exit status after saying why. */
static int check_before_binding(const master *ms) {
    char err[TS_ERRLEN];
    struct addrinfo *res = NULL;
    if (resolve_listen(ms, &res, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera serve: %s\n", err);
        return CLI_USAGE;
    }
    bool loopback = addr_loopback(res->ai_addr);
    freeaddrinfo(res);
    if (strcmp(ms->a.cfg.auth, "header") == 0 && !loopback && !ms->a.cfg.trusted_proxies[0]) {
        fprintf(stderr, "tessera serve: --auth header trusts X-User-ID, so it is refused on the "
                        "non-loopback address %s; use --auth token, listen on 127.0.0.1, or set "
                        "TESSERA_TRUSTED_PROXIES to your reverse proxy's address\n",
                ms->a.cfg.listen);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* Binds HOST:PORT, after every check (check_before_binding, prepare). */
static int bind_listen(master *ms, int *port, char *err, size_t errlen) {
    struct addrinfo *res = NULL;
    if (resolve_listen(ms, &res, err, errlen) != TS_OK) return TS_ERR;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        ts_errf(err, errlen, "cannot listen on %s: %s", ms->a.cfg.listen, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(res);
        return TS_ERR;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
    ms->listen_fd = fd;
    return TS_OK;
}

static void job_timing(void *ctx, const char *job_type, bool is_wait, double seconds) {
    if (is_wait)
        metrics_job_wait(ctx, job_type, seconds);
    else
        metrics_job_run(ctx, job_type, seconds);
}

static void job_end(void *ctx, const char *job_type, const char *outcome, int exit_code) {
    metrics_job_end(ctx, job_type, outcome, exit_code);
}

static const char *kind_name(child_kind kind) {
    return kind == CHILD_SCHEDULER ? "scheduler" : "http worker";
}

/* Forks one child of this kind into c, with a fresh liveness slot; in the
 * child, never returns. */
static void spawn(master *ms, child *c, child_kind kind) {
    pid_t parent = getpid();
    liveness_slot *live = liveness_slot_take(ms->board);
    pid_t pid = fork();
    if (pid != 0) {
        if (pid < 0) liveness_slot_release(live);
        *c = (child){.pid = pid > 0 ? pid : 0, .kind = kind, .live = pid > 0 ? live : NULL};
        return;
    }
    /* A master killed with SIGKILL cannot stop its children: they stop
     * themselves (draining) when it goes, instead of serving on unsupervised. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int rc;
    if (kind == CHILD_SCHEDULER) {
        close(ms->listen_fd);
        sched_observers obs = {.job_timing = job_timing, .job_end = job_end,
                               .store_call = metrics_store_call,
                               .slurm_stats = metrics_slurm, .ctx = ms->m};
        rc = sched_service_main(&ms->a.cfg, ms->doorbell, &obs, live);
    } else {
        rc = http_worker_main(&ms->a.cfg, &ms->auth, ms->m, ms->limits, ms->listen_fd,
                              ms->doorbell, live);
    }
    log_close();
    _exit(rc);
}

static void start_children(master *ms) {
    spawn(ms, &ms->kids[ms->n_kids++], CHILD_SCHEDULER);
    for (int i = 0; i < ms->a.cfg.workers; i++) spawn(ms, &ms->kids[ms->n_kids++], CHILD_WORKER);
}

/* More than 10 restarts within 10 s means something is badly wrong; stop
 * instead of forking forever. */
static bool crash_loop(master *ms) {
    double now = ts_monotonic();
    int recent = 0;
    unsigned long kept = ms->n_restarts < 16 ? ms->n_restarts : 16;
    for (unsigned long i = 0; i < kept; i++)
        if (now - ms->restarts[i] < 10) recent++;
    ms->restarts[ms->n_restarts++ % 16] = now;
    return recent >= 10;
}

/* Forgets a reaped child: its pid and its liveness slot. */
static void forget(child *c) {
    c->pid = 0;
    liveness_slot_release(c->live);
    c->live = NULL;
}

/* A replaced worker that ended: it was already replaced, nothing to do. */
static bool reap_replaced(master *ms, pid_t pid) {
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (ms->replaced[i].pid != pid) continue;
        forget(&ms->replaced[i]);
        return true;
    }
    return false;
}

static int reap_and_restart(master *ms, bool stopping) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (reap_replaced(ms, pid)) continue;
        for (int i = 0; i < ms->n_kids; i++) {
            if (ms->kids[i].pid != pid) continue;
            forget(&ms->kids[i]);
            if (stopping) break;
            log_emit(LOG_WARN, NULL, NULL, "child died; restarting",
                     json_pack("{ss si si si}", "child", kind_name(ms->kids[i].kind), "child_pid",
                               (int)pid, "exit", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                               "signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0));
            if (crash_loop(ms)) {
                log_emit(LOG_ERROR, NULL, NULL, "children keep dying; stopping", NULL);
                return TS_ERR;
            }
            spawn(ms, &ms->kids[i], ms->kids[i].kind);
        }
    }
    return TS_OK;
}

/* Replaces a child that lives but makes no progress (see the top of this
 * file). A worker is told to drain and its replacement starts now; the
 * scheduler is killed, and restarted once reaped. */
static int replace_stalled(master *ms, child *c, const char *why) {
    log_emit(LOG_WARN, NULL, NULL, "child stalled; replacing",
             json_pack("{ss si ss}", "child", kind_name(c->kind), "child_pid", (int)c->pid, "reason",
                       why));
    if (c->kind == CHILD_SCHEDULER) {
        kill(c->pid, SIGKILL);
        c->killed = true; /* the reap restarts it */
        return TS_OK;
    }
    if (crash_loop(ms)) {
        log_emit(LOG_ERROR, NULL, NULL, "children keep stalling; stopping", NULL);
        return TS_ERR;
    }
    kill(c->pid, SIGTERM);
    kill(c->pid, SIGCONT); /* a stopped process acts on nothing else */
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (ms->replaced[i].pid != 0) continue;
        ms->replaced[i] = *c;
        ms->replaced[i].kill_at = ts_monotonic() + STALL_KILL_GRACE_S;
        spawn(ms, c, c->kind);
        return TS_OK;
    }
    kill(c->pid, SIGKILL); /* no room to wait for its drain: the reap replaces it */
    return TS_OK;
}

/* Once a second: replaces stalled children and SIGKILLs replaced workers
 * whose drain ran out of time. */
static int check_liveness(master *ms) {
    const ts_config *cfg = &ms->a.cfg;
    char why[300];
    for (int i = 0; i < ms->n_kids; i++) {
        child *c = &ms->kids[i];
        /* The scheduler's loop waits up to a poll interval between turns. */
        double loop_limit = cfg->stall_seconds +
                            (c->kind == CHILD_SCHEDULER ? cfg->queue_poll_seconds : 0);
        if (c->pid > 0 && c->live && !c->killed &&
            liveness_stalled(c->live, loop_limit, cfg->request_timeout_seconds, why,
                             sizeof(why)) &&
            replace_stalled(ms, c, why) != TS_OK)
            return TS_ERR;
    }
    double now = ts_monotonic();
    for (int i = 0; i < MAX_CHILDREN; i++) {
        child *r = &ms->replaced[i];
        if (r->pid > 0 && r->kill_at > 0 && now >= r->kill_at) {
            kill(r->pid, SIGKILL);
            r->kill_at = 0;
        }
    }
    return TS_OK;
}

static int alive(const master *ms) {
    int n = 0;
    for (int i = 0; i < ms->n_kids; i++) n += ms->kids[i].pid > 0;
    for (int i = 0; i < MAX_CHILDREN; i++) n += ms->replaced[i].pid > 0;
    return n;
}

/* SIGTERM to every child, then SIGKILL to those still there after the
 * drain time. */
static void signal_all(master *ms, int sig) {
    for (int i = 0; i < ms->n_kids; i++)
        if (ms->kids[i].pid > 0) kill(ms->kids[i].pid, sig);
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (ms->replaced[i].pid > 0) kill(ms->replaced[i].pid, sig);
}

static void stop_children(master *ms) {
    signal_all(ms, SIGTERM);
    double end = ts_monotonic() + STOP_SECONDS;
    while (alive(ms) > 0 && ts_monotonic() < end) {
        reap_and_restart(ms, true);
        usleep(20000);
    }
    signal_all(ms, SIGKILL);
    while (alive(ms) > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0 && errno != EINTR) break;
        for (int i = 0; pid > 0 && i < ms->n_kids; i++)
            if (ms->kids[i].pid == pid) forget(&ms->kids[i]);
        if (pid > 0) reap_replaced(ms, pid);
    }
}

/* Returns CLI_OK after SIGTERM/SIGINT, CLI_FAILED when it gave up on a
 * crash loop: a supervisor (systemd's Restart=on-failure) must see that. */
static int supervise(master *ms) {
    int rc = CLI_OK;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    struct timespec tick = {1, 0};
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) break;
        if (reap_and_restart(ms, false) != TS_OK || check_liveness(ms) != TS_OK) {
            rc = CLI_FAILED;
            break;
        }
    }
    log_emit(LOG_INFO, NULL, NULL, "stopping", NULL);
    stop_children(ms);
    return rc;
}

/* The master alone creates and migrates the database, once, and checks it
 * (PRAGMA quick_check) before anyone serves from it: a corrupt file would
 * otherwise answer as missing workflows. */
static int prepare_store(master *ms, char *err, size_t errlen) {
    store *st = NULL;
    char why[TS_ERRLEN];
    if (store_open(ms->a.cfg.db, &st, err, errlen) != TS_OK) return TS_ERR;
    int rc = store_integrity_check(st, why, sizeof(why));
    store_close(st); /* children open their own after fork, never creating it */
    if (rc == TS_OK) return TS_OK;
    ts_errf(err, errlen,
            "refusing to start: %s; restore the database from a backup, or move it and its "
            "-wal and -shm files aside to start with an empty one (README, \"Storage faults\")",
            why);
    return TS_ERR;
}

static int prepare(master *ms, char *err, size_t errlen) {
    if (ts_mkdir_p(ms->a.cfg.state_dir, err, errlen) != TS_OK) return TS_ERR;
    if (prepare_store(ms, err, errlen) != TS_OK) return TS_ERR;
    ms->auth.header_mode = strcmp(ms->a.cfg.auth, "header") == 0;
    ms->auth.trusted_proxies = ms->a.cfg.trusted_proxies;
    ms->auth.session_ttl_s = 7 * 24 * 3600;
    if (auth_secret_load(&ms->auth, ms->a.cfg.session_secret, ms->a.cfg.state_dir, err, errlen) !=
        TS_OK)
        return TS_ERR;
    if (ms->a.cfg.rate_limit > 0 &&
        !(ms->limits = ratelimit_create_shared(ms->a.cfg.rate_limit, ms->a.cfg.rate_burst, err,
                                               errlen)))
        return TS_ERR;
    if (!(ms->m = metrics_create_shared())) {
        ts_errf(err, errlen, "cannot map shared metrics: %s", strerror(errno));
        return TS_ERR;
    }
    if (!(ms->board = liveness_board_create(2 * MAX_CHILDREN, err, errlen))) return TS_ERR;
    char *doorbell = layout_file_path(ms->a.cfg.state_dir, LAYOUT_DOORBELL);
    ts_strlcpy(ms->doorbell, doorbell, sizeof(ms->doorbell));
    free(doorbell);
    return TS_OK;
}

/* This instance's name (host:port, on every log line) and, on PostgreSQL,
 * its scheduler's doorbell: instances that share a database may share the
 * state directory too (results on a shared filesystem), so each names its
 * own socket after its host and port there. */
static void name_instance(master *ms, int port) {
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(ms->instance, sizeof(ms->instance), "%s:%d", host, port);
    if (!store_is_postgresql(ms->a.cfg.db)) return; /* layout's one doorbell (prepare) */
    char *shared = layout_file_path(ms->a.cfg.state_dir, LAYOUT_DOORBELL);
    char *dot = strrchr(shared, '.');
    if (dot) *dot = '\0';
    snprintf(ms->doorbell, sizeof(ms->doorbell), "%s-%s-%d.sock", shared, host, port);
    free(shared);
}

int cmd_serve(int argc, char **argv) {
    static master ms; /* large; lives for the whole process */
    bool done;
    int rc = cli_parse(&serve_spec, argc, argv, &ms.a, &done);
    if (rc != CLI_OK || done) return rc;
    /* Before fork: HTTP workers check submissions against the tools, the
     * scheduler's runners find them through TESSERA_TOOLS. */
    if ((rc = cli_load_tools(&ms.a)) != CLI_OK) return rc;
    char err[TS_ERRLEN];
    int port = 0;
    if ((rc = check_before_binding(&ms)) != CLI_OK) return rc;
    int tightened = 0;
    if (layout_state_dir_make(ms.a.cfg.state_dir, &tightened, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera serve: %s\n", err);
        return CLI_FAILED;
    }
    if (cli_open_log(&ms.a, "master") != TS_OK) return CLI_FAILED;
    if (tightened)
        log_emit(LOG_WARN, NULL, NULL, "state directory was readable by other accounts; made it 0700",
                 json_pack("{s:s}", "state_dir", ms.a.cfg.state_dir));
    /* The scheduler process builds the same executor; refusing here says
     * why once, instead of a scheduler restarted in a loop. */
    if (sched_setup_check(&ms.a.cfg, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera serve: %s\n", err);
        return CLI_USAGE;
    }
    if (prepare(&ms, err, sizeof(err)) != TS_OK || bind_listen(&ms, &port, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera serve: %s\n", err);
        return CLI_FAILED;
    }
    name_instance(&ms, port);
    log_set_instance(ms.instance);
    store_set_instance_name(ms.instance);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    start_children(&ms);
    char host[256], logpath[1100];
    ts_strlcpy(host, ms.a.cfg.listen, sizeof(host));
    if (ms.a.cfg.log[0])
        ts_strlcpy(logpath, ms.a.cfg.log, sizeof(logpath));
    else
    {
        char *log = layout_file_path(ms.a.cfg.state_dir, LAYOUT_LOG);
        ts_strlcpy(logpath, log, sizeof(logpath));
        free(log);
    }
    *strrchr(host, ':') = '\0';
    printf("tessera serve: http://%s:%d/  (%d HTTP workers + scheduler, auth %s, state in %s, "
           "log %s)\n",
           host, port, ms.a.cfg.workers, ms.a.cfg.auth,
           ms.a.cfg.state_dir, logpath);
    fflush(stdout);
    log_emit(LOG_INFO, NULL, NULL, "serving",
             json_pack("{ss si si}", "listen", ms.a.cfg.listen, "port", port, "workers",
                       ms.a.cfg.workers));
    rc = supervise(&ms);
    close(ms.listen_fd);
    unlink(ms.doorbell);
    metrics_destroy(ms.m);
    ratelimit_destroy(ms.limits);
    liveness_board_destroy(ms.board);
    log_close();
    return rc;
}
