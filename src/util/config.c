/*
 * config.c - see config.h.
 *
 * Every option is one row of a table (name, where it lives in ts_config,
 * how it is checked), so config_set, the .env reader and the environment
 * pass all agree on the set of names and on the validation rules.
 */
#include "util/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/layout.h"
#include "util/util.h"

#define DOTENV_MAX_BYTES (1 << 20) /* a .env is a few lines; refuse anything huge */
#define STATE_DIR_MAX 1000 /* leaves room in db[] for "/tessera.db" */

typedef enum opt_kind { OPT_INT, OPT_LONG, OPT_NUMBER, OPT_TEXT } opt_kind;

typedef struct opt {
    const char *name;
    opt_kind kind;
    size_t offset; /* of the field in ts_config */
    size_t size;   /* OPT_TEXT: buffer size */
    double min, max; /* OPT_INT / OPT_NUMBER range; OPT_TEXT: length range */
    /* OPT_TEXT: extra rule; writes the rule (without the name) into why. */
    bool (*check)(const char *value, char *why, size_t whylen);
} opt;

static bool check_listen(const char *value, char *why, size_t whylen);
static bool check_user(const char *value, char *why, size_t whylen);
static bool check_data_roots(const char *value, char *why, size_t whylen);
static bool check_auth(const char *value, char *why, size_t whylen);
static bool check_log_level(const char *value, char *why, size_t whylen);
static bool check_server(const char *value, char *why, size_t whylen);
static bool check_origins(const char *value, char *why, size_t whylen);
static bool check_executor(const char *value, char *why, size_t whylen);
static bool check_slurm_name(const char *value, char *why, size_t whylen);
static bool check_slurm_extra(const char *value, char *why, size_t whylen);

#define TEXT(n, field, lo, check) \
    {n, OPT_TEXT, offsetof(ts_config, field), sizeof(((ts_config *)0)->field), lo, \
     sizeof(((ts_config *)0)->field) - 1, check}
#define NUM(n, kind, field, lo, hi) {n, kind, offsetof(ts_config, field), 0, lo, hi, NULL}

static const opt options[] = {
    TEXT("TESSERA_LISTEN", listen, 1, check_listen),
    NUM("TESSERA_WORKERS", OPT_INT, workers, 1, 64),
    TEXT("TESSERA_DB", db, 0, NULL),
    {"TESSERA_STATE_DIR", OPT_TEXT, offsetof(ts_config, state_dir), STATE_DIR_MAX + 1, 1,
     STATE_DIR_MAX, NULL},
    TEXT("TESSERA_DATA_ROOTS", data_roots, 0, check_data_roots),
    NUM("TESSERA_MAX_ACTIVE_USERS", OPT_INT, max_active_users, 1, 10000),
    NUM("TESSERA_CONCURRENCY_LIMIT", OPT_INT, concurrency_limit, 1, 100000),
    NUM("TESSERA_JOB_NICE", OPT_INT, job_nice, 0, 19),
    NUM("TESSERA_QUEUE_POLL_SECONDS", OPT_NUMBER, queue_poll_seconds, 0.01, 3600),
    TEXT("TESSERA_SESSION_SECRET", session_secret, 0, NULL),
    TEXT("TESSERA_AUTH", auth, 1, check_auth),
    TEXT("TESSERA_LOG", log, 0, NULL),
    TEXT("TESSERA_LOG_LEVEL", log_level, 1, check_log_level),
    TEXT("TESSERA_USER", user, 1, check_user),
    TEXT("TESSERA_SERVER", server, 0, check_server),
    TEXT("TESSERA_TOKEN", token, 0, NULL),
    TEXT("TESSERA_TRUSTED_PROXIES", trusted_proxies, 0, NULL),
    NUM("TESSERA_MAX_BODY_BYTES", OPT_LONG, max_body_bytes, 1024, 1073741824),
    NUM("TESSERA_MAX_JOBS", OPT_INT, max_jobs, 1, 1000000),
    TEXT("TESSERA_TOOLS", tools, 0, NULL),
    NUM("TESSERA_STALL_SECONDS", OPT_NUMBER, stall_seconds, 1, 86400),
    NUM("TESSERA_REQUEST_TIMEOUT_SECONDS", OPT_NUMBER, request_timeout_seconds, 1, 86400),
    TEXT("TESSERA_TEST_HANG_PATH", test_hang_path, 0, NULL),
    TEXT("TESSERA_ALLOWED_ORIGINS", allowed_origins, 0, check_origins),
    NUM("TESSERA_RATE_LIMIT", OPT_NUMBER, rate_limit, 0, 1000000),
    NUM("TESSERA_RATE_BURST", OPT_NUMBER, rate_burst, 0, 1000000),
    NUM("TESSERA_HTTP_THREADS", OPT_INT, http_threads, 1, 256),
    NUM("TESSERA_WAL_MAX_MB", OPT_INT, wal_max_mb, 1, 65536),
    TEXT("TESSERA_EXECUTOR", executor, 1, check_executor),
    TEXT("TESSERA_SLURM_PARTITION", slurm_partition, 0, check_slurm_name),
    TEXT("TESSERA_SLURM_ACCOUNT", slurm_account, 0, check_slurm_name),
    TEXT("TESSERA_SLURM_EXTRA_ARGS", slurm_extra_args, 0, check_slurm_extra),
    NUM("TESSERA_SLURM_MAX_SUBMITTED", OPT_INT, slurm_max_submitted, 1, 100000),
    NUM("TESSERA_SLURM_SUBMIT_RATE", OPT_NUMBER, slurm_submit_rate, 0.1, 1000),
    NUM("TESSERA_SLURM_POLL_SECONDS", OPT_NUMBER, slurm_poll_seconds, 0.2, 600),
    NUM("TESSERA_SLURM_MARKER_WAIT_SECONDS", OPT_NUMBER, slurm_marker_wait_seconds, 0, 3600),
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* HOST:PORT with a non-empty host and a port 0..65535 (0 = any free port,
 * which tests use). The host may be a bracketed IPv6 literal. */
static bool check_listen(const char *value, char *why, size_t whylen) {
    const char *colon = strrchr(value, ':');
    long port;
    bool ok = colon && colon > value && ts_parse_int(colon + 1, 0, 65535, &port) == TS_OK;
    for (const char *p = value; ok && p < colon; p++)
        if (isspace((unsigned char)*p)) ok = false;
    if (!ok) ts_errf(why, whylen, "must be HOST:PORT with a port from 0 to 65535");
    return ok;
}

/* The user id rule of DESIGN §4, so a default user is always a valid one. */
bool config_user_valid(const char *value) {
    size_t len = strlen(value);
    if (len < 1 || len > 128) return false;
    for (const char *p = value; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._@-", *p)) return false;
    return true;
}

static bool check_user(const char *value, char *why, size_t whylen) {
    if (config_user_valid(value)) return true;
    ts_errf(why, whylen, "must be 1-128 characters of A-Z a-z 0-9 . _ @ -");
    return false;
}

/* Empty means the default; otherwise no empty entry ("a::b", a trailing
 * colon), which is almost always a typo that would add "" as a root. */
static bool check_data_roots(const char *value, char *why, size_t whylen) {
    size_t len = strlen(value);
    if (len == 0) return true;
    if (value[0] != ':' && value[len - 1] != ':' && strstr(value, "::") == NULL) return true;
    ts_errf(why, whylen, "must be a colon-separated list of directories without empty entries");
    return false;
}

/* Empty (no server) or an http:// URL; https needs a proxy in front. */
static bool check_server(const char *value, char *why, size_t whylen) {
    if (value[0] == '\0' || strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0)
        return true;
    ts_errf(why, whylen, "must be a URL starting with http:// or https://");
    return false;
}

/* Comma-separated origins as browsers send them in Origin: a scheme
 * (http or https), "://", a host of letters, digits, '.', '-', ':' or
 * brackets (IPv6) with an optional port, and nothing after it (no path,
 * no trailing slash), because Origin never has one. */
static bool check_origins(const char *value, char *why, size_t whylen) {
    for (const char *p = value; *p;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == ' ') n--;
        if (n == 0) break;
        size_t scheme = strncmp(p, "https://", 8) == 0 ? 8 : strncmp(p, "http://", 7) == 0 ? 7 : 0;
        bool ok = scheme > 0 && n > scheme;
        for (size_t i = scheme; ok && i < n; i++)
            ok = isalnum((unsigned char)p[i]) || strchr(".-:[]", p[i]) != NULL;
        if (!ok) {
            ts_errf(why, whylen, "\"%.*s\" is not an origin: write scheme://host[:port] as "
                                 "browsers send it (e.g. https://tessera.example.org), comma-"
                                 "separated", (int)(n > 200 ? 200 : n), p);
            return false;
        }
        p += strcspn(p, ",");
    }
    return true;
}

static bool check_executor(const char *value, char *why, size_t whylen) {
    if (strcmp(value, "local") == 0 || strcmp(value, "slurm") == 0) return true;
    ts_errf(why, whylen, "must be \"local\" or \"slurm\"");
    return false;
}

/* Partition and account names go to sbatch as one argument each; Slurm's
 * own names are letters, digits and . _ - (a space or comma would change
 * what is asked for). */
static bool check_slurm_name(const char *value, char *why, size_t whylen) {
    for (const char *p = value; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p)) {
            ts_errf(why, whylen, "must be a Slurm name: letters, digits, '.', '_' and '-' only");
            return false;
        }
    return true;
}

/* The options tessera sets itself, with their short forms: an extra
 * argument that changed them would break the executor's guarantees (job
 * name = token, no requeue, output into the job log, time limit). */
static const char *const slurm_owned[] = {
    "--job-name", "-J", "--output", "-o", "--error", "-e", "--time", "-t", "--cpus-per-task",
    "-c", "--requeue", "--no-requeue", "--signal", "--parsable", "--wrap",
    "--chdir", "-D", "--partition", "-p", "--account", "-A", "--array", "-a", "--dependency",
    "-d", "--export", "--comment", "--uid", "--gid", "--hold", "-H", "--wait", "-W", NULL};

/* TESSERA_SLURM_EXTRA_ARGS: options separated by spaces, each starting with
 * '-', no quotes or shell characters (they are passed to sbatch as they
 * are, never through a shell), none of those tessera owns. */
static bool check_slurm_extra(const char *value, char *why, size_t whylen) {
    for (const char *p = value; *p;) {
        p += strspn(p, " ");
        size_t n = strcspn(p, " ");
        if (n == 0) break;
        if (p[0] != '-') {
            ts_errf(why, whylen, "\"%.*s\" is not an option: each entry must start with '-'",
                    (int)(n > 100 ? 100 : n), p);
            return false;
        }
        for (size_t i = 0; i < n; i++)
            if (!isgraph((unsigned char)p[i]) || strchr("'\"\\`$;&|<>(){}*?", p[i])) {
                ts_errf(why, whylen, "\"%.*s\": quotes and shell characters are not allowed",
                        (int)(n > 100 ? 100 : n), p);
                return false;
            }
        size_t name = strcspn(p, "= ");
        for (size_t k = 0; slurm_owned[k]; k++) {
            size_t len = strlen(slurm_owned[k]);
            bool is_short = slurm_owned[k][1] != '-';
            /* "-c4" is -c with value 4; "--mem=1G" is --mem. */
            if ((is_short && strncmp(p, slurm_owned[k], len) == 0 && p[1] != '-') ||
                (!is_short && name == len && strncmp(p, slurm_owned[k], len) == 0)) {
                ts_errf(why, whylen, "\"%.*s\": tessera sets %s itself; it cannot be given here",
                        (int)(n > 100 ? 100 : n), p, slurm_owned[k]);
                return false;
            }
        }
        p += n;
    }
    return true;
}

static bool check_auth(const char *value, char *why, size_t whylen) {
    if (strcmp(value, "header") == 0 || strcmp(value, "token") == 0) return true;
    ts_errf(why, whylen, "must be \"header\" or \"token\"");
    return false;
}

static bool check_log_level(const char *value, char *why, size_t whylen) {
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcmp(value, levels[i]) == 0) return true;
    ts_errf(why, whylen, "must be one of debug, info, warn, error");
    return false;
}

/* Fills every option with its documented default. The user defaults to
 * $USER when that is a valid user id, so a local `tessera submit` is
 * attributed to the person running it. */
void config_defaults(ts_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    ts_strlcpy(cfg->listen, "127.0.0.1:8080", sizeof(cfg->listen));
    cfg->workers = 2;
    ts_strlcpy(cfg->state_dir, "./var", sizeof(cfg->state_dir));
    cfg->max_active_users = 3;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->concurrency_limit = cpus < 1 ? 1 : cpus > 100000 ? 100000 : (int)cpus;
    cfg->queue_poll_seconds = 1.0;
    cfg->job_nice = 10;
    ts_strlcpy(cfg->auth, "header", sizeof(cfg->auth));
    ts_strlcpy(cfg->log_level, "info", sizeof(cfg->log_level));
    cfg->max_body_bytes = 1 << 20;
    cfg->max_jobs = 10000;
    cfg->stall_seconds = 60;
    cfg->request_timeout_seconds = 60;
    cfg->http_threads = 8;
    cfg->wal_max_mb = 64;
    ts_strlcpy(cfg->executor, "local", sizeof(cfg->executor));
    cfg->slurm_max_submitted = 1000;
    cfg->slurm_submit_rate = 20;
    cfg->slurm_poll_seconds = 2;
    cfg->slurm_marker_wait_seconds = 60;
    const char *user = getenv("USER");
    ts_strlcpy(cfg->user, user && config_user_valid(user) ? user : "local", sizeof(cfg->user));
}

static const opt *opt_find(const char *name) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].name, name) == 0) return &options[i];
    return NULL;
}

/* Lists the option names, for "unknown variable" messages. */
static void known_names(char *buf, size_t len) {
    buf[0] = '\0';
    for (size_t i = 0; i < N_OPTIONS; i++) {
        size_t used = strlen(buf);
        ts_strlcpy(buf + used, options[i].name, len - used);
        used = strlen(buf);
        if (i + 1 < N_OPTIONS) ts_strlcpy(buf + used, ", ", len - used);
    }
}

/* Parses and stores a numeric option; the message names the range. */
static int set_number(ts_config *cfg, const opt *o, const char *value, char *err, size_t errlen) {
    char *field = (char *)cfg + o->offset;
    if (o->kind == OPT_INT || o->kind == OPT_LONG) {
        long v;
        if (ts_parse_int(value, (long)o->min, (long)o->max, &v) == TS_OK) {
            if (o->kind == OPT_INT)
                *(int *)(void *)field = (int)v;
            else
                *(long *)(void *)field = v;
            return TS_OK;
        }
        ts_errf(err, errlen, "%s: must be an integer from %.0f to %.0f", o->name, o->min, o->max);
        return TS_ERR;
    }
    double d;
    if (ts_parse_double(value, o->min, o->max, &d) == TS_OK) {
        *(double *)(void *)field = d;
        return TS_OK;
    }
    ts_errf(err, errlen, "%s: must be a number from %g to %g", o->name, o->min, o->max);
    return TS_ERR;
}

/* Checks length and the option's own rule, then copies the text in. */
static int set_text(ts_config *cfg, const opt *o, const char *value, char *err, size_t errlen) {
    size_t len = strlen(value);
    if (len < (size_t)o->min || len > (size_t)o->max) {
        if (o->min > 0)
            ts_errf(err, errlen, "%s: must be %.0f to %.0f bytes long", o->name, o->min, o->max);
        else
            ts_errf(err, errlen, "%s: must be at most %.0f bytes long", o->name, o->max);
        return TS_ERR;
    }
    char why[256];
    if (o->check && !o->check(value, why, sizeof(why))) {
        ts_errf(err, errlen, "%s: %s", o->name, why);
        return TS_ERR;
    }
    ts_strlcpy((char *)cfg + o->offset, value, o->size);
    return TS_OK;
}

/* Sets one option from text. cfg is unchanged on error, so a bad flag or
 * variable never leaves a half-applied value behind. */
int config_set(ts_config *cfg, const char *key, const char *value, char *err, size_t errlen) {
    const opt *o = key ? opt_find(key) : NULL;
    if (o == NULL) {
        char names[1024];
        known_names(names, sizeof(names));
        ts_errf(err, errlen, "%s: unknown variable (known: %s)", key ? key : "(null)", names);
        return TS_ERR;
    }
    if (value == NULL) value = "";
    if (o->kind == OPT_TEXT) return set_text(cfg, o, value, err, errlen);
    return set_number(cfg, o, value, err, errlen);
}

/* ---- .env ---- */

/* Reads a double-quoted value starting after the opening quote; handles
 * \" \\ \n (other backslashes stay as written, like most dotenv readers).
 * Returns a pointer after the closing quote, or NULL if it is missing. */
static const char *parse_double_quoted(const char *p, char *out) {
    for (; *p && *p != '"'; p++) {
        if (*p == '\\' && (p[1] == '"' || p[1] == '\\' || p[1] == 'n')) {
            p++;
            *out++ = *p == 'n' ? '\n' : *p;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return *p == '"' ? p + 1 : NULL;
}

/* Single quotes are literal up to the next quote. */
static const char *parse_single_quoted(const char *p, char *out) {
    const char *end = strchr(p, '\'');
    if (end == NULL) return NULL;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return end + 1;
}

/* An unquoted value runs to the end of the line; " #" starts a comment
 * (a '#' inside a word, as in a URL fragment, does not). */
static void parse_unquoted(const char *p, char *out) {
    size_t n = 0;
    for (; p[n]; n++)
        if (p[n] == '#' && n > 0 && isspace((unsigned char)p[n - 1])) break;
    while (n > 0 && isspace((unsigned char)p[n - 1])) n--;
    memcpy(out, p, n);
    out[n] = '\0';
}

static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* Splits one line into key and value (both written into buffers at least
 * strlen(line) + 1 long). Returns 1 for KEY=VALUE, 0 for a blank or comment
 * line, -1 for a malformed line with the reason in why. */
static int parse_line(const char *line, char *key, char *value, const char **why) {
    const char *p = skip_space(line);
    if (*p == '\0' || *p == '#') return 0;
    if (strncmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t')) p = skip_space(p + 6);
    size_t n = 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_') n++;
    *why = "expected KEY=VALUE";
    if (n == 0 || isdigit((unsigned char)p[0])) return -1;
    memcpy(key, p, n);
    key[n] = '\0';
    p = skip_space(p + n);
    if (*p != '=') return -1;
    p = skip_space(p + 1);
    if (*p != '"' && *p != '\'') {
        parse_unquoted(p, value);
        return 1;
    }
    const char *end = *p == '"' ? parse_double_quoted(p + 1, value) : parse_single_quoted(p + 1, value);
    *why = *p == '"' ? "unterminated double quote" : "unterminated single quote";
    if (end == NULL) return -1;
    end = skip_space(end);
    *why = "unexpected text after the closing quote";
    return *end == '\0' || *end == '#' ? 1 : -1;
}

/* Applies one parsed line: unknown TESSERA_* names are typos and fail,
 * other names belong to other programs and are ignored. */
static int apply_dotenv_pair(ts_config *cfg, const char *path, int lineno, const char *key,
                             const char *value, char *err, size_t errlen) {
    if (strncmp(key, "TESSERA_", 8) != 0) return TS_OK;
    char msg[TS_ERRLEN];
    if (config_set(cfg, key, value, msg, sizeof(msg)) == TS_OK) return TS_OK;
    ts_errf(err, errlen, "%s:%d: %s", path, lineno, msg);
    return TS_ERR;
}

/* Reads the whole file into a NUL-terminated buffer. Returns TS_OK with
 * *text NULL when the file does not exist (a .env is optional). */
static int read_dotenv(const char *path, char **text, char *err, size_t errlen) {
    *text = NULL;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT) return TS_OK;
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        return TS_ERR;
    }
    char *buf = ts_malloc(DOTENV_MAX_BYTES + 1);
    size_t n = fread(buf, 1, DOTENV_MAX_BYTES + 1, f);
    int rc = TS_ERR;
    if (ferror(f)) {
        ts_errf(err, errlen, "%s: read error", path);
        goto cleanup;
    }
    if (n > DOTENV_MAX_BYTES) {
        ts_errf(err, errlen, "%s: larger than %d bytes", path, DOTENV_MAX_BYTES);
        goto cleanup;
    }
    buf[n] = '\0';
    *text = buf;
    buf = NULL;
    rc = TS_OK;
cleanup:
    free(buf);
    fclose(f);
    return rc;
}

/* Applies every line of the .env text; stops at the first error. */
static int apply_dotenv(ts_config *cfg, const char *path, char *text, char *err, size_t errlen) {
    size_t cap = strlen(text) + 1;
    char *key = ts_malloc(cap), *value = ts_malloc(cap);
    int rc = TS_OK, lineno = 0;
    for (char *line = text; line && rc == TS_OK;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r') line[len - 1] = '\0'; /* CRLF files */
        lineno++;
        const char *why = NULL;
        int kind = parse_line(line, key, value, &why);
        if (kind < 0) {
            ts_errf(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = TS_ERR;
        } else if (kind > 0) {
            rc = apply_dotenv_pair(cfg, path, lineno, key, value, err, errlen);
        }
        line = next;
    }
    free(key);
    free(value);
    return rc;
}

/* Applies .env, then every TESSERA_* variable of the process environment
 * that names an option (so the environment wins over .env). Unknown
 * TESSERA_* variables in the environment are ignored: the environment is
 * shared with other programs and versions, a .env file is ours. */
int config_load(ts_config *cfg, const char *dotenv_path, char *err, size_t errlen) {
    if (dotenv_path) {
        char *text = NULL;
        if (read_dotenv(dotenv_path, &text, err, errlen) != TS_OK) return TS_ERR;
        int rc = text ? apply_dotenv(cfg, dotenv_path, text, err, errlen) : TS_OK;
        free(text);
        if (rc != TS_OK) return TS_ERR;
    }
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *value = getenv(options[i].name);
        if (value == NULL) continue;
        char msg[TS_ERRLEN];
        if (config_set(cfg, options[i].name, value, msg, sizeof(msg)) != TS_OK) {
            ts_errf(err, errlen, "environment: %s", msg);
            return TS_ERR;
        }
    }
    return TS_OK;
}

/* Derives db and data_roots from state_dir when they were not given.
 * state_dir is capped at STATE_DIR_MAX bytes, so neither can truncate. */
void config_finish(ts_config *cfg) {
    if (cfg->db[0] == '\0') {
        char *db = layout_file_path(cfg->state_dir, LAYOUT_DB);
        ts_strlcpy(cfg->db, db, sizeof(cfg->db));
        free(db);
    }
    if (cfg->data_roots[0] == '\0') {
        char *data = layout_file_path(cfg->state_dir, LAYOUT_DATA);
        ts_strlcpy(cfg->data_roots, data, sizeof(cfg->data_roots));
        free(data);
    }
}
