/*
 * client.c - see client.h.
 */
#include "cli/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define CONNECT_TIMEOUT_MS 5000L
#define TOTAL_TIMEOUT_MS 60000L
#define MAX_BUFFERED (256L * 1024 * 1024)

struct client {
    CURL *curl;
    struct curl_slist *headers;
    char base[512];
    char identity_line[304]; /* "X-User-ID: u\r\n" */
};

/* Where an answer's body goes: a growing buffer, or (downloads) a stream
 * while the status is 2xx. */
typedef struct sink {
    CURL *curl;
    FILE *out;
    char *buf;
    size_t len, cap;
    bool too_big, write_failed;
} sink;

/* A header value must be one line of printable ASCII: anything else would
 * let a token split or forge headers. */
static bool header_value_ok(const char *v) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p > 0x7e) return false;
    return v[0] != '\0';
}

/* Builds the fixed headers of every request: identity, JSON both ways, and
 * no "Expect: 100-continue" (it costs a round trip on larger bodies). */
static int build_headers(client *c, const ts_config *cfg, char *err, size_t errlen) {
    char identity[300];
    if (cfg->token[0]) {
        if (!header_value_ok(cfg->token)) {
            ts_errf(err, errlen, "the token (--token or TESSERA_TOKEN) must be printable ASCII "
                                 "without spaces at either end; check for a stray newline");
            return TS_ERR;
        }
        snprintf(identity, sizeof(identity), "Authorization: Bearer %s", cfg->token);
    } else {
        if (!header_value_ok(cfg->user)) {
            ts_errf(err, errlen, "no user: pass --user U or --token T (or set TESSERA_USER)");
            return TS_ERR;
        }
        snprintf(identity, sizeof(identity), "X-User-ID: %s", cfg->user);
    }
    snprintf(c->identity_line, sizeof(c->identity_line), "%s\r\n", identity);
    const char *fixed[] = {identity, "Accept: application/json", "Content-Type: application/json",
                           "Expect:"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        struct curl_slist *l = curl_slist_append(c->headers, fixed[i]);
        if (!l) {
            ts_errf(err, errlen, "out of memory building HTTP headers");
            return TS_ERR;
        }
        c->headers = l;
    }
    return TS_OK;
}

/*
 * The client for cfg->server. libcurl's global state is initialised here
 * and released in client_free (it is reference counted and thread-safe in
 * the libcurl this project builds against), so callers need not know.
 */
client *client_new(const ts_config *cfg, char *err, size_t errlen) {
    if (cfg->server[0] == '\0') {
        ts_errf(err, errlen, "no server configured: pass --server URL or set TESSERA_SERVER "
                             "(e.g. http://127.0.0.1:8080)");
        return NULL;
    }
    if (strncmp(cfg->server, "http://", 7) != 0 && strncmp(cfg->server, "https://", 8) != 0) {
        ts_errf(err, errlen, "server %s: must be a URL starting with http:// or https://",
                cfg->server);
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ts_errf(err, errlen, "cannot initialise libcurl");
        return NULL;
    }
    client *c = ts_calloc(1, sizeof(*c));
    ts_strlcpy(c->base, cfg->server, sizeof(c->base));
    for (size_t n = strlen(c->base); n > 0 && c->base[n - 1] == '/'; n--) c->base[n - 1] = '\0';
    c->curl = curl_easy_init();
    if (!c->curl) {
        ts_errf(err, errlen, "cannot initialise libcurl");
        goto fail;
    }
    if (build_headers(c, cfg, err, errlen) != TS_OK) goto fail;
    return c;
fail:
    client_free(c);
    return NULL;
}

void client_free(client *c) {
    if (!c) return;
    curl_slist_free_all(c->headers);
    if (c->curl) curl_easy_cleanup(c->curl);
    free(c);
    curl_global_cleanup();
}

const char *client_base_url(const client *c) {
    return c->base;
}

const char *client_identity_header(const client *c) {
    return c->identity_line;
}

/* libcurl's write callback. Returning less than asked aborts the transfer
 * (CURLE_WRITE_ERROR), which we do for an answer too big to hold or an
 * output that cannot be written. */
static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
    sink *s = ud;
    size_t n = size * nmemb;
    if (s->out) {
        long status = 0;
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            if (fwrite(ptr, 1, n, s->out) == n) return n;
            s->write_failed = true;
            return 0;
        }
    }
    if (s->len + n > (size_t)MAX_BUFFERED) {
        s->too_big = true;
        return 0;
    }
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->buf = ts_realloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, ptr, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

/* Turns a failed transfer into a message naming the server and, for the
 * usual causes, what to check. */
static void transport_error(client *c, CURLcode rc, const char *curl_err, const sink *s,
                            char *err, size_t errlen) {
    const char *detail = curl_err[0] ? curl_err : curl_easy_strerror(rc);
    long os_errno = 0;
    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_COULDNT_CONNECT)
        ts_errf(err, errlen, "cannot reach %s: %s (is `tessera serve` running?)", c->base,
                os_errno ? strerror((int)os_errno) : detail);
    else if (rc == CURLE_COULDNT_RESOLVE_HOST)
        ts_errf(err, errlen, "cannot reach %s: unknown host (check --server or TESSERA_SERVER)",
                c->base);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        ts_errf(err, errlen, "no answer from %s in time: %s (is the service overloaded or the "
                             "address wrong?)", c->base, detail);
    else if (rc == CURLE_WRITE_ERROR && s->too_big)
        ts_errf(err, errlen, "the answer from %s is larger than %ld MiB", c->base,
                MAX_BUFFERED / (1024 * 1024));
    else if (rc == CURLE_WRITE_ERROR && s->write_failed)
        ts_errf(err, errlen, "cannot write the answer from %s: %s", c->base, strerror(errno));
    else
        ts_errf(err, errlen, "request to %s failed: %s", c->base, detail);
}

/* Sets the options of one request on the reused handle (keep-alive
 * connections survive curl_easy_reset). */
static void set_options(client *c, const char *url, const char *method, const char *body,
                        size_t len, sink *s, char *curl_err, bool streaming) {
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tessera-cli");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    if (streaming) {
        /* A long download may take longer than 60 s; a stalled one may not. */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, TOTAL_TIMEOUT_MS / 1000);
    } else {
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(method, "POST") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body || strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    }
}

/* One request with its answer going to s. TS_OK with *status, or TS_ERR. */
static int perform(client *c, const char *method, const char *path, const char *body, size_t len,
                   sink *s, long *status, char *err, size_t errlen) {
    char curl_err[CURL_ERROR_SIZE] = "";
    char *url = ts_asprintf("%s%s", c->base, path);
    s->curl = c->curl;
    set_options(c, url, method, body, len, s, curl_err, s->out != NULL);
    errno = 0;
    CURLcode rc = curl_easy_perform(c->curl);
    free(url);
    if (rc != CURLE_OK) {
        transport_error(c, rc, curl_err, s, err, errlen);
        return TS_ERR;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
    return TS_OK;
}

int client_request(client *c, const char *method, const char *path, const char *body, size_t len,
                   long *status, char **resp, size_t *resp_len, char *err, size_t errlen) {
    sink s = {0};
    *resp = NULL;
    if (resp_len) *resp_len = 0;
    if (perform(c, method, path, body, len, &s, status, err, errlen) != TS_OK) {
        free(s.buf);
        return TS_ERR;
    }
    *resp = s.buf ? s.buf : ts_strdup("");
    if (resp_len) *resp_len = s.len;
    return TS_OK;
}

int client_download(client *c, const char *path, FILE *out, long *status, char **resp,
                    char *err, size_t errlen) {
    sink s = {.out = out};
    *resp = NULL;
    if (perform(c, "GET", path, NULL, 0, &s, status, err, errlen) != TS_OK) {
        free(s.buf);
        return TS_ERR;
    }
    if (fflush(out) != 0) {
        ts_errf(err, errlen, "cannot write the answer from %s: %s", c->base, strerror(errno));
        free(s.buf);
        return TS_ERR;
    }
    *resp = s.buf ? s.buf : ts_strdup("");
    return TS_OK;
}

/* Appends "key: value" of each entry of details, strings as themselves and
 * anything else as compact JSON; empty ones say nothing and are left out. */
static void append_details(json_t *details, char *out, size_t outlen) {
    const char *key;
    json_t *v;
    bool first = true;
    json_object_foreach(details, key, v) {
        if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) continue;
        size_t used = strlen(out);
        if (used + 1 >= outlen) return;
        char *text = json_is_string(v) ? ts_strdup(json_string_value(v))
                                       : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(out + used, outlen - used, "%s%s: %s", first ? "; " : ", ", key,
                 text ? text : "?");
        free(text);
        first = false;
    }
}

/* Copies the start of a non-JSON body as one printable line. */
static void body_excerpt(const char *resp, size_t resp_len, char *buf, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < resp_len && k + 4 < n && k < 200; i++) {
        unsigned char ch = (unsigned char)resp[i];
        if (ch == '\n' || ch == '\r') {
            if (k > 0) break;
            continue;
        }
        buf[k++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    buf[k] = '\0';
}

/*
 * The service answers errors as {"error": {"code", "message", "details"?}}
 * (DESIGN §4); a proxy in front may answer anything, so any other body is
 * shown as its first line. Never fails: out always holds a line.
 */
void client_error_line(long status, const char *resp, size_t resp_len, char *out, size_t outlen) {
    if (outlen == 0) return;
    json_t *root = resp && resp_len ? json_loadb(resp, resp_len, 0, NULL) : NULL;
    json_t *e = json_object_get(root, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (msg) {
        const char *code = json_string_value(json_object_get(e, "code"));
        snprintf(out, outlen, "%s (HTTP %ld%s%s", msg, status, code ? " " : "", code ? code : "");
        json_t *details = json_object_get(e, "details");
        if (json_is_object(details)) append_details(details, out, outlen);
        size_t used = strlen(out);
        if (used + 1 < outlen) snprintf(out + used, outlen - used, ")");
    } else {
        char excerpt[256];
        body_excerpt(resp ? resp : "", resp ? resp_len : 0, excerpt, sizeof(excerpt));
        if (excerpt[0])
            snprintf(out, outlen, "HTTP %ld: %s", status, excerpt);
        else
            snprintf(out, outlen, "HTTP %ld with an empty answer", status);
    }
    json_decref(root);
}
