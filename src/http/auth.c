/*
 * auth.c - who is calling (see auth.h, DESIGN §4).
 *
 * Three credentials, checked in the order cookie, bearer token, X-User-ID:
 *   - every credential that is present is verified, and one that fails makes
 *     the request AUTH_INVALID even if another would pass (a forged cookie
 *     next to a good token is an attack or a bug, never something to skip);
 *   - when several pass they must name the same user; the first one in that
 *     order gives the identity;
 *   - in token mode X-User-ID is not a credential: it is ignored next to a
 *     cookie or token (a proxy may add it) and refused when it is alone, so
 *     that a client configured for header mode learns why it is turned away
 *     instead of hearing "who are you?";
 *   - only a token carries the admin flag: a bearer token, or a session
 *     cookie made from an administrator's token (binding "a"); X-User-ID is
 *     a bare assertion and never makes an administrator.
 *
 * The session secret file holds the secret as hex text (what we create, and
 * what `openssl rand -hex 32` prints); a trailing newline is allowed. It is
 * created by writing a temporary file (O_CREAT|O_EXCL, 0600, fsync) and
 * hard-linking it to the final name: link() fails with EEXIST when another
 * process won the race, and unlike writing the final file in place, no
 * reader can ever see it empty or half written, and a crash cannot leave a
 * truncated secret behind. The loser re-reads the winner's file.
 *
 * Error messages may name users, paths and peers, never the secret, a
 * token, or the expected HMAC.
 */
#include "http/auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/config.h"
#include "util/layout.h"
#include "util/util.h"

#define SECRET_MIN 32                             /* bytes */
#define SECRET_FILE_MAX (2 * AUTH_SECRET_MAX + 8) /* hex text plus a newline or two */
#define SECRET_ABSENT 1                           /* secret_read: no file yet */
#define COOKIE_VALUE_MAX 255 /* "v2." + 17 + "." + 128 + "." + 18 digits + "." + 64 = 233 */
#define DEFAULT_TTL_S (7.0 * 24 * 3600)
#define USER_RULE "a user id is 1-128 characters of A-Z a-z 0-9 . _ @ -"

/* ---- small helpers ------------------------------------------------------------ */

/* Lower-case hex of n bytes into out (2n + 1 bytes). */
static void hex_encode(const unsigned char *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The value of one hex digit (either case), or -1. */
static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* True if the n characters at s are all hex digits. */
static bool all_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (hex_digit(s[i]) < 0) return false;
    return true;
}

/* Fills buf from the kernel's CSPRNG. getrandom() blocks only until the
 * pool is first initialised, and requests of up to 256 bytes are never
 * short except for a signal, hence the loop. */
static int random_bytes(unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return TS_ERR;
        got += (size_t)r;
    }
    return TS_OK;
}

/* Sets err and returns AUTH_INVALID, so that checks read as one line. */
static int invalid(char *err, size_t errlen, const char *msg) {
    ts_errf(err, errlen, "%s", msg);
    return AUTH_INVALID;
}

/* ---- the session secret -------------------------------------------------------- */

/* Decodes the file's hex text into cfg->secret. Trailing whitespace (an
 * editor's newline) is dropped; anything else that is not hex, an odd
 * number of digits, fewer than 32 bytes or more than AUTH_SECRET_MAX is
 * refused, naming the file and how to make a good one. */
static int secret_decode(auth_config *cfg, const char *path, const char *text, size_t len,
                         char *err, size_t errlen) {
    while (len > 0 && strchr(" \t\r\n", text[len - 1]) != NULL) len--;
    if (len % 2 != 0 || !all_hex(text, len)) {
        ts_errf(err, errlen,
                "session secret %s is not hex text: remove it to have a new one created, or "
                "write one with: openssl rand -hex 32",
                path);
        return TS_ERR;
    }
    if (len / 2 < SECRET_MIN || len / 2 > AUTH_SECRET_MAX) {
        ts_errf(err, errlen,
                "session secret %s holds %zu bytes; it must hold %d to %d (64 to %d hex "
                "characters): remove it to have a new one created",
                path, len / 2, SECRET_MIN, AUTH_SECRET_MAX, 2 * AUTH_SECRET_MAX);
        return TS_ERR;
    }
    for (size_t i = 0; i < len / 2; i++)
        cfg->secret[i] = (unsigned char)(hex_digit(text[2 * i]) << 4 | hex_digit(text[2 * i + 1]));
    cfg->secret_len = len / 2;
    return TS_OK;
}

/* Checks the opened file: a regular file that only its owner can read or
 * write, since anyone who reads it can sign a cookie for any user. */
static int secret_check_file(int fd, const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        ts_errf(err, errlen, "cannot stat session secret %s: %s", path, strerror(errno));
        return TS_ERR;
    }
    if (!S_ISREG(sb.st_mode)) {
        ts_errf(err, errlen, "session secret %s is not a regular file", path);
        return TS_ERR;
    }
    if ((sb.st_mode & 077) != 0) {
        ts_errf(err, errlen,
                "session secret %s is accessible to group or others (mode %03o): run "
                "chmod 600 %s (and consider it leaked: remove it to have a new one created)",
                path, (unsigned)(sb.st_mode & 0777), path);
        return TS_ERR;
    }
    return TS_OK;
}

/* Reads path into cfg: TS_OK, SECRET_ABSENT if there is no file, or TS_ERR
 * (unreadable, too open, malformed). */
static int secret_read(auth_config *cfg, const char *path, char *err, size_t errlen) {
    char text[SECRET_FILE_MAX + 1];
    size_t len = 0;
    int rc = TS_ERR;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return SECRET_ABSENT;
    if (fd < 0) {
        ts_errf(err, errlen, "cannot open session secret %s: %s", path, strerror(errno));
        return TS_ERR;
    }
    if (secret_check_file(fd, path, err, errlen) != TS_OK) goto cleanup;
    for (;;) {
        ssize_t r = read(fd, text + len, sizeof(text) - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            ts_errf(err, errlen, "cannot read session secret %s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == sizeof(text)) {
            ts_errf(err, errlen, "session secret %s is too long (at most %d hex characters)", path,
                    2 * AUTH_SECRET_MAX);
            goto cleanup;
        }
    }
    rc = secret_decode(cfg, path, text, len, err, errlen);

cleanup:
    OPENSSL_cleanse(text, sizeof(text));
    close(fd);
    return rc;
}

/* write() until everything is written. */
static int write_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return TS_ERR;
        buf += w;
        n -= (size_t)w;
    }
    return TS_OK;
}

/* Makes the new directory entry durable too (best effort: a failure here
 * only matters if the machine crashes right now). */
static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

/* Writes 32 fresh random bytes as 64 hex characters into a new 0600 file
 * tmp, durably. */
static int secret_write_tmp(const char *tmp, char *err, size_t errlen) {
    unsigned char raw[SECRET_MIN];
    char hex[2 * SECRET_MIN + 1];
    int rc = TS_ERR;
    int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        ts_errf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return TS_ERR;
    }
    if (random_bytes(raw, sizeof(raw)) != TS_OK) {
        ts_errf(err, errlen, "cannot get random bytes for the session secret: %s",
                strerror(errno));
        goto cleanup;
    }
    hex_encode(raw, sizeof(raw), hex);
    if (write_all(fd, hex, strlen(hex)) != TS_OK || fsync(fd) != 0) {
        ts_errf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    rc = TS_OK;

cleanup:
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    if (close(fd) != 0 && rc == TS_OK) {
        ts_errf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        rc = TS_ERR;
    }
    return rc;
}

/*
 * Creates path unless it exists. TS_OK means a secret file is now there,
 * ours or the one of a process that won the race (link() EEXIST): either
 * way the caller reads it, so that every process ends with the same secret.
 */
static int secret_create(const char *state_dir, const char *path, char *err, size_t errlen) {
    unsigned char nonce[6];
    char nonce_hex[13], tmp[1200];
    if (random_bytes(nonce, sizeof(nonce)) != TS_OK) {
        ts_errf(err, errlen, "cannot get random bytes: %s", strerror(errno));
        return TS_ERR;
    }
    hex_encode(nonce, sizeof(nonce), nonce_hex);
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%s", path, (long)getpid(), nonce_hex);
    if (secret_write_tmp(tmp, err, errlen) != TS_OK) {
        unlink(tmp);
        return TS_ERR;
    }
    int rc = TS_OK;
    if (link(tmp, path) != 0 && errno != EEXIST) {
        ts_errf(err, errlen,
                "cannot create session secret %s: %s (set TESSERA_SESSION_SECRET instead, or "
                "create the file: openssl rand -hex 32 > %s; chmod 600 %s)",
                path, strerror(errno), path, path);
        rc = TS_ERR;
    }
    unlink(tmp);
    if (rc == TS_OK) fsync_dir(state_dir);
    return rc;
}

/*
 * See auth.h. The environment wins so that several machines can share one
 * secret without sharing a directory; its bytes are used as they are.
 * Otherwise the file is read, or created and read: at most two rounds, the
 * second only after a creation (which always leaves a file behind).
 */
int auth_secret_load(auth_config *cfg, const char *env_secret, const char *state_dir, char *err,
                     size_t errlen) {
    OPENSSL_cleanse(cfg->secret, sizeof(cfg->secret));
    cfg->secret_len = 0;
    if (env_secret != NULL && env_secret[0] != '\0') {
        size_t len = strlen(env_secret);
        if (len > AUTH_SECRET_MAX) {
            ts_errf(err, errlen, "TESSERA_SESSION_SECRET is %zu bytes long; at most %d are used",
                    len, AUTH_SECRET_MAX);
            return TS_ERR;
        }
        /* A short secret is guessed offline from a single cookie. */
        if (len < SECRET_MIN) {
            ts_errf(err, errlen,
                    "TESSERA_SESSION_SECRET is %zu bytes long; it must be at least %d (make one "
                    "with: openssl rand -hex 32), or unset it to have %s/session_secret created",
                    len, SECRET_MIN, state_dir && state_dir[0] ? state_dir : "STATE_DIR");
            return TS_ERR;
        }
        memcpy(cfg->secret, env_secret, len);
        cfg->secret_len = len;
        return TS_OK;
    }
    if (state_dir == NULL || state_dir[0] == '\0') {
        ts_errf(err, errlen, "no state directory for the session secret: set "
                             "TESSERA_STATE_DIR or TESSERA_SESSION_SECRET");
        return TS_ERR;
    }
    char path[1100];
    char *file = layout_file_path(state_dir, LAYOUT_SESSION_SECRET);
    ts_strlcpy(path, file, sizeof(path));
    free(file);
    int rc = secret_read(cfg, path, err, errlen);
    if (rc != SECRET_ABSENT) return rc;
    if (secret_create(state_dir, path, err, errlen) != TS_OK) return TS_ERR;
    rc = secret_read(cfg, path, err, errlen);
    if (rc == SECRET_ABSENT) {
        ts_errf(err, errlen, "session secret %s disappeared right after it was created", path);
        return TS_ERR;
    }
    return rc;
}

/* ---- peers ---------------------------------------------------------------------- */

/* Is the peer a loopback address? IPv4-mapped IPv6 (::ffff:127.0.0.1, what
 * a dual-stack socket reports for an IPv4 client) counts as its IPv4. */
bool auth_peer_loopback(const struct sockaddr *peer) {
    if (peer == NULL) return false;
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (peer->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* The canonical text of an address (inet_ntop), an IPv4-mapped IPv6 one as
 * plain IPv4 so that a proxy listed as "10.0.0.5" matches either way. */
static bool addr_text(int family, const void *addr, char *out, size_t n) {
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr))
        return inet_ntop(AF_INET, (const unsigned char *)addr + 12, out, (socklen_t)n) != NULL;
    return inet_ntop(family, addr, out, (socklen_t)n) != NULL;
}

/* The peer's canonical text, or false if it is not an IP peer. */
static bool peer_text(const struct sockaddr *peer, char *out, size_t n) {
    if (peer == NULL) return false;
    if (peer->sa_family == AF_INET)
        return addr_text(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, out, n);
    if (peer->sa_family == AF_INET6)
        return addr_text(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, out, n);
    return false;
}

/* An entry of the trusted list in canonical text ("::0001" -> "::1"); false
 * if it is not an address (such an entry never matches). */
static bool entry_text(const char *entry, char *out, size_t n) {
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, entry, addr) == 1) return addr_text(AF_INET, addr, out, n);
    if (inet_pton(AF_INET6, entry, addr) == 1) return addr_text(AF_INET6, addr, out, n);
    return false;
}

/* Is ip (canonical text) one of the comma-separated trusted proxies? */
static bool proxy_trusted(const char *list, const char *ip) {
    char entry[INET6_ADDRSTRLEN + 8], canon[INET6_ADDRSTRLEN];
    for (const char *p = list ? list : ""; *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t trimmed = n;
        while (trimmed > 0 && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t')) trimmed--;
        if (trimmed > 0 && trimmed < sizeof(entry)) {
            memcpy(entry, p, trimmed);
            entry[trimmed] = '\0';
            if (entry_text(entry, canon, sizeof(canon)) && strcmp(canon, ip) == 0) return true;
        }
        p += n;
    }
    return false;
}

/* ---- session cookies ------------------------------------------------------------- */

/* HMAC-SHA256 of msg[0..len) under the secret, as lower-case hex. */
static void session_mac(const auth_config *cfg, const char *msg, size_t len, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    HMAC(EVP_sha256(), cfg->secret, (int)cfg->secret_len, (const unsigned char *)msg, len, md,
         &md_len);
    hex_encode(md, SHA256_DIGEST_LENGTH, hex);
    OPENSSL_cleanse(md, sizeof(md));
}

static double session_ttl(const auth_config *cfg) {
    return cfg->session_ttl_s > 0 ? cfg->session_ttl_s : DEFAULT_TTL_S;
}

/* The binding of a session made from the token whose SHA-256 (hex) is
 * token_hash: "t" + 16 hex of HMAC(secret, "token:" + hash), or, for an
 * administrator's token, "a" + 16 hex of HMAC(secret, "admin-token:" +
 * hash). Keyed, so the cookie says nothing checkable about the token
 * offline; 64 bits, so a replaced token gives another binding. The admin
 * flag can ride on the binding because it changes only with the token
 * (store_user_put sets both; `tessera user add` always makes a new token).
 * out: 18 bytes. */
static void token_binding(const auth_config *cfg, const char *token_hash, bool admin,
                          char out[18]) {
    char msg[80], mac[65];
    int n = snprintf(msg, sizeof(msg), "%s:%s", admin ? "admin-token" : "token", token_hash);
    session_mac(cfg, msg, (size_t)n, mac);
    out[0] = admin ? 'a' : 't';
    memcpy(out + 1, mac, 16);
    out[17] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
}

/* See auth.h: "v2.<binding>.<user>.<expires>.<hmac>", expires in whole
 * seconds. TS_ERR for an invalid user or token hash, no secret, or an out
 * buffer that is too small. */
int auth_session_issue(const auth_config *cfg, const char *user, const char *token_hash,
                       double now, char *out, size_t outlen) {
    return auth_session_issue_as(cfg, user, token_hash, false, now, out, outlen);
}

/* See auth.h. */
int auth_session_issue_as(const auth_config *cfg, const char *user, const char *token_hash,
                          bool admin, double now, char *out, size_t outlen) {
    char mac[65], binding[18] = "h";
    if (cfg->secret_len == 0 || user == NULL || !config_user_valid(user)) return TS_ERR;
    if (admin && token_hash == NULL) return TS_ERR; /* only a token makes an administrator */
    if (token_hash != NULL) {
        if (strlen(token_hash) != 64 || !all_hex(token_hash, 64)) return TS_ERR;
        token_binding(cfg, token_hash, admin, binding);
    }
    long long expires = (long long)(now + session_ttl(cfg));
    int n = snprintf(out, outlen, "v2.%s.%s.%lld", binding, user, expires);
    if (n < 0 || (size_t)n + 1 + 64 >= outlen) return TS_ERR;
    session_mac(cfg, out, (size_t)n, mac);
    snprintf(out + n, outlen - (size_t)n, ".%s", mac);
    return TS_OK;
}

/* A cookie's parts: the binding ("h", or "t" or "a" + 16 hex), the user, the
 * expiry, and how much of the value the HMAC covers. */
typedef struct session_parts {
    char binding[18];
    char user[129];
    long long expires;
    size_t signed_len;
} session_parts;

/* Splits "v2.<binding>.<user>.<expires>.<hmac>": the user may contain
 * dots, so the binding ends at the first dot after "v2." and the last two
 * dots delimit the rest. False if the shape is wrong. */
static bool session_split(const char *value, session_parts *p) {
    size_t len = strlen(value);
    if (len > COOKIE_VALUE_MAX || strncmp(value, "v2.", 3) != 0) return false;
    const char *b = value + 3, *b_end = strchr(b, '.');
    if (b_end == NULL) return false;
    size_t b_len = (size_t)(b_end - b);
    if (!(b_len == 1 && b[0] == 'h') &&
        !(b_len == 17 && (b[0] == 't' || b[0] == 'a') && all_hex(b + 1, 16)))
        return false;
    const char *mac = strrchr(value, '.');
    if (mac == NULL || strlen(mac + 1) != 64 || !all_hex(mac + 1, 64)) return false;
    const char *exp = mac - 1;
    while (exp > b_end && *exp != '.') exp--;
    if (exp <= b_end) return false; /* no dot between the user and the hmac */
    size_t user_len = (size_t)(exp - (b_end + 1)), exp_len = (size_t)(mac - exp - 1);
    if (user_len < 1 || user_len > 128 || exp_len < 1 || exp_len > 18) return false;
    long long e = 0;
    for (const char *q = exp + 1; q < mac; q++) {
        if (*q < '0' || *q > '9') return false;
        e = e * 10 + (*q - '0');
    }
    memcpy(p->binding, b, b_len);
    p->binding[b_len] = '\0';
    memcpy(p->user, b_end + 1, user_len);
    p->user[user_len] = '\0';
    p->expires = e;
    p->signed_len = (size_t)(mac - value);
    return true;
}

/* Is the credential a verified cookie was made from still the one in
 * force? A header-mode session lives only while the server is in header
 * mode; a token session only while its user's token is the one it was made
 * from (a new `tessera user add` or `tessera user revoke` ends it). TS_OK,
 * AUTH_INVALID, or TS_ERR when the store cannot be asked. */
static int session_binding_check(const auth_config *cfg, store *st, const session_parts *p,
                                 char *err, size_t errlen) {
    char hash[65], binding[18], dberr[TS_ERRLEN];
    if (p->binding[0] == 'h')
        return cfg->header_mode ? TS_OK
                                : invalid(err, errlen, "this session was made in header mode and "
                                                       "the server now requires tokens: sign in "
                                                       "again with a token");
    if (st == NULL) {
        ts_errf(err, errlen, "sessions cannot be checked: no store");
        return TS_ERR;
    }
    int rc = store_user_token(st, p->user, hash, dberr, sizeof(dberr));
    if (rc == STORE_NOTFOUND)
        return invalid(err, errlen, "the token this session was made from was revoked or "
                                    "replaced: sign in again");
    if (rc != TS_OK) {
        ts_errf(err, errlen, "could not check the session: %s", dberr);
        return TS_ERR;
    }
    token_binding(cfg, hash, p->binding[0] == 'a', binding);
    bool same = CRYPTO_memcmp(binding, p->binding, sizeof(binding)) == 0;
    OPENSSL_cleanse(hash, sizeof(hash));
    return same ? TS_OK
                : invalid(err, errlen, "the token this session was made from was revoked or "
                                       "replaced: sign in again");
}

/* The checks behind auth_session_verify, with the reason in err: shape,
 * then signature (constant-time), then the user rule and expiry, then the
 * credential behind it, so that a forged value is called forged whatever
 * it claims. */
static int session_check(const auth_config *cfg, store *st, const char *value, double now,
                         char user[129], bool *admin, char *err, size_t errlen) {
    char mac[65];
    session_parts p;
    user[0] = '\0';
    *admin = false;
    if (cfg->secret_len == 0)
        return invalid(err, errlen, "sessions are not enabled on this server");
    if (strncmp(value, "v1.", 3) == 0)
        return invalid(err, errlen, "session from an earlier version: sign in again");
    if (!session_split(value, &p))
        return invalid(err, errlen, "malformed session cookie: sign in again");
    session_mac(cfg, value, p.signed_len, mac);
    bool same = CRYPTO_memcmp(mac, value + p.signed_len + 1, 64) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    if (!same) return invalid(err, errlen, "session signature invalid: sign in again");
    if (!config_user_valid(p.user))
        return invalid(err, errlen, "session names an invalid user id: sign in again");
    if ((double)p.expires <= now) return invalid(err, errlen, "session expired: sign in again");
    int rc = session_binding_check(cfg, st, &p, err, errlen);
    if (rc == TS_OK) {
        ts_strlcpy(user, p.user, 129);
        *admin = p.binding[0] == 'a';
    }
    return rc;
}

/* See auth.h: TS_OK with user, AUTH_INVALID, or TS_ERR. */
int auth_session_verify(const auth_config *cfg, store *st, const char *value, double now,
                        char user[129]) {
    if (value == NULL) {
        user[0] = '\0';
        return AUTH_INVALID;
    }
    bool admin;
    return session_check(cfg, st, value, now, user, &admin, NULL, 0);
}

/*
 * Finds our cookie in a Cookie header ("a=1; tessera_session=v2...; b=2"),
 * ignoring other cookies. Returns 1 with its value (surrounding quotes
 * removed), 0 if absent or empty (what a client sends after sign-out), -1 if
 * too long to be ours. If a browser sends it twice (two paths), the first -
 * the most specific path - counts.
 */
static int cookie_find(const char *header, char *value, size_t n) {
    size_t name_len = strlen(AUTH_COOKIE_NAME);
    for (const char *p = header ? header : ""; *p;) {
        p += strspn(p, " \t;");
        size_t len = strcspn(p, ";");
        if (len > name_len && strncmp(p, AUTH_COOKIE_NAME, name_len) == 0 && p[name_len] == '=') {
            const char *v = p + name_len + 1;
            size_t vlen = len - name_len - 1;
            while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') v++, vlen -= 2;
            if (vlen == 0) return 0;
            if (vlen >= n) return -1;
            memcpy(value, v, vlen);
            value[vlen] = '\0';
            return 1;
        }
        p += len;
    }
    return 0;
}

/* ---- tokens ---------------------------------------------------------------------- */

/* See auth.h: 32 random bytes as 64 lower-case hex characters. */
int auth_token_new(char token[65]) {
    unsigned char raw[32];
    if (random_bytes(raw, sizeof(raw)) != TS_OK) return TS_ERR;
    hex_encode(raw, sizeof(raw), token);
    OPENSSL_cleanse(raw, sizeof(raw));
    return TS_OK;
}

/* SHA-256 of the token text, hex. No salt or slow hash is needed: a token
 * has 256 random bits, so its hash cannot be reversed by guessing. */
void auth_token_hash(const char *token, char hash_hex[65]) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, strlen(token), md);
    hex_encode(md, sizeof(md), hash_hex);
}

/* "Bearer <64 hex>" (scheme in any case, RFC 7235) into token, lower-cased
 * so that a token copied in upper case still matches its hash. */
static int bearer_parse(const char *authz, char token[65], char *err, size_t errlen) {
    const char *p = authz + strspn(authz, " \t");
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return invalid(err, errlen,
                       "unsupported Authorization header: send Authorization: Bearer <token>");
    p += 6;
    p += strspn(p, " \t");
    size_t n = strcspn(p, " \t");
    if (n != 64 || !all_hex(p, 64) || p[64 + strspn(p + 64, " \t")] != '\0')
        return invalid(err, errlen,
                       "malformed bearer token: expected 64 hexadecimal characters "
                       "(as printed by tessera user add)");
    for (size_t i = 0; i < 64; i++)
        token[i] = (char)(p[i] >= 'A' && p[i] <= 'F' ? p[i] + 32 : p[i]);
    token[64] = '\0';
    return TS_OK;
}

/* The user behind a bearer token. A store failure is TS_ERR (not the
 * caller's fault, and not a verdict on the token). */
static int bearer_check(store *st, const char *authz, char name[129], bool *admin, char *err,
                        size_t errlen) {
    char token[65], hash[65], dberr[TS_ERRLEN];
    int rc = bearer_parse(authz, token, err, errlen);
    if (rc != TS_OK) return rc;
    auth_token_hash(token, hash);
    OPENSSL_cleanse(token, sizeof(token));
    if (st == NULL) {
        ts_errf(err, errlen, "tokens cannot be checked: no store");
        return TS_ERR;
    }
    rc = store_user_by_token(st, hash, name, admin, dberr, sizeof(dberr));
    if (rc == STORE_NOTFOUND) return invalid(err, errlen, "unknown or revoked token");
    if (rc != TS_OK) {
        ts_errf(err, errlen, "could not check the token: %s", dberr);
        return TS_ERR;
    }
    return TS_OK;
}

/* ---- X-User-ID --------------------------------------------------------------------- */

/* Header mode: the asserted user, if the peer may assert identities
 * (loopback or a trusted proxy) and the id follows the rule. */
static int header_check(const auth_config *cfg, const auth_request *req, char name[129],
                        char *err, size_t errlen) {
    char ip[INET6_ADDRSTRLEN];
    bool known = peer_text(req->peer, ip, sizeof(ip));
    if (!auth_peer_loopback(req->peer) && !(known && proxy_trusted(cfg->trusted_proxies, ip))) {
        ts_errf(err, errlen,
                "X-User-ID is only accepted from loopback or a trusted proxy "
                "(TESSERA_TRUSTED_PROXIES), not from %s: use a bearer token",
                known ? ip : "this peer");
        return AUTH_INVALID;
    }
    if (!config_user_valid(req->x_user_id))
        return invalid(err, errlen, "invalid X-User-ID: " USER_RULE);
    ts_strlcpy(name, req->x_user_id, 129);
    return TS_OK;
}

/* ---- identify ------------------------------------------------------------------------ */

/* Adds one verified identity: the first sets user, a later one must agree. */
static int agree(char user[129], const char *name, char *err, size_t errlen) {
    if (user[0] == '\0') {
        ts_strlcpy(user, name, 129);
        return TS_OK;
    }
    if (strcmp(user, name) == 0) return TS_OK;
    return invalid(err, errlen,
                   "the request's credentials name different users: send only one of "
                   "cookie, bearer token, X-User-ID");
}

/* The cookie, if one: TS_OK with name ("" if absent), AUTH_INVALID, or
 * TS_ERR (the store could not be asked about its token). */
static int identify_cookie(const auth_config *cfg, store *st, const char *header, char name[129],
                           bool *admin, char *err, size_t errlen) {
    char value[COOKIE_VALUE_MAX + 1];
    name[0] = '\0';
    *admin = false;
    int found = cookie_find(header, value, sizeof(value));
    if (found < 0) return invalid(err, errlen, "malformed session cookie: sign in again");
    if (found == 0) return TS_OK;
    return session_check(cfg, st, value, ts_now(), name, admin, err, errlen);
}

/* See auth.h and the top of this file for the rules. */
int auth_identify(const auth_config *cfg, store *st, const auth_request *req, char user[129],
                  bool *admin, char *err, size_t errlen) {
    char name[129];
    bool has_token = req->authorization != NULL && req->authorization[0] != '\0';
    user[0] = '\0';
    *admin = false;
    bool cookie_admin = false;
    int rc = identify_cookie(cfg, st, req->cookie, name, &cookie_admin, err, errlen);
    if (rc == TS_OK && name[0]) rc = agree(user, name, err, errlen);
    if (rc == TS_OK) *admin = cookie_admin;
    if (rc == TS_OK && has_token) {
        bool token_admin = false;
        rc = bearer_check(st, req->authorization, name, &token_admin, err, errlen);
        if (rc == TS_OK) rc = agree(user, name, err, errlen);
        if (rc == TS_OK) *admin = token_admin;
    }
    if (rc == TS_OK && req->x_user_id != NULL && cfg->header_mode) {
        rc = header_check(cfg, req, name, err, errlen);
        if (rc == TS_OK) rc = agree(user, name, err, errlen);
    }
    if (rc == TS_OK && req->x_user_id != NULL && !cfg->header_mode && user[0] == '\0')
        rc = invalid(err, errlen, "X-User-ID is not accepted: this server requires a token");
    if (rc == TS_OK && user[0] == '\0') {
        ts_errf(err, errlen, "%s",
                cfg->header_mode ? "no credentials: send X-User-ID, Authorization: Bearer "
                                   "<token>, or sign in"
                                 : "no credentials: send Authorization: Bearer <token>, or "
                                   "sign in");
        rc = AUTH_MISSING;
    }
    if (rc != TS_OK) {
        user[0] = '\0';
        *admin = false;
    }
    return rc;
}
