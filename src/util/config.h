/*
 * config.h - tessera's options (DESIGN §3): each has a default, a TESSERA_*
 * environment variable, a line in ./.env, and usually a command-line flag.
 * Precedence: flag > environment > .env > default.
 *
 * Read once at start-up into a ts_config that is passed around; nothing
 * reads the environment later.
 */
#ifndef TESSERA_UTIL_CONFIG_H
#define TESSERA_UTIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ts_config {
    char listen[256];        /* TESSERA_LISTEN, default "127.0.0.1:8080" */
    int workers;             /* TESSERA_WORKERS, default 2, 1..64 */
    char db[1024];           /* TESSERA_DB, default "<state_dir>/tessera.db" (when empty) */
    char state_dir[1024];    /* TESSERA_STATE_DIR, default "./var" */
    char data_roots[4096];   /* TESSERA_DATA_ROOTS, colon-separated, default "<state_dir>/data" */
    int max_active_users;    /* TESSERA_MAX_ACTIVE_USERS, default 3, 1..10000 */
    int concurrency_limit;   /* TESSERA_CONCURRENCY_LIMIT, default number of online CPUs, 1..100000 */
    int job_nice;            /* TESSERA_JOB_NICE: local jobs run this much nicer than the
                                service, default 10, 0..19 */
    double queue_poll_seconds; /* TESSERA_QUEUE_POLL_SECONDS, default 1, 0.01..3600 */
    char session_secret[512]; /* TESSERA_SESSION_SECRET, default "" (then a file in state_dir) */
    char auth[16];           /* TESSERA_AUTH: "header" or "token", default "header" */
    char log[1024];          /* TESSERA_LOG: "-" for stderr or a file, default "" (command decides) */
    char log_level[16];      /* TESSERA_LOG_LEVEL, default "info" */
    char user[129];          /* TESSERA_USER, default $USER or "local" */
    char server[512];        /* TESSERA_SERVER: the service a client command talks to, e.g.
                                "http://127.0.0.1:8080"; "" = read the local database */
    char token[256];         /* TESSERA_TOKEN: a client's bearer token, "" = none */
    char trusted_proxies[1024]; /* TESSERA_TRUSTED_PROXIES: comma-separated IP addresses whose
                                   X-User-ID is trusted in header mode, "" = none */
    long max_body_bytes;     /* TESSERA_MAX_BODY_BYTES, default 1 MiB, 1 KiB..1 GiB */
    int max_jobs;            /* TESSERA_MAX_JOBS per workflow, default 10000, 1..1000000 */
    char tools[1024];        /* TESSERA_TOOLS: JSON file of admin-defined tools (docs/tools.md),
                                default "" = none */
    double stall_seconds;    /* TESSERA_STALL_SECONDS: serve replaces a scheduler or HTTP worker
                                whose loop has not turned for this long, default 60, 1..86400 */
    double request_timeout_seconds; /* TESSERA_REQUEST_TIMEOUT_SECONDS: serve replaces an HTTP
                                worker with a request in a handler for this long, default 60,
                                1..86400 */
    char test_hang_path[256]; /* TESSERA_TEST_HANG_PATH: TEST ONLY. A request for exactly this
                                 path hangs in its handler forever, so tests can check that a
                                 hung worker is replaced; default "" = off. Never set it in
                                 production. */
    char allowed_origins[2048]; /* TESSERA_ALLOWED_ORIGINS: comma-separated origins
                                   (https://ui.example.org) whose pages may open the event
                                   WebSocket besides the service's own; default "" */
    double rate_limit;       /* TESSERA_RATE_LIMIT: requests per second per user, 0 = no limit
                                (the default), 0..1e6 */
    double rate_burst;       /* TESSERA_RATE_BURST: requests a user may make at once before the
                                rate applies, 0 = twice the rate (at least 1), 0..1e6 */
    int wal_max_mb;          /* TESSERA_WAL_MAX_MB: the scheduler checkpoints and truncates the
                                SQLite write-ahead log when it grows past this, default 64,
                                1..65536 */
    int http_threads;        /* TESSERA_HTTP_THREADS: request handler threads per HTTP worker,
                                default 8, 1..256 */
    /* Where jobs run (docs/slurm.md). Set by the admin; tenants cannot
     * choose any of these. */
    char executor[16];       /* TESSERA_EXECUTOR: "local" (default) or "slurm" */
    char slurm_partition[128]; /* TESSERA_SLURM_PARTITION: sbatch --partition, "" = the cluster's
                                  default */
    char slurm_account[128]; /* TESSERA_SLURM_ACCOUNT: sbatch --account, "" = the user's default */
    char slurm_extra_args[1024]; /* TESSERA_SLURM_EXTRA_ARGS: more sbatch options, separated by
                                    spaces (e.g. "--qos=short --constraint=avx2"); options tessera
                                    sets itself are refused */
    int slurm_max_submitted; /* TESSERA_SLURM_MAX_SUBMITTED: jobs tessera keeps in Slurm at once
                                (pending + running), default 1000, 1..100000 */
    double slurm_submit_rate; /* TESSERA_SLURM_SUBMIT_RATE: sbatch calls per second at most,
                                 default 20, 0.1..1000 */
    double slurm_poll_seconds; /* TESSERA_SLURM_POLL_SECONDS: one squeue per this many seconds,
                                  default 2, 0.2..600 */
    double slurm_marker_wait_seconds; /* TESSERA_SLURM_MARKER_WAIT_SECONDS: how long a job that
                                         left Slurm without an exit marker is waited for (shared
                                         filesystem lag) before it fails, default 60, 0..3600 */
} ts_config;

/* The user id rule of DESIGN §4: 1-128 characters of [A-Za-z0-9._@-]. */
bool config_user_valid(const char *value);

/* Fills defaults. */
void config_defaults(ts_config *cfg);

/* Sets one option by its variable name ("TESSERA_DB") from text, validating
 * it: TS_ERR with "TESSERA_WORKERS: must be an integer from 1 to 64" etc.
 * Unknown names are TS_ERR too. */
int config_set(ts_config *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Applies dotenv_path (if it exists; NULL = skip) and then the process
 * environment over cfg. A malformed .env line is an error naming the file and
 * line. Unknown TESSERA_* names in .env are errors (typos); unrelated
 * variables are ignored. */
int config_load(ts_config *cfg, const char *dotenv_path, char *err, size_t errlen);

/* After flags: fills derived defaults (db and data_roots from state_dir). */
void config_finish(ts_config *cfg);

#endif
