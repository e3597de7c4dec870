/*
 * auth.h - who is calling (DESIGN §4): X-User-ID in header mode (trusted
 * only from loopback or a configured trusted proxy), a bearer token (only
 * its SHA-256 is stored), or the browser session cookie signed with
 * HMAC-SHA256 by the session secret.
 *
 * Contract:
 *   - auth_identify() returns TS_OK with the user, AUTH_MISSING when the
 *     request carries no identity, AUTH_INVALID when it carries one that is
 *     forged, expired, malformed, unknown or not allowed from this peer; err
 *     says which, in words safe to show the caller (never the secret).
 *   - Precedence: a session cookie, then a bearer token, then X-User-ID
 *     (header mode only). Present-but-invalid credentials are AUTH_INVALID
 *     even if another credential would pass: a forged cookie is never
 *     silently ignored.
 *   - The cookie value is "v2.<binding>.<user>.<expires-unix>.<hex hmac>"
 *     where the HMAC covers everything before the last dot; comparison is
 *     constant-time. The binding says which credential the session was
 *     made from, and the cookie is valid only while that credential is:
 *     "h" (header mode: valid while the server is in header mode) or "t"
 *     and 16 hex digits of HMAC(secret, "token:" + the token's SHA-256), or
 *     "a" and 16 hex digits of HMAC(secret, "admin-token:" + that SHA-256)
 *     for a session made from an administrator's token (the request is then
 *     an administrator's, as with the token itself)
 *     (valid while that token is its user's current one: rotating it with
 *     `tessera user add` or `tessera user revoke` ends every such session).
 *     Checking a token binding reads the store (store_user_token).
 *   - The session secret comes from TESSERA_SESSION_SECRET, else from
 *     <state_dir>/session_secret, created once with 32 random bytes (hex)
 *     and mode 0600 (O_EXCL, so concurrent starts agree on one secret).
 *     Either must hold at least 32 bytes: a shorter one is refused at start.
 */
#ifndef TESSERA_HTTP_AUTH_H
#define TESSERA_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "store/store.h"

#define AUTH_MISSING 1
#define AUTH_INVALID 2

#define AUTH_COOKIE_NAME "tessera_session"
#define AUTH_SECRET_MAX 256

typedef struct auth_config {
    bool header_mode;             /* TESSERA_AUTH=header */
    const char *trusted_proxies;  /* comma-separated IPs, may be "" */
    unsigned char secret[AUTH_SECRET_MAX];
    size_t secret_len;
    double session_ttl_s;         /* default 7 days */
} auth_config;

typedef struct auth_request {
    const char *x_user_id;     /* header values, NULL when absent */
    const char *authorization;
    const char *cookie;        /* the whole Cookie header */
    const struct sockaddr *peer;
} auth_request;

/* Loads the secret: env_secret if non-empty, else the file in state_dir
 * (created if missing). TS_OK or TS_ERR with the path in err. */
int auth_secret_load(auth_config *cfg, const char *env_secret, const char *state_dir, char *err,
                     size_t errlen);

int auth_identify(const auth_config *cfg, store *st, const auth_request *req, char user[129],
                  bool *admin, char *err, size_t errlen);

/* A signed cookie value for user, valid until now + ttl, bound to the
 * credential it is made from: token_hash, the SHA-256 (hex) of the token the
 * user signed in with, or NULL for a header-mode sign-in. */
int auth_session_issue(const auth_config *cfg, const char *user, const char *token_hash,
                       double now, char *out, size_t outlen);
/* The same for a session made from a token of an administrator (admin
 * true: binding "a"); TS_ERR when admin is asked without a token_hash. */
int auth_session_issue_as(const auth_config *cfg, const char *user, const char *token_hash,
                          bool admin, double now, char *out, size_t outlen);
/* TS_OK with user; AUTH_INVALID (forged, expired, malformed, or its
 * credential no longer in force); TS_ERR when the store cannot be asked
 * about a token binding (st may be NULL for header-mode cookies only). */
int auth_session_verify(const auth_config *cfg, store *st, const char *value, double now,
                        char user[129]);

/* A new random token (64 hex characters) and the hash that is stored. */
int auth_token_new(char token[65]);
void auth_token_hash(const char *token, char hash_hex[65]);

/* Is the peer a loopback address (127.0.0.0/8, ::1)? */
bool auth_peer_loopback(const struct sockaddr *peer);

#endif
