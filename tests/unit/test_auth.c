/*
 * test_auth.c - who is calling (src/http/auth.h) and the users table behind
 * bearer tokens (store.h, "users and tokens"), against a fresh temporary
 * directory and database per test: the session secret file (mode, reuse,
 * two processes racing to create it, refusals, the environment winning),
 * signed session cookies and their forgeries, bearer tokens, X-User-ID from
 * loopback, strangers and trusted proxies, token mode, and the precedence
 * rule that a bad credential is never skipped for a good one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http/auth.h"
#include "store/store.h"
#include "testlib.h"
#include "util/util.h"

#define T0 1700000000.0
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- fixtures --------------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    char db[128];
    store *st;
    auth_config cfg; /* header mode, a fixed secret, TTL one hour */
} fx;

static int setup(void **state) {
    char err[TS_ERRLEN];
    fx *f = calloc(1, sizeof(*f));
    if (f == NULL) return -1;
    strcpy(f->dir, "/tmp/tessera-auth-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->db, sizeof(f->db), "%s/tessera.db", f->dir);
    if (store_open(f->db, &f->st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    f->cfg.header_mode = true;
    f->cfg.trusted_proxies = "";
    for (size_t i = 0; i < 32; i++) f->cfg.secret[i] = (unsigned char)i;
    f->cfg.secret_len = 32;
    f->cfg.session_ttl_s = 3600;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->st);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

/* A peer address from text (IPv4 or IPv6). */
static const struct sockaddr *peer(const char *ip, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return (const struct sockaddr *)ss;
}

/* auth_identify with err captured; user and admin out. */
static int identify(fx *f, const auth_request *req, char user[129], bool *admin, char *err) {
    return auth_identify(&f->cfg, f->st, req, user, admin, err, TS_ERRLEN);
}

/* Writes text to path with mode. */
static void write_file(const char *path, const char *text, mode_t mode) {
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void secret_path(const fx *f, char *out, size_t n) {
    snprintf(out, n, "%s/session_secret", f->dir);
}

/* A user with a fresh token; returns the token in token. */
static void add_user(fx *f, const char *name, bool admin, char token[65]) {
    char hash[65], err[TS_ERRLEN];
    assert_int_equal(auth_token_new(token), TS_OK);
    auth_token_hash(token, hash);
    assert_int_equal(store_user_put(f->st, name, hash, admin, T0, err, sizeof(err)), TS_OK);
}

/* "tessera_session=<a valid cookie for user, issued now>" */
static void cookie_header(fx *f, const char *user, char *out, size_t n) {
    char value[400];
    assert_int_equal(auth_session_issue(&f->cfg, user, NULL, ts_now(), value, sizeof(value)),
                     TS_OK);
    snprintf(out, n, "%s=%s", AUTH_COOKIE_NAME, value);
}

/* ---- the session secret ---------------------------------------------------------- */

static void test_secret_created_0600_and_reused(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], path[128];
    auth_config a = {0}, b = {0};
    secret_path(f, path, sizeof(path));
    assert_int_equal(auth_secret_load(&a, NULL, f->dir, err, sizeof(err)), TS_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 64);
    assert_int_equal(a.secret_len, 32);
    assert_int_equal(auth_secret_load(&b, "", f->dir, err, sizeof(err)), TS_OK);
    assert_int_equal(b.secret_len, 32);
    assert_memory_equal(a.secret, b.secret, 32);
    /* no temporary files are left behind */
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
}

/* One child: waits for the start signal, loads, reports the secret as hex
 * on out (or "FAIL"). */
static void race_child(const char *dir, int go, int out) {
    char c, err[TS_ERRLEN], hex[65] = "FAIL";
    auth_config cfg = {0};
    if (read(go, &c, 1) < 0) _exit(2);
    if (auth_secret_load(&cfg, NULL, dir, err, sizeof(err)) == TS_OK && cfg.secret_len == 32)
        for (size_t i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", cfg.secret[i]);
    if (write(out, hex, strlen(hex)) < 0) _exit(2);
    _exit(0);
}

static void test_secret_concurrent_creation_agrees(void **state) {
    fx *f = *state;
    for (int round = 0; round < 10; round++) {
        char dir[128], got[2][65];
        snprintf(dir, sizeof(dir), "%s/r%d", f->dir, round);
        assert_int_equal(mkdir(dir, 0700), 0);
        int go[2], out[2][2];
        assert_int_equal(pipe(go), 0);
        pid_t pids[2];
        for (int k = 0; k < 2; k++) {
            assert_int_equal(pipe(out[k]), 0);
            pids[k] = fork();
            assert_true(pids[k] >= 0);
            if (pids[k] == 0) {
                close(go[1]);
                race_child(dir, go[0], out[k][1]);
            }
            close(out[k][1]);
        }
        close(go[0]);
        close(go[1]); /* EOF releases both children at once */
        for (int k = 0; k < 2; k++) {
            ssize_t n = read(out[k][0], got[k], 64);
            got[k][n > 0 ? n : 0] = '\0';
            close(out[k][0]);
            int status;
            assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        assert_int_equal(strlen(got[0]), 64);
        assert_string_equal(got[0], got[1]);
        char path[160], text[80] = "";
        snprintf(path, sizeof(path), "%s/session_secret", dir);
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        assert_non_null(fgets(text, sizeof(text), fp));
        fclose(fp);
        assert_string_equal(text, got[0]);
    }
}

static void test_secret_refuses_open_mode(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], path[128];
    auth_config a = {0};
    secret_path(f, path, sizeof(path));
    write_file(path, HEX64 "\n", 0644);
    assert_int_equal(auth_secret_load(&a, NULL, f->dir, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "chmod 600"));
    assert_null(strstr(err, HEX64));
    assert_int_equal(a.secret_len, 0);
    /* fixed, it loads; the trailing newline is allowed */
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(auth_secret_load(&a, NULL, f->dir, err, sizeof(err)), TS_OK);
    assert_int_equal(a.secret_len, 32);
    assert_int_equal(a.secret[0], 0x01);
    assert_int_equal(a.secret[31], 0xef);
}

static void test_secret_refuses_short_or_not_hex(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], path[128];
    auth_config a = {0};
    secret_path(f, path, sizeof(path));
    write_file(path, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd", 0600);
    assert_int_equal(auth_secret_load(&a, NULL, f->dir, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "31 bytes"));
    write_file(path, "this is not hex but it is long enough to be a secret, surely", 0600);
    assert_int_equal(auth_secret_load(&a, NULL, f->dir, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "not hex"));
    write_file(path, "", 0600);
    assert_int_equal(auth_secret_load(&a, NULL, f->dir, err, sizeof(err)), TS_ERR);
    assert_int_equal(a.secret_len, 0);
}

static void test_secret_env_wins(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], path[128];
    auth_config a = {0};
    const char *env = "a secret shared by every machine of the service";
    secret_path(f, path, sizeof(path));
    assert_int_equal(auth_secret_load(&a, env, f->dir, err, sizeof(err)), TS_OK);
    assert_int_equal(a.secret_len, strlen(env));
    assert_memory_equal(a.secret, env, strlen(env));
    assert_int_not_equal(access(path, F_OK), 0); /* no file made */
    /* even over an existing file */
    write_file(path, HEX64, 0600);
    assert_int_equal(auth_secret_load(&a, env, f->dir, err, sizeof(err)), TS_OK);
    assert_memory_equal(a.secret, env, strlen(env));
    /* and without a state directory */
    assert_int_equal(auth_secret_load(&a, env, NULL, err, sizeof(err)), TS_OK);
    char big[AUTH_SECRET_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(auth_secret_load(&a, big, f->dir, err, sizeof(err)), TS_ERR);
}

/* ---- session cookies --------------------------------------------------------------- */

static void test_cookie_round_trip(void **state) {
    fx *f = *state;
    char v[400], user[129];
    assert_int_equal(auth_session_issue(&f->cfg, "alice", NULL, T0, v, sizeof(v)), TS_OK);
    /* the format of auth.h, and an HMAC that any implementation agrees on */
    assert_string_equal(v, "v2.h.alice.1700003600."
                           "750fa747c41dc9ba318ee4eec5b27c7c3a752167dca2ef0965c962c451fd1d09");
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0 + 10, user), TS_OK);
    assert_string_equal(user, "alice");
    assert_int_equal(auth_session_issue(&f->cfg, "a.b@c-d_e.1", NULL, T0, v, sizeof(v)), TS_OK);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0, user), TS_OK);
    assert_string_equal(user, "a.b@c-d_e.1");
    /* refused: an invalid user, a buffer too small */
    assert_int_equal(auth_session_issue(&f->cfg, "bad user", NULL, T0, v, sizeof(v)), TS_ERR);
    assert_int_equal(auth_session_issue(&f->cfg, "alice", NULL, T0, v, 60), TS_ERR);
}

static void test_cookie_tampering(void **state) {
    fx *f = *state;
    char v[400], t[400], user[129];
    assert_int_equal(auth_session_issue(&f->cfg, "alice", NULL, T0, v, sizeof(v)), TS_OK);
    /* another user, same hmac */
    snprintf(t, sizeof(t), "v2.h.alicf%s", v + strlen("v2.h.alice"));
    assert_int_equal(auth_session_verify(&f->cfg, f->st, t, T0, user), AUTH_INVALID);
    assert_string_equal(user, "");
    /* a later expiry, same hmac */
    ts_strlcpy(t, v, sizeof(t));
    t[strlen("v2.h.alice.1")] = '9';
    assert_int_equal(auth_session_verify(&f->cfg, f->st, t, T0, user), AUTH_INVALID);
    /* one hmac digit changed */
    ts_strlcpy(t, v, sizeof(t));
    t[strlen(t) - 1] = t[strlen(t) - 1] == '0' ? '1' : '0';
    assert_int_equal(auth_session_verify(&f->cfg, f->st, t, T0, user), AUTH_INVALID);
    /* the right hmac in upper case is not the same text */
    ts_strlcpy(t, v, sizeof(t));
    for (char *p = strrchr(t, '.'); *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, t, T0, user), AUTH_INVALID);
}

static void test_cookie_expired_and_wrong_secret(void **state) {
    fx *f = *state;
    char v[400], user[129];
    assert_int_equal(auth_session_issue(&f->cfg, "alice", NULL, T0, v, sizeof(v)), TS_OK);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0 + 3599, user), TS_OK);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0 + 3600, user), AUTH_INVALID);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0 + 1e6, user), AUTH_INVALID);
    /* a second server with another secret refuses the first one's cookie */
    auth_config other = f->cfg;
    other.secret[0] ^= 1;
    assert_int_equal(auth_session_verify(&other, f->st, v, T0, user), AUTH_INVALID);
    /* and a server without a secret issues and accepts nothing */
    other.secret_len = 0;
    assert_int_equal(auth_session_issue(&other, "alice", NULL, T0, v, sizeof(v)), TS_ERR);
    assert_int_equal(auth_session_verify(&other, f->st, v, T0, user), AUTH_INVALID);
}

static void test_cookie_malformed(void **state) {
    fx *f = *state;
    char user[129], longv[600];
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    memcpy(longv, "v2.h.", 5);
    const char *bad[] = {"", "v2", "v2.", "v2.h.alice", "v2.h.alice.1700003600",
                         "v2.alice.1700003600." HEX64, "v2.h.alice." HEX64, "v2.h..1700003600." HEX64,
                         "v2.h.alice.17000036x0." HEX64, "v2.h.alice.." HEX64,
                         "v2.h.alice.1700003600." HEX64 "0", "v2.h.alice.1700003600.0123",
                         "v2.h.alice.99999999999999999999." HEX64, "v2.h.al ice.1700003600." HEX64,
                         "v2.x.alice.1700003600." HEX64, "v2.t0123.alice.1700003600." HEX64,
                         "v2.t0123456789abcdeg.alice.1700003600." HEX64, "v3.h.alice.1700003600." HEX64,
                         "v1.alice.1700003600." HEX64, longv};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(auth_session_verify(&f->cfg, f->st, bad[i], T0, user), AUTH_INVALID);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, NULL, T0, user), AUTH_INVALID);
}

/* Through auth_identify: the reasons, other cookies, quoting, absence. */
static void test_cookie_in_header(void **state) {
    fx *f = *state;
    char user[129], err[TS_ERRLEN], h[600], v[400];
    bool admin = true;
    cookie_header(f, "bob", v, sizeof(v));
    snprintf(h, sizeof(h), "theme=dark; tessera_session_old=x; %s;other=1", v);
    auth_request req = {.cookie = h};
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    assert_string_equal(user, "bob");
    assert_false(admin);
    /* a quoted value (RFC 6265) */
    snprintf(h, sizeof(h), "a=b; %s=\"%s\"", AUTH_COOKIE_NAME, v + strlen(AUTH_COOKIE_NAME) + 1);
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    /* expired, with the reason */
    assert_int_equal(auth_session_issue(&f->cfg, "bob", NULL, ts_now() - 7200, v, sizeof(v)), TS_OK);
    snprintf(h, sizeof(h), "%s=%s", AUTH_COOKIE_NAME, v);
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_non_null(strstr(err, "session expired"));
    assert_string_equal(user, "");
    /* forged */
    snprintf(h, sizeof(h), "%s=v2.h.bob.99999999999.%s", AUTH_COOKIE_NAME, HEX64);
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_non_null(strstr(err, "signature invalid"));
    /* garbage */
    snprintf(h, sizeof(h), "%s=hello", AUTH_COOKIE_NAME);
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_non_null(strstr(err, "malformed"));
    /* only other cookies, or ours emptied by a sign-out: no identity */
    const char *none[] = {"theme=dark; tessera_sessionx=1", "tessera_session=", "", "; ;"};
    for (size_t i = 0; i < 4; i++) {
        req.cookie = none[i];
        assert_int_equal(identify(f, &req, user, &admin, err), AUTH_MISSING);
    }
}

/* ---- bearer tokens ------------------------------------------------------------------ */

static void test_token_new_and_hash(void **state) {
    (void)state;
    char a[65], b[65], h[65];
    assert_int_equal(auth_token_new(a), TS_OK);
    assert_int_equal(auth_token_new(b), TS_OK);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(strspn(a, "0123456789abcdef"), 64);
    assert_string_not_equal(a, b);
    auth_token_hash("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_bearer_valid_unknown_malformed(void **state) {
    fx *f = *state;
    char token[65], other[65], user[129], err[TS_ERRLEN], h[200];
    bool admin = false;
    add_user(f, "carol", true, token);
    auth_request req = {.authorization = h};
    snprintf(h, sizeof(h), "Bearer %s", token);
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    assert_string_equal(user, "carol");
    assert_true(admin);
    /* scheme in any case, token in upper case */
    snprintf(h, sizeof(h), "bearer  %s ", token);
    for (char *p = h + 8; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    /* unknown */
    assert_int_equal(auth_token_new(other), TS_OK);
    snprintf(h, sizeof(h), "Bearer %s", other);
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_string_equal(err, "unknown or revoked token");
    assert_false(admin);
    /* malformed */
    const char *bad[] = {"Bearer abc", "Basic dXNlcjpwYXNz", "Bearer", "Bearer " HEX64 " x",
                         "Bearer " HEX64 "0", "Token " HEX64,
                         "Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(h, sizeof(h), "%s", bad[i]);
        assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    }
    assert_null(strstr(err, token));
}

/* ---- X-User-ID (header mode) ---------------------------------------------------------- */

static void test_header_loopback_only(void **state) {
    fx *f = *state;
    char user[129], err[TS_ERRLEN];
    bool admin;
    struct sockaddr_storage ss;
    auth_request req = {.x_user_id = "user-123"};
    const char *ok[] = {"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < 4; i++) {
        req.peer = peer(ok[i], &ss);
        assert_true(auth_peer_loopback(req.peer));
        assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
        assert_string_equal(user, "user-123");
    }
    const char *refused[] = {"10.0.0.5", "2001:db8::1", "::ffff:10.0.0.5", "128.0.0.1", "::2"};
    for (size_t i = 0; i < 5; i++) {
        req.peer = peer(refused[i], &ss);
        assert_false(auth_peer_loopback(req.peer));
        assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
        assert_string_equal(user, "");
    }
    assert_non_null(strstr(err, "trusted proxy"));
    req.peer = NULL;
    assert_false(auth_peer_loopback(NULL));
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
}

static void test_header_trusted_proxy(void **state) {
    fx *f = *state;
    char user[129], err[TS_ERRLEN];
    bool admin;
    struct sockaddr_storage ss;
    f->cfg.trusted_proxies = "192.0.2.1, 10.0.0.5,2001:db8:0::7 ,nonsense";
    auth_request req = {.x_user_id = "dave@example.org"};
    const char *ok[] = {"10.0.0.5", "::ffff:10.0.0.5", "2001:db8::7", "192.0.2.1"};
    for (size_t i = 0; i < 4; i++) {
        req.peer = peer(ok[i], &ss);
        assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
        assert_string_equal(user, "dave@example.org");
    }
    const char *refused[] = {"10.0.0.6", "10.0.0.50", "2001:db8::70", "192.0.2.10"};
    for (size_t i = 0; i < 4; i++) {
        req.peer = peer(refused[i], &ss);
        assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    }
}

static void test_header_invalid_user_id(void **state) {
    fx *f = *state;
    char user[129], err[TS_ERRLEN], longid[130];
    bool admin;
    struct sockaddr_storage ss;
    memset(longid, 'u', 129);
    longid[129] = '\0';
    const char *bad[] = {"", "bad user", "a/b", "é", "x\n", longid};
    auth_request req = {.peer = peer("127.0.0.1", &ss)};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req.x_user_id = bad[i];
        assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
        assert_non_null(strstr(err, "1-128 characters"));
    }
    longid[128] = '\0';
    req.x_user_id = longid;
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    /* nothing at all */
    auth_request none = {.peer = req.peer};
    assert_int_equal(identify(f, &none, user, &admin, err), AUTH_MISSING);
}

/* ---- token mode and precedence ----------------------------------------------------- */

static void test_token_mode_refuses_x_user_id(void **state) {
    fx *f = *state;
    char user[129], err[TS_ERRLEN], token[65], h[200];
    bool admin;
    struct sockaddr_storage ss;
    f->cfg.header_mode = false;
    auth_request req = {.x_user_id = "user-123", .peer = peer("127.0.0.1", &ss)};
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_string_equal(err, "X-User-ID is not accepted: this server requires a token");
    req.x_user_id = NULL;
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_MISSING);
    /* next to a token (a proxy may add it), X-User-ID is not a credential */
    add_user(f, "erin", false, token);
    snprintf(h, sizeof(h), "Bearer %s", token);
    req.x_user_id = "somebody-else";
    req.authorization = h;
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    assert_string_equal(user, "erin");
}

static void test_precedence_bad_credential_never_skipped(void **state) {
    fx *f = *state;
    char user[129], err[TS_ERRLEN], token[65], h[200], c[600], forged[600];
    bool admin;
    struct sockaddr_storage ss;
    add_user(f, "frank", true, token);
    cookie_header(f, "frank", c, sizeof(c));
    snprintf(forged, sizeof(forged), "%s=v2.h.frank.99999999999.%s", AUTH_COOKIE_NAME, HEX64);
    /* valid cookie + forged bearer */
    auth_request req = {.cookie = c, .authorization = "Bearer " HEX64};
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_string_equal(user, "");
    /* forged cookie + valid bearer */
    snprintf(h, sizeof(h), "Bearer %s", token);
    req = (auth_request){.cookie = forged, .authorization = h};
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    /* both valid, same user: the token's admin flag holds */
    req.cookie = c;
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    assert_string_equal(user, "frank");
    assert_true(admin);
    /* both valid, different users */
    cookie_header(f, "grace", c, sizeof(c));
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_false(admin);
    /* header mode: a valid cookie and a loopback X-User-ID naming someone else */
    req = (auth_request){.cookie = c, .x_user_id = "mallory", .peer = peer("::1", &ss)};
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    req.x_user_id = "grace";
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    /* a valid cookie does not excuse an X-User-ID from a stranger */
    req.peer = peer("203.0.113.9", &ss);
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
}

/* ---- the users table ------------------------------------------------------------------ */

static void test_store_users(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], name[129], h1[65], h2[65], h3[65];
    bool admin = true;
    assert_true(store_schema_version(f->st) >= 2);
    auth_token_hash("one", h1);
    auth_token_hash("two", h2);
    auth_token_hash("three", h3);
    assert_int_equal(store_user_by_token(f->st, h1, name, &admin, err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_false(admin);
    assert_int_equal(store_user_put(f->st, "heidi", h1, false, T0, err, sizeof(err)), TS_OK);
    assert_int_equal(store_user_by_token(f->st, h1, name, &admin, err, sizeof(err)), TS_OK);
    assert_string_equal(name, "heidi");
    assert_false(admin);
    /* rotate, now an admin: the old token is gone */
    assert_int_equal(store_user_put(f->st, "heidi", h2, true, T0 + 1, err, sizeof(err)), TS_OK);
    assert_int_equal(store_user_by_token(f->st, h1, name, &admin, err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_user_by_token(f->st, h2, name, &admin, err, sizeof(err)), TS_OK);
    assert_string_equal(name, "heidi");
    assert_true(admin);
    /* another user cannot take the same hash; a freed one can be reused */
    assert_int_equal(store_user_put(f->st, "ivan", h2, false, T0, err, sizeof(err)), TS_ERR);
    assert_int_equal(store_user_put(f->st, "ivan", h1, false, T0, err, sizeof(err)), TS_OK);
    assert_int_equal(store_user_by_token(f->st, h1, name, &admin, err, sizeof(err)), TS_OK);
    assert_string_equal(name, "ivan");
    assert_false(admin);
    /* refused: a bad name, something that is not a hash */
    assert_int_equal(store_user_put(f->st, "bad name", h3, false, T0, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "1-128"));
    assert_int_equal(store_user_put(f->st, "judy", "abc", false, T0, err, sizeof(err)), TS_ERR);
    assert_int_equal(store_user_by_token(f->st, "abc", name, &admin, err, sizeof(err)),
                     STORE_NOTFOUND);
    /* inside the caller's transaction too */
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_user_put(f->st, "judy", h3, false, T0, err, sizeof(err)), TS_OK);
    store_rollback(f->st);
    assert_int_equal(store_user_by_token(f->st, h3, name, &admin, err, sizeof(err)),
                     STORE_NOTFOUND);
}

/* ---- sessions bound to their credential (issue 12, defect 4) -------------------------- */

/* A cookie made in header mode is no credential once the server requires
 * tokens, whoever it names (registered or not). */
static void test_cookie_bound_to_header_mode(void **state) {
    fx *f = *state;
    char v[400], user[129], err[TS_ERRLEN], h[600], token[65];
    bool admin;
    add_user(f, "alice", false, token);
    cookie_header(f, "alice", h, sizeof(h));
    auth_request req = {.cookie = h};
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    f->cfg.header_mode = false;
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_non_null(strstr(err, "made in header mode"));
    assert_string_equal(user, "");
    assert_int_equal(auth_session_issue(&f->cfg, "nobody-registered", NULL, T0, v, sizeof(v)),
                     TS_OK);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0, user), AUTH_INVALID);
}

/* A cookie made from a token lives as long as that token: replaced by
 * `user add` or revoked, every session made from it ends. */
static void test_cookie_bound_to_its_token(void **state) {
    fx *f = *state;
    char v[400], v2[400], user[129], token[65], hash[65], err[TS_ERRLEN];
    f->cfg.header_mode = false;
    add_user(f, "alice", false, token);
    auth_token_hash(token, hash);
    assert_int_equal(auth_session_issue(&f->cfg, "alice", hash, T0, v, sizeof(v)), TS_OK);
    assert_int_equal(strncmp(v, "v2.t", 4), 0);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0, user), TS_OK);
    assert_string_equal(user, "alice");
    /* header mode again: a token session still holds (its token does) */
    f->cfg.header_mode = true;
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0, user), TS_OK);
    f->cfg.header_mode = false;
    /* the binding cannot be moved to another user or token */
    char other_token[65], other_hash[65];
    add_user(f, "bob", false, other_token);
    auth_token_hash(other_token, other_hash);
    assert_int_equal(auth_session_issue(&f->cfg, "alice", other_hash, T0, v2, sizeof(v2)), TS_OK);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v2, T0, user), AUTH_INVALID);
    /* rotated with `user add`: the old session ends */
    char token2[65], now_v[400], h[600];
    assert_int_equal(auth_session_issue(&f->cfg, "alice", hash, ts_now(), now_v, sizeof(now_v)),
                     TS_OK);
    add_user(f, "alice", false, token2);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0, user), AUTH_INVALID);
    snprintf(h, sizeof(h), "%s=%s", AUTH_COOKIE_NAME, now_v);
    auth_request req = {.cookie = h};
    bool admin;
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_non_null(strstr(err, "revoked or replaced"));
    /* a session from the new token works until `user revoke` */
    auth_token_hash(token2, hash);
    assert_int_equal(auth_session_issue(&f->cfg, "alice", hash, T0, v, sizeof(v)), TS_OK);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0, user), TS_OK);
    assert_int_equal(store_user_revoke(f->st, "alice", err, sizeof(err)), TS_OK);
    assert_int_equal(auth_session_verify(&f->cfg, f->st, v, T0, user), AUTH_INVALID);
    /* a token binding any implementation agrees on: HMAC(secret, "token:" + hash) */
    assert_int_equal(auth_session_issue(&f->cfg, "alice", HEX64, T0, v, sizeof(v)), TS_OK);
    assert_string_equal(v, "v2.tce64fd6ee63eabfb.alice.1700003600."
                           "a60536992ffe5aaea9cbef9ec96e9835d67c9d383ca5e7a0a04d5cddf22f09fe");
    /* refused: a token hash of the wrong shape */
    assert_int_equal(auth_session_issue(&f->cfg, "alice", "abc", T0, v, sizeof(v)), TS_ERR);
}

/* A session made from an administrator's token is an administrator's
 * (binding "a"), as long as that token is the user's; the letter cannot be
 * changed without breaking the signature, and a header-mode or plain token
 * session never is one. */
static void test_cookie_admin_binding(void **state) {
    fx *f = *state;
    char v[400], h[600], user[129], token[65], hash[65], err[TS_ERRLEN];
    bool admin = false;
    f->cfg.header_mode = false;
    add_user(f, "root", true, token);
    auth_token_hash(token, hash);
    assert_int_equal(auth_session_issue_as(&f->cfg, "root", hash, true, ts_now(), v, sizeof(v)), TS_OK);
    assert_int_equal(strncmp(v, "v2.a", 4), 0);
    snprintf(h, sizeof(h), "%s=%s", AUTH_COOKIE_NAME, v);
    auth_request req = {.cookie = h};
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    assert_string_equal(user, "root");
    assert_true(admin);
    /* the letter swapped to "t": the signature no longer holds */
    h[strlen(AUTH_COOKIE_NAME) + 4] = 't';
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_false(admin);
    /* a plain session of the same token is no administrator's */
    assert_int_equal(auth_session_issue_as(&f->cfg, "root", hash, false, ts_now(), v, sizeof(v)), TS_OK);
    snprintf(h, sizeof(h), "%s=%s", AUTH_COOKIE_NAME, v);
    assert_int_equal(identify(f, &req, user, &admin, err), TS_OK);
    assert_false(admin);
    /* admin without a token: refused (header mode never makes one) */
    assert_int_equal(auth_session_issue_as(&f->cfg, "root", NULL, true, ts_now(), v, sizeof(v)), TS_ERR);
    /* the token replaced by a plain one: the admin session ends */
    assert_int_equal(auth_session_issue_as(&f->cfg, "root", hash, true, ts_now(), v, sizeof(v)), TS_OK);
    add_user(f, "root", false, token);
    snprintf(h, sizeof(h), "%s=%s", AUTH_COOKIE_NAME, v);
    assert_int_equal(identify(f, &req, user, &admin, err), AUTH_INVALID);
    assert_false(admin);
}

/* TESSERA_SESSION_SECRET=a was accepted and brute-forced from one cookie. */
static void test_secret_env_refuses_short(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    auth_config a = {0};
    assert_int_equal(auth_secret_load(&a, "a", f->dir, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "at least 32"));
    assert_null(strstr(err, ": a "));
    assert_int_equal(a.secret_len, 0);
    assert_int_equal(auth_secret_load(&a, "0123456789abcdef0123456789abcde", f->dir, err,
                                      sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "31 bytes"));
    assert_int_equal(auth_secret_load(&a, "0123456789abcdef0123456789abcdef", f->dir, err,
                                      sizeof(err)),
                     TS_OK);
    assert_int_equal(a.secret_len, 32);
}

/* store_user_revoke and store_user_token behind `tessera user revoke`. */
static void test_store_user_revoke(void **state) {
    fx *f = *state;
    char token[65], hash[65], got[65], name[129], err[TS_ERRLEN];
    bool admin;
    assert_int_equal(store_user_revoke(f->st, "nobody", err, sizeof(err)), STORE_NOTFOUND);
    assert_int_equal(store_user_token(f->st, "nobody", got, err, sizeof(err)), STORE_NOTFOUND);
    add_user(f, "kim", true, token);
    auth_token_hash(token, hash);
    assert_int_equal(store_user_token(f->st, "kim", got, err, sizeof(err)), TS_OK);
    assert_string_equal(got, hash);
    assert_int_equal(store_user_revoke(f->st, "kim", err, sizeof(err)), TS_OK);
    assert_int_equal(store_user_token(f->st, "kim", got, err, sizeof(err)), STORE_NOTFOUND);
    assert_int_equal(store_user_by_token(f->st, hash, name, &admin, err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_user_revoke(f->st, "kim", err, sizeof(err)), TS_OK); /* again */
    add_user(f, "kim", false, token);
    assert_int_equal(store_user_token(f->st, "kim", got, err, sizeof(err)), TS_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_secret_created_0600_and_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_concurrent_creation_agrees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_refuses_open_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_refuses_short_or_not_hex, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_env_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_expired_and_wrong_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_in_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_new_and_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bearer_valid_unknown_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_loopback_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_trusted_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_invalid_user_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_mode_refuses_x_user_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence_bad_credential_never_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_bound_to_header_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_bound_to_its_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_admin_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_env_refuses_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_user_revoke, setup, teardown),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
