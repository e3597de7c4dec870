/*
 * sqlite_users.c - users and their API tokens (store.h, "users and tokens").
 *
 * Only a token's SHA-256 (hex) is stored, so a copy of the database does
 * not let anyone call the API. A user has at most one token: giving a new
 * one replaces the hash, which revokes the old token at once. A UNIQUE
 * index on token_hash (migration 2) makes the lookup on every bearer
 * request an index search and guarantees that a hash names one user.
 */
#include <string.h>

#include "store/rows.h"
#include "store/sqlite_internal.h"
#include "util/config.h"
#include "util/util.h"

/* created_at is kept from the first put: replacing a token is not creating
 * the user again. */
static const char SQL_USER_PUT[] =
    "INSERT INTO users (name, token_hash, admin, created_at) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash,"
    " admin = excluded.admin";

static const char SQL_USER_BY_TOKEN[] = "SELECT name, admin FROM users WHERE token_hash = ?1";

static const char SQL_USER_TOKEN[] = "SELECT token_hash FROM users WHERE name = ?1";

/* A revoked user keeps its row (created_at, admin) without a token: the
 * name can be given a new token later with user_put. */
static const char SQL_USER_REVOKE[] = "UPDATE users SET token_hash = NULL WHERE name = ?1";

/*
 * Creates the user or replaces its token and admin flag. The arguments are
 * checked here too, because a row with a bad name or a hash of the wrong
 * shape would be a user nobody can ever authenticate as.
 */
int sqlite_user_put(sqlite_store *st, const char *name, const char *token_hash, bool admin, double now,
                   char *err, size_t errlen) {
    bool own = false;
    if (rows_user_put_check(name, token_hash, err, errlen) != TS_OK) return TS_ERR;
    SQL_TRY(txn_enter(st, &own, err, errlen));
    sqlite3_stmt *s = stmt_get(st, ST_USER_PUT, SQL_USER_PUT, err, errlen);
    int rc = s ? TS_OK : stmt_failed(st);
    if (s != NULL) {
        bind_text(s, 1, name);
        bind_text(s, 2, token_hash);
        sqlite3_bind_int(s, 3, admin ? 1 : 0);
        sqlite3_bind_double(s, 4, now);
        rc = stmt_exec(st, s, err, errlen, "storing the user's token");
    }
    return txn_end(st, own, rc, err, errlen);
}

/* One indexed read; a NULL or malformed hash simply matches nobody. */
int sqlite_user_by_token(sqlite_store *st, const char *token_hash, char *name, bool *admin, char *err,
                        size_t errlen) {
    name[0] = '\0';
    *admin = false;
    if (!rows_token_hash_valid(token_hash)) return STORE_NOTFOUND;
    sqlite3_stmt *s = stmt_get(st, ST_USER_BY_TOKEN, SQL_USER_BY_TOKEN, err, errlen);
    if (s == NULL) return stmt_failed(st);
    bind_text(s, 1, token_hash);
    int step = sqlite3_step(s), rc = TS_OK;
    if (step == SQLITE_ROW) {
        ts_strlcpy(name, col_text(s, 0), 129);
        *admin = sqlite3_column_int(s, 1) != 0;
    } else if (step == SQLITE_DONE) {
        rc = STORE_NOTFOUND;
    } else {
        rc = db_fail(st, err, errlen, "looking up a token");
    }
    stmt_done(s);
    return rc;
}

/* The hash of name's current token: one primary-key read, made for every
 * request with a session cookie in token mode (auth.c binds a cookie to
 * the token it was made from). A user without a token is STORE_NOTFOUND,
 * as a missing one. */
int sqlite_user_token(sqlite_store *st, const char *name, char token_hash[65], char *err,
                      size_t errlen) {
    token_hash[0] = '\0';
    sqlite3_stmt *s = stmt_get(st, ST_USER_TOKEN, SQL_USER_TOKEN, err, errlen);
    if (s == NULL) return stmt_failed(st);
    bind_text(s, 1, name);
    int step = sqlite3_step(s), rc = STORE_NOTFOUND;
    if (step == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_TEXT) {
        ts_strlcpy(token_hash, col_text(s, 0), 65);
        rc = rows_token_hash_valid(token_hash) ? TS_OK : STORE_NOTFOUND;
    } else if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = db_fail(st, err, errlen, "looking up a user's token");
    }
    stmt_done(s);
    return rc;
}

/* Forgets name's token (its hash becomes NULL, which matches no token and
 * no session). STORE_NOTFOUND when there is no such user; a user already
 * without a token is revoked again, harmlessly. */
int sqlite_user_revoke(sqlite_store *st, const char *name, char *err, size_t errlen) {
    bool own = false;
    SQL_TRY(txn_enter(st, &own, err, errlen));
    sqlite3_stmt *s = stmt_get(st, ST_USER_REVOKE, SQL_USER_REVOKE, err, errlen);
    int rc = s ? TS_OK : stmt_failed(st);
    if (s != NULL) {
        bind_text(s, 1, name);
        rc = stmt_exec(st, s, err, errlen, "revoking the user's token");
        if (rc == TS_OK && sqlite3_changes(st->db) == 0) rc = STORE_NOTFOUND;
    }
    return txn_end(st, own, rc, err, errlen);
}
